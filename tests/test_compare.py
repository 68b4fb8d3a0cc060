"""compare: models side by side on a test split, the page checked in a real browser."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import pandas as pd
import pytest

from colorizer.compare import CompareConfig, compare
from colorizer.errors import ConfigError
from tests.browser import headless_chromium
from tests.faults import run_cli, small_dataset
from tests.helpers_colorizer import make_checkpoint


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("models")
    return (make_checkpoint(folder / "early.pt", "eccv16", steps=1),
            make_checkpoint(folder / "later.pt", "chen", steps=3, size=32))


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory, two_models, assets: Path) -> Path:
    data = small_dataset(assets)
    out = tmp_path_factory.mktemp("compare") / "out"
    code, _, stderr = run_cli([
        "compare", "--checkpoint", str(two_models[0]), "--checkpoint", str(two_models[1]),
        "--label", "eccv16 early", "--label", "chen <later>", "--data", str(data),
        "--split", "test", "--limit", "3", "--work-size", "64", "--out", str(out),
        "--device", "cpu", "-q",
    ])
    assert code == 0, stderr
    return out


def test_page_sheets_and_table(comparison: Path) -> None:
    table = pd.read_csv(comparison / "compare.csv")
    assert set(table["model"]) == {"grey (ab = 0)", "eccv16 early", "chen <later>",
                                   "ground truth"}
    assert table["image"].nunique() == 3
    models = table[table["model"].isin(["eccv16 early", "chen <later>"])]
    for metric in ("psnr", "auc", "colorfulness", "ciede2000"):
        assert models[metric].notna().all(), metric
    assert (models["ciede2000"] > 0).all() and (models["auc"] <= 1).all()
    sheets = sorted((comparison / "sheets").glob("sheet_*.png"))
    assert sheets
    sheet = cv2.imread(str(sheets[0]))
    assert sheet.shape[0] > 3 * 160 and sheet.shape[1] > 4 * 100  # 3 rows of 4 columns
    page = (comparison / "index.html").read_text()
    assert "chen &lt;later&gt;" in page and "chen <later>" not in page  # escaped


def test_metrics_are_those_of_the_images(comparison: Path) -> None:
    """The grey column's PSNR is what the metric gives for ab = 0 against the original."""
    table = pd.read_csv(comparison / "compare.csv")
    grey = table[table["model"] == "grey (ab = 0)"]
    truth = table[table["model"] == "ground truth"]
    assert grey["ciede2000"].gt(0).all()
    assert (grey["colorfulness"] < 1).all()
    assert truth["psnr"].isna().all()
    assert (truth["colorfulness"] > grey["colorfulness"].max()).all()


def test_black_and_white_inputs_have_no_truth(tmp_path: Path, two_models) -> None:
    from skimage import data as skdata

    cv2.imwrite(str(tmp_path / "camera.png"), skdata.camera())
    result = compare(CompareConfig(checkpoints=two_models, inputs=(tmp_path / "camera.png",),
                                   out=tmp_path / "out", work_size=64, device="cpu",
                                   quiet=True))
    assert set(result.table["model"]) == {"grey (ab = 0)", "early", "later"}
    assert result.table["psnr"].isna().all()
    assert not math.isnan(result.table["colorfulness"].iloc[1])


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="one --label per"):
        CompareConfig(checkpoints=(Path("a"), Path("b")), inputs=(Path("x"),), out=Path("o"),
                      labels=("only one",))
    with pytest.raises(ConfigError, match="temperature"):
        CompareConfig(checkpoints=(Path("a"),), inputs=(Path("x"),), out=Path("o"),
                      temperatures=(float("nan"),))


def test_page_in_a_real_browser(comparison: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    table = pd.read_csv(comparison / "compare.csv")
    browser = headless_chromium(1400, 1000)
    try:
        browser.get((comparison / "index.html").as_uri())
        rows = browser.find_elements(By.CSS_SELECTOR, "#images tbody tr")
        assert len(rows) == 3
        images = browser.find_elements(By.CSS_SELECTOR, "#images img")
        assert len(images) == 3 * 4  # grey, two models, truth
        for img in images:
            browser.execute_script("arguments[0].scrollIntoView()", img)
        loaded = browser.execute_script(
            "return Array.from(document.querySelectorAll('#images img'))"
            ".map(i => i.complete && i.naturalWidth > 0)")
        assert all(loaded), loaded
        # sort by the PSNR difference between the two models, largest first
        Select(browser.find_element(By.ID, "sort")).select_by_value("d0-1-psnr")
        order = [int(r.get_attribute("data-index"))
                 for r in browser.find_elements(By.CSS_SELECTOR, "#images tbody tr")]
        psnr = table.pivot(index="index", columns="model", values="psnr")
        gain = psnr["chen <later>"] - psnr["eccv16 early"]
        assert order == list(gain.sort_values(ascending=False).index)
        assert browser.execute_script("return document.body.dataset.sorted") == "d0-1-psnr"
    finally:
        browser.quit()
