"""The issue's MNIST targets with the CLI's defaults (slow: minutes each; run with -m slow)."""

from __future__ import annotations

import json

import pytest

from compressopt.cli import main


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "max_error", "ratio"),
    [
        (["--prune", "0.05"], 0.023, 20.0),  # LC paper: 2.18 % at 5 % kept (reference 2.13 %)
        (["--quantize", "2"], 0.030, 32.0),  # LC paper: 2.56 % with 1 bit per weight
    ],
    ids=["prune-5pct", "quantize-1bit"],
)
def test_lenet300_mnist_targets(real_mnist, tmp_path, args, max_error, ratio):
    rc = main(["compress", "--model", "lenet300", "--dataset", "mnist", "--data-dir",
               str(real_mnist), "--method", "lc", *args, "--quiet", "--out", str(tmp_path)])
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert 1 - report["accuracy"] <= max_error
    assert report["compression_ratio"] == pytest.approx(ratio, rel=1e-4)
    assert 1 - report["reference_accuracy"] <= 0.02  # the reference itself is a good LeNet300
