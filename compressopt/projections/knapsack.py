"""Weighted ℓ0 projection under a storage budget: a 0-1 knapsack over all weights.

Yang, Gui, Zhu & Liu, "Automatic neural network compression by sparsity-quantization joint
learning: a constrained optimization-based approach", CVPR 2020, eq. (8) and Proposition 1:
with tensor i stored at b_i bits per nonzero, the pruning step

.. math:: \\min_{\\bar W} \\sum_i \\|\\bar W^{(i)} - W^{(i)}\\|^2 \\;\\text{s.t.}\\;
    \\sum_i b_i \\|\\bar W^{(i)}\\|_0 \\le S

keeps a subset of the entries unchanged (a kept entry is best left as it is): a 0-1 knapsack
whose items are the entries, with profit ``W̄²`` (the error saved by keeping it) and weight
b_i. The greedy by profit density ``W̄²/b_i`` is the LP relaxation's optimum up to one
fractional item (Dantzig 1957), so its value is within one item's profit of the optimum and
the LP bound certifies the gap without an ILP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from compressopt._array import Array, array_namespace, check_floating, numel
from compressopt.errors import NonFiniteError, ShapeMismatchError, UnsupportedDTypeError
from compressopt.projections._util import (
    acc_dtype,
    check_int,
    check_nonneg,
    flat,
    mask_top,
    sort_owned,
    to_ints,
    to_list,
)
from compressopt.projections.base import StorageCost, count_nonzero
from compressopt.projections.cardinality import Pruned
from compressopt.tree import Params, tree_check

__all__ = ["KnapsackPruning", "KnapsackResult", "project_knapsack"]

_PROBES = 15  # probes per tensor and round of the break-item search: log_16(n) rounds


class KnapsackResult(NamedTuple):
    """Result of :func:`project_knapsack`.

    ``objective``, ``lp_bound`` and ``break_profit`` are 0-d arrays on the weights' device
    (accumulation dtype, float64 where available): ``float()`` them to read. The counts are
    Python ints (read once by the projection).

    Attributes
    ----------
    w : dict name -> array
        The projection: kept entries unchanged, the others zero (shapes and dtypes of the
        input).
    masks : dict name -> bool array
        The kept entries.
    kept : dict name -> int
        Entries kept per tensor.
    objective : 0-d array
        ``Σ_kept W̄²``, the knapsack profit (maximized), summed in float64 from the kept
        densities times b_i (relative rounding 2⁻²⁴ in float32); the squared distance
        ``||W - P(W)||²`` is ``Σ W̄² - objective``.
    budget_used : int
        ``Σ_i b_i · kept_i`` bits (<= budget).
    lp_bound : 0-d array
        Optimum of the LP relaxation: ``objective <= OPT <= lp_bound``.
    break_profit : 0-d array
        Profit W̄² of the first item the greedy could not take (0 if everything fits):
        ``lp_bound - objective <= break_profit``, hence ``objective >= OPT - max profit``.
    budget : float
        The budget S in bits.
    """

    w: dict[str, Array]
    masks: dict[str, Array]
    kept: dict[str, int]
    objective: Array
    budget_used: int
    lp_bound: Array
    break_profit: Array
    budget: float


def _check_bits(bits: Mapping[str, Any], names: list[str]) -> list[int]:
    if not isinstance(bits, Mapping):
        raise TypeError(f"bits must be a mapping name -> int, got {type(bits).__name__}")
    if set(bits) != set(names):
        raise ShapeMismatchError(
            f"bits and w must name the same tensors: only in w {sorted(set(names) - set(bits))}, "
            f"only in bits {sorted(set(bits) - set(names))}"
        )
    return [check_int(bits[n], f"bits[{n!r}]", low=1) for n in names]


def project_knapsack(w: Params, bits: Mapping[str, int], budget_bits: float) -> KnapsackResult:
    """Keep the entries of largest W̄²/b_i under the storage budget Σ_i b_i ||W̄^(i)||_0 <= S.

    .. math:: \\max_{M} \\sum_i \\sum_{k \\in M_i} (W^{(i)}_k)^2 \\;\\text{s.t.}\\;
        \\sum_i b_i |M_i| \\le S

    (Yang et al., CVPR 2020, eq. (8), Proposition 1), solved by the density greedy: entries in
    decreasing order of ``W̄²/b_i``, taken while they fit; then every later entry that still
    fits (tensors with fewer bits per entry can use the remainder). Zero entries are never
    kept (they have no profit).

    Parameters
    ----------
    w : mapping name -> array (real floating, any shapes, one library and device).
    bits : mapping name -> int >= 1, the bits b_i of a kept entry of tensor i (same names).
    budget_bits : S >= 0, in bits.

    Returns
    -------
    KnapsackResult
        The projection, masks, objective, budget used and the LP bound; ``objective >=
        lp_bound - break_profit`` (greedy within one item of the optimum), and the result is
        optimal when everything nonzero fits or the budget is used exactly.

    Raises
    ------
    ShapeMismatchError
        `w` is empty, or `bits` does not name the same tensors.
    TypeError, ValueError
        A bit width is not an int >= 1, or the budget is negative or not finite.
    UnsupportedDTypeError, NonFiniteError
        A tensor is not real floating, the tensors differ in dtype, or one holds NaN/Inf.

    Notes
    -----
    Heuristic with a certificate (greedy for a 0-1 knapsack, Dantzig 1957; KPP 2004 §2.1).
    The order is by the densities as rounded in the input dtype (ties: tensors in the
    mapping's order, then flat index), so the bound is exact up to that rounding (relative
    2⁻²⁴ in float32).

    Cost: one sort per tensor (O(n log n) in all; in place on numpy), about five elementwise
    passes, a lockstep search over the tensors for the first entry that does not fit
    (``log_16 n`` rounds of O(T²·15) scalar work, T tensors) and ``ceil(max b / min b)`` fill
    steps. No host transfer of weights: the T kept counts (and T tie flags) are read once.

    Examples
    --------
    >>> import numpy as np
    >>> w = {"a": np.array([3.0, -1.0, 0.5]), "b": np.array([2.0, 1.9])}
    >>> r = project_knapsack(w, {"a": 8, "b": 2}, budget_bits=12)
    >>> r.w["a"].tolist(), r.w["b"].tolist(), float(r.budget_used)
    ([3.0, 0.0, 0.0], [2.0, 1.9], 12.0)
    >>> float(r.objective), float(r.lp_bound)
    (16.61, 16.61)
    """
    if not isinstance(w, Mapping) or not w:
        raise ShapeMismatchError("w must be a non-empty mapping name -> array")
    names = list(w)
    xs = [w[n] for n in names]
    for n_, x in zip(names, xs, strict=True):
        check_floating(x, f"w[{n_!r}]")
    bl = _check_bits(bits, names)
    s_budget = check_nonneg(budget_bits, "budget_bits")
    xp = array_namespace(*xs)
    kdt = xs[0].dtype
    if any(x.dtype != kdt for x in xs):
        raise UnsupportedDTypeError(
            f"all tensors must share one dtype, got {sorted({str(x.dtype) for x in xs})}")
    acc = acc_dtype(xs[0])
    dev = xs[0].device
    t = len(xs)
    i64 = xp.int64
    n = [numel(x) for x in xs]

    # Keys (densities W̄²/b in the input dtype) per tensor, sorted ascending (in place where
    # the library allows): desc position j is asc index n-1-j.
    fl = [flat(x) for x in xs]
    srt = [sort_owned(_density(f, b)) for f, b in zip(fl, bl, strict=True)]
    top = xp.stack([xp.astype(s_l[-1], acc) if n_l else xp.zeros((), dtype=acc, device=dev)
                    for s_l, n_l in zip(srt, n, strict=True)])
    if not bool(xp.all(xp.isfinite(top))):  # NaN and Inf sort last: one check per tensor
        bad = [nm for nm, v in zip(names, to_list(top), strict=True) if not math.isfinite(v)]
        raise NonFiniteError(f"w{bad} hold NaN or Inf entries (or entries whose square overflows)")

    def counts(v: Array) -> tuple[Array, Array]:
        """Entries of each tensor l with key >= v and > v: two (T, *v.shape) int64 arrays."""
        q = xp.reshape(xp.astype(v, kdt), (-1,))
        both = xp.concat([q, xp.nextafter(q, xp.full_like(q, math.inf))])
        c = xp.astype(xp.stack([n_l - xp.searchsorted(s_l, both, side="left")  # per tensor
                                for s_l, n_l in zip(srt, n, strict=True)]), i64)
        m = q.shape[0]
        return xp.reshape(c[:, :m], (t, *v.shape)), xp.reshape(c[:, m:], (t, *v.shape))

    def key_at(pos: Array) -> Array:
        """Keys at desc positions pos[i, ...] of tensor i (clipped into range), acc dtype."""
        out = []
        for i in range(t):  # a loop over tensors
            if n[i] == 0:
                out.append(xp.zeros(pos.shape[1:], dtype=acc, device=dev))
                continue
            p = xp.reshape(xp.minimum(xp.maximum(pos[i, ...], 0), n[i] - 1), (-1,))
            out.append(xp.reshape(xp.astype(xp.take(srt[i], n[i] - 1 - p), acc), pos.shape[1:]))
        return xp.stack(out)

    bw = xp.asarray(bl, dtype=acc, device=dev)
    lvl = xp.arange(t, device=dev)

    def prefix(v: Array, own: Array) -> Array:
        """Entries of tensor l up to item i in the greedy order (key desc, then tensor): for
        items with keys v[i, ...] and own-tensor counts own[i, ...]; shape (T_l, T_i, ...)."""
        ge, gt = counts(v)
        ones = (1,) * (v.ndim - 1)
        ll, ii = xp.reshape(lvl, (t, 1, *ones)), xp.reshape(lvl, (1, t, *ones))
        return xp.where(ll < ii, ge, xp.where(ll > ii, gt, own[None, ...]))

    def bits_of(c: Array) -> Array:
        bshape = (t,) + (1,) * (c.ndim - 1)
        return xp.sum(xp.astype(c, acc) * xp.reshape(bw, bshape), axis=0)

    # nonzero keys: the entries worth keeping
    nnz = xp.stack([n_l - xp.astype(xp.searchsorted(
        s_l, xp.zeros((1,), dtype=s_l.dtype, device=dev), side="right")[0], i64)
        for s_l, n_l in zip(srt, n, strict=True)])

    # j_i = last desc position of tensor i whose greedy prefix fits (-1 if none): a search
    # with G probes per tensor per round, all tensors in lockstep (lo fits, hi does not).
    lo = xp.full((t,), -1, dtype=i64, device=dev)
    hi = nnz
    g = xp.reshape(xp.arange(1, _PROBES + 1, dtype=i64, device=dev), (1, -1))
    rounds = 0
    while (_PROBES + 1) ** rounds < max(n) + 1:  # each round divides the spans by G + 1
        rounds += 1
    for _ in range(rounds):
        span = hi - lo
        probe = xp.minimum(lo[:, None] + (span[:, None] * g + _PROBES) // (_PROBES + 1),
                           hi[:, None] - 1)  # (T, G) positions in (lo, hi), nondecreasing
        probe = xp.maximum(probe, lo[:, None] + 1)
        fits = bits_of(prefix(key_at(probe), probe + 1)) <= s_budget  # (T, G)
        fits = fits & (probe < hi[:, None])
        last = xp.sum(xp.astype(fits, i64), axis=1)  # probes that fit form a prefix
        new_lo = xp.where(last > 0, xp.take_along_axis(probe, xp.maximum(last - 1, 0)[:, None],
                                                      axis=1)[:, 0], lo)
        nxt = xp.take_along_axis(probe, xp.minimum(last, _PROBES - 1)[:, None], axis=1)[:, 0]
        new_hi = xp.where((last < _PROBES) & (nxt < hi), nxt, hi)
        lo, hi = new_lo, new_hi

    # The first entry that does not fit (the break item) is the greedy-first of the (i, j_i+1).
    cand = lo + 1
    has = cand < nnz
    cv = xp.where(has, key_at(cand), xp.full((t,), -math.inf, dtype=acc, device=dev))
    star = xp.argmax(cv)
    any_break = xp.any(has)
    onehot = lvl == star
    vstar = xp.take(cv, xp.reshape(star, (1,)))
    c_break = xp.sum(xp.where(onehot[None, :], prefix(xp.broadcast_to(vstar, (t,)), cand), 0),
                     axis=1)
    c = xp.where(any_break, xp.minimum(c_break, nnz), nnz)
    used = bits_of(c)
    bstar = xp.sum(xp.where(onehot, bw, xp.zeros_like(bw)))
    p_break = xp.where(any_break, vstar[0] * bstar, xp.zeros_like(bstar))
    theta = xp.where(any_break, (s_budget - used) / bstar, xp.zeros_like(bstar))

    # Fill: later entries that still fit, greedy order. The room left is below the break
    # item's bits <= max b and each entry takes >= min b, so at most F = ceil(max b / min b)
    # - 1 of them fit: the next F keys of every tensor are read once.
    nf = -(-max(bl) // min(bl)) - 1
    taken = xp.zeros((t,), dtype=i64, device=dev)
    fill_profit = xp.zeros((), dtype=acc, device=dev)
    if nf > 0:
        ahead = c[:, None] + xp.reshape(xp.arange(nf, dtype=i64, device=dev), (1, nf))
        nxt = xp.where(ahead < nnz[:, None], key_at(ahead),
                       xp.full((t, nf), -math.inf, dtype=acc, device=dev))
    for _ in range(nf):
        nv = xp.take_along_axis(nxt, xp.minimum(taken, nf - 1)[:, None], axis=1)[:, 0]
        ok = (bw <= s_budget - used) & (taken < nf) & (nv > -math.inf)
        nv = xp.where(ok, nv, xp.full_like(nv, -math.inf))
        pick = (lvl == xp.argmax(nv)) & xp.any(ok)
        taken = taken + xp.astype(pick, i64)
        used = used + xp.sum(xp.where(pick, bw, xp.zeros_like(bw)))
        fill_profit = fill_profit + xp.sum(xp.where(pick, nv * bw, xp.zeros_like(bw)))
    c = c + taken

    # Masks: the top c_l keys of each tensor. One transfer of T counts and T flags: a tensor
    # with a partial tie at its threshold needs ranks among the ties (rare); the others keep
    # |x| >= a_l, the smallest magnitude whose key reaches the threshold.
    thr = key_at(c - 1)
    ge, gt = counts(thr)
    diag = lvl[:, None] == lvl[None, :]
    ties = xp.sum(xp.where(diag, ge - gt, 0), axis=0)
    above = xp.sum(xp.where(diag, gt, 0), axis=0)
    partial = (c > 0) & (ties > c - above)
    host = to_ints(xp.concat([c, xp.astype(partial, i64)]))
    kept, need_ranks = host[:t], host[t:]
    thr_k = xp.astype(thr, kdt)  # keys of the tensors: exact in their dtype
    # |x| >= a_l keeps the entries of tensor l whose key reaches thr_l (all tensors at once;
    # a tensor that keeps nothing has no threshold, and its a_l is unused)
    alive = thr_k > 0
    a_all = _magnitude_threshold(xp.where(alive, thr_k, xp.ones_like(thr_k)),
                                 xp.asarray(bl, dtype=kdt, device=dev))
    masks, out, obj = {}, {}, []
    for i, name in enumerate(names):  # a loop over tensors
        f, b, ci = fl[i], bl[i], kept[i]
        if ci == 0:
            m = xp.zeros(f.shape, dtype=xp.bool, device=dev)
        elif need_ranks[i]:
            m = mask_top(_density(f, b), thr_k[i], ci)
        else:
            m = xp.abs(f) >= a_all[i]
        masks[name] = xp.reshape(m, xs[i].shape)
        o = xp.astype(m, f.dtype)
        o *= f  # in place on the new array: one allocation for the output
        o += 0.0  # -0.0 -> 0.0
        out[name] = xp.reshape(o, xs[i].shape)
        obj.append(b * xp.sum(srt[i][n[i] - ci :], dtype=acc))
    objective = xp.sum(xp.stack(obj))
    lp = objective - fill_profit + theta * p_break
    return KnapsackResult(w=out, masks=masks, kept=dict(zip(names, kept, strict=True)),
                          objective=objective, budget_used=sum(b * k for b, k in zip(
                              bl, kept, strict=True)),
                          lp_bound=xp.maximum(lp, objective), break_profit=p_break,
                          budget=s_budget)


def _density(f: Array, b: int) -> Array:
    """``(f * f) / b``: a new array (divided in place), the key of the greedy order."""
    k = f * f
    k /= b
    return k


def _magnitude_threshold(thr: Array, b: Array) -> Array:
    """The smallest a >= 0 with ``(a*a)/b >= thr`` in the dtype of `thr`, elementwise (thr > 0;
    `b` holds the bit widths in the same dtype and shape).

    ``(a*a)/b`` rounds monotonically in a, so ``|x| >= a`` selects exactly the entries whose
    key reaches `thr`. Start a few ulps below sqrt(thr b) and step up: O(thr.size) work.
    """
    xp = array_namespace(thr)
    a = xp.sqrt(thr * b)
    zero, inf = xp.zeros_like(a), xp.full_like(a, math.inf)
    for _ in range(4):
        a = xp.nextafter(a, zero)
    for _ in range(12):
        a = xp.where((a * a) / b >= thr, a, xp.nextafter(a, inf))
    return a


@dataclass(frozen=True)
class KnapsackPruning:
    """Pruning under a storage budget with fixed bits per tensor (a Compression).

    Feasible set: ``Σ_i bits[i] · ||w_i||_0 <= budget_bits``. Θ is a ``dict`` name ->
    :class:`~compressopt.projections.cardinality.Pruned`; the cost counts ``bits[i]`` per
    nonzero (the width the values will be quantized to). Greedy with a certificate
    (:func:`project_knapsack`): not an exact projection.
    """

    bits: Mapping[str, int]
    budget_bits: float

    exact = False

    def __post_init__(self) -> None:
        _check_bits(self.bits, list(self.bits))
        check_nonneg(self.budget_bits, "budget_bits")

    def compress(self, w: Params, /) -> dict[str, Pruned]:
        r = project_knapsack(w, self.bits, self.budget_bits)
        return {n: Pruned(v) for n, v in r.w.items()}

    def decompress(self, theta: Mapping[str, Pruned], /) -> dict[str, Array]:
        return {n: t.values for n, t in theta.items()}

    def cost(self, theta: Mapping[str, Pruned], /) -> dict[str, StorageCost]:
        return {n: StorageCost(numel=numel(t.values), nnz=count_nonzero(t.values),
                               bits=int(self.bits[n])) for n, t in theta.items()}

    def contains(self, w: Params, /, *, atol: float = 0.0) -> bool:
        used = 0
        for n, x in tree_check(w).items():
            xp = array_namespace(x)
            used += self.bits[n] * int(xp.sum(xp.astype(xp.abs(x) > atol, xp.int64)))
        return used <= self.budget_bits
