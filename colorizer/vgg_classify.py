"""Grey fine-tuning of VGG-16 by classification (``finetune-vgg --method classify``).

The paper follows Larsson et al. (ECCV 2016), who fine-tune VGG-16 for classification on
grey images before using its features for colorization. This module does that on an image
folder with one subfolder per class (ImageNet's training layout, the paper's data B):

    IMAGES/n01440764/*.JPEG, IMAGES/n01443537/*.JPEG, ...   class = subfolder, sorted

The network is torchvision's VGG-16 fed the grey image (L replicated to three channels,
ImageNet-normalised: ``vgg.grey_input``). Its head depends on the classes:

- 1000 classes and a weights file with torchvision's classifier (``classifier.*``): the
  ImageNet classifier itself (sorted subfolder names are torchvision's class order when
  they are ImageNet's 1000 synsets);
- otherwise: global average pooling of conv5_3 and a new linear layer (512 -> classes).

All 13 convs train (SGD with momentum, cross-entropy, seeded random crops and flips). The
output file is the same grey VGG file as the distillation method writes (the chen model
reads its conv1_1 .. conv3_3), plus the whole network's state so that a run resumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colorizer.dataset import random_crop
from colorizer.device import resolve_device
from colorizer.errors import ConfigError, DataError, WeightsError
from colorizer.images import read_rgb
from colorizer.lab import rgb_to_lab
from colorizer.outputs import check_free_space
from colorizer.vgg import grey_input
from colorizer.vgg_finetune import (
    FinetuneResult,
    VggFinetuneConfig,
    config_record,
    load_resumable,
    prepare_output,
    refuse_to_overwrite,
    run_steps,
)
from colorizer.weights import (
    GREY_VGG_FORMAT,
    GREY_VGG_VERSION,
    VGG_KIND,
    atomic_save,
    read_weights_file,
    tensor_dict,
)
from manifests import layout

IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class ClassFolder:
    """The labelled images of a class-per-subfolder tree."""

    classes: tuple[str, ...]  # subfolder names, sorted: class k is classes[k]
    samples: tuple[tuple[Path, int], ...]  # (image, class index), sorted by path


def read_class_folder(root: Path | str) -> ClassFolder:
    """Every image under ROOT/<class>/ (not deeper), labelled by its subfolder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; give an image folder with one subfolder per "
                        "class (ImageNet's layout) for --method classify")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(
            f"{root} has {len(classes)} class subfolder(s); classification needs at least 2 "
            "(ROOT/<class>/<image>), or use --method distil on a dataset"
        )
    samples = []
    for k, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir()
                       if p.is_file() and p.suffix.lower() in layout.IMAGE_SUFFIXES)
        samples += [(p, k) for p in files]
    empty = [c for k, c in enumerate(classes) if not any(label == k for _, label in samples)]
    if empty:
        raise DataError(f"{root}: {len(empty)} class folder(s) hold no images, e.g. "
                        f"{empty[0]!r}; remove them or add images")
    return ClassFolder(tuple(classes), tuple(samples))


class GreyVggClassifier(nn.Module):
    """torchvision VGG-16's 13 convs (``features.*``, torchvision names) and a head:
    the ImageNet classifier (``classifier.*``) or a pooled linear layer (``head.*``)."""

    def __init__(self, classes: int, imagenet_head: bool) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        self.features = make_layers(cfgs["D"])  # conv1_1 .. conv5_3, pools: (B, 512, H/32, W/32)
        self.imagenet_head = imagenet_head
        if imagenet_head:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, classes),
            )
        else:
            self.head = nn.Linear(512, classes)

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        """L (B, 1, H, W) in [0, 100], H and W multiples of 32 -> (B, classes) logits."""
        x = self.features(grey_input(L))
        if self.imagenet_head:
            return self.classifier(torch.flatten(self.avgpool(x), 1))
        return self.head(x.mean((2, 3)))


def build_classifier(weights: dict[str, torch.Tensor], classes: int,
                     path: Path) -> GreyVggClassifier:
    """The classifier started from an ImageNet VGG-16 state dict (torchvision's keys)."""
    imagenet_head = classes == IMAGENET_CLASSES and "classifier.6.weight" in weights
    model = GreyVggClassifier(classes, imagenet_head)
    wanted = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    missing = [k for k in wanted if k not in weights]
    wrong = [k for k in wanted if k in weights and weights[k].shape != wanted[k].shape]
    if missing or wrong:
        example = (missing or wrong)[0]
        raise WeightsError(
            f"{path} is not torchvision's ImageNet VGG-16 ({len(missing)} keys missing, "
            f"{len(wrong)} of another shape, e.g. {example}); give vgg16-397923af.pth"
        )
    model.load_state_dict({k: weights[k] for k in wanted}, strict=False)
    return model


def grey_vgg_state(model: GreyVggClassifier) -> dict[str, torch.Tensor]:
    """conv1_1 .. conv3_3 (``features.0`` .. ``features.14``): what the chen model reads."""
    return {f"features.{k}": v.detach().cpu() for k, v in model.features.state_dict().items()
            if int(k.split(".")[0]) <= 14}


class LabelledStepBatches(torch.utils.data.Dataset):
    """Item ``step``: (uint8 (B, 3, S, S) crops, int64 (B,) labels) of that step, fixed by
    (seed, step): epochs walk a seeded permutation; crops and flips are seeded per step.
    An unreadable image gives its error message (a str) instead of the batch."""

    def __init__(self, samples: Sequence[tuple[Path, int]], steps: int, batch_size: int,
                 size: int, seed: int) -> None:
        self.samples = list(samples)
        self.steps, self.batch_size, self.size, self.seed = steps, batch_size, size, seed

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor] | str:
        n, b = len(self.samples), self.batch_size
        rng = np.random.default_rng([self.seed, step])
        crops, labels = [], []
        for pos in range(step * b, step * b + b):
            epoch, offset = divmod(pos, n)
            order = np.random.default_rng([self.seed, epoch, n]).permutation(n)
            path, label = self.samples[order[offset]]
            try:
                img = read_rgb(path)
            except DataError as exc:
                return str(exc)
            crops.append(random_crop(img, self.size, rng, resize=self.size))
            labels.append(label)
        images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
        return images, torch.tensor(labels, dtype=torch.int64)


def classify_loss(model: GreyVggClassifier, batch: tuple[torch.Tensor, torch.Tensor],
                  device: torch.device) -> torch.Tensor:
    """Cross-entropy of the grey image's class: one training step's loss (a scalar)."""
    images, labels = batch
    rgb = images.to(device, non_blocking=True).float().div_(255.0)  # (B, 3, S, S)
    L = rgb_to_lab(rgb)[:, :1]  # (B, 1, S, S) in [0, 100]
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = model(L)
    return nn.functional.cross_entropy(logits.float(), labels.to(device))


def optimizer_for(model: GreyVggClassifier, lr: float) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 and weight decay 5e-4 (VGG's own recipe); the new head learns
    10x faster than the pretrained layers."""
    head = [p for n, p in model.named_parameters() if n.startswith("head.")]
    body = [p for n, p in model.named_parameters() if not n.startswith("head.")]
    groups: list[dict[str, Any]] = [{"params": body, "lr": lr}]
    if head:
        groups.append({"params": head, "lr": 10 * lr})
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=5e-4)


def finetune_classify(cfg: VggFinetuneConfig, folder: ClassFolder) -> FinetuneResult:
    """Fine-tune VGG-16 for classification of the grey images of ``folder``; write
    ``cfg.out`` (a grey VGG file, which is also the checkpoint a resumed run continues)."""
    from torch.utils.data import DataLoader

    out = Path(cfg.out)
    refuse_to_overwrite(cfg)
    device = resolve_device(cfg.device)
    prepare_output(out)
    weights = tensor_dict(read_weights_file(cfg.vgg_weights, VGG_KIND), Path(cfg.vgg_weights),
                           VGG_KIND)
    model = build_classifier(weights, len(folder.classes), Path(cfg.vgg_weights))
    model.to(device, memory_format=torch.channels_last)
    optimizer = optimizer_for(model, cfg.lr)
    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    check_free_space(out.parent, 3 * state_bytes, out.name)  # weights, momentum, the file

    start, losses = 0, []
    if out.exists():
        ckpt = load_resumable(cfg)
        if list(ckpt.get("classes", [])) != list(folder.classes):
            raise ConfigError(f"{out} was trained on other classes; resume on the same folder, "
                              "or write to another --out")
        model.load_state_dict(ckpt["full_state"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, losses = int(ckpt["step"]), [float(x) for x in ckpt["losses"]]

    def save(step: int) -> None:
        atomic_save({
            "format": GREY_VGG_FORMAT, "version": GREY_VGG_VERSION, "method": "classify",
            "state_dict": grey_vgg_state(model),
            "full_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "classes": list(folder.classes), "step": step, "steps": cfg.steps,
            "optimizer": optimizer.state_dict(), "losses": losses,
            "config": config_record(cfg),
        }, out)

    batches = LabelledStepBatches(folder.samples, cfg.steps, cfg.batch_size, cfg.size, cfg.seed)
    loader = DataLoader(batches, batch_size=None, sampler=range(start, cfg.steps),
                        num_workers=cfg.workers, pin_memory=device.type == "cuda")
    model.train()
    run_steps(cfg, loader, start, lambda batch: classify_loss(model, batch, device), optimizer,
              losses, save)
    return FinetuneResult(out, start, max(start, cfg.steps), tuple(losses))
