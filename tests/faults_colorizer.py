"""Fault-table rows of the colorizer commands (train, finetune-vgg, evaluate, colorize):
see tests/faults.py. Rows that need a trained checkpoint share one tiny run, made once."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.faults import Fault, disk_full, run_cli, small_dataset, small_photos

# --- shared assets -------------------------------------------------------------------


def small_run(assets: Path) -> Path:
    """A 2-step eccv16 run on the small dataset (RUN/last.pt, metrics.jsonl, config.json)."""
    run = assets / "run"
    if not (run / "last.pt").exists():
        code, _, stderr = run_cli([
            "train", "--data", str(small_dataset(assets)), "--out", str(run),
            "--arch", "eccv16", "--steps", "2", "--size", "32", "--batch-size", "2",
            "--workers", "0", "--device", "cpu", "--val-every", "0", "-q",
        ])  # fmt: skip
        assert code == 0, stderr
    return run


def small_photo(assets: Path) -> Path:
    """One photo of the sample set, shrunk to 64 pixels wide (colorizes in a blink)."""
    import cv2

    path = assets / "one_photo" / "photo.png"
    if not path.exists():
        source = sorted(small_photos(assets).glob("*.png"))[0]
        image = cv2.imread(str(source))
        height = round(image.shape[0] * 64 / image.shape[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.resize(image, (64, height), interpolation=cv2.INTER_AREA))
    return path


def truncated_film(assets: Path) -> Path:
    """A 3-second Matroska film cut at 60 % of its bytes (its header still says 3 s)."""
    from filmdata.synthetic import make_film, standard_plan

    cut = assets / "damaged" / "cut.mkv"
    if not cut.exists():
        whole = assets / "damaged" / "whole.mkv"
        whole.parent.mkdir(parents=True, exist_ok=True)
        make_film(whole, standard_plan(seed=3, n_shots=3, seconds_per_shot=1.0),
                  size=(64, 48), seed=3)
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    return cut


# --- setups and checks ---------------------------------------------------------------


def _toml(text: str | bytes):
    def setup(tmp: Path, assets: Path) -> None:
        data = text.encode() if isinstance(text, str) else text
        (tmp / "bad.toml").write_bytes(data)

    return setup


def _file_in_the_way(tmp: Path, assets: Path) -> None:
    (tmp / "afile").write_text("a regular file where a folder is wanted\n")


def _trained(tmp: Path, assets: Path) -> None:
    small_run(assets)
    small_photo(assets)


def _random_checkpoint(tmp: Path, assets: Path) -> None:
    small_photo(assets)
    (tmp / "random.pt").write_bytes(os.urandom(4096))


def _text_checkpoint(tmp: Path, assets: Path) -> None:
    small_photo(assets)
    (tmp / "notes.pt").write_text("step 2000: looks fine\n")


def _foreign_checkpoint(tmp: Path, assets: Path) -> None:
    import torch

    small_photo(assets)
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, tmp / "foreign.pt")


def _bad_image_among_good(tmp: Path, assets: Path) -> None:
    _trained(tmp, assets)
    (tmp / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")


def _good_image_written(tmp: Path, assets: Path) -> None:
    assert (tmp / "o" / "photo_color.png").is_file()
    assert not (tmp / "o" / "broken_color.png").exists()


def _no_temp_files(folder: str):
    def check(tmp: Path, assets: Path) -> None:
        left = [p.name for p in (tmp / folder).iterdir() if p.name.startswith(".")]
        assert not left, left

    return check


def _copy_run_with_half_a_line(tmp: Path, assets: Path) -> None:
    shutil.copytree(small_run(assets), tmp / "run")
    with (tmp / "run" / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "step": 3, "lo')  # a kill in the middle of an append


def _metrics_are_json_lines(tmp: Path, assets: Path) -> None:
    lines = (tmp / "run" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole
    assert [r["step"] for r in records if r["kind"] == "train"] == [2, 3]


def _copy_run(tmp: Path, assets: Path) -> None:
    shutil.copytree(small_run(assets), tmp / "run")


def _checkpoint_kept(tmp: Path, assets: Path) -> None:
    import torch

    run = tmp / "run"
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2  # the last good one
    assert not [p.name for p in run.iterdir() if p.name.startswith(".last.pt")]


class _FullDisk:
    """A file object on a full disk: every write fails with ENOSPC."""

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        pass


def _torch_save_full(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    """torch.save on a full disk, as it really fails: to a path, torch's own writer gives
    a RuntimeError (/dev/full); to a file object, the file's OSError."""
    import torch

    real = torch.save

    def save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        target = "/dev/full" if isinstance(f, (str, os.PathLike)) else _FullDisk()
        real(obj, target, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def _image_writes_full(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    import colorizer.colorize

    disk_full(monkeypatch, colorizer.colorize, "write_bytes")


def _film_written(tmp: Path, assets: Path) -> None:
    assert (tmp / "o" / "cut_color.mp4").stat().st_size > 0


# --- the rows ------------------------------------------------------------------------

_CKPT = "{assets}/run/last.pt"
_PHOTO = "{assets}/one_photo/photo.png"
_DATA = "{assets}/data"
_TINY = ("--work-size", "16", "--device", "cpu", "-q")
_TRAIN = ("train", "--config", "{tmp}/bad.toml", "--data", "{tmp}/data", "--out", "{tmp}/run")

FAULTS: list[Fault] = [
    # options and configs that crashed or lied
    Fault("colorize --temperature nan", ("colorize", _PHOTO, "--checkpoint", _CKPT,
          "--temperature", "nan", "--out", "{tmp}/o", *_TINY), 2, ("temperature", "nan"),
          setup=_trained),
    Fault("evaluate --temperature nan", ("evaluate", "--checkpoint", _CKPT, "--data", _DATA,
          "--temperature", "0.5,nan", "--device", "cpu", "-q"), 2, ("temperature", "nan"),
          setup=_trained),
    Fault("train --lr nan", ("train", "--data", "{tmp}/data", "--out", "{tmp}/run", "--lr",
          "nan"), 2, ("lr", "nan")),
    Fault("finetune-vgg --lr nan", ("finetune-vgg", "--data", "{tmp}/data", "--vgg-weights",
          "{tmp}/vgg.pth", "--out", "{tmp}/grey.pth", "--lr", "nan"), 2, ("lr", "nan")),
    Fault("train toml rebalance = 'no'", _TRAIN, 2, ("rebalance", "bad.toml", "true or false"),
          setup=_toml('rebalance = "no"\n')),
    Fault("train toml size = 32.0", _TRAIN, 2, ("size", "bad.toml", "whole number"),
          setup=_toml("size = 32.0\n")),
    Fault("train toml steps = 2.5", _TRAIN, 2, ("steps", "bad.toml", "whole number"),
          setup=_toml("[train]\nsteps = 2.5\n")),
    Fault("train toml seed = 'abc'", _TRAIN, 2, ("seed", "bad.toml"),
          setup=_toml('seed = "abc"\n')),
    Fault("train toml steps = 'ten'", _TRAIN, 2, ("steps", "bad.toml", "'ten'"),
          setup=_toml('steps = "ten"\n')),
    Fault("train toml lr = nan", _TRAIN, 2, ("lr", "bad.toml", "finite"),
          setup=_toml("lr = nan\n")),
    Fault("train toml unknown key", _TRAIN, 2, ("stpes", "bad.toml"),
          setup=_toml("stpes = 10\n")),
    Fault("train toml not utf-8", _TRAIN, 2, ("bad.toml", "UTF-8"),
          setup=_toml(b"# r\xe9glages\nsteps = 10\n")),
    # checkpoints that are missing or of the wrong kind
    Fault("colorize checkpoint missing", ("colorize", "{tmp}/x.png", "--checkpoint",
          "{tmp}/nothing.pt", "--out", "{tmp}/o", *_TINY), 2, ("not found", "nothing.pt")),
    Fault("colorize checkpoint random bytes", ("colorize", _PHOTO, "--checkpoint",
          "{tmp}/random.pt", "--out", "{tmp}/o", *_TINY), 2, ("random.pt", "not a PyTorch"),
          setup=_random_checkpoint),
    Fault("colorize checkpoint text file", ("colorize", _PHOTO, "--checkpoint",
          "{tmp}/notes.pt", "--out", "{tmp}/o", *_TINY), 2, ("notes.pt",),
          setup=_text_checkpoint),
    Fault("colorize checkpoint of another kind", ("colorize", _PHOTO, "--checkpoint",
          "{tmp}/foreign.pt", "--out", "{tmp}/o", *_TINY), 2,
          ("foreign.pt", "neither a filmcolor checkpoint"), setup=_foreign_checkpoint),
    Fault("evaluate checkpoint missing", ("evaluate", "--checkpoint", "{tmp}/nothing.pt",
          "--data", _DATA, "--device", "cpu", "-q"), 2, ("nothing.pt",),
          setup=lambda tmp, assets: small_dataset(assets)),
    Fault("train --resume without a run", ("train", "--resume", "{tmp}/norun"), 2,
          ("not found", "last.pt")),
    # outputs that cannot be written
    Fault("colorize --out under a file", ("colorize", _PHOTO, "--checkpoint", _CKPT, "--out",
          "{tmp}/afile/o", *_TINY), 1, ("afile", "Not a directory"),
          setup=lambda tmp, assets: (_trained(tmp, assets), _file_in_the_way(tmp, assets))),
    Fault("train --out under a file", ("train", "--data", _DATA, "--out", "{tmp}/afile/run",
          "--arch", "eccv16", "--steps", "1", "--size", "32", "--batch-size", "2",
          "--workers", "0", "--device", "cpu", "-q"), 1, ("afile", "Not a directory"),
          setup=lambda tmp, assets: (small_dataset(assets), _file_in_the_way(tmp, assets))),
    Fault("finetune-vgg --out under a file before training", ("finetune-vgg", "--data",
          _DATA, "--vgg-weights", "{tmp}/no-vgg.pth", "--out", "{tmp}/afile/grey.pth",
          "--device", "cpu", "-q"), 1, ("afile", "Not a directory"),
          setup=lambda tmp, assets: (small_dataset(assets), _file_in_the_way(tmp, assets))),
    Fault("train disk full at torch.save", ("train", "--resume", "{tmp}/run", "--steps", "3",
          "-q"), 1, ("last.pt", "No space left"), setup=_copy_run, inject=_torch_save_full,
          check=_checkpoint_kept),
    Fault("colorize disk full: one line per input", ("colorize", _PHOTO, _PHOTO,
          "--checkpoint", _CKPT, "--out", "{tmp}/o", *_TINY), 1,
          ("photo.png", "No space left"), setup=_trained, inject=_image_writes_full,
          check=_no_temp_files("o")),
    # one bad input among good ones, damage, half-written logs
    Fault("colorize one bad input among good", ("colorize", "{tmp}/broken.png", _PHOTO,
          "--checkpoint", _CKPT, "--out", "{tmp}/o", *_TINY), 1, ("broken.png",),
          setup=_bad_image_among_good, check=_good_image_written),
    Fault("colorize truncated film warns", ("colorize", "{assets}/damaged/cut.mkv",
          "--checkpoint", _CKPT, "--out", "{tmp}/o", *_TINY), 0,
          ("cut.mkv", "stream ended early"), level="warning",
          setup=lambda tmp, assets: (_trained(tmp, assets), truncated_film(assets)),
          check=_film_written),
    Fault("train --resume after half a metrics line", ("train", "--resume", "{tmp}/run",
          "--steps", "3", "-q"), 0, ("metrics.jsonl", "damaged"), level="warning",
          setup=_copy_run_with_half_a_line, check=_metrics_are_json_lines),
]

