"""Writing outputs: one atomic writer, a writability check up front, stale temp files swept.

Every file the colorizer writes (checkpoints, metrics, config.json, validation grids,
colorized images and films, grey VGG files) goes through `manifests.atomic_path`: a
temporary file beside the target, moved onto it only when complete, with the mode the
umask gives (0644 under umask 022), never mkstemp's 0600.

The temporary names carry their owner (`manifests.temps`): ``.NAME.<random>.<host>-<pid><ext>``,
e.g. ``.last.pt.k2x9q0ab.gpu3-41207.tmp`` or ``.film_color.mp4.0c1d2e3f.gpu3-41207.mp4``
(the extension last, for writers that pick the format by it). A run killed with
``kill -9`` cannot remove its temporary file; the next train or colorize run into the same
folder sweeps it (`sweep_stale_temps`): a file of a process of this host that has ended, or
any temporary file untouched for `STALE_AFTER_S` (a live writer keeps touching its own, and
a process on another host sharing the folder cannot be asked whether it lives). A
concurrent run's temporary file is never taken. The colorizer's names of earlier versions
(``.last.pt.tmp-PID``, ``.NAME.part-PID.mp4``, ``metrics.jsonl.tmp``) are recognised too.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from manifests import atomic_path, temps
from manifests.temps import STALE_AFTER_S, is_stale_temp, process_alive, temp_suffix

log = logging.getLogger(__name__)

# the colorizer's earlier names: .NAME.tmp-PID (checkpoints), .NAME.part-PID.EXT (colorize)
_LEGACY_PID = re.compile(r"^\..+\.(?:tmp-|part-)(?P<pid>\d+)(?:\.[A-Za-z0-9]+)?$")
_LEGACY_UNOWNED = "metrics.jsonl.tmp"  # train's earlier rewrite of the metrics


@contextlib.contextmanager
def atomic_output(target: str | os.PathLike[str], ext: str | None = None) -> Iterator[Path]:
    """A temporary path beside `target` (ending in `ext`, by default the target's own
    extension or ``.tmp``), moved onto `target` when the block ends without an error.

    An OSError about the temporary file is re-raised naming `target`, the file the user
    knows (and without a filename, as torch.save gives, it gets `target`)."""
    target = Path(target)
    ext = ext if ext is not None else (target.suffix or ".tmp")
    try:
        with atomic_path(target, suffix=temp_suffix(ext)) as tmp:
            try:
                yield tmp
            except OSError as exc:
                if exc.filename is None or str(exc.filename) == str(tmp):
                    raise _renamed(exc, target) from exc
                raise
    except OSError as exc:
        if exc.filename is None:
            raise _renamed(exc, target) from exc
        raise


def _renamed(exc: OSError, target: Path) -> OSError:
    return OSError(exc.errno, exc.strerror or str(exc), str(target))


def atomic_save(obj: Any, target: str | os.PathLike[str]) -> Path:
    """torch.save through a Python file object (a full disk is then an OSError, where
    torch.save to a path gives a RuntimeError) into an atomic temporary file."""
    import torch

    target = Path(target)
    with atomic_output(target, ".tmp") as tmp, tmp.open("wb") as f:
        torch.save(obj, f)
    return target


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    target = Path(target)
    with atomic_output(target, ".tmp") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    target = Path(target)
    with atomic_output(target, ".tmp") as tmp:
        tmp.write_bytes(data)
    return target


# --------------------------------------------------------------------------- checks


def ensure_writable_folder(folder: str | os.PathLike[str]) -> Path:
    """Create `folder` and write (and remove) a small probe file in it, so that an
    unwritable output fails now, with one clear OSError, not after hours of work."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".write-probe.0{temp_suffix()}"
    try:
        with probe.open("wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(folder)) from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return folder


def check_free_space(folder: str | os.PathLike[str], need: int, what: str) -> None:
    """Refuse to start long work whose output (about `need` bytes, `what`) cannot fit in
    the free space of `folder`: an OSError(ENOSPC) that says how much is needed."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell: the writes themselves will say
    if free < need:
        mib = 1024 * 1024
        raise OSError(
            errno.ENOSPC,
            f"{what} needs about {need / mib:.0f} MiB, only {free / mib:.0f} MiB free",
            str(folder),
        )


# --------------------------------------------------------------------------- sweeping


def is_stale(path: Path, now: float | None = None, max_age_s: float = STALE_AFTER_S) -> bool:
    """Whether `path` is an orphaned temporary file: `manifests.temps.is_stale_temp`, or
    one of the colorizer's earlier names whose process has ended (or that is old)."""
    if is_stale_temp(path, now, max_age_s):
        return True
    legacy = _LEGACY_PID.match(path.name)
    if legacy and not process_alive(int(legacy["pid"])):
        return True
    if not legacy and path.name != _LEGACY_UNOWNED:
        return False
    return temps.untouched_for(path, max_age_s, now)


def sweep_stale_temps(folder: str | os.PathLike[str], target: str | None = None) -> list[Path]:
    """Remove the orphaned temporary files directly in `folder` (only those of the file
    named `target` when given), the earlier names included; returns what went. Never
    raises: a folder that cannot be listed or a file that cannot go is left."""
    removed = temps.sweep_stale_temps(folder, target=target, stale=is_stale)
    if removed:
        log.info("%s: removed %d stale temporary file(s)", folder, len(removed))
    return removed


__all__ = [
    "STALE_AFTER_S",
    "atomic_output",
    "atomic_save",
    "check_free_space",
    "ensure_writable_folder",
    "is_stale",
    "sweep_stale_temps",
    "temp_suffix",
    "write_bytes",
    "write_text",
]


def output_path(out: Path, source: Path, suffix: str, taken: set[Path]) -> Path:
    """OUT/<stem>_color<suffix>; a second input of the same stem in one run gets its own
    extension in the name (<stem>_<ext>_color<suffix>) instead of overwriting the first."""
    target = out / f"{source.stem}_color{suffix}"
    if target in taken:
        target = out / f"{source.stem}_{source.suffix.lstrip('.').lower()}_color{suffix}"
    taken.add(target)
    return target
