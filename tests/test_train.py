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
from tests.faults import dead_pid
from tests.train_helpers import make_dataset

TINY = dict(arch="eccv16", batch_size=2, size=32, lr=1e-3, workers=0, device="cpu",
            save_every=2, val_every=3, log_every=1, val_images=2, grid_images=2)  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "data", short_side=40)


def _cfg(dataset: Path, out: Path, **kw) -> TrainConfig:
    return TrainConfig(data=str(dataset), out=str(out), **{**TINY, **kw})


@pytest.mark.slow
def test_resume_is_exact(dataset, tmp_path):
    """N steps, stop, resume for M more: the losses of N + M steps in one go, bit for bit."""
    whole = train(_cfg(dataset, tmp_path / "whole", steps=4), quiet=True)
    first = train(_cfg(dataset, tmp_path / "split", steps=4), stop_after=3, quiet=True)
    assert read_checkpoint(tmp_path / "split" / "last.pt")["step"] == 3  # not a save_every step
    rest = train(_cfg(dataset, tmp_path / "split", steps=4), resume=True, quiet=True)
    assert len(whole.losses) == 4 and (first.step, rest.start_step, rest.step) == (3, 3, 4)
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
    assert steps == [1, 2, 3, 4]


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


@pytest.mark.slow
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


# --- faults: outputs, stale temporary files, damaged logs, configs -----------------------


def test_outputs_are_readable_by_others_and_killed_runs_temp_files_are_swept(
    dataset, tmp_path, umask_022
):
    """Checkpoint, metrics, config.json and the val grid get 0644 under umask 022 (not
    mkstemp's 0600); a resume sweeps what a kill -9 left (of dead processes only)."""
    import os

    out = tmp_path / "run"
    train(_cfg(dataset, out, steps=2, val_every=2), quiet=True)
    for path in (out / "last.pt", out / "metrics.jsonl", out / "config.json",
                 out / "val" / "step_0000002.png"):
        assert path.stat().st_mode & 0o777 == 0o644, path
    gone = dead_pid()
    orphans = [out / f".last.pt.tmp-{gone}",  # what the earlier version's kill -9 left
               out / f".last.pt.k2j4h5l6.{_host()}-{gone}.tmp",  # this version's names
               out / "val" / f".step_0000004.png.a1b2c3d4.{_host()}-{gone}.tmp"]
    live = out / f".last.pt.tmp-{os.getpid()}"
    for path in [*orphans, live]:
        path.write_bytes(b"\0" * 1024)
    train(_cfg(dataset, out, steps=4, val_every=2), resume=True, quiet=True)
    assert not any(p.exists() for p in orphans)
    assert live.exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p != live]


def _host() -> str:
    from colorizer.outputs import temp_suffix

    return temp_suffix("").lstrip(".").rsplit("-", 1)[0]


def test_resume_drops_a_half_written_metrics_line(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    train(_cfg(dataset, out, steps=2, val_every=0), quiet=True)
    with (out / "metrics.jsonl").open("ab") as f:
        f.write(b'{"kind": "train", "step": 3, "loss": 5.1\xe2')  # cut mid-append
    train(_cfg(dataset, out, steps=4, val_every=0), resume=True, quiet=True)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert "warning:" in capsys.readouterr().err


def test_records_up_to_keeps_whole_lines_of_earlier_steps():
    from colorizer.train import _records_up_to

    data = (b'{"kind": "train", "step": 1}\n{"kind": "val", "step": 2}\nnot json\n'
            b'[1, 2]\n{"kind": "train", "step": 3}\n{"kind": "train", "st')
    keep, dropped = _records_up_to(data, 2)
    assert [json.loads(x)["step"] for x in keep] == [1, 2] and dropped == 3


def test_disk_full_at_the_checkpoint_is_one_oserror_naming_it(dataset, tmp_path, monkeypatch):
    """torch.save on a full disk: an OSError (ENOSPC) naming last.pt, no temp file left,
    the previous checkpoint kept."""
    import errno

    out = tmp_path / "run"
    train(_cfg(dataset, out, steps=2, val_every=0), quiet=True)

    class Full:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

    real = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: real(obj, Full(), *a, **k))
    with pytest.raises(OSError) as info:
        train(_cfg(dataset, out, steps=4, val_every=0), resume=True, quiet=True)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(out / "last.pt")
    assert read_checkpoint(out / "last.pt")["step"] == 2
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_too_little_space_for_a_checkpoint_fails_before_training(dataset, tmp_path, monkeypatch):
    import errno
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1024))
    with pytest.raises(OSError, match=r"last\.pt needs about") as info:
        train(_cfg(dataset, tmp_path / "run", steps=2, val_every=0), quiet=True)
    assert info.value.errno == errno.ENOSPC
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize(("key", "value", "words"), [
    ("rebalance", '"no"', "true or false"),
    ("amp", "1", "true or false"),
    ("size", "32.0", "whole number"),
    ("steps", "2.5", "whole number"),
    ("steps", '"ten"', "'ten'"),
    ("seed", '"abc"', "whole number"),
    ("lr", "nan", "finite"),
    ("temperature", "inf", "finite"),
    ("betas", "[0.9]", "list of 2"),
    ("lr_drop_at", '["a"]', "number"),
    ("data", "5", "text"),
])  # fmt: skip
def test_toml_values_are_checked_by_type_and_named_with_the_file(tmp_path, key, value, words):
    from colorizer.train import settle_config

    path = tmp_path / "run.toml"
    path.write_text(f"[train]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as info:
        settle_config(None, path, {"data": "d", "out": "o"} if key != "data" else {"out": "o"})
    message = str(info.value)
    assert message.startswith(f"{path}: {key} must be") and words in message, message


def test_toml_ints_widen_to_float_and_lists_to_tuples(tmp_path):
    from colorizer.train import settle_config

    path = tmp_path / "run.toml"
    path.write_text("lr = 1\nlr_drop_at = [0.5]\nlr_drop_to = [0.1]\n")
    cfg = settle_config(None, path, {})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.lr_drop_at == (0.5,)


def test_command_line_value_wins_over_a_bad_file_value(tmp_path):
    from colorizer.train import settle_config

    path = tmp_path / "run.toml"
    path.write_text("steps = 2.5\n")
    assert settle_config(None, path, {"steps": 10}).steps == 10


def test_non_utf8_toml_is_one_config_error(tmp_path):
    from colorizer.train import read_config_file

    path = tmp_path / "run.toml"
    path.write_bytes(b"# r\xe9glages\nsteps = 10\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_config_file(path)
