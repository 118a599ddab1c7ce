"""``torchrun --nproc-per-node 2 -m compressopt compress``: two CPU processes (gloo) run the
job, Θ agrees on both ranks after every iteration (checked by the job), only rank 0 writes
OUT and prints, and the report records the world size."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-port", str(free_port()), "-m", "compressopt", "compress", "--quiet",
         "--pretrain-epochs", "1", "--steps", "2", "--epochs", "1", "--batch-size", "32",
         "--method", "admm", "--budget-ratio", "30", "--bit-candidates", "1", "2", "--no-plots",
         "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("reference accuracy") == 1  # one summary: rank 0's
    report = json.loads((out / "report.json").read_text())
    assert report["world_size"] == 2 and len(report["iterations"]) == 2
    assert sorted(f.name for f in out.iterdir()) == [
        "config.toml", "model.cpz", "reference.safetensors", "report.json"]
