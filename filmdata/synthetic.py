"""Synthetic films with known ground truth, made from real photographs.

Used by the tests, the benchmarks and the README demo. A *plan* is a list of shots
(:class:`ShotSpec`) and the transitions between them (:class:`TransitionSpec`);
:func:`make_film` renders it with OpenCV and encodes it with PyAV, and returns a
:class:`FilmTruth` that says where every shot and transition is, in decoded-frame numbers.

Timeline: a shot contributes ``n_frames`` pure frames; a transition of ``n`` frames sits
between two shots and adds ``n`` mixed frames (a dissolve, or a fade to black and back in).
Shot spans in the truth partition the film at each transition's *cut*: the first frame
of the new shot for a hard cut, the middle frame for a gradual transition.

Every frame gets film grain and flicker (a random global brightness gain of a few
percent); all randomness comes from one ``numpy.random.Generator`` seeded by ``seed``,
so the same call makes the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange

from filmdata.errors import ConfigError

# Colour photographs shipped with scikit-image (no download needed).
PHOTOS: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "retina",
)
MOTIONS: tuple[str, ...] = ("pan", "zoom", "static", "shake")
TITLE_TEXTS: tuple[str, ...] = ("REEL TWO", "THE END", "PART II", "INTERMISSION")

_MARGIN = 1.25  # the photo is scaled to cover the frame times this, leaving room to move
_DARK_LUMA = 15.0  # target mean luma (0-255) of a night shot
_NIGHT_TINT = (0.8, 0.95, 1.25)  # R, G, B gains of a night shot (blue-ish)


@dataclass(frozen=True)
class ShotSpec:
    """One shot: a moving view of one photograph."""

    photo: str  # a name from PHOTOS (ignored for title cards)
    n_frames: int  # pure frames of this shot (transitions add mixed frames around it)
    motion: str = "pan"  # 'pan' | 'zoom' | 'static' | 'shake'
    kind: str = "normal"  # 'normal' | 'dark' (night scene) | 'title' (grey card, white text)
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)  # R, G, B gains of a colour cast
    flashes: tuple[tuple[int, int], ...] = ()  # (offset in shot, length 1-3) overexposures
    text: str = "THE END"  # text of a title card


@dataclass(frozen=True)
class TransitionSpec:
    """The transition from one shot to the next."""

    kind: str = "cut"  # 'cut' | 'dissolve' | 'fade' (fade to black, then fade in)
    n_frames: int = 0  # mixed frames; 0 for a cut


@dataclass(frozen=True)
class TruthTransition:
    kind: str
    start: int  # first mixed frame; == end for a hard cut
    end: int  # exclusive; == start for a hard cut

    @property
    def cut(self) -> int:
        """First frame of the new shot: the middle of a gradual transition."""
        return (self.start + self.end) // 2


@dataclass(frozen=True)
class FilmTruth:
    path: Path
    fps: float
    n_frames: int  # frames a decoder yields
    width: int
    height: int
    shots: tuple[tuple[int, int], ...]  # (start, end) per shot, end exclusive
    transitions: tuple[TruthTransition, ...]
    dark_shots: tuple[int, ...]  # indices into shots
    title_shots: tuple[int, ...]
    casts: tuple[tuple[float, float, float], ...]  # per shot
    flash_frames: tuple[int, ...]  # every overexposed frame
    pts_s: tuple[float, ...] = field(default=(), repr=False)  # presentation time per frame


# --------------------------------------------------------------------------- planning


def standard_plan(
    seed: int = 0, n_shots: int = 12, fps: float = 24.0, seconds_per_shot: float = 3.0
) -> tuple[list[ShotSpec], list[TransitionSpec]]:
    """A realistic mix: pans and zooms, one colour-cast shot, a night sequence of two dark
    shots, a grey title card, flashes inside a few shots, cuts + dissolves + fades.

    With ``n_shots >= 6`` the plan always holds at least one dissolve and one fade.
    """
    rng = np.random.default_rng(seed)
    kinds = ["normal"] * n_shots
    if n_shots >= 6:
        night = int(rng.integers(1, n_shots - 2))
        kinds[night] = kinds[night + 1] = "dark"
        free = [i for i in range(n_shots) if kinds[i] == "normal"]
        kinds[int(rng.choice(free))] = "title"
    normal = [i for i in range(n_shots) if kinds[i] == "normal"]
    cast_shot = int(rng.choice(normal)) if normal else -1
    flash_shots = set(rng.choice(normal, size=min(3, len(normal)), replace=False).tolist())

    # Photos in a shuffled cycle: every photo is used before any is used again.
    order: list[str] = []
    while len(order) < n_shots:
        cycle = [str(p) for p in rng.permutation(PHOTOS)]
        if order and cycle[0] == order[-1]:
            cycle = cycle[1:] + cycle[:1]
        order.extend(cycle)
    shots: list[ShotSpec] = []
    for i, kind in enumerate(kinds):
        n = max(round(fps * seconds_per_shot * rng.uniform(0.6, 1.4)), round(fps * 1.2))
        photo = order[i]
        motion = "static" if kind == "title" else str(rng.choice(MOTIONS, p=[0.4, 0.3, 0.15, 0.15]))
        cast = (1.18, 1.0, 0.78) if i == cast_shot else (1.0, 1.0, 1.0)
        flashes: tuple[tuple[int, int], ...] = ()
        if i in flash_shots:
            flashes = ((int(rng.integers(8, n - 12)), int(rng.integers(1, 4))),)
        text = str(rng.choice(TITLE_TEXTS))
        shots.append(ShotSpec(photo, n, motion, kind, cast, flashes, text))

    transitions: list[TransitionSpec] = []
    for _ in range(n_shots - 1):
        kind = str(rng.choice(["cut", "dissolve", "fade"], p=[0.6, 0.25, 0.15]))
        transitions.append(_transition(kind, rng, fps))
    if n_shots >= 6:  # make sure both gradual kinds appear
        slots = rng.choice(n_shots - 1, size=2, replace=False)
        if not any(t.kind == "dissolve" for t in transitions):
            transitions[slots[0]] = _transition("dissolve", rng, fps)
        if not any(t.kind == "fade" for t in transitions):
            transitions[slots[1]] = _transition("fade", rng, fps)
    return shots, transitions


def _transition(kind: str, rng: np.random.Generator, fps: float) -> TransitionSpec:
    if kind == "cut":
        return TransitionSpec("cut", 0)
    seconds = rng.uniform(0.5, 1.0) if kind == "dissolve" else rng.uniform(0.7, 1.2)
    return TransitionSpec(kind, max(4, round(seconds * fps)))


# --------------------------------------------------------------------------- rendering


@cache
def photo(name: str) -> np.ndarray:
    """A scikit-image photo as RGB uint8 (h, w, 3)."""
    try:
        import skimage.data
    except ImportError as exc:
        raise ConfigError(
            "sample media are made from scikit-image's photos: pip install scikit-image"
        ) from exc

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def _cover(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize ``img`` so that it covers (width, height) * _MARGIN, keeping its aspect."""
    scale = _MARGIN * max(width / img.shape[1], height / img.shape[0])
    size = (math.ceil(img.shape[1] * scale), math.ceil(img.shape[0] * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(img, size, interpolation=interp)


def _title_card(text: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A grey card (slight warm tone, vignette) with white text; RGB uint8 (h, w, 3)."""
    grey = float(rng.uniform(70, 110))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2
    base = grey * (1.0 - 0.6 * r2)  # (h, w) vignette
    card = np.stack([base * 1.02, base, base * 0.97], axis=-1).clip(0, 255).astype(np.uint8)
    scale = width / 400
    thickness = max(1, round(2 * scale))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, thickness)
    origin = ((width - tw) // 2, (height + th) // 2)
    cv2.putText(card, text, origin, cv2.FONT_HERSHEY_DUPLEX, scale, (235, 235, 235), thickness,
                cv2.LINE_AA)
    return card


class _ShotRenderer:
    """Renders frame t of one shot (t may run past the shot, into a transition)."""

    def __init__(self, spec: ShotSpec, width: int, height: int, rng: np.random.Generator):
        self.spec, self.width, self.height = spec, width, height
        if spec.kind == "title":
            self.source = _cover(_title_card(spec.text, width, height, rng), width, height)
        else:
            self.source = _cover(photo(spec.photo), width, height)
        sh, sw = self.source.shape[:2]
        self.room = (sw - width, sh - height)  # pixels the view can move, (x, y)
        self.start = rng.uniform(0.1, 0.9, size=2) * self.room  # view offset at t=0, (x, y)
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0.5, 1.0) * 0.25 * width / max(spec.n_frames, 1)  # px per frame
        self.velocity = speed * np.array([np.cos(angle), np.sin(angle)])
        self.zoom_rate = rng.choice([-1, 1]) * 0.15 / max(spec.n_frames, 1)  # scale per frame
        self.shake = rng.normal(0, 1.5, size=(spec.n_frames + 64, 2))  # handheld jitter, px
        gains = np.array(spec.cast, dtype=np.float32)
        if spec.kind == "dark":
            luma = float(cv2.cvtColor(self.source, cv2.COLOR_RGB2GRAY).mean())
            gains = gains * np.array(_NIGHT_TINT, np.float32) * (_DARK_LUMA / max(luma, 1.0))
        self.gains = gains.astype(np.float32)  # R, G, B
        self.flash_frames = {o + k for o, n in spec.flashes for k in range(n)}

    def frame(self, t: int, gain: float = 1.0) -> np.ndarray:
        """RGB uint8 (h, w, 3) of local frame t, times ``gain`` (flicker, fade), no grain."""
        offset = self.start.copy()
        scale = 1.0
        motion = self.spec.motion
        if motion == "pan":
            offset = offset + self.velocity * t
        elif motion == "zoom":
            scale = 1.0 + self.zoom_rate * (t if self.zoom_rate > 0 else t - self.spec.n_frames)
        elif motion == "shake":
            offset = offset + self.shake[int(np.clip(t, 0, len(self.shake) - 1))]
        offset = np.clip(offset, 0, self.room)
        # Output pixel p samples the source at offset + centre + (p - centre) / scale.
        centre = np.array([self.width / 2, self.height / 2])
        shift = offset + centre - centre / scale
        matrix = np.array([[1 / scale, 0, shift[0]], [0, 1 / scale, shift[1]]], np.float32)
        img = cv2.warpAffine(self.source, matrix, (self.width, self.height),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REFLECT)
        img = cv2.transform(img, np.diag(self.gains * gain))  # per-channel gain, saturating
        if t in self.flash_frames:
            img = cv2.convertScaleAbs(img, alpha=2.2, beta=90.0)  # overexposed: burns out
        return img


def _timeline(shots: list[ShotSpec], transitions: list[TransitionSpec]):
    """Yield, per output frame, a list of (shot index, local frame t, weight) to mix.

    A fade's weights sum below 1 (towards black); a dissolve's sum to 1.
    """
    for i, shot in enumerate(shots):
        for t in range(shot.n_frames):
            yield [(i, t, 1.0)]
        if i == len(shots) - 1:
            break
        tr = transitions[i]
        n = tr.n_frames
        for k in range(n):
            if tr.kind == "dissolve":
                alpha = (k + 1) / (n + 1)
                yield [(i, shot.n_frames + k, 1 - alpha), (i + 1, k - n, alpha)]
            else:  # fade: out over the first half, in over the second
                half = n // 2
                if k < half:
                    yield [(i, shot.n_frames + k, 1 - (k + 1) / half)]
                else:
                    yield [(i + 1, k - n, (k - half) / (n - half))]


def _truth_spans(shots: list[ShotSpec], transitions: list[TransitionSpec]):
    """Shot spans, truth transitions, frame count and the first pure frame of each shot."""
    truth: list[TruthTransition] = []
    pure_starts: list[int] = []
    pos = 0
    for i, shot in enumerate(shots[:-1]):
        pure_starts.append(pos)
        pos += shot.n_frames
        tr = transitions[i]
        truth.append(TruthTransition(tr.kind, pos, pos + tr.n_frames))
        pos += tr.n_frames
    pure_starts.append(pos)
    total = pos + shots[-1].n_frames
    cuts = [0, *[t.cut for t in truth], total]
    spans = tuple((cuts[i], cuts[i + 1]) for i in range(len(shots)))
    return spans, tuple(truth), total, pure_starts


# --------------------------------------------------------------------------- encoding

_CONTAINER_CODEC = {".mp4": "libx264", ".mkv": "libx264", ".avi": "mpeg4", ".mpg": "mpeg2video"}


def _open_video_stream(container, codec: str, fps: float, size: tuple[int, int], pix_fmt: str,
                       preset: str,
                       crf: int, vfr: bool):
    rate = Fraction(fps).limit_denominator(1001)
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height = size
    stream.pix_fmt = pix_fmt
    if pix_fmt.startswith("gray"):
        # Grey samples are full range; say so, or x264's 4:0:0 reads as limited-range
        # 4:2:0 and the darks are crushed to black.
        stream.codec_context.color_range = ColorRange.JPEG
    if vfr:
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.time_base = Fraction(1, 1000)
    if codec in ("libx264", "libx265"):
        stream.options = {"preset": preset, "crf": str(crf)}
        if codec == "libx265":
            stream.options["x265-params"] = "log-level=none"
    else:  # mpeg2video / mpeg4: quality by quantiser scale
        stream.codec_context.bit_rate = int(size[0] * size[1] * fps * 0.4)
        stream.options = {"qmin": "2", "qmax": "8"}
        if codec == "mpeg2video":
            stream.options["flags"] = "+ilme+ildct"  # interlaced-style coding
    return stream


def _grain_field(
    rng: np.random.Generator, std: float, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Monochrome film grain as (positive part, negative part), uint8 (h, w, 3) each."""
    noise = rng.normal(0.0, std, size=(height, width, 1)).round().clip(-127, 127)
    noise = np.repeat(noise, 3, axis=2)
    return noise.clip(0, None).astype(np.uint8), (-noise).clip(0, None).astype(np.uint8)


def _video_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """A PyAV frame; yuv420p is converted by OpenCV (BT.601 limited range, as FFmpeg
    assumes for untagged video) because it is several times faster than swscale."""
    if pix_fmt == "yuv420p":
        return av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), "yuv420p")
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


class _SineTrack:
    """A 440 Hz sine audio track (AAC; mp2 in MPEG-PS), written alongside the video."""

    def __init__(self, container, suffix: str) -> None:
        codec = "mp2" if suffix == ".mpg" else "aac"
        self.rate = 48000 if codec == "aac" else 44100
        self.stream = container.add_stream(codec, rate=self.rate)
        self.stream.layout = "mono"
        self.fmt = "fltp" if codec == "aac" else "s16"
        self.written = 0  # samples

    def write_until(self, container, seconds: float) -> None:
        chunk = self.stream.codec_context.frame_size or 1024
        target = round(seconds * self.rate)
        while self.written < target:
            n = min(chunk, target - self.written)
            t = np.arange(self.written, self.written + n) / self.rate
            wave = 0.2 * np.sin(2 * np.pi * 440.0 * t)
            if self.fmt == "fltp":
                data = wave.astype(np.float32)
            else:
                data = (wave * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(data[None, :], format=self.fmt, layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self.written
            frame.time_base = Fraction(1, self.rate)
            self.written += n
            for packet in self.stream.encode(frame):
                container.mux(packet)

    def close(self, container) -> None:
        for packet in self.stream.encode(None):
            container.mux(packet)


def make_film(
    path: str | Path,
    plan: tuple[list[ShotSpec], list[TransitionSpec]] | None = None,
    *,
    size: tuple[int, int] = (320, 240),
    fps: float = 24.0,
    codec: str | None = None,
    pix_fmt: str = "yuv420p",
    seed: int = 0,
    audio: bool = False,
    grain: float = 4.0,
    flicker: float = 0.025,
    crf: int = 20,
    preset: str = "ultrafast",
    vfr: bool = False,
) -> FilmTruth:
    """Render ``plan`` (default: ``standard_plan(seed, fps=fps)``) to ``path``.

    size: (width, height) in pixels, both even. codec: default from the suffix
    (.mp4/.mkv libx264, .avi mpeg4, .mpg mpeg2video). grain: std of the luma grain, 0-255
    levels. flicker: std of the per-frame global gain. crf, preset: x264/x265 quality and
    speed (ultrafast makes cheap-to-decode files; benchmarks use medium, like a real
    transfer). vfr: irregular frame durations on a 1/1000 s time base (mp4/mkv). Returns
    the ground truth.
    """
    path = Path(path)
    shots, transitions = plan if plan is not None else standard_plan(seed, fps=fps)
    if len(transitions) != len(shots) - 1:
        raise ValueError(f"{len(shots)} shots need {len(shots) - 1} transitions, "
                         f"got {len(transitions)}")
    width, height = size
    rng = np.random.default_rng(seed)
    renderers = [_ShotRenderer(s, width, height, rng) for s in shots]
    spans, truth, total, pure_starts = _truth_spans(shots, transitions)
    bank = [_grain_field(rng, grain, width, height) for _ in range(8)]  # each frame picks one

    codec = codec or _CONTAINER_CODEC.get(path.suffix.lower(), "libx264")
    step_ms = 1000.0 / fps
    pts_s: list[float] = []
    with av.open(str(path), "w") as container:
        stream = _open_video_stream(container, codec, fps, size, pix_fmt, preset, crf, vfr)
        sound = _SineTrack(container, path.suffix.lower()) if audio else None
        pts = 0
        for index, parts in enumerate(_timeline(shots, transitions)):
            gain = 1.0 + float(np.clip(rng.normal(0, flicker), -2 * flicker, 2 * flicker))
            (i, t, w), *rest = parts
            rgb = renderers[i].frame(t, w * gain)
            for i, t, w in rest:  # the other shot of a dissolve
                rgb = cv2.add(rgb, renderers[i].frame(t, w * gain))
            lighter, darker = bank[int(rng.integers(len(bank)))]
            rgb = cv2.subtract(cv2.add(rgb, lighter), darker)  # zero-mean grain, saturating
            frame = _video_frame(rgb, pix_fmt)
            if vfr:
                frame.pts = pts
                frame.time_base = Fraction(1, 1000)
                pts_s.append(pts / 1000)
                pts += max(1, round(step_ms * rng.uniform(0.7, 1.3)))
            else:
                frame.pts = index
                pts_s.append(index / fps)
            for packet in stream.encode(frame):
                container.mux(packet)
            if sound is not None:
                sound.write_until(container, pts_s[-1] + 1.0 / fps)
        for packet in stream.encode(None):
            container.mux(packet)
        if sound is not None:
            sound.close(container)

    flashes = []
    for start, shot in zip(pure_starts, shots, strict=True):
        flashes.extend(start + o + k for o, n in shot.flashes for k in range(n))
    return FilmTruth(
        path=path,
        fps=fps,
        n_frames=total,
        width=width,
        height=height,
        shots=spans,
        transitions=truth,
        dark_shots=tuple(i for i, s in enumerate(shots) if s.kind == "dark"),
        title_shots=tuple(i for i, s in enumerate(shots) if s.kind == "title"),
        casts=tuple(s.cast for s in shots),
        flash_frames=tuple(flashes),
        pts_s=tuple(pts_s),
    )
