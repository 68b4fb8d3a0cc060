"""Test helpers for evaluate / colorize: a small trained-ish checkpoint and B&W media."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from skimage import data as skdata

from colorizer.bins import downsample_ab, soft_cross_entropy, soft_encode
from colorizer.checkpoint import save_checkpoint
from colorizer.lab import rgb_to_lab
from colorizer.model import ModelConfig, build_model


def photos(size: int = 64) -> torch.Tensor:
    """A few real colour photos (scikit-image), centre-cropped and resized: (N, 3, s, s)."""
    import cv2

    out = []
    for img in (skdata.astronaut(), skdata.coffee(), skdata.chelsea()):
        h, w = img.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        crop = img[top : top + side, left : left + side]
        out.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def make_checkpoint(path: Path, arch: str = "eccv16", steps: int = 4, size: int = 64) -> Path:
    """A few Adam steps of `arch` on real photos at `size`, saved with save_checkpoint."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch)
    model = build_model(cfg)
    lab = rgb_to_lab(photos(size))
    L, ab = lab[:, :1], lab[:, 1:]
    targets = soft_encode(downsample_ab(ab))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = soft_cross_entropy(model(L), targets)
        loss.backward()
        opt.step()
    model.eval()
    return save_checkpoint(path, model, cfg, step=steps)
