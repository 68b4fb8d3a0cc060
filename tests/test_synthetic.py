"""The synthetic-film generator makes the film its ground truth describes."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import numpy as np
import pytest

from filmdata.synthetic import (
    FilmTruth,
    ShotSpec,
    TransitionSpec,
    make_film,
    standard_plan,
)


def _decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """All frames of the first video stream as RGB uint8 (h, w, 3), and their times (s)."""
    frames, times = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
    return frames, times


def _luma(rgb: np.ndarray) -> float:
    return float((rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114])).mean())


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> tuple[FilmTruth, list[np.ndarray], list[float]]:
    plan = standard_plan(seed=3, n_shots=8, seconds_per_shot=1.5)
    truth = make_film(tmp_path_factory.mktemp("film") / "film.mp4", plan, size=(192, 144), seed=3)
    frames, times = _decode(truth.path)
    return truth, frames, times


def _tiny_plan() -> tuple[list[ShotSpec], list[TransitionSpec]]:
    shots = [
        ShotSpec("astronaut", 12, "pan"),
        ShotSpec("coffee", 12, "zoom", kind="dark"),
        ShotSpec("rocket", 12, "static", kind="title", text="END"),
    ]
    return shots, [TransitionSpec("dissolve", 6), TransitionSpec("cut", 0)]


def test_standard_plan_has_the_realistic_mix() -> None:
    shots, transitions = standard_plan(seed=5)
    assert len(shots) == 12 and len(transitions) == 11
    kinds = {t.kind for t in transitions}
    assert {"cut", "dissolve", "fade"} <= kinds
    assert sum(s.kind == "dark" for s in shots) == 2
    assert sum(s.kind == "title" for s in shots) == 1
    assert sum(s.cast != (1.0, 1.0, 1.0) for s in shots) == 1
    assert sum(len(s.flashes) for s in shots) >= 1
    assert {s.motion for s in shots} & {"pan", "zoom"}
    assert all(a.photo != b.photo for a, b in itertools.pairwise(shots))
    assert standard_plan(seed=5) == (shots, transitions)
    assert standard_plan(seed=6) != (shots, transitions)


def test_frame_count_and_spans_match_the_truth(film) -> None:
    truth, frames, times = film
    assert len(frames) == truth.n_frames
    assert frames[0].shape == (truth.height, truth.width, 3)
    assert truth.shots[0][0] == 0 and truth.shots[-1][1] == truth.n_frames
    for (_, end), (start, _) in itertools.pairwise(truth.shots):
        assert end == start
    for tr, (start, _) in zip(truth.transitions, truth.shots[1:], strict=True):
        assert tr.start <= tr.cut == start <= tr.end
        assert (tr.start == tr.end) == (tr.kind == "cut")
    assert np.all(np.diff(times) > 0)
    assert times == pytest.approx(list(truth.pts_s), abs=1e-3)


def test_a_cut_changes_the_picture_and_a_shot_holds_it(film) -> None:
    truth, frames, _ = film
    cut = next(t for t in truth.transitions if t.kind == "cut")
    diff_cut = np.abs(frames[cut.start].astype(int) - frames[cut.start - 1]).mean()
    inside = cut.start - 5
    diff_shot = np.abs(frames[inside].astype(int) - frames[inside - 1]).mean()
    assert diff_cut > 3 * diff_shot


def test_dark_title_flash_and_cast_shots_look_as_specified(film) -> None:
    truth, frames, _ = film
    trans_frames = {i for t in truth.transitions for i in range(t.start - 1, t.end + 1)}

    def pure(shot: int) -> list[np.ndarray]:
        start, end = truth.shots[shot]
        return [frames[i] for i in range(start, end) if i not in trans_frames]

    for shot in truth.dark_shots:
        assert 5.0 < np.mean([_luma(f) for f in pure(shot)]) < 25.0
    (title,) = truth.title_shots
    card = np.mean(pure(title), axis=0)  # (h, w, 3)
    assert np.abs(card[..., 0] - card[..., 2]).mean() < 12  # near-grey
    assert card.max() > 180  # white text
    flashes = set(truth.flash_frames)
    assert flashes
    for i in flashes - {f + 1 for f in flashes}:  # first frame of each flash
        assert _luma(frames[i]) > _luma(frames[i - 1]) + 40
    cast = next(i for i, c in enumerate(truth.casts) if c != (1.0, 1.0, 1.0))
    assert truth.casts[cast][0] > truth.casts[cast][2]


@pytest.mark.parametrize(
    ("name", "kwargs", "codec", "pix_fmt"),
    [
        ("x264.mp4", {}, "h264", "yuv420p"),
        ("x264.mkv", {}, "h264", "yuv420p"),
        ("hevc.mkv", {"codec": "libx265"}, "hevc", "yuv420p"),
        ("interlaced.mpg", {}, "mpeg2video", "yuv420p"),
        ("mpeg4.avi", {}, "mpeg4", "yuv420p"),
        ("ten_bit.mkv", {"pix_fmt": "yuv420p10le"}, "h264", "yuv420p10le"),
        ("gray.mkv", {"codec": "libx265", "pix_fmt": "gray"}, "hevc", "gray"),
        ("full_range.mp4", {"pix_fmt": "yuvj420p"}, "h264", "yuvj420p"),
    ],
)
def test_codec_and_pixel_format_variants_decode(tmp_path, name, kwargs, codec, pix_fmt) -> None:
    truth = make_film(tmp_path / name, _tiny_plan(), size=(160, 120), seed=1, **kwargs)
    with av.open(str(truth.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == codec
        assert stream.codec_context.pix_fmt == pix_fmt
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == truth.n_frames == 42
    if pix_fmt == "gray":
        assert np.array_equal(frames[0][..., 0], frames[0][..., 2])


def test_x264_gray_content_is_monochrome(tmp_path) -> None:
    truth = make_film(tmp_path / "gray.mp4", _tiny_plan(), size=(160, 120), pix_fmt="gray")
    frames, _ = _decode(truth.path)
    assert len(frames) == truth.n_frames
    assert np.abs(frames[0][..., 0].astype(int) - frames[0][..., 2]).max() <= 2


def test_variable_frame_rate_has_irregular_timestamps(tmp_path) -> None:
    truth = make_film(tmp_path / "vfr.mkv", _tiny_plan(), size=(160, 120), vfr=True)
    frames, times = _decode(truth.path)
    assert len(frames) == truth.n_frames
    steps = np.diff(times)
    assert np.all(steps > 0) and steps.std() > 0.002
    assert times == pytest.approx(list(truth.pts_s), abs=1e-3)


@pytest.mark.parametrize(("name", "audio_codec"), [("a.mp4", "aac"), ("a.mpg", "mp2")])
def test_audio_track_spans_the_film(tmp_path, name, audio_codec) -> None:
    truth = make_film(tmp_path / name, _tiny_plan(), size=(160, 120), audio=True)
    with av.open(str(truth.path)) as container:
        (audio,) = container.streams.audio
        assert audio.codec_context.name == audio_codec
        samples = sum(f.samples for f in container.decode(audio=0))
    assert samples / audio.codec_context.sample_rate == pytest.approx(
        truth.n_frames / truth.fps, abs=0.1
    )


def test_same_seed_same_pixels(tmp_path) -> None:
    a = make_film(tmp_path / "a.mp4", _tiny_plan(), size=(160, 120), seed=7)
    b = make_film(tmp_path / "b.mp4", _tiny_plan(), size=(160, 120), seed=7)
    fa, _ = _decode(a.path)
    fb, _ = _decode(b.path)
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))


def test_plan_with_wrong_transition_count_is_refused(tmp_path) -> None:
    shots, _ = _tiny_plan()
    with pytest.raises(ValueError, match="transitions"):
        make_film(tmp_path / "bad.mp4", (shots, []))
