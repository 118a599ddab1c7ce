"""ADMM with its default settings on small convex problems, against cvxpy (issue 13.4).

Least squares ``min ½||Aw - b||²`` over the simplex ``{w >= 0, Σw = 1}``, the ℓ1 ball
``{||w||_1 <= 1}`` and the box ``[-0.5, 0.5]^n``, with ``A`` 60 × 30: ``A = √60 U diag(s) Vᵀ``
(U, V random orthonormal, the singular values s log-spaced from 1 to 1/κ, κ the condition
number) or plain Gaussian, ``b = A x + 0.1 noise`` (x Gaussian; Gaussian ``b`` for the plain
case), started from ``w = 0`` as a new user would: ``ADMM().run(w0, LeastSquares(A, b),
Simplex())``. The reference optimum is cvxpy's (Clarabel, tolerances 1e-12); the gap is
``|L(z) - L*| / |L*|`` at the returned feasible point z = Δ(Θ).

Columns: the default ADMM (adaptive ρ, over-relaxation α = 1.8, ε_abs = 1e-7,
ε_rel = 3e-6, maxiter 100) against the defaults before issue 13 (fixed ρ = 1, no
relaxation, ε_abs = 1e-6, ε_rel = 1e-4), once at their maxiter of 100 and once given 5,000
iterations. Target: every problem within 1e-8 in <= 100 iterations with the defaults.

Usage::

    python benchmarks/small_convex.py [--seeds 5] [--kappas 1 10 100 1000 10000] [--json out]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compressopt.projections import Box, L1Ball, Simplex
from compressopt.solvers import ADMM, LeastSquares

#: the settings of ADMM() before issue 13 (what ``ADMM()`` meant then)
BEFORE = {"adaptive": False, "relaxation": 1.0, "eps_abs": 1e-6, "eps_rel": 1e-4}


def problem(seed: int, kappa: float | str, m: int = 60, n: int = 30
            ) -> tuple[np.ndarray, np.ndarray]:
    """The design and targets of one instance (module docstring)."""
    if kappa == "gauss":
        rng = np.random.default_rng(100 + seed)
        return rng.standard_normal((m, n)), 3 * rng.standard_normal(m)
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((m, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = np.logspace(0, -math.log10(float(kappa)), n)
    a = (u * s) @ v.T * math.sqrt(m)
    return a, a @ rng.standard_normal(n) + 0.1 * rng.standard_normal(m)


def sets() -> dict:
    import cvxpy as cp

    return {
        "simplex": (Simplex(1.0), lambda x: [x >= 0, cp.sum(x) == 1]),
        "l1 ball": (L1Ball(1.0), lambda x: [cp.norm1(x) <= 1]),
        "box": (Box(-0.5, 0.5), lambda x: [x >= -0.5, x <= 0.5]),
    }


def optimum(a: np.ndarray, b: np.ndarray, constraints) -> float:
    """cvxpy's optimum (Clarabel at 1e-12; tighter tolerances make it report 'inaccurate')."""
    import cvxpy as cp

    x = cp.Variable(a.shape[1])
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(a @ x - b)), constraints(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an inaccurate reference is an error here
        prob.solve(solver=cp.CLARABEL, tol_gap_rel=1e-12, tol_gap_abs=1e-12, tol_feas=1e-12,
                   max_iter=500)
    if prob.status != "optimal":
        raise RuntimeError(f"cvxpy: {prob.status}")
    return float(prob.value)


def solve(solver: ADMM, a: np.ndarray, b: np.ndarray, scheme, fstar: float) -> dict:
    ls = LeastSquares(a, b)
    res = solver.run({"w": np.zeros(a.shape[1])}, ls, scheme)
    return {"nit": res.nit, "converged": res.converged,
            "gap": abs(ls.value(res.x) - fstar) / abs(fstar)}


def table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.2g}" if isinstance(v, float) else str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(out + ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--kappas", nargs="+", default=["1", "10", "100", "1000", "gauss"])
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    solvers = {"default": ADMM(), "before": ADMM(**BEFORE),
               "before, 5000 it": ADMM(maxiter=5000, **BEFORE)}
    runs = []
    for name, (scheme, cons) in sets().items():
        for kappa in args.kappas:
            k = kappa if kappa == "gauss" else float(kappa)
            for seed in range(args.seeds):
                a, b = problem(seed, k)
                fstar = optimum(a, b, cons)
                runs.append({"set": name, "kappa": kappa, "seed": seed, "optimum": fstar,
                             **{s: solve(v, a, b, scheme, fstar) for s, v in solvers.items()}})
    rows = []
    for name in sets():
        for kappa in args.kappas:
            rs = [r for r in runs if r["set"] == name and r["kappa"] == kappa]
            row = [name, kappa, len(rs)]
            for s in solvers:
                its = [r[s]["nit"] for r in rs]
                row += [f"{int(np.median(its))} / {max(its)}",
                        max(r[s]["gap"] for r in rs),
                        sum(r[s]["converged"] for r in rs)]
            rows.append(row)
    heads = ["set", "κ", "seeds"]
    for s in solvers:
        heads += [f"{s}: iterations (median / max)", f"{s}: max gap", f"{s}: converged"]
    print("## ADMM on least squares over convex sets (60 × 30), against cvxpy\n")
    print(table(heads, rows), "\n")
    d = [r["default"] for r in runs]
    summary = {"problems": len(runs), "max_iterations": max(x["nit"] for x in d),
               "max_gap": max(x["gap"] for x in d), "all_converged": all(x["converged"] for x in d),
               "within_1e-8_in_100": sum(x["gap"] <= 1e-8 and x["nit"] <= 100 for x in d)}
    print(f"Defaults: {summary['within_1e-8_in_100']}/{summary['problems']} within 1e-8 in <= 100 "
          f"iterations; max iterations {summary['max_iterations']}, max gap "
          f"{summary['max_gap']:.2g}, all converged: {summary['all_converged']}.")
    out = {"summary": summary, "runs": runs}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    return out


if __name__ == "__main__":
    main()
