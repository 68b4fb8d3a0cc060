"""colorize over many inputs: parallel engines, names independent of finishing order, and
a rerun that skips what the output folder already holds (colorized.jsonl)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
from skimage import data as skdata

from colorizer.colorize import RunOptions, colorize_paths
from colorizer.colorize_config import ColorizeConfig
from colorizer.errors import ConfigError
from colorizer.ledger import LEDGER_NAME, Ledger
from filmdata.synthetic import make_film, standard_plan
from tests.helpers_colorizer import make_checkpoint

FPS = 12


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "eccv16.pt", "eccv16")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two black-and-white films of the same stem in different containers (one with AAC,
    one silent) and a photo: names must not collide, whatever finishes first."""
    folder = tmp_path_factory.mktemp("many")
    plan = standard_plan(seed=5, n_shots=2, fps=FPS, seconds_per_shot=3.5)
    a = folder / "reel.mp4"
    make_film(a, plan, size=(160, 120), fps=FPS, audio=True, pix_fmt="gray")
    b = folder / "reel.mkv"
    make_film(b, plan, size=(160, 120), fps=FPS, audio=False, pix_fmt="gray")
    photo = folder / "reel.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skdata.astronaut()[::4, ::4], cv2.COLOR_RGB2BGR))
    return [a, b, photo]


def cfg_for(ckpt: Path, out: Path, **kw) -> ColorizeConfig:
    return ColorizeConfig(checkpoint=ckpt, out=out, work_size=32, quiet=True, device="cpu", **kw)


def frames_of(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.mark.slow
def test_two_workers_write_what_one_writes(ckpt: Path, inputs: list[Path],
                                           tmp_path: Path) -> None:
    one = list(colorize_paths(inputs, cfg_for(ckpt, tmp_path / "one")))
    two = list(colorize_paths(inputs, cfg_for(ckpt, tmp_path / "two"),
                              run=RunOptions(workers=2)))
    assert all(r.error is None for r in one + two), [r.error for r in one + two]
    names = sorted(r.output.name for r in one)
    assert names == ["reel_color.mp4", "reel_color.png", "reel_mkv_color.mp4"]
    assert sorted(r.output.name for r in two) == names  # same names, any finishing order
    for name in names:
        if name.endswith(".png"):
            x, y = (cv2.imread(str(tmp_path / d / name)).astype(int) for d in ("one", "two"))
        else:
            x, y = (frames_of(tmp_path / d / name).astype(int) for d in ("one", "two"))
        assert x.shape == y.shape  # films: every frame at full size
        # the same network on other thread counts; films go through H.264 once more
        assert np.abs(x - y).mean() <= 0.5, name
    for folder in ("one", "two"):  # nothing but the outputs and the ledger
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == sorted(
            [*names, LEDGER_NAME])


@pytest.mark.slow
def test_rerun_skips_what_is_done_and_redoes_what_changed(ckpt: Path, inputs: list[Path],
                                                          tmp_path: Path) -> None:
    film, photo = inputs[0], inputs[2]
    cfg = cfg_for(ckpt, tmp_path)
    first = list(colorize_paths([film, photo], cfg))
    stamps = {r.output: r.output.stat().st_mtime_ns for r in first}
    again = list(colorize_paths([film, photo], cfg))
    assert all(r.skipped and r.error is None for r in again)
    assert {r.output: r.output.stat().st_mtime_ns for r in again} == stamps  # untouched

    # another temperature changes the pixels: the photo is redone
    hot = cfg_for(ckpt, tmp_path, temperature=0.9)
    assert [r.skipped for r in colorize_paths([photo], hot)] == [False]
    # a source changed in place is redone, the others are not
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 10**9))
    assert {r.source.name: r.skipped for r in colorize_paths([film, photo], cfg)} == {
        "reel.mp4": True, "reel.png": False}
    # a deleted output is redone; --force redoes everything
    (tmp_path / "reel_color.mp4").unlink()
    assert {r.source.name: r.skipped for r in colorize_paths([film, photo], cfg)} == {
        "reel.mp4": False, "reel.png": True}
    forced = list(colorize_paths([photo], cfg, run=RunOptions(force=True)))
    assert not any(r.skipped for r in forced)

    table = pd.read_json(tmp_path / LEDGER_NAME, lines=True)  # auditable in pandas
    assert {"source", "source_size", "source_mtime_ns", "output", "settings", "kind",
            "frames", "seconds"} <= set(table.columns)
    assert len(table) == 2 + 1 + 1 + 1 + 1 and table["settings"].nunique() == 2
    assert table.loc[table["kind"] == "film", "frames"].min() > 20


def test_a_line_cut_short_by_a_crash_is_ignored(ckpt: Path, inputs: list[Path],
                                                tmp_path: Path) -> None:
    cfg = cfg_for(ckpt, tmp_path)
    list(colorize_paths(inputs[2:], cfg))
    ledger = tmp_path / LEDGER_NAME
    whole = ledger.read_text()
    ledger.write_text(whole + '{"source": "/x", "output": "/y", "sett')  # killed mid-append
    assert [r.skipped for r in colorize_paths(inputs[2:], cfg)] == [True]
    list(colorize_paths(inputs[2:], cfg, run=RunOptions(force=True)))
    lines = ledger.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["output"].endswith("reel_color.png")
    assert len(Ledger(tmp_path).records) == 1  # the torn line is no record


def test_a_failed_input_is_not_recorded_and_is_retried(ckpt: Path, inputs: list[Path],
                                                       tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 4096)
    cfg = cfg_for(ckpt, tmp_path / "out")
    results = list(colorize_paths([broken, inputs[2]], cfg, run=RunOptions(workers=2)))
    assert [r.error is not None for r in results if r.source == broken] == [True]
    again = {r.source.name: (r.skipped, r.error is None) for r in colorize_paths(
        [broken, inputs[2]], cfg)}
    assert again == {"broken.mp4": (False, False), "reel.png": (True, True)}


def test_run_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="--engine 'spark'"):
        RunOptions(engine="spark")
    with pytest.raises(ConfigError, match="--workers"):
        RunOptions(workers=0)
    with pytest.raises(ConfigError, match="whole number"):
        RunOptions(workers=2.5)  # type: ignore[arg-type]


@pytest.mark.slow
def test_ray_engine_writes_the_same_outputs(ckpt: Path, inputs: list[Path],
                                            tmp_path: Path) -> None:
    pytest.importorskip("ray")
    local = list(colorize_paths(inputs, cfg_for(ckpt, tmp_path / "local")))
    on_ray = list(colorize_paths(inputs, cfg_for(ckpt, tmp_path / "ray"),
                                 run=RunOptions(engine="ray", workers=2)))
    assert all(r.error is None for r in on_ray), [r.error for r in on_ray]
    assert sorted(r.output.name for r in on_ray) == sorted(r.output.name for r in local)


def test_cli_skips_done_inputs_and_takes_workers(ckpt: Path, inputs: list[Path],
                                                 tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cli import main

    args = ["colorize", str(inputs[2]), "--checkpoint", str(ckpt), "--out", str(tmp_path),
            "--work-size", "32", "--device", "cpu", "--workers", "2"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "already done" in again.output
    forced = CliRunner().invoke(main, [*args, "--force"])
    assert forced.exit_code == 0 and "already done" not in forced.output
    bad = CliRunner().invoke(main, [*args[:-2], "--engine", "spark"])
    assert bad.exit_code == 2
