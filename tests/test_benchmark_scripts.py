"""The protocol scripts of benchmarks/ (frontier.py, lenet5_issue12.py, file_sizes.py) on
synthetic runs: their commands parse, the tables and the figure come out of committed
reports, pending and broken runs are told apart. Fast: no training."""

from __future__ import annotations

import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compressopt import projections as P
from compressopt.cli import build_parser, settings_from
from compressopt.options import JobConfig, recipes
from compressopt.solvers import PenaltySchedule
from compressopt.storage import theta_to_bytes
from compressopt.storage.atomic import RunOutput

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _runner  # noqa: E402
import file_sizes  # noqa: E402
import frontier  # noqa: E402
import lenet5_issue4  # noqa: E402
import lenet5_issue12  # noqa: E402

sys.path.pop(0)


# ------------------------------------------------------------------ synthetic runs


def commit(path: Path, report: dict[str, Any], files: dict[str, bytes] | None = None) -> None:
    """A run folder as the job leaves it: files staged, the report committed last."""
    with RunOutput.open(path, overwrite=True) as run:
        for name, data in (files or {}).items():
            run.stage(name, data)
        run.commit(report)


def point_report(model: str, ratio: int, seed: int, drop: float) -> dict[str, Any]:
    ref = 0.992 if model == "lenet5" else 0.984
    return {"model": model, "method": "admm" if model == "lenet5" else "lc",
            "compression_ratio": ratio * (1 + 1e-4 * seed), "file_compression_ratio": ratio / 5,
            "model_bytes_ratio": ratio / 9, "accuracy": ref - drop, "reference_accuracy": ref,
            "accuracy_drop": drop, "val_accuracy": ref - drop - 0.001,
            "reference_val_accuracy": ref - 0.001, "nonzero_fraction": 32 / ratio / 2,
            "average_bits": 2.0, "wall_seconds": 60.0 * (1 + seed)}


def frontier_layout(root: Path, *, seeds: tuple[int, ...] = (0, 1, 2)) -> None:
    """Every candidate of both models, and frontier points for `seeds` (the LeNet-300 point
    at the selection's ratio and seed 0 left to the chosen candidate's run)."""
    for m in frontier.MODELS.values():
        for i, c in enumerate(m.candidates):  # the second candidate validates best
            r = point_report(m.name, m.select_ratio, 0, 0.002)
            r["val_accuracy"] = 0.95 + (0.01 if i == 1 else 0.0)
            commit(root / m.select_out(c), r)
        for ratio in m.ratios:
            for s in seeds:
                if m is frontier.LENET300 and (ratio, s) == (m.select_ratio, 0):
                    continue
                drop = 0.0004 * math.log(ratio / 400) + 0.0002 * s
                commit(root / m.frontier_out(ratio, s), point_report(m.name, ratio, s, drop))


def _iteration(kind: str, k: int) -> dict[str, Any]:
    rec = {"k": k, "test_accuracy": 0.9 + 0.001 * k, "val_accuracy": 0.9, "rho": 0.1,
           "time_lstep": 1.0, "time_cstep": 0.01, "time_multipliers": 0.001}
    if kind == "slr":
        rec |= {"s": 1e-2 / (k + 1), "s_prime": 1e-2 / (k + 2), "condition1": 1,
                "condition2": k % 2, "w_minus_z": 5.0 / (k + 1)}
    elif kind == "admm":
        rec |= {"projected_test_accuracy": 0.95, "primal_residual": 3.0 / (k + 1)}
    else:
        rec |= {"weight_sparsity": 0.5 + 0.01 * k, "channel_sparsity": 0.1, "time_grad": 1.0,
                "time_prox": 0.05}
    return rec


def case_report(kind: str) -> dict[str, Any]:
    """A report of a table-b or table-c case: kind "slr", "admm" or "apgd"."""
    opts = dict(zip(("milestones", "lambda1_factors", "beta_factors"),
                    ([4, 7], [1, 0.5, 0.1], [1, 0.5, 0.1]), strict=True))
    return {"method": {"apgd": "apgdssm"}.get(kind, kind), "prune": 0.02,
            "accuracy": 0.98, "val_accuracy": 0.975, "reference_accuracy": 0.992,
            "accuracy_drop": 0.012, "compression_ratio": 8.0, "wall_seconds": 600.0,
            "iterations": [_iteration(kind, k) for k in range(20)],
            "config": {"options": {"step_rule": "paper", "alpha_index": "iteration",
                                   "s0": 0.01, "lambda1": 0.04, "lambda2": 5e-6,
                                   "beta": 1e-3, **opts}},
            "diagnostics": {"final_weight_sparsity": 0.7, "final_channel_sparsity": 0.1,
                            "layers": {"conv1.weight": {"weight_sparsity": 0.3,
                                                        "channel_sparsity": 0.0}}}}


def issue12_layout(root: Path, *, skip: tuple[str, ...] = ()) -> None:
    commit(root / "l5/ref", {"reference_accuracy": 0.992, "reference_val_accuracy": 0.99,
                             "pretrain_epochs": 20, "reference_seconds": 400.0})
    for name, (table, _) in lenet5_issue12.CASES.items():
        if name not in skip:
            commit(root / "l5" / name, case_report("apgd" if table == "c" else
                                                   name.split("_")[0]))


def model_file_run(path: Path, *, model: str = "lenet300", accuracy: float = 0.979) -> None:
    """A run with a real model.cpz: a small pruned-and-quantized Θ."""
    rng = np.random.default_rng(0)
    w = {"fc1.weight": rng.normal(size=(60, 80)).astype(np.float32),
         "fc2.weight": rng.normal(size=(10, 60)).astype(np.float32)}
    comp = P.Chain(P.GlobalCardinality(keep=0.3),
                   P.PerTensor(P.AdaptiveQuantization(2, sparse=True)))
    data = theta_to_bytes(comp.compress(w), comp,
                          dense={"fc1.bias": np.zeros(60, np.float32)},
                          metadata={"model": model})
    commit(path, {"model": model, "method": "lc", "prune": 0.3, "quantize": 2,
                  "accuracy": accuracy, "accuracy_drop": 0.005, "compression_ratio": 106.7,
                  "compressed_file": "model.cpz"}, {"model.cpz": data})


# ------------------------------------------------------------------ commands


def _parse(command: str) -> JobConfig:
    argv = shlex.split(command)[3:]  # drop "python -m compressopt"
    assert argv[0] == "compress"
    if "--recipe" in argv and frontier.RECIPE not in recipes():
        # the recipe is not in this checkout: check the options given on top of it
        i = argv.index("--recipe")
        argv[i:i + 2] = ["--model", "lenet5", "--dataset", "mnist", "--method", "admm"]
    return JobConfig.from_settings(settings_from(build_parser().parse_args(argv))).resolved()


def test_protocol_commands_parse_and_name_their_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSOPT_MNIST_DIR", "DIR")
    frontier_layout(tmp_path / "sel", seeds=())  # candidates complete: the frontier appears
    runs, notes = frontier.protocol(tmp_path / "sel")
    outs = [r.out for r in runs]
    assert len(outs) == len(set(outs))
    assert outs.index("l5/ref") < outs.index("l5/admm_k01")
    assert outs.index("l300/ref") < outs.index("l300/pq_k02_q2")
    for m in frontier.MODELS.values():
        chosen = list(m.candidates)[1]
        for r in m.ratios:
            for s in frontier.SEEDS:
                reused = (m.select_out(chosen) if m.reuse_selection
                          and (r, s) == (m.select_ratio, 0) else None)
                assert (reused or m.frontier_out(r, s)) in outs
    assert any("is frontier/select/lenet300_" in n for n in notes)
    assert not any("is frontier/select/lenet5_" in n for n in notes)
    # LeNet-5: R = 2000 trains and saves seed S's reference; the other ratios load it, after
    by_name = {r.out: r for r in runs}
    for s in frontier.SEEDS:
        own = f"frontier/lenet5_r2000_s{s}"
        assert "--reference" not in by_name[own].args and by_name[own].needs == ()
        for r in (500, 1000, 3000, 4000):
            run = by_name[f"frontier/lenet5_r{r}_s{s}"]
            assert run.needs == (own,) and outs.index(own) < outs.index(run.out)
            argv = run.argv(tmp_path)
            assert argv[argv.index("--reference") + 1] == str(
                tmp_path / own / "reference.safetensors")
    for run in runs:
        cfg = _parse(run.command(tmp_path))
        assert cfg.out == str(tmp_path / run.out)
        if "--recipe" not in run.args or frontier.RECIPE in recipes():  # the recipe's split
            assert (cfg.val_split, cfg.val_seed) == (5000, 0)
    by_out = {r.out: _parse(r.command(tmp_path)) for r in runs}
    assert by_out["frontier/lenet300_r3000_s1"].prune == pytest.approx(32 / 3000, rel=1e-9)
    assert by_out["frontier/lenet300_r3000_s1"].quantize == 2
    assert by_out["frontier/lenet300_r3000_s1"].seed == 1
    assert by_out["l5/slr_bragin_k01"].options.step_rule == "bragin"
    apgd = by_out["l5/apgdssm_paper"].options
    assert (apgd.lambda1, apgd.lambda2, apgd.beta, apgd.bits) == (0.04, 5e-6, 1e-3, 4)
    # Table I: lambda factors 1, .5, .1, .05, .025 and beta 1, .5, .1, .01, .001 in effect
    s = _schedule(apgd)
    assert [s.at(e)[0] for e in (0, 4, 7, 11, 15)] == pytest.approx([1, .5, .1, .05, .025])
    assert [s.at(e)[2] for e in (0, 4, 7, 11, 15)] == pytest.approx([1, .5, .1, .01, .001])


def _schedule(options) -> PenaltySchedule:
    return PenaltySchedule(milestones=options.milestones, lambda1=options.lambda1_factors,
                           lambda2=options.lambda2_factors, beta=options.beta_factors,
                           cumulative=options.cumulative_factors)


def test_table_one_as_printed_equals_the_printed_per_interval_form(tmp_path, monkeypatch):
    """Li & Xin's Table I typed as printed (one factor per milestone, multiplied up: the
    default) parses, and gives the schedule of the per-interval form the script prints."""
    monkeypatch.setenv("COMPRESSOPT_MNIST_DIR", "DIR")
    run = next(r for r in lenet5_issue12.runs() if r.out == "l5/apgdssm_paper")
    printed = _parse(run.command(tmp_path)).options
    argv = ["compress", "--model", "lenet5", "--dataset", "mnist", "--method", "apgdssm",
            "--milestones", "4", "7", "11", "15", "--lambda1-factors", "0.5", "0.2", "0.5",
            "0.5", "--lambda2-factors", "0.5", "0.2", "0.5", "0.5", "--beta-factors", "0.5",
            "0.2", "0.1", "0.1"]
    typed = JobConfig.from_settings(settings_from(build_parser().parse_args(argv))).options
    a, b = _schedule(printed), _schedule(typed)
    assert np.allclose([a.at(e) for e in range(20)], [b.at(e) for e in range(20)], rtol=1e-12)


def test_print_commands_skips_complete_and_overwrites_broken(tmp_path, capsys):
    issue12_layout(tmp_path, skip=("admm_k01",))
    (tmp_path / "l5/slr_paper_k01/model.cpz").write_bytes(b"x")  # not in its report's set
    report = tmp_path / "l5/slr_paper_k02/report.json"
    r = json.loads(report.read_text())
    r["files"]["ghost.bin"] = {"bytes": 1, "sha256": "0" * 64}
    report.write_text(json.dumps(r))  # lists a missing file: broken
    (tmp_path / "l5/apgdsm_paper").mkdir(parents=False, exist_ok=True)
    lenet5_issue12.main(["--root", str(tmp_path), "--print-commands"])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(f"--out {tmp_path}/l5/slr_paper_k02 --overwrite")
    assert lines[1].endswith(f"--out {tmp_path}/l5/admm_k01")
    assert "slr_paper_k02: broken" in err and "2 of 9 runs to do" in err
    lenet5_issue12.main(["--root", str(tmp_path), "--print-commands", "--skip-started"])
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_ready_only_waits_for_the_reference(tmp_path):
    lines, notes = _runner.pending_commands(lenet5_issue12.runs(), tmp_path, ready_only=True)
    assert len(lines) == 1 and lines[0].endswith(f"--out {tmp_path}/l5/ref")
    assert sum("waits for l5/ref" in n for n in notes) == len(lenet5_issue12.CASES)


# ------------------------------------------------------------------ tables and the figure


def test_frontier_tables_selection_and_targets(tmp_path, capsys):
    frontier_layout(tmp_path)
    frontier.main(["--root", str(tmp_path), "--select", "--table"])
    out = capsys.readouterr().out
    assert out.count("**chosen**") == 2 and "(shown, not used)" in out
    assert "| 3,000× | 3 of 3 | 3,000× | 600× | 333× |" in out
    assert "LeNet-5 (candidate ft20)" in out and "LeNet-300-100 (candidate g125)" in out
    # LeNet-5: drops 0.4·ln(R/400) + 0.02·s points: 0.32 at 3000x -> not met
    assert "| ✗ (0.101) |" in out
    assert "Target met at 3,200×, 4,000×" in out  # LeNet-300: errors 1.6 + drop < 2 %
    assert "frontier/select/lenet300_g125_s0" in out  # the reused point
    assert "frontier/lenet5_r2000_s0" in out  # LeNet-5: its own R = 2000 run


def test_lc_authors_additive_runs(tmp_path, monkeypatch):
    """The LC authors' LeNet-300 configuration: its commands parse to the additive
    combination with one codebook, its published point is 24.2× nominal, and the table
    shows the complete runs with their mean."""
    monkeypatch.setenv("COMPRESSOPT_MNIST_DIR", "DIR")
    assert frontier.LC_AUTHORS_L300[1] == pytest.approx(24.2, abs=0.05)
    cfg = _parse(frontier.L300_ADDITIVE[1].command(tmp_path))
    assert (cfg.prune, cfg.quantize, cfg.combine, cfg.shared_codebook, cfg.seed) == (
        0.01, 2, "additive", True, 1)
    runs, _ = frontier.protocol(tmp_path)
    assert [r.out for r in runs if "additive" in r.out] == [r.out for r in frontier.L300_ADDITIVE]
    assert "no complete run yet" in frontier.additive_table(tmp_path)
    for i, r in enumerate(frontier.L300_ADDITIVE[:2]):
        commit(tmp_path / r.out, point_report("lenet300", 24, i, 0.001 * (i + 1)))
    text = frontier.additive_table(tmp_path)
    assert "l300/additive_k2_c01_s1" in text and "additive_k2_c01_s2" not in text
    assert "| mean ± std |" in text and "0.15 ± 0.07" in text  # drops 0.10, 0.20 points
    commit(tmp_path / frontier.L300_PRUNE[0].out, point_report("lenet300", 100, 0, 0.007))
    text = frontier.additive_table(tmp_path)
    assert "| l300/prune_c01_s0 | 100.0× |" in text and text.count("mean ± std") == 1
    assert [r.out for r in runs if "prune_c01" in r.out] == [r.out for r in frontier.L300_PRUNE]


def test_frontier_verdicts():
    t = frontier.LENET5.target
    pts = [frontier.Point(3000, s, "x", point_report("lenet5", 3000, s, 0.0009))
           for s in range(3)]
    assert frontier.verdict(t, pts) == "✓ (0.090)"
    assert frontier.verdict(t, pts[:2]).startswith("pending (2 of 3")
    low = [p._replace(report=point_report("lenet5", 2000, p.seed, 0.0)) for p in pts]
    assert frontier.verdict(t, low) == "(below 2,500×)"
    bad = [p._replace(report=point_report("lenet5", 3000, p.seed, 0.0012)) for p in pts]
    assert frontier.verdict(t, bad) == "✗ (0.120)"


def test_frontier_before_any_run(tmp_path, capsys):
    frontier.main(["--root", str(tmp_path), "--table", "--select", "--print-commands"])
    out, err = capsys.readouterr()
    assert "No complete frontier run yet" in out and "not chosen yet" in out
    assert "waits for the selection (0 of 3 candidates complete" in err
    assert "waits for the selection (0 of 2 candidates complete" in err
    assert "frontier/lenet5_r" not in out  # no frontier command before the selection
    assert out.count("frontier/select/") == 5


def test_frontier_forced_candidate(tmp_path, capsys):
    frontier.main(["--root", str(tmp_path), "--print-commands", "--candidate", "lenet5=b12"])
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "lenet5_r4000_s2" in x)
    assert ("--budget-ratio 4000 --seed 2 --reference "
            f"{tmp_path}/frontier/lenet5_r2000_s2/reference.safetensors "
            "--bit-candidates 1 2 --init-bits 2") in line
    with pytest.raises(SystemExit, match="expected MODEL=NAME"):
        frontier.main(["--root", str(tmp_path), "--table", "--candidate", "lenet5=nope"])


def test_frontier_plot(tmp_path):
    pytest.importorskip("matplotlib")
    frontier_layout(tmp_path)
    out = frontier.plot(tmp_path, tmp_path / "frontier.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000
    # an empty root still draws the published points
    assert frontier.plot(tmp_path / "none", tmp_path / "empty.png").stat().st_size > 10_000


def test_issue12_tables(tmp_path):
    issue12_layout(tmp_path, skip=("slr_bragin_k01",))
    text = lenet5_issue12.tables(tmp_path)
    assert "Reference LeNet-5 (l5/ref): test accuracy 99.20 %" in text
    assert "| 20 | 91.90 | 91.90 | 95.00 | 91.90 |" in text  # per epoch: SLR, SLR, ADMM Π, Z
    assert "Not complete: slr_bragin_k01 (pending)." in text
    assert "conditions (6)/(11) held 20/10 of 20" in text
    assert "1 0.5 0.1 (from epochs 0 4 7)" in text  # per-interval factors as given
    assert "| apgdssm_paper | conv1.weight | 30.00 | 0.00 |" in text
    empty = lenet5_issue12.tables(tmp_path / "none")
    assert empty.count("Not complete:") == 2 and empty.count("(pending)") == 8


def test_issue4_tables_share_the_helpers(tmp_path):
    for name, kind in (("slr_2", "slr"), ("admm_2", "admm"), ("apgdssm", "apgd")):
        commit(tmp_path / name, case_report(kind))
    text = lenet5_issue4.tables(tmp_path, "DIR")
    assert "| slr_2 | 2 % | 90.40 | 90.90 | 91.90 | 1.00 / 0.50 / 0.25 | paper, α by" in text
    assert "| apgdssm | 0.04 | 5e-06 |" in text


def test_schedule_of_cumulative_factors():
    o = {"milestones": [4, 7], "lambda1_factors": [0.5, 0.2], "cumulative_factors": True}
    assert lenet5_issue12._schedule(o, "lambda1_factors") == "1 0.5 0.1 (from epochs 0 4 7)"


def test_file_sizes_on_the_layout(tmp_path, capsys):
    model_file_run(tmp_path / "l300/pq_k02_q2")
    model_file_run(tmp_path / "l300/k2", accuracy=0.95)
    assert file_sizes.main(["--root", str(tmp_path), "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| pq_k02_q2 | 97.90 | 0.50 | 106.7× |" in out
    assert "error ≤ 2.2 % and file ≥ 100×: ✗" in out  # a tiny Θ: file ratio < 100×
    assert "not measured:\n- " + str(tmp_path / "l300/keep05") + ": pending" in out
    assert "frontier/lenet5_r2000_s1: pending" in out
    file_sizes.main(["--root", str(tmp_path), "--print-commands"])
    cmds = capsys.readouterr().out.splitlines()
    assert [c.rsplit("/", 1)[1] for c in cmds] == ["ref", "keep05", "pq_k05_q4", "pq_k03_q4"]


def test_file_sizes_target():
    r = {"model": "lenet5", "method": "admm", "accuracy": 0.99}
    assert file_sizes.target(r, 2003.0, 450.0) == "file ≥ 400×: ✓"
    assert file_sizes.target(r, 2003.0, 390.0) == "file ≥ 400×: ✗"
    assert file_sizes.target(r, 3000.0, 390.0) == "-"
    r = {"model": "lenet300", "prune": 0.03, "quantize": 4, "accuracy": 0.979}
    assert file_sizes.target(r, 533.0, 120.0).endswith("✓")
    assert file_sizes.target({**r, "accuracy": 0.977}, 533.0, 120.0).endswith("✗")
