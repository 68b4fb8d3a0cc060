"""The harness of the fault table: (command, bad input or fault) -> exit status and one line.

Every command makes the same promise: a user mistake or an operating-system fault ends in
one clear line on stderr (`error: ...`, or `warning: ...` where the command still
succeeds) and a known exit status, never a traceback, and loses nothing that was done.
The tables live beside this file (`faults_*.py`), one per part of the CLI; `test_faults.py`
walks them all, so a new command is held to the promise by adding rows.

In a row's arguments, `{tmp}` is the row's own empty folder and `{assets}` a folder shared
by all rows of the session (a small film, a small dataset, a checkpoint: made once by the
builders below, on first use).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner


@dataclass(frozen=True)
class Fault:
    """One row of the table."""

    name: str  # the test id: what goes wrong, in a few words
    args: tuple[str, ...]  # the command line after `cli.py`; {tmp} and {assets} filled in
    exit_code: int  # the exit status the command must end with
    words: tuple[str, ...] = ()  # each must appear in the first stderr line
    setup: Callable[[Path, Path], None] | None = None  # (tmp, assets): make the bad input
    check: Callable[[Path, Path], None] | None = None  # (tmp, assets): nothing was lost
    inject: Callable[[pytest.MonkeyPatch, Path], None] | None = None  # (monkeypatch, tmp):
    #   an operating-system fault made in-process, e.g. ENOSPC from a write (a full disk
    #   cannot be made without root, and root writes through any permission)
    level: str = "error"  # the first stderr line starts with "error: " or "warning: "
    tags: tuple[str, ...] = field(default=())  # e.g. ("root-skip",) for permission faults


def dead_pid() -> int:
    """The id of a process that has ended (its temporary files are orphans)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def running_as_root() -> bool:
    """Permission faults cannot be made as root (root writes anywhere)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; a Python exception that escapes the command is re-raised
    (that is the traceback the user would have seen)."""
    from cli import main

    result = CliRunner().invoke(main, args)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def fill(args: tuple[str, ...], tmp: Path, assets: Path) -> list[str]:
    return [a.format(tmp=tmp, assets=assets) for a in args]


def run_fault(fault: Fault, tmp: Path, assets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the fault, run the command, hold it to the promise."""
    if fault.setup is not None:
        fault.setup(tmp, assets)
    if fault.inject is not None:
        fault.inject(monkeypatch, tmp)
    code, _, stderr = run_cli(fill(fault.args, tmp, assets))
    assert "Traceback" not in stderr, stderr
    assert code == fault.exit_code, f"exit {code}, expected {fault.exit_code}: {stderr}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    first = next((line for line in lines if line.startswith(f"{fault.level}: ")), None)
    assert first is not None, f"no '{fault.level}: ' line on stderr: {stderr!r}"
    for word in fault.words:
        assert word in first, f"{word!r} not in {first!r}"
    if fault.check is not None:
        monkeypatch.undo()
        fault.check(tmp, assets)


def disk_full(monkeypatch: pytest.MonkeyPatch, target: object, name: str) -> None:
    """Make `target.name` (a writing function) fail as a full disk does."""
    import errno

    def full(*args: object, **kwargs: object) -> None:
        path = next((a for a in args if isinstance(a, (str, os.PathLike))), None)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), None if path is None else str(path))

    monkeypatch.setattr(target, name, full)


# --- shared assets: made once per session, on first use --------------------------------


def small_film(assets: Path) -> Path:
    """A 9-second synthetic film at 160x120: six shots with a cut, a dissolve, a fade."""
    from filmdata.synthetic import make_film, standard_plan

    path = assets / "films" / "small.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        make_film(path, standard_plan(seed=5, n_shots=6, seconds_per_shot=1.5), size=(160, 120))
    return path


def small_photos(assets: Path) -> Path:
    """A folder of scikit-image's colour photos (the sample-images command's set)."""
    folder = assets / "photos"
    if not folder.exists():
        code, _, stderr = run_cli(["sample-images", str(folder)])
        assert code == 0, stderr
    return folder


def small_dataset(assets: Path) -> Path:
    """The small film and the photos built into a dataset with train/val/test splits."""
    root = assets / "data"
    if not (root / "manifests" / "dataset.parquet").exists():
        film, photos = small_film(assets), small_photos(assets)
        code, _, stderr = run_cli([
            "build-dataset", str(film.parent), str(photos), "--out", str(root),
            "--val-fraction", "0.25", "--test-fraction", "0.25", "--split-by", "shot", "-q",
        ])
        assert code == 0, stderr
    return root
