"""Streaming shot detection: frames in order in, final transitions out.

`ShotDetector` is fed small RGB frames (``push``) and hands them to the ``film`` method
(`shotdetect.film`) or to a plain PySceneDetect detector through its ``process_frame`` API;
PySceneDetect never opens the film. Both halves of filmcolor use it: extract-frames cuts a
film into shots with it, and colorize restarts its temporal smoothing and keyframes at the
same cuts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from scenedetect import FrameTimecode
from scenedetect.detectors import (
    AdaptiveDetector,
    ContentDetector,
    HashDetector,
    HistogramDetector,
    ThresholdDetector,
)

from shotdetect.errors import DetectorError
from shotdetect.film import _CONTENT_PROPOSAL, _FilmDetector

DETECTORS: tuple[str, ...] = ("film", "content", "adaptive", "threshold", "histogram", "hash")
ANALYSIS_WIDTH = 256  # pixels: the width of the frames the defaults were chosen on



# The range of `threshold` per detector: scores on 0-255 levels, except the histogram
# and hash detectors' normalised distances (0-1).
THRESHOLD_RANGES: dict[str, tuple[float, float]] = {
    "film": (0.0, 255.0), "content": (0.0, 255.0), "adaptive": (0.0, 255.0),
    "threshold": (0.0, 255.0), "histogram": (0.0, 1.0), "hash": (0.0, 1.0),
}
MAX_MIN_SHOT_S = 30.0  # min_shot_s bounds the detector's lag, and so its memory


class DetectorSettings(Protocol):
    """What `ShotDetector` reads of a config (filmdata's ShotConfig, colorize's settings)."""

    @property
    def detector(self) -> str: ...  # one of DETECTORS
    @property
    def threshold(self) -> float | None: ...  # None: the detector's tuned default
    @property
    def min_shot_s(self) -> float: ...  # shortest shot, seconds


@dataclass(frozen=True)
class Settings:
    """The default settings: the ``film`` method at its tuned threshold, shots >= 0.6 s."""

    detector: str = "film"
    threshold: float | None = None
    min_shot_s: float = 0.6


def analysis_frame(frame: np.ndarray, width: int = ANALYSIS_WIDTH) -> np.ndarray:
    """A decoded frame, (H, W) grey or (H, W, 3) RGB uint8, as the detector wants it:
    (h, width, 3) RGB, shrunk with area averaging (never enlarged)."""
    h, w = frame.shape[:2]
    if w > width:
        frame = cv2.resize(frame, (width, max(1, round(h * width / w))),
                           interpolation=cv2.INTER_AREA)
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(frame)


@dataclass(frozen=True)
class Transition:
    start: int  # first mixed frame; == end for a hard cut
    end: int  # exclusive
    peak: float = 0.0  # strength of the evidence (detector-specific units)

    @property
    def cut(self) -> int:
        """First frame of the new shot: the middle of a gradual transition."""
        return (self.start + self.end) // 2

    @property
    def is_hard_cut(self) -> bool:
        return self.start == self.end


def _scenedetect_detector(cfg: DetectorSettings, min_frames: int):
    """A plain PySceneDetect detector for ``cfg.detector`` (not 'film')."""
    kwargs = {} if cfg.threshold is None else {"threshold": cfg.threshold}
    if cfg.detector == "content":
        return ContentDetector(min_scene_len=min_frames, **kwargs)
    if cfg.detector == "adaptive":
        extra = {} if cfg.threshold is None else {"adaptive_threshold": cfg.threshold}
        return AdaptiveDetector(min_scene_len=min_frames, **extra)
    if cfg.detector == "threshold":
        return ThresholdDetector(min_scene_len=min_frames, **kwargs)
    if cfg.detector == "histogram":
        return HistogramDetector(min_scene_len=min_frames, **kwargs)
    return HashDetector(min_scene_len=min_frames, **kwargs)


class ShotDetector:
    """Streaming shot detector: push every frame in order, then flush.

    Frames are RGB uint8 (h, w, 3), about ANALYSIS_WIDTH wide (`analysis_frame`), pushed
    as 0, 1, 2, ... Each call returns the transitions that became final; a transition is
    returned at most ``max_lag`` frames after its end frame.
    """

    def __init__(self, cfg: DetectorSettings, fps: float) -> None:
        if not fps > 0:
            raise DetectorError(f"fps must be positive, got {fps}")
        if cfg.detector not in DETECTORS:
            raise DetectorError(f"unknown shot detector {cfg.detector!r}; choose one of "
                                f"{', '.join(DETECTORS)}")
        self.cfg = cfg
        self.fps = fps
        self.min_frames = round(cfg.min_shot_s * fps)
        self._last_index = -1
        self._film: _FilmDetector | None = None
        if cfg.detector == "film":
            proposal = _CONTENT_PROPOSAL if cfg.threshold is None else cfg.threshold
            self._film = _FilmDetector(fps, proposal)
            self._pending: Transition | None = None
            self._last_cut = -(10**9)  # the last transition returned (the film's start is none)
        else:
            self._detector = _scenedetect_detector(cfg, self.min_frames)

    @property
    def max_lag(self) -> int:
        """Frames after a transition's end frame within which it is returned."""
        if self._film is not None:
            # A rival transition starting within min_frames of the cut may end up to
            # max_span later and is final `lag` frames after that.
            return self.min_frames + self._film.max_span + self._film.lag + 1
        return max(int(self._detector.event_buffer_length), 0) + 1

    # ------------------------------------------------------------------ public API

    def push(self, frame_index: int, rgb: np.ndarray) -> list[Transition]:
        if frame_index != self._last_index + 1:
            raise DetectorError(
                f"frames must be pushed in order: expected {self._last_index + 1}, "
                f"got {frame_index}"
            )
        self._last_index = frame_index
        if self._film is None:
            timecode = FrameTimecode(frame_index, fps=self.fps)
            cuts = self._detector.process_frame(timecode, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            return [Transition(c.frame_num, c.frame_num) for c in cuts]
        out: list[Transition] = []
        for e in self._film.push(frame_index, rgb):
            out.extend(self._offer(Transition(e.start, e.end, e.peak)))
        out.extend(self._release(self._film_horizon(frame_index)))
        return out

    def flush(self) -> list[Transition]:
        """Return the transitions still held back, at the end of the film."""
        if self._film is None:
            end = FrameTimecode(self._last_index + 1, fps=self.fps)
            return [Transition(c.frame_num, c.frame_num) for c in self._detector.post_process(end)]
        out: list[Transition] = []
        for e in self._film.flush():
            out.extend(self._offer(Transition(e.start, e.end, e.peak)))
        last, self._pending = self._pending, None
        if last is not None:  # the film's end is no transition: a short last shot stays
            out.append(last)
        return out

    # ------------------------------------------------------------------ minimum shot length

    def _film_horizon(self, index: int) -> int:
        """No transition found after ``index`` starts before this frame."""
        film = self._film
        assert film is not None
        return min([film.horizon(index), *(e.start for e in film.pending)])

    def _offer(self, found: Transition) -> list[Transition]:
        """Apply the minimum shot length between ``found`` and its neighbours."""
        if found.cut - self._last_cut < self.min_frames:
            return []
        pending = self._pending
        if pending is not None and found.cut - pending.cut < self.min_frames:
            if found.peak > pending.peak:
                self._pending = found
            return []
        self._pending = found
        if pending is None:
            return []
        self._last_cut = pending.cut
        return [pending]

    def _release(self, horizon: int) -> list[Transition]:
        """Emit the pending transition once no later one can fall within min_shot_s."""
        pending = self._pending
        if pending is None or horizon < pending.cut + self.min_frames:
            return []
        self._pending = None
        self._last_cut = pending.cut
        return [pending]
