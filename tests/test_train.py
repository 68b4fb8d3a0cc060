"""Training: exact resume, checkpoint contents, faults, fine-tuning from a run, the CLI."""

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import colorizer.train as train_module
from cli import main
from colorizer.checkpoint import load_model, read_checkpoint
from colorizer.errors import ConfigError, DataError
from colorizer.train import TrainConfig, TrainingDiverged, train
from tests.train_helpers import make_dataset

TINY = dict(arch="eccv16", batch_size=2, size=32, lr=1e-3, workers=0, device="cpu",
            save_every=2, val_every=3, log_every=1, val_images=2, grid_images=2)  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "data", short_side=40)


def _cfg(dataset: Path, out: Path, **kw) -> TrainConfig:
    return TrainConfig(data=str(dataset), out=str(out), **{**TINY, **kw})


def test_resume_is_exact(dataset, tmp_path):
    """N steps, stop, resume for M more: the losses of N + M steps in one go, bit for bit."""
    whole = train(_cfg(dataset, tmp_path / "whole", steps=6), quiet=True)
    first = train(_cfg(dataset, tmp_path / "split", steps=6), stop_after=3, quiet=True)
    assert read_checkpoint(tmp_path / "split" / "last.pt")["step"] == 3
    rest = train(_cfg(dataset, tmp_path / "split", steps=6), resume=True, quiet=True)
    assert len(whole.losses) == 6 and (first.step, rest.start_step, rest.step) == (3, 3, 6)
    assert first.losses + rest.losses == whole.losses
    assert len(set(whole.losses)) > 1  # the losses are real numbers that move
    a = read_checkpoint(tmp_path / "whole" / "last.pt")["model"]
    b = read_checkpoint(tmp_path / "split" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # metrics.jsonl of the resumed run: every step logged once
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["kind"] == "train"
    ]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_checkpoint_config_and_outputs(dataset, tmp_path):
    out = tmp_path / "run"
    result = train(_cfg(dataset, out, steps=3), quiet=True)
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["step"] == 3 and ckpt["train_config"]["arch"] == "eccv16"
    assert {"optimizer", "scheduler", "rng", "extra"} <= set(ckpt)
    assert set(ckpt["rng"]) >= {"torch", "numpy", "python"}
    assert len(ckpt["extra"]["manifest_fingerprint"]) == 16
    assert json.loads((out / "config.json").read_text())["steps"] == 3
    model, cfg, _ = load_model(out / "last.pt", expect_arch="eccv16")
    assert cfg.arch == "eccv16" and not model.training
    val = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    val = [v for v in val if v["kind"] == "val"]
    assert [v["step"] for v in val] == [3]
    assert 0 < val[0]["auc_grey"] < 1 and 0 < val[0]["auc"] < 1 and val[0]["psnr"] > 5
    assert result.val["auc"] == val[0]["auc"]
    grid = out / "val" / "step_0000003.png"
    import cv2

    img = cv2.imread(str(grid))
    assert img.shape == (32, 3 * 32, 3)  # the one val image: grey | prediction | truth
    # the same --out again without --resume is refused
    with pytest.raises(ConfigError, match="already holds a run"):
        train(_cfg(dataset, out, steps=3), quiet=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(dataset, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = train_module.soft_cross_entropy

    def poisoned(logits, targets, weight=None):
        calls["n"] += 1
        loss = real(logits, targets, weight)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(train_module, "soft_cross_entropy", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match=r"became nan at step 5.*step 4\) is kept"):
        train(_cfg(dataset, out, steps=8, val_every=0), quiet=True)
    assert read_checkpoint(out / "last.pt")["step"] == 4


def test_resume_refuses_other_data(dataset, tmp_path):
    out = tmp_path / "run"
    train(_cfg(dataset, out, steps=2, val_every=0), quiet=True)
    other = make_dataset(tmp_path / "other", names=("astronaut", "coffee"), val=(), short_side=40)
    with pytest.raises(DataError, match="differs from the one"):
        train(_cfg(other, out, steps=4, val_every=0), resume=True, quiet=True)


def test_cli_train_resume_and_init(dataset, tmp_path):
    runner = CliRunner()
    run = tmp_path / "base"
    toml = tmp_path / "t.toml"
    toml.write_text('arch = "eccv16"\nsize = 32\nbatch-size = 2\nlr = 1e-3\nlog-every = 1\n')
    args = ["train", "--data", str(dataset), "--out", str(run), "--config", str(toml),
            "--steps", "2", "--workers", "1", "--device", "cpu", "--val-every", "2",
            "-q"]  # fmt: skip
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert read_checkpoint(run / "last.pt")["step"] == 2
    res = runner.invoke(main, ["train", "--resume", str(run), "--steps", "3", "-q"])
    assert res.exit_code == 0, res.output
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["step"] == 3 and ckpt["train_config"]["steps"] == 3
    res = runner.invoke(main, ["train", "--resume", str(run), "--size", "64", "-q"])
    assert res.exit_code == 2 and "started with size=32, now 64" in res.output
    # fine-tuning: weights of the base run, fresh optimizer, step 0 again
    tuned = tmp_path / "tuned"
    args = ["train", "--data", str(dataset), "--out", str(tuned), "--config", str(toml),
            "--steps", "1", "--val-every", "0", "--init", str(run / "last.pt"),
            "--device", "cpu", "--workers", "0", "-q"]  # fmt: skip
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    t = read_checkpoint(tuned / "last.pt")
    assert t["step"] == 1 and t["train_config"]["init"] == str(run / "last.pt")
    assert t["optimizer"]["state"][0]["step"].item() == 1  # a fresh Adam
    res = runner.invoke(main, ["train", "--data", str(dataset), "--out", str(tmp_path / "x"),
                               "--arch", "chen", "--init", str(run), "-q"])  # fmt: skip
    assert res.exit_code == 2 and "--arch eccv16" in res.output


def test_cli_errors_are_one_line(dataset, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--data", str(tmp_path / "none"), "--out", "x", "-q"])
    assert res.exit_code == 2 and res.output.startswith("error:") and "Traceback" not in res.output
    res = runner.invoke(main, ["train", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--data" in res.output
    frames = dataset / "manifests" / "dataset.parquet"
    import pandas as pd

    df = pd.read_parquet(frames)
    df.loc[:2, "image_path"] = ["images/gone_a.jpg", "images/gone_b.jpg", "images/gone_c.jpg"]
    broken = dataset / "manifests" / "broken.parquet"  # same root: 3 of the 6 files exist
    from manifests import FRAME_SCHEMA, write_table

    write_table(df, broken, FRAME_SCHEMA, kind="dataset", config={})
    res = runner.invoke(main, ["train", "--data", str(broken), "--out", str(tmp_path / "y"), "-q"])
    broken.unlink()
    assert res.exit_code == 2 and "3 of 6 image files" in res.output and "gone_a.jpg" in res.output
