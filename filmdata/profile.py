"""What belongs to the whole film, measured before the pass: bars, black level, fade.

    survey frames (a few dozen keyframes spread over the film, `FilmDecoder.survey`)
        --> letterbox / pillarbox bars (a crop, the same for every frame)
        --> the film's black and white luma (what the dark test is relative to: the
        restoration's levels, as far as the film looks faded)
        --> the print's fade (`filmdata.restore`, undone shot by shot)

A faded print shows its black as a lifted, tinted grey and its white as a dull tint, and
a transfer often adds black bars: none of that belongs to a shot, so it is measured once
on frames spread over the whole film, before the first shot is finished. Pure numpy/cv2:
frames in, a `FilmProfile` out.

Bars: a row (column) is dark and flat in a frame when, cut into 64 parts, the brightest
part but a fifth has a mean luma <= `bar_luma` and differs from the darkest but a fifth
by at most `bar_flatness`. It is a bar row of the film when it is dark and flat in at
least `bar_agreement` of the frames (frames dark throughout, as in a fade, do not vote):
so a night shot does not widen a bar and subtitles in the bar do not cancel it, as long
as each is in a minority of the frames. The bar is the run of bar rows from the edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from filmdata.correct import LUMA_WEIGHTS, CorrectionConfig
from filmdata.decode import Crop
from filmdata.errors import ConfigError
from filmdata.filters import shrink_to_width
from filmdata.restore import FilmFade, estimate_film_fade, fade_trust, film_levels
from filmdata.validate import check_fields, check_range

CROP_BARS = ("auto", "none")
FADE_WIDTH = 256  # survey frames are shrunk to this width for the fade estimate, pixels
_BAR_SEGMENTS = 64  # a row is judged on this many segment means (grain averages out)


@dataclass(frozen=True)
class ProfileConfig:
    """How the whole-film measurements are made. Levels are BT.601 luma, 0-255."""

    survey_frames: int = 48  # frames spread over the film; 0 = no survey (nothing film-wide)
    crop_bars: str = "auto"  # "auto": find and crop letterbox/pillarbox bars; "none"
    bar_luma: float = 40.0  # most of a bar row is at most this bright
    bar_flatness: float = 12.0  # ... and this flat (a spread of levels)
    bar_share: float = 0.8  # "most": this share of the row's 64 parts
    bar_agreement: float = 0.6  # share of the frames in which a film's bar row is dark
    bar_max_fraction: float = 0.3  # a bar covers at most this share of the frame's side

    def __post_init__(self) -> None:
        check_fields(self, {"crop_bars": "--crop-bars"})
        check_range(self, "bar_luma", 0, 255)
        check_range(self, "bar_flatness", 0, 255)
        if self.survey_frames < 0:
            raise ConfigError(f"survey_frames must be >= 0, got {self.survey_frames}")
        if self.crop_bars not in CROP_BARS:
            raise ConfigError(f"--crop-bars {self.crop_bars!r}: choose one of {CROP_BARS}")
        if not 0 < self.bar_max_fraction < 0.5:
            raise ConfigError(f"bar_max_fraction must be in (0, 0.5), got "
                              f"{self.bar_max_fraction}")
        if not 0.5 <= self.bar_share <= 1:
            raise ConfigError(f"bar_share must be in [0.5, 1], got {self.bar_share}")
        if not 0.5 <= self.bar_agreement <= 1:
            raise ConfigError(f"bar_agreement must be in [0.5, 1], got {self.bar_agreement}")


@dataclass(frozen=True)
class FilmProfile:
    """The whole film's measurements; `identity()` when nothing could be surveyed."""

    crop: Crop = field(default_factory=Crop)  # in displayed pixels of the full frame
    black_luma: float = 0.0  # 0-255, the luma the film's black shows as
    white_luma: float = 255.0  # 0-255, the luma its white shows as
    fade: FilmFade = field(default_factory=FilmFade.identity)
    frames_surveyed: int = 0

    @classmethod
    def identity(cls) -> FilmProfile:
        return cls()

    @property
    def levels(self) -> tuple[float, float]:
        """(black, white) luma, 0-255: what the dark test is relative to."""
        return self.black_luma, self.white_luma

    def to_dict(self) -> dict[str, Any]:
        return {
            "crop": self.crop.__dict__,
            "black_luma": round(self.black_luma, 2),
            "white_luma": round(self.white_luma, 2),
            "fade": self.fade.to_dict(),
            "frames_surveyed": self.frames_surveyed,
        }


def film_profile(
    frames: Sequence[np.ndarray],
    display_size: tuple[int, int],
    cfg: ProfileConfig,
    correct: CorrectionConfig,
) -> FilmProfile:
    """Measure the film on its survey frames: RGB uint8 (h, w, 3), all the same size, as
    displayed (rotated, uncropped). `display_size` (w, h) is the full frame's size, which
    the crop is given in."""
    if not frames:
        return FilmProfile.identity()
    h, w = frames[0].shape[:2]
    lumas = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]  # (h, w) uint8 each
    crop = Crop()
    if cfg.crop_bars == "auto":
        crop = film_bars(lumas, cfg)
    fade_frames = [shrink_to_width(np.ascontiguousarray(crop.apply(f)), FADE_WIDTH)
                   for f in frames]
    black, white = film_luma_levels(fade_frames, correct)
    return FilmProfile(
        crop=crop.scaled((w, h), display_size),
        black_luma=black,
        white_luma=white,
        fade=estimate_film_fade(fade_frames, correct),
        frames_surveyed=len(frames),
    )


def film_luma_levels(frames: Sequence[np.ndarray], correct: CorrectionConfig
                     ) -> tuple[float, float]:
    """The film's black and white as luma (0-255): the levels the restoration measures
    (per channel, `filmdata.restore.film_levels`), as far as the film shows a fade's
    signature (`fade_trust`); a clean film's are 0 and 255, whatever its darkest scene."""
    black, white = film_levels(frames, correct)  # (3,) each, 0-255
    trust = fade_trust(black, white, correct)
    return (trust * float(black @ LUMA_WEIGHTS),
            255.0 - trust * (255.0 - float(white @ LUMA_WEIGHTS)))


def film_bars(lumas: Sequence[np.ndarray], cfg: ProfileConfig) -> Crop:
    """The letterbox and pillarbox bars of a film from (h, w) uint8 luma frames."""
    votes = [v for v in (frame_bar_lines(y, cfg) for y in lumas) if v is not None]
    if not votes:
        return Crop()
    rows = np.mean([r for r, _ in votes], axis=0) >= cfg.bar_agreement  # (h,) bool
    cols = np.mean([c for _, c in votes], axis=0) >= cfg.bar_agreement  # (w,) bool
    h, w = lumas[0].shape
    sides = [_run(rows), _run(rows[::-1]), _run(cols), _run(cols[::-1])]
    limits = (h, h, w, w)
    return Crop(*(s if s <= cfg.bar_max_fraction * lim else 0
                  for s, lim in zip(sides, limits, strict=True)))


def frame_bar_lines(
    luma: np.ndarray, cfg: ProfileConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """Which rows (h,) and columns (w,) of one (h, w) uint8 luma frame are dark and flat;
    None for a frame that is dark throughout."""
    h, w = luma.shape
    rows = cv2.resize(luma, (min(w, _BAR_SEGMENTS), h), interpolation=cv2.INTER_AREA)
    cols = cv2.resize(luma, (w, min(h, _BAR_SEGMENTS)), interpolation=cv2.INTER_AREA)
    row_bar = _bar_lines(rows.astype(np.float32), cfg)  # (h,) bool
    col_bar = _bar_lines(cols.astype(np.float32).T, cfg)  # (w,) bool
    if row_bar.all() or col_bar.all():
        return None
    return row_bar, col_bar


def _bar_lines(segments: np.ndarray, cfg: ProfileConfig) -> np.ndarray:
    """(lines, segments) segment means -> (lines,) whether most of each line is dark and
    flat."""
    share = 100.0 * cfg.bar_share
    top, bottom = np.percentile(segments, [share, 100.0 - share], axis=1)  # (lines,) each
    return (top <= cfg.bar_luma) & (top - bottom <= cfg.bar_flatness)


def _run(flags: np.ndarray) -> int:
    """Length of the run of True at the start of a (n,) bool array."""
    return int(np.argmin(flags)) if not flags.all() else len(flags)
