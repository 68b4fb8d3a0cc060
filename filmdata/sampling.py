"""Choosing 3-5 frames per shot from a single streaming pass, in bounded memory.

While a shot plays, `ShotSampler` keeps a bounded set of candidate frames spread evenly
over it: frames `stride` apart are admitted, and when the set is full the stride doubles
and every other candidate is dropped. The set never exceeds `max_candidates` frames
(plus the few recent frames the shot detector may still cut among), however long the
shot, and always covers the whole shot evenly.

When the shot ends, its clean span (away from its cuts and from the mixed frames of
dissolves and fades) is split into `n` equal parts and the sharpest candidate of each
part is chosen (variance of the Laplacian on the small analysis frame).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import cv2
import numpy as np

from filmdata.errors import ConfigError
from filmdata.validate import check_fields, check_range

T = TypeVar("T")


@dataclass(frozen=True)
class SampleConfig:
    min_frames: int = 3  # per shot
    max_frames: int = 5
    seconds_per_extra_frame: float = 4.0  # one more frame per this many clean seconds
    margin_s: float = 0.25  # keep this far from cuts and transitions, seconds
    max_candidates: int = 32  # full-resolution frames held per shot at most

    def __post_init__(self) -> None:
        check_fields(self, {"min_frames": "--frames-per-shot", "max_frames": "--frames-per-shot"})
        check_range(self, "seconds_per_extra_frame", 0, lo_open=True)
        check_range(self, "margin_s", 0)
        if not 1 <= self.min_frames <= self.max_frames:
            raise ConfigError(
                f"frames per shot {self.min_frames}-{self.max_frames}: need 1 <= min <= max"
            )
        if self.max_candidates < 2 * self.max_frames:
            raise ConfigError(f"max_candidates must be at least {2 * self.max_frames}")

    def frames_for(self, clean_s: float) -> int:
        """How many frames a shot with `clean_s` seconds of clean span gets."""
        extra = int(max(clean_s, 0.0) // self.seconds_per_extra_frame)
        return min(self.max_frames, self.min_frames + extra)


def parse_frames_per_shot(text: str) -> tuple[int, int]:
    """'4' -> (4, 4); '3-5' -> (3, 5)."""
    try:
        parts = [int(p) for p in text.split("-")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not 1 <= parts[0] <= parts[1]:
        raise ConfigError(f"--frames-per-shot {text!r}: give a number like 4 or a range like 3-5")
    return parts[0], parts[1]


def sharpness(small_rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey analysis frame; higher is sharper."""
    grey = cv2.cvtColor(small_rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


@dataclass
class Candidate(Generic[T]):
    index: int  # decoded-frame number
    score: float  # sharpness
    item: T  # whatever the caller keeps for the frame (e.g. the DecodedFrame)


@dataclass
class ShotSampler(Generic[T]):
    """Bounded, evenly spread candidates of the shot that is playing now.

    The shot detector may still cut among the last `lag` frames, so those are kept
    apart, every `recent_stride`-th of them (`recent`). Older frames are settled: one is
    admitted when it is at least `stride` frames after the last settled candidate, and
    when more than `max_candidates` are held, every other one is dropped and the stride
    doubles. Spacing stays even whatever frame the shot started on, and a shot that
    starts after a late-reported cut still has dense candidates.

    At most `max_candidates + lag / recent_stride + 1` frames are held. `release` is
    called for every candidate that is dropped, so that its full-resolution buffers go
    back to the decoder at once.
    """

    max_candidates: int
    lag: int = 0  # frames
    recent_stride: int = 2
    release: Callable[[T], None] = lambda item: None
    start: int = 0  # first frame of the current shot
    stride: int = 1
    candidates: list[Candidate[T]] = field(default_factory=list)  # settled
    recent: list[Candidate[T]] = field(default_factory=list)  # the last `lag` frames

    def wants(self, index: int) -> bool:
        """Whether frame `index` would be admitted (score it only then)."""
        return index % self.recent_stride == 0

    def offer(self, index: int, score: float, item: T) -> None:
        if not self.wants(index):
            self.release(item)
            return
        self.recent.append(Candidate(index, score, item))
        while self.recent and self.recent[0].index <= index - self.lag:
            self._settle(self.recent.pop(0))

    def _settle(self, c: Candidate[T]) -> None:
        if self.candidates and c.index - self.candidates[-1].index < self.stride:
            self.release(c.item)
            return
        self.candidates.append(c)
        if len(self.candidates) > self.max_candidates:
            self.stride *= 2
            for dropped in self.candidates[1::2]:
                self.release(dropped.item)
            self.candidates = self.candidates[::2]

    def drop_range(self, start: int, end: int) -> None:
        """Forget candidates in frames [start, end): mixed frames of a transition."""
        for c in self.held():
            if start <= c.index < end:
                self.release(c.item)
        self.candidates = [c for c in self.candidates if not start <= c.index < end]
        self.recent = [c for c in self.recent if not start <= c.index < end]

    def held(self) -> list[Candidate[T]]:
        return self.candidates + self.recent

    def split(self, cut: int) -> list[Candidate[T]]:
        """End the current shot at `cut` (exclusive): return its candidates and start the
        next shot with those at or after `cut` (the detector reports cuts late)."""
        done = [c for c in self.held() if c.index < cut]
        carried = [c for c in self.held() if c.index >= cut]
        self.start, self.stride, self.candidates, self.recent = cut, 1, [], []
        for c in carried:  # re-settle under the new shot's stride
            if c.index <= carried[-1].index - self.lag:
                self._settle(c)
            else:
                self.recent.append(c)
        return done


def choose(
    candidates: Sequence[Candidate[T]], clean_start: int, clean_end: int, n: int
) -> list[Candidate[T]]:
    """Up to `n` candidates of [clean_start, clean_end): the sharpest in each of `n` equal
    parts, in frame order.

    A part without a candidate (a short shot whose candidates are sparse) is made up for
    by the other candidates farthest from those already chosen, so a shot gets `n`
    frames whenever it has `n` candidates in its clean span. Candidates outside the
    clean span are never chosen.
    """
    inside = [c for c in candidates if clean_start <= c.index < clean_end]
    if not inside or n <= 0:
        return []
    edges = np.linspace(clean_start, clean_end, n + 1)
    chosen = []
    for lo, hi in itertools.pairwise(edges):
        part = [c for c in inside if lo <= c.index < hi]
        if part:
            chosen.append(max(part, key=lambda c: c.score))
    spare = [c for c in inside if c not in chosen]
    while len(chosen) < n and spare:
        farthest = max(spare, key=lambda c: min(abs(c.index - d.index) for d in chosen))
        chosen.append(farthest)
        spare.remove(farthest)
    return sorted(chosen, key=lambda c: c.index)
