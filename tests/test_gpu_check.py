"""The GPU check (bench/gpu_check.py) walked on the CPU with --dry-run: every section runs and
gives numbers (or says why it was skipped), so the check is ready when a GPU is lent."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("env", "train_step", "loader", "colorize", "train_compile", "ddp")


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry-run", "--out", str(out)],
        capture_output=True, text=True, timeout=200, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "gpu_check.json").read_text())
    text = (out / "gpu_check.txt").read_text()
    assert (out / "gpu_check.log").stat().st_size > 0
    assert results["dry_run"] is True
    sections = results["sections"]
    assert list(sections) == list(SECTIONS)
    for name in SECTIONS:
        assert f"== {name}:" in text
        if name != "ddp":
            assert sections[name]["status"] == "ok", (name, sections[name]["status"])

    env = sections["env"]
    assert env["info"]["torch"] and env["info"]["cpu_count"] >= 1
    assert _number(env["matmul"]["tflops"])
    assert _number(results["peak"]["measured_tflops"])
    assert results["peak"]["spec_bf16_tflops"] is None  # no datasheet peak for a CPU

    for name in ("train_step", "train_compile"):
        rows = sections[name]["rows"]
        assert rows
        for row in rows:
            assert row["status"] == "ok", row
            for key in ("images_per_s", "step_ms", "flops_per_step", "achieved_tflops",
                        "mfu_measured"):
                assert _number(row[key]), (name, key, row)
    compiled = sections["train_compile"]["rows"]
    assert {r["compile"] for r in compiled} == {"eager"}  # dynamo traced; no C++ codegen on CPU
    eager = sections["train_step"]["rows"]
    assert {r["arch"] for r in eager} == {"eccv16", "chen"}
    assert {r["mode"] for r in eager} == {"bf16+cl", "fp32"}

    loader = sections["loader"]["rows"]
    kinds = {r["loader"] for r in loader}
    assert kinds == {"synthetic", "real", "gpu-decode"}
    for row in loader:
        assert row["status"] == "ok", row
        assert _number(row["images_per_s"])
        if row["loader"] != "synthetic":
            assert _number(row["ratio_to_synthetic"])
    assert _number(sections["loader"]["best"]["ratio"])

    colorize = sections["colorize"]["rows"]
    assert len(colorize) == 6  # per frame at two sizes, then four film modes
    assert [r["mode"] for r in colorize[2:]] == ["flow 0.2", "keyframes 2", "keyframes auto",
                                                 "keyframes 8"]
    for row in colorize:
        assert row["status"] == "ok", row
        assert _number(row["frames/s"]) and row["frames"] >= 1
        shares = [row[f"{k} %"]
                  for k in ("decode", "cuts", "network", "flow", "colour", "encode")]
        assert all(s >= 0 for s in shares) and abs(sum(shares) - 100) < 1

    assert sections["ddp"]["status"].startswith("skipped:")
    assert "total" in text.splitlines()[-1]


def test_gpu_check_section_timeout_is_recorded(tmp_path: Path) -> None:
    """A section past its limit is stopped (its process group killed), its finished rows kept,
    the others marked, and the check still writes its report and exits 0."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry-run", "--out", str(out),
         "--only", "train_step", "--limit", "train_step=4"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "gpu_check.json").read_text())
    section = results["sections"]["train_step"]
    assert section["status"].startswith("timeout"), section["status"]
    rows = section.get("rows", [])
    assert all(r["status"] == "ok" or "timeout" in r["status"] for r in rows), rows
    assert "== train_step: timeout" in (out / "gpu_check.txt").read_text()
