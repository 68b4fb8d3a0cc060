"""Shots of a film: the project's shot detector (`shotdetect`) set up from extract-frames'
options.

The detector itself lives in the `shotdetect` package, shared with colorize (which
restarts its temporal smoothing at the same cuts); its methods, defaults and measured
accuracy are described in `shotdetect.film` and docs/architecture.md. This module holds
`ShotConfig`, the validated options (``--detector``, ``--threshold``, ``--min-shot``,
the analysis width the decoder shrinks frames to), and re-exports the detector's types.
"""

from __future__ import annotations

from dataclasses import dataclass

from filmdata.errors import ConfigError
from filmdata.validate import check_choice, check_fields, check_range
from shotdetect import (
    ANALYSIS_WIDTH,
    DETECTORS,
    MAX_MIN_SHOT_S,
    THRESHOLD_RANGES,
    ShotDetector,
    Transition,
)

__all__ = ["DETECTORS", "ShotConfig", "ShotDetectionError", "ShotDetector", "Transition"]

_OPTIONS = {"detector": "--detector", "threshold": "--threshold", "min_shot_s": "--min-shot"}


class ShotDetectionError(ConfigError):
    """A bad shot-detection setting (a `ConfigError`: one line from the CLI)."""


@dataclass(frozen=True)
class ShotConfig:
    detector: str = "film"  # one of DETECTORS
    threshold: float | None = None  # None: the detector's tuned default ('film': the
    # ContentDetector score that proposes a cut, on stretched frames; default 15)
    min_shot_s: float = 0.6  # shortest shot, seconds
    analysis_width: int = ANALYSIS_WIDTH  # width of the frames given to push(), pixels

    def __post_init__(self) -> None:
        check_fields(self, _OPTIONS)
        check_choice(self, "detector", DETECTORS, _OPTIONS)
        lo, hi = THRESHOLD_RANGES[self.detector]
        check_range(self, "threshold", lo, hi, lo_open=True, options=_OPTIONS,
                    note=f" for the {self.detector} detector")
        check_range(self, "min_shot_s", 0.0, MAX_MIN_SHOT_S, options=_OPTIONS, note=" seconds")
        check_range(self, "analysis_width", 16, options=_OPTIONS)
