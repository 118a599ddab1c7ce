"""One verifier per projection: run the fast method, solve exactly, compare, check feasibility.

Each ``verify_<projection>(x, **params)`` takes the projection's own arguments (numpy or
torch inputs; the fast method runs on them as given), solves the same problem exactly
(enumeration, OR-Tools, cvxpy, kmeans1d or LAPACK in float64 on the host), checks that the
fast result lies in the set with code independent of the projection, and returns a
:class:`~compressopt.verify.report.Report` (objectives, gap, proven bound, feasibility, ok).
Objectives are minimized: the squared distance ``||P(x) - x||²`` for projections, the
proximal objective for proximal operators.

Every magnitude: the objectives are computed and compared in the **frame** ``x·2^-E``
(:class:`Frame`; E the binary exponent of the largest finite magnitude of the input and the
parameters with its units: radius, box bounds, threshold, fixed codebook). Why this is the
same comparison: every problem checked here except CTL1 and the multiple-choice knapsack on
given tables is scale-equivariant: with ``c = 2^-E``, the exact solution of the problem on
``c·x`` (parameters scaled alike) is ``c`` times the solution on x, and every objective scales
by ``c²`` (the knapsacks' choices by nothing). Multiplying by a power of two is exact (only
entries below ``2^(E-1075)`` round, below the resolution of any objective in the frame), so
``gap/c²`` and the fast result's feasibility are checked exactly as at scale 1, where the
objectives (at most about n) neither overflow nor underflow and the tolerance of
:func:`~compressopt.verify.report.tol_for` is a relative one. The fast method itself runs on
the original input; only its output is scaled. Where the output's entries are subnormal in
x's dtype they are rounded to multiples of the smallest subnormal; the tolerance adds that
rounding's effect (``Frame.slack``), which is 0 in practice above 1e-30 (float32) or 1e-290
(float64). Reports give objectives in the frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

from compressopt import projections as P
from compressopt._array import to_numpy
from compressopt.projections._util import ldexp_float
from compressopt.verify import brute
from compressopt.verify.report import Report, Tol, make_report, tol_for

__all__ = [
    "Frame",
    "frame",
    "has_rank_at_most",
    "in_box",
    "in_l1_ball",
    "in_scaled_grid",
    "in_simplex",
    "in_sparse_quantized",
    "nonzero_groups",
    "verify_allocate_bits",
    "verify_binary",
    "verify_box",
    "verify_cardinality",
    "verify_channels",
    "verify_codebook",
    "verify_ctl1",
    "verify_global_cardinality",
    "verify_global_channels",
    "verify_group_lasso",
    "verify_hard_threshold",
    "verify_kmeans",
    "verify_knapsack",
    "verify_l1_ball",
    "verify_mckp",
    "verify_rank",
    "verify_select_ranks",
    "verify_simplex",
    "verify_soft_threshold",
    "verify_sparse_quantized",
    "verify_ternary",
    "verify_uniform",
]

_BRUTE_LIMIT = 20_000  # largest enumeration a verifier runs before switching method


def _h(a: Any) -> np.ndarray:
    return np.asarray(to_numpy(a), dtype=np.float64)


def _dtype(x: Any) -> Any:
    if isinstance(x, Mapping):
        x = next(iter(x.values()))
    return x.dtype


def _np_dtype(dtype: Any) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError:  # a torch dtype: torch.float32 -> float32
        return np.dtype(str(dtype).rsplit(".", 1)[-1])


def _n(x: Any) -> int:
    if isinstance(x, Mapping):
        return sum(int(np.prod(v.shape)) for v in x.values())
    return int(np.prod(x.shape))


def _leaves(x: Any) -> list[Any]:
    return list(x.values()) if isinstance(x, Mapping) else [x]


class Frame(NamedTuple):
    """The frame ``x·2^-e`` in which a verifier compares objectives (see the module's notes).

    Attributes
    ----------
    e : int
        The binary exponent of the largest finite magnitude of the instance.
    quantum : float
        The smallest subnormal of x's dtype in the frame, ``2^(emin - e)``: the spacing to
        which output entries below the normal range are rounded.
    """

    e: int
    quantum: float

    def scale(self, a: Any) -> np.ndarray:
        """`a` (an array, or a mapping of arrays) on the host, float64, times ``2^-e``."""
        if isinstance(a, Mapping):
            return {k: self.scale(v) for k, v in a.items()}  # type: ignore[return-value]
        return np.ldexp(_h(a), -self.e)

    def num(self, v: float, power: int = 1) -> float:
        """A number with the units of x to the `power`, in the frame (``v·2^(-power·e)``)."""
        return ldexp_float(float(v), -power * self.e)

    def slack(self, n: int) -> float:
        """Extra tolerance on a squared distance of `n` entries whose outputs are rounded to
        multiples of :attr:`quantum` (each moves ``(z - x)²`` by at most ``4q + q²`` with
        ``|z - x| <= 2`` in the frame)."""
        q = self.quantum
        return max(n, 1) * (4 * q + q * q)

    def tol(self, t: Tol) -> Tol:
        """`t` with the subnormal rounding added to its absolute part (feasibility tests)."""
        return Tol(t.rtol, t.atol + 2 * self.quantum)


def frame(x: Any, *params: Any) -> Frame:
    """The :class:`Frame` of an instance: its input `x` (array or mapping) and the parameters
    that share x's units (numbers or arrays; ±inf ignored)."""
    e = brute.frame_exponent(*_leaves(x), *[np.asarray(_h(p)) for p in params])
    tiny = float(np.finfo(_np_dtype(_dtype(x))).smallest_subnormal)
    return Frame(e, ldexp_float(tiny, -e))


def _dist(fr: Frame, z: Any, x: Any) -> float:
    """``||z - x||²`` in the frame (over the leaves of a mapping)."""
    if isinstance(x, Mapping):
        return sum(_dist(fr, z[k], x[k]) for k in x)
    return float(np.sum((fr.scale(z) - fr.scale(x)) ** 2))


def _report(fr: Frame, name: str, kind: Any, fast: float, exact: float, feasible: bool,
            method: str, dtype: Any, n: int, **kw: Any) -> Report:
    return make_report(name, kind, fast, exact, feasible, method, dtype, n,
                       slack=fr.slack(n), **kw)


# ---------------------------------------------------------------- independent feasibility


def _slack(t: Tol, scale: float, n: int) -> float:
    return t.rtol * max(1.0, abs(scale)) + t.atol * max(n, 1)


def in_l1_ball(z: Any, radius: float, tol: Tol) -> bool:
    """``||z||_1 <= radius`` up to `tol`."""
    v = _h(z)
    return float(np.abs(v).sum()) <= radius + _slack(tol, radius, v.size)


def in_simplex(z: Any, radius: float, tol: Tol) -> bool:
    """``z >= 0`` and ``Σ z = radius`` up to `tol`."""
    v = _h(z)
    s = _slack(tol, radius, v.size)
    return bool(v.size) and float(v.min()) >= -s and abs(float(v.sum()) - radius) <= s


def in_box(z: Any, lower: Any, upper: Any, tol: Tol) -> bool:
    """``lower <= z <= upper`` up to `tol` (bounds broadcast)."""
    v = _h(z)
    lo, hi = _h(lower), _h(upper)
    s = tol.rtol * np.maximum(1.0, np.maximum(np.abs(np.where(np.isfinite(lo), lo, 0)),
                                              np.abs(np.where(np.isfinite(hi), hi, 0))))
    return bool(np.all(v >= lo - s - tol.atol) and np.all(v <= hi + s + tol.atol))


def nonzero_groups(z: Any, axis: int = 0) -> int:
    """Number of slices along `axis` with a nonzero entry."""
    v = np.moveaxis(_h(z), axis, 0)
    return int(np.count_nonzero(np.any(v.reshape(v.shape[0], -1) != 0, axis=1)))


def in_scaled_grid(z: Any, codes: Iterable[int]) -> bool:
    """Whether ``z = α q`` for some α >= 0 and integer codes ``q_i ∈ codes`` (exactly, to
    a relative 1e-5 of the scale: the decompressed values are ``α q`` rounded once)."""
    v = np.abs(_h(z)).reshape(-1)
    cs = sorted({abs(int(c)) for c in codes})
    nz = v[v > 0]
    if nz.size == 0:
        return True  # α = 0
    if 0 not in cs and nz.size != v.size:
        return False
    m = float(nz.min())
    for j in (c for c in cs if c > 0):  # the smallest magnitude is α j for some code j
        a = m / j
        q = nz / a
        if np.all(np.abs(q - np.rint(q)) <= 1e-5 * np.maximum(1.0, q)) and \
                set(np.rint(q).astype(int).tolist()) <= set(cs):
            return True
    return False


def in_sparse_quantized(z: Mapping[str, Any], budget_bits: float,
                        candidates: Iterable[int]) -> bool:
    """Joint set of Yang et al.: some b_i ∈ B with ``2^b_i >=`` distinct nonzeros of z_i and
    ``Σ b_i ||z_i||_0 <= budget`` (exact)."""
    cands = sorted(set(candidates))
    used = 0
    for v in z.values():
        f = _h(v).reshape(-1)
        nz = f[f != 0]
        d = np.unique(nz).size
        b = next((c for c in cands if 2**c >= d), None)
        if b is None:
            return False
        used += b * nz.size
    return used <= budget_bits


def has_rank_at_most(z: Any, r: int, tol: Tol) -> bool:
    """Numerical rank of ``z`` as ``(shape[0], -1)``: ``σ_{r+1} <= tol * max(1, σ_1)``."""
    a = _h(z)
    a = a.reshape(a.shape[0], int(np.prod(a.shape[1:])))
    if a.size == 0:
        return True
    s = np.linalg.svd(a, compute_uv=False)
    if r >= s.size:
        return True
    return float(s[r]) <= max(tol.rtol * 10, 1e-6) * max(1.0, float(s[0])) + tol.atol


# ---------------------------------------------------------------- cardinality and structure


def verify_cardinality(x: Any, k: int) -> Report:
    """:func:`~compressopt.projections.project_cardinality` against enumeration (tiny) or the
    sorted squares in float64."""
    z = P.project_cardinality(x, k)
    fr = frame(x)
    v = fr.scale(x).reshape(-1)
    if math.comb(v.size, min(k, v.size)) <= _BRUTE_LIMIT:
        exact, method = brute.brute_cardinality(v, k).objective, "brute force"
    else:
        exact, method = float(np.sort(v**2)[: max(v.size - k, 0)].sum()), "closed form"
    feas = int(np.count_nonzero(_h(z))) <= k
    return _report(fr, "cardinality", "exact", _dist(fr, z, x), exact, feas, method, x.dtype,
                   v.size)


def verify_global_cardinality(w: Mapping[str, Any], k: int) -> Report:
    """:func:`~compressopt.projections.project_global_cardinality` against float64 sorting."""
    z = P.project_global_cardinality(w, k)
    fr = frame(w)
    v = np.concatenate([fr.scale(a).reshape(-1) for a in w.values()])
    exact = float(np.sort(v**2)[: max(v.size - k, 0)].sum())
    feas = sum(int(np.count_nonzero(_h(a))) for a in z.values()) <= k
    return _report(fr, "global_cardinality", "exact", _dist(fr, z, w), exact, feas,
                   "closed form", _dtype(w), v.size)


def _group_sq(x: np.ndarray, axis: int) -> np.ndarray:
    v = np.moveaxis(x, axis, 0)
    return np.sum(v.reshape(v.shape[0], -1) ** 2, axis=1)


def verify_channels(x: Any, k: int, axis: int = 0) -> Report:
    """:func:`~compressopt.projections.project_channels` against enumeration of the kept
    groups (tiny) or the sorted group norms in float64."""
    z = P.project_channels(x, k, axis)
    fr = frame(x)
    xs = fr.scale(x)
    g = _group_sq(xs, axis)
    if math.comb(g.size, min(k, g.size)) <= _BRUTE_LIMIT:
        exact, method = brute.brute_channels(xs, k, axis).objective, "brute force"
    else:
        exact, method = float(np.sort(g)[: max(g.size - k, 0)].sum()), "closed form"
    return _report(fr, "channels", "exact", _dist(fr, z, x), exact,
                   nonzero_groups(z, axis) <= k, method, x.dtype, _n(x))


def verify_global_channels(w: Mapping[str, Any], k: int, axis: int = 0) -> Report:
    """:func:`~compressopt.projections.project_global_channels` against float64 sorting."""
    z = P.project_global_channels(w, k, axis)
    fr = frame(w)
    g = np.concatenate([_group_sq(fr.scale(a), axis) for a in w.values()])
    exact = float(np.sort(g)[: max(g.size - k, 0)].sum())
    feas = sum(nonzero_groups(a, axis) for a in z.values()) <= k
    return _report(fr, "global_channels", "exact", _dist(fr, z, w), exact, feas, "closed form",
                   _dtype(w), _n(w))


# ---------------------------------------------------------------- convex sets and prox


def verify_l1_ball(x: Any, radius: float) -> Report:
    """:func:`~compressopt.projections.project_l1_ball` against cvxpy."""
    from compressopt.verify.convex import l1_ball_cvx

    z = P.project_l1_ball(x, radius)
    fr = frame(x, radius)
    r = l1_ball_cvx(fr.scale(x), fr.num(radius))
    t = fr.tol(tol_for(x.dtype, "cvxpy"))
    return _report(fr, "l1_ball", "exact", _dist(fr, z, x), r.objective,
                   in_l1_ball(fr.scale(z), fr.num(radius), t), r.status, x.dtype, _n(x))


def verify_simplex(x: Any, radius: float = 1.0) -> Report:
    """:func:`~compressopt.projections.project_simplex` against cvxpy."""
    from compressopt.verify.convex import simplex_cvx

    z = P.project_simplex(x, radius)
    fr = frame(x, radius)
    r = simplex_cvx(fr.scale(x), fr.num(radius))
    t = fr.tol(tol_for(x.dtype, "cvxpy"))
    return _report(fr, "simplex", "exact", _dist(fr, z, x), r.objective,
                   in_simplex(fr.scale(z), fr.num(radius), t), r.status, x.dtype, _n(x))


def verify_box(x: Any, lower: Any = -1.0, upper: Any = 1.0) -> Report:
    """:func:`~compressopt.projections.project_box` against cvxpy."""
    from compressopt.verify.convex import box_cvx

    z = P.project_box(x, lower, upper)
    fr = frame(x, lower, upper)
    lo, hi = fr.scale(lower), fr.scale(upper)
    r = box_cvx(fr.scale(x), lo, hi)
    t = fr.tol(tol_for(x.dtype, "cvxpy"))
    return _report(fr, "box", "exact", _dist(fr, z, x), r.objective,
                   in_box(fr.scale(z), lo, hi, t), r.status, x.dtype, _n(x))


def verify_soft_threshold(x: Any, t: float) -> Report:
    """:func:`~compressopt.projections.soft_threshold` against cvxpy (prox objective)."""
    from compressopt.verify.convex import soft_threshold_cvx

    z = P.soft_threshold(x, t)
    fr = frame(x, t)
    ts = fr.num(t)
    r = soft_threshold_cvx(fr.scale(x), ts)
    fast = 0.5 * _dist(fr, z, x) + ts * float(np.abs(fr.scale(z)).sum())
    return _report(fr, "soft_threshold", "exact", fast, r.objective, True, r.status, x.dtype,
                   _n(x))


def verify_hard_threshold(x: Any, t: float) -> Report:
    """:func:`~compressopt.projections.hard_threshold` as the prox of ``(t²/2)||·||_0``,
    against the enumeration of each coordinate's two candidates {0, x_i}."""
    z = P.hard_threshold(x, t)
    fr = frame(x, t)
    ts, v = fr.num(t), fr.scale(x)
    fast = 0.5 * _dist(fr, z, x) + 0.5 * ts * ts * int(np.count_nonzero(_h(z)))
    exact = float(np.minimum(0.5 * v**2, 0.5 * ts * ts).sum())
    return _report(fr, "hard_threshold", "exact", fast, exact, True, "brute force", x.dtype,
                   v.size)


def verify_group_lasso(x: Any, t: float, axis: int = 0) -> Report:
    """:func:`~compressopt.projections.prox_group_lasso` against cvxpy (SOCP)."""
    from compressopt.verify.convex import group_lasso_cvx

    z = P.prox_group_lasso(x, t, axis)
    fr = frame(x, t)
    ts = fr.num(t)
    r = group_lasso_cvx(fr.scale(x), ts, axis)
    fast = 0.5 * _dist(fr, z, x) + ts * float(np.sqrt(_group_sq(fr.scale(z), axis)).sum())
    return _report(fr, "group_lasso", "exact", fast, r.objective, True, r.status, x.dtype,
                   _n(x))


def verify_ctl1(x: Any, a: float, axis: int = 0) -> Report:
    """:func:`~compressopt.projections.ctl1` against its formula in float64, and
    :func:`~compressopt.projections.ctl1_grad` against central differences (coordinates at
    least 1e-3 away from 0, where CTL1 is smooth). ``details['grad_error']`` is the largest
    relative error; ok requires it below 1e-4 (float64) or 1e-2 (float32)."""
    v = np.moveaxis(_h(x), axis, 0)
    g = v.reshape(v.shape[0], -1)
    exact = float(np.sum(a / (a + np.abs(g).sum(axis=1))))
    fast = float(to_numpy(P.ctl1(x, a, axis)))
    grad = np.moveaxis(_h(P.ctl1_grad(x, a, axis)), axis, 0).reshape(g.shape)

    def f(gg: np.ndarray) -> float:
        return float(np.sum(a / (a + np.abs(gg).sum(axis=1))))

    h = 1e-6
    err = 0.0
    for i, j in zip(*np.nonzero(np.abs(g) > 1e-3), strict=True):  # a verifier: host loop
        e = np.zeros_like(g)
        e[i, j] = h
        fd = (f(g + e) - f(g - e)) / (2 * h)
        err = max(err, abs(fd - grad[i, j]) / max(1.0, abs(fd)))
    limit = 1e-4 if np.dtype(str(x.dtype).rsplit(".", 1)[-1]) == np.float64 else 1e-2
    r = make_report("ctl1", "exact", fast, exact, True, "closed form", x.dtype, _n(x),
                    grad_error=err)
    return r._replace(ok=r.ok and err <= limit)


# ---------------------------------------------------------------- knapsacks


def _with_valid(r: Report, valid: bool, **details: Any) -> Report:
    return r._replace(ok=r.ok and bool(valid), details={**r.details, **details})


def verify_knapsack(w: Mapping[str, Any], bits: Mapping[str, int], budget_bits: float) -> Report:
    """:func:`~compressopt.projections.project_knapsack` against the exact 0-1 knapsack
    (enumeration for <= 16 nonzeros, else OR-Tools' branch and bound).

    Checks ``objective >= OPT - break_profit`` (the proven bound, as ``gap <= bound`` on the
    distances) and ``OPT <= lp_bound``; feasibility ``Σ b_i ||z_i||_0 <= S``. Profits (w²) in
    the frame; the projection's objective, LP bound and break profit are converted to it.
    """
    r = P.project_knapsack(w, bits, budget_bits)
    fr = frame(w)
    prof = np.concatenate([fr.scale(a).reshape(-1) ** 2 for a in w.values()])
    wts = np.concatenate([np.full(int(np.prod(a.shape)), bits[n]) for n, a in w.items()])
    keep = prof > 0
    p_nz, w_nz = prof[keep], wts[keep]
    if p_nz.size <= 16:
        opt, method, slack = brute.brute_knapsack(p_nz, w_nz, budget_bits).objective, \
            "brute force", 0.0
    else:
        from compressopt.verify.ilp import knapsack_ilp

        ilp = knapsack_ilp(p_nz, w_nz.astype(np.int64), math.floor(budget_bits))
        if not ilp.optimal:
            raise RuntimeError("the knapsack ILP hit its time limit: no certified optimum")
        opt, method, slack = ilp.objective, ilp.solver, ilp.rounding
    total = float(prof.sum())
    obj, lp, brk = (ldexp_float(float(to_numpy(a)), 2 * (r.exponent - fr.e))  # 4^E units
                    for a in (r.objective, r.lp_bound, r.break_profit))
    used = sum(bits[n] * int(np.count_nonzero(_h(z))) for n, z in r.w.items())
    rep = _report(fr, "knapsack", "greedy", total - obj, total - opt, used <= budget_bits,
                  method, _dtype(w), prof.size, bound=brk + slack)
    t = fr.tol(tol_for(_dtype(w), "ortools"))
    lp_ok = opt <= lp + slack + _slack(t, lp, prof.size)
    return _with_valid(rep, lp_ok, objective=obj, optimum=opt, lp_bound=lp, break_profit=brk,
                       budget_used=used)


def verify_mckp(profits: Any, weights: Any, capacity: float) -> Report:
    """:func:`~compressopt.projections.mckp_greedy` against CP-SAT (integer optimum) and cvxpy
    (its LP bound must equal the LP relaxation's optimum, Zemel 1980). Objective: -profit."""
    from compressopt.verify.convex import mckp_lp
    from compressopt.verify.ilp import mckp_ilp

    g = P.mckp_greedy(profits, weights, capacity)
    ilp = mckp_ilp(profits, weights, math.floor(capacity))
    lp = mckp_lp(profits, weights, capacity).objective
    rep = make_report("mckp", "greedy", -g.profit, -ilp.objective, g.weight <= capacity,
                      ilp.solver, "float64", 1, bound=g.lp_bound - g.profit + ilp.rounding)
    t = tol_for("float64", "cvxpy")
    lp_ok = abs(lp - g.lp_bound) <= _slack(t, lp, 1) and ilp.objective <= g.lp_bound + \
        ilp.rounding + _slack(t, lp, 1)
    return _with_valid(rep, lp_ok and (not g.integral or -g.profit <= -ilp.objective +
                                       ilp.rounding + _slack(t, lp, 1)),
                       lp_bound=g.lp_bound, lp_cvxpy=lp, integral=g.integral)


def verify_allocate_bits(w: Mapping[str, Any], budget_bits: float,
                         candidates: Iterable[int] = range(1, 9), method: str = "fast") -> Report:
    """:func:`~compressopt.projections.allocate_bits` against CP-SAT on the exact error table.

    The exact table uses optimal k-means (kmeans1d) of each tensor's nonzeros; its MCKP
    optimum is the exact answer. The proven bound on the gap is the greedy's LP gap on its own
    table plus, per tensor, the largest excess of the fast table over the exact one (0 with
    ``method="exact"``). Also checks that the greedy's LP bound equals cvxpy's LP optimum.
    Errors in the frame (the allocation's are converted).
    """
    from compressopt.verify.convex import mckp_lp
    from compressopt.verify.ilp import mckp_ilp

    cands = sorted(set(candidates))
    r = P.allocate_bits(w, budget_bits, cands, method=method, table="full")
    fr = frame(w)
    exact_tab = {n: P.kmeans1d_sweep(fr.scale(a), [2**j for j in cands], sparse=True,
                                     method="exact").sse for n, a in w.items()}
    fast_tab = {n: np.ldexp(np.asarray(r.errors[n], dtype=np.float64),
                            2 * (r.exponent - fr.e)) for n in w}  # errors in 4^E units
    names = list(w)
    wts = [[j * r.nnz[n] for j in cands] for n in names]
    ilp = mckp_ilp([-exact_tab[n] for n in names], wts, math.floor(budget_bits))
    excess = sum(float(np.max(np.maximum(fast_tab[n] - exact_tab[n], 0.0))) for n in names)
    fast = _dist(fr, r.decompress(), w)
    feas = in_sparse_quantized(r.decompress(), budget_bits, cands) and \
        all(int(np.count_nonzero(_h(r.decompress()[n]))) <= r.nnz[n] for n in names)
    err, lpb = (ldexp_float(v, 2 * (r.exponent - fr.e)) for v in (r.error, r.lp_bound))
    rep = _report(fr, "allocate_bits", "greedy", fast, -ilp.objective, feas, ilp.solver,
                  _dtype(w), _n(w), bound=err - lpb + excess + ilp.rounding)
    lp = mckp_lp([-fast_tab[n] for n in names], wts, budget_bits).objective
    t = tol_for("float64", "cvxpy")
    return _with_valid(rep, abs(-lp - lpb) <= _slack(t, lp, 1), bits=r.bits,
                       optimal_bits=dict(zip(names, (cands[c] for c in ilp.selection),
                                             strict=True)),
                       lp_bound=lpb, table_excess=excess, integral=r.integral)


def verify_sparse_quantized(w: Mapping[str, Any], budget_bits: float,
                            candidates: Iterable[int] = (1, 2), **kwargs: Any) -> Report:
    """:func:`~compressopt.projections.project_sparse_quantized` against enumeration of
    supports, bit widths and optimal codebooks (tiny instances). Heuristic: no bound."""
    cands = sorted(set(candidates))
    r = P.project_sparse_quantized(w, budget_bits, cands, **kwargs)
    fr = frame(w)
    ex = brute.brute_sparse_quantized(fr.scale(w), budget_bits, cands)
    z = r.w
    return _report(fr, "sparse_quantized", "heuristic", _dist(fr, z, w), ex.objective,
                   in_sparse_quantized(z, budget_bits, cands), "brute force", _dtype(w),
                   _n(w), bits=r.bits)


# ---------------------------------------------------------------- quantization


def verify_kmeans(x: Any, k: int, *, sparse: bool = False, method: str = "exact") -> Report:
    """:class:`~compressopt.projections.AdaptiveQuantization` (``method``) against the optimal
    1-D k-means: enumeration of contiguous partitions (<= 12 values) or kmeans1d."""
    q = P.AdaptiveQuantization(k, method=method, sparse=sparse)  # type: ignore[arg-type]
    z = q.project(x)
    fr = frame(x)
    v = fr.scale(x).reshape(-1)
    vals = v[v != 0] if sparse else v
    if vals.size <= 12:
        exact, how = brute.brute_kmeans(vals, k).objective, "brute force"
    else:
        c = _h(P.kmeans1d_exact(vals, k).codebook)
        exact = float(np.min((vals[:, None] - c[None, :]) ** 2, axis=1).sum())
        how = "kmeans1d"
    zv = _h(z).reshape(-1)
    xv = _h(x).reshape(-1)
    # sparse mode: at most k distinct nonzero values, zeros kept (a nonzero below
    # max|x|·2^-1075 is a zero at the precision of the frame, and may be quantized to 0)
    distinct = np.unique(zv[zv != 0] if sparse else zv).size
    feas = distinct <= k and (not sparse or bool(np.all(zv[xv == 0] == 0)))
    return _report(fr, f"kmeans_{method}", "exact" if method == "exact" else "heuristic",
                   _dist(fr, z, x), exact, feas, how, x.dtype, v.size)


def _grid(name: str, t: P.ScaledCodes, x: Any, codes: range | tuple,
          kind: str = "exact") -> Report:
    fr = frame(x)
    z = _h(t.codes) * fr.num(float(to_numpy(t.scale)))  # α q in the frame: no overflow
    v = fr.scale(x).reshape(-1)
    n_cand = len(codes) ** v.size
    if n_cand <= _BRUTE_LIMIT:
        exact, how = brute.brute_scaled_grid(v, codes).objective, "brute force"
    else:  # the exact sweep in float64 on the host (itself checked by enumeration)
        levels = max(abs(c) for c in codes)
        if 0 not in codes:  # binary: closed form
            exact, how = float(v @ v) - float(np.abs(v).sum()) ** 2 / v.size, "closed form"
        else:
            ts = P.project_uniform(v, levels=levels, method="exact")
            exact = float(np.sum((_h(ts.codes) * float(ts.scale) - v) ** 2))
            how = "closed form"
    fast = float(np.sum((z.reshape(-1) - v) ** 2))
    return _report(fr, name, kind, fast, exact, in_scaled_grid(z, codes), how, x.dtype, v.size)


def verify_binary(x: Any) -> Report:
    """:func:`~compressopt.projections.project_binary` against enumeration of sign patterns."""
    return _grid("binary", P.project_binary(x), x, (-1, 1))


def verify_ternary(x: Any) -> Report:
    """:func:`~compressopt.projections.project_ternary` against enumeration of {-1,0,1}^n."""
    return _grid("ternary", P.project_ternary(x), x, (-1, 0, 1))


def verify_uniform(x: Any, bits: int | None = None, *, levels: int | None = None,
                   method: str = "auto") -> Report:
    """:func:`~compressopt.projections.project_uniform` against enumeration of the integer
    codes (tiny) or the exact breakpoint sweep in float64; the alternating method is a
    heuristic (no bound)."""
    t = P.project_uniform(x, bits, levels=levels, method=method)  # type: ignore[arg-type]
    big_l = 2 ** (bits - 1) if bits is not None else int(levels)  # type: ignore[arg-type]
    kind = "heuristic" if method == "alternating" else "exact"
    return _grid("uniform", t, x, range(-big_l, big_l + 1), kind)


def verify_codebook(x: Any, codebook: Any) -> Report:
    """:func:`~compressopt.projections.project_codebook` against the per-entry enumeration of
    the codebook (x and the codebook in one frame: nearest values do not change)."""
    q = P.project_codebook(x, codebook)
    c = np.asarray(to_numpy(codebook) if hasattr(codebook, "shape") else list(codebook),
                   dtype=np.float64)
    fr = frame(x, c)
    z = _h(q.codebook)[_h(q.assignments).astype(np.int64)]
    v, cs = fr.scale(x).reshape(-1), fr.scale(c)
    exact = float(np.min((v[:, None] - cs[None, :]) ** 2, axis=1).sum())
    feas = bool(np.all(np.isin(z.reshape(-1), _h(q.codebook))))
    return _report(fr, "codebook", "exact", _dist(fr, z, x), exact, feas, "brute force",
                   x.dtype, v.size)


# ---------------------------------------------------------------- low rank


def _svals(a: np.ndarray) -> np.ndarray:
    import scipy.linalg

    a = a.reshape(a.shape[0], int(np.prod(a.shape[1:])))
    if a.size == 0:
        return np.zeros(0)
    return scipy.linalg.svd(a, compute_uv=False, lapack_driver="gesvd")


def verify_rank(x: Any, r: int) -> Report:
    """:func:`~compressopt.projections.project_rank` against LAPACK's gesvd in float64: the
    optimal error is ``Σ_{l > r} σ_l²`` (Eckart–Young)."""
    z = P.project_rank(x, r)
    fr = frame(x)
    s = _svals(fr.scale(x))
    t = fr.tol(tol_for(x.dtype, "lapack"))
    return _report(fr, "low_rank", "exact", _dist(fr, z, x), float(np.sum(s[r:] ** 2)),
                   has_rank_at_most(fr.scale(z), r, t), "lapack", x.dtype, _n(x))


def verify_select_ranks(w: Mapping[str, Any], budget_params: float) -> Report:
    """:func:`~compressopt.projections.select_ranks` against CP-SAT over all ranks, with
    float64 singular values; bound: the greedy's LP gap."""
    from compressopt.verify.ilp import mckp_ilp

    r = P.select_ranks(w, budget_params)
    fr = frame(w)
    names = list(w)
    prof, wts, total = [], [], 0.0
    for n in names:
        a = fr.scale(w[n])
        s2 = _svals(a) ** 2
        prof.append(np.concatenate([[0.0], np.cumsum(s2)]))
        wts.append(np.arange(s2.size + 1) * (a.shape[0] + int(np.prod(a.shape[1:]))))
        total += float(s2.sum())
    ilp = mckp_ilp(prof, wts, math.floor(budget_params))
    z = r.decompress()
    t = fr.tol(tol_for(_dtype(w), "lapack"))
    feas = r.params_used <= budget_params and all(
        has_rank_at_most(fr.scale(z[n]), r.ranks[n], t) for n in names)
    # the greedy's certificate on the frame's table: its error minus the LP lower bound
    err = total - sum(float(p[r.ranks[n]]) for p, n in zip(prof, names, strict=True))
    lp = P.mckp_greedy(prof, wts, budget_params).lp_bound
    return _report(fr, "rank_selection", "greedy", _dist(fr, z, w), total - ilp.objective,
                   feas, ilp.solver, _dtype(w), _n(w),
                   bound=err - (total - lp) + ilp.rounding, ranks=r.ranks)
