"""colorizer.outputs: the one atomic writer, its temporary names, the sweep of orphans."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from colorizer.outputs import (
    STALE_AFTER_S,
    atomic_output,
    atomic_save,
    ensure_writable_folder,
    sweep_stale_temps,
    temp_suffix,
    write_text,
)
from tests.faults import dead_pid

ROOT = Path(__file__).resolve().parents[1]


def run_and_kill(target: Path) -> None:
    """A process that is killed (SIGKILL) in the middle of writing `target`."""
    code = textwrap.dedent(f"""
        import os, signal
        from colorizer.outputs import atomic_output
        with atomic_output({str(target)!r}) as tmp:
            tmp.write_bytes(b"x" * 100_000)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL


def test_outputs_get_the_umask_mode_and_keep_the_extension(tmp_path: Path, umask_022) -> None:
    seen = []
    with atomic_output(tmp_path / "film_color.mp4") as tmp:
        seen.append(tmp.name)
        tmp.write_bytes(b"film")
    assert seen[0].startswith(".film_color.mp4.") and seen[0].endswith(temp_suffix(".mp4"))
    write_text(tmp_path / "config.json", "{}\n")
    atomic_save({"step": 1}, tmp_path / "last.pt")
    for name in ("film_color.mp4", "config.json", "last.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json", "film_color.mp4", "last.pt"]  # fmt: skip


def test_a_failed_write_names_the_target_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OSError) as info, atomic_output(tmp_path / "last.pt"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as torch.save gives it
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writer_leaves_a_temp_file_the_next_run_sweeps(tmp_path: Path) -> None:
    run_and_kill(tmp_path / "last.pt")
    left = [p for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].name.startswith(".last.pt.")
    assert sweep_stale_temps(tmp_path) == left
    assert list(tmp_path.iterdir()) == []


def test_the_sweep_never_takes_a_live_writers_file(tmp_path: Path) -> None:
    """A concurrent run's temporary file (here: a child that sleeps inside the block) and
    this process's own are kept; so is a fresh file of a process on another host."""
    code = textwrap.dedent(f"""
        import sys, time
        from colorizer.outputs import atomic_output
        with atomic_output({str(tmp_path / "film_color.mp4")!r}) as tmp:
            tmp.write_bytes(b"x")
            print("ready", flush=True)
            time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        other_host = tmp_path / f".last.pt.abcd1234.elsewhere-{dead_pid()}.tmp"
        other_host.write_bytes(b"x")
        with atomic_output(tmp_path / "mine.png") as mine:
            mine.write_bytes(b"x")
            before = sorted(tmp_path.iterdir())
            assert sweep_stale_temps(tmp_path) == []
            assert sorted(tmp_path.iterdir()) == before
    finally:
        child.kill()
        child.wait()


def test_the_sweep_takes_old_names_of_dead_processes_and_old_files_only(
    tmp_path: Path,
) -> None:
    gone = dead_pid()
    stale = [
        tmp_path / f".last.pt.tmp-{gone}",  # an earlier version's checkpoint temp
        tmp_path / f".film_color.part-{gone}.mp4",  # an earlier version's colorize temp
        tmp_path / ".config.json.tmp",  # no owner: taken only when old
        tmp_path / ".grid.png.k2j4h5l6.tmp",  # manifests' default name, old
    ]
    kept = [
        tmp_path / ".metrics.jsonl.q1w2e3r4.tmp",  # no owner, fresh: may be a live writer's
        tmp_path / "notes.txt",  # not a temporary name, however old
        tmp_path / f".last.pt.tmp-{os.getpid()}",  # a live process
    ]
    for path in stale + kept:
        path.write_bytes(b"x")
    old = time.time() - STALE_AFTER_S - 60
    for path in (stale[2], stale[3], kept[1]):
        os.utime(path, (old, old))
    assert sorted(sweep_stale_temps(tmp_path)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_sweep_of_a_missing_folder_is_quiet(tmp_path: Path) -> None:
    assert sweep_stale_temps(tmp_path / "nothing") == []


def test_unwritable_output_folders_fail_up_front(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for folder in (afile, afile / "out"):
        with pytest.raises(NotADirectoryError):
            ensure_writable_folder(folder)
    assert ensure_writable_folder(tmp_path / "a" / "b").is_dir()
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the probe is gone
