"""Image files in, uint8 arrays out: the I/O edge of the colorizer (OpenCV decode).

One reader for training data, evaluation, compare and colorize: 8-bit and 16-bit files,
grey or colour, alpha dropped; a file that cannot be decoded is one `DataError` line.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from colorizer.errors import DataError


def read_image(path: Path | str) -> np.ndarray:
    """(H, W) uint8 for grey files (and colour files whose three channels are equal),
    (H, W, 3) uint8 RGB for colour ones; alpha dropped, 16-bit reduced to 8 bits."""
    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if img is None:
        raise DataError(
            f"cannot read image {path}: missing, damaged or not an image file; give a PNG, "
            "JPEG, TIFF, BMP or WebP image"
        )
    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"{path}: {img.dtype} images are not supported; save it as 8-bit")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
        img = cv2.cvtColor(img, code)
        if _is_grey(img):
            img = np.ascontiguousarray(img[:, :, 0])
    return img


def read_rgb(path: Path | str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file; grey files are replicated to 3 channels."""
    img = read_image(path)
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img


def _is_grey(rgb: np.ndarray) -> bool:
    return bool((rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all())
