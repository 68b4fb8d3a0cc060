"""extract-frames speed and memory, measured side by side in one run.

    python bench/bench_extract.py [--minutes 3] [--out bench_out]

Makes (once, cached under --out) a 720p H.264 synthetic film of a few minutes from real
photographs, encoded like a real transfer (x264 preset medium, CRF 20), then times:

  decode only   PyAV decoding every frame, best thread type, nothing converted
  extract       our extract-frames (library call, no progress bar)
  scenedetect   `scenedetect -i FILM detect-content save-images -n 3` (its own CLI)

and reports extract / decode (target <= 1.5) and scenedetect / extract (target >= 2.5).
Memory: peak RSS of extract-frames in a fresh process on a short film and on one 10x
longer (target: long / short <= 1.15).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_bench_film(path: Path, seconds: float, seed: int) -> None:
    from filmdata.synthetic import make_film, standard_plan

    if path.exists():
        return
    n_shots = max(2, round(seconds / 3.0))
    plan = standard_plan(seed=seed, n_shots=n_shots, seconds_per_shot=3.0)
    tmp = path.with_name(f".{path.name}.part{path.suffix}")
    make_film(tmp, plan, size=(1280, 720), seed=seed, preset="medium", crf=20)
    tmp.replace(path)


def time_decode(path: Path) -> tuple[float, str, int]:
    """Fastest of the thread types at decoding every frame and nothing else."""
    import av

    best = (float("inf"), "", 0)
    for thread_type in ("SLICE", "FRAME", "AUTO"):
        started = time.perf_counter()
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = thread_type
            frames = sum(1 for _ in container.decode(stream))
        best = min(best, (time.perf_counter() - started, thread_type, frames))
    return best


def time_extract(path: Path, out: Path) -> float:
    from filmdata.extract import extract_film

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    extract_film(path, out, progress=False)
    return time.perf_counter() - started


def time_scenedetect(path: Path, out: Path) -> float | None:
    exe = shutil.which("scenedetect")
    if exe is None:
        return None
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    subprocess.run(
        [exe, "-q", "-i", str(path), "-o", str(out), "detect-content", "save-images", "-n", "3"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def peak_rss_mib(path: Path, out: Path) -> float:
    """Peak RSS of a fresh process that runs extract-frames on `path`."""
    shutil.rmtree(out, ignore_errors=True)
    code = (
        "import resource, sys; sys.path.insert(0, sys.argv[3]);"
        "from filmdata.extract import extract_film;"
        "extract_film(sys.argv[1], sys.argv[2], progress=False);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), str(out), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout.split()[-1]) / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench_out")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    film = args.out / f"bench_720p_{args.minutes:g}min.mp4"
    make_bench_film(film, args.minutes * 60, seed=11)
    decode_s, thread_type, frames = time_decode(film)
    extract_s = time_extract(film, args.out / "extract")
    scenedetect_s = time_scenedetect(film, args.out / "scenedetect")

    rows = [
        ("decode only (PyAV, " + thread_type + ")", decode_s, 1.0),
        ("extract-frames", extract_s, extract_s / decode_s),
    ]
    if scenedetect_s is not None:
        rows.append(
            ("scenedetect detect-content save-images -n 3", scenedetect_s, scenedetect_s / decode_s)
        )
    print(
        f"\nfilm: {film.name}, {frames} frames 1280x720 H.264; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores\n"
    )
    print(f"{'what':48s} {'seconds':>8s} {'x decode':>9s} {'frames/s':>9s}")
    for name, seconds, ratio in rows:
        print(f"{name:48s} {seconds:8.2f} {ratio:9.2f} {frames / seconds:9.0f}")
    result = {
        "frames": frames,
        "decode_s": decode_s,
        "extract_s": extract_s,
        "extract_over_decode": extract_s / decode_s,
    }
    print(f"\nextract / decode      = {extract_s / decode_s:.2f}   (target <= 1.5)")
    if scenedetect_s is not None:
        result["scenedetect_over_extract"] = scenedetect_s / extract_s
        print(f"scenedetect / extract = {scenedetect_s / extract_s:.2f}   (target >= 2.5)")

    if not args.skip_memory:
        short_film = args.out / f"bench_720p_{args.minutes / 10:g}min.mp4"
        make_bench_film(short_film, args.minutes * 6, seed=11)
        short_mib = peak_rss_mib(short_film, args.out / "mem_short")
        long_mib = peak_rss_mib(film, args.out / "mem_long")
        result.update(short_rss_mib=short_mib, long_rss_mib=long_mib)
        print(f"\n{'peak RSS':48s} {'MiB':>8s}")
        print(f"{short_film.name:48s} {short_mib:8.0f}")
        print(f"{film.name + ' (10x longer)':48s} {long_mib:8.0f}")
        print(f"long / short          = {long_mib / short_mib:.3f}  (target <= 1.15)")
    (args.out / "bench_extract.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
