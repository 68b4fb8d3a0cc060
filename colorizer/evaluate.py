"""Evaluate a checkpoint on a dataset split, next to two baselines (`python cli.py evaluate`).

The kept frames of one split (default ``test``) are read, each scaled so its shorter side
is the checkpoint's working size (the scale it was trained at, 256 by default; ``resize``)
and centre-cropped to ``size`` x ``size``, as training's validation does; L goes through
the network once and its logits are decoded with the annealed mean at each requested
temperature (by default the checkpoint's own). On the same
images, two baselines: **grey** (ab = 0: the L channel alone) and **mean colour** (one
constant ab, the mean ab of up to ``mean_images`` kept train frames; of the evaluated
frames themselves when the dataset has no train split).

Metrics, one value per image, averaged over the images (the metric functions are those of
`colorizer.metrics`, shared with training's validation):

- ``cross_entropy``: Zhang's loss, -sum_q Z_q log p_q at 1/4 resolution, with Z the
  soft-encoded ground truth and p the network's softmax at T = 1 (the distribution it was
  trained to give; it does not depend on the decoding temperature). The baselines give no
  distribution, so their cross-entropy is NaN (a one-hot "grey" distribution would score
  infinity on any coloured pixel, which says nothing useful).
- ``psnr``: dB, on sRGB in [0, 1] (peak 1) of the composed image (true L + predicted ab,
  Lab -> sRGB with the gamut mapping of `colorizer.lab`) against the original.
- ``ssim``: structural similarity on sRGB in [0, 1], each of R, G, B separately and
  averaged: Gaussian window of 11 taps, sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, mean
  over the valid area (the image minus 5 pixels on each side). Equal to scikit-image's
  ``structural_similarity(..., channel_axis=-1, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)``.
- ``auc``: area under the curve of the fraction of pixels whose ab error (Euclidean, in
  Lab units, the predicted ab upsampled to full size before gamut mapping) is within each
  threshold 0, 1, ..., 150, normalised to [0, 1] (Zhang et al.'s AuC).
- ``ciede2000``: the mean CIEDE2000 colour difference (Sharma et al. 2005) between the
  composed image and the original, per pixel in Lab; NaN for the ground-truth row.
- ``colorfulness``: Hasler and Suesstrunk's colorfulness of the composed sRGB image
  (0-255 scale); a ``ground truth`` row gives the originals' value for comparison.

Training's validation scores its fixed crops with the same function (`score_images`), so
the two report the same PSNR, AuC and CIEDE2000 for the same model and images.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from colorizer.bins import annealed_mean, downsample_ab, soft_cross_entropy, soft_encode
from colorizer.errors import ColorizerError, ConfigError, DataError
from colorizer.fields import check_fields
from colorizer.lab import lab_to_rgb_in_gamut, rgb_to_lab
from colorizer.metrics import auc_ab, ciede2000, colorfulness, psnr
from colorizer.predictor import Colorizer
from manifests import kept_frames

log = logging.getLogger(__name__)

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
COLUMNS = ("method", "temperature", "cross_entropy", "psnr", "ssim", "auc", "ciede2000",
           "colorfulness")


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: Path
    data: Path  # dataset folder or frames manifest
    split: str = "test"  # train, val, test, or all (every kept frame)
    temperatures: tuple[float, ...] = ()  # annealed-mean T's; (): the checkpoint's own
    size: int = 176  # side of the square centre crops, multiple of 8
    resize: int | None = None  # shorter side scaled to this before the crop; None: the
    #   checkpoint's working size (the scale it was trained at), 0: to `size`
    batch_size: int = 16
    device: str = "auto"
    arch: str | None = None  # refuse a checkpoint of another architecture
    limit: int | None = None  # at most this many images, evenly spread over the split
    mean_images: int = 512  # train frames averaged for the mean-colour baseline
    quiet: bool = False

    def __post_init__(self) -> None:
        check_fields(self)  # every value of its declared type; temperatures finite (no nan)
        if self.size < 16 or self.size % 8:
            raise ConfigError(f"--size must be a multiple of 8 and >= 16, got {self.size}")
        if any(t < 0 for t in self.temperatures):
            raise ConfigError(
                f"--temperature must be >= 0, got {', '.join(map(str, self.temperatures))}",
                key="temperatures",
            )
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {self.limit}")
        if self.resize is not None and 0 < self.resize < self.size:
            raise ConfigError(f"--resize ({self.resize}) must be 0 or >= --size ({self.size})",
                              key="resize")


@dataclass
class EvalReport:
    table: pd.DataFrame  # one row per method (and temperature), the columns of COLUMNS
    per_image: pd.DataFrame  # one row per (image, method, temperature)
    images: int
    split: str
    size: int
    mean_ab: tuple[float, float]
    mean_ab_source: str  # "train" or the evaluated split
    skipped: list[str] = field(default_factory=list)  # unreadable images, with the reason
    checkpoint: str = ""

    def to_json(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        rows = [{k: clean(v) for k, v in row.items()} for row in self.table.to_dict("records")]
        return {
            "checkpoint": self.checkpoint,
            "split": self.split,
            "images": self.images,
            "size": self.size,
            "mean_ab": list(self.mean_ab),
            "mean_ab_source": self.mean_ab_source,
            "skipped": self.skipped,
            "rows": rows,
        }

    def to_string(self) -> str:
        head = (
            f"{self.images} {self.split} image(s) at {self.size}x{self.size}; mean colour "
            f"ab = ({self.mean_ab[0]:.1f}, {self.mean_ab[1]:.1f}) from {self.mean_ab_source}"
        )
        if self.skipped:
            head += f"; {len(self.skipped)} unreadable image(s) skipped"
        table = self.table.to_string(
            index=False, na_rep="-", float_format=lambda v: f"{v:.4f}"
        )
        return f"{head}\n{table}"


# --------------------------------------------------------------------------- SSIM


@lru_cache(maxsize=4)
def _gauss_window(device: torch.device) -> torch.Tensor:
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64) - SSIM_WINDOW // 2
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    g = (g / g.sum()).to(device=device, dtype=torch.float32)
    return g


def ssim(pred: torch.Tensor, true: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """(B,) SSIM of (B, C, H, W) images, per channel then averaged over channels; Gaussian
    window 11, sigma 1.5, valid area only (see the module docstring)."""
    if pred.shape != true.shape or pred.dim() != 4:
        raise ConfigError(f"ssim: two (B, C, H, W) of one shape, got {tuple(pred.shape)} "
                          f"and {tuple(true.shape)}")
    if min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ConfigError(f"ssim needs images of at least {SSIM_WINDOW} pixels a side")
    b, c, h, w = pred.shape
    g = _gauss_window(pred.device)
    x = pred.float().reshape(b * c, 1, h, w)
    y = true.float().reshape(b * c, 1, h, w)

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = F.conv2d(t, g.view(1, 1, 1, -1))
        return F.conv2d(t, g.view(1, 1, -1, 1))

    stack = blur(torch.cat((x, y, x * x, y * y, x * y), 0))
    mx, my, xx, yy, xy = stack.split(b * c, 0)
    vx, vy, cxy = xx - mx * mx, yy - my * my, xy - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.reshape(b, c, -1).mean(2).mean(1)


# --------------------------------------------------------------------------- data


def _rows(frames: pd.DataFrame, split: str, source: str) -> pd.DataFrame:
    for col in ("status", "image_path"):
        if col not in frames.columns:
            raise DataError(f"{source} lacks the column {col!r}; is it a filmcolor manifest?")
    kept = kept_frames(frames)
    if split == "all":
        return kept
    if "split" not in frames.columns or kept["split"].isna().all():
        raise DataError(
            f"{source} has no train/val/test split; run `python cli.py build-dataset` on it, "
            "or pass --split all to evaluate every kept frame"
        )
    rows = kept[kept["split"] == split]
    if rows.empty:
        found = ", ".join(f"{k}: {v}" for k, v in kept["split"].value_counts().items())
        raise DataError(
            f"{source} has no kept frames in split {split!r} ({found or 'no kept frames'}); "
            "pick another --split"
        )
    return rows


def _spread(items: Sequence[Any], n: int | None) -> list[Any]:
    """At most n items, evenly spread (first and last included)."""
    if n is None or len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def _load_crops(paths: Sequence[Path], size: int, skipped: list[str],
                resize: int = 0) -> tuple[torch.Tensor, list[Path]]:
    """(N, 3, S, S) uint8 centre crops of the readable images (shorter side scaled to
    `resize` first, 0: to `size`), and their paths."""
    from colorizer.dataset import centre_crop
    from colorizer.images import read_rgb

    crops, ok = [], []
    for p in paths:
        try:
            crops.append(centre_crop(read_rgb(p), size, resize))
            ok.append(p)
        except (ColorizerError, OSError, ValueError) as exc:
            skipped.append(f"{p}: {exc}")
            log.warning("skipped %s: %s", p, exc)
    if not crops:
        return torch.empty(0, 3, size, size, dtype=torch.uint8), ok
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous(), ok


def mean_ab_of(paths: Sequence[Path], size: int, device: torch.device,
               batch_size: int = 32, resize: int = 0) -> tuple[float, float]:
    """Mean a and b over every pixel of the centre crops of these images."""
    total = torch.zeros(2, dtype=torch.float64)
    pixels = 0
    skipped: list[str] = []
    for i in range(0, len(paths), batch_size):
        crops, _ = _load_crops(paths[i : i + batch_size], size, skipped, resize)
        if not len(crops):
            continue
        ab = rgb_to_lab(crops.to(device).float() / 255.0)[:, 1:]
        total += ab.double().sum((0, 2, 3)).cpu()
        pixels += ab.shape[0] * ab.shape[2] * ab.shape[3]
    if pixels == 0:
        return 0.0, 0.0
    mean = total / pixels
    return float(mean[0]), float(mean[1])


# --------------------------------------------------------------------------- evaluation


def score_images(L: torch.Tensor, ab_pred: torch.Tensor, rgb: torch.Tensor,
                 ab: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-image metrics (each (B,)) of a colorization, and the composed sRGB (B, 3, H, W).

    L (B, 1, H, W) and ab_pred (B, 2, H, W) compose the image as `colorize` writes it (the
    gamut mapping keeps L); it is compared with the original sRGB ``rgb`` (B, 3, H, W) in
    [0, 1] and its ``ab``. The one scoring path of `evaluate` and training's validation."""
    rgb_pred = lab_to_rgb_in_gamut(L, ab_pred)
    scores = {
        "psnr": psnr(rgb_pred, rgb),
        "ssim": ssim(rgb_pred, rgb),
        "auc": auc_ab(ab_pred, ab),
        "ciede2000": ciede2000(rgb_to_lab(rgb_pred), rgb_to_lab(rgb)),
        "colorfulness": colorfulness(rgb_pred),
    }
    return scores, rgb_pred


def per_image_cross_entropy(logits: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """(B,) Zhang's loss per image: logits (B, 313, h, w), full-size ground-truth ab."""
    targets = soft_encode(downsample_ab(ab.float(), ab.shape[-1] // logits.shape[-1]))
    return soft_cross_entropy(logits, targets, per_image=True)


def evaluate(cfg: EvalConfig, colorizer: Colorizer | None = None) -> EvalReport:
    """Evaluate ``cfg.checkpoint`` on ``cfg.split`` of ``cfg.data``; see the module docstring."""
    from tqdm import tqdm

    from manifests import load_frames

    frames, root = load_frames(cfg.data)
    source = str(cfg.data)
    rows = _rows(frames, cfg.split, source)
    paths = _spread([Path(root) / str(p) for p in rows["image_path"]], cfg.limit)
    if colorizer is None:
        colorizer = Colorizer.from_checkpoint(cfg.checkpoint, cfg.device, arch=cfg.arch)
    device = colorizer.device
    temperatures = cfg.temperatures or (colorizer.temperature,)
    resize = colorizer.work_size if cfg.resize is None else cfg.resize

    # Mean-colour baseline: train frames when there are any, else the evaluated ones.
    kept = kept_frames(frames)
    train = kept[kept["split"] == "train"] if "split" in kept.columns else kept.iloc[:0]
    if len(train) and cfg.split != "train":
        mean_paths = [Path(root) / str(p) for p in train["image_path"]]
        mean_source = "train"
    else:
        mean_paths, mean_source = paths, cfg.split
    mean_ab = mean_ab_of(_spread(mean_paths, cfg.mean_images), cfg.size, device, resize=resize)

    records: list[dict[str, Any]] = []
    skipped: list[str] = []
    bar = tqdm(total=len(paths), unit="img", desc="evaluate", disable=cfg.quiet, leave=False)
    try:
        for i in range(0, len(paths), cfg.batch_size):
            crops, ok = _load_crops(paths[i : i + cfg.batch_size], cfg.size, skipped, resize)
            bar.update(len(paths[i : i + cfg.batch_size]))
            if not ok:
                continue
            records += _evaluate_batch(colorizer, crops.to(device), ok, temperatures, mean_ab)
    finally:
        bar.close()
    if not records:
        raise DataError(
            f"none of the {len(paths)} image(s) of split {cfg.split!r} could be read "
            f"(first: {skipped[0] if skipped else '?'}); check the dataset folder"
        )
    per_image = pd.DataFrame.from_records(records)
    table = (
        per_image.groupby(["order", "method", "temperature"], dropna=False, sort=True)[
            list(COLUMNS[2:])
        ]
        .mean()
        .reset_index()
        .drop(columns="order")
    )
    table["images"] = per_image.groupby("order")["image"].count().to_numpy()
    images = int(per_image["image"].nunique())
    return EvalReport(
        table=table, per_image=per_image.drop(columns="order"), images=images, split=cfg.split,
        size=cfg.size, mean_ab=mean_ab, mean_ab_source=mean_source, skipped=skipped,
        checkpoint=str(cfg.checkpoint),
    )


@torch.no_grad()
def _evaluate_batch(colorizer: Colorizer, crops: torch.Tensor, paths: list[Path],
                    temperatures: Sequence[float],
                    mean_ab: tuple[float, float]) -> list[dict[str, Any]]:
    rgb = crops.float() / 255.0
    lab = rgb_to_lab(rgb)
    L, ab = lab[:, :1], lab[:, 1:]
    logits = colorizer.logits(L)
    ce = per_image_cross_entropy(logits, ab)
    nan = torch.full_like(ce, float("nan"))
    results: list[tuple[int, str, float | None, torch.Tensor, dict[str, torch.Tensor]]] = []
    for k, t in enumerate(temperatures):
        ab_pred = F.interpolate(annealed_mean(logits, t), size=L.shape[-2:], mode="bilinear",
                                align_corners=False)
        results.append((k, "model", t, ce, score_images(L, ab_pred, rgb, ab)[0]))
    n = len(temperatures)
    grey = torch.zeros_like(ab)
    results.append((n, "grey (ab = 0)", None, nan, score_images(L, grey, rgb, ab)[0]))
    const = torch.tensor(mean_ab, device=ab.device, dtype=torch.float32).view(1, 2, 1, 1)
    const = const.expand_as(ab).contiguous()
    results.append((n + 1, "mean colour", None, nan, score_images(L, const, rgb, ab)[0]))
    truth = {"psnr": nan, "ssim": nan, "auc": nan, "ciede2000": nan,
             "colorfulness": colorfulness(rgb)}
    results.append((n + 2, "ground truth", None, nan, truth))

    records = []
    for order, method, t, ce_values, metrics in results:
        cols = {name: v.detach().float().cpu().numpy() for name, v in metrics.items()}
        ce_np = ce_values.detach().float().cpu().numpy()
        for j, p in enumerate(paths):
            records.append({
                "order": order, "image": str(p), "method": method,
                "temperature": float("nan") if t is None else float(t),
                "cross_entropy": float(ce_np[j]),
                **{name: float(v[j]) for name, v in cols.items()},
            })
    return records
