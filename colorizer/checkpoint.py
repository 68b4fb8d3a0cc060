"""Checkpoints: the one file format shared by train (writer) and evaluate/colorize (readers).

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that
`torch.load(path, weights_only=True)` reads it:

    format          "filmcolor-checkpoint"
    version         CHECKPOINT_VERSION
    model_config    dataclasses.asdict(ModelConfig)     -> build_model rebuilds the net
    model           the model's state dict
    step            optimizer steps done
    train_config    the settled training config (a dict), {} if none
    optimizer, scheduler, rng, extra    training state; absent in inference-only files

Written atomically (temp file + os.replace): a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from colorizer.errors import WeightsError
from colorizer.model import ColorizationNet, ModelConfig, build_model
from colorizer.weights import atomic_save

CHECKPOINT_FORMAT = "filmcolor-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    model_config: ModelConfig,
    *,
    step: int = 0,
    train_config: Mapping[str, Any] | None = None,
    **state: Any,
) -> Path:
    """Write a checkpoint atomically. `state` adds training state (optimizer=..., ...)."""
    module = getattr(model, "module", model)  # unwrap DDP
    module = getattr(module, "_orig_mod", module)  # unwrap torch.compile
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_config": dataclasses.asdict(model_config),
        "model": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "step": int(step),
        "train_config": dict(train_config or {}),
        **state,
    }
    path = Path(path)
    atomic_save(payload, path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, checked to be ours; `WeightsError` says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}; give RUN/last.pt of a training run")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle: the same to a user
        raise WeightsError(
            f"cannot read checkpoint {path}: it is truncated or not a PyTorch file "
            f"({type(exc).__name__}); use a complete RUN/last.pt"
        ) from exc
    if not isinstance(payload, Mapping) or payload.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(
            f"{path} is not a filmcolor checkpoint (no format tag); train one with "
            "`python cli.py train`, or load Zhang's weights with --init-zhang"
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise WeightsError(
            f"{path}: checkpoint version {payload.get('version')}, this tool reads "
            f"{CHECKPOINT_VERSION}; use a matching filmcolor version"
        )
    return dict(payload)


def model_config_of(payload: Mapping[str, Any]) -> ModelConfig:
    try:
        return ModelConfig(**payload["model_config"])
    except (KeyError, TypeError) as exc:
        raise WeightsError(f"checkpoint has no usable model_config ({exc})") from exc


def load_model(
    path: str | Path, device: torch.device | str = "cpu", *, expect_arch: str | None = None
) -> tuple[ColorizationNet, ModelConfig, dict[str, Any]]:
    """Rebuild the network of a checkpoint for inference (eval mode, on `device`).

    Returns (model, its config, the checkpoint dict without the weights). A checkpoint
    whose weights do not fit its declared architecture, or another architecture than
    `expect_arch`, is refused with a `WeightsError`.
    """
    payload = read_checkpoint(path)
    cfg = model_config_of(payload)
    if expect_arch is not None and cfg.arch != expect_arch:
        raise WeightsError(
            f"{path} holds a {cfg.arch!r} model, not {expect_arch!r}; pick the matching "
            "checkpoint or --arch"
        )
    model = build_model(cfg)
    state = payload.pop("model", None)
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path}: checkpoint holds no model weights")
    missing, unexpected = _key_mismatch(model, state)
    if missing or unexpected:
        raise WeightsError(
            f"{path}: weights do not fit a {cfg.arch!r} model "
            f"({len(missing)} missing, {len(unexpected)} unexpected, e.g. "
            f"{(missing or unexpected)[0]}); the file is damaged or from another version"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()[:160]
        raise WeightsError(f"{path}: weights do not fit a {cfg.arch!r} model ({first})") from exc
    return model.to(device).eval(), cfg, payload


def _key_mismatch(model: torch.nn.Module, state: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    given = set(state)
    return sorted(expected - given), sorted(given - expected)
