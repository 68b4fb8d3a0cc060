"""Zhang et al.'s ECCV16 colorizer as their released PyTorch code runs it, written for the tests
from the paper's description (Zhang, Isola, Efros, ECCV 2016, Table 4 and Sec. 3) and the
release's conventions, independently of `colorizer.model`: plain functional torch on a state
dict, so a test can hold the package's network and decoding against it.

Conventions of the release: input (L - 50) / 100; every conv 3x3 with padding = dilation and
a ReLU, each block ending in a BatchNorm (block 8 has none, and no ReLU after its last 1x1
conv); conv5 and conv6 dilated by 2; block 8 starts with a 4x4 transposed conv of stride 2.
Decoding: softmax over the 313 logits, the expectation of the bin centres by the fixed 1x1
conv ``model_out`` (centres / 110), bilinear upsampling x4, times 110.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# (block, convs as (cin, cout, stride, dilation), batch-normalised channels or None)
BLOCKS: list[tuple[str, list[tuple[int, int, int, int]], int | None]] = [
    ("model1", [(1, 64, 1, 1), (64, 64, 2, 1)], 64),
    ("model2", [(64, 128, 1, 1), (128, 128, 2, 1)], 128),
    ("model3", [(128, 256, 1, 1), (256, 256, 1, 1), (256, 256, 2, 1)], 256),
    ("model4", [(256, 512, 1, 1), (512, 512, 1, 1), (512, 512, 1, 1)], 512),
    ("model5", [(512, 512, 1, 2)] * 3, 512),
    ("model6", [(512, 512, 1, 2)] * 3, 512),
    ("model7", [(512, 512, 1, 1)] * 3, 512),
]
AB_SCALE = 110.0


def random_release(centres: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the release's key names and shapes, random weights (He-scaled so the
    logits keep a useful spread), random BatchNorm statistics, and ``model_out`` built from
    the (313, 2) bin ``centres`` given."""
    g = torch.Generator().manual_seed(seed)

    def he(cout: int, cin: int, k: int) -> torch.Tensor:
        return torch.randn(cout, cin, k, k, generator=g) * (2.0 / (cin * k * k)) ** 0.5

    state: dict[str, torch.Tensor] = {}
    for name, convs, bn in BLOCKS:
        for i, (cin, cout, _, _) in enumerate(convs):
            state[f"{name}.{2 * i}.weight"] = he(cout, cin, 3)
            state[f"{name}.{2 * i}.bias"] = torch.randn(cout, generator=g) * 0.05
        if bn is not None:
            j = 2 * len(convs)
            state[f"{name}.{j}.weight"] = 1 + 0.1 * torch.randn(bn, generator=g)
            state[f"{name}.{j}.bias"] = 0.1 * torch.randn(bn, generator=g)
            state[f"{name}.{j}.running_mean"] = 0.1 * torch.randn(bn, generator=g)
            state[f"{name}.{j}.running_var"] = torch.rand(bn, generator=g) + 0.5
            state[f"{name}.{j}.num_batches_tracked"] = torch.tensor(1000)
    # block 8: transposed conv (weight laid out (cin, cout, k, k)), two convs, the 1x1 head
    state["model8.0.weight"] = torch.randn(512, 256, 4, 4, generator=g) * (2.0 / 2048) ** 0.5
    state["model8.0.bias"] = torch.randn(256, generator=g) * 0.05
    for i in (2, 4):
        state[f"model8.{i}.weight"] = he(256, 256, 3)
        state[f"model8.{i}.bias"] = torch.randn(256, generator=g) * 0.05
    state["model8.6.weight"] = he(313, 256, 1) * 4.0  # logits spread over a few units
    state["model8.6.bias"] = torch.randn(313, generator=g) * 0.1
    state["model_out.weight"] = (centres.T / AB_SCALE).reshape(2, 313, 1, 1).clone()
    return state


@torch.no_grad()
def reference_logits(state: dict[str, torch.Tensor], L: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) in [0, 100] -> (B, 313, H/4, W/4) logits, as the release computes them."""
    x = (L - 50.0) / 100.0
    for name, convs, _ in BLOCKS:
        for i, (_, _, stride, dilation) in enumerate(convs):
            w, b = state[f"{name}.{2 * i}.weight"], state[f"{name}.{2 * i}.bias"]
            x = F.relu(F.conv2d(x, w, b, stride=stride, padding=dilation, dilation=dilation))
        j = 2 * len(convs)
        x = F.batch_norm(
            x, state[f"{name}.{j}.running_mean"], state[f"{name}.{j}.running_var"],
            state[f"{name}.{j}.weight"], state[f"{name}.{j}.bias"], training=False, eps=1e-5,
        )
    x = F.relu(F.conv_transpose2d(x, state["model8.0.weight"], state["model8.0.bias"],
                                  stride=2, padding=1))
    for i in (2, 4):
        x = F.relu(F.conv2d(x, state[f"model8.{i}.weight"], state[f"model8.{i}.bias"], padding=1))
    return F.conv2d(x, state["model8.6.weight"], state["model8.6.bias"])


@torch.no_grad()
def reference_ab(state: dict[str, torch.Tensor], L: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) -> ab (B, 2, H, W): softmax, model_out, bilinear x4, times 110."""
    prob = F.softmax(reference_logits(state, L), dim=1)
    ab = F.conv2d(prob, state["model_out.weight"])  # (B, 2, H/4, W/4) ab / 110
    ab = F.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False)
    return ab * AB_SCALE
