"""Film-level colour restoration of an aged print (pure numpy/cv2, no I/O).

A faded print is a property of the film (or reel), not of the shot: every shot shows the
same per-channel damage. The model, per channel c of gamma-encoded 0-255 values, maps a
true value ``v`` to the value ``v'`` seen in the transfer:

    v' = black_c + (white_c - black_c) * (v / 255) ** gamma_c

``black`` is where true black ends up (lifted, unequal per channel when the dyes have lost
density: a faded print has no deep black in any channel), ``white`` where true white ends
up, and ``gamma`` is the per-channel power that dye fading puts on transmittance (a dye
that keeps a fraction k of its density turns transmittance T into T ** k).

:func:`estimate_film_fade` measures the model on ~48 frames spread over the film:

* black and white: extreme per-channel percentiles of all pixels (0.01 % and 99.99 %),
  read from 256-bin histograms;
* relative gamma: under the model, ``log((v' - black) / (white - black)) = gamma *
  log(v / 255)``, so at a shading edge (where the true image changes by the same factor
  in every channel) the log-gradients of the channels are in the ratio of their gammas.
  The film-wide median ratio over strong edges estimates gamma_R / gamma_G and
  gamma_B / gamma_G; it does not depend on the colour of the surfaces, so a film full
  of red or blue scenes does not bias it the way a grey-world average would. Green is the
  anchor (gamma_G = 1): the magenta dye that shapes the green record is the most stable
  dye of chromogenic print stocks, and an overall gamma cannot be told from a grade;
* trust: the fade is applied only as far as the film shows a fade's signature: a black
  lifted in every channel (the darkest pixels of the whole film are above 0 in R, G and
  B) and part of the range unused (lift plus the gap below the brightest channel's
  white). A clean transfer has true blacks and near-white highlights somewhere in 48
  frames, so it comes out as the identity; a faded one gets the full estimate.

:func:`restoration_curves` turns a fade into the per-channel curves that undo it;
``filmdata.correct`` composes them with the per-shot corrections into three LUTs.
See docs/corrections.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:  # correct.py imports this module; the config type is only a hint here
    from filmdata.correct import CorrectionConfig

RGB = tuple[float, float, float]

_MAX_FADE_PIXELS = 2_000_000  # pixels read for the level histograms (evenly strided beyond)


@dataclass(frozen=True)
class FilmFade:
    """Per-channel (R, G, B) fade of a print; gamma-encoded 0-255 levels (see module doc)."""

    black: RGB = (0.0, 0.0, 0.0)  # level that true black shows as
    white: RGB = (255.0, 255.0, 255.0)  # level that true white shows as
    gamma: RGB = (1.0, 1.0, 1.0)  # power on (v / 255); < 1 brightens the channel's mid-tones

    def __post_init__(self) -> None:
        for name in ("black", "white", "gamma"):
            value = getattr(self, name)
            if len(value) != 3:
                raise ValueError(f"FilmFade.{name} needs 3 values (R, G, B), got {value!r}")
            object.__setattr__(self, name, tuple(float(x) for x in value))
        for b, w, g in zip(self.black, self.white, self.gamma, strict=True):
            if not 0.0 <= b < w <= 255.0:
                raise ValueError(f"FilmFade needs 0 <= black < white <= 255 per channel, "
                                 f"got black={self.black}, white={self.white}")
            if not g > 0.0:
                raise ValueError(f"FilmFade.gamma must be > 0, got {self.gamma}")

    @classmethod
    def identity(cls) -> FilmFade:
        return cls()

    def is_identity(self) -> bool:
        return self == FilmFade.identity()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for manifest metadata (values rounded to 4 decimals)."""
        return {name: [round(x, 4) for x in getattr(self, name)]
                for name in ("black", "white", "gamma")}


# --------------------------------------------------------------------------- model


def fade_curves(fade: FilmFade) -> np.ndarray:
    """The fade as float curves (256, 3): column c maps a true level to the faded level."""
    v = np.arange(256, dtype=np.float64) / 255.0  # (256,)
    cols = [b + (w - b) * v**g for b, w, g in zip(fade.black, fade.white, fade.gamma, strict=True)]
    return np.stack(cols, axis=1)  # (256, 3), 0-255


def fade_frame(rgb: np.ndarray, fade: FilmFade) -> np.ndarray:
    """SIMULATE an aged print: apply ``fade`` to an RGB uint8 (h, w, 3) frame (tests, bench)."""
    lut = np.clip(np.rint(fade_curves(fade)), 0, 255).astype(np.uint8)  # (256, 3)
    return _apply_luts(rgb, lut)


def restoration_curves(black: Sequence[float], white: Sequence[float],
                       gamma: Sequence[float]) -> np.ndarray:
    """Float curves (256, 3), 0-255, that undo a fade: v = 255 * t ** (1 / gamma) with
    t = (v' - black) / (white - black) clipped to [0, 1]. Monotone; identity for the
    identity fade."""
    v = np.arange(256, dtype=np.float64)
    cols = []
    for b, w, g in zip(black, white, gamma, strict=True):
        t = np.clip((v - b) / (w - b), 0.0, 1.0)
        cols.append(255.0 * t ** (1.0 / g))
    return np.stack(cols, axis=1)


def _apply_luts(rgb: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """cv2.LUT with one 256-entry uint8 table per channel; rgb uint8 (h, w, 3)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 array (h, w, 3), got {rgb.dtype} {rgb.shape}")
    return cv2.LUT(np.ascontiguousarray(rgb), np.ascontiguousarray(lut).reshape(1, 256, 3))


# --------------------------------------------------------------------------- measure


def channel_percentiles(frames: Sequence[np.ndarray], pcts: Sequence[float],
                        max_pixels: int = _MAX_FADE_PIXELS) -> np.ndarray:
    """Per-channel percentiles of all pixels of the frames, float (3, len(pcts)), levels.

    Read from 256-bin histograms (exact for uint8 data: the lowest level at which the
    cumulative count reaches the percentile)."""
    hist = channel_histograms(frames, max_pixels)  # (3, 256)
    cum = np.cumsum(hist, axis=1)  # (3, 256)
    total = cum[:, -1:]
    out = np.empty((3, len(pcts)))
    for j, p in enumerate(pcts):
        need = np.maximum(p / 100.0 * total[:, 0], 1)  # at least one pixel
        out[:, j] = [np.searchsorted(cum[c], need[c]) for c in range(3)]
    return out


def channel_histograms(frames: Sequence[np.ndarray], max_pixels: int = _MAX_FADE_PIXELS
                       ) -> np.ndarray:
    """256-bin histograms of R, G, B over all frames, float64 (3, 256) pixel counts.

    Beyond ``max_pixels`` pixels in all, every k-th row of each frame is read."""
    n = sum(f.shape[0] * f.shape[1] for f in frames)
    step = max(1, -(-n // max_pixels))  # ceil
    hist = np.zeros((3, 256), dtype=np.float64)
    for f in frames:
        rows = np.ascontiguousarray(f[::step])
        for c in range(3):
            hist[c] += cv2.calcHist([rows], [c], None, [256], [0, 256]).ravel()
    return hist


def edge_samples(frames: Sequence[np.ndarray], black: Sequence[float], white: Sequence[float],
                 min_step: float, floor: float, max_samples: int = 100_000
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Log-transmittance of both pixels of every strong edge in the frames.

    For each pair (p, q) of horizontally or vertically neighbouring pixels, with
    t_c = (v_c - black_c) / (white_c - black_c): the pair is kept when every channel of
    both pixels is at least ``floor`` levels above black and below white (nothing clipped)
    and the green log-step |log t_G(p) - log t_G(q)| is >= ``min_step`` (natural log:
    0.1 is a 10 % step). Returns float32 (lp, lq), each (k, 3): log t at p and at q,
    evenly strided down to ``max_samples`` pairs.
    """
    v = np.arange(256, dtype=np.float32)[:, None]  # (256, 1) input levels
    b = np.asarray(black, np.float32)[None, :]
    span = np.asarray(white, np.float32)[None, :] - b
    log_lut = np.log(np.maximum((v - b) / span, 1e-3)).astype(np.float32)  # (256, 3)
    ok_lut = ((v >= b + floor) & (v <= b + span - 1.0)).astype(np.uint8)  # (256, 3)
    pairs = []  # per batch and direction: (logt (N, 3), first pixel of each pair, offset)
    for batch in _same_size_batches(frames):  # (n, h, w, 3) uint8
        n, h, w, _ = batch.shape
        flat = batch.reshape(n * h, w, 3)
        logt = cv2.LUT(flat, log_lut.reshape(1, 256, 3)).reshape(-1, 3)  # (n*h*w, 3)
        ok = cv2.LUT(flat, ok_lut.reshape(1, 256, 3))  # (n*h, w, 3) 0/1
        usable = (ok[..., 0] & ok[..., 1] & ok[..., 2]).reshape(n, h, w).astype(bool)
        green = np.ascontiguousarray(logt[:, 1]).reshape(n, h, w)
        # Horizontal pairs: q = (i, y, x), p = q + 1; vertical pairs: p = q + w.
        for sl_p, sl_q, offset in (((..., slice(1, None)), (..., slice(None, -1)), 1),
                                   ((slice(None), slice(1, None)),
                                    (slice(None), slice(None, -1)), w)):
            sel = usable[sl_p] & usable[sl_q] & (np.abs(green[sl_p] - green[sl_q]) >= min_step)
            i, y, x = np.nonzero(sel)
            pairs.append((logt, (i * h + y) * w + x, offset))
    total = sum(len(q) for _, q, _ in pairs)
    step = max(1, -(-total // max_samples))  # ceil: evenly strided beyond max_samples
    lp = [logt[q[::step] + offset] for logt, q, offset in pairs]
    lq = [logt[q[::step]] for logt, q, _ in pairs]
    if not lp:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
    return np.concatenate(lp), np.concatenate(lq)


def _same_size_batches(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Frames grouped by shape and stacked: a list of uint8 (n, h, w, 3) arrays."""
    groups: dict[tuple[int, ...], list[np.ndarray]] = {}
    for f in frames:
        groups.setdefault(f.shape, []).append(f)
    return [np.stack(g) for g in groups.values()]


def gamma_all_edges(lp: np.ndarray, lq: np.ndarray) -> RGB:
    """Relative gamma (R/G, 1, B/G) as the median log-step ratio over all edges (k, 3)."""
    d = lp - lq
    return (float(np.median(d[:, 0] / d[:, 1])), 1.0, float(np.median(d[:, 2] / d[:, 1])))


def gamma_neutral_edges(lp: np.ndarray, lq: np.ndarray, tol: float, iters: int = 8
                        ) -> tuple[RGB, float]:
    """Relative gamma from the edges whose two pixels are near-neutral once restored.

    Iterates: restore with the current gamma (log u_c = log t_c / gamma_c), keep the
    edges where both pixels have |log u_R - log u_G| and |log u_B - log u_G| <= the
    tolerance, take the median log-step ratios there. The tolerance narrows from 0.3 (or
    4 x ``tol``) to ``tol`` over the first iterations, so a strong fade (where no pixel
    looks neutral before restoration) is followed. Saturated colours (where one channel is
    near its top, or where a 4:2:0 transfer leaves only luma detail) do not bias these
    edges. Returns (gamma, fraction of edges near-neutral within ``tol`` at the end).
    """
    d = lp - lq  # (k, 3)
    ratio_r, ratio_b = d[:, 0] / d[:, 1], d[:, 2] / d[:, 1]  # (k,)
    start = max(0.3, 4.0 * tol)
    tols = [*np.geomspace(start, tol, max(iters - 2, 2)).tolist(), tol, tol]
    g_r = g_b = 1.0
    frac = 0.0
    for t in tols:
        neutral = np.ones(len(d), bool)
        for x in (lp, lq):
            neutral &= np.abs(x[:, 0] / g_r - x[:, 1]) <= t
            neutral &= np.abs(x[:, 2] / g_b - x[:, 1]) <= t
        frac = float(neutral.mean()) if len(d) else 0.0
        if neutral.sum() < 200:
            break
        g_r, g_b = float(np.median(ratio_r[neutral])), float(np.median(ratio_b[neutral]))
    return (g_r, 1.0, g_b), frac


def agreed_gamma(*estimates: Sequence[float]) -> RGB:
    """Per channel: 1 unless every estimate moves the same way from 1, then the smallest
    move (in log). Applies only what independent estimates agree on."""
    logs = np.log(np.asarray(estimates, dtype=np.float64))  # (k, 3)
    same = (np.sign(logs) == np.sign(logs[0])).all(axis=0) & (logs[0] != 0)
    out = np.where(same, np.sign(logs[0]) * np.abs(logs).min(axis=0), 0.0)
    g = np.exp(out)
    return (float(g[0]), float(g[1]), float(g[2]))


# --------------------------------------------------------------------------- estimate


def estimate_film_fade(frames: Sequence[np.ndarray], cfg: CorrectionConfig) -> FilmFade:
    """Estimate the print's fade from RGB uint8 frames (h, w, 3) spread over the film.

    ~48 frames about 256 wide, letterbox bars removed. Returns the identity when the film
    reaches true black in some channel (a clean transfer) or ``cfg.restore == "none"``;
    between the two lift thresholds the estimate is blended towards the identity.
    """
    if cfg.restore == "none" or len(frames) == 0:
        return FilmFade.identity()
    for f in frames:
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"expected RGB uint8 frames (h, w, 3), got {f.dtype} {f.shape}")
    black, white = film_levels(frames, cfg)
    trust = fade_trust(black, white, cfg)
    if trust <= 0.0:
        return FilmFade.identity()
    gamma = relative_gamma(frames, black, white, cfg)
    return blend_fade(FilmFade(tuple(black), tuple(white), gamma), trust)


def film_levels(frames: Sequence[np.ndarray], cfg: CorrectionConfig
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel black and white levels, float (3,) each, gamma-encoded 0-255.

    Extreme percentiles of frames smoothed by a 3x3 box, so that codec ringing and chroma
    noise at sharp edges (single pixels below black or above white) do not count."""
    smooth = [cv2.blur(f, (3, 3)) for f in frames]
    levels = channel_percentiles(smooth, (cfg.restore_black_pct, cfg.restore_white_pct))
    black = np.minimum(levels[:, 0], cfg.restore_max_black)
    white = np.maximum(levels[:, 1], cfg.restore_min_white)
    return black, np.maximum(white, black + 32.0)


def relative_gamma(frames: Sequence[np.ndarray], black: np.ndarray, white: np.ndarray,
                   cfg: CorrectionConfig) -> RGB:
    """(gamma_R / gamma_G, 1, gamma_B / gamma_G) of a fade with these levels, clamped.

    Two log-edge estimates: over all strong edges, and over edges between near-neutral
    surfaces. With enough neutral edges (``restore_min_neutral``) only what both agree on
    is kept (:func:`agreed_gamma`); a film with almost no neutral surfaces gets the
    all-edges estimate. Fewer than 500 edges: no gamma (1, 1, 1)."""
    lp, lq = edge_samples(frames, black, white, cfg.restore_edge_step, cfg.restore_edge_floor)
    if len(lp) < 500:
        return (1.0, 1.0, 1.0)
    every = gamma_all_edges(lp, lq)
    neutral, frac = gamma_neutral_edges(lp, lq, cfg.restore_neutral_tol)
    gamma = agreed_gamma(every, neutral) if frac >= cfg.restore_min_neutral else every
    lo, hi = cfg.restore_gamma_range
    g = np.clip(gamma, lo, hi)
    return (float(g[0]), 1.0, float(g[2]))


def fade_trust(black: Sequence[float], white: Sequence[float], cfg: CorrectionConfig) -> float:
    """How much of the estimate to apply (0-1), from the film's levels (gamma 0-255).

    A faded print reaches true black in no channel and does not use the whole range: the
    lift (the lowest channel's black) must reach ``restore_lift_*`` and the unused range
    (lift + the gap between the brightest channel's white and 255) ``restore_range_*``;
    each is a linear ramp from its min (0) to its full (1) level, and the smaller counts.
    A clean transfer has true black somewhere and near-white highlights somewhere."""
    lift = float(min(black))
    unused = lift + 255.0 - float(max(white))
    return min(_ramp(lift, cfg.restore_lift_min, cfg.restore_lift_full),
               _ramp(unused, cfg.restore_range_min, cfg.restore_range_full))


def _ramp(x: float, lo: float, full: float) -> float:
    return float(np.clip((x - lo) / max(full - lo, 1e-6), 0.0, 1.0))


def blend_fade(fade: FilmFade, weight: float) -> FilmFade:
    """The fade scaled towards the identity: levels linearly, gammas in log (0 = identity)."""
    w = float(np.clip(weight, 0.0, 1.0))
    if w >= 1.0:
        return fade
    black = tuple(w * b for b in fade.black)
    white = tuple(255.0 - w * (255.0 - x) for x in fade.white)
    gamma = tuple(float(g**w) for g in fade.gamma)
    return FilmFade(black, white, gamma)
