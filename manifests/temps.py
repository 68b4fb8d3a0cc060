"""Temporary files that carry their owner, and sweeping the ones whose owner is gone.

Every temporary file that `atomic_path` makes is named ``.NAME.<random>.<host>-<pid>.tmp``
(or ends in another extension a writer asked for): the host and process that write it.
A run killed with ``kill -9`` cannot remove its temporary file; the next run into the same
folder sweeps it (`sweep_stale_temps`) when it is stale:

- its owner is a process of this host that has ended, or
- it has not been touched for `STALE_AFTER_S` (a live writer keeps writing its own; a
  process on another host sharing the folder cannot be asked whether it lives).

So a concurrent run's temporary file is never taken (six extract-frames of the same film
at once are a supported case). Names of the previous version (``.NAME.<random>.tmp``,
without an owner) are swept by age only.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

STALE_AFTER_S = 6 * 3600.0  # a temporary file untouched this long is an orphan

# .NAME.<random>.<host>-<pid>.<ext>
_OWNED = re.compile(r"^\..+\.[a-z0-9_]+\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[A-Za-z0-9]+$")
# .NAME.<random>.tmp: no owner (the previous version's names)
_UNOWNED = re.compile(r"^\..+\.tmp$")


@functools.cache
def _host() -> str:
    """This machine's short host name, as it goes into temporary names."""
    name = socket.gethostname().split(".")[0] or "host"
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:32]


def temp_suffix(ext: str = ".tmp") -> str:
    """The tail of this process's temporary names: ``.<host>-<pid><ext>``."""
    return f".{_host()}-{os.getpid()}{ext}"


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this host runs (another user's counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # another user's process, or unknowable: treat it as alive
    return True


def is_stale_temp(path: Path, now: float | None = None,
                  max_age_s: float = STALE_AFTER_S) -> bool:
    """Whether `path` is an orphaned temporary file (see the module docstring)."""
    owned = _OWNED.match(path.name)
    if not owned and not _UNOWNED.match(path.name):
        return False
    if owned and owned["host"] == _host() and not process_alive(int(owned["pid"])):
        return True
    return untouched_for(path, max_age_s, now)


def untouched_for(path: Path, seconds: float, now: float | None = None) -> bool:
    """Whether `path` was last modified more than `seconds` ago (False if it is gone)."""
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except OSError:
        return False
    return age > seconds


def sweep_stale_temps(
    folder: str | os.PathLike[str],
    *,
    recursive: bool = False,
    target: str | None = None,
    stale: Callable[[Path], bool] = is_stale_temp,
) -> list[Path]:
    """Remove the orphaned temporary files in `folder` (and below it if `recursive`; only
    those of the file named `target` when given; `stale` decides); returns what went.
    Never raises: what cannot be listed or removed is left."""
    folder = Path(folder)
    pattern = f".{target}.*" if target is not None else ".*"
    removed: list[Path] = []
    try:
        entries = list(folder.rglob(pattern) if recursive else folder.glob(pattern))
    except OSError:
        return removed
    for path in entries:
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink() and stale(path):
                path.unlink()
                removed.append(path)
    return removed
