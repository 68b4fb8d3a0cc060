"""One film in, sampled and corrected frames plus its manifests out, in one decode.

    survey (a few dozen keyframes) --> film profile: bars, black level, fade
    decode (PyAV) --small frames--> shot detector --transitions--> ShotSampler
        --shot ends--> drop flashes, choose 3-5 --> restoration + per-shot correction
        --> filters --> images
    --film ends--> shots table + frame manifest (written last, atomically)

The frame manifest is the film's "done" marker: it is written after every image, so a
run killed mid-film leaves no manifest and the rerun does the film again. A rerun with
the same config skips films whose manifest is already there, made by this schema version
from a source of the same size and mtime (`force` redoes them).

A redo (another config, `force`, a changed source) first retires the old done marker,
before any image is written: the frame manifest, and the dataset manifest of the same
root if this film's images are already there (it may list them). A redo killed at any
moment so leaves a film that is simply not done, never a manifest that points at images
of another config. Images of the old run that the new manifest does not list are removed
before the new manifest is written. Temporary files of killed runs (`manifests.temps`)
are swept; a concurrent run's are not.

Finishing a shot (full-resolution conversion, correction, JPEG encoding) runs on one
worker thread, overlapping the decode of the next shot; shots are finished in order, so
results do not depend on timing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
from array import array
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

import manifests
from filmdata.config import ExtractConfig
from filmdata.correct import (
    LUMA_WEIGHTS,
    ShotCorrection,
    apply_correction,
    estimate_shot_correction,
)
from filmdata.decode import DecodedFrame, FilmDecoder, FilmInfo
from filmdata.errors import FilmOpenError, NotAVideoError, OutputError
from filmdata.filters import (
    FrameScores,
    flash_frames,
    hamming,
    reject_reason,
    relative_luma,
    score_frame,
)
from filmdata.profile import FilmProfile, film_profile
from filmdata.sampling import Candidate, ShotSampler, choose, sharpness
from filmdata.shots import ShotDetector, Transition
from manifests import FRAME_SCHEMA, SHOT_SCHEMA, layout

log = logging.getLogger(__name__)

MAX_PENDING_SHOTS = 4  # shots queued for the finishing thread; bounds memory


@dataclass(frozen=True)
class FilmResult:
    """What happened to one film; the CLI and build-dataset print these as a table."""

    source_path: str
    film_id: str | None
    status: str  # "done" | "skipped" | "failed"
    manifest: str | None = None
    shots: int = 0
    sampled: int = 0  # frames sampled (manifest rows, kept or rejected)
    kept: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    empty_shots: dict[str, int] = field(default_factory=dict)  # shots without a kept frame,
    # counted by the note that says why
    decode_errors: int = 0
    truncated: bool = False
    seconds: float = 0.0
    error: str | None = None
    retired_dataset: str | None = None  # the dataset manifest this redo removed (it may
    # have listed the film's old images): build-dataset makes it again


# The film id's content fingerprint: the size, both ends and chunks spread between them,
# so that it costs ~6 MiB of reads (and 64 seeks) on a 100 GB film, and a film changed
# anywhere but in a few bytes gets another id. A change the chunks miss (a repair in
# place) is still seen by the skip check, which compares the source's size and mtime.
_ID_VERSION = b"filmcolor-id-2"
_ID_EDGE = 1 << 20  # bytes hashed at each end (container headers and indexes live there)
_ID_CHUNK = 1 << 16  # bytes hashed at each spread offset
_ID_CHUNKS = 62  # chunks evenly spread between the ends


def film_id_for(path: str | os.PathLike[str]) -> str:
    """Name slug + short content fingerprint: stable across reruns and renames of the
    same content.

    The fingerprint hashes the size, the first and last MiB and 62 chunks of 64 KiB
    spread evenly between them (a file of up to ~6 MiB: all of it), so it costs a few
    MiB of reads on a feature film and changes if the file is re-encoded, truncated or
    changed anywhere but in a few bytes. Raises OSError if the file cannot be read.
    """
    path = Path(path)
    slug = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-")[:40] or "film"
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        digest = hashlib.blake2b(_ID_VERSION + b":%d" % size, digest_size=4)
        for offset, length in fingerprint_spans(size):
            f.seek(offset)
            digest.update(f.read(length))
    return f"{slug}-{digest.hexdigest()}"


def fingerprint_spans(size: int) -> list[tuple[int, int]]:
    """The (offset, length) byte spans of a file of `size` bytes that its id hashes."""
    if size <= 2 * _ID_EDGE + _ID_CHUNKS * _ID_CHUNK:
        return [(0, size)]
    inner = size - 2 * _ID_EDGE  # bytes between the two ends
    step = inner / _ID_CHUNKS
    chunks = [(_ID_EDGE + int(k * step + (step - _ID_CHUNK) / 2), _ID_CHUNK)
              for k in range(_ID_CHUNKS)]
    return [(0, _ID_EDGE), *chunks, (size - _ID_EDGE, _ID_EDGE)]


def source_facts(path: str | os.PathLike[str]) -> dict[str, int]:
    """What the skip check compares besides the id: a film repaired or replaced in place
    (same id) has another mtime, so it is redone."""
    st = Path(path).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _identify(path: Path) -> tuple[str, dict[str, int]]:
    """The film's id and source facts; an unreadable file is one clear error."""
    try:
        return film_id_for(path), source_facts(path)
    except OSError as exc:
        raise FilmOpenError(
            f"{path}: cannot read ({exc.strerror or exc}); check the file and its permissions"
        ) from exc


def extract_film(
    path: str | os.PathLike[str],
    out_root: str | os.PathLike[str],
    cfg: ExtractConfig | None = None,
    *,
    force: bool = False,
    progress: bool = True,
) -> FilmResult:
    """Extract one film into `out_root`. Raises `filmdata.errors.FilmDataError` for
    unusable input."""
    cfg = cfg or ExtractConfig()
    started = time.perf_counter()
    path, out_root = Path(path), Path(out_root)
    # Opening the decoder validates the film before any output is made.
    with FilmDecoder(path, cfg.decode, cfg.shots.analysis_width) as decoder:
        film_id, source = _identify(path)
        manifest_path = layout.film_manifest(out_root, film_id)
        sweep_film_temps(out_root, film_id)
        if not force and manifests.made_with(manifest_path, cfg.fingerprint(), source):
            return FilmResult(str(path), film_id, "skipped", manifest=str(manifest_path))
        _prepare_output(out_root, film_id)
        retired = retire_outputs(out_root, film_id)
        profile = film_profile(
            decoder.survey(cfg.profile.survey_frames), decoder.info.display_size,
            cfg.profile, cfg.correct,
        )
        decoder.crop = profile.crop
        run = _FilmRun(path, out_root, film_id, cfg, decoder.info, profile)
        run.consume(decoder, progress=progress)
        if decoder.frames_decoded == 0:
            raise NotAVideoError(
                f"{path}: no video frame could be decoded; the file is damaged or not a film"
            )
        info = _run_facts(source, decoder, profile, cfg, time.perf_counter() - started)
    frames, shots = run.tables()
    remove_unlisted_images(out_root, film_id, frames)
    _write_manifests(out_root, film_id, frames, shots, cfg, info)
    kept = frames["status"] == manifests.schema.STATUS_KEPT
    return FilmResult(
        source_path=str(path),
        film_id=film_id,
        status="done",
        manifest=str(manifest_path),
        shots=len(shots),
        sampled=len(frames),
        kept=int(kept.sum()),
        rejected=dict(Counter(frames.loc[~kept, "reject_reason"])),
        empty_shots=dict(Counter(shots["note"].dropna())),
        decode_errors=decoder.decode_errors,
        truncated=decoder.truncated,
        seconds=time.perf_counter() - started,
        retired_dataset=str(retired) if retired else None,
    )


def _run_facts(source: dict[str, Any], decoder: FilmDecoder, profile: FilmProfile,
               cfg: ExtractConfig, seconds: float) -> dict[str, Any]:
    """What the manifests' metadata tells of this run: the source, the film, its profile,
    the decode's damage, the config fingerprint (the skip check), the time taken."""
    return {
        "source": source,
        "film": decoder.info.__dict__,
        "profile": profile.to_dict(),
        "frames_decoded": decoder.frames_decoded,
        "decode_errors": decoder.decode_errors,
        "truncated": decoder.truncated,
        "config_fingerprint": cfg.fingerprint(),
        "seconds": round(seconds, 3),
    }


def _write_manifests(out_root: Path, film_id: str, frames: pd.DataFrame, shots: pd.DataFrame,
                     cfg: ExtractConfig, info: dict[str, Any]) -> None:
    """The shot table, then the frame manifest: written last, it marks the film done."""
    _write(lambda: manifests.write_table(
        shots, layout.shot_manifest(out_root, film_id), SHOT_SCHEMA,
        kind="shots", config=cfg.to_dict(), info=info,
    ))
    _write(lambda: manifests.write_table(
        frames, layout.film_manifest(out_root, film_id), FRAME_SCHEMA, kind="frames",
        config=cfg.to_dict(), info=info,
    ))


@dataclass
class _Shot:
    index: int
    start: int  # first frame (inclusive)
    end: int  # exclusive
    clean_start: int  # first frame after the incoming transition's mixed frames
    clean_end: int  # first mixed frame of the outgoing transition
    transition_in: str  # "start" | "cut" | "gradual"
    transition_in_start: int
    candidates: list[Candidate[DecodedFrame]]


@dataclass
class _ShotPlan:
    """A shot whose frames are chosen, waiting to be finished on the worker thread."""

    shot: _Shot
    chosen: list[Candidate[DecodedFrame]]  # the frames to write, in frame order
    estimate_from: list[np.ndarray]  # small copies of the clean span, for the correction
    n_flash: int  # flash frames in the shot
    clean_frames: int  # length of the clean span, frames (<= 0: too short to sample)
    candidates_in_span: bool  # the clean span had candidates (flashes or not)


class _FilmRun:
    """The state of one film's single pass: current shot, sampler, finished rows."""

    def __init__(
        self, path: Path, out_root: Path, film_id: str, cfg: ExtractConfig, info: FilmInfo,
        profile: FilmProfile,
    ) -> None:
        self.path, self.out_root, self.film_id, self.cfg, self.info, self.profile = (
            path, out_root, film_id, cfg, info, profile,
        )
        self.fps = info.fps or 25.0
        self.detector = ShotDetector(cfg.shots, self.fps)
        self.sampler: ShotSampler[DecodedFrame] = ShotSampler(
            cfg.sample.max_candidates, lag=self.detector.max_lag, release=DecodedFrame.release
        )
        self.shot_index = 0
        self.shot_clean_start = 0
        self.transition_in = ("start", 0)
        self.kept_hashes: list[int] = []  # kept frames of finished shots, for dedup
        self.shot_hashes: list[int] = []  # kept frames of the shot being finished
        self.frame_rows: list[dict[str, Any]] = []
        self.shot_rows: list[dict[str, Any]] = []
        self.pts = array("d")  # presentation time of every decoded frame, seconds
        self.lumas = array("f")  # mean luma (0-255) of every decoded frame's analysis copy

    # -- the single pass --------------------------------------------------------------
    def consume(self, decoder: FilmDecoder, *, progress: bool) -> None:
        from tqdm import tqdm

        detector = self.detector
        bar = tqdm(
            total=self.info.frame_count_estimate, unit="frame", desc=self.path.name[:30],
            disable=not progress, leave=False, dynamic_ncols=True, mininterval=0.5,
        )
        pending: list[Future[None]] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="finish-shot") as pool:
            try:
                for frame in decoder.frames():
                    self.pts.append(frame.pts_s)
                    self.lumas.append(_mean_luma(frame.small))
                    for transition in detector.push(frame.index, frame.small):
                        self._end_shot(transition, pool, pending)
                    if self.sampler.wants(frame.index):
                        self.sampler.offer(frame.index, sharpness(frame.small), frame)
                    else:
                        frame.release()
                    bar.update()
                for transition in detector.flush():
                    self._end_shot(transition, pool, pending)
                end = len(self.pts)
                if end > self.sampler.start:
                    self._submit(self._close(end, end), pool, pending)
                for job in pending:
                    job.result()
            except BaseException:
                for job in pending:
                    job.cancel()
                raise
            finally:
                bar.close()

    def _end_shot(
        self, t: Transition, pool: ThreadPoolExecutor, pending: list[Future[None]]
    ) -> None:
        if t.cut <= self.sampler.start:  # defensive: a detector never goes backwards
            return
        self.sampler.drop_range(t.start, t.end)
        shot = self._close(t.cut, t.start)
        self.transition_in = ("cut" if t.start == t.end else "gradual", t.start)
        self.shot_clean_start = t.end
        self._submit(shot, pool, pending)

    def _close(self, cut: int, clean_end: int) -> _Shot:
        start = self.sampler.start
        candidates = self.sampler.split(cut)
        shot = _Shot(
            index=self.shot_index, start=start, end=cut,
            clean_start=self.shot_clean_start, clean_end=min(clean_end, cut),
            transition_in=self.transition_in[0], transition_in_start=self.transition_in[1],
            candidates=candidates,
        )
        self.shot_index += 1
        return shot

    def _submit(self, shot: _Shot, pool: ThreadPoolExecutor, pending: list[Future[None]]) -> None:
        # Frame times of the boundaries are known now (the frames have been decoded).
        shot_times = (self._time_of(shot.start), self._time_of(shot.end))
        lumas = np.frombuffer(self.lumas, dtype=np.float32)[shot.start : shot.end]
        plan = self._plan(shot, lumas)
        pending.append(pool.submit(self._finish_shot, plan, shot_times))
        while len(pending) > MAX_PENDING_SHOTS or (pending and pending[0].done()):
            pending.pop(0).result()

    def _plan(self, shot: _Shot, lumas: np.ndarray) -> _ShotPlan:
        """Choose the shot's frames now, on the decoding thread, and release every other
        candidate at once: a queued shot holds its 3-5 chosen frames, not its 32 or more
        candidates. `lumas` (n,) is the mean luma of each frame of the shot."""
        cfg = self.cfg
        flashes = flash_frames(lumas, self.fps, cfg.filters)  # (n,) bool
        usable = [c for c in shot.candidates if not flashes[c.index - shot.start]]
        margin = round(cfg.sample.margin_s * self.fps)
        clean_start, clean_end = shot.clean_start + margin, shot.clean_end - margin
        n = cfg.sample.frames_for((clean_end - clean_start) / self.fps)
        chosen = choose(usable, clean_start, clean_end, n)
        chosen_ids = {id(c) for c in chosen}
        for c in shot.candidates:
            if id(c) not in chosen_ids:
                c.item.release()
        plan = _ShotPlan(
            shot=shot,
            chosen=chosen,
            # The correction is estimated on the small copies of the clean, flash-free span.
            estimate_from=[c.item.small for c in usable if clean_start <= c.index < clean_end],
            n_flash=int(flashes.sum()),
            clean_frames=clean_end - clean_start,
            candidates_in_span=any(clean_start <= c.index < clean_end for c in shot.candidates),
        )
        shot.candidates = []  # the plan holds what is still needed
        return plan

    def _time_of(self, index: int) -> float:
        if index < len(self.pts):
            return self.pts[index]
        return self.pts[-1] + 1.0 / self.fps if self.pts else 0.0

    # -- finishing a shot (worker thread, in shot order) ---------------------------------
    def _finish_shot(self, plan: _ShotPlan, shot_times: tuple[float, float]) -> None:
        """Correct, filter and write the chosen frames of one shot; add its rows."""
        shot = plan.shot
        correction = (
            estimate_shot_correction(plan.estimate_from, self.cfg.correct,
                                     fade=self.profile.fade)
            if plan.estimate_from else ShotCorrection.identity()
        )
        self.shot_hashes = []
        rows = [self._finish_frame(shot, c, correction) for c in plan.chosen]
        self.kept_hashes.extend(self.shot_hashes)
        self.frame_rows.extend(rows)
        n_kept = sum(r["status"] == "kept" for r in rows)
        self.shot_rows.append({
            "film_id": self.film_id, "shot_index": shot.index,
            "start_frame": shot.start, "end_frame": shot.end,
            "start_s": shot_times[0], "end_s": shot_times[1],
            "transition_in": shot.transition_in, "transition_in_start": shot.transition_in_start,
            "n_sampled": len(rows),
            "n_kept": n_kept,
            "n_flash": plan.n_flash,
            "note": None if n_kept else _empty_shot_note(
                rows, plan.clean_frames, flash_only=plan.candidates_in_span,
            ),
            **correction.columns(),
        })

    def _finish_frame(
        self, shot: _Shot, candidate: Candidate[DecodedFrame], correction: ShotCorrection
    ) -> dict[str, Any]:
        frame = candidate.item
        rgb = frame.full()  # (H, W, 3) uint8, the only full-resolution conversion
        frame.release()
        scores = score_frame(rgb)
        reason = reject_reason(scores, self.cfg.filters, self.profile.levels)
        if reason is None and self._is_duplicate(scores):
            reason = "duplicate"
        if reason is None:
            self.shot_hashes.append(scores.phash)
        image_path, size = None, (rgb.shape[1], rgb.shape[0])
        if reason is None or self.cfg.output.write_rejected:
            out = apply_correction(rgb, correction) if reason is None else rgb
            image_path, size = self._write_image(out, shot.index, frame.index)
        thumb_path = self._write_thumb(frame.small, shot.index, frame.index)
        row = self._row(shot, frame, scores, correction, reason, image_path, size)
        return row | {"thumb_path": thumb_path, "sharpness": candidate.score}

    def _is_duplicate(self, scores: FrameScores) -> bool:
        """Within `dedup_distance` of a kept frame of an earlier shot (the frames of one
        shot are alike by nature: those are not duplicates)."""
        limit = self.cfg.filters.dedup_distance
        return limit is not None and any(
            hamming(scores.phash, h) <= limit for h in self.kept_hashes
        )

    def _write_image(self, rgb: np.ndarray, shot: int, frame: int) -> tuple[str, tuple[int, int]]:
        out = self.cfg.output
        rgb = _fit(rgb, out.max_side)
        rel = layout.image_relpath(self.film_id, shot, frame, out.image_format)
        self._encode_to(rel, rgb, out.jpeg_quality)
        return rel, (rgb.shape[1], rgb.shape[0])

    def _write_thumb(self, small: np.ndarray, shot: int, frame: int) -> str | None:
        if not self.cfg.output.thumbnails:
            return None
        rel = layout.thumb_relpath(self.film_id, shot, frame)
        self._encode_to(rel, small, 85)
        return rel

    def _encode_to(self, rel: str, rgb: np.ndarray, jpeg_quality: int) -> None:
        ext = rel.rsplit(".", 1)[-1]
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext == "jpg" else []
        ok, encoded = cv2.imencode(f".{ext}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise OutputError(f"could not encode {rel}")
        _write(lambda: _write_bytes(self.out_root / rel, encoded.tobytes()))

    def _row(
        self, shot: _Shot, frame: DecodedFrame, scores: FrameScores,
        correction: ShotCorrection, reason: str | None, image_path: str | None,
        size: tuple[int, int],
    ) -> dict[str, Any]:
        return {
            "frame_id": f"{self.film_id}-f{frame.index:07d}",
            "film_id": self.film_id,
            "source_path": str(self.path),
            "source_kind": "film",
            "shot_index": shot.index,
            "shot_start_frame": shot.start,
            "shot_end_frame": shot.end,
            "frame_index": frame.index,
            "pts_s": frame.pts_s,
            "image_path": image_path,
            "width": size[0],
            "height": size[1],
            "mean_luma": scores.mean_luma,
            "relative_luma": relative_luma(scores.mean_luma, *self.profile.levels),
            "colorfulness": scores.colorfulness,
            "phash": np.uint64(scores.phash),
            **correction.columns(),
            "status": "kept" if reason is None else "rejected",
            "reject_reason": reason,
            "split": None,
        }

    # -- output --------------------------------------------------------------------------
    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        frames = pd.DataFrame(self.frame_rows, columns=FRAME_SCHEMA.names)
        shots = pd.DataFrame(self.shot_rows, columns=SHOT_SCHEMA.names)
        return frames, shots


def _mean_luma(small: np.ndarray) -> float:
    """Mean BT.601 luma (0-255) of an RGB uint8 frame (h, w, 3)."""
    return float(np.dot(cv2.mean(small)[:3], LUMA_WEIGHTS))


def _empty_shot_note(rows: list[dict[str, Any]], clean_frames: int, *, flash_only: bool) -> str:
    """Why a shot gave no kept frame, in words for the shots table and the warning.
    `flash_only`: the shot had candidates in its clean span, but flashes only."""
    if rows:
        reasons = Counter(r["reject_reason"] for r in rows)
        return ("every sampled frame rejected ("
                + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) + ")")
    if clean_frames <= 0:
        return "too short: no frame away from its cuts and transitions"
    return "only flash frames" if flash_only else "no frame sampled"


def _fit(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """Resize so the longer side is at most `max_side` pixels (never upscales)."""
    if max_side is None or max(rgb.shape[:2]) <= max_side:
        return rgb
    scale = max_side / max(rgb.shape[:2])
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _prepare_output(out_root: Path, film_id: str) -> None:
    """Create the output folders, or fail with one clear line."""
    films_dir = out_root / layout.FILMS_DIR
    probe = films_dir / f".write-test.0{manifests.temp_suffix()}"
    try:
        films_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
    except OSError as exc:
        raise OutputError(
            f"cannot write to {out_root}: {exc.strerror or exc}; choose another --out"
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def _film_dirs(out_root: Path, film_id: str) -> tuple[Path, Path]:
    return out_root / layout.IMAGES_DIR / film_id, out_root / layout.THUMBS_DIR / film_id


def sweep_film_temps(out_root: Path, film_id: str) -> None:
    """Remove the temporary files that killed runs left in this film's folders and in the
    manifest folders (never a live process's: `manifests.temps`). Never raises."""
    for folder in _film_dirs(out_root, film_id):
        manifests.sweep_stale_temps(folder, recursive=True)
    manifests.sweep_stale_temps(out_root / layout.FILMS_DIR)
    manifests.sweep_stale_temps(out_root / layout.MANIFESTS_DIR)


def retire_outputs(out_root: Path, film_id: str) -> Path | None:
    """Before a redo writes any image: remove the done markers that would point at images
    of another config. The frame manifest (and its shots table) go; so does the dataset
    manifest of this root when this film has images there (it may list them). Each
    removal is atomic, so a kill at any moment leaves a film that is done with its own
    images, or not done. Returns the dataset manifest if it was removed."""
    dataset = layout.dataset_manifest(out_root)
    has_images = any(folder.exists() for folder in _film_dirs(out_root, film_id))
    retired = None
    for path in ((dataset,) if has_images else ()) + (
        layout.film_manifest(out_root, film_id), layout.shot_manifest(out_root, film_id),
    ):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OutputError(
                f"cannot replace {path}: {exc.strerror or exc}; check the permissions of "
                f"{out_root} or choose another --out"
            ) from exc
        retired = path if path == dataset else retired
    return retired


def remove_unlisted_images(out_root: Path, film_id: str, frames: pd.DataFrame) -> None:
    """Remove this film's images and thumbnails that `frames` does not list (left by a
    run with another config), and folders left empty. Temporary files are left to the
    sweep (a concurrent run of the same config may be writing them). Never raises."""
    listed = set(frames["image_path"].dropna()) | set(frames["thumb_path"].dropna())
    for folder in _film_dirs(out_root, film_id):
        with contextlib.suppress(OSError):
            files = [p for p in folder.rglob("*") if not p.name.startswith(".")]
            for path in sorted(files, key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    if path.is_dir():
                        path.rmdir()  # only when empty
                    elif path.relative_to(out_root).as_posix() not in listed:
                        path.unlink()
            folder.rmdir()  # only when empty


def _write_bytes(path: Path, data: bytes) -> None:
    with manifests.atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _write(action: Any) -> Any:
    """Run a write, turning OS errors (disk full, permissions) into one-line errors."""
    try:
        return action()
    except OSError as exc:
        raise OutputError(f"write failed: {exc.strerror or exc} ({exc.filename or ''})") from exc

