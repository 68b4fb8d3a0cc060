"""sRGB <-> CIE Lab in torch (D65 white, 2-degree observer, sRGB gamma).

Same constants and piecewise functions as scikit-image's ``rgb2lab`` / ``lab2rgb``, so the
two agree to float32 rounding. Channels are on dim -3: ``(3, H, W)`` or ``(B, 3, H, W)``.
Every conversion runs in float32 with autocast disabled, whatever the caller's context.
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
def _constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(xyz_from_rgb, rgb_from_xyz, white (3, 1, 1)) in float32 on device, made once per device."""
    m = torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64, device="cpu")
    white = torch.tensor(_WHITE_D65, dtype=torch.float32, device=device).view(3, 1, 1)
    return (
        m.to(device=device, dtype=torch.float32),
        torch.linalg.inv(m).to(device=device, dtype=torch.float32),
        white,
    )


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (..., 3, H, W) -> Lab float32 (..., 3, H, W): L in [0, 100], ab ~±110."""
    _check_channels(rgb, "rgb")
    with torch.autocast(device_type=rgb.device.type, enabled=False):
        x = rgb.float()
        xyz_from_rgb, _, white = _constants(x.device)
        lin = torch.where(x > 0.04045, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, x / 12.92)
        t = _mix(lin, xyz_from_rgb) / white  # (..., 3, H, W) XYZ relative to white
        f = torch.where(t > _EPS, t.clamp_min(_EPS) ** (1.0 / 3.0), _KAPPA * t + 16.0 / 116.0)
        fx, fy, fz = f.unbind(-3)
        return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lab (..., 3, H, W) -> sRGB float32 (..., 3, H, W), clipped to [0, 1] unless clip=False.

    As in scikit-image, negative Z (far out-of-gamut Lab) is clamped to 0 before the inverse.
    """
    _check_channels(lab, "lab")
    with torch.autocast(device_type=lab.device.type, enabled=False):
        x = lab.float()
        _, rgb_from_xyz, white = _constants(x.device)
        L, a, b = x.unbind(-3)
        fy = (L + 16.0) / 116.0
        f = torch.stack((a / 500.0 + fy, fy, (fy - b / 200.0).clamp_min(0.0)), dim=-3)
        t = torch.where(f > _F_EPS, f**3, (f - 16.0 / 116.0) / _KAPPA)
        lin = _mix(t * white, rgb_from_xyz)
        rgb = torch.where(
            lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055, 12.92 * lin
        )
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
