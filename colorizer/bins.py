"""The 313 ab bins, soft-encoding of ground-truth ab, soft cross-entropy, annealed-mean decoding.

Bin k is output channel k of the network (and of Zhang's released models); the centres are
package data (``colorizer/data/ab_bins_313.csv``, Zhang's ``pts_in_hull``, grid step 10).

Soft-encoding (fast path): the 5 nearest bins of a point depend only on where the point lies
in ab, so a lookup table over a fine ab grid (cells of 2x2 ab units over [-128, 128)^2) holds,
per cell, every bin that can be among the 5 nearest for *some* point of that cell (at most 12,
a conservative bound from min/max cell-to-bin distances, computed once in float64). Per pixel
the encoder then measures only those <= 12 candidates instead of all 313, picks the 5 nearest
with topk and weighs them with the Gaussian: exact, all on the tensor's device, no Python loop
over pixels. ``soft_encode_bruteforce`` is the float64 reference over all 313 bins.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from colorizer.errors import InputError

NUM_BINS = 313
AB_NORM = 110.0  # Zhang's ab scale: ab / 110 is roughly in [-1, 1]
DEFAULT_K = 5  # soft-encoding: number of nearest bins
DEFAULT_SIGMA = 5.0  # soft-encoding: Gaussian sigma in ab units
DEFAULT_TEMPERATURE = 0.5  # annealed mean

_LUT_LO = -128.0  # ab range covered by the candidate table: [_LUT_LO, -_LUT_LO)
_LUT_CELL = 2.0  # candidate-table cell size in ab units
_LUT_N = 128  # cells per axis: (-2 * _LUT_LO) / _LUT_CELL
_FAR = 1.0e4  # centre of the padding bin (index NUM_BINS) used to fill candidate lists


class SoftTargets(NamedTuple):
    """Sparse soft-encoded targets: k bins per pixel, nearest first."""

    index: torch.Tensor  # (B, k, h, w) int64 bin indices
    weight: torch.Tensor  # (B, k, h, w) float32, sums to 1 over k


@lru_cache(maxsize=1)
def _bins_numpy() -> np.ndarray:
    """(313, 2) float64 bin centres (a, b) read from the package data, order kept."""
    ref = resources.files("colorizer") / "data" / "ab_bins_313.csv"
    with resources.as_file(ref) as path:
        centres = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    if centres.shape != (NUM_BINS, 2):
        raise RuntimeError(
            f"colorizer/data/ab_bins_313.csv holds {centres.shape}, expected (313, 2)"
        )
    centres.setflags(write=False)
    return centres


@lru_cache(maxsize=8)
def _bins_on(device: torch.device) -> torch.Tensor:
    return torch.from_numpy(_bins_numpy().copy()).float().to(device)


def ab_bins(device: torch.device | str = "cpu") -> torch.Tensor:
    """(313, 2) float32 bin centres (a, b) on device; cached, do not modify in place."""
    return _bins_on(torch.device(device))


def _candidate_table(k: int) -> np.ndarray:
    """(cells, K) int64: per grid cell, every bin that can be among the k nearest to a point in it.

    A bin c can be among the k nearest for a point of the cell only if its smallest distance to
    the cell is <= the k-th smallest over bins of their largest distance to the cell. Lists are
    padded with NUM_BINS, the index of a far-away dummy centre.
    """
    centres = _bins_numpy()
    n = _LUT_N
    lo = (_LUT_LO + _LUT_CELL * np.arange(n))[:, None]  # (n, 1) lower cell edges, a or b

    def near_far2(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 313) squared smallest / largest 1-D distance from each cell span to each centre."""
        near = np.maximum(0.0, np.maximum(lo - c, c - (lo + _LUT_CELL)))
        far = np.maximum(np.abs(lo - c), np.abs(lo + _LUT_CELL - c))
        return near**2, far**2

    na2, fa2 = near_far2(centres[:, 0])
    nb2, fb2 = near_far2(centres[:, 1])
    near2 = (na2[:, None] + nb2[None, :]).reshape(n * n, NUM_BINS)  # cell (ia, ib) -> ia*n + ib
    far2 = (fa2[:, None] + fb2[None, :]).reshape(n * n, NUM_BINS)
    kth_far2 = np.partition(far2, k - 1, axis=1)[:, k - 1 : k]
    is_candidate = near2 <= kth_far2 * (1 + 1e-9) + 1e-9
    width = int(is_candidate.sum(1).max())
    order = np.argsort(~is_candidate, axis=1, kind="stable")[:, :width]  # candidates first
    table = np.where(np.take_along_axis(is_candidate, order, 1), order, NUM_BINS)
    return table.astype(np.int64)


class _EncoderTables(NamedTuple):
    index: torch.Tensor  # (cells * K,) int64 candidate bin indices, cell-major
    a: torch.Tensor  # (cells, K) float32 candidate centres, a
    b: torch.Tensor  # (cells, K) float32 candidate centres, b
    width: int  # K


@lru_cache(maxsize=8)
def _encoder_tables(device: torch.device, k: int) -> _EncoderTables:
    """The candidate table on device, with the candidates' centres laid out beside it."""
    table = torch.from_numpy(_candidate_table(k))  # (cells, K)
    far = torch.full((1, 2), _FAR, device="cpu")
    padded = torch.cat((torch.from_numpy(_bins_numpy().copy()).float(), far))  # (314, 2)
    centres = padded[table]  # (cells, K, 2)
    return _EncoderTables(
        index=table.reshape(-1).to(device),
        a=centres[..., 0].contiguous().to(device),
        b=centres[..., 1].contiguous().to(device),
        width=table.shape[1],
    )


def _check_ab(ab: torch.Tensor) -> None:
    if ab.dim() != 4 or ab.shape[1] != 2:
        raise InputError(f"ab must be (B, 2, h, w); got {tuple(ab.shape)}")


def soft_encode(ab: torch.Tensor, k: int = DEFAULT_K, sigma: float = DEFAULT_SIGMA) -> SoftTargets:
    """Soft-encode ground-truth ab (B, 2, h, w) onto its k nearest bins (Gaussian, normalised).

    Exact for ab in [-128, 128)^2 (all of sRGB); beyond it the candidates of the nearest border
    cell are used. Runs in float32 outside autocast on ab's device.
    """
    _check_ab(ab)
    tables = _encoder_tables(ab.device, k)
    n = _LUT_N
    with torch.autocast(device_type=ab.device.type, enabled=False):
        a, b = ab.float().unbind(1)  # (B, h, w) each
        ia = ((a - _LUT_LO) / _LUT_CELL).floor_().clamp_(0, n - 1)
        ib = ((b - _LUT_LO) / _LUT_CELL).floor_().clamp_(0, n - 1)
        cell = (ia * n + ib).long()  # (B, h, w) cell id
        da2 = (tables.a[cell] - a.unsqueeze(-1)).square_()  # (B, h, w, K) to candidate bins
        d2 = da2 + (tables.b[cell] - b.unsqueeze(-1)).square_()  # (B, h, w, K) squared distance
        d2k, pick = d2.topk(k, dim=-1, largest=False, sorted=True)  # (B, h, w, k) nearest first
        index = tables.index[cell.unsqueeze(-1) * tables.width + pick]
        # Subtracting the nearest distance leaves normalised weights unchanged, avoids underflow.
        w = torch.exp((d2k[..., :1] - d2k) / (2.0 * sigma**2))
        w = w / w.sum(-1, keepdim=True)
        return SoftTargets(index.permute(0, 3, 1, 2), w.permute(0, 3, 1, 2))


def soft_encode_bruteforce(
    ab: torch.Tensor, k: int = DEFAULT_K, sigma: float = DEFAULT_SIGMA
) -> torch.Tensor:
    """Reference soft-encoding in float64 against all 313 bins: dense (B, 313, h, w) float64."""
    _check_ab(ab)
    x = ab.double().permute(0, 2, 3, 1).unsqueeze(-2)  # (B, h, w, 1, 2)
    c = torch.from_numpy(_bins_numpy().copy()).to(ab.device)  # (313, 2) float64
    d2 = (x - c).square().sum(-1)  # (B, h, w, 313)
    d2k, index = d2.topk(k, dim=-1, largest=False, sorted=True)
    w = torch.exp(-(d2k - d2k[..., :1]) / (2.0 * sigma**2))
    w = w / w.sum(-1, keepdim=True)
    dense = torch.zeros_like(d2).scatter_(-1, index, w)
    return dense.permute(0, 3, 1, 2)


def to_dense(targets: SoftTargets, num_bins: int = NUM_BINS) -> torch.Tensor:
    """Sparse soft targets -> dense (B, num_bins, h, w) distribution."""
    b, _, h, w = targets.index.shape
    dense = targets.weight.new_zeros(b, num_bins, h, w)
    return dense.scatter_(1, targets.index, targets.weight)


def downsample_ab(ab: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """ab (B, 2, H, W) -> (B, 2, H/factor, W/factor): mean over each factor x factor block.

    Targets live at the network's 1/4 output resolution.
    """
    _check_ab(ab)
    with torch.autocast(device_type=ab.device.type, enabled=False):
        return F.avg_pool2d(ab.float(), factor)


def soft_cross_entropy(
    logits: torch.Tensor,
    targets: SoftTargets,
    pixel_weight: torch.Tensor | None = None,
    per_image: bool = False,
) -> torch.Tensor:
    """Mean over pixels of -sum_q Z_q log softmax(logits)_q (Zhang's multinomial loss).

    logits: (B, 313, h, w); targets: sparse, same h, w; pixel_weight: optional (B, h, w)
    class-rebalancing weights. Returns a float32 scalar, or (B,) with ``per_image``.
    """
    if logits.shape[0] != targets.index.shape[0] or logits.shape[2:] != targets.index.shape[2:]:
        raise InputError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.index.shape)} differ in "
            "batch or spatial size; encode ab at the logits' resolution (downsample_ab)"
        )
    logp = F.log_softmax(logits.float(), dim=1)  # (B, 313, h, w)
    nll = -(logp.gather(1, targets.index) * targets.weight).sum(1)  # (B, h, w)
    if pixel_weight is not None:
        nll = nll * pixel_weight
    return nll.flatten(1).mean(1) if per_image else nll.mean()


def annealed_mean(logits: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """Decode (B, 313, h, w) logits to ab (B, 2, h, w): sum_q softmax(logits / T)_q * centre_q.

    T = 1 is the mean of the predicted distribution, T -> 0 its mode; T = 0 takes the argmax.
    """
    if temperature < 0:
        raise InputError(f"temperature must be >= 0, got {temperature}")
    centres = ab_bins(logits.device)  # (313, 2)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        z = logits.float()
        if temperature == 0:
            return centres[z.argmax(1)].permute(0, 3, 1, 2)
        p = torch.softmax(z / temperature, dim=1)  # (B, 313, h, w)
        return torch.einsum("bqhw,qc->bchw", p, centres)
