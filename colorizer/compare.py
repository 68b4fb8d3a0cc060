"""Models side by side, as the paper's Figs. 5-7 (`python cli.py compare`).

For each image: the grey input, each model's colorization (every model at its own
temperature and working size, as `colorize` would run it) and the ground truth when the
image is in colour. Under each: PSNR (dB, sRGB), AuC of the ab error, colorfulness and
CIEDE2000 to the truth, computed on the full-resolution result by `colorizer.metrics` (the
functions validation and `evaluate` use). Black-and-white inputs have no truth: they show
grey and each model, with colorfulness only.

Outputs in OUT:

    index.html         one page: the means per model, then a row per image; sortable by
                       any metric or by the difference between two models
    sheets/sheet_NN.png  the same rows as PNG contact sheets (for papers and slides)
    thumbs/            the page's images, JPEG, at most ``thumb_side`` pixels a side
    compare.csv        one row per (image, model): the metrics, for pandas
    summary.json       the config and the mean metrics per model

Every file is written atomically; a rerun replaces the page.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch

from colorizer.errors import ConfigError, DataError
from colorizer.images import read_image
from colorizer.lab import lab_to_srgb_u8, rgb_to_lab, rgb_u8_to_L
from colorizer.metrics import auc_ab, ciede2000, colorfulness, psnr
from colorizer.predictor import Colorizer
from manifests import kept_frames, layout

METRICS = ("psnr", "auc", "colorfulness", "ciede2000")
METRIC_LABELS = {"psnr": "PSNR dB", "auc": "AuC", "colorfulness": "colorful.",
                 "ciede2000": "ΔE00"}
HIGHER_IS_BETTER = {"psnr": True, "auc": True, "colorfulness": True, "ciede2000": False}


@dataclass(frozen=True)
class CompareConfig:
    checkpoints: tuple[Path, ...]  # filmcolor checkpoints or Zhang's released file
    inputs: tuple[Path, ...]  # one dataset folder / manifest, or image files and folders
    out: Path
    labels: tuple[str, ...] = ()  # one per checkpoint; default: the file's stem
    temperatures: tuple[float, ...] = ()  # one per checkpoint; default: each one's own
    work_size: int | None = None  # shorter side the networks see; None: each one's own
    split: str = "test"  # dataset inputs: the split to draw from (or "all")
    limit: int = 24  # at most this many images, evenly spread
    device: str = "auto"
    thumb_side: int = 320  # pixels, longer side of the page's images
    sheet_rows: int = 6  # images per PNG sheet
    quiet: bool = False

    def __post_init__(self) -> None:
        if not self.checkpoints:
            raise ConfigError("compare needs at least one --checkpoint")
        if not self.inputs:
            raise ConfigError("compare needs --data (a dataset folder) or image files")
        if self.labels and len(self.labels) != len(self.checkpoints):
            raise ConfigError(f"give one --label per --checkpoint ({len(self.checkpoints)}), "
                              f"got {len(self.labels)}")
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"--label values must differ, got {list(self.labels)}")
        if self.temperatures and len(self.temperatures) not in (1, len(self.checkpoints)):
            raise ConfigError("give one --temperature for all models or one per --checkpoint")
        for t in self.temperatures:
            if not (math.isfinite(t) and t > 0):
                raise ConfigError(f"--temperature must be a finite number > 0, got {t}")
        if self.work_size is not None and self.work_size < 16:
            raise ConfigError(f"--work-size must be >= 16 pixels, got {self.work_size}")
        if self.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {self.limit}")
        if self.thumb_side < 32 or self.sheet_rows < 1:
            raise ConfigError("thumb_side must be >= 32 and sheet_rows >= 1")

    def model_labels(self) -> list[str]:
        if self.labels:
            return list(self.labels)
        stems = [p.stem if p.stem not in ("last", "best") else f"{p.parent.name}/{p.stem}"
                 for p in self.checkpoints]
        return [s if stems.count(s) == 1 else f"{s} ({i + 1})" for i, s in enumerate(stems)]

    def temperature_of(self, k: int) -> float | None:
        if not self.temperatures:
            return None
        return self.temperatures[0 if len(self.temperatures) == 1 else k]


@dataclass(frozen=True)
class Sample:
    """One image to compare: its name, the picture, and whether it is a colour truth."""

    name: str
    rgb: np.ndarray  # (H, W, 3) uint8 RGB, or (H, W) uint8 for black-and-white inputs
    has_truth: bool


@dataclass
class CompareResult:
    page: Path
    sheets: list[Path]
    table: pd.DataFrame  # one row per (image, model)
    means: pd.DataFrame  # one row per model
    images: int


# --------------------------------------------------------------------------- inputs


def find_samples(cfg: CompareConfig) -> list[Sample]:
    """The images to compare: a dataset's kept frames of the split, or the files given."""
    if len(cfg.inputs) == 1 and _is_dataset(cfg.inputs[0]):
        paths = _dataset_paths(cfg.inputs[0], cfg.split)
    else:
        paths = _image_paths(cfg.inputs)
    paths = _spread(paths, cfg.limit)
    samples = []
    for path in paths:
        img = read_image(path)
        samples.append(Sample(path.name, img, has_truth=img.ndim == 3))
    return samples


def _is_dataset(path: Path) -> bool:
    return path.suffix == ".parquet" or (path / "manifests").is_dir()


def _dataset_paths(data: Path, split: str) -> list[Path]:
    from manifests import load_frames

    frames, root = load_frames(data)
    kept = kept_frames(frames)
    if split != "all":
        if "split" not in kept.columns or kept["split"].isna().all():
            raise DataError(f"{data} has no train/val/test split; run build-dataset on it, or "
                            "pass --split all")
        kept = kept[kept["split"] == split]
    if kept.empty:
        raise DataError(f"{data} has no kept frames in split {split!r}; pick another --split")
    return [Path(root) / str(p) for p in kept["image_path"]]


def _image_paths(inputs: Sequence[Path]) -> list[Path]:
    paths: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in layout.IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{path} holds no image files (and no manifests/ folder)")
            paths += found
        elif path.is_file():
            if path.suffix.lower() not in layout.IMAGE_SUFFIXES:
                raise DataError(f"{path}: compare takes images or a dataset folder, not "
                                f"{path.suffix or 'this file'}; extract frames from films first")
            paths.append(path)
        else:
            raise DataError(f"input not found: {path}")
    return paths


def _spread(items: Sequence[Path], n: int) -> list[Path]:
    if len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


# --------------------------------------------------------------------------- scoring


def grey_of(sample: Sample) -> np.ndarray:
    """(H, W, 3) uint8: the L channel alone (ab = 0), as the network sees the input."""
    if sample.rgb.ndim == 2:
        return np.repeat(sample.rgb[:, :, None], 3, axis=2)
    L = rgb_u8_to_L(torch.from_numpy(np.ascontiguousarray(sample.rgb))[None])
    return lab_to_srgb_u8(L, torch.zeros(1, 2, *L.shape[-2:]))[0].numpy()


@torch.no_grad()
def score(pred: np.ndarray, truth: np.ndarray | None) -> dict[str, float]:
    """The metrics of one (H, W, 3) uint8 result; those needing a truth are NaN without one."""
    p = torch.from_numpy(pred).permute(2, 0, 1)[None].float() / 255.0
    out = {"colorfulness": float(colorfulness(p)[0])}
    if truth is None:
        return {**dict.fromkeys(("psnr", "auc", "ciede2000"), math.nan), **out}
    t = torch.from_numpy(truth).permute(2, 0, 1)[None].float() / 255.0
    lab_p, lab_t = rgb_to_lab(p), rgb_to_lab(t)
    return {
        "psnr": float(psnr(p, t)[0]),
        "auc": float(auc_ab(lab_p[:, 1:], lab_t[:, 1:])[0]),
        "ciede2000": float(ciede2000(lab_p, lab_t)[0]),
        **out,
    }


def compare(cfg: CompareConfig) -> CompareResult:
    """Colorize the images with every model, score them, write the page and sheets."""
    from tqdm import tqdm

    samples = find_samples(cfg)
    if not samples:
        raise DataError("no images to compare")
    labels = cfg.model_labels()
    models = []
    for k, path in enumerate(cfg.checkpoints):
        colorizer = Colorizer.from_checkpoint(path, cfg.device, temperature=cfg.temperature_of(k),
                                              work_size=cfg.work_size)
        models.append((labels[k], path, colorizer))

    rows: list[dict[str, Any]] = []
    pictures: list[dict[str, np.ndarray]] = []
    bar = tqdm(total=len(samples) * len(models), unit="img", desc="compare", disable=cfg.quiet,
               leave=False)
    for i, sample in enumerate(samples):
        truth = sample.rgb if sample.has_truth else None
        grey = grey_of(sample)
        row_pics = {"grey": grey}
        rows.append({"index": i, "image": sample.name, "model": "grey (ab = 0)",
                     "checkpoint": "", "temperature": math.nan, **score(grey, truth)})
        for label, path, colorizer in models:
            pred = colorizer.colorize_rgb(sample.rgb)
            row_pics[label] = pred
            rows.append({"index": i, "image": sample.name, "model": label,
                         "checkpoint": str(path), "temperature": colorizer.temperature,
                         **score(pred, truth)})
            bar.update(1)
        if truth is not None:
            row_pics["truth"] = truth
            rows.append({"index": i, "image": sample.name, "model": "ground truth",
                         "checkpoint": "", "temperature": math.nan, **score(truth, None)})
        pictures.append(row_pics)
    bar.close()

    table = pd.DataFrame.from_records(rows)
    order = ["grey (ab = 0)", *labels, "ground truth"]
    means = (table.groupby("model", sort=False)[list(METRICS)].mean()
             .reindex([m for m in order if m in set(table["model"])]).reset_index())
    means.insert(1, "images", table.groupby("model", sort=False)["image"].count()
                 .reindex(means["model"]).to_numpy())
    return _write(cfg, samples, labels, models, table, means, pictures)


# --------------------------------------------------------------------------- output


def _write(cfg: CompareConfig, samples: list[Sample], labels: list[str], models: list[Any],
           table: pd.DataFrame, means: pd.DataFrame,
           pictures: list[dict[str, np.ndarray]]) -> CompareResult:
    from manifests import atomic_path

    out = cfg.out
    thumbs = out / "thumbs"
    columns = ["grey", *labels] + (["truth"] if any(s.has_truth for s in samples) else [])
    files: list[dict[str, str]] = []
    for i, pics in enumerate(pictures):
        names = {}
        for c, key in enumerate(columns):
            if key in pics:
                name = f"{i:04d}_{c}.jpg"
                _write_jpeg(_fit(pics[key], cfg.thumb_side), thumbs / name)
                names[key] = f"thumbs/{name}"
        files.append(names)
    sheets = _write_sheets(cfg, columns, pictures, table, out / "sheets")
    with atomic_path(out / "compare.csv") as tmp:
        table.to_csv(tmp, index=False)
    summary = {
        "config": {k: [str(v) for v in val] if isinstance(val, tuple) else str(val)
                   for k, val in asdict(cfg).items()},
        "models": [{"label": label, "checkpoint": str(path), "arch": c.model_config.arch,
                    "temperature": c.temperature, "work_size": c.work_size}
                   for label, path, c in models],
        "means": json.loads(means.to_json(orient="records")),
        "images": len(samples),
    }
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    page = out / "index.html"
    with atomic_path(page) as tmp:
        tmp.write_text(_page(cfg, samples, labels, columns, files, table, means, summary),
                       encoding="utf-8")
    return CompareResult(page, sheets, table, means, len(samples))


def _fit(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale == 1.0:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _write_jpeg(rgb: np.ndarray, path: Path) -> None:
    _write_encoded(rgb, path, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])


def _write_encoded(rgb: np.ndarray, path: Path, ext: str, params: list[int]) -> None:
    from manifests import atomic_path

    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise DataError(f"cannot encode {path.name}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def _caption(metrics: dict[str, float]) -> list[str]:
    def fmt(key: str) -> str:
        v = metrics.get(key, math.nan)
        if not math.isfinite(v):
            return ""
        return f"{METRIC_LABELS[key]} {v:.3f}" if key == "auc" else f"{METRIC_LABELS[key]} {v:.1f}"

    pairs = [fmt("psnr"), fmt("auc")], [fmt("ciede2000"), fmt("colorfulness")]
    return ["  ".join(p for p in pair if p) for pair in pairs]


def _write_sheets(cfg: CompareConfig, columns: list[str], pictures: list[dict[str, np.ndarray]],
                  table: pd.DataFrame, folder: Path) -> list[Path]:
    """PNG sheets: a header with the column names, then per image a row of cells, each with
    the metrics printed under it."""
    cell_h = 160
    names = {"grey": "grey input", "truth": "ground truth"}
    model_of = {"grey": "grey (ab = 0)", "truth": "ground truth"}
    paths = []
    for s, start in enumerate(range(0, len(pictures), cfg.sheet_rows)):
        chunk = range(start, min(start + cfg.sheet_rows, len(pictures)))
        widths = [max(_cell(pictures[i].get(c), cell_h).shape[1] for i in chunk)
                  for c in columns]
        header = np.full((28, sum(widths) + 4 * len(columns), 3), 255, np.uint8)
        x = 0
        for c, w in zip(columns, widths, strict=True):
            cv2.putText(header, names.get(c, c)[:40], (x + 4, 20), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, (0, 0, 0), 1, cv2.LINE_AA)
            x += w + 4
        blocks = [header]
        for i in chunk:
            cells = []
            for c, w in zip(columns, widths, strict=True):
                img = _cell(pictures[i].get(c), cell_h)
                canvas = np.full((cell_h + 36, w + 4, 3), 255, np.uint8)
                canvas[: img.shape[0], : img.shape[1]] = img
                row = table[(table["index"] == i) & (table["model"] == model_of.get(c, c))]
                if len(row):
                    for k, line in enumerate(_caption(row.iloc[0].to_dict())):
                        cv2.putText(canvas, line, (2, cell_h + 14 + 14 * k),
                                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
                cells.append(canvas)
            blocks.append(np.concatenate(cells, axis=1))
        sheet = np.concatenate(blocks, axis=0)
        path = folder / f"sheet_{s + 1:02d}.png"
        _write_encoded(sheet, path, ".png", [cv2.IMWRITE_PNG_COMPRESSION, 3])
        paths.append(path)
    return paths


def _cell(rgb: np.ndarray | None, height: int) -> np.ndarray:
    if rgb is None:
        return np.full((height, height, 3), 255, np.uint8)
    h, w = rgb.shape[:2]
    width = max(1, round(w * height / h))
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def _page(cfg: CompareConfig, samples: list[Sample], labels: list[str], columns: list[str],
          files: list[dict[str, str]], table: pd.DataFrame, means: pd.DataFrame,
          summary: dict[str, Any]) -> str:
    """The HTML page. Every value from data goes through html.escape."""
    esc = html.escape
    heads = {"grey": "grey input", "truth": "ground truth"}
    model_of = {"grey": "grey (ab = 0)", "truth": "ground truth"}

    mean_rows = "".join(
        "<tr><td>" + esc(str(r["model"])) + "</td><td>" + str(int(r["images"])) + "</td>"
        + "".join(f"<td>{_num(r[m], m)}</td>" for m in METRICS) + "</tr>"
        for r in means.to_dict("records")
    )
    model_info = "".join(
        f"<li><b>{esc(m['label'])}</b>: {esc(m['checkpoint'])} ({esc(m['arch'])}, "
        f"T = {m['temperature']:g}, working size {m['work_size']})</li>"
        for m in summary["models"]
    )
    options = ['<option value="index">image order</option>']
    for m in METRICS:
        for k, label in enumerate(labels):
            options.append(f'<option value="m{k}-{m}">{esc(label)}: {METRIC_LABELS[m]}</option>')
        for a in range(len(labels)):
            for b in range(len(labels)):
                if a != b:
                    options.append(
                        f'<option value="d{a}-{b}-{m}">{METRIC_LABELS[m]}: '
                        f"{esc(labels[b])} − {esc(labels[a])}</option>"
                    )
    body_rows = []
    for i, sample in enumerate(samples):
        attrs = [f'data-index="{i}"']
        cells = []
        for key in columns:
            model = model_of.get(key, key)
            row = table[(table["index"] == i) & (table["model"] == model)]
            metrics = row.iloc[0].to_dict() if len(row) else {}
            if key in labels:
                k = labels.index(key)
                attrs += [f'data-m{k}-{m}="{_attr(metrics.get(m))}"' for m in METRICS]
            if key not in files[i]:
                cells.append("<td class=none>no colour original</td>")
                continue
            caption = "<br>".join(esc(line) for line in _caption(metrics) if line)
            cells.append(
                f'<td><img src="{esc(files[i][key])}" alt="{esc(heads.get(key, key))}" '
                f'loading="lazy"><div class=m>{caption}</div></td>'
            )
        body_rows.append(f"<tr {' '.join(attrs)}><th>{esc(sample.name)}</th>{''.join(cells)}</tr>")
    head_cells = "".join(f"<th>{esc(heads.get(c, c))}</th>" for c in columns)
    metric_heads = "".join(f"<th>{esc(METRIC_LABELS[m])}</th>" for m in METRICS)
    return _TEMPLATE.format(
        n=len(samples), model_info=model_info, metric_heads=metric_heads, mean_rows=mean_rows,
        options="".join(options), head_cells=head_cells, rows="\n".join(body_rows),
    )


def _num(v: Any, metric: str) -> str:
    if v is None or not math.isfinite(float(v)):
        return "–"
    return f"{float(v):.3f}" if metric == "auc" else f"{float(v):.2f}"


def _attr(v: Any) -> str:
    return "" if v is None or not math.isfinite(float(v)) else f"{float(v):.6g}"


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>filmcolor compare: {n} images</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: 4px; vertical-align: top; text-align: left; }}
#images img {{ max-width: 320px; height: auto; display: block; }}
#images th {{ max-width: 10em; word-break: break-all; font-weight: normal; }}
.m {{ font-size: 12px; color: #333; }}
.none {{ color: #888; }}
#means td, #means th {{ border-bottom: 1px solid #ddd; }}
</style></head><body>
<h1>{n} images, side by side</h1>
<ul>{model_info}</ul>
<table id="means"><tr><th>model</th><th>images</th>{metric_heads}</tr>{mean_rows}</table>
<p>PSNR and AuC: higher is better; ΔE00 (CIEDE2000 to the original): lower is better;
colorfulness: closer to the ground truth's is better.</p>
<p><label>sort by <select id="sort">{options}</select></label>
<label><input type="checkbox" id="desc" checked> largest first</label></p>
<table id="images"><thead><tr><th>image</th>{head_cells}</tr></thead>
<tbody>
{rows}
</tbody></table>
<script>
function key(row, choice) {{
  if (choice === "index") return Number(row.dataset.index);
  const parts = choice.slice(1).split("-");
  const get = (k, m) => row.getAttribute("data-m" + k + "-" + m);
  let v;
  if (choice[0] === "m") v = get(parts[0], parts[1]);
  else {{
    const a = get(parts[0], parts[2]), b = get(parts[1], parts[2]);
    v = (a === "" || b === "" || a === null || b === null) ? "" : String(Number(b) - Number(a));
  }}
  return v === "" || v === null ? NaN : Number(v);
}}
function resort() {{
  const choice = document.getElementById("sort").value;
  const desc = document.getElementById("desc").checked;
  const body = document.querySelector("#images tbody");
  const rows = Array.from(body.rows);
  rows.sort((r, s) => {{
    const x = key(r, choice), y = key(s, choice);
    if (isNaN(x)) return 1;
    if (isNaN(y)) return -1;
    return desc && choice !== "index" ? y - x : x - y;
  }});
  rows.forEach(r => body.appendChild(r));
  document.body.dataset.sorted = choice;
}}
document.getElementById("sort").addEventListener("change", resort);
document.getElementById("desc").addEventListener("change", resort);
</script>
</body></html>
"""
