"""Speed of `colorize` on a 720p black-and-white film: frames/s and where the time goes.

    python bench/bench_colorize.py                     # CPU, eccv16, 48 frames of 1280x720
    python bench/bench_colorize.py --device cuda --frames 240 --arch chen --batch-size 16

Makes a synthetic B&W film with audio (filmdata.synthetic), a randomly initialised
checkpoint of the chosen architecture (speed does not depend on the weights), and runs the
library's film path (`colorize_paths`) with the default settings on the first ``--frames``
frames (``--end``). Prints one row per run: frames/s end to end and the share of the time
spent decoding (demux + decode + audio copy), in the model, on colour (L, upsampling,
Lab -> RGB with gamut mapping) and encoding (RGB -> YUV, libx264, mux).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorizer.checkpoint import save_checkpoint
from colorizer.colorize import colorize_paths
from colorizer.colorize_config import ColorizeConfig
from colorizer.model import ModelConfig, build_model
from colorizer.predictor import Colorizer, work_shape
from filmdata.synthetic import make_film, standard_plan


def make_bw_film(path: Path, frames: int, width: int, height: int, fps: float) -> float:
    """A synthetic B&W film with audio of at least ``frames`` frames; seconds it took."""
    seconds = frames / fps
    plan = standard_plan(seed=1, n_shots=max(2, math.ceil(seconds / 2.5) + 1), fps=fps,
                         seconds_per_shot=2.5)
    t0 = time.perf_counter()
    make_film(path, plan, size=(width, height), fps=fps, audio=True, pix_fmt="gray")
    return time.perf_counter() - t0


def random_checkpoint(path: Path, arch: str) -> Path:
    """A randomly initialised checkpoint of `arch` (speed does not depend on the weights)."""
    torch.manual_seed(0)
    cfg_model = ModelConfig(arch=arch)
    save_checkpoint(path, build_model(cfg_model).eval(), cfg_model)
    return path


def colorize_row(film: Path, ckpt: Path, out: Path, *, device: str, arch: str, frames: int,
                 fps: float, batch: int, work_size: int, smooth: float,
                 keyframes: str = "off") -> dict:
    """Colorize the first `frames` frames of `film` with the library's film path
    (`colorize_paths`); frames/s end to end and each stage's share and ms/frame.
    `keyframes` "off" (the default here): the network on every frame."""
    import av

    with av.open(str(film)) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
    cfg = ColorizeConfig(checkpoint=ckpt, out=out, device=device, batch_size=batch,
                         work_size=work_size, end_s=(frames - 0.5) / fps, smooth_s=smooth,
                         keyframes=keyframes, quiet=True)
    colorizer = Colorizer.from_checkpoint(ckpt, device, work_size=work_size)
    if colorizer.cuda:  # warm-up: cuDNN autotuning, lazy CUDA init
        L = torch.full((batch, 1, height, width), 50.0, device=colorizer.device)
        colorizer.compose(L, colorizer.predict_ab(L))
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    (result,) = list(colorize_paths([film], cfg, colorizer))
    wall = time.perf_counter() - t0
    if result.error:
        raise RuntimeError(result.error)
    total = sum(result.timings.values())
    return {
        "device": str(colorizer.device), "arch": arch, "size": f"{width}x{height}",
        "batch": batch, "work": "x".join(map(str, _work(height, width, work_size))),
        "frames": result.frames, "seconds": round(wall, 3),
        "frames/s": round(result.frames / wall, 2),
        **{f"{k} %": round(100 * v / total, 1) for k, v in result.timings.items()},
        **{f"{k} ms/frame": round(1000 * v / result.frames, 2)
           for k, v in result.timings.items()},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    ap.add_argument("--arch", default="eccv16", choices=["eccv16", "chen"])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[8])
    ap.add_argument("--work-size", type=int, default=256)
    ap.add_argument("--smooth", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        film = tmp / "bw.mp4"
        made = make_bw_film(film, args.frames, width, height, args.fps)
        print(f"film {width}x{height} made in {made:.1f} s", flush=True)
        ckpt = random_checkpoint(tmp / "model.pt", args.arch)

        rows = []
        for batch in args.batch_size:
            rows.append(colorize_row(film, ckpt, tmp / "out", device=args.device,
                                     arch=args.arch, frames=args.frames, fps=args.fps,
                                     batch=batch, work_size=args.work_size,
                                     smooth=args.smooth))  # fmt: skip
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
        if torch.cuda.is_available() and args.device != "cpu":
            print(f"GPU: {torch.cuda.get_device_name()}; peak memory "
                  f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
        print()
        print(pd.DataFrame(rows).to_string(index=False))


def _work(h: int, w: int, work_size: int) -> tuple[int, int]:

    return work_shape(h, w, work_size)


if __name__ == "__main__":
    main()
