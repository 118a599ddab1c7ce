"""Exact convex programs with cvxpy: the convex projections, the proximal operators, and the
LP relaxation of the multiple-choice knapsack.

Each function states the problem as a generic conic program and solves it with an
interior-point solver (Clarabel, relative accuracy about 1e-8), independently of the
closed forms in :mod:`compressopt.projections`. cvxpy is imported inside the functions; inputs
are converted to float64 numpy arrays on the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from compressopt._array import to_numpy
from compressopt.verify import _deps

__all__ = [
    "ConvexResult",
    "box_cvx",
    "group_lasso_cvx",
    "l1_ball_cvx",
    "mckp_lp",
    "simplex_cvx",
    "soft_threshold_cvx",
]

SOLVER = "CLARABEL"


class ConvexResult(NamedTuple):
    """Solution of a convex program: the minimizer (shaped like the input), its objective."""

    x: np.ndarray
    objective: float
    status: str


def _host(x: Any) -> np.ndarray:
    return np.asarray(to_numpy(x), dtype=np.float64)


def _solve(objective, constraints, var, shape) -> ConvexResult:
    cp = _deps.cvxpy()

    prob = cp.Problem(objective, constraints)
    prob.solve(solver=SOLVER)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"cvxpy/{SOLVER} failed: {prob.status}")
    return ConvexResult(np.asarray(var.value, dtype=np.float64).reshape(shape),
                        float(prob.value), f"cvxpy/{SOLVER}")


def _dist_problem(x: Any):
    cp = _deps.cvxpy()

    v = _host(x)
    z = cp.Variable(v.size)
    return cp, v, z, cp.sum_squares(z - v.reshape(-1))


def l1_ball_cvx(x: Any, radius: float) -> ConvexResult:
    """``min ||z - x||² s.t. ||z||_1 <= radius`` by cvxpy (objective: squared distance).

    Examples
    --------
    >>> round(l1_ball_cvx([3.0, -1.0], 2.0).objective, 6)
    2.0
    """
    cp, v, z, obj = _dist_problem(x)
    return _solve(cp.Minimize(obj), [cp.norm1(z) <= radius], z, v.shape)


def simplex_cvx(x: Any, radius: float = 1.0) -> ConvexResult:
    """``min ||z - x||² s.t. z >= 0, Σ z = radius`` by cvxpy."""
    cp, v, z, obj = _dist_problem(x)
    return _solve(cp.Minimize(obj), [z >= 0, cp.sum(z) == radius], z, v.shape)


def box_cvx(x: Any, lower: Any, upper: Any) -> ConvexResult:
    """``min ||z - x||² s.t. lower <= z <= upper`` by cvxpy (bounds: floats or arrays)."""
    cp, v, z, obj = _dist_problem(x)
    lo = np.broadcast_to(_host(lower), v.shape).reshape(-1)
    hi = np.broadcast_to(_host(upper), v.shape).reshape(-1)
    cons = []
    if np.any(np.isfinite(lo)):
        cons.append(z[np.isfinite(lo)] >= lo[np.isfinite(lo)])
    if np.any(np.isfinite(hi)):
        cons.append(z[np.isfinite(hi)] <= hi[np.isfinite(hi)])
    return _solve(cp.Minimize(obj), cons, z, v.shape)


def soft_threshold_cvx(x: Any, t: float) -> ConvexResult:
    """``min ½||z - x||² + t ||z||_1`` by cvxpy (objective: the proximal objective)."""
    cp, v, z, obj = _dist_problem(x)
    return _solve(cp.Minimize(0.5 * obj + t * cp.norm1(z)), [], z, v.shape)


def group_lasso_cvx(x: Any, t: float | Sequence[float], axis: int = 0) -> ConvexResult:
    """``min ½||z - x||² + Σ_g t_g ||z_g||_2`` over the slices along `axis`, by cvxpy (SOCP)."""
    cp = _deps.cvxpy()

    v = np.moveaxis(_host(x), axis, 0)
    g = v.reshape(v.shape[0], -1)
    tg = np.broadcast_to(np.asarray(t, dtype=np.float64), (g.shape[0],))
    z = cp.Variable(g.shape)
    obj = 0.5 * cp.sum_squares(z - g) + cp.sum(cp.multiply(tg, cp.norm(z, 2, axis=1)))
    r = _solve(cp.Minimize(obj), [], z, g.shape)
    return r._replace(x=np.moveaxis(r.x.reshape(v.shape), 0, axis))


def mckp_lp(profits: Sequence[Sequence[float]], weights: Sequence[Sequence[float]],
            capacity: float) -> ConvexResult:
    """LP relaxation of the multiple-choice knapsack by cvxpy.

    .. math:: \\max \\sum p_{gj} x_{gj} \\;\\text{s.t.}\\; \\sum_j x_{gj} = 1,\\;
        \\sum w_{gj} x_{gj} \\le C,\\; 0 \\le x \\le 1

    Returns the maximizer (concatenated over the groups) and the optimal value (a profit,
    maximized).

    Examples
    --------
    >>> round(mckp_lp([[0.0, 5.0, 6.0], [0.0, 4.0]], [[0, 2, 4], [0, 2]], 3).objective, 6)
    7.0
    """
    cp = _deps.cvxpy()

    ps = [np.asarray(g, dtype=np.float64).reshape(-1) for g in profits]
    ws = [np.asarray(g, dtype=np.float64).reshape(-1) for g in weights]
    sizes = [g.size for g in ps]
    p, w = np.concatenate(ps), np.concatenate(ws)
    x = cp.Variable(p.size)
    a = np.zeros((len(ps), p.size))
    start = 0
    for gi, m in enumerate(sizes):
        a[gi, start : start + m] = 1.0
        start += m
    cons = [x >= 0, x <= 1, a @ x == 1, w @ x <= capacity]
    return _solve(cp.Maximize(p @ x), cons, x, (p.size,))
