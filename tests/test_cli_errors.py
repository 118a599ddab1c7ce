"""The command line's top-level handler: one line on stderr for every failure (a log file
for an unexpected one), and the output directory's refusals, all before any training."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

import compressopt.dnn.job as job
from compressopt.cli import main
from compressopt.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--pretrain-epochs", "2", "--steps", "2", "--epochs", "1", "--no-plots"]


def run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def raising(exc):
    def run_job(*args, **kwargs):
        raise exc
    return run_job


def test_unexpected_error_one_line_and_a_log_file(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(job, "run_job", raising(TypeError("boom\nsecond line")))
    rc, _, err = run(["compress", "--quiet", "--out", str(tmp_path / "o")], capsys)
    line = one_line(err)
    assert rc == 1 and "internal error: TypeError: boom second line; traceback in " in line
    log = Path(line.rsplit("traceback in ", 1)[1].strip())
    try:
        text = log.read_text()
        assert "Traceback (most recent call last)" in text and "boom" in text
    finally:
        log.unlink()


@pytest.mark.parametrize(("exc", "rc", "match"), [
    (ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"), 1,
     "needs the module matplotlib; install compressopt[plot]"),
    (OSError(28, "No space left on device"), 1, "No space left on device"),
    (MemoryError(), 1, "error: out of memory"),
    (DataError("labels out of range\nmore"), 1, "error: labels out of range more"),
    (ValueError("bad value"), 1, "error: bad value"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_anticipated_errors_one_line(capsys, monkeypatch, exc, rc, match):
    monkeypatch.setattr(job, "run_job", raising(exc))
    got, _, err = run(["compress", "--quiet"], capsys)
    assert got == rc and match in one_line(err)
    assert "weights_only" not in err and "pickle" not in err


@pytest.mark.parametrize("device", ["xpu", "cuda:0", "mps"])
def test_unavailable_devices_one_line_before_anything_runs(capsys, device):
    rc, _, err = run(["compress", *TINY, "--progress-every", "0", "--device", device], capsys)
    assert rc == 2 and f"--device {device}: " in one_line(err) and "not available" in err


def test_out_holding_another_run_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = run(["compress", *TINY, "--quiet", "--out", str(out)], capsys)
    assert rc == 0, err
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    rc, _, err = run(["compress", *TINY, "--progress-every", "0", "--prune", "0.5",
                      "--out", str(out)], capsys)
    assert rc == 1 and "holds the report of another run; use --overwrite" in one_line(err)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before  # untouched
    # --overwrite replaces the whole set: a file of the old set not in the new one goes
    ref = tmp_path / "ref.safetensors"
    ref.write_bytes((out / "reference.safetensors").read_bytes())
    rc, _, err = run(["compress", *TINY, "--quiet", "--prune", "0.5", "--overwrite",
                      "--reference", str(ref), "--out", str(out)], capsys)
    assert rc == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["prune"] == 0.5 and set(report["files"]) == {"config.toml",
                                                               "model.cpz"}
    assert sorted(f.name for f in out.iterdir()) == ["config.toml", "model.cpz",
                                                     "report.json"]


def test_unusable_out_is_found_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, _, err = run(["compress", *TINY, "--progress-every", "0",
                      "--out", str(blocker / "out")], capsys)
    assert rc == 1 and "is not writable" in one_line(err)
    assert "reference" not in err  # no training started


def test_file_size_limit_is_one_line_and_leaves_no_output(tmp_path):
    # RLIMIT_FSIZE below the reference's size: the write fails with EFBIG (SIGXFSZ ignored)
    out = tmp_path / "out"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, resource.RLIM_INFINITY))

    r = subprocess.run([sys.executable, "-m", "compressopt", "compress", *TINY, "--quiet",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                       timeout=300, preexec_fn=limit, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "file size limit exceeded" in r.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_without_torch_compress_says_what_to_install():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from compressopt.cli import main\n"
            "raise SystemExit(main(['compress', '--quiet']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == ("compressopt compress: error: needs the module torch; install "
                        "compressopt[torch]\n")


@pytest.mark.parametrize(("args", "rc", "match"), [
    (["--quantize", "1000000000000"], 2,
     "--quantize 1000000000000 exceeds the 1,000 weights of fc3.weight"),
    # --method apgdssm --bits 31 now runs in O(n) memory: tests/test_bad_input_catalogue.py
])
def test_unbounded_memory_is_refused_before_training(capsys, args, rc, match):
    got, _, err = run(["compress", *TINY, "--progress-every", "0", *args], capsys)
    assert got == rc and match in one_line(err) and "reference" not in err
