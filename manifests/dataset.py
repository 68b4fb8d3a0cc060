"""Merging per-film manifests into one dataset manifest: splits, cross-shot dedup.

Splits are assigned by film (default) or by shot, never by frame: the frames of one shot
are near-duplicates, so splitting them would leak the test set into training. A unit's
split comes from a hash of its id alone, so it never moves when films are added. Still
images are each their own unit (one image is one "shot").
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from manifests import layout
from manifests.errors import ManifestError
from manifests.io import read_frames, write_table
from manifests.schema import FRAME_SCHEMA, STATUS_KEPT, STATUS_REJECTED

SPLITS = ("train", "val", "test")
SPLIT_BY = ("film", "shot")


@dataclass(frozen=True)
class SplitConfig:
    split_by: str = "film"  # "film" | "shot"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0  # changes every unit's draw; keep it fixed for a growing dataset

    def __post_init__(self) -> None:
        if self.split_by not in SPLIT_BY:
            raise ManifestError(f"--split-by {self.split_by!r}: choose one of {SPLIT_BY}")
        for name, value in (("val_fraction", self.val_fraction),
                            ("test_fraction", self.test_fraction)):
            if not _is_number(value) or not 0 <= value < 1:
                raise ManifestError(f"{name} (--{name.replace('_', '-')}) {value!r}: "
                                    "give a number in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise ManifestError(
                f"val {self.val_fraction} + test {self.test_fraction}: each >= 0, sum < 1"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ManifestError(f"seed (--split-seed) {self.seed!r}: give a whole number")

    def expected_splits(self) -> tuple[str, ...]:
        """The splits that should get units: train, and val / test if their share > 0."""
        shares = {"train": 1.0, "val": self.val_fraction, "test": self.test_fraction}
        return tuple(s for s in SPLITS if shares[s] > 0)


@dataclass(frozen=True)
class DedupConfig:
    max_distance: int | None = None  # pHash Hamming distance; None = off

    def __post_init__(self) -> None:
        d = self.max_distance
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 64):
            raise ManifestError(f"max_distance (--dedup) {d!r}: give a whole number in [0, 64]")


def _is_number(value: object) -> bool:
    """A finite real number (not a bool, nan or inf)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def empty_splits(frames: pd.DataFrame, cfg: SplitConfig) -> list[str]:
    """The expected splits (`SplitConfig.expected_splits`) without a kept frame: with few
    films (or shots), whole units fall on one side, and training refuses an empty train
    or val split."""
    kept = frames.loc[frames["status"] == STATUS_KEPT, "split"]
    present = set(kept.dropna().astype(str))
    return [s for s in cfg.expected_splits() if s not in present]


def split_units(frames: pd.DataFrame, split_by: str) -> pd.Series:
    """The unit each row is split by: its film, or its shot; a still image is its own."""
    film = frames["film_id"].astype(str)
    shot = film + "/s" + frames["shot_index"].astype(str)
    if split_by == "shot":
        return shot
    return film.where(frames["source_kind"] != "image", shot)


def unit_draw(unit: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the unit's id and the seed."""
    digest = hashlib.blake2b(f"{seed}:{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign_splits(frames: pd.DataFrame, cfg: SplitConfig) -> pd.Series:
    units = split_units(frames, cfg.split_by)
    draws = {u: unit_draw(u, cfg.seed) for u in units.unique()}
    train_end = 1.0 - cfg.val_fraction - cfg.test_fraction
    val_end = 1.0 - cfg.test_fraction

    def split_of(u: str) -> str:
        d = draws[u]
        return "train" if d < train_end else "val" if d < val_end else "test"

    return units.map({u: split_of(u) for u in draws}).astype("string")


def near_duplicates(frames: pd.DataFrame, max_distance: int) -> np.ndarray:
    """Boolean mask of kept rows that are within `max_distance` (pHash Hamming) of an
    earlier kept row of another shot, in row order.

    Multi-index hashing: the 64 bits are cut into `max_distance + 1` chunks, and two
    hashes that close must agree exactly on at least one chunk (pigeonhole), so only rows
    sharing a chunk value are compared.
    """
    kept = np.flatnonzero((frames["status"] == STATUS_KEPT).to_numpy())
    hashes = frames["phash"].to_numpy(dtype=np.uint64)[kept]
    shot_ids = frames["film_id"].astype(str) + "/" + frames["shot_index"].astype(str)
    shots = shot_ids.to_numpy()[kept]
    neighbours: dict[int, set[int]] = {}
    bounds = np.linspace(0, 64, max_distance + 2).astype(int)
    for lo, hi in itertools.pairwise(bounds):
        chunk = (hashes >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
        order = np.argsort(chunk, kind="stable")
        starts = np.flatnonzero(np.r_[True, chunk[order][1:] != chunk[order][:-1]])
        for group in np.split(order, starts[1:]):
            if len(group) < 2:
                continue
            distance = _popcount(hashes[group][:, None] ^ hashes[group][None, :])
            close = (distance <= max_distance) & (shots[group][:, None] != shots[group][None, :])
            for a, b in zip(*np.nonzero(np.triu(close, 1)), strict=True):
                i, j = sorted((int(group[a]), int(group[b])))
                neighbours.setdefault(j, set()).add(i)
    duplicate = np.zeros(len(frames), dtype=bool)
    is_dup_local = np.zeros(len(kept), dtype=bool)
    for j in sorted(neighbours):
        if any(not is_dup_local[i] for i in neighbours[j]):
            is_dup_local[j] = True
    duplicate[kept[is_dup_local]] = True
    return duplicate


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits per element of a uint64 array."""
    as_bytes = x.view(np.uint8).reshape(*x.shape, 8)
    return np.unpackbits(as_bytes, axis=-1).sum(axis=-1)


def merge(
    manifest_paths: Sequence[Path],
    split: SplitConfig,
    dedup: DedupConfig,
    sources: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One table of every frame of every manifest, in a fixed order, with splits set.

    `sources` (optional, one row per film_id) adds per-film columns such as title and
    year from a CSV list of films.
    """
    if not manifest_paths:
        raise ManifestError("nothing to merge: no per-film manifests were produced")
    frames = pd.concat([read_frames(p) for p in manifest_paths], ignore_index=True)
    frames = frames.sort_values(["film_id", "frame_index"], kind="stable", ignore_index=True)
    frames["split"] = assign_splits(frames, split)
    if dedup.max_distance is not None:
        dup = near_duplicates(frames, dedup.max_distance)
        frames.loc[dup, "status"] = STATUS_REJECTED
        frames.loc[dup, "reject_reason"] = "duplicate"
    if sources is not None and len(sources):
        extra = [c for c in sources.columns if c not in frames.columns or c == "film_id"]
        frames = frames.merge(sources[extra], on="film_id", how="left", validate="many_to_one")
    return frames


def write_dataset(
    root: Path,
    frames: pd.DataFrame,
    config: dict[str, Any],
    info: dict[str, Any],
) -> Path:
    """Write the dataset manifest atomically (frame schema plus any extra columns)."""
    import pyarrow as pa

    extra = [c for c in frames.columns if c not in FRAME_SCHEMA.names]
    schema = FRAME_SCHEMA
    for name in extra:
        schema = schema.append(pa.field(name, pa.Table.from_pandas(frames[[name]]).schema[0].type))
    return write_table(
        frames, layout.dataset_manifest(root), schema, kind="dataset", config=config, info=info
    )


def summarize(frames: pd.DataFrame) -> pd.DataFrame:
    """Per film: kind, shots, candidate frames, kept, rejected by reason, splits."""
    grouped = frames.groupby("film_id", sort=True)
    table = pd.DataFrame({
        "kind": grouped["source_kind"].first(),
        "shots": grouped["shot_index"].nunique(),
        "frames": grouped.size(),
        "kept": grouped["status"].apply(lambda s: int((s == "kept").sum())),
    })
    rejected = frames[frames["status"] != "kept"]
    if len(rejected):
        reasons = pd.crosstab(rejected["film_id"], rejected["reject_reason"])
        table = table.join(reasons.add_prefix("rejected_"), how="left")
    table = table.fillna(0).astype({c: int for c in table.columns if c != "kind"})
    table["split"] = grouped["split"].agg(lambda s: "/".join(sorted(set(s.dropna()))) or "-")
    return table.reset_index()
