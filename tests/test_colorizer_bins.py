"""The 313 bins, soft-encoding (fast vs float64 brute force), soft CE, annealed mean."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colorizer.bins import (
    NUM_BINS,
    SoftTargets,
    ab_bins,
    annealed_mean,
    downsample_ab,
    soft_cross_entropy,
    soft_encode,
    soft_encode_bruteforce,
    to_dense,
)
from colorizer.errors import InputError
from colorizer.lab import rgb_to_lab


def test_bins_are_zhangs_313_in_order() -> None:
    c = ab_bins()
    assert c.shape == (NUM_BINS, 2) and c.dtype == torch.float32
    assert torch.equal(c[0], torch.tensor([-90.0, 50.0]))  # pts_in_hull[0]
    assert torch.equal(c[-1], torch.tensor([100.0, 0.0]))  # pts_in_hull[312]
    assert torch.all(c % 10 == 0)  # grid of 10
    assert len({tuple(p) for p in c.tolist()}) == NUM_BINS
    # ordered by a, then b
    keys = (c[:, 0] * 1000 + c[:, 1]).tolist()
    assert keys == sorted(keys)


def _ab_samples() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    rand = torch.rand(2, 2, 24, 24, generator=g) * 240 - 120  # all over the sRGB ab range
    # just off bin centres and lookup-cell edges (even numbers): near-ties and cell boundaries
    grid = torch.arange(-120.0, 120.0, 10.0)
    a, b = torch.meshgrid(grid + 1e-3, grid + 2.002, indexing="ij")
    edges = torch.stack((a, b)).unsqueeze(0)
    rgb = torch.rand(1, 3, 48, 48, generator=g)
    real = downsample_ab(rgb_to_lab(rgb)[:, 1:], 2)
    return torch.cat((rand, edges, real))


def test_soft_encode_matches_bruteforce_float64() -> None:
    ab = _ab_samples()
    fast = soft_encode(ab)
    ref = soft_encode_bruteforce(ab)
    assert ref.dtype == torch.float64
    assert (to_dense(fast).double() - ref).abs().max() < 1e-3


def test_soft_targets_shape_and_content() -> None:
    ab = _ab_samples()
    t = soft_encode(ab)
    assert t.index.shape == (ab.shape[0], 5, *ab.shape[2:]) and t.index.dtype == torch.int64
    assert torch.allclose(t.weight.sum(1), torch.ones(1), atol=1e-6)
    assert torch.all(t.weight[:, :-1] >= t.weight[:, 1:] - 1e-7)  # nearest first
    assert t.index.min() >= 0 and t.index.max() < NUM_BINS
    # a pixel exactly on a bin centre puts most weight on that bin
    on_bin = ab_bins()[100].view(1, 2, 1, 1)
    t1 = soft_encode(on_bin)
    assert t1.index[0, 0, 0, 0] == 100 and t1.weight[0, 0, 0, 0] > 0.5


def test_soft_encode_sigma_and_k() -> None:
    ab = torch.tensor([[3.0], [-7.0]]).view(1, 2, 1, 1)
    for k, sigma in ((1, 5.0), (3, 2.0), (8, 10.0)):
        dense = to_dense(soft_encode(ab, k=k, sigma=sigma)).double()
        assert (dense - soft_encode_bruteforce(ab, k=k, sigma=sigma)).abs().max() < 1e-5
        assert int((dense > 0).sum()) == k


def test_soft_cross_entropy_equals_dense_formula() -> None:
    g = torch.Generator().manual_seed(4)
    ab = torch.rand(2, 2, 6, 5, generator=g) * 200 - 100
    logits = torch.randn(2, NUM_BINS, 6, 5, generator=g)
    t = soft_encode(ab)
    dense_ce = -(to_dense(t) * F.log_softmax(logits, 1)).sum(1)  # (B, h, w)
    assert torch.allclose(soft_cross_entropy(logits, t), dense_ce.mean(), rtol=1e-5)
    w = torch.rand(2, 6, 5, generator=g)
    assert torch.allclose(soft_cross_entropy(logits, t, w), (dense_ce * w).mean(), rtol=1e-5)
    with pytest.raises(InputError, match="downsample_ab"):
        soft_cross_entropy(logits[..., :4], t)


def test_annealed_mean_limits() -> None:
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, NUM_BINS, 3, 4, generator=g) * 3
    centres = ab_bins().double()
    mode = centres[logits.argmax(1)].permute(0, 3, 1, 2)  # (B, 2, h, w)
    assert torch.allclose(annealed_mean(logits, 0.0).double(), mode)
    assert torch.allclose(annealed_mean(logits, 1e-5).double(), mode, atol=1e-3)
    p = torch.softmax(logits.double(), 1)
    mean = (p.unsqueeze(2) * centres.reshape(1, NUM_BINS, 2, 1, 1)).sum(1)  # (B, 2, h, w)
    assert torch.allclose(annealed_mean(logits, 1.0).double(), mean, atol=1e-3)
    # the default T = 0.5 lies between: sharper than the mean
    half = annealed_mean(logits).double()
    assert not torch.allclose(half, mean, atol=1e-2) and not torch.allclose(half, mode, atol=1e-2)
    with pytest.raises(InputError):
        annealed_mean(logits, -1.0)


def test_downsample_ab() -> None:
    ab = torch.arange(2 * 2 * 8 * 8, dtype=torch.float32).view(2, 2, 8, 8)
    small = downsample_ab(ab)
    assert small.shape == (2, 2, 2, 2)
    assert small[0, 0, 0, 0] == ab[0, 0, :4, :4].mean()


def test_bad_ab_shape() -> None:
    with pytest.raises(InputError):
        soft_encode(torch.zeros(1, 3, 4, 4))


def test_soft_targets_is_a_tuple_of_two() -> None:
    t = soft_encode(torch.zeros(1, 2, 2, 2))
    assert isinstance(t, SoftTargets)
    index, weight = t
    assert np.isclose(float(weight.sum()), 4.0)
    assert torch.equal(index, t.index)
