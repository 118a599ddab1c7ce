"""Benchmarks of the projections (issues 3 and 13), printed as Markdown tables.

1. Knapsack projection (Yang et al. 2020, eq. 8) on 1e6 and 1e7 float32 weights in 10
   tensors, against one selection of the same (concatenated) weights (``np.partition``;
   ``torch.kthvalue`` with ``--device cpu``) and one sort: medians of interleaved rounds in
   one process, of the wall time and of the process CPU time (on a machine shared with
   other jobs, the CPU time is the steadier). Target (issue 13): <= 2 x the selection.
   The global ℓ0 projection (keep 20 %) against the same selection.
2. Bit allocation (MCKP, eq. 10) with B = 1..8 on LeNet-5's four weight tensors: end-to-end
   time (target <= 1 s on 2 CPU cores), and the fast k-means errors E_j against the exact
   ones (kmeans1d; target: within 1%), and the greedy against the CP-SAT optimum of the exact
   error table. Without ``--weights`` the weights are a stand-in: PyTorch's default init
   (Kaiming-uniform, a = sqrt(5)) of the Caffe LeNet-5 shapes, dense and pruned to Han et
   al.'s (2016) LeNet-5 densities.
3. Exact bit allocation at scale (issue 13): ``allocate_bits`` on random networks of 200 and
   1,000 tensors (8 widths), and ``mckp_solve`` on synthetic tables of the same sizes: time,
   which solver decided (``path``), and the gap to CP-SAT on the same table (target 0, in
   <= 1 s). Then the exact verifiers' limits, and the gap the greedies leave.
4. The uniform m-bit grid: alternating closed forms against the exact breakpoint sweep.

Usage::

    python benchmarks/projections.py [--device numpy|cpu|cuda] [--repeats 7] [--seeds 5]
        [--only-speed | --only-scale] [--skip-exact] [--weights lenet5.npz] [--json out.json]
        [--threads N]

``--device cpu``/``cuda`` runs the projections on torch tensors on that device (the
references are ``torch.kthvalue`` and ``torch.sort`` there); ``numpy`` (default) on numpy
arrays. The exact solvers always run on the host.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compressopt.projections import (
    allocate_bits,
    kmeans1d_sweep,
    mckp_greedy,
    mckp_solve,
    project_global_cardinality,
    project_knapsack,
    project_uniform,
)
from compressopt.verify import knapsack_ilp, mckp_ilp

#: Caffe LeNet-5 weight shapes (430,500 weights; 431,080 with the 580 biases)
LENET5 = {"conv1": (20, 1, 5, 5), "conv2": (50, 20, 5, 5), "fc1": (500, 800), "fc2": (10, 500)}
#: fraction of weights Han, Mao & Dally (ICLR 2016, Table 2) keep in LeNet-5
HAN_KEEP = {"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19}
LIMIT = 10.0  # seconds allowed to an exact verifier


# ------------------------------------------------------------------------------ plumbing


class Backend:
    """numpy, or torch on a device: conversion, synchronization and the reference sort."""

    def __init__(self, device: str, threads: int | None = None) -> None:
        self.device = device
        if device != "numpy":
            import torch

            self.torch = torch
            if threads:
                torch.set_num_threads(threads)
            if device == "cuda" and not torch.cuda.is_available():
                raise SystemExit("--device cuda: no CUDA device is available")

    def put(self, a: np.ndarray):
        if self.device == "numpy":
            return a
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def sort(self, a) -> None:
        if self.device == "numpy":
            np.sort(a)
        else:
            self.torch.sort(a)

    def timed(self, f) -> float:
        self.sync()
        t = time.perf_counter()
        f()
        self.sync()
        return time.perf_counter() - t


def table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


# ------------------------------------------------------------------------------ 1. knapsack


def _interleaved(fs: dict, repeats: int, timed) -> dict:
    """Medians over `repeats` rounds, each running every function once (interleaved: all see
    the same load), of the wall and the process CPU seconds, and of the per-round ratios to
    the first function."""
    wall = {k: [] for k in fs}
    cpu = {k: [] for k in fs}
    for f in fs.values():  # warm-up
        f()
    for _ in range(repeats):
        for k, f in fs.items():
            c = time.process_time()
            wall[k].append(timed(f))
            cpu[k].append(time.process_time() - c)
    ref = next(iter(fs))
    out = {}
    for k in fs:
        out[k] = {"wall_s": statistics.median(wall[k]), "cpu_s": statistics.median(cpu[k]),
                  "ratio_wall": statistics.median(a / b for a, b in zip(wall[k], wall[ref],
                                                                      strict=True)),
                  "ratio_cpu": statistics.median(a / b for a, b in zip(cpu[k], cpu[ref],
                                                                     strict=True))}
    return out


def knapsack_instance_f32(n: int) -> tuple[dict[str, np.ndarray], dict[str, int], float]:
    """n float32 Gaussian weights in 10 tensors, 1..8 bits, budget 30 % of all bits."""
    rng = np.random.default_rng(n)
    sizes = rng.multinomial(n, np.ones(10) / 10)
    host = {f"t{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(sizes)}
    bits = {k: int(b) for k, b in zip(host, rng.integers(1, 9, 10), strict=True)}
    return host, bits, 0.3 * sum(bits[k] * v.size for k, v in host.items())


def knapsack_vs_selection(be: Backend, n: int, repeats: int) -> dict:
    """The knapsack projection against one selection (np.partition / torch.kthvalue) and one
    sort of the same weights (concatenated), interleaved in one process."""
    host, bits, budget = knapsack_instance_f32(n)
    w = {k: be.put(v) for k, v in host.items()}
    flat = be.put(np.concatenate(list(host.values())))
    if be.device == "numpy":
        fs = {"partition": lambda: np.partition(flat, n // 2), "sort": lambda: np.sort(flat)}
    else:
        fs = {"kthvalue": lambda: flat.kthvalue(n // 2), "sort": lambda: be.torch.sort(flat)}
    fs["knapsack"] = lambda: project_knapsack(w, bits, budget)
    res = _interleaved(fs, repeats, be.timed)
    r = project_knapsack(w, bits, budget)
    assert float(r.budget_used) <= budget and float(r.objective) <= float(r.lp_bound)
    return {"n": n, **{f"{k}_{m}": v[m] for k, v in res.items() for m in v},
            "rel_lp_gap": float(r.lp_bound - r.objective) / float(r.objective)}


def cardinality_vs_selection(be: Backend, n: int, repeats: int) -> dict:
    """The global ℓ0 projection (keep 20 %) against one selection of the same weights."""
    host, _, _ = knapsack_instance_f32(n)
    w = {k: be.put(v) for k, v in host.items()}
    flat = be.put(np.concatenate(list(host.values())))
    sel = (lambda: np.partition(flat, n // 2)) if be.device == "numpy" else (
        lambda: flat.kthvalue(n // 2))
    res = _interleaved({"selection": sel,
                        "global_cardinality": lambda: project_global_cardinality(w, n // 5)},
                       repeats, be.timed)
    return {"n": n, **{f"{k}_{m}": v[m] for k, v in res.items() for m in v}}


# ------------------------------------------------------------------------------ 2. MCKP


def lenet5(weights: str | None, pruned: bool) -> dict[str, np.ndarray]:
    if weights:
        with np.load(weights) as f:
            w = {k: np.asarray(f[k], dtype=np.float32) for k in f.files}
    else:
        rng = np.random.default_rng(5)
        w = {}
        for name, shape in LENET5.items():
            bound = 1.0 / math.sqrt(math.prod(shape[1:]))  # kaiming_uniform_(a=sqrt(5))
            w[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
    if pruned:
        for name, v in w.items():
            keep = HAN_KEEP.get(name, 0.1)
            t = np.quantile(np.abs(v), 1 - keep)
            w[name] = np.where(np.abs(v) > t, v, 0).astype(np.float32)
    return w


def mckp_lenet(be: Backend, weights: str | None, pruned: bool, repeats: int,
               exact: bool) -> dict:
    host = lenet5(weights, pruned)
    w = {k: be.put(v) for k, v in host.items()}
    nnz = sum(int(np.count_nonzero(v)) for v in host.values())
    budget = 3.0 * nnz  # 3 bits per nonzero on average
    cands = range(1, 9)
    allocate_bits(w, budget, cands)  # warm-up
    times = [be.timed(lambda: allocate_bits(w, budget, cands)) for _ in range(repeats)]
    r = allocate_bits(w, budget, cands, table="full")  # the whole table, for the checks
    out = {"variant": "pruned (Han et al. densities)" if pruned else "dense", "nnz": nnz,
           "weights": sum(v.size for v in host.values()), "time_s": statistics.median(times),
           "bits": r.bits, "error": r.error, "lp_bound": r.lp_bound, "integral": r.integral,
           "budget_used": r.budget_used, "budget": budget}
    if exact:
        ks = [2**j for j in cands]
        excess, exact_tab = {}, {}
        for name, v in host.items():
            e = np.asarray(kmeans1d_sweep(v.astype(np.float64), ks, sparse=True,
                                          method="exact").sse)
            exact_tab[name] = e
            excess[name] = (r.errors[name] / np.where(e > 0, e, 1) - 1) * (e > 0)
        out["kmeans_excess"] = {k: v.tolist() for k, v in excess.items()}
        out["kmeans_excess_max"] = float(max(v.max() for v in excess.values()))
        names = list(host)
        nz = {k: int(np.count_nonzero(v)) for k, v in host.items()}
        ilp = mckp_ilp([-exact_tab[k] for k in names], [[j * nz[k] for j in cands] for k in names],
                       math.floor(budget))
        out["optimum_exact_table"] = -ilp.objective
        out["optimal_bits"] = {k: c + 1 for k, c in zip(names, ilp.selection, strict=True)}
        out["greedy_error_exact_table"] = float(sum(exact_tab[k][r.bits[k] - 1] for k in names))
    return out


# ------------------------------------------------------------------------------ 3. verifiers


def knapsack_instance(n: int, seed: int):
    rng = np.random.default_rng(seed)
    sizes = rng.multinomial(n, np.ones(10) / 10)
    bits = rng.integers(1, 9, 10)
    w = {f"t{i}": rng.standard_normal(s) for i, s in enumerate(sizes)}
    b = {f"t{i}": int(bits[i]) for i in range(10)}
    p = np.concatenate(list(w.values())) ** 2
    wt = np.concatenate([np.full(s, bits[i]) for i, s in enumerate(sizes)])
    return w, b, p, wt, int(0.3 * wt.sum())


def mckp_instance(groups: int, seed: int):
    """Bit-allocation-like: tensor g has nnz_g weights; E_gj ~ nnz σ² 4^-j (k-means error
    decays about 6 dB per bit) with noise; weight j nnz_g."""
    rng = np.random.default_rng(seed)
    nnz = rng.integers(100, 20000, groups)
    sigma2 = rng.uniform(0.1, 2.0, groups)
    prof = [-nz * s2 * 4.0 ** (-np.arange(1, 9)) * np.exp(rng.normal(0, 0.3, 8)).cumprod() ** 0.3
            for nz, s2 in zip(nnz, sigma2, strict=True)]
    wts = [np.arange(1, 9) * nz for nz in nnz]
    return prof, wts, int(3.5 * nnz.sum())


def verifier_scaling() -> dict:
    knap, mckp = [], []
    for n in (1_000, 10_000, 30_000, 50_000, 100_000, 300_000):
        _, _, p, wt, cap = knapsack_instance(n, 1)
        t = time.perf_counter()
        r = knapsack_ilp(p, wt, cap, time_limit=LIMIT)
        el = time.perf_counter() - t
        knap.append({"n": n, "time_s": el, "optimal": r.optimal and el <= LIMIT})
        if not knap[-1]["optimal"]:
            break
    for g in (10, 100, 300, 1000, 3000):
        prof, wts, cap = mckp_instance(g, 2)
        hint = mckp_greedy(prof, wts, cap).choice
        t = time.perf_counter()
        try:
            r = mckp_ilp(prof, wts, cap, time_limit=LIMIT, hint=hint)
            ok = r.optimal
        except RuntimeError:
            ok = False
        el = time.perf_counter() - t
        mckp.append({"groups": g, "items": 8 * g, "time_s": el, "optimal": ok and el <= LIMIT})
        if not mckp[-1]["optimal"]:
            break
    return {"knapsack": knap, "mckp": mckp}


def greedy_gaps() -> dict:
    knap, mckp = [], []
    for n in (100, 1_000, 10_000):
        for seed in range(3):
            w, b, p, wt, cap = knapsack_instance(n, 10 + seed)
            r = project_knapsack(w, b, cap)
            ilp = knapsack_ilp(p, wt, cap, time_limit=LIMIT)
            knap.append({"n": n, "seed": seed, "greedy": float(r.objective),
                         "optimum": ilp.objective, "lp_bound": float(r.lp_bound),
                         "optimal": ilp.optimal})
    for g in (4, 20, 100, 500):
        for seed in range(3):
            prof, wts, cap = mckp_instance(g, 20 + seed)
            r = mckp_greedy(prof, wts, cap)
            ilp = mckp_ilp(prof, wts, cap, time_limit=LIMIT, hint=r.choice)
            mckp.append({"groups": g, "seed": seed, "greedy": -r.profit, "optimum": -ilp.objective,
                         "lp_bound": -r.lp_bound, "optimal": ilp.optimal})
    return {"knapsack": knap, "mckp": mckp}


def network(tensors: int, seed: int) -> dict[str, np.ndarray]:
    """A random pruned network: `tensors` float32 tensors of 500..20,000 entries (log-uniform),
    10..60 % nonzeros, scales log-normal."""
    rng = np.random.default_rng(seed)
    w = {}
    for i in range(tensors):
        n = int(np.exp(rng.uniform(np.log(500), np.log(20_000))))
        x = rng.standard_normal(n) * np.exp(rng.normal(0, 1))
        w[f"t{i}"] = np.where(rng.random(n) < rng.uniform(0.1, 0.6), x, 0).astype(np.float32)
    return w


def _table_cpu(w: dict[str, np.ndarray], r) -> dict[str, float]:
    """CPU seconds of the error-table entries that the default call computed (the
    non-NaN ones of ``r.errors``), one tensor at a time (``_Sweep.compute``, the path before
    issue 13's batching) and batched by codebook size (``SweepBatch``), interleaved, best of
    two each; the sort of each tensor included in both."""
    from compressopt.projections._kmeans_batch import SweepBatch
    from compressopt.projections.quantization import _Sweep

    needs = [[2**b for b, e in zip(r.candidates, r.errors[n], strict=True) if not np.isnan(e)]
             for n in w]
    out: dict[str, list[float]] = {"per_tensor": [], "batched": []}
    for _ in range(2):
        c = time.process_time()
        for x, ks in zip(w.values(), needs, strict=True):
            _Sweep(x, sparse=True, method="fast", iters=30, zero_level=False).compute(ks)
        out["per_tensor"].append(time.process_time() - c)
        c = time.process_time()
        SweepBatch([_Sweep(x, sparse=True, method="fast", iters=30, zero_level=False)
                    for x in w.values()]).compute(needs)
        out["batched"].append(time.process_time() - c)
    return {k: min(v) for k, v in out.items()}


def mckp_at_scale(sizes: tuple[int, ...], seeds: int) -> list[dict]:
    """allocate_bits (8 widths, budget 3.5 bits per nonzero) on random networks: time of the
    default call (``table="needed"``: only the entries of the error table the exact MCKP
    needs) and of the full table, the entries computed, the time of the MCKP on the full
    table, which solver decided, and the gap of the default call's error to CP-SAT's optimum
    of the full table; and mckp_solve alone on synthetic tables (:func:`mckp_instance`)."""
    rows = []
    for tensors in sizes:
        for seed in range(seeds):
            w = network(tensors, seed)
            nnz = {k: int(np.count_nonzero(v)) for k, v in w.items()}
            budget = 3.5 * sum(nnz.values())
            t, c = time.perf_counter(), time.process_time()
            r = allocate_bits(w, budget)
            total, cpu = time.perf_counter() - t, time.process_time() - c
            t, c = time.perf_counter(), time.process_time()
            full = allocate_bits(w, budget, table="full")
            total_full, cpu_full = time.perf_counter() - t, time.process_time() - c
            prof = [-full.errors[k] for k in w]
            wts = [[j * nnz[k] for j in r.candidates] for k in w]
            t = time.perf_counter()
            s = mckp_solve(prof, wts, budget)
            t_mckp = time.perf_counter() - t
            ilp = mckp_ilp(prof, wts, math.floor(budget), hint=s.choice, time_limit=120)
            table_cpu = _table_cpu(w, r)
            rows.append({"kind": "allocate_bits", "tensors": tensors, "seed": seed,
                         "table_cpu_s": table_cpu,
                         "total_s": total, "full_s": total_full, "mckp_s": t_mckp,
                         "cpu_s": cpu, "full_cpu_s": cpu_full,
                         "path": r.path, "optimal": r.optimal, "cp_sat_optimal": ilp.optimal,
                         "computed": sum(int(np.count_nonzero(~np.isnan(e)))
                                         for e in r.errors.values()) / (8 * tensors),
                         "gap": -ilp.objective - r.error, "rounding": ilp.rounding})
            prof, wts, cap = mckp_instance(tensors, 1000 + seed)
            t = time.perf_counter()
            s = mckp_solve(prof, wts, cap)
            t_mckp = time.perf_counter() - t
            ilp = mckp_ilp(prof, wts, cap, hint=s.choice, time_limit=120)
            rows.append({"kind": "synthetic table", "tensors": tensors, "seed": seed,
                         "total_s": t_mckp, "full_s": t_mckp, "computed": 1.0,
                         "cpu_s": t_mckp, "full_cpu_s": t_mckp,
                         "mckp_s": t_mckp, "path": s.path,
                         "optimal": s.optimal, "cp_sat_optimal": ilp.optimal,
                         "gap": ilp.objective - s.profit, "rounding": ilp.rounding})
    return rows


# ------------------------------------------------------------------------------ 4. uniform


def uniform_grid(be: Backend, weights: str | None) -> list[dict]:
    """fc1 (400,000 weights) on grids whose n·L exceeds 2^20, where ``method="auto"``
    alternates from the weighted sketch's exact scale, against the exact sweep."""
    from compressopt.projections.codebooks import EXACT_UNIFORM_LIMIT

    w = lenet5(weights, False)["fc1"].reshape(-1).astype(np.float64)
    rows = []
    x = be.put(w)
    for bits in (4, 5, 6):
        ta = be.timed(lambda b=bits: project_uniform(x, bits=b, method="alternating"))
        te = be.timed(lambda b=bits: project_uniform(x, bits=b, method="exact"))
        a = project_uniform(x, bits=bits, method="alternating")
        e = project_uniform(x, bits=bits, method="exact")

        def err(t):
            return float(np.sum((w - float(t.scale) * np.asarray(t.codes.tolist())) ** 2))

        rows.append({"bits": bits, "breakpoints": w.size * 2 ** (bits - 1),
                     "sketch": w.size * 2 ** (bits - 1) > EXACT_UNIFORM_LIMIT,
                     "alternating_s": ta, "exact_s": te, "rel_gap": err(a) / err(e) - 1})
    return rows


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="numpy", help="numpy (default), cpu or cuda")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip-exact", action="store_true",
                    help="skip the exact k-means tables and the verifier sections")
    ap.add_argument("--weights", help=".npz of LeNet-5 weight tensors (default: a stand-in)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--only-speed", action="store_true",
                    help="only the knapsack and cardinality timings")
    ap.add_argument("--only-scale", action="store_true",
                    help="only the exact bit allocation at 200 and 1,000 tensors")
    ap.add_argument("--seeds", type=int, default=5,
                    help="random instances per size of the MCKP scale section")
    ap.add_argument("--threads", type=int,
                    help="torch intra-op threads (1 avoids OpenMP oversubscription on a busy "
                    "machine)")
    args = ap.parse_args(argv)
    be = Backend(args.device, args.threads)
    res: dict = {"device": args.device, "machine": platform.machine(),
                 "cpus": os.cpu_count(), "python": platform.python_version()}
    print(f"# Projections benchmark: device={args.device}, {os.cpu_count()} CPUs\n")

    if args.only_scale:
        mckp_scale_section(res, args.seeds)
        return _write(res, args.json)
    ref = "partition" if be.device == "numpy" else "kthvalue"
    res["knapsack"] = [knapsack_vs_selection(be, n, args.repeats) for n in (10**6, 10**7)]
    print(f"## Knapsack projection vs one {ref} and one sort (float32, 10 tensors; medians of "
          f"{args.repeats} interleaved rounds, wall and process CPU time)\n")
    print(table(["weights", f"{ref} (ms)", "sort (ms)", "knapsack (ms)",
                 f"knapsack / {ref} (wall)", f"knapsack / {ref} (CPU)", "knapsack / sort (wall)",
                 "LP gap / objective"],
                [[r["n"], 1e3 * r[f"{ref}_wall_s"], 1e3 * r["sort_wall_s"],
                  1e3 * r["knapsack_wall_s"], r["knapsack_ratio_wall"], r["knapsack_ratio_cpu"],
                  r["knapsack_wall_s"] / r["sort_wall_s"], r["rel_lp_gap"]]
                 for r in res["knapsack"]]), "\n")
    res["cardinality"] = [cardinality_vs_selection(be, n, args.repeats) for n in (10**6, 10**7)]
    print(f"## Global ℓ0 projection (keep 20 %) vs one {ref} (same weights; medians)\n")
    print(table(["weights", "selection (ms)", "global cardinality (ms)", "ratio (wall)",
                 "ratio (CPU)"],
                [[r["n"], 1e3 * r["selection_wall_s"], 1e3 * r["global_cardinality_wall_s"],
                  r["global_cardinality_ratio_wall"], r["global_cardinality_ratio_cpu"]]
                 for r in res["cardinality"]]), "\n")
    if args.only_speed:
        return _write(res, args.json)

    res["mckp"] = [mckp_lenet(be, args.weights, p, args.repeats, not args.skip_exact)
                   for p in (False, True)]
    print("## Bit allocation (MCKP, B = 1..8) on LeNet-5, budget 3 bits/nonzero\n")
    print(table(["weights", "nonzeros", "time (s, median)", "bits", "error", "LP bound",
                 "max k-means excess", "optimum (exact E)", "greedy (exact E)"],
                [[r["variant"], r["nnz"], r["time_s"], r["bits"], r["error"], r["lp_bound"],
                  r.get("kmeans_excess_max", "-"), r.get("optimum_exact_table", "-"),
                  r.get("greedy_error_exact_table", "-")] for r in res["mckp"]]), "\n")
    if not args.skip_exact:
        for r in res["mckp"]:
            print(f"k-means excess (fast/exact - 1) per tensor and bit width, {r['variant']}:\n")
            print(table(["tensor"] + [f"{j} bits" for j in range(1, 9)],
                        [[k, *[float(e) for e in v]] for k, v in r["kmeans_excess"].items()]),
                  "\n")

    res["uniform"] = uniform_grid(be, args.weights)
    print("## Uniform m-bit grid on fc1 (400,000 weights): alternating vs exact sweep\n")
    print(table(["bits", "n L", "sketch init", "alternating (s)", "exact (s)", "relative gap"],
                [[r["bits"], r["breakpoints"], r["sketch"], r["alternating_s"], r["exact_s"],
                  r["rel_gap"]] for r in res["uniform"]]), "\n")

    if not args.skip_exact:
        mckp_scale_section(res, args.seeds)
        res["scaling"] = verifier_scaling()
        print(f"## Exact verifiers: instances solved to optimality within {LIMIT:g} s\n")
        print(table(["knapsack items", "time (s)", "optimal"],
                    [[r["n"], r["time_s"], r["optimal"]] for r in res["scaling"]["knapsack"]]))
        print()
        print(table(["MCKP groups", "items", "time (s)", "optimal"],
                    [[r["groups"], r["items"], r["time_s"], r["optimal"]]
                     for r in res["scaling"]["mckp"]]), "\n")
        res["gaps"] = greedy_gaps()
        print("## Greedy vs optimum on random instances\n")
        print(table(["knapsack n", "seed", "greedy (kept W²)", "optimum", "LP bound",
                     "(opt - greedy)/opt"],
                    [[r["n"], r["seed"], r["greedy"], r["optimum"], r["lp_bound"],
                      (r["optimum"] - r["greedy"]) / r["optimum"]]
                     for r in res["gaps"]["knapsack"]]))
        print()
        print(table(["MCKP groups", "seed", "greedy (error)", "optimum", "LP bound",
                     "(greedy - opt)/opt"],
                    [[r["groups"], r["seed"], r["greedy"], r["optimum"], r["lp_bound"],
                      (r["greedy"] - r["optimum"]) / r["optimum"]]
                     for r in res["gaps"]["mckp"]]), "\n")
    return _write(res, args.json)


def _write(res: dict, path: str | None) -> dict:
    if path:
        Path(path).write_text(json.dumps(res, indent=1, default=str))
    return res


def mckp_scale_section(res: dict, seeds: int) -> None:
    res["mckp_scale"] = mckp_at_scale((200, 1000), seeds)
    print("## Exact bit allocation at scale (8 widths, 3.5 bits per nonzero): time, solver, "
          "gap to CP-SAT\n")
    rows = []
    for kind in ("allocate_bits", "synthetic table"):
        for t in (200, 1000):
            rs = [r for r in res["mckp_scale"] if r["kind"] == kind and r["tensors"] == t]
            paths = {p: sum(r["path"] == p for r in rs) for p in ("lp", "pareto", "milp",
                                                                 "greedy")}
            rows.append([kind, t, len(rs), statistics.median(r["total_s"] for r in rs),
                         max(r["total_s"] for r in rs),
                         statistics.median(r["cpu_s"] for r in rs),
                         statistics.median(r["full_s"] for r in rs),
                         statistics.median(r["full_cpu_s"] for r in rs),
                         statistics.median(r["computed"] for r in rs),
                         statistics.median(r["mckp_s"] for r in rs),
                         max(r["mckp_s"] for r in rs),
                         " ".join(f"{p} {c}" for p, c in paths.items() if c),
                         max(abs(r["gap"]) for r in rs), max(r["rounding"] for r in rs),
                         all(r["cp_sat_optimal"] for r in rs),
                         *((statistics.median(r["table_cpu_s"]["per_tensor"] for r in rs),
                            statistics.median(r["table_cpu_s"]["batched"] for r in rs),
                            statistics.median(r["table_cpu_s"]["per_tensor"]
                                              / r["table_cpu_s"]["batched"] for r in rs))
                           if kind == "allocate_bits" else ("—", "—", "—"))])
    print(table(["instances", "tensors", "runs", "total (s, median)", "total (s, max)",
                 "total CPU (s, median)", "full table (s, median)",
                 "full table CPU (s, median)", "entries computed (median)", "MCKP (s, median)",
                 "MCKP (s, max)", "paths", "max |gap| to CP-SAT",
                 "CP-SAT rounding", "CP-SAT optimal", "table CPU per tensor (s, median)",
                 "table CPU batched (s, median)", "per tensor / batched (median)"], rows),
          "\n")


if __name__ == "__main__":
    main()
