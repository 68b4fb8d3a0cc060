"""The networks: layout (Zhang's names and shapes), forward/backward, dtypes and layouts."""

import dataclasses

import pytest
import torch

from colorizer.bins import AB_NORM, ab_bins, downsample_ab, soft_cross_entropy, soft_encode
from colorizer.errors import ConfigError, InputError
from colorizer.lab import rgb_to_lab
from colorizer.model import ModelConfig, build_model

# Zhang's ECCV16 (released PyTorch model): conv weight shapes by state-dict key.
ECCV16_CONVS = {
    "model1.0.weight": (64, 1, 3, 3),
    "model1.2.weight": (64, 64, 3, 3),
    "model2.0.weight": (128, 64, 3, 3),
    "model2.2.weight": (128, 128, 3, 3),
    "model3.0.weight": (256, 128, 3, 3),
    "model3.4.weight": (256, 256, 3, 3),
    "model4.0.weight": (512, 256, 3, 3),
    "model5.4.weight": (512, 512, 3, 3),
    "model7.4.weight": (512, 512, 3, 3),
    "model8.0.weight": (512, 256, 4, 4),  # transposed conv: (in, out, k, k)
    "model8.4.weight": (256, 256, 3, 3),
    "model8.6.weight": (313, 256, 1, 1),
    "model_out.weight": (2, 313, 1, 1),
}
ECCV16_BNS = {"model1.4": 64, "model2.4": 128, "model3.6": 256, "model4.6": 512, "model7.6": 512}


def _targets(batch: int, size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, size, size, generator=g)


def test_eccv16_layout_matches_zhang() -> None:
    model = build_model(ModelConfig(arch="eccv16"))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in ECCV16_CONVS.items():
        assert shapes[key] == shape, key
    for prefix, c in ECCV16_BNS.items():
        assert shapes[f"{prefix}.running_var"] == (c,)
    assert all(k.startswith(("model1", "model2", "model3", "model4", "model5", "model6",
                             "model7", "model8", "model_out")) for k in shapes)  # fmt: skip
    assert model.model5[0].dilation == (2, 2) and model.model6[4].dilation == (2, 2)
    assert model.model4[0].dilation == (1, 1)
    assert model.model1[2].stride == (2, 2) and model.model3[4].stride == (2, 2)
    assert torch.equal(model.model_out.weight.view(2, -1).T * AB_NORM, ab_bins())
    assert "model_out.weight" not in dict(model.named_parameters())


def test_chen_layout() -> None:
    model = build_model(ModelConfig(arch="chen"))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["model1.0.conv3.weight"] == (32, 1, 3, 3)
    assert shapes["model1.0.conv5.weight"] == (32, 1, 5, 5)
    assert shapes["model1.2.weight"] == (64, 64 + 64, 3, 3)  # + VGG conv1_2
    assert shapes["model2.0.weight"] == (128, 64 + 128, 3, 3)  # + VGG conv2_2
    assert shapes["model3.0.weight"] == (256, 128 + 256, 3, 3)  # + VGG conv3_3
    assert shapes["vgg.features.14.weight"] == (256, 256, 3, 3)
    assert [shapes[f"vgg_bn.{i}.weight"] for i in range(3)] == [(64,), (128,), (256,)]
    for key in ("model4.0.weight", "model8.6.weight", "model_out.weight"):
        assert shapes[key] == ECCV16_CONVS[key]
    assert not any(p.requires_grad for p in model.vgg.parameters())  # frozen by default


@pytest.mark.parametrize(
    "cfg", [ModelConfig(arch="eccv16"), ModelConfig(arch="chen", vgg_trainable=True)]
)
def test_forward_backward_176(cfg: ModelConfig) -> None:
    torch.manual_seed(0)
    model = build_model(cfg).train()
    lab = rgb_to_lab(_targets(2, 176))
    logits = model(lab[:, :1])
    assert logits.shape == (2, 313, 44, 44) and logits.dtype == torch.float32
    loss = soft_cross_entropy(logits, soft_encode(downsample_ab(lab[:, 1:])))
    loss.backward()
    assert torch.isfinite(loss)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == len(list(model.parameters()))  # all of them, VGG included
    for name, p in trainable:
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for _, p in trainable)


def test_frozen_vgg_gets_no_gradient() -> None:
    model = build_model(ModelConfig(arch="chen"))
    model(torch.rand(1, 1, 32, 32) * 100).sum().backward()
    assert all(p.grad is None for p in model.vgg.parameters())
    assert all(p.grad is not None for p in model.vgg_bn.parameters())
    assert model.model1[0].conv5.weight.grad is not None


@pytest.mark.parametrize("arch", ["eccv16", "chen"])
def test_channels_last_and_bf16(arch: str) -> None:
    torch.manual_seed(1)
    model = build_model(ModelConfig(arch=arch)).eval()
    L = torch.rand(1, 1, 32, 48) * 100
    with torch.no_grad():
        ref = model(L)
        cl = model.to(memory_format=torch.channels_last)(
            L.contiguous(memory_format=torch.channels_last)
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(L)
    assert ref.shape == (1, 313, 8, 12)
    assert torch.allclose(cl, ref, atol=1e-4)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low.float()).all()


def test_bad_inputs_and_configs() -> None:
    model = build_model(ModelConfig(arch="eccv16"))
    with pytest.raises(InputError, match="multiples of 8"):
        model(torch.zeros(1, 1, 30, 32))
    with pytest.raises(InputError):
        model(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ConfigError, match="unknown arch"):
        ModelConfig(arch="resnet")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().arch = "eccv16"  # type: ignore[misc]
