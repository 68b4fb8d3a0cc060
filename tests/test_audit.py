"""audit: the HTML pages show manifest values as text, whatever they hold."""

from __future__ import annotations

import html
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
from click.testing import CliRunner

import manifests
from cli import main
from filmdata.audit import page_name
from manifests import layout

STRING_COLUMNS = [f.name for f in manifests.FRAME_SCHEMA if str(f.type) == "string"]
SCRIPT = '<script>alert("{col}")</script>'
ATTRIBUTE = '"><img src=x onerror=alert("{col}")>'
QUOTE = "'><svg onload=alert('{col}')>"


def cli(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _rows(payload: str, n: int, *, kind: str | None = None, status: str | None = None,
          image: str | None = None) -> list[dict[str, object]]:
    """n frames of one film, two shots, every string column holding `payload` (with its
    column's name in it) unless given."""
    rows = []
    for i in range(n):
        row: dict[str, object] = {c: payload.format(col=c) for c in STRING_COLUMNS}
        row["frame_id"] = payload.format(col=f"frame_id{i}")
        if kind is not None:
            row["source_kind"] = kind
        if status is not None:
            row["status"] = status if i % 2 == 0 else "rejected"
        if image is not None:
            row["image_path"] = row["thumb_path"] = image
        row.update(shot_index=i // 2, shot_start_frame=10 * (i // 2),
                   shot_end_frame=10 * (i // 2) + 10, frame_index=i * 4, pts_s=i / 6,
                   width=64, height=48, mean_luma=40.0 + 30 * i, relative_luma=30.0 + 30 * i,
                   colorfulness=10.0, sharpness=5.0, phash=i,
                   wb_gain_r=1.1, wb_gain_g=1.0, wb_gain_b=0.9, exposure_gain=1.2,
                   exposure_offset=3.0)
        for what, neutral in (("black", 5.0), ("white", 240.0), ("gamma", 1.1)):
            for c in "rgb":
                row[f"restore_{what}_{c}"] = neutral
        rows.append(row)
    return rows


def _crafted_dataset(root: Path) -> None:
    """A dataset folder whose manifest holds markup in every string column: two films
    entirely crafted, one a 'film' with real images at crafted paths (thumbnails and the
    before/after pairs are drawn), and crafted metadata (a dark threshold that is text)."""
    image = ATTRIBUTE.format(col="image_file") + ".jpg"  # no slash: a real file name
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / image), np.full((48, 64, 3), 120, np.uint8))
    rows = (_rows(SCRIPT, 4) + _rows(ATTRIBUTE, 4)
            + _rows(QUOTE, 4, kind="film", status="kept", image=f"images/{image}"))
    frames = pd.DataFrame(rows)
    manifests.write_table(frames, layout.dataset_manifest(root), manifests.FRAME_SCHEMA,
                          kind="dataset",
                          config={"filters": {"dark_luma": SCRIPT.format(col="config")}})


def test_manifest_values_are_text_in_every_page(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _crafted_dataset(root)
    out = tmp_path / "audit"
    code, _, stderr = cli("audit", root, "--out", out)
    assert code == 0, stderr
    pages = sorted(out.glob("*.html"))
    assert len(pages) == 4  # index + three films
    # Every file stays inside --out: page names are made safe, whatever the film id.
    written = {p.relative_to(out).parts[0] for p in out.rglob("*")}
    assert written <= {"thumbs", *(p.name for p in pages)}, written
    for page in pages:
        text = page.read_text()
        for col in [*STRING_COLUMNS, "image_file", "config", "frame_id0"]:
            for payload in (SCRIPT, ATTRIBUTE, QUOTE):
                raw = payload.format(col=col)
                assert raw not in text, f"{page.name}: raw {raw!r}"
        assert "<script" not in text
        assert not re.search(r"<(img|svg)[^>]*\son(error|load)=", text), page.name
    index = (out / "index.html").read_text()
    # The summary shows the crafted film ids, kinds, reasons and splits as text.
    for payload in (SCRIPT, ATTRIBUTE):
        for col in ("film_id", "source_kind", "reject_reason", "split"):
            assert html.escape(payload.format(col=col)) in index, (payload, col)
    assert html.escape(QUOTE.format(col="film_id")) in index
    assert "dark threshold 25" in index  # text in the metadata: the default threshold
    # Each film id links to its page, which exists.
    hrefs = re.findall(r'<a href="([^"]+)">', index)
    assert len(hrefs) == 3 and all((out / href).is_file() for href in hrefs)
    # Film pages show the source path, reason, frame ids and paths as text.
    for payload in (SCRIPT, ATTRIBUTE, QUOTE):
        page = (out / page_name(payload.format(col="film_id"))).read_text()
        for col in ("film_id", "source_path", "reject_reason", "frame_id0"):
            assert html.escape(payload.format(col=col)) in page, (payload, col)
    # The film with real images at crafted paths gets its thumbnails and pairs.
    page = (out / page_name(QUOTE.format(col="film_id"))).read_text()
    assert "before | after" in page and "<img src='thumbs/" in page
    assert html.escape(ATTRIBUTE.format(col="image_file")) in page
    thumbs = list((out / "thumbs").iterdir())
    assert thumbs and all(re.fullmatch(r"[A-Za-z0-9._-]+", t.name) for t in thumbs)


def test_page_names_are_safe_and_distinct() -> None:
    assert page_name("movie-1a2b3c4d") == "movie-1a2b3c4d.html"  # filmcolor's ids unchanged
    for crafted in ("../../etc/x", "a/b", ".hidden", "<b>", "x" * 400, "", "é"):
        name = page_name(crafted)
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.html", name), name
        assert len(name) < 200
    assert page_name("a/b") != page_name("a_b") and page_name("a/b") != page_name("a?b")


def test_text_in_a_numeric_column_does_not_stop_the_audit(tmp_path: Path) -> None:
    root = tmp_path / "data"
    frames = pd.DataFrame(_rows("ok{col}", 4, kind="film", status="kept"))
    frames["mean_luma"] = frames["mean_luma"].astype(str)
    frames.loc[0, "mean_luma"] = "<b>bright</b>"
    path = root / "manifests" / "films" / "x.parquet"
    path.parent.mkdir(parents=True)
    schema = manifests.FRAME_SCHEMA.set(
        manifests.FRAME_SCHEMA.get_field_index("mean_luma"),
        manifests.FRAME_SCHEMA.field("mean_luma").with_type(pa.string()))
    manifests.write_table(frames, path, schema, kind="frames", config={})
    code, _, stderr = cli("audit", path, "--out", tmp_path / "audit")
    assert code == 0, stderr
    assert "<b>bright" not in (tmp_path / "audit" / "okfilm_id.html").read_text()
