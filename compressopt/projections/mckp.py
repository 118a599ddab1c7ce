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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal, NamedTuple

import numpy as np

from compressopt._array import Array, array_namespace, numel, to_numpy
from compressopt.errors import InfeasibleBudgetError, NonFiniteError, ShapeMismatchError
from compressopt.projections._util import check_int, check_nonneg
from compressopt.projections.base import StorageCost, bits_for, count_nonzero
from compressopt.projections.quantization import (
    AdaptiveQuantization,
    Quantized,
    _quantized,
    kmeans1d_sweep,
    quantize_zero_level,
)
from compressopt.tree import Params, tree_check

__all__ = [
    "BitAllocation",
    "MCKPResult",
    "MixedPrecision",
    "allocate_bits",
    "mckp_best",
    "mckp_greedy",
    "mckp_pareto",
    "upper_hull",
]


class MCKPResult(NamedTuple):
    """Greedy solution of a multiple-choice knapsack and its LP bound (:func:`mckp_greedy`).

    Attributes
    ----------
    choice : tuple of int
        Index of the chosen item in each group (into the group's input arrays).
    profit : float
        Total profit of the choice.
    weight : float
        Total weight of the choice (<= capacity).
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
    weight: float
    lp_bound: float
    integral: bool
    lp_choice: tuple[int, ...]
    fraction: tuple[int, int, float] | None


def _groups(profits: Sequence[Sequence[float]],
            weights: Sequence[Sequence[float]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validated (profits, weights) of each group as float64 vectors (see :func:`mckp_greedy`)."""
    if len(profits) != len(weights):
        raise ShapeMismatchError(f"{len(profits)} groups of profits but {len(weights)} of weights")
    out = []
    for g, (pg, wg) in enumerate(zip(profits, weights, strict=True)):
        pa = np.asarray(pg, dtype=np.float64).reshape(-1)
        wa = np.asarray(wg, dtype=np.float64).reshape(-1)
        if pa.shape != wa.shape or pa.size == 0:
            raise ShapeMismatchError(
                f"group {g}: profits {pa.shape} and weights {wa.shape} must be equal and non-empty"
            )
        if not (np.all(np.isfinite(pa)) and np.all(np.isfinite(wa))):
            raise NonFiniteError(f"group {g} holds NaN or Inf profits or weights")
        if np.any(wa < 0):
            raise ValueError(f"group {g} has a negative weight")
        out.append((pa, wa))
    return out


def upper_hull(weights: Sequence[float], profits: Sequence[float]) -> list[int]:
    """Indices of the LP-undominated items of one group, by increasing weight.

    Drops dominated items (another item is no heavier and at least as profitable; among
    equal items the first index is kept) and items strictly below the upper convex hull of
    (weight, profit) (LP-dominated, KPP Proposition 11.2.2); collinear hull points are kept so
    that the integer greedy may stop on them. O(J log J).

    Examples
    --------
    >>> upper_hull([1, 2, 3, 4], [0.0, 5.0, 6.0, 6.0])
    [0, 1, 2]
    >>> upper_hull([1, 2, 3], [0.0, 1.0, 5.0])   # (2, 1) lies below the chord
    [0, 2]
    """
    w = np.asarray(weights, dtype=np.float64)
    p = np.asarray(profits, dtype=np.float64)
    order = np.lexsort((np.arange(w.size), -p, w))  # by weight, then best profit, then index
    hull: list[int] = []
    for i in order:  # a loop over the items of one group (bit widths), not over weights
        if hull and (w[i] == w[hull[-1]] or p[i] <= p[hull[-1]]):
            continue  # same weight with less profit, or heavier and no better: dominated
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # pop b if it lies strictly below the chord from a to i
            if (p[b] - p[a]) * (w[i] - w[b]) < (p[i] - p[b]) * (w[b] - w[a]):
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
        >= 0 and finite, profits finite (may be negative).
    capacity : S >= 0.

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
    the greedy is within ``lp_bound - profit <= max Δp`` of the optimum. Runs on the host
    (an MCKP instance is tensors × bit widths numbers, not weights): O(N log N) for N items.

    Examples
    --------
    >>> r = mckp_greedy([[0.0, 5.0, 6.0], [0.0, 4.0]], [[0, 2, 4], [0, 2]], 3)
    >>> r.choice, r.profit, r.lp_bound
    ((1, 0), 5.0, 7.0)
    """
    cap = check_nonneg(capacity, "capacity")
    hulls, base_w, base_p = [], 0.0, 0.0
    inc: list[tuple[float, float, int, int]] = []  # (Δp, Δw, group, hull position)
    for g, (pa, wa) in enumerate(_groups(profits, weights)):
        h = upper_hull(wa, pa)
        hulls.append((h, pa, wa))
        base_w += wa[h[0]]
        base_p += pa[h[0]]
        for t in range(1, len(h)):
            inc.append((pa[h[t]] - pa[h[t - 1]], wa[h[t]] - wa[h[t - 1]], g, t))
    if base_w > cap:
        raise InfeasibleBudgetError(
            f"budget {cap:g} is below the cheapest choice {base_w:g} (the lightest item of "
            "every group)", budget=cap, minimum=base_w)
    dens = np.array([dp / dw for dp, dw, _, _ in inc])
    order = np.argsort(-dens, kind="stable")  # ties: group order, then hull order
    pos = [0] * len(hulls)
    used, prof = base_w, base_p
    frac: tuple[int, int, float] | None = None
    lp_bound = None
    k = 0
    while k < len(order):  # the LP's integral part: the prefix that fits
        dp, dw, g, t = inc[order[k]]
        if used + dw > cap:
            theta = (cap - used) / dw
            lp_bound = prof + theta * dp
            if theta > 0:
                frac = (g, hulls[g][0][t], theta)
            break
        used += dw
        prof += dp
        pos[g] = t
        k += 1
    lp_used, lp_prof = used, prof
    lp_bound = prof if lp_bound is None else lp_bound
    lp_pos = list(pos)

    def fill(pos: list[int], used: float, prof: float) -> tuple[list[int], float, float]:
        """Take, in density order, every increment that follows its group's last and fits."""
        blocked = set()
        for i in order:  # a loop over increments (tensors × bit widths), not over weights
            dp, dw, g, t = inc[i]
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
        dp, dw, gs, ts = inc[order[k]]
        pb, ub, qb = list(lp_pos), lp_used + dw, lp_prof + dp
        pb[gs] = ts
        for i in order[:k][::-1]:
            if ub <= cap:
                break
            dp, dw, g, t = inc[i]
            if g != gs and pb[g] == t:
                pb[g], ub, qb = t - 1, ub - dw, qb - dp
        if ub <= cap:
            pb, ub, qb = fill(pb, ub, qb)
            if qb > prof:
                pos, used, prof = pb, ub, qb
    return MCKPResult(
        choice=tuple(hulls[g][0][pos[g]] for g in range(len(hulls))),
        profit=float(prof),
        weight=float(used),
        lp_bound=float(lp_bound),
        integral=frac is None,
        lp_choice=tuple(hulls[g][0][lp_pos[g]] for g in range(len(hulls))),
        fraction=frac,
    )


def mckp_pareto(profits: Sequence[Sequence[float]], weights: Sequence[Sequence[float]],
                capacity: float, *, max_states: int = 100_000) -> tuple[int, ...] | None:
    """Exact multiple-choice knapsack by dynamic programming over Pareto-optimal partial sums.

    Solves the problem of :func:`mckp_greedy` exactly: groups are added one at a time and
    only the partial choices that no lighter (or equally heavy) partial choice beats in
    profit are kept (Nemhauser & Ullmann 1969; KPP 2004 §11.5), each feasible for `capacity`.

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
    frontier stays small (at most B^T); for many tensors it may hit `max_states`, and the
    greedy's answer stands.

    Examples
    --------
    >>> mckp_pareto([[0.0, 5.0, 6.0], [0.0, 4.0]], [[0, 2, 4], [0, 2]], 3)
    (1, 0)
    """
    cap = check_nonneg(capacity, "capacity")
    w_f, p_f = np.zeros(1), np.zeros(1)
    back: list[tuple[np.ndarray, int]] = []
    for pa, wa in _groups(profits, weights):
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


def mckp_best(profits: Sequence[Sequence[float]], weights: Sequence[Sequence[float]],
              capacity: float) -> tuple[MCKPResult, tuple[int, ...], bool]:
    """The greedy (for its LP bound), then the exact :func:`mckp_pareto` if the LP optimum is
    fractional: ``(greedy result, choice, optimal)``; `choice` is the greedy's when the DP
    gives up (then ``optimal`` is False). Raises as :func:`mckp_greedy`."""
    res = mckp_greedy(profits, weights, capacity)
    if res.integral:
        return res, res.choice, True
    exact = mckp_pareto(profits, weights, capacity)
    return (res, res.choice, False) if exact is None else (res, exact, True)


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
        entries (the profit table is its negative).
    nnz : dict name -> int
        Nonzeros per tensor.
    error : float
        Σ_i E_i(b_i), the squared distance of the quantization (what is minimized).
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
        The allocation is optimal for the error table: the LP optimum is integral or
        :func:`mckp_pareto` solved the instance (it replaces the greedy's choice then).
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
                  zero_level: bool = False) -> BitAllocation:
    """Bit allocation across tensors under a storage budget (multiple-choice knapsack).

    .. math:: \\min_{b_i \\in B} \\sum_i E_i(b_i) \\;\\text{s.t.}\\;
        \\sum_i b_i \\|W^{(i)}\\|_0 \\le S, \\qquad
        E_i(j) = \\min_{|V| = 2^j} \\|W^{(i)}_{\\ne 0} - V[a]\\|^2

    Yang et al., "Automatic neural network compression by sparsity-quantization joint
    learning", CVPR 2020, eq. (10), Definition 1 and Proposition 2: each tensor is a group,
    each candidate width j an item of weight ``j·nnz_i`` and profit ``-E_i(j)``; solved by
    :func:`mckp_greedy` (the LP bound, and the answer when the LP optimum is integral), else
    exactly by :func:`mckp_pareto` when its frontier stays small (a few tensors), else the
    greedy's answer. Only the nonzeros are quantized and counted (zeros stay zero).

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
        Bad candidates, budget or method.
    UnsupportedDTypeError, NonFiniteError
        A tensor is not real floating, or holds NaN/Inf.

    Notes
    -----
    Cost: the error table (one sort per tensor, then per width the k-means), a host transfer
    of |B| numbers and one nonzero count per tensor, and an O(N log N) greedy over the N = |B|
    × tensors items, plus the Pareto DP when the LP optimum is fractional (at most 10⁵
    states per tensor). The allocation is optimal for the error table when ``optimal``
    (LeNet-5's four tensors: always); in all cases ``lp_bound <= optimal error <= error``.
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
    s = check_nonneg(budget_bits, "budget_bits")
    cands = _check_candidates(candidates)
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
    errors, books = {}, {}
    for name, x in w.items():  # a loop over tensors
        sweep = kmeans1d_sweep(x, ks, sparse=True, method=method, iters=iters,
                               zero_level=zero_level)
        errors[name] = to_numpy(sweep.sse).astype(np.float64)
        books[name] = sweep.codebooks
    names = list(w)
    profits = [-errors[n] for n in names]
    weights = [[j * charged[n] for j in cands] for n in names]
    res, choice, optimal = mckp_best(profits, weights, s)
    bits = {n: cands[c] for n, c in zip(names, choice, strict=True)}
    quantize = quantize_zero_level if zero_level else partial(_quantized, sparse=True)
    theta = {n: quantize(w[n], books[n][c]) for n, c in zip(names, choice, strict=True)}
    return BitAllocation(
        bits=bits, theta=theta, candidates=cands, errors=errors, nnz=charged,
        error=float(sum(errors[n][c] for n, c in zip(names, choice, strict=True))),
        lp_bound=0.0 - res.lp_bound, budget_used=sum(bits[n] * charged[n] for n in names),
        budget=s, integral=res.integral, optimal=optimal,
    )


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
