"""Shot detection on the frames of our own decode, built on PySceneDetect's detectors.

This is the only module of the project that imports ``scenedetect``. PySceneDetect never
opens the film: :class:`ShotDetector` is fed the downscaled RGB frames of the one decode
(``push``), converts them to BGR and hands them to PySceneDetect detector objects through
their ``process_frame`` API.

Detectors (``ShotConfig.detector``):

``film`` (default, for film transfers)
    A windowed colour-histogram score, with PySceneDetect's ``ContentDetector`` placing
    hard cuts:

    1. *Frame signature*: a 32-pixel-wide thumbnail, divided by its own mean level (so
       flicker, exposure and night shots do not matter), as a soft-binned 4x4x4 RGB
       histogram (64 bins, each pixel shared between neighbouring bins so grain does not
       flip colours across a bin edge). Black frames (mean level < 6 of 255, the bottom of
       a fade) get no signature: the shots on either side of a fade meet directly.
    2. *Boundary score* ``b[j]`` for the boundary before frame ``j``: the histogram
       distance (half the L1 norm, 0-1) between the bin-wise *median* of the ``k``
       signatures before ``j`` and the median of the ``k`` from ``j`` on (``k`` odd, about
       0.45 s: 11 frames at 24 fps). A median ignores a flash shorter than ``k / 2``
       frames, so flashes make no boundary; colour histograms barely move under pans,
       zooms and shake but jump between shots; a dissolve or fade moves the medians apart
       too. Within shots ``b`` stays under about 0.08; transitions peak at 0.17-1.0.
    3. *Regions*: a run of boundaries with ``b >= threshold / 2`` whose peak reaches
       ``threshold`` (default 0.15) is one transition. A transition of ``n`` mixed frames
       makes ``b`` a trapezoid whose edges rise over ``min(n, k)`` boundaries and which is
       ``max(n, k)`` wide at half height; a hard cut is a ``k``-wide plateau with vertical
       edges. So the cut is the middle of the half-height span, and ``n`` is that width
       when it exceeds ``k``, else the edge length (``n <= 1``: a hard cut). A gradual
       transition's ``[start, end)`` is conservative: the run of high ``b`` widened by
       ``k // 2 + 2`` on each side, symmetric about the cut, so that it holds every mixed frame
       (and usually a few clean ones).
    4. *Hard cuts*: ``ContentDetector`` (HSV frame-to-frame difference, no minimum length,
       on the analysis frame at half size) proposes cut frames; a hard cut moves to a
       proposal within 2 frames, if any.
    5. *Minimum shot length*: of two transitions closer than ``min_shot_s``, the one with
       the higher peak wins; one closer than that to the start or the end of the film is
       dropped. Whatever ``min_shot_s`` says, a shot shorter than about ``k`` frames may
       be absorbed by its neighbours (as a flash is).

``content``, ``adaptive``, ``threshold``, ``histogram``, ``hash``
    PySceneDetect's detector of that name, fed our frames, with ``min_scene_len`` set
    from ``min_shot_s`` and its own default threshold unless ``threshold`` is given.
    Each reported cut is a hard cut (``start == end``).

Cost of ``film`` on a 256x192 frame (one core): about 0.25 ms of our own work (thumbnail,
histogram, two medians) plus about 0.2 ms in ContentDetector, which sees the frame at half
size.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

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

DETECTORS: tuple[str, ...] = ("film", "content", "adaptive", "threshold", "histogram", "hash")

_FILM_THRESHOLD = 0.15  # b[j] a transition's peak must reach (histogram distance, 0-1)
_CONTENT_PROPOSAL = 20.0  # ContentDetector score (HSV, 0-255) that proposes a hard cut
_PROPOSAL_MIN_WIDTH = 96  # pixels; ContentDetector sees half the analysis frame, not less
_WINDOW_S = 0.4  # seconds of frames on each side of a boundary (k, made odd)
_THUMB_WIDTH = 32  # pixels
_BINS = 4  # histogram bins per RGB channel
_LUMA_BINS = 16  # bins of the luma histogram (what separates shots of black-and-white film)
# Flat-index offset of each of the 8 bins around a pixel, in (r, g, b) corner order.
_CORNER_OFFSETS = np.array(
    [(r * _BINS + g) * _BINS + b for r in (0, 1) for g in (0, 1) for b in (0, 1)]
)
_BLACK_LEVEL = 6.0  # mean RGB level (0-255) under which a frame is black (fade), skipped
_MAX_REGION_S = 4.0  # a longer run of high b is closed anyway (bounds the lag)


class ShotDetectionError(ValueError):
    """A bad shot-detection setting."""


@dataclass(frozen=True)
class ShotConfig:
    detector: str = "film"  # one of DETECTORS
    threshold: float | None = None  # None: the detector's tuned default
    min_shot_s: float = 0.6  # shortest shot, seconds
    analysis_width: int = 256  # width of the frames given to push(), pixels

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ShotDetectionError(
                f"unknown shot detector {self.detector!r}; choose one of {', '.join(DETECTORS)}"
            )
        if self.min_shot_s < 0:
            raise ShotDetectionError(f"min_shot_s must be >= 0 seconds, got {self.min_shot_s}")
        if self.analysis_width < 16:
            raise ShotDetectionError(f"analysis_width must be >= 16, got {self.analysis_width}")


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


def _scenedetect_detector(cfg: ShotConfig, min_frames: int):
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


def frame_histogram(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """Brightness-normalised, soft-binned colour and luma histograms and mean level.

    Returns (float32 (_BINS**3 + _LUMA_BINS,): the colour histogram then the luma
    histogram, each summing to 1; mean RGB level 0-255).

    rgb: (h, w, 3) uint8. The frame is shrunk to a _THUMB_WIDTH-wide thumbnail and
    divided by its mean level, so a global gain (flicker, exposure, a night shot) does
    not move the histogram. Each pixel is shared between its two nearest bins per channel
    (trilinear weights), so colours near a bin edge do not jump between bins with grain.
    """
    h, w = rgb.shape[:2]
    th = max(1, round(h * _THUMB_WIDTH / w))
    thumb = cv2.resize(rgb, (_THUMB_WIDTH, th), interpolation=cv2.INTER_AREA)
    pixels = thumb.reshape(-1, 3).astype(np.float32)  # (n, 3)
    level = float(pixels.mean())
    scale = 100.0 / (level + 10.0)  # mean level -> about 90
    pos = np.clip(pixels * (scale * _BINS / 256.0) - 0.5, 0.0, _BINS - 1.0)  # bin centres at 0..B-1
    low = np.minimum(pos.astype(np.intp), _BINS - 2)  # (n, 3) lower bin per channel
    frac = pos - low  # (n, 3) weight of the upper bin
    base = (low[:, 0] * _BINS + low[:, 1]) * _BINS + low[:, 2]  # (n,) lowest of 8 bins
    flat = base[:, None] + _CORNER_OFFSETS  # (n, 8) the 8 neighbouring bins of each pixel
    w = np.stack([1.0 - frac, frac], axis=1)  # (n, 2, 3): lower/upper weight per channel
    weights = w[:, :, None, None, 0] * w[:, None, :, None, 1] * w[:, None, None, :, 2]
    colour = np.bincount(flat.ravel(), weights.ravel(), _BINS**3)  # weights (n, 2, 2, 2)
    # Luma (mean of R, G, B) in _LUMA_BINS bins, shared between the two nearest bins.
    luma = np.clip(pixels.mean(axis=1) * (scale * _LUMA_BINS / 256.0) - 0.5, 0, _LUMA_BINS - 1)
    low1 = np.minimum(luma.astype(np.intp), _LUMA_BINS - 2)
    frac1 = luma - low1
    grey = np.bincount(np.concatenate([low1, low1 + 1]), np.concatenate([1 - frac1, frac1]),
                       _LUMA_BINS)
    return np.concatenate([colour / colour.sum(), grey / grey.sum()]).astype(np.float32), level


def _proposal_frame(rgb: np.ndarray) -> np.ndarray:
    """The BGR frame ContentDetector proposes hard cuts on: the analysis frame at half
    size. A cut changes every pixel, so the transitions come out the same (identical on 61
    synthetic films: four sizes, 24-30 fps, doubled grain and flicker, grey) for a third
    less time per frame."""
    h, w = rgb.shape[:2]
    if w >= 2 * _PROPOSAL_MIN_WIDTH:
        rgb = cv2.resize(rgb, (w // 2, max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def window_distance(before: np.ndarray, after: np.ndarray) -> float:
    """Distance (0-1) between two (k, signature) stacks of frame signatures: the larger of
    the half-L1 distances between the bin-wise medians of their colour and luma parts."""
    a = np.median(before, axis=0)
    b = np.median(after, axis=0)
    worst = 0.0
    for part in (slice(0, _BINS**3), slice(_BINS**3, None)):
        pa, pb = a[part], b[part]
        pa = pa / max(float(pa.sum()), 1e-9)
        pb = pb / max(float(pb.sum()), 1e-9)
        worst = max(worst, 0.5 * float(np.abs(pa - pb).sum()))
    return worst


class ShotDetector:
    """Streaming shot detector: push every frame in order, then flush.

    Frames are RGB uint8 (h, analysis_width, 3), pushed as 0, 1, 2, ... Each call returns
    the transitions that became final; a transition is returned at most ``max_lag``
    frames after its end frame.
    """

    def __init__(self, cfg: ShotConfig, fps: float) -> None:
        if fps <= 0:
            raise ShotDetectionError(f"fps must be positive, got {fps}")
        self.cfg = cfg
        self.fps = fps
        self.min_frames = round(cfg.min_shot_s * fps)
        self.k = 2 * max(1, round(_WINDOW_S * fps / 2)) + 1  # odd: a median has no tie
        self._last_index = -1
        self._film = cfg.detector == "film"
        if self._film:
            self.threshold = _FILM_THRESHOLD if cfg.threshold is None else cfg.threshold
            # No minimum length: every frame over the threshold is a proposal.
            self._content = ContentDetector(threshold=_CONTENT_PROPOSAL, min_scene_len=0)
            self._hists: deque[tuple[int, np.ndarray]] = deque(maxlen=2 * self.k)
            self._proposals: deque[int] = deque()  # ContentDetector's hard-cut frames
            self._region: list[tuple[int, float]] = []  # (boundary frame j, b[j]) of a run
            self._pending: Transition | None = None
            self._last_cut = 0  # the film's start counts as a cut for min_shot_s
            self._max_region = round(_MAX_REGION_S * fps)
        else:
            self._detector = _scenedetect_detector(cfg, self.min_frames)

    @property
    def max_lag(self) -> int:
        """Frames after a transition's end frame within which it is returned."""
        if self._film:
            return self.min_frames + 2 * self.k + 2
        return max(int(self._detector.event_buffer_length), 0) + 1

    # ------------------------------------------------------------------ public API

    def push(self, frame_index: int, rgb: np.ndarray) -> list[Transition]:
        if frame_index != self._last_index + 1:
            raise ShotDetectionError(
                f"frames must be pushed in order: expected {self._last_index + 1}, "
                f"got {frame_index}"
            )
        self._last_index = frame_index
        timecode = FrameTimecode(frame_index, fps=self.fps)
        if not self._film:
            cuts = self._detector.process_frame(timecode, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            return [Transition(c.frame_num, c.frame_num) for c in cuts]
        for tc in self._content.process_frame(timecode, _proposal_frame(rgb)):
            self._proposals.append(tc.frame_num)
        out: list[Transition] = []
        hist, level = frame_histogram(rgb)
        if level >= _BLACK_LEVEL:  # black frames (of a fade) are skipped
            self._hists.append((frame_index, hist))
            if len(self._hists) == 2 * self.k:
                j = self._hists[self.k][0]  # boundary before frame j
                hists = np.stack([h for _, h in self._hists])  # (2k, bins)
                b = window_distance(hists[: self.k], hists[self.k :])
                out.extend(self._track(j, b))
        out.extend(self._release(frame_index))
        return out

    def flush(self) -> list[Transition]:
        """Return the transitions still held back, at the end of the film."""
        if not self._film:
            end = FrameTimecode(self._last_index + 1, fps=self.fps)
            return [Transition(c.frame_num, c.frame_num) for c in self._detector.post_process(end)]
        out: list[Transition] = []
        if self._region:
            out.extend(self._close_region())
        n_frames = self._last_index + 1
        last = self._pending
        if last is not None and n_frames - last.cut >= self.min_frames:
            half = min(last.cut - last.start, n_frames - last.cut)  # end within the film
            out.append(Transition(last.cut - half, last.cut + half, last.peak))
        self._pending = None
        return out

    # ------------------------------------------------------------------ film ensemble

    def _track(self, j: int, b: float) -> list[Transition]:
        """Feed b[j]; return a transition when a run of high b closes."""
        if b >= 0.5 * self.threshold:
            self._region.append((j, b))
            if len(self._region) < self._max_region:
                return []
        return self._close_region() if self._region else []

    def _close_region(self) -> list[Transition]:
        region, self._region = self._region, []
        peak = max(b for _, b in region)
        if peak < self.threshold:
            return []
        found = self._shape(region, peak)
        while self._proposals and self._proposals[0] < region[0][0]:
            self._proposals.popleft()
        if found.is_hard_cut:  # ContentDetector knows the exact frame of a hard cut
            near = [p for p in self._proposals if abs(p - found.cut) <= 2]
            if near:
                cut = min(near, key=lambda p: abs(p - found.cut))
                found = Transition(cut, cut, peak)
        return self._offer(found)

    def _shape(self, region: list[tuple[int, float]], peak: float) -> Transition:
        """Where a run of high b says the transition is, and how long it is.

        A transition of n mixed frames makes b a trapezoid: its edges rise over min(n, k)
        boundaries and it is max(n, k) boundaries wide at half height. A hard cut (n = 0)
        is a k-wide plateau with vertical edges.
        """
        js = [j for j, _ in region]
        bs = np.array([b for _, b in region])
        above = np.flatnonzero(bs >= 0.5 * peak)
        first, last = js[above[0]], js[above[-1]] + 1  # half-height span, frames
        high = np.flatnonzero(bs >= 0.8 * peak)
        edge = (bs > 0.2 * peak) & (bs < 0.8 * peak)
        ramp = (edge[: high[0]].sum() + edge[high[-1] + 1 :].sum()) / 2 / 0.6  # frames
        n = last - first if last - first > self.k + 1 else round(float(ramp))
        middle = (first + last) // 2
        if n <= 1:
            return Transition(middle, middle, peak)
        # The mixed frames lie within the run widened by about k/2: cover them all, symmetric
        # about the middle so that ``cut`` stays the middle.
        pad = self.k // 2 + 2
        lo, hi = js[0] - pad, js[-1] + 1 + pad
        half = min(max(middle - lo, hi - middle), middle)
        return Transition(middle - half, middle + half, peak)

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

    def _release(self, frame_index: int) -> list[Transition]:
        """Emit the pending transition once no later one can fall within min_shot_s."""
        pending = self._pending
        if pending is None or frame_index < max(pending.cut + self.min_frames + 2 * self.k,
                                                pending.end):
            return []
        self._pending = None
        self._last_cut = pending.cut
        return [pending]
