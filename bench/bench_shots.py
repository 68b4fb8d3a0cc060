"""Shot-detection quality: our detectors vs PySceneDetect's own CLI, on synthetic films.

    python bench/bench_shots.py                      # 6 films (seeds 0-5), 320x240, 24 fps
    python bench/bench_shots.py --seeds 0-9 --size 640x360

Each film is a `standard_plan` film (real photos; pans, zooms, grain, flicker, a colour
cast, night shots, a grey title card, flashes, cuts, dissolves and fades), made once under
--out. Our detectors run in one pass over the frames of our own decode
(`filmdata.decode.FilmDecoder`, 256-wide analysis frames); the CLI runs as a user would:
``scenedetect -i FILM -o DIR -q detect-content list-scenes -f NAME.csv --skip-cuts``.
A cut matches within 2 frames; a dissolve or fade when the predicted cut falls inside it.
Prints one table: precision, recall, F1 (summed over films), per-film F1, and the
detector's own time per frame (ours only: the CLI's time includes its decode).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filmdata.decode import FilmDecoder  # noqa: E402
from filmdata.shot_eval import ShotScore, score_transitions  # noqa: E402
from filmdata.shots import ShotConfig, ShotDetector  # noqa: E402
from filmdata.synthetic import FilmTruth, make_film, standard_plan  # noqa: E402

OURS = ("film", "content", "adaptive")  # our default, and plain detectors fed by us


def parse_seeds(text: str) -> list[int]:
    """'0-5' or '1,4,7' -> seeds."""
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def ours(truth: FilmTruth, width: int) -> dict[str, tuple[list[int], float]]:
    """Cut frames and seconds per frame of each of OURS, in one pass over one decode."""
    detectors = {name: ShotDetector(ShotConfig(detector=name), truth.fps) for name in OURS}
    cuts: dict[str, list[int]] = {name: [] for name in OURS}
    spent = dict.fromkeys(OURS, 0.0)
    n = 0
    with FilmDecoder(truth.path, analysis_width=width) as decoder:
        for frame in decoder.frames():
            n += 1
            for name, detector in detectors.items():
                t0 = time.perf_counter()
                found = detector.push(frame.index, frame.small)
                spent[name] += time.perf_counter() - t0
                cuts[name].extend(t.cut for t in found)
            frame.release()
    for name, detector in detectors.items():
        cuts[name].extend(t.cut for t in detector.flush())
    return {name: (cuts[name], spent[name] / max(n, 1)) for name in OURS}


def scenedetect_cli(film: Path, out: Path) -> list[int]:
    """Cut frames (first frame of each new scene, 0-based) from the scenedetect CLI."""
    exe = shutil.which("scenedetect")
    cmd = [exe] if exe else [sys.executable, "-m", "scenedetect"]
    name = f"{film.stem}-scenes.csv"
    cmd += [
        "-i",
        str(film),
        "-o",
        str(out),
        "-q",
        "detect-content",
        "list-scenes",
        "-f",
        name,
        "--skip-cuts",
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    with open(out / name, newline="") as f:
        starts = [int(row["Start Frame"]) - 1 for row in csv.DictReader(f)]  # 1-based
    return starts[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-5", help="'0-5' or '1,4,7'")
    parser.add_argument("--size", default="320x240", help="film size WxH")
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--width", type=int, default=256, help="analysis width")
    parser.add_argument("--out", type=Path, default=Path("bench_out/shots"))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)

    methods = [*OURS, "scenedetect CLI"]
    totals = {m: ShotScore(0, 0, 0) for m in methods}
    per_film: dict[str, list[float]] = {m: [] for m in methods}
    ms_per_frame: dict[str, list[float]] = {m: [] for m in OURS}
    for seed in parse_seeds(args.seeds):
        film = args.out / f"film_s{seed}_{width}x{height}.mp4"
        plan = standard_plan(seed, fps=args.fps)
        truth = make_film(film, plan, size=(width, height), fps=args.fps, seed=seed)
        spans = [(t.start, t.end) for t in truth.transitions]
        results: dict[str, list[int]] = {}
        for name, (cuts, seconds_per_frame) in ours(truth, args.width).items():
            results[name] = cuts
            ms_per_frame[name].append(1000 * seconds_per_frame)
        results["scenedetect CLI"] = scenedetect_cli(film, args.out)
        for m in methods:
            score = score_transitions(results[m], spans, tolerance=2)
            totals[m] += score
            per_film[m].append(score.f1)
        print(
            f"seed {seed}: {truth.n_frames} frames, {len(spans)} transitions "
            + " ".join(f"{m}={per_film[m][-1]:.3f}" for m in methods),
            flush=True,
        )

    print()
    print(
        f"{'method':<18}{'precision':>10}{'recall':>8}{'F1':>7}{'TP/FP/FN':>12}"
        f"{'min film F1':>13}{'ms/frame':>10}"
    )
    for m in methods:
        s = totals[m]
        counts = f"{s.true_positives}/{s.false_positives}/{s.false_negatives}"
        ms = f"{sum(ms_per_frame[m]) / len(ms_per_frame[m]):.2f}" if m in ms_per_frame else "-"
        print(
            f"{m:<18}{s.precision:>10.3f}{s.recall:>8.3f}{s.f1:>7.3f}{counts:>12}"
            f"{min(per_film[m]):>13.3f}{ms:>10}"
        )


if __name__ == "__main__":
    main()
