"""The command line end to end on digits (tiny epochs), and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from compressopt.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--pretrain-epochs", "2", "--steps", "2", "--epochs", "1", "--no-plots", "--quiet"]


def run(argv, capsys):
    """(exit code, stdout, stderr) of ``compressopt ARGV`` in this process."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's exits
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def python_m(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "compressopt", *args], capture_output=True, text=True, cwd=ROOT,
        timeout=300, env={**os.environ, **(env or {})},
    )


def test_compress_on_digits_end_to_end(tmp_path, capsys):
    rc, out, err = run(["compress", *TINY, "--prune", "0.2", "--out", str(tmp_path)], capsys)
    assert rc == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    for key in ("model", "dataset", "method", "seed", "epochs", "reference_accuracy", "accuracy",
                "accuracy_drop", "compression_ratio", "nonzero_fraction", "average_bits",
                "weight_bits", "wall_seconds", "layers"):
        assert key in report, key
    assert (report["model"], report["dataset"], report["method"], report["seed"]) == (
        "lenet300", "digits", "lc", 0)
    assert report["epochs"] == 1 and len(report["iterations"]) == 2
    assert 0 <= report["accuracy"] <= 1 and 0 <= report["reference_accuracy"] <= 1
    layers = report["layers"]
    assert {tuple(x) for x in ("name", "shape", "numel", "nonzeros", "bits")} <= {
        tuple(k) for x in layers for k in x}
    numel = sum(x["numel"] for x in layers)
    bits = sum(x["bits"] * x["nonzeros"] for x in layers)
    assert report["compression_ratio"] == pytest.approx(32 * numel / bits)
    assert report["nonzero_fraction"] == pytest.approx(0.2, abs=1e-4)
    assert report["compression_ratio"] == pytest.approx(5.0, rel=1e-3)
    for name in ("fc1.weight", "fc2.weight", "fc3.weight", "compression ratio 5.00 nominal",
                 f"model.cpz {report['file_bytes']:,} bytes", "file ratio "):
        assert name in out
    assert f"compressed {report['accuracy']:.4f}" in out
    assert err == ""  # --quiet: no progress display


def test_compress_quantize_with_progress_lines(tmp_path, capsys):
    # stderr is not a terminal here: plain progress lines (every event with --progress-every 0)
    rc, _, err = run(["compress", *TINY[:-1], "--quantize", "4", "--progress-every", "0",
                      "--out", str(tmp_path)], capsys)
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["average_bits"] == 2.0 and report["compression_ratio"] == pytest.approx(16.0)
    lines = err.splitlines()
    assert all(line.startswith("compressopt: ") for line in lines)
    assert any(" reference  epoch 2/2  loss " in line for line in lines)
    assert any(" LC  iteration 2/2  " in line and "test accuracy 0." in line for line in lines)
    assert all(" elapsed " in line for line in lines)
    assert any(" remaining ~" in line for line in lines)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--prune", "0"], "--prune must be a finite number in (0, 1], got 0.0"),
        (["--prune", "1.5"], "--prune must be a finite number in (0, 1], got 1.5"),
        (["--prune", "nan"], "--prune must be a finite number in (0, 1], got nan"),
        (["--prune", "half"], "argument --prune: expected a number, got 'half'"),
        (["--quantize", "1"], "--quantize must be an integer >= 2, got 1"),
        (["--quantize", "2.5"], "argument --quantize: expected an integer, got '2.5'"),
        (["--mu0", "-1"], "--mu0 must be a finite number > 0, got -1.0"),
        (["--mu0", "inf"], "--mu0 must be a finite number > 0, got inf"),
        (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
        (["--method", "sgd"], "invalid choice: 'sgd'"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--out", ""], "--out must name a directory, got ''"),
        (["--device", "tpu:x"], "not a torch device"),
        (["--device", "meta"], "--device meta: a meta tensor holds no data"),
    ],
)
def test_bad_arguments_one_line(args, match, capsys):
    rc, _, err = run(["compress", *TINY, *args], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and match in err and "Traceback" not in err
    assert err.startswith("compressopt") and ": error: " in err


def test_unknown_model_one_line(capsys):
    rc, _, err = run(["compress", *TINY, "--model", "vgg"], capsys)
    assert rc != 0 and err.count("\n") == 1 and "vgg" in err and "Traceback" not in err


def test_training_options_reach_the_report(tmp_path, capsys):
    rc, _, err = run(["compress", *TINY, "--prune", "0.2", "--heavy-ball", "--momentum", "0.5",
                      "--distill", "2", "--out", str(tmp_path)], capsys)
    assert rc == 0, err
    cfg = json.loads((tmp_path / "report.json").read_text())["config"]
    assert (cfg["nesterov"], cfg["momentum"], cfg["distill"], cfg["distill_phase"]) == (
        False, 0.5, 2.0, "all")


@pytest.mark.parametrize("args, match", [
    # a given 0 is refused, not replaced by the option's default
    (["--method", "admm", "--budget-ratio", "20", "--rho", "0"],
     "--rho must be a finite number > 0, got 0.0"),
    (["--method", "admm", "--budget-ratio", "20", "--init-bits", "0"],
     "--init-bits must be an integer in [1, 16], got 0"),
    (["--method", "slr", "--s0", "0"], "--s0 must be a finite number > 0, got 0.0"),
    (["--method", "apgdssm", "--bits", "0"], "--bits must be an integer in [1, 31], got 0"),
    # a finish stage's bad settings end the run before any training
    (["--method", "admm", "--budget-ratio", "20", "--finetune-epochs", "-1"],
     "--finetune-epochs must be an integer >= 0, got -1"),
    (["--method", "admm", "--budget-ratio", "20", "--finetune-epochs", "1",
      "--finetune-lr", "0"], "--finetune-lr must be a finite number in (0, 3.40282e+38], got 0.0"),
    (["--method", "slr", "--retrain-epochs", "-2"],
     "--retrain-epochs must be an integer >= 0, got -2"),
])
def test_bad_method_options_one_line(args, match, tmp_path, capsys):
    out_dir = tmp_path / "out"
    argv = ["compress", *TINY, *args, "--out", str(out_dir)]
    if "slr" in args:
        argv += ["--prune", "0.2"]
    rc, _, err = run(argv, capsys)
    assert rc != 0 and err.count("\n") == 1 and match in err and "Traceback" not in err
    assert not out_dir.exists()  # refused before the reference was trained (it creates OUT)


@pytest.mark.parametrize("args, match", [
    (["--distill", "-1"], "--distill must be a finite number >= 0, got -1.0"),
    (["--distill", "1", "--distill-phase", "finish"], "has no final retraining"),
])
def test_bad_distillation_one_line(args, match, capsys):
    rc, _, err = run(["compress", *TINY, "--prune", "0.2", *args], capsys)
    assert rc != 0 and err.count("\n") == 1 and match in err and "Traceback" not in err


def test_missing_data_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COMPRESSOPT_MNIST_DIR", raising=False)
    rc, _, err = run(["compress", "--dataset", "mnist", "--data-dir", str(tmp_path / "no")], capsys)
    assert rc == 1 and err.count("\n") == 1 and "MNIST directory not found" in err
    rc, _, err = run(["compress", "--dataset", "mnist"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "needs --data-dir" in err


def test_mnist_dir_missing_a_file_names_it(tmp_path, capsys):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    rc, _, err = run(["compress", "--dataset", "mnist", "--data-dir", str(tmp_path)], capsys)
    assert rc == 1 and err.count("\n") == 1
    assert "MNIST file missing" in err and "train-labels-idx1-ubyte.gz" in err


def test_missing_reference(tmp_path, capsys):
    rc, _, err = run(["compress", *TINY, "--reference", str(tmp_path / "ref.pt")], capsys)
    assert rc == 1 and err.count("\n") == 1 and "reference model file not found" in err


def test_no_command_prints_help(capsys):
    rc, out, _ = run([], capsys)
    assert rc == 2 and "compress" in out


def test_python_m_compressopt(tmp_path):
    r = python_m("compress", "--prune", "2")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0
    assert "--prune must be a finite number in (0, 1], got 2.0" in r.stderr
    assert "Traceback" not in r.stderr
    r = python_m("compress", "--dataset", "mnist", "--data-dir", str(tmp_path / "none"))
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    r = python_m("compress", *TINY, "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "out" / "report.json").read_text())["prune"] == 0.1
    r = python_m("--version")
    assert r.returncode == 0 and r.stdout.startswith("compressopt ")
