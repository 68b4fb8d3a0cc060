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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


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
