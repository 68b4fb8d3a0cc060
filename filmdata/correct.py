"""Per-shot colour correction: film restoration, white balance, exposure (pure numpy/cv2).

One :class:`ShotCorrection` is estimated from several frames of one shot (and, when given,
the film's fade, :class:`filmdata.restore.FilmFade`) and applied to every frame of that
shot, so the frames of a shot stay consistent with each other.

The correction of a channel value ``v`` (gamma-encoded sRGB, 0-255) is, in this order:

0. restoration (undo the print's fade, per channel):
   ``v0 = 255 * clip((v - restore_black[c]) / (restore_white[c] - restore_black[c]), 0, 1)
   ** (1 / restore_gamma[c])``;
1. black level: ``v1 = (v0 - exposure_offset) * 255 / (255 - exposure_offset)``, on gamma values;
2. linearise with the sRGB transfer function: ``x = srgb_to_linear(v1 / 255)`` (0-1);
3. gains in linear light: ``y = x * wb_gains[c] * exposure_gain`` (von Kries diagonal
   white balance; an exposure gain of 2 is one photographic stop);
4. re-encode with the sRGB transfer function, clip to 0-255, round.

Each step maps one channel value to one channel value, so the whole correction is three
256-entry lookup tables applied with ``cv2.LUT``. See docs/corrections.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from filmdata.errors import ConfigError
from filmdata.restore import RGB, FilmFade, channel_percentiles, restoration_curves
from filmdata.validate import check_fields

RESTORE_METHODS = ("film", "none")
WB_METHODS = ("shades-of-gray", "gray-world", "none")
EXPOSURE_METHODS = ("percentile", "none")

# BT.601 luma weights (R, G, B), applied to gamma-encoded values.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

_MAX_SAMPLES = 200_000  # pixels of a shot used for the estimate (evenly strided beyond this)


@dataclass(frozen=True)
class CorrectionConfig:
    """How corrections are estimated. Levels are gamma-encoded 0-255 values.

    Film restoration (``restore``) is measured once per film (filmdata.restore) and applied
    per shot within the shot's own bounds; white balance and exposure are per shot.
    """

    # -- film restoration (see filmdata.restore and docs/corrections.md)
    restore: str = "film"  # "film" | "none"
    restore_black_pct: float = 0.01  # percentile (%) of each channel over the film = its black
    restore_white_pct: float = 99.99  # percentile (%) of each channel over the film = its white
    restore_lift_min: float = 2.0  # lowest channel black (levels) at or below which: no fade
    restore_lift_full: float = 5.0  # ... at or above which it does not limit the trust
    restore_range_min: float = 8.0  # unused range (lift + 255 - top white, levels): no fade
    restore_range_full: float = 12.0  # ... at or above which it does not limit the trust
    restore_max_black: float = 64.0  # black levels above this are not believed (levels)
    restore_min_white: float = 160.0  # white levels below this are not believed (levels)
    restore_gamma_range: tuple[float, float] = (0.6, 1.6)  # clamp of each relative gamma
    restore_edge_step: float = 0.1  # edge = green log-step >= this between neighbours (ln)
    restore_edge_floor: float = 8.0  # edge pixels are >= this many levels above black
    restore_neutral_tol: float = 0.06  # near-neutral: |log R - log G|, |log B - log G| <= this
    restore_min_neutral: float = 0.01  # fraction of edges that must be near-neutral to use them
    restore_shot_black_pct: float = 0.1  # a shot's own black: this percentile (%) per channel
    restore_shot_smooth: int = 7  # ... of frames smoothed by this box (px): dark regions count,
    #   not the codec's chroma bleed at the edges of saturated colours
    restore_shot_white_pct: float = 99.99  # a shot's own white: this percentile (%) per channel
    #   of frames smoothed by a 3x3 box (small highlights count too)
    # -- per-shot white balance (off by default: it greys scenes dominated by one colour)
    wb: str = "none"  # "shades-of-gray" | "gray-world" | "none"
    wb_power: float = 6.0  # Minkowski p of shades-of-gray (gray-world is p = 1)
    wb_max_gain: float = 2.0  # each channel gain, relative to G, is clamped to [1/x, x]
    wb_clip_level: int = 250  # pixels with any channel >= this are clipped: ignored by WB
    wb_black_level: float = 16.0  # pixels with luma < this are near-black: ignored by WB
    wb_min_pixels: int = 1000  # fewer usable pixels than this -> no white balance (gains 1)
    # -- per-shot exposure (off by default: it brightens legitimately low-key shots)
    exposure: str = "none"  # "percentile" | "none"
    exposure_low_pct: float = 0.5  # percentile of luma taken as the shot's black level
    exposure_black_target: float = 4.0  # ... removed down to this level (never lifted)
    exposure_max_offset: float = 24.0  # at most this many levels of black are removed
    exposure_high_pct: float = 99.5  # percentile of luma taken as the shot's highlights
    exposure_white_target: float = 235.0  # ... brought up to this level
    exposure_min_gain: float = 1.0  # linear exposure gain clamp (1.0: never darken)
    exposure_max_gain: float = 1.5  # linear exposure gain clamp (1.5: at most ~0.6 stop up)

    def __post_init__(self) -> None:
        check_fields(self, {"restore": "--restore", "wb": "--wb", "exposure": "--exposure"})
        if self.restore not in RESTORE_METHODS:
            raise ConfigError(f"restore must be one of {RESTORE_METHODS}, got {self.restore!r}")
        if self.wb not in WB_METHODS:
            raise ConfigError(f"wb must be one of {WB_METHODS}, got {self.wb!r}")
        if self.exposure not in EXPOSURE_METHODS:
            raise ConfigError(f"exposure must be one of {EXPOSURE_METHODS}, got {self.exposure!r}")
        if self.wb_power < 1:
            raise ConfigError(f"wb_power must be >= 1, got {self.wb_power}")
        if self.wb_max_gain < 1 or self.exposure_max_gain < 1:
            raise ConfigError("wb_max_gain and exposure_max_gain must be >= 1")
        if not 0 < self.exposure_min_gain <= 1:
            raise ConfigError(f"exposure_min_gain must be in (0, 1], got {self.exposure_min_gain}")
        if not 0 <= self.exposure_low_pct < self.exposure_high_pct <= 100:
            raise ConfigError("need 0 <= exposure_low_pct < exposure_high_pct <= 100")
        if not 0 <= self.exposure_max_offset < 128:
            raise ConfigError(f"exposure_max_offset must be in [0, 128), got "
                             f"{self.exposure_max_offset}")
        for low, high, what in ((self.restore_black_pct, self.restore_white_pct, "restore"),
                                (self.restore_shot_black_pct, self.restore_shot_white_pct,
                                 "restore_shot")):
            if not 0 <= low < 50 < high <= 100:
                raise ConfigError(f"need 0 <= {what}_black_pct < 50 < {what}_white_pct <= 100, "
                                  f"got {low}, {high}")
        for lo, full, what in ((self.restore_lift_min, self.restore_lift_full, "lift"),
                               (self.restore_range_min, self.restore_range_full, "range")):
            if not 0 <= lo < full:
                raise ConfigError(f"need 0 <= restore_{what}_min < restore_{what}_full, "
                                  f"got {lo}, {full}")
        if not 0 <= self.restore_max_black < 128 <= self.restore_min_white <= 255:
            raise ConfigError("need 0 <= restore_max_black < 128 <= restore_min_white <= 255")
        lo, hi = self.restore_gamma_range
        if not 0 < lo <= 1 <= hi:
            raise ConfigError(f"restore_gamma_range must be (lo, hi) with 0 < lo <= 1 <= hi, "
                              f"got {self.restore_gamma_range}")
        if self.restore_edge_step <= 0 or self.restore_edge_floor < 1:
            raise ConfigError("restore_edge_step must be > 0 and restore_edge_floor >= 1")
        if self.restore_shot_smooth < 1:
            raise ConfigError(f"restore_shot_smooth must be >= 1 px, got "
                              f"{self.restore_shot_smooth}")
        if self.restore_neutral_tol <= 0 or not 0 <= self.restore_min_neutral <= 1:
            raise ConfigError("restore_neutral_tol must be > 0 and restore_min_neutral in [0, 1]")



@dataclass(frozen=True)
class ShotCorrection:
    """The correction applied to every frame of one shot (see the module docstring)."""

    wb_gains: RGB  # R, G, B multipliers on linear values, G == 1
    exposure_gain: float  # multiplier on linear values (sRGB-decoded), 2.0 = one stop
    exposure_offset: float  # black level removed, gamma-encoded 0-255 units (>= 0)
    restore_black: RGB = (0.0, 0.0, 0.0)  # per-channel level mapped to 0 (0-255)
    restore_white: RGB = (255.0, 255.0, 255.0)  # per-channel level mapped to 255 (0-255)
    restore_gamma: RGB = (1.0, 1.0, 1.0)  # per-channel fade power undone (out = t ** (1/g))

    @classmethod
    def identity(cls) -> ShotCorrection:
        return cls(wb_gains=(1.0, 1.0, 1.0), exposure_gain=1.0, exposure_offset=0.0)

    def is_identity(self) -> bool:
        return self == ShotCorrection.identity()

    def columns(self) -> dict[str, float]:
        """The manifest columns of this correction: one float per name."""
        cols: dict[str, float] = {}
        for name in ("black", "white", "gamma"):
            for c, value in zip("rgb", getattr(self, f"restore_{name}"), strict=True):
                cols[f"restore_{name}_{c}"] = float(value)
        for c, value in zip("rgb", self.wb_gains, strict=True):
            cols[f"wb_gain_{c}"] = float(value)
        cols["exposure_gain"] = float(self.exposure_gain)
        cols["exposure_offset"] = float(self.exposure_offset)
        return cols


# --------------------------------------------------------------------------- transfer


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light in [0, 1] (float32, same shape)."""
    v = np.asarray(v, dtype=np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values in [0, 1] (float32, clipped)."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma Y of gamma-encoded RGB (..., 3) -> float32 (...), same units as input."""
    return np.asarray(rgb, dtype=np.float32) @ LUMA_WEIGHTS


_LINEAR_LEVELS = srgb_to_linear(np.arange(256) / 255.0).astype(np.float64)  # (256,) 0-1


# --------------------------------------------------------------------------- apply


def correction_curves(corr: ShotCorrection) -> np.ndarray:
    """The correction as float curves (256, 3), 0-255: column c maps input level -> output."""
    v = restoration_curves(corr.restore_black, corr.restore_white, corr.restore_gamma)
    off = float(corr.exposure_offset)
    v1 = np.clip((v - off) * (255.0 / (255.0 - off)), 0.0, 255.0)  # (256, 3)
    lin = srgb_to_linear(v1 / 255.0)  # (256, 3)
    gains = np.asarray(corr.wb_gains, dtype=np.float32) * np.float32(corr.exposure_gain)  # (3,)
    return linear_to_srgb(lin * gains[None, :]) * 255.0  # (256, 3)


def correction_luts(corr: ShotCorrection) -> np.ndarray:
    """The correction as lookup tables: uint8 (256, 3), column c maps input level -> output."""
    return np.clip(np.rint(correction_curves(corr)), 0, 255).astype(np.uint8)


def apply_correction(frame: np.ndarray, corr: ShotCorrection) -> np.ndarray:
    """Apply ``corr`` to an RGB uint8 frame (h, w, 3); returns a new RGB uint8 (h, w, 3)."""
    _check_rgb(frame)
    lut = correction_luts(corr).reshape(1, 256, 3)  # cv2.LUT: one table per channel
    return cv2.LUT(np.ascontiguousarray(frame), lut)


# --------------------------------------------------------------------------- estimate


def estimate_shot_correction(
    frames: Sequence[np.ndarray], cfg: CorrectionConfig, fade: FilmFade | None = None
) -> ShotCorrection:
    """Estimate one correction from several RGB uint8 frames (h, w, 3) of one shot.

    Frames may be small (e.g. 256 wide) and of different sizes. ``fade`` is the film's
    fade (:func:`filmdata.restore.estimate_film_fade`); None means no film-level evidence
    (no restoration). The shot gets the film's fade only within its own bounds
    (:func:`shot_restoration`). The black level is measured next, on restored pixels,
    white balance on the black-corrected pixels, exposure gain last, mirroring the order
    of :func:`apply_correction`.
    """
    if len(frames) == 0:
        raise ValueError("estimate_shot_correction needs at least one frame")
    pixels = _shot_pixels(frames)  # (n, 3) uint8
    base = ShotCorrection.identity()
    if fade is not None and cfg.restore == "film" and not fade.is_identity():
        black, white, gamma = shot_restoration(frames, fade, cfg)
        base = replace(base, restore_black=black, restore_white=white, restore_gamma=gamma)
    if cfg.exposure == "percentile":
        restored = _apply_to_pixels(pixels, base)
        base = replace(base, exposure_offset=_black_offset(restored, cfg))
    if cfg.wb != "none":
        base = replace(base, wb_gains=_wb_gains(_apply_to_pixels(pixels, base), cfg))
    if cfg.exposure == "percentile":
        base = replace(base, exposure_gain=_exposure_gain(_apply_to_pixels(pixels, base), cfg))
    return base


def shot_restoration(frames: Sequence[np.ndarray], fade: FilmFade, cfg: CorrectionConfig
                     ) -> tuple[RGB, RGB, RGB]:
    """The part of the film's fade that this shot's frames (RGB uint8 (h, w, 3)) agree with.

    Per channel: never remove more black than the shot's own dark regions show
    (``restore_shot_black_pct`` of frames smoothed by a ``restore_shot_smooth`` box),
    never map to 255 a level below the shot's own highlights (``restore_shot_white_pct``
    of frames smoothed by a 3x3 box: nothing of the shot is clipped that was not), and
    the film's relative gamma as is. Returns (black, white, gamma), each (R, G, B).
    """
    k = cfg.restore_shot_smooth
    low = channel_percentiles([cv2.blur(f, (k, k)) if k > 1 else f for f in frames],
                              (cfg.restore_shot_black_pct,))[:, 0]  # (3,)
    high = channel_percentiles([cv2.blur(f, (3, 3)) for f in frames],
                               (cfg.restore_shot_white_pct,))[:, 0]  # (3,)
    black = np.minimum(np.asarray(fade.black), low)  # (3,)
    white = np.maximum(np.asarray(fade.white), high)  # (3,)
    white = np.maximum(white, black + 32.0)
    return _rgb(black), _rgb(white), _rgb(fade.gamma)


def _rgb(values: Sequence[float]) -> RGB:
    return (float(values[0]), float(values[1]), float(values[2]))


def _luma8(pixels: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint8 (n, 3) pixels, rounded to uint8 (n,) (fast; for estimates)."""
    return cv2.cvtColor(pixels.reshape(-1, 1, 3), cv2.COLOR_RGB2GRAY).reshape(-1)


def _check_rgb(frame: np.ndarray) -> None:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 array (h, w, 3), got {frame.dtype} "
                         f"{frame.shape}")


def _shot_pixels(frames: Sequence[np.ndarray]) -> np.ndarray:
    """All pixels of the frames as uint8 (n, 3), evenly strided down to _MAX_SAMPLES."""
    for f in frames:
        _check_rgb(f)
    pixels = np.concatenate([f.reshape(-1, 3) for f in frames], axis=0)
    step = -(-len(pixels) // _MAX_SAMPLES)  # ceil division
    return pixels[::step]


def _apply_to_pixels(pixels: np.ndarray, corr: ShotCorrection) -> np.ndarray:
    """apply_correction on uint8 (n, 3) pixels."""
    return apply_correction(pixels.reshape(-1, 1, 3), corr).reshape(-1, 3)


def _black_offset(pixels: np.ndarray, cfg: CorrectionConfig) -> float:
    """Levels (gamma 0-255) to remove so the low luma percentile sits at the black target."""
    low = float(np.percentile(_luma8(pixels), cfg.exposure_low_pct))
    return float(np.clip(low - cfg.exposure_black_target, 0.0, cfg.exposure_max_offset))


def _wb_gains(pixels: np.ndarray, cfg: CorrectionConfig) -> tuple[float, float, float]:
    """Von Kries gains (R, G, B; G = 1) that map the estimated illuminant to grey.

    The illuminant is the Minkowski p-norm mean of each channel in linear light over the
    usable pixels (not clipped, not near-black): p = 1 is gray-world, large p tends to
    max-RGB (white patch). Computed from per-channel level histograms (pixels are uint8).
    """
    usable = (pixels.max(axis=1) < cfg.wb_clip_level) & (_luma8(pixels) >= cfg.wb_black_level)
    n = int(usable.sum())
    if n < cfg.wb_min_pixels:
        return (1.0, 1.0, 1.0)
    chosen = pixels[usable]  # (n, 3) uint8
    p = 1.0 if cfg.wb == "gray-world" else float(cfg.wb_power)
    level_power = _LINEAR_LEVELS**p  # (256,) float64, linear value of each level, ** p
    illum = np.array([
        (np.bincount(chosen[:, c], minlength=256) @ level_power / n) ** (1.0 / p)
        for c in range(3)
    ])  # (3,) R, G, B
    if np.any(illum <= 1e-6):
        return (1.0, 1.0, 1.0)
    gains = np.clip(illum[1] / illum, 1.0 / cfg.wb_max_gain, cfg.wb_max_gain)
    return (float(gains[0]), 1.0, float(gains[2]))


def _exposure_gain(pixels: np.ndarray, cfg: CorrectionConfig) -> float:
    """Linear gain that lifts the high luma percentile to the white target (clamped)."""
    high = float(np.percentile(_luma8(pixels), cfg.exposure_high_pct))
    lin_high = float(srgb_to_linear(np.float32(max(high, 1.0) / 255.0)))
    lin_target = float(srgb_to_linear(np.float32(cfg.exposure_white_target / 255.0)))
    return float(np.clip(lin_target / lin_high, cfg.exposure_min_gain, cfg.exposure_max_gain))
