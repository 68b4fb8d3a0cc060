"""Still-image folders ("data B") into the same manifest schema as films.

Each image is its own shot (`shot_index` = its number in the sorted folder), so splits by
shot and by film both keep one image in one split. Images are copied into the dataset
(re-encoded only when resized), scored with the same filters as film frames, and never
colour-corrected: photographs are taken to be balanced already.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

import manifests
from filmdata.errors import FilmOpenError
from filmdata.filters import FilterConfig, reject_reason, score_frame
from filmdata.sampling import sharpness
from filmdata.validate import check_fields, check_range
from manifests import FRAME_SCHEMA, layout


@dataclass(frozen=True)
class ImageSetConfig:
    max_side: int | None = None  # resize so the longer side <= this (pixels); None keeps size
    jpeg_quality: int = 95  # when re-encoding
    filters: FilterConfig = field(default_factory=FilterConfig)

    def __post_init__(self) -> None:
        options = {"max_side": "--image-max-side", "jpeg_quality": "--quality"}
        check_fields(self, options)
        check_range(self, "max_side", 16, options=options, note=" pixels")
        check_range(self, "jpeg_quality", 1, 100, options=options)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in layout.IMAGE_SUFFIXES


def image_set_id(folder: Path, files: Sequence[Path], part: int | None = None) -> str:
    """Slug of the folder + fingerprint of its files' relative paths and sizes."""
    slug = re.sub(r"[^a-z0-9]+", "-", folder.name.lower()).strip("-")[:40] or "images"
    digest = hashlib.blake2b(digest_size=4)
    for f in files:
        digest.update(f"{f.relative_to(folder).as_posix()}:{f.stat().st_size}\n".encode())
    suffix = "" if part is None else f"-p{part:04d}"
    return f"{slug}-{digest.hexdigest()}{suffix}"


def image_set_facts(files: Sequence[Path]) -> dict[str, int]:
    """What the skip check compares besides the set's id (paths and sizes): the newest
    mtime, so that an image edited in place is indexed again."""
    return {"files": len(files), "mtime_ns": max((f.stat().st_mtime_ns for f in files),
                                                 default=0)}


def index_images(
    folder: Path,
    files: Sequence[Path],
    set_id: str,
    out_root: Path,
    cfg: ImageSetConfig,
    *,
    first_index: int = 0,
) -> pd.DataFrame:
    """Copy/resize `files` into the dataset and return their manifest rows."""
    if not folder.is_dir():
        raise FilmOpenError(f"{folder}: image folder not found")
    rows = [
        _index_one(folder, path, set_id, first_index + i, out_root, cfg)
        for i, path in enumerate(files)
    ]
    return pd.DataFrame(rows, columns=FRAME_SCHEMA.names)


def _index_one(
    folder: Path, path: Path, set_id: str, index: int, out_root: Path, cfg: ImageSetConfig
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "frame_id": f"{set_id}-i{index:07d}", "film_id": set_id,
        "source_path": str(path), "source_kind": "image",
        "shot_index": index, "shot_start_frame": index, "shot_end_frame": index + 1,
        "frame_index": index, "pts_s": None, "image_path": None, "thumb_path": None,
        "width": 0, "height": 0,
        "mean_luma": None, "colorfulness": None, "sharpness": None, "phash": None,
        "wb_gain_r": 1.0, "wb_gain_g": 1.0, "wb_gain_b": 1.0,
        "exposure_gain": 1.0, "exposure_offset": 0.0, "split": None,
    }
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return row | {"status": "rejected", "reject_reason": "unreadable"}
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    scores = score_frame(rgb)
    small = cv2.resize(rgb, (256, max(1, round(rgb.shape[0] * 256 / rgb.shape[1]))),
                       interpolation=cv2.INTER_AREA)
    row |= {"mean_luma": scores.mean_luma, "colorfulness": scores.colorfulness,
            "sharpness": sharpness(small), "phash": np.uint64(scores.phash)}
    reason = reject_reason(scores, cfg.filters)
    if reason is not None:
        return row | {"status": "rejected", "reject_reason": reason}
    rel, (width, height) = _store(rgb, path, folder, set_id, index, out_root, cfg)
    return row | {"status": "kept", "reject_reason": None, "image_path": rel,
                  "width": width, "height": height}


def _store(
    rgb: np.ndarray, src: Path, folder: Path, set_id: str, index: int, out_root: Path,
    cfg: ImageSetConfig,
) -> tuple[str, tuple[int, int]]:
    height, width = rgb.shape[:2]
    resize = cfg.max_side is not None and max(height, width) > cfg.max_side
    keep_bytes = not resize and src.suffix.lower() in {".jpg", ".jpeg", ".png"}
    ext = src.suffix.lower().lstrip(".").replace("jpeg", "jpg") if keep_bytes else "jpg"
    rel = layout.image_relpath(set_id, index, index, ext)
    target = out_root / rel
    with manifests.atomic_path(target) as tmp:
        if keep_bytes:
            shutil.copyfile(src, tmp)
        else:
            if resize:
                scale = cfg.max_side / max(height, width)
                width, height = max(1, round(width * scale)), max(1, round(height * scale))
                rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
            ok, data = cv2.imencode(".jpg", rgb[..., ::-1],
                                    [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            if not ok:
                raise OSError(f"could not encode {src}")
            tmp.write_bytes(data.tobytes())
    return rel, (width, height)
