"""Fault-table rows of the data commands, extract-frames and build-dataset: see tests/faults.py.

Runs that must go on past a bad film use `--workers 1` (the faults injected with
monkeypatch exist in this process only).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from tests.faults import Fault, disk_full, small_film, small_photos

# --- setups --------------------------------------------------------------------------


def _film(assets: Path) -> None:
    small_film(assets)


def _photos(assets: Path) -> None:
    small_photos(assets)


def _write(name: str, data: bytes | str):
    def setup(tmp: Path, assets: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)

    return setup


def _png_named_mp4(tmp: Path, assets: Path) -> None:
    photo = sorted(small_photos(assets).glob("*.png"))[0]
    shutil.copyfile(photo, tmp / "photo.mp4")


def _truncated_mp4(tmp: Path, assets: Path) -> None:
    data = small_film(assets).read_bytes()
    (tmp / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])


def _out_is_a_file(tmp: Path, assets: Path) -> None:
    small_film(assets)
    (tmp / "out").write_text("a file where the dataset folder should be\n")


def _csv_with_locked_film(tmp: Path, assets: Path) -> None:
    film = small_film(assets)
    (tmp / "films").mkdir()
    shutil.copyfile(film, tmp / "films" / "locked.mp4")
    (tmp / "list.csv").write_text(f"path,title\nfilms/locked.mp4,Locked\n{film},Small\n")


def _photos_with_broken_link(tmp: Path, assets: Path) -> None:
    shutil.copytree(small_photos(assets), tmp / "photos")
    (tmp / "photos" / "gone.png").symlink_to(tmp / "photos" / "deleted-long-ago.png")


def _folder_with_bad_film(tmp: Path, assets: Path) -> None:
    (tmp / "films").mkdir()
    shutil.copyfile(small_film(assets), tmp / "films" / "good.mp4")
    (tmp / "films" / "bad.mkv").write_text("this is not a film\n" * 20)


def _folder_with_png_named_mp4(tmp: Path, assets: Path) -> None:
    (tmp / "films").mkdir()
    shutil.copyfile(small_film(assets), tmp / "films" / "good.mp4")
    photo = sorted(small_photos(assets).glob("*.png"))[0]
    shutil.copyfile(photo, tmp / "films" / "photo.mp4")


def _film_and_photos(tmp: Path, assets: Path) -> None:
    small_film(assets)
    small_photos(assets)


# --- injected faults -----------------------------------------------------------------


def _locked(name: str):
    """Opening the file `name` from Python fails as an unreadable file does (tests run as
    root, who reads through any permission)."""

    def inject(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
        original = Path.open

        def open_(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            if self.name == name:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", open_)

    return inject


def _full_images(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    import filmdata.extract

    disk_full(monkeypatch, filmdata.extract, "_write_bytes")


def _full_parquet(prefix: str):
    """Writing a Parquet file whose temporary name starts with `prefix` fails: disk full."""

    def inject(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
        import pyarrow.parquet as pq

        original = pq.write_table

        def write_table(table, where, *args, **kwargs):  # type: ignore[no-untyped-def]
            if Path(str(where)).name.startswith(prefix):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))
            return original(table, where, *args, **kwargs)

        monkeypatch.setattr(pq, "write_table", write_table)

    return inject


# --- checks: nothing half-done is left as done ---------------------------------------


def _nothing_written(tmp: Path, assets: Path) -> None:
    assert not list(tmp.rglob("*.parquet")), "a manifest was written"


def _no_manifest_no_temp(tmp: Path, assets: Path) -> None:
    assert not list(tmp.rglob("*.parquet")), "a film is marked done"
    assert not [p for p in tmp.rglob(".*") if p.name.endswith(".tmp")], "temp files left"


def _dataset_has(*names: str):
    def check(tmp: Path, assets: Path) -> None:
        import pandas as pd

        frames = pd.read_parquet(tmp / "out" / "manifests" / "dataset.parquet")
        paths = frames["source_path"].astype(str)
        for name in names:
            assert paths.str.contains(name, regex=False).any(), f"{name} not in the dataset"

    return check


def _films_kept_without_dataset(tmp: Path, assets: Path) -> None:
    out = tmp / "out" / "manifests"
    assert list((out / "films").glob("*.parquet")), "the films done were lost"
    assert not (out / "dataset.parquet").exists()
    assert not [p for p in out.rglob(".*") if p.name.endswith(".tmp")], "temp files left"


# --- the rows ------------------------------------------------------------------------

FILM = "{assets}/films/small.mp4"
EXTRACT = ("extract-frames",)
BUILD = ("build-dataset",)
OUT = ("--out", "{tmp}/out", "-q")


def _bad_option(command: tuple[str, ...], option: str, value: str, *words: str) -> Fault:
    return Fault(
        name=f"{command[0]}: {option} {value}",
        args=(*command, FILM, *OUT, option, value),
        exit_code=2,
        words=(option, *words),
        check=_nothing_written,
    )


FAULTS: list[Fault] = [
    # extract-frames: the film
    Fault("extract-frames: missing film", (*EXTRACT, "{tmp}/missing.mp4", *OUT), 1,
          ("missing.mp4", "no such file"), check=_nothing_written),
    Fault("extract-frames: text file named .mkv", (*EXTRACT, "{tmp}/notes.mkv", *OUT), 1,
          ("notes.mkv", "not a readable video"),
          setup=_write("notes.mkv", "not a film\n" * 50), check=_nothing_written),
    Fault("extract-frames: PNG named .mp4", (*EXTRACT, "{tmp}/photo.mp4", *OUT), 1,
          ("photo.mp4", "still image", "not a film"), setup=_png_named_mp4,
          check=_nothing_written),
    Fault("extract-frames: mp4 cut short before its index", (*EXTRACT, "{tmp}/cut.mp4", *OUT),
          1, ("cut.mp4", "not a readable video"), setup=_truncated_mp4,
          check=_nothing_written),
    Fault("extract-frames: unreadable film", (*EXTRACT, FILM, *OUT), 1,
          ("small.mp4", "cannot read", "Permission denied"), setup=lambda t, a: _film(a),
          inject=_locked("small.mp4"), check=_nothing_written),
    # extract-frames: the output
    Fault("extract-frames: --out is a file", (*EXTRACT, FILM, *OUT), 1,
          ("cannot write", "--out"), setup=_out_is_a_file),
    Fault("extract-frames: disk full writing images", (*EXTRACT, FILM, *OUT), 1,
          ("write failed", "No space left"), setup=lambda t, a: _film(a),
          inject=_full_images, check=_no_manifest_no_temp),
    Fault("extract-frames: disk full writing the manifest", (*EXTRACT, FILM, *OUT), 1,
          ("write failed", "No space left"), setup=lambda t, a: _film(a),
          inject=_full_parquet("."), check=_no_manifest_no_temp),
    # extract-frames and build-dataset: options (one config, settled in one place)
    _bad_option(EXTRACT, "--detector", "bogus", "choose one of", "film"),
    _bad_option(EXTRACT, "--min-shot", "-5", "[0, 30]"),
    _bad_option(EXTRACT, "--threshold", "-1", "(0, 255]"),
    _bad_option(EXTRACT, "--threshold", "nan", "finite"),
    _bad_option(EXTRACT, "--threshold", "inf", "finite"),
    _bad_option(EXTRACT, "--dark-luma", "nan", "finite"),
    _bad_option(EXTRACT, "--dark-luma", "300", "[0, 255]"),
    _bad_option(EXTRACT, "--min-colorfulness", "inf", "finite"),
    _bad_option(EXTRACT, "--min-colorfulness", "-1", "[0, 255]"),
    _bad_option(EXTRACT, "--frames-per-shot", "5-3", "a range like 3-5"),
    _bad_option(BUILD, "--detector", "bogus", "choose one of"),
    _bad_option(BUILD, "--threshold", "nan", "finite"),
    _bad_option(BUILD, "--min-shot", "-5", "[0, 30]"),
    # build-dataset: inputs
    Fault("build-dataset: missing input", (*BUILD, "{tmp}/nothing-here", *OUT), 2,
          ("nothing-here", "no such file or folder"), check=_nothing_written),
    Fault("build-dataset: CSV with a header only", (*BUILD, "{tmp}/list.csv", *OUT), 2,
          ("list.csv", "lists no films"), setup=_write("list.csv", "path,title,year\n"),
          check=_nothing_written),
    Fault("build-dataset: CSV lists an unreadable film",
          (*BUILD, "{tmp}/list.csv", *OUT, "--workers", "1"), 1,
          ("locked.mp4", "cannot read", "Permission denied"), setup=_csv_with_locked_film,
          inject=_locked("locked.mp4"), check=_dataset_has("small.mp4")),
    Fault("build-dataset: broken link in an image folder",
          (*BUILD, "{tmp}/photos", *OUT, "--workers", "1"), 1,
          ("gone.png", "broken link"), setup=_photos_with_broken_link,
          check=_dataset_has("astronaut")),
    Fault("build-dataset: a text file among the films",
          (*BUILD, "{tmp}/films", *OUT, "--workers", "1"), 1,
          ("bad.mkv", "not a readable video"), setup=_folder_with_bad_film,
          check=_dataset_has("good.mp4")),
    Fault("build-dataset: a PNG named .mp4 among the films",
          (*BUILD, "{tmp}/films", *OUT, "--workers", "1"), 1,
          ("photo.mp4", "still image"), setup=_folder_with_png_named_mp4,
          check=_dataset_has("good.mp4")),
    # build-dataset: the output
    Fault("build-dataset: --out is a file", (*BUILD, FILM, *OUT), 2,
          ("cannot write", "--out"), setup=_out_is_a_file),
    Fault("build-dataset: disk full writing one film's images",
          (*BUILD, FILM, "{assets}/photos", *OUT, "--workers", "1"), 1,
          ("small.mp4", "No space left"), setup=_film_and_photos, inject=_full_images,
          check=_dataset_has("astronaut")),
    Fault("build-dataset: disk full writing dataset.parquet",
          (*BUILD, FILM, *OUT, "--workers", "1"), 2,
          ("dataset.parquet", "No space left", "free some space"),
          setup=lambda t, a: _film(a), inject=_full_parquet(".dataset.parquet."),
          check=_films_kept_without_dataset),
    # build-dataset: a dataset that training would refuse
    Fault("build-dataset: every unit lands outside train",
          (*BUILD, "{assets}/photos", *OUT, "--val-fraction", "0.5", "--test-fraction",
           "0.49"), 0, ("train split is empty", "--val-fraction"), setup=lambda t, a: _photos(a),
          level="warning"),
]
