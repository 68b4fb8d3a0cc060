"""build-dataset and audit on synthetic films and real photos."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import skimage.data
from click.testing import CliRunner

import manifests
from cli import main
from filmdata.build import BuildConfig, build_dataset, one_decode_thread
from filmdata.config import ExtractConfig, OutputConfig
from filmdata.decode import DecodeConfig
from filmdata.images import ImageSetConfig
from filmdata.synthetic import make_film, standard_plan
from manifests import layout
from manifests.dataset import SplitConfig

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def cli(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """films/ with four small films, photos/ with four real photographs, list.csv."""
    base = tmp_path_factory.mktemp("inputs")
    (base / "films").mkdir()
    for i in range(4):
        plan = standard_plan(seed=20 + i, n_shots=6, seconds_per_shot=1.2)
        make_film(base / "films" / f"film{i}.mp4", plan, size=(160, 120), seed=20 + i)
    (base / "photos").mkdir()
    for name in PHOTOS:
        cv2.imwrite(str(base / "photos" / f"{name}.png"), getattr(skimage.data, name)()[..., ::-1])
    (base / "list.csv").write_text(
        "path,title,year,director\nfilms/film0.mp4,Dawn,1978,A\nfilms/film1.mp4,Dusk,1983,B\n"
    )
    return base


@pytest.fixture(scope="module")
def built(inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dataset")
    code, stdout, stderr = cli(
        "build-dataset", inputs / "list.csv", inputs / "films", inputs / "photos",
        "--out", out, "--workers", "2", "--val-fraction", "0.25", "--test-fraction", "0.25",
    )
    assert code == 0, stderr
    assert "film0" in stdout and "photos" in stdout  # the summary table
    return out


def dataset(out: Path) -> pd.DataFrame:
    return pd.read_parquet(layout.dataset_manifest(out))


def test_dataset_merges_films_and_images(built: Path, inputs: Path) -> None:
    frames = dataset(built)
    assert frames.equals(pads.dataset(layout.dataset_manifest(built)).to_table().to_pandas())
    films = frames[frames["source_kind"] == "film"]
    images = frames[frames["source_kind"] == "image"]
    assert films["film_id"].nunique() == 4  # the CSV's two films are not doubled
    assert len(images) == len(PHOTOS) and (images["status"] == "kept").all()
    assert set(frames["split"]) <= {"train", "val", "test"}
    for path in frames["image_path"].dropna():
        assert (built / path).is_file()
    # CSV columns travel with their films, and only with them.
    dawn = frames[frames["title"] == "Dawn"]
    assert len(dawn) and (dawn["year"] == 1978).all() and (dawn["director"] == "A").all()
    assert frames.loc[frames["source_path"].str.endswith("film3.mp4"), "title"].isna().all()
    meta = manifests.read_metadata(layout.dataset_manifest(built))
    assert meta["kind"] == "dataset" and meta["config"]["split"]["split_by"] == "film"


def test_pool_workers_decode_on_one_thread_and_keep_other_settings() -> None:
    cfg = BuildConfig(extract=ExtractConfig(decode=DecodeConfig(deinterlace=False)))
    decode = one_decode_thread(cfg).extract.decode
    assert (decode.threads, decode.deinterlace) == (1, False)


def test_no_film_in_two_splits(built: Path) -> None:
    films = dataset(built)
    films = films[films["source_kind"] == "film"]
    assert (films.groupby("film_id")["split"].nunique() == 1).all()


def test_rerun_is_a_no_op_with_stable_ids(built: Path, inputs: Path) -> None:
    before = dataset(built)
    report = build_dataset(
        [inputs / "list.csv", inputs / "films", inputs / "photos"], built,
        BuildConfig(split=SplitConfig(val_fraction=0.25, test_fraction=0.25)),
        workers=2, progress=False,
    )
    assert {r.status for r in report.results} == {"skipped"}
    pd.testing.assert_frame_equal(dataset(built), before)


def test_split_by_shot_never_splits_a_shot(inputs: Path, tmp_path: Path) -> None:
    cfg = BuildConfig(split=SplitConfig(split_by="shot", val_fraction=0.3, test_fraction=0.3))
    build_dataset([inputs / "films"], tmp_path, cfg, workers=1, progress=False)
    frames = dataset(tmp_path)
    per_shot = frames.groupby(["film_id", "shot_index"])["split"].nunique()
    assert (per_shot == 1).all()
    assert frames["split"].nunique() == 3  # 24 shots spread over all three splits


def test_failing_film_does_not_stop_the_others(inputs: Path, tmp_path: Path) -> None:
    folder = tmp_path / "films"
    folder.mkdir()
    good = folder / "good.mp4"
    good.write_bytes((inputs / "films" / "film0.mp4").read_bytes())
    bad = folder / "bad.mkv"
    bad.write_text("this is not a film")
    code, _, stderr = cli("build-dataset", folder, "--out", tmp_path / "out", "-q")
    assert code == 1
    assert "1 of 2 input(s) failed" in stderr and "bad.mkv" in stderr
    assert "Traceback" not in stderr
    assert dataset(tmp_path / "out")["source_path"].str.endswith("good.mp4").all()
    # Fix the bad film: the rerun does only it.
    bad.unlink()
    (folder / "bad.mp4").write_bytes((inputs / "films" / "film1.mp4").read_bytes())
    report = build_dataset([folder], tmp_path / "out", workers=1, progress=False)
    assert sorted(r.status for r in report.results) == ["done", "skipped"]
    assert dataset(tmp_path / "out")["film_id"].nunique() == 2


@pytest.mark.parametrize(
    ("write_input", "words"),
    [
        (lambda d: (d / "l.csv").write_text("file,title\nx.mp4,X\n") and d / "l.csv",
         ["no 'path' column"]),
        (lambda d: (d / "l.csv").write_text("path\nnope.mp4\nalso.mkv\n") and d / "l.csv",
         ["2 listed film(s) not found", "nope.mp4"]),
        (lambda d: d / "missing-folder", ["no such file or folder"]),
    ],
    ids=["csv-without-path", "csv-missing-films", "missing-input"],
)
def test_bad_inputs_are_one_line_and_write_nothing(tmp_path, write_input, words) -> None:
    code, _, stderr = cli("build-dataset", write_input(tmp_path), "--out", tmp_path / "out")
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert all(w in lines[0] for w in words), lines[0]
    assert not (tmp_path / "out").exists()


def test_output_inside_an_input_folder_is_not_taken_as_input(inputs: Path, tmp_path) -> None:
    """`build-dataset project/ --out project/data` twice: the second run must not index the
    first run's images as a new image set; hidden files ("._" copies) are no films."""
    project = tmp_path / "project"
    (project / "films").mkdir(parents=True)
    for name in ("film0.mp4", "film1.mp4"):
        (project / "films" / name).write_bytes((inputs / "films" / name).read_bytes())
    (project / "films" / "._film0.mp4").write_bytes(b"\x00\x05\x16\x07 macOS metadata")
    (project / "stills").mkdir()
    cv2.imwrite(str(project / "stills" / "coffee.png"), skimage.data.coffee()[..., ::-1])
    for _ in range(2):
        report = build_dataset([project], project / "data", workers=1, progress=False)
        assert not report.failures
        frames = dataset(project / "data")
        assert sorted(frames.groupby("source_kind")["film_id"].nunique().items()) == [
            ("film", 2), ("image", 1)]
    assert {r.status for r in report.results} == {"skipped"}
    assert frames["source_path"].str.contains("/data/").sum() == 0


def test_a_dataset_given_as_input_is_one_clear_error(built: Path, tmp_path) -> None:
    code, _, stderr = cli("build-dataset", built, "--out", tmp_path / "out")
    assert code == 2 and stderr.count("\n") == 1
    assert "is a filmcolor dataset" in stderr and "audit" in stderr
    assert not (tmp_path / "out").exists()


def test_no_inputs_is_an_error(tmp_path) -> None:
    code, _, stderr = cli("build-dataset", "--out", tmp_path)
    assert code == 2 and "no inputs" in stderr


def test_manifest_of_another_schema_version_says_what_to_do(built: Path, tmp_path) -> None:
    film_manifest = layout.film_manifests(built)[0]
    table = pq.read_table(film_manifest)
    meta = dict(table.schema.metadata)
    meta[b"filmcolor.schema_version"] = b"99"
    old = tmp_path / "manifests" / "films" / film_manifest.name
    old.parent.mkdir(parents=True)
    pq.write_table(table.replace_schema_metadata(meta), old)
    code, _, stderr = cli("audit", old)
    assert code == 2
    assert "schema version 99" in stderr and "re-run" in stderr


def test_near_duplicates_across_films(tmp_path) -> None:
    """Two transfers of the same film (encoded at different quality): with --dedup the
    later one's frames are rejected as duplicates of the earlier one's; without, kept."""
    plan = standard_plan(seed=7, n_shots=4, seconds_per_shot=1.5)
    make_film(tmp_path / "a_transfer.mp4", plan, size=(160, 120), seed=7, crf=18)
    make_film(tmp_path / "b_transfer.mp4", plan, size=(160, 120), seed=7, crf=24)
    for flag in ([], ["--dedup", "6"]):
        out = tmp_path / f"out{len(flag)}"
        code, _, stderr = cli("build-dataset", tmp_path / "a_transfer.mp4",
                              tmp_path / "b_transfer.mp4", "--out", out, "-q", *flag)
        assert code == 0, stderr
        frames = dataset(out)
        first = frames["film_id"].str.startswith("a-transfer")
        duplicate = frames["reject_reason"] == "duplicate"
        if not flag:
            assert not duplicate.any()
            continue
        assert not (duplicate & first).any()
        later = frames[~first & (frames["reject_reason"] != "dark")]
        assert len(later) >= 6 and (later["reject_reason"] == "duplicate").mean() >= 0.8


@pytest.mark.slow
def test_killed_build_reruns_to_the_same_dataset(inputs: Path, tmp_path: Path) -> None:
    films = tmp_path / "films"
    films.mkdir()
    for i in range(3):  # two workers: the third film is still to do when the first is done
        plan = standard_plan(seed=40 + i, n_shots=8, seconds_per_shot=1.5)
        make_film(films / f"long{i}.mp4", plan, size=(320, 240), seed=40 + i)
    command = [sys.executable, str(REPO / "cli.py"), "build-dataset", str(films), "--workers",
               "2", "-q"]
    proc = subprocess.Popen([*command, "--out", str(tmp_path / "out")], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300.0
    while proc.poll() is None and not layout.film_manifests(tmp_path / "out"):
        assert time.monotonic() < deadline, "gave up waiting for a film to be done"
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be killed"
    workers = _children(proc.pid)
    assert workers, "no pool workers found"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not layout.dataset_manifest(tmp_path / "out").exists()
    for _ in range(100):  # the orphaned workers end by themselves
        if not [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and "zombie" not in _state(pid)]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("pool workers outlived the killed build")
    subprocess.run([*command, "--out", str(tmp_path / "out")], cwd=REPO, check=True,
                   capture_output=True)
    subprocess.run([*command, "--out", str(tmp_path / "clean")], cwd=REPO, check=True,
                   capture_output=True)
    pd.testing.assert_frame_equal(dataset(tmp_path / "out"), dataset(tmp_path / "clean"))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is not installed (pip install '.[ray]')")
def test_ray_and_local_give_identical_manifests(inputs: Path, tmp_path: Path) -> None:
    sources = [inputs / "list.csv", inputs / "films", inputs / "photos"]
    local = build_dataset(sources, tmp_path / "local", workers=2, progress=False)
    on_ray = build_dataset(sources, tmp_path / "ray", engine="ray", workers=2, progress=False)
    assert not local.failures and not on_ray.failures
    pd.testing.assert_frame_equal(dataset(tmp_path / "ray"), dataset(tmp_path / "local"))
    for path in layout.film_manifests(tmp_path / "local"):
        twin = tmp_path / "ray" / path.relative_to(tmp_path / "local")
        pd.testing.assert_frame_equal(pd.read_parquet(twin), pd.read_parquet(path))


def test_audit_writes_contact_sheets(built: Path, tmp_path: Path) -> None:
    code, stdout, _ = cli("audit", built, "--out", tmp_path / "audit")
    assert code == 0 and "rejected_dark" in stdout
    index = (tmp_path / "audit" / "index.html").read_text()
    frames = dataset(built)
    for film_id in frames["film_id"].unique():
        assert f"{film_id}.html" in index
    dark_film = frames.loc[frames["reject_reason"] == "dark", "film_id"].iloc[0]
    page = (tmp_path / "audit" / f"{dark_film}.html").read_text()
    assert "<svg" in page and "dark &lt; 25" in page  # histogram with the threshold
    assert "class='reason'>dark<" in page  # rejected frames are marked with their reason
    assert "before | after" in page
    thumbs = list((tmp_path / "audit" / "thumbs").glob("*.jpg"))
    assert len(thumbs) >= len(frames[frames["source_kind"] == "film"])
    # A single manifest works too.
    code, _, _ = cli("audit", layout.film_manifests(built)[0], "--out", tmp_path / "one")
    assert code == 0 and (tmp_path / "one" / "index.html").is_file()
    assert json.loads(json.dumps(manifests.read_metadata(layout.film_manifests(built)[0])))


def _children(pid: int) -> list[int]:
    """Pids of the processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _state(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]).lower()
    except (OSError, IndexError):
        return "gone"


def test_manifest_of_another_schema_version_is_redone_by_a_plain_rerun(inputs, tmp_path) -> None:
    out = tmp_path / "out"
    films = [inputs / "films" / "film0.mp4"]
    build_dataset(films, out, workers=1, progress=False)
    manifest = layout.film_manifests(out)[0]
    table = pq.read_table(manifest)
    meta = dict(table.schema.metadata) | {b"filmcolor.schema_version": b"99"}
    pq.write_table(table.replace_schema_metadata(meta), manifest)
    code, _, stderr = cli("build-dataset", *films, "--out", out, "-q", "--workers", "1")
    assert code == 0, stderr
    assert manifests.read_metadata(manifest)["schema_version"] == manifests.SCHEMA_VERSION
    assert len(dataset(out)) == len(table)


def test_a_split_left_empty_is_one_warning(inputs, tmp_path) -> None:
    """Two films split by film with val and test at 45 %: a seed that puts one in val and
    the other in test leaves train empty; build-dataset says so and still succeeds."""
    from filmdata.extract import film_id_for
    from manifests.dataset import unit_draw

    films = [inputs / "films" / "film0.mp4", inputs / "films" / "film1.mp4"]
    ids = [film_id_for(f) for f in films]
    seed = next(s for s in range(10_000)
                if sorted(unit_draw(i, s) >= 0.55 for i in ids) == [False, True]
                and all(unit_draw(i, s) >= 0.1 for i in ids))
    code, _, stderr = cli("build-dataset", *films, "--out", tmp_path / "out", "-q",
                          "--workers", "1", "--val-fraction", "0.45", "--test-fraction",
                          "0.45", "--split-seed", seed)
    assert code == 0, stderr
    warnings = [line for line in stderr.splitlines() if "split" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: the train split is empty")
    assert "--split-by shot" in warnings[0]
    assert set(dataset(tmp_path / "out")["split"]) == {"val", "test"}


def test_a_redo_that_fails_midway_leaves_no_dataset_listing_mixed_images(
    inputs, tmp_path, monkeypatch
) -> None:
    """A rebuild with another config that stops after its first image (a kill, a full
    disk) must not leave the old film manifest or the old dataset manifest, both of which
    list images that the redo has begun to replace."""
    import filmdata.extract

    out = tmp_path / "out"
    films = [inputs / "films" / "film0.mp4"]
    build_dataset(films, out, workers=1, progress=False)
    assert layout.dataset_manifest(out).exists() and layout.film_manifests(out)
    original, calls = filmdata.extract._write_bytes, []

    def write_then_fail(path, data):  # type: ignore[no-untyped-def]
        calls.append(path)
        if len(calls) > 1:
            raise OSError(28, "No space left on device", str(path))
        original(path, data)

    monkeypatch.setattr(filmdata.extract, "_write_bytes", write_then_fail)
    cfg = BuildConfig(extract=ExtractConfig(output=OutputConfig(max_side=64)))
    report = build_dataset(films, out, cfg, workers=1, progress=False)
    assert [r.status for r in report.results] == ["failed"]
    assert "No space left" in report.results[0].error
    assert not layout.dataset_manifest(out).exists()
    assert not layout.film_manifests(out)
    monkeypatch.undo()
    report = build_dataset(films, out, workers=1, progress=False)  # the old config again
    assert [r.status for r in report.results] == ["done"]
    frames = dataset(out)
    for row in frames.dropna(subset=["image_path"]).itertuples():
        assert cv2.imread(str(out / row.image_path)).shape[:2] == (row.height, row.width)
    assert (frames.dropna(subset=["image_path"])["width"] == 160).all()


def test_image_set_redo_removes_images_of_the_old_config(inputs, tmp_path) -> None:
    out = tmp_path / "out"
    build_dataset([inputs / "photos"], out, workers=1, progress=False)
    cfg = BuildConfig(images=ImageSetConfig(max_side=64))
    report = build_dataset([inputs / "photos"], out, cfg, workers=1, progress=False)
    assert [r.status for r in report.results] == ["done"]
    listed = set(dataset(out)["image_path"].dropna())
    on_disk = {p.relative_to(out).as_posix() for p in (out / layout.IMAGES_DIR).rglob("*")
               if p.is_file()}
    assert on_disk == listed and all(p.endswith(".jpg") for p in listed)
