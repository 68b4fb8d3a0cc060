"""build-dataset: many films and still-image folders into one auditable training set.

    inputs (films, folders, CSV lists, image folders) --resolve_inputs--> Tasks
    --run_task, one per film or image chunk, in a process pool or on Ray--> per-film manifests
    --manifests.dataset.merge (splits, cross-shot dedup)--> manifests/dataset.parquet

Each task is idempotent and writes its manifest atomically, last: a failed or killed task
leaves nothing, and a rerun redoes only what failed or is missing. `run_task` never raises
for bad input; it returns a failed `FilmResult` with the reason.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import manifests
from engines import ENGINES
from filmdata.config import ExtractConfig, settings_fingerprint
from filmdata.errors import (
    ConfigError,
    FilmDataError,
    FilmOpenError,
    OutputError,
    describe_os_error,
)
from filmdata.extract import (
    FilmResult,
    extract_film,
    film_id_for,
    remove_unlisted_images,
    retire_outputs,
    sweep_film_temps,
)
from filmdata.images import (
    ImageSetConfig,
    image_set_facts,
    image_set_id,
    index_images,
    is_image,
)
from filmdata.validate import check_fields, check_range
from manifests import FRAME_SCHEMA, layout
from manifests.dataset import (
    DedupConfig,
    SplitConfig,
    empty_splits,
    merge,
    summarize,
    write_dataset,
)


@dataclass(frozen=True)
class Task:
    """One idempotent unit of work: a film, or a chunk of an image folder."""

    kind: str  # "film" | "images" | "invalid" (an input found unusable: fails at once)
    path: str  # the film file, or the image folder
    files: tuple[str, ...] = ()  # images of this chunk (kind "images")
    set_id: str = ""  # manifest id of the chunk (kind "images")
    first_index: int = 0  # number of the chunk's first image within the folder
    error: str = ""  # why the input is unusable (kind "invalid")


@dataclass(frozen=True)
class BuildConfig:
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    images: ImageSetConfig = field(default_factory=ImageSetConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    images_per_task: int = 2000  # still images per task (one manifest each)

    def __post_init__(self) -> None:
        check_fields(self)
        check_range(self, "images_per_task", 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BuildReport:
    results: tuple[FilmResult, ...]
    dataset: Path | None  # the merged manifest; None when nothing succeeded
    summary: pd.DataFrame  # one row per film / image chunk
    empty_splits: tuple[str, ...] = ()  # expected splits that got no kept frame

    @property
    def failures(self) -> list[FilmResult]:
        return [r for r in self.results if r.status == "failed"]


# -- inputs ---------------------------------------------------------------------------


def resolve_inputs(
    inputs: Sequence[str | os.PathLike[str]],
    images_per_task: int = 2000,
    *,
    out_root: str | os.PathLike[str] | None = None,
) -> tuple[list[Task], pd.DataFrame]:
    """Tasks for every input, and a table of per-film facts from CSV lists (film_id,
    title, year and any extra columns). Raises `FilmDataError` before any work starts.

    Folders are searched recursively, leaving out hidden files and folders (temporary
    files, macOS "._" copies) and our own outputs: `out_root` and any dataset folder in
    them, so that a rerun with `--out` inside an input folder finds the same inputs.
    """
    if not inputs:
        raise ConfigError("no inputs: give film files, folders or a CSV list of films")
    skip = frozenset() if out_root is None else frozenset({Path(out_root).resolve()})
    films: list[Path] = []
    image_sets: dict[Path, list[Path]] = {}
    sources: list[pd.DataFrame] = []
    invalid: list[Task] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise FilmOpenError(f"{path}: no such file or folder")
        if path.is_dir():
            if is_dataset(path):
                raise ConfigError(
                    f"{path} is a filmcolor dataset, not an input: give the films and image "
                    f"folders it was built from (or look at it with: audit {path})"
                )
            path = path.resolve()
            files = sorted(_input_files(path, skip))
            invalid.extend(_broken_links(files))
            files = [p for p in files if p.exists()]
            found = [p for p in files if p.suffix.lower() in layout.FILM_SUFFIXES]
            images = [p for p in files if is_image(p)]
            if not found and not images:
                raise FilmOpenError(f"{path}: folder holds no films and no images")
            films.extend(found)
            if images:
                image_sets.setdefault(path, images)
        elif path.suffix.lower() == ".csv":
            listed = read_film_list(path)
            films.extend(Path(p) for p in listed["path"])
            sources.append(listed)
        else:
            films.append(path)  # any other file is taken as a film; decode tells if not
    tasks = [*invalid, *(Task("film", str(p)) for p in _unique(films))]
    for folder, images in image_sets.items():
        tasks.extend(_image_tasks(folder, images, images_per_task))
    table = pd.concat(sources, ignore_index=True) if sources else pd.DataFrame()
    if len(table):
        table = table.dropna(subset=["film_id"]).drop_duplicates("film_id").drop(columns=["path"])
    return tasks, table


def _broken_links(files: Iterable[Path]) -> list[Task]:
    """An invalid task for each link whose target is missing (one line each; the other
    inputs go on)."""
    broken = []
    for path in files:
        if path.is_symlink() and not path.exists():
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            broken.append(Task("invalid", str(path), error=(
                f"{path}: broken link (its target {target} is missing); fix or remove it")))
    return broken


def is_dataset(folder: Path) -> bool:
    """Whether `folder` is the root of a filmcolor output (extract-frames or
    build-dataset): it holds per-film manifests or a dataset manifest."""
    return (folder / layout.FILMS_DIR).is_dir() or layout.dataset_manifest(folder).is_file()


def _input_files(folder: Path, skip: frozenset[Path]) -> Iterator[Path]:
    """Files under `folder`, without hidden files and folders, the folders in `skip`
    (resolved) or any filmcolor dataset below it."""
    for here, subfolders, names in os.walk(folder):
        base = Path(here)
        subfolders[:] = [
            d for d in subfolders
            if not d.startswith(".") and (base / d).resolve() not in skip
            and not is_dataset(base / d)
        ]
        yield from (base / name for name in names if not name.startswith("."))


def read_film_list(csv_path: Path) -> pd.DataFrame:
    """A CSV list of films: a `path` column (relative to the CSV's folder or absolute),
    optional `title` and `year`, any extra columns kept. Adds `film_id`."""
    try:
        table = pd.read_csv(csv_path, dtype={"path": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{csv_path}: not a readable CSV ({exc})") from exc
    if "path" not in table.columns:
        raise ConfigError(
            f"{csv_path}: no 'path' column (found: {', '.join(map(str, table.columns))}); "
            "the list needs columns path[,title,year,...]"
        )
    if table.empty:
        raise ConfigError(f"{csv_path}: lists no films (a header only); add one row per film: "
                          "path[,title,year,...]")
    table["path"] = [str(_resolve(csv_path.parent, p)) for p in table["path"].fillna("")]
    missing = [p for p in table["path"] if not Path(p).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        shown = ", ".join(missing[:3]) + more
        raise FilmOpenError(f"{csv_path}: {len(missing)} listed film(s) not found: {shown}")
    table["film_id"] = [_film_id_or_none(p) for p in table["path"]]
    return table


def _film_id_or_none(path: str) -> str | None:
    """The film's id; None if it cannot be read now (its task then fails with the reason,
    and the other films go on)."""
    try:
        return film_id_for(path)
    except OSError:
        return None


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _unique(paths: Iterable[Path]) -> list[Path]:
    seen: dict[Path, None] = {}
    for p in paths:
        seen.setdefault(p.resolve(), None)
    return list(seen)


def _image_tasks(folder: Path, files: list[Path], per_task: int) -> list[Task]:
    chunks = [files[i : i + per_task] for i in range(0, len(files), per_task)]
    single = len(chunks) == 1
    return [
        Task("images", str(folder), tuple(str(f) for f in chunk),
             image_set_id(folder, files, None if single else n), n * per_task)
        for n, chunk in enumerate(chunks)
    ]


# -- one task ---------------------------------------------------------------------------


def run_task(task: Task, out_root: str, cfg: BuildConfig, force: bool = False) -> FilmResult:
    """Run one task; bad input or an unexpected fault becomes a failed result."""
    started = time.perf_counter()
    try:
        if task.kind == "invalid":
            raise FilmOpenError(task.error)
        if task.kind == "film":
            return extract_film(task.path, out_root, cfg.extract, force=force, progress=False)
        return _run_images(task, Path(out_root), cfg, force)
    except (FilmDataError, manifests.ManifestError) as exc:
        error = str(exc)
    except OSError as exc:  # disk full, permissions: this input fails, the others go on
        error = describe_os_error(exc)
    except Exception as exc:  # a bug in one film must not stop the others
        error = f"internal error: {type(exc).__name__}: {exc}"
    return FilmResult(task.path, None, "failed", seconds=time.perf_counter() - started,
                      error=error)


def _run_images(task: Task, out_root: Path, cfg: BuildConfig, force: bool) -> FilmResult:
    started = time.perf_counter()
    manifest = layout.film_manifest(out_root, task.set_id)
    fingerprint = settings_fingerprint(dataclasses.asdict(cfg.images))
    source = image_set_facts([Path(f) for f in task.files])
    sweep_film_temps(out_root, task.set_id)
    if not force and manifests.made_with(manifest, fingerprint, source):
        return FilmResult(task.path, task.set_id, "skipped", manifest=str(manifest))
    retire_outputs(out_root, task.set_id)  # before any image is written (see extract.py)
    rows = index_images(Path(task.path), [Path(f) for f in task.files], task.set_id, out_root,
                        cfg.images, first_index=task.first_index)
    remove_unlisted_images(out_root, task.set_id, rows)
    info = {"config_fingerprint": fingerprint, "source": source, "images": len(rows),
            "seconds": round(time.perf_counter() - started, 3)}
    manifests.write_table(rows, manifest, FRAME_SCHEMA, kind="frames",
                          config=dataclasses.asdict(cfg.images), info=info)
    kept = rows["status"] == "kept"
    return FilmResult(
        task.path, task.set_id, "done", manifest=str(manifest), shots=len(rows),
        sampled=len(rows), kept=int(kept.sum()),
        rejected=rows.loc[~kept, "reject_reason"].value_counts().to_dict(),
        seconds=time.perf_counter() - started,
    )


# -- engines ----------------------------------------------------------------------------


def run_tasks_on(
    engine: str, tasks: Sequence[Task], out_root: Path, cfg: BuildConfig, *, force: bool,
    workers: int, address: str | None, progress: bool,
) -> list[FilmResult]:
    """Run the tasks on `engines` (a local process pool, or Ray), in task order. With more
    than one task at a time, each film is decoded on one thread (`one_decode_thread`)."""
    from engines import EngineError, run_tasks

    if engine == "ray" or (workers > 1 and len(tasks) > 1):
        cfg = one_decode_thread(cfg)

    def lost(i: int, reason: str) -> FilmResult:
        return FilmResult(tasks[i].path, None, "failed", error=reason)

    calls = [(task, str(out_root), cfg, force) for task in tasks]
    results: dict[int, FilmResult] = {}
    bar = _progress(len(tasks), progress)
    try:
        for i, result in run_tasks(run_task, calls, on_lost=lost, engine=engine,
                                   workers=workers, address=address):
            results[i] = result
            bar.update()
    except EngineError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        bar.close()
    return [results[i] for i in range(len(tasks))]


def one_decode_thread(cfg: BuildConfig) -> BuildConfig:
    """With one film per core, FFmpeg's extra decode threads only compete: decode each
    film on one thread. (Thread settings never change the output.) A thread type alone
    is not enough: SLICE still starts a thread per core for films coded in slices."""
    decode = dataclasses.replace(cfg.extract.decode, thread_type="NONE", threads=1)
    extract = dataclasses.replace(cfg.extract, decode=decode)
    return dataclasses.replace(cfg, extract=extract)


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="film", desc="build-dataset", disable=not enabled,
                dynamic_ncols=True)


# -- the whole build ------------------------------------------------------------------


def build_dataset(
    inputs: Sequence[str | os.PathLike[str]],
    out_root: str | os.PathLike[str],
    cfg: BuildConfig | None = None,
    *,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> BuildReport:
    cfg = cfg or BuildConfig()
    if engine not in ENGINES:
        raise ConfigError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    out_root = Path(out_root)
    workers = workers or os.cpu_count() or 1
    tasks, sources = resolve_inputs(inputs, cfg.images_per_task, out_root=out_root)
    _prepare_root(out_root)
    results = run_tasks_on(engine, tasks, out_root, cfg, force=force, workers=workers,
                           address=address, progress=progress)
    done = [Path(r.manifest) for r in results if r.status != "failed" and r.manifest]
    dataset = None
    frames = pd.DataFrame(columns=FRAME_SCHEMA.names)
    if done:
        frames = merge(done, cfg.split, cfg.dedup, sources)
        info = {"inputs": [str(i) for i in inputs], "films": len(done),
                "failed": [r.source_path for r in results if r.status == "failed"]}
        dataset = _write_dataset(out_root, frames, cfg.to_dict(), info)
    empty = tuple(empty_splits(frames, cfg.split)) if dataset else ()
    return BuildReport(tuple(results), dataset, summarize_build(frames, results), empty)


def _prepare_root(out_root: Path) -> None:
    """Create the dataset folder (or fail with one line, before any film is started) and
    sweep the temporary files killed runs left in its manifest folders."""
    try:
        (out_root / layout.FILMS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot write to {out_root}: {describe_os_error(exc)}; choose another --out"
        ) from exc
    manifests.sweep_stale_temps(out_root / layout.MANIFESTS_DIR)
    manifests.sweep_stale_temps(out_root / layout.FILMS_DIR)


def _write_dataset(out_root: Path, frames: pd.DataFrame, config: dict[str, Any],
                   info: dict[str, Any]) -> Path:
    try:
        return write_dataset(out_root, frames, config, info)
    except OSError as exc:
        raise OutputError(
            f"cannot write {layout.dataset_manifest(out_root)}: {describe_os_error(exc)}; "
            "free some space (or choose another --out) and rerun: the films done are kept"
        ) from exc


def summarize_build(frames: pd.DataFrame, results: Sequence[FilmResult]) -> pd.DataFrame:
    """The dataset summary plus the seconds each film took."""
    if frames.empty:
        return pd.DataFrame(columns=["film_id", "kind", "shots", "frames", "kept", "seconds"])
    seconds = {r.film_id: _seconds(r) for r in results if r.film_id}
    table = summarize(frames)
    table["seconds"] = [round(seconds.get(f, 0.0), 1) for f in table["film_id"]]
    return table


def _seconds(result: FilmResult) -> float:
    """Time the film took; for a skipped film, the time recorded when it was done."""
    if result.status == "skipped" and result.manifest:
        return float(manifests.read_metadata(result.manifest)["info"].get("seconds", 0.0))
    return result.seconds
