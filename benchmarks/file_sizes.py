"""Sizes of compressed-model files (issue 10, "Must show"), printed as Markdown tables.

For each case: the nominal ratio (the papers' 32·Σnumel / Σ bits·nnz), the measured file
ratio 4·Σnumel / tensor_bytes with and without the entropy stage, the same Θ counted as the
LC toolkit counts it (raw values or ceil(log2 K)-bit codes, raw codebooks, positions by the
cheapest fixed-width gap code; no header) — our tensor bytes must not exceed it — the floor
(positions at log2 C(n, nnz), codes at their nominal bits, raw codebooks, no header), and per
tensor the position bytes against log2 C(n, nnz). Then the time of save + load of LeNet-5
(median of repeats, one process).

Cases:

* ``RUN_DIR ...``: finished runs of ``compressopt compress`` (``report.json`` naming its
  ``compressed_file``, default ``model.cpz``); the file is read, and re-encoded without the
  entropy stage for that column.
* ``--random``: Θ from one C step of the real schemes on random weights of the LeNet-300-100
  and LeNet-5 shapes (PyTorch's default init, U(±1/sqrt(fan_in))): pruning to 5 %, a 2-entry
  codebook per layer, pruning to 5 % then 4 levels, the joint set at 2000× (one C step of
  Yang et al.'s projection), and the per-layer allocation of our LeNet-5 2000× run
  (nonzeros and bits of joint2000_yang_hb_kdft_seed2) on random supports and values.
  RANDOM WEIGHTS: the sizes of trained models differ (supports are not uniform at random).

Usage::

    python benchmarks/file_sizes.py [RUN_DIR ...] [--random] [--repeats 21] [--json out.json]
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

from compressopt import projections as P
from compressopt.storage import file_accounting, inspect, read_model, save_theta, theta_to_bytes

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


def random_cases() -> list[tuple[str, Any, Any, dict]]:
    """(name, compression, Θ, dense tensors) from one C step on random weights."""
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
    out = [(name, c, c.compress(w), b) for name, c, w, b in cases]
    alloc = P.PerTensor(P.AdaptiveQuantization(2, sparse=True))  # decompress only
    out.append(("lenet5 2000x run's allocation", alloc, _allocation_theta(2), b5))
    return out


def run_case(path: Path) -> tuple[str, Any, Any, dict, dict]:
    """(name, None, Θ, dense, report) of a finished run directory."""
    report = json.loads((path / "report.json").read_text())
    m = read_model(path / report.get("compressed_file", "model.cpz"))
    return path.name, None, m.theta, m.dense, report


# ------------------------------------------------------------------------------ measuring


def measure(name: str, compression: Any, theta: Any, dense: dict,
            report: dict | None = None) -> dict[str, Any]:
    data = theta_to_bytes(theta, compression, dense=dense)
    plain = theta_to_bytes(theta, compression, dense=dense, entropy=False)
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
        "tensors": tensors,
    }


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


def print_tables(rows: list[dict], timing: dict[str, float] | None) -> None:
    print("| case | nominal ratio | file ratio | file ratio, no entropy | tensor bytes | "
          "LC-toolkit bytes (ratio) | ours <= LC | floor bytes (ratio) | header share | "
          "file bytes | model ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ok = "yes" if r["tensor_bytes"] <= r["lc_toolkit_bytes"] else \
            f"no (+{r['tensor_bytes'] - r['lc_toolkit_bytes']:.0f} B)"
        print(f"| {r['case']} | {_f(r['nominal_ratio'])}× | {_f(r['file_ratio'])}× | "
              f"{_f(r['file_ratio_no_entropy'])}× | {r['tensor_bytes']:,} | "
              f"{_f(r['lc_toolkit_bytes'], 0)} ({_f(r['lc_toolkit_ratio'])}×) | {ok} | "
              f"{_f(r['floor_bytes'], 0)} ({_f(r['floor_ratio'])}×) | {r['header_bytes']:,} | "
              f"{r['file_bytes']:,} | {_f(r['model_bytes_ratio'])}× |")
    print()
    print("| case | tensor | weights | nonzeros | bits | encodings | position bytes | "
          "log2 C(n, nnz) / 8 | ratio | tensor bytes | LC-toolkit | floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for t in r["tensors"]:
            enc = ", ".join(f"{k} {v}" for k, v in t["encodings"].items() if v != "raw")
            floor = t["position_floor"]
            ratio = "-" if not floor or not t["positions"] else f"{t['positions'] / floor:.3f}"
            print(f"| {r['case']} | {t['tensor']} | {t['numel']:,} | {t['nnz']:,} | {t['bits']} "
                  f"| {enc or 'raw'} | {t['positions']:,} | {_f(floor)} | {ratio} | "
                  f"{t['total']:,} | {_f(t['lc_toolkit'], 0)} | {_f(t['floor'], 0)} |")
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
    args = ap.parse_args(argv)
    if not args.runs and not args.random:
        ap.error("give run directories and/or --random")
    cases = [run_case(p) for p in args.runs]
    if args.random:
        cases += [(*c, None) for c in random_cases()]
    rows = [measure(*c) for c in cases]
    lenet5 = [c for c in cases if set(JOINT2000_ALLOCATION) <= set(_names(c[2]))]
    timing = time_save_load(lenet5[-1][2], lenet5[-1][1], lenet5[-1][3], args.repeats) \
        if lenet5 else None
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}\n")
    print_tables(rows, timing)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "timing": timing}, indent=1))
    return 0


def _names(theta: Any) -> list[str]:
    return list(theta) if isinstance(theta, dict) else []


if __name__ == "__main__":
    raise SystemExit(main())
