"""colorizer.metrics: PSNR, AuC of the ab error, colorfulness, against direct references."""

import math

import numpy as np
import pytest
import torch

from colorizer.errors import InputError
from colorizer.metrics import (
    ab_accuracy,
    ab_thresholds,
    auc_ab,
    ciede2000,
    colorfulness,
    delta_e_2000,
    psnr,
)


def test_psnr_matches_formula_and_is_per_image():
    torch.manual_seed(0)
    a = torch.rand(3, 3, 8, 8)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    got = psnr(b, a)
    assert got.shape == (3,)
    for i in range(3):
        mse = float(((a[i].double() - b[i].double()) ** 2).mean())
        assert got[i].item() == pytest.approx(10 * math.log10(1 / mse), rel=1e-5)
    assert psnr(a, a).min().item() > 90  # identical: huge, finite


def test_ab_accuracy_counts_errors_within_each_threshold():
    true = torch.zeros(1, 2, 1, 4)
    pred = torch.zeros(1, 2, 1, 4)
    pred[0, 0, 0] = torch.tensor([0.0, 3.0, 10.5, 200.0])  # errors 0, 3, 10.5, 200 (a only)
    curve = ab_accuracy(pred, true)
    assert curve.shape == (1, 151)
    t = ab_thresholds()
    want = ((t >= 0).float() + (t >= 3).float() + (t >= 10.5).float() + (t >= 200).float()) / 4
    assert torch.equal(curve[0], want)


def test_auc_is_one_for_perfect_and_falls_linearly_with_constant_error():
    torch.manual_seed(1)
    true = torch.randn(2, 2, 6, 6) * 30
    assert torch.allclose(auc_ab(true, true), torch.ones(2))
    shift = torch.zeros_like(true)
    shift[:, 1] = 30.25  # every pixel 30.25 ab units off
    auc = auc_ab(true + shift, true)
    # curve: 0 up to t = 30, 1 from t = 31: trapezoids give (150 - 31) + 0.5 over 150
    assert torch.allclose(auc, torch.full((2,), 119.5 / 150.0), atol=1e-6)


def test_auc_of_grey_is_higher_for_duller_images():
    torch.manual_seed(2)
    dull = torch.randn(1, 2, 16, 16) * 5
    vivid = torch.randn(1, 2, 16, 16) * 60
    zero = torch.zeros_like(dull)
    assert auc_ab(zero, dull).item() > auc_ab(zero, vivid).item()


def _colorfulness_numpy(rgb: np.ndarray) -> float:
    r, g, b = (255.0 * rgb.astype(np.float64)).reshape(3, -1)
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def test_colorfulness_matches_hasler_suesstrunk_and_is_zero_for_grey():
    torch.manual_seed(3)
    rgb = torch.rand(2, 3, 10, 12)
    got = colorfulness(rgb)
    for i in range(2):
        assert got[i].item() == pytest.approx(_colorfulness_numpy(rgb[i].numpy()), rel=1e-5)
    grey = torch.rand(1, 1, 10, 12).expand(1, 3, 10, 12)
    assert colorfulness(grey).item() == pytest.approx(0.0, abs=1e-4)


def test_shape_errors_are_input_errors():
    with pytest.raises(InputError):
        psnr(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5))
    with pytest.raises(InputError):
        auc_ab(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))
    with pytest.raises(InputError):
        colorfulness(torch.rand(3, 4, 4))


# Sharma, Wu, Dalal (2005), "The CIEDE2000 color-difference formula": published test pairs.
SHARMA_PAIRS = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0011), 7.2195),  # hue across 180 degrees
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((90.8027, -2.0831, 1.441), (91.1528, -1.6435, 0.0447), 1.4441),
    ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.mark.parametrize(("lab1", "lab2", "expected"), SHARMA_PAIRS)
def test_ciede2000_matches_the_published_pairs(lab1, lab2, expected) -> None:
    a = torch.tensor(lab1, dtype=torch.float64).view(1, 3, 1, 1)
    b = torch.tensor(lab2, dtype=torch.float64).view(1, 3, 1, 1)
    assert delta_e_2000(a, b).item() == pytest.approx(expected, abs=1e-4)
    assert delta_e_2000(b, a).item() == pytest.approx(expected, abs=1e-4)  # symmetric


def test_ciede2000_matches_scikit_image_on_real_photos() -> None:
    from skimage import color
    from skimage import data as skdata

    first = color.rgb2lab(skdata.astronaut()[:64, :64] / 255.0)
    second = color.rgb2lab(skdata.coffee()[:64, :64] / 255.0)
    reference = color.deltaE_ciede2000(first, second)  # (64, 64)

    def batch(lab: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(lab).permute(2, 0, 1)[None]

    ours = delta_e_2000(batch(first), batch(second))[0].numpy()
    assert np.abs(ours - reference).max() < 1e-9
    mean = ciede2000(batch(first).float(), batch(second).float())
    assert mean.shape == (1,) and mean.item() == pytest.approx(reference.mean(), rel=1e-5)
    assert ciede2000(batch(first).float(), batch(first).float()).item() == 0.0
