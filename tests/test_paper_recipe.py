"""The paper's recipe as shipped: its two stage configs, one scale for training and
colorizing, and VGG fine-tuned by classification of grey images."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from colorizer.checkpoint import read_checkpoint
from colorizer.errors import DataError
from colorizer.evaluate import EvalConfig, evaluate
from colorizer.predictor import Colorizer
from colorizer.train import TrainConfig, settle_config, train
from colorizer.vgg_classify import finetune_classify, read_class_folder
from colorizer.vgg_finetune import VggFinetuneConfig
from colorizer.weights import read_grey_vgg_file, read_vgg_weights
from tests.train_helpers import make_dataset, photo

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_the_paper_stages_settle() -> None:
    images = settle_config(None, CONFIGS / "paper_stage1_images.toml", {})
    films = settle_config(None, CONFIGS / "paper_stage2_films.toml", {})
    assert (images.arch, images.steps, images.resize, images.size) == ("chen", 150_000, 256, 176)
    assert (films.arch, films.steps, films.resize, films.size) == ("chen", 60_000, 256, 176)
    assert images.first_layer_channels == films.first_layer_channels == 32
    assert not images.rebalance and not films.rebalance
    assert images.model_config.first_layer_channels == 32


def test_first_layer_split_is_a_config(tmp_path: Path) -> None:
    cfg = TrainConfig(first_layer_channels=16)
    assert cfg.model_config.first_layer_channels == 16
    from colorizer.model import build_model

    model = build_model(cfg.model_config)
    assert model.model1[0].conv3.out_channels == model.model1[0].conv5.out_channels == 16


def _tiny_run(tmp_path: Path, **changes) -> Path:
    data = make_dataset(tmp_path / "data", names=("astronaut", "coffee"), short_side=72, val=())
    cfg = TrainConfig(data=str(data), out=str(tmp_path / "run"), arch="eccv16", steps=1,
                      batch_size=2, size=32, workers=0, device="cpu", val_every=0, **changes)
    train(cfg, quiet=True)
    return Path(cfg.out) / "last.pt"


def test_colorize_runs_at_the_scale_training_used(tmp_path: Path) -> None:
    assert TrainConfig().resize == 256  # train crops from images whose shorter side is 256
    last = _tiny_run(tmp_path / "default")
    assert read_checkpoint(last)["decode"] == {"temperature": 0.5, "work_size": 256}
    colorizer = Colorizer.from_checkpoint(last, "cpu")
    assert (colorizer.work_size, colorizer.temperature) == (256, 0.5)

    other = _tiny_run(tmp_path / "other", resize=64, temperature=0.38)
    colorizer = Colorizer.from_checkpoint(other, "cpu")
    assert (colorizer.work_size, colorizer.temperature) == (64, 0.38)
    # evaluate crops at that scale by default: the same numbers as asking for it
    data = tmp_path / "other" / "data"
    auto = evaluate(EvalConfig(checkpoint=other, data=data, split="all", size=32,
                               device="cpu", quiet=True))
    explicit = evaluate(EvalConfig(checkpoint=other, data=data, split="all", size=32,
                                   resize=64, temperatures=(0.38,), device="cpu", quiet=True))
    assert auto.table.equals(explicit.table)
    native = evaluate(EvalConfig(checkpoint=other, data=data, split="all", size=32, resize=0,
                                 device="cpu", quiet=True))
    assert not auto.table.equals(native.table)


def _class_folder(root: Path) -> Path:
    for label, names in (("cats", ("chelsea", "cat")), ("things", ("coffee", "rocket"))):
        (root / label).mkdir(parents=True)
        for name in names:
            cv2.imwrite(str(root / label / f"{name}.jpg"),
                        cv2.cvtColor(photo(name, 40), cv2.COLOR_RGB2BGR))
    return root


def test_vgg_fine_tuned_by_classification(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vgg = tmp_path / "vgg16-397923af.pth"
    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}, vgg)
    folder = read_class_folder(_class_folder(tmp_path / "images"))
    assert folder.classes == ("cats", "things") and len(folder.samples) == 4
    out = tmp_path / "grey_vgg.pt"
    cfg = VggFinetuneConfig(vgg_weights=vgg, out=out, steps=2, batch_size=2, size=32,
                            workers=0, device="cpu", quiet=True, method="classify")
    result = finetune_classify(cfg, folder)
    assert result.step == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    state, kind = read_vgg_weights(out)  # the chen model reads it as a grey VGG
    assert kind == "grey-vgg16" and len(state) == 14
    before = {k: v for k, v in torch.load(vgg, weights_only=True).items() if k in state}
    assert any(not torch.equal(state[k], before[k]) for k in state)  # it learned
    again = VggFinetuneConfig(vgg_weights=vgg, out=out, steps=3, batch_size=2, size=32,
                              workers=0, device="cpu", quiet=True, method="classify",
                              resume=True)
    assert finetune_classify(again, folder).start_step == 2
    assert read_grey_vgg_file(out)["classes"] == ["cats", "things"]


def test_class_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    with pytest.raises(DataError, match="at least 2"):
        read_class_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="hold no images"):
        read_class_folder(tmp_path)
