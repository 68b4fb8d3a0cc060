"""Colorize a film: stream-decode with PyAV, colorize in batches, re-encode with libx264.

Memory stays bounded whatever the film's length: at most `frames_held_bound` decoded frames
are held (a batch being read in, plus the keyframes waiting for the network and the frames
between them), plus the encoder's lookahead and the muxer's small interleaving buffer.

- Video: every frame of the chosen range is decoded (grey sources as ``gray``, others as
  ``rgb24``, L taken from the RGB), given ab and composed with its own full-resolution L,
  converted to YUV 4:2:0 (BT.601, limited range, tagged as such) and encoded with libx264
  (``crf``, ``preset``) with the source's frame timestamps and frame rate.
- Audio: the first audio stream is copied packet by packet, unchanged (no re-encoding);
  the output is MP4 unless that codec cannot go into MP4, then Matroska.
- Range: ``start_s`` / ``end_s`` colorize [start, end) only (seek to the keyframe before
  start, decode from there, drop earlier frames); audio packets of that span are copied
  and every timestamp is shifted so that the output starts at 0.
- Shot transitions (when keyframes or smoothing are on): found first, by the project's
  shot detector (`shotdetect`, the same as extract-frames) in a pass that decodes the range
  and shrinks each frame to the detector's analysis width (`_find_transitions`). Nothing is
  carried across a cut; each frame of a gradual transition (dissolve, fade) is colorized
  on its own and the new shot starts afresh after it (`colorizer.temporal.Breaks`).
- Keyframes (``keyframes``): the network colorizes the first frame of each shot, every
  N-th frame and its last frame; the frames between two keyframes get ab carried from both
  by optical flow (`colorizer.temporal.propagate`), or the network's own where the flow
  reaches too little of the picture.
- Smoothing (``smooth_s`` > 0): ab blended with the previous output warped by the flow
  (``smooth_method="flow"``), or the plain moving average (``"ema"``), within each shot.

The output is written under a temporary name beside the target (`colorizer.outputs`, the
extension kept for the muxer) and renamed at the end; an exception or Ctrl-C removes the
temporary file. A damaged film is colorized as far as it decodes: packets that fail to
decode are skipped and counted, and a demuxer error or frames that stop before the duration
the container declares mark it truncated (`ColorizedFilm.warnings()` says so in one line).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch

from colorizer.colorize_config import ColorizeConfig
from colorizer.errors import InputError
from colorizer.outputs import atomic_output, output_path
from colorizer.predictor import Colorizer
from colorizer.temporal import (
    MIN_COVERAGE,
    Breaks,
    DenseFlow,
    EmaSmoother,
    FlowSmoother,
    L_to_u8,
    Link,
    ab_to_hwc,
    hwc_to_ab,
    is_keyframe,
    link,
    propagate,
)
from shotdetect import ANALYSIS_WIDTH, Settings, ShotDetector, Transition

log = logging.getLogger(__name__)

# Audio codecs that the MP4 muxer takes as they are; anything else goes into Matroska.
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac", "mp2"})
_BT601 = {"colorspace": 6, "color_primaries": 6, "color_trc": 6, "color_range": 1}
# Containers whose duration is a bitrate estimate: a short stream is no sign of damage.
ESTIMATED_DURATION_FORMATS = frozenset({"mpeg", "mpegts", "mpegvideo"})


@dataclass
class ColorizedFilm:
    output: Path
    frames: int
    audio: bool
    decode_errors: int = 0  # packets that failed to decode (skipped)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    truncated: bool = False  # the stream ended before the film's declared end (cut short)
    ended_at_s: float | None = None  # when truncated: the last frame's time
    duration_s: float | None = None  # when truncated: the duration the container declares
    network_frames: int = 0  # frames the network colorized (keyframes + fallbacks)
    fallbacks: int = 0  # propagated frames too unreliable, colorized by the network instead
    transitions: int = 0  # shot transitions found (cuts and gradual ones)
    max_held: int = 0  # most decoded frames held at once (memory)

    def warnings(self) -> list[str]:
        """One line for a damaged film (what was written is all that could be decoded)."""
        if not self.decode_errors and not self.truncated:
            return []
        parts = [f"{self.decode_errors} packet(s) failed to decode"]
        if self.truncated:
            span = (f" at {self.ended_at_s:.1f} s of {self.duration_s:.1f} s"
                    if self.ended_at_s is not None and self.duration_s else "")
            parts.append(f"stream ended early{span}")
        return [f"damaged film: {', '.join(parts)}; colorized the {self.frames} frame(s) "
                "that could be decoded"]


STAGES = ("decode", "cuts", "network", "flow", "colour", "encode")


class _Stages:
    """Seconds spent per stage (`STAGES`); CUDA synchronised."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            self.seconds[name] += time.perf_counter() - t0


def frames_held_bound(batch_size: int, interval: int) -> int:
    """Most decoded frames the film path holds at once: a batch being read in, plus up to
    ``batch_size`` keyframes waiting for the network with the frames between them."""
    return batch_size * (interval + 1) + 1


@dataclass
class _Held:
    """A decoded frame waiting for its colour."""

    index: int  # frame number within the colorized range
    image: np.ndarray  # (H, W) grey or (H, W, 3) RGB uint8, as decoded
    pts: int  # output timestamp, in the stream's time base
    restart: bool  # a segment starts here: nothing is carried over from the frame before
    key: bool = False  # colorized by the network
    L_work: torch.Tensor | None = None  # (1, h, w) L at the network's size (keyframes)
    u8: np.ndarray | None = None  # (h, w) uint8 L at the network's size (flow)
    link: Link | None = None  # flows to the frame before (None at a restart)
    ab: np.ndarray | None = None  # (h, w, 2) once known


def _open_input(source: Path) -> Any:
    if not source.is_file():
        raise InputError(f"{source}: no such film file")
    try:
        container = av.open(str(source), "r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            f"cannot open {source} as a film: not a video file or damaged "
            f"({type(exc).__name__}); give a film such as .mp4, .mkv, .mov or .avi"
        ) from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{source} has no video stream; give a film file")
    return container


def colorize_film(
    colorizer: Colorizer,
    source: Path,
    cfg: ColorizeConfig,
    *,
    taken: set[Path] | None = None,
    observe_ab: Callable[[int, np.ndarray], None] | None = None,
) -> ColorizedFilm:
    """Colorize one film file into ``cfg.out``; see the module docstring.

    ``observe_ab(index, ab)``, if given, sees each frame's final ab in order: (h, w, 2)
    float32 at the network's working size, before it is composed with the full-resolution L,
    quantised to 8 bits and encoded (for measurements such as the temporal benchmark's).
    """
    source = Path(source)
    with _open_input(source) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        acodec = audio.codec_context.name if audio is not None else None
        suffix = ".mp4" if acodec is None or acodec in MP4_AUDIO else ".mkv"
        target = output_path(cfg.out, source, suffix, taken if taken is not None else set())
        # the temporary file keeps the extension: PyAV picks the muxer by it
        with atomic_output(target, target.suffix) as tmp:
            with av.open(str(tmp), "w") as out:
                result = _Transcoder(colorizer, container, out, cfg, source, observe_ab).run()
            if result.frames == 0:
                span = f"[{cfg.start_s or 0:g} s, {cfg.end_s if cfg.end_s is not None else 'end'})"
                raise InputError(
                    f"{source}: no video frame decoded in {span}; check --start/--end "
                    "against the film's length, or the file is damaged"
                )
    result.output = target
    for line in result.warnings():
        log.info("%s: %s", source.name, line)
    return result


class _Transcoder:
    def __init__(self, colorizer: Colorizer, container: Any, out: Any, cfg: ColorizeConfig,
                 source: Path, observe_ab: Callable[[int, np.ndarray], None] | None = None
                 ) -> None:
        self.c = colorizer
        self.observe_ab = observe_ab
        self.cfg = cfg
        self.container = container
        self.out = out
        self.source = source
        self.name = source.name
        self.vin = container.streams.video[0]
        self.vin.thread_type = "AUTO"
        self.ain = container.streams.audio[0] if container.streams.audio else None
        self.tb: Fraction = self.vin.time_base
        self.rate: Fraction = self.vin.average_rate or self.vin.guessed_rate or Fraction(24)
        cc = self.vin.codec_context
        self.grey = (cc.pix_fmt or "").startswith(("gray", "ya", "y4"))
        self.width, self.height = cc.width, cc.height
        self.film_start = (container.start_time or 0) / av.time_base
        self.offset_s = self.film_start + (cfg.start_s or 0.0) if cfg.start_s else 0.0
        self.stages = _Stages(colorizer.cuda)
        self.interval = cfg.keyframe_interval
        self.smoothing = cfg.smooth_s > 0
        self.uses_flow = self.interval > 1 or (self.smoothing and cfg.smooth_method == "flow")
        self.uses_cuts = self.interval > 1 or self.smoothing
        smoother = FlowSmoother if cfg.smooth_method == "flow" else EmaSmoother
        self.smoother = smoother(cfg.smooth_s, float(self.rate))
        self.flow = DenseFlow() if self.uses_flow else None
        self.breaks = Breaks()
        self.incoming: list[_Held] = []  # decoded, not yet read in (at most a batch)
        self.held: deque[_Held] = deque()  # read in, waiting for their colour, in order
        self.prev: _Held | None = None  # the last frame read in (flow to the next)
        self.anchor: np.ndarray | None = None  # (h, w, 2) ab of the last keyframe written
        self.prev_u8: np.ndarray | None = None  # (h, w) uint8 L of the last frame read in
        self.frames_read = 0
        self.segment_start = 0
        self.frames = 0
        self.network_frames = 0
        self.fallbacks = 0
        self.transitions = 0
        self.max_held = 0
        self.decode_errors = 0
        self.truncated = False  # the demuxer failed, or frames ended before the duration
        self.last_s: float | None = None  # time of the last decoded video frame
        self._open_outputs()

    def _open_outputs(self) -> None:
        even = self.width % 2 == 0 and self.height % 2 == 0
        self.yuv420 = even
        v = self.out.add_stream("libx264", rate=self.rate)
        v.width, v.height = self.width, self.height
        v.pix_fmt = "yuv420p" if even else "yuv444p"
        v.codec_context.time_base = self.tb
        for key, value in _BT601.items():
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                setattr(v.codec_context, key, value)
        v.options = {"crf": str(self.cfg.crf), "preset": self.cfg.preset}
        self.vout = v
        self.aout = self.out.add_stream_from_template(self.ain) if self.ain is not None else None

    # ---- time range
    def _rel_s(self, pts: int | None, tb: Fraction) -> float | None:
        return None if pts is None else float(pts * tb) - self.film_start

    def _in_range(self, t: float) -> bool:
        eps = 1e-6
        if self.cfg.start_s is not None and t < self.cfg.start_s - eps:
            return False
        return self.cfg.end_s is None or t < self.cfg.end_s - eps

    def _expected_frames(self) -> int | None:
        total = self.vin.frames or None
        duration = (float(self.vin.duration * self.tb) if self.vin.duration
                    else (self.container.duration or 0) / av.time_base)
        if self.cfg.start_s is None and self.cfg.end_s is None:
            return total or (round(duration * float(self.rate)) or None)
        end = min(self.cfg.end_s if self.cfg.end_s is not None else duration, duration)
        return max(0, round((end - (self.cfg.start_s or 0.0)) * float(self.rate))) or None

    # ---- main loop
    def run(self) -> ColorizedFilm:
        from tqdm import tqdm

        if self.uses_cuts:
            with self.stages("cuts"):
                found = self._find_transitions()
            self.transitions = len(found)
            self.breaks = Breaks((t.start, t.end) for t in found)
        if self.cfg.start_s:
            target = int((self.film_start + self.cfg.start_s) / self.tb)
            with contextlib.suppress(av.FFmpegError):
                self.container.seek(target, stream=self.vin, backward=True, any_frame=False)
        streams = [self.vin] + ([self.ain] if self.ain is not None else [])
        bar = tqdm(total=self._expected_frames(), unit="frame", desc=self.name,
                   disable=self.cfg.quiet, dynamic_ncols=True, leave=False)
        video_done = audio_done = False
        index = 0  # decoded frames since the seek point (for frames without pts)
        try:
            packets = self.container.demux(*streams)
            while True:
                with self.stages("decode"):
                    packet = self._next_packet(packets)
                if packet is None:
                    break
                if packet.stream.type == "audio":
                    audio_done = self._copy_audio(packet) or audio_done
                elif not video_done:
                    with self.stages("decode"):
                        frames = self._decode(packet)
                    for frame, pts in frames:
                        t = self._rel_s(pts, self.tb)
                        if t is None:
                            t = index / float(self.rate)
                            pts = round(t / self.tb)
                        index += 1
                        self.last_s = t if self.last_s is None else max(self.last_s, t)
                        if not self._in_range(t):
                            if self.cfg.end_s is not None and t >= self.cfg.end_s - 1e-6:
                                video_done = True
                            continue
                        self._push(frame, pts)
                        bar.update(1)
                if video_done and (self.aout is None or audio_done):
                    break
            self._finish()
            with self.stages("encode"):
                for p in self.vout.encode(None):
                    self.out.mux(p)
        finally:
            bar.close()
        duration = self._declared_duration()
        if not video_done and self._ends_early(duration):
            self.truncated = True
        return ColorizedFilm(Path(), self.frames, self.aout is not None, self.decode_errors,
                             dict(self.stages.seconds), self.truncated, self.last_s, duration,
                             self.network_frames, self.fallbacks, self.transitions,
                             self.max_held)

    def _next_packet(self, packets: Iterator[Any]) -> Any:
        """The next packet, or None at the end; a demuxer error (a file cut short or
        damaged) ends the film early: what was decoded is kept, and it is reported."""
        try:
            return next(packets, None)
        except av.FFmpegError as exc:
            self.truncated = True
            log.debug("%s: demuxing stopped early: %s", self.name, exc)
            return None

    def _declared_duration(self) -> float | None:
        """The film's duration as its container declares it (None where it is only an
        estimate from the bitrate, as for MPEG streams)."""
        if self.container.format.name in ESTIMATED_DURATION_FORMATS:
            return None
        if self.vin.duration:
            return float(self.vin.duration * self.tb)
        return (self.container.duration or 0) / av.time_base or None

    def _ends_early(self, duration: float | None) -> bool:
        """Whether the frames stop well before the declared duration (a file cut short:
        its header still tells the full length). Only when the range runs to the end."""
        if not duration or self.last_s is None or self.cfg.end_s is not None:
            return False
        return self.last_s < duration - max(1.0, 0.02 * duration)

    def _decode(self, packet: Any) -> list[tuple[np.ndarray, int | None]]:
        try:
            decoded = packet.decode()
        except av.FFmpegError:
            self.decode_errors += 1
            return []
        fmt = "gray" if self.grey else "rgb24"
        return [(f.to_ndarray(format=fmt), f.pts) for f in decoded]

    def _copy_audio(self, packet: Any) -> bool:
        """Mux one audio packet unchanged (timestamps shifted); True once past the range end."""
        if self.aout is None or packet.dts is None or packet.size == 0:
            return False
        t = self._rel_s(packet.pts if packet.pts is not None else packet.dts, packet.time_base)
        if t is not None and self.cfg.end_s is not None and t >= self.cfg.end_s - 1e-6:
            return True
        if t is not None and self.cfg.start_s is not None and t < self.cfg.start_s - 1e-6:
            return False
        if self.offset_s:
            shift = round(self.offset_s / packet.time_base)
            if packet.pts is not None:
                packet.pts -= shift
            packet.dts -= shift
        packet.stream = self.aout
        self.out.mux(packet)
        return False

    # ---- shot transitions: a first pass
    def _find_transitions(self) -> list[Transition]:
        """The shot transitions of the colorized range, by the project's shot detector
        (`shotdetect`, as extract-frames) in a first pass that decodes the film and shrinks
        each frame to the detector's analysis width. Known before any frame is colorized,
        so memory stays bounded whatever the detector's lag; the pass costs a decode."""
        from av.video.reformatter import VideoReformatter

        detector = ShotDetector(Settings(threshold=self.cfg.cut_threshold), float(self.rate))
        width = min(ANALYSIS_WIDTH, self.width)
        height = max(1, round(self.height * width / self.width))
        reformatter = VideoReformatter()  # one scaler context for the film
        found: list[Transition] = []
        pushed = decoded = 0
        with av.open(str(self.source), "r") as container:
            vin = container.streams.video[0]
            vin.thread_type = "AUTO"
            if self.cfg.start_s:
                target = int((self.film_start + self.cfg.start_s) / self.tb)
                with contextlib.suppress(av.FFmpegError):
                    container.seek(target, stream=vin, backward=True, any_frame=False)
            with contextlib.suppress(av.FFmpegError):  # damage: cuts up to there
                for packet in container.demux(vin):
                    try:
                        frames = packet.decode()
                    except av.FFmpegError:
                        continue
                    for frame in frames:
                        t = self._rel_s(frame.pts, self.tb)
                        t = decoded / float(self.rate) if t is None else t
                        decoded += 1
                        if not self._in_range(t):
                            if self.cfg.end_s is not None and t >= self.cfg.end_s - 1e-6:
                                return found + detector.flush()
                            continue
                        small = reformatter.reformat(frame, width=width, height=height,
                                                     format="rgb24",
                                                     interpolation="FAST_BILINEAR")
                        found += detector.push(pushed, small.to_ndarray())
                        pushed += 1
        return found + detector.flush()

    # ---- frames in, colour out, in order, memory bounded
    def _push(self, frame: np.ndarray, pts: int) -> None:
        index = self.frames_read
        self.frames_read += 1
        restart = self.breaks(index)
        self.incoming.append(_Held(index, frame, pts - round(self.offset_s / self.tb), restart))
        self._note_held()
        if len(self.incoming) >= self.cfg.batch_size:
            self._read_in()
            self._colour_waiting(self.cfg.batch_size)

    def _note_held(self, extra: int = 0) -> None:
        self.max_held = max(self.max_held, len(self.incoming) + len(self.held) + extra)

    def _L(self, frames: list[_Held]) -> torch.Tensor:
        """Full-resolution L (B, 1, H, W) of decoded frames, on the device."""
        arr = torch.from_numpy(np.stack([f.image for f in frames]))
        return self.c.grey_to_L(arr) if self.grey else self.c.rgb_to_L(arr)

    def _read_in(self) -> None:
        """Decide which of the decoded frames are keyframes; L at the network's size for
        them, and the flow to the previous frame for every frame when flow is used."""
        batch, self.incoming = self.incoming, []
        with self.stages("colour"):
            L_work = self.c.to_work(self._L(batch))  # (B, 1, h, w)
            u8 = L_to_u8(L_work) if self.uses_flow else None  # (B, h, w)
        for j, f in enumerate(batch):
            if f.restart:
                self.segment_start = f.index
            f.key = is_keyframe(f.index, self.segment_start, self.interval, self.breaks)
            if f.key:
                f.L_work = L_work[j].clone()
            if u8 is not None:
                f.u8 = u8[j].copy()
                if not f.restart and self.prev_u8 is not None:
                    with self.stages("flow"):
                        f.link = link(self.flow, self.prev_u8, f.u8)
                self.prev_u8 = f.u8
            self.held.append(f)

    def _colour_waiting(self, at_least: int) -> None:
        """Run the network on waiting keyframes, ``batch_size`` at a time, while at least
        ``at_least`` wait; write every frame whose colour is then known."""
        while True:
            waiting = [f for f in self.held if f.key and f.ab is None]
            if not waiting or len(waiting) < at_least:
                return
            self._network(waiting[: self.cfg.batch_size])
            self._resolve()

    def _network(self, frames: list[_Held]) -> None:
        """ab of ``frames`` by the network (their L at working size, kept or recomputed)."""
        with self.stages("colour"):
            missing = [f for f in frames if f.L_work is None]
            if missing:
                for f, L in zip(missing, self.c.to_work(self._L(missing)), strict=True):
                    f.L_work = L
            L_work = torch.stack([f.L_work for f in frames])  # (B, 1, h, w)
        with self.stages("network"):
            ab = self.c.predict_ab(L_work)  # (B, 2, h/4, w/4)
        with self.stages("colour"):
            maps = ab_to_hwc(ab, tuple(L_work.shape[-2:]))  # (B, h, w, 2)
        for f, m in zip(frames, maps, strict=True):
            f.ab, f.L_work = m, None
        self.network_frames += len(frames)

    def _resolve(self) -> None:
        """Write the frames at the front whose colour is known: keyframes, and the frames
        between two keyframes (carried from both by flow; by the network where the flow
        reaches too little of the picture)."""
        ready: list[_Held] = []
        while self.held:
            front = self.held[0]
            if front.ab is not None:
                ready.append(self.held.popleft())
                self.anchor = front.ab  # only keyframes have ab before they are written
                continue
            right = next((n for n, f in enumerate(self.held) if f.key), None)
            if right is None or self.held[right].ab is None:
                break
            group = [self.held.popleft() for _ in range(right)]
            ready.extend(self._propagate(group, self.held[0]))
        if ready:
            self._note_held(len(ready))
            self._write(ready)

    def _propagate(self, group: list[_Held], right: _Held) -> list[_Held]:
        assert self.anchor is not None and all(f.link is not None for f in group)
        with self.stages("flow"):
            carried = propagate(self.anchor, right.ab, [f.link for f in group] + [right.link])
        unreliable = []
        for f, p in zip(group, carried, strict=True):
            f.ab = p.ab
            if p.coverage < MIN_COVERAGE:
                unreliable.append(f)
        for i in range(0, len(unreliable), self.cfg.batch_size):
            self._network(unreliable[i : i + self.cfg.batch_size])
        self.fallbacks += len(unreliable)
        return group

    def _finish(self) -> None:
        """At the end of the range: the last frame is a keyframe; colour everything."""
        if self.incoming:
            self._read_in()
        if self.held and not self.held[-1].key:
            self.held[-1].key = True
        self._colour_waiting(1)

    def _write(self, frames: list[_Held]) -> None:
        """Smooth (if asked), compose with the full-resolution L, encode, in order."""
        step = self.cfg.batch_size
        for i in range(0, len(frames), step):
            chunk = frames[i : i + step]
            if self.smoothing:
                with self.stages("flow"):
                    for f in chunk:
                        f.ab = self.smoother(f.ab, f.link, f.restart)
            if self.observe_ab is not None:
                for f in chunk:
                    self.observe_ab(f.index, f.ab)
            with self.stages("colour"):
                L = self._L(chunk)
                ab = hwc_to_ab([f.ab for f in chunk]).to(L.device)
                rgb = self.c.compose(L, ab).numpy()
            with self.stages("encode"):
                for f, image in zip(chunk, rgb, strict=True):
                    self._encode(image, f.pts)
            self.frames += len(chunk)

    def _encode(self, rgb: np.ndarray, pts: int) -> None:
        if self.yuv420:
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420),
                                               format="yuv420p")
        else:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p")
        frame.pts = pts
        frame.time_base = self.tb
        for packet in self.vout.encode(frame):
            self.out.mux(packet)
