"""manifests: owned temporary names, sweeping only orphans, the skip check."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import manifests
from manifests import FRAME_SCHEMA, temps
from manifests.dataset import DedupConfig, SplitConfig, empty_splits
from manifests.errors import ManifestError


def dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def owned_temp(folder: Path, name: str, pid: int, host: str | None = None) -> Path:
    path = folder / f".{name}.k2x9q0ab.{host or temps._host()}-{pid}.tmp"
    path.write_bytes(b"partial")
    return path


def test_atomic_path_names_its_owner(tmp_path: Path) -> None:
    target = tmp_path / "a.parquet"
    with manifests.atomic_path(target) as tmp:
        assert tmp.name.startswith(".a.parquet.")
        assert tmp.name.endswith(manifests.temp_suffix())
        assert not temps.is_stale_temp(tmp)  # ours, and we are alive
        tmp.write_bytes(b"x")
    assert target.read_bytes() == b"x" and not list(tmp_path.glob(".*"))


def test_sweep_takes_orphans_only(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "s00001").mkdir()
        orphan = owned_temp(tmp_path / "s00001", "f_0000001.jpg", dead_pid())
        live = owned_temp(tmp_path, "f_0000002.jpg", sleeper.pid)
        mine = owned_temp(tmp_path, "f_0000003.jpg", os.getpid())
        elsewhere = owned_temp(tmp_path, "f_0000004.jpg", dead_pid(), host="other-host")
        old_unowned = tmp_path / ".film.parquet.abc123.tmp"
        new_unowned = tmp_path / ".film2.parquet.abc123.tmp"
        for path in (old_unowned, new_unowned):
            path.write_bytes(b"")
        day_ago = time.time() - 24 * 3600
        os.utime(old_unowned, (day_ago, day_ago))
        not_a_temp = tmp_path / ".hidden-notes"
        not_a_temp.write_bytes(b"")

        assert len(manifests.sweep_stale_temps(tmp_path)) == 1  # not recursive: old_unowned
        assert len(manifests.sweep_stale_temps(tmp_path, recursive=True)) == 1  # the orphan
        left = {p.name for p in tmp_path.rglob(".*")}
        assert left == {p.name for p in (live, mine, elsewhere, new_unowned, not_a_temp)}
        assert not orphan.exists()
        # Another host's file is swept by age only.
        os.utime(elsewhere, (day_ago, day_ago))
        assert len(manifests.sweep_stale_temps(tmp_path)) == 1 and not elsewhere.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_sweep_never_raises(tmp_path: Path) -> None:
    assert manifests.sweep_stale_temps(tmp_path / "missing", recursive=True) == []
    a_file = tmp_path / "file"
    a_file.write_bytes(b"")
    assert manifests.sweep_stale_temps(a_file) == []


def _manifest(path: Path, version: bytes | None = None, source: dict | None = None) -> Path:
    df = pd.DataFrame(columns=FRAME_SCHEMA.names)
    info = {"config_fingerprint": "abc"} | ({"source": source} if source else {})
    manifests.write_table(df, path, FRAME_SCHEMA, kind="frames", config={}, info=info)
    if version is not None:
        table = pq.read_table(path)
        meta = dict(table.schema.metadata) | {b"filmcolor.schema_version": version}
        pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def test_made_with_needs_this_schema_version_and_the_same_source(tmp_path: Path) -> None:
    facts = {"size": 10, "mtime_ns": 5}
    current = _manifest(tmp_path / "a.parquet", source=facts)
    assert manifests.made_with(current, "abc", facts)
    assert manifests.made_with(current, "abc")
    assert not manifests.made_with(current, "abd", facts)
    assert not manifests.made_with(current, "abc", {"size": 10, "mtime_ns": 6})
    # A manifest of another schema version is redone by a plain rerun, not skipped.
    other = _manifest(tmp_path / "b.parquet", version=b"99", source=facts)
    assert not manifests.made_with(other, "abc", facts)
    damaged = _manifest(tmp_path / "c.parquet", version=b"x1", source=facts)
    assert not manifests.made_with(damaged, "abc", facts)
    with pytest.raises(ManifestError, match="damaged metadata"):
        manifests.read_metadata(damaged)


@pytest.mark.parametrize("kwargs", [
    {"val_fraction": float("nan")}, {"test_fraction": float("inf")}, {"val_fraction": -0.1},
    {"val_fraction": 0.6, "test_fraction": 0.4}, {"seed": 1.5},
])
def test_split_config_refuses_bad_fractions(kwargs: dict) -> None:
    with pytest.raises(ManifestError):
        SplitConfig(**kwargs)


def test_dedup_config_refuses_bad_distances() -> None:
    for bad in (-1, 65, 3.5):
        with pytest.raises(ManifestError, match="--dedup"):
            DedupConfig(max_distance=bad)


def test_empty_splits_names_the_expected_splits_without_frames() -> None:
    frames = pd.DataFrame({"status": ["kept", "kept", "rejected"],
                           "split": ["val", "test", "train"]})
    assert empty_splits(frames, SplitConfig()) == ["train"]
    assert empty_splits(frames, SplitConfig(val_fraction=0.0)) == ["train"]
    only_train = frames.assign(split="train")
    assert empty_splits(only_train, SplitConfig(val_fraction=0.0, test_fraction=0.0)) == []
    assert empty_splits(only_train, SplitConfig()) == ["val", "test"]
