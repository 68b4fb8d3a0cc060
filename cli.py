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


@main.command("extract-frames")
@click.argument("films", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("data"),
              show_default=True, help="Dataset folder: images/ and manifests/ go under it.")
@click.option("--detector", default="film", show_default=True,
              help="Shot detector: film (flash-proof, finds dissolves and fades), content, "
                   "adaptive, histogram, hash, threshold.")
@click.option("--threshold", type=float, default=None,
              help="Detector threshold; default: the detector's tuned value.")
@click.option("--min-shot", "min_shot_s", type=float, default=None,
              help="Minimum shot length in seconds.")
@click.option("--frames-per-shot", default="3-5", show_default=True,
              help="A number (4) or a range (3-5): longer shots get more frames.")
@click.option("--wb", type=click.Choice(["shades-of-gray", "gray-world", "none"]),
              default="shades-of-gray", show_default=True, help="Per-shot white balance.")
@click.option("--exposure", type=click.Choice(["percentile", "none"]), default="percentile",
              show_default=True, help="Per-shot exposure correction.")
@click.option("--dark-luma", type=float, default=None,
              help="Reject frames whose mean luma (0-255) is below this. Default: tuned value.")
@click.option("--min-colorfulness", type=float, default=None,
              help="Reject near-colourless frames (title cards) below this colourfulness.")
@click.option("--dedup", "dedup_distance", type=int, default=None,
              help="Reject near-duplicates within this perceptual-hash distance (0-64).")
@click.option("--format", "image_format", type=click.Choice(["jpg", "png"]), default="jpg",
              show_default=True, help="Image format.")
@click.option("--quality", "jpeg_quality", type=click.IntRange(1, 100), default=95,
              show_default=True, help="JPEG quality.")
@click.option("--max-side", type=int, default=None, help="Resize so the longer side <= this.")
@click.option("--write-rejected", is_flag=True, help="Also write rejected frames' images.")
@click.option("--force", is_flag=True, help="Redo films whose manifest already exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
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
        "min_colorfulness": opts["min_colorfulness"], "dedup_distance": opts["dedup_distance"],
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


# --- colorizer commands --------------------------------------------------------------


if __name__ == "__main__":
    main()
