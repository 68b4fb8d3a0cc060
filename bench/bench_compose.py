"""Colour composition speed (`lab_to_srgb_u8`: Lab -> gamut-mapped uint8 sRGB) on CPU: the
numpy path against the torch code it replaced, side by side in one run.

    python bench/bench_compose.py [--batch 8] [--sizes 640x272,1280x720,1920x1080]
                                  [--saturations 1,1.5] [--repeats 5] [--threads N]

Inputs as `Colorizer.compose` sees them: L of real photos (scikit-image's astronaut, coffee,
chelsea, rocket, resized to each size, one per frame of the batch; scikit-image comes with
the test extra) and a model-like ab: the photos' own ab at 1/4 of a 256-pixel working size,
upsampled bilinearly and scaled by each of --saturations, so that part of it (printed: the
share of pixels bisected) is out of gamut; 1.5 puts about a quarter of the pixels out.
Times are medians over --repeats calls, the two implementations interleaved; every output is
checked against the reference (max difference in uint8 levels, share of identical values).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from colorizer.lab import (  # noqa: E402
    _lab_to_srgb_u8_reference,
    _outside,
    lab_to_linear,
    lab_to_srgb_u8,
    rgb_to_lab,
    rgb_u8_to_L,
)

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
WORK = 256  # the model's working size (short side); ab comes at 1/4 of it


def photo_frames(batch: int, width: int, height: int) -> torch.Tensor:
    """(batch, H, W, 3) uint8 RGB: scikit-image's colour photos, resized, one per frame."""
    from skimage import data

    frames = [
        cv2.resize(getattr(data, PHOTOS[i % len(PHOTOS)])()[..., :3], (width, height),
                   interpolation=cv2.INTER_AREA)
        for i in range(batch)
    ]
    return torch.from_numpy(np.stack(frames))


def model_like_inputs(rgb: torch.Tensor, saturation: float) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 RGB (B, H, W, 3) -> (L (B, 1, H, W), ab (B, 2, H, W)): the frames' ab at 1/4 of
    the working size, upsampled bilinearly as `Colorizer.compose` does, times saturation."""
    L = rgb_u8_to_L(rgb)
    ab = rgb_to_lab(rgb.permute(0, 3, 1, 2).float() / 255.0)[:, 1:]
    h, w = rgb.shape[1:3]
    low = (max(1, round(WORK / 4 * h / min(h, w))), max(1, round(WORK / 4 * w / min(h, w))))
    ab_low = F.interpolate(ab, size=low, mode="area")
    ab = F.interpolate(ab_low, size=(h, w), mode="bilinear", align_corners=False)
    return L, ab * saturation


def out_of_gamut_share(L: torch.Tensor, ab: torch.Tensor) -> float:
    """Share of the pixels whose Lab is outside the sRGB gamut (the ones bisected)."""
    return float(_outside(lab_to_linear(L[:, 0], ab[:, 0], ab[:, 1])).float().mean())


def time_both(
    runs: dict[str, Callable[[], torch.Tensor]], repeats: int
) -> dict[str, float]:
    """Median wall time in ms of each call, after one warm-up each, calls interleaved."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def compare(L: torch.Tensor, ab: torch.Tensor, repeats: int) -> str:
    """Table cells for one input: out-of-gamut share, ms/frame of both, ratio, differences."""
    runs = {
        "reference": lambda: _lab_to_srgb_u8_reference(L, ab),
        "numpy": lambda: lab_to_srgb_u8(L, ab),
    }
    ms = time_both(runs, repeats)
    diff = (runs["numpy"]().int() - runs["reference"]().int()).abs()
    ref, new = ms["reference"] / L.shape[0], ms["numpy"] / L.shape[0]
    return (
        f"{out_of_gamut_share(L, ab):12.1%} {ref:19.1f} {new:15.1f} {ref / new:8.1f}x "
        f"{int(diff.max()):9d} {float((diff == 0).float().mean()):10.4%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--sizes", default="640x272,1280x720,1920x1080", help="WxH,WxH,...")
    parser.add_argument("--saturations", default="1,1.5", help="ab scales (1: the true ab)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(
        f"lab_to_srgb_u8, batch {args.batch}, CPU, {torch.get_num_threads()} threads, "
        f"median of {args.repeats}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'size':>10s} {'ab x':>5s} {'out of gamut':>12s} {'reference ms/frame':>19s} "
        f"{'numpy ms/frame':>15s} {'speed-up':>9s} {'max diff':>9s} {'identical':>10s}"
    )
    for size in args.sizes.split(","):
        width, height = parse_size(size)
        frames = photo_frames(args.batch, width, height)
        for saturation in (float(v) for v in args.saturations.split(",")):
            L, ab = model_like_inputs(frames, saturation)
            print(f"{width:>5d}x{height:<4d} {saturation:5.2f} " + compare(L, ab, args.repeats))


if __name__ == "__main__":
    main()
