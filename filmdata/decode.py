"""Decoding a film once, streaming, with PyAV (the filmdata module that reads films).

Every frame becomes a `DecodedFrame` that carries a small RGB copy for analysis
(shot detection, sharpness) and keeps the decoder's own frame (YUV, refcounted) so that
the few frames that are sampled can be converted to full-resolution RGB later, without a
second decode. Nothing else is converted at full resolution.

Frames come out as they are meant to be seen: anamorphic pixels resized to the display
aspect, rotated by the stream's display matrix (a phone clip flagged -90 degrees comes
out upright), and, once `FilmDecoder.crop` is set, without letterbox or pillarbox bars.

Before the pass, `FilmDecoder.survey` looks at a few dozen frames spread over the film by
seeking to keyframes (decoding nothing else), so that what belongs to the whole film (its
fade, black level and bars) is known before the first shot is finished.

A film that is corrupt or truncated in the middle is decoded as far as possible: packets
that fail to decode are counted (`FilmDecoder.decode_errors`) and skipped; a demuxer
error ends the film early and sets `FilmDecoder.truncated`.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from filmdata.errors import ConfigError, FilmOpenError, NotAVideoError
from filmdata.validate import check_fields

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
        check_fields(self)
        if self.thread_type not in THREAD_TYPES:
            raise ConfigError(f"thread type {self.thread_type!r}: choose one of {THREAD_TYPES}")
        if self.threads < 0:
            raise ConfigError(f"decode threads {self.threads}: give 0 (automatic) or more")


@dataclass(frozen=True)
class Crop:
    """Pixels cut from each side of the displayed frame (letterbox and pillarbox bars)."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.top or self.bottom or self.left or self.right)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """The frame (h, w, ...) without the cropped margins (a view, not a copy)."""
        h, w = rgb.shape[:2]
        return rgb[self.top : h - self.bottom, self.left : w - self.right]

    def scaled(self, size: tuple[int, int], to: tuple[int, int]) -> Crop:
        """This crop of a frame of `size` (w, h) for the same frame resized to `to` (w, h):
        rounded outwards, so that no bar pixel survives the resize."""
        sx, sy = to[0] / size[0], to[1] / size[1]
        return Crop(math.ceil(self.top * sy), math.ceil(self.bottom * sy),
                    math.ceil(self.left * sx), math.ceil(self.right * sx))


@dataclass(frozen=True)
class FilmInfo:
    """What the container says about the film's first video stream."""

    path: str
    width: int  # coded pixels
    height: int
    display_width: int  # after the sample aspect ratio (anamorphic DVDs), before rotation
    fps: float  # average frame rate; VFR films use pts, not this
    duration_s: float | None
    frame_count_estimate: int | None
    codec: str
    pix_fmt: str
    has_audio: bool
    rotation: int = 0  # degrees counter-clockwise applied for display: 0, 90, 180 or 270

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of the displayed frame: display aspect, then rotation."""
        if self.rotation in (90, 270):
            return self.height, self.display_width
        return self.display_width, self.height


class DecodedFrame:
    """One decoded frame: its number, time, a small RGB copy and the full frame on demand."""

    __slots__ = ("_frame", "_view", "index", "pts_s", "small")

    def __init__(
        self, index: int, pts_s: float, small: np.ndarray, frame: av.VideoFrame, view: _View
    ) -> None:
        self.index = index  # 0-based decoded-frame number
        self.pts_s = pts_s  # presentation time, seconds from the stream start
        self.small = small  # (h, <= analysis_width, 3) uint8 RGB, rotated and cropped
        self._frame: av.VideoFrame | None = frame
        self._view = view

    def full(self) -> np.ndarray:
        """Full-resolution RGB as displayed, (H, W, 3) uint8: display aspect, rotation and
        crop applied. Only call it for frames you keep."""
        if self._frame is None:
            raise RuntimeError(f"frame {self.index} was released before conversion")
        return self._view.full(self._frame)

    def release(self) -> None:
        """Drop the decoder frame (its YUV buffers) once it is not a candidate any more."""
        self._frame = None


@dataclass(frozen=True)
class _View:
    """How a decoded frame becomes the displayed one: fields, pixel aspect, rotation, crop."""

    display_width: int  # after the pixel aspect, before rotation
    rotation: int  # degrees counter-clockwise, a multiple of 90
    crop: Crop  # in displayed (rotated) pixels
    deinterlace: bool

    def full(self, frame: av.VideoFrame) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")  # (h, w, 3) coded pixels
        if self.deinterlace and frame.interlaced_frame:
            rgb = blend_fields(rgb)
        if rgb.shape[1] != self.display_width:
            shrink = self.display_width < rgb.shape[1]
            interpolation = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
            rgb = cv2.resize(rgb, (self.display_width, rgb.shape[0]), interpolation=interpolation)
        return np.ascontiguousarray(self.crop.apply(rotate(rgb, self.rotation)))


def rotate(rgb: np.ndarray, degrees: int) -> np.ndarray:
    """Rotate (h, w, ...) counter-clockwise by `degrees` (a multiple of 90): a view."""
    return np.rot90(rgb, k=(degrees // 90) % 4) if degrees % 360 else rgb


def frame_rotation(frame: av.VideoFrame) -> int:
    """Degrees counter-clockwise the display matrix turns this frame: 0, 90, 180 or 270."""
    try:
        degrees = frame.rotation
    except (AttributeError, ValueError):  # no display matrix
        return 0
    return round(degrees / 90.0) * 90 % 360


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
        self.crop = Crop()  # bars to cut from every frame; set before frames()

    def __enter__(self) -> FilmDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def frames(self) -> Iterator[DecodedFrame]:
        """Every decodable frame in presentation order, numbered from 0."""
        info = self.info
        small_w, small_h = analysis_size(info, self.analysis_width)  # displayed, uncropped
        small_crop = self.crop.scaled(info.display_size, (small_w, small_h))
        if info.rotation in (90, 270):  # the scaler works in coded orientation
            small_w, small_h = small_h, small_w
        view = _View(info.display_width, info.rotation, self.crop, self.cfg.deinterlace)
        fallback_rate = Fraction(info.fps or 25.0).limit_denominator(1001)
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
            ).to_ndarray()  # (small_h, small_w, 3)
            if info.rotation or not small_crop.is_empty:
                small = np.ascontiguousarray(small_crop.apply(rotate(small, info.rotation)))
            yield DecodedFrame(index, pts_s, small, frame, view)

    def survey(
        self, n: int, *, width: int = 512, max_sequential_frames: int = 1500
    ) -> list[np.ndarray]:
        """Up to `n` frames spread over the film, for what belongs to the whole film (fade,
        black level, bars): RGB uint8 as displayed (display aspect, rotated, not cropped),
        at most `width` pixels wide.

        Seeks to `n` evenly spaced times and decodes only the keyframe found there (the
        container's index says where they are), so it costs a few dozen keyframe decodes
        whatever the film's length. A short film with fewer keyframes than that (one
        keyframe per clip is common) is decoded through instead, if it has at most
        `max_sequential_frames` frames. A film that cannot be sought gives what it gives.
        """
        if n <= 0:
            return []
        reformatter, size = self._survey_sizes(width)

        def convert(frame: av.VideoFrame) -> np.ndarray:
            return self._survey_frame(frame, reformatter, size)

        try:
            with av.open(str(self.path), mode="r", metadata_errors="ignore") as container:
                stream = container.streams[self._stream.index]
                self._set_threads(stream, seeking=True)
                small = _keyframes_at(container, stream, self.info, n, convert)
            estimate = self.info.frame_count_estimate or 0
            if len(small) < min(n, 16) and estimate <= max_sequential_frames:
                with av.open(str(self.path), mode="r", metadata_errors="ignore") as container:
                    stream = container.streams[self._stream.index]
                    self._set_threads(stream, seeking=False)
                    small = _evenly_spaced(container, stream, n, estimate, convert)
        except (av.FFmpegError, OSError) as exc:
            log.warning("%s: could not survey the film (%s)", self.path, exc)
            return []
        return small

    def _set_threads(self, stream: av.VideoStream, *, seeking: bool) -> None:
        """The pass's decode threads for a survey stream; no frame threads when seeking
        (each seek would wait for a frame per thread)."""
        thread_type = self.cfg.thread_type
        if seeking and thread_type in ("FRAME", "AUTO"):
            thread_type = "SLICE"
        stream.thread_type = thread_type
        stream.codec_context.thread_count = self.cfg.threads

    def _survey_sizes(self, width: int) -> tuple[VideoReformatter, tuple[int, int]]:
        """A scaler and the coded-orientation size it makes survey frames at."""
        w, h = analysis_size(self.info, width)
        return VideoReformatter(), ((h, w) if self.info.rotation in (90, 270) else (w, h))

    def _survey_frame(
        self, frame: av.VideoFrame, reformatter: VideoReformatter, size: tuple[int, int]
    ) -> np.ndarray:
        rgb = reformatter.reformat(frame, width=size[0], height=size[1], format="rgb24",
                                   interpolation="AREA").to_ndarray()
        return np.ascontiguousarray(rotate(rgb, self.info.rotation))

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


def _keyframes_at(
    container: av.container.InputContainer, stream: av.VideoStream, info: FilmInfo, n: int,
    convert: Callable[[av.VideoFrame], np.ndarray],
) -> list[np.ndarray]:
    """The keyframe at or before each of `n` evenly spaced times, each decoded once and
    converted at once (a decoded frame is a full-size YUV picture: none is held)."""
    if not info.duration_s or stream.time_base is None:
        return []
    span = int(info.duration_s / stream.time_base)  # stream time_base units
    indexed = sorted(e.timestamp for e in stream.index_entries if e.is_keyframe)
    if indexed:  # the container's index (MP4, MKV cues) says where the keyframes are
        targets = sorted({indexed[max(0, bisect.bisect_right(indexed, t) - 1)]
                          for t in _spread(indexed[0], span, n)})
    else:
        targets = _spread(stream.start_time or 0, span, n)
    stream.codec_context.skip_frame = "NONKEY"  # the decoder drops every other frame
    found: dict[int, np.ndarray] = {}
    for target in targets:
        try:
            container.seek(target, stream=stream, backward=True)
            stream.codec_context.flush_buffers()
            frame = _first_keyframe(container, stream)
        except av.FFmpegError:
            continue
        if frame is not None and frame.pts is not None and frame.pts not in found:
            found[frame.pts] = convert(frame)
    return [found[pts] for pts in sorted(found)]


def _first_keyframe(
    container: av.container.InputContainer, stream: av.VideoStream
) -> av.VideoFrame | None:
    """Decode the first keyframe packet from here; drain the decoder rather than wait for
    the frames that a reordering delay (B-frames) would otherwise need."""
    for packet in container.demux(stream):
        if packet.is_keyframe and packet.size:
            frames = packet.decode() or stream.codec_context.decode(None)
            return frames[0] if frames else None
    return None


def _spread(start: int, span: int, n: int) -> list[int]:
    """`n` evenly spaced timestamps over [start, start + span), at the middle of each part."""
    return [start + int((k + 0.5) * span / n) for k in range(n)]


def _evenly_spaced(
    container: av.container.InputContainer, stream: av.VideoStream, n: int, estimate: int,
    convert: Callable[[av.VideoFrame], np.ndarray],
) -> list[np.ndarray]:
    """`n` frames evenly spaced over a short film, decoding it through once."""
    step = max(1, estimate // n)
    frames = [convert(f) for i, f in enumerate(_decode_video(container, stream))
              if i % step == step // 2]
    return frames[:: max(1, len(frames) // n)][:n]


def _decode_video(
    container: av.container.InputContainer, stream: av.VideoStream
) -> Iterator[av.VideoFrame]:
    """Decoded frames of `stream`, skipping packets that fail to decode."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.FFmpegError:
            continue


def analysis_size(info: FilmInfo, analysis_width: int) -> tuple[int, int]:
    """(width, height) of the analysis frames as displayed (rotated, uncropped):
    `analysis_width` wide (never upscaled), display aspect kept, both even."""
    display_w, display_h = info.display_size
    width = min(analysis_width, display_w)
    height = round(display_h * width / display_w)
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
    if is_still_image_format(container.format.name):
        raise NotAVideoError(
            f"{path}: a still image ({container.format.name.removesuffix('_pipe')}), not a "
            "film; give folders of still images to build-dataset"
        )
    streams = [s for s in container.streams.video if s.codec_context is not None]
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise NotAVideoError(f"{path}: has no video stream (found: {', '.join(kinds)})")
    stream = streams[0]
    if not stream.codec_context.width or not stream.codec_context.height:
        raise NotAVideoError(f"{path}: video stream has no frame size; the file is damaged")
    return stream


def is_still_image_format(format_name: str) -> bool:
    """FFmpeg's demuxers of still images: image2 (files by pattern) and the *_pipe ones
    (png_pipe, jpeg_pipe, ...): what a photo renamed to .mp4 opens as."""
    return format_name in ("image2", "image2pipe") or format_name.endswith("_pipe")


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
        rotation=_stream_rotation(path, stream.index),
    )


def _stream_rotation(path: Path, index: int) -> int:
    """The display rotation of a video stream, read from its first decodable frame (the
    display matrix travels as frame side data), on a container of its own."""
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            stream = container.streams[index]
            stream.thread_type = "SLICE"  # no frame-thread delay for one frame
            frame = next(_decode_video(container, stream), None)
    except (av.FFmpegError, OSError):
        return 0
    return frame_rotation(frame) if frame is not None else 0
