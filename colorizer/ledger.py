"""What a colorize output folder already holds: ``OUT/colorized.jsonl``, one JSON line per
finished input, so that a rerun of the same command skips what is done.

A line is written (and flushed to disk) by the process that runs the command, after the
input's output has been renamed into place; a run killed in between leaves an output
without a line, and the rerun redoes that input. An input is done when its output exists
and its last line names the same source (path, size, modification time) and the same
settings (`settings_key`: the checkpoint file and every option that changes the pixels).
A half-written last line (a crash while appending) is ignored. In pandas:
``pd.read_json("OUT/colorized.jsonl", lines=True)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from colorizer.colorize_config import ColorizeConfig

LEDGER_NAME = "colorized.jsonl"
# ColorizeConfig fields that never change an output's pixels: where it goes, how it is
# shown, and how the work is spread.
_NOT_IN_KEY = frozenset({"checkpoint", "out", "quiet", "device", "batch_size"})


def settings_key(cfg: ColorizeConfig) -> str:
    """16 hex digits naming the checkpoint file (path, size, mtime) and the options that
    change the output."""
    ckpt = Path(cfg.checkpoint)
    try:
        stat = ckpt.stat()
        identity = [str(ckpt.resolve()), stat.st_size, stat.st_mtime_ns]
    except OSError:  # a network given in memory: its path is all there is
        identity = [str(ckpt)]
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
              if f.name not in _NOT_IN_KEY}
    record = {"checkpoint": identity, **fields}
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def source_facts(source: Path) -> dict[str, Any]:
    stat = source.stat()
    return {"source": str(source.resolve()), "source_size": stat.st_size,
            "source_mtime_ns": stat.st_mtime_ns}


class Ledger:
    """The finished inputs of one output folder (read once; appended as inputs finish)."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / LEDGER_NAME
        self.records: dict[str, dict[str, Any]] = {}  # output path -> its last record
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                if isinstance(record, dict) and isinstance(record.get("output"), str):
                    self.records[record["output"]] = record

    def is_done(self, source: Path, output: Path, key: str) -> bool:
        record = self.records.get(str(output))
        if record is None or not output.is_file():
            return False
        try:
            facts = source_facts(source)
        except OSError:
            return False
        return record.get("settings") == key and all(record.get(k) == v
                                                      for k, v in facts.items())

    def add(self, source: Path, output: Path, key: str, **extra: Any) -> None:
        """Append one finished input and flush it to disk."""
        record = {**source_facts(source), "output": str(output), "settings": key,
                  "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
        line = json.dumps(record, default=str) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            if f.tell() and not self._ends_with_newline():
                f.write("\n")  # end a line a crash cut short, so this one stays whole
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.records[str(output)] = record

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
