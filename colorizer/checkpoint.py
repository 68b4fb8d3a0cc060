"""Checkpoints: the one file format shared by train (writer) and evaluate/colorize (readers).

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that
`torch.load(path, weights_only=True)` reads it:

    format          "filmcolor-checkpoint"
    version         CHECKPOINT_VERSION
    model_config    dataclasses.asdict(ModelConfig)     -> build_model rebuilds the net
    model           the model's state dict
    step            optimizer steps done
    train_config    the settled training config (a dict), {} if none
    decode          {"temperature": T, "work_size": S}: how the model colorizes by default
                    (the annealed mean's T; the shorter side the network sees, the scale it
                    was trained at); absent in older files (T = 0.5, S = 256)
    provenance      where imported weights came from (`import_released`); absent otherwise
    optimizer, scheduler, rng, extra    training state; absent in inference-only files

Zhang et al.'s released ECCV16 state dict is read as a checkpoint too (`colorizer.released`):
recognised by its keys, its bins checked, decoded at the temperature that reproduces their
code.

Written atomically (temp file + os.replace): a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from colorizer import released
from colorizer.bins import DEFAULT_TEMPERATURE
from colorizer.errors import WeightsError
from colorizer.model import ColorizationNet, ModelConfig, build_model
from colorizer.weights import atomic_save

CHECKPOINT_FORMAT = "filmcolor-checkpoint"
CHECKPOINT_VERSION = 1
DEFAULT_WORK_SIZE = 256  # pixels, shorter side of the network's input (Zhang et al.: 256)


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
    """The checkpoint dict, checked to be ours (or Zhang et al.'s released weights, made
    into one); `WeightsError` says what is wrong."""
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
    if released.looks_released(payload):
        return released_checkpoint(payload, path)
    if not isinstance(payload, Mapping) or payload.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(
            f"{path} is neither a filmcolor checkpoint nor Zhang et al.'s released ECCV16 "
            "weights; train one with `python cli.py train`, or give "
            f"{released.RELEASE_FILE}"
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise WeightsError(
            f"{path}: checkpoint version {payload.get('version')}, this tool reads "
            f"{CHECKPOINT_VERSION}; use a matching filmcolor version"
        )
    return dict(payload)


def released_checkpoint(state: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """Zhang et al.'s released state dict as an inference checkpoint (bins checked)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_config": dataclasses.asdict(ModelConfig(arch="eccv16")),
        "model": released.released_state(state, path),
        "step": 0,
        "train_config": {},
        "decode": {"temperature": released.RELEASED_TEMPERATURE,
                   "work_size": DEFAULT_WORK_SIZE},
        "provenance": released.provenance(path),
    }


def import_released(source: str | Path, out: str | Path) -> Path:
    """Write Zhang et al.'s released weights (`source`) as a filmcolor checkpoint at `out`,
    with their provenance and decoding temperature; the file is checked first (bins, keys,
    shapes: the model is built and loaded), so nothing is written for a wrong file."""
    if not Path(source).is_file():
        raise WeightsError(f"weights file not found: {source}; give Zhang et al.'s "
                           f"{released.RELEASE_FILE}")
    payload = read_checkpoint(source)
    if "provenance" not in payload:
        raise WeightsError(f"{source} is already a filmcolor checkpoint; use it as it is")
    payload["provenance"]["sha256"] = released.file_sha256(source)
    model = build_model(model_config_of(payload))
    _load_state(model, payload["model"], Path(source), "eccv16")
    out = Path(out)
    atomic_save(payload, out)
    return out


def decode_settings(payload: Mapping[str, Any]) -> tuple[float, int]:
    """(temperature, work_size) a checkpoint colorizes with by default."""
    decode = payload.get("decode") or {}
    temperature = decode.get("temperature", DEFAULT_TEMPERATURE)
    work_size = decode.get("work_size", DEFAULT_WORK_SIZE)
    if not (isinstance(temperature, (int, float)) and temperature >= 0):
        raise WeightsError(f"checkpoint's decoding temperature {temperature!r} is not a number "
                           ">= 0; pass --temperature")
    if not (isinstance(work_size, int) and work_size >= 16):
        raise WeightsError(f"checkpoint's working size {work_size!r} is not a whole number "
                           ">= 16; pass --work-size")
    return float(temperature), work_size


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
    _load_state(model, payload.pop("model", None), Path(path), cfg.arch)
    return model.to(device).eval(), cfg, payload


def _load_state(model: ColorizationNet, state: Any, path: Path, arch: str) -> None:
    """Load `state` into `model`, or a WeightsError that says how they differ."""
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path}: checkpoint holds no model weights")
    missing, unexpected = _key_mismatch(model, state)
    if missing or unexpected:
        raise WeightsError(
            f"{path}: weights do not fit a {arch!r} model "
            f"({len(missing)} missing, {len(unexpected)} unexpected, e.g. "
            f"{(missing or unexpected)[0]}); the file is damaged or from another version"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()[:160]
        raise WeightsError(f"{path}: weights do not fit a {arch!r} model ({first})") from exc


def _key_mismatch(model: torch.nn.Module, state: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    given = set(state)
    return sorted(expected - given), sorted(given - expected)
