"""Optional class rebalancing: prior from images, smoothing, weights, per-pixel weights."""

import math

import cv2
import numpy as np
import pytest
import torch

from colorizer.bins import NUM_BINS, ab_bins, soft_encode
from colorizer.errors import ConfigError, DataError
from colorizer.lab import lab_to_rgb
from colorizer.rebalance import (
    RebalanceConfig,
    ab_histogram,
    class_weights,
    pixel_weights,
    prior_from_images,
    prior_from_paths,
    smoothed_prior,
)


def _bin_of(a: float, b: float) -> int:
    return int(((ab_bins() - torch.tensor([a, b])).norm(dim=1)).argmin())


def test_histogram_counts_nearest_bins() -> None:
    ab = torch.zeros(1, 2, 4, 4)
    ab[0, 0, :, :3] = 31.0  # 12 pixels near bin (30, 0), 4 near (0, 0)
    counts = ab_histogram(ab)
    assert counts.dtype == torch.float64 and counts.shape == (NUM_BINS,)
    assert counts[_bin_of(30, 0)] == 12 and counts[_bin_of(0, 0)] == 4 and counts.sum() == 16


def test_smoothed_prior_spreads_like_a_gaussian() -> None:
    counts = torch.zeros(NUM_BINS, dtype=torch.float64)
    centre = _bin_of(0, 0)
    counts[centre] = 100
    prior = smoothed_prior(counts, sigma=5.0, eps=0.0)
    assert math.isclose(float(prior.sum()), 1.0, rel_tol=1e-12)
    # neighbours 10 apart get exp(-10^2 / (2 * 5^2)) = e^-2 of the centre's share
    ratio = prior[_bin_of(10, 0)] / prior[centre]
    assert math.isclose(float(ratio), math.exp(-2.0), rel_tol=1e-9)
    with_eps = smoothed_prior(counts, sigma=5.0, eps=1e-5)
    assert torch.all(with_eps > 0) and math.isclose(float(with_eps.sum()), 1.0, rel_tol=1e-12)
    with pytest.raises(DataError):
        smoothed_prior(torch.zeros(NUM_BINS))


def test_class_weights() -> None:
    g = torch.Generator().manual_seed(0)
    prior = torch.rand(NUM_BINS, generator=g, dtype=torch.float64) ** 4 + 1e-6
    prior /= prior.sum()
    w = class_weights(prior, lam=0.5)
    assert math.isclose(float((prior * w.double()).sum()), 1.0, rel_tol=1e-5)  # E_p[w] = 1
    rare, common = int(prior.argmin()), int(prior.argmax())
    assert w[rare] > w[common]
    expected = 1 / (0.5 * prior + 0.5 / NUM_BINS)
    assert torch.allclose(w.double(), expected / (prior * expected).sum(), rtol=1e-5)
    assert torch.allclose(class_weights(prior, lam=1.0), torch.ones(NUM_BINS))
    inv = class_weights(prior, lam=0.0).double()
    assert torch.allclose(inv * prior, torch.full_like(prior, 1 / NUM_BINS), rtol=1e-4)


def test_pixel_weights_take_nearest_bin() -> None:
    weights = torch.arange(NUM_BINS, dtype=torch.float32)
    ab = ab_bins()[[7, 200]].T.reshape(1, 2, 1, 2) + 0.5
    pw = pixel_weights(weights, soft_encode(ab))
    assert pw.shape == (1, 1, 2) and pw.tolist() == [[[7.0, 200.0]]]


def _two_colour_rgb() -> torch.Tensor:
    """(1, 3, 16, 16) sRGB: 3/4 of the pixels one colour, 1/4 another (at bin centres)."""
    lab = torch.zeros(1, 3, 16, 16)
    lab[:, 0] = 60.0
    lab[0, 1:, :, :12] = torch.tensor([20.0, 30.0]).view(2, 1, 1)
    lab[0, 1:, :, 12:] = torch.tensor([-30.0, -20.0]).view(2, 1, 1)
    return lab_to_rgb(lab)


def test_prior_from_images_and_paths(tmp_path) -> None:
    rgb = _two_colour_rgb()
    cfg = RebalanceConfig(enabled=True)
    prior = prior_from_images([rgb, rgb[0]], cfg)
    a, b = _bin_of(20, 30), _bin_of(-30, -20)
    assert 2.5 < float(prior[a] / prior[b]) < 3.5
    assert int(prior.argmax()) == a
    img = (rgb[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    from_file = prior_from_paths([tmp_path / "x.png"], cfg)
    assert int(from_file.argmax()) == a
    with pytest.raises(DataError):
        prior_from_paths([tmp_path / "missing.png"], cfg)


def test_config_validation() -> None:
    assert RebalanceConfig().enabled is False  # off by default, as in the paper
    with pytest.raises(ConfigError):
        RebalanceConfig(lam=1.5)
