"""Lab <-> sRGB in torch against scikit-image in float64; Lab -> uint8 sRGB (numpy on CPU)
against the torch reference."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import color, data

from colorizer.errors import InputError
from colorizer.lab import (
    _lab_to_srgb_u8_reference,
    _outside,
    grey_u8_to_L,
    join_lab,
    lab_to_linear,
    lab_to_rgb,
    lab_to_srgb_u8,
    rgb_to_lab,
    rgb_u8_to_L,
    split_lab,
)


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


# --------------------------------------------------------------------------- lab_to_srgb_u8
# The CPU path (numpy) against the torch code it replaces, kept as the reference.


def _compare(got: torch.Tensor, ref: torch.Tensor) -> tuple[int, float]:
    """(max difference in uint8 levels, fraction of identical values) of two uint8 images."""
    assert got.dtype == torch.uint8 and got.shape == ref.shape
    diff = (got.int() - ref.int()).abs()
    return int(diff.max()), float((diff == 0).float().mean())


def _assert_matches_reference(L: torch.Tensor, ab: torch.Tensor, label: str = "") -> None:
    worst, same = _compare(lab_to_srgb_u8(L, ab), _lab_to_srgb_u8_reference(L, ab))
    assert worst <= 1 and same >= 0.999, (label, worst, same)


def _smooth_ab(shape: tuple[int, int], scale: float, seed: int) -> torch.Tensor:
    """(1, 2, H, W) random ab, smooth: normal(0, scale) at 1/16 size, upsampled bilinearly."""
    g = torch.Generator().manual_seed(seed)
    h, w = shape
    low = torch.randn(1, 2, max(2, h // 16), max(2, w // 16), generator=g) * scale
    return F.interpolate(low, size=shape, mode="bilinear", align_corners=False)


@pytest.fixture(scope="module", params=["astronaut", "coffee", "chelsea"])
def photo(request: pytest.FixtureRequest) -> tuple[torch.Tensor, torch.Tensor]:
    """A real photo: (L (1, 1, H, W) from its 8-bit RGB, its true ab (1, 2, H, W))."""
    rgb = torch.from_numpy(getattr(data, request.param)())[None]
    lab = rgb_to_lab(rgb.permute(0, 3, 1, 2).float() / 255.0)
    return rgb_u8_to_L(rgb), lab[:, 1:]


def _photo_abs(photo: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    L, ab = photo
    return {
        "true": ab,
        "x1.5": ab * 1.5,
        "x3": ab * 3.0,  # far out of gamut: most pixels are bisected
        "smooth": _smooth_ab(tuple(L.shape[-2:]), 40.0, seed=3),
    }


def test_u8_matches_reference_on_photos(photo: tuple[torch.Tensor, torch.Tensor]) -> None:
    L, _ = photo
    for name, ab in _photo_abs(photo).items():
        _assert_matches_reference(L, ab, name)


def test_u8_photo_inputs_exercise_the_gamut_mapping(
    photo: tuple[torch.Tensor, torch.Tensor],
) -> None:
    L, ab = photo
    bad = _outside(lab_to_linear(L[:, 0], 3.0 * ab[:, 0], 3.0 * ab[:, 1]))
    assert float(bad.float().mean()) > 0.2  # the test above compares the bisection too


def test_u8_gamut_mapping_keeps_L(photo: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Out-of-gamut pixels lose chroma, not lightness: L of the output is the input's, to
    8-bit rounding."""
    L, _ = photo
    for name, ab in _photo_abs(photo).items():
        err = (rgb_u8_to_L(lab_to_srgb_u8(L, ab)) - L).abs().max()
        assert err < 0.5, (name, float(err))


def test_u8_greys_are_exact() -> None:
    """ab = 0 on the L of every grey level gives that grey back, R = G = B."""
    grey = torch.arange(256, dtype=torch.uint8).view(1, 16, 16)
    out = lab_to_srgb_u8(grey_u8_to_L(grey), torch.zeros(1, 2, 16, 16))
    assert torch.equal(out, grey[..., None].expand(-1, -1, -1, 3))


@pytest.mark.parametrize(("L_value", "level"), [(0.0, 0), (100.0, 255)])
def test_u8_black_and_white(L_value: float, level: int) -> None:
    L = torch.full((2, 1, 5, 7), L_value)
    ab = torch.zeros(2, 2, 5, 7)
    assert torch.equal(lab_to_srgb_u8(L, ab), torch.full((2, 5, 7, 3), level, dtype=torch.uint8))
    ab[:, :, 1:] = torch.tensor([128.0, -128.0]).view(1, 2, 1, 1)  # all out of gamut
    _assert_matches_reference(L, ab)


def test_u8_extreme_ab_over_all_L() -> None:
    """Every L in [0, 100] (and a little beyond) with a, b in {-128, 0, 128} and a ring of
    chroma 128 at all hues: the corners of the ab range, far outside the gamut."""
    L = torch.linspace(-0.5, 100.5, 203).view(1, 1, -1, 1).expand(1, 1, 203, 45)
    hue = torch.linspace(0, 2 * torch.pi, 36)
    corners = torch.tensor([-128.0, 0.0, 128.0])
    a = torch.cat((corners.repeat_interleave(3), 128 * hue.cos()))
    b = torch.cat((corners.repeat(3), 128 * hue.sin()))
    ab = torch.stack((a, b)).view(1, 2, 1, 45).expand(1, 2, 203, 45)
    _assert_matches_reference(L.contiguous(), ab.contiguous())


def test_u8_any_layout_dtype_and_thread_count() -> None:
    """Non-contiguous and broadcast (stride 0) inputs, float64, odd sizes, 1 or 2 threads."""
    photo_L = rgb_u8_to_L(torch.from_numpy(data.coffee())[None])[..., :123, :77]
    ab = _smooth_ab((123, 77), 60.0, seed=5)
    _assert_matches_reference(photo_L, ab)  # sliced L
    _assert_matches_reference(photo_L.double(), ab.double())
    flat = torch.tensor([20.0, -30.0]).view(1, 2, 1, 1).expand(1, 2, 123, 77)
    _assert_matches_reference(photo_L, flat)
    thin = photo_L[..., :1].contiguous(), ab[..., :1].contiguous()  # width 1
    _assert_matches_reference(*thin)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = lab_to_srgb_u8(photo_L.expand(3, -1, -1, -1), ab.expand(3, -1, -1, -1))
        torch.set_num_threads(2)
        two = lab_to_srgb_u8(photo_L.expand(3, -1, -1, -1), ab.expand(3, -1, -1, -1))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    assert lab_to_srgb_u8(torch.zeros(0, 1, 4, 4), torch.zeros(0, 2, 4, 4)).shape == (0, 4, 4, 3)


def test_u8_small_blocks_jobs_and_bisection_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs, blocks and bisection chunks far smaller than an image (their edges everywhere)
    give the same bytes."""
    import colorizer.lab as lab

    L = rgb_u8_to_L(torch.from_numpy(data.chelsea())[None])[..., :101, :203]
    L = torch.cat((L, L.flip(-1)))
    ab = torch.cat((_smooth_ab((101, 203), 50.0, seed=7), _smooth_ab((101, 203), 90.0, seed=8)))
    expected = _lab_to_srgb_u8_reference(L, ab)
    monkeypatch.setattr(lab, "_JOB_PX", 5000)
    monkeypatch.setattr(lab, "_BLOCK_PX", 700)
    monkeypatch.setattr(lab, "_BISECT_PX", 333)
    assert torch.equal(lab_to_srgb_u8(L, ab), expected)
