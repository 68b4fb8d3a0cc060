"""`python cli.py survey ...`: make, serve and report the paper's subjective study.

Only click and the standard library are imported here at module level: `cli.py` adds this
group to every command line, and `extract-frames` must start fast. Flask, torch, pandas and
the rest are imported inside the commands.
"""

from __future__ import annotations

import errno
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


@click.group("survey", short_help="The paper's study: raters judge colorizations.")
def survey() -> None:
    """The paper's subjective study: "Do you believe this image is from a colour film?"

    make: pick test frames and colorize them with each model; serve: show them to raters
    in a browser; report: the share of "yes" per condition, intervals, tests, box plot.
    Details: docs/survey.md.
    """


@survey.command("make")
@click.option("--checkpoint", "checkpoints", multiple=True, required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="A model (repeat: before and after fine-tuning, Zhang's released file...).")
@click.option("--label", "labels", multiple=True,
              help="A name per --checkpoint, in order [default: the run folder or file name].")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset folder or frames manifest: the frames and their colour originals.")
@click.option("--split", default="test", show_default=True,
              type=click.Choice(["train", "val", "test", "all"]))
@click.option("--n", "n", type=click.IntRange(1), default=50, show_default=True,
              help="Frames to pick, spread over films and shots.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which frames are picked.")
@click.option("--source-kind", type=click.Choice(["film", "image", "all"]), default="film",
              show_default=True, help="Film frames only, still images only, or both.")
@click.option("--grey", is_flag=True,
              help="Add the frames' lightness alone as a control condition ('grey').")
@click.option("--bw", multiple=True, type=click.Path(path_type=Path),
              help="Black-and-white images or folders of them (no colour original): "
                   "colorized by each model as conditions 'LABEL (b&w)'. Repeatable.")
@click.option("--n-bw", type=click.IntRange(1), default=None,
              help="At most this many --bw images [default: --n].")
@click.option("--max-side", type=click.IntRange(64), default=512, show_default=True,
              help="Longer side of the images raters see, pixels.")
@click.option("--temperature", "temperatures", multiple=True, type=float,
              help="One for all models or one per --checkpoint [default: each one's own].")
@click.option("--work-size", type=click.IntRange(16), default=None,
              help="Shorter side every network sees [default: each one's own].")
@click.option("--confidence", "ask_confidence", is_flag=True,
              help="Also ask 'how sure?' (1-5, optional for the rater).")
@click.option("--raters", type=click.IntRange(0), default=0, show_default=True,
              help="Make this many rater links now (printed, and in SURVEY/raters.txt).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The survey folder to make.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--force", is_flag=True,
              help="Replace a survey already in --out (its answers are deleted).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def make_command(**opts: Any) -> None:
    """Pick frames of a dataset's split, colorize them with every --checkpoint, and write
    the survey (images and plan in OUT/survey.sqlite) with the real colour frames as the
    'truth' condition."""
    from survey.plan import SurveyConfig, make_survey

    for key in ("checkpoints", "labels", "bw", "temperatures"):
        opts[key] = tuple(opts[key])
    result = make_survey(SurveyConfig(**opts))
    if result.available and result.frames < opts["n"]:
        click.echo(f"warning: only {result.available} kept frame(s) to pick from; the survey "
                   f"uses all {result.frames}", err=True)
    click.echo(f"{result.frames + result.bw_frames} frame(s) x {len(result.conditions)} "
               f"condition(s) ({', '.join(result.conditions)}): {result.images} image(s) -> "
               f"{result.folder}")
    for token in result.tokens:
        click.echo(f"rater link: /r/{token}")
    click.echo(f"next: python cli.py survey serve {result.folder}")


@survey.command("serve")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 for raters on other machines of the room.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Requests served at once.")
@click.option("--closed", is_flag=True,
              help="Only the links made by `survey make --raters` work; no new raters.")
def serve_command(folder: Path, host: str, port: int, threads: int, closed: bool) -> None:
    """Serve the survey in FOLDER to raters until Ctrl-C. Every answer is stored when it is
    given; stopping and starting again loses nothing."""
    from survey.app import create_app, serve

    app = create_app(folder, open_enrolment=not closed)
    _log_to_stderr()
    n = len(app.config["SURVEY"].images)

    def ready(url: str) -> None:
        click.echo(f"survey of {n} image(s) at {url} (Ctrl-C stops; every answer is already "
                   "stored)", err=True)
        if host in ("0.0.0.0", "::"):
            click.echo("listening on every network interface: raters open this machine's "
                       f"address, port {port}", err=True)

    try:
        serve(app, host, port, threads, ready=ready)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            reason = {errno.EADDRINUSE: "is in use (another server?)",
                      errno.EACCES: "needs more rights (ports below 1024)",
                      errno.EADDRNOTAVAIL: "is not an address of this machine"}[exc.errno]
            click.echo(f"error: {host}:{port} {reason}; choose another --port or --host",
                       err=True)
            sys.exit(1)
        raise
    click.echo(f"stopped; the answers are in {folder}", err=True)


def _log_to_stderr() -> None:
    """One line per event: new raters, unknown links, bad answers, server errors."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                           "%Y-%m-%d %H:%M:%S"))
    log = logging.getLogger("survey")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


@survey.command("report")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the tables and the box plot [default: FOLDER/report].")
@click.option("--boot", "n_boot", type=click.IntRange(100), default=2000, show_default=True,
              help="Bootstrap resamples (raters and frames).")
@click.option("--perm", "n_perm", type=click.IntRange(100), default=10000, show_default=True,
              help="Random sign flips of the pairwise tests (above 16 frames).")
@click.option("--level", type=click.FloatRange(0.5, 1, max_open=True), default=0.95,
              show_default=True, help="Confidence level of the intervals.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--complete-only", is_flag=True, help="Only raters who answered every image.")
def report_command(folder: Path, out: Path | None, **opts: Any) -> None:
    """Share of "from a colour film" answers per condition with bootstrap intervals,
    pairwise tests, the box plot of per-image shares (the paper's Fig. 8) and every answer
    as CSV."""
    from survey.report import ReportConfig, make_report

    report = make_report(ReportConfig(survey=folder, out=out or folder / "report", **opts))
    table = report.conditions[["condition", "images", "raters", "answers", "share_yes",
                               "ci_low", "ci_high", "image_median"]]
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if len(report.pairwise):
        pairs = report.pairwise[["a", "b", "frames", "diff", "ci_low", "ci_high", "p_holm"]]
        click.echo("")
        click.echo(pairs.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    click.echo(f"-> {report.files['summary.json'].parent}")
