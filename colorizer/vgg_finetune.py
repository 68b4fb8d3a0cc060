"""Grey fine-tuning of VGG-16 (the paper fine-tunes VGG on grey input before fusing it).

A student copy of VGG-16's convs up to conv3_3, fed the grey image (L replicated to 3
channels, ImageNet-normalised), learns to reproduce what the ImageNet VGG-16 (the teacher,
frozen) computes from the colour image at conv1_2, conv2_2 and conv3_3. Loss: per layer the
MSE divided by the teacher's mean square activation (so the three layers count alike), averaged
over the layers. No labels are needed.

The output file is at once the checkpoint (written atomically every ``save_every`` steps
and at the end, with the optimiser state, so a run resumes exactly) and a VGG weights file
that the ``chen`` model accepts (``colorizer.weights.load_vgg_weights``).
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from colorizer.dataset import random_crop
from colorizer.device import resolve_device
from colorizer.errors import ConfigError, DataError, WeightsError
from colorizer.fields import check_fields
from colorizer.images import read_rgb
from colorizer.lab import rgb_to_lab
from colorizer.outputs import check_free_space, ensure_writable_folder, sweep_stale_temps
from colorizer.vgg import VggFeatures, grey_input, rgb_input
from colorizer.weights import (
    GREY_VGG_FORMAT,
    GREY_VGG_VERSION,
    atomic_save,
    load_vgg_weights,
    read_grey_vgg_file,
)
from manifests import kept_frames

# Options that must match when a run is resumed (the others may change between runs).
_RESUME_MUST_MATCH = ("batch_size", "size", "lr", "seed", "method")
FINETUNE_METHODS = ("distil", "classify")


@dataclass(frozen=True)
class VggFinetuneConfig:
    vgg_weights: Path  # torchvision's ImageNet VGG-16 file: the teacher and the student's start
    out: Path  # the grey VGG file written (also the checkpoint)
    steps: int = 2000  # optimiser steps in all (a resumed run continues up to this)
    batch_size: int = 16
    size: int = 224  # side of the square training crops, pixels (multiple of 4)
    lr: float = 1e-4  # Adam learning rate
    seed: int = 0  # image order and crops
    save_every: int = 200  # steps between checkpoints (and one at the end)
    device: str = "auto"  # "auto" (CUDA if there is one), "cpu", "cuda", "cuda:1", ...
    workers: int = 2  # image-decoding worker processes (0: in this process)
    quiet: bool = False  # no progress bar
    resume: bool = False  # continue the run saved in ``out`` (else ``out`` must not exist)
    method: str = "distil"  # distil: match the colour VGG's features (no labels needed);
    #   classify: classification of grey images in class subfolders (`colorizer.vgg_classify`)

    def __post_init__(self) -> None:
        check_fields(self)  # every value of its declared type (int, finite float, ...)
        positive = ("steps", "batch_size", "save_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}", key=name)
        if self.size < 8 or self.size % 4:
            raise ConfigError(f"size must be a multiple of 4 and >= 8, got {self.size}",
                              key="size")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}", key="lr")
        if self.method not in FINETUNE_METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose "
                              f"{' or '.join(FINETUNE_METHODS)}", key="method")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}", key="workers")


@dataclass(frozen=True)
class FinetuneResult:
    out: Path
    start_step: int  # step this run started from (0, or the resumed checkpoint's)
    step: int  # steps done in all
    losses: tuple[float, ...]  # loss of every step done so far, earlier runs included


def kept_image_paths(frames: pd.DataFrame, root: Path) -> list[Path]:
    """Absolute image paths of the ``kept`` rows of a frames manifest (manifests.load_frames)."""
    missing = {"image_path", "status"} - set(frames.columns)
    if missing:
        raise DataError(f"the frames manifest lacks the column(s) {', '.join(sorted(missing))}")
    kept = kept_frames(frames)["image_path"]
    base = Path(root).absolute()
    return [base / str(p) for p in kept]


def feature_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of MSE(student, teacher) / mean(teacher^2): a float32 scalar."""
    terms = [
        (s.float() - t.float()).square().mean() / t.float().square().mean().clamp_min(1e-8)
        for s, t in zip(student, teacher, strict=True)
    ]
    return torch.stack(terms).mean()


class _StepBatches(Dataset):
    """Item ``step`` is the uint8 batch (B, 3, size, size) of that step, fixed by (seed, step):
    epochs walk a seeded permutation of the images; crops and flips are seeded per step.

    An unreadable image gives its error message (a str) instead of a batch: raised in a
    worker process, the error would reach the caller wrapped in a multi-line traceback."""

    def __init__(self, paths: Sequence[Path], cfg: VggFinetuneConfig) -> None:
        self.paths = list(paths)
        self.cfg = cfg
        self._epoch_order: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=np.int64))

    def _order(self, epoch: int) -> np.ndarray:
        """The seeded image order of an epoch (the last one is kept)."""
        if self._epoch_order[0] != epoch:
            n = len(self.paths)
            self._epoch_order = (
                epoch,
                np.random.default_rng([self.cfg.seed, epoch, n]).permutation(n),
            )
        return self._epoch_order[1]

    def __len__(self) -> int:
        return self.cfg.steps

    def __getitem__(self, step: int) -> torch.Tensor | str:
        n, b = len(self.paths), self.cfg.batch_size
        rng = np.random.default_rng([self.cfg.seed, step])
        crops = []
        for pos in range(step * b, step * b + b):
            epoch, offset = divmod(pos, n)
            try:
                img = read_rgb(self.paths[self._order(epoch)[offset]])
            except DataError as exc:
                return str(exc)
            crops.append(random_crop(img, self.cfg.size, rng, resize=self.cfg.size))
        return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def config_record(cfg: VggFinetuneConfig) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()}


def load_resumable(cfg: VggFinetuneConfig) -> dict[str, Any]:
    ckpt = read_grey_vgg_file(cfg.out)
    saved = ckpt.get("config", {})
    for name in _RESUME_MUST_MATCH:
        then, now = saved.get(name, getattr(VggFinetuneConfig, name, None)), getattr(cfg, name)
        if then != now:
            raise ConfigError(
                f"{cfg.out} was started with {name}={then!r}, now {now!r}; "
                f"resume with the same {name}, or write to another --out"
            )
    return ckpt


def settle_finetune_config(out: Path | None, resume: Path | None,
                           **options: Any) -> VggFinetuneConfig:
    """The config of a `finetune-vgg` call. `resume`: the file of the run to continue (it is
    written again: `out` may be left out, or must name the same file); else `out` is the
    file to write, which must not exist yet."""
    if resume is not None:
        if out is not None and Path(out) != Path(resume):
            raise ConfigError(f"--resume {resume} continues that run in its own file; leave "
                              f"--out out (or give --out {resume})")
        if not Path(resume).is_file():
            raise ConfigError(f"--resume {resume}: no such run to continue (it saves its first "
                              f"checkpoint after --save-every steps); start it with --out "
                              f"{resume}")
        out = resume
    elif out is None:
        raise ConfigError("give --out FILE (the grey VGG file to write), or --resume FILE")
    return VggFinetuneConfig(out=Path(out), resume=resume is not None, **options)


def refuse_to_overwrite(cfg: VggFinetuneConfig) -> None:
    """A run that is not resumed never writes over an earlier run's file."""
    out = Path(cfg.out)
    if out.exists() and not cfg.resume:
        raise ConfigError(f"{out} exists; pass --resume {out} to continue that run, or another "
                          "--out")


def prepare_output(out: Path) -> None:
    """Test-write the output's folder before any long work (an unwritable --out fails
    now, with one line); sweep the temporary files of `out` that killed runs left."""
    if out.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(out))
    ensure_writable_folder(out.parent)
    sweep_stale_temps(out.parent, target=out.name)


def finetune_vgg(cfg: VggFinetuneConfig, image_paths: Sequence[Path]) -> FinetuneResult:
    """Fine-tune a grey-input VGG-16 (conv1_1 .. conv3_3) on ``image_paths``; write ``cfg.out``."""
    _check_images(image_paths)
    out = Path(cfg.out)
    refuse_to_overwrite(cfg)
    device = resolve_device(cfg.device)
    prepare_output(out)
    teacher, student = _teacher_and_student(cfg, device)
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    state_bytes = sum(t.numel() * t.element_size() for t in student.state_dict().values())
    check_free_space(out.parent, 3 * state_bytes, out.name)  # weights + Adam's two moments

    start, losses = 0, []
    if out.exists():
        ckpt = load_resumable(cfg)
        student.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, losses = int(ckpt["step"]), [float(x) for x in ckpt["losses"]]

    def save(step: int) -> None:
        state = {k: v.detach().cpu() for k, v in student.state_dict().items()}
        atomic_save(
            {
                "format": GREY_VGG_FORMAT,
                "version": GREY_VGG_VERSION,
                "state_dict": state,
                "step": step,
                "steps": cfg.steps,
                "optimizer": optimizer.state_dict(),
                "losses": losses,
                "config": config_record(cfg),
            },
            out,
        )

    loader = DataLoader(
        _StepBatches(image_paths, cfg),
        batch_size=None,
        sampler=range(start, cfg.steps),
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
    )
    use_bf16 = device.type == "cuda"

    def step_loss(batch: torch.Tensor) -> torch.Tensor:
        rgb = batch.to(device, non_blocking=True).float().div_(255.0)  # (B, 3, S, S)
        rgb = rgb.contiguous(memory_format=torch.channels_last)
        L = rgb_to_lab(rgb)[:, :1]  # (B, 1, S, S) in [0, 100]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            with torch.no_grad():
                target = teacher(rgb_input(rgb))
            return feature_loss(student(grey_input(L)), target)

    student.train()
    run_steps(cfg, loader, start, step_loss, optimizer, losses, save)
    return FinetuneResult(out, start, max(start, cfg.steps), tuple(losses))


def _check_images(image_paths: Sequence[Path]) -> None:
    if not image_paths:
        raise DataError("no images to fine-tune VGG on (the dataset has no kept frames?)")
    missing = [str(p) for p in image_paths if not Path(p).is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(image_paths)} images are missing, e.g. {missing[0]}; "
            "rebuild the dataset or check its folder"
        )


def _teacher_and_student(cfg: VggFinetuneConfig, device: torch.device
                         ) -> tuple[VggFeatures, VggFeatures]:
    """The frozen colour VGG-16 (torchvision's ImageNet weights) and its trainable copy."""
    teacher = VggFeatures()
    if load_vgg_weights(teacher, cfg.vgg_weights).kind != "imagenet-vgg16":
        raise WeightsError(
            f"{cfg.vgg_weights} is a grey VGG; the teacher must be torchvision's ImageNet "
            "VGG-16 (vgg16-397923af.pth)"
        )
    student = VggFeatures()
    student.load_state_dict(teacher.state_dict())
    teacher.requires_grad_(False).eval()
    teacher.to(device, memory_format=torch.channels_last)
    student.to(device, memory_format=torch.channels_last)
    return teacher, student


def run_steps(cfg: VggFinetuneConfig, loader: Iterable[Any], start: int,
              step_loss: Callable[[Any], torch.Tensor], optimizer: torch.optim.Optimizer,
              losses: list[float], save: Callable[[int], None]) -> None:
    """The loop both fine-tuning methods share: each step's loss, the optimiser step, the
    progress bar, and a checkpoint every ``save_every`` steps and at the end. A
    batch that is a str is a worker's error message (an unreadable image)."""
    with tqdm(total=cfg.steps, initial=start, disable=cfg.quiet, desc="finetune-vgg",
              unit="step") as bar:
        for step, batch in enumerate(loader, start=start):
            if isinstance(batch, str):
                raise DataError(batch)
            loss = step_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            done = step + 1
            if done % cfg.save_every == 0 or done == cfg.steps:
                save(done)
