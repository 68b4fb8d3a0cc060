"""Frame scores and reject decisions (pure numpy/cv2, no I/O).

Scores first, decisions second: :func:`score_frame` measures a frame (mean luma,
colourfulness, perceptual hash) and the manifest keeps every score; :func:`reject_reason`
and :func:`mark_duplicates` turn scores into decisions with a :class:`FilterConfig`, so a
user can re-decide later from the manifest alone. The dark test is relative to the film's
own black and white levels (:func:`relative_luma`), so that the lifted night of a faded
print is still dark. :func:`flash_frames` finds flashes (short luma spikes against the
shot) in the luma track of a shot, so that they are never sampled. See
docs/corrections.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from filmdata.correct import luma  # BT.601, re-exported
from filmdata.validate import check_fields, check_range

SCORE_WIDTH = 256  # frames wider than this are scored on an INTER_AREA copy this wide
COLOR_WIDTH = 64  # colourfulness is measured on an INTER_AREA thumbnail this wide
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


_OPTIONS = {"dark_luma": "--dark-luma", "min_colorfulness": "--min-colorfulness",
            "dedup_distance": "--dedup"}


@dataclass(frozen=True)
class FilterConfig:
    """Reject thresholds. Scores are measured on the frame before correction."""

    dark_luma: float = 25.0  # mean luma (0-255, film black = 0) below which a frame is 'dark'
    min_colorfulness: float | None = None  # None = off; below it a frame is 'grey' (try 6)
    dedup_distance: int | None = None  # None = off; max pHash Hamming distance (try 6)
    flash_rise: float = 24.0  # a flash is brighter than the shot around it by this (0-255) ...
    flash_rise_ratio: float = 0.25  # ... and by this share of the shot's own luma
    flash_window_s: float = 0.5  # seconds of the shot on each side that a flash is judged by

    def __post_init__(self) -> None:
        check_fields(self, _OPTIONS)
        check_range(self, "dark_luma", 0, 255, options=_OPTIONS)
        check_range(self, "min_colorfulness", 0, 255, options=_OPTIONS)
        check_range(self, "dedup_distance", 0, 64, options=_OPTIONS)
        check_range(self, "flash_rise", 0, 255, lo_open=True)
        check_range(self, "flash_rise_ratio", 0)
        check_range(self, "flash_window_s", 0, lo_open=True)


@dataclass(frozen=True)
class FrameScores:
    mean_luma: float  # mean BT.601 luma, 0-255
    colorfulness: float  # Hasler-Suesstrunk M, ~0 for grey, ~30 average, >60 very colourful
    phash: int  # 64-bit DCT perceptual hash as a non-negative python int (fits uint64)


# --------------------------------------------------------------------------- scores


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness M of an RGB frame (h, w, 3), 0-255 units.

    M = sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2),
    with rg = R - G and yb = (R + G) / 2 - B on gamma-encoded values.
    """
    x = np.asarray(rgb, dtype=np.float32).reshape(-1, 3)
    rg = x[:, 0] - x[:, 1]
    yb = 0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]
    spread = np.sqrt(rg.var() + yb.var())
    centre = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(spread + 0.3 * centre)


def phash(rgb: np.ndarray) -> int:
    """64-bit perceptual hash: signs of the 8x8 lowest DCT frequencies of a 32x32 luma
    thumbnail against their median; bit 63 is coefficient (0, 0), row-major."""
    y = luma(np.asarray(rgb))  # (h, w) float32
    thumb = cv2.resize(y, (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(thumb)[:8, :8].ravel()  # (64,)
    bits = low > np.median(low)
    return int(np.packbits(bits).view(">u8")[0])


def score_frame(rgb: np.ndarray) -> FrameScores:
    """Scores of an RGB uint8 frame (h, w, 3) before correction, small or full size.

    Frames wider than SCORE_WIDTH are first shrunk with INTER_AREA: the mean is kept and
    the hash thumbnail is the same to within rounding, so a full frame and its small copy
    score alike. Colourfulness is measured on a COLOR_WIDTH-wide thumbnail, so that film
    grain and chroma noise (which average out there) do not count as colour: a grainy grey
    card scores ~1.5-4 at any frame size, real colour frames keep their value (+-1).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB array (h, w, 3), got shape {rgb.shape}")
    small = shrink_to_width(rgb, SCORE_WIDTH)
    return FrameScores(
        mean_luma=float(luma(small).mean()),
        colorfulness=colorfulness(shrink_to_width(small, COLOR_WIDTH)),
        phash=phash(small),
    )


def shrink_to_width(rgb: np.ndarray, width: int) -> np.ndarray:
    """An INTER_AREA copy at most `width` wide, aspect kept (the input if narrow enough)."""
    h, w = rgb.shape[:2]
    if w <= width:
        return rgb
    size = (width, max(1, round(h * width / w)))
    return cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- decisions


def relative_luma(mean_luma: float, black: float = 0.0, white: float = 255.0) -> float:
    """A mean luma (0-255) rescaled so that the film's `black` level is 0 and its `white`
    level 255, clipped to 0-255: what the dark test compares with `dark_luma`."""
    span = max(white - black, 1.0)
    return float(np.clip((mean_luma - black) * 255.0 / span, 0.0, 255.0))


def reject_reason(
    scores: FrameScores, cfg: FilterConfig, levels: tuple[float, float] = (0.0, 255.0)
) -> str | None:
    """'dark', 'grey' or None (kept); dark is checked first, on the mean luma relative to
    the film's black and white `levels` (0-255; a clean film's are 0 and 255)."""
    if relative_luma(scores.mean_luma, *levels) < cfg.dark_luma:
        return "dark"
    if cfg.min_colorfulness is not None and scores.colorfulness < cfg.min_colorfulness:
        return "grey"
    return None


def flash_frames(levels: np.ndarray, fps: float, cfg: FilterConfig) -> np.ndarray:
    """Which frames of a shot are flashes: (n,) mean luma of consecutive frames -> (n,) bool.

    A flash is brighter than the shot on *both* sides of it, by at least `flash_rise`
    levels and `flash_rise_ratio` of the shot's luma: each side is the median of the
    frames within `flash_window_s` (a median ignores the flash itself, up to half the
    window long). A lasting change of light (a lamp switched on, a pan to a window) is
    as bright after as it is, so it is no flash; at the shot's ends only one side counts.
    """
    levels = np.asarray(levels, dtype=np.float32)
    n = len(levels)
    w = max(2, round(cfg.flash_window_s * fps))
    flashes = np.zeros(n, dtype=bool)
    if n < 3:
        return flashes
    padded = np.concatenate([np.full(w, np.nan), levels, np.full(w, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1)  # (n, 2w + 1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN side at the shot's ends
        before = np.nanmedian(windows[:, :w], axis=1)  # (n,)
        after = np.nanmedian(windows[:, w + 1 :], axis=1)  # (n,)
    around = np.fmax(before, after)  # the brighter side; NaN only if both are missing
    rise = np.maximum(cfg.flash_rise, cfg.flash_rise_ratio * around)
    flashes[:] = np.nan_to_num(levels - around, nan=0.0) >= np.nan_to_num(rise, nan=np.inf)
    return flashes


def hamming(a: int, b: int) -> int:
    """Number of differing bits of two 64-bit hashes (python ints or numpy uint64)."""
    return bin((int(a) ^ int(b)) & 0xFFFF_FFFF_FFFF_FFFF).count("1")


def mark_duplicates(
    hashes: Sequence[int], reasons: Sequence[str | None], cfg: FilterConfig
) -> list[str | None]:
    """Mark near-duplicates in order: a frame not yet rejected whose hash is within
    ``cfg.dedup_distance`` of an earlier kept frame gets 'duplicate'. Rejected frames keep
    their reason and are never used as the reference. Returns a new list."""
    if len(hashes) != len(reasons):
        raise ValueError(f"{len(hashes)} hashes but {len(reasons)} reasons")
    out = list(reasons)
    if cfg.dedup_distance is None:
        return out
    kept = np.empty(len(hashes), dtype=np.uint64)  # hashes of kept frames so far
    n_kept = 0
    for i, h in enumerate(hashes):
        if out[i] is not None:
            continue
        h64 = np.uint64(h)
        if n_kept and _popcount(kept[:n_kept] ^ h64).min() <= cfg.dedup_distance:
            out[i] = "duplicate"
        else:
            kept[n_kept] = h64
            n_kept += 1
    return out


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 in x (n,) -> (n,) int."""
    return _POPCOUNT8[x.view(np.uint8)].reshape(-1, 8).sum(axis=1)
