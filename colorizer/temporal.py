"""Temporal consistency of colorized films: dense optical flow, motion-compensated smoothing
of ab, and keyframe propagation. Pure: numpy / OpenCV arrays in, arrays out; no I/O.

Conventions (every function here):

- Frames are compared by their L at the network's working size as uint8 (L * 2.55),
  (h, w): the picture the network sees, so flow costs the same whatever the film's size.
- A flow *at frame a towards frame b* is (h, w, 2) float32, pixels (dx, dy), such that
  ``frame_a(x) ~ frame_b(x + flow(x))``; ``warp(thing_b, flow)`` brings b's content onto
  a's pixel grid.
- A confidence is (h, w) float32 in [0, 1]: 1 where the flow is trusted (forward and
  backward flows agree, the pixel stays in the picture), 0 where it is not (occlusions,
  disocclusions, flow failures).
- ab maps are (h, w, 2) float32 at the working size (the network's 1/4-size output
  upsampled bilinearly: warping at the flow's own resolution keeps edges in place).

Flow: OpenCV's DIS (Kroeger et al. 2016), preset ``fast`` (chosen on the real clips of
``bench/bench_temporal.py``: see docs/colorize.md). Occlusions: the forward-backward check of
Sundaram et al. 2010 as used by Lai et al. 2018: a pixel is occluded where
``|f + b(x + f)|^2 > 0.01 (|f|^2 + |b(x + f)|^2) + 0.5``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch

from colorizer.errors import ConfigError

FLOW_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
DEFAULT_FLOW_PRESET = "fast"
FLOW_SCALE = 2  # flow is estimated at 1/2 of the working size (4x cheaper; measured)
DEFAULT_KEYFRAME_INTERVAL = 4  # `--keyframes auto`: measured on real clips (docs/colorize.md)
# A propagated frame whose keyframes reach less than this share of its pixels with a
# trusted flow is run through the network instead (measured: docs/colorize.md).
MIN_COVERAGE = 0.6
_TRUSTED = 0.5  # a pixel counts as covered where a keyframe's chained confidence >= this


# --------------------------------------------------------------------------- flow


def L_to_u8(L: torch.Tensor) -> np.ndarray:
    """L (B, 1, h, w) in [0, 100] -> (B, h, w) uint8 (L * 2.55, rounded) on the CPU."""
    return (L[:, 0].float() * 2.55).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


class DenseFlow:
    """OpenCV's DIS optical flow: ``flow(a, b)`` -> (h, w, 2) float32 at a towards b."""

    def __init__(self, preset: str = DEFAULT_FLOW_PRESET) -> None:
        if preset not in FLOW_PRESETS:
            raise ConfigError(f"unknown flow preset {preset!r}; choose one of "
                              f"{', '.join(FLOW_PRESETS)}")
        self._dis = cv2.DISOpticalFlow_create(FLOW_PRESETS[preset])

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._dis.calc(a, b, None)


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> np.ndarray:
    """(h, w, 2) float32 pixel coordinates (x, y); read-only, shared."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    grid = np.stack([xs, ys], -1)
    grid.flags.writeable = False
    return grid


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` (h, w) or (h, w, C) float32 sampled at x + flow(x) (bilinear, edges
    replicated): the content of the frame the flow points to, on this frame's grid."""
    coords = _grid(*flow.shape[:2]) + flow  # (h, w, 2) one map: no copies of x and y
    return cv2.remap(image, coords, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


_SUM2 = np.ones((1, 2), np.float32)  # cv2.transform: the sum of a 2-channel image's channels


def _norm2(v: np.ndarray) -> np.ndarray:
    """(h, w, 2) -> (h, w) squared length."""
    return cv2.transform(cv2.multiply(v, v), _SUM2)


def confidence(f_ab: np.ndarray, f_ba: np.ndarray) -> np.ndarray:
    """(h, w) float32 0/1 at frame a: 1 where the flow a -> b is consistent with b -> a
    (forward-backward check) and lands inside the picture."""
    h, w = f_ab.shape[:2]
    back = warp(f_ba, f_ab)  # b's flow where a's pixels land
    err = _norm2(cv2.add(f_ab, back))
    slack = 0.01 * cv2.add(_norm2(f_ab), _norm2(back)) + 0.5
    inside = cv2.inRange(_grid(h, w) + f_ab, (0.0, 0.0), (w - 1.0, h - 1.0))  # 255 inside
    return ((err <= slack) & (inside > 0)).astype(np.float32)


@dataclass(frozen=True)
class Link:
    """The flows between consecutive frames t - 1 and t of one shot, both ways."""

    back: np.ndarray  # (h, w, 2) at t towards t - 1
    back_conf: np.ndarray  # (h, w) its confidence
    fwd: np.ndarray  # (h, w, 2) at t - 1 towards t
    fwd_conf: np.ndarray  # (h, w)


def link(flow: DenseFlow, prev_u8: np.ndarray, cur_u8: np.ndarray,
         scale: int = FLOW_SCALE) -> Link:
    """Both flows between frames t - 1 and t ((h, w) uint8 L each) and their confidences,
    estimated on the frames shrunk ``scale`` times and brought back to (h, w)."""
    h, w = cur_u8.shape
    small = (max(8, w // scale), max(8, h // scale))
    if small != (w, h):
        prev_u8 = cv2.resize(prev_u8, small, interpolation=cv2.INTER_AREA)
        cur_u8 = cv2.resize(cur_u8, small, interpolation=cv2.INTER_AREA)
    back = flow(cur_u8, prev_u8)
    fwd = flow(prev_u8, cur_u8)
    back_conf, fwd_conf = confidence(back, fwd), confidence(fwd, back)
    if small == (w, h):
        return Link(back, back_conf, fwd, fwd_conf)
    sx, sy = w / small[0], h / small[1]

    def up_flow(f: np.ndarray) -> np.ndarray:
        return cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32([sx, sy])

    def up_conf(c: np.ndarray) -> np.ndarray:
        return cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR)

    return Link(up_flow(back), up_conf(back_conf), up_flow(fwd), up_conf(fwd_conf))


def chain(step: np.ndarray, step_conf: np.ndarray, acc: np.ndarray, acc_conf: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """Flow from frame t to a farther frame f through t's neighbour n: ``step`` (t -> n)
    followed by ``acc`` (n -> f); the confidence is the product along the way."""
    return step + warp(acc, step), step_conf * warp(acc_conf, step)


def warping_error(prev_ab: np.ndarray, ab: np.ndarray, lk: Link) -> float:
    """Temporal warping error (Lai et al. 2018) between consecutive outputs: mean |ab_t -
    warp(ab_(t-1))| (Euclidean, ab units) over the pixels of t whose flow is trusted."""
    diff = np.sqrt(np.square(ab - warp(prev_ab, lk.back)).sum(-1))
    mask = lk.back_conf > 0.5
    return float(diff[mask].mean()) if mask.any() else 0.0


# --------------------------------------------------------------------------- smoothing


def smoothing_weight(smooth_s: float, fps: float) -> float:
    """Weight of the past per frame for time constant ``smooth_s`` s: exp(-1 / (tau fps))."""
    return math.exp(-1.0 / (smooth_s * fps)) if smooth_s > 0 else 0.0


class FlowSmoother:
    """Motion-compensated smoothing of ab within a shot: the previous output is warped onto
    the current frame and blended where the flow is trusted,
    ``out = w c warp(prev) + (1 - w c) pred``, w = exp(-1 / (tau fps)), c the confidence.
    Where the flow fails (occlusions, new content) the prediction is taken as it is."""

    def __init__(self, smooth_s: float, fps: float) -> None:
        self.weight = smoothing_weight(smooth_s, fps)
        self.state: np.ndarray | None = None  # (h, w, 2) the last output

    def __call__(self, pred: np.ndarray, lk: Link | None, restart: bool = False) -> np.ndarray:
        """``pred`` (h, w, 2) ab of frame t; ``lk`` its link to t - 1 (None: restart)."""
        if restart or self.state is None or lk is None or self.weight == 0:
            self.state = pred
        else:
            wc = (self.weight * lk.back_conf)[..., None]
            self.state = wc * warp(self.state, lk.back) + (1.0 - wc) * pred
        return self.state


class EmaSmoother:
    """The plain EMA within a shot, ``out = w prev + (1 - w) pred`` (no motion
    compensation: a moving object's colour trails it). Kept for comparison."""

    def __init__(self, smooth_s: float, fps: float) -> None:
        self.weight = smoothing_weight(smooth_s, fps)
        self.state: np.ndarray | None = None

    def __call__(self, pred: np.ndarray, lk: Link | None, restart: bool = False) -> np.ndarray:
        """``pred`` (h, w, 2) ab of frame t; ``lk`` unused; ``restart`` at a cut."""
        if restart or self.state is None or self.weight == 0:
            self.state = pred
        else:
            self.state = self.weight * self.state + (1.0 - self.weight) * pred
        return self.state


# --------------------------------------------------------------------------- keyframes


@dataclass(frozen=True)
class Propagated:
    ab: np.ndarray  # (h, w, 2)
    coverage: float  # share of pixels a keyframe reaches with a trusted flow, 0..1


def propagate(ab_a: np.ndarray, ab_b: np.ndarray | None, links: Sequence[Link]
              ) -> list[Propagated]:
    """ab of the frames strictly between keyframes a and b = a + len(links), carried from
    both by chained flow (one warp of each keyframe's ab per frame, no repeated blurring).
    ``links[i]`` joins frames a + i and a + i + 1. Per pixel the two are weighted by their
    confidence and by closeness (b - t and t - a); where neither is trusted, by closeness
    alone. ``ab_b`` None: from a only."""
    n = len(links)
    from_a: list[tuple[np.ndarray, np.ndarray]] = []
    flow = conf = None
    for i in range(1, n):  # t = a + i, reached through t - 1
        lk = links[i - 1]
        flow, conf = ((lk.back, lk.back_conf) if flow is None
                      else chain(lk.back, lk.back_conf, flow, conf))
        from_a.append((warp(ab_a, flow), conf))
    if ab_b is None:
        return [Propagated(ab, _coverage(c)) for ab, c in from_a]
    from_b: list[tuple[np.ndarray, np.ndarray]] = [None] * (n - 1)  # type: ignore[list-item]
    flow = conf = None
    for i in range(n - 1, 0, -1):  # t = a + i, reached through t + 1
        lk = links[i]
        flow, conf = ((lk.fwd, lk.fwd_conf) if flow is None
                      else chain(lk.fwd, lk.fwd_conf, flow, conf))
        from_b[i - 1] = (warp(ab_b, flow), conf)
    out = []
    for i, ((ab1, c1), (ab2, c2)) in enumerate(zip(from_a, from_b, strict=True), start=1):
        d1, d2 = float(n - i), float(i)  # closeness weights: the nearer keyframe counts more
        w1, w2 = c1 * d1, c2 * d2
        total = w1 + w2
        blind = total < 1e-3
        w1 = np.where(blind, d1, w1)
        w2 = np.where(blind, d2, w2)
        ab = (w1[..., None] * ab1 + w2[..., None] * ab2) / (w1 + w2)[..., None]
        out.append(Propagated(ab.astype(np.float32), _coverage(np.maximum(c1, c2))))
    return out


def _coverage(conf: np.ndarray) -> float:
    return float((conf >= _TRUSTED).mean())


def keyframe_interval(spec: str) -> int:
    """``--keyframes`` as a frame interval: off -> 1 (every frame through the network),
    auto -> the measured default, N -> N."""
    spec = spec.strip().lower()
    if spec == "off":
        return 1
    if spec == "auto":
        return DEFAULT_KEYFRAME_INTERVAL
    if spec.isdigit() and int(spec) >= 1:
        return int(spec)
    raise ConfigError(f"--keyframes must be auto, off or a whole number >= 1, got {spec!r}",
                      key="keyframes")


class Breaks:
    """Where temporal links break: frame i starts a new segment (nothing is smoothed or
    propagated from i - 1 to i). A hard cut at c breaks at c; a gradual transition with
    mixed frames [s, e) breaks at every frame s..e: each mixed frame stands alone (the
    network colorizes it), and the new shot starts afresh at e. Frame 0 always breaks."""

    def __init__(self, transitions: Iterable[tuple[int, int]] = ()) -> None:
        hard: set[int] = set()
        spans: list[tuple[int, int]] = []
        for start, end in transitions:
            if end <= start:
                hard.add(start)
            else:
                spans.append((start, end))
        self._hard = frozenset(hard)
        merged: list[tuple[int, int]] = []
        for start, end in sorted(spans):  # overlapping spans become one
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        self._starts = [s for s, _ in merged]
        self._spans = merged

    def __call__(self, i: int) -> bool:
        if i == 0 or i in self._hard:
            return True
        j = bisect.bisect_right(self._starts, i) - 1
        return j >= 0 and i <= self._spans[j][1]


def is_keyframe(i: int, segment_start: int, interval: int, breaks: Breaks,
                last: bool = False) -> bool:
    """Frame i goes through the network when it starts a segment, is every
    ``interval``-th frame of it, ends it (the next frame breaks), or is the film's last."""
    return (breaks(i) or (i - segment_start) % interval == 0 or breaks(i + 1) or last)


def ab_to_hwc(ab: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """ab (B, 2, h/4, w/4) -> (B, h, w, 2) float32 numpy, bilinear (as compose upsamples)."""
    up = torch.nn.functional.interpolate(ab.float(), size=size, mode="bilinear",
                                         align_corners=False)
    return up.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def hwc_to_ab(ab: Sequence[np.ndarray]) -> torch.Tensor:
    """(h, w, 2) maps -> ab (B, 2, h, w) float32 tensor."""
    return torch.from_numpy(np.stack(ab)).permute(0, 3, 1, 2).contiguous()
