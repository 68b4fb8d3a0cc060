"""filmcolor command line: a thin click layer over the `filmdata` and `colorizer` libraries.

Each command parses options, builds a frozen config, and calls one library function.
User mistakes become one line on stderr and a non-zero exit, never a traceback.
torch is imported only inside the commands that need it, so `extract-frames` starts fast.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import importlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors() -> tuple[type[BaseException], ...]:
    """The base classes of the errors that mean 'the user gave something wrong', not a bug:
    each package's own (filmdata.errors, manifests.errors, colorizer.errors). Every user
    error the CLI raises itself is one of these, named by its module (`filmdata_errors.
    ConfigError`, `colorizer_errors.ConfigError`): the CLI treats them all alike."""
    import filmdata.errors as filmdata_errors
    import manifests.errors as manifests_errors

    errors: list[type[BaseException]] = [filmdata_errors.FilmDataError,
                                         manifests_errors.ManifestError]
    if "colorizer" in sys.modules:  # only when a colorizer command imported it
        import colorizer.errors as colorizer_errors

        errors.append(colorizer_errors.ColorizerError)
    if "survey.errors" in sys.modules:  # only when a survey command imported it
        import survey.errors as survey_errors

        errors.append(survey_errors.SurveyError)
    return tuple(errors)


# --- defaults from the config dataclasses ----------------------------------------------

# The configs the commands build ("module:Class"); imported only when click needs a default
# (parsing a command, or its --help), so that the CLI starts without torch.
TRAIN = "colorizer.train:TrainConfig"
FINETUNE = "colorizer.vgg_finetune:VggFinetuneConfig"
EVALUATE = "colorizer.evaluate:EvalConfig"
COMPARE = "colorizer.compare:CompareConfig"
SHOTS = "filmdata.shots:ShotConfig"
SAMPLE = "filmdata.sampling:SampleConfig"
PROFILE = "filmdata.profile:ProfileConfig"
CORRECT = "filmdata.correct:CorrectionConfig"
FILTERS = "filmdata.filters:FilterConfig"
OUTPUT = "filmdata.config:OutputConfig"
SPLIT = "manifests.dataset:SplitConfig"


class ConfigDefault:
    """The default of fields of a config dataclass, looked up when called (click calls a
    callable default when it parses the command line) or shown (--help): each default
    lives in its config alone. Several fields are shown joined by `sep` (3-5)."""

    def __init__(self, config: str, *fields: str, sep: str = "-") -> None:
        self.config, self.fields, self.sep = config, fields, sep

    def __call__(self) -> Any:
        module, name = self.config.split(":")
        found = {f.name: f for f in dataclasses.fields(getattr(importlib.import_module(module),
                                                               name))}
        values = [found[field].default for field in self.fields]
        return values[0] if len(values) == 1 else self.sep.join(str(v) for v in values)

    def __str__(self) -> str:
        value = self()
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):  # 3e-5, not 3e-05; 25, not 25.0
            return format(value, "g").replace("e-0", "e-").replace("e+0", "e+")
        return str(value)


def default(config: str, *fields: str) -> ConfigDefault:
    """`default=default(TRAIN, "size")`, with `show_default=True`: the config's default is
    the option's; `option(..., shown_default=default(TRAIN, "size"))`: the option's value
    stays None when not given (a TOML file or a resumed run may settle it) and its help
    shows the config's default."""
    return ConfigDefault(config, *fields)


class _Option(click.Option):
    """A click option whose help can show a default it does not apply (`shown_default`)."""

    def __init__(self, *args: Any, shown_default: ConfigDefault | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shown_default = shown_default

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        if self.shown_default is not None:
            extra["default"] = str(self.shown_default)
        return extra


def option(*decls: str, **attrs: Any) -> Callable[[F], F]:
    """click.option that also takes `shown_default=default(CONFIG, "field")` (a flag pair
    then needs `default=None` too: click's own default for flags is False)."""
    return click.option(*decls, cls=_Option, **attrs)


def one_line_errors(func: F) -> F:
    """Turn user errors into `error: ...` on stderr and exit status 2; Ctrl-C into 130."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing half-written was left; rerun to resume", err=True)
            sys.exit(130)
        except _user_errors() as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:  # disk full, read-only or missing folder, permissions
            click.echo(f"error: {os_error_line(exc)}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


_OS_ERROR_ADVICE = {
    errno.ENOSPC: "free some space (or choose another --out) and rerun; finished work is kept",
    errno.EDQUOT: "free some space (or choose another --out) and rerun; finished work is kept",
    errno.EROFS: "the filesystem is read-only: choose a writable --out",
    errno.EACCES: "check the permissions, or choose another --out",
    errno.EPERM: "check the permissions, or choose another --out",
    errno.ENOTDIR: "a path on the way is a file, not a folder: choose another --out",
    errno.EISDIR: "a folder stands where a file must be written: choose another path",
}


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which path, what to do."""
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    what = exc.strerror or str(exc)
    advice = _OS_ERROR_ADVICE.get(exc.errno or -1, "")
    line = f"{where}: {what}" if where else what
    return f"{line}; {advice}" if advice else line


# The commands in the order the data passes through them (--help lists them so); any
# other command follows, in the order it was added.
COMMAND_ORDER = ("sample-film", "sample-images", "extract-frames", "build-dataset", "audit",
                 "import-weights", "finetune-vgg", "train", "evaluate", "compare", "colorize",
                 "survey")


class _Group(click.Group):
    """A click group that lists its commands along the data's path, not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(self.commands, key=lambda name: rank.get(name, len(rank)))  # stable


@click.group(cls=_Group,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="filmcolor", prog_name="filmcolor")
def main() -> None:
    """Turn colour films into colorization training data, and train the colorizer on it."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")


# --- filmdata commands ---------------------------------------------------------------


def extract_options(func: F) -> F:
    """The options that settle an ExtractConfig, shared by extract-frames and build-dataset."""
    for option in reversed(_EXTRACT_OPTIONS):
        func = option(func)
    return func


_EXTRACT_OPTIONS = [
    click.option("--detector", type=str, default=default(SHOTS, "detector"), show_default=True,
                 help="Shot detector: film (flash-proof, finds dissolves and fades), content, "
                      "adaptive, histogram, hash, threshold."),
    click.option("--threshold", type=float, default=None,
                 help="Detector threshold, > 0 and at most 255 (1 for histogram and hash); "
                      "default: the detector's tuned value."),
    option("--min-shot", "min_shot_s", type=float, shown_default=default(SHOTS, "min_shot_s"),
           help="Minimum shot length in seconds (0-30)."),
    click.option("--crop-bars", type=click.Choice(["auto", "none"]),
                 default=default(PROFILE, "crop_bars"), show_default=True,
                 help="Find letterbox/pillarbox bars across the film and crop them."),
    click.option("--frames-per-shot", type=str,
                 default=default(SAMPLE, "min_frames", "max_frames"), show_default=True,
                 help="A number (4) or a range (3-5): longer shots get more frames."),
    click.option("--restore", type=click.Choice(["film", "none"]),
                 default=default(CORRECT, "restore"), show_default=True,
                 help="Undo the print's fade (levels and per-channel gamma, measured across "
                      "the film); a clean film is left as it is."),
    click.option("--wb", type=click.Choice(["shades-of-gray", "gray-world", "none"]),
                 default=default(CORRECT, "wb"), show_default=True,
                 help="Per-shot white balance on top (greys scenes dominated by one colour)."),
    click.option("--exposure", type=click.Choice(["percentile", "none"]),
                 default=default(CORRECT, "exposure"), show_default=True,
                 help="Per-shot exposure correction on top."),
    option("--dark-luma", type=float, shown_default=default(FILTERS, "dark_luma"),
           help="Reject frames whose mean luma (0-255, the film's own black level = 0) is "
                "below this."),
    click.option("--min-colorfulness", type=float, default=None,
                 help="Reject near-colourless frames (title cards) below this (try 6)."),
    click.option("--format", "image_format", type=click.Choice(["jpg", "png"]),
                 default=default(OUTPUT, "image_format"), show_default=True, help="Image format."),
    click.option("--quality", "jpeg_quality", type=click.IntRange(1, 100),
                 default=default(OUTPUT, "jpeg_quality"), show_default=True, help="JPEG quality."),
    click.option("--max-side", type=click.IntRange(16), default=None,
                 help="Resize so the longer side <= this many pixels."),
    click.option("--write-rejected", is_flag=True, help="Also write rejected frames' images."),
    click.option("--force", is_flag=True, help="Redo films whose manifest already exists."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
]


@main.command("extract-frames", short_help="Film -> sampled, corrected frames + manifest.")
@click.argument("films", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("data"),
              show_default=True, help="Dataset folder: images/ and manifests/ go under it.")
@extract_options
@click.option("--dedup", "dedup_distance", type=click.IntRange(0, 64), default=None,
              help="Reject near-duplicates within this perceptual-hash distance (try 6).")
@one_line_errors
def extract_frames(films: tuple[Path, ...], out: Path, **opts: Any) -> None:
    """Extract sampled, corrected frames and a Parquet manifest from each FILM.

    One decode per film, after a survey of its keyframes (bars, black level, fade): shots
    are detected on the fly, 3-5 frames are sampled per shot (sharpest in each part of the
    shot, never a flash), the print's fade is undone, dark frames are rejected. Rerunning
    skips films already done.
    """
    from filmdata.extract import extract_film

    cfg = _extract_config(opts)
    force, quiet = opts["force"], opts["quiet"]
    failed = 0
    for film in films:
        try:
            result = extract_film(film, out, cfg, force=force, progress=not quiet)
        except (*_user_errors(), OSError) as exc:  # one film's fault; the others go on
            line = os_error_line(exc) if isinstance(exc, OSError) else str(exc)
            click.echo(f"error: {line}", err=True)
            failed += 1
            continue
        _report_film(result, quiet)
        if result.retired_dataset:
            click.echo(f"warning: {result.retired_dataset} removed: it listed this film's "
                       "earlier frames; run build-dataset again to rebuild it", err=True)
    if failed:
        click.echo(f"{failed} of {len(films)} film(s) failed", err=True)
        sys.exit(1)


def _extract_config(opts: dict[str, Any]) -> Any:
    from filmdata.config import ExtractConfig, OutputConfig
    from filmdata.correct import CorrectionConfig
    from filmdata.filters import FilterConfig
    from filmdata.profile import ProfileConfig
    from filmdata.sampling import SampleConfig, parse_frames_per_shot
    from filmdata.shots import ShotConfig

    lo, hi = parse_frames_per_shot(opts["frames_per_shot"])
    shots = {"detector": opts["detector"], "threshold": opts["threshold"]}
    if opts["min_shot_s"] is not None:
        shots["min_shot_s"] = opts["min_shot_s"]
    filters: dict[str, Any] = {
        "min_colorfulness": opts["min_colorfulness"],
        "dedup_distance": opts.get("dedup_distance"),
    }
    if opts["dark_luma"] is not None:
        filters["dark_luma"] = opts["dark_luma"]
    return ExtractConfig(
        profile=ProfileConfig(crop_bars=opts["crop_bars"]),
        shots=ShotConfig(**shots),
        sample=SampleConfig(min_frames=lo, max_frames=hi),
        correct=CorrectionConfig(restore=opts["restore"], wb=opts["wb"],
                                 exposure=opts["exposure"]),
        filters=FilterConfig(**filters),
        output=OutputConfig(
            image_format=opts["image_format"], jpeg_quality=opts["jpeg_quality"],
            max_side=opts["max_side"], write_rejected=opts["write_rejected"],
        ),
    )


def _report_film(result: Any, quiet: bool) -> None:
    name = Path(result.source_path).name
    if result.status == "skipped":
        if not quiet:
            click.echo(f"{name}: already done ({result.manifest}); --force redoes it")
        return
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(result.rejected.items())) or "none"
    empty = sum(result.empty_shots.values())
    if not quiet:
        click.echo(
            f"{name}: {result.shots} shots ({empty} without a kept frame), "
            f"{result.sampled} frames sampled, {result.kept} kept, rejected: {rejected} "
            f"({result.seconds:.1f} s) -> {result.manifest}"
        )
    _warn_empty_shots(result)
    if result.decode_errors or result.truncated:
        click.echo(
            f"warning: {name}: damaged film: {result.decode_errors} packet(s) failed to decode"
            + (", stream ended early" if result.truncated else "")
            + "; extracted what could be decoded",
            err=True,
        )


def _warn_empty_shots(result: Any) -> None:
    """One warning line for a film that gave no frame, or has shots that gave none."""
    empty = sum(result.empty_shots.values())
    if result.status != "done" or (not empty and result.kept):
        return
    why = "; ".join(f"{v} shot{'s' * (v > 1)}: {k}"
                    for k, v in sorted(result.empty_shots.items())) or "no shot"
    lead = "no frame kept" if result.kept == 0 else "shots without a kept frame"
    click.echo(f"warning: {Path(result.source_path).name}: {lead}: {empty} of {result.shots} "
               f"shots ({why}); see the shots table's note column", err=True)


@main.command("build-dataset", short_help="Many films and image folders -> one dataset.")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("data"),
              show_default=True, help="Dataset folder.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Parallel films [default: the number of cores].")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="local: a process pool; ray: a Ray cluster.")
@click.option("--address", default=None,
              help="Ray cluster address (else RAY_ADDRESS, else a local Ray).")
@click.option("--split-by", type=click.Choice(["film", "shot"]), default=default(SPLIT, "split_by"),
              show_default=True, help="Unit of the train/val/test split (never frames).")
@click.option("--val-fraction", type=click.FloatRange(0, 1), default=default(SPLIT, "val_fraction"),
              show_default=True)
@click.option("--test-fraction", type=click.FloatRange(0, 1),
              default=default(SPLIT, "test_fraction"), show_default=True)
@click.option("--split-seed", type=int, default=default(SPLIT, "seed"), show_default=True,
              help="Seed of the split draw; keep it fixed as the dataset grows.")
@click.option("--dedup", "dedup_distance", type=click.IntRange(0, 64), default=None,
              help="Reject near-duplicates across shots and films within this pHash distance "
                   "(try 6).")
@click.option("--image-max-side", type=click.IntRange(16), default=None,
              help="Resize still images so the longer side <= this.")
@extract_options
@one_line_errors
def build_dataset(inputs: tuple[Path, ...], out: Path, **opts: Any) -> None:
    """Build one training set (frames, splits, manifest) from films and still images.

    INPUTS: film files, folders of films, CSV lists of films (columns path[,title,year,...])
    and folders of still images. Films go through the extract-frames pipeline, several at a
    time; still images are indexed into the same manifest schema. The per-film manifests
    are merged into OUT/manifests/dataset.parquet with train/val/test splits by film (or
    shot). A film that fails does not stop the others; the run then exits 1, and a rerun
    redoes only what failed or is missing.
    """
    from filmdata.build import BuildConfig
    from filmdata.build import build_dataset as build
    from filmdata.filters import FilterConfig
    from filmdata.images import ImageSetConfig
    from manifests.dataset import DedupConfig, SplitConfig

    # Near-duplicates are judged across the whole dataset, not film by film.
    extract_cfg = _extract_config({**opts, "dedup_distance": None})
    cfg = BuildConfig(
        extract=extract_cfg,
        images=ImageSetConfig(
            max_side=opts["image_max_side"], jpeg_quality=opts["jpeg_quality"],
            filters=FilterConfig(dark_luma=extract_cfg.filters.dark_luma,
                                 min_colorfulness=extract_cfg.filters.min_colorfulness),
        ),
        split=SplitConfig(split_by=opts["split_by"], val_fraction=opts["val_fraction"],
                          test_fraction=opts["test_fraction"], seed=opts["split_seed"]),
        dedup=DedupConfig(max_distance=opts["dedup_distance"]),
    )
    report = build(inputs, out, cfg, engine=opts["engine"], workers=opts["workers"],
                   address=opts["address"], force=opts["force"], progress=not opts["quiet"])
    if not opts["quiet"] and len(report.summary):
        click.echo(report.summary.to_string(index=False))
    for result in report.results:
        if result.empty_shots:  # films only: image sets have no shots to report
            _warn_empty_shots(result)
    if report.dataset is not None and not opts["quiet"]:
        click.echo(f"dataset: {report.dataset}")
    _warn_empty_splits(report.empty_splits, opts["split_by"])
    if report.failures:
        for failure in report.failures:
            error = failure.error or "failed"
            where = "" if error.startswith(failure.source_path) else f"{failure.source_path}: "
            click.echo(f"error: {where}{error}", err=True)
        click.echo(f"{len(report.failures)} of {len(report.results)} input(s) failed; "
                   "a rerun redoes only those", err=True)
        sys.exit(1)


def _warn_empty_splits(splits: tuple[str, ...], split_by: str) -> None:
    """One warning line when a split that should have frames has none (few films: whole
    films fall on one side); training refuses an empty train or val split."""
    if not splits:
        return
    names = " and ".join(splits)
    advice = ("add films, split by shot (--split-by shot) or change --val-fraction / "
              "--test-fraction" if split_by == "film"
              else "add films or images, or change --val-fraction / --test-fraction")
    click.echo(f"warning: the {names} split{'s are' if len(splits) > 1 else ' is'} empty "
               f"(no kept frame): {advice}", err=True)


@main.command("audit", short_help="Contact sheets and tables of a dataset.")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where the HTML pages go [default: SOURCE's dataset folder/audit].")
@one_line_errors
def audit_command(source: Path, out: Path | None) -> None:
    """Summarize a dataset folder or manifest and write HTML contact sheets.

    Per film: the sampled frames shot by shot (rejected ones marked with their reason),
    before/after correction for the shots corrected most, and the mean-luma histogram
    with the dark threshold drawn. Open OUT/index.html in a browser.
    """
    from filmdata.audit import audit

    report = audit(source, out)
    click.echo(report.summary.to_string(index=False))
    click.echo(f"contact sheets: {report.pages[0]}")


@main.command("sample-images", short_help="scikit-image's photos into a folder.")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--grey", is_flag=True, help="Write them in black and white (to colorize).")
@one_line_errors
def sample_images(folder: Path, grey: bool) -> None:
    """Write scikit-image's colour photographs into FOLDER: a small still-image set.

    The still images ("data B") to try build-dataset and train on."""
    import cv2

    import filmdata.errors as filmdata_errors
    from filmdata.synthetic import PHOTOS, photo
    from manifests import atomic_path

    _make_folder(folder)
    for name in PHOTOS:
        image = photo(name)  # (H, W, 3) uint8 RGB
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if grey else image[..., ::-1]
        ok, data = cv2.imencode(".png", image)
        if not ok:
            raise filmdata_errors.OutputError(f"could not encode {name}.png")
        with atomic_path(folder / f"{name}.png") as tmp:  # whole files only
            tmp.write_bytes(data.tobytes())
    click.echo(f"{folder}: {len(PHOTOS)} photographs")


def _make_folder(folder: Path) -> None:
    """Create an output folder of the sample commands, or fail with one clear line."""
    import filmdata.errors as filmdata_errors

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if folder.exists() and not folder.is_dir():
            raise filmdata_errors.OutputError(
                f"{folder} is a file, not a folder; choose a folder") from exc
        raise filmdata_errors.OutputError(
            f"cannot create the folder {folder}: {exc.strerror or exc}; choose another path"
        ) from exc


@main.command("sample-film", short_help="A synthetic film from real photos.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seconds", type=click.FloatRange(5, 3600), default=60, show_default=True,
              help="Approximate length.")
@click.option("--size", default="640x360", show_default=True, help="WIDTHxHEIGHT, both even.")
@click.option("--fps", type=float, default=24.0, show_default=True, help="Frame rate, 1-240.")
@click.option("--seed", type=int, default=0, show_default=True, help="0 or more.")
@click.option("--audio/--no-audio", default=True, show_default=True)
@click.option("--grey", is_flag=True, help="Black and white (gray pixel format): to colorize.")
@one_line_errors
def sample_film(
    path: Path, seconds: float, size: str, fps: float, seed: int, audio: bool, grey: bool
) -> None:
    """Make a synthetic film at PATH from real photographs, with known shots.

    Pans and zooms, grain, flicker, a colour cast, dark night shots, a grey title card,
    flashes, cuts, dissolves and fades: material to try extract-frames on. The ground
    truth (shots and transitions) is written beside it as PATH.truth.json. PATH ends in
    .mp4, .mkv, .avi or .mpg.
    """
    import dataclasses
    import json
    import os

    from filmdata.synthetic import make_film, standard_plan
    from manifests import atomic_path

    width, height = _film_geometry(path, size, fps, seed)
    _make_folder(path.parent)
    plan = standard_plan(seed=seed, n_shots=max(2, round(seconds / 3.0)), fps=fps)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")  # the film appears whole
    try:
        truth = make_film(partial, plan, size=(width, height), fps=fps, seed=seed,
                          audio=audio, pix_fmt="gray" if grey else "yuv420p")
        facts = {k: v for k, v in dataclasses.asdict(truth).items() if k != "pts_s"}
        facts["path"] = str(path)
        with atomic_path(path.with_name(path.name + ".truth.json")) as tmp:
            tmp.write_text(json.dumps(facts, default=str, indent=1))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"{path}: {truth.n_frames} frames, {len(truth.shots)} shots")


def _film_geometry(path: Path, size: str, fps: float, seed: int) -> tuple[int, int]:
    """Check sample-film's PATH, --fps and --seed; parse --size into (width, height)."""
    import filmdata.errors as filmdata_errors

    if path.suffix.lower() not in (".mp4", ".mkv", ".avi", ".mpg"):
        raise filmdata_errors.ConfigError(
            f"{path}: give a file name ending in .mp4, .mkv, .avi or .mpg"
        )
    if not 1 <= fps <= 240:
        raise filmdata_errors.ConfigError(
            f"--fps {fps:g}: give a frame rate from 1 to 240, e.g. 24"
        )
    if seed < 0:
        raise filmdata_errors.ConfigError(f"--seed {seed}: give 0 or more")

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise filmdata_errors.ConfigError(
            f"--size {size!r}: give WIDTHxHEIGHT, e.g. 640x360"
        ) from None
    if width % 2 or height % 2 or min(width, height) < 32:
        raise filmdata_errors.ConfigError(
            f"--size {size!r}: both sides must be even and at least 32"
        )
    if path.is_dir():
        raise filmdata_errors.ConfigError(
            f"{path} is a folder: give a file name, e.g. {path / 'sample.mp4'}"
        )
    return width, height


# --- colorizer commands --------------------------------------------------------------


@main.command("finetune-vgg", short_help="VGG-16 fine-tuned on grey images.")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="distil: a dataset folder or frames manifest (its kept frames); classify: "
                   "an image folder with one subfolder per class (ImageNet's layout).")
@click.option("--method", type=click.Choice(["distil", "classify"]),
              default=default(FINETUNE, "method"), show_default=True,
              help="distil: the grey VGG learns the colour VGG's features (no labels); "
                   "classify: it learns to classify grey images (Larsson et al., the paper).")
@click.option("--vgg-weights", type=click.Path(path_type=Path), required=True,
              help="torchvision's ImageNet VGG-16 file (vgg16-397923af.pth): teacher and start.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Grey VGG file to write (also the run's checkpoint); give it to the chen "
                   "model as --vgg-weights. Required unless --resume.")
@click.option("--steps", type=click.IntRange(1), default=default(FINETUNE, "steps"),
              show_default=True, help="Optimiser steps in all.")
@click.option("--batch-size", type=click.IntRange(1), default=default(FINETUNE, "batch_size"),
              show_default=True)
@click.option("--size", type=click.IntRange(8), default=default(FINETUNE, "size"),
              show_default=True, help="Side of the square training crops, pixels (multiple of 4).")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=default(FINETUNE, "lr"),
              show_default=True,
              help="Learning rate (distil: Adam; classify: SGD with momentum 0.9, a new "
                   "class head 10x).")
@click.option("--workers", type=click.IntRange(0), default=default(FINETUNE, "workers"),
              show_default=True, help="Image-loading worker processes (0: in this process).")
@click.option("--device", type=str, default=default(FINETUNE, "device"), show_default=True,
              help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=default(FINETUNE, "seed"), show_default=True,
              help="Image order and crops.")
@click.option("--save-every", type=click.IntRange(1), default=default(FINETUNE, "save_every"),
              show_default=True, help="Steps between checkpoints (also written at the end).")
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Continue the run saved in this file (its --out) where it stopped; "
                   "--steps, --workers, --device, --save-every may change.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@one_line_errors
def finetune_vgg(data: Path, out: Path | None, resume: Path | None, quiet: bool,
                 **opts: Any) -> None:
    """Fine-tune VGG-16 on grey images, the paper's step before fusing VGG into chen.

    distil (default, no labels): a grey-input copy of VGG-16 (conv1_1 .. conv3_3) learns to
    reproduce the ImageNet VGG-16's conv1_2, conv2_2 and conv3_3 features of the colour
    frames of a dataset. classify: VGG-16 learns to classify the grey images of a
    class-per-subfolder tree, as Larsson et al. did and the paper follows. Checkpoints
    every --save-every steps into --out; --resume OUT continues from there.
    """
    from colorizer.vgg_finetune import finetune_vgg, kept_image_paths, settle_finetune_config

    cfg = settle_finetune_config(out, resume, quiet=quiet, **opts)
    if cfg.method == "classify":
        from colorizer.vgg_classify import finetune_classify, read_class_folder

        result = finetune_classify(cfg, read_class_folder(data))
    else:
        from manifests import load_frames

        frames, root = load_frames(data)
        result = finetune_vgg(cfg, kept_image_paths(frames, root))
    if not quiet:
        last = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
        click.echo(f"{result.out}: step {result.step} of {cfg.steps}{last}")


# --- train commands ------------------------------------------------------------------


@main.command("train", short_help="Train or fine-tune the colorizer.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset folder or manifest file (kept frames; split train trains, val "
                   "validates). Required unless --resume.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder: config.json, last.pt, metrics.jsonl, val/ grids.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="TOML file of training options (keys as the options, or a "
                                 "[train] table); the command line overrides it.")
@option("--arch", type=click.Choice(["chen", "eccv16"]), shown_default=default(TRAIN, "arch"),
        help="chen: the paper's multi-scale, VGG-fused net; eccv16: Zhang et al.'s.")
@option("--steps", type=click.IntRange(1), shown_default=default(TRAIN, "steps"),
        help="Optimizer steps in all; LR drops at 4/9 and 5/6 of them.")
@option("--batch-size", type=click.IntRange(1), shown_default=default(TRAIN, "batch_size"),
        help="Images per step and process.")
@option("--size", type=click.IntRange(16), shown_default=default(TRAIN, "size"),
        help="Side of the random square crops, a multiple of 8.")
@option("--resize", type=click.IntRange(0), shown_default=default(TRAIN, "resize"),
        help="Scale each image's shorter side to this before cropping: the working size "
             "colorize and evaluate then use; 0 keeps the native size.")
@option("--first-layer-channels", type=click.IntRange(1),
        shown_default=default(TRAIN, "first_layer_channels"),
        help="chen: channels of each of the 3x3 and 5x5 first-layer convs.")
@option("--lr", type=click.FloatRange(0, min_open=True), shown_default=default(TRAIN, "lr"),
        help="Adam learning rate (betas and weight decay: --config sets them).")
@option("--workers", type=click.IntRange(0), shown_default=default(TRAIN, "workers"),
        help="Image-loading worker processes (0: in the training process).")
@option("--seed", type=int, shown_default=default(TRAIN, "seed"),
        help="Initialisation, image order, crops and flips.")
@option("--device", type=str, shown_default=default(TRAIN, "device"),
        help="auto, cpu, cuda or cuda:N.")
@option("--save-every", type=click.IntRange(1), shown_default=default(TRAIN, "save_every"),
        help="Steps between checkpoints (RUN/last.pt, also written at the end).")
@option("--val-every", type=click.IntRange(0), shown_default=default(TRAIN, "val_every"),
        help="Steps between validations (loss, PSNR, AuC, colorfulness, PNG grid); 0: never.")
@click.option("--init", type=click.Path(path_type=Path), default=None,
              help="Start from the weights of RUN/last.pt (or RUN) with a fresh optimizer: "
                   "fine-tuning, e.g. on film frames after a base run on images.")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Continue the run in this folder exactly where it stopped (its config; "
                   "--data, --out, --steps, --workers, --device, --save-every, --val-every, "
                   "--compile may change).")
@click.option("--vgg-weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="chen: VGG-16 weights, torchvision's vgg16-397923af.pth or a grey VGG from "
                   "finetune-vgg.")
@click.option("--init-zhang", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Zhang et al.'s colorization_release_v2-9b330a0b.pth: the layers it shares.")
@click.option("--freeze-vgg/--train-vgg", "freeze_vgg", default=None,
              help="chen: keep the fused VGG frozen (default) or train it with the rest.")
@option("--compile/--no-compile", "compile_model", default=None,
        shown_default=default(TRAIN, "compile"), help="torch.compile the model.")
@option("--rebalance/--no-rebalance", default=None, shown_default=default(TRAIN, "rebalance"),
        help="Class rebalancing with a prior from the training images (off in the paper).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or messages.")
@one_line_errors
def train_command(config_file: Path | None, resume: Path | None, freeze_vgg: bool | None,
                  compile_model: bool | None, quiet: bool, **opts: Any) -> None:
    """Train the colorizer on a dataset made by build-dataset.

    Base run on images, then fine-tuning on film frames:

    \b
      python cli.py train --data images_data/ --out runs/base
      python cli.py train --data film_data/ --out runs/film --init runs/base/last.pt

    Options not given come from --config, else (--resume) from the run, else the defaults
    shown. Under `torchrun --nproc_per_node N cli.py train ...` it trains with DDP (batch
    size per process). On CUDA: bf16 autocast and channels_last.
    """
    import os

    from colorizer.train import settle_train_config, train

    overrides = {**opts, "vgg_trainable": None if freeze_vgg is None else not freeze_vgg,
                 "compile": compile_model}
    cfg = settle_train_config(overrides, config_file, resume)
    result = train(cfg, resume=resume is not None, quiet=quiet)
    if not quiet and int(os.environ.get("RANK", "0")) == 0:
        last = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
        val = f", val AuC {result.val['auc']:.4f}" if "auc" in result.val else ""
        click.echo(f"{result.out / 'last.pt'}: step {result.step} of {cfg.steps}{last}{val}")


# --- evaluate and colorize commands ----------------------------------------------------


@main.command("evaluate", short_help="Score a checkpoint against baselines.")
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True,
              help="Checkpoint to evaluate (RUN/last.pt of a training run, or Zhang et al.'s "
                   "released weights).")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Dataset folder or frames manifest.")
@click.option("--split", default=default(EVALUATE, "split"), show_default=True,
              type=click.Choice(["train", "val", "test", "all"]),
              help="Kept frames of this split (all: every kept frame).")
@click.option("--temperature", "temperatures", multiple=True,
              help="Annealed-mean temperature; repeat it (or give 0.2,0.38,0.5) to compare "
                   "several [default: the checkpoint's own: 0.5 trained, 1.0 Zhang's release].")
@click.option("--size", type=click.IntRange(16), default=default(EVALUATE, "size"),
              show_default=True, help="Side of the square centre crops (multiple of 8).")
@click.option("--resize", type=click.IntRange(0), default=None,
              help="Scale the shorter side to this before the crop [default: the checkpoint's "
                   "working size, the scale it was trained at]; 0: to --size.")
@click.option("--batch-size", type=click.IntRange(1), default=default(EVALUATE, "batch_size"),
              show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Evaluate at most this many images, evenly spread over the split.")
@click.option("--arch", type=click.Choice(["chen", "eccv16"]), default=None,
              help="Refuse a checkpoint of another architecture.")
@click.option("--device", type=str, default=default(EVALUATE, "device"), show_default=True,
              help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@one_line_errors
def evaluate_command(checkpoint: Path, data: Path, temperatures: tuple[str, ...],
                     as_json: bool, **opts: Any) -> None:
    """Score a checkpoint on a dataset split, beside grey and mean-colour baselines.

    Baselines: grey (ab = 0) and the dataset's mean colour (mean ab of the train frames).
    Columns: cross-entropy (model only), PSNR (dB, sRGB), SSIM (sRGB), AuC of the ab error
    over thresholds 0..150, colorfulness (Hasler-Suesstrunk); a ground-truth row gives the
    originals' colorfulness.
    """
    import json

    from colorizer.evaluate import EvalConfig, evaluate

    temps = _temperatures(temperatures)
    report = evaluate(EvalConfig(checkpoint=checkpoint, data=data, temperatures=temps, **opts))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
    else:
        click.echo(report.to_string())


def _temperatures(values: tuple[Any, ...]) -> tuple[float, ...]:
    import colorizer.errors as colorizer_errors

    out: list[float] = []
    for value in values:
        for part in str(value).split(","):
            try:
                out.append(float(part))
            except ValueError:
                raise colorizer_errors.ConfigError(
                    f"--temperature {value!r}: give numbers, e.g. 0.38") from None
    return tuple(out)


@main.command("colorize", short_help="Colorize images and films (keyframes + flow).")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True,
              help="Trained checkpoint (RUN/last.pt), or Zhang et al.'s released weights.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("colorized"),
              show_default=True, help="Output folder: <stem>_color.png / <stem>_color.mp4.")
@click.option("--temperature", type=click.FloatRange(0), default=None,
              help="Annealed mean: lower is more saturated (0: the most likely colour), "
                   "1 the mean (greyer) [default: the checkpoint's own: 0.5 trained, 1.0 "
                   "Zhang's release].")
@click.option("--work-size", type=click.IntRange(16), default=None,
              help="Shorter side the network sees, pixels (never upscaled); colours are "
                   "upsampled to the full resolution [default: the scale the checkpoint was "
                   "trained at, 256].")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True,
              help="Frames per network batch.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--arch", type=click.Choice(["chen", "eccv16"]), default=None,
              help="Refuse a checkpoint of another architecture.")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png",
              show_default=True, help="Format of colorized images.")
@click.option("--quality", "jpeg_quality", type=click.IntRange(1, 100), default=95,
              show_default=True, help="JPEG quality.")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True,
              help="Film quality (libx264 CRF): lower is better and bigger.")
@click.option("--preset", default="veryfast", show_default=True,
              type=click.Choice(["ultrafast", "superfast", "veryfast", "faster", "fast",
                                 "medium", "slow", "slower", "veryslow"]),
              help="libx264 preset: slower gives smaller files at the same quality.")
@click.option("--start", "start_s", type=click.FloatRange(0), default=None,
              help="Films: colorize from this time on (seconds).")
@click.option("--end", "end_s", type=click.FloatRange(0, min_open=True), default=None,
              help="Films: stop at this time (seconds).")
@click.option("--keyframes", default="auto", show_default=True,
              help="Films: run the network on every N-th frame of a shot (and its first and "
                   "last) and carry the colour to the frames between by optical flow; 'off': "
                   "every frame; 'auto': the measured default (4).")
@click.option("--smooth", "smooth_s", type=click.FloatRange(0), default=0.3, show_default=True,
              help="Films: smooth colours over time within each shot, time constant in "
                   "seconds: less flicker; a colour change lags about this long. 0: off.")
@click.option("--smooth-method", type=click.Choice(["flow", "ema"]), default="flow",
              show_default=True,
              help="Films, smoothing: 'flow' follows motion (optical flow, trusted pixels "
                   "only); 'ema' is the plain average, whose colours trail moving objects.")
@click.option("--cut-threshold", type=click.FloatRange(0, 255), default=None,
              help="Films: score at which the shot detector (as extract-frames) proposes a "
                   "cut, 0-255; lower finds more cuts [default: its tuned threshold].")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Inputs colorized at once, each in its own process (one per GPU on a "
                   "GPU machine).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="local: a process pool here; ray: a Ray cluster.")
@click.option("--address", default=None, help="Ray cluster address (else RAY_ADDRESS).")
@click.option("--force", is_flag=True,
              help="Redo inputs that --out already holds (colorized.jsonl) with these settings.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-file lines.")
@one_line_errors
def colorize_command(inputs: tuple[Path, ...], quiet: bool, workers: int, engine: str,
                     address: str | None, force: bool, **opts: Any) -> None:
    """Colorize INPUTS: images, films, or folders of them, into --out.

    Each output keeps its input's full-resolution lightness (L); the network predicts the
    colour (ab) at --work-size and it is upsampled. Films keep their frame rate, timing
    and audio (copied unchanged) and are re-encoded with H.264. A bad input gives one
    error line and the others go on; the exit status is then 1. A rerun skips the inputs
    --out already holds with the same settings (OUT/colorized.jsonl).
    """
    from colorizer.colorize import RunOptions, colorize_paths
    from colorizer.colorize_config import ColorizeConfig

    cfg = ColorizeConfig(quiet=quiet, **opts)
    run = RunOptions(engine=engine, workers=workers, address=address, force=force)
    done = failed = 0
    for result in colorize_paths(inputs, cfg, run=run):
        if result.skipped:
            done += 1
            if not quiet:
                click.echo(f"{result.source}: already done ({result.output}); --force redoes it")
            continue
        if result.error is not None:
            error = result.error
            if isinstance(result.cause, OSError):  # its output could not be written
                error = f"{result.source}: {os_error_line(result.cause)}"
            click.echo(f"error: {error}", err=True)
            failed += 1
            continue
        done += 1
        if not quiet:
            rate = f", {result.frames / result.seconds:.1f} frames/s" if result.kind == "film" \
                and result.seconds > 0 else ""
            click.echo(f"{result.source} -> {result.output} ({result.seconds:.1f} s{rate})")
        for warning in result.warnings:  # damaged film: written, but not all of it
            click.echo(f"warning: {result.source.name}: {warning}", err=True)
    if failed:
        click.echo(f"{failed} of {done + failed} input(s) failed", err=True)
        sys.exit(1)


@main.command("import-weights", short_help="Zhang et al.'s released weights -> checkpoint.")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Checkpoint to write (give it to colorize, evaluate, compare, train --init).")
@one_line_errors
def import_weights(source: Path, out: Path) -> None:
    """Turn Zhang et al.'s released ECCV16 weights (SOURCE, e.g.
    colorization_release_v2-9b330a0b.pth) into a filmcolor checkpoint.

    The file's bins (model_out) are checked against the package's 313 bins, in order and
    scale; the checkpoint keeps where it came from (path, SHA-256) and the temperature
    that reproduces Zhang et al.'s own outputs (T = 1). colorize, evaluate and compare also
    take the released file as it is.
    """
    from colorizer.checkpoint import import_released, read_checkpoint

    written = import_released(source, out)
    payload = read_checkpoint(written)
    click.echo(f"{source} -> {written} (eccv16, sha256 {payload['provenance']['sha256'][:12]}, "
               f"T = {payload['decode']['temperature']:g})")


@main.command("compare", short_help="Models side by side: HTML page, sheets, CSV.")
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--checkpoint", "checkpoints", multiple=True, required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="A model to compare (repeat: eccv16 vs chen, before vs after fine-tuning, "
                   "Zhang's released file).")
@click.option("--label", "labels", multiple=True,
              help="A name per --checkpoint, in order [default: the file names].")
@click.option("--temperature", "temperatures", multiple=True, type=float,
              help="One for all models or one per --checkpoint [default: each one's own].")
@click.option("--work-size", type=click.IntRange(16), default=None,
              help="Shorter side every network sees, pixels [default: each one's own, the "
                   "scale it was trained at].")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset folder or frames manifest (instead of IMAGES).")
@click.option("--split", default=default(COMPARE, "split"), show_default=True,
              type=click.Choice(["train", "val", "test", "all"]), help="With --data.")
@click.option("--limit", type=click.IntRange(1), default=default(COMPARE, "limit"),
              show_default=True, help="At most this many images, evenly spread.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("compare"),
              show_default=True, help="Folder for index.html, sheets/, compare.csv.")
@click.option("--device", type=str, default=default(COMPARE, "device"), show_default=True,
              help="auto, cpu, cuda or cuda:N.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@one_line_errors
def compare_command(images: tuple[Path, ...], data: Path | None, checkpoints: tuple[Path, ...],
                    labels: tuple[str, ...], temperatures: tuple[float, ...], **opts: Any) -> None:
    """Put models side by side on the same images: an HTML page, PNG sheets, a CSV.

    Per image the grey input, each model's colorization and the ground truth, with PSNR,
    AuC, colorfulness and CIEDE2000 (the paper's figures 5 to 7).

    Inputs: a dataset (--data, its --split) or IMAGES (files or folders; colour images are
    their own ground truth, black-and-white ones show grey and each model). Writes
    OUT/index.html (sortable by the difference between two models), OUT/sheets/*.png and
    OUT/compare.csv.
    """
    import colorizer.errors as colorizer_errors
    from colorizer.compare import CompareConfig, compare

    if (data is None) == (not images):
        raise colorizer_errors.ConfigError("give either --data DATASET or IMAGES to compare on")
    inputs = (data,) if data is not None else images
    result = compare(CompareConfig(checkpoints=checkpoints, inputs=inputs, labels=labels,
                                   temperatures=temperatures, **opts))
    if not opts["quiet"]:
        click.echo(result.means.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    click.echo(f"{result.images} image(s), {len(checkpoints)} model(s) -> {result.page}")


# The survey's commands (make, serve, report) get the same one-line errors as the rest.
from survey.cli import survey as _survey  # noqa: E402

for _command in _survey.commands.values():
    _command.callback = one_line_errors(_command.callback)
main.add_command(_survey)


if __name__ == "__main__":
    main()
