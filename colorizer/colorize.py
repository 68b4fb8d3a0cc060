"""Colorize images and films with a trained checkpoint (`python cli.py colorize`).

Inputs are image files, film files, or folders of them (not recursive). Outputs:
``OUT/<stem>_color.png`` (``.jpg`` with ``image_format="jpg"``) and
``OUT/<stem>_color.mp4`` (``.mkv`` when the source audio cannot go into MP4); every file is
written to a temporary name beside the target and renamed at the end, so an interrupted run
leaves no half-written output under the final name. How a frame is colorized:
`colorizer.predictor`; film specifics: `colorizer.colorize_film`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from colorizer.colorize_config import ColorizeConfig
from colorizer.colorize_film import colorize_film
from colorizer.errors import ColorizerError, DataError, InputError
from colorizer.images import read_image
from colorizer.outputs import ensure_writable_folder, output_path, sweep_stale_temps, write_bytes
from colorizer.predictor import Colorizer
from manifests.layout import FILM_SUFFIXES, IMAGE_SUFFIXES

log = logging.getLogger(__name__)


@dataclass
class ColorizeResult:
    """One input's outcome: `output` is None and `error` says why when it failed."""

    source: Path
    kind: str  # image or film
    output: Path | None = None
    error: str | None = None
    cause: Exception | None = None  # the exception behind `error` (an OSError: disk full, ...)
    warnings: list[str] = field(default_factory=list)  # written, but not all of it (damage)
    frames: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # film: decode/model/encode, s


# --------------------------------------------------------------------------- inputs


def expand_inputs(inputs: Iterable[Path | str]) -> list[tuple[Path, str]]:
    """(path, kind) for each input: files as given, folders as their image and film files
    (sorted, not recursive). kind: image, film, or unknown (decided when opened).
    A missing path is kept as ``missing`` so that it fails with its own error line."""
    found: list[tuple[Path, str]] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and _kind(p) != "unknown")
            if not files:
                found.append((path, "empty"))
            found.extend((p, _kind(p)) for p in files)
        elif path.exists():
            found.append((path, _kind(path)))
        else:
            found.append((path, "missing"))
    return found


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in FILM_SUFFIXES:
        return "film"
    return "unknown"


def write_image(rgb: np.ndarray, target: Path, jpeg_quality: int = 95) -> None:
    """Write uint8 RGB atomically (`colorizer.outputs.atomic_output`)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if target.suffix == ".jpg" else []
    ok, buf = cv2.imencode(target.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise InputError(f"OpenCV could not encode {target.name}")
    write_bytes(target, buf.tobytes())


# --------------------------------------------------------------------------- entry point


def colorize_image(colorizer: Colorizer, source: Path, target: Path, jpeg_quality: int = 95
                   ) -> Path:
    img = read_image(source)
    write_image(colorizer.colorize_rgb(img), target, jpeg_quality)
    return target


def colorize_paths(
    inputs: Iterable[Path | str], cfg: ColorizeConfig, colorizer: Colorizer | None = None
) -> Iterator[ColorizeResult]:
    """Colorize every input, yielding one result per input as it finishes.

    The checkpoint is loaded once (its errors are raised: nothing can be done without it);
    then ``cfg.out`` is created and test-written, and the temporary files that killed runs
    left in it are swept (`colorizer.outputs`); an unwritable folder raises OSError.
    A bad input, or an output that cannot be written (a full disk), gives a result with
    ``error`` (and ``cause``) set and the others go on. KeyboardInterrupt propagates after
    the current output's temporary file has been removed.
    """
    if colorizer is None:
        colorizer = Colorizer.from_checkpoint(
            cfg.checkpoint, cfg.device, arch=cfg.arch, temperature=cfg.temperature,
            work_size=cfg.work_size,
        )
    ensure_writable_folder(cfg.out)  # an unwritable --out: one error before any work
    removed = sweep_stale_temps(cfg.out)
    if removed:
        log.info("%s: removed %d temporary file(s) left by an interrupted run", cfg.out,
                 len(removed))
    taken: set[Path] = set()
    for source, kind in expand_inputs(inputs):
        t0 = time.perf_counter()
        result = ColorizeResult(source, kind)
        try:
            _colorize_one(colorizer, source, kind, cfg, taken, result)
        except ColorizerError as exc:
            result.error, result.cause = str(exc), exc
        except OSError as exc:  # this input's output could not be written (disk full, ...)
            where = f" ({exc.filename})" if exc.filename else ""
            result.error, result.cause = f"{source}: {exc.strerror or exc}{where}", exc
        result.seconds = time.perf_counter() - t0
        yield result


def _colorize_one(colorizer: Colorizer, source: Path, kind: str, cfg: ColorizeConfig,
                  taken: set[Path], result: ColorizeResult) -> None:
    """Colorize one input into `result` (its output, frames, timings, warnings)."""
    if kind == "missing":
        raise InputError(f"{source}: no such file or folder")
    if kind == "empty":
        raise InputError(f"{source}: folder holds no image or film files")
    if kind == "unknown":
        kind = result.kind = _sniff(source)
    if kind == "image":
        suffix = ".jpg" if cfg.image_format == "jpg" else ".png"
        target = output_path(cfg.out, source, suffix, taken)
        result.output = colorize_image(colorizer, source, target, cfg.jpeg_quality)
        result.frames = 1
        return
    film = colorize_film(colorizer, source, cfg, taken=taken)
    result.output, result.frames = film.output, film.frames
    result.timings = film.timings
    result.warnings.extend(film.warnings())


def _sniff(path: Path) -> str:
    """image or film for a file whose extension says neither (OpenCV, then PyAV, decide)."""
    try:
        read_image(path)
    except DataError:
        return "film"  # colorize_film says clearly if it is no video either
    return "image"
