"""Grey VGG fine-tuning: loss falls, checkpoints, resumes exactly, output loads into chen; CLI."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from skimage import data as skdata
from torchvision.models.vgg import cfgs, make_layers

from cli import main
from colorizer.errors import ConfigError, DataError, WeightsError
from colorizer.images import read_rgb
from colorizer.lab import rgb_to_lab
from colorizer.model import ModelConfig, build_model
from colorizer.vgg import VggFeatures, grey_input, rgb_input
from colorizer.vgg_finetune import (
    VggFinetuneConfig,
    feature_loss,
    finetune_vgg,
    kept_image_paths,
)
from colorizer.weights import load_vgg_weights, read_grey_vgg_file


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = getattr(skdata, name)()
        h, w = img.shape[:2]
        small = cv2.resize(img, (round(w * 48 / min(h, w)), 48), interpolation=cv2.INTER_AREA)
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "vgg16-397923af.pth"
    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}, path)
    return path


def _cfg(vgg_file: Path, out: Path, **kw) -> VggFinetuneConfig:
    base = dict(steps=4, batch_size=2, size=32, lr=1e-3, save_every=2, device="cpu",
                workers=0, quiet=True)  # fmt: skip
    return VggFinetuneConfig(vgg_weights=vgg_file, out=out, **{**base, **kw})


def _held_loss(student: VggFeatures, teacher: VggFeatures, images: list[Path]) -> float:
    """Feature loss of a grey-input VGG on fixed centre crops of the images."""
    crops = [read_rgb(p)[8:40, 8:40] for p in images]
    rgb = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        return float(
            feature_loss(student(grey_input(rgb_to_lab(rgb)[:, :1])), teacher(rgb_input(rgb)))
        )


@pytest.mark.slow
def test_loss_falls_and_output_loads_into_chen(images, vgg_file, tmp_path: Path) -> None:
    cfg = _cfg(vgg_file, tmp_path / "grey.pt", steps=12, batch_size=4, lr=1e-4)
    result = finetune_vgg(cfg, images)
    assert result.step == 12 and result.start_step == 0 and len(result.losses) == 12
    assert all(np.isfinite(result.losses))
    teacher, student = VggFeatures(), VggFeatures()
    load_vgg_weights(teacher, vgg_file)
    before = _held_loss(teacher, teacher, images)  # the student starts as the teacher
    load_vgg_weights(student, cfg.out)
    after = _held_loss(student, teacher, images)
    assert 0 < after < 0.9 * before, (before, after)
    model = build_model(ModelConfig(arch="chen"))
    assert load_vgg_weights(model, cfg.out).kind == "grey-vgg16"
    saved = read_grey_vgg_file(cfg.out)["state_dict"]
    assert torch.equal(model.vgg.features[0].weight, saved["features.0.weight"])
    teacher = torch.load(vgg_file, weights_only=True)["features.0.weight"]
    assert not torch.equal(saved["features.0.weight"], teacher)  # it did train
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.pt"]  # no temp files left


@pytest.mark.slow
def test_checkpoint_and_exact_resume(images, vgg_file, tmp_path: Path) -> None:
    straight = finetune_vgg(_cfg(vgg_file, tmp_path / "a.pt", steps=6), images)
    part = finetune_vgg(_cfg(vgg_file, tmp_path / "b.pt", steps=3), images)
    assert read_grey_vgg_file(tmp_path / "b.pt")["step"] == 3
    resumed = finetune_vgg(_cfg(vgg_file, tmp_path / "b.pt", steps=6, resume=True), images)
    assert part.step == 3 and resumed.start_step == 3 and resumed.step == 6
    assert resumed.losses[:3] == part.losses
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-4)
    a = read_grey_vgg_file(tmp_path / "a.pt")["state_dict"]
    b = read_grey_vgg_file(tmp_path / "b.pt")["state_dict"]
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    # resuming a finished run is a no-op
    again = finetune_vgg(_cfg(vgg_file, tmp_path / "b.pt", steps=6, resume=True), images)
    assert again.start_step == 6 and again.losses == resumed.losses


def test_periodic_checkpoint(images, vgg_file, tmp_path: Path, monkeypatch) -> None:
    import colorizer.vgg_finetune as ft

    steps_saved = []
    real_save = ft.atomic_save

    def spy(obj, path):
        steps_saved.append(obj["step"])
        real_save(obj, path)

    monkeypatch.setattr(ft, "atomic_save", spy)
    finetune_vgg(_cfg(vgg_file, tmp_path / "c.pt", steps=5, save_every=2), images)
    assert steps_saved == [2, 4, 5]


def test_user_mistakes(images, vgg_file, tmp_path: Path) -> None:
    out = tmp_path / "grey.pt"
    finetune_vgg(_cfg(vgg_file, out, steps=1), images)
    with pytest.raises(ConfigError, match="--resume"):
        finetune_vgg(_cfg(vgg_file, out, steps=2), images)
    with pytest.raises(ConfigError, match="batch_size"):
        finetune_vgg(_cfg(vgg_file, out, steps=2, batch_size=3, resume=True), images)
    with pytest.raises(WeightsError, match="ImageNet"):
        finetune_vgg(_cfg(out, tmp_path / "other.pt"), images)  # a grey file as the teacher
    with pytest.raises(DataError, match="no images"):
        finetune_vgg(_cfg(vgg_file, tmp_path / "x.pt"), [])
    with pytest.raises(DataError, match="images are missing"):
        finetune_vgg(_cfg(vgg_file, tmp_path / "y.pt"), [tmp_path / "missing.png"])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    for workers in (0, 1):  # the same one-line error from a loader worker process
        with pytest.raises(DataError, match=r"^cannot read image .*corrupt\.png[^\n]*$"):
            finetune_vgg(_cfg(vgg_file, tmp_path / "z.pt", workers=workers), [corrupt])
    with pytest.raises(ConfigError, match="multiple of 4"):
        _cfg(vgg_file, out, size=30)


def test_unwritable_out_fails_before_any_work(images, tmp_path: Path, monkeypatch) -> None:
    """--out under a regular file: one OSError before the weights are even read (it used
    to come after the whole run, at the first checkpoint)."""
    import colorizer.vgg_finetune as ft

    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(ft, "load_vgg_weights", lambda *a: pytest.fail("weights were read"))
    with pytest.raises(NotADirectoryError):
        finetune_vgg(_cfg(tmp_path / "vgg.pth", tmp_path / "afile" / "grey.pt"), images)


@pytest.mark.parametrize(("name", "value"), [("lr", float("nan")), ("lr", float("inf")),
                                             ("steps", 2.5), ("quiet", "no")])
def test_config_values_are_checked_by_type(vgg_file, tmp_path: Path, name, value) -> None:
    with pytest.raises(ConfigError, match=name):
        _cfg(vgg_file, tmp_path / "g.pt", **{name: value})


def test_kept_image_paths(tmp_path: Path) -> None:
    frames = pd.DataFrame(
        {"image_path": ["a/1.png", None, "b/2.png"], "status": ["kept", "rejected", "kept"]}
    )
    paths = kept_image_paths(frames, tmp_path)
    assert paths == [tmp_path / "a/1.png", tmp_path / "b/2.png"]
    assert all(p.is_absolute() for p in paths)
    with pytest.raises(DataError, match="status"):
        kept_image_paths(frames.drop(columns="status"), tmp_path)


@pytest.fixture
def fake_manifests(monkeypatch, images):
    """manifests.load_frames over the test images (the CLI imports it when it runs)."""
    import manifests

    root = images[0].parent
    frames = pd.DataFrame({"image_path": [p.name for p in images], "status": "kept"})
    monkeypatch.setattr(manifests, "load_frames", lambda path: (frames, root))
    return root


def test_cli_runs_and_reports_mistakes_in_one_line(fake_manifests, vgg_file, tmp_path) -> None:
    out = tmp_path / "grey.pt"
    common = ["finetune-vgg", "--data", str(fake_manifests), "--out", str(out), "--steps", "2",
              "--batch-size", "2", "--size", "32", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(main, [*common, "--vgg-weights", str(vgg_file), "--quiet"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and read_grey_vgg_file(out)["step"] == 2
    mistakes = {
        "weights file not found": ["--resume", str(out),
                                   "--vgg-weights", str(tmp_path / "no.pth")],
        "pass --resume": ["--vgg-weights", str(vgg_file)],  # out exists
    }
    for words, extra in mistakes.items():
        bad = CliRunner().invoke(main, [*common, *extra])
        lines = [line for line in bad.output.splitlines() if line.strip()]
        assert bad.exit_code == 2 and len(lines) == 1, bad.output
        assert lines[0].startswith("error: ") and words in lines[0]
    # a --resume path with no run behind it (a typo) starts nothing
    typo = tmp_path / "gray.pt"
    for words, extra in {"no such run to continue": ["--resume", str(typo)],
                         "continues that run in its own file": ["--resume", str(out),
                                                                "--out", str(typo)]}.items():
        bad = CliRunner().invoke(main, [*common[:3], *common[5:], "--vgg-weights",
                                        str(vgg_file), *extra])
        lines = [line for line in bad.output.splitlines() if line.strip()]
        assert bad.exit_code == 2 and len(lines) == 1, bad.output
        assert lines[0].startswith("error: ") and words in lines[0]
    assert not typo.exists()


def test_cli_does_not_import_torch_at_start() -> None:
    code = "import sys, cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
