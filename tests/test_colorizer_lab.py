"""Lab <-> sRGB in torch against scikit-image in float64."""

import numpy as np
import pytest
import torch
from skimage import color

from colorizer.errors import InputError
from colorizer.lab import join_lab, lab_to_rgb, rgb_to_lab, split_lab


def _chw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).double().numpy()


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    rng = np.random.default_rng(1)
    img = rng.random((3, 24, 20, 3))
    img[0, :4] = 0.0  # black, white and the extremes of the gamut too
    img[0, 4:8] = 1.0
    img[1, :2, :, :] = [1.0, 0.0, 0.0]
    img[1, 2:4, :, :] = [0.0, 0.0, 1.0]
    return img


def test_rgb_to_lab_matches_skimage_float64(rgb: np.ndarray) -> None:
    ref = np.stack([color.rgb2lab(im) for im in rgb])  # float64
    got = rgb_to_lab(_chw(rgb).float())
    assert got.dtype == torch.float32
    assert np.abs(_hwc(got) - ref).max() < 0.01


def test_lab_to_rgb_matches_skimage_float64() -> None:
    rng = np.random.default_rng(2)
    lab = np.stack(
        [rng.uniform(0, 100, (2, 16, 16)), *rng.uniform(-110, 110, (2, 2, 16, 16))], axis=-1
    )
    with pytest.warns(UserWarning):  # skimage warns about the far out-of-gamut (negative Z) ones
        ref = np.stack([color.lab2rgb(im) for im in lab])
    got = lab_to_rgb(_chw(lab).float())
    assert np.abs(_hwc(got) - ref).max() < 0.01


def test_round_trip(rgb: np.ndarray) -> None:
    x = _chw(rgb).float()
    assert (lab_to_rgb(rgb_to_lab(x)) - x).abs().max() < 1e-3


def test_unbatched_and_batched_agree(rgb: np.ndarray) -> None:
    x = _chw(rgb).float()
    assert torch.allclose(rgb_to_lab(x[1]), rgb_to_lab(x)[1])


def test_conversion_runs_outside_autocast(rgb: np.ndarray) -> None:
    x = _chw(rgb).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lab = rgb_to_lab(x.bfloat16())
        back = lab_to_rgb(lab)
    assert lab.dtype == torch.float32 and back.dtype == torch.float32
    assert (lab - rgb_to_lab(x.bfloat16().float())).abs().max() < 1e-4


def test_split_and_join(rgb: np.ndarray) -> None:
    lab = rgb_to_lab(_chw(rgb).float())
    L, ab = split_lab(lab)
    assert L.shape == (3, 1, 24, 20) and ab.shape == (3, 2, 24, 20)
    assert torch.equal(join_lab(L, ab), lab)
    assert join_lab(L, ab[..., ::4, ::4]).shape == lab.shape


def test_wrong_channels_raise() -> None:
    with pytest.raises(InputError, match="3 channels"):
        rgb_to_lab(torch.zeros(1, 4, 8, 8))
