"""survey: make, serve, report the paper's subjective study.

The main test makes a survey with two models (a trained checkpoint and Zhang et al.'s
released file), serves it with the real server in a subprocess, answers it as two raters in
a headless Chromium with the keyboard alone on a phone-sized window, kills and restarts
the server half-way, and checks the report's numbers against the answers it gave.
"""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from survey import store
from survey.errors import SurveyNotFoundError, SurveyVersionError
from survey.order import rater_order
from survey.plan import pick_frames
from survey.report import analyse, holm, sign_flip_test, two_way_bootstrap
from tests.browser import headless_chromium
from tests.faults import run_cli
from tests.survey_helpers import (
    REPO,
    fake_survey,
    free_port,
    start_server,
    stop_server,
    survey_dataset,
    untrained_checkpoint,
)

flask = pytest.importorskip("flask", reason="the survey extra is not installed")

# --------------------------------------------------------------------------- picking, order


def _frames(shots_per_film: dict[str, int], per_shot: int = 3) -> pd.DataFrame:
    rows = [{"film_id": film, "shot_index": s, "frame_id": f"{film}-s{s}-f{k}"}
            for film, n in shots_per_film.items() for s in range(n) for k in range(per_shot)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=3)  # row order must not matter


def test_picking_spreads_over_films_and_shots() -> None:
    frames = _frames({"a": 10, "b": 4, "c": 2})
    picked = pick_frames(frames, 9, seed=1)
    per_film = picked["film_id"].value_counts().to_dict()
    assert per_film == {"a": 4, "b": 3, "c": 2}  # films take turns until c runs out of shots
    assert not picked.duplicated(["film_id", "shot_index"]).any()  # no shot twice
    # all 16 shots used before any shot gives a second frame
    picked = pick_frames(frames, 18, seed=1)
    assert picked.groupby(["film_id", "shot_index"]).size().max() == 2
    assert picked.drop_duplicates(["film_id", "shot_index"]).shape[0] == 16
    # seeded, and independent of the row order
    same = pick_frames(frames.sort_values("frame_id"), 9, seed=1)
    assert pick_frames(frames, 9, seed=1)["frame_id"].tolist() == same["frame_id"].tolist()
    assert pick_frames(frames, 9, seed=2)["frame_id"].tolist() != same["frame_id"].tolist()
    assert len(pick_frames(frames, 100, seed=0)) == len(frames)


def test_labels_and_options_are_checked() -> None:
    from survey.errors import SurveyConfigError
    from survey.plan import SurveyConfig

    runs = (Path("runs/base/last.pt"), Path("runs/film/last.pt"), Path("zhang.pth"))
    cfg = SurveyConfig(checkpoints=runs, out=Path("s"), data=Path("d"))
    assert cfg.condition_labels() == ["base", "film", "zhang"]
    for bad, words in (({"labels": ("truth", "b", "c")}, "is taken"),
                       ({"labels": ("a", "a", "c")}, "must differ"),
                       ({"labels": ("a",)}, "one --label per"),
                       ({"data": None}, "--data"),
                       ({"temperatures": (0.0,)}, "temperature")):
        with pytest.raises(SurveyConfigError, match=words):
            SurveyConfig(**{"checkpoints": runs, "out": Path("s"), "data": Path("d"), **bad})


def test_rater_order_is_a_stable_spread_permutation() -> None:
    images = [(f"{f:02d}{c}", f) for f in range(12) for c in "abcd"]
    first = rater_order("token-one", images)
    assert sorted(first) == sorted(i for i, _ in images)
    assert first == rater_order("token-one", list(reversed(images)))  # stable
    assert first != rater_order("token-two", images)
    for token in ("token-one", "token-two", "x" * 16, "another-rater"):
        frames = [int(i[:2]) for i in rater_order(token, images)]
        assert all(a != b for a, b in itertools.pairwise(frames))  # never twice in a row
        assert sorted(frames[:12]) == list(range(12))  # every frame once per round


# --------------------------------------------------------------------------- statistics


def _answers(rates: dict[str, float], raters: int, frames: int, seed: int,
             frame_sd: float = 0.0) -> pd.DataFrame:
    """Every rater answers every frame in every condition; P(yes) = rates[c], moved per frame
    by a normal effect on the logit scale with sd `frame_sd`."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(0, frame_sd, frames)
    rows = []
    for c, p in rates.items():
        logit = np.log(p / (1 - p)) + effect
        prob = 1 / (1 + np.exp(-logit))
        yes = rng.random((raters, frames)) < prob
        for r in range(raters):
            for f in range(frames):
                rows.append({"rater": r, "image_id": f"{c}-{f}", "frame_id": f"f{f}",
                             "condition": c, "yes": int(yes[r, f])})
    return pd.DataFrame(rows)


def test_bootstrap_interval_covers_the_true_share() -> None:
    """Over 40 simulated studies (10 raters x 20 frames) the 95 % interval covers the
    share the answers were drawn with nearly always; with many answers it is narrow."""
    covered = 0
    for seed in range(40):
        answers = _answers({"a": 0.7}, raters=10, frames=20, seed=seed)
        boot, _ = two_way_bootstrap(answers, ["a"], n_boot=400, seed=seed)
        lo, hi = np.quantile(boot["a"], [0.025, 0.975])
        covered += lo <= 0.7 <= hi
    assert covered >= 35, covered
    report = analyse(_answers({"a": 0.883, "b": 0.767}, raters=40, frames=60, seed=1),
                     ["a", "b"], n_boot=500, n_perm=2000)
    row = report.conditions.set_index("condition").loc["a"]
    assert row["ci_low"] <= 0.883 <= row["ci_high"]
    assert row["ci_high"] - row["ci_low"] < 0.06
    assert row["share_yes"] == pytest.approx(
        report.answers.loc[report.answers["condition"] == "a", "yes"].mean())


def test_frames_widen_the_interval() -> None:
    """Frames that differ (some look real to everyone, some to no one) are a source of
    variance that resampling raters alone would miss: the interval grows with it."""
    plain = analyse(_answers({"a": 0.6}, 30, 30, seed=2), ["a"], n_boot=500, n_perm=500)
    varied = analyse(_answers({"a": 0.6}, 30, 30, seed=2, frame_sd=2.0), ["a"], n_boot=500,
                     n_perm=500)
    width = {name: float(r.conditions["ci_high"].iloc[0] - r.conditions["ci_low"].iloc[0])
             for name, r in (("plain", plain), ("varied", varied))}
    assert width["varied"] > 1.5 * width["plain"], width


def test_pairwise_tests_find_a_real_difference_only() -> None:
    answers = _answers({"truth": 0.85, "model": 0.55, "other": 0.55}, raters=12, frames=30,
                       seed=4, frame_sd=0.7)
    pairs = analyse(answers, ["truth", "model", "other"], n_boot=500, n_perm=4000).pairwise
    pairs = pairs.set_index(["a", "b"])
    assert pairs.loc[("truth", "model"), "p_holm"] < 0.01
    assert pairs.loc[("truth", "model"), "ci_low"] > 0
    assert pairs.loc[("model", "other"), "p_holm"] > 0.05
    assert pairs.loc[("model", "other"), "ci_low"] < 0 < pairs.loc[("model", "other"),
                                                                     "ci_high"]
    assert (pairs["p_holm"] >= pairs["p"]).all()


def test_sign_flip_exact_and_holm() -> None:
    rng = np.random.default_rng(0)
    p, method = sign_flip_test(np.full(10, 0.2), 1000, rng)
    assert method == "exact sign-flip" and p == pytest.approx(2 / 1024)  # all + or all -
    p, _ = sign_flip_test(np.array([0.5, -0.5]), 1000, rng)
    assert p == 1.0
    assert np.allclose(holm(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])
    assert np.isnan(holm(np.array([np.nan, 0.02]))[0])


# --------------------------------------------------------------------------- database, app


def test_answering_twice_last_answer_wins(tmp_path: Path) -> None:
    from survey.app import create_app

    info, tokens = fake_survey(tmp_path / "s")
    client = create_app(tmp_path / "s").test_client()
    image = info.images[0].image_id
    for answer in ("yes", "yes", "no"):
        reply = client.post(f"/r/{tokens[0]}", data={"image": image, "answer": answer})
        assert reply.status_code == 303
    rows = store.answers_frame(info)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["yes"], row["first_answer"], row["changes"]) == (0, 1, 1)


def test_rater_pages_resume_and_hide_the_condition(tmp_path: Path) -> None:
    from survey.app import create_app

    info, tokens = fake_survey(tmp_path / "s", models=("early-model", "late-model"))
    client = create_app(tmp_path / "s").test_client()
    seen = []
    for _ in range(4):
        page = client.get(f"/r/{tokens[1]}").get_data(as_text=True)
        for hidden in ("truth", "early-model", "late-model", "grey"):
            assert hidden not in page
        image = page.split('name="image" value="')[1][:16]
        seen.append(image)
        client.post(f"/r/{tokens[1]}", data={"image": image, "answer": "no"})
    # a new app on the same folder (a restarted server) resumes at the fifth image
    again = create_app(tmp_path / "s").test_client()
    page = again.get(f"/r/{tokens[1]}").get_data(as_text=True)
    assert "Image 5 of 12" in page and "4 answered" in page
    order = rater_order(tokens[1], [(i.image_id, i.frame_key) for i in info.images])
    assert seen == order[:4]
    # the image is served by its opaque id, cacheable; unknown ids are 404
    reply = again.get(f"/img/{seen[0]}.jpg")
    assert reply.status_code == 200 and reply.mimetype == "image/jpeg"
    assert "immutable" in reply.headers["Cache-Control"]
    assert again.get("/img/0123456789abcdef.jpg").status_code == 404
    assert again.get("/img/..%2Fsurvey.sqlite").status_code == 404


def test_unknown_token_and_bad_answers_are_short_pages(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from survey.app import create_app

    info, tokens = fake_survey(tmp_path / "s")
    client = create_app(tmp_path / "s").test_client()
    with caplog.at_level("INFO", logger="survey"):
        reply = client.get("/r/notARealToken99")
        assert reply.status_code == 404
        assert "not known to this survey" in reply.get_data(as_text=True)
        assert client.post("/r/notARealToken99", data={}).status_code == 404
        for data in ({"image": "nope", "answer": "yes"},
                     {"image": info.images[0].image_id, "answer": "maybe"},
                     {"image": info.images[0].image_id, "answer": "yes", "confidence": "9"}):
            reply = client.post(f"/r/{tokens[0]}", data=data)
            assert reply.status_code == 400
            assert "Traceback" not in reply.get_data(as_text=True)
    assert store.answers_frame(info).empty
    assert "unknown rater link" in caplog.text and "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)


def test_closed_survey_takes_only_the_links_made(tmp_path: Path) -> None:
    from survey.app import create_app

    _, tokens = fake_survey(tmp_path / "s", raters=1)
    client = create_app(tmp_path / "s", open_enrolment=False).test_client()
    assert client.post("/start").status_code == 404
    assert "personal link" in client.get("/").get_data(as_text=True)
    assert client.get(f"/r/{tokens[0]}").status_code == 200
    open_client = create_app(tmp_path / "s").test_client()
    reply = open_client.post("/start")
    assert reply.status_code == 303 and reply.headers["Location"].startswith("/r/")


def test_raters_at_once(tmp_path: Path) -> None:
    """Four raters answering every image at the same time: every answer is stored."""
    from survey.app import create_app

    info, tokens = fake_survey(tmp_path / "s", raters=4)
    app = create_app(tmp_path / "s")
    errors: list[str] = []

    def rate(token: str) -> None:
        client = app.test_client()
        for image in info.images:
            reply = client.post(f"/r/{token}", data={"image": image.image_id,
                                                     "answer": "yes"})
            if reply.status_code != 303:
                errors.append(f"{reply.status_code}")

    threads = [threading.Thread(target=rate, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store.answers_frame(info)) == 4 * len(info.images)
    mode = sqlite3.connect(info.db).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_other_versions_and_non_surveys_are_refused(tmp_path: Path) -> None:
    info, _ = fake_survey(tmp_path / "old")
    with sqlite3.connect(info.db) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SurveyVersionError, match="format 99"):
        store.open_survey(tmp_path / "old")
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / store.DB_NAME).write_bytes(b"not a database at all" * 100)
    with pytest.raises(SurveyNotFoundError, match="not a survey folder"):
        store.open_survey(tmp_path / "empty")
    for command in (["serve"], ["report"]):
        for folder, words in (("old", "format 99"), ("empty", "no survey.sqlite"),
                              ("junk", "not a readable survey"), ("missing", "no such")):
            code, _, stderr = run_cli(["survey", *command, str(tmp_path / folder)])
            assert code == 2, stderr
            lines = stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]


def test_report_without_answers_and_port_in_use(tmp_path: Path) -> None:
    import socket

    fake_survey(tmp_path / "s")
    code, _, stderr = run_cli(["survey", "report", str(tmp_path / "s")])
    assert code == 2 and "no answers" in stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, stderr = run_cli(["survey", "serve", str(tmp_path / "s"), "--port",
                                   str(port)])
    assert code == 1 and "in use" in stderr and "Traceback" not in stderr


def test_cli_starts_without_flask_or_torch() -> None:
    probe = ("import sys, cli; assert 'survey' in cli.main.commands; "
             "print(sorted(m for m in ('flask', 'torch', 'pandas', 'waitress') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- making


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A dataset of two films' frames, a checkpoint (RUN/last.pt) and Zhang et
    al.'s released file (random weights with the release's keys and shapes)."""
    import torch

    from colorizer.bins import ab_bins
    from tests.zhang_reference import random_release

    root = tmp_path_factory.mktemp("study")
    early = untrained_checkpoint(root / "runs" / "early" / "last.pt")
    zhang = root / "colorization_release_v2-9b330a0b.pth"
    torch.save(random_release(ab_bins("cpu"), seed=0), zhang)
    return {"root": root, "data": survey_dataset(root / "data"), "early": early,
            "zhang": zhang}


def _make(study: dict[str, Path], out: Path, *extra: str, zhang: bool = True
          ) -> tuple[int, str, str]:
    models = ["--checkpoint", str(study["early"]), "--label", "early"]
    if zhang:
        models += ["--checkpoint", str(study["zhang"]), "--label", "Zhang et al."]
    return run_cli(["survey", "make", *models, "--data", str(study["data"]), "--n", "4",
                    "--work-size", "64", "--device", "cpu", "--out", str(out), "-q", *extra])


def test_make_refuses_to_overwrite(study: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "s"
    code, stdout, stderr = _make(study, out, "--n", "2", "--max-side", "96")
    assert code == 0, stderr
    assert "2 frame(s) x 3 condition(s) (truth, early, Zhang et al.)" in stdout
    info = store.open_survey(out)
    assert len(info.images) == 6
    for image in info.images:  # opaque names, bounded size
        assert len(Path(image.file).stem) == 16 and max(image.width, image.height) <= 96
        assert cv2.imread(str(out / image.file)).shape[:2] == (image.height, image.width)
    code, _, stderr = _make(study, out, "--n", "2")
    assert code == 2 and "already holds a survey" in stderr and "--force" in stderr
    bw = tmp_path / "bw"
    bw.mkdir()
    cv2.imwrite(str(bw / "old_film_frame.png"), np.tile(np.arange(0, 250, 2, np.uint8), (90, 1)))
    code, stdout, stderr = _make(study, out, "--n", "1", "--force", "--bw", str(bw),
                                 zhang=False)
    assert code == 0, stderr
    assert "(truth, early, early (b&w))" in stdout
    assert len(store.open_survey(out).images) == 3
    assert len(list((out / "images").iterdir())) == 3  # the old images are gone
    # a make killed before its database was written: the rerun starts afresh
    store.db_path(out).unlink()
    code, _, stderr = _make(study, out, "--n", "1", zhang=False)
    assert code == 0, stderr
    # someone else's folder is never written into
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("keep me")
    code, _, stderr = _make(study, tmp_path / "mine")
    assert code == 2 and "not empty" in stderr
    code, _, stderr = _make(study, tmp_path / "x", "--label", "truth", "--label", "b")
    assert code == 2 and "one --label per" in stderr


# --------------------------------------------------------------------------- the browser


def _browser(width: int, height: int):
    """A headless Chromium with a phone's screen exactly (a desktop window has a minimum
    width), or skip with the reason."""
    browser = headless_chromium(width, height)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 2, "mobile": True})
    return browser


_STATE = """
const i = document.querySelector('input[name=image]');
const shot = document.getElementById('shot');
return {ready: document.readyState, image: i ? i.value : null,
        done: !!document.getElementById('done'),
        loaded: !!shot && shot.complete && shot.naturalWidth > 0,
        text: document.body ? document.body.innerText : ''};
"""

_LAYOUT = """
const shot = document.getElementById('shot').getBoundingClientRect();
const no = document.getElementById('no').getBoundingClientRect();
const fetched = performance.getEntriesByType('resource')
    .filter(e => e.name.indexOf('/img/') >= 0).length;
return {w: innerWidth, h: innerHeight, right: shot.right, bottom: shot.bottom,
        shown: shot.width, natural: document.getElementById('shot').naturalWidth,
        buttons: no.bottom, fetched: fetched};
"""


def _state(browser, before: str | None = None) -> dict:
    """The page's state once it has loaded (and moved on from `before`); polls."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            s = browser.execute_script(_STATE)
        except Exception:  # the page is being replaced
            s = None
        if s and s["ready"] == "complete" and (s["done"] or (s["image"] and s["loaded"])) \
                and (s["done"] or s["image"] != before):
            return s
        time.sleep(0.03)
    raise AssertionError(f"the page did not move on from {before}")


def _press(browser, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).send_keys(keys).perform()


class Rater:
    """One rater in the browser: answers with the keyboard, remembers what it answered."""

    def __init__(self, browser, base: str, token: str, seed: int, confidence: bool) -> None:
        self.browser, self.base, self.token = browser, base, token
        self.rng = np.random.default_rng(seed)
        self.confidence = confidence
        self.given: dict[str, tuple[int, int | None]] = {}  # image_id -> (yes, confidence)

    def open(self) -> dict:
        self.browser.get(f"{self.base}/r/{self.token}")
        return _state(self.browser)

    def answer(self, n: int) -> None:
        state = self.open()
        for _ in range(n):
            if state["done"]:
                return
            layout = self.browser.execute_script(_LAYOUT)
            assert (layout["w"], layout["h"]) == (375, 667), layout  # a phone
            assert layout["fetched"] == 1, layout  # the image was loaded once
            assert layout["right"] <= layout["w"] + 0.5 and layout["bottom"] <= layout["h"]
            assert layout["buttons"] <= layout["h"], layout  # no scrolling to answer
            assert layout["shown"] <= layout["natural"]  # fitted, never blown up
            yes = int(self.rng.random() < 0.6)
            conf = int(self.rng.integers(1, 6)) if self.confidence else None
            _press(self.browser, (str(conf) if conf else "") + ("y" if yes else "n"))
            self.given[state["image"]] = (yes, conf)
            state = _state(self.browser, state["image"])

    def change_previous(self) -> str:
        """Back one image with b, and answer it the other way."""
        state = self.open()
        _press(self.browser, "b")
        back = _state(self.browser, state["image"])
        yes, _ = self.given[back["image"]]
        assert "given" in self.browser.find_element("id", "yes" if yes else "no") \
            .get_attribute("class")
        _press(self.browser, "n" if yes else "y")
        self.given[back["image"]] = (1 - yes, None)
        after = _state(self.browser, back["image"])
        assert after["image"] == state["image"]  # back to the next new one
        return back["image"]


@pytest.mark.slow
def test_two_raters_in_a_browser_with_a_restart(study: dict[str, Path],
                                                tmp_path: Path) -> None:
    folder = tmp_path / "survey"
    code, stdout, stderr = _make(study, folder, "--n", "3", "--grey", "--confidence",
                                 "--raters", "1")
    assert code == 0, stderr
    first_token = (folder / "raters.txt").read_text().split("/r/")[1].strip()
    assert f"rater link: /r/{first_token}" in stdout
    info = store.open_survey(folder)
    n = len(info.images)
    assert n == 3 * 4  # 3 frames: truth, early, Zhang et al., grey

    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = start_server(folder, port, log)
    browser = _browser(375, 667)  # a phone
    try:
        # rater A has a link from `survey make`; rater B starts at the start page (Enter)
        a = Rater(browser, base, first_token, seed=1, confidence=False)
        browser.get(base + "/")
        _press(browser, "\n")
        end = time.monotonic() + 30
        while "/r/" not in browser.current_url and time.monotonic() < end:
            time.sleep(0.03)
        b = Rater(browser, base, browser.current_url.rsplit("/r/", 1)[1], seed=2,
                  confidence=True)
        a.answer(5)
        b.answer(3)
        changed = a.change_previous()

        server.send_signal(signal.SIGKILL)  # a crash in the middle of the survey
        server.wait(timeout=60)
        server = start_server(folder, port, log)
        state = b.open()
        assert "Image 4 of 12" in state["text"] and "3 answered" in state["text"]
        b.answer(n)
        a.answer(n)
        assert a.open()["done"] and b.open()["done"]

        browser.get(base + "/r/notARealToken99")
        assert "not known to this survey" in browser.find_element("tag name", "body").text
    finally:
        browser.quit()
        code = stop_server(server)
    assert code == 0
    text = log.read_text()
    assert "Traceback" not in text and "unknown rater link" in text

    # what the browser answered, by condition (the plan says which image is which)
    condition = {i.image_id: i.condition for i in info.images}
    ids = dict(sqlite3.connect(info.db).execute("SELECT token, rater_id FROM raters"))
    clicked = pd.DataFrame(
        [{"rater": ids[r.token], "image_id": image, "yes": yes, "confidence": conf,
          "condition": condition[image]}
         for r in (a, b) for image, (yes, conf) in r.given.items()])
    assert len(clicked) == 2 * n
    with sqlite3.connect(info.db) as conn:
        rows = pd.read_sql_query("SELECT a.rater_id AS rater, a.image_id, a.answer AS yes, "
                                 "a.confidence, a.changes, i.condition FROM answers a JOIN "
                                 "images i USING (image_id)", conn)
    merged = clicked.merge(rows, on=["rater", "image_id"], suffixes=("", "_db"))
    assert len(merged) == 2 * n and (merged["yes"] == merged["yes_db"]).all()
    assert merged["confidence"].fillna(0).eq(merged["confidence_db"].fillna(0)).all()
    assert rows.loc[rows["image_id"] == changed, "changes"].max() == 1

    out = tmp_path / "report"
    code, _, stderr = run_cli(["survey", "report", str(folder), "--out", str(out),
                                    "--boot", "300", "--perm", "500"])
    assert code == 0, stderr
    table = pd.read_csv(out / "conditions.csv").set_index("condition")
    expected = clicked.groupby("condition")["yes"].mean()
    from_db = rows.groupby("condition")["yes"].mean()
    assert list(table.index) == ["truth", "early", "Zhang et al.", "grey"]
    for c in table.index:
        assert table.loc[c, "share_yes"] == pytest.approx(expected[c])
        assert table.loc[c, "share_yes"] == pytest.approx(from_db[c])
        assert table.loc[c, "answers"] == 6 and table.loc[c, "raters"] == 2
        assert table.loc[c, "ci_low"] <= table.loc[c, "share_yes"] <= table.loc[c, "ci_high"]
    answers = pd.read_csv(out / "answers.csv")
    assert len(answers) == 2 * n
    csv = answers.merge(clicked, on=["rater", "image_id"], suffixes=("", "_clicked"))
    assert (csv["yes"] == csv["yes_clicked"]).all()
    per_image = pd.read_csv(out / "per_image.csv")
    shares = clicked.groupby("image_id")["yes"].mean()
    assert np.allclose(per_image.set_index("image_id")["share"], shares.loc[per_image["image_id"]])
    pairwise = pd.read_csv(out / "pairwise.csv")
    assert len(pairwise) == 6 and pairwise["p_holm"].between(0, 1).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["answers"] == 2 * n and summary["raters"]["complete"] == 2
    assert summary["changed_answers"] == 1

    png = out / "boxplot.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    picture = cv2.imread(str(png))
    assert picture is not None and picture.shape[0] >= 400 and picture.shape[1] >= 500
    assert picture.std() > 10  # something is drawn
