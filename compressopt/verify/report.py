"""The verification report and the one tolerance table (keyed by dtype) of the project.

Every ``verify_*`` function compares a fast projection with an exact solver on the same
instance and returns a :class:`Report`; the tests and users read the same fields.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import numpy as np

__all__ = ["SOLVER_RTOL", "TOL", "Report", "Tol", "tol_for"]


class Tol(NamedTuple):
    """Relative and absolute tolerance for comparing computed values."""

    rtol: float
    atol: float


#: tolerances by dtype, for comparisons of computed arrays and objectives (one table for the
#: library's verifiers and the tests)
TOL: dict[np.dtype, Tol] = {
    np.dtype(np.float32): Tol(rtol=2e-5, atol=1e-6),
    np.dtype(np.float64): Tol(rtol=1e-10, atol=1e-12),
}

#: relative accuracy of the exact methods' objectives (interior-point solvers stop at ~1e-8)
SOLVER_RTOL: dict[str, float] = {
    "brute force": 0.0,
    "closed form": 0.0,
    "kmeans1d": 1e-12,
    "lapack": 1e-12,
    "ortools": 1e-9,
    "cvxpy": 1e-6,
}


def tol_for(dtype: Any, method: str = "closed form") -> Tol:
    """The tolerance for results in `dtype` checked against an exact `method`.

    ``rtol = max(TOL[dtype].rtol, SOLVER_RTOL[method])``; `dtype` may be a numpy or torch
    dtype (anything whose name ends in 'float32' or 'float64').

    Examples
    --------
    >>> tol_for("float32", "cvxpy")
    Tol(rtol=2e-05, atol=1e-06)
    """
    try:
        key = np.dtype(dtype)
    except TypeError:  # a torch dtype: torch.float32 -> float32
        key = np.dtype(str(dtype).rsplit(".", 1)[-1])
    base = TOL[key]
    return Tol(max(base.rtol, SOLVER_RTOL.get(method.split("/")[0], 0.0)), base.atol)


class Report(NamedTuple):
    """A fast projection checked against an exact solver on one instance.

    Attributes
    ----------
    name : str
        The projection.
    kind : {"exact", "greedy", "heuristic"}
        What the theory promises about the fast method.
    fast, exact : float
        The objective (minimized: squared distance, or the proximal objective) of the fast
        result and of the exact solver's.
    gap : float
        ``fast - exact``: >= 0 up to the tolerance.
    bound : float
        A proven upper bound on the gap for this instance: 0 for an exact method, the
        certificate of a greedy (e.g. LP bound minus objective), ``inf`` for a heuristic.
    feasible : bool
        The fast result lies in the set (checked independently of the projection).
    ok : bool
        ``feasible and gap <= bound + tol`` (and ``gap >= -tol``).
    tol : float
        The absolute slack used: ``rtol * max(1, |exact|) + atol * n``.
    method : str
        The exact method (e.g. ``"cvxpy/CLARABEL"``, ``"ortools/CP-SAT"``, ``"brute force"``).
    details : dict
        Instance-specific figures (LP bound, selections, ...).
    """

    name: str
    kind: Literal["exact", "greedy", "heuristic"]
    fast: float
    exact: float
    gap: float
    bound: float
    feasible: bool
    ok: bool
    tol: float
    method: str
    details: dict

    @property
    def rel_gap(self) -> float:
        """``gap / |exact|`` (``gap`` itself when the exact objective is 0)."""
        return self.gap / abs(self.exact) if self.exact else self.gap


def make_report(name: str, kind: Literal["exact", "greedy", "heuristic"], fast: float,
                exact: float, feasible: bool, method: str, dtype: Any, n: int = 1, *,
                bound: float | None = None, slack: float = 0.0, **details: Any) -> Report:
    """Assemble a :class:`Report`: the gap, the tolerance from :func:`tol_for` (plus `slack`,
    e.g. the effect of rounding the output to subnormal numbers), and ``ok``."""
    t = tol_for(dtype, method)
    tol = t.rtol * max(1.0, abs(exact), abs(fast)) + t.atol * max(n, 1) + slack
    gap = float(fast) - float(exact)
    if bound is None:
        bound = 0.0 if kind == "exact" else math.inf
    ok = bool(feasible) and -tol <= gap <= bound + tol
    return Report(name, kind, float(fast), float(exact), gap, float(bound), bool(feasible), ok,
                  tol, method, details)
