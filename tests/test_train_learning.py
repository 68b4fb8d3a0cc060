"""Learning is real: eighty CPU steps on a handful of real photos lower the training loss
well below its start, and the AuC of the ab error on those photos rises above the grey
(ab = 0) baseline's."""

from pathlib import Path

import pytest
import torch

from colorizer.checkpoint import load_model
from colorizer.dataset import centre_crops
from colorizer.train import TrainConfig, train, validate
from manifests import load_frames
from tests.train_helpers import make_dataset

STEPS = 80  # the loss and the AuC are where 150 steps left them


@pytest.mark.slow
def test_training_learns_colours_of_real_photos(tmp_path):
    names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
    data = make_dataset(tmp_path / "data", names=names, short_side=36, val=())
    cfg = TrainConfig(
        data=str(data), out=str(tmp_path / "run"), arch="eccv16", steps=STEPS, batch_size=2,
        size=32, resize=36, lr=3e-4, lr_drop_at=(), lr_drop_to=(), workers=0, device="cpu",
        save_every=STEPS, val_every=0, log_every=10, deterministic=False,
    )  # fmt: skip
    result = train(cfg, quiet=True)
    start = sum(result.losses[:5]) / 5
    end = sum(result.losses[-20:]) / 20
    assert start > 5.0  # about log(313): the untrained net spreads over all bins
    assert end < 0.7 * start, (start, end)

    frames, root = load_frames(data)
    photos = centre_crops([root / p for p in frames["image_path"]], 32, cfg.resize)
    model, _, _ = load_model(Path(cfg.out) / "last.pt")
    metrics, _ = validate(model, photos, torch.device("cpu"), cfg)
    assert metrics["auc"] > metrics["auc_grey"] + 0.02, metrics
