"""colorize: images keep their L, films keep frame count, timing and audio; bad inputs fail
one at a time with one clear line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skimage import color
from skimage import data as skdata

from cli import main
from colorizer.colorize import colorize_paths
from colorizer.colorize_config import ColorizeConfig
from colorizer.colorize_film import frames_held_bound
from colorizer.lab import lab_to_rgb_in_gamut, rgb_to_lab
from colorizer.predictor import Colorizer, work_shape
from filmdata.synthetic import make_film, standard_plan
from tests.faults import dead_pid
from tests.helpers_colorizer import make_checkpoint

FPS = 12


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "eccv16.pt", "eccv16")


@pytest.fixture(scope="module")
def colorizer(ckpt: Path) -> Colorizer:
    return Colorizer.from_checkpoint(ckpt, "cpu", work_size=64)


@pytest.fixture(scope="module")
def bw_film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A black-and-white film with AAC audio: 2 shots at 160x120, 12 fps, ~7 s."""
    path = tmp_path_factory.mktemp("films") / "bw.mp4"
    plan = standard_plan(seed=5, n_shots=2, fps=FPS, seconds_per_shot=3.5)
    make_film(path, plan, size=(160, 120), fps=FPS, audio=True, pix_fmt="gray")
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def film_cfg(ckpt: Path, out: Path, **kw) -> ColorizeConfig:
    return ColorizeConfig(checkpoint=ckpt, out=out, work_size=64, quiet=True, **kw)


def run_one(inputs: list[Path], cfg: ColorizeConfig, colorizer: Colorizer | None = None):
    results = list(colorize_paths(inputs, cfg, colorizer))
    assert len(results) == len(inputs)
    return results


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        info = {
            "rate": v.average_rate,
            "video_s": float(v.duration * v.time_base),
            "audio_s": float(a.duration * a.time_base) if a is not None else None,
            "audio_codec": a.codec_context.name if a is not None else None,
        }
        info["audio_packets"] = sum(1 for p in c.demux(a) if p.size) if a is not None else 0
    with av.open(str(path)) as c:
        info["frames"] = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return info


def cli(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


# --------------------------------------------------------------------------- images


def test_colour_photo_keeps_its_L(photo: Path, colorizer: Colorizer, ckpt: Path,
                                  tmp_path: Path) -> None:
    (result,) = run_one([photo], ColorizeConfig(checkpoint=ckpt, out=tmp_path, quiet=True),
                        colorizer)
    assert result.error is None and result.output == tmp_path / "astronaut_color.png"
    out = cv2.cvtColor(cv2.imread(str(result.output)), cv2.COLOR_BGR2RGB)
    original = skdata.astronaut()
    assert out.shape == original.shape  # full resolution
    L_in = color.rgb2lab(original)[..., 0]
    lab_out = color.rgb2lab(out)
    assert np.abs(lab_out[..., 0] - L_in).max() <= 1.0
    assert np.hypot(lab_out[..., 1], lab_out[..., 2]).mean() > 1.0  # it did add colour


def test_grey_image_and_jpg_output(colorizer: Colorizer, ckpt: Path, tmp_path: Path) -> None:
    grey = skdata.camera()[:301, :203]  # odd sizes
    src = tmp_path / "camera.png"
    cv2.imwrite(str(src), grey)
    cfg = ColorizeConfig(checkpoint=ckpt, out=tmp_path / "out", image_format="jpg", quiet=True)
    (result,) = run_one([src], cfg, colorizer)
    assert result.output == tmp_path / "out" / "camera_color.jpg"
    out = cv2.cvtColor(cv2.imread(str(result.output)), cv2.COLOR_BGR2RGB)
    assert out.shape == (301, 203, 3)
    L_in = color.rgb2lab(np.dstack([grey] * 3))[..., 0]
    assert np.abs(color.rgb2lab(out)[..., 0] - L_in).mean() < 1.0  # JPEG: on average


def test_gamut_mapping_never_changes_L() -> None:
    g = torch.Generator().manual_seed(0)
    L = torch.rand(2, 1, 16, 16, generator=g) * 100
    ab = (torch.rand(2, 2, 16, 16, generator=g) - 0.5) * 260  # far out of gamut
    rgb = lab_to_rgb_in_gamut(L, ab)
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert (rgb_to_lab(rgb)[:, :1] - L).abs().max() < 0.05


def test_cli_defaults_are_the_configs() -> None:
    """`colorize`'s options repeat ColorizeConfig's defaults (the CLI must not import torch
    to read them): they must not drift apart."""
    defaults = {f.name: f.default for f in dataclasses.fields(ColorizeConfig)
                if f.default is not dataclasses.MISSING}
    shared = [p for p in main.commands["colorize"].params if p.name in defaults]
    assert {p.name for p in shared} >= {"smooth_s", "keyframes", "crf", "batch_size"}
    for p in shared:
        assert p.default == defaults[p.name], p.name


def test_work_shape_rounds_to_8_and_never_upscales() -> None:
    assert work_shape(720, 1280, 256) == (256, 456)
    assert work_shape(120, 160, 256) == (120, 160)
    assert work_shape(301, 203, 256) == (304, 200)


# --------------------------------------------------------------------------- films


@pytest.mark.slow
def test_bw_film_becomes_colour_film_with_same_frames_timing_and_audio(
    bw_film: Path, ckpt: Path, colorizer: Colorizer, tmp_path: Path
) -> None:
    (result,) = run_one([bw_film], film_cfg(ckpt, tmp_path), colorizer)
    assert result.error is None, result.error
    assert result.output == tmp_path / "bw_color.mp4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bw_color.mp4", "colorized.jsonl"]
    src, out = probe(bw_film), probe(result.output)
    assert len(out["frames"]) == len(src["frames"]) == result.frames
    assert out["rate"] == src["rate"]
    assert abs(out["video_s"] - src["video_s"]) <= 1.0 / FPS
    assert out["audio_codec"] == src["audio_codec"] == "aac"
    assert out["audio_packets"] == src["audio_packets"]
    assert abs(out["audio_s"] - src["audio_s"]) < 0.05
    # The grey content is kept (up to H.264), and colour was added.
    L_src = rgb_to_lab(torch.from_numpy(np.stack(src["frames"])).permute(0, 3, 1, 2) / 255.0)
    lab = rgb_to_lab(torch.from_numpy(np.stack(out["frames"])).permute(0, 3, 1, 2) / 255.0)
    assert (lab[:, 0] - L_src[:, 0]).abs().mean() < 1.5
    assert lab[:, 1:].norm(dim=1).mean() > 1.0


@pytest.mark.slow
def test_time_range(bw_film: Path, ckpt: Path, colorizer: Colorizer, tmp_path: Path) -> None:
    (result,) = run_one([bw_film], film_cfg(ckpt, tmp_path, start_s=1.0, end_s=4.0), colorizer)
    assert result.error is None, result.error
    out = probe(result.output)
    assert len(out["frames"]) == 3 * FPS
    assert abs(out["video_s"] - 3.0) <= 1.0 / FPS
    assert abs(out["audio_s"] - 3.0) < 0.1


def test_range_past_the_end_is_one_clear_error(bw_film: Path, ckpt: Path, colorizer: Colorizer,
                                               tmp_path: Path) -> None:
    (result,) = run_one([bw_film], film_cfg(ckpt, tmp_path, start_s=100.0), colorizer)
    assert result.output is None and "no video frame" in result.error
    assert list(tmp_path.iterdir()) == []


def temporal_change(frames: list[np.ndarray]) -> float:
    lab = rgb_to_lab(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2) / 255.0)
    return float((lab[1:, 1:] - lab[:-1, 1:]).abs().mean())


def test_smoothing_reduces_frame_to_frame_colour_change(
    bw_film: Path, ckpt: Path, colorizer: Colorizer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A few training steps leave the test network nearly blind to its input, so a stand-in
    # prediction jumps with each frame's mean level (the film's flicker and grain): one
    # colour per frame, the frame-to-frame flicker that smoothing is for.
    def flickering_ab(self, L):
        small = torch.nn.functional.avg_pool2d(self.to_work(L), 4)
        level = small.mean((1, 2, 3), keepdim=True)
        ab = torch.cat((10.0 + 8.0 * torch.sin(7.0 * level), 8.0 * torch.cos(5.0 * level)), 1)
        return ab.expand(-1, -1, *small.shape[-2:])

    monkeypatch.setattr(Colorizer, "predict_ab", flickering_ab)
    cfg = {"end_s": 3.0, "keyframes": "off"}
    (plain,) = run_one([bw_film], film_cfg(ckpt, tmp_path / "plain", smooth_s=0.0, **cfg),
                       colorizer)
    a = probe(plain.output)["frames"]
    for label, smoothing in [("flow", {"smooth_s": 0.5, "smooth_method": "flow"}),
                             ("ema", {"smooth_s": 0.5, "smooth_method": "ema"}),
                             ("default", {})]:  # on by default: flow at 0.3 s
        (smooth,) = run_one([bw_film], film_cfg(ckpt, tmp_path / label, **smoothing, **cfg),
                            colorizer)
        b = probe(smooth.output)["frames"]
        assert len(a) == len(b)
        assert temporal_change(b) < 0.6 * temporal_change(a), label


def pts_of(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(video=0)]


@pytest.mark.parametrize("mode", [{"keyframes": "off"}, {"keyframes": "3", "smooth_s": 0.3},
                                  {"keyframes": "off", "smooth_s": 0.3, "smooth_method": "ema"}])
def test_every_mode_keeps_frames_timestamps_and_audio(
    bw_film: Path, ckpt: Path, colorizer: Colorizer, tmp_path: Path, mode: dict
) -> None:
    """(The default, keyframes auto, is checked in full above.)"""
    (result,) = run_one([bw_film], film_cfg(ckpt, tmp_path, end_s=2.0, **mode), colorizer)
    assert result.error is None, result.error
    src, out = pts_of(bw_film), pts_of(result.output)
    kept = [t for t in src if t < 2.0 - 1e-6]
    assert len(out) == len(kept) == result.frames == 2 * FPS
    assert np.allclose(out, kept, atol=1e-3)
    info = probe(result.output)
    assert info["audio_codec"] == "aac" and abs(info["audio_s"] - 2.0) < 0.1


def test_keyframes_cut_network_work_and_memory_stays_bounded(
    ckpt: Path, colorizer: Colorizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A longer film at small batches: the frames alive at once (counted as they are made
    and freed, not by the film path's own bookkeeping) never exceed the bound, whatever the
    film's length; the network sees about 1 frame in k, and every shot starts afresh."""
    import weakref

    import colorizer.colorize_film as film_module

    film = tmp_path / "long.mp4"
    make_film(film, standard_plan(seed=2, n_shots=4, fps=FPS, seconds_per_shot=3.0),
              size=(64, 48), fps=FPS, pix_fmt="gray")
    alive = {"now": 0, "max": 0}
    real = film_module._Held

    def counted(*args, **kw):
        held = real(*args, **kw)
        alive["now"] += 1
        alive["max"] = max(alive["max"], alive["now"])
        weakref.finalize(held, lambda: alive.__setitem__("now", alive["now"] - 1))
        return held

    monkeypatch.setattr(film_module, "_Held", counted)
    result = film_module.colorize_film(colorizer, film, film_cfg(
        ckpt, tmp_path / "out", keyframes="4", batch_size=2))
    n = len(pts_of(film))
    assert result.frames == n >= 120
    assert alive["max"] <= frames_held_bound(2, 4) == 11, alive
    assert result.max_held <= 11 and alive["now"] == 0
    # 1 in 4, plus each shot's first and last frames and every frame of its dissolves
    assert result.transitions >= 3
    assert n / 4 <= result.network_frames <= n / 2, result
    assert result.timings["network"] > 0 and result.timings["flow"] > 0
    assert result.timings["cuts"] > 0


def test_error_in_keyframe_mode_leaves_no_output(
    bw_film: Path, ckpt: Path, colorizer: Colorizer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import colorizer.colorize_film as film_module

    calls = {"n": 0}
    real = film_module.propagate

    def failing(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(film_module, "propagate", failing)
    with pytest.raises(KeyboardInterrupt):
        run_one([bw_film], film_cfg(ckpt, tmp_path, keyframes="4"), colorizer)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_interrupt_leaves_no_output(bw_film: Path, ckpt: Path, colorizer: Colorizer,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    compose = Colorizer.compose

    def interrupted(self, L, ab):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return compose(self, L, ab)

    monkeypatch.setattr(Colorizer, "compose", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_one([bw_film], film_cfg(ckpt, tmp_path), colorizer)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- bad input


def test_one_bad_input_does_not_stop_the_others(photo: Path, bw_film: Path, ckpt: Path,
                                                tmp_path: Path) -> None:
    bad_image = tmp_path / "broken.png"
    bad_image.write_bytes(b"\x89PNG not really")
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a film\n" * 50)
    out = tmp_path / "out"
    code, _stdout, stderr = cli("colorize", bad_image, photo, not_video, tmp_path / "missing.jpg",
                               bw_film, "--checkpoint", ckpt, "--out", out, "--work-size", "64",
                               "--end", "1")
    assert code == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3 and "Traceback" not in stderr
    assert "broken.png" in errors[0] and "notes.mp4" in errors[1] and "missing" in errors[2]
    assert "3 of 5 input(s) failed" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["astronaut_color.png", "bw_color.mp4",
                                                     "colorized.jsonl"]


def assert_one_line(code: int, stderr: str, *words: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_truncated_checkpoint(photo: Path, ckpt: Path, tmp_path: Path) -> None:
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(ckpt.read_bytes()[: 200_000])
    code, _, stderr = cli("colorize", photo, "--checkpoint", bad, "--out", tmp_path / "o")
    assert_one_line(code, stderr, "truncated")
    assert not (tmp_path / "o").exists()


def test_foreign_and_other_arch_checkpoints(photo: Path, ckpt: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    code, _, stderr = cli("colorize", photo, "--checkpoint", foreign, "--out", tmp_path)
    assert_one_line(code, stderr, "neither a filmcolor checkpoint")
    code, _, stderr = cli("colorize", photo, "--checkpoint", ckpt, "--out", tmp_path,
                          "--arch", "chen")
    assert_one_line(code, stderr, "'eccv16'", "--arch")


@pytest.mark.slow
def test_chen_checkpoint_colorizes(photo: Path, tmp_path: Path) -> None:
    chen = make_checkpoint(tmp_path / "chen.pt", "chen", steps=1, size=32)
    code, _stdout, stderr = cli("colorize", photo, "--checkpoint", chen, "--out", tmp_path / "o",
                               "--work-size", "64", "--arch", "chen", "-q")
    assert code == 0, stderr
    out = cv2.imread(str(tmp_path / "o" / "astronaut_color.png"))
    assert out.shape == skdata.astronaut().shape


# --------------------------------------------------------------------------- faults


def test_outputs_are_readable_by_others_and_orphans_are_swept(
    photo: Path, bw_film: Path, ckpt: Path, colorizer: Colorizer, tmp_path: Path, umask_022
) -> None:
    """A colorized image and film get 0644 under umask 022 (not mkstemp's 0600); the
    temporary files a kill -9 left in --out (dead processes) go at the next run."""
    import os

    from colorizer.outputs import temp_suffix

    gone = dead_pid()
    host = temp_suffix("").lstrip(".").rsplit("-", 1)[0]
    orphans = [tmp_path / f".bw_color.part-{gone}.mp4",  # the earlier version's name
               tmp_path / f".bw_color.mp4.a1b2c3d4.{host}-{gone}.mp4"]
    live = tmp_path / f".other_color.part-{os.getpid()}.mp4"  # a live process's
    for path in [*orphans, live]:
        path.write_bytes(b"\0" * 4096)
    results = run_one([photo, bw_film], film_cfg(ckpt, tmp_path, end_s=1.0), colorizer)
    assert [r.error for r in results] == [None, None]
    for result in results:
        assert result.output.stat().st_mode & 0o777 == 0o644, result.output
    assert not any(p.exists() for p in orphans) and live.exists()


def test_disk_full_fails_that_input_only(photo: Path, ckpt: Path, colorizer: Colorizer,
                                         tmp_path: Path, monkeypatch) -> None:
    """A full disk while one output is written: that input gets its own error (naming the
    output), the next one is still written, no temporary file stays."""
    import errno

    import colorizer.colorize as colorize_module

    real, calls = colorize_module.write_bytes, []

    def full_once(target, data):
        calls.append(target)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real(target, data)

    monkeypatch.setattr(colorize_module, "write_bytes", full_once)
    first, second = run_one([photo, photo], film_cfg(ckpt, tmp_path), colorizer)
    assert isinstance(first.cause, OSError) and "No space left" in first.error
    assert second.error is None and second.output.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astronaut_png_color.png",
                                                          "colorized.jsonl"]


def test_cli_disk_full_gives_one_line_per_input(photo: Path, ckpt: Path, tmp_path: Path,
                                                monkeypatch) -> None:
    import errno

    import colorizer.colorize as colorize_module

    def full(target, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(colorize_module, "write_bytes", full)
    code, _, stderr = cli("colorize", photo, photo, "--checkpoint", ckpt, "--out", tmp_path,
                          "--work-size", "32", "-q")
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert code == 1 and len(errors) == 2 and "Traceback" not in stderr, stderr
    assert all("No space left" in line and "free some space" in line for line in errors)


def test_truncated_film_is_colorized_as_far_as_it_goes_with_a_warning(
    ckpt: Path, colorizer: Colorizer, tmp_path: Path
) -> None:
    whole = tmp_path / "src" / "whole.mkv"
    whole.parent.mkdir()
    make_film(whole, standard_plan(seed=3, n_shots=2, seconds_per_shot=1.0), size=(64, 48))
    cut = tmp_path / "src" / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    (result,) = run_one([cut], film_cfg(ckpt, tmp_path / "out"), colorizer)
    assert result.error is None and result.output.stat().st_size > 0
    assert len(result.warnings) == 1 and "stream ended early" in result.warnings[0]
    (whole_result,) = run_one([whole], film_cfg(ckpt, tmp_path / "out"), colorizer)
    assert whole_result.warnings == []  # the CLI's warning line: tests/faults_colorizer.py


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_temperature_must_be_finite(photo: Path, ckpt: Path, tmp_path: Path, value: str) -> None:
    code, _, stderr = cli("colorize", photo, "--checkpoint", ckpt, "--out", tmp_path,
                          "--temperature", value)
    assert_one_line(code, stderr, "temperature", value)
