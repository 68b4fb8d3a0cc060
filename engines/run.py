"""Run independent tasks in a local process pool or on Ray, yielding results as they end.

    run_tasks(func, calls, engine="local", workers=4) -> (index, func(*calls[index])), ...

- ``local``: ``workers`` spawned processes (no forked decoder or BLAS threads); one
  worker runs the tasks in this process. Each worker limits OpenCV to one thread and
  exits when the parent process is gone (a killed run leaves no orphan finishing its
  task for nobody). With ``gpus`` (a list of CUDA device numbers), each worker is given
  one of them through ``CUDA_VISIBLE_DEVICES`` before anything imports torch, so a task
  that asks for ``cuda`` gets its worker's own card; there should be one worker per card.
- ``ray``: each call is a Ray task with one CPU (and ``gpus_per_task`` GPUs when > 0),
  retried once if its worker dies; on a cluster (``address`` or ``RAY_ADDRESS``) every
  node must see the inputs and outputs at the same paths, otherwise a local Ray with
  ``workers`` CPUs is started with this checkout importable by its workers.

`func` must be importable by name (a module-level function) and must not raise for bad
input: it returns a result that says what failed. A worker that dies (out of memory, a
crash in a native library) gives ``on_lost(index, reason)`` as that task's result.
Ctrl-C cancels the tasks not yet started and propagates.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")

ENGINES = ("local", "ray")
_PROJECT = str(Path(__file__).resolve().parents[1])


class EngineError(ValueError):
    """An engine cannot be used as asked (unknown name, Ray not installed)."""


def run_tasks(
    func: Callable[..., R],
    calls: Sequence[tuple[Any, ...]],
    *,
    on_lost: Callable[[int, str], R],
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    gpus: Sequence[int] = (),
    gpus_per_task: float = 0.0,
) -> Iterator[tuple[int, R]]:
    """``(index, func(*calls[index]))`` for every call, in the order they finish."""
    if engine not in ENGINES:
        raise EngineError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "ray":
        return _run_ray(func, calls, on_lost, workers, address, gpus_per_task)
    if gpus:
        workers = min(workers, len(gpus))  # one card per worker
    if (workers <= 1 and not gpus) or (len(calls) <= 1 and not gpus):
        return ((i, func(*call)) for i, call in enumerate(calls))
    return _run_pool(func, calls, on_lost, workers, tuple(gpus))


def _run_pool(func: Callable[..., R], calls: Sequence[tuple[Any, ...]],
              on_lost: Callable[[int, str], R], workers: int, gpus: tuple[int, ...]
              ) -> Iterator[tuple[int, R]]:
    context = multiprocessing.get_context("spawn")
    cards = context.Queue()
    for gpu in gpus:
        cards.put(gpu)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=(os.getpid(), cards if gpus else None)) as pool:
        futures: dict[Future[R], int] = {pool.submit(func, *call): i
                                         for i, call in enumerate(calls)}
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = futures[future]
                    try:
                        yield i, future.result()
                    except BrokenProcessPool:
                        yield i, on_lost(i, "worker process died (out of memory?); rerun "
                                            "to retry")
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _init_worker(parent_pid: int, cards: Any) -> None:
    """Pool worker initializer: a GPU of its own (when there are GPUs), one OpenCV thread
    (one task per core), and an exit when the parent process is gone."""
    if cards is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(cards.get(timeout=60))
    import cv2

    cv2.setNumThreads(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _run_ray(func: Callable[..., R], calls: Sequence[tuple[Any, ...]],
             on_lost: Callable[[int, str], R], workers: int, address: str | None,
             gpus_per_task: float) -> Iterator[tuple[int, R]]:
    try:
        import ray
    except ImportError as exc:
        raise EngineError("--engine ray needs Ray: pip install 'filmcolor[ray]'") from exc
    address = address or os.environ.get("RAY_ADDRESS") or None
    init: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False,
                            "include_dashboard": False}
    if address is None:  # a local Ray: make this checkout importable by its workers
        init |= {"num_cpus": workers, "runtime_env": {"env_vars": {"PYTHONPATH": _PROJECT}}}
    else:
        init["address"] = address
    started_here = not ray.is_initialized()
    ray.init(**init)
    try:
        options: dict[str, Any] = {"num_cpus": 1, "max_retries": 1}
        if gpus_per_task > 0:
            options["num_gpus"] = gpus_per_task
        remote = ray.remote(**options)(func)
        refs = [remote.remote(*call) for call in calls]
        index = {ref: i for i, ref in enumerate(refs)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    yield index[ref], ray.get(ref)
                except ray.exceptions.RayError as exc:
                    yield index[ref], on_lost(index[ref], f"ray task failed: {exc}")
    finally:
        if started_here:
            ray.shutdown()
