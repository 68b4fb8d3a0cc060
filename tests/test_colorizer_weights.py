"""Weights from local files: fake torchvision VGG-16, fake Zhang ECCV16, fake grey VGG."""

from pathlib import Path

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from colorizer.errors import ConfigError, WeightsError
from colorizer.model import ModelConfig, build_model
from colorizer.weights import (
    GREY_VGG_FORMAT,
    GREY_VGG_VERSION,
    load_eccv16_weights,
    load_vgg_weights,
)

# chen's first layer is not in ECCV16; its fused convs have other shapes
CHEN_CHANGED = {f"{layer}.{p}" for layer in ("model1.0", "model1.2", "model2.0", "model3.0")
                for p in ("weight", "bias")}  # fmt: skip


def _vgg16_state(seed: int) -> dict[str, torch.Tensor]:
    """torchvision vgg16 ``features.*`` keys and shapes (the classifier is not needed)."""
    torch.manual_seed(seed)
    return {f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "vgg16-397923af.pth"
    torch.save(_vgg16_state(0), path)
    return path


@pytest.fixture(scope="module")
def eccv16_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    model = build_model(ModelConfig(arch="eccv16"))
    for m in model.modules():  # make BN statistics distinguishable from a fresh model's
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return model.state_dict()


@pytest.fixture(scope="module")
def eccv16_file(tmp_path_factory, eccv16_state) -> Path:
    path = tmp_path_factory.mktemp("w") / "colorization_release_v2-9b330a0b.pth"
    torch.save(eccv16_state, path)
    return path


def test_vgg_torchvision_round_trip(vgg_file: Path) -> None:
    model = build_model(ModelConfig(arch="chen"))
    report = load_vgg_weights(model, vgg_file)
    assert report.kind == "imagenet-vgg16" and len(report.loaded) == 14
    expected = _vgg16_state(0)
    for key, value in model.vgg.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_eccv16_round_trip(eccv16_file: Path, eccv16_state) -> None:
    model = build_model(ModelConfig(arch="eccv16"))
    report = load_eccv16_weights(model, eccv16_file)
    assert report.skipped == () and set(report.loaded) == set(eccv16_state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, eccv16_state[key]), key
    # and the names are Zhang's: the file loads with a plain strict load_state_dict too
    fresh = build_model(ModelConfig(arch="eccv16"))
    fresh.load_state_dict(torch.load(eccv16_file, weights_only=True))


def test_eccv16_without_num_batches_tracked(tmp_path: Path, eccv16_state) -> None:
    path = tmp_path / "old.pth"
    torch.save({k: v for k, v in eccv16_state.items() if "num_batches" not in k}, path)
    model = build_model(ModelConfig(arch="eccv16"))
    load_eccv16_weights(model, path)
    assert torch.equal(model.model4[6].running_var, eccv16_state["model4.6.running_var"])


def test_eccv16_weights_into_chen(eccv16_file: Path, eccv16_state) -> None:
    torch.manual_seed(2)
    model = build_model(ModelConfig(arch="chen"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_eccv16_weights(model, eccv16_file)
    skipped = {k for k, _ in report.skipped}
    assert skipped == CHEN_CHANGED
    assert dict(report.skipped)["model1.0.weight"] == "not in this model"
    assert "shape" in dict(report.skipped)["model2.0.weight"]
    assert "other shape" in dict(report.skipped)["model2.0.bias"]
    assert "model1.2.weight" in report.summary()
    after = model.state_dict()
    for key in report.loaded:
        assert torch.equal(after[key], eccv16_state[key]), key
    for key in (
        "model1.0.conv3.weight",
        "model2.0.weight",
        "vgg.features.0.weight",
        "vgg_bn.1.weight",
    ):
        assert torch.equal(after[key], before[key]), key
    assert "model4.0.weight" in report.loaded and "model8.6.weight" in report.loaded


def test_grey_vgg_file(tmp_path: Path) -> None:
    state = {k: v for k, v in _vgg16_state(3).items() if int(k.split(".")[1]) <= 14}
    path = tmp_path / "grey.pt"
    torch.save({"format": GREY_VGG_FORMAT, "version": GREY_VGG_VERSION, "state_dict": state}, path)
    model = build_model(ModelConfig(arch="chen"))
    assert load_vgg_weights(model, path).kind == "grey-vgg16"
    assert torch.equal(model.vgg.features[14].weight, state["features.14.weight"])
    torch.save({"format": GREY_VGG_FORMAT, "version": 99, "state_dict": state}, path)
    with pytest.raises(WeightsError, match="version"):
        load_vgg_weights(model, path)


def test_missing_files_say_what_was_expected(tmp_path: Path) -> None:
    chen = build_model(ModelConfig(arch="chen"))
    with pytest.raises(WeightsError, match=r"not found.*vgg16-397923af\.pth.*Download"):
        load_vgg_weights(chen, tmp_path / "nope.pth")
    with pytest.raises(WeightsError, match=r"not found.*colorization_release_v2-9b330a0b\.pth"):
        load_eccv16_weights(chen, tmp_path / "nope.pth")


def test_truncated_files(tmp_path: Path, vgg_file: Path, eccv16_file: Path) -> None:
    chen = build_model(ModelConfig(arch="chen"))
    for src, load in ((vgg_file, load_vgg_weights), (eccv16_file, load_eccv16_weights)):
        data = src.read_bytes()
        cut = tmp_path / f"cut-{src.name}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(WeightsError, match="truncated"):
            load(chen, cut)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="truncated or not a"):
        load_vgg_weights(chen, garbage)


def test_wrong_files(tmp_path: Path, vgg_file: Path, eccv16_file: Path, eccv16_state) -> None:
    chen = build_model(ModelConfig(arch="chen"))
    with pytest.raises(WeightsError, match=r"keys missing \(features\.0\.weight"):
        load_vgg_weights(chen, eccv16_file)
    with pytest.raises(WeightsError, match="ECCV16"):
        load_eccv16_weights(chen, vgg_file)
    bad = dict(eccv16_state)
    bad["model5.0.weight"] = torch.zeros(512, 512, 1, 1)
    path = tmp_path / "bad_shape.pth"
    torch.save(bad, path)
    with pytest.raises(WeightsError, match=r"shapes differ.*model5\.0\.weight"):
        load_eccv16_weights(build_model(ModelConfig(arch="eccv16")), path)
    torch.manual_seed(0)
    vgg19 = {f"features.{k}": v for k, v in make_layers(cfgs["E"]).state_dict().items()}
    torch.save(vgg19, path)
    with pytest.raises(WeightsError, match="not VGG-16"):
        load_vgg_weights(chen, path)
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="state dict"):
        load_vgg_weights(chen, path)


def test_vgg_weights_need_chen(vgg_file: Path) -> None:
    with pytest.raises(ConfigError, match="chen"):
        load_vgg_weights(build_model(ModelConfig(arch="eccv16")), vgg_file)
