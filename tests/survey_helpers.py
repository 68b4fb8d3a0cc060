"""Helpers of the survey tests: a small film-like dataset, a survey database without any
model (for the web app's tests), a free port, the server as a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from survey import store

REPO = Path(__file__).resolve().parents[1]


def survey_dataset(root: Path, short_side: int = 256) -> Path:
    """Two "films" of real photographs (scikit-image), each photo its own shot, all in the
    test split: ROOT/manifests/dataset.parquet. Returns ROOT."""
    from filmdata.images import ImageSetConfig, index_images
    from manifests import FRAME_SCHEMA, layout, write_table
    from tests.train_helpers import write_photos

    films = {"film-a": ("astronaut", "coffee", "chelsea"), "film-b": ("rocket", "retina")}
    parts = []
    for film_id, names in films.items():
        src = root.parent / f"{root.name}_{film_id}"
        files = write_photos(src, names, short_side)
        parts.append(index_images(src, files, film_id, root, ImageSetConfig()))
    frames = pd.concat(parts, ignore_index=True)
    assert (frames["status"] == "kept").all()
    frames["source_kind"] = "film"
    frames["split"] = "test"
    write_table(frames, layout.dataset_manifest(root), FRAME_SCHEMA, kind="dataset", config={})
    return root


def untrained_checkpoint(path: Path, arch: str = "eccv16") -> Path:
    """A filmcolor checkpoint of a freshly initialised network (seeded): colorizes, just not
    well; the survey needs a model to run, not a good one."""
    import torch

    from colorizer.checkpoint import save_checkpoint
    from colorizer.model import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch)
    return save_checkpoint(path, build_model(cfg).eval(), cfg, step=0)


def fake_survey(folder: Path, frames: int = 3, models: tuple[str, ...] = ("early", "late"),
                raters: int = 2, ask_confidence: bool = False) -> tuple[store.SurveyInfo,
                                                                          list[str]]:
    """A survey folder written straight through `survey.store` (no model needed): per frame
    a truth, one image per model and a grey one, each a flat colour JPEG of its own.
    Returns (the opened survey, the tokens of `raters` raters)."""
    import secrets

    folder.mkdir(parents=True, exist_ok=True)
    conditions = [store.Condition("truth", "truth", "dataset")]
    conditions += [store.Condition(m, "model", "dataset", f"{m}.pt") for m in models]
    conditions.append(store.Condition("grey", "grey", "dataset"))
    rows, images = [], []
    rng = np.random.default_rng(0)
    for k in range(frames):
        rows.append(store.Frame(k, f"film-f{k}", "film", k, "dataset", f"f{k}.jpg"))
        for c in conditions:
            image_id = secrets.token_hex(8)
            pixels = np.full((60, 80, 3), rng.integers(0, 255, 3), np.uint8)
            (folder / store.IMAGES_DIR).mkdir(exist_ok=True)
            cv2.imwrite(str(folder / store.IMAGES_DIR / f"{image_id}.jpg"), pixels)
            images.append(store.Image(image_id, k, c.name, f"images/{image_id}.jpg", 80, 60))
    tokens = store.create(store.db_path(folder), {"ask_confidence": ask_confidence},
                          conditions, rows, images, raters=raters)
    return store.open_survey(folder), tokens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, deadline_s: float = 60) -> None:
    """Until the server accepts connections (polling; fails if it exits first)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"the server did not listen on {port}: {log.read_text()}")


def start_server(folder: Path, port: int, log: Path, *args: str) -> subprocess.Popen:
    """`python cli.py survey serve FOLDER --port PORT` in a subprocess, stderr to `log`
    (appended: a restarted server writes on)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "cli.py"), "survey", "serve", str(folder),
             "--port", str(port), *args],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, env=env)
    wait_for_port(port, proc, log)
    return proc


def stop_server(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=60)
