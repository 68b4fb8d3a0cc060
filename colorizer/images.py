"""Image files in, uint8 RGB arrays out: the I/O edge of the colorizer (OpenCV decode)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from colorizer.errors import DataError


def read_rgb(path: Path | str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file; grey files are replicated to 3 channels."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot read image {path}: missing, unreadable or not an image file")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def random_square_crop(
    img: np.ndarray, size: int, rng: np.random.Generator, flip: bool = True
) -> np.ndarray:
    """Resize so the shorter side is ``size`` (area filter), take a random size x size crop and,
    with ``flip``, mirror it half of the time. (H, W, 3) uint8 -> (size, size, 3) uint8."""
    h, w = img.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (nw, nh), interpolation=interp)
    top = int(rng.integers(nh - size + 1))
    left = int(rng.integers(nw - size + 1))
    crop = img[top : top + size, left : left + size]
    if flip and rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)
