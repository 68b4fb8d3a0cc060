"""The ``finetune-vgg`` command (click). Imports nothing heavy until it runs.

Attach it to the CLI group with ``main.add_command(finetune_vgg)``.
"""

from __future__ import annotations

from pathlib import Path

import click

from colorizer.errors import ColorizerError


@click.command("finetune-vgg")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Dataset directory (as written by build-dataset); its kept frames are used.",
)
@click.option(
    "--vgg-weights",
    required=True,
    type=click.Path(path_type=Path),
    help="torchvision's ImageNet VGG-16 file (vgg16-397923af.pth): teacher and starting point.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Grey VGG file to write (also the checkpoint that --resume continues).",
)
@click.option("--steps", default=2000, show_default=True, help="Optimiser steps in all.")
@click.option("--batch-size", default=16, show_default=True)
@click.option("--size", default=224, show_default=True, help="Training crop side, pixels.")
@click.option("--lr", default=1e-4, show_default=True, help="Adam learning rate.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--resume", is_flag=True, help="Continue the run saved in --out.")
def finetune_vgg(
    data: Path,
    vgg_weights: Path,
    out: Path,
    steps: int,
    batch_size: int,
    size: int,
    lr: float,
    device: str,
    seed: int,
    quiet: bool,
    resume: bool,
) -> None:
    """Fine-tune VGG-16 on grey images of a dataset, for the chen model's --vgg-weights."""
    try:
        from colorizer.vgg_finetune import VggFinetuneConfig, finetune_vgg, kept_image_paths

        cfg = VggFinetuneConfig(
            vgg_weights=vgg_weights,
            out=out,
            steps=steps,
            batch_size=batch_size,
            size=size,
            lr=lr,
            seed=seed,
            device=device,
            quiet=quiet,
            resume=resume,
        )
        from manifests import load_frames

        frames, root = load_frames(data)
        result = finetune_vgg(cfg, kept_image_paths(frames, root))
    except ColorizerError as exc:
        raise click.ClickException(str(exc)) from exc
    last = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
    click.echo(f"wrote {result.out} (step {result.step} of {steps}{last})")
