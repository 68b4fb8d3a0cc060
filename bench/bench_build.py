"""build-dataset parallel speed-up, measured side by side in one run.

    python bench/bench_build.py [--films 8] [--seconds 60] [--size 640x360] [--out bench_out]

Makes (once, cached) N synthetic H.264 films (640x360 by default), then times
  sequential   extract_film on each film, one after another, in this process (default
               decoding: FFmpeg's AUTO threads already use the second core in part)
  one thread   the same with one decode thread per film, as the pool's workers run
  workers=2    build-dataset --workers 2 (process pool), including the merge
and, as the floor that any extractor meets, plain decoding (PyAV, no analysis):
  decode       one film after another with FFmpeg's threads, and two films at a time on
               one thread each
and reports the ratios (target <= 0.6 on a 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_films(folder: Path, n: int, seconds: float, size: tuple[int, int]) -> list[Path]:
    from filmdata.synthetic import make_film, standard_plan

    folder.mkdir(parents=True, exist_ok=True)
    films = []
    for i in range(n):
        path = folder / f"film{i:02d}.mp4"
        if not path.exists():
            plan = standard_plan(seed=100 + i, n_shots=max(2, round(seconds / 3)))
            tmp = path.with_name(f".{path.name}.part.mp4")
            make_film(tmp, plan, size=size, seed=100 + i, preset="medium")
            tmp.replace(path)
        films.append(path)
    return films


def decode_all(path: Path, threads: int = 0) -> int:
    """Decode every frame of a film, nothing else (threads 0: FFmpeg's choice)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if threads != 1 else "NONE"
        stream.codec_context.thread_count = threads
        return sum(1 for _ in container.decode(stream))


def time_decode(films: list[Path], workers: int) -> tuple[float, float]:
    """(seconds one after another with threads, seconds `workers` at a time on one
    thread each)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    for film in films:
        decode_all(film)
    sequential_s = time.perf_counter() - started
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(decode_all, films[:workers], [1] * workers))  # start the workers
        started = time.perf_counter()
        list(pool.map(decode_all, films, [1] * len(films)))
        parallel_s = time.perf_counter() - started
    return sequential_s, parallel_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--films", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of the films")
    parser.add_argument("--out", type=Path, default=REPO / "bench_out")
    args = parser.parse_args()

    from filmdata.build import BuildConfig, build_dataset, one_decode_thread
    from filmdata.extract import extract_film

    size = tuple(int(v) for v in args.size.lower().split("x"))
    suffix = "" if args.size == "640x360" else f"_{args.size}"  # keeps the old cache name
    films = make_films(args.out / f"build_films_{args.seconds:g}s{suffix}", args.films,
                       args.seconds, size)
    sequential_out = args.out / "build_sequential"
    parallel_out = args.out / "build_parallel"
    for folder in (sequential_out, parallel_out):
        shutil.rmtree(folder, ignore_errors=True)

    started = time.perf_counter()
    for film in films:
        extract_film(film, sequential_out, progress=False)
    sequential_s = time.perf_counter() - started

    # The same, decoding on one thread as the pool's workers do.
    one_thread = one_decode_thread(BuildConfig()).extract
    shutil.rmtree(sequential_out)
    started = time.perf_counter()
    for film in films:
        extract_film(film, sequential_out, one_thread, progress=False)
    one_thread_s = time.perf_counter() - started

    started = time.perf_counter()
    report = build_dataset([films[0].parent], parallel_out, workers=args.workers,
                           progress=False)
    parallel_s = time.perf_counter() - started
    assert not report.failures, report.failures

    decode_sequential_s, decode_parallel_s = time_decode(films, args.workers)

    print(f"\n{len(films)} films of {args.seconds:g} s, {args.size} H.264; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")
    print(f"{'what':52s} {'seconds':>8s} {'ratio':>7s}")
    print(f"{'extract one after another (default: AUTO threads)':52s} {sequential_s:8.2f} "
          f"{1.0:7.2f}")
    print(f"{'extract one after another, one decode thread':52s} {one_thread_s:8.2f} "
          f"{one_thread_s / sequential_s:7.2f}")
    print(f"{f'build-dataset --workers {args.workers}':52s} {parallel_s:8.2f} "
          f"{parallel_s / sequential_s:7.2f}   (target <= 0.6)")
    print(f"{'decode only, one after another (FFmpeg threads)':52s} "
          f"{decode_sequential_s:8.2f} {decode_sequential_s / sequential_s:7.2f}")
    print(f"{f'decode only, {args.workers} at a time, one thread each':52s} "
          f"{decode_parallel_s:8.2f} {decode_parallel_s / sequential_s:7.2f}")
    print(f"\nbuild-dataset / one-thread sequential = {parallel_s / one_thread_s:.2f}")
    print(f"decode only: {args.workers} at a time / one after another = "
          f"{decode_parallel_s / decode_sequential_s:.2f} (the pool's floor for decoding)")


if __name__ == "__main__":
    main()
