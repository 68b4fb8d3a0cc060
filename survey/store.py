"""The survey database: one SQLite file, `SURVEY/survey.sqlite`, beside `SURVEY/images/`.

Tables (the plan is written once by `survey make`; raters and answers grow while serving):

    meta        key, value: schema_version, tool_version, created_at, config (JSON)
    conditions  condition (the label raters never see), kind (model | truth | grey),
                source (dataset | bw), checkpoint, position (report order)
    frames      frame_key, frame_id, film_id, shot_index, source, path (where it came from)
    images      image_id (opaque random hex, also the file name), frame_key, condition,
                file (relative to SURVEY), width, height
    raters      rater_id, token (random, URL-safe: the rater's link), created_at, origin
                (make: printed by `survey make --raters`; web: made at the start page)
    answers     (rater_id, image_id) primary key: answer (1 = "from a colour film", 0 = no),
                confidence (1-5 or NULL), first_answer, changes, position, first_at,
                answered_at

Answering twice: the last answer wins. The row keeps the first answer given and counts the
changes (answer or confidence different from the one it replaces), so a study can check
how often raters changed their minds.

Durability: WAL journal (readers never block the writer, several raters at once) with
`synchronous=FULL`: every answer is on disk when its page moves on, even after a power
cut. NORMAL would only risk the last answers on a power cut, not on a crash of the server;
one small write every few seconds per rater costs nothing either way, so FULL.
One connection per request or thread (`connect`), never shared between threads.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from survey.errors import SurveyNotFoundError, SurveyVersionError

SCHEMA_VERSION = 1  # bump when a table or column changes; older surveys are refused
DB_NAME = "survey.sqlite"
IMAGES_DIR = "images"
BUSY_TIMEOUT_MS = 10_000  # a writer waits this long for another one before giving up

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE conditions (
    condition TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('model', 'truth', 'grey')),
    source TEXT NOT NULL CHECK (source IN ('dataset', 'bw')),
    checkpoint TEXT,
    position INTEGER NOT NULL
);
CREATE TABLE frames (
    frame_key INTEGER PRIMARY KEY,
    frame_id TEXT NOT NULL UNIQUE,
    film_id TEXT,
    shot_index INTEGER,
    source TEXT NOT NULL CHECK (source IN ('dataset', 'bw')),
    path TEXT NOT NULL
);
CREATE TABLE images (
    image_id TEXT PRIMARY KEY,
    frame_key INTEGER NOT NULL REFERENCES frames (frame_key),
    condition TEXT NOT NULL REFERENCES conditions (condition),
    file TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    UNIQUE (frame_key, condition)
);
CREATE TABLE raters (
    rater_id INTEGER PRIMARY KEY AUTOINCREMENT,
    token TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('make', 'web'))
);
CREATE TABLE answers (
    rater_id INTEGER NOT NULL REFERENCES raters (rater_id),
    image_id TEXT NOT NULL REFERENCES images (image_id),
    answer INTEGER NOT NULL CHECK (answer IN (0, 1)),
    confidence INTEGER CHECK (confidence BETWEEN 1 AND 5),
    first_answer INTEGER NOT NULL CHECK (first_answer IN (0, 1)),
    changes INTEGER NOT NULL DEFAULT 0,
    position INTEGER,
    first_at TEXT NOT NULL,
    answered_at TEXT NOT NULL,
    PRIMARY KEY (rater_id, image_id)
);
"""


@dataclass(frozen=True)
class Condition:
    name: str  # the label in reports; never shown to raters
    kind: str  # model | truth | grey
    source: str  # dataset (frames of the test split) | bw (black-and-white frames, no truth)
    checkpoint: str | None = None


@dataclass(frozen=True)
class Frame:
    frame_key: int
    frame_id: str
    film_id: str | None
    shot_index: int | None
    source: str  # dataset | bw
    path: str  # the image it came from


@dataclass(frozen=True)
class Image:
    image_id: str  # opaque: 16 random hex digits
    frame_key: int
    condition: str
    file: str  # relative to the survey folder: images/<image_id>.jpg
    width: int  # pixels
    height: int


@dataclass(frozen=True)
class SurveyInfo:
    """What a survey folder holds, read once when it is opened."""

    folder: Path
    db: Path
    tool_version: str
    created_at: str
    config: dict[str, Any]
    images: tuple[Image, ...]  # sorted by image_id

    @property
    def ask_confidence(self) -> bool:
        return bool(self.config.get("ask_confidence", False))


def now() -> str:
    """UTC time, ISO 8601 with milliseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def tool_version() -> str:
    from manifests.io import TOOL_VERSION

    return TOOL_VERSION


def new_token() -> str:
    """A rater's token: 16 URL-safe characters (96 random bits)."""
    return secrets.token_urlsafe(12)


def connect(db: Path) -> sqlite3.Connection:
    """A connection for one request or thread: WAL, synchronous=FULL, foreign keys on."""
    conn = sqlite3.connect(str(db), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the writer lock is taken up front,
    so two raters answering at once queue instead of failing half-way."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --------------------------------------------------------------------------- making


def create(db: Path, config: dict[str, Any], conditions: Sequence[Condition],
           frames: Sequence[Frame], images: Sequence[Image], raters: int = 0) -> list[str]:
    """Write a new survey database at `db` (an empty or missing file); returns the tokens of
    `raters` raters made now. The caller moves the file into place when this returns."""
    conn = connect(db)
    try:
        conn.execute("PRAGMA journal_mode = WAL")  # persistent: every later connection uses it
        conn.executescript(_SCHEMA)
        with transaction(conn):
            meta = {"schema_version": str(SCHEMA_VERSION), "tool_version": tool_version(),
                    "created_at": now(), "config": json.dumps(config, sort_keys=True)}
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            conn.executemany(
                "INSERT INTO conditions VALUES (?, ?, ?, ?, ?)",
                [(c.name, c.kind, c.source, c.checkpoint, i) for i, c in enumerate(conditions)])
            conn.executemany(
                "INSERT INTO frames VALUES (?, ?, ?, ?, ?, ?)",
                [(f.frame_key, f.frame_id, f.film_id, f.shot_index, f.source, f.path)
                 for f in frames])
            conn.executemany(
                "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?)",
                [(i.image_id, i.frame_key, i.condition, i.file, i.width, i.height)
                 for i in images])
            tokens = _add_raters(conn, raters, "make")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the main file before the move
    finally:
        conn.close()
    return tokens


def _add_raters(conn: sqlite3.Connection, n: int, origin: str) -> list[str]:
    tokens = [new_token() for _ in range(n)]
    stamp = now()
    conn.executemany("INSERT INTO raters (token, created_at, origin) VALUES (?, ?, ?)",
                     [(t, stamp, origin) for t in tokens])
    return tokens


# --------------------------------------------------------------------------- opening


def db_path(folder: Path) -> Path:
    return Path(folder) / DB_NAME


def open_survey(folder: Path) -> SurveyInfo:
    """Check that `folder` holds a survey of this version and read its plan.

    Raises SurveyNotFoundError (no survey, not a database) or SurveyVersionError."""
    folder = Path(folder)
    db = db_path(folder)
    if not folder.is_dir():
        raise SurveyNotFoundError(f"{folder}: no such survey folder; make one with "
                                  "`survey make ... --out FOLDER`")
    if not db.is_file():
        raise SurveyNotFoundError(
            f"{folder} holds no {DB_NAME}: not a survey folder, or `survey make` did not "
            "finish there; rerun `survey make` into it")
    try:
        conn = connect(db)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            version = int(meta.get("schema_version", "0"))
            if version != SCHEMA_VERSION:
                raise SurveyVersionError(
                    f"{folder} is a survey of format {version} (made by filmcolor "
                    f"{meta.get('tool_version', '?')}); this filmcolor {tool_version()} reads "
                    f"format {SCHEMA_VERSION}: serve and report it with the version that made "
                    "it, or make a new survey")
            rows = conn.execute("SELECT image_id, frame_key, condition, file, width, height "
                                "FROM images ORDER BY image_id").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:  # not a database, damaged, or missing tables
        raise SurveyNotFoundError(
            f"{db}: not a readable survey database ({exc}); make the survey again") from exc
    except ValueError as exc:
        raise SurveyNotFoundError(f"{db}: damaged meta table ({exc}); make the survey again"
                                  ) from exc
    try:
        config = json.loads(meta.get("config", "{}"))
    except ValueError as exc:
        raise SurveyNotFoundError(f"{db}: damaged config ({exc}); make the survey again"
                                  ) from exc
    return SurveyInfo(folder, db, meta.get("tool_version", ""), meta.get("created_at", ""),
                      config, tuple(Image(*r) for r in rows))


# --------------------------------------------------------------------------- serving


def add_raters(db: Path, n: int, origin: str = "web") -> list[str]:
    """Make `n` raters now; their tokens."""
    conn = connect(db)
    try:
        with transaction(conn):
            return _add_raters(conn, n, origin)
    finally:
        conn.close()


def rater_id(conn: sqlite3.Connection, token: str) -> int | None:
    row = conn.execute("SELECT rater_id FROM raters WHERE token = ?", (token,)).fetchone()
    return None if row is None else int(row[0])


def answers_of(conn: sqlite3.Connection, rater: int) -> dict[str, tuple[int, int | None]]:
    """image_id -> (answer, confidence) of every image the rater has answered."""
    rows = conn.execute("SELECT image_id, answer, confidence FROM answers WHERE rater_id = ?",
                        (rater,)).fetchall()
    return {r[0]: (int(r[1]), None if r[2] is None else int(r[2])) for r in rows}


def record_answer(conn: sqlite3.Connection, rater: int, image_id: str, answer: int,
                  confidence: int | None, position: int | None) -> None:
    """Store one answer at once (its own transaction). Answering an image again replaces
    the answer (last wins), keeps the first one and counts the change."""
    stamp = now()
    with transaction(conn):
        conn.execute(
            """INSERT INTO answers (rater_id, image_id, answer, confidence, first_answer,
                                    changes, position, first_at, answered_at)
               VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)
               ON CONFLICT (rater_id, image_id) DO UPDATE SET
                 changes = answers.changes + (answers.answer != excluded.answer
                     OR coalesce(answers.confidence, 0) != coalesce(excluded.confidence, 0)),
                 answer = excluded.answer,
                 confidence = excluded.confidence,
                 answered_at = excluded.answered_at""",
            (rater, image_id, answer, confidence, answer, position, stamp, stamp))


# --------------------------------------------------------------------------- reading


def read_table(db: Path, query: str) -> Any:
    """A query's rows as a pandas DataFrame (read-only use)."""
    import pandas as pd

    conn = connect(db)
    try:
        return pd.read_sql_query(query, conn)
    finally:
        conn.close()


ANSWERS_QUERY = """
SELECT a.rater_id AS rater, a.image_id, f.frame_id, f.film_id, f.shot_index,
       f.source, i.condition, c.kind, a.answer AS yes, a.confidence, a.first_answer,
       a.changes, a.position, a.first_at, a.answered_at
FROM answers a
JOIN images i ON i.image_id = a.image_id
JOIN frames f ON f.frame_key = i.frame_key
JOIN conditions c ON c.condition = i.condition
ORDER BY a.rater_id, a.first_at, a.image_id
"""


def answers_frame(info: SurveyInfo) -> Any:
    """Every answer, one row per (rater, image), with the image's frame and condition."""
    return read_table(info.db, ANSWERS_QUERY)


def conditions_frame(info: SurveyInfo) -> Any:
    return read_table(info.db, "SELECT * FROM conditions ORDER BY position")


def raters_frame(info: SurveyInfo) -> Any:
    """One row per rater (without the token) and how many images each answered."""
    return read_table(info.db, """
        SELECT r.rater_id AS rater, r.origin, r.created_at, count(a.image_id) AS answered
        FROM raters r LEFT JOIN answers a ON a.rater_id = r.rater_id
        GROUP BY r.rater_id ORDER BY r.rater_id""")
