"""Sizes of compressed-model files (issue 10, "Must show"), printed as Markdown tables.

For each case: the nominal ratio (the papers' 32·Σnumel / Σ bits·nnz), the measured file
ratio 4·Σnumel / tensor_bytes with and without the entropy stage, the same Θ counted as the
LC toolkit counts it (raw values or ceil(log2 K)-bit codes, raw codebooks, positions by the
cheapest fixed-width gap code; no header) — our tensor bytes must not exceed it — the floor
(positions at log2 C(n, nnz), codes at their nominal bits, raw codebooks, no header), and per
tensor the position bytes against log2 C(n, nnz) (a sparse codebook whose zero is one of
its codes stores the positions inside the codes: no position bytes of their own; the last
column, the tensor's bytes over its floor, covers it). Then the time of save + load of LeNet-5
(median of repeats, one process).

Cases:

* ``RUN_DIR ...``: finished runs of ``compressopt compress`` (``report.json`` naming its
  ``compressed_file``, default ``model.cpz``), read with
  :func:`compressopt.storage.atomic.read_run` (a run without a committed report is listed as
  pending, one whose files do not match its report as broken); the file's own bytes give the
  entropy-coded column, and Θ re-encoded without the entropy stage (same metadata) the other.
* ``--root ROOT`` with no RUN_DIR: issue 10's runs of the protocol under ROOT:
  ``l300/keep05`` (LeNet-300-100, LC, keep 5 %), ``l300/k2`` (a 2-entry codebook per layer),
  ``l300/pq_*`` (LC pruning then a K-entry codebook of the nonzeros: keep 5 % with K = 4,
  keep 3 % with K = 4, keep 2 % with K = 2), all from the shared reference ``l300/ref`` on the
  validation split of the frontier (``benchmarks/frontier.py``), and the LeNet-5 joint ADMM
  runs at 2000× of the frontier (``frontier/lenet5_r2000_s{0,1,2}``).
  ``--print-commands`` prints the commands of the l300 runs not complete yet.
* ``--random``: Θ from one C step of the real schemes on random weights of the LeNet-300-100
  and LeNet-5 shapes (PyTorch's default init, U(±1/sqrt(fan_in))): pruning to 5 %, a 2-entry
  codebook per layer, pruning to 5 % then 4 levels, the joint set at 2000× (one C step of
  Yang et al.'s projection), and the per-layer allocation of our LeNet-5 2000× run
  (nonzeros and bits of joint2000_yang_hb_kdft_seed2) on random supports and values.
  RANDOM WEIGHTS: the sizes of trained models differ (supports are not uniform at random).

Targets (issue 10): our tensor bytes ≤ the LC toolkit's count; position bytes within 10 % of
log2 C(n, nnz) for tensors with more than 1,000 nonzeros; LeNet-5 joint ADMM at 2000×
nominal: file ratio ≥ 400× with the same accuracy; LeNet-300-100 pruned and quantized:
≤ 2.2 % test error with a file ratio ≥ 100×; save + load of LeNet-5 under 100 ms.

Usage::

    python benchmarks/file_sizes.py [RUN_DIR ...] [--root ROOT] [--random] [--repeats 21]
                                    [--json out.json]
    python benchmarks/file_sizes.py --print-commands [--root ROOT] [--ready]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _runner import VAL, Run, add_protocol_options, print_commands, run_state

from compressopt import projections as P
from compressopt.storage import file_accounting, inspect, read_model, save_theta, theta_to_bytes
from compressopt.storage.atomic import atomic_write
from compressopt.storage.schemes import expand

#: the LeNet-300-100 reference of issue 10's runs and of the frontier's (40 epochs, the MNIST
#: defaults, the validation split held out; its one LC step is unused)
L300_REF = Run("l300/ref", ("--model", "lenet300", "--dataset", "mnist", *VAL, "--method", "lc",
                            "--prune", "0.05", "--steps", "1", "--epochs", "1",
                            "--first-epochs", "1", "--seed", "0"))
L300_COMMON = ("--model", "lenet300", "--dataset", "mnist", "--method", "lc",
               "--reference", "{root}/l300/ref/reference.safetensors", *VAL, "--seed", "0")
#: issue 10's LeNet-300-100 cases: run folder under ROOT/l300 -> the compression options
L300_CASES = {
    "keep05": ("--prune", "0.05"),
    "k2": ("--quantize", "2"),
    "pq_k05_q4": ("--prune", "0.05", "--quantize", "4"),
    "pq_k03_q4": ("--prune", "0.03", "--quantize", "4"),
    "pq_k02_q2": ("--prune", "0.02", "--quantize", "2"),
}


def runs() -> list[Run]:
    """The LeNet-300-100 runs of issue 10 (each needs the reference ``l300/ref``, which
    :mod:`frontier` lists before them)."""
    return [Run(f"l300/{name}", (*L300_COMMON, *args), needs=(L300_REF.out,))
            for name, args in L300_CASES.items()]


def protocol_dirs(root: Path) -> list[Path]:
    """The folders of issue 10's cases under ROOT: the l300 runs, then the LeNet-5 runs at
    2000× of the frontier (whichever folder holds each seed's run)."""
    import frontier

    m = frontier.LENET5
    chosen = frontier.select(root, m).chosen
    l5 = [root / (m.select_out(chosen) if frontier._reused(root, m, 2000, s, chosen)
                  else m.frontier_out(2000, s)) for s in frontier.SEEDS]
    return [root / r.out for r in runs()] + l5

LENET300 = {"fc1.weight": (300, 784), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}
LENET5 = {"conv1.weight": (20, 1, 5, 5), "conv2.weight": (50, 20, 5, 5),
          "fc1.weight": (500, 800), "fc2.weight": (10, 500)}
#: per layer (nonzeros, bits) of joint2000_yang_hb_kdft_seed2 (benchmarks/RESULTS.md, issue 4)
JOINT2000_ALLOCATION = {"conv1.weight": (157, 4), "conv2.weight": (779, 2),
                        "fc1.weight": (1306, 3), "fc2.weight": (261, 3)}


def _init(shapes: dict[str, tuple[int, ...]], seed: int) -> tuple[dict, dict]:
    """Weights and biases like PyTorch's default init: U(±1/sqrt(fan_in)), float32."""
    rng = np.random.default_rng(seed)
    w, b = {}, {}
    for name, s in shapes.items():
        bound = 1 / math.sqrt(math.prod(s[1:]))
        w[name] = rng.uniform(-bound, bound, s).astype(np.float32)
        b[name.replace("weight", "bias")] = rng.uniform(-bound, bound, s[0]).astype(np.float32)
    return w, b


def _allocation_theta(seed: int) -> dict[str, P.Quantized]:
    """The 2000x run's allocation on random weights: per layer nnz entries at random
    positions, quantized with 2^bits levels (exact k-means, sparse mode)."""
    rng = np.random.default_rng(seed)
    w, _ = _init(LENET5, seed)
    theta = {}
    for name, (nnz, bits) in JOINT2000_ALLOCATION.items():
        x = w[name].reshape(-1).copy()
        keep = np.zeros(x.size, bool)
        keep[rng.choice(x.size, nnz, replace=False)] = True
        x[~keep] = 0
        theta[name] = P.AdaptiveQuantization(2**bits, sparse=True).compress(
            x.reshape(LENET5[name]))
    return theta


def random_cases() -> list[tuple[str, Any, Any, dict, dict | None]]:
    """(name, compression, Θ, dense tensors, report or None) from one C step on random
    weights."""
    w300, b300 = _init(LENET300, 0)
    w5, b5 = _init(LENET5, 1)
    budget = 32 * sum(math.prod(s) for s in LENET5.values()) / 2000
    cases = [
        ("lenet300 keep 5%", P.GlobalCardinality(keep=0.05), w300, b300),
        ("lenet300 K=2", P.PerTensor(P.AdaptiveQuantization(2)), w300, b300),
        ("lenet300 keep 5% + K=4", P.Chain(P.GlobalCardinality(keep=0.05),
                                          P.PerTensor(P.AdaptiveQuantization(4, sparse=True))),
         w300, b300),
        ("lenet5 joint 2000x (1 C step)", P.SparseQuantized(budget_bits=budget), w5, b5),
    ]
    out = [(name, c, c.compress(w), b, None) for name, c, w, b in cases]
    # no one compression produced these Θ (several codebook sizes): the nominal ratio from
    # the allocation itself, 32·Σnumel / Σ bits·nnz
    nominal = 32 * sum(math.prod(s) for s in LENET5.values()) / sum(
        nnz * bits for nnz, bits in JOINT2000_ALLOCATION.values())
    out.append(("lenet5 2000x run's allocation", None, _allocation_theta(2), b5,
                {"compression_ratio": nominal}))
    return out


def run_case(path: Path) -> tuple[str, Any, Any, dict, dict, bytes] | str:
    """(name, None, Θ, dense, report, file bytes) of a complete run directory, or a line
    saying why it is left out (pending, broken)."""
    s = run_state(path)
    if s.report is None:
        return f"{path}: {s.state}" + (f" ({s.why})" if s.why else "")
    data = (path / s.report.get("compressed_file", "model.cpz")).read_bytes()
    m = read_model(data)
    name = path.name if path.parent.name in ("l300", "frontier") else \
        f"{path.parent.name}/{path.name}"
    return name, None, m.theta, m.dense, s.report, data


# ------------------------------------------------------------------------------ measuring


def measure(name: str, compression: Any, theta: Any, dense: dict,
            report: dict | None = None, data: bytes | None = None) -> dict[str, Any]:
    """The figures of one case; `data` is the file as written (a run's model.cpz), else Θ
    is encoded here. The no-entropy column re-encodes Θ with the same metadata."""
    metadata = None
    if data is None:
        data = theta_to_bytes(theta, compression, dense=dense)
    else:
        metadata = read_model(data).header.get("metadata")
    plain = theta_to_bytes(theta, compression, dense=dense, metadata=metadata, entropy=False)
    info = inspect(data)
    acc = file_accounting(data, info)
    acc_plain = file_accounting(plain)
    nominal = acc["nominal_compression_ratio"]
    if nominal is None and report is not None:
        nominal = report.get("compression_ratio")
    numel = acc["compressed_numel"]
    tensors = []
    for r in info["tensors"]:
        if not r["compressed"]:
            continue
        pos, floor = r["bytes"]["positions"], r["position_floor_bytes"]
        tensors.append({"tensor": r["name"], "numel": r["numel"], "nnz": r["nnz"],
                        "bits": r["bits"], "encodings": r["encodings"], "bytes": r["bytes"],
                        "positions": pos, "position_floor": floor,
                        "lc_toolkit": r["lc_toolkit_bytes"], "floor": r["floor_bytes"],
                        "total": r["total"]})
    return {
        "case": name, "nominal_ratio": nominal, "numel": numel,
        "file_ratio": acc["file_compression_ratio"],
        "file_ratio_no_entropy": acc_plain["file_compression_ratio"],
        "tensor_bytes": acc["tensor_bytes"], "tensor_bytes_no_entropy": acc_plain["tensor_bytes"],
        "lc_toolkit_bytes": acc["lc_toolkit_bytes"],
        "lc_toolkit_ratio": 4 * numel / acc["lc_toolkit_bytes"],
        "floor_bytes": acc["floor_bytes"], "floor_ratio": 4 * numel / acc["floor_bytes"],
        "header_bytes": sum(t["bytes"]["header"] for t in tensors),
        "file_bytes": acc["file_bytes"], "model_bytes_ratio": acc["model_bytes_ratio"],
        "tensors": tensors, "accuracy": (report or {}).get("accuracy"),
        "accuracy_drop": (report or {}).get("accuracy_drop"),
        "target": target(report, nominal, acc["file_compression_ratio"]),
    }


def target(report: dict | None, nominal: float | None, file_ratio: float) -> str:
    """Issue 10's target for a run, met or not: LeNet-5 joint ADMM at 2000× nominal: file
    ratio ≥ 400×; LeNet-300-100 pruned and quantized: ≤ 2.2 % test error, file ratio ≥ 100×
    ("-" for the other cases)."""
    r = report or {}
    if r.get("model") == "lenet5" and r.get("method") == "admm" and nominal and \
            1990 <= nominal <= 2100:
        return f"file ≥ 400×: {'✓' if file_ratio >= 400 else '✗'}"
    if r.get("model") == "lenet300" and r.get("prune") and r.get("quantize"):
        ok = 1 - r["accuracy"] <= 0.022 + 1e-12 and file_ratio >= 100
        return f"error ≤ 2.2 % and file ≥ 100×: {'✓' if ok else '✗'}"
    return "-"


def _near_floor(t: dict[str, Any]) -> str:
    """Position bytes within 10 % of log2 C(n, nnz) (the target, for > 1,000 nonzeros)."""
    if t["nnz"] <= 1000 or not t["position_floor"]:
        return "-"
    return "✓" if t["positions"] <= 1.10 * t["position_floor"] else "✗"


def time_save_load(theta: Any, compression: Any, dense: dict, repeats: int) -> dict[str, float]:
    """Median seconds of save_theta + read (Δ included) of LeNet-5, numpy and torch paths."""
    from compressopt.storage import load_theta

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.cpz"
        save, load = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            save_theta(path, theta, compression, dense=dense)
            t1 = time.perf_counter()
            load_theta(path)
            save.append(t1 - t0)
            load.append(time.perf_counter() - t1)
        out["numpy_save_ms"] = 1e3 * statistics.median(save)
        out["numpy_load_ms"] = 1e3 * statistics.median(load)
        try:
            import torch

            from compressopt.dnn import LeNet5, load_compressed, save_compressed
        except ImportError:
            return out
        net = LeNet5((1, 28, 28), 10)
        tt = {n: type(t)(*(torch.from_numpy(np.asarray(v)) if hasattr(v, "shape") else v
                           for v in t)) for n, t in theta.items()}
        save, load = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            save_compressed(path, net, compression, tt)
            t1 = time.perf_counter()
            load_compressed(path).apply_to(net)
            save.append(t1 - t0)
            load.append(time.perf_counter() - t1)
        out["torch_save_ms"] = 1e3 * statistics.median(save)
        out["torch_load_apply_ms"] = 1e3 * statistics.median(load)
    return out


# ------------------------------------------------------------------------------ tables


def _f(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def print_tables(rows: list[dict], timing: dict[str, float] | None) -> None:
    print("| case | test acc. % | drop (points) | nominal ratio | file ratio | "
          "file ratio, no entropy | tensor bytes | LC-toolkit bytes (ratio) | ours <= LC | "
          "floor bytes (ratio) | header share | file bytes | model ratio | target |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ok = "yes" if r["tensor_bytes"] <= r["lc_toolkit_bytes"] else \
            f"no (+{r['tensor_bytes'] - r['lc_toolkit_bytes']:.0f} B)"
        print(f"| {r['case']} | {_pct(r['accuracy'])} | {_pct(r['accuracy_drop'])} | "
              f"{_f(r['nominal_ratio'])}× | {_f(r['file_ratio'])}× | "
              f"{_f(r['file_ratio_no_entropy'])}× | {r['tensor_bytes']:,} | "
              f"{_f(r['lc_toolkit_bytes'], 0)} ({_f(r['lc_toolkit_ratio'])}×) | {ok} | "
              f"{_f(r['floor_bytes'], 0)} ({_f(r['floor_ratio'])}×) | {r['header_bytes']:,} | "
              f"{r['file_bytes']:,} | {_f(r['model_bytes_ratio'])}× | {r['target']} |")
    print()
    print("| case | tensor | weights | nonzeros | bits | encodings | position bytes | "
          "log2 C(n, nnz) / 8 | ratio | within 10 % (nnz > 1,000) | tensor bytes | "
          "LC-toolkit | floor | tensor / floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for t in r["tensors"]:
            enc = ", ".join(f"{k} {v}" for k, v in t["encodings"].items() if v != "raw")
            floor = t["position_floor"]
            ratio = "-" if not floor or not t["positions"] else f"{t['positions'] / floor:.3f}"
            over = None if not t["floor"] else t["total"] / t["floor"]
            print(f"| {r['case']} | {t['tensor']} | {t['numel']:,} | {t['nnz']:,} | {t['bits']} "
                  f"| {enc or 'raw'} | {t['positions']:,} | {_f(floor)} | {ratio} | "
                  f"{_near_floor(t)} | {t['total']:,} | {_f(t['lc_toolkit'], 0)} | "
                  f"{_f(t['floor'], 0)} | {_f(over, 3)} |")
    if timing:
        print()
        print("| LeNet-5 file | median ms |")
        print("|---|---|")
        for k, v in timing.items():
            print(f"| {k} | {v:.1f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="*", type=Path, help="run directories (report.json + file)")
    ap.add_argument("--random", action="store_true",
                    help="one C step of the real schemes on random LeNet-shaped weights")
    ap.add_argument("--repeats", type=int, default=21, help="timing repeats (median)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    add_protocol_options(ap)
    args = ap.parse_args(argv)
    root = args.root.resolve()
    if args.print_commands:
        print_commands([L300_REF, *runs()], root, ready_only=args.ready,
                       skip_started=args.skip_started)
        return 0
    dirs = args.runs or ([] if args.random else protocol_dirs(root))
    cases, skipped = [], []
    for path in dirs:
        c = run_case(path)
        (skipped if isinstance(c, str) else cases).append(c)
    if args.random:
        cases += [(*c, None) for c in random_cases()]
    rows = [measure(*c) for c in cases]
    lenet5 = [c for c in cases if _shapes(c[2]) == LENET5]
    timing = time_save_load(lenet5[-1][2], lenet5[-1][1], lenet5[-1][3], args.repeats) \
        if lenet5 else None
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}\n")
    if rows:
        print_tables(rows, timing)
    if skipped:
        print("\nnot measured:\n" + "\n".join(f"- {line}" for line in skipped))
    if args.json:
        atomic_write(args.json, json.dumps({"rows": rows, "timing": timing}, indent=1).encode())
    return 0


def _shapes(theta: Any) -> dict[str, tuple[int, ...]]:
    """name -> shape of Δ(Θ) by tensor name (LeNet-5's shapes select the timing case)."""
    if not isinstance(theta, dict):
        return {}
    return {n: tuple(np.shape(v)) for n, v in expand(theta).items()}


if __name__ == "__main__":
    raise SystemExit(main())
