"""Training data: a dataset manifest in, batches of uint8 crops out, fixed by (seed, step).

- ``load_splits(frames, root)``: the kept ``train`` and ``val`` rows of a frames manifest
  (``manifests.load_frames``) as absolute image paths, checked (columns, missing files) before
  any training starts, and the fingerprint of what was used.
- ``StepBatchSampler``: the keys of the images of every step. Each process (rank) walks its
  share of a ``DistributedSampler`` order, epoch after epoch (``set_epoch(epoch)``), as one
  endless stream; step s takes stream positions [s * B, (s + 1) * B). So the data of a step is
  a function of (seed, rank, world size, batch size, step) alone, and a run resumed at step s
  sees exactly what an uninterrupted one would have.
- ``CropDataset``: key (epoch, index) -> (3, S, S) uint8 crop. Crops and flips are drawn from
  a generator seeded with (seed, epoch, index): no hidden state in the worker processes.
  Images are read at their own resolution (optionally rescaled with ``resize``); an image
  smaller than the crop is scaled up so its shorter side fits.
- ``make_loader``: the DataLoader (workers decode JPEGs; uint8 crosses to the device).
- ``centre_crops``: the fixed validation batch.

Lab conversion happens on the device in the training loop, not here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, default_collate

from colorizer.errors import DataError
from colorizer.images import read_rgb
from manifests import kept_frames

NEEDED_COLUMNS = ("frame_id", "image_path", "status", "split")
_SHOW_MISSING = 5  # missing files named in the error message


@dataclass(frozen=True)
class Splits:
    """Absolute image paths of the kept frames of each split, in manifest order."""

    train: tuple[Path, ...]
    val: tuple[Path, ...]
    fingerprint: str  # of the (frame_id, image_path, split) rows used; checked on --resume


def load_splits(frames: pd.DataFrame, root: Path, source: str = "the manifest") -> Splits:
    """The kept train and val frames of a manifest; `DataError` (saying how to fix it) when
    columns are missing, there is nothing to train on, or image files are missing."""
    missing_cols = [c for c in NEEDED_COLUMNS if c not in frames.columns]
    if missing_cols:
        raise DataError(
            f"{source} lacks the column(s) {', '.join(missing_cols)}; build the dataset with "
            "`python cli.py build-dataset` (it sets the train/val/test split)"
        )
    kept = kept_frames(frames)
    kept = kept[kept["split"].isin(["train", "val"])]
    if not (kept["split"] == "train").any():
        splits = frames.loc[frames["status"] == "kept", "split"].value_counts(dropna=False)
        found = ", ".join(f"{k}: {v}" for k, v in splits.items()) or "no kept rows"
        raise DataError(
            f"{source} has no kept frames with split 'train' ({found}); run "
            "`python cli.py build-dataset` on it (per-film manifests have no split yet), or "
            "use --split-by shot when there is a single film"
        )
    base = Path(root).absolute()
    paths = [base / str(p) for p in kept["image_path"]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(missing[:_SHOW_MISSING])
        more = f" and {len(missing) - _SHOW_MISSING} more" if len(missing) > _SHOW_MISSING else ""
        raise DataError(
            f"{len(missing)} of {len(paths)} image files of {source} are missing: {shown}{more}; "
            "restore them or rebuild the dataset"
        )
    digest = hashlib.blake2b(digest_size=8)
    for row in kept[["frame_id", "image_path", "split"]].itertuples(index=False):
        digest.update("\t".join(str(v) for v in row).encode() + b"\n")
    is_train = (kept["split"] == "train").to_numpy()
    return Splits(
        train=tuple(p for p, t in zip(paths, is_train, strict=True) if t),
        val=tuple(p for p, t in zip(paths, is_train, strict=True) if not t),
        fingerprint=digest.hexdigest(),
    )


def scale_for_crop(img: np.ndarray, size: int, resize: int = 0) -> np.ndarray:
    """Rescale so the shorter side is ``resize`` (0: keep the size), and up to ``size`` if it is
    still shorter than the crop. (H, W, 3) uint8 -> uint8."""
    h, w = img.shape[:2]
    short = resize if resize else min(h, w)
    short = max(short, size)
    if short == min(h, w):
        return img
    scale = short / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, (nw, nh), interpolation=interp)


def random_crop(
    img: np.ndarray, size: int, rng: np.random.Generator, resize: int = 0, flip: bool = True
) -> np.ndarray:
    """A random size x size crop (mirrored half of the time with ``flip``), (S, S, 3) uint8."""
    img = scale_for_crop(img, size, resize)
    h, w = img.shape[:2]
    top = int(rng.integers(h - size + 1))
    left = int(rng.integers(w - size + 1))
    crop = img[top : top + size, left : left + size]
    if flip and rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def centre_crop(img: np.ndarray, size: int, resize: int = 0) -> np.ndarray:
    """The central size x size square after scaling the shorter side to ``resize`` (the
    working size training crops from; 0: to ``size``, the whole short side)."""
    img = scale_for_crop(img, size, resize=resize or size)
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[top : top + size, left : left + size])


def centre_crops(paths: Sequence[Path], size: int, resize: int = 0) -> torch.Tensor:
    """(N, 3, S, S) uint8 centre crops of image files: the fixed validation batch."""
    crops = [centre_crop(read_rgb(p), size, resize) for p in paths]
    if not crops:
        return torch.empty(0, 3, size, size, dtype=torch.uint8)
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


class CropDataset(Dataset):
    """Key (epoch, index) -> (3, size, size) uint8 random crop of image ``index``.

    An unreadable image gives its error message (a str) instead of a crop: raised in a worker
    process the error would reach the user wrapped in a multi-line traceback."""

    def __init__(self, paths: Sequence[Path], size: int, seed: int, resize: int = 0) -> None:
        self.paths = list(paths)
        self.size, self.seed, self.resize = size, seed, resize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor | str:
        epoch, index = key
        try:
            img = read_rgb(self.paths[index])
        except DataError as exc:
            return str(exc)
        rng = np.random.default_rng([self.seed, epoch, index])
        crop = random_crop(img, self.size, rng, self.resize)
        return torch.from_numpy(crop).permute(2, 0, 1)


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """The (epoch, index) keys of steps start .. stop - 1 for one rank (see the module doc)."""

    def __init__(
        self,
        n_images: int,
        batch_size: int,
        seed: int,
        start: int,
        stop: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if n_images < 1:
            raise DataError("no training images")
        self.batch_size, self.start, self.stop = batch_size, start, stop
        self._order = DistributedSampler(
            range(n_images), num_replicas=world_size, rank=rank, shuffle=True, seed=seed
        )
        self._cached: tuple[int, list[int]] = (-1, [])

    def _epoch(self, epoch: int) -> list[int]:
        if self._cached[0] != epoch:
            self._order.set_epoch(epoch)
            self._cached = (epoch, list(self._order))
        return self._cached[1]

    def keys(self, step: int) -> list[tuple[int, int]]:
        per_epoch = self._order.num_samples
        out = []
        for pos in range(step * self.batch_size, (step + 1) * self.batch_size):
            epoch, offset = divmod(pos, per_epoch)
            out.append((epoch, self._epoch(epoch)[offset]))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            yield self.keys(step)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def collate_crops(items: list[Any]) -> torch.Tensor | str:
    """Stack crops into (B, 3, S, S) uint8; the first error message instead, if any."""
    for item in items:
        if isinstance(item, str):
            return item
    return default_collate(items)


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # one decoding thread per worker process


def make_loader(
    dataset: CropDataset, sampler: StepBatchSampler, workers: int, pin_memory: bool
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate_crops,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=4 if workers else None,
        # Workers start from a clean process, not a fork of this one: a fork taken while
        # OpenCV's or OpenMP's thread pools are busy can deadlock in the child.
        multiprocessing_context=_worker_context() if workers else None,
    )


def _worker_context() -> str | None:
    import multiprocessing as mp

    return "forkserver" if "forkserver" in mp.get_all_start_methods() else None
