"""The files of a run: ``compressopt inspect``, ``evaluate``, ``export`` and ``plot`` on a
run's model.cpz and OUT, and bad files as one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from safetensors.torch import load_file

from compressopt.cli import main
from compressopt.dnn.compressed import load_compressed


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    assert main(["compress", "--quiet", "--pretrain-epochs", "2", "--steps", "2", "--epochs",
                 "1", "--prune", "0.3", "--quantize", "4", "--out", str(out)]) == 0
    return out


def test_a_run_holds_its_figures(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    for name in ("layers.png", "iterations.png", "histograms.png"):
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert report["files"][name]["bytes"] == (run_dir / name).stat().st_size


def test_inspect(run_dir, capsys):
    assert main(["inspect", str(run_dir / "model.cpz")]) == 0
    out = capsys.readouterr().out
    assert "fc1.weight" in out and "total compressed" in out and "positions" in out


def test_evaluate_gives_the_reports_accuracy_exactly(run_dir, capsys):
    assert main(["evaluate", str(run_dir / "model.cpz")]) == 0
    out = capsys.readouterr().out
    acc = json.loads((run_dir / "report.json").read_text())["accuracy"]
    assert f"test accuracy {acc:.6f}" in out and "the report's, exactly" in out


def test_export_dense(run_dir, tmp_path, capsys):
    dense = tmp_path / "dense.safetensors"
    assert main(["export", str(run_dir / "model.cpz"), "--dense", str(dense)]) == 0
    tensors = load_file(dense)
    cm = load_compressed(run_dir / "model.cpz")
    assert set(tensors) == set(cm.tensors)
    assert all(bool((tensors[n] == cm.tensors[n]).all()) for n in tensors)


def test_plot_redraws_the_figures(run_dir, capsys):
    (run_dir / "layers.png").unlink()
    assert main(["plot", str(run_dir)]) == 0
    assert (run_dir / "layers.png").is_file() and "layers.png" in capsys.readouterr().out


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9])
def test_bad_files_one_line(run_dir, tmp_path, capsys, cut):
    data = (run_dir / "model.cpz").read_bytes()
    bad = tmp_path / "bad.cpz"
    bad.write_bytes(data[: int(cut * len(data))])
    for command in (["inspect", str(bad)], ["evaluate", str(bad)],
                    ["export", str(bad), "--dense", str(tmp_path / "d.safetensors")]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and ": error: " in err
    assert not (tmp_path / "d.safetensors").exists()
