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
the LP bound certifies the gap without an ILP. The greedy's prefix is a threshold on the
densities, found by a weighted selection (:mod:`compressopt.projections._selection`) in
O(n), without sorting the weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from compressopt._array import (
    Array,
    array_namespace,
    check_floating,
    from_numpy,
    host_numpy,
    ldexp,
    max_abs,
    numel,
)
from compressopt.errors import NonFiniteError, ShapeMismatchError, UnsupportedDTypeError
from compressopt.projections._selection import (
    MagnitudeKeys,
    Selection,
    apply_masks,
    first_step,
    greedy_select,
)
from compressopt.projections._util import (
    acc_dtype,
    check_int,
    check_nonneg,
    flat,
    square_exponent,
    to_ints,
    to_list,
)
from compressopt.projections.base import StorageCost, count_nonzero
from compressopt.projections.cardinality import Pruned
from compressopt.tree import Params, tree_check

__all__ = ["KnapsackPruning", "KnapsackResult", "project_knapsack"]


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
        ``Σ_kept (W̄·2^-exponent)²``, the knapsack profit (maximized), accumulated in
        float64 (the squares of float32 weights exact); the squared distance
        ``||W - P(W)||²`` is ``(Σ W̄² - objective·4^exponent)``. ``exponent`` is 0 (so
        these are Yang et al.'s profits W̄²) unless the squares of float64 weights would
        overflow or underflow (see ``exponent``).
    budget_used : int
        ``Σ_i b_i · kept_i`` bits (<= budget).
    lp_bound : 0-d array
        Optimum of the LP relaxation: ``objective <= OPT <= lp_bound``.
    break_profit : 0-d array
        Profit W̄² of the first item the greedy could not take (0 if everything fits):
        ``lp_bound - objective <= break_profit``, hence ``objective >= OPT - max profit``.
    budget : float
        The budget S in bits.
    exponent : int
        The power of two E of the profits' frame: ``objective``, ``lp_bound`` and
        ``break_profit`` are in units of ``4^E`` times w's squared units. 0 unless the
        largest ``|W̄|`` of float64 weights lies outside ``2^±255`` (where the squares leave
        the float range); then E is its binary exponent (the profits are at most the
        number of entries). Float32 weights: always 0 (their squares fit float64).
    """

    w: dict[str, Array]
    masks: dict[str, Array]
    kept: dict[str, int]
    objective: Array
    budget_used: int
    lp_bound: Array
    break_profit: Array
    budget: float
    exponent: int = 0


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
    2⁻²⁴ in float32). The densities are ``(W̄·2^e)²/b_i`` with ``e = 0`` (Yang et al.'s
    ``W̄²/b_i``) unless the largest magnitude is outside ``2^±31`` (float32; ``2^±255`` in
    float64), where a power of two keeps the squares from overflowing or underflowing:
    only entries below 2⁻⁶³ (float64: 2⁻⁵¹¹) times the largest can have a density of 0,
    and an entry of density 0 is kept only when every nonzero fits.

    Cost: O(n) expected, never a sort of the weights: a strided sample of about
    ``2 n^(2/3)`` entries (at most 65,536) brackets the density threshold; one pass over
    each tensor compares magnitudes with two per-tensor bounds (numpy: in cache-sized
    blocks), counts, and extracts the O(n^(2/3)) candidates between them; numpy float32:
    one sort of up to 2^18 candidates as 64-bit integers (a key's bits and its position),
    else rounds on the candidates until a few thousand remain, then their sort; the fill
    (at most ``ceil(max b / min b) - 1`` entries) on the host; one pass for the output. A
    bracket that misses costs another pass, never a wrong answer. Host transfers: a few
    counts per round and the sample (on an accelerator, the sample's and the last
    candidates' keys). Memory: the output, the masks, O(n^(2/3)) candidates, and (numpy)
    a bool scratch of the largest tensor's size. Measured (benchmarks/RESULTS.md, 2-core
    AMD EPYC): 4.4-5.1 × one ``np.partition`` of the same weights at 10⁶ float32, 2.1-2.2 ×
    at 10⁷.

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
    hosted = [host_numpy(x) for x in xs]
    if all(h is not None for h in hosted) and any(h is not x for h, x in zip(hosted, xs,
                                                                               strict=True)):
        # torch tensors on the CPU: the same greedy on numpy views (numpy's passes are
        # faster on one core, and no thread pool to wait for on a busy machine)
        r = project_knapsack(dict(zip(names, hosted, strict=True)), bits, budget_bits)
        like = xs[0]
        return r._replace(w={nm: from_numpy(a, like) for nm, a in r.w.items()},
                          masks={nm: from_numpy(a, like) for nm, a in r.masks.items()},
                          objective=from_numpy(r.objective, like),
                          lp_bound=from_numpy(r.lp_bound, like),
                          break_profit=from_numpy(r.break_profit, like))
    bl = _check_bits(bits, names)
    s_budget = check_nonneg(budget_bits, "budget_bits")
    xp = array_namespace(*xs)
    kdt = xs[0].dtype
    if any(x.dtype != kdt for x in xs):
        raise UnsupportedDTypeError(
            f"all tensors must share one dtype, got {sorted({str(x.dtype) for x in xs})}")
    acc = acc_dtype(xs[0])
    dev = xs[0].device
    fl = [flat(x) for x in xs]
    n = [numel(x) for x in xs]
    if sum(b * k for b, k in zip(bl, n, strict=True)) >= 2**62:
        raise ValueError("Σ bits[i] · size(w[i]) must be below 2**62")

    sel, top = None, None
    if sum(b * k for b, k in zip(bl, n, strict=True)) > s_budget:
        sel, top = _select(names, fl, bl, math.floor(s_budget))
    else:
        _check_finite(names, fl, acc)
    if sel is None or sel.brk is None:
        # every positive key fits: keep every nonzero if they fit (the identity), else the
        # selection stands (it leaves out only entries whose key underflows to 0)
        nnz = to_ints(xp.stack([xp.astype(xp.count_nonzero(f), xp.int64) for f in fl]))
        used = sum(b * k for b, k in zip(bl, nnz, strict=True))
        if used <= s_budget:
            sel = Selection(masks=[f != 0 for f in fl], kept=nnz, used=used, prefix_used=used,
                            brk=None, fill=[])

    if top is None:
        top = max(to_list(xp.stack([max_abs(f) for f in fl])))
    ex = square_exponent(top, float(xp.finfo(acc).max))
    with np.errstate(over="ignore"):
        outs, obj = apply_masks(fl, sel.masks, acc, ex)
        masks = {nm: xp.reshape(m, x.shape) for nm, m, x in zip(names, sel.masks, xs,
                                                                 strict=True)}
        out = {nm: xp.reshape(o, x.shape) for nm, o, x in zip(names, outs, xs, strict=True)}
        objective = xp.sum(xp.stack(obj))
        zero = xp.zeros((), dtype=acc, device=dev)
        if sel.brk is None:
            p_break, lp = zero, objective
        else:
            bt, bi = sel.brk

            def profit(v: Array) -> Array:
                v = xp.astype(v, acc)
                return (ldexp(v, -ex) if ex else v) ** 2

            p_break = profit(fl[bt][bi])
            fill_profit = xp.sum(xp.stack([zero] + [profit(fl[t][j]) for t, j in sel.fill]))
            theta = (s_budget - sel.prefix_used) / bl[bt]  # the fraction of the break item
            lp = xp.maximum(objective - fill_profit + theta * p_break, objective)
    return KnapsackResult(w=out, masks=masks, kept=dict(zip(names, sel.kept, strict=True)),
                          objective=objective, budget_used=sel.used, lp_bound=lp,
                          break_profit=p_break, budget=s_budget, exponent=ex)


def _select(names: list[str], fl: list[Array], bl: list[int], cap: int
            ) -> tuple[Selection, float]:
    """The density greedy by selection, and the largest magnitude; NonFiniteError if a tensor
    holds NaN or Inf (found by the first pass over the weights, which also gives the exact
    largest magnitude: the scale of the keys, first taken from the sample, is corrected if
    it differs)."""
    n = [numel(f) for f in fl]
    step = first_step(sum(n))
    xp = array_namespace(*fl)
    top = max(to_list(xp.stack([xp.max(xp.abs(f[::step])) if f.shape[0] else
                                xp.zeros((), dtype=f.dtype, device=f.device) for f in fl])))
    for _ in range(2):  # a second time only if the sample's largest magnitude misled
        keys = _DensityKeys(fl, bl, top, step)
        sel = greedy_select(keys, n, bl, cap, like=fl[0])
        tops = keys.tops()
        if not all(math.isfinite(v) for v in tops):
            bad = [nm for nm, v in zip(names, tops, strict=True) if not math.isfinite(v)]
            raise NonFiniteError(f"w{bad} hold NaN or Inf entries")
        top = max(tops)
        if _shift(top, keys.limit) == keys.shift:
            break
    return sel, top


def _check_finite(names: list[str], fl: list[Array], acc: Any) -> None:
    xp = array_namespace(*fl)
    ok = to_list(xp.stack([xp.astype(xp.all(xp.isfinite(f)), acc) for f in fl]))
    if not all(ok):
        bad = [nm for nm, v in zip(names, ok, strict=True) if not v]
        raise NonFiniteError(f"w{bad} hold NaN or Inf entries")


def _shift(top: float, limit: int) -> int:
    """The exponent e of the keys' scale 2^e for the largest magnitude `top`."""
    e_top = math.frexp(top)[1] if math.isfinite(top) else 0
    return 0 if -(limit // 2) <= e_top <= limit // 2 else limit - e_top


class _DensityKeys(MagnitudeKeys):
    """The greedy's keys ``(f·2^e)² / b_i`` in the weights' dtype.

    ``e = 0`` (the keys ``f²/b`` of Yang et al.) when the largest magnitude `top` lies within
    ``2^±(m/2)``, for a dtype whose largest finite value is about ``2^(2m+2)`` (float32: m =
    63, float64: m = 511); otherwise the power of two that brings it just below ``2^m``. No
    square overflows then, and only entries below ``2^-m`` times the largest (float32:
    2^-63, a profit below 2^-126 of the largest) can round to a key of 0 (never kept).
    Scaling by a power of two keeps the order of the keys that do not underflow. The key is
    a nondecreasing function of |f| (a square, a division and roundings).
    """

    def __init__(self, fl: list[Array], bl: list[int], top: float, step: int) -> None:
        super().__init__(fl, step)
        self.bl = bl
        self.limit = (math.frexp(float(self.xp.finfo(self.dtype).max))[1] - 2) // 2  # f32: 63
        self.shift = _shift(top, self.limit)
        self.bvec = self.xp.asarray(bl, dtype=self.dtype, device=self.dev)

    def key(self, i: int, v: Array) -> Array:
        return self._key(v, self.bl[i])

    def _key(self, v: Array, b: Any) -> Array:
        """The keys of the values `v` for bits `b` (an int, or an array like v): new array."""
        if self.shift:
            v = _ldexp(v, self.shift, self.limit)
            v *= v
        else:
            v = v * v
        v /= b
        return v

    def magnitudes(self, p: Array) -> Array:
        """``a_i(p)`` for every tensor: the smallest magnitude whose key reaches p > 0, exactly
        (inf if none does), around the estimate ``x_i = sqrt(p b_i) 2^-e``: numpy first
        reads it off a grid of x_i's neighbours (:meth:`_grid`); else (or when the grid does
        not hold it) a bracket around x_i, then a bisection over the representable numbers
        (geometric while the ends are far apart)."""
        xp = self.xp
        acc = acc_dtype(p)
        x = xp.sqrt(xp.astype(p, acc)) * xp.sqrt(xp.asarray(self.bl, dtype=acc, device=self.dev))
        x = xp.astype(x * 2.0**-self.shift if self.shift else x, self.dtype)
        if self.numpy:
            a = self._grid(x, p)
            if a is not None:
                return a
        zero, inf = xp.zeros_like(x), xp.full_like(x, math.inf)

        def reaches(v: Array) -> Array:
            with np.errstate(over="ignore"):  # a bracket end's key may overflow: inf >= p
                return self._key(v, self.bvec) >= p

        lo, hi = x, x
        for _ in range(4):
            lo, hi = xp.nextafter(lo, zero), xp.nextafter(hi, inf)
        while True:  # hi reaches p (inf always does), lo does not (0 never does): a few rounds
            up, down = ~reaches(hi), reaches(lo)
            if not bool(xp.any(up | down)):
                break
            hi = xp.where(up, xp.where(hi > 0, hi * 2, xp.nextafter(hi, inf)), hi)
            lo = xp.where(down, lo / 2, lo)
        while True:  # lo < a_i <= hi
            step = xp.nextafter(lo, inf)
            open_ = step < hi
            if not bool(xp.any(open_)):
                return hi
            mid = xp.where((lo > 0) & (hi > 4 * lo), xp.sqrt(lo) * xp.sqrt(hi),
                           lo + (hi - lo) / 2)
            mid = xp.where((mid > lo) & (mid < hi), mid, step)
            ok = reaches(mid) & open_
            hi = xp.where(ok, mid, hi)
            lo = xp.where(open_ & ~ok, mid, lo)

    def _grid(self, x: np.ndarray, p: Array) -> np.ndarray | None:
        """``a_i(p)`` from the keys of the 9 representable numbers ``x_i - 4 ulp, ...,
        x_i + 4 ulp`` (numpy, shape (T,) in, (T,) out, x's dtype): the first of them whose
        key reaches p, the keys being nondecreasing in the magnitude. Valid when, for every
        tensor, the first does not reach p and the last does (the key's roundings, of the
        square and the division, move the boundary by about one ulp from x_i); else None,
        and :meth:`magnitudes` bisects. O(T); no host transfer."""
        it = np.int32 if x.dtype == np.float32 else np.int64
        bits = x.view(it)
        if not (np.all(np.isfinite(x)) and np.all(bits > 4)):
            return None
        grid = (bits[:, None] + np.arange(-4, 5, dtype=it)).view(x.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            ok = self._key(grid, self.bvec[:, None]) >= p
        if ok[:, 0].any() or not ok[:, -1].all():
            return None
        return grid[np.arange(grid.shape[0]), np.argmax(ok, axis=1)]


def _ldexp(v: Array, e: int, limit: int) -> Array:
    """``v · 2^e`` as a new array, in factors of at most ``2^±limit`` (representable)."""
    step = max(-limit, min(limit, e))
    v = v * (2.0**step)
    e -= step
    while e:
        step = max(-limit, min(limit, e))
        v *= 2.0**step
        e -= step
    return v


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
