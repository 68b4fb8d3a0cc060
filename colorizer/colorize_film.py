"""Colorize a film: stream-decode with PyAV, colorize in batches, re-encode with libx264.

One pass over the source; memory stays bounded whatever the film's length: at most one
batch of decoded frames is held (plus the encoder's lookahead and the muxer's small
interleaving buffer of audio packets).

- Video: every frame of the chosen range is decoded (grey sources as ``gray``, others as
  ``rgb24``, L taken from the RGB), colorized with its own full-resolution L, converted to
  YUV 4:2:0 (BT.601, limited range, tagged as such) and encoded with libx264 (``crf``,
  ``preset``) with the source's frame timestamps and frame rate.
- Audio: the first audio stream is copied packet by packet, unchanged (no re-encoding);
  the output is MP4 unless that codec cannot go into MP4, then Matroska.
- Range: ``start_s`` / ``end_s`` colorize [start, end) only (seek to the keyframe before
  start, decode from there, drop earlier frames); audio packets of that span are copied
  and every timestamp is shifted so that the output starts at 0.
- Temporal smoothing (``smooth_s`` > 0): an exponential moving average of the predicted ab
  (at the network's 1/4 resolution) with time constant ``smooth_s``, reset at every cut
  found by PySceneDetect's ``ContentDetector`` on the luma of 64-pixel-wide thumbnails.
  Less flicker of colours from frame to frame; the price is colour lag: on fast motion the
  colour of a moving object trails it (ghosting) for about ``smooth_s``, and dissolves (no
  hard cut) carry the old shot's colours into the new one for that long.

The output is written under a temporary name beside the target (`colorizer.outputs`, the
extension kept for the muxer) and renamed at the end; an exception or Ctrl-C removes the
temporary file. A damaged film is colorized as far as it decodes: packets that fail to
decode are skipped and counted, and a demuxer error or frames that stop before the duration
the container declares mark it truncated (`FilmResult.warnings()` says so in one line).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
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

log = logging.getLogger(__name__)

# Audio codecs that the MP4 muxer takes as they are; anything else goes into Matroska.
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac", "mp2"})
_THUMB_WIDTH = 64
_BT601 = {"colorspace": 6, "color_primaries": 6, "color_trc": 6, "color_range": 1}
# Containers whose duration is a bitrate estimate: a short stream is no sign of damage.
ESTIMATED_DURATION_FORMATS = frozenset({"mpeg", "mpegts", "mpegvideo"})


@dataclass
class FilmResult:
    output: Path
    frames: int
    audio: bool
    decode_errors: int = 0  # packets that failed to decode (skipped)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    truncated: bool = False  # the stream ended before the film's declared end (cut short)
    ended_at_s: float | None = None  # when truncated: the last frame's time
    duration_s: float | None = None  # when truncated: the duration the container declares

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


class _Stages:
    """Seconds spent per stage (decode, model, colour, encode); CUDA synchronised."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.seconds: dict[str, float] = {"decode": 0.0, "model": 0.0, "colour": 0.0,
                                          "encode": 0.0}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            self.seconds[name] += time.perf_counter() - t0


class CutDetector:
    """Hard cuts from PySceneDetect's ContentDetector on the luma of small thumbnails.

    ``push(grey_or_rgb)`` returns True when that frame starts a new shot. Frame to frame, so
    it reports a cut at once (no lookahead), which is what a streaming EMA needs.
    """

    def __init__(self, threshold: float, fps: float) -> None:
        from scenedetect import FrameTimecode
        from scenedetect.detectors import ContentDetector

        self._timecode = FrameTimecode
        self._fps = float(fps)
        self._detector = ContentDetector(threshold=threshold, min_scene_len=0, luma_only=True)
        self._index = 0

    def push(self, frame: np.ndarray) -> bool:
        h, w = frame.shape[:2]
        tw = min(_THUMB_WIDTH, w)
        th = max(1, round(h * tw / w))
        thumb = cv2.resize(frame, (tw, th), interpolation=cv2.INTER_AREA)
        if thumb.ndim == 2:
            thumb = cv2.cvtColor(thumb, cv2.COLOR_GRAY2BGR)
        else:
            thumb = cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR)
        cuts = self._detector.process_frame(self._timecode(self._index, fps=self._fps), thumb)
        first = self._index == 0
        self._index += 1
        return first or bool(cuts)


class AbSmoother:
    """EMA of ab over time: ab_t = a * ab_(t-1) + (1 - a) * pred_t, a = exp(-1 / (tau * fps)),
    restarted at each cut."""

    def __init__(self, smooth_s: float, fps: float) -> None:
        self.alpha = math.exp(-1.0 / (smooth_s * fps)) if smooth_s > 0 else 0.0
        self.state: torch.Tensor | None = None

    def __call__(self, ab: torch.Tensor, cuts: list[bool]) -> torch.Tensor:
        out = []
        for i, cut in enumerate(cuts):
            if self.state is None or cut or self.alpha == 0:
                self.state = ab[i]
            else:
                self.state = self.alpha * self.state + (1 - self.alpha) * ab[i]
            out.append(self.state)
        return torch.stack(out)


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
) -> FilmResult:
    """Colorize one film file into ``cfg.out``; see the module docstring."""
    source = Path(source)
    with _open_input(source) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        acodec = audio.codec_context.name if audio is not None else None
        suffix = ".mp4" if acodec is None or acodec in MP4_AUDIO else ".mkv"
        target = output_path(cfg.out, source, suffix, taken if taken is not None else set())
        # the temporary file keeps the extension: PyAV picks the muxer by it
        with atomic_output(target, target.suffix) as tmp:
            with av.open(str(tmp), "w") as out:
                result = _Transcoder(colorizer, container, out, cfg, source.name).run()
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
                 name: str) -> None:
        self.c = colorizer
        self.cfg = cfg
        self.container = container
        self.out = out
        self.name = name
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
        self.smoother = AbSmoother(cfg.smooth_s, float(self.rate))
        self.cuts = CutDetector(cfg.cut_threshold, float(self.rate)) if cfg.smooth_s else None
        self.pending: list[tuple[np.ndarray, int, bool]] = []
        self.frames = 0
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
    def run(self) -> FilmResult:
        from tqdm import tqdm

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
            self._flush_batch()
            with self.stages("encode"):
                for p in self.vout.encode(None):
                    self.out.mux(p)
        finally:
            bar.close()
        duration = self._declared_duration()
        if not video_done and self._ends_early(duration):
            self.truncated = True
        return FilmResult(Path(), self.frames, self.aout is not None, self.decode_errors,
                          dict(self.stages.seconds), self.truncated, self.last_s,
                          duration)

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

    def _push(self, frame: np.ndarray, pts: int) -> None:
        cut = self.cuts.push(frame) if self.cuts is not None else False
        self.pending.append((frame, pts - round(self.offset_s / self.tb), cut))
        if len(self.pending) >= self.cfg.batch_size:
            self._flush_batch()

    def _flush_batch(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        c = self.c
        with self.stages("colour"):
            arr = torch.from_numpy(np.stack([f for f, _, _ in batch]))
            L = c.grey_to_L(arr) if self.grey else c.rgb_to_L(arr)
        with self.stages("model"):
            ab = c.predict_ab(L)
        with self.stages("colour"):
            if self.cfg.smooth_s > 0:
                ab = self.smoother(ab, [cut for _, _, cut in batch])
            rgb = c.compose(L, ab).numpy()
        with self.stages("encode"):
            for (_, pts, _), image in zip(batch, rgb, strict=True):
                self._encode(image, pts)
        self.frames += len(batch)

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
