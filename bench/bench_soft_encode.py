"""Soft-encoding speed: the candidate-table encoder against brute force over all 313 bins.

    python bench/bench_soft_encode.py [--batch 16] [--size 224] [--repeats 5] [--threads N]

Targets are encoded at 1/4 of the image size (as in training). All methods run side by side
in one process on the same ab; every result is checked against the float64 reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from colorizer.bins import (  # noqa: E402
    DEFAULT_K,
    DEFAULT_SIGMA,
    ab_bins,
    downsample_ab,
    soft_encode,
    soft_encode_bruteforce,
    to_dense,
)
from colorizer.lab import rgb_to_lab  # noqa: E402


def bruteforce_float32(ab: torch.Tensor) -> torch.Tensor:
    """The brute-force method in float32 (distances to all 313 bins, topk): dense output."""
    x = ab.permute(0, 2, 3, 1)  # (B, h, w, 2)
    d2 = (x.unsqueeze(-2) - ab_bins(ab.device)).square().sum(-1)  # (B, h, w, 313)
    d2k, index = d2.topk(DEFAULT_K, dim=-1, largest=False)
    w = torch.exp((d2k[..., :1] - d2k) / (2 * DEFAULT_SIGMA**2))
    w = w / w.sum(-1, keepdim=True)
    return torch.zeros_like(d2).scatter_(-1, index, w).permute(0, 3, 1, 2)


def time_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of fn() in ms, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224, help="image side; ab is encoded at 1/4")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(args.batch, 3, args.size, args.size, generator=g)
    ab = downsample_ab(rgb_to_lab(rgb)[:, 1:])  # (B, 2, size/4, size/4)
    reference = soft_encode_bruteforce(ab)

    def fast_dense() -> torch.Tensor:
        return to_dense(soft_encode(ab))

    # (name, timed call, dense result to check)
    methods: list[tuple[str, Callable[[], object], Callable[[], torch.Tensor]]] = [
        ("brute force float64 (reference)", lambda: soft_encode_bruteforce(ab), lambda: reference),
        ("brute force float32", lambda: bruteforce_float32(ab), lambda: bruteforce_float32(ab)),
        ("candidate table (sparse out)", lambda: soft_encode(ab), fast_dense),
        ("candidate table + to_dense", fast_dense, fast_dense),
    ]
    pixels = ab.shape[0] * ab.shape[2] * ab.shape[3]
    print(
        f"soft-encoding {pixels} pixels per batch ({args.batch} x {ab.shape[2]}x{ab.shape[3]}), "
        f"k={DEFAULT_K}, sigma={DEFAULT_SIGMA}, CPU, {torch.get_num_threads()} threads, "
        f"median of {args.repeats}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'method':34s} {'ms/batch':>10s} {'speed-up':>9s} {'max|diff| vs ref':>17s}")
    base = None
    for name, run, dense in methods:
        ms = time_ms(run, args.repeats)
        base = base or ms
        diff = float((dense().double() - reference).abs().max())
        print(f"{name:34s} {ms:10.1f} {base / ms:8.1f}x {diff:17.2e}")


if __name__ == "__main__":
    main()
