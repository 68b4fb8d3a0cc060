"""filmcolor command line: a thin click layer over the `filmdata` and `colorizer` libraries.

Each command parses options, builds a frozen config, and calls one library function.
User mistakes become one line on stderr and a non-zero exit, never a traceback.
torch is imported only inside the commands that need it, so `extract-frames` starts fast.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exception classes that mean 'the user gave something wrong', not a bug."""
    from filmdata.errors import FilmDataError
    from manifests.errors import ManifestError

    errors: list[type[BaseException]] = [FilmDataError, ManifestError]
    if "colorizer" in sys.modules:  # only when a colorizer command imported it
        from colorizer.errors import ColorizerError

        errors.append(ColorizerError)
    return tuple(errors)


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

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option("0.1.0", prog_name="filmcolor")
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
    click.option("--detector", default="film", show_default=True,
                 help="Shot detector: film (flash-proof, finds dissolves and fades), content, "
                      "adaptive, histogram, hash, threshold."),
    click.option("--threshold", type=float, default=None,
                 help="Detector threshold; default: the detector's tuned value."),
    click.option("--min-shot", "min_shot_s", type=float, default=None,
                 help="Minimum shot length in seconds."),
    click.option("--frames-per-shot", default="3-5", show_default=True,
                 help="A number (4) or a range (3-5): longer shots get more frames."),
    click.option("--wb", type=click.Choice(["shades-of-gray", "gray-world", "none"]),
                 default="shades-of-gray", show_default=True, help="Per-shot white balance."),
    click.option("--exposure", type=click.Choice(["percentile", "none"]), default="percentile",
                 show_default=True, help="Per-shot exposure correction."),
    click.option("--dark-luma", type=float, default=None,
                 help="Reject frames whose mean luma (0-255) is below this [default: 25]."),
    click.option("--min-colorfulness", type=float, default=None,
                 help="Reject near-colourless frames (title cards) below this (try 6)."),
    click.option("--format", "image_format", type=click.Choice(["jpg", "png"]), default="jpg",
                 show_default=True, help="Image format."),
    click.option("--quality", "jpeg_quality", type=click.IntRange(1, 100), default=95,
                 show_default=True, help="JPEG quality."),
    click.option("--max-side", type=click.IntRange(16), default=None,
                 help="Resize so the longer side <= this many pixels."),
    click.option("--write-rejected", is_flag=True, help="Also write rejected frames' images."),
    click.option("--force", is_flag=True, help="Redo films whose manifest already exists."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
]


@main.command("extract-frames")
@click.argument("films", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("data"),
              show_default=True, help="Dataset folder: images/ and manifests/ go under it.")
@extract_options
@click.option("--dedup", "dedup_distance", type=click.IntRange(0, 64), default=None,
              help="Reject near-duplicates within this perceptual-hash distance (try 6).")
@one_line_errors
def extract_frames(films: tuple[Path, ...], out: Path, **opts: Any) -> None:
    """Extract sampled, corrected frames and a Parquet manifest from each FILM.

    One decode per film: shots are detected on the fly, 3-5 frames are sampled per shot
    (sharpest in each part of the shot), white balance and exposure are corrected per
    shot, dark frames are rejected. Rerunning skips films already done.
    """
    from filmdata.extract import extract_film

    cfg = _extract_config(opts)
    force, quiet = opts["force"], opts["quiet"]
    failed = 0
    for film in films:
        try:
            result = extract_film(film, out, cfg, force=force, progress=not quiet)
        except _user_errors() as exc:
            click.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        _report_film(result, quiet)
    if failed:
        click.echo(f"{failed} of {len(films)} film(s) failed", err=True)
        sys.exit(1)


def _extract_config(opts: dict[str, Any]) -> Any:
    from filmdata.config import ExtractConfig, OutputConfig
    from filmdata.correct import CorrectionConfig
    from filmdata.filters import FilterConfig
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
        shots=ShotConfig(**shots),
        sample=SampleConfig(min_frames=lo, max_frames=hi),
        correct=CorrectionConfig(wb=opts["wb"], exposure=opts["exposure"]),
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
    if not quiet:
        click.echo(
            f"{name}: {result.shots} shots, {result.candidates} frames sampled, "
            f"{result.kept} kept, rejected: {rejected} ({result.seconds:.1f} s) -> "
            f"{result.manifest}"
        )
    if result.decode_errors or result.truncated:
        click.echo(
            f"warning: {name}: damaged film: {result.decode_errors} packet(s) failed to decode"
            + (", stream ended early" if result.truncated else "")
            + "; extracted what could be decoded",
            err=True,
        )


@main.command("build-dataset")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("data"),
              show_default=True, help="Dataset folder.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Parallel films [default: the number of cores].")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="local: a process pool; ray: a Ray cluster.")
@click.option("--address", default=None,
              help="Ray cluster address (else RAY_ADDRESS, else a local Ray).")
@click.option("--split-by", type=click.Choice(["film", "shot"]), default="film",
              show_default=True, help="Unit of the train/val/test split (never frames).")
@click.option("--val-fraction", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--test-fraction", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--split-seed", type=int, default=0, show_default=True,
              help="Seed of the split draw; keep it fixed as the dataset grows.")
@click.option("--dedup", "dedup_distance", type=click.IntRange(0, 64), default=None,
              help="Reject near-duplicates across shots and films within this pHash distance "
                   "(try 6).")
@click.option("--image-max-side", type=click.IntRange(16), default=None,
              help="Resize still images so the longer side <= this.")
@extract_options
@one_line_errors
def build_dataset(inputs: tuple[Path, ...], out: Path, **opts: Any) -> None:
    """Build one training set from INPUTS: film files, folders of films, CSV lists of films
    (columns path[,title,year,...]) and folders of still images.

    Films go through the extract-frames pipeline, several at a time; still images are
    indexed into the same manifest schema. The per-film manifests are merged into
    OUT/manifests/dataset.parquet with train/val/test splits by film (or shot). A film
    that fails does not stop the others; the run then exits 1, and a rerun redoes only
    what failed or is missing.
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
    if report.dataset is not None and not opts["quiet"]:
        click.echo(f"dataset: {report.dataset}")
    if report.failures:
        click.echo(f"{len(report.failures)} of {len(report.results)} input(s) failed:", err=True)
        for failure in report.failures:
            click.echo(f"  {failure.source_path}: {failure.error}", err=True)
        sys.exit(1)


@main.command("audit")
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


@main.command("sample-film")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seconds", type=click.FloatRange(5, 3600), default=60, show_default=True,
              help="Approximate length.")
@click.option("--size", default="640x360", show_default=True, help="WIDTHxHEIGHT, both even.")
@click.option("--fps", type=float, default=24.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--audio/--no-audio", default=True, show_default=True)
@one_line_errors
def sample_film(path: Path, seconds: float, size: str, fps: float, seed: int, audio: bool) -> None:
    """Make a synthetic film at PATH from real photographs, with known shots.

    Pans and zooms, grain, flicker, a colour cast, dark night shots, a grey title card,
    flashes, cuts, dissolves and fades: material to try extract-frames on. The ground
    truth (shots and transitions) is written beside it as PATH.truth.json.
    """
    import dataclasses
    import json

    from filmdata.errors import ConfigError
    from filmdata.synthetic import make_film, standard_plan

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {size!r}: give WIDTHxHEIGHT, e.g. 640x360") from None
    if width % 2 or height % 2 or min(width, height) < 32:
        raise ConfigError(f"--size {size!r}: both sides must be even and at least 32")
    path.parent.mkdir(parents=True, exist_ok=True)
    plan = standard_plan(seed=seed, n_shots=max(2, round(seconds / 3.0)), fps=fps)
    truth = make_film(path, plan, size=(width, height), fps=fps, seed=seed, audio=audio)
    facts = {k: v for k, v in dataclasses.asdict(truth).items() if k != "pts_s"}
    path.with_name(path.name + ".truth.json").write_text(json.dumps(facts, default=str, indent=1))
    click.echo(f"{path}: {truth.n_frames} frames, {len(truth.shots)} shots")


# --- colorizer commands --------------------------------------------------------------


@main.command("finetune-vgg")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Dataset folder or frames manifest; its kept frames are used.")
@click.option("--vgg-weights", type=click.Path(path_type=Path), required=True,
              help="torchvision's ImageNet VGG-16 file (vgg16-397923af.pth): teacher and start.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Grey VGG file to write (also the checkpoint --resume continues); give it "
                   "to the chen model as --vgg-weights.")
@click.option("--steps", type=click.IntRange(1), default=2000, show_default=True,
              help="Optimiser steps in all.")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--size", type=click.IntRange(8), default=224, show_default=True,
              help="Side of the square training crops, pixels (multiple of 4).")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=1e-4, show_default=True,
              help="Adam learning rate.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True, help="Image order and crops.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--resume", is_flag=True, help="Continue the run saved in --out.")
@one_line_errors
def finetune_vgg(data: Path, vgg_weights: Path, out: Path, quiet: bool, **opts: Any) -> None:
    """Fine-tune VGG-16 on the grey frames of a dataset (the paper's step before fusing VGG).

    A grey-input copy of VGG-16 (conv1_1 .. conv3_3) learns to reproduce the ImageNet
    VGG-16's conv1_2, conv2_2 and conv3_3 features of the colour frames. Checkpoints every
    200 steps into --out; --resume continues from there.
    """
    from colorizer.vgg_finetune import VggFinetuneConfig, finetune_vgg, kept_image_paths
    from manifests import load_frames

    cfg = VggFinetuneConfig(vgg_weights=vgg_weights, out=out, quiet=quiet, **opts)
    frames, root = load_frames(data)
    result = finetune_vgg(cfg, kept_image_paths(frames, root))
    if not quiet:
        last = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
        click.echo(f"{result.out}: step {result.step} of {cfg.steps}{last}")


# --- train commands ------------------------------------------------------------------


# --- evaluate and colorize commands ----------------------------------------------------


if __name__ == "__main__":
    main()
