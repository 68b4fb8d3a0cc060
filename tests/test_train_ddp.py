"""DDP: the train command under torchrun with 2 CPU processes (gloo) finishes, rank 0 alone
writes the checkpoint and the logs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from colorizer.checkpoint import read_checkpoint
from tests.train_helpers import make_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    data = make_dataset(tmp_path / "data", short_side=40)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "cli.py"), "train", "--data", str(data), "--out", str(run),
           "--arch", "eccv16", "--steps", "3", "--batch-size", "2", "--size", "32",
           "--workers", "0", "--device", "cpu", "--val-every", "3",
           "--save-every", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["step"] == 3 and ckpt["extra"]["world_size"] == 2
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["kind"] == "train"]
    assert sorted(train_steps) == train_steps and len(set(train_steps)) == len(train_steps)
    assert [r["step"] for r in records if r["kind"] == "val"] == [3]
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    # rank 0 alone reports: one final line, one validation message
    assert proc.stdout.count("last.pt: step 3 of 3") == 1
    assert proc.stderr.count("step 3: val loss") == 1
    assert not list(run.glob(".*tmp*"))  # no temp files left behind
