"""Figures of a run: PNG files from a report, codebook levels from Θ, no matplotlib."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from compressopt import projections as P
from compressopt.plots import codebook_levels, plot_histograms, plot_report, render_report

PNG = b"\x89PNG\r\n\x1a\n"


def _report(method="lc"):
    its = [{"k": k, "test_accuracy": 0.9 + 0.01 * k, "mu": 1e-3 * 1.5**k,
            "feasibility": 2.0 / (k + 1), "loss": float("nan") if k == 0 else 0.1}
           for k in range(12)]
    if method == "joint":
        its = [{"k": k, "test_accuracy": 0.95, "rho": 0.05, "w_minus_v": 1.0 + k}
               for k in range(5)]
    return {"model": "lenet5", "dataset": "mnist", "method": method,
            "compression_ratio": 2000.0, "file_compression_ratio": 420.0,
            "layers": [{"name": "conv1.weight", "numel": 500, "nonzeros": 157, "bits": 4},
                       {"name": "conv2.weight", "numel": 25000, "nonzeros": 779, "bits": 2},
                       {"name": "fc1.weight", "numel": 400000, "nonzeros": 1306, "bits": 3},
                       {"name": "fc2.weight", "numel": 5000, "nonzeros": 261, "bits": 3}],
            "iterations": its}


@pytest.mark.parametrize("method", ["lc", "joint"])
def test_plot_report_writes_pngs(tmp_path, method):
    rng = np.random.default_rng(0)
    w = {"fc1.weight": rng.standard_normal((30, 20)), "fc2.weight": rng.standard_normal(50)}
    theta = P.PerTensor(P.AdaptiveQuantization(3)).compress(w)
    report = json.loads(json.dumps(_report(method)))  # as read back from report.json
    files = plot_report(report, tmp_path, weights=w, levels=codebook_levels(theta))
    assert [f.name for f in files] == ["layers.png", "iterations.png", "histograms.png"]
    for f in files:
        assert f.read_bytes().startswith(PNG) and f.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files)


def test_render_report_returns_png_bytes(tmp_path):
    figures = render_report(_report("joint"))
    assert set(figures) == {"layers.png", "iterations.png"}
    assert all(png.startswith(PNG) for png in figures.values())
    assert list(tmp_path.iterdir()) == []


def test_plot_report_without_iterations_or_weights(tmp_path):
    r = _report()
    r["iterations"] = []
    assert [f.name for f in plot_report(r, tmp_path)] == ["layers.png"]


def test_histograms_of_a_pruned_layer(tmp_path):
    x = np.zeros(10_000)
    x[:300] = np.random.default_rng(1).standard_normal(300)
    f = plot_histograms({"w": x, "zeros": np.zeros(5)}, tmp_path / "h.png",
                        levels={"w": [-1.0, 1.0]})
    assert f.read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="no weights"):
        plot_histograms({}, tmp_path / "x.png")


def test_codebook_levels():
    rng = np.random.default_rng(2)
    w = {"a": rng.standard_normal(40), "b": rng.standard_normal(30), "c": rng.standard_normal(9)}
    c = P.Tasks({"a": P.AdaptiveQuantization(4, sparse=True), ("b", "c"): P.Ternary()})
    lv = codebook_levels(c.compress(w))
    assert len(lv["a"]) == 4 and 0 not in lv["a"]
    assert np.array_equal(lv["b"], lv["c"]) and len(lv["b"]) == 2
    assert codebook_levels(P.GlobalCardinality(k=3).compress(w)) == {}


def test_without_matplotlib_plots_are_skipped_or_refused(tmp_path):
    code = textwrap.dedent(f"""
        import sys, logging
        sys.modules["matplotlib"] = None
        logging.basicConfig(level=logging.WARNING)
        from compressopt.plots import plot_report
        r = {{"layers": [{{"name": "a", "numel": 4, "nonzeros": 2, "bits": 1}}]}}
        assert plot_report(r, {str(tmp_path)!r}) == []
        try:
            plot_report(r, {str(tmp_path)!r}, missing_ok=False)
        except ImportError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'compressopt[plot]'" in out.stdout
    assert "skipping the figures" in out.stderr
    assert list(tmp_path.iterdir()) == []
