"""sRGB <-> CIE Lab in torch (D65 white, 2-degree observer, sRGB gamma).

Same constants and piecewise functions as scikit-image's ``rgb2lab`` / ``lab2rgb``, so the
two agree to float32 rounding. Channels are on dim -3: ``(3, H, W)`` or ``(B, 3, H, W)``.
Every conversion runs in float32 with autocast disabled, whatever the caller's context.

The uint8 edges used by colorize live here too: L of 8-bit grey or RGB pixels (exact, by
tables), and Lab -> 8-bit sRGB with a gamut mapping that shrinks the chroma of out-of-gamut
pixels (never their lightness), so that clipping to [0, 1] cannot change L.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from colorizer.errors import InputError

# Linear sRGB -> XYZ (rows X, Y, Z), as in scikit-image.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)  # XYZ of the reference white, Y = 1
_EPS = 0.008856  # Lab f(t) switches from cube root to linear below this t
_KAPPA = 7.787  # slope of the linear part of f(t)
_F_EPS = 0.2068966  # f(_EPS): inverse switch point


def _check_channels(x: torch.Tensor, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise InputError(
            f"{name} must have 3 channels on dim -3, e.g. (B, 3, H, W); got {tuple(x.shape)}"
        )


def _mix(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 colour matrix over the channel dim -3 of x."""
    return torch.einsum("ij,...jhw->...ihw", matrix, x)


@lru_cache(maxsize=8)
def _constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(xyz_from_rgb (3, 3), white (3, 1, 1)) in float32 on device, made once per device."""
    m = torch.tensor(_XYZ_FROM_RGB, dtype=torch.float32, device=device)
    white = torch.tensor(_WHITE_D65, dtype=torch.float32, device=device).view(3, 1, 1)
    return m, white


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Gamma-encoded sRGB in [0, 1] -> linear sRGB (the inverse sRGB transfer curve)."""
    return torch.where(x > 0.04045, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, x / 12.92)


def _f(t: torch.Tensor) -> torch.Tensor:
    """Lab's f(t): cube root above _EPS, linear below."""
    return torch.where(t > _EPS, t.clamp_min(_EPS) ** (1.0 / 3.0), _KAPPA * t + 16.0 / 116.0)


def luminance_to_L(y: torch.Tensor) -> torch.Tensor:
    """Relative luminance Y (white = 1) -> L in [0, 100]."""
    return 116.0 * _f(y) - 16.0


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (..., 3, H, W) -> Lab float32 (..., 3, H, W): L in [0, 100], ab ~±110."""
    _check_channels(rgb, "rgb")
    with torch.autocast(device_type=rgb.device.type, enabled=False):
        x = rgb.float()
        xyz_from_rgb, white = _constants(x.device)
        lin = srgb_to_linear(x)
        t = _mix(lin, xyz_from_rgb) / white  # (..., 3, H, W) XYZ relative to white
        fx, fy, fz = _f(t).unbind(-3)
        return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def lab_to_linear(
    L: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L, a, b (any one shape, float32) -> linear sRGB (R, G, B) of that shape, unclipped.

    As in scikit-image, negative Z (far out-of-gamut Lab) is clamped to 0 before the inverse.
    """
    fy = (L + 16.0) / 116.0
    f = (fy + a / 500.0, fy, (fy - b / 200.0).clamp_min(0.0))
    x, y, z = (
        torch.where(fc > _F_EPS, fc * fc * fc, (fc - 16.0 / 116.0) / _KAPPA) * white
        for fc, white in zip(f, _WHITE_D65, strict=True)
    )
    m = _rgb_from_xyz()
    return tuple(  # type: ignore[return-value]
        row[0] * x + row[1] * y + row[2] * z for row in m
    )


@lru_cache(maxsize=1)
def _rgb_from_xyz() -> tuple[tuple[float, ...], ...]:
    """The inverse of _XYZ_FROM_RGB, computed in float64, as Python floats."""
    inv = torch.linalg.inv(torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64))
    return tuple(tuple(float(v) for v in row) for row in inv)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    """Linear sRGB -> gamma-encoded sRGB (the sRGB transfer curve), unclipped."""
    return torch.where(
        lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055, 12.92 * lin
    )


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lab (..., 3, H, W) -> sRGB float32 (..., 3, H, W), clipped to [0, 1] unless clip=False."""
    _check_channels(lab, "lab")
    with torch.autocast(device_type=lab.device.type, enabled=False):
        rgb = linear_to_srgb(torch.stack(lab_to_linear(*lab.float().unbind(-3)), dim=-3))
        return rgb.clamp(0.0, 1.0) if clip else rgb


def split_lab(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) Lab -> (L (B, 1, H, W) in [0, 100], ab (B, 2, H, W))."""
    return lab[:, :1], lab[:, 1:]


def join_lab(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, h, w) -> Lab (B, 3, H, W); ab resized bilinearly to L's size."""
    if ab.shape[-2:] != L.shape[-2:]:
        ab = torch.nn.functional.interpolate(
            ab.float(), size=L.shape[-2:], mode="bilinear", align_corners=False
        )
    return torch.cat((L.float(), ab.float()), dim=1)


# --------------------------------------------------------------------------- uint8 edges
# Lab <-> 8-bit sRGB for colorize: L from the input's own pixels, and composition back to
# uint8 with a gamut mapping that never changes L.

_GAMUT_TOL = 1e-4  # linear values this far outside [0, 1] count as in gamut (float32 noise)
_GAMUT_STEPS = 8  # bisection steps of the chroma scale: 1/256 of the predicted chroma


@lru_cache(maxsize=4)
def _linear_lut(device: torch.device) -> torch.Tensor:
    """(256,) float32 linear value of each uint8 sRGB level (computed in float64)."""
    v = torch.arange(256, dtype=torch.float64) / 255.0
    return srgb_to_linear(v).to(device=device, dtype=torch.float32)


@lru_cache(maxsize=4)
def _gamma_lut(device: torch.device) -> torch.Tensor:
    """(65536,) uint8 sRGB of linear values k / 65535 (rounded, computed in float64)."""
    lin = torch.arange(65536, dtype=torch.float64) / 65535.0
    return (linear_to_srgb(lin) * 255.0).round().to(device=device, dtype=torch.uint8)


@lru_cache(maxsize=4)
def _grey_lut(device: torch.device) -> torch.Tensor:
    """(256,) float32 L of each grey level 0..255 (R = G = B)."""
    return luminance_to_L(_linear_lut(device) * sum(_XYZ_FROM_RGB[1]))


def grey_u8_to_L(grey: torch.Tensor) -> torch.Tensor:
    """uint8 grey (B, H, W) -> L (B, 1, H, W) float32: exact, by a 256-entry table."""
    return _grey_lut(grey.device)[grey.long()][:, None]


def rgb_u8_to_L(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (B, H, W, 3) -> L (B, 1, H, W) float32 in [0, 100] (as `rgb_to_lab`)."""
    lin = _linear_lut(rgb.device)[rgb.long()]  # (B, H, W, 3)
    w = _XYZ_FROM_RGB[1]
    y = lin[..., 0] * w[0] + lin[..., 1] * w[1] + lin[..., 2] * w[2]
    return luminance_to_L(y)[:, None]


def _outside(rgb: tuple[torch.Tensor, ...]) -> torch.Tensor:
    bad = torch.zeros_like(rgb[0], dtype=torch.bool)
    for c in rgb:
        bad |= (c < -_GAMUT_TOL) | (c > 1 + _GAMUT_TOL)
    return bad


def linear_in_gamut(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, H, W) -> linear sRGB float32 (B, 3, H, W) in [0, 1], L kept.

    Pixels whose Lab lies outside the sRGB gamut get their ab scaled down (same hue, less
    chroma; bisection on the scale) until they fit, instead of clipping RGB, which would
    change their lightness. ab = 0 is always in gamut for L in [0, 100].
    """
    with torch.autocast(device_type=L.device.type, enabled=False):
        L, a, b = L.float()[:, 0], ab.float()[:, 0], ab.float()[:, 1]
        rgb = lab_to_linear(L, a, b)
        bad = _outside(rgb)
        if bool(bad.any()):
            where = bad.nonzero(as_tuple=True)
            Lb, ab_, bb = L[where], a[where], b[where]
            lo, hi = torch.zeros_like(Lb), torch.ones_like(Lb)
            for _ in range(_GAMUT_STEPS):
                mid = (lo + hi) / 2
                ok = ~_outside(lab_to_linear(Lb, ab_ * mid, bb * mid))
                lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
            fixed = lab_to_linear(Lb, ab_ * lo, bb * lo)
            rgb = tuple(c.index_put(where, f) for c, f in zip(rgb, fixed, strict=True))
        return torch.stack(rgb, 1).clamp_(0.0, 1.0)


def lab_to_rgb_in_gamut(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, H, W) -> sRGB float32 (B, 3, H, W) in [0, 1] with L kept
    (the gamut mapping of `linear_in_gamut`, then the sRGB gamma)."""
    return linear_to_srgb(linear_in_gamut(L, ab))


def lab_to_srgb_u8(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, H, W) -> uint8 sRGB (B, H, W, 3), gamut-mapped (L kept);
    the gamma by a 65536-entry table on the linear value (exact to the rounding)."""
    lin = linear_in_gamut(L, ab)  # (B, 3, H, W)
    index = lin.permute(0, 2, 3, 1).mul_(65535.0).round_().long()
    return _gamma_lut(lin.device)[index]
