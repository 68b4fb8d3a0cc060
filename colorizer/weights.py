"""Weights from local files: torchvision's VGG-16, a fine-tuned grey VGG, Zhang's ECCV16 release.

Nothing is downloaded. Every file is read with ``torch.load(weights_only=True)`` and checked
against the expected keys and shapes; anything wrong is a ``WeightsError`` that names the file
that was expected and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from colorizer import outputs
from colorizer.errors import ConfigError, WeightsError
from colorizer.model import ColorizationNet, ModelConfig
from colorizer.vgg import VGG16_CONVS, VggFeatures

VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
ECCV16_FILE = "colorization_release_v2-9b330a0b.pth"
ECCV16_URL = "https://colorizers.s3.us-east-2.amazonaws.com/colorization_release_v2-9b330a0b.pth"
GREY_VGG_FORMAT = "filmcolor.grey_vgg16"  # "format" entry of files written by finetune_vgg
GREY_VGG_VERSION = 1


@dataclass(frozen=True)
class _Kind:
    name: str  # what the file should be, in words
    hint: str  # what to do about it


VGG_KIND = _Kind(
    f"a VGG-16 weights file (torchvision's ImageNet {VGG16_FILE}, or a grey VGG written by "
    "`finetune-vgg`)",
    f"Download {VGG16_URL} on a machine with internet access, copy it here and pass its path "
    "(--vgg-weights).",
)
_ECCV16 = _Kind(
    f"Zhang et al.'s released ECCV16 PyTorch weights ({ECCV16_FILE})",
    f"Download {ECCV16_URL} on a machine with internet access, copy it here and pass its path.",
)


@dataclass(frozen=True)
class LoadReport:
    """What a weights file put into a model."""

    path: Path
    kind: str  # "imagenet-vgg16", "grey-vgg16" or "eccv16"
    loaded: tuple[str, ...]  # state-dict keys taken from the file
    skipped: tuple[tuple[str, str], ...] = ()  # (key in file, why it was not loaded)

    def summary(self) -> str:
        text = f"{self.path}: loaded {len(self.loaded)} tensors ({self.kind})"
        if self.skipped:
            text += f"; skipped {len(self.skipped)}: " + ", ".join(
                f"{k} ({why})" for k, why in self.skipped
            )
        return text


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save into a temp file beside ``path``, then os.replace: never a half-written
    file (`colorizer.outputs.atomic_save`; a full disk is an OSError naming ``path``)."""
    outputs.atomic_save(obj, path)


def read_weights_file(path: Path | str, kind: _Kind) -> Any:
    """torch.load(weights_only=True) on CPU, with WeightsError for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}; expected {kind.name}. {kind.hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a pickle, foreign objects: all the same to users
        reason = str(exc).strip().split(". ")[0][:120] or type(exc).__name__
        raise WeightsError(
            f"cannot read {path} as a PyTorch weights file ({reason}); it is truncated or not a "
            f"checkpoint, expected {kind.name}. {kind.hint}"
        ) from exc


def tensor_dict(obj: Any, path: Path, kind: _Kind) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise WeightsError(
            f"{path} does not hold a state dict (name -> tensor); expected {kind.name}. {kind.hint}"
        )
    return dict(obj)


def _check_shapes(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size],
    path: Path,
    kind: _Kind,
    optional_suffix: str = "num_batches_tracked",
) -> None:
    """WeightsError unless every expected key (but optional ones) is there with its shape."""
    missing = [k for k in expected if k not in state and not k.endswith(optional_suffix)]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k])})"
        for k in expected
        if k in state and state[k].shape != expected[k]
    ]
    if not missing and not wrong:
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} keys missing ({_first(missing, 4)})")
    if wrong:
        parts.append(f"{len(wrong)} shapes differ ({_first(wrong, 3)})")
    raise WeightsError(f"{path} is not {kind.name}: {'; '.join(parts)}. {kind.hint}")


def _first(items: list[str], n: int) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


@lru_cache(maxsize=1)
def _vgg_shapes() -> dict[str, torch.Size]:
    with torch.device("meta"):
        ref = VggFeatures()
    return {f"features.{k}": v.shape for k, v in ref.features.state_dict().items()}


@lru_cache(maxsize=1)
def _eccv16_shapes() -> dict[str, torch.Size]:
    with torch.device("meta"):
        ref = ColorizationNet(ModelConfig(arch="eccv16"))
    return {k: v.shape for k, v in ref.state_dict().items()}


def _is_grey_vgg(obj: Any, path: Path) -> bool:
    """Whether a loaded file is one written by finetune_vgg (of a version this code reads)."""
    if not (isinstance(obj, Mapping) and obj.get("format") == GREY_VGG_FORMAT):
        return False
    if obj.get("version") != GREY_VGG_VERSION:
        raise WeightsError(
            f"{path} is a grey VGG file of version {obj.get('version')!r}; this version of "
            f"filmcolor reads version {GREY_VGG_VERSION}. Rerun finetune-vgg to write it again."
        )
    return True


def read_grey_vgg_file(path: Path | str) -> dict[str, Any]:
    """Everything in a file written by ``finetune_vgg``: weights, step, optimiser state, config."""
    path = Path(path)
    obj = read_weights_file(path, VGG_KIND)
    if not _is_grey_vgg(obj, path):
        raise WeightsError(
            f"{path} is not a file written by finetune-vgg, so that run cannot be resumed from "
            "it; choose another --out, or delete the file to start over"
        )
    return dict(obj)


def read_vgg_weights(path: Path | str) -> tuple[dict[str, torch.Tensor], str]:
    """The ``VggFeatures`` state dict (features.0 .. features.14) in a VGG file, and its kind.

    Kind ``imagenet-vgg16``: torchvision's ``vgg16`` state dict (features.N / classifier.N).
    Kind ``grey-vgg16``: a file written by ``finetune_vgg`` (``format`` entry + ``state_dict``).
    """
    path = Path(path)
    obj = read_weights_file(path, VGG_KIND)
    if _is_grey_vgg(obj, path):
        state, kind = tensor_dict(obj.get("state_dict"), path, VGG_KIND), "grey-vgg16"
    else:
        state, kind = tensor_dict(obj, path, VGG_KIND), "imagenet-vgg16"
        convs = {int(m[1]) for k in state if (m := re.fullmatch(r"features\.(\d+)\.weight", k))}
        if convs and convs != set(VGG16_CONVS):
            raise WeightsError(
                f"{path} holds a VGG with convs at features {sorted(convs)}, not VGG-16; "
                f"expected {VGG_KIND.name}. {VGG_KIND.hint}"
            )
    expected = _vgg_shapes()
    _check_shapes(state, expected, path, VGG_KIND)
    return {k: state[k] for k in expected}, kind


def load_vgg_weights(model: ColorizationNet | VggFeatures, path: Path | str) -> LoadReport:
    """Load a VGG file (either kind) into a VggFeatures or into a ``chen`` model's VGG."""
    vgg = model.vgg if isinstance(model, ColorizationNet) else model
    if vgg is None:
        raise ConfigError("this model has no VGG branch (arch 'eccv16'); use arch 'chen'")
    state, kind = read_vgg_weights(path)
    vgg.load_state_dict(state)
    return LoadReport(Path(path), kind, tuple(state))


def load_eccv16_weights(model: ColorizationNet, path: Path | str) -> LoadReport:
    """Load Zhang's ECCV16 weights: all of ``eccv16``, or the layers ``chen`` shares with it.

    The file must match the ECCV16 layout exactly (num_batches_tracked optional). Layers of the
    model whose shape differs (chen's fused convs) or that it lacks are skipped and reported;
    the model's other parameters (chen's first layer, VGG, VGG BatchNorms) keep their values.
    """
    path = Path(path)
    state = tensor_dict(read_weights_file(path, _ECCV16), path, _ECCV16)
    _check_shapes(state, _eccv16_shapes(), path, _ECCV16)
    target = model.state_dict()
    # a layer is loaded whole or not at all: one tensor of another shape skips all of its tensors
    misfit = {
        k.rsplit(".", 1)[0] for k, v in state.items() if k in target and target[k].shape != v.shape
    }
    loaded: list[str] = []
    skipped: list[tuple[str, str]] = []
    for key, value in state.items():
        if key not in target:
            skipped.append((key, "not in this model"))
        elif target[key].shape != value.shape:
            shapes = f"{tuple(value.shape)} in file, {tuple(target[key].shape)} in model"
            skipped.append((key, f"shape {shapes}"))
        elif key.rsplit(".", 1)[0] in misfit:
            skipped.append((key, "its layer's weight has another shape"))
        else:
            loaded.append(key)
    model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return LoadReport(path, "eccv16", tuple(loaded), tuple(skipped))
