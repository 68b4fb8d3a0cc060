"""Zhang et al.'s released ECCV16 weights used as they are: load, decode, import, refuse.

The state dicts here are made by `tests/zhang_reference.py` (their key names and shapes,
random weights), and the reference forward there is the release's own computation written
from the paper; the package must reproduce its ab to 1e-3 at the temperature the docs name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colorizer.bins import ab_bins, annealed_mean
from colorizer.checkpoint import import_released, load_model, read_checkpoint
from colorizer.errors import WeightsError
from colorizer.lab import rgb_u8_to_L
from colorizer.predictor import Colorizer
from colorizer.released import RELEASED_KIND, RELEASED_TEMPERATURE
from tests.faults import run_cli, small_dataset
from tests.helpers_colorizer import photos
from tests.zhang_reference import random_release, reference_ab

RELEASE_NAME = "colorization_release_v2-9b330a0b.pth"


@pytest.fixture(scope="module")
def release_state() -> dict[str, torch.Tensor]:
    return random_release(ab_bins("cpu"), seed=0)


@pytest.fixture(scope="module")
def release_file(tmp_path_factory: pytest.TempPathFactory, release_state) -> Path:
    path = tmp_path_factory.mktemp("release") / RELEASE_NAME
    torch.save(release_state, path)
    return path


def photo_L(size: int = 64) -> torch.Tensor:
    rgb = (photos(size) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)  # (N, s, s, 3)
    return rgb_u8_to_L(rgb)  # (N, 1, s, s)


def test_released_file_decodes_as_the_reference(release_file: Path, release_state) -> None:
    model, cfg, payload = load_model(release_file)
    assert cfg.arch == "eccv16"
    assert payload["decode"]["temperature"] == RELEASED_TEMPERATURE
    L = photo_L(64)
    expected = reference_ab(release_state, L)  # (N, 2, 64, 64)
    assert expected.abs().amax() > 5, "the reference must give real colours to compare"
    with torch.no_grad():
        ab_low = annealed_mean(model(L), RELEASED_TEMPERATURE)
    ab = F.interpolate(ab_low, size=L.shape[-2:], mode="bilinear", align_corners=False)
    assert (ab - expected).abs().amax() < 1e-3
    # and at another temperature it would not: the temperature is what reproduces it
    with torch.no_grad():
        other = annealed_mean(model(L), 0.38)
    assert (F.interpolate(other, size=L.shape[-2:], mode="bilinear") - expected).abs().amax() > 0.1


def test_colorizer_uses_the_released_temperature(release_file: Path, release_state) -> None:
    colorizer = Colorizer.from_checkpoint(release_file, "cpu")
    assert colorizer.temperature == RELEASED_TEMPERATURE
    L = photo_L(64)
    ab = F.interpolate(colorizer.predict_ab(L), size=(64, 64), mode="bilinear",
                       align_corners=False)
    assert (ab - reference_ab(release_state, L)).abs().amax() < 1e-3
    assert Colorizer.from_checkpoint(release_file, "cpu", temperature=0.2).temperature == 0.2


def test_import_keeps_provenance_and_temperature(tmp_path: Path, release_file: Path) -> None:
    out = import_released(release_file, tmp_path / "zhang.pt")
    payload = read_checkpoint(out)
    assert payload["provenance"]["kind"] == RELEASED_KIND
    assert len(payload["provenance"]["sha256"]) == 64
    assert payload["decode"]["temperature"] == RELEASED_TEMPERATURE
    direct, _, _ = load_model(release_file)
    imported, _, _ = load_model(out)
    L = photo_L(32)
    with torch.no_grad():
        assert torch.equal(direct(L), imported(L))


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("permute", "another order"),
        ("scale", "scaled by x128"),
        ("noise", "not the 313 bins"),
    ],
)
def test_bins_that_disagree_are_refused(tmp_path: Path, release_state, damage: str,
                                        words: str) -> None:
    state = dict(release_state)
    w = state["model_out.weight"].clone()  # (2, 313, 1, 1) centres / 110
    if damage == "permute":
        w = w[:, torch.from_numpy(np.random.default_rng(0).permutation(313))]
    elif damage == "scale":
        w = w * 110.0 / 128.0
    else:
        w = w + 0.2 * torch.randn_like(w)
    state["model_out.weight"] = w.contiguous()
    path = tmp_path / RELEASE_NAME
    torch.save(state, path)
    with pytest.raises(WeightsError, match=words):
        load_model(path)
    code, _, stderr = run_cli(["import-weights", str(path), "--out", str(tmp_path / "x.pt")])
    assert code == 2 and stderr.startswith("error: ") and words in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


def test_released_file_through_the_commands(tmp_path: Path, release_file: Path,
                                            assets: Path) -> None:
    """colorize, evaluate and compare take the released file as it is, no training step."""
    import cv2
    from skimage import data as skdata

    grey = tmp_path / "grey.png"  # small: the point is the file, not the scale
    small = cv2.resize(skdata.coffee(), (160, 120), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(grey), cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    code, _, stderr = run_cli(["colorize", str(grey), "--checkpoint", str(release_file),
                               "--out", str(tmp_path / "col"), "--work-size", "64",
                               "--device", "cpu", "-q"])
    assert code == 0, stderr
    assert (tmp_path / "col" / "grey_color.png").is_file()

    data = small_dataset(assets)
    code, out, stderr = run_cli(["evaluate", "--checkpoint", str(release_file), "--data",
                                 str(data), "--size", "64", "--device", "cpu", "--limit", "2",
                                 "-q"])
    assert code == 0, stderr
    assert f"T = {RELEASED_TEMPERATURE:g}" in out or "1.0" in out

    imported = import_released(release_file, tmp_path / "zhang.pt")
    code, _, stderr = run_cli(["compare", "--checkpoint", str(release_file), "--checkpoint",
                               str(imported), "--data", str(data), "--limit", "2", "--work-size",
                               "64", "--out", str(tmp_path / "cmp"), "--device", "cpu", "-q"])
    assert code == 0, stderr
    assert (tmp_path / "cmp" / "index.html").is_file()
