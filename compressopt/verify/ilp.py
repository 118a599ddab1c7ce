"""Exact integer programs with OR-Tools: the 0-1 knapsack and the multiple-choice knapsack.

Both solvers take integer weights and float profits. OR-Tools optimizes integers, so the
profits are scaled by ``s = 2^k`` (the largest ``|p| s`` is about 2^40; k an int, applied
by ``ldexp``, so profits of any finite magnitude) and rounded; the
solution returned is optimal for the rounded profits, hence within ``n / s`` of the float
optimum (n items): that certified slack is reported as ``rounding``. OR-Tools is imported
inside the functions (the core installs without it). Everything runs on the host.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from compressopt.errors import InfeasibleBudgetError, NonFiniteError, ShapeMismatchError
from compressopt.projections._util import ldexp_float
from compressopt.verify import _deps

__all__ = ["ILPResult", "knapsack_ilp", "mckp_ilp"]

_PROFIT_BITS = 40  # the largest scaled |profit| is about 2^40


class ILPResult(NamedTuple):
    """Optimal (or best found) solution of an integer program.

    Attributes
    ----------
    objective : float
        Float profit of the returned selection (recomputed from the unrounded profits).
    selection : tuple of int
        0-1 knapsack: indices of the chosen items; MCKP: the chosen item of each group.
    weight : int
        Total weight of the selection.
    optimal : bool
        The solver proved optimality (for the rounded profits) within its time limit.
    bound : float
        Upper bound on the float optimum: the solver's bound (unscaled) plus ``rounding``.
    rounding : float
        ``n / s``: the float optimum is at most ``objective + rounding`` when ``optimal``.
    solver : str
    """

    objective: float
    selection: tuple[int, ...]
    weight: int
    optimal: bool
    bound: float
    rounding: float
    solver: str


def _scale(profits: np.ndarray) -> int:
    """The exponent k of the profits' scale ``2^k`` (the largest ``|p|·2^k`` about
    2^_PROFIT_BITS); an int, since ``2^k`` itself leaves the float range for profits below
    about 1e-296 (or above 1e292)."""
    top = float(np.max(np.abs(profits))) if profits.size else 0.0
    if top == 0.0:
        return 0
    return _PROFIT_BITS - math.frexp(top)[1]


def _int_weights(w: np.ndarray, what: str) -> np.ndarray:
    wi = np.rint(w)
    if not np.all(np.isfinite(w)) or np.any(np.abs(w - wi) > 0):
        raise ValueError(f"{what} must be integers (OR-Tools solves integer programs)")
    if np.any(wi < 0):
        raise ValueError(f"{what} must be >= 0")
    return wi.astype(np.int64)


def knapsack_ilp(profits: Sequence[float], weights: Sequence[int], capacity: int, *,
                 solver: str = "branch_and_bound", time_limit: float = 60.0) -> ILPResult:
    """Exact 0-1 knapsack ``max Σ p_i x_i s.t. Σ w_i x_i <= C, x ∈ {0,1}^n`` (OR-Tools).

    Parameters
    ----------
    profits : n floats (items with profit <= 0 are never needed; they are passed through).
    weights : n integers >= 0.
    capacity : integer >= 0.
    solver : ``"branch_and_bound"`` (OR-Tools' knapsack solver, Kolesar-style B&B with
        LP bounds) or ``"cp_sat"`` (CP-SAT on the same integers).
    time_limit : seconds.

    Returns
    -------
    ILPResult

    Raises
    ------
    ValueError
        Non-integer or negative weights or capacity; unknown solver.
    ShapeMismatchError
        profits and weights differ in length.
    NonFiniteError
        A profit is NaN or Inf.

    Examples
    --------
    >>> r = knapsack_ilp([5.0, 4.0, 3.0], [2, 3, 1], 3)
    >>> r.selection, r.objective, r.optimal
    ((0, 2), 8.0, True)
    """
    p = np.asarray(profits, dtype=np.float64).reshape(-1)
    w = _int_weights(np.asarray(weights, dtype=np.float64).reshape(-1), "weights")
    cap = int(_int_weights(np.asarray([capacity], dtype=np.float64), "capacity")[0])
    if p.shape != w.shape:
        raise ShapeMismatchError(f"{p.size} profits but {w.size} weights")
    if not np.all(np.isfinite(p)):
        raise NonFiniteError("profits hold NaN or Inf")
    s = _scale(p)
    pi = np.rint(np.ldexp(np.maximum(p, 0.0), s)).astype(np.int64)  # a negative: never taken
    if solver == "branch_and_bound":
        ks = _deps.ortools("algorithms.python.knapsack_solver")

        kn = ks.KnapsackSolver(
            ks.SolverType.KNAPSACK_MULTIDIMENSION_BRANCH_AND_BOUND_SOLVER, "compressopt")
        kn.set_time_limit(float(time_limit))
        kn.init(pi.tolist(), [w.tolist()], [cap])
        best = kn.solve()
        chosen = tuple(i for i in range(p.size) if kn.best_solution_contains(i))
        optimal = bool(kn.is_solution_optimal())
        bound_int = float(best) if optimal else float(pi.sum())
        name = "ortools/knapsack branch-and-bound"
    elif solver == "cp_sat":
        cp_model = _deps.ortools("sat.python.cp_model")

        m = cp_model.CpModel()
        x = [m.new_bool_var(f"x{i}") for i in range(p.size)]
        m.add(sum(int(wi) * xi for wi, xi in zip(w, x, strict=True)) <= cap)
        m.maximize(sum(int(c) * xi for c, xi in zip(pi, x, strict=True)))
        sol, optimal = _solve_cp(m, time_limit)
        chosen = tuple(i for i in range(p.size) if sol.value(x[i]))
        bound_int = float(sol.best_objective_bound)
        name = "ortools/CP-SAT"
    else:
        raise ValueError(f"solver must be 'branch_and_bound' or 'cp_sat', got {solver!r}")
    sel = list(chosen)
    rounding = ldexp_float(p.size, -s)
    return ILPResult(objective=float(p[sel].sum()), selection=chosen, weight=int(w[sel].sum()),
                     optimal=optimal, bound=ldexp_float(bound_int, -s) + rounding,
                     rounding=rounding, solver=name)


def _solve_cp(model, time_limit: float):
    """Solve a CP-SAT model; return the solver and whether it proved optimality."""
    cp_model = _deps.ortools("sat.python.cp_model")

    sol = cp_model.CpSolver()
    sol.parameters.max_time_in_seconds = float(time_limit)
    sol.parameters.num_workers = 2
    status = sol.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError(f"CP-SAT found no solution: {sol.status_name(status)}")
    return sol, status == cp_model.OPTIMAL


def mckp_ilp(profits: Sequence[Sequence[float]], weights: Sequence[Sequence[int]],
             capacity: int, *, time_limit: float = 60.0,
             hint: Sequence[int] | None = None) -> ILPResult:
    """Exact multiple-choice knapsack by CP-SAT: one item per group, Σ weights <= capacity.

    .. math:: \\max \\sum_{g,j} p_{gj} x_{gj} \\;\\text{s.t.}\\; \\sum_j x_{gj} = 1\\;\\forall g,\\;
        \\sum_{g,j} w_{gj} x_{gj} \\le C,\\; x \\in \\{0, 1\\}

    Parameters
    ----------
    profits : one sequence of floats per group.
    weights : integers >= 0, shaped like `profits`.
    capacity : integer >= 0.
    time_limit : seconds.
    hint : a feasible choice per group to start from (e.g. :func:`~compressopt.projections.
        mckp_greedy`'s), which lets CP-SAT return a solution on large instances even when it
        cannot prove optimality in time.

    Returns
    -------
    ILPResult
        ``selection[g]`` is the chosen item of group g.

    Raises
    ------
    InfeasibleBudgetError
        ``capacity`` is below the sum of the groups' lightest weights.
    ValueError, ShapeMismatchError, NonFiniteError
        As :func:`knapsack_ilp`.

    Examples
    --------
    >>> r = mckp_ilp([[0.0, 5.0, 6.0], [0.0, 4.0]], [[0, 2, 4], [0, 2]], 4)
    >>> r.selection, r.objective
    ((1, 1), 9.0)
    """
    cp_model = _deps.ortools("sat.python.cp_model")

    ps = [np.asarray(g, dtype=np.float64).reshape(-1) for g in profits]
    ws = [_int_weights(np.asarray(g, dtype=np.float64).reshape(-1), "weights") for g in weights]
    cap = int(_int_weights(np.asarray([capacity], dtype=np.float64), "capacity")[0])
    if len(ps) != len(ws) or any(
            a.shape != b.shape or a.size == 0 for a, b in zip(ps, ws, strict=True)):
        raise ShapeMismatchError("profits and weights must have the same non-empty groups")
    flat = np.concatenate(ps) if ps else np.zeros(0)
    if not np.all(np.isfinite(flat)):
        raise NonFiniteError("profits hold NaN or Inf")
    minimum = int(sum(int(g.min()) for g in ws))
    if minimum > cap:
        raise InfeasibleBudgetError(f"capacity {cap} is below the cheapest choice {minimum}",
                                    budget=cap, minimum=minimum)
    s = _scale(flat)
    shift = [float(g.min()) for g in ps]  # profits relative to each group's worst: >= 0
    m = cp_model.CpModel()
    xs, obj, load = [], [], []
    for gi, (pg, wg) in enumerate(zip(ps, ws, strict=True)):
        x = [m.new_bool_var(f"x{gi}_{j}") for j in range(pg.size)]
        m.add_exactly_one(x)
        xs.append(x)
        pint = np.rint(np.ldexp(pg - shift[gi], s)).astype(np.int64)
        obj += [int(c) * v for c, v in zip(pint, x, strict=True)]
        load += [int(c) * v for c, v in zip(wg, x, strict=True)]
    m.add(sum(load) <= cap)
    m.maximize(sum(obj))
    if hint is not None:
        for x, c in zip(xs, hint, strict=True):
            for j, v in enumerate(x):
                m.add_hint(v, j == c)
    sol, optimal = _solve_cp(m, time_limit)
    choice = tuple(next(j for j, v in enumerate(x) if sol.value(v)) for x in xs)
    objective = float(sum(pg[c] for pg, c in zip(ps, choice, strict=True)))
    rounding = ldexp_float(len(ps), -s)
    return ILPResult(
        objective=objective, selection=choice,
        weight=int(sum(wg[c] for wg, c in zip(ws, choice, strict=True))),
        optimal=optimal,
        bound=ldexp_float(float(sol.best_objective_bound), -s) + sum(shift) + rounding,
        rounding=rounding,
        solver="ortools/CP-SAT")
