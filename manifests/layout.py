"""Where things live under a dataset root. One place, so writer and reader agree.

    ROOT/
      images/<film_id>/s<shot>/<film_id>_f<frame>.jpg
      thumbs/<film_id>/s<shot>/<film_id>_f<frame>.jpg   256-wide, before correction
      manifests/films/<film_id>.parquet         frames of one film (kept and rejected)
      manifests/films/<film_id>.shots.parquet   shots of one film
      manifests/dataset.parquet                 merged dataset (build-dataset)
"""

from __future__ import annotations

from pathlib import Path

MANIFESTS_DIR = "manifests"
FILMS_DIR = f"{MANIFESTS_DIR}/films"
DATASET_MANIFEST = f"{MANIFESTS_DIR}/dataset.parquet"
IMAGES_DIR = "images"
THUMBS_DIR = "thumbs"
SHOTS_SUFFIX = ".shots.parquet"

# The input files both halves take from a folder: films (build-dataset, colorize) and still
# images (build-dataset, colorize, compare, VGG fine-tuning). Compared lower-cased.
FILM_SUFFIXES = frozenset({
    ".mkv", ".mp4", ".m4v", ".mov", ".avi", ".mpg", ".mpeg", ".m2v", ".vob", ".ts", ".m2ts",
    ".mts", ".webm", ".wmv", ".flv", ".ogv", ".dv", ".mxf", ".3gp",
})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def film_manifest(root: Path, film_id: str) -> Path:
    return root / FILMS_DIR / f"{film_id}.parquet"


def shot_manifest(root: Path, film_id: str) -> Path:
    return root / FILMS_DIR / f"{film_id}{SHOTS_SUFFIX}"


def dataset_manifest(root: Path) -> Path:
    return root / DATASET_MANIFEST


def film_manifests(root: Path) -> list[Path]:
    """Per-film frame manifests under `root`, sorted by name (shot tables excluded)."""
    folder = root / FILMS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if not p.name.endswith(SHOTS_SUFFIX))


def image_relpath(film_id: str, shot_index: int, frame_index: int, ext: str) -> str:
    """Deterministic image path (POSIX, relative to the root) of one sampled frame."""
    return f"{IMAGES_DIR}/{film_id}/s{shot_index:05d}/{film_id}_f{frame_index:07d}.{ext}"


def thumb_relpath(film_id: str, shot_index: int, frame_index: int) -> str:
    """Deterministic path of a frame's small uncorrected copy."""
    return f"{THUMBS_DIR}/{film_id}/s{shot_index:05d}/{film_id}_f{frame_index:07d}.jpg"


def root_of_manifest(path: Path) -> Path:
    """The dataset root of a manifest file: the folder that holds its `manifests/`."""
    for parent in path.resolve().parents:
        if parent.name == MANIFESTS_DIR:
            return parent.parent
    return path.resolve().parent
