"""Training data and config: manifest checks, per-step sampling, crops, TOML + command line."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from colorizer.dataset import (
    CropDataset,
    StepBatchSampler,
    centre_crops,
    load_splits,
    make_loader,
    random_crop,
)
from colorizer.errors import ConfigError, DataError
from colorizer.train import TrainConfig, resume_config, settle_config
from manifests import load_frames
from tests.train_helpers import make_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "data", short_side=40)


def test_splits_take_kept_train_and_val_rows(dataset):
    frames, root = load_frames(dataset)
    splits = load_splits(frames, root)
    assert len(splits.train) == 5 and len(splits.val) == 1
    assert all(p.is_file() for p in splits.train + splits.val)
    rejected = frames.copy()
    rejected.loc[0, "status"] = "rejected"
    fewer = load_splits(rejected, root)
    assert len(fewer.train) == 4 and fewer.fingerprint != splits.fingerprint
    assert load_splits(frames, root).fingerprint == splits.fingerprint


def test_missing_columns_and_files_are_clear_errors(dataset):
    frames, root = load_frames(dataset)
    with pytest.raises(DataError, match=r"lacks the column.*split"):
        load_splits(frames.drop(columns=["split"]), root)
    gone = frames.copy()
    gone["image_path"] = [f"images/nowhere_{i}.jpg" for i in range(len(gone))]
    with pytest.raises(DataError, match=r"6 of 6 image files .* missing: .*nowhere_0.jpg.*1 more"):
        load_splits(gone, root)
    no_train = frames.assign(split=pd.Series([None] * len(frames), dtype="string"))
    with pytest.raises(DataError, match=r"no kept frames with split 'train'.*build-dataset"):
        load_splits(no_train, root)


def test_step_batches_depend_on_the_step_only():
    full = StepBatchSampler(7, 3, seed=5, start=0, stop=10)
    tail = StepBatchSampler(7, 3, seed=5, start=6, stop=10)
    assert list(full)[6:] == list(tail)
    keys = [k for batch in full for k in batch]
    # each epoch (7 consecutive positions) is a permutation of the images
    for e in range(4):
        epoch = keys[7 * e : 7 * e + 7]
        assert sorted(i for _, i in epoch) == list(range(7)) and {ep for ep, _ in epoch} == {e}
    assert list(StepBatchSampler(7, 3, seed=6, start=0, stop=10)) != list(full)


def test_ranks_share_out_each_epoch():
    a = StepBatchSampler(8, 2, seed=0, start=0, stop=2, rank=0, world_size=2)
    b = StepBatchSampler(8, 2, seed=0, start=0, stop=2, rank=1, world_size=2)
    ia = [i for batch in a for _, i in batch]
    ib = [i for batch in b for _, i in batch]
    assert sorted(ia + ib) == list(range(8))


def test_crops_are_seeded_and_small_images_scaled_up(dataset):
    frames, root = load_frames(dataset)
    paths = load_splits(frames, root).train
    ds = CropDataset(paths, 64, seed=1)  # photos are 40 px on the short side: scaled up
    crop = ds[(0, 2)]
    assert crop.shape == (3, 64, 64) and crop.dtype == torch.uint8
    assert torch.equal(crop, ds[(0, 2)])
    assert not torch.equal(crop, ds[(1, 2)])  # another epoch: another crop
    rng = np.random.default_rng(0)
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 150:] = 255
    assert random_crop(img, 32, rng).shape == (32, 32, 3)
    assert random_crop(img, 32, rng, resize=32).shape == (32, 32, 3)  # whole height
    val = centre_crops(paths[:2], 32)
    assert val.shape == (2, 3, 32, 32) and val.dtype == torch.uint8


def test_loader_with_workers_gives_the_same_batches(dataset):
    frames, root = load_frames(dataset)
    paths = load_splits(frames, root).train
    batches = []
    for workers in (0, 2):
        sampler = StepBatchSampler(len(paths), 3, seed=0, start=1, stop=4)
        batches.append(list(make_loader(CropDataset(paths, 32, 0), sampler, workers, False)))
    assert len(batches[0]) == 3
    assert all(torch.equal(x, y) for x, y in zip(*batches, strict=True))
    assert batches[0][0].shape == (3, 3, 32, 32)


def test_unreadable_image_is_a_data_error_message(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    item = CropDataset([bad], 32, 0)[(0, 0)]
    assert isinstance(item, str) and "bad.jpg" in item


def test_toml_then_command_line(tmp_path):
    toml = tmp_path / "train.toml"
    toml.write_text('[train]\narch = "eccv16"\nbatch-size = 8\nbetas = [0.5, 0.9]\nsteps = 50\n')
    cfg = settle_config(None, toml, {"steps": 7, "size": None})
    assert (cfg.arch, cfg.batch_size, cfg.betas, cfg.steps, cfg.size) == (
        "eccv16", 8, (0.5, 0.9), 7, 176,
    )  # fmt: skip
    assert TrainConfig().lr == 3e-5 and TrainConfig().weight_decay == 1e-3
    (tmp_path / "bad.toml").write_text("learning_rate = 1\n")
    with pytest.raises(ConfigError, match="unknown training option 'learning_rate'"):
        settle_config(None, tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="multiple of 8"):
        settle_config(None, None, {"size": 100})


def test_resume_keeps_the_run_config():
    saved = TrainConfig(data="d", out="o", arch="eccv16", steps=10).to_dict()
    more = resume_config(saved, settle_config(saved, None, {"steps": 20}), {"steps"})
    assert more.steps == 20 and more.arch == "eccv16"
    with pytest.raises(ConfigError, match="started with batch_size=40, now 8"):
        resume_config(saved, settle_config(saved, None, {"batch_size": 8}), {"batch_size"})
