"""Fault-table rows of audit, sample-film and sample-images: see tests/faults.py."""

from __future__ import annotations

import errno
import os
import pathlib
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from tests.faults import Fault, disk_full, run_cli, small_dataset, small_film

# --- setups and checks ------------------------------------------------------------------


def _a_file(name: str, *, dataset: bool = False) -> object:
    def setup(tmp: Path, assets: Path) -> None:
        if dataset:
            small_dataset(assets)
        (tmp / name).write_text("not a folder\n")

    return setup


def _file_unchanged(name: str) -> object:
    def check(tmp: Path, assets: Path) -> None:
        assert (tmp / name).read_text() == "not a folder\n"

    return check


def _no_manifest(tmp: Path, assets: Path) -> None:
    (tmp / "data" / "images").mkdir(parents=True)


def _corrupt_parquet(tmp: Path, assets: Path) -> None:
    path = tmp / "data" / "manifests" / "dataset.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1" + os.urandom(200))


def _missing_columns(tmp: Path, assets: Path) -> None:
    import manifests

    schema = pa.schema([("frame_id", pa.string()), ("film_id", pa.string())])
    frames = pd.DataFrame({"frame_id": ["a-f1"], "film_id": ["a"]})
    manifests.write_table(frames, tmp / "data" / "manifests" / "films" / "a.parquet", schema,
                          kind="frames", config={})


def _earlier_audit(tmp: Path, assets: Path) -> None:
    """A finished audit in {tmp}/audit, its index copied aside to compare with later."""
    code, _, stderr = run_cli(["audit", str(small_dataset(assets)), "--out", str(tmp / "audit")])
    assert code == 0, stderr
    (tmp / "index.before").write_bytes((tmp / "audit" / "index.html").read_bytes())


def _earlier_audit_kept(tmp: Path, assets: Path) -> None:
    index = tmp / "audit" / "index.html"
    assert index.read_bytes() == (tmp / "index.before").read_bytes()
    assert not list((tmp / "audit").rglob("*.tmp")), "temporary files left behind"


def _writes_fail(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    disk_full(monkeypatch, pathlib.Path, "write_text")
    disk_full(monkeypatch, pathlib.Path, "write_bytes")


def _film_then_full(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    """The film is rendered, then the disk is full (as it fills at the last packets)."""
    from filmdata import synthetic

    real = synthetic.make_film

    def make_film(path: object, *args: object, **kwargs: object) -> object:
        real(path, *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(synthetic, "make_film", make_film)


def _nothing_under(folder: str) -> object:
    def check(tmp: Path, assets: Path) -> None:
        left = [p.name for p in (tmp / folder).rglob("*")] if (tmp / folder).exists() else []
        assert not left, f"left behind: {left}"

    return check


def _films_folder(tmp: Path, assets: Path) -> None:
    small_film(assets)


SMALL = ("--seconds", "5", "--size", "64x48", "--no-audio")

FAULTS: list[Fault] = [
    # audit: the source
    Fault("audit-missing-folder", ("audit", "{tmp}/nowhere"), 2,
          ("nowhere", "no such dataset folder")),
    Fault("audit-folder-without-manifest", ("audit", "{tmp}/data"), 2,
          ("no manifests found", "build-dataset"), setup=_no_manifest),
    Fault("audit-corrupt-parquet", ("audit", "{tmp}/data"), 2,
          ("dataset.parquet", "not a readable Parquet file"), setup=_corrupt_parquet),
    Fault("audit-manifest-missing-columns", ("audit", "{tmp}/data"), 2,
          ("missing columns", "source_path"), setup=_missing_columns),
    Fault("audit-given-a-film", ("audit", "{assets}/films/small.mp4"), 2,
          ("small.mp4", "not a readable Parquet file"), setup=_films_folder),
    # audit: the output
    Fault("audit-out-is-a-file", ("audit", "{assets}/data", "--out", "{tmp}/out"), 2,
          ("--out", "is a file"), setup=_a_file("out", dataset=True), check=_file_unchanged("out")),
    Fault("audit-out-under-a-file", ("audit", "{assets}/data", "--out", "{tmp}/file/audit"), 2,
          ("cannot create", "Not a directory", "--out"), setup=_a_file("file", dataset=True),
          check=_file_unchanged("file")),
    Fault("audit-disk-full", ("audit", "{assets}/data", "--out", "{tmp}/audit"), 1,
          ("No space left", "free some space"), setup=_earlier_audit,
          check=_earlier_audit_kept, inject=_writes_fail),
    # sample-film
    Fault("sample-film-size-not-a-size", ("sample-film", "{tmp}/x.mp4", "--size", "big"), 2,
          ("--size", "WIDTHxHEIGHT"), check=_nothing_under("")),
    Fault("sample-film-size-odd", ("sample-film", "{tmp}/x.mp4", "--size", "33x20"), 2,
          ("--size", "even")),
    Fault("sample-film-fps-zero", ("sample-film", "{tmp}/x.mp4", "--fps", "0"), 2,
          ("--fps", "1 to 240")),
    Fault("sample-film-seed-negative", ("sample-film", "{tmp}/x.mp4", "--seed", "-1"), 2,
          ("--seed",)),
    Fault("sample-film-unknown-suffix", ("sample-film", "{tmp}/x.foo"), 2,
          ("x.foo", ".mp4")),
    Fault("sample-film-under-a-file", ("sample-film", "{tmp}/file/x.mp4", *SMALL), 2,
          ("file", "is a file"), setup=_a_file("file"), check=_file_unchanged("file")),
    Fault("sample-film-disk-full", ("sample-film", "{tmp}/films/x.mp4", *SMALL), 1,
          ("No space left", "free some space"), inject=_film_then_full,
          check=_nothing_under("films")),
    # sample-images
    Fault("sample-images-under-a-file", ("sample-images", "{tmp}/file/photos"), 2,
          ("cannot create", "Not a directory"), setup=_a_file("file"),
          check=_file_unchanged("file")),
    Fault("sample-images-disk-full", ("sample-images", "{tmp}/photos"), 1,
          ("No space left", "free some space"), inject=_writes_fail,
          check=_nothing_under("photos")),
]
