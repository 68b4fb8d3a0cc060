"""One GPU check for a lent machine, as the image has it (plus the carried wheels of PyAV and
PySceneDetect): card and versions, then sections in order of value, each in its own process
under its own time limit; a section that fails or runs out of time is recorded as such and the
rest go on. Whole check < 8 minutes on an H200.

    python3 bench/gpu_check.py --out $OUT          # on the GPU machine (bench/gpu_check.sh)
    python bench/gpu_check.py --dry-run --out DIR  # CPU: the same code paths, tiny sizes

Sections:
  env            card, driver, torch / CUDA / cuDNN versions, the measured bf16 matrix rate
  train_step     training step (colorizer.train.make_step: Lab, soft-encoding, forward, loss,
                 backward, fused Adam) on a synthetic uint8 batch on the device: eccv16 and chen
                 at 176 and 256, batch 64, bf16 autocast + channels_last vs float32; images/s
                 and model FLOP utilisation (forward + backward FLOPs counted once per config
                 with torch.utils.flop_counter.FlopCounterMode)
  loader         the real loader (colorizer.dataset: JPEG frames written on the fly, decoded
                 by DataLoader workers) vs the synthetic batch, over worker counts; a GPU JPEG
                 decode path (torchvision.io.decode_jpeg on the device; bench only) as a row
                 when the CPU loader falls short of 0.9 x synthetic
  colorize       colorize frames/s of a 720p and a 1080p B&W film, per frame (no smoothing),
                 then at 1080p per film mode (flow smoothing, keyframes 2 / auto / 8), and the
                 share of decode, cuts, network, flow, colour and encode (the film path)
  train_compile  the train_step configurations under torch.compile
  ddp            skipped on one GPU (said so in the output)

Writes OUT/gpu_check.json, OUT/gpu_check.txt and OUT/gpu_check.log (every section's output),
after each section. Installs nothing, downloads nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# (name, seconds on the GPU, seconds in --dry-run), in order of value
SECTIONS = [
    ("env", 45, 60),
    ("train_step", 120, 90),
    ("loader", 110, 90),
    ("colorize", 150, 120),
    ("train_compile", 100, 90),
    ("ddp", 0, 0),  # decided from env's device count, no process of its own
]
TOTAL_LIMIT_S = 470  # the whole check, GPU (the sections' limits are cut to what is left)
DRY_TOTAL_LIMIT_S = 240
# dense bf16 peak by the vendor's datasheet (H100 / H200 SXM): the MFU denominator
SPEC_BF16_PEAK = {"H200": 989.4e12, "H100": 989.4e12}
LOADER_TARGET = 0.9


# ----------------------------------------------------------------------------- settings


def settings(dry: bool) -> dict:
    """Sizes of every section: the GPU ones, or tiny ones for --dry-run on a CPU."""
    if dry:
        return {
            "device": "cpu", "archs": ["eccv16", "chen"], "sizes": [32], "batch": 2,
            "modes": ["bf16+cl", "fp32"], "warmup": 1, "steps": 2,
            "compile_sizes": [32], "compile_modes": ["bf16+cl"], "compile_backend": "eager",
            "matmul": (512, "float32"),
            "loader": {"frames": 12, "frame_size": (96, 54), "size": 32, "resize": 40,
                       "batch": 2, "workers": [1], "warmup": 1, "min_steps": 2,
                       "prefetch_rule": False},
            "colorize": {"sizes": [(64, 36), (96, 54)], "frames": 4, "batch": 2,
                         "work_size": 32, "archs": ["eccv16"]},
        }  # fmt: skip
    cores = os.cpu_count() or 1
    return {
        "device": "cuda", "archs": ["eccv16", "chen"], "sizes": [176, 256], "batch": 64,
        "modes": ["bf16+cl", "fp32"], "warmup": 5, "steps": 20,
        "compile_sizes": [176, 256], "compile_modes": ["bf16+cl", "fp32"],
        "compile_backend": "inductor",
        "matmul": (8192, "bfloat16"),
        "loader": {"frames": 256, "frame_size": (1280, 720), "size": 176, "resize": 256,
                   "batch": 64, "workers": [w for w in (12, 8, 4, 2) if w <= cores] or [1],
                   "warmup": 10, "min_steps": 40, "prefetch_rule": True},
        "colorize": {"sizes": [(1280, 720), (1920, 1080)], "frames": 192, "batch": 16,
                     "work_size": 256, "archs": ["eccv16", "chen"]},
    }  # fmt: skip


# ----------------------------------------------------------------------------- child side


class Report:
    """A section's result, rewritten after every row so a killed section keeps its rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict = {"rows": [], "notes": []}
        self.t0 = time.perf_counter()
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.path)

    def plan(self, rows: list[dict]) -> None:
        """Rows to come, marked pending until measured."""
        self.data["rows"] = [{**r, "status": "pending"} for r in rows]
        self.save()

    def update(self, index: int, values: dict) -> None:
        self.data["rows"][index].update(values)
        self.save()
        print(f"{time.perf_counter() - self.t0:6.1f} s "
              + json.dumps(self.data["rows"][index], default=str), flush=True)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def section_env(report: Report, cfg: dict) -> None:
    import platform

    import cv2
    import numpy as np
    import torch
    import torchvision

    info: dict = {
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "torchvision": torchvision.__version__, "opencv": cv2.__version__,
        "numpy": np.__version__, "cpu_count": os.cpu_count(),
        "cuda_available": torch.cuda.is_available(),
        "device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }  # fmt: skip
    for module in ("av", "scenedetect"):
        try:
            mod = __import__(module)
            info[module] = mod.__version__
            info[f"{module}_from"] = str(Path(mod.__file__).parent.parent)
        except Exception as exc:  # recorded: the colorize section needs PyAV
            info[module] = f"missing: {type(exc).__name__}: {exc}"
    device = torch.device(cfg["device"])
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(card=props.name, capability=f"{props.major}.{props.minor}",
                    sms=props.multi_processor_count,
                    memory_gib=round(props.total_memory / 2**30, 1))  # fmt: skip
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                 "--format=csv,noheader"], capture_output=True, text=True, timeout=20,
            )  # fmt: skip
            info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
        except Exception as exc:
            info["nvidia_smi"] = f"failed: {exc}"
    else:
        info["card"] = f"CPU ({platform.processor() or platform.machine()}), dry run"
    report.data["info"] = info
    report.save()

    # the ceiling the MFU is also given against: a large matrix product on random data
    n, dtype_name = cfg["matmul"]
    dtype = getattr(torch, dtype_name)
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    for _ in range(3):
        a @ b
    _sync(device)
    reps = 10
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    seconds = (time.perf_counter() - t0) / reps
    report.data["matmul"] = {"n": n, "dtype": dtype_name,
                             "tflops": 2 * n**3 / seconds / 1e12}  # fmt: skip
    report.save()


def _train_setup(arch: str, size: int, mode: str, batch: int, device, compile_backend):
    """Model, optimizer and the training step of `colorizer.train`, as train() builds them."""
    import torch

    from colorizer.model import build_model
    from colorizer.train import TrainConfig, make_step

    bf16 = mode.startswith("bf16")
    tcfg = TrainConfig(arch=arch, size=size, batch_size=batch, amp=bf16, channels_last=bf16,
                       device=str(device), lr_drop_at=(), lr_drop_to=(),
                       compile=compile_backend is not None)  # fmt: skip
    torch.manual_seed(0)
    model = build_model(tcfg.model_config)
    cl = bf16 and device.type == "cuda"
    model.to(device, memory_format=torch.channels_last if cl else torch.preserve_format).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=tcfg.lr, betas=tcfg.betas,
                           weight_decay=tcfg.weight_decay, fused=True)  # fmt: skip
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    net = model if compile_backend is None else torch.compile(model, backend=compile_backend)
    return tcfg, model, opt, make_step(net, opt, sched, device, tcfg)


def count_flops(model, batch: int, size: int, mode: str, device) -> int:
    """Forward + backward FLOPs of the network on one batch (FlopCounterMode)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    bf16 = mode.startswith("bf16") and device.type == "cuda"
    x = torch.rand(batch, 1, size, size, device=device) * 100
    if bf16:
        x = x.contiguous(memory_format=torch.channels_last)
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        logits.float().logsumexp(1).mean().backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def _time_steps(step, batch, device, warmup: int, steps: int) -> tuple[float, float, float]:
    """(seconds of the first step, seconds of the warm-up, seconds of `steps` timed steps);
    losses fetched once per phase, as train() does every log_every steps."""
    import math

    import torch

    _sync(device)
    t0 = time.perf_counter()
    first = step(batch)
    first.item()
    t_first = time.perf_counter() - t0
    pending = [step(batch) for _ in range(max(0, warmup - 1))]
    if pending:
        torch.stack(pending).tolist()
    t_warm = time.perf_counter() - t0
    _sync(device)
    t1 = time.perf_counter()
    pending = [step(batch) for _ in range(steps)]
    losses = torch.stack(pending).tolist()
    t_steps = time.perf_counter() - t1
    if not all(math.isfinite(v) for v in losses):
        raise RuntimeError(f"non-finite loss: {losses}")
    return t_first, t_warm, t_steps


def section_train(report: Report, cfg: dict, compiled: bool) -> None:
    import torch

    device = torch.device(cfg["device"])
    backend = cfg["compile_backend"] if compiled else None
    sizes = cfg["compile_sizes"] if compiled else cfg["sizes"]
    modes = cfg["compile_modes"] if compiled else cfg["modes"]
    plan = [{"arch": a, "size": s, "mode": m, "batch": cfg["batch"], "compile": backend or "no",
             "cudnn_benchmark": False}
            for s in sizes for m in modes for a in cfg["archs"]]  # fmt: skip
    if not compiled:  # does cuDNN's autotuner help? (train() leaves it off)
        plan.append({**plan[0], "cudnn_benchmark": True})
    report.plan(plan)
    report.data["notes"].append(
        "step = colorizer.train.make_step on one uint8 batch kept on the device; "
        + ("bf16 autocast and channels_last apply on CUDA only (make_step): on CPU both "
           "modes run float32" if device.type == "cpu" else "cudnn.allow_tf32 default")
    )  # fmt: skip
    if compiled:
        report.data["notes"].append(
            f"torch.compile backend {backend}"
            + (": dynamo traces the model, no code is generated (dry run on a CPU)"
               if backend == "eager" else "; the first step's time includes compiling")
        )  # fmt: skip
    flops: dict = {}
    for i, row in enumerate(plan):
        report.update(i, {"status": "running"})
        model = step = batch = None
        torch.backends.cudnn.benchmark = row["cudnn_benchmark"]
        try:
            _tcfg, model, _opt, step = _train_setup(row["arch"], row["size"], row["mode"],
                                                    row["batch"], device, backend)
            key = (row["arch"], row["size"], row["batch"])
            if key not in flops:
                flops[key] = count_flops(model, row["batch"], row["size"], row["mode"], device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            batch = torch.randint(0, 256, (row["batch"], 3, row["size"], row["size"]),
                                  dtype=torch.uint8, device=device)  # fmt: skip
            t_first, t_warm, t_steps = _time_steps(step, batch, device, cfg["warmup"],
                                                   cfg["steps"])  # fmt: skip
            per_step = t_steps / cfg["steps"]
            values = {
                "status": "ok", "images_per_s": row["batch"] / per_step,
                "step_ms": 1e3 * per_step, "first_step_s": t_first, "warmup_s": t_warm,
                "flops_per_step": flops[key],
                "achieved_tflops": flops[key] / per_step / 1e12,
            }  # fmt: skip
            if device.type == "cuda":
                values["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            report.update(i, values)
        except torch.OutOfMemoryError:
            report.update(i, {"status": "error: out of memory"})
        except Exception as exc:  # recorded; the next configuration goes on
            report.update(i, {"status": f"error: {type(exc).__name__}: {exc}"[:400]})
        finally:
            model = step = batch = None  # free the device before the next configuration
            if compiled:
                torch._dynamo.reset()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    torch.backends.cudnn.benchmark = False


# --- loader ------------------------------------------------------------------------------


def write_frames(folder: Path, n: int, width: int, height: int, seed: int = 0) -> list[Path]:
    """n JPEG frames (q95, as extract-frames writes them) of width x height: random crops of
    scikit-image's bundled photographs with a little grain, like frames of a film."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    import numpy as np
    from skimage import data as skdata

    names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina",
             "hubble_deep_field")  # fmt: skip
    photos = [getattr(skdata, name)() for name in names]
    rng = np.random.default_rng(seed)
    grain = rng.normal(0, 4, (height, width, 1)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    crops = []
    for i in range(n):
        h, w = photos[i % len(photos)].shape[:2]
        ch = int(rng.integers(h // 2, h + 1))
        cw = min(w, round(ch * width / height))
        crops.append((i, int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1)), ch, cw))

    def one(crop: tuple[int, int, int, int, int]) -> Path:
        i, top, left, ch, cw = crop
        img = photos[i % len(photos)][top : top + ch, left : left + cw]
        frame = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
        frame = np.clip(frame + grain, 0, 255).astype(np.uint8)
        path = folder / f"frame_{i:05d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])  # fmt: skip
        return path

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, crops))


class JpegBytes:
    """Dataset for the GPU-decode path: key (epoch, index) -> the file's bytes (uint8)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]):
        import torch

        return torch.frombuffer(bytearray(self.paths[key[1]].read_bytes()), dtype=torch.uint8)


def as_list(items: list) -> list:
    return items


def gpu_crops(encoded: list, size: int, resize: int, device, gen) -> object:
    """JPEG bytes -> (B, 3, size, size) uint8 random crops (flipped half of the time) on the
    device: torchvision.io.decode_jpeg there, shorter side scaled to `resize` (antialiased
    bilinear), as CropDataset does on the CPU. Frames of one size (this bench's)."""
    import torch
    import torch.nn.functional as F
    from torchvision.io import decode_jpeg

    images = decode_jpeg(encoded, device=device)
    x = torch.stack(images).float()
    h, w = x.shape[-2:]
    short = max(resize or min(h, w), size)
    if short != min(h, w):
        scale = short / min(h, w)
        x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))),
                          mode="bilinear", antialias=True, align_corners=False)  # fmt: skip
    h, w = x.shape[-2:]
    n = x.shape[0]
    tops = torch.randint(0, h - size + 1, (n,), generator=gen).tolist()
    lefts = torch.randint(0, w - size + 1, (n,), generator=gen).tolist()
    flips = torch.rand(n, generator=gen) < 0.5
    crops = torch.stack([x[i, :, t : t + size, s : s + size]
                         for i, (t, s) in enumerate(zip(tops, lefts, strict=True))])  # fmt: skip
    crops = torch.where(flips.to(device)[:, None, None, None], crops.flip(-1), crops)
    return crops.round_().clamp_(0, 255).to(torch.uint8)


def _loader_rate(step, batches, device, warmup: int, measured: int, batch: int) -> float:
    """images/s over `measured` steps after `warmup`, syncing the losses every `warmup` steps
    (train() syncs every log_every steps)."""
    import torch

    pending = []
    for _ in range(warmup):
        pending.append(step(next(batches)))
    torch.stack(pending).tolist()
    pending.clear()
    _sync(device)
    t0 = time.perf_counter()
    for i in range(measured):
        pending.append(step(next(batches)))
        if (i + 1) % max(1, warmup) == 0:
            torch.stack(pending).tolist()
            pending.clear()
    if pending:
        torch.stack(pending).tolist()
    return measured * batch / (time.perf_counter() - t0)


def section_loader(report: Report, cfg: dict) -> None:
    import multiprocessing as mp

    import torch
    from torch.utils.data import DataLoader

    from colorizer.dataset import CropDataset, StepBatchSampler, make_loader

    lc = cfg["loader"]
    device = torch.device(cfg["device"])
    batch, size = lc["batch"], lc["size"]
    report.data["settings"] = {**lc, "mode": "bf16+cl" if device.type == "cuda" else "fp32"}
    plan = [{"arch": a, "loader": "synthetic", "workers": 0} for a in cfg["archs"]]
    plan += [{"arch": "(fastest)", "loader": "real", "workers": w} for w in lc["workers"]]
    plan += [{"arch": "(other)", "loader": "real", "workers": "(best)"},
             {"arch": "(fastest)", "loader": "gpu-decode", "workers": min(4, max(lc["workers"]))}]
    report.plan(plan)
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_frames_"))
    t0 = time.perf_counter()
    paths = write_frames(tmp, lc["frames"], *lc["frame_size"])
    report.data["notes"].append(
        f"{len(paths)} JPEG frames {lc['frame_size'][0]}x{lc['frame_size'][1]} q95 written in "
        f"{time.perf_counter() - t0:.1f} s; crops {size} from the shorter side scaled to "
        f"{lc['resize']}, batch {batch}"
    )
    report.save()

    def measured_steps(workers: int) -> int:
        # more steps than the loader can prefetch (workers x prefetch_factor 4), thrice
        return max(lc["min_steps"], 3 * 4 * workers if lc["prefetch_rule"] else 0)

    synth: dict[str, float] = {}
    for i, arch in enumerate(cfg["archs"]):
        report.update(i, {"status": "running"})
        try:
            _t, _m, _o, step = _train_setup(arch, size, "bf16+cl", batch, device, None)
            data = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8,
                                 device=device)  # fmt: skip
            rate = _loader_rate(step, iter(lambda d=data: d, None), device, lc["warmup"],
                                measured_steps(max(lc["workers"])), batch)  # fmt: skip
            synth[arch] = rate
            report.update(i, {"status": "ok", "images_per_s": rate})
        except Exception as exc:
            report.update(i, {"status": f"error: {type(exc).__name__}: {exc}"[:400]})
    fastest = max(synth, key=synth.get) if synth else cfg["archs"][0]
    other = next((a for a in cfg["archs"] if a != fastest), fastest)

    def real(arch: str, workers: int) -> float:
        _t, _m, _o, step = _train_setup(arch, size, "bf16+cl", batch, device, None)
        steps = measured_steps(workers)
        sampler = StepBatchSampler(len(paths), batch, 0, 0, lc["warmup"] + steps)
        loader = make_loader(CropDataset(paths, size, 0, lc["resize"]), sampler, workers,
                             device.type == "cuda")  # fmt: skip
        it = iter(loader)
        try:
            return _loader_rate(step, it, device, lc["warmup"], steps, batch)
        finally:
            del it, loader

    best: tuple[float, int] | None = None
    row = len(cfg["archs"])
    for workers in lc["workers"]:
        report.update(row, {"status": "running", "arch": fastest})
        try:
            rate = real(fastest, workers)
            ratio = rate / synth[fastest] if fastest in synth else None
            report.update(row, {"status": "ok", "images_per_s": rate,
                                "ratio_to_synthetic": ratio})  # fmt: skip
            if best is None or rate > best[0]:
                best = (rate, workers)
        except Exception as exc:
            report.update(row, {"status": f"error: {type(exc).__name__}: {exc}"[:400]})
        row += 1
    best_workers = best[1] if best else lc["workers"][0]
    report.update(row, {"status": "running", "arch": other, "workers": best_workers})
    try:
        rate = real(other, best_workers)
        report.update(row, {"status": "ok", "images_per_s": rate,
                            "ratio_to_synthetic": rate / synth[other] if other in synth
                            else None})  # fmt: skip
    except Exception as exc:
        report.update(row, {"status": f"error: {type(exc).__name__}: {exc}"[:400]})
    row += 1
    best_ratio = best[0] / synth[fastest] if best and fastest in synth else None
    report.data["best"] = {"arch": fastest, "workers": best_workers, "ratio": best_ratio,
                           "target": LOADER_TARGET}  # fmt: skip
    short = best_ratio is None or best_ratio < LOADER_TARGET
    if not short and device.type == "cuda":
        report.update(row, {"status": f"skipped: the CPU loader reached {best_ratio:.2f} "
                                      f">= {LOADER_TARGET} of synthetic"})  # fmt: skip
    else:
        workers = plan[row]["workers"]
        report.update(row, {"status": "running", "arch": fastest})
        try:
            _t, _m, _o, step = _train_setup(fastest, size, "bf16+cl", batch, device, None)
            steps = measured_steps(workers)
            sampler = StepBatchSampler(len(paths), batch, 0, 0, lc["warmup"] + steps)
            ctx = "forkserver" if "forkserver" in mp.get_all_start_methods() else None
            loader = DataLoader(JpegBytes(paths), batch_sampler=sampler, num_workers=workers,
                                collate_fn=as_list, prefetch_factor=4,
                                multiprocessing_context=ctx)  # fmt: skip
            gen = torch.Generator().manual_seed(0)
            batches = (gpu_crops(enc, size, lc["resize"], device, gen) for enc in loader)
            rate = _loader_rate(step, batches, device, lc["warmup"], steps, batch)
            values = {"status": "ok", "images_per_s": rate,
                      "ratio_to_synthetic": rate / synth[fastest] if fastest in synth
                      else None}  # fmt: skip
            if device.type != "cuda":
                values["note"] = "decode_jpeg on the CPU (dry run walks the path)"
            report.update(row, values)
        except Exception as exc:
            report.update(row, {"status": f"error: {type(exc).__name__}: {exc}"[:400]})
    for p in paths:
        p.unlink(missing_ok=True)
    tmp.rmdir()


# Film modes measured at the largest size (first arch): (label, keyframes, smooth seconds)
COLORIZE_MODES = [("flow 0.2", "off", 0.2), ("keyframes 2", "2", 0.0),
                  ("keyframes auto", "auto", 0.0), ("keyframes 8", "8", 0.0)]


def section_colorize(report: Report, cfg: dict) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_colorize import colorize_row, make_bw_film, random_checkpoint

    cc = cfg["colorize"]
    fps = 24.0
    plan = [{"arch": a, "size": f"{w}x{h}", "frames": cc["frames"], "batch": cc["batch"],
             "mode": "per-frame", "keyframes": "off", "smooth_s": 0.0}
            for (w, h) in cc["sizes"] for a in cc["archs"]]  # fmt: skip
    w, h = cc["sizes"][-1]
    plan += [{"arch": cc["archs"][0], "size": f"{w}x{h}", "frames": cc["frames"],
              "batch": cc["batch"], "mode": label, "keyframes": kf, "smooth_s": smooth}
             for label, kf, smooth in COLORIZE_MODES]  # fmt: skip
    report.plan(plan)
    with tempfile.TemporaryDirectory(prefix="gpu_check_colorize_") as tmp_name:
        tmp = Path(tmp_name)
        ckpts = {a: random_checkpoint(tmp / f"{a}.pt", a) for a in cc["archs"]}
        films: dict[str, Path] = {}
        for i, row in enumerate(plan):
            report.update(i, {"status": "running"})
            try:
                if row["size"] not in films:
                    w, h = (int(v) for v in row["size"].split("x"))
                    film = tmp / f"bw_{row['size']}.mp4"
                    made = make_bw_film(film, cc["frames"], w, h, fps)
                    report.data["notes"].append(f"film {row['size']} made in {made:.1f} s")
                    films[row["size"]] = film
                result = colorize_row(films[row["size"]], ckpts[row["arch"]], tmp / "out",
                                           device=cfg["device"], arch=row["arch"],
                                           frames=cc["frames"], fps=fps, batch=cc["batch"],
                                           work_size=cc["work_size"],
                                           keyframes=row["keyframes"],
                                           smooth=row["smooth_s"])  # fmt: skip
                report.update(i, {"status": "ok", **result})
            except Exception as exc:
                report.update(i, {"status": f"error: {type(exc).__name__}: {exc}"[:400]})
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def run_section(name: str, result: Path, dry: bool) -> None:
    cfg = settings(dry)
    if dry:  # two cores shared with other jobs: one thread each avoids 10x slow-downs
        import cv2
        import torch

        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        if name == "loader":  # workers fork from a server that has torch: no import each
            import multiprocessing as mp

            mp.set_forkserver_preload(["torch", "colorizer.dataset"])
    if cfg["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device here: use --dry-run for the CPU walk-through")
    report = Report(result)
    if name == "env":
        section_env(report, cfg)
    elif name == "train_step":
        section_train(report, cfg, compiled=False)
    elif name == "train_compile":
        section_train(report, cfg, compiled=True)
    elif name == "loader":
        section_loader(report, cfg)
    elif name == "colorize":
        section_colorize(report, cfg)
    else:
        raise SystemExit(f"unknown section {name}")


# ----------------------------------------------------------------------------- parent side


def _run_child(name: str, result: Path, dry: bool, limit: float, log) -> tuple[str, float]:
    """Run one section in its own process group under `limit` seconds; its output goes to
    stdout and the log. Returns (status, seconds)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--section", name,
           "--result", str(result)] + (["--dry-run"] if dry else [])  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            cwd=ROOT, start_new_session=True, text=True,
                            errors="replace")  # fmt: skip
    tail: list[str] = []

    def pump() -> None:
        for line in proc.stdout:
            sys.stdout.write(f"[{name}] {line}")
            sys.stdout.flush()
            log.write(f"[{name}] {line}")
            log.flush()
            tail.append(line)
            del tail[:-20]

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=max(1.0, limit))
        status = "ok" if rc == 0 else f"error: exit {rc}: {''.join(tail[-8:])[-1200:]}"
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the section and its loader workers
        proc.wait()
        status = f"timeout: stopped after {limit:.0f} s"
    reader.join(timeout=5)
    return status, time.perf_counter() - t0


def _fmt(v, spec: str = ".1f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def add_mfu(results: dict) -> None:
    """MFU of every train row: against the spec bf16 peak and the measured matrix rate."""
    env = results["sections"].get("env", {})
    card = env.get("info", {}).get("card", "")
    spec = next((v for k, v in SPEC_BF16_PEAK.items() if k in card), None)
    measured = env.get("matmul", {}).get("tflops")
    results["peak"] = {
        "spec_bf16_tflops": spec / 1e12 if spec else None,
        "spec_source": "vendor datasheet, dense bf16 (H100/H200 SXM)" if spec else
        "no datasheet figure for this device",
        "measured_tflops": measured,
        "measured_source": (f"{env.get('matmul', {}).get('n')}^3 "
                            f"{env.get('matmul', {}).get('dtype')} matrix product on random "
                            "data, mean of 10 after 3 warm-ups") if measured else None,
        "mfu_is": "model FLOPs (forward + backward, FlopCounterMode) per second over the "
                  "peak; fp32 rows too are given against the bf16 peak",
    }  # fmt: skip
    for name in ("train_step", "train_compile"):
        for row in results["sections"].get(name, {}).get("rows", []):
            tf = row.get("achieved_tflops")
            if tf is None:
                continue
            row["mfu_spec"] = tf * 1e12 / spec if spec else None
            row["mfu_measured"] = tf / measured if measured else None


def add_targets(results: dict) -> None:
    """The issue's targets, met or not (None: not measured)."""
    secs = results["sections"]
    row = next((r for r in secs.get("train_step", {}).get("rows", [])
                if r["arch"] == "eccv16" and r["mode"] == "bf16+cl"
                and not r["cudnn_benchmark"] and r.get("mfu_spec") is not None), None)
    best = secs.get("loader", {}).get("best", {})
    total = results.get("seconds", 0.0)
    results["targets"] = {
        "train eccv16 bf16 MFU (spec peak) >= 0.35": None if row is None else
        [round(row["mfu_spec"], 3), row["mfu_spec"] >= 0.35],
        f"real loader >= {LOADER_TARGET} x synthetic": None if best.get("ratio") is None else
        [round(best["ratio"], 3), best["ratio"] >= LOADER_TARGET],
        "whole check < 480 s": [round(total), total < 480],
    }  # fmt: skip


def text_report(results: dict) -> str:
    env = results["sections"].get("env", {})
    info = env.get("info", {})
    peak = results.get("peak", {})
    lines = [
        f"gpu_check {'(dry run, CPU) ' if results['dry_run'] else ''}{results['started']}",
        f"card: {info.get('card', '?')}  capability {info.get('capability', '-')}  "
        f"SMs {info.get('sms', '-')}  memory {info.get('memory_gib', '-')} GiB  "
        f"nvidia-smi: {info.get('nvidia_smi', '-')}",
        f"python {info.get('python', '?')}  torch {info.get('torch', '?')}  CUDA "
        f"{info.get('cuda', '-')}  cuDNN {info.get('cudnn', '-')}  torchvision "
        f"{info.get('torchvision', '?')}  av {info.get('av', '?')}  scenedetect "
        f"{info.get('scenedetect', '?')}  CPUs {info.get('cpu_count', '?')}",
        f"peak: spec bf16 {_fmt(peak.get('spec_bf16_tflops'))} TFLOP/s; measured "
        f"{_fmt(peak.get('measured_tflops'), '.2f')} TFLOP/s ({peak.get('measured_source')})",
        "",
    ]
    for name, *_ in SECTIONS:
        sec = results["sections"].get(name)
        if sec is None:
            continue
        lines.append(f"== {name}: {sec['status']} ({_fmt(sec.get('seconds'))} s of "
                     f"{_fmt(sec.get('limit_s'), '.0f')} s)")  # fmt: skip
        lines += [f"   {n}" for n in sec.get("notes", [])]
        rows = sec.get("rows", [])
        if name in ("train_step", "train_compile") and rows:
            lines.append(f"{'arch':7s} {'size':>4s} {'mode':8s} {'batch':>5s} {'compile':9s} "
                         f"{'cudnn.b':7s} {'img/s':>8s} {'ms/step':>8s} {'TFLOP/s':>8s} "
                         f"{'MFU spec':>8s} {'MFU meas':>8s} {'1st s':>6s} status")
            for r in rows:
                lines.append(
                    f"{r['arch']:7s} {r['size']:4d} {r['mode']:8s} {r['batch']:5d} "
                    f"{r['compile']:9s} {r['cudnn_benchmark']!s:7s} "
                    f"{_fmt(r.get('images_per_s')):>8s} {_fmt(r.get('step_ms')):>8s} "
                    f"{_fmt(r.get('achieved_tflops'), '.2f'):>8s} "
                    f"{_fmt(r.get('mfu_spec'), '.1%'):>8s} "
                    f"{_fmt(r.get('mfu_measured'), '.1%'):>8s} "
                    f"{_fmt(r.get('first_step_s')):>6s} {r['status']}"
                )
        elif name == "loader" and rows:
            lines.append(f"{'arch':9s} {'loader':10s} {'workers':>7s} {'img/s':>8s} "
                         f"{'x synthetic':>11s} status")  # fmt: skip
            for r in rows:
                lines.append(f"{r['arch']:9s} {r['loader']:10s} {r['workers']!s:>7s} "
                             f"{_fmt(r.get('images_per_s')):>8s} "
                             f"{_fmt(r.get('ratio_to_synthetic'), '.3f'):>11s} "
                             f"{r['status']}{'  ' + r['note'] if r.get('note') else ''}")
            best = sec.get("best")
            if best:
                verdict = ("ok" if best["ratio"] is not None and best["ratio"] >= best["target"]
                           else "short")  # fmt: skip
                lines.append(f"best real loader: {best['arch']}, {best['workers']} workers, "
                             f"{_fmt(best['ratio'], '.3f')} x synthetic (target >= "
                             f"{best['target']}): {verdict}")  # fmt: skip
        elif name == "colorize" and rows:
            lines.append(f"{'arch':7s} {'size':>9s} {'mode':>14s} {'batch':>5s} "
                         f"{'frames':>6s} {'frames/s':>8s} {'decode%':>7s} {'cuts%':>6s} "
                         f"{'net%':>6s} {'flow%':>6s} {'colour%':>7s} {'encode%':>7s} "
                         "status")  # fmt: skip
            for r in rows:
                lines.append(f"{r['arch']:7s} {r['size']:>9s} {r.get('mode', ''):>14s} "
                             f"{r['batch']:5d} {r['frames']:6d} "
                             f"{_fmt(r.get('frames/s')):>8s} {_fmt(r.get('decode %')):>7s} "
                             f"{_fmt(r.get('cuts %')):>6s} {_fmt(r.get('network %')):>6s} "
                             f"{_fmt(r.get('flow %')):>6s} {_fmt(r.get('colour %')):>7s} "
                             f"{_fmt(r.get('encode %')):>7s} {r['status']}")  # fmt: skip
        lines.append("")
    lines.append("targets (value, met):")
    lines += [f"   {k}: {v if v is not None else 'not measured'}"
              for k, v in results.get("targets", {}).items()]
    lines.append(f"total {results.get('seconds', 0):.0f} s (limit {results['limit_s']} s)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path,
                    default=Path(os.environ.get("OUT") or ROOT / "bench_out" / "gpu_check"))
    ap.add_argument("--dry-run", action="store_true",
                    help="CPU: the same code paths on tiny sizes (a minute or less)")
    ap.add_argument("--only", nargs="+", default=None, help="run only these sections")
    ap.add_argument("--limit", action="append", default=[], metavar="SECTION=SECONDS",
                    help="another time limit for a section (repeatable)")
    ap.add_argument("--total-limit", type=float, default=None,
                    help=f"seconds for the whole check [{TOTAL_LIMIT_S}; dry run "
                         f"{DRY_TOTAL_LIMIT_S}]")  # fmt: skip
    ap.add_argument("--section", help=argparse.SUPPRESS)  # child: run one section
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.section:
        run_section(args.section, args.result, args.dry_run)
        return

    args.out.mkdir(parents=True, exist_ok=True)
    total_limit = args.total_limit or (DRY_TOTAL_LIMIT_S if args.dry_run else TOTAL_LIMIT_S)
    limits = {n: float(v) for n, v in (x.split("=", 1) for x in args.limit)}
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "dry_run": args.dry_run,
                     "limit_s": total_limit, "sections": {}}  # fmt: skip
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))

    def write() -> None:
        results["seconds"] = time.perf_counter() - t_start
        add_mfu(results)
        add_targets(results)
        (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
        (args.out / "gpu_check.txt").write_text(text_report(results) + "\n")

    with open(args.out / "gpu_check.log", "w") as log:
        for name, gpu_limit, dry_limit in SECTIONS:
            if args.only and name not in args.only:
                continue
            if name == "ddp":
                info = results["sections"].get("env", {}).get("info", {})
                count = info.get("device_count", 0)
                reason = (f"skipped: {count} GPU(s) here; DDP needs two or more: not measured"
                          if count < 2 else
                          f"skipped: {count} GPUs here, but this check has no DDP section yet")
                results["sections"]["ddp"] = {"status": reason, "device_count": count,
                                              "seconds": 0.0, "limit_s": 0}  # fmt: skip
                write()
                continue
            left = total_limit - (time.perf_counter() - t_start)
            limit = min(limits.get(name, dry_limit if args.dry_run else gpu_limit), left)
            if left < 10:
                results["sections"][name] = {"status": "skipped: the whole check's time "
                                             f"limit ({total_limit} s) was reached",
                                             "limit_s": 0, "seconds": 0.0}  # fmt: skip
                write()
                continue
            print(f"== {name} (limit {limit:.0f} s)", flush=True)
            result = work / f"{name}.json"
            status, seconds = _run_child(name, result, args.dry_run, limit, log)
            section = json.loads(result.read_text()) if result.exists() else {}
            for row in section.get("rows", []):
                if row.get("status") in ("pending", "running"):
                    row["status"] = ("not reached: " if row["status"] == "pending"
                                     else "stopped: ") + status  # fmt: skip
            results["sections"][name] = {"status": status, "seconds": seconds,
                                         "limit_s": limit, **section}  # fmt: skip
            write()
    write()
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
    print("\n" + text_report(results), flush=True)


if __name__ == "__main__":
    main()
