"""Is training fed fast enough? images/s of `train` with the real loader vs the same step on a
synthetic batch already on the device (batch 64 at 176, bf16 autocast + channels_last).

    python bench/gpu_train.py                                    # GPU machine, < 5 min
    python bench/gpu_train.py --device cpu --steps 2 --batch-size 4 --size 64   # smoke check

Real loader: colorizer.train.train() itself on a generated dataset (JPEG frames of 640x360
cut from scikit-image photographs, in a temporary folder; a dataset manifest beside them),
workers decoding JPEGs, uint8 to the device; its images/s is read from metrics.jsonl after
the warm-up. Synthetic: colorizer.train.make_step (the step train() runs) on one uint8 batch
kept on the device, with the same loss syncs. Target: real >= 0.9 x synthetic.
Installs nothing, downloads nothing. GPU_TRAIN_TRACE=SECONDS dumps the stacks and exits
if it is still running then (to diagnose a hang). Results: --out (default $OUT/gpu_train or
bench_out/gpu_train) as gpu_train.json and gpu_train.txt, and stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from colorizer.model import build_model  # noqa: E402
from colorizer.train import TrainConfig, make_step, train  # noqa: E402
from manifests import FRAME_SCHEMA, layout, write_table  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina",
          "hubble_deep_field", "cat")  # fmt: skip


@dataclass
class Row:
    arch: str
    loader: str  # "real" or "synthetic"
    batch: int
    size: int
    workers: int
    images_per_s: float | None = None
    error: str = ""


def make_frames(root: Path, n: int, width: int, height: int, seed: int = 0) -> Path:
    """n JPEG frames (random crops of the photos, scaled to width x height) and a manifest."""
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    photos = [getattr(skdata, name)() for name in PHOTOS]
    rows = []
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        ch = int(rng.integers(h // 2, h + 1))
        cw = min(w, round(ch * width / height))
        top, left = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        frame = cv2.resize(img[top : top + ch, left : left + cw], (width, height))
        rel = layout.image_relpath("bench", i, i, "jpg")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])  # fmt: skip
        rows.append({"frame_id": f"bench-{i:06d}", "film_id": "bench", "source_path": "bench",
                     "source_kind": "image", "shot_index": i, "shot_start_frame": i,
                     "shot_end_frame": i + 1, "frame_index": i, "image_path": rel,
                     "width": width, "height": height, "status": "kept",
                     "split": "train"})  # fmt: skip
    frames = pd.DataFrame(rows).reindex(columns=FRAME_SCHEMA.names)
    write_table(frames, layout.dataset_manifest(root), FRAME_SCHEMA, kind="dataset", config={})
    return root


def real_rate(cfg: TrainConfig, warmup: int) -> float:
    """images/s of train() after the first `warmup` steps (from its metrics.jsonl)."""
    train(cfg, quiet=True)
    records = [json.loads(x) for x in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_s"] for r in records if r["kind"] == "train" and r["step"] > warmup]
    return sum(rates) / len(rates)


def synthetic_rate(cfg: TrainConfig, warmup: int, device: torch.device) -> float:
    """images/s of the same step on one uint8 batch already on the device."""
    torch.manual_seed(0)
    model = build_model(cfg.model_config)
    fmt = torch.channels_last if device.type == "cuda" else torch.preserve_format
    model.to(device, memory_format=fmt).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                           fused=True)  # fmt: skip
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    net = torch.compile(model) if cfg.compile else model
    step = make_step(net, opt, sched, device, cfg)
    batch = torch.randint(0, 256, (cfg.batch_size, 3, cfg.size, cfg.size), dtype=torch.uint8)
    batch = batch.to(device)
    pending = []
    for _ in range(warmup):
        pending.append(step(batch))
    torch.stack(pending).tolist()
    pending.clear()
    measured = cfg.steps - warmup
    start = time.perf_counter()
    for i in range(measured):
        pending.append(step(batch))
        if (i + 1) % cfg.log_every == 0:
            torch.stack(pending).tolist()  # the same syncs as train()
            pending.clear()
    if pending:
        torch.stack(pending).tolist()
    return measured * cfg.batch_size / (time.perf_counter() - start)


def main() -> None:
    if os.environ.get("GPU_TRAIN_TRACE"):
        import faulthandler

        faulthandler.dump_traceback_later(float(os.environ["GPU_TRAIN_TRACE"]), exit=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--arch", nargs="+", default=["chen", "eccv16"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=176)
    parser.add_argument("--steps", type=int, default=60, help="measured steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=None, help="[default: 20 GPU, 1 CPU]")
    parser.add_argument("--workers", type=int, default=None,
                        help="loader workers [default: cores - 2, at most 12]")  # fmt: skip
    parser.add_argument("--frames", type=int, default=512, help="JPEG frames generated")
    parser.add_argument("--frame-size", default="640x360", help="WIDTHxHEIGHT of the frames")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device; use --device cpu for a smoke check")
    warmup = args.warmup if args.warmup is not None else (20 if device.type == "cuda" else 1)
    warmup = max(1, warmup)
    # train() syncs the loss every log_every steps; measured steps are whole multiples of it
    total = warmup + warmup * math.ceil(args.steps / warmup)
    workers = args.workers if args.workers is not None else max(1, min(12, os.cpu_count() - 2))
    out = args.out or Path(os.environ.get("OUT", "bench_out")) / "gpu_train"
    out.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.frame_size.lower().split("x"))
    torch.backends.cudnn.benchmark = True
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gpu_train_") as tmp:
        data = make_frames(Path(tmp) / "data", args.frames, width, height)
        for arch in args.arch:
            cfg = TrainConfig(
                data=str(data), out="", arch=arch, steps=total, batch_size=args.batch_size,
                size=args.size, workers=workers, device=args.device, save_every=total,
                val_every=0, log_every=warmup, compile=args.compile, lr_drop_at=(),
                lr_drop_to=(),
            )  # fmt: skip
            for loader in ("synthetic", "real"):
                row = Row(arch, loader, args.batch_size, args.size, workers)
                try:
                    if loader == "real":
                        run = Path(tmp) / f"run_{arch}"
                        row.images_per_s = real_rate(
                            TrainConfig(**{**cfg.__dict__, "out": str(run)}), warmup
                        )
                    else:
                        row.images_per_s = synthetic_rate(cfg, warmup, device)
                except Exception as exc:  # keep going: report what failed
                    row.error = f"{type(exc).__name__}: {exc}"[:300]
                rows.append(row)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                print(f"{arch:7s} {loader:9s} {row.images_per_s or 0:9.1f} img/s {row.error}",
                      flush=True)  # fmt: skip

    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    lines = [f"gpu_train: {card}, batch {args.batch_size} at {args.size}, {workers} workers, "
             f"{args.frames} JPEG frames {args.frame_size}, "
             f"{'bf16 + channels_last' if device.type == 'cuda' else 'fp32'}",
             f"{'arch':8s}{'synthetic img/s':>17s}{'real img/s':>12s}"
             f"{'real/synth':>12s}"]  # fmt: skip
    ratios = {}
    for arch in args.arch:
        synth = next(r for r in rows if r.arch == arch and r.loader == "synthetic")
        real = next(r for r in rows if r.arch == arch and r.loader == "real")
        ratio = (
            real.images_per_s / synth.images_per_s
            if real.images_per_s and synth.images_per_s
            else None
        )
        ratios[arch] = ratio
        lines.append(
            f"{arch:8s}{synth.images_per_s or 0:17.1f}{real.images_per_s or 0:12.1f}"
            f"{ratio if ratio is not None else float('nan'):12.3f}"
            + ("  (>= 0.9: ok)" if ratio and ratio >= 0.9 else "  (< 0.9)" if ratio else "")
        )
    text = "\n".join(lines)
    print(text)
    (out / "gpu_train.txt").write_text(text + "\n")
    (out / "gpu_train.json").write_text(json.dumps(
        {"device": card, "args": {k: str(v) for k, v in vars(args).items()},
         "rows": [asdict(r) for r in rows], "ratio_real_over_synthetic": ratios},
        indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
