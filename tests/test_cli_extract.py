"""The extract-frames command: bad input gives one clear line, faults lose nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import manifests
from cli import main
from filmdata.extract import film_id_for
from filmdata.synthetic import make_film, standard_plan
from manifests import layout

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def assert_one_clear_line(code: int, stderr: str, *words: str) -> None:
    assert code != 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def small_film(tmp_path_factory, short_plan) -> Path:
    path = tmp_path_factory.mktemp("cli") / "small.mp4"
    make_film(path, short_plan, size=(160, 120))
    return path


@pytest.fixture(scope="module")
def long_film(tmp_path_factory) -> Path:
    """A film long enough to be killed or interrupted mid-run (16 shots, 24 s at 320x240);
    the kill and Ctrl-C tests read it, each into its own output folder."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    make_film(path, standard_plan(seed=4, n_shots=16, seconds_per_shot=1.5), size=(320, 240),
              seed=4)
    return path


def audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        samples = (np.sin(np.arange(44100) / 10) * 0.3).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    ("make_input", "words"),
    [
        (lambda d: d / "missing.mkv", ["no such file"]),
        (lambda d: d, ["is a directory"]),
        (lambda d: (d / "notes.mkv").write_text("not a film\n" * 50) and d / "notes.mkv",
         ["not a readable video"]),
        (lambda d: (d / "empty.mp4").write_bytes(b"") or d / "empty.mp4", ["empty"]),
        (lambda d: audio_only(d / "song.m4a"), ["no video stream", "audio"]),
    ],
    ids=["missing", "directory", "text-file", "zero-bytes", "audio-only"],
)
def test_bad_input_is_one_clear_line(tmp_path, make_input, words) -> None:
    source = tmp_path / "in"
    source.mkdir()
    code, _, stderr = run_cli("extract-frames", make_input(source), "--out", tmp_path / "out", "-q")
    assert_one_clear_line(code, stderr, *words)
    assert not list((tmp_path / "out").rglob("*.parquet"))


def test_unwritable_output_is_one_clear_line(tmp_path, small_film) -> None:
    if os.geteuid() == 0:  # root ignores permission bits: use a read-only file system
        out = Path("/proc/filmcolor-out")
    else:
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
    code, _, stderr = run_cli("extract-frames", small_film, "--out", out, "-q")
    assert_one_clear_line(code, stderr, "cannot write", "--out")


def test_bad_option_is_one_clear_line(tmp_path, small_film) -> None:
    code, _, stderr = run_cli(
        "extract-frames", small_film, "--out", tmp_path, "--frames-per-shot", "5-3"
    )
    assert_one_clear_line(code, stderr, "--frames-per-shot")


def test_one_bad_film_does_not_stop_the_others(tmp_path, small_film) -> None:
    bad = tmp_path / "broken.mkv"
    bad.write_text("nope")
    code, stdout, stderr = run_cli("extract-frames", bad, small_film, "--out", tmp_path / "out")
    assert code == 1
    assert "broken.mkv" in stderr and "1 of 2 film(s) failed" in stderr
    done = layout.film_manifest(tmp_path / "out", film_id_for(small_film))
    assert done.is_file() and "small.mp4" in stdout


def test_truncated_film_extracts_what_it_can(tmp_path) -> None:
    film = tmp_path / "whole.mkv"
    truth = make_film(film, standard_plan(seed=2, n_shots=6, seconds_per_shot=1.5),
                      size=(160, 120), seed=2)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(film.read_bytes()[: film.stat().st_size * 6 // 10])
    code, _, stderr = run_cli("extract-frames", cut, "--out", tmp_path / "out", "-q")
    assert code == 0
    assert "warning: cut.mkv: damaged film" in stderr and "ended early" in stderr
    manifest = layout.film_manifest(tmp_path / "out", film_id_for(cut))
    info = manifests.read_metadata(manifest)["info"]
    assert 0 < info["frames_decoded"] < truth.n_frames
    assert len(pd.read_parquet(manifest)) >= 3


def test_corrupted_middle_is_counted_and_warned(tmp_path) -> None:
    film = tmp_path / "whole.mp4"
    truth = make_film(film, standard_plan(seed=2, n_shots=6, seconds_per_shot=1.5),
                      size=(160, 120), seed=2)
    data = bytearray(film.read_bytes())
    rng = np.random.default_rng(0)
    middle = len(data) // 2
    data[middle : middle + 6000] = rng.integers(0, 256, 6000, dtype=np.uint8).tobytes()
    bad = tmp_path / "damaged.mp4"
    bad.write_bytes(bytes(data))
    code, _, stderr = run_cli("extract-frames", bad, "--out", tmp_path / "out", "-q")
    assert code == 0
    assert "warning: damaged.mp4: damaged film" in stderr
    info = manifests.read_metadata(layout.film_manifest(tmp_path / "out", film_id_for(bad)))
    assert info["info"]["decode_errors"] > 0
    assert info["info"]["frames_decoded"] <= truth.n_frames


@pytest.mark.slow
def test_killed_run_leaves_no_manifest_and_rerun_completes(tmp_path, long_film) -> None:
    film = long_film
    out = tmp_path / "out"
    film_id = film_id_for(film)
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), "extract-frames", str(film), "--out", str(out),
         "-q"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    images = out / layout.IMAGES_DIR / film_id
    _wait_for(lambda: len(list(images.rglob("*.jpg"))) >= 6, proc, "six images")
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    manifest = layout.film_manifest(out, film_id)
    assert not manifest.exists()
    rerun = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "extract-frames", str(film), "--out", str(out),
         "-q"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    assert rerun.returncode == 0
    clean = tmp_path / "clean"
    code, _, _ = run_cli("extract-frames", film, "--out", clean, "-q")
    assert code == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(manifest).drop(columns="source_path"),
        pd.read_parquet(layout.film_manifest(clean, film_id)).drop(columns="source_path"),
    )
    assert not list(out.rglob("*.tmp"))


def test_ctrl_c_exits_130_without_manifest(tmp_path, long_film) -> None:
    film = long_film
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), "extract-frames", str(film), "--out", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    images = out / layout.IMAGES_DIR / film_id_for(film)
    _wait_for(lambda: len(list(images.rglob("*.jpg"))) >= 3, proc, "three images")
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate()
    assert proc.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not list(out.rglob("*.parquet"))


def test_help_is_useful() -> None:
    code, stdout, _ = run_cli("extract-frames", "--help")
    assert code == 0
    for option in ("--frames-per-shot", "--wb", "--exposure", "--detector", "--dark-luma"):
        assert option in stdout


def test_extract_frames_does_not_import_torch(tmp_path, small_film) -> None:
    probe = (
        "import sys, runpy; sys.argv = ['cli.py', 'extract-frames', '--help'];\n"
        "try:\n    runpy.run_path('cli.py', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True, capture_output=True)
    assert shutil.which(sys.executable)


def _cli_command(film: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "cli.py"), "extract-frames", str(film), "--out",
            str(out), "-q", *extra]


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout_s: float = 300.0) -> None:
    """Poll `condition` until it holds or `proc` ends; fail after a generous deadline."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_killed_redo_leaves_the_film_not_done_and_the_rerun_redoes_it(tmp_path,
                                                                      long_film) -> None:
    """A finished film, then a redo with another config (--max-side 64) killed with
    SIGKILL after it has replaced some images: the old manifest must not survive as
    "done" over mixed images; a rerun with the old config redoes the film, and every
    image it lists is of that config."""
    film = long_film
    out = tmp_path / "out"
    film_id = film_id_for(film)
    manifest = layout.film_manifest(out, film_id)
    code, _, stderr = run_cli("extract-frames", film, "--out", out, "-q")
    assert code == 0, stderr
    started_ns = time.time_ns()
    images = out / layout.IMAGES_DIR / film_id

    def replaced() -> int:
        return sum(1 for p in images.rglob("*.jpg") if p.stat().st_mtime_ns > started_ns)

    proc = subprocess.Popen(_cli_command(film, out, "--max-side", "64"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: replaced() >= 3, proc, "the redo to replace images")
    assert proc.poll() is None, "the redo finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert replaced() >= 3
    assert not manifest.exists(), "the old manifest says done over images of another config"

    rerun = subprocess.run(_cli_command(film, out), cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "already done" not in rerun.stdout
    frames = pd.read_parquet(manifest)
    written = frames.dropna(subset=["image_path"])
    for row in written.itertuples():
        with av.open(str(out / row.image_path)) as image:
            frame = next(image.decode(video=0))
        assert (frame.width, frame.height) == (row.width, row.height) == (320, 240)
    listed = set(written["image_path"]) | set(frames["thumb_path"].dropna())
    on_disk = {p.relative_to(out).as_posix() for p in (out / layout.IMAGES_DIR).rglob("*.jpg")}
    on_disk |= {p.relative_to(out).as_posix() for p in (out / layout.THUMBS_DIR).rglob("*.jpg")}
    assert on_disk == listed
    assert not list(out.rglob("*.tmp"))


def test_six_concurrent_runs_of_one_film_agree(tmp_path, small_film) -> None:
    """Six extract-frames of the same film into the same folder at once all succeed
    (none sweeps another's temporary files) and leave the same result as one run."""
    out = tmp_path / "out"
    procs = [subprocess.Popen(_cli_command(small_film, out), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
    code, _, _ = run_cli("extract-frames", small_film, "--out", tmp_path / "clean", "-q")
    assert code == 0
    film_id = film_id_for(small_film)
    pd.testing.assert_frame_equal(
        pd.read_parquet(layout.film_manifest(out, film_id)).drop(columns="source_path"),
        pd.read_parquet(layout.film_manifest(tmp_path / "clean", film_id))
        .drop(columns="source_path"),
    )
    assert not list(out.rglob(".*"))


def test_temp_files_of_killed_runs_are_swept_and_live_ones_kept(tmp_path, small_film) -> None:
    out = tmp_path / "out"
    film_id = film_id_for(small_film)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        tail_dead, tail_live = (manifests.temp_suffix().replace(str(os.getpid()), str(pid))
                                for pid in (gone.pid, sleeper.pid))
        shot = out / layout.IMAGES_DIR / film_id / "s00000"
        shot.mkdir(parents=True)
        (out / layout.FILMS_DIR).mkdir(parents=True)
        stale = [shot / f".{film_id}_f0000001.jpg.abc{tail_dead}",
                 out / layout.FILMS_DIR / f".{film_id}.parquet.abc{tail_dead}",
                 out / layout.MANIFESTS_DIR / f".dataset.parquet.abc{tail_dead}",
                 out / layout.FILMS_DIR / f".write-test.0{tail_dead}"]
        live = shot / f".{film_id}_f0000002.jpg.abc{tail_live}"
        for path in (*stale, live):
            path.write_bytes(b"partial")
        code, _, stderr = run_cli("extract-frames", small_film, "--out", out, "-q")
        assert code == 0, stderr
        assert not [p for p in stale if p.exists()] and live.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
