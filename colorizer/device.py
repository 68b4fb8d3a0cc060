"""Which torch device a run uses: one rule for train, fine-tuning, evaluation and colorize."""

from __future__ import annotations

import torch

from colorizer.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """ "auto" -> CUDA if available else CPU; anything else must name a usable device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but this machine has no usable CUDA GPU")
    return device
