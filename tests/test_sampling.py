"""ShotSampler and choose: bounded, evenly spread, sharpest per part."""

from __future__ import annotations

import numpy as np
import pytest

from filmdata.errors import ConfigError
from filmdata.sampling import Candidate, SampleConfig, ShotSampler, choose, parse_frames_per_shot


def feed(sampler: ShotSampler, frames: range, released: list[int]) -> int:
    """Offer frames; return the most candidates held at any time."""
    most = 0
    for i in frames:
        sampler.offer(i, float(i % 7), i)
        most = max(most, len(sampler.held()))
    return most


def test_candidates_stay_bounded_and_cover_a_long_shot() -> None:
    released: list[int] = []
    sampler = ShotSampler(32, lag=38, release=released.append)
    most = feed(sampler, range(100_000), released)
    assert most <= 32 + 38 // 2 + 1
    settled = [c.index for c in sampler.candidates]
    assert settled[0] == 0 and settled[-1] > 100_000 * 0.9
    gaps = np.diff(settled)
    assert gaps.max() <= 2 * gaps.min()  # evenly spread
    held = {c.index for c in sampler.held()}
    assert len(held) + len(released) == 100_000  # every frame is released or held


def test_split_hands_late_frames_to_the_next_shot() -> None:
    sampler = ShotSampler(8, lag=10)
    feed(sampler, range(0, 200), [])
    done = sampler.split(190)
    assert all(c.index < 190 for c in done)
    assert [c.index for c in sampler.held()] == [190, 192, 194, 196, 198]
    assert sampler.start == 190 and sampler.stride == 1


def test_drop_range_forgets_mixed_frames() -> None:
    released: list[int] = []
    sampler = ShotSampler(64, lag=4, release=released.append)
    feed(sampler, range(0, 40), released)
    sampler.drop_range(10, 20)
    assert not [c for c in sampler.held() if 10 <= c.index < 20]
    assert {10, 12, 14, 16, 18} <= set(released)


def test_choose_takes_the_sharpest_of_each_part_inside_the_clean_span() -> None:
    scores = {5: 1.0, 12: 9.0, 20: 2.0, 35: 3.0, 38: 8.0, 50: 1.0, 61: 7.0, 70: 5.0, 95: 99.0}
    candidates = [Candidate(i, s, i) for i, s in scores.items()]
    chosen = choose(candidates, 10, 70, 3)  # parts [10,30) [30,50) [50,70)
    assert [c.index for c in chosen] == [12, 38, 61]


def test_choose_makes_up_for_empty_parts() -> None:
    candidates = [Candidate(i, 1.0, i) for i in (40, 42, 44, 46)]
    chosen = choose(candidates, 0, 100, 3)
    assert len(chosen) == 3 and {40, 46} <= {c.index for c in chosen}


def test_more_frames_for_longer_shots() -> None:
    cfg = SampleConfig()
    assert [cfg.frames_for(s) for s in (1, 3.9, 4, 8, 60)] == [3, 3, 4, 5, 5]


@pytest.mark.parametrize(("text", "expected"), [("4", (4, 4)), ("3-5", (3, 5)), ("1-1", (1, 1))])
def test_frames_per_shot_parsing(text, expected) -> None:
    assert parse_frames_per_shot(text) == expected


@pytest.mark.parametrize("text", ["5-3", "0", "x", "1-2-3", ""])
def test_bad_frames_per_shot(text) -> None:
    with pytest.raises(ConfigError, match="frames-per-shot"):
        parse_frames_per_shot(text)
