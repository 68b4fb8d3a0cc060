"""`survey report`: the paper's numbers from the answers in the survey database.

Everything is computed from the SQLite rows (never from pages), by pure functions on a
table of answers, one row per (rater, image): rater, image_id, frame_id, condition and
yes (1 = "from a colour film", 0 = no).

- share of "yes" per condition: all its answers pooled (with every rater answering every
  image, this is also the mean of the per-image shares);
- per image: the share of raters who said yes; their distribution per condition is the
  paper's Fig. 8 box plot (the paper quotes its median, e.g. 88.3 % for ground truth);
- confidence intervals: a two-way bootstrap, raters and frames resampled together (with
  replacement, independently), so the interval covers both a new set of raters and a new
  set of frames; percentile intervals;
- pairwise tests between conditions on the same frames: a sign-flip permutation test on
  the per-frame differences of the share of "yes" (exact when there are 16 frames or
  fewer), Holm-corrected over all pairs; the difference's interval from the same two-way
  bootstrap.

Outputs in OUT: answers.csv (every answer, for pandas), per_image.csv, conditions.csv,
pairwise.csv, summary.json and boxplot.png; each written atomically.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survey import store
from survey.errors import SurveyConfigError, SurveyInputError

EXACT_UP_TO = 16  # frames: up to this many, the sign-flip test enumerates all 2^n flips


@dataclass(frozen=True)
class ReportConfig:
    survey: Path
    out: Path
    n_boot: int = 2000  # bootstrap resamples
    n_perm: int = 10000  # random sign flips (above EXACT_UP_TO frames)
    level: float = 0.95  # confidence level of the intervals
    seed: int = 0
    complete_only: bool = False  # only raters who answered every image

    def __post_init__(self) -> None:
        if self.n_boot < 100 or self.n_perm < 100:
            raise SurveyConfigError("--boot and --perm must be >= 100")
        if not 0.5 <= self.level < 1:
            raise SurveyConfigError(f"--level must be in [0.5, 1), got {self.level}")


@dataclass
class Report:
    conditions: pd.DataFrame  # one row per condition
    pairwise: pd.DataFrame  # one row per pair of conditions with frames in common
    per_image: pd.DataFrame  # one row per image
    answers: pd.DataFrame  # one row per (rater, image)
    files: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------------- statistics


def per_image(answers: pd.DataFrame) -> pd.DataFrame:
    """image_id, frame_id, condition, raters, yes, share (of raters who said yes)."""
    table = (answers.groupby(["image_id", "frame_id", "condition"], sort=True)["yes"]
             .agg(raters="count", yes="sum").reset_index())
    table["share"] = table["yes"] / table["raters"]
    return table


def _matrices(answers: pd.DataFrame, order: list[str]
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per condition: Y (raters, frames) float with the answers (0 where none) and M the same
    shape with 1 where the rater answered that frame in that condition."""
    raters = np.sort(answers["rater"].unique())
    frames = np.sort(answers["frame_id"].unique())
    r = np.searchsorted(raters, answers["rater"].to_numpy())
    f = np.searchsorted(frames, answers["frame_id"].to_numpy())
    ys, ms = {}, {}
    for c in order:
        sel = (answers["condition"] == c).to_numpy()
        y = np.zeros((len(raters), len(frames)))
        m = np.zeros_like(y)
        y[r[sel], f[sel]] = answers["yes"].to_numpy()[sel]
        m[r[sel], f[sel]] = 1.0
        ys[c], ms[c] = y, m
    return ys, ms


def _counts(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """(n_boot, n): how often each of n units is drawn in each resample (with replacement)."""
    draws = rng.integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    return counts


Pair = tuple[str, str]


def two_way_bootstrap(answers: pd.DataFrame, order: list[str], n_boot: int, seed: int,
                      pairs: Sequence[Pair] = ()
                      ) -> tuple[dict[str, np.ndarray], dict[Pair, np.ndarray]]:
    """Resample raters and frames (both with replacement, independently) `n_boot` times.

    Returns per condition the (n_boot,) pooled shares of "yes", and per pair (a, b) the
    (n_boot,) differences share_a - share_b on the frames both have. A resample in which a
    condition has no answer gives NaN there."""
    rng = np.random.default_rng(seed)
    ys, ms = _matrices(answers, order)
    n_raters, n_frames = next(iter(ys.values())).shape
    wr = _counts(rng, n_boot, n_raters)  # (B, R)
    wf = _counts(rng, n_boot, n_frames)  # (B, F)

    def share(c: str, frame_mask: np.ndarray | None = None) -> np.ndarray:
        w = wf if frame_mask is None else wf * frame_mask
        num = ((wr @ ys[c]) * w).sum(axis=1)
        den = ((wr @ ms[c]) * w).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)

    shares = {c: share(c) for c in order}
    diffs = {}
    for a, b in pairs:
        common = ((ms[a].sum(axis=0) > 0) & (ms[b].sum(axis=0) > 0)).astype(float)
        diffs[(a, b)] = share(a, common) - share(b, common)
    return shares, diffs


def interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of bootstrap samples (NaN resamples left out)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(finite, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def sign_flip_test(d: np.ndarray, n_perm: int, rng: np.random.Generator) -> tuple[float, str]:
    """Two-sided p-value of mean(d) = 0 under sign symmetry of the per-frame differences d;
    exact (all 2^n flips) for n <= EXACT_UP_TO, else `n_perm` random flips (p counts the
    observed one). Returns (p, the method's name)."""
    d = np.asarray(d, dtype=float)
    d = d[np.isfinite(d)]
    n = d.size
    if n == 0:
        return math.nan, "no common frames"
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, observed)
    if n <= EXACT_UP_TO:
        bits = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1
        means = np.abs(((1 - 2 * bits) * d).mean(axis=1))
        return float((means >= observed - tol).mean()), "exact sign-flip"
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_perm, n))
    means = np.abs((signs * d).mean(axis=1))
    return float((1 + (means >= observed - tol).sum()) / (1 + n_perm)), \
        f"sign-flip, {n_perm} draws"


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of p-values (NaN stays NaN, and does not count)."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def condition_table(answers: pd.DataFrame, order: list[str], boot: dict[str, np.ndarray],
                    level: float) -> pd.DataFrame:
    images = per_image(answers)
    rows = []
    for c in order:
        mine = answers[answers["condition"] == c]
        shares = images.loc[images["condition"] == c, "share"]
        lo, hi = interval(boot[c], level) if c in boot else (math.nan, math.nan)
        rows.append({
            "condition": c, "images": int(mine["image_id"].nunique()),
            "raters": int(mine["rater"].nunique()), "answers": len(mine),
            "yes": int(mine["yes"].sum()),
            "share_yes": float(mine["yes"].mean()) if len(mine) else math.nan,
            "ci_low": lo, "ci_high": hi,
            "image_median": float(shares.median()) if len(shares) else math.nan,
            "image_q1": float(shares.quantile(0.25)) if len(shares) else math.nan,
            "image_q3": float(shares.quantile(0.75)) if len(shares) else math.nan,
        })
    return pd.DataFrame(rows)


def pairwise_table(answers: pd.DataFrame, order: list[str],
                   diffs: dict[Pair, np.ndarray], n_perm: int, seed: int,
                   level: float) -> pd.DataFrame:
    """Every pair of conditions with frames in common: the difference in the share of
    "yes" on those frames, its bootstrap interval, the sign-flip p and Holm's p."""
    frame_share = (answers.groupby(["frame_id", "condition"])["yes"].mean()
                   .unstack("condition"))
    rng = np.random.default_rng([seed, 1])
    rows = []
    for a, b in itertools.combinations(order, 2):
        if a not in frame_share or b not in frame_share:
            continue
        both = frame_share[[a, b]].dropna()
        if both.empty:
            continue
        common = answers[answers["frame_id"].isin(both.index)]
        share_a = common.loc[common["condition"] == a, "yes"].mean()
        share_b = common.loc[common["condition"] == b, "yes"].mean()
        p, method = sign_flip_test((both[a] - both[b]).to_numpy(), n_perm, rng)
        lo, hi = interval(diffs[(a, b)], level) if (a, b) in diffs else (math.nan, math.nan)
        rows.append({"a": a, "b": b, "frames": len(both), "share_a": float(share_a),
                     "share_b": float(share_b), "diff": float(share_a - share_b),
                     "ci_low": lo, "ci_high": hi, "p": p, "test": method})
    table = pd.DataFrame(rows, columns=["a", "b", "frames", "share_a", "share_b", "diff",
                                        "ci_low", "ci_high", "p", "test"])
    table.insert(len(table.columns) - 1, "p_holm", holm(table["p"].to_numpy()))
    return table


def analyse(answers: pd.DataFrame, order: list[str], *, n_boot: int = 2000,
            n_perm: int = 10000, level: float = 0.95, seed: int = 0) -> Report:
    """The report's tables from a table of answers; `order`: the conditions, in order
    (those without answers are left out)."""
    order = [c for c in order if c in set(answers["condition"])]
    pairs = [(a, b) for a, b in itertools.combinations(order, 2)]
    boot, diffs = two_way_bootstrap(answers, order, n_boot, seed, pairs)
    return Report(condition_table(answers, order, boot, level),
                  pairwise_table(answers, order, diffs, n_perm, seed, level),
                  per_image(answers), answers)


# --------------------------------------------------------------------------- the plot


def box_plot(images: pd.DataFrame, order: list[str], path: Path, subtitle: str = "") -> Path:
    """The paper's Fig. 8: per condition, the distribution over images of the share of
    raters who believed the image is from a colour film (percent); means as diamonds and
    every image as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from manifests import atomic_path

    data = [100 * images.loc[images["condition"] == c, "share"].to_numpy() for c in order]
    fig, ax = plt.subplots(figsize=(max(4.8, 1.25 * len(order) + 1.6), 4.8), dpi=120)
    try:
        ax.boxplot(data, whis=1.5, widths=0.55, showfliers=False,
                   medianprops={"color": "#c0392b", "linewidth": 2})
        jitter = np.random.default_rng(0)
        for k, values in enumerate(data, start=1):
            x = k + jitter.uniform(-0.15, 0.15, size=len(values))
            ax.scatter(x, values, s=10, color="#34495e", alpha=0.5, zorder=3)
            if len(values):
                ax.scatter([k], [values.mean()], marker="D", s=30, color="#2980b9", zorder=4)
        ax.set_xticks(range(1, len(order) + 1))
        ax.set_xticklabels(order, rotation=20 if max(map(len, order)) > 10 else 0,
                           ha="right" if max(map(len, order)) > 10 else "center")
        ax.set_ylim(-3, 103)
        ax.set_ylabel('raters who said "from a colour film" (% per image)')
        ax.set_title("Do you believe this image is from a colour film?" +
                     (f"\n{subtitle}" if subtitle else ""), fontsize=11)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            fig.savefig(fh, format="png")
    finally:
        plt.close(fig)
    return path


# --------------------------------------------------------------------------- the command


def make_report(cfg: ReportConfig) -> Report:
    """Read the survey, analyse its answers, write the files."""
    from manifests import atomic_path

    info = store.open_survey(cfg.survey)
    answers = store.answers_frame(info)
    conditions = store.conditions_frame(info)
    raters = store.raters_frame(info)
    n_images = len(info.images)
    if cfg.complete_only:
        complete = raters.loc[raters["answered"] >= n_images, "rater"]
        answers = answers[answers["rater"].isin(complete)]
    if answers.empty:
        which = "from raters who answered every image " if cfg.complete_only else ""
        raise SurveyInputError(f"{cfg.survey} has no answers {which}yet; serve it to raters "
                               "first (survey serve)")
    order = conditions["condition"].tolist()
    report = analyse(answers, order, n_boot=cfg.n_boot, n_perm=cfg.n_perm, level=cfg.level,
                     seed=cfg.seed)
    kinds = conditions.set_index("condition")[["kind", "source"]]
    report.conditions = report.conditions.join(kinds, on="condition")

    out = cfg.out
    files = {name: out / name for name in ("answers.csv", "per_image.csv", "conditions.csv",
                                           "pairwise.csv", "summary.json", "boxplot.png")}
    for name, table in (("answers.csv", answers), ("per_image.csv", report.per_image),
                        ("conditions.csv", report.conditions),
                        ("pairwise.csv", report.pairwise)):
        with atomic_path(files[name]) as tmp:
            table.to_csv(tmp, index=False)
    shown = report.conditions["condition"].tolist()
    n_raters = int(answers["rater"].nunique())
    box_plot(report.per_image, shown, files["boxplot.png"],
             f"{n_raters} rater(s), {report.per_image['frame_id'].nunique()} frame(s)")
    summary = {
        "survey": {"folder": str(info.folder), "tool_version": info.tool_version,
                   "created_at": info.created_at, "config": info.config, "images": n_images},
        "report": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "raters": {"total": len(raters), "with_answers": n_raters,
                   "complete": int((raters["answered"] >= n_images).sum())},
        "answers": len(answers),
        "changed_answers": int((answers["changes"] > 0).sum()),
        "conditions": _records(report.conditions),
        "pairwise": _records(report.pairwise),
    }
    with atomic_path(files["summary.json"]) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    report.files = files
    return report


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN as null)."""
    return json.loads(table.to_json(orient="records"))
