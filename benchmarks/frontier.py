"""The compression frontier of LeNet-5 and LeNet-300-100 on MNIST (issue 13, item 3): the
commands of the protocol's runs, and from the finished runs the tables and the figure.

Usage, from the repository root::

    python benchmarks/frontier.py --print-commands [--root /work/runs] [--ready]
    python benchmarks/frontier.py --table [--root ...]       # frontier tables, targets
    python benchmarks/frontier.py --select [--root ...]      # the recipe selection
    python benchmarks/frontier.py --plot frontier.png [--root ...]

The script runs nothing: the coordinator queues the commands that ``--print-commands``
prints (every run of the protocol not complete yet: this frontier's, issue 12's
re-measurements of ``lenet5_issue12.py`` and issue 10's file-size runs of
``file_sizes.py``; one ``python -m compressopt compress ...`` line per run, the runs that
others need first). The tables read the complete runs with
:func:`compressopt.storage.atomic.read_run`; a folder without a committed report.json is
pending.

The protocol, under ROOT:

* LeNet-5 (``frontier/lenet5_r{R}_s{S}``, R in 500, 1000, 2000, 2500, 3000, 4000, seeds
  0, 1, 2; 2,500 is the target's own ratio):
  ``compressopt compress --recipe lenet5-joint-2000x --budget-ratio R --seed S`` plus the
  flags of the recipe candidate chosen on the validation split. The recipe holds out 5,000
  training examples (val_seed 0) and runs the joint ADMM (Yang et al. 2020) with their
  settings, heavy-ball momentum and a distilled fine-tuning. The R = 2000 point of seed S
  trains its own reference (seed S) and saves it; the other ratios of seed S start from that
  file (``--reference``), which is the same reference bit for bit (a seed's reference
  training is deterministic on CPU: three seed-0 runs saved files with one SHA-256) and saves
  its 8 minutes per run. Candidates (:data:`LENET5.candidates`) run at R = 2000, seed 0, in
  ``frontier/select/lenet5_<candidate>_s0``.
* LeNet-300-100 (``frontier/lenet300_r{R}_s{S}``, R in 500, 1000, 2000, 3000, 3200, 4000):
  LC pruning to 32/R of the weights and a 2-entry codebook per layer (1 bit per nonzero:
  nominal ratio R), from the shared reference ``l300/ref`` (the validation split held out);
  candidates at R = 3200 in ``frontier/select/lenet300_<candidate>_s0``.
* LeNet-300-100 at 1 % of the weights (``l300/additive_k2_c01_s{S}``,
  ``l300/prune_c01_s{S}``): the LC authors' configuration behind the 3,200× target's 2.17 %
  (one shared 2-entry codebook plus a 1 % float32 correction, ``--combine additive
  --shared-codebook``: 24.2× nominal) and pruning alone to 1 % (100×), from ``l300/ref``.
* The selection: the candidate with the highest validation accuracy among the complete
  candidate runs (ties: the first listed); the frontier's commands wait until every
  candidate is complete (or ``--candidate MODEL=NAME`` forces one). For LeNet-300-100 the
  frontier point at the selection's ratio and seed 0 is the chosen candidate's run itself (the
  same command), unless ``frontier/lenet300_r{R}_s0`` exists; LeNet-5's is a run of its own
  (the other ratios need the reference it saves).

Ratios: *nominal* is the papers' 32·Σnumel / Σ bits·nnz (Yang et al. §4.1, report
``compression_ratio``); *file* is the measured ``file_compression_ratio`` = 4·Σnumel / bytes
of the compressed tensors in model.cpz (positions, codebooks and header share included);
``model_bytes_ratio`` is the whole model's float32 bytes over the file's bytes.

Targets (issue 13): LeNet-5 ≥ 2,500× nominal at ≤ 0.10 point accuracy drop (mean of 3
seeds; Yang et al. 2,120× at 0.0); LeNet-300-100 ≥ 3,200× nominal at ≤ 2.0 % test error
(mean of 3 seeds; the LC authors 2.17 % with 1 % kept and a shared 2-entry codebook).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import file_sizes
import lenet5_issue12
from _runner import (
    VAL,
    Run,
    RunState,
    add_protocol_options,
    md,
    mean_std,
    pct,
    print_commands,
    run_state,
)

SEEDS = (0, 1, 2)
RECIPE = "lenet5-joint-2000x"

#: the LeNet-300-100 reference shared by its frontier, its selection and issue 10's runs
#: (40 epochs, the MNIST defaults; its one LC step is unused)
L300_REF = Run("l300/ref", ("--model", "lenet300", "--dataset", "mnist", *VAL, "--method", "lc",
                            "--prune", "0.05", "--steps", "1", "--epochs", "1",
                            "--first-epochs", "1", "--seed", "0"))
L300_REFERENCE = ("--reference", "{root}/l300/ref/reference.safetensors")

#: Yang et al. 2020, Table 3 (LeNet-5 on MNIST): (method, nominal ratio, accuracy drop in
#: points); their ratios are nominal (no file sizes reported)
PUBLISHED = (("Deep Compression", 70, 0.1), ("BC-GNJ", 573, 0.1), ("BC-GHS", 771, 0.1),
             ("Ye et al.", 1910, 0.1), ("Yang et al.", 2120, 0.0))


@dataclass(frozen=True)
class Target:
    """At least `ratio` nominal with the mean over `seeds` seeds of ``metric(report)`` (in
    percentage points) at most `limit`."""

    ratio: float
    metric: str  # "drop" or "error"
    limit: float
    seeds: int = 3

    def text(self) -> str:
        what = "accuracy drop" if self.metric == "drop" else "test error"
        unit = " points" if self.metric == "drop" else " %"
        return (f"≥ {self.ratio:,.0f}× nominal at ≤ {self.limit:.2f}{unit} {what} "
                f"(mean of {self.seeds} seeds)")


@dataclass(frozen=True)
class Model:
    """One model's frontier: ratios, seeds, the command of a point, the candidates."""

    name: str
    label: str
    ratios: tuple[int, ...]
    select_ratio: int
    base: Callable[[int, int], tuple[str, ...]]  # (ratio, seed) -> options
    candidates: dict[str, tuple[str, ...]]
    target: Target
    needs: tuple[str, ...] = ()
    color: str = "C0"
    marker: str = "o"
    #: the runs a frontier point needs besides `needs`: (ratio, seed) -> folders
    point_needs: Callable[[int, int], tuple[str, ...]] = lambda ratio, seed: ()
    #: whether the selection's chosen run stands for the point (select_ratio, seed 0)
    reuse_selection: bool = True

    def point(self, ratio: int, seed: int, candidate: str) -> tuple[str, ...]:
        return (*self.base(ratio, seed), *self.candidates[candidate])

    def frontier_out(self, ratio: int, seed: int) -> str:
        return f"frontier/{self.name}_r{ratio}_s{seed}"

    def select_out(self, candidate: str) -> str:
        return f"frontier/select/{self.name}_{candidate}_s0"


#: the LeNet-5 ratio whose runs train (and save) each seed's reference
L5_OWN_REFERENCE = 2000


def _lenet5_needs(ratio: int, seed: int) -> tuple[str, ...]:
    return () if ratio == L5_OWN_REFERENCE else (f"frontier/lenet5_r{L5_OWN_REFERENCE}_s{seed}",)


def _lenet5(ratio: int, seed: int) -> tuple[str, ...]:
    opts = ("--recipe", RECIPE, "--budget-ratio", str(ratio), "--seed", str(seed))
    for run in _lenet5_needs(ratio, seed):  # start from that run's saved reference
        opts += ("--reference", f"{{root}}/{run}/reference.safetensors")
    return opts


def _lenet300(ratio: int, seed: int) -> tuple[str, ...]:
    return ("--model", "lenet300", "--dataset", "mnist", "--method", "lc",
            "--prune", f"{32 / ratio:.10g}", "--quantize", "2", *L300_REFERENCE, *VAL,
            "--seed", str(seed))


LENET5 = Model(
    "lenet5", "LeNet-5", (500, 1000, 2000, 2500, 3000, 4000), 2000, _lenet5,
    candidates={
        "recipe": (),                                                # the recipe as written
        "ft20": ("--finetune-epochs", "20"),                         # longer distilled tuning
        "b12": ("--bit-candidates", "1", "2", "--init-bits", "2"),   # Yang et al.'s 1-2 bits
    },
    target=Target(2500, "drop", 0.10), color="C0", point_needs=_lenet5_needs,
    reuse_selection=False)

LENET300 = Model(
    "lenet300", "LeNet-300-100", (500, 1000, 2000, 3000, 3200, 4000), 3200, _lenet300,
    candidates={
        "default": (),                             # the MNIST defaults: μ_k = 9.76e-5·1.2^k
        "g125": ("--mu-growth", "1.25"),           # μ grows faster: W closer to Δ(Θ) at the end
    },
    target=Target(3200, "error", 2.0), needs=(L300_REF.out,), color="C1", marker="^")

MODELS = {m.name: m for m in (LENET5, LENET300)}

#: The LC authors' LeNet-300 figure behind the 3,200× target (UCMerced-ML/
#: LC-model-compression, examples/lenet300/README.md): "single codebook quantization with 1%
#: correction", 2.17 % test error against their reference's 2.13 % (drop 0.04 points). It is
#: the additive combination w = Q(w) + s, every one of the 266,200 weights at 1 bit plus
#: 2,662 float32 corrections: 32·266,200 / (266,200 + 32·2,662) = 24.2× nominal, not 3,200×.
LC_AUTHORS_L300 = ("LC authors, Q + 1 % correction", 32 * 266_200 / (266_200 + 32 * 2_662), 0.04)

def _l300_one_percent(folder: str, *flags: str) -> tuple[Run, ...]:
    """LC on LeNet-300-100 keeping 1 % of the weights, `flags` on top, from ``l300/ref`` with
    the frontier's μ growth 1.25, one run per seed in ``l300/<folder>_s<S>``."""
    return tuple(
        Run(f"l300/{folder}_s{s}",
            ("--model", "lenet300", "--dataset", "mnist", "--method", "lc", "--prune", "0.01",
             *flags, "--mu-growth", "1.25", *L300_REFERENCE, *VAL, "--seed", str(s)),
            needs=(L300_REF.out,))
        for s in SEEDS)


#: that configuration with our LC defaults for LeNet-300
L300_ADDITIVE = _l300_one_percent("additive_k2_c01", "--quantize", "2", "--combine", "additive",
                                  "--shared-codebook")
#: pruning alone to the same 1 % (float32 values, 100× nominal): a bound on the 3,200× point,
#: whose constraint set (1 % of the weights at 1 bit) lies inside this one
L300_PRUNE = _l300_one_percent("prune_c01")


# ------------------------------------------------------------------ selection and runs


class Selection(NamedTuple):
    """The candidates of a model with their run states, and the choice (None while
    undecided); `final`: every candidate is complete (or the choice was forced)."""

    model: Model
    states: dict[str, RunState]
    chosen: str | None
    final: bool


def select(root: Path, model: Model, forced: str | None = None) -> Selection:
    """Choose the candidate with the highest validation accuracy (first listed on ties)."""
    states = {c: run_state(root / model.select_out(c)) for c in model.candidates}
    scored = [(s.report.get("val_accuracy"), -i, c) for i, (c, s) in enumerate(states.items())
              if s.report is not None and s.report.get("val_accuracy") is not None]
    if forced is not None:
        return Selection(model, states, forced, True)
    chosen = max(scored)[2] if scored else None
    return Selection(model, states, chosen, len(scored) == len(states))


def selection_runs(model: Model) -> list[Run]:
    return [Run(model.select_out(c), model.point(model.select_ratio, 0, c), needs=model.needs)
            for c in model.candidates]


def _reused(root: Path, model: Model, ratio: int, seed: int, chosen: str | None) -> bool:
    """Whether the frontier point is the chosen candidate's selection run."""
    return (model.reuse_selection and chosen is not None
            and (ratio, seed) == (model.select_ratio, 0)
            and not (root / model.frontier_out(ratio, seed)).exists())


def frontier_runs(root: Path, sel: Selection) -> list[Run]:
    """The frontier's runs once the selection is final ([] before)."""
    m = sel.model
    if not sel.final or sel.chosen is None:
        return []
    runs = [Run(m.frontier_out(r, s), m.point(r, s, sel.chosen),
                needs=(*m.needs, *m.point_needs(r, s)))
            for r in m.ratios for s in SEEDS if not _reused(root, m, r, s, sel.chosen)]
    # the points that need another point (LeNet-5: the R = 2000 run of their seed) last
    return sorted(runs, key=lambda run: len(run.needs))


def protocol(root: Path, forced: dict[str, str] | None = None) -> tuple[list[Run], list[str]]:
    """Every run of the protocol in the order to queue them, and notes on what waits."""
    from compressopt.options import recipes

    forced = forced or {}
    runs = [*lenet5_issue12.runs(), L300_REF, *file_sizes.runs(), *L300_ADDITIVE, *L300_PRUNE]
    notes = [] if RECIPE in recipes() else [
        f"the recipe {RECIPE} is not in this checkout (compressopt recipes): the LeNet-5 "
        "commands need a checkout that has it"]
    for m in MODELS.values():
        runs += selection_runs(m)
    for m in MODELS.values():
        sel = select(root, m, forced.get(m.name))
        fr = frontier_runs(root, sel)
        if fr:
            runs += fr
            if _reused(root, m, m.select_ratio, 0, sel.chosen):
                notes.append(f"{m.frontier_out(m.select_ratio, 0)} is "
                             f"{m.select_out(sel.chosen)} (the same command)")
        else:
            done = sum(s.state == "complete" for s in sel.states.values())
            notes.append(f"frontier/{m.name}_*: waits for the selection ({done} of "
                         f"{len(sel.states)} candidates complete; --candidate "
                         f"{m.name}=NAME to force one)")
    return runs, notes


# ------------------------------------------------------------------ tables


class Point(NamedTuple):
    ratio: int
    seed: int
    out: str
    report: dict[str, Any]


def points(root: Path, model: Model, chosen: str | None) -> dict[int, list[Point]]:
    """ratio -> the complete runs of the frontier (seeds in order)."""
    found: dict[int, list[Point]] = {}
    for r in model.ratios:
        for s in SEEDS:
            out = (model.select_out(chosen) if _reused(root, model, r, s, chosen)
                   else model.frontier_out(r, s))
            st = run_state(root / out)
            if st.report is not None:
                found.setdefault(r, []).append(Point(r, s, out, st.report))
    return found


def _pm(values: list[float], digits: int = 2, scale: float = 100.0) -> str:
    mean, std = mean_std([scale * v for v in values])
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def _ratio(values: list[float | None]) -> str:
    v = [x for x in values if x is not None]
    mean, _ = mean_std(v)
    return "-" if mean is None else f"{mean:,.0f}×"


def _metric(target: Target, report: dict[str, Any]) -> float:
    """The target's metric of one run, in points / percent."""
    if target.metric == "drop":
        return 100 * report["accuracy_drop"]
    return 100 * (1 - report["accuracy"])


def verdict(target: Target, pts: list[Point]) -> str:
    """✓ / ✗ / why the row does not count for the target."""
    nominal, _ = mean_std([p.report["compression_ratio"] for p in pts])
    if nominal is None:
        return "-"
    if nominal < target.ratio - 1e-6:
        return f"(below {target.ratio:,.0f}×)"
    if len(pts) < target.seeds:
        return f"pending ({len(pts)} of {target.seeds} seeds)"
    value, _ = mean_std([_metric(target, p.report) for p in pts])
    return f"{'✓' if value <= target.limit + 1e-9 else '✗'} ({value:.3f})"


def frontier_table(root: Path, sel: Selection) -> str:
    m = sel.model
    pts = points(root, m, sel.chosen)
    head = (f"{m.label} (candidate {sel.chosen or 'not chosen yet'}"
            f"{'' if sel.final else ', selection not final'}); target: {m.target.text()}.")
    if not pts:
        return head + "\n\nNo complete frontier run yet."
    rows, per_run = [], []
    for r in m.ratios:
        p = pts.get(r, [])
        if not p:
            rows.append([f"{r:,}×", f"0 of {len(SEEDS)}", *["-"] * 9, "-"])
            continue
        rep = [x.report for x in p]
        rows.append([
            f"{r:,}×", f"{len(p)} of {len(SEEDS)}",
            _ratio([x["compression_ratio"] for x in rep]),
            _ratio([x.get("file_compression_ratio") for x in rep]),
            _ratio([x.get("model_bytes_ratio") for x in rep]),
            _pm([x["accuracy"] for x in rep]), _pm([1 - x["accuracy"] for x in rep]),
            _pm([x["reference_accuracy"] for x in rep]),
            _pm([x["accuracy_drop"] for x in rep]),
            _pm([x["val_accuracy"] for x in rep if x.get("val_accuracy") is not None]),
            _pm([x["nonzero_fraction"] for x in rep], 3),
            verdict(m.target, p)])
        per_run += [[f"{r:,}×", x.seed, x.out, f"{x.report['compression_ratio']:,.0f}×",
                     _ratio([x.report.get("file_compression_ratio")]),
                     pct(x.report["accuracy"]), pct(x.report["reference_accuracy"]),
                     f"{100 * x.report['accuracy_drop']:.2f}",
                     pct(x.report.get("val_accuracy")),
                     f"{x.report.get('average_bits', float('nan')):.2f}",
                     f"{x.report['wall_seconds'] / 60:.1f} min"] for x in p]
    met = [f"{r:,}×" for r in m.ratios if pts.get(r) and verdict(m.target, pts[r])[0] == "✓"]
    summary = (f"Target {'met at ' + ', '.join(met) if met else 'not met (yet)'}: "
               f"{m.target.text()}.")
    return "\n\n".join([
        head,
        md(["budget ratio R", "seeds", "nominal ratio", "file ratio", "model bytes ratio",
            "test acc. %", "test error %", "reference acc. %", "drop (points)", "val acc. %",
            "nonzeros %", "target"], rows),
        summary,
        "Per run:\n\n" + md(["R", "seed", "run", "nominal", "file ratio", "test acc. %",
                             "reference acc. %", "drop (points)", "val acc. %", "avg bits",
                             "time"], per_run)])


def tables(root: Path, forced: dict[str, str] | None = None) -> str:
    forced = forced or {}
    parts = [frontier_table(root, select(root, m, forced.get(m.name))) for m in MODELS.values()]
    notes = ("Nominal ratio: 32·Σnumel / Σ bits·nnz (the papers'); file ratio: 4·Σnumel / "
             "bytes of the compressed tensors in model.cpz (measured); model bytes ratio: "
             "float32 bytes of the whole model / file bytes. Accuracies on the 10,000 test "
             "images; mean ± sample std over the seeds; drop = reference − compressed "
             "accuracy, each run against its own reference.")
    return "\n\n".join([*parts, additive_table(root), notes])


def _file_ratio(out: Path, report: dict[str, Any]) -> float | None:
    """The measured file ratio of a run, from its model.cpz by the current accounting (the
    reports written before commit 08cd5a4 counted a tensor of both additive parts twice),
    else the report's."""
    from compressopt.storage import file_accounting

    f = out / "model.cpz"
    return (file_accounting(f)["file_compression_ratio"] if f.exists()
            else report.get("file_compression_ratio"))


def additive_table(root: Path) -> str:
    """LeNet-300-100 at 1 % of the weights: our runs of the LC authors' configuration
    (:data:`L300_ADDITIVE`) and of pruning alone (:data:`L300_PRUNE`), with their means."""
    name, ratio, drop = LC_AUTHORS_L300
    head = (f"LeNet-300-100 at 1 % of the weights. The LC authors' configuration (--prune 0.01 "
            f"--quantize 2 --combine additive --shared-codebook; {name}: {ratio:.1f}× nominal, "
            f"test error 2.17 % against 2.13 %, drop {drop:.2f} points), and pruning alone to "
            f"1 % (--prune 0.01, float32 values):")
    rows = []
    for runs in (L300_ADDITIVE, L300_PRUNE):
        done = [(r, st.report) for r in runs
                if (st := run_state(root / r.out)).report is not None]
        rows += [[r.out, f"{x['compression_ratio']:,.1f}×",
                  _ratio([_file_ratio(root / r.out, x)]),
                  pct(x["accuracy"]), pct(1 - x["accuracy"]), f"{100 * x['accuracy_drop']:.2f}",
                  pct(x.get("val_accuracy")), f"{x['wall_seconds'] / 60:.1f} min"]
                 for r, x in done]
        reps = [x for _, x in done]
        if len(reps) > 1:
            rows.append(["mean ± std", "", "", _pm([x["accuracy"] for x in reps]),
                         _pm([1 - x["accuracy"] for x in reps]),
                         _pm([x["accuracy_drop"] for x in reps]),
                         _pm([x["val_accuracy"] for x in reps
                              if x.get("val_accuracy") is not None]), ""])
    if not rows:
        return head + " no complete run yet."
    return head + "\n\n" + md(["run", "nominal", "file ratio", "test acc. %", "test error %",
                                "drop (points)", "val acc. %", "time"], rows)


def selection_table(root: Path, forced: dict[str, str] | None = None) -> str:
    forced = forced or {}
    parts = []
    for m in MODELS.values():
        sel = select(root, m, forced.get(m.name))
        rows = []
        order = sorted(sel.states.items(), key=lambda kv: -(
            kv[1].report or {}).get("val_accuracy", -1.0))
        for c, s in order:
            r = s.report
            flags = " ".join(m.candidates[c]) or "(none)"
            mark = "**chosen**" if c == sel.chosen else ""
            if r is None:
                rows.append([c, flags, s.state, "-", "-", "-", "-", mark])
                continue
            rows.append([c, flags, s.state, pct(r.get("val_accuracy")),
                         pct(r.get("reference_val_accuracy")), f"{r['compression_ratio']:,.0f}×",
                         f"({pct(r['accuracy'])})", mark])
        how = ("forced with --candidate" if m.name in forced else
               "final" if sel.final else "not final: candidates pending")
        parts.append(
            f"{m.label}, candidates at R = {m.select_ratio:,}, seed 0, chosen by validation "
            f"accuracy ({how}):\n\n"
            + md(["candidate", "flags on top of the base command", "state", "val acc. %",
                  "reference val acc. %", "nominal ratio",
                  "test acc. % (shown, not used)", "choice"], rows))
    return "\n\n".join(parts)


# ------------------------------------------------------------------ figure


def plot(root: Path, path: Path, forced: dict[str, str] | None = None) -> Path:
    """Accuracy drop against the nominal ratio (left) and the measured file ratio (right),
    log x: seeds as small markers, the mean over seeds as a line, Yang et al.'s Table 3."""
    from compressopt.plots import _figure, _save

    forced = forced or {}
    fig, axes = _figure(1, 2, (12.0, 4.8))
    keys = (("compression_ratio", "nominal ratio 32·Σn / Σ bits·nnz (×, log scale)"),
            ("file_compression_ratio",
             "measured file ratio 4·Σn / compressed-tensor bytes (×, log scale)"))
    for ax, (key, xlabel) in zip(axes[0], keys, strict=True):
        for m in MODELS.values():
            pts = points(root, m, select(root, m, forced.get(m.name)).chosen)
            xs = [p.report.get(key) for ps in pts.values() for p in ps]
            ys = [100 * p.report["accuracy_drop"] for ps in pts.values() for p in ps]
            ok = [(x, y) for x, y in zip(xs, ys, strict=True) if x]
            if ok:
                ax.scatter(*zip(*ok, strict=True), s=14, color=m.color, marker=m.marker,
                           alpha=0.55, label=f"{m.label}: seeds")
            line = []
            for r in m.ratios:
                xr = [p.report.get(key) for p in pts.get(r, []) if p.report.get(key)]
                if xr:
                    line.append((mean_std(xr)[0], mean_std(
                        [100 * p.report["accuracy_drop"] for p in pts[r]])[0]))
            if line:
                ax.plot(*zip(*line, strict=True), color=m.color, lw=1.6, marker=m.marker,
                        markersize=5, label=f"{m.label}: mean of seeds")
        filled = key == "compression_ratio"
        for i, (name, ratio, drop) in enumerate(PUBLISHED):
            ax.scatter([ratio], [drop], marker="s", s=40, zorder=3,
                       facecolor="black" if filled else "none", edgecolor="black",
                       label=(None if i else "Yang et al. Table 3 (LeNet-5)" if filled else
                              "Yang et al. Table 3 (nominal ratios: no file sizes)"))
            ax.annotate(name, (ratio, drop), textcoords="offset points", xytext=(4, 6),
                        fontsize=7, rotation=30)
        adds = [(x["compression_ratio"] if filled else _file_ratio(root / r.out, x),
                 100 * x["accuracy_drop"]) for r in L300_ADDITIVE
                if (x := run_state(root / r.out).report) is not None]
        adds = [(x, y) for x, y in adds if x]
        if adds:
            ax.scatter(*zip(*adds, strict=True), s=22, color="C1", marker="v", zorder=3,
                       label="LeNet-300-100: LC Q + 1 % correction (ours)")
        if filled:
            name, ratio, drop = LC_AUTHORS_L300
            ax.scatter([ratio], [drop], marker="D", s=36, zorder=3, facecolor="none",
                       edgecolor="C1", label=f"{name} (LeNet-300-100)")
            ax.axvline(LENET5.target.ratio, color="C0", ls=":", lw=1)
            ax.axhline(LENET5.target.limit, color="C0", ls=":", lw=1,
                       label="LeNet-5 target: ≥ 2,500× at ≤ 0.10 points")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy drop (percentage points)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    axes[0, 0].set_title("against the nominal ratio (papers' count)")
    axes[0, 1].set_title("against the measured file ratio (model.cpz)")
    fig.suptitle("MNIST compression frontier: accuracy drop vs compression ratio "
                 "(LeNet-5 joint ADMM, LeNet-300-100 LC prune + 1 bit)")
    return _save(fig, path)


# ------------------------------------------------------------------ command line


def _forced(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, _, cand = v.partition("=")
        if name not in MODELS or cand not in MODELS[name].candidates:
            raise SystemExit(f"--candidate {v}: expected MODEL=NAME, one of " + ", ".join(
                f"{m}={c}" for m in MODELS for c in MODELS[m].candidates))
        out[name] = cand
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_protocol_options(p)
    p.add_argument("--table", action="store_true", help="print the frontier tables")
    p.add_argument("--select", action="store_true", help="print the recipe selection")
    p.add_argument("--plot", type=Path, metavar="OUT.png", help="draw the frontier figure")
    p.add_argument("--candidate", action="append", default=[], metavar="MODEL=NAME",
                   help="use this candidate whatever the selection says (repeatable)")
    a = p.parse_args(argv)
    root, forced = a.root.resolve(), _forced(a.candidate)
    if not (a.print_commands or a.table or a.select or a.plot):
        p.error("give --print-commands, --table, --select and/or --plot OUT.png")
    if a.print_commands:
        runs, notes = protocol(root, forced)
        for n in notes:
            print(f"# {n}", file=sys.stderr)
        print_commands(runs, root, ready_only=a.ready, skip_started=a.skip_started)
    if a.select:
        print(selection_table(root, forced))
    if a.table:
        print(tables(root, forced))
    if a.plot:
        print(f"wrote {plot(root, a.plot, forced)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
