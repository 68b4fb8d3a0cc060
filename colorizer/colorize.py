"""Colorize images and films with a trained checkpoint (`python cli.py colorize`).

Inputs are image files, film files, or folders of them (not recursive). Outputs:
``OUT/<stem>_color.png`` (``.jpg`` with ``image_format="jpg"``) and
``OUT/<stem>_color.mp4`` (``.mkv`` when the source audio cannot go into MP4); every file is
written to a temporary name beside the target and renamed at the end, so an interrupted run
leaves no half-written output under the final name. How a frame is colorized:
`colorizer.predictor`; film specifics: `colorizer.colorize_film`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from colorizer.colorize_config import ColorizeConfig
from colorizer.colorize_film import MP4_AUDIO, colorize_film
from colorizer.errors import ColorizerError, ConfigError, DataError, InputError
from colorizer.fields import check_fields
from colorizer.images import read_image
from colorizer.ledger import Ledger, settings_key
from colorizer.outputs import ensure_writable_folder, output_path, sweep_stale_temps, write_bytes
from colorizer.predictor import Colorizer
from engines import ENGINES
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
    skipped: bool = False  # already in the output folder with the same settings: not redone


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


# --------------------------------------------------------------------------- one input


@dataclass(frozen=True)
class Job:
    """One input to colorize, planned before any runs, so that output names do not
    depend on which worker finishes first."""

    source: Path
    kind: str  # image, film, missing or empty (a folder without media)
    taken: frozenset[Path]  # the outputs of the inputs before it: names stay unique
    target: Path | None  # where its output goes, when known before running


def plan_jobs(found: list[tuple[Path, str]], cfg: ColorizeConfig) -> list[Job]:
    """A `Job` per input of `expand_inputs`, with the output name it will be given."""
    jobs: list[Job] = []
    taken: set[Path] = set()
    for source, kind in found:
        if kind == "unknown":
            kind = _sniff(source)
        before = frozenset(taken)
        suffix = _image_suffix(cfg) if kind == "image" else (
            film_suffix(source) if kind == "film" else None)
        target = output_path(cfg.out, source, suffix, taken) if suffix else None
        jobs.append(Job(source, kind, before, target))
    return jobs


def _image_suffix(cfg: ColorizeConfig) -> str:
    return ".jpg" if cfg.image_format == "jpg" else ".png"


def film_suffix(source: Path) -> str | None:
    """.mp4, or .mkv when the film's audio cannot go into MP4; None when it cannot be
    opened (colorizing it then fails with its own message)."""
    import av

    try:
        with av.open(str(source), "r") as container:
            audio = container.streams.audio
            codec = audio[0].codec_context.name if audio else None
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return None
    return ".mp4" if codec is None or codec in MP4_AUDIO else ".mkv"


def colorize_image(colorizer: Colorizer, source: Path, target: Path, jpeg_quality: int = 95
                   ) -> Path:
    img = read_image(source)
    write_image(colorizer.colorize_rgb(img), target, jpeg_quality)
    return target


def run_job(colorizer: Colorizer, job: Job, cfg: ColorizeConfig) -> ColorizeResult:
    """Colorize one input. Never raises for a bad input or an unwritable output: the
    result says what failed (``error``, ``cause``). KeyboardInterrupt propagates after the
    output's temporary file has been removed."""
    t0 = time.perf_counter()
    result = ColorizeResult(job.source, job.kind)
    try:
        _colorize_one(colorizer, job, cfg, result)
    except ColorizerError as exc:
        result.error, result.cause = str(exc), exc
    except OSError as exc:  # this input's output could not be written (disk full, ...)
        where = f" ({exc.filename})" if exc.filename else ""
        result.error, result.cause = f"{job.source}: {exc.strerror or exc}{where}", exc
    result.seconds = time.perf_counter() - t0
    return result


def _colorize_one(colorizer: Colorizer, job: Job, cfg: ColorizeConfig,
                  result: ColorizeResult) -> None:
    """Colorize one input into `result` (its output, frames, timings, warnings)."""
    source = job.source
    if job.kind == "missing":
        raise InputError(f"{source}: no such file or folder")
    if job.kind == "empty":
        raise InputError(f"{source}: folder holds no image or film files")
    if job.kind == "image":
        target = output_path(cfg.out, source, _image_suffix(cfg), set(job.taken))
        result.output = colorize_image(colorizer, source, target, cfg.jpeg_quality)
        result.frames = 1
        return
    film = colorize_film(colorizer, source, cfg, taken=set(job.taken))
    result.output, result.frames = film.output, film.frames
    result.timings = film.timings
    result.warnings.extend(film.warnings())


# --------------------------------------------------------------------------- many inputs


@dataclass(frozen=True)
class RunOptions:
    """How the inputs of one colorize run are spread, and whether finished ones are redone."""

    engine: str = "local"  # local (a process pool on this machine) or ray
    workers: int = 1  # inputs colorized at once; 1: one after another in this process
    address: str | None = None  # Ray cluster (else RAY_ADDRESS, else a local Ray)
    force: bool = False  # redo inputs the output folder already holds (colorized.jsonl)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine {self.engine!r}: choose one of {', '.join(ENGINES)}",
                              key="engine")
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}", key="workers")


def colorize_paths(
    inputs: Iterable[Path | str], cfg: ColorizeConfig, colorizer: Colorizer | None = None,
    run: RunOptions | None = None,
) -> Iterator[ColorizeResult]:
    """Colorize every input, yielding one result per input as it finishes.

    The checkpoint is loaded first (its errors are raised: nothing can be done without
    it); then ``cfg.out`` is created and test-written, and the temporary files that killed
    runs left in it are swept (`colorizer.outputs`); an unwritable folder raises OSError.
    An input the folder already holds with the same settings (`colorizer.ledger`) is
    skipped (``skipped`` set) unless ``run.force``. A bad input, or an output that cannot
    be written (a full disk), gives a result with ``error`` (and ``cause``) set and the
    others go on. With ``run.workers`` > 1 or ``run.engine`` ray, inputs run in parallel
    (`engines`), each worker with its own copy of the network; on a machine with GPUs,
    each local worker gets a card of its own, and each Ray task asks for one GPU.
    """
    run = run or RunOptions()
    parallel = run.engine == "ray" or run.workers > 1
    if colorizer is None:  # checked here even when workers load their own copies
        colorizer = Colorizer.from_checkpoint(
            cfg.checkpoint, "cpu" if parallel else cfg.device, arch=cfg.arch,
            temperature=cfg.temperature, work_size=cfg.work_size,
        )
    ensure_writable_folder(cfg.out)  # an unwritable --out: one error before any work
    removed = sweep_stale_temps(cfg.out)
    if removed:
        log.info("%s: removed %d temporary file(s) left by an interrupted run", cfg.out,
                 len(removed))
    ledger, key = Ledger(cfg.out), settings_key(cfg)
    todo: list[Job] = []
    for job in plan_jobs(expand_inputs(inputs), cfg):
        if not run.force and job.target is not None and ledger.is_done(job.source, job.target,
                                                                         key):
            yield ColorizeResult(job.source, job.kind, output=job.target, skipped=True)
        else:
            todo.append(job)
    results = _run_parallel(todo, cfg, run) if parallel else (
        run_job(colorizer, job, cfg) for job in todo)
    for result in results:
        if result.error is None and result.output is not None:
            ledger.add(result.source, result.output, key, kind=result.kind,
                       frames=result.frames, seconds=round(result.seconds, 3),
                       warnings=result.warnings)
        yield result


def _run_parallel(jobs: list[Job], cfg: ColorizeConfig, run: RunOptions
                  ) -> Iterator[ColorizeResult]:
    import os

    import torch

    from engines import EngineError, run_tasks

    cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    gpus: tuple[int, ...] = ()
    if run.engine == "local" and cuda and cfg.device in ("auto", "cuda"):
        gpus = tuple(range(min(run.workers, torch.cuda.device_count())))
    workers = len(gpus) or run.workers
    threads = 1 if cuda else max(1, (os.cpu_count() or 1) // workers)
    worker_cfg = dataclasses.replace(cfg, quiet=True)  # one progress line per input here

    def lost(i: int, reason: str) -> ColorizeResult:
        return ColorizeResult(jobs[i].source, jobs[i].kind, error=f"{jobs[i].source}: {reason}")

    calls = [(job, worker_cfg, threads) for job in jobs]
    try:
        for _, result in run_tasks(run_job_in_worker, calls, on_lost=lost, engine=run.engine,
                                   workers=workers, address=run.address, gpus=gpus,
                                   gpus_per_task=1.0 if cuda else 0.0):
            yield result
    except EngineError as exc:
        raise ConfigError(str(exc)) from None


_WORKER_MODELS: dict[tuple[object, ...], Colorizer] = {}  # per worker process


def run_job_in_worker(job: Job, cfg: ColorizeConfig, threads: int) -> ColorizeResult:
    """`run_job` in a pool or Ray worker: the network is loaded once per process."""
    import torch

    torch.set_num_threads(threads)
    key = (str(cfg.checkpoint), cfg.device, cfg.arch, cfg.temperature, cfg.work_size)
    colorizer = _WORKER_MODELS.get(key)
    if colorizer is None:
        colorizer = _WORKER_MODELS[key] = Colorizer.from_checkpoint(
            cfg.checkpoint, cfg.device, arch=cfg.arch, temperature=cfg.temperature,
            work_size=cfg.work_size)
    return run_job(colorizer, job, cfg)


def _sniff(path: Path) -> str:
    """image or film for a file whose extension says neither (OpenCV, then PyAV, decide)."""
    try:
        read_image(path)
    except DataError:
        return "film"  # colorize_film says clearly if it is no video either
    return "image"
