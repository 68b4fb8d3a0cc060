"""Decoding a film once, streaming, with PyAV: the only module that imports `av`.

Every frame becomes a `DecodedFrame` that carries a small RGB copy for analysis
(shot detection, sharpness) and keeps the decoder's own frame (YUV, refcounted) so that
the few frames that are sampled can be converted to full-resolution RGB later, without a
second decode. Nothing else is converted at full resolution.

A film that is corrupt or truncated in the middle is decoded as far as possible: packets
that fail to decode are counted (`FilmDecoder.decode_errors`) and skipped; a demuxer
error ends the film early and sets `FilmDecoder.truncated`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from filmdata.errors import ConfigError, FilmOpenError, NotAVideoError

log = logging.getLogger(__name__)

# AUTO (frame + slice threads) lets FFmpeg's own threads decode the next frames while
# Python analyses this one (PyAV holds the GIL while it decodes, so Python threads cannot
# do that): extract-frames ran ~20 % faster with it than with SLICE on the 2-core VM,
# while plain decoding is equally fast either way. Every type is tested not to hang and to
# give identical frames (tests/test_decode.py).
THREAD_TYPES = ("SLICE", "FRAME", "AUTO", "NONE")
# Containers whose duration FFmpeg estimates from the bit rate: too rough to tell a
# file cut short from a full one.
ESTIMATED_DURATION_FORMATS = frozenset({"mpeg", "mpegts", "mpegvideo"})


@dataclass(frozen=True)
class DecodeConfig:
    thread_type: str = "AUTO"  # one of THREAD_TYPES
    threads: int = 0  # FFmpeg decode threads; 0: FFmpeg's choice (cores + 1)
    deinterlace: bool = True  # blend the fields of interlaced frames that are converted

    def __post_init__(self) -> None:
        if self.thread_type not in THREAD_TYPES:
            raise ConfigError(f"thread type {self.thread_type!r}: choose one of {THREAD_TYPES}")
        if self.threads < 0:
            raise ConfigError(f"decode threads {self.threads}: give 0 (automatic) or more")


@dataclass(frozen=True)
class FilmInfo:
    """What the container says about the film's first video stream."""

    path: str
    width: int  # coded pixels
    height: int
    display_width: int  # after the sample aspect ratio (anamorphic DVDs)
    fps: float  # average frame rate; VFR films use pts, not this
    duration_s: float | None
    frame_count_estimate: int | None
    codec: str
    pix_fmt: str
    has_audio: bool


class DecodedFrame:
    """One decoded frame: its number, time, a small RGB copy and the full frame on demand."""

    __slots__ = ("_deinterlace", "_display_width", "_frame", "index", "pts_s", "small")

    def __init__(
        self,
        index: int,
        pts_s: float,
        small: np.ndarray,
        frame: av.VideoFrame,
        display_width: int,
        deinterlace: bool,
    ) -> None:
        self.index = index  # 0-based decoded-frame number
        self.pts_s = pts_s  # presentation time, seconds from the stream start
        self.small = small  # (h, analysis_width, 3) uint8 RGB
        self._frame: av.VideoFrame | None = frame
        self._display_width = display_width
        self._deinterlace = deinterlace

    def full(self) -> np.ndarray:
        """Full-resolution RGB, (H, W_display, 3) uint8. Only call it for frames you keep."""
        if self._frame is None:
            raise RuntimeError(f"frame {self.index} was released before conversion")
        rgb = self._frame.to_ndarray(format="rgb24")
        if self._deinterlace and self._frame.interlaced_frame:
            rgb = blend_fields(rgb)
        if rgb.shape[1] != self._display_width:
            shrink = self._display_width < rgb.shape[1]
            interpolation = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
            rgb = cv2.resize(rgb, (self._display_width, rgb.shape[0]), interpolation=interpolation)
        return rgb

    def release(self) -> None:
        """Drop the decoder frame (its YUV buffers) once it is not a candidate any more."""
        self._frame = None


def blend_fields(rgb: np.ndarray) -> np.ndarray:
    """Deinterlace by blending each line with its neighbours, (H, W, 3) -> (H, W, 3).

    A vertical [1, 2, 1] / 4 filter: it removes combing on motion at the cost of a little
    vertical sharpness, which suits training frames better than either field alone.
    """
    kernel = np.array([[0.25], [0.5], [0.25]], dtype=np.float32)
    return cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_REFLECT)


class FilmDecoder:
    """Open a film, check it has video, and stream its frames once.

    Use as a context manager::

        with FilmDecoder(path, DecodeConfig()) as dec:
            for frame in dec.frames():
                ...
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        cfg: DecodeConfig = DecodeConfig(),
        analysis_width: int = 256,  # pixels; width of the small frames for analysis
    ) -> None:
        self.path = Path(path)
        self.cfg = cfg
        self.analysis_width = analysis_width
        self.decode_errors = 0  # packets that failed to decode
        self.truncated = False  # stopped before the end: demuxer error or a file cut short
        self.frames_decoded = 0
        self._container = _open_container(self.path)
        try:
            self._stream = _video_stream(self._container, self.path)
            self._stream.thread_type = cfg.thread_type
            self._stream.codec_context.thread_count = cfg.threads
            self.info = _film_info(self._container, self._stream, self.path)
        except BaseException:
            self._container.close()
            raise

    def __enter__(self) -> FilmDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def frames(self) -> Iterator[DecodedFrame]:
        """Every decodable frame in presentation order, numbered from 0."""
        small_w, small_h = analysis_size(self.info, self.analysis_width)
        fallback_rate = Fraction(self.info.fps or 25.0).limit_denominator(1001)
        # One reformatter for the film keeps its scaler context: 4x cheaper per frame
        # than frame.reformat(), which builds a new one every call.
        reformatter = VideoReformatter()
        for frame in self._decoded_frames():
            index = self.frames_decoded
            self.frames_decoded += 1
            # Streams without timestamps (some AVI/MPEG-2) fall back to the frame rate.
            pts_s = float(frame.time) if frame.time is not None else float(index / fallback_rate)
            small = reformatter.reformat(
                frame, width=small_w, height=small_h, format="rgb24",
                interpolation="FAST_BILINEAR",
            ).to_ndarray()
            yield DecodedFrame(
                index, pts_s, small, frame, self.info.display_width, self.cfg.deinterlace
            )

    def _decoded_frames(self) -> Iterator[av.VideoFrame]:
        last_time = 0.0
        for frame in self._demuxed_frames():
            last_time = frame.time if frame.time is not None else last_time
            yield frame
        if self._ends_early(last_time):
            self.truncated = True
            log.warning("%s: frames end at %.1f s of %.1f s", self.path, last_time,
                        self.info.duration_s)

    def _ends_early(self, last_time: float) -> bool:
        """Whether the frames stop well before the duration the container declares
        (a file cut short: its header still tells the full length)."""
        duration = self.info.duration_s
        if not duration or not self.frames_decoded:
            return False
        if self._container.format.name in ESTIMATED_DURATION_FORMATS:
            return False
        return last_time < duration - max(1.0, 0.02 * duration)

    def _demuxed_frames(self) -> Iterator[av.VideoFrame]:
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as exc:
                self.truncated = True
                log.warning("%s: demuxing stopped early: %s", self.path, exc)
                yield from self._flush()
                return
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                self.decode_errors += 1
                continue
            yield from decoded

    def _flush(self) -> Iterator[av.VideoFrame]:
        try:
            yield from self._stream.codec_context.decode(None)
        except av.FFmpegError:
            self.decode_errors += 1


def analysis_size(info: FilmInfo, analysis_width: int) -> tuple[int, int]:
    """(width, height) of the analysis frames: `analysis_width` wide (never upscaled),
    display aspect kept, both even."""
    width = min(analysis_width, info.display_width)
    height = round(info.height * width / info.display_width)
    return max(2, width - width % 2), max(2, height - height % 2)


def probe(path: str | os.PathLike[str]) -> FilmInfo:
    """Open, check and describe a film without decoding it."""
    with FilmDecoder(path) as dec:
        return dec.info


def _open_container(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise FilmOpenError(f"{path}: no such file")
    if path.is_dir():
        raise FilmOpenError(f"{path}: is a directory; give a film file (or use build-dataset)")
    if path.stat().st_size == 0:
        raise NotAVideoError(f"{path}: file is empty (0 bytes)")
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise NotAVideoError(f"{path}: not a readable video file ({exc.strerror})") from exc
    except OSError as exc:
        raise FilmOpenError(f"{path}: cannot open ({exc.strerror or exc})") from exc


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    streams = [s for s in container.streams.video if s.codec_context is not None]
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise NotAVideoError(f"{path}: has no video stream (found: {', '.join(kinds)})")
    stream = streams[0]
    if not stream.codec_context.width or not stream.codec_context.height:
        raise NotAVideoError(f"{path}: video stream has no frame size; the file is damaged")
    return stream


def _film_info(
    container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> FilmInfo:
    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    duration_s: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / av.time_base
    estimate = stream.frames or (round(duration_s * fps) if duration_s and fps else None)
    sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
    display_width = ctx.width
    if sar and sar > 0 and sar != 1:
        display_width = round(ctx.width * float(sar) / 2) * 2
    return FilmInfo(
        path=str(path),
        width=ctx.width,
        height=ctx.height,
        display_width=display_width,
        fps=fps,
        duration_s=duration_s,
        frame_count_estimate=estimate or None,
        codec=ctx.name,
        pix_fmt=ctx.pix_fmt or "unknown",
        has_audio=bool(container.streams.audio),
    )
