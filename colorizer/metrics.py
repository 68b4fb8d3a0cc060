"""Colorization metrics, pure torch: tensors in, per-image tensors out (no I/O, no state).

Conventions: images are batches on dim 0, channels on dim 1; sRGB in [0, 1], ab in Lab units.
Every function returns one value per image, shape (B,), float32 on the input's device; take
``.mean()`` for a batch figure. Shared by training (validation) and evaluation.

- ``psnr``: peak signal-to-noise ratio of sRGB images, in dB (peak 1.0).
- ``ab_accuracy``: Zhang et al.'s raw accuracy curve: the fraction of pixels whose ab error
  (Euclidean distance in ab) is within each threshold 0, 1, ..., 150.
- ``auc_ab``: the area under that curve, normalised to [0, 1] (Zhang's "AuC").
- ``colorfulness``: Hasler and Suesstrunk's (2003) colourfulness of sRGB images (0-255 scale).
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
    """(B,) Hasler-Suesstrunk colourfulness of sRGB (B, 3, H, W) in [0, 1], on the 0-255 scale:
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
