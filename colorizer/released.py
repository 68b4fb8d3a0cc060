"""Zhang et al.'s released ECCV16 weights, used as they are: recognised, checked, imported.

The file ``colorization_release_v2-9b330a0b.pth`` is a bare state dict with the key names
of Zhang's PyTorch model (``model1.0.weight`` ... ``model8.6.bias``, ``model_out.weight``),
which are the names of this package's ``eccv16`` architecture. Such a file can be given
wherever a checkpoint is read (colorize, evaluate, compare), or turned into a filmcolor
checkpoint with its provenance by ``import_released`` (``python cli.py import-weights``).

Temperature. Zhang's PyTorch forward decodes as ``model_out(softmax(conv8_3))``: the plain
mean of the 313 bin centres under softmax(logits), i.e. the annealed mean at T = 1 on the
file's logits. ``RELEASED_TEMPERATURE = 1.0`` therefore reproduces their PyTorch outputs
exactly, and a checkpoint imported from the file carries it. The Caffe release scaled the
logits by 2.606 before the softmax (T = 1 / 2.606 = 0.3837, ``CAFFE_TEMPERATURE``); pass
``--temperature 0.3837`` to decode as the Caffe demo did if the released logits are the
unscaled ones, which the file alone cannot tell.

``model_out`` holds the bins the file was trained with, as (313, 2) centres / 110 laid out
as a (2, 313, 1, 1) convolution. It must equal this package's bins in order and scale:
output channel k of the network is bin k, and a file whose bins are permuted or scaled
differently would decode to wrong colours without any error, so it is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from colorizer.bins import AB_NORM, NUM_BINS, ab_bins
from colorizer.errors import WeightsError

RELEASED_KIND = "zhang-eccv16-release"
RELEASE_FILE = "colorization_release_v2-9b330a0b.pth"
RELEASED_TEMPERATURE = 1.0  # reproduces Zhang et al.'s PyTorch forward (softmax, then mean)
CAFFE_TEMPERATURE = 1.0 / 2.606  # the Caffe release's logit scale 2.606, as a temperature
MODEL_OUT_KEY = "model_out.weight"
_MODEL_OUT_TOL = 1e-4  # |file - bins / 110|: the release stores float32 centres / 110


def looks_released(obj: Any) -> bool:
    """Whether a loaded file is a bare ECCV16 state dict (Zhang's key names, no format tag).

    Only the key names are looked at here; shapes and ``model_out`` are checked when the
    file is loaded, with errors that say what differs.
    """
    if not isinstance(obj, Mapping) or "format" in obj:
        return False
    keys = set(obj)
    return {"model1.0.weight", "model8.6.weight", MODEL_OUT_KEY} <= keys and all(
        isinstance(v, torch.Tensor) for v in obj.values()
    )


def check_model_out(weight: torch.Tensor, path: Path | str) -> None:
    """WeightsError unless ``weight`` is this package's bins / 110 in this package's order."""
    expected = (ab_bins("cpu").T / AB_NORM).reshape(2, NUM_BINS, 1, 1)
    if tuple(weight.shape) != tuple(expected.shape):
        raise WeightsError(
            f"{path}: {MODEL_OUT_KEY} has shape {tuple(weight.shape)}, expected "
            f"{tuple(expected.shape)} (313 ab bins); the file is not an ECCV16 colorizer"
        )
    given = weight.detach().float().reshape(2, NUM_BINS).T  # (313, 2) centres / scale
    if torch.allclose(given, expected.reshape(2, NUM_BINS).T, atol=_MODEL_OUT_TOL, rtol=0):
        return
    raise WeightsError(f"{path}: {_model_out_difference(given)}; it cannot be decoded with "
                       "this package's bins, so it is refused")


def _model_out_difference(given: torch.Tensor) -> str:
    """In words, how a file's (313, 2) model_out differs from the package's bins / 110."""
    bins = ab_bins("cpu").double()  # (313, 2)
    given = given.double()
    # the scale that maps the file's entries onto the bins, whatever their order
    scale = float(bins.norm() / given.norm().clamp_min(1e-12))
    scaled = given * scale
    if torch.allclose(scaled, bins, atol=0.5, rtol=0):
        return f"its ab bins are scaled by x{scale:.3f}, not x{AB_NORM:g}"
    order = torch.cdist(scaled, bins).argmin(1)
    if sorted(order.tolist()) == list(range(NUM_BINS)) and torch.allclose(
        scaled, bins[order], atol=0.5, rtol=0
    ):
        moved = int((order != torch.arange(NUM_BINS)).sum())
        return f"its 313 ab bins are in another order ({moved} of them moved)"
    return "its ab bins (model_out) are not the 313 bins of Zhang et al."


def released_state(obj: Any, path: Path | str) -> dict[str, torch.Tensor]:
    """The checked eccv16 state dict of a released file (model_out verified, then kept)."""
    if not looks_released(obj):
        raise WeightsError(
            f"{path} is not Zhang et al.'s released ECCV16 state dict (keys model1.0.weight ... "
            f"{MODEL_OUT_KEY}); give colorization_release_v2-9b330a0b.pth or a filmcolor "
            "checkpoint"
        )
    check_model_out(obj[MODEL_OUT_KEY], path)
    state = dict(obj)
    for key in [k for k in state if k.endswith(".running_mean")]:  # files saved without them
        state.setdefault(key.replace(".running_mean", ".num_batches_tracked"),
                         torch.tensor(0, dtype=torch.int64))
    return state


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def provenance(path: Path | str) -> dict[str, Any]:
    """Where released weights came from. The SHA-256 (a full read of the file) is added
    by `checkpoint.import_released` only, not on every load for colorizing."""
    path = Path(path)
    return {
        "kind": RELEASED_KIND,
        "source": str(path.resolve()),
        "name": path.name,
        "bytes": path.stat().st_size,
        "temperature_note": (
            f"T = {RELEASED_TEMPERATURE:g} reproduces Zhang et al.'s PyTorch forward; "
            f"the Caffe demo's logit scale 2.606 is T = {CAFFE_TEMPERATURE:.4f}"
        ),
    }
