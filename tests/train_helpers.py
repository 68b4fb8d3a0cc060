"""Small training datasets from real photographs (scikit-image), for the train tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

from filmdata.images import ImageSetConfig, index_images
from manifests import FRAME_SCHEMA, layout, write_table

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina")


def photo(name: str, short_side: int) -> np.ndarray:
    """A scikit-image photograph, RGB uint8, scaled so its shorter side is `short_side`."""
    img = getattr(skdata, name)()
    h, w = img.shape[:2]
    scale = short_side / min(h, w)
    size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def write_photos(folder: Path, names: tuple[str, ...], short_side: int) -> list[Path]:
    """FOLDER/<name>.jpg for each scikit-image photo in `names`, shorter side `short_side`."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name in names:
        path = folder / f"{name}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(photo(name, short_side), cv2.COLOR_RGB2BGR))
        files.append(path)
    return files


def make_dataset(
    root: Path,
    names: tuple[str, ...] = PHOTOS,
    short_side: int = 48,
    val: tuple[str, ...] = ("retina",),
) -> Path:
    """JPEGs of `names` indexed with filmdata's image indexer, split train (or val for the
    names in `val`), written as ROOT/manifests/dataset.parquet. Returns ROOT."""
    src = root.parent / f"{root.name}_src"
    files = write_photos(src, names, short_side)
    frames = index_images(src, files, "photos", root, ImageSetConfig())
    rejected = frames.loc[frames["status"] != "kept", "source_path"].tolist()
    assert not rejected, f"the image indexer rejected {rejected}"
    frames["split"] = ["val" if n in val else "train" for n in names]
    write_table(frames, layout.dataset_manifest(root), FRAME_SCHEMA, kind="dataset", config={})
    return root
