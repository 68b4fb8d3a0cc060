"""Training-step throughput of the colorizer core: eccv16 and chen, bf16+channels_last vs fp32.

    python bench/gpu_core.py                      # on a GPU machine (< 5 min)
    python bench/gpu_core.py --device cpu --steps 2   # smoke check anywhere

A step is what training does per batch: sRGB -> Lab on the device, ab to 1/4 resolution,
soft-encoding, forward, soft cross-entropy, backward, Adam step. Synthetic images, random
weights (nothing is downloaded). Reports images/s and the share of the step spent in the
Lab conversion and in soft-encoding (CUDA events; wall clock on CPU). Results go to --out
(default: $OUT if set) as gpu_core.json and gpu_core.txt, and to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from colorizer.bins import downsample_ab, soft_cross_entropy, soft_encode  # noqa: E402
from colorizer.lab import rgb_to_lab  # noqa: E402
from colorizer.model import ModelConfig, build_model  # noqa: E402


@dataclass
class Row:
    arch: str
    size: int
    mode: str  # "fp32" or "bf16+cl"
    batch: int
    images_per_s: float | None = None
    step_ms: float | None = None
    lab_share: float | None = None  # fraction of the step in rgb_to_lab + downsample_ab
    encode_share: float | None = None  # fraction of the step in soft_encode
    peak_mem_gib: float | None = None  # CUDA only
    error: str = ""


class Clock:
    """Marks points in a step; CUDA events on GPU (no sync in the loop), perf_counter on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def intervals_ms(self) -> list[float]:
        """Milliseconds between consecutive marks (after a device sync)."""
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) for a, b in zip(self.marks, self.marks[1:], strict=False)]
        return [(b - a) * 1e3 for a, b in zip(self.marks, self.marks[1:], strict=False)]


def bench_one(row: Row, device: torch.device, steps: int, warmup: int) -> Row:
    bf16 = row.mode == "bf16+cl"
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    torch.manual_seed(0)
    with torch.device(device):
        model = build_model(ModelConfig(arch=row.arch))
    model = model.to(device, memory_format=fmt).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-5)
    g = torch.Generator(device=device).manual_seed(0)
    rgb = torch.rand(row.batch, 3, row.size, row.size, device=device, generator=g)
    rgb = rgb.contiguous(memory_format=fmt)

    def step(clock: Clock | None) -> None:
        marks = clock.mark if clock else lambda: None
        marks()
        lab = rgb_to_lab(rgb)  # (B, 3, H, W)
        L, ab = lab[:, :1], downsample_ab(lab[:, 1:])  # (B, 1, H, W), (B, 2, H/4, W/4)
        marks()
        targets = soft_encode(ab)
        marks()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(L.contiguous(memory_format=fmt))  # (B, 313, H/4, W/4)
        loss = soft_cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        marks()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        step(None)
    clock = Clock(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(clock)
    intervals = clock.intervals_ms()  # syncs
    wall_ms = (time.perf_counter() - start) * 1e3
    # per step: lab, encode, the rest (forward .. Adam); every 4th interval is between steps
    lab_ms, enc_ms, rest_ms = (sum(intervals[i::4]) for i in range(3))
    total = lab_ms + enc_ms + rest_ms
    row.step_ms = wall_ms / steps
    row.images_per_s = row.batch * steps / (wall_ms / 1e3)
    row.lab_share = lab_ms / total
    row.encode_share = enc_ms / total
    if device.type == "cuda":
        row.peak_mem_gib = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def table(rows: list[Row]) -> str:
    head = (
        f"{'arch':7s} {'size':>4s} {'mode':8s} {'batch':>5s} {'img/s':>8s} {'ms/step':>8s} "
        f"{'lab %':>6s} {'enc %':>6s} {'GiB':>6s}"
    )
    lines = [head]
    for r in rows:
        if r.error:
            lines.append(f"{r.arch:7s} {r.size:4d} {r.mode:8s} {r.batch:5d} {r.error}")
            continue
        mem = "-" if r.peak_mem_gib is None else f"{r.peak_mem_gib:.2f}"
        lines.append(
            f"{r.arch:7s} {r.size:4d} {r.mode:8s} {r.batch:5d} {r.images_per_s:8.1f} "
            f"{r.step_ms:8.1f} {100 * r.lab_share:6.2f} {100 * r.encode_share:6.2f} {mem:>6s}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=None, help="default: 5 on GPU, 1 on CPU")
    parser.add_argument("--batch", type=int, default=None, help="default: 32 on GPU, 2 on CPU")
    parser.add_argument("--sizes", type=int, nargs="+", default=[176, 224])
    parser.add_argument("--archs", nargs="+", default=["eccv16", "chen"])
    parser.add_argument("--modes", nargs="+", default=["fp32", "bf16+cl"])
    parser.add_argument("--out", type=Path, default=os.environ.get("OUT") or None)
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device here; use --device cpu for a smoke check")
        torch.backends.cudnn.benchmark = True
    gpu = device.type == "cuda"
    batch = args.batch or (32 if gpu else 2)
    warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    name = torch.cuda.get_device_name(device) if gpu else "CPU"
    header = (
        f"device {name}, torch {torch.__version__}, cudnn.allow_tf32="
        f"{torch.backends.cudnn.allow_tf32}, matmul tf32={torch.backends.cuda.matmul.allow_tf32}"
        f", {args.steps} timed steps after {warmup} warm-up"
    )
    print(header, flush=True)

    rows = []
    for arch in args.archs:
        for size in args.sizes:
            for mode in args.modes:
                row = Row(arch, size, mode, batch)
                try:
                    bench_one(row, device, args.steps, warmup)
                except torch.OutOfMemoryError:
                    row.error = "out of memory"
                if gpu:
                    torch.cuda.empty_cache()
                rows.append(row)
                print(table([row]).splitlines()[1], flush=True)
    text = header + "\n" + table(rows)
    print("\n" + text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_core.txt").write_text(text + "\n")
        payload = {"header": header, "rows": [asdict(r) for r in rows]}
        (args.out / "gpu_core.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
