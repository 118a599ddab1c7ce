"""SIGINT and SIGTERM stop a run cleanly at the next epoch or iteration boundary: one line
saying where and how to resume, exit 130 / 143, OUT as it was before the run but for the
checkpoint (tests/test_cli_resume.py resumes such runs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from compressopt.cli import main
from compressopt.storage.atomic import read_run

ROOT = Path(__file__).resolve().parents[1]


def start(out: Path, *extra: str) -> subprocess.Popen:
    """A long digits run (plain progress lines on stderr at every event)."""
    return subprocess.Popen(
        [sys.executable, "-m", "compressopt", "compress", "--pretrain-epochs", "2",
         "--steps", "500", "--epochs", "1", "--progress-every", "0", "--out", str(out),
         *extra],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def stop_during_the_coordinator(p: subprocess.Popen, sig: int) -> list[str]:
    """Wait for the first L-step progress line, send `sig`; the stderr lines after it."""
    assert p.stderr is not None
    for line in p.stderr:
        if " LC  iteration " in line:
            break
    else:
        pytest.fail(f"the run ended before the coordinator started: {p.wait()}")
    p.send_signal(sig)
    _, rest = p.communicate(timeout=120)
    return rest.splitlines()


def check_stop_message(lines: list[str], sig: int) -> None:
    last = lines[-1]
    assert last.startswith(f"compressopt compress: stopped by {signal.Signals(sig).name} after ")
    assert "resume with: compressopt compress --resume " in last
    assert "Traceback" not in "\n".join(lines)


def test_sigint_stops_cleanly_and_leaves_only_the_checkpoint(tmp_path):
    out = tmp_path / "out"
    p = start(out)
    lines = stop_during_the_coordinator(p, signal.SIGINT)
    assert p.returncode == 130
    check_stop_message(lines, signal.SIGINT)
    # created by this run; its staged files removed
    assert [f.name for f in out.iterdir()] == ["checkpoint.safetensors"]


def test_sigterm_during_an_overwrite_keeps_the_previous_run(tmp_path):
    out = tmp_path / "out"
    assert main(["compress", "--pretrain-epochs", "2", "--steps", "2", "--epochs", "1",
                 "--quiet", "--out", str(out)]) == 0
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    p = start(out, "--overwrite", "--prune", "0.5")
    lines = stop_during_the_coordinator(p, signal.SIGTERM)
    assert p.returncode == 143
    check_stop_message(lines, signal.SIGTERM)
    after = {f.name: f.read_bytes() for f in out.iterdir()}
    assert after.pop("checkpoint.safetensors")
    assert after == before  # no staged file left
    report = read_run(out)  # complete: every listed file's size and SHA-256 match
    assert report["prune"] == 0.1 and json.loads((out / "report.json").read_text()) == report
