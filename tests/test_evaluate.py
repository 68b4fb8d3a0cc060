"""evaluate: the table, the baselines computed right (by hand), SSIM against scikit-image."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from skimage import color
from skimage import data as skdata
from skimage.metrics import structural_similarity

from cli import main
from colorizer.evaluate import COLUMNS, EvalConfig, evaluate, ssim
from tests.helpers_colorizer import make_checkpoint

SIZE = 64
WORK = 256  # the checkpoint's working size (the scale it was trained at): evaluate's resize


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "eccv16.pt", "eccv16", steps=2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Still images built into a dataset with a train/val/test split by shot (one per image)."""
    from filmdata.build import BuildConfig, build_dataset
    from manifests.dataset import SplitConfig

    folder = tmp_path_factory.mktemp("photos")
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    k = 0
    for img in photos:
        h, w = img.shape[:2]
        for y, x in ((0, 0), (h // 4, w // 4), (h // 8, 0)):
            crop = img[y : y + h * 3 // 4, x : x + w * 3 // 4]
            cv2.imwrite(str(folder / f"p{k:02d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            k += 1
    root = tmp_path_factory.mktemp("data")
    cfg = BuildConfig(split=SplitConfig(split_by="shot", val_fraction=0.25, test_fraction=0.35))
    build_dataset([folder], root, cfg, workers=1, progress=False)
    frames = pd.read_parquet(root / "manifests" / "dataset.parquet")
    kept = frames[frames["status"] == "kept"]
    assert (kept["split"] == "test").sum() >= 2 and (kept["split"] == "train").sum() >= 1
    return root


def split_images(root: Path, split: str) -> list[np.ndarray]:
    """Hand-made reference: the centre crops of a split, as evaluate should see them: the
    shorter side scaled to the checkpoint's working size, then the central SIZE square."""
    frames = pd.read_parquet(root / "manifests" / "dataset.parquet")
    rows = frames[(frames["status"] == "kept") & (frames["split"] == split)]
    out = []
    for rel in rows["image_path"]:
        img = cv2.cvtColor(cv2.imread(str(root / rel)), cv2.COLOR_BGR2RGB)
        h, w = img.shape[:2]
        s = WORK / min(h, w)
        img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        h, w = img.shape[:2]
        top, left = (h - SIZE) // 2, (w - SIZE) // 2
        out.append(img[top : top + SIZE, left : left + SIZE])
    return out


@pytest.fixture(scope="module")
def report(ckpt: Path, dataset: Path):
    return evaluate(EvalConfig(checkpoint=ckpt, data=dataset, temperatures=(0.5, 0.2),
                               size=SIZE, device="cpu", quiet=True))


def test_table_has_the_columns_and_rows(report) -> None:
    table = report.table
    assert list(table.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert list(table["method"]) == ["model", "model", "grey (ab = 0)", "mean colour",
                                     "ground truth"]
    assert list(table["temperature"][:2]) == [0.5, 0.2]
    model = table[table["method"] == "model"]
    assert model["cross_entropy"].notna().all() and (model["cross_entropy"] > 0).all()
    assert table[table["method"] != "model"]["cross_entropy"].isna().all()
    assert ((model["psnr"] > 5) & (model["ssim"] <= 1) & model["auc"].between(0, 1)).all()
    assert (table["images"] == report.images).all()
    assert "colorfulness" in report.to_string()


def test_grey_baseline_by_hand(report, dataset: Path) -> None:
    crops = split_images(dataset, "test")
    assert report.images == len(crops)
    aucs, psnrs = [], []
    for img in crops:
        lab = color.rgb2lab(img)
        err = np.hypot(lab[..., 1], lab[..., 2]).ravel()  # grey predicts ab = 0
        curve = [(err <= t).mean() for t in range(151)]
        aucs.append(np.trapezoid(curve) / 150)
        grey = color.lab2rgb(np.dstack([lab[..., 0], np.zeros_like(err).reshape(lab.shape[:2]),
                                        np.zeros(lab.shape[:2])]))
        psnrs.append(10 * np.log10(1 / np.mean((grey - img / 255.0) ** 2)))
    grey_row = report.table[report.table["method"] == "grey (ab = 0)"].iloc[0]
    assert grey_row["colorfulness"] < 0.05
    assert grey_row["auc"] == pytest.approx(np.mean(aucs), abs=2e-3)
    assert grey_row["psnr"] == pytest.approx(np.mean(psnrs), abs=0.05)


def test_mean_colour_is_the_train_mean(report, dataset: Path) -> None:
    ab = np.concatenate([color.rgb2lab(img)[..., 1:].reshape(-1, 2)
                         for img in split_images(dataset, "train")])
    assert report.mean_ab_source == "train"
    assert report.mean_ab == pytest.approx(tuple(ab.mean(0)), abs=0.05)
    truth = report.table[report.table["method"] == "ground truth"].iloc[0]
    assert truth["colorfulness"] > 5


def test_ssim_matches_scikit_image() -> None:
    a = skdata.astronaut()[100:196, 150:230]
    noise = np.random.default_rng(0).normal(0, 20, a.shape)
    b = np.clip(a + noise, 0, 255).astype(np.uint8)
    ref = structural_similarity(a / 255.0, b / 255.0, channel_axis=-1, gaussian_weights=True,
                                sigma=1.5, use_sample_covariance=False, data_range=1.0)
    ta = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
    tb = torch.from_numpy(b).permute(2, 0, 1)[None].float() / 255
    assert float(ssim(tb, ta)[0]) == pytest.approx(ref, abs=1e-4)
    assert float(ssim(ta, ta)[0]) == pytest.approx(1.0, abs=1e-6)


def cli(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_json_with_several_temperatures(ckpt: Path, dataset: Path) -> None:
    code, stdout, stderr = cli("evaluate", "--checkpoint", ckpt, "--data", dataset, "--size",
                               SIZE, "--temperature", "0.1,0.38", "--temperature", "1", "--json",
                               "-q", "--device", "cpu")
    assert code == 0, stderr
    doc = json.loads(stdout)
    temps = [r["temperature"] for r in doc["rows"] if r["method"] == "model"]
    assert temps == [0.1, 0.38, 1.0]
    assert doc["split"] == "test" and doc["images"] >= 2
    assert set(COLUMNS) <= set(doc["rows"][0])


def test_cli_table_and_bad_inputs(ckpt: Path, dataset: Path, tmp_path: Path) -> None:
    code, stdout, stderr = cli("evaluate", "--checkpoint", ckpt, "--data", dataset, "--size",
                               SIZE, "--split", "val", "-q", "--device", "cpu")
    assert code == 0, stderr
    assert "grey (ab = 0)" in stdout and "mean colour" in stdout and "auc" in stdout
    for args, word in [
        (("--arch", "chen"), "'eccv16'"),
        (("--temperature", "warm"), "--temperature"),
        (("--size", "60"), "multiple of 8"),
    ]:
        code, _, stderr = cli("evaluate", "--checkpoint", ckpt, "--data", dataset, *args)
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and word in lines[0], stderr
    truncated = tmp_path / "t.pt"
    truncated.write_bytes(ckpt.read_bytes()[:1000])
    code, _, stderr = cli("evaluate", "--checkpoint", truncated, "--data", dataset)
    assert code == 2 and "truncated" in stderr


def test_per_film_manifest_without_split(ckpt: Path, dataset: Path, tmp_path: Path) -> None:
    frames = pd.read_parquet(dataset / "manifests" / "dataset.parquet")
    film = next((dataset / "manifests" / "films").glob("*.parquet"))
    code, _, stderr = cli("evaluate", "--checkpoint", ckpt, "--data", film, "--size", SIZE)
    assert code == 2 and "--split all" in stderr, stderr
    code, stdout, stderr = cli("evaluate", "--checkpoint", ckpt, "--data", film, "--size", SIZE,
                               "--split", "all", "-q", "--device", "cpu")
    assert code == 0, stderr
    assert f"{(frames['status'] == 'kept').sum()} all image(s)" in stdout


def test_unreadable_image_is_skipped(ckpt: Path, dataset: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(dataset, copy)
    frames = pd.read_parquet(copy / "manifests" / "dataset.parquet")
    victim = frames[(frames["status"] == "kept") & (frames["split"] == "test")].iloc[0]
    (copy / victim["image_path"]).write_bytes(b"garbage")
    rep = evaluate(EvalConfig(checkpoint=ckpt, data=copy, size=SIZE, device="cpu", quiet=True))
    assert len(rep.skipped) == 1 and victim["image_path"].split("/")[-1] in rep.skipped[0]
    assert rep.images == (frames[(frames["status"] == "kept")
                                 & (frames["split"] == "test")].shape[0] - 1)


@pytest.mark.parametrize("temps", [(float("nan"),), (0.5, float("inf")), (-0.1,)])
def test_temperatures_must_be_finite_and_not_negative(temps) -> None:
    from colorizer.errors import ConfigError

    with pytest.raises(ConfigError, match="temperature"):
        EvalConfig(checkpoint=Path("c.pt"), data=Path("d"), temperatures=temps)
