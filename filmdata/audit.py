"""audit: look at what extraction decided, film by film, in a browser.

For a dataset folder or any manifest, writes under `OUT/`:

    index.html            the summary table, one link per film
    <film_id>.html        a contact sheet: the sampled frames shot by shot, rejected ones
                          marked with their reason; before/after correction side by side for
                          the shots corrected most (restoration included); the histogram
                          of the luma the dark test saw, with the dark threshold drawn
    thumbs/               the small images the pages show

Pages are static HTML with inline SVG: no server, no JavaScript, no plotting library.
Every value that comes from a manifest (names, paths, reasons, splits, numbers) is
HTML-escaped, and file names made from it are reduced to safe characters: a crafted
manifest shows as text, it cannot run script in the page or write outside `OUT/`.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

import manifests
from filmdata.errors import OutputError
from filmdata.filters import FilterConfig
from manifests import layout
from manifests.dataset import summarize

THUMB_WIDTH = 192  # pixels
BEFORE_AFTER_SHOTS = 4  # shots shown before/after correction, per film
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}")
# Columns the pages format as numbers: coerced, so a manifest with text in them (damaged,
# or written by something else) shows NaN instead of stopping the audit.
_NUMERIC_COLUMNS = (
    "shot_index", "shot_start_frame", "shot_end_frame", "frame_index", "mean_luma",
    "relative_luma", "wb_gain_r", "wb_gain_g", "wb_gain_b", "exposure_gain",
    "exposure_offset", *(f"restore_{k}_{c}" for k in ("black", "white", "gamma") for c in "rgb"),
)

_CSS = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}
.shot{display:flex;gap:6px;align-items:flex-start;margin:6px 0;padding:6px;background:#fff;
border:1px solid #e4e4e4}.meta{width:170px;font-size:12px;color:#555;flex:none}
figure{margin:0;position:relative}figure img{display:block;border:2px solid #3a3}
figure.rejected img{border-color:#c33;border-style:dashed}figcaption{font-size:11px;color:#555}
.reason{position:absolute;top:4px;left:4px;background:#c33;color:#fff;font-size:11px;
padding:1px 4px}.pair{display:flex;gap:4px}h2{margin-top:28px}
"""


@dataclass(frozen=True)
class AuditReport:
    summary: pd.DataFrame
    pages: tuple[Path, ...]  # index.html first


def audit(
    source: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> AuditReport:
    """Summarize the manifest(s) at `source` and write the HTML pages under `out`
    (default: `<dataset root>/audit`)."""
    frames, root = manifests.load_frames(source)
    frames = _coerce_numbers(frames)
    out_dir = Path(out) if out is not None else root / "audit"
    _prepare_output(out_dir)
    summary = summarize(frames)
    dark_luma = _dark_threshold(source, root)
    pages = []
    for film_id, film in frames.groupby("film_id", sort=True):
        page = out_dir / page_name(str(film_id))
        _write_text(page, _film_page(str(film_id), film, root, out_dir, dark_luma))
        pages.append(page)
    index = out_dir / "index.html"
    _write_text(index, _index_page(summary, dark_luma))
    return AuditReport(summary, (index, *pages))


def page_name(film_id: str) -> str:
    """The file name of a film's page: `<film_id>.html` for the ids filmcolor makes; any
    other id is reduced to safe characters plus a short hash of it (no path separators, no
    leading dot, no markup)."""
    return _safe_file_name(film_id) + ".html"


def _safe_file_name(name: str) -> str:
    if _SAFE_NAME.fullmatch(name):
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:80] or "item"
    return f"{slug}-{hashlib.sha1(name.encode('utf-8', 'replace')).hexdigest()[:10]}"


def _coerce_numbers(frames: pd.DataFrame) -> pd.DataFrame:
    frames = frames.copy()
    for name in _NUMERIC_COLUMNS:
        if name in frames and not pd.api.types.is_numeric_dtype(frames[name]):
            frames[name] = pd.to_numeric(frames[name], errors="coerce")
    return frames


def _prepare_output(out_dir: Path) -> None:
    """Create OUT/thumbs, or fail with one line that says what to do."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} is a file, not a folder; choose a folder")
    try:
        (out_dir / "thumbs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create {out_dir}: {exc.strerror or exc}; choose another --out"
        ) from exc


def _dark_threshold(source: str | os.PathLike[str], root: Path) -> float:
    """The dark threshold the manifest was made with (else the default)."""
    candidates = [Path(source)] if Path(source).is_file() else [
        layout.dataset_manifest(root), *layout.film_manifests(root)]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            config = manifests.read_metadata(path)["config"]
            config = config.get("extract", config)  # a dataset nests the extract config
            value = config.get("filters", {}).get("dark_luma")
            if value is not None:
                return float(value)
        except (manifests.ManifestError, AttributeError, TypeError, ValueError):
            continue  # metadata of another shape: the default threshold is drawn
    return FilterConfig().dark_luma


def _e(value: object) -> str:
    """A manifest value as HTML text (quotes escaped too: safe inside attributes)."""
    return html.escape(str(value), quote=True)


# -- pages ----------------------------------------------------------------------------


def _index_page(summary: pd.DataFrame, dark_luma: float) -> str:
    """The summary table: every cell and header escaped; the film ids link to their pages."""
    head = "".join(f"<th>{_e(name)}</th>" for name in summary.columns)
    rows = []
    for record in summary.itertuples(index=False):
        cells = []
        for name, value in zip(summary.columns, record, strict=True):
            text = _e(value)
            if name == "film_id":
                href = urllib.parse.quote(page_name(str(value)))
                text = f'<a href="{_e(href)}">{text}</a>'
            cells.append(f"<td>{text}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    totals = (f"{len(summary)} sources, {int(summary['frames'].sum())} frames sampled, "
              f"{int(summary['kept'].sum())} kept; dark threshold {dark_luma:g}")
    table = (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
             "</table>")
    return _page("filmcolor audit", f"<p>{_e(totals)}</p>{table}")


def _film_page(
    film_id: str, film: pd.DataFrame, root: Path, out_dir: Path, dark_luma: float
) -> str:
    film = film.sort_values("frame_index")
    kept = int((film["status"] == "kept").sum())
    source = _e(film["source_path"].iloc[0])
    parts = [
        f"<p><a href='index.html'>all films</a> &middot; {source}"
        f" &middot; {film['shot_index'].nunique()} shots, {len(film)} frames, {kept} kept</p>",
        "<h2>Luma of the sampled frames (the film's black = 0: what the dark test sees)</h2>",
        luma_histogram_svg(_dark_test_luma(film), film["status"].to_numpy(), dark_luma),
    ]
    if film["source_kind"].iloc[0] == "film":
        parts.append("<h2>Before and after correction</h2>")
        parts.extend(_before_after(film, root, out_dir))
    parts.append("<h2>Contact sheet</h2>")
    for shot_index, shot in film.groupby("shot_index", sort=True):
        parts.append(_shot_row(int(shot_index), shot, root, out_dir))
    return _page(f"audit: {film_id}", "\n".join(parts))


def _shot_row(shot_index: int, shot: pd.DataFrame, root: Path, out_dir: Path) -> str:
    first = shot.iloc[0]
    meta = (f"<div class='meta'><b>shot {shot_index}</b><br>frames "
            f"{_e(first['shot_start_frame'])}-{_e(first['shot_end_frame'] - 1)}<br>WB "
            f"{first['wb_gain_r']:.2f} {first['wb_gain_g']:.2f} {first['wb_gain_b']:.2f}"
            f"<br>exposure x{first['exposure_gain']:.2f} -{first['exposure_offset']:.0f}</div>")
    figures = [_figure(row, root, out_dir) for row in shot.itertuples()]
    return f"<div class='shot'>{meta}{''.join(figures)}</div>"


def _figure(row: object, root: Path, out_dir: Path) -> str:
    path = row.image_path if isinstance(row.image_path, str) else row.thumb_path
    src = _thumb(root, path, out_dir) if isinstance(path, str) else None
    img = (f"<img src='{_e(src)}' width='{THUMB_WIDTH}'>" if src else
           f"<div style='width:{THUMB_WIDTH}px;height:{THUMB_WIDTH * 9 // 16}px;"
           "background:#333'></div>")
    rejected = row.status != "kept"
    badge = f"<span class='reason'>{_e(row.reject_reason)}</span>" if rejected else ""
    caption = f"f{_e(row.frame_index)} &middot; luma {row.mean_luma:.0f}"
    css = " class='rejected'" if rejected else ""
    shown = path if isinstance(path, str) else "no image written"
    title = f" title='{_e(row.frame_id)}: {_e(shown)}'"  # on hover: which frame, which file
    return f"<figure{css}{title}>{img}{badge}<figcaption>{caption}</figcaption></figure>"


def _dark_test_luma(film: pd.DataFrame) -> np.ndarray:
    """(n,) the luma the dark test compared: relative to the film's black level, or the
    mean luma where a manifest has no relative luma (still images, older manifests)."""
    mean = film["mean_luma"].to_numpy(float)
    if "relative_luma" not in film:
        return mean
    relative = film["relative_luma"].to_numpy(float)
    return np.where(np.isnan(relative), mean, relative)


def _correction_strength(rows: pd.DataFrame) -> pd.Series:
    """How far each row's correction moved its frame: the restoration's levels (in units of
    the full range) and gammas, the white-balance gains and the exposure, in log terms."""
    def column(name: str, neutral: float) -> pd.Series:
        return rows[name].astype(float).fillna(neutral) if name in rows else pd.Series(
            neutral, index=rows.index)

    strength = pd.Series(0.0, index=rows.index)
    for c in "rgb":
        strength += column(f"restore_black_{c}", 0.0) / 255.0
        strength += (255.0 - column(f"restore_white_{c}", 255.0)) / 255.0
        strength += np.log(column(f"restore_gamma_{c}", 1.0)).abs()
        strength += np.log(column(f"wb_gain_{c}", 1.0)).abs()
    return strength + np.log(column("exposure_gain", 1.0)).abs()


def _before_after(film: pd.DataFrame, root: Path, out_dir: Path) -> list[str]:
    """The kept frames of the shots whose correction moved colours the most."""
    usable = film[(film["status"] == "kept") & film["thumb_path"].notna()
                  & film["image_path"].notna()]
    if usable.empty:
        return ["<p>No kept frames with thumbnails (extracted with thumbnails off?).</p>"]
    strength = _correction_strength(usable)
    shots = (usable.assign(strength=strength).groupby("shot_index")["strength"].max()
             .sort_values(ascending=False).index[:BEFORE_AFTER_SHOTS])
    rows = []
    for shot_index in sorted(shots):
        row = usable[usable["shot_index"] == shot_index].iloc[0]
        before = _thumb(root, row["thumb_path"], out_dir)
        after = _thumb(root, row["image_path"], out_dir)
        rows.append(
            f"<div class='shot'><div class='meta'><b>shot {_e(shot_index)}</b>, frame "
            f"{_e(row['frame_index'])}<br>before | after</div><div class='pair'>"
            f"{_img(before)}{_img(after)}</div></div>"
        )
    return rows


def _img(src: str | None) -> str:
    return f"<img src='{_e(src)}' width='{THUMB_WIDTH}'>" if src else ""


def luma_histogram_svg(
    luma: np.ndarray, status: Sequence[str], threshold: float, width: int = 640,
    height: int = 160,
) -> str:
    """Stacked histogram (kept green, rejected red) of mean luma 0-255 in bins of 5, with
    the dark threshold as a vertical line."""
    bins = np.arange(0, 260, 5)
    kept = np.asarray(status) == "kept"
    counts_kept, _ = np.histogram(luma[kept], bins)
    counts_rejected, _ = np.histogram(luma[~kept], bins)
    top = max(1, int((counts_kept + counts_rejected).max()))
    bar_w = width / len(counts_kept)
    plot_h = height - 20
    shapes = []
    for i, (k, r) in enumerate(zip(counts_kept, counts_rejected, strict=True)):
        x = i * bar_w
        h_r, h_k = plot_h * r / top, plot_h * k / top
        if r:
            shapes.append(f"<rect x='{x:.1f}' y='{plot_h - h_r:.1f}' width='{bar_w - 1:.1f}' "
                          f"height='{h_r:.1f}' fill='#c33'/>")
        if k:
            shapes.append(f"<rect x='{x:.1f}' y='{plot_h - h_r - h_k:.1f}' "
                          f"width='{bar_w - 1:.1f}' height='{h_k:.1f}' fill='#3a3'/>")
    x_t = width * threshold / 260
    shapes.append(f"<line x1='{x_t:.1f}' x2='{x_t:.1f}' y1='0' y2='{plot_h}' stroke='#000' "
                  "stroke-dasharray='4 3'/>")
    shapes.append(f"<text x='{x_t + 4:.1f}' y='12' font-size='11'>dark &lt; {threshold:g}</text>")
    for tick in range(0, 256, 50):
        shapes.append(f"<text x='{width * tick / 260:.1f}' y='{height - 4}' font-size='10'>"
                      f"{tick}</text>")
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>"
            + "".join(shapes) + "</svg>")


# -- files ----------------------------------------------------------------------------


def _thumb(root: Path, rel: str, out_dir: Path) -> str | None:
    """Write (once) a THUMB_WIDTH-wide copy of root/rel under out_dir/thumbs; return its
    path relative to out_dir, or None if the image is missing."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        return None
    name = _safe_file_name(rel.replace("/", "__").rsplit(".", 1)[0]) + ".jpg"
    target = out_dir / "thumbs" / name
    if not target.is_file():
        try:
            image = cv2.imread(str(root / rel), cv2.IMREAD_COLOR)
        except cv2.error:
            return None
        if image is None or image.ndim != 3 or image.shape[1] == 0:
            return None
        scale = THUMB_WIDTH / image.shape[1]
        small = cv2.resize(image, (THUMB_WIDTH, max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            return None
        with manifests.atomic_path(target) as tmp:
            tmp.write_bytes(data.tobytes())
    return f"thumbs/{name}"


def _write_text(path: Path, text: str) -> None:
    with manifests.atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{body}</body></html>")
