"""Colorization metrics, pure torch: tensors in, per-image tensors out (no I/O, no state).

Conventions: images are batches on dim 0, channels on dim 1; sRGB in [0, 1], ab in Lab units.
Every function returns one value per image, shape (B,), float32 on the input's device; take
``.mean()`` for a batch figure. Shared by training (validation) and evaluation.

- ``psnr``: peak signal-to-noise ratio of sRGB images, in dB (peak 1.0).
- ``ab_accuracy``: Zhang et al.'s raw accuracy curve: the fraction of pixels whose ab error
  (Euclidean distance in ab) is within each threshold 0, 1, ..., 150.
- ``auc_ab``: the area under that curve, normalised to [0, 1] (Zhang's "AuC").
- ``colorfulness``: Hasler and Suesstrunk's (2003) colorfulness of sRGB images (0-255 scale).
- ``ciede2000``: the mean CIEDE2000 colour difference of Lab images (Sharma et al. 2005).
"""

from __future__ import annotations

import torch

from colorizer.errors import InputError

AUC_MAX_THRESHOLD = 150  # ab units; the thresholds are 0, 1, ..., 150


def _check_pair(pred: torch.Tensor, true: torch.Tensor, channels: int, name: str) -> None:
    if pred.shape != true.shape or pred.dim() != 4 or pred.shape[1] != channels:
        raise InputError(
            f"{name}: expected two (B, {channels}, H, W) tensors of the same shape; got "
            f"{tuple(pred.shape)} and {tuple(true.shape)}"
        )


def psnr(pred_rgb: torch.Tensor, true_rgb: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """PSNR in dB of sRGB (B, 3, H, W) in [0, 1], per image: 10 log10(1 / MSE)."""
    _check_pair(pred_rgb, true_rgb, 3, "psnr")
    mse = (pred_rgb.float() - true_rgb.float()).square().flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(eps))


def ab_thresholds(
    max_threshold: int = AUC_MAX_THRESHOLD, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(max_threshold + 1,) float32 thresholds 0, 1, ..., max_threshold in ab units."""
    return torch.arange(max_threshold + 1, dtype=torch.float32, device=device)


def ab_accuracy(
    pred_ab: torch.Tensor, true_ab: torch.Tensor, max_threshold: int = AUC_MAX_THRESHOLD
) -> torch.Tensor:
    """(B, T) fraction of each image's pixels with ab error <= t, for t = 0, 1, ..., max."""
    _check_pair(pred_ab, true_ab, 2, "ab_accuracy")
    err = (pred_ab.float() - true_ab.float()).square().sum(1).sqrt().flatten(1)  # (B, P)
    # Histogram of the errors rounded up to whole ab units; cumulative counts give the curve.
    bins = err.ceil().clamp_max(max_threshold + 1).long()  # max + 1: beyond every threshold
    counts = torch.zeros(err.shape[0], max_threshold + 2, device=err.device)
    counts.scatter_add_(1, bins, torch.ones_like(err))
    return counts.cumsum(1)[:, : max_threshold + 1] / err.shape[1]


def auc_ab(
    pred_ab: torch.Tensor, true_ab: torch.Tensor, max_threshold: int = AUC_MAX_THRESHOLD
) -> torch.Tensor:
    """(B,) area under the ab accuracy curve over thresholds 0..max, normalised to [0, 1]
    (trapezoid rule over the unit-spaced thresholds, divided by max)."""
    curve = ab_accuracy(pred_ab, true_ab, max_threshold)
    return torch.trapezoid(curve, dx=1.0, dim=1) / max_threshold


def colorfulness(rgb: torch.Tensor) -> torch.Tensor:
    """(B,) Hasler-Suesstrunk colorfulness of sRGB (B, 3, H, W) in [0, 1], on the 0-255 scale:
    sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2), rg = R - G,
    yb = (R + G) / 2 - B."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise InputError(f"colorfulness: expected (B, 3, H, W) sRGB, got {tuple(rgb.shape)}")
    r, g, b = (255.0 * rgb.float()).flatten(2).unbind(1)  # (B, P) each
    rg = r - g
    yb = 0.5 * (r + g) - b
    std = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    mean = (rg.mean(1).square() + yb.mean(1).square()).sqrt()
    return std + 0.3 * mean


def ciede2000(pred_lab: torch.Tensor, true_lab: torch.Tensor) -> torch.Tensor:
    """(B,) mean CIEDE2000 colour difference of Lab images (B, 3, H, W), kL = kC = kH = 1
    (Sharma, Wu, Dalal 2005); computed in float64, returned as float32."""
    _check_pair(pred_lab, true_lab, 3, "ciede2000")
    return delta_e_2000(pred_lab.double(), true_lab.double()).flatten(1).mean(1).float()


def delta_e_2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """Per-pixel CIEDE2000 of Lab (B, 3, H, W) pairs -> (B, H, W), in the inputs' dtype."""
    L1, a1, b1 = lab1.unbind(1)
    L2, a2, b2 = lab2.unbind(1)
    c_mean = 0.5 * (torch.hypot(a1, b1) + torch.hypot(a2, b2))
    c7 = c_mean**7
    g = 0.5 * (1 - torch.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.rad2deg(torch.atan2(b1, a1p)) % 360  # hue angles in degrees, [0, 360)
    h2p = torch.rad2deg(torch.atan2(b2, a2p)) % 360
    chroma_zero = (c1p * c2p) == 0

    dL = L2 - L1
    dC = c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > 180, dh - 360, torch.where(dh < -180, dh + 360, dh))
    dh = torch.where(chroma_zero, torch.zeros_like(dh), dh)
    dH = 2 * torch.sqrt(c1p * c2p) * torch.sin(torch.deg2rad(dh / 2))

    L_mean = 0.5 * (L1 + L2)
    C_mean = 0.5 * (c1p + c2p)
    h_sum = h1p + h2p
    h_mean = torch.where(
        (h1p - h2p).abs() <= 180, h_sum / 2, torch.where(h_sum < 360, (h_sum + 360) / 2,
                                                         (h_sum - 360) / 2)
    )
    h_mean = torch.where(chroma_zero, h_sum, h_mean)
    def cos_deg(x: torch.Tensor) -> torch.Tensor:
        return torch.cos(torch.deg2rad(x))

    t = (1 - 0.17 * cos_deg(h_mean - 30) + 0.24 * cos_deg(2 * h_mean)
         + 0.32 * cos_deg(3 * h_mean + 6) - 0.20 * cos_deg(4 * h_mean - 63))
    d_theta = 30 * torch.exp(-(((h_mean - 275) / 25) ** 2))
    C7 = C_mean**7
    r_c = 2 * torch.sqrt(C7 / (C7 + 25.0**7))
    s_l = 1 + 0.015 * (L_mean - 50) ** 2 / torch.sqrt(20 + (L_mean - 50) ** 2)
    s_c = 1 + 0.045 * C_mean
    s_h = 1 + 0.015 * C_mean * t
    r_t = -torch.sin(torch.deg2rad(2 * d_theta)) * r_c
    terms = (dL / s_l, dC / s_c, dH / s_h)
    return torch.sqrt(terms[0] ** 2 + terms[1] ** 2 + terms[2] ** 2 + r_t * terms[1] * terms[2])
