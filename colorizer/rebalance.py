"""Optional class rebalancing (Zhang et al. 2016, eq. 3-4); off by default, as in the paper.

prior p: how often each of the 313 bins is the nearest bin of a ground-truth pixel, over a
dataset's images, smoothed in ab with a Gaussian (sigma 5 ab units), plus epsilon for empty
bins. Class weights w ~ ((1 - lambda) p + lambda / 313)^-1, scaled so that sum_q p_q w_q = 1.
A pixel's loss weight is the weight of its nearest ground-truth bin.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from colorizer.bins import NUM_BINS, SoftTargets, ab_bins, downsample_ab, soft_encode
from colorizer.errors import ConfigError, DataError
from colorizer.images import read_rgb
from colorizer.lab import rgb_to_lab


@dataclass(frozen=True)
class RebalanceConfig:
    enabled: bool = False  # the paper trains without rebalancing
    lam: float = 0.5  # weight of the uniform distribution mixed into the prior
    sigma: float = 5.0  # smoothing of the prior in ab units
    eps: float = 1e-5  # added to every bin of the smoothed prior (empty bins)

    def __post_init__(self) -> None:
        if not 0.0 <= self.lam <= 1.0:
            raise ConfigError(f"rebalancing lambda must be in [0, 1], got {self.lam}")
        if self.sigma <= 0 or self.eps < 0:
            raise ConfigError(f"need sigma > 0 and eps >= 0, got {self.sigma}, {self.eps}")


def ab_histogram(ab: torch.Tensor) -> torch.Tensor:
    """ab (B, 2, h, w) -> (313,) float64 count of pixels per nearest bin, on ab's device."""
    nearest = soft_encode(ab, k=1).index  # (B, 1, h, w)
    return torch.bincount(nearest.flatten(), minlength=NUM_BINS).double()


def smoothed_prior(counts: torch.Tensor, sigma: float = 5.0, eps: float = 1e-5) -> torch.Tensor:
    """(313,) bin counts -> (313,) float64 prior: Gaussian-smoothed in ab, + eps, sums to 1.

    Each bin's mass is spread over the bins with weights exp(-d^2 / 2 sigma^2) (d: distance
    between bin centres in ab), normalised so no mass is lost outside the gamut.
    """
    total = counts.sum()
    if total <= 0:
        raise DataError("the ab histogram is empty: no pixels were counted for the prior")
    p = counts.double() / total
    centres = ab_bins(counts.device).double()  # (313, 2)
    kernel = torch.exp(-torch.cdist(centres, centres).square() / (2.0 * sigma**2))  # (313, 313)
    kernel = kernel / kernel.sum(0, keepdim=True)  # column j: where bin j's mass goes
    prior = kernel @ p + eps
    return prior / prior.sum()


def class_weights(prior: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """(313,) prior -> (313,) float32 weights, ((1-lam) p + lam/313)^-1 with E_p[w] = 1."""
    w = 1.0 / ((1.0 - lam) * prior.double() + lam / NUM_BINS)
    return (w / (prior.double() * w).sum()).float()


def pixel_weights(weights: torch.Tensor, targets: SoftTargets) -> torch.Tensor:
    """Per-pixel loss weights (B, h, w): the class weight of each pixel's nearest bin."""
    return weights.to(targets.weight.device)[targets.index[:, 0]]


def prior_from_images(images: Iterable[torch.Tensor], cfg: RebalanceConfig) -> torch.Tensor:
    """Prior over the bins from sRGB batches (B, 3, H, W) in [0, 1], at 1/4 resolution (the
    resolution of the targets)."""
    counts = torch.zeros(NUM_BINS, dtype=torch.float64)
    for rgb in images:
        batch = rgb if rgb.dim() == 4 else rgb.unsqueeze(0)
        ab = downsample_ab(rgb_to_lab(batch)[:, 1:])
        counts += ab_histogram(ab).cpu()
    return smoothed_prior(counts, cfg.sigma, cfg.eps)


def prior_from_paths(paths: Sequence[Path], cfg: RebalanceConfig) -> torch.Tensor:
    """Prior over the bins from image files (read one at a time)."""
    if not paths:
        raise DataError("no images given to compute the ab prior from")
    batches = (torch.from_numpy(read_rgb(p)).permute(2, 0, 1).float().div(255.0) for p in paths)
    return prior_from_images(batches, cfg)
