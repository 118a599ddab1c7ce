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
TINY = ["--pretrain-epochs", "2", "--steps", "2", "--epochs", "1", "--quiet"]


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
    for name in ("fc1.weight", "fc2.weight", "fc3.weight", "compression ratio 5.00"):
        assert name in out
    assert f"compressed {report['accuracy']:.4f}" in out
    assert err == ""  # --quiet: no progress display


def test_compress_quantize_with_progress(tmp_path, capsys):
    rc, _, err = run(["compress", *TINY[:-1], "--quantize", "4", "--out", str(tmp_path)], capsys)
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["average_bits"] == 2.0 and report["compression_ratio"] == pytest.approx(16.0)
    assert "LC" in err and "reference" in err  # the progress bars, on stderr


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--prune", "0"], "KEEP must be a number in (0, 1], got 0"),
        (["--prune", "1.5"], "KEEP must be a number in (0, 1], got 1.5"),
        (["--prune", "half"], "KEEP must be a number in (0, 1], got 'half'"),
        (["--quantize", "1"], "K must be an integer >= 2, got 1"),
        (["--quantize", "2.5"], "K must be an integer >= 2, got '2.5'"),
        (["--mu0", "-1"], "expected a positive finite number, got -1"),
        (["--epochs", "0"], "expected a positive integer"),
        (["--model", "vgg"], "invalid choice: 'vgg'"),
        (["--method", "sgd"], "invalid choice: 'sgd'"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_arguments_one_line(args, match, capsys):
    rc, _, err = run(["compress", *args], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and match in err and "Traceback" not in err
    assert err.startswith("compressopt") and ": error: " in err


def test_training_options_reach_the_report(tmp_path, capsys):
    rc, _, err = run(["compress", *TINY, "--prune", "0.2", "--heavy-ball", "--momentum", "0.5",
                      "--distill", "2", "--out", str(tmp_path)], capsys)
    assert rc == 0, err
    cfg = json.loads((tmp_path / "report.json").read_text())["config"]
    assert (cfg["nesterov"], cfg["momentum"], cfg["distill"], cfg["distill_phase"]) == (
        False, 0.5, 2.0, "all")


@pytest.mark.parametrize("args, match", [
    # a given 0 is refused, not replaced by the option's default
    (["--method", "admm", "--budget-ratio", "20", "--rho", "0"], "rho must be > 0, got 0"),
    (["--method", "admm", "--budget-ratio", "20", "--init-bits", "0"], "init_bits must be"),
    (["--method", "slr", "--s0", "0"], "s0 must be > 0, got 0"),
    (["--method", "apgdssm", "--bits", "0"], "bits must be in [1, 31], got 0"),
    # a finish stage's bad settings end the run before any training
    (["--method", "admm", "--budget-ratio", "20", "--finetune-epochs", "-1"],
     "--finetune-epochs must be an int >= 0, got -1"),
    (["--method", "admm", "--budget-ratio", "20", "--finetune-epochs", "1",
      "--finetune-lr", "0"], "--finetune-lr must be positive, got 0.0"),
    (["--method", "slr", "--retrain-epochs", "-2"], "--retrain-epochs must be an int >= 0"),
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
    (["--distill", "-1"], "--distill must be >= 0, got -1.0"),
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


def test_unusable_device(capsys):
    rc, _, err = run(["compress", *TINY, "--device", "tpu:x"], capsys)
    assert rc == 1 and err.count("\n") == 1 and "not a torch device" in err


def test_no_command_prints_help(capsys):
    rc, out, _ = run([], capsys)
    assert rc == 2 and "compress" in out


def test_python_m_compressopt(tmp_path):
    r = python_m("compress", "--prune", "2")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0
    assert "KEEP must be a number in (0, 1], got 2" in r.stderr
    assert "Traceback" not in r.stderr
    r = python_m("compress", "--dataset", "mnist", "--data-dir", str(tmp_path / "none"))
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    r = python_m("compress", *TINY, "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "out" / "report.json").read_text())["prune"] == 0.1
    r = python_m("--version")
    assert r.returncode == 0 and r.stdout.startswith("compressopt ")
