"""Training the colorizer: `python cli.py train --data DIR --out RUN`.

One step: uint8 crops (from DataLoader workers) go to the device; there, in float32 outside
autocast, L, ab = Lab of the crop, targets = soft_encode(downsample_ab(ab)); under bf16
autocast (CUDA) logits = model(L); loss = soft cross-entropy (optionally class-rebalanced);
Adam step; LR schedule step.

Run folder:
    RUN/config.json     the settled TrainConfig (defaults < TOML file < command line)
    RUN/last.pt         checkpoint (colorizer.checkpoint format), every save_every steps + end
    RUN/metrics.jsonl   {"kind": "train" | "val", "step": ..., ...} one JSON object a line
    RUN/val/step_NNNNNNN.png   grey input | prediction | ground truth, fixed val images
    RUN/tb/             TensorBoard events, when tensorboard is installed

Exact resume: the data of a step is a function of (seed, step) (colorizer.dataset), the
checkpoint holds the model, optimizer, scheduler, step and the RNG states, and CPU runs use
deterministic algorithms; N steps + resume for M gives the losses of N + M steps in one go.

Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK set) the same call runs DDP: gloo on CPU,
nccl on CUDA; each process takes its DistributedSampler share, batch_size is per process;
rank 0 alone logs, validates and writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from colorizer.bins import annealed_mean, downsample_ab, soft_cross_entropy, soft_encode
from colorizer.checkpoint import DEFAULT_WORK_SIZE, read_checkpoint, save_checkpoint
from colorizer.dataset import (
    CropDataset,
    Splits,
    StepBatchSampler,
    centre_crops,
    load_splits,
    make_loader,
)
from colorizer.device import resolve_device
from colorizer.errors import ColorizerError, ConfigError, DataError, WeightsError
from colorizer.fields import check_fields
from colorizer.lab import join_lab, lab_to_rgb, rgb_to_lab, split_lab
from colorizer.metrics import auc_ab, colorfulness
from colorizer.model import ARCHS, ModelConfig, build_model
from colorizer.outputs import (
    check_free_space,
    ensure_writable_folder,
    sweep_stale_temps,
    write_bytes,
    write_text,
)
from colorizer.rebalance import RebalanceConfig, class_weights, pixel_weights, prior_from_paths
from colorizer.weights import load_eccv16_weights, load_vgg_weights


class TrainingDiverged(ColorizerError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class TrainingResourceError(ColorizerError):
    """The device ran out of memory; the message says which option to lower."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Paths are strings (the config is JSON)."""

    data: str = ""  # dataset folder or manifest file (kept rows; split train / val)
    out: str = ""  # run folder
    arch: str = "chen"  # chen (the paper) or eccv16 (Zhang et al.)
    first_layer_channels: int = 32  # chen: channels of each of the 3x3 and 5x5 first convs
    vgg_trainable: bool = False  # chen: train the fused VGG too (--train-vgg); frozen by default
    steps: int = 450_000  # optimizer steps in all (Zhang et al.: 450k)
    batch_size: int = 40  # per process (Zhang et al.: 40)
    size: int = 176  # side of the square random crops (multiple of 8)
    resize: int = 256  # scale each image's shorter side to this before cropping (Zhang et al.:
    #   256 -> 176); it is the working size colorize and evaluate use; 0: native size
    lr: float = 3e-5  # Adam learning rate (Zhang et al.)
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 1e-3
    lr_drop_at: tuple[float, ...] = (4 / 9, 5 / 6)  # fractions of steps (200k, 375k of 450k)
    lr_drop_to: tuple[float, ...] = (1 / 3, 0.1)  # lr multiplier from each drop: 1e-5, 3e-6
    workers: int = 4  # DataLoader worker processes (0: load in the training process)
    seed: int = 0  # initialisation, image order, crops and flips
    device: str = "auto"  # auto (CUDA if present), cpu, cuda, cuda:N; torchrun: LOCAL_RANK
    save_every: int = 1000  # steps between checkpoints (and one at the end)
    val_every: int = 1000  # steps between validations (0: never)
    log_every: int = 10  # steps between progress / metrics records
    val_images: int = 16  # validation images (the first of the val split, centre crops)
    grid_images: int = 8  # of which shown in the PNG grid
    temperature: float = 0.5  # annealed-mean decoding for validation
    init: str | None = None  # RUN/last.pt to start from (weights only, fresh optimizer)
    vgg_weights: str | None = None  # chen: torchvision VGG-16 or a grey VGG from finetune-vgg
    init_zhang: str | None = None  # Zhang's released ECCV16 weights
    rebalance: bool = False  # class rebalancing, prior from the training images (off: paper)
    rebalance_images: int = 500  # training images sampled for the prior
    compile: bool = False  # torch.compile the model
    amp: bool = True  # bf16 autocast (CUDA only)
    channels_last: bool = True  # channels_last memory format (CUDA only)
    deterministic: bool = True  # deterministic algorithms (CPU runs): exact resume

    def __post_init__(self) -> None:
        check_fields(self)  # every value of its declared type (bool, int, finite float, ...)
        if self.arch not in ARCHS:
            raise ConfigError(
                f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}", key="arch"
            )
        for name in ("steps", "batch_size", "save_every", "log_every", "val_images"):
            _at_least(name, getattr(self, name), 1)
        for name in ("workers", "val_every", "resize", "grid_images", "rebalance_images"):
            _at_least(name, getattr(self, name), 0)
        if self.size < 16 or self.size % 8:
            raise ConfigError(f"size must be a multiple of 8 and >= 16, got {self.size}",
                              key="size")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}", key="lr")
        _at_least("weight_decay", self.weight_decay, 0)
        _at_least("temperature", self.temperature, 0)
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {list(self.betas)}",
                              key="betas")
        if len(self.lr_drop_at) != len(self.lr_drop_to):
            raise ConfigError("lr_drop_at and lr_drop_to must have the same length",
                              key="lr_drop_to")
        if list(self.lr_drop_at) != sorted(self.lr_drop_at):
            raise ConfigError(f"lr_drop_at must be increasing, got {list(self.lr_drop_at)}",
                              key="lr_drop_at")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig(arch=self.arch, vgg_trainable=self.vgg_trainable,
                           first_layer_channels=self.first_layer_channels)

    @property
    def decode(self) -> dict[str, Any]:
        """How the trained model colorizes by default (kept in every checkpoint): the
        validation temperature, and the working size = the scale it was trained at."""
        return {"temperature": self.temperature,
                "work_size": self.resize if self.resize else DEFAULT_WORK_SIZE}


def _at_least(name: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(f"{name} must be >= {low}, got {value}", key=name)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# What a resumed run may change; everything else must match the checkpoint's config.
RESUME_MAY_CHANGE = frozenset(
    {"data", "out", "steps", "workers", "device", "save_every", "val_every", "log_every",
     "val_images", "grid_images", "compile"}
)  # fmt: skip
_PATH_FIELDS = ("data", "out", "init", "vgg_weights", "init_zhang")


def _coerce(name: str, value: Any) -> Any:
    """Lists to tuples, paths to text; the types themselves are checked by TrainConfig."""
    if name not in FIELDS:
        raise ConfigError(
            f"unknown training option {name!r}; known: {', '.join(sorted(FIELDS))}", key=name
        )
    if isinstance(value, list):
        return tuple(value)
    if name in _PATH_FIELDS and isinstance(value, os.PathLike):
        return str(value)
    return value


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Options from a TOML file: top-level keys or a [train] table; dashes or underscores."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        raise ConfigError("reading a TOML config needs Python >= 3.11 (tomllib)") from None
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the TOML file as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    table = raw.get("train", raw)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [train] must be a table")
    values = {str(k).replace("-", "_"): v for k, v in table.items()}
    try:
        return {k: _coerce(k, v) for k, v in values.items()}
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}", key=exc.key) from None


def settle_config(
    base: Mapping[str, Any] | None = None,
    file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """The config: `base` (defaults, or a checkpoint's config) < TOML `file` < `overrides`
    (command line; None values are ignored). A bad value is a ConfigError naming its key,
    and the file when it came from there."""
    values: dict[str, Any] = {k: _coerce(k, v) for k, v in (base or {}).items()}
    from_file = read_config_file(file) if file is not None else {}
    values.update(from_file)
    given = {k: _coerce(k, v) for k, v in (overrides or {}).items() if v is not None}
    values.update(given)
    try:
        return TrainConfig(**values)
    except ConfigError as exc:
        if exc.key in from_file and exc.key not in given:
            raise ConfigError(f"{file}: {exc}; fix it in the file", key=exc.key) from None
        raise


def resume_config(saved: Mapping[str, Any], wanted: TrainConfig, given: set[str]) -> TrainConfig:
    """The config of a resumed run: the saved one, with the options in `given` taken from
    `wanted` (they must be ones a resumed run may change, or equal the saved values)."""
    base = settle_config(saved)
    changes: dict[str, Any] = {}
    for name in sorted(given):
        now, then = getattr(wanted, name), getattr(base, name)
        if now == then:
            continue
        if name not in RESUME_MAY_CHANGE:
            raise ConfigError(
                f"the run was started with {name}={then!r}, now {now!r}: a resumed run keeps "
                f"it; drop that option, or start a new run with --init RUN/last.pt"
            )
        changes[name] = now
    return dataclasses.replace(base, **changes)


def settle_train_config(
    overrides: Mapping[str, Any],
    file: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
) -> TrainConfig:
    """The config of a `train` call from its command line: `overrides` (the options; None:
    not given), an optional TOML `file`, and `resume`, the run folder to continue.

    A new run: defaults < file < overrides, and it needs data and out. A resumed run: the
    config saved in RESUME/last.pt, with what the file and the overrides give (only options
    a resumed run may change, RESUME_MAY_CHANGE, may differ from the saved values); out
    defaults to RESUME."""
    overrides = dict(overrides)
    if resume is not None and overrides.get("out") is None:
        overrides["out"] = resume
    given = {k for k, v in overrides.items() if v is not None}
    if file is not None:
        given |= set(read_config_file(file))
    if resume is None:
        cfg = settle_config(None, file, overrides)
        if not cfg.data or not cfg.out:
            raise ConfigError("give --data DATASET and --out RUN (or --resume RUN)")
        return cfg
    saved = read_checkpoint(Path(resume) / "last.pt").get("train_config", {})
    if not saved:
        raise ConfigError(f"{resume}/last.pt holds no training config; use --init instead")
    wanted = settle_config(saved, file, overrides)
    return resume_config(saved, wanted, given)


@dataclass(frozen=True)
class TrainResult:
    out: Path
    start_step: int  # the step this call started from
    step: int  # steps done in all
    losses: tuple[float, ...]  # training loss of each step of this call (rank mean)
    val: dict[str, float] = field(default_factory=dict)  # the last validation metrics


# --- distributed -------------------------------------------------------------------


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _start_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), resolve_device(device_name)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_name == "cpu" or (device_name == "auto" and not torch.cuda.is_available()):
        device, backend = torch.device("cpu"), "gloo"
    else:
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device_name} under torchrun, but there is no GPU")
        device, backend = torch.device("cuda", local), "nccl"
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group(backend=backend)
    return _Dist(rank, world, local, started), device


# --- the run -------------------------------------------------------------------------


def _lr_factor(cfg: TrainConfig):
    drops = [(round(f * cfg.steps), m) for f, m in zip(cfg.lr_drop_at, cfg.lr_drop_to, strict=True)]

    def factor(step: int) -> float:
        value = 1.0
        for at, mult in drops:
            if step >= at:
                value = mult
        return value

    return factor


def _rng_state(device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
         n["cached_gaussian"])
    )  # fmt: skip
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        with contextlib.suppress(RuntimeError):  # another number of GPUs: keep theirs
            torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def _determinism(enabled: bool) -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


class _Log:
    """metrics.jsonl, TensorBoard (if installed) and messages: rank 0 only."""

    def __init__(self, out: Path, start: int, enabled: bool, quiet: bool) -> None:
        self.enabled, self.quiet = enabled, quiet
        self.path = out / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        self._truncate(start)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: JSONL only
            return
        self.tb = SummaryWriter(str(out / "tb"), purge_step=start + 1 if start else None)

    def _truncate(self, start: int) -> None:
        """Keep the records up to the checkpoint's step (a crashed run logged beyond it);
        drop a line cut short by a kill or a full disk (and any other line that is not a
        JSON object), so that later appends stay one JSON object a line."""
        if not self.path.exists():
            return
        keep, dropped = _records_up_to(self.path.read_bytes(), start)
        if dropped:
            self.warn(f"{self.path}: dropped {dropped} damaged line(s) (a run cut short by a "
                      "kill or a full disk); the records before it are kept")
        write_text(self.path, "".join(line + "\n" for line in keep))

    def record(self, kind: str, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"kind": kind, "step": step, **values}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{kind}/{k}", v, step)

    def say(self, text: str) -> None:
        if self.enabled and not self.quiet:
            tqdm.write(text, file=sys.stderr)

    def warn(self, text: str) -> None:
        """A `warning:` line on stderr, also under --quiet: something was repaired."""
        if self.enabled:
            tqdm.write(f"warning: {text}", file=sys.stderr)

    def close(self) -> None:
        if self.tb is not None:
            with contextlib.suppress(OSError):  # never over the error that ended the run
                self.tb.close()


def _records_up_to(data: bytes, start: int) -> tuple[list[str], int]:
    """The metrics.jsonl lines whose step is <= start, and how many lines were damaged."""
    keep: list[str] = []
    dropped = 0
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            dropped += 1
        elif _step_of(record) <= start:
            keep.append(line)
    return keep, dropped


def _step_of(record: Mapping[str, Any]) -> float:
    step = record.get("step", 0)
    return step if isinstance(step, (int, float)) else 0


def _load_init_weights(model: torch.nn.Module, cfg: TrainConfig, log: _Log) -> None:
    """--init-zhang, then --vgg-weights, then --init (which replaces everything)."""
    if cfg.init_zhang:
        log.say(load_eccv16_weights(model, cfg.init_zhang).summary())
    if cfg.vgg_weights:
        if not cfg.model_config.uses_vgg:
            raise ConfigError("--vgg-weights is for --arch chen; eccv16 has no VGG")
        log.say(load_vgg_weights(model, cfg.vgg_weights).summary())
    elif cfg.model_config.uses_vgg and not cfg.init:
        log.say("note: chen without --vgg-weights: its VGG starts random")
    if cfg.init:
        path = Path(cfg.init)
        payload = read_checkpoint(path / "last.pt" if path.is_dir() else path)
        arch = payload.get("model_config", {}).get("arch")
        if arch != cfg.arch:
            raise ConfigError(f"--init {path} holds a {arch!r} model; train it with --arch {arch}")
        try:
            model.load_state_dict(payload["model"])
        except (RuntimeError, KeyError) as exc:
            raise WeightsError(f"--init {path}: weights do not fit ({exc})") from exc
        log.say(f"{path}: weights of step {payload.get('step')} loaded (fresh optimizer)")


def _rebalance_weights(cfg: TrainConfig, splits: Splits) -> torch.Tensor:
    paths = list(splits.train)
    if len(paths) > cfg.rebalance_images:
        pick = np.random.default_rng(cfg.seed).choice(len(paths), cfg.rebalance_images, False)
        paths = [paths[i] for i in sorted(pick)]
    prior = prior_from_paths(paths, RebalanceConfig(enabled=True))
    return class_weights(prior)


def lab_targets(rgb_u8: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (B, 3, S, S) -> (L (B, 1, S, S), ab (B, 2, S, S)) float32 on device."""
    rgb = rgb_u8.to(device, non_blocking=True).float().div_(255.0)
    return split_lab(rgb_to_lab(rgb))


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    images: torch.Tensor,
    device: torch.device,
    cfg: TrainConfig,
    weights: torch.Tensor | None = None,
) -> tuple[dict[str, float], torch.Tensor]:
    """Metrics of the model on uint8 images (N, 3, S, S) and an RGB grid (uint8 H x W x 3) of
    grey input | prediction | ground truth for the first grid_images."""
    was_training = model.training
    model.eval()
    use_amp = cfg.amp and device.type == "cuda"
    from colorizer.evaluate import score_images

    sums = {"loss": 0.0, "psnr": 0.0, "ssim": 0.0, "auc": 0.0, "ciede2000": 0.0,
            "auc_grey": 0.0, "colorfulness": 0.0, "colorfulness_true": 0.0}  # fmt: skip
    rows = []
    for chunk in images.split(cfg.batch_size):
        L, ab = lab_targets(chunk, device)
        targets = soft_encode(downsample_ab(ab))
        x = L.contiguous(memory_format=torch.channels_last) if use_amp else L
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x)
        pw = pixel_weights(weights, targets) if weights is not None else None
        sums["loss"] += soft_cross_entropy(logits, targets, pw).item() * len(chunk)
        pred_ab = F.interpolate(
            annealed_mean(logits, cfg.temperature), size=L.shape[-2:], mode="bilinear",
            align_corners=False,
        )  # fmt: skip
        true = chunk.to(device).float() / 255.0
        # the metrics of `evaluate`, computed the same way (gamut-mapped composition)
        scores, pred = score_images(L, pred_ab, true, ab)
        for name in ("psnr", "ssim", "auc", "ciede2000"):
            sums[name] += scores[name].sum().item()
        sums["colorfulness"] += scores["colorfulness"].sum().item()
        sums["auc_grey"] += auc_ab(torch.zeros_like(ab), ab).sum().item()
        sums["colorfulness_true"] += colorfulness(true).sum().item()
        grey = lab_to_rgb(join_lab(L, torch.zeros_like(ab)))
        rows.append(torch.cat((grey, pred, true), dim=-1).cpu())  # (b, 3, S, 3S)
    model.train(was_training)
    n = max(1, len(images))
    grid = torch.cat(rows)[: cfg.grid_images] if rows else torch.empty(0, 3, 1, 1)
    grid = (grid.permute(0, 2, 3, 1).flatten(0, 1) * 255.0).round().to(torch.uint8)
    return {k: v / n for k, v in sums.items()}, grid


def make_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    cfg: TrainConfig,
    weights: torch.Tensor | None = None,
):
    """The training step: uint8 (B, 3, S, S) batch -> the loss (a device tensor, not synced).

    Lab conversion and soft-encoding in float32 outside autocast; the network under bf16
    autocast on CUDA (cfg.amp), its input channels_last there (cfg.channels_last)."""
    on_cuda = device.type == "cuda"
    use_amp = cfg.amp and on_cuda
    channels_last = cfg.channels_last and on_cuda

    def step(batch: torch.Tensor) -> torch.Tensor:
        L, ab = lab_targets(batch, device)
        targets = soft_encode(downsample_ab(ab))
        pw = pixel_weights(weights, targets) if weights is not None else None
        if channels_last:
            L = L.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = net(L)
        loss = soft_cross_entropy(logits, targets, pw)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        return loss.detach()

    return step


def _write_png(path: Path, rgb: torch.Tensor) -> None:
    import cv2

    if rgb.numel() == 0:
        return
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb.numpy(), cv2.COLOR_RGB2BGR))
    if ok:
        write_bytes(path, data.tobytes())


def _prepare_run_folder(out: Path, quiet: bool) -> None:
    """Create and test-write the run folder; sweep temporary files that killed runs left."""
    ensure_writable_folder(out)
    removed = [p for folder in (out, out / "val") for p in sweep_stale_temps(folder)]
    if removed and not quiet:
        tqdm.write(f"note: removed {len(removed)} temporary file(s) left by an interrupted "
                   f"run in {out}", file=sys.stderr)


def checkpoint_bytes(model: torch.nn.Module, trainable: list[torch.nn.Parameter]) -> int:
    """About the size of a checkpoint: the state dict and Adam's two moments."""
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return state + 2 * sum(p.numel() * 4 for p in trainable)


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    quiet: bool = False,
) -> TrainResult:
    """Train per `cfg` into cfg.out (resume: continue its last.pt). `stop_after`: stop (and
    save) after this step, as if interrupted there."""
    from manifests import load_frames

    ddp, device = _start_distributed(cfg.device)
    try:
        frames, root = load_frames(cfg.data)
        splits = load_splits(frames, root, source=str(cfg.data))
        with _determinism(cfg.deterministic and device.type == "cpu"):
            return _run(_open_run(cfg, splits, ddp, device, resume, stop_after, quiet))
    finally:
        if ddp.started_here:
            dist.destroy_process_group()


# --- the run: setup, model and optimizer, the loop -----------------------------------


@dataclass
class _Run:
    """What one training call works with, settled before its first step."""

    cfg: TrainConfig
    splits: Splits
    ddp: _Dist
    device: torch.device
    start: int  # the step this call starts from (a resumed checkpoint's, else 0)
    end: int  # the step it stops after (cfg.steps, or stop_after)
    ckpt: dict[str, Any] | None  # the checkpoint a resumed run continues
    log: _Log
    quiet: bool  # no progress bar

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def last(self) -> Path:
        return self.out / "last.pt"


@dataclass
class _Trainee:
    """The model and what trains it."""

    model: torch.nn.Module  # the bare model: saved, validated
    net: torch.nn.Module  # what the step calls: the model, DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    weights: torch.Tensor | None  # class-rebalancing weights (313,), on the device


@dataclass
class _Progress:
    """The losses of this call, those not yet fetched from the device, the last validation
    and checkpoint, and the clock of the images/s figure."""

    losses: list[float]
    pending: list[torch.Tensor]
    val: dict[str, float]
    saved_step: int
    tick: float
    tick_step: int


def _run(run: _Run) -> TrainResult:
    """The training loop of an opened run: build, then step; log every log_every steps,
    validate every val_every, save every save_every (and at the end)."""
    cfg = run.cfg
    trainee = _build_trainee(run)
    val_images = _validation_images(run)
    loader = _make_run_loader(run)
    step_fn = make_step(trainee.net, trainee.optimizer, trainee.scheduler, run.device, cfg,
                        trainee.weights)
    saved_val = run.ckpt.get("extra", {}).get("val", {}) if run.ckpt else {}
    progress = _Progress(losses=[], pending=[], val=dict(saved_val), saved_step=run.start,
                         tick=time.perf_counter(), tick_step=run.start)
    bar = tqdm(
        total=run.end, initial=run.start, desc="train", unit="step", dynamic_ncols=True,
        disable=run.quiet or not run.ddp.main,
    )  # fmt: skip
    try:
        for step, batch in enumerate(loader, start=run.start):
            progress.pending.append(_take_step(run, step_fn, batch))
            done = step + 1
            bar.update(1)
            save_now = done % cfg.save_every == 0 or done == run.end
            val_now = bool(cfg.val_every) and (done % cfg.val_every == 0 or done == cfg.steps)
            if done % cfg.log_every == 0 or save_now or val_now:
                _log_losses(run, trainee, progress, done, bar)
            if val_now and val_images is not None and len(val_images):
                progress.val = _validate_and_log(run, trainee, val_images, done)
            if save_now:
                _save(run, trainee, done, progress.val)
                progress.saved_step = done
    finally:
        bar.close()
        run.log.close()
    end = max(run.start, run.end)
    return TrainResult(run.out, run.start, end, tuple(progress.losses), progress.val)


def _open_run(
    cfg: TrainConfig,
    splits: Splits,
    ddp: _Dist,
    device: torch.device,
    resume: bool,
    stop_after: int | None,
    quiet: bool,
) -> _Run:
    """Read the checkpoint a resumed run continues (on the same data), or refuse to start
    over a run; prepare the run folder, the log and config.json (rank 0)."""
    out = Path(cfg.out)
    last = out / "last.pt"
    ckpt: dict[str, Any] | None = None
    if resume:
        ckpt = read_checkpoint(last)
        then = ckpt.get("extra", {}).get("manifest_fingerprint")
        if then != splits.fingerprint:
            raise DataError(
                f"the dataset {cfg.data} differs from the one {out} was trained on (other "
                "frames or splits); resume on the same data, or start a new run with --init"
            )
    elif last.exists():
        raise ConfigError(f"{out} already holds a run; pass --resume {out}, or another --out")
    start = int(ckpt["step"]) if ckpt else 0
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    if ddp.main:  # an unwritable --out fails now, not at the first checkpoint
        _prepare_run_folder(out, quiet)
    log = _Log(out, start, ddp.main, quiet)
    if ddp.main:
        text = json.dumps({**cfg.to_dict(), "world_size": ddp.world}, indent=1)
        write_text(out / "config.json", text + "\n")
    return _Run(cfg, splits, ddp, device, start, end, ckpt, log, quiet)


def _build_trainee(run: _Run) -> _Trainee:
    """The model (initial weights, or the checkpoint's), Adam and the LR schedule (restored
    on resume, with the RNG states), the class weights; DDP / torch.compile around it."""
    cfg, device, ckpt = run.cfg, run.device, run.ckpt
    model = _build_model(run)
    params = [p for p in model.parameters() if p.requires_grad]
    if run.ddp.main:
        check_free_space(run.out, checkpoint_bytes(model, params), run.last.name)
    optimizer = torch.optim.Adam(
        params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=True
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(cfg))
    weights: torch.Tensor | None = None
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        for group in optimizer.param_groups:  # steps may have changed: the schedule follows
            group["lr"] = cfg.lr * _lr_factor(cfg)(run.start)
        _set_rng_state(ckpt["rng"], device)
        weights = ckpt.get("extra", {}).get("rebalance_weights")
    elif cfg.rebalance:
        weights = _rebalance_weights(cfg, run.splits)
    if weights is not None:
        weights = weights.to(device)
    return _Trainee(model, _wrap_model(model, run), optimizer, scheduler, weights)


def _build_model(run: _Run) -> torch.nn.Module:
    """The seeded model with its initial (or resumed) weights, on the device, training."""
    cfg, device = run.cfg, run.device
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model_config)
    if run.ckpt is None:
        _load_init_weights(model, cfg, run.log)
    else:
        model.load_state_dict(run.ckpt["model"])
    channels_last = device.type == "cuda" and cfg.channels_last
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    return model.to(device, memory_format=memory_format).train()


def _wrap_model(model: torch.nn.Module, run: _Run) -> torch.nn.Module:
    """DDP under torchrun, torch.compile on request."""
    net = model
    if run.ddp.world > 1:
        on_cuda = run.device.type == "cuda"
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[run.device.index] if on_cuda else None
        )
    if run.cfg.compile:
        net = torch.compile(net)
    return net


def _validation_images(run: _Run) -> torch.Tensor | None:
    """The fixed validation batch (rank 0, when validating), uint8 centre crops."""
    cfg, ddp = run.cfg, run.ddp
    images = (
        centre_crops(run.splits.val[: cfg.val_images], cfg.size, cfg.resize)
        if ddp.main and cfg.val_every else None
    )
    if ddp.main and cfg.val_every and not run.splits.val:
        run.log.say("note: the dataset has no kept 'val' frames: no validation")
    return images


def _make_run_loader(run: _Run) -> Iterable[torch.Tensor | str]:
    """The batches of steps start..end of this process (a str: a worker's error message)."""
    cfg, ddp = run.cfg, run.ddp
    sampler = StepBatchSampler(
        len(run.splits.train), cfg.batch_size, cfg.seed, run.start, run.end, ddp.rank, ddp.world
    )
    dataset = CropDataset(run.splits.train, cfg.size, cfg.seed, cfg.resize)
    return make_loader(dataset, sampler, cfg.workers, run.device.type == "cuda")


def _take_step(
    run: _Run, step_fn: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor | str
) -> torch.Tensor:
    """One training step; its loss stays on the device. Unreadable data and CUDA out of
    memory become one-line errors."""
    if isinstance(batch, str):
        raise DataError(batch)
    cfg = run.cfg
    try:
        return step_fn(batch).detach()
    except torch.cuda.OutOfMemoryError as exc:
        raise TrainingResourceError(
            f"CUDA out of memory at --batch-size {cfg.batch_size} --size {cfg.size} "
            f"({cfg.arch}); lower --batch-size (or --size). {run.last} keeps the last "
            "checkpoint"
        ) from exc


def _log_losses(run: _Run, trainee: _Trainee, progress: _Progress, step: int, bar: tqdm) -> None:
    """Fetch the pending losses (one sync; the mean over ranks), stop on a NaN or infinite
    one, record them (mean loss, lr, images/s) and show the last on the progress bar."""
    if not progress.pending:
        return
    values = torch.stack(progress.pending).float()
    progress.pending.clear()
    if run.ddp.world > 1:
        dist.all_reduce(values)
        values /= run.ddp.world
    got = values.tolist()
    bad = next((i for i, v in enumerate(got) if not math.isfinite(v)), None)
    if bad is not None:
        first = step - len(got) + bad + 1
        saved = progress.saved_step
        kept = f"{run.last} (step {saved}) is kept" if saved else "nothing was saved"
        raise TrainingDiverged(
            f"the loss became {got[bad]} at step {first}; training stopped and {kept}. "
            "Lower --lr, check the data, or --resume from that checkpoint"
        )
    progress.losses.extend(got)
    now = time.perf_counter()
    images = (step - progress.tick_step) * run.cfg.batch_size * run.ddp.world
    rate = images / max(now - progress.tick, 1e-9)
    progress.tick, progress.tick_step = now, step
    lr = trainee.optimizer.param_groups[0]["lr"]
    run.log.record("train", step, {"loss": sum(got) / len(got), "lr": lr, "images_per_s": rate})
    bar.set_postfix(loss=f"{got[-1]:.4f}", img_s=f"{rate:.1f}")


def _validate_and_log(
    run: _Run, trainee: _Trainee, images: torch.Tensor, step: int
) -> dict[str, float]:
    """Validate, record the metrics, write the PNG grid, say one line."""
    val, grid = validate(trainee.model, images, run.device, run.cfg, trainee.weights)
    run.log.record("val", step, val)
    _write_png(run.out / "val" / f"step_{step:07d}.png", grid)
    run.log.say(
        f"step {step}: val loss {val['loss']:.4f}, PSNR {val['psnr']:.2f} dB, "
        f"AuC {val['auc']:.4f} (grey {val['auc_grey']:.4f}), "
        f"colorfulness {val['colorfulness']:.1f} (true {val['colorfulness_true']:.1f})"
    )
    return val


def _save(run: _Run, trainee: _Trainee, step: int, val: Mapping[str, float]) -> None:
    """The checkpoint RUN/last.pt (rank 0): everything an exact resume needs."""
    if not run.ddp.main:
        return
    cfg, weights = run.cfg, trainee.weights
    save_checkpoint(
        run.last, trainee.model, cfg.model_config, step=step, train_config=cfg.to_dict(),
        decode=cfg.decode,
        optimizer=trainee.optimizer.state_dict(), scheduler=trainee.scheduler.state_dict(),
        rng=_rng_state(run.device),
        extra={
            "manifest_fingerprint": run.splits.fingerprint,
            "world_size": run.ddp.world,
            "val": dict(val),
            **({"rebalance_weights": weights.cpu()} if weights is not None else {}),
        },
    )  # fmt: skip


__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingResourceError",
    "make_step",
    "read_config_file",
    "resume_config",
    "settle_config",
    "settle_train_config",
    "train",
    "validate",
]
