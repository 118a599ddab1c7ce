"""Multiple-choice knapsack: the greedy on the convex hulls, and bit allocation across layers.

The multiple-choice knapsack problem (MCKP) picks exactly one item from each group:

.. math:: \\max \\sum_g p_{g,j_g} \\;\\text{s.t.}\\; \\sum_g w_{g,j_g} \\le S.

Its LP relaxation is solved exactly by a greedy (Sinha & Zemel 1979; Zemel 1980; Kellerer,
Pferschy & Pisinger, *Knapsack Problems*, 2004, §11.2): in each group drop the dominated
items and keep the upper convex hull of (weight, profit); start from every group's lightest
hull item; take the hull's increments (Δp, Δw) in decreasing order of Δp/Δw until the next one
does not fit. That increment, taken fractionally, completes the LP optimum; the greedy without
it (plus whatever later increments still fit) is the integer solution, optimal whenever the
LP optimum is integral.

:func:`allocate_bits` is the quantization step of Yang et al. (CVPR 2020), eq. (10),
Definition 1 and Proposition 2: group = tensor, item = bit width j, weight ``j·nnz``, profit
``-E_j`` (the optimal k-means error of the nonzeros with 2^j entries).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from typing import Any, Literal, NamedTuple

import numpy as np

from compressopt._array import (
    Array,
    array_namespace,
    check_finite,
    from_numpy,
    host_numpy,
    numel,
    to_numpy,
)
from compressopt.errors import InfeasibleBudgetError, NonFiniteError, ShapeMismatchError
from compressopt.projections._kmeans_batch import SweepBatch
from compressopt.projections._util import check_int, check_nonneg, ldexp_float, square_exponent
from compressopt.projections.base import StorageCost, bits_for, count_nonzero
from compressopt.projections.quantization import (
    AdaptiveQuantization,
    Quantized,
    _quantized,
    _Sweep,
    quantize_zero_level,
)
from compressopt.tree import Params, tree_check

__all__ = [
    "BitAllocation",
    "MCKPResult",
    "MCKPSolution",
    "MixedPrecision",
    "allocate_bits",
    "mckp_best",
    "mckp_greedy",
    "mckp_pareto",
    "mckp_solve",
    "upper_hull",
]


_F64_MAX = float(np.finfo(np.float64).max)


class MCKPResult(NamedTuple):
    """Greedy solution of a multiple-choice knapsack and its LP bound (:func:`mckp_greedy`).

    Attributes
    ----------
    choice : tuple of int
        Index of the chosen item in each group (into the group's input arrays).
    profit : float
        Total profit of the choice.
    weight : int or float
        Total weight of the choice (<= capacity), exact: an int when the weights are ints.
    lp_bound : float
        Optimum of the LP relaxation: ``profit <= OPT <= lp_bound``.
    integral : bool
        The LP optimum is integral (no increment taken fractionally): the choice is optimal.
    lp_choice : tuple of int
        Each group's hull item in the LP optimum before the fractional increment.
    fraction : tuple (group, item, theta) or None
        The fractional increment of the LP optimum: group `group` moves from
        ``lp_choice[group]`` toward item `item` by a fraction ``theta`` in (0, 1).
    """

    choice: tuple[int, ...]
    profit: float
    weight: int | float
    lp_bound: float
    integral: bool
    lp_choice: tuple[int, ...]
    fraction: tuple[int, int, float] | None


class MCKPSolution(NamedTuple):
    """Solution of a multiple-choice knapsack by :func:`mckp_solve`.

    Attributes
    ----------
    choice : tuple of int
        The chosen item of each group.
    profit : float
        Its total profit.
    weight : int or float
        Its total weight, exact (<= capacity; an int when the weights are ints).
    optimal : bool
        The choice is proven optimal (up to the float rounding of the profits).
    path : str
        Which solver decided: ``"lp"`` (the LP optimum is integral, so the greedy is
        optimal), ``"pareto"`` (:func:`mckp_pareto` on the reduced instance), ``"milp"``
        (HiGHS through :func:`scipy.optimize.milp` on the reduced instance), or
        ``"greedy"`` (neither finished: the better of the greedy and the MILP's incumbent,
        with the certified ``bound``).
    bound : float
        An upper bound on the optimum: ``profit <= OPT <= bound`` (the profit itself when
        optimal, else the smaller of the LP bound and the MILP's dual bound).
    greedy : MCKPResult
        The greedy and its LP bound.
    """

    choice: tuple[int, ...]
    profit: float
    weight: int | float
    optimal: bool
    path: str
    bound: float
    greedy: MCKPResult


class _Instance(NamedTuple):
    """A validated MCKP: float64 profits; the weights and the capacity as exact integers in
    units of ``1/scale`` (the weights' common binary denominator); float weights for slopes."""

    profits: list[np.ndarray]
    weights: list[list[int]]  #: exact, in units of 1/scale
    wf: list[np.ndarray]  #: float64, original units
    cap: int  #: floor(capacity · scale)
    scale: int

    def out(self, w: int) -> int | float:
        """A weight in the original units: exact int, or the nearest float."""
        return w if self.scale == 1 else float(Fraction(w, self.scale))


def _exact(v: Any) -> Fraction:
    """A finite real (Python or numpy int or float) as an exact fraction."""
    if isinstance(v, numbers.Integral) or (isinstance(v, np.generic) and
                                           np.issubdtype(type(v), np.integer)):
        return Fraction(int(v))
    return Fraction(float(v))


def _instance(profits: Sequence[Sequence[float]], weights: Sequence[Sequence[float]],
              capacity: Any) -> _Instance:
    """Validate an MCKP (see :func:`mckp_greedy`) and make its weights exact integers."""
    check_nonneg(capacity, "capacity")
    if len(profits) != len(weights):
        raise ShapeMismatchError(f"{len(profits)} groups of profits but {len(weights)} of weights")
    ps, fr, wf = [], [], []
    for g, (pg, wg) in enumerate(zip(profits, weights, strict=True)):
        pa = np.asarray(pg, dtype=np.float64).reshape(-1)
        wo = np.asarray(wg)
        wl = wo.reshape(-1).tolist() if wo.dtype != object else list(np.ravel(wo))
        wa = np.asarray([float(v) for v in wl], dtype=np.float64)
        if pa.shape != wa.shape or pa.size == 0:
            raise ShapeMismatchError(
                f"group {g}: profits {pa.shape} and weights {wa.shape} must be equal and non-empty"
            )
        if not (np.all(np.isfinite(pa)) and all(math.isfinite(float(v)) for v in wl)):
            raise NonFiniteError(f"group {g} holds NaN or Inf profits or weights")
        if np.any(wa < 0):
            raise ValueError(f"group {g} has a negative weight")
        ps.append(pa)
        if wo.dtype.kind in "iu" or all(type(v) is int for v in wl):
            fr.append([int(v) for v in wl])  # integers: exact as they are (the usual case)
        else:
            fr.append([_exact(v) for v in wl])
        wf.append(wa)
    cap = _exact(capacity)
    scale = max([f.denominator for g in fr for f in g if type(f) is not int] + [1])
    return _Instance(ps, [[int(f * scale) for f in g] for g in fr], wf,
                     math.floor(cap * scale), scale)


def upper_hull(weights: Sequence[float], profits: Sequence[float]) -> list[int]:
    """Indices of the LP-undominated items of one group, by increasing weight.

    Drops dominated items (another item is no heavier and at least as profitable; among
    equal items the first index is kept) and items strictly below the upper convex hull of
    (weight, profit) (LP-dominated, KPP Proposition 11.2.2); collinear hull points are kept so
    that the integer greedy may stop on them. The weights are compared exactly as given
    (ints stay ints). O(J log J).

    Examples
    --------
    >>> upper_hull([1, 2, 3, 4], [0.0, 5.0, 6.0, 6.0])
    [0, 1, 2]
    >>> upper_hull([1, 2, 3], [0.0, 1.0, 5.0])   # (2, 1) lies below the chord
    [0, 2]
    """
    w = list(weights)
    p = [float(v) for v in profits]
    order = sorted(range(len(w)), key=lambda i: (w[i], -p[i], i))  # weight, best profit, index
    hull: list[int] = []
    for i in order:  # a loop over the items of one group (bit widths), not over weights
        if hull and (w[i] == w[hull[-1]] or p[i] <= p[hull[-1]]):
            continue  # same weight with less profit, or heavier and no better: dominated
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # pop b if it lies strictly below the chord from a to i
            if (p[b] - p[a]) * float(w[i] - w[b]) < (p[i] - p[b]) * float(w[b] - w[a]):
                hull.pop()
            else:
                break
        hull.append(int(i))
    return hull


def mckp_greedy(profits: Sequence[Sequence[float]], weights: Sequence[Sequence[float]],
                capacity: float) -> MCKPResult:
    """Greedy for the multiple-choice knapsack, with the exact LP relaxation bound.

    .. math:: \\max_{j_g} \\sum_g p_{g,j_g} \\;\\text{s.t.}\\; \\sum_g w_{g,j_g} \\le S

    Parameters
    ----------
    profits, weights : one 1-D sequence per group (lengths may differ, each >= 1); weights
        >= 0 and finite (ints, or floats: both compared exactly), profits finite (may be
        negative).
    capacity : S >= 0 (an int or a float, compared exactly).

    Returns
    -------
    MCKPResult
        The integer greedy, the better of (a) the LP's integral part plus every later hull
        increment, in density order, that still fits and follows its group's last taken one,
        and (b) the LP solution with its fractional increment taken whole, repaired by undoing
        the least dense increments of the other groups until it fits, then filled the same
        way; the LP optimum as a bound; and whether the LP optimum is integral (then the
        greedy is optimal).

    Raises
    ------
    InfeasibleBudgetError
        ``capacity < Σ_g min_j w_{g,j}`` (``minimum`` holds that sum).
    ShapeMismatchError
        A group is empty, or profits and weights differ in shape.
    NonFiniteError, ValueError
        A non-finite number, or a negative weight or capacity.

    Notes
    -----
    Exact for the LP relaxation (Zemel 1980; KPP 2004, Thm 11.2.3); for the integer problem
    the greedy is within ``lp_bound - profit <= max Δp`` of the optimum. Feasibility is
    decided in exact integer arithmetic (the weights' common binary denominator), so the
    choice never exceeds the capacity, even by one ulp above 2^53. Runs on the host (an MCKP
    instance is tensors × bit widths numbers, not weights): O(N log N) for N items.

    Examples
    --------
    >>> r = mckp_greedy([[0.0, 5.0, 6.0], [0.0, 4.0]], [[0, 2, 4], [0, 2]], 3)
    >>> r.choice, r.profit, r.lp_bound
    ((1, 0), 5.0, 7.0)
    """
    return _greedy(_instance(profits, weights, capacity))


def _greedy(inst: _Instance) -> MCKPResult:
    cap = inst.cap
    hulls, base_w, base_p = [], 0, 0.0
    inc: list[tuple[float, int, float, int, int]] = []  # (Δp, Δw exact, Δw float, group, pos)
    for g, (pa, wi, wa) in enumerate(zip(inst.profits, inst.weights, inst.wf, strict=True)):
        h = upper_hull(wi, pa)
        hulls.append(h)
        base_w += wi[h[0]]
        base_p += pa[h[0]]
        for t in range(1, len(h)):
            inc.append((pa[h[t]] - pa[h[t - 1]], wi[h[t]] - wi[h[t - 1]],
                        wa[h[t]] - wa[h[t - 1]], g, t))
    if base_w > cap:
        minimum = inst.out(base_w)
        budget = inst.out(cap)
        raise InfeasibleBudgetError(
            f"budget {budget:g} is below the cheapest choice {minimum:g} (the lightest item of "
            "every group)", budget=budget, minimum=minimum)
    dens = np.array([dp / (dwf if dwf > 0 else math.ulp(0.0)) for dp, _, dwf, _, _ in inc])
    order = np.argsort(-dens, kind="stable")  # ties: group order, then hull order
    pos = [0] * len(hulls)
    used, prof = base_w, base_p
    frac: tuple[int, int, float] | None = None
    lp_bound = None
    k = 0
    while k < len(order):  # the LP's integral part: the prefix that fits
        dp, dw, _, g, t = inc[order[k]]
        if used + dw > cap:
            theta = (cap - used) / dw
            lp_bound = prof + theta * dp
            if theta > 0:
                frac = (g, hulls[g][t], theta)
            break
        used += dw
        prof += dp
        pos[g] = t
        k += 1
    lp_used, lp_prof = used, prof
    lp_bound = prof if lp_bound is None else lp_bound
    lp_pos = list(pos)

    def fill(pos: list[int], used: int, prof: float) -> tuple[list[int], int, float]:
        """Take, in density order, every increment that follows its group's last and fits."""
        blocked = set()
        for i in order:  # a loop over increments (tensors × bit widths), not over weights
            dp, dw, _, g, t = inc[i]
            if g in blocked or t <= pos[g]:
                continue
            if t == pos[g] + 1 and used + dw <= cap:
                used, prof, pos[g] = used + dw, prof + dp, t
            else:
                blocked.add(g)  # capacity only shrinks: this group is done
        return pos, used, prof

    # (a) the LP's integral part, filled
    pos, used, prof = fill(list(lp_pos), used, prof)
    if k < len(order) and frac is not None:
        # (b) the fractional increment taken whole, repaired by undoing the least dense
        # increments of the other groups until it fits, then filled
        dp, dw, _, gs, ts = inc[order[k]]
        pb, ub, qb = list(lp_pos), lp_used + dw, lp_prof + dp
        pb[gs] = ts
        for i in order[:k][::-1]:
            if ub <= cap:
                break
            dp, dw, _, g, t = inc[i]
            if g != gs and pb[g] == t:
                pb[g], ub, qb = t - 1, ub - dw, qb - dp
        if ub <= cap:
            pb, ub, qb = fill(pb, ub, qb)
            if qb > prof:
                pos, used, prof = pb, ub, qb
    return MCKPResult(
        choice=tuple(hulls[g][pos[g]] for g in range(len(hulls))),
        profit=float(prof),
        weight=inst.out(used),
        lp_bound=float(lp_bound),
        integral=frac is None,
        lp_choice=tuple(hulls[g][lp_pos[g]] for g in range(len(hulls))),
        fraction=frac,
    )


def mckp_pareto(profits: Sequence[Sequence[float]], weights: Sequence[Sequence[float]],
                capacity: float, *, max_states: int = 100_000) -> tuple[int, ...] | None:
    """Exact multiple-choice knapsack by dynamic programming over Pareto-optimal partial sums.

    Solves the problem of :func:`mckp_greedy` exactly: groups are added one at a time and
    only the partial choices that no lighter (or equally heavy) partial choice beats in
    profit are kept (Nemhauser & Ullmann 1969; KPP 2004 §11.5), each feasible for `capacity`.
    Weights are summed and compared exactly (integers).

    Parameters
    ----------
    profits, weights : one 1-D sequence per group, as for :func:`mckp_greedy`.
    capacity : S >= 0.
    max_states : int
        Give up (return None) when a frontier would exceed this many partial choices.

    Returns
    -------
    tuple of int or None
        An optimal choice (one item per group; among optimal choices the lightest), or None
        when the frontier grew past `max_states` or nothing fits.

    Raises
    ------
    ShapeMismatchError, NonFiniteError, ValueError
        As :func:`mckp_greedy` for malformed groups or a negative capacity.

    Notes
    -----
    Cost O(Σ_g F_g B_g log(F_g B_g)) for frontiers of F_g states and B_g items: at most
    ``max_states · B`` numbers per group. With a handful of tensors and 8 bit widths the
    frontier stays small (at most B^T); for many tensors it may hit `max_states`;
    :func:`mckp_solve` first removes the items that cannot beat the greedy, then tries
    this DP, then an MILP.

    Examples
    --------
    >>> mckp_pareto([[0.0, 5.0, 6.0], [0.0, 4.0]], [[0, 2, 4], [0, 2]], 3)
    (1, 0)
    """
    inst = _instance(profits, weights, capacity)
    return _pareto(inst.profits, inst.weights, inst.cap, max_states)


def _pareto(profits: list[np.ndarray], weights: list[list[int]], cap: int,
            max_states: int) -> tuple[int, ...] | None:
    """:func:`mckp_pareto` on exact integer weights (int64 when the sums fit, else Python
    ints)."""
    big = sum(max(w) for w in weights) >= 2**62 or cap >= 2**62
    dt = object if big else np.int64
    w_f, p_f = np.zeros(1, dtype=dt), np.zeros(1)
    back: list[tuple[np.ndarray, int]] = []
    for pa, wl in zip(profits, weights, strict=True):
        wa = np.array(wl, dtype=dt)
        cw = (w_f[:, None] + wa[None, :]).reshape(-1)
        cp = (p_f[:, None] + pa[None, :]).reshape(-1)
        idx = np.flatnonzero(cw <= cap)
        if idx.size == 0:
            return None
        o = idx[np.lexsort((-cp[idx], cw[idx]))]  # by weight, then by profit, best first
        best_before = np.concatenate([[-np.inf], np.maximum.accumulate(cp[o])[:-1]])
        keep = o[cp[o] > best_before]  # strictly better than every lighter partial choice
        if keep.size > max_states:
            return None
        w_f, p_f = cw[keep], cp[keep]
        back.append((keep, wa.size))
    state = int(np.argmax(p_f))  # the frontier's profits rise with weight: the last state
    choice = []
    for keep, b in reversed(back):
        state, item = divmod(int(keep[state]), b)
        choice.append(item)
    return tuple(reversed(choice))


def mckp_solve(profits: Sequence[Sequence[float]], weights: Sequence[Sequence[float]],
               capacity: float, *, time_limit: float = 10.0,
               max_states: int = 100_000) -> MCKPSolution:
    """Exact multiple-choice knapsack at any size: the greedy, a reduction, then an exact
    solver (the Pareto DP, else an MILP), else the greedy with a certified gap.

    .. math:: \\max_{j_g} \\sum_g p_{g,j_g} \\;\\text{s.t.}\\; \\sum_g w_{g,j_g} \\le S

    1. :func:`mckp_greedy`: its LP bound, and the answer when the LP optimum is integral.
    2. Reduction (KPP 2004 §11.4, the Lagrangian bound with the LP's multiplier λ, the
       fractional increment's density): forcing group g to item j gives the bound
       ``U_gj = λS + Σ_h max_i (p_hi - λ w_hi) - [max_i (p_gi - λ w_gi) - (p_gj - λ w_gj)]``;
       items with ``U_gj`` below the greedy's profit cannot be in a better choice and are
       dropped. Usually a few groups keep two or more items (the core).
    3. :func:`mckp_pareto` on the core, with `max_states`.
    4. If it gives up: ``scipy.optimize.milp`` (HiGHS) on the core, within `time_limit`
       seconds; its choice is checked in exact integer arithmetic.
    5. If neither finishes: the better of the greedy and the MILP's incumbent, with the
       bound ``min(LP bound, MILP dual bound)`` (``path="greedy"``, ``optimal=False``).

    Parameters
    ----------
    profits, weights, capacity : as :func:`mckp_greedy`.
    time_limit : seconds for the MILP (step 4).
    max_states : frontier size at which the Pareto DP gives up (step 3).

    Returns
    -------
    MCKPSolution
        The choice, whether it is proven optimal, which path decided, and an upper bound.

    Raises
    ------
    As :func:`mckp_greedy`.

    Notes
    -----
    Exact up to the float rounding of the profits (the reduction keeps every item within a
    relative 1e-9 of the bound; the MILP closes its gap to 0 with HiGHS' tolerances); the
    weights are exact. Weights above 2^53 (in units of their binary denominator) skip the
    MILP, which works in floating point. Cost: the greedy O(N log N), the reduction O(N),
    then the exact solver on the core only.

    Examples
    --------
    k-means-like errors ``c 4^-j`` at 1..4 bits for three tensors of 1, 2 and 4 nonzeros, 14
    bits: the greedy ends at (4, 1, 2) bits, the optimum gives every tensor 2 bits.

    >>> s = mckp_solve([[-1, -1/4, -1/16, -1/64], [-1/2, -1/8, -1/32, -1/128],
    ...                 [-3/4, -3/16, -3/64, -3/256]],
    ...                [[1, 2, 3, 4], [2, 4, 6, 8], [4, 8, 12, 16]], 14)
    >>> s.choice, s.profit, s.optimal, s.path, s.greedy.profit
    ((1, 1, 1), -0.5625, True, 'pareto', -0.703125)
    """
    if isinstance(time_limit, bool) or not (isinstance(time_limit, numbers.Real)
                                            and time_limit > 0):
        raise ValueError(f"time_limit must be a number of seconds > 0, got {time_limit!r}")
    inst = _instance(profits, weights, capacity)
    g = _greedy(inst)

    def weight(choice: Sequence[int]) -> int:
        return sum(w[c] for w, c in zip(inst.weights, choice, strict=True))

    def profit(choice: Sequence[int]) -> float:
        return float(sum(p[c] for p, c in zip(inst.profits, choice, strict=True)))

    if g.integral:
        return MCKPSolution(g.choice, g.profit, g.weight, True, "lp", g.lp_bound, g)
    keep = _reduce(inst, g)
    core = [i for i, k in enumerate(keep) if len(k) > 1]
    fixed = [keep[i][0] if len(k) == 1 else None for i, k in enumerate(keep)]
    room = inst.cap - sum(inst.weights[i][c] for i, c in enumerate(fixed) if c is not None)
    sub_p = [inst.profits[i][keep[i]] for i in core]
    sub_w = [[inst.weights[i][j] for j in keep[i]] for i in core]

    def full(sub: Sequence[int]) -> tuple[int, ...]:
        out = list(fixed)
        for i, j in zip(core, sub, strict=True):
            out[i] = keep[i][j]
        return tuple(out)  # type: ignore[arg-type]

    found = _pareto(sub_p, sub_w, room, max_states) if core else ()
    if found is not None:  # optimal: at least the greedy (which the reduction keeps)
        choice = max(full(found), g.choice, key=profit)  # the same sums: rounding ties
        return MCKPSolution(choice, profit(choice), inst.out(weight(choice)), True, "pareto",
                            profit(choice), g)
    bound = g.lp_bound
    best, best_p = g.choice, profit(g.choice)
    if max(max(w) for w in sub_w) < 2**53 and room < 2**53:
        res = _milp(sub_p, sub_w, room, time_limit)
        if res is not None:
            sub, optimal, dual = res
            choice = full(sub)
            if weight(choice) <= inst.cap and profit(choice) >= best_p:
                best, best_p = choice, profit(choice)
                if optimal:
                    return MCKPSolution(best, best_p, inst.out(weight(best)), True, "milp",
                                        best_p, g)
            if dual is not None:
                fixed_p = sum(float(inst.profits[i][c]) for i, c in enumerate(fixed)
                              if c is not None)
                bound = min(bound, fixed_p + dual)
    return MCKPSolution(best, best_p, inst.out(weight(best)), False, "greedy",
                        max(bound, best_p), g)


def _reduce(inst: _Instance, g: MCKPResult) -> list[list[int]]:
    """The items of each group that may beat the greedy (step 2 of :func:`mckp_solve`),
    the greedy's item first when it is kept."""
    grp, item, _ = g.fraction  # type: ignore[misc]
    lp_item = g.lp_choice[grp]
    dp = inst.profits[grp][item] - inst.profits[grp][lp_item]
    dw = inst.wf[grp][item] - inst.wf[grp][lp_item]
    lam = max(0.0, dp / dw) if dw > 0 else 0.0  # the LP's multiplier of the capacity
    scores = [p - lam * w for p, w in zip(inst.profits, inst.wf, strict=True)]
    best = [float(s.max()) for s in scores]
    cap = float(Fraction(inst.cap, inst.scale))
    upper = lam * cap + sum(best)
    scale = abs(lam * cap) + sum(abs(b) for b in best) + sum(float(np.abs(p).max())
                                                            for p in inst.profits)
    slack = upper - g.profit + 1e-9 * scale + 1e-300  # an item may lose at most this much
    keep = []
    for s, b, c in zip(scores, best, g.choice, strict=True):
        k = [int(j) for j in np.flatnonzero(b - s <= slack)]
        if c not in k:
            k.append(int(c))
        k.sort(key=lambda j: j != c)  # the greedy's item first
        keep.append(k)
    return keep


def _milp(profits: list[np.ndarray], weights: list[list[int]], cap: int, time_limit: float
          ) -> tuple[tuple[int, ...], bool, float | None] | None:
    """The MCKP by HiGHS: (choice, proven optimal, dual bound on the profit) or None.

    Profits are shifted per group (its best to 0) and scaled to about 1, the capacity row
    divided by the capacity, the gaps closed to 0; the choice is rounded and returned only
    if it takes one item per group (the caller checks the weight exactly).
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_array

    sizes = [p.size for p in profits]
    n = sum(sizes)
    shift = [float(p.max()) for p in profits]
    spread = max(max(float(p.max() - p.min()) for p in profits), 1e-300)
    c = -np.concatenate([(p - s) / spread for p, s in zip(profits, shift, strict=True)])
    rows = np.repeat(np.arange(len(sizes)), sizes)
    one = csr_array((np.ones(n), (rows, np.arange(n))), shape=(len(sizes), n))
    wrow = np.asarray([float(v) for wl in weights for v in wl]) / max(cap, 1)
    cons = [LinearConstraint(one, 1, 1), LinearConstraint(wrow[None, :], 0, cap / max(cap, 1))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # HiGHS options passed verbatim
        res = milp(c, integrality=np.ones(n), bounds=Bounds(0, 1), constraints=cons,
                   options={"time_limit": float(time_limit), "mip_rel_gap": 0.0,
                            "mip_abs_gap": 0.0, "mip_feasibility_tolerance": 1e-9,
                            "primal_feasibility_tolerance": 1e-9, "threads": 1})
    dual = None
    if getattr(res, "mip_dual_bound", None) is not None and np.isfinite(res.mip_dual_bound):
        dual = -float(res.mip_dual_bound) * spread + sum(shift)
    if res.x is None:
        return None
    x = np.asarray(res.x)
    choice, start = [], 0
    for s in sizes:
        seg = x[start : start + s]
        j = int(np.argmax(seg))
        if not seg[j] > 0.5:
            return None
        choice.append(j)
        start += s
    return tuple(choice), res.status == 0, dual


def mckp_best(profits: Sequence[Sequence[float]], weights: Sequence[Sequence[float]],
              capacity: float) -> tuple[MCKPResult, tuple[int, ...], bool]:
    """``(greedy result, choice, optimal)`` of :func:`mckp_solve` (kept for its callers):
    `choice` is exact unless ``optimal`` is False (then the greedy's, or the MILP's
    incumbent). Raises as :func:`mckp_greedy`."""
    s = mckp_solve(profits, weights, capacity)
    return s.greedy, s.choice, s.optimal


@dataclass(frozen=True)
class BitAllocation:
    """Result of :func:`allocate_bits`: one bit width and codebook per tensor.

    Attributes
    ----------
    bits : dict name -> int
        Chosen bit width b_i (codebook of 2^b_i entries for the nonzeros).
    theta : dict name -> Quantized
        The quantized tensors (sparse mode: ``codebook[0] = 0`` codes the zeros).
    candidates : tuple of int
        The candidate bit widths B.
    errors : dict name -> numpy array
        ``errors[name][j]``: the k-means error E of the nonzeros with ``2**candidates[j]``
        entries (the profit table is its negative), in units of ``4^exponent`` times w's
        squared units; NaN where not computed (``table="needed"``).
    nnz : dict name -> int
        Nonzeros per tensor.
    error : float
        Σ_i E_i(b_i), the squared distance of the quantization (what is minimized), in the
        units of ``errors``.
    lp_bound : float
        Lower bound on the optimal error from the LP relaxation: ``lp_bound <= OPT <= error``.
    budget_used : int
        Σ_i b_i · nnz_i bits (<= budget).
    budget : float
        The budget S in bits.
    integral : bool
        The LP optimum is integral, hence the greedy allocation is optimal (for the error
        table).
    optimal : bool
        The allocation is optimal for the error table: :func:`mckp_solve` proved it (the
        LP optimum is integral, or the Pareto DP or the MILP solved the instance).
    path : str
        Which solver decided (:attr:`MCKPSolution.path`): ``"lp"``, ``"pareto"``,
        ``"milp"`` or ``"greedy"`` (not proven optimal; ``error - lp_bound`` bounds the
        gap).
    exponent : int
        The power of two E of the errors' units (``4^E`` w²): 0 unless the largest ``|w|``
        lies outside ``2^±255``, where squared errors leave the float range; then its
        binary exponent (the errors are then at most the number of nonzeros).
    """

    bits: dict[str, int]
    theta: dict[str, Quantized]
    candidates: tuple[int, ...]
    errors: dict[str, np.ndarray]
    nnz: dict[str, int]
    error: float
    lp_bound: float
    budget_used: int
    budget: float
    integral: bool
    optimal: bool = False
    path: str = "greedy"
    exponent: int = 0

    def decompress(self) -> dict[str, Array]:
        """The quantized tensors as arrays (``codebook[assignments]``)."""
        return {n: _dequantize(q) for n, q in self.theta.items()}

    def cost(self) -> dict[str, StorageCost]:
        """Storage: b_i bits per nonzero, plus 32 bits per codebook entry (overhead)."""
        return {n: _quant_cost(q) for n, q in self.theta.items()}


def _dequantize(q: Quantized) -> Array:
    return AdaptiveQuantization(1).decompress(q)


def _quant_cost(q: Quantized) -> StorageCost:
    """Cost of a sparse-mode Θ: ``ceil(log2 K)`` bits per nonzero, K = codebook size - 1."""
    k = q.codebook.shape[0] - 1
    return StorageCost(numel=numel(q.assignments), nnz=count_nonzero(q.assignments),
                       bits=bits_for(max(k, 1)), overhead_bits=32 * k)


def _check_candidates(candidates: Iterable[int]) -> tuple[int, ...]:
    cands = tuple(sorted({check_int(j, "candidate bit width", low=1, high=16) for j in candidates}))
    if not cands:
        raise ValueError("give at least one candidate bit width")
    return cands


def allocate_bits(w: Params, budget_bits: float, candidates: Iterable[int] = range(1, 9), *,
                  method: Literal["fast", "exact"] = "fast", iters: int = 30,
                  nnz: Mapping[str, int] | None = None,
                  zero_level: bool = False, time_limit: float = 10.0,
                  table: Literal["needed", "full"] = "needed") -> BitAllocation:
    """Bit allocation across tensors under a storage budget (multiple-choice knapsack).

    .. math:: \\min_{b_i \\in B} \\sum_i E_i(b_i) \\;\\text{s.t.}\\;
        \\sum_i b_i \\|W^{(i)}\\|_0 \\le S, \\qquad
        E_i(j) = \\min_{|V| = 2^j} \\|W^{(i)}_{\\ne 0} - V[a]\\|^2

    Yang et al., "Automatic neural network compression by sparsity-quantization joint
    learning", CVPR 2020, eq. (10), Definition 1 and Proposition 2: each tensor is a group,
    each candidate width j an item of weight ``j·nnz_i`` and profit ``-E_i(j)``; solved by
    :func:`mckp_solve`: the greedy (the LP bound, and the answer when the LP optimum is
    integral), then exactly on the items that may beat it, by the Pareto DP or an MILP
    (HiGHS, within `time_limit`), at any number of tensors; ``path`` says which. Only the
    nonzeros are quantized and counted (zeros stay zero).

    Parameters
    ----------
    w : mapping name -> array (real floating, any shape, one library and device).
    budget_bits : S >= 0, in bits.
    candidates : bit widths B, each in 1..16 (default 1..8).
    method : the error table E by ``"fast"`` (:func:`kmeans1d_sweep`'s device-agnostic
        k-means, within 1% of optimal on the benchmark layers) or ``"exact"`` (kmeans1d on the
        host; O(2^j n) per entry).
    iters : Lloyd iterations of the fast method.
    nnz : mapping name -> int, optional
        The counts ``||W_i||_0`` that the budget charges (default: the nonzeros of `w`). The
        joint ADMM charges W's nonzeros for V (Yang et al. eq. 10, ``g(V, W)``).
    zero_level : bool
        Quantize every entry to 0 or one of the 2^j learned levels (eq. 10 read literally:
        ``b(V)`` counts distinct nonzeros, so zeros are free and V's support is not W's); E is
        then :func:`kmeans1d_sweep`'s ``zero_level`` error, and ``theta`` holds
        :func:`quantize_zero_level` codes. Default: only the nonzeros are quantized.
    time_limit : seconds for the MILP of :func:`mckp_solve` (then the greedy stands).
    table : ``"needed"`` (default): compute only the entries of E that the exact MCKP needs
        (see Notes); ``errors`` holds NaN for the others. ``"full"``: every entry.

    Returns
    -------
    BitAllocation
        Bits, quantized tensors, error, LP lower bound and budget used.

    Raises
    ------
    InfeasibleBudgetError
        ``budget_bits < min(B) · Σ_i nnz_i`` (``minimum`` holds that number of bits).
    ShapeMismatchError
        `w` is empty.
    TypeError, ValueError
        Bad candidates, budget, method or table.
    UnsupportedDTypeError, NonFiniteError
        A tensor is not real floating, or holds NaN/Inf.

    Notes
    -----
    Only the entries that matter (``table="needed"``): the table's large codebooks cost most
    (the fast k-means of 2^j entries is O(4^j) work) and are rarely chosen. Every entry not
    computed is replaced by a lower bound on it: a k-clustering of n sorted values leaves at
    least n − k of the n − 1 gaps g between neighbours inside clusters, and a cluster costs
    at least half the sum of its inner g² (``(y_b − y_a)² >= Σ_{a<=l<b} g_l²``), so
    ``E(k) >= ½ · (sum of the n − k smallest g²)`` (with the level 0 of `zero_level`:
    the bound for k + 1). The MCKP is solved exactly on this table; if its choice uses no
    bound, it is optimal for the full table too (its value is exact, and no choice can do
    better on the full table than on the smaller one); else the chosen entries (only they:
    the next wider one's k-means costs 4x and is rarely chosen) are computed and the MCKP
    solved again, at most one round per entry of the table. First computed: the widths up to
    ``ceil(S / Σ nnz) + 1`` (and up to 4 bits). The answer is the same as with the full
    table (up to ties between equal errors), at a fraction of its cost when the budget is
    tight (the joint ADMM at 2000×).

    All tensors' errors are compared in one frame, scaled by ``2^-2E`` (E the binary
    exponent of the largest ``|w|``), so the choice is the same at every finite magnitude;
    ``errors``, ``error`` and ``lp_bound`` are reported in w's units squared unless they
    would leave the float range (see ``exponent``).

    Cost: the error table (one sort per tensor, then per width the k-means; for numpy and
    CPU torch tensors the k-means of all tensors that need one width run together, one
    padded stack per width, with the per-tensor results bit for bit; the DP's chunks run on
    one thread per CPU the process may use, at most 4), a host transfer
    of |B| numbers and one nonzero count per tensor, and an O(N log N) greedy over the N = |B|
    × tensors items, plus, when the LP optimum is fractional, the exact solver on the items
    that may beat the greedy (the Pareto DP, at most 10⁵ states per tensor, else the MILP).
    The allocation is optimal for the error table when ``optimal`` (in the benchmarks:
    always, up to 1,000 tensors); in all cases ``lp_bound <= optimal error <= error``.
    Optimal for the table is not optimal for the weights when ``method="fast"`` (its errors
    are within 1% of the exact k-means).

    Examples
    --------
    >>> import numpy as np
    >>> w = {"a": np.array([1.0, 2.0, 3.0, 4.0]), "b": np.array([0.0, 5.0, 5.1, 5.3])}
    >>> r = allocate_bits(w, budget_bits=11, candidates=[1, 2])
    >>> r.bits, r.budget_used, round(r.error, 3), r.integral
    ({'a': 2, 'b': 1}, 11, 0.005, True)
    """
    w = tree_check(w)
    if not w:
        raise ShapeMismatchError("w is empty: give at least one tensor")
    hosted = {n: host_numpy(x) for n, x in w.items()}
    if all(h is not None for h in hosted.values()) and any(hosted[n] is not x
                                                          for n, x in w.items()):
        # torch tensors on the CPU: the same work on numpy views (its many small steps cost
        # about 1 µs each in numpy, 5-20 µs in torch), Θ handed back as torch tensors
        r = allocate_bits(hosted, budget_bits, candidates, method=method, iters=iters,
                          nnz=nnz, zero_level=zero_level, time_limit=time_limit, table=table)
        like = next(iter(w.values()))
        return dataclasses.replace(r, theta={
            n: Quantized(from_numpy(q.codebook, like), from_numpy(q.assignments, like))
            for n, q in r.theta.items()})
    s = check_nonneg(budget_bits, "budget_bits")
    cands = _check_candidates(candidates)
    if table not in ("needed", "full"):
        raise ValueError(f"table must be 'needed' or 'full', got {table!r}")
    if method not in ("exact", "fast"):
        raise ValueError(f"method must be 'exact' or 'fast', got {method!r}")
    check_int(iters, "iters")
    if not isinstance(zero_level, bool | np.bool_):
        raise TypeError(f"zero_level must be a bool, got {type(zero_level).__name__}")
    ks = [2**j for j in cands]
    if nnz is not None:
        if set(nnz) != set(w):
            raise ShapeMismatchError(f"nnz names {sorted(nnz)} differ from w's {sorted(w)}")
        for name, c in nnz.items():
            if isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 0:
                raise ValueError(f"nnz[{name!r}] must be an int >= 0, got {c!r}")
    charged = {n: int(nnz[n]) for n in w} if nnz is not None else {
        n: count_nonzero(x) for n, x in w.items()}
    minimum = cands[0] * sum(charged.values())
    if s < minimum:
        raise InfeasibleBudgetError(
            f"budget {s:g} bits is below the cheapest allocation, {cands[0]} bits for each of "
            f"the {sum(charged.values())} nonzeros = {minimum} bits", budget=s, minimum=minimum)
    for x in w.values():
        check_finite(x)
    names = list(w)
    sweeps = {n: _Sweep(w[n], sparse=True, method=method, iters=iters, zero_level=zero_level)
              for n in names}
    exps = {n: int(sw.st.e) for n, sw in sweeps.items()}  # one host read per tensor
    # the common frame: errors · 2^-2·big, big the largest exponent of a tensor with a
    # nonzero: _array.common_exponent's rule, on the frames the sweeps already hold (an
    # all-zero tensor's errors are 0 at every width, and its exponent, 0, would push every
    # other tensor's errors below the float range at extreme magnitudes)
    big = max((exps[n] for n in names if sweeps[n].st.s.shape[0]), default=0)

    def to_common(n: str, v: np.ndarray) -> np.ndarray:
        return np.ldexp(v, 2 * (exps[n] - big))

    if table == "full":
        done = {n: set(range(len(cands))) for n in names}
        lower = {n: np.zeros(len(cands)) for n in names}
    else:
        top = max(math.ceil(s / max(sum(charged.values()), 1)) + 1, 4)
        done = {n: {j for j, b in enumerate(cands) if b <= top} | {0} for n in names}
        lower = {n: to_common(n, _gap_bound(sweeps[n].st.s, ks, zero_level)) for n in names}
    weights = [[j * charged[n] for j in cands] for n in names]
    tab: dict[str, np.ndarray] = {}
    batch = SweepBatch([sweeps[n] for n in names])
    while True:  # rounds of the needed entries (one when the table is full)
        # the entries of every tensor, batched by codebook size (bit for bit the per-tensor
        # sweeps' results: SweepBatch)
        batch.compute([[ks[j] for j in sorted(done[n])] for n in names])
        for n in names:  # a loop over tensors
            sw, need = sweeps[n], sorted(done[n])
            t = lower[n].copy()
            t[need] = to_common(n, to_numpy(sw.frame_sse([ks[j] for j in need]))
                                .astype(np.float64))
            tab[n] = t
        sol = mckp_solve([-tab[n] for n in names], weights, s, time_limit=time_limit)
        missing = [(n, c) for n, c in zip(names, sol.choice, strict=True) if c not in done[n]]
        if not missing:
            break
        if not sol.optimal:  # no certificate on the smaller table: the full one
            done = {n: set(range(len(cands))) for n in names}
            continue
        for n, c in missing:
            done[n].add(c)
    res, choice = sol.greedy, sol.choice
    bits = {n: cands[c] for n, c in zip(names, choice, strict=True)}
    quantize = quantize_zero_level if zero_level else partial(_quantized, sparse=True)
    theta = {n: quantize(w[n], sweeps[n].book(ks[c])) for n, c in zip(names, choice, strict=True)}
    unit = square_exponent(math.ldexp(0.5, big), _F64_MAX)  # 0 unless beyond 2^±255
    errors = {}
    for n in names:
        e = np.full(len(cands), np.nan)
        need = sorted(done[n])
        e[need] = np.ldexp(tab[n][need], 2 * (big - unit))
        errors[n] = e
    err = float(sum(tab[n][c] for n, c in zip(names, choice, strict=True)))
    return BitAllocation(
        bits=bits, theta=theta, candidates=cands, errors=errors, nnz=charged,
        error=ldexp_float(err, 2 * (big - unit)),
        lp_bound=ldexp_float(0.0 - res.lp_bound, 2 * (big - unit)),
        budget_used=sum(bits[n] * charged[n] for n in names),
        budget=s, integral=res.integral, optimal=sol.optimal, path=sol.path, exponent=unit,
    )


def _gap_bound(s: Array, ks: Sequence[int], zero_level: bool) -> np.ndarray:
    """Lower bounds on the k-means errors of the sorted values `s` for the sizes `ks` (host
    float64): ``½ · (sum of the n − k smallest squared gaps)``, for k + 1 with the level 0
    (see :func:`allocate_bits`). O(n log n) on `s`'s device, |ks| numbers to the host."""
    xp = array_namespace(s)
    n = s.shape[0]
    if n < 2:
        return np.zeros(len(ks))
    g = s[1:] - s[:-1]
    g2 = xp.sort(g * g, stable=False)  # ascending
    cum = to_numpy(xp.cumulative_sum(g2, include_initial=True)).astype(np.float64)
    m = np.asarray([max(n - k - (1 if zero_level else 0), 0) for k in ks])
    return 0.5 * cum[m]


@dataclass(frozen=True)
class MixedPrecision:
    """Quantize every tensor's nonzeros with its own bit width, Σ b_i nnz_i <= budget.

    A :class:`~compressopt.projections.base.Compression` (the quantization C step of Yang et
    al. 2020, eq. 10) whose Θ is a ``dict`` name -> sparse-mode
    :class:`~compressopt.projections.quantization.Quantized`. Heuristic (MCKP greedy over the
    error table; exact when the LP optimum is integral and ``method="exact"``).
    """

    budget_bits: float
    candidates: tuple[int, ...] = tuple(range(1, 9))
    method: Literal["fast", "exact"] = "fast"

    exact = False

    def __post_init__(self) -> None:
        check_nonneg(self.budget_bits, "budget_bits")
        object.__setattr__(self, "candidates", _check_candidates(self.candidates))

    def compress(self, w: Params, /) -> dict[str, Quantized]:
        return allocate_bits(w, self.budget_bits, self.candidates, method=self.method).theta

    def decompress(self, theta: Mapping[str, Quantized], /) -> dict[str, Array]:
        return {n: _dequantize(q) for n, q in theta.items()}

    def cost(self, theta: Mapping[str, Quantized], /) -> dict[str, StorageCost]:
        return {n: _quant_cost(q) for n, q in theta.items()}

    def contains(self, w: Params, /, *, atol: float = 0.0) -> bool:
        """Whether some widths in B give every tensor few enough values within the budget.

        Exact membership (``atol`` ignored): tensor i with D_i distinct nonzeros needs the
        smallest width of B with ``2^b >= D_i``.
        """
        used = 0
        for x in tree_check(w).values():
            xp = array_namespace(x)
            v = xp.reshape(x, (-1,))
            need = bits_for(max(numel(xp.unique_values(v[v != 0])), 1))
            b = next((j for j in self.candidates if j >= need), None)  # cheapest width that fits
            if b is None:
                return False
            used += b * count_nonzero(x)
        return used <= self.budget_bits
