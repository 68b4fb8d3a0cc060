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
