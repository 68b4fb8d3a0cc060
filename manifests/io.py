"""Reading and writing manifests: atomic, validated, self-describing.

Every file is written to a temporary name beside its target and moved into place with
`os.replace`, so a crash or Ctrl-C never leaves a half-written manifest under the final
name. Every file carries its schema version, the tool version, its kind and the full
config that made it in the Parquet key-value metadata.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from manifests import layout
from manifests.errors import ManifestError, ManifestNotFoundError, SchemaError
from manifests.schema import (
    FRAME_SCHEMA,
    META_CONFIG,
    META_INFO,
    META_KIND,
    META_SCHEMA_VERSION,
    META_TOOL_VERSION,
    REQUIRED_FRAME_COLUMNS,
    SCHEMA_VERSION,
)
from manifests.temps import temp_suffix


def _tool_version() -> str:
    """filmcolor's version, from the installed package's metadata (pyproject.toml)."""
    try:
        return importlib.metadata.version("filmcolor")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout never installed
        return "0+unknown"


TOOL_VERSION = _tool_version()


@functools.cache
def _umask() -> int:
    """The process's umask, read once: from /proc where it can be read without changing
    it (os.umask only sets, and setting it briefly would race other threads' writes)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(
    target: str | os.PathLike[str], *, suffix: str | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it onto `target` only on success.

    The temporary name is `.NAME.<random><suffix>` in the target's folder (the same
    filesystem, so `os.replace` is atomic). The default suffix names the owner,
    `.<host>-<pid>.tmp` (`manifests.temps`): a file left by a killed process is swept by
    the next run, a live one's never. Give a `suffix` (`temps.temp_suffix(ext)`) that ends
    with the target's extension for writers that pick the format by it (PyAV's muxers,
    OpenCV's imwrite). The final file gets the mode any new file
    gets under the umask (mkstemp's own 0600 would hide manifests and images from other
    users, web servers and workers under another uid). A failed cleanup (a read-only or
    vanished folder) never raises over the error that caused it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = temp_suffix() if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def build_metadata(
    kind: str, config: Mapping[str, Any], info: Mapping[str, Any]
) -> dict[bytes, bytes]:
    return {
        META_SCHEMA_VERSION: str(SCHEMA_VERSION).encode(),
        META_TOOL_VERSION: TOOL_VERSION.encode(),
        META_KIND: kind.encode(),
        META_CONFIG: json.dumps(config, sort_keys=True, default=str).encode(),
        META_INFO: json.dumps(info, sort_keys=True, default=str).encode(),
    }


def write_table(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    schema: pa.Schema,
    *,
    kind: str,
    config: Mapping[str, Any],
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write `df` as Parquet with `schema` (columns in schema order) atomically."""
    missing = [name for name in schema.names if name not in df.columns]
    if missing:
        raise SchemaError(f"cannot write {kind} manifest: columns missing {missing}")
    table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
    table = table.replace_schema_metadata(build_metadata(kind, config, info or {}))
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def kept_frames(frames: pd.DataFrame) -> pd.DataFrame:
    """The rows a model learns from or is scored on: status ``kept`` with a written image.
    (Callers check the columns first, with their own advice.)"""
    return frames[(frames["status"] == "kept") & frames["image_path"].notna()]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The decoded key-value metadata of a manifest: schema_version, tool_version, kind,
    config and info (the latter two as dicts)."""
    path = _existing_file(path)
    try:
        raw = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise ManifestError(f"{path}: not a readable Parquet file ({exc}); rebuild it") from exc
    try:
        meta: dict[str, Any] = {
            "schema_version": int(raw.get(META_SCHEMA_VERSION, b"0")),
            "tool_version": raw.get(META_TOOL_VERSION, b"").decode(),
            "kind": raw.get(META_KIND, b"").decode(),
        }
        for key, name in ((META_CONFIG, "config"), (META_INFO, "info")):
            meta[name] = json.loads(raw[key]) if key in raw else {}
    except ValueError as exc:  # also UnicodeDecodeError and JSONDecodeError
        raise ManifestError(f"{path}: damaged metadata ({exc}); rebuild it") from exc
    return meta


def made_with(
    path: str | os.PathLike[str], fingerprint: str, source: Mapping[str, Any] | None = None
) -> bool:
    """Whether `path` is a readable manifest of this schema version, made with the config
    of this fingerprint and, if `source` is given, from a source with these facts (size,
    mtime_ns: a file changed since is redone): then a rerun can skip its work. An
    unreadable manifest or one of another schema version counts as not made, so a plain
    rerun redoes it."""
    if not Path(path).is_file():
        return False
    try:
        meta = read_metadata(path)
    except ManifestError:
        return False
    info = meta["info"]
    return (
        meta["schema_version"] == SCHEMA_VERSION
        and info.get("config_fingerprint") == fingerprint
        and (source is None or info.get("source") == dict(source))
    )


def read_frames(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read one frame manifest, checking its schema version and required columns."""
    path = _existing_file(path)
    meta = read_metadata(path)
    version = meta["schema_version"]
    if version != SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: schema version {version}, this tool reads version {SCHEMA_VERSION}; "
            "re-run extract-frames / build-dataset with this version to rewrite it"
        )
    df = pd.read_parquet(path)
    validate_frames(df, source=str(path))
    for name in FRAME_SCHEMA.names:  # optional columns added after this file was written
        if name not in df.columns:
            df[name] = None
    return df


def validate_frames(df: pd.DataFrame, source: str = "manifest") -> None:
    missing = [c for c in REQUIRED_FRAME_COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(
            f"{source}: missing columns {', '.join(missing)}; "
            "it was not written by filmcolor, or by an incompatible version: rebuild it"
        )


def load_frames(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, Path]:
    """All frame rows under a dataset folder or in one manifest file, and the root that
    their `image_path` values are relative to.

    A folder with a merged dataset manifest gives that; otherwise the per-film manifests
    under it are concatenated.
    """
    path = Path(path)
    if path.is_file():
        return read_frames(path), layout.root_of_manifest(path)
    if not path.is_dir():
        raise ManifestNotFoundError(f"{path}: no such dataset folder or manifest file")
    dataset = layout.dataset_manifest(path)
    if dataset.is_file():
        return read_frames(dataset), path
    films = layout.film_manifests(path)
    if not films:
        raise ManifestNotFoundError(
            f"{path}: no manifests found (expected {layout.DATASET_MANIFEST} or "
            f"{layout.FILMS_DIR}/*.parquet); run extract-frames or build-dataset first"
        )
    frames = pd.concat([read_frames(f) for f in films], ignore_index=True)
    return frames, path


def _existing_file(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ManifestNotFoundError(f"{path}: manifest not found")
    return path
