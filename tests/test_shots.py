"""Shot detection on synthetic films with known transitions."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from filmdata.errors import ConfigError, FilmDataError
from filmdata.shot_eval import (
    PrintFade,
    ShotScore,
    fade_film,
    match_transitions,
    score_transitions,
)
from filmdata.shots import (
    DETECTORS,
    ShotConfig,
    ShotDetectionError,
    ShotDetector,
    Transition,
)
from filmdata.synthetic import (
    FilmTruth,
    ShotSpec,
    TransitionSpec,
    make_film,
    photo,
    standard_plan,
)
from shotdetect import DetectorError

WIDTH = 256  # analysis width, pixels


def _decode_small(path: Path, width: int = WIDTH) -> list[np.ndarray]:
    """Every frame as RGB uint8 (h, width, 3)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        height = round(stream.height * width / stream.width / 2) * 2
        return [
            f.reformat(width=width, height=height, format="rgb24").to_ndarray()
            for f in container.decode(video=0)
        ]


def _detect(
    frames: list[np.ndarray], fps: float, cfg: ShotConfig | None = None
) -> list[Transition]:
    """Run the detector as the extractor does, checking the promised lag on the way."""
    detector = ShotDetector(cfg or ShotConfig(), fps)
    found: list[Transition] = []
    for index, rgb in enumerate(frames):
        for transition in detector.push(index, rgb):
            assert index - transition.end <= detector.max_lag
            found.append(transition)
    found.extend(detector.flush())
    cuts = [t.cut for t in found]
    assert cuts == sorted(cuts) and len(set(cuts)) == len(cuts)
    return found


def _film(tmp_path: Path, shots: list[ShotSpec], transitions: list[TransitionSpec], seed: int = 0):
    truth = make_film(tmp_path / "film.mp4", (shots, transitions), seed=seed)
    return truth, _decode_small(truth.path)


def _truth_spans(truth: FilmTruth) -> list[tuple[int, int]]:
    return [(t.start, t.end) for t in truth.transitions]


@pytest.mark.slow
def test_f1_on_realistic_synthetic_films_plain_and_faded(tmp_path: Path) -> None:
    """Pans, zooms, shake, grain, flicker, a cast, night shots, a title card, flashes, cuts,
    dissolves and fades: F1 >= 0.97 over three films (PySceneDetect's CLI: ~0.75), and
    the same on the films re-encoded as a faded print (lifted, unequal black levels, dim
    whites, per-channel gamma)."""
    totals = {"plain": ShotScore(0, 0, 0), "faded": ShotScore(0, 0, 0)}
    for seed in (0, 1, 2):
        plan = standard_plan(seed=seed, n_shots=8, seconds_per_shot=1.5)
        truth = make_film(tmp_path / f"film{seed}.mp4", plan, size=(256, 192), seed=seed)
        faded = fade_film(truth.path, tmp_path / f"faded{seed}.mp4", PrintFade())
        for kind, path in (("plain", truth.path), ("faded", faded)):
            found = _detect(_decode_small(path), truth.fps)
            totals[kind] += score_transitions([t.cut for t in found], _truth_spans(truth))
    for kind, total in totals.items():
        assert total.f1 >= 0.97, (kind, total)


def test_flashes_inside_a_shot_make_no_cut(tmp_path: Path) -> None:
    flashes = ((10, 1), (30, 2), (50, 3))
    shots = [ShotSpec("coffee", 72, "pan", flashes=flashes), ShotSpec("rocket", 72, "static",
                                                                       flashes=((20, 2),))]
    truth, frames = _film(tmp_path, shots, [TransitionSpec("cut", 0)])
    found = _detect(frames, truth.fps)
    assert [t.cut for t in found] == [72]


@pytest.mark.parametrize(("kind", "n_frames"), [("dissolve", 12), ("dissolve", 24), ("fade", 24)])
def test_a_gradual_transition_gives_one_transition(
    tmp_path: Path, kind: str, n_frames: int
) -> None:
    shots = [ShotSpec("astronaut", 60, "pan"), ShotSpec("chelsea", 60, "zoom")]
    truth, frames = _film(tmp_path, shots, [TransitionSpec(kind, n_frames)])
    found = _detect(frames, truth.fps)
    assert len(found) == 1, found
    (tr,) = truth.transitions
    assert tr.start - 2 <= found[0].cut <= tr.end + 2
    assert not found[0].is_hard_cut


def test_fade_between_night_shots_gives_one_transition(tmp_path: Path) -> None:
    shots = [
        ShotSpec("rocket", 60, "pan", kind="dark"),
        ShotSpec("coffee", 60, "zoom", kind="dark"),
    ]
    truth, frames = _film(tmp_path, shots, [TransitionSpec("fade", 22)])
    found = _detect(frames, truth.fps)
    assert len(found) == 1, found
    (tr,) = truth.transitions
    assert tr.start - 2 <= found[0].cut <= tr.end + 2


def test_hard_cuts_land_within_two_frames(tmp_path: Path) -> None:
    shots = [
        ShotSpec("astronaut", 40, "pan"),
        ShotSpec("hubble_deep_field", 40, "shake"),
        ShotSpec("coffee", 40, "zoom", cast=(1.18, 1.0, 0.78)),
        ShotSpec("rocket", 40, "pan", kind="dark"),
        ShotSpec("chelsea", 40, "static", kind="dark"),
        ShotSpec("retina", 40, "static", kind="title", text="REEL TWO"),
    ]
    truth, frames = _film(tmp_path, shots, [TransitionSpec("cut", 0)] * 5)
    found = _detect(frames, truth.fps)
    cuts = [t.cut for t in found]
    assert len(match_transitions(cuts, _truth_spans(truth), tolerance=2)) == 5
    assert len(found) == 5
    assert all(abs(c - t.cut) <= 2 for c, t in zip(cuts, truth.transitions, strict=True))


def test_min_shot_s_is_honoured(tmp_path: Path) -> None:
    shots = [ShotSpec("astronaut", 48, "pan"), ShotSpec("coffee", 16, "static"),
             ShotSpec("rocket", 48, "pan")]
    truth, frames = _film(tmp_path, shots, [TransitionSpec("cut", 0)] * 2)
    both = _detect(frames, truth.fps, ShotConfig(min_shot_s=0.5))
    assert [t.cut for t in both] == [48, 64]
    one = _detect(frames, truth.fps, ShotConfig(min_shot_s=1.0))
    assert len(one) == 1 and one[0].cut in (48, 64)
    # The film's start and end are no transitions: a long min_shot_s still keeps one cut.
    longer = _detect(frames, truth.fps, ShotConfig(min_shot_s=2.5))
    assert len(longer) == 1 and longer[0].cut in (48, 64)


def test_a_short_last_shot_keeps_its_cut(tmp_path: Path) -> None:
    """A clip may end (or start) in the middle of a shot: its short last shot is still a
    shot of its own, not part of the one before."""
    shots = [ShotSpec("astronaut", 72, "pan"), ShotSpec("coffee", 10, "static")]
    truth, frames = _film(tmp_path, shots, [TransitionSpec("cut", 0)])
    found = _detect(frames, truth.fps)  # min_shot_s 0.6 s: 14 frames
    assert [t.cut for t in found] == [72]


def _pan(photo_name: str, n: int, step: float, width: int = WIDTH) -> list[np.ndarray]:
    """n frames of a photo panned by ``step`` pixels per frame, (192, width, 3) RGB."""
    img = cv2.resize(photo(photo_name), (2 * width, 384), interpolation=cv2.INTER_AREA)
    return [
        cv2.warpAffine(img, np.float32([[1, 0, -step * i], [0, 0.5, 0]]), (width, 192),
                       borderMode=cv2.BORDER_REFLECT)
        for i in range(n)
    ]


def test_fast_pans_make_no_transition_and_a_dissolve_does() -> None:
    """Frames of a fast pan are moved pictures, not blends: no transition, however much
    the picture changes (the previous detector merged such changes into long 'dissolves').
    A dissolve between two of those pans is one gradual transition."""
    fast = _pan("astronaut", 120, 6.0)  # 6 px per frame: 2.8 frame widths in 5 s
    assert _detect(fast, 24.0) == []
    a, b = _pan("coffee", 60, 2.0), _pan("rocket", 60, 2.0)
    n = 16  # mixed frames
    mixed = [
        cv2.addWeighted(a[40 + k], 1 - (k + 1) / (n + 1), b[k], (k + 1) / (n + 1), 0)
        for k in range(n)
    ]
    found = _detect(a[:40] + mixed + b[n:], 24.0)
    assert len(found) == 1 and not found[0].is_hard_cut, found
    assert 40 <= found[0].cut < 40 + n


@pytest.mark.parametrize("name", [d for d in DETECTORS if d != "film"])
def test_scenedetect_detectors_find_hard_cuts(tmp_path: Path, name: str) -> None:
    shots = [ShotSpec("astronaut", 30, "static"), ShotSpec("coffee", 30, "static")]
    transition = TransitionSpec("fade", 16) if name == "threshold" else TransitionSpec("cut", 0)
    truth, frames = _film(tmp_path, shots, [transition])  # ThresholdDetector sees fades only
    found = _detect(frames, truth.fps, ShotConfig(detector=name, min_shot_s=0.3))
    assert len(found) == 1 and found[0].is_hard_cut
    assert abs(found[0].cut - truth.transitions[0].cut) <= 8


def test_bad_settings_and_out_of_order_frames_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"--detector .*'magic': choose one of film"):
        ShotConfig(detector="magic")
    with pytest.raises(ConfigError, match=r"min_shot_s.*\[0, 30\]"):
        ShotConfig(min_shot_s=-1)
    for bad in (-1.0, 0.0, float("nan"), float("inf"), 300.0):
        with pytest.raises(ConfigError, match="--threshold"):
            ShotConfig(threshold=bad)
    with pytest.raises(ConfigError, match=r"\(0, 1\] for the hash detector"):
        ShotConfig(detector="hash", threshold=27.0)
    with pytest.raises(ConfigError, match="whole number"):
        ShotConfig(analysis_width=256.5)  # type: ignore[arg-type]
    assert issubclass(ShotDetectionError, FilmDataError)
    detector = ShotDetector(ShotConfig(), 24.0)
    frame = np.zeros((144, WIDTH, 3), np.uint8)
    detector.push(0, frame)
    with pytest.raises(DetectorError, match="in order"):
        detector.push(2, frame)


def test_score_transitions_matching_rules() -> None:
    truth = [(10, 10), (40, 60), (90, 90)]
    score = score_transitions([11, 45, 55, 93, 200], truth, tolerance=2)
    # 11 matches the cut at 10; one of 45/55 matches the dissolve; 93 is 3 frames off.
    assert (score.true_positives, score.false_positives, score.false_negatives) == (2, 3, 1)
    assert score_transitions([], []).f1 == 1.0
