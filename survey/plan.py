"""`survey make`: pick frames, colorize them with every model, write the survey folder.

    SURVEY/
      survey.sqlite          the plan (conditions, frames, images), raters and answers
      images/<id>.jpg        every image raters see, at most `max_side` pixels a side;
                             <id> is 16 random hex digits: the name says nothing
      raters.txt             the links of the raters made with --raters (for the organiser)

Conditions (labels never shown to raters):

- one per checkpoint, labelled by `--label` or the run folder / file name: its colorization
  of each picked frame (each model at its own temperature and working size, as `colorize`
  runs it; Zhang et al.'s released file too);
- `truth`: the real colour frame (the paper's "ground truth");
- `grey` (with --grey): the frame's lightness alone, a control every rater should reject;
- with --bw: black-and-white frames without a colour original, colorized by each model
  (`LABEL (b&w)`) and, with --grey, shown as they are (`grey (b&w)`).

Every condition of a frame is made from the same resized picture and encoded the same way
(JPEG quality 92), so nothing but the colours tells them apart.

The database is written last, to a temporary file moved into place: it is the "done"
marker. A run killed half-way leaves images without a database; a rerun into the same
folder clears them and starts again. A folder with a finished survey is refused unless
`force` (its answers are then deleted).
"""

from __future__ import annotations

import math
import secrets
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survey import store
from survey.errors import SurveyConfigError, SurveyExistsError, SurveyInputError

TRUTH, GREY = "truth", "grey"
BW_SUFFIX = " (b&w)"
SOURCE_KINDS = ("film", "image", "all")
SPLITS = ("train", "val", "test", "all")
JPEG_QUALITY = 92
RATERS_FILE = "raters.txt"
# What a survey folder may hold besides the database: anything else means the folder is
# someone else's, and `survey make` will not write into it.
_OURS = {store.IMAGES_DIR, RATERS_FILE, "report", f"{store.DB_NAME}-wal", f"{store.DB_NAME}-shm"}


@dataclass(frozen=True)
class SurveyConfig:
    """Everything `survey make` decides; saved (as JSON) in the survey's meta table."""

    checkpoints: tuple[Path, ...]  # filmcolor checkpoints or Zhang's released file
    out: Path  # the survey folder
    data: Path | None = None  # dataset folder or frames manifest to pick frames from
    labels: tuple[str, ...] = ()  # one per checkpoint; default: run folder or file name
    split: str = "test"
    n: int = 50  # frames picked from the dataset
    seed: int = 0  # picking frames (and b&w images)
    source_kind: str = "film"  # film frames only, still images only, or all
    grey: bool = False  # add the grey control condition
    bw: tuple[Path, ...] = ()  # black-and-white images or folders of them (no truth)
    n_bw: int | None = None  # at most this many b&w images; None: as many as --n
    max_side: int = 512  # pixels, longer side of the images raters see
    temperatures: tuple[float, ...] = ()  # one for all models or one per checkpoint
    work_size: int | None = None  # shorter side the networks see; None: each one's own
    device: str = "auto"
    ask_confidence: bool = False  # ask "how sure?" (1-5, optional) under the question
    raters: int = 0  # rater links made now
    force: bool = False  # replace a finished survey in `out` (its answers are deleted)
    quiet: bool = False

    def __post_init__(self) -> None:
        if not self.checkpoints:
            raise SurveyConfigError("survey make needs at least one --checkpoint")
        if self.data is None and not self.bw:
            raise SurveyConfigError("give --data DATASET (frames with their colour originals) "
                                    "and/or --bw IMAGES")
        if self.labels and len(self.labels) != len(self.checkpoints):
            raise SurveyConfigError(f"give one --label per --checkpoint "
                                    f"({len(self.checkpoints)}), got {len(self.labels)}")
        labels = self.condition_labels()
        if len(set(labels)) != len(labels):
            raise SurveyConfigError(f"--label values must differ, got {labels}")
        for label in labels:
            if label in (TRUTH, GREY) or label.endswith(BW_SUFFIX) or not label.strip():
                raise SurveyConfigError(f"--label {label!r} is taken: {TRUTH!r}, {GREY!r} and "
                                        f"names ending in {BW_SUFFIX!r} are the survey's own")
        if self.split not in SPLITS:
            raise SurveyConfigError(f"--split must be one of {', '.join(SPLITS)}")
        if self.source_kind not in SOURCE_KINDS:
            raise SurveyConfigError(f"--source-kind must be one of {', '.join(SOURCE_KINDS)}")
        if self.n < 1 or (self.n_bw is not None and self.n_bw < 1):
            raise SurveyConfigError("--n and --n-bw must be >= 1")
        if self.max_side < 64:
            raise SurveyConfigError(f"--max-side must be >= 64 pixels, got {self.max_side}")
        if self.temperatures and len(self.temperatures) not in (1, len(self.checkpoints)):
            raise SurveyConfigError("give one --temperature for all models or one per "
                                    "--checkpoint")
        for t in self.temperatures:
            if not (math.isfinite(t) and t > 0):
                raise SurveyConfigError(f"--temperature must be a finite number > 0, got {t}")
        if self.work_size is not None and self.work_size < 16:
            raise SurveyConfigError(f"--work-size must be >= 16 pixels, got {self.work_size}")
        if self.raters < 0:
            raise SurveyConfigError(f"--raters must be >= 0, got {self.raters}")

    def condition_labels(self) -> list[str]:
        """The checkpoints' labels: given, or the run folder's name for RUN/last.pt and
        RUN/best.pt, else the file's stem; repeated names get (2), (3), ..."""
        if self.labels:
            return list(self.labels)
        names = [p.parent.name if p.stem in ("last", "best") and p.parent.name else p.stem
                 for p in self.checkpoints]
        return [s if names.count(s) == 1 else f"{s} ({i + 1})" for i, s in enumerate(names)]

    def temperature_of(self, k: int) -> float | None:
        if not self.temperatures:
            return None
        return self.temperatures[0 if len(self.temperatures) == 1 else k]

    def to_json(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            if isinstance(v, (tuple, list)):
                return [plain(x) for x in v]
            return str(v) if isinstance(v, Path) else v

        return {k: plain(v) for k, v in asdict(self).items()}


@dataclass
class MakeResult:
    folder: Path
    conditions: list[str]
    frames: int  # dataset frames picked
    bw_frames: int
    images: int
    tokens: list[str] = field(default_factory=list)  # raters made now
    available: int = 0  # kept frames of the split that could be picked


@dataclass(frozen=True)
class _Source:
    frame: store.Frame
    pixels: np.ndarray  # (H, W, 3) uint8 RGB colour original, or (H, W) uint8 b&w frame


# --------------------------------------------------------------------------- picking


def pick_frames(frames: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`n` rows spread over films and shots, seeded: films take turns (in a random order),
    each giving its next shot (its shots in a random order), one random frame per shot;
    a shot gives a second frame only when every shot has given one. So films are as even
    as their shots allow and no shot repeats before all shots are used.

    `frames` needs film_id, shot_index and frame_id; the result keeps its columns."""
    if len(frames) <= n:
        return frames.sort_values("frame_id").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    df = frames.sort_values("frame_id").reset_index(drop=True)  # row order never matters
    film = df["film_id"].astype(str)
    shot = film + "\x00" + df["shot_index"].astype(str)
    films = sorted(film.unique())
    film_rank = dict(zip(films, rng.permutation(len(films)), strict=True))
    shot_rank: dict[str, int] = {}
    for f in films:
        shots = sorted(shot[film == f].unique())
        shot_rank.update(zip(shots, rng.permutation(len(shots)), strict=True))
    frame_rank = np.empty(len(df), dtype=np.int64)
    for _, idx in df.groupby(shot, sort=True).indices.items():
        frame_rank[idx] = rng.permutation(len(idx))
    key = pd.DataFrame({"round": frame_rank, "shot": shot.map(shot_rank),
                        "film": film.map(film_rank)})
    chosen = key.sort_values(["round", "shot", "film"]).index[:n]
    return df.loc[sorted(chosen)].reset_index(drop=True)


def _dataset_frames(cfg: SurveyConfig) -> tuple[pd.DataFrame, Path, int]:
    """(picked kept frames, the root their image_path is relative to, frames available)."""
    from manifests import kept_frames, load_frames

    assert cfg.data is not None
    frames, root = load_frames(cfg.data)
    for column in ("film_id", "shot_index", "frame_id", "status", "image_path"):
        if column not in frames.columns:
            raise SurveyInputError(f"{cfg.data}: the manifest has no {column!r} column; "
                                   "rebuild it with build-dataset")
    kept = kept_frames(frames)
    if cfg.split != "all":
        if "split" not in kept.columns or kept["split"].isna().all():
            raise SurveyInputError(f"{cfg.data} has no train/val/test split; run build-dataset "
                                   "on it, or pass --split all")
        kept = kept[kept["split"] == cfg.split]
    if cfg.source_kind != "all" and "source_kind" in kept.columns:
        kept = kept[kept["source_kind"] == cfg.source_kind]
    if kept.empty:
        hint = " (still images are left out: --source-kind all takes them)" \
            if cfg.source_kind == "film" else ""
        raise SurveyInputError(f"{cfg.data} has no kept {cfg.source_kind} frames in split "
                               f"{cfg.split!r}{hint}; pick another --split")
    return pick_frames(kept, cfg.n, cfg.seed), Path(root), len(kept)


def _bw_paths(cfg: SurveyConfig) -> list[Path]:
    from manifests.layout import IMAGE_SUFFIXES

    paths: list[Path] = []
    for path in cfg.bw:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not
                           p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise SurveyInputError(f"--bw {path}: the folder holds no image files")
            paths += found
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise SurveyInputError(f"--bw {path}: not an image file (extract frames from "
                                       "black-and-white films first)")
            paths.append(path)
        else:
            raise SurveyInputError(f"--bw {path}: no such file or folder")
    limit = cfg.n if cfg.n_bw is None else cfg.n_bw
    if len(paths) > limit:
        rng = np.random.default_rng(cfg.seed)
        paths = [paths[i] for i in sorted(rng.choice(len(paths), limit, replace=False))]
    return paths


# --------------------------------------------------------------------------- pictures


def fit(img: np.ndarray, side: int) -> np.ndarray:
    """Shrink (never enlarge) so that the longer side is at most `side` pixels."""
    import cv2

    h, w = img.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def grey_of(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the lightness alone (ab = 0), as the networks see their input."""
    import torch

    from colorizer.lab import lab_to_srgb_u8, rgb_u8_to_L

    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    L = rgb_u8_to_L(torch.from_numpy(np.ascontiguousarray(pixels))[None])
    return lab_to_srgb_u8(L, torch.zeros(1, 2, *L.shape[-2:]))[0].numpy()


def _read(path: Path, colour: bool) -> np.ndarray:
    from colorizer.errors import DataError
    from colorizer.images import read_image

    try:
        img = read_image(path)
    except DataError as exc:
        raise SurveyInputError(str(exc)) from exc
    if colour and img.ndim == 2:
        raise SurveyInputError(f"{path}: a black-and-white frame in the dataset cannot be the "
                               "colour original; rebuild the dataset with --min-colorfulness")
    if not colour and img.ndim == 3:
        import cv2

        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return img


def _write_jpeg(rgb: np.ndarray, folder: Path) -> store.Image:
    """Write one image under an opaque random name; its record (frame and condition unset)."""
    import cv2

    from manifests import atomic_path

    image_id = secrets.token_hex(8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise SurveyInputError(f"cannot encode an image of shape {rgb.shape}")
    target = folder / store.IMAGES_DIR / f"{image_id}.jpg"
    with atomic_path(target) as tmp:
        tmp.write_bytes(buf.tobytes())
    return store.Image(image_id, -1, "", f"{store.IMAGES_DIR}/{image_id}.jpg",
                       int(rgb.shape[1]), int(rgb.shape[0]))


# --------------------------------------------------------------------------- the folder


def _prepare(out: Path, force: bool) -> None:
    """Make `out` ready for a new survey, or refuse (see the module doc)."""
    if out.exists() and not out.is_dir():
        raise SurveyExistsError(f"--out {out} is a file; choose a folder")
    db = store.db_path(out)
    if db.exists():
        if not force:
            raise SurveyExistsError(
                f"{out} already holds a survey{_answer_count(out)}; choose another --out, or "
                "--force to replace it (its answers are deleted)")
        for name in (store.DB_NAME, f"{store.DB_NAME}-wal", f"{store.DB_NAME}-shm"):
            (out / name).unlink(missing_ok=True)  # the done marker first
    elif out.is_dir():
        foreign = sorted(p.name for p in out.iterdir()
                         if p.name not in _OURS and not p.name.startswith("."))
        if foreign:
            raise SurveyExistsError(
                f"{out} is not empty and holds no survey ({', '.join(foreign[:3])}...); "
                "choose a new or empty folder for --out")
    images = out / store.IMAGES_DIR
    if images.is_dir():
        shutil.rmtree(images)  # a killed or replaced run's images
    (out / RATERS_FILE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _answer_count(out: Path) -> str:
    try:
        info = store.open_survey(out)
        n = int(store.read_table(info.db, "SELECT count(*) AS n FROM answers")["n"].iloc[0])
    except Exception:  # an old or damaged database: the count is only for the message
        return ""
    return f" with {n} answer(s)"


# --------------------------------------------------------------------------- making


def _sources(cfg: SurveyConfig) -> tuple[list[_Source], list[_Source], int]:
    """(dataset frames with their colour originals, b&w frames, frames available)."""
    dataset: list[_Source] = []
    available = 0
    if cfg.data is not None:
        picked, root, available = _dataset_frames(cfg)
        for row in picked.itertuples(index=False):
            path = root / str(row.image_path)
            frame = store.Frame(len(dataset), str(row.frame_id), str(row.film_id),
                                int(row.shot_index), "dataset", str(path))
            dataset.append(_Source(frame, fit(_read(path, colour=True), cfg.max_side)))
    bw: list[_Source] = []
    taken = {s.frame.frame_id for s in dataset}
    for path in _bw_paths(cfg):
        frame_id = f"bw:{path.stem}"
        while frame_id in taken:
            frame_id += "+"
        taken.add(frame_id)
        frame = store.Frame(len(dataset) + len(bw), frame_id, None, None, "bw", str(path))
        bw.append(_Source(frame, fit(_read(path, colour=False), cfg.max_side)))
    return dataset, bw, available


def _conditions(cfg: SurveyConfig, dataset: bool, bw: bool) -> list[store.Condition]:
    """In report order: truth, the models, grey; then the b&w ones."""
    out: list[store.Condition] = []
    pairs = list(zip(cfg.condition_labels(), cfg.checkpoints, strict=True))
    if dataset:
        out.append(store.Condition(TRUTH, "truth", "dataset"))
        out += [store.Condition(lab, "model", "dataset", str(p)) for lab, p in pairs]
        if cfg.grey:
            out.append(store.Condition(GREY, "grey", "dataset"))
    if bw:
        out += [store.Condition(lab + BW_SUFFIX, "model", "bw", str(p)) for lab, p in pairs]
        if cfg.grey:
            out.append(store.Condition(GREY + BW_SUFFIX, "grey", "bw"))
    return out


def make_survey(cfg: SurveyConfig) -> MakeResult:
    """Pick, colorize and write the survey folder `cfg.out` (see the module doc)."""
    from tqdm import tqdm

    from colorizer.predictor import Colorizer
    from manifests import atomic_path

    for path in cfg.checkpoints:  # before anything is written
        if not path.is_file():
            raise SurveyInputError(f"--checkpoint {path}: no such file; give a checkpoint of "
                                   "`train` or Zhang et al.'s released file")
    _prepare(cfg.out, cfg.force)
    dataset, bw, available = _sources(cfg)
    conditions = _conditions(cfg, bool(dataset), bool(bw))
    images: list[store.Image] = []

    def add(rgb: np.ndarray, source: _Source, condition: str) -> None:
        image = _write_jpeg(rgb, cfg.out)
        images.append(replace(image, frame_key=source.frame.frame_key, condition=condition))

    for source in dataset:
        add(source.pixels, source, TRUTH)
        if cfg.grey:
            add(grey_of(source.pixels), source, GREY)
    if cfg.grey:
        for source in bw:
            add(grey_of(source.pixels), source, GREY + BW_SUFFIX)
    labels = cfg.condition_labels()
    bar = tqdm(total=len(cfg.checkpoints) * (len(dataset) + len(bw)), unit="img",
               desc="survey", disable=cfg.quiet, leave=False)
    for k, path in enumerate(cfg.checkpoints):
        model = Colorizer.from_checkpoint(path, cfg.device, temperature=cfg.temperature_of(k),
                                          work_size=cfg.work_size)
        for source in dataset + bw:
            suffix = BW_SUFFIX if source.frame.source == "bw" else ""
            add(model.colorize_rgb(source.pixels), source, labels[k] + suffix)
            bar.update(1)
        del model
    bar.close()

    db = store.db_path(cfg.out)
    with atomic_path(db) as tmp:
        tokens = store.create(tmp, cfg.to_json(), conditions,
                              [s.frame for s in dataset + bw], images, raters=cfg.raters)
    if tokens:
        with atomic_path(cfg.out / RATERS_FILE) as tmp:
            tmp.write_text("".join(f"/r/{t}\n" for t in tokens))
    return MakeResult(cfg.out, [c.name for c in conditions], len(dataset), len(bw), len(images),
                      tokens, available)

