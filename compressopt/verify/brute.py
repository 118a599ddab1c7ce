"""Brute-force exact solutions of tiny instances (enumeration), numpy only.

Ground truth for the coordinators and projections on problems small enough to enumerate:
best-subset least squares (the ℓ0-constrained problem) and least squares over a K-entry
codebook (the quantization-constrained problem); the projections onto the ℓ0 ball, onto k
channels, onto a scaled integer grid (binary, ternary, uniform), 1-D k-means (contiguous
partitions), the 0-1 and multiple-choice knapsacks, and the joint sparse + quantized set.
Every function is exact and exponential in the instance size.

Magnitudes: every problem here except the least-squares ones is scale-equivariant (the
optimal point of ``c·x`` is c times that of x; the knapsacks' choices do not change when the
profits are scaled). The projections therefore enumerate on ``x·2^-E`` (E the binary exponent
of the largest ``|x|``, see :func:`frame_exponent`): multiplying by a power of two is exact
(only entries below ``2^(E-1075)`` round, and they cannot change a comparison at double
precision), so the enumeration compares the same objectives without overflow (values near
1e308) or underflow (below 1e-154), and the optimum is right at every finite magnitude. The
point ``x`` of a result is scaled back exactly; ``objective`` is in the input's units and so
rounds to inf or 0 where the float range ends (the verifiers compare in the frame instead).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

__all__ = [
    "BruteResult",
    "best_codebook_least_squares",
    "best_subset_least_squares",
    "brute_cardinality",
    "brute_channels",
    "brute_kmeans",
    "brute_kmeans_zero",
    "brute_knapsack",
    "brute_mckp",
    "brute_scaled_grid",
    "brute_sparse_quantized",
    "frame_exponent",
]


class BruteResult(NamedTuple):
    """Optimal point and objective of an enumerated problem."""

    x: np.ndarray
    objective: float
    candidates: int  #: how many candidates were enumerated


def _ls(M: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    c, *_ = np.linalg.lstsq(M, b, rcond=None)
    r = M @ c - b
    return c, 0.5 * float(r @ r)


def best_subset_least_squares(A: np.ndarray, b: np.ndarray, k: int) -> BruteResult:
    """Exact ``min ½||A w - b||² s.t. ||w||_0 <= k`` by enumerating all supports of size k.

    C(n, k) least-squares solves, each O(m k²); meant for n <= 20 or so. Ties keep the first
    support in lexicographic order.
    """
    A, b = np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = A.shape[1]
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, {n}], got {k}")
    best = BruteResult(np.zeros(n), 0.5 * float(b @ b), 1)
    count = 1
    for support in itertools.combinations(range(n), k):
        if not support:
            continue
        count += 1
        c, f = _ls(A[:, support], b)
        if f < best.objective - 1e-12 * max(1.0, abs(best.objective)):
            x = np.zeros(n)
            x[list(support)] = c
            best = BruteResult(x, f, count)
    return best._replace(candidates=count)


def best_codebook_least_squares(A: np.ndarray, b: np.ndarray, k: int) -> BruteResult:
    """Exact ``min ½||A w - b||² s.t. w has at most k distinct values`` by enumeration.

    Every assignment of the n coordinates to k labels (up to relabeling: labels in order of
    first use) gives ``w = P c`` with P the n × k assignment matrix; the best codebook c for
    it is a least-squares fit. About k^n / k! candidates: n <= 10 for k = 2.
    """
    A, b = np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = A.shape[1]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    best: BruteResult | None = None
    count = 0
    for labels in itertools.product(range(k), repeat=n):
        # canonical form: label j appears only after labels 0..j-1 have appeared
        if any(lab > max(labels[:i], default=-1) + 1 for i, lab in enumerate(labels)):
            continue
        count += 1
        P = np.zeros((n, k))
        P[np.arange(n), labels] = 1.0
        used = P.any(axis=0)
        c, f = _ls(A @ P[:, used], b)
        if best is None or f < best.objective - 1e-12 * max(1.0, abs(best.objective)):
            best = BruteResult(P[:, used] @ c, f, count)
    assert best is not None
    return best._replace(candidates=count)


def _host(x) -> np.ndarray:
    from compressopt._array import to_numpy

    return np.asarray(to_numpy(x), dtype=np.float64)


def frame_exponent(*arrays) -> int:
    """The binary exponent E of the largest finite ``|a|`` over `arrays` (0 if all are 0):
    ``max|a|·2^-E ∈ [0.5, 1)``. Non-finite entries (±inf box bounds) are ignored.

    Examples
    --------
    >>> frame_exponent([3.0, -1e-300], [0.5])
    2
    """
    m = 0.0
    for a in arrays:
        v = np.abs(_host(a)).reshape(-1)
        v = v[np.isfinite(v)]
        m = max(m, float(v.max(initial=0.0)))
    return int(np.frexp(m)[1])


def _up(v: float, e: int) -> float:
    """``v·2^e`` as a float (inf on overflow)."""
    from compressopt.projections._util import ldexp_float

    return ldexp_float(float(v), e)


def brute_knapsack(profits, weights, capacity: float) -> BruteResult:
    """Exact 0-1 knapsack ``max Σ p x s.t. Σ w x <= C`` by enumerating all 2^n subsets.

    ``x`` of the result is the 0/1 selection. Vectorized in blocks; n <= 22.

    Examples
    --------
    >>> r = brute_knapsack([5.0, 4.0, 3.0], [2, 3, 1], 3)
    >>> r.x.tolist(), r.objective
    ([1.0, 0.0, 1.0], 8.0)
    """
    p = np.asarray(profits, dtype=np.float64).reshape(-1)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    n = p.size
    if n > 22:
        raise ValueError(f"brute force is for n <= 22 items, got {n}")
    e = frame_exponent(p)
    p = np.ldexp(p, -e)  # sums of up to 22 profits <= 22: no overflow
    best_val, best_sel = 0.0, np.zeros(n)
    block = 1 << min(n, 16)
    for start in range(0, 1 << n, block):  # blocks of subsets, each vectorized
        ids = np.arange(start, min(start + block, 1 << n), dtype=np.int64)
        sel = ((ids[:, None] >> np.arange(n)) & 1).astype(np.float64)
        val = np.where(sel @ w <= capacity, sel @ p, -np.inf)
        i = int(np.argmax(val))
        if val[i] > best_val:
            best_val, best_sel = float(val[i]), sel[i]
    return BruteResult(best_sel, _up(best_val, e), 1 << n)


def brute_cardinality(x, k: int) -> BruteResult:
    """Exact ``min ||z - x||² s.t. ||z||_0 <= k`` by enumerating the supports of size k.

    Examples
    --------
    >>> r = brute_cardinality([0.5, -2.0, 1.0], 1)
    >>> r.x.tolist(), r.objective
    ([0.0, -2.0, 0.0], 1.25)
    """
    v = _host(x)
    e = frame_exponent(v)
    f = np.ldexp(v, -e).reshape(-1)
    best: BruteResult | None = None
    count = 0
    for support in itertools.combinations(range(f.size), min(k, f.size)):
        count += 1
        z = np.zeros_like(f)
        z[list(support)] = f[list(support)]
        d = float(np.sum((z - f) ** 2))
        if best is None or d < best.objective:
            best = BruteResult(z.reshape(v.shape), d, count)
    assert best is not None
    return BruteResult(np.ldexp(best.x, e), _up(best.objective, 2 * e), count)


def brute_channels(x, k: int, axis: int = 0) -> BruteResult:
    """Exact ``min ||z - x||² s.t. at most k nonzero slices along axis`` by enumeration."""
    v = np.moveaxis(_host(x), axis, 0)
    e = frame_exponent(v)
    v = np.ldexp(v, -e)
    g = v.shape[0]
    best: BruteResult | None = None
    count = 0
    for keep in itertools.combinations(range(g), min(k, g)):
        count += 1
        z = np.zeros_like(v)
        z[list(keep)] = v[list(keep)]
        d = float(np.sum((z - v) ** 2))
        if best is None or d < best.objective:
            best = BruteResult(np.moveaxis(z, 0, axis), d, count)
    assert best is not None
    return BruteResult(np.ldexp(best.x, e), _up(best.objective, 2 * e), count)


def _best_intervals(x, k: int, zero: bool) -> BruteResult:
    """The best quantization of `x` by intervals of its sorted values (enumeration).

    Each candidate cuts the sorted values into at most k intervals quantized to their means
    (exactly k unless `zero`) plus, if `zero`, one more interval quantized to 0. Returns the
    quantized array in the input's order and shape; the objective is the float64 sum as
    computed (not rounded: rounding it by 1e-15 in the frame put it above exact lower bounds).
    """
    v = _host(x)
    e = frame_exponent(v)
    f = np.ldexp(v, -e).reshape(-1)
    order = np.argsort(f, kind="stable")
    s = f[order]
    n = s.size
    if n == 0 or (n <= k and not zero):
        return BruteResult(v.copy(), 0.0, 1)
    best_val, best_q, count = np.inf, None, 0
    for m in range(1 if zero else k, min(k + int(zero), n) + 1):  # number of intervals
        for cuts in itertools.combinations(range(1, n), m - 1):
            edges = list(itertools.pairwise((0, *cuts, n)))
            # which interval is the one at 0 (None: no such interval)
            for z in ([None] if m <= k else []) + (list(range(m)) if zero else []):
                count += 1
                q = np.empty(n)
                val = 0.0
                for i, (a, b) in enumerate(edges):
                    c = 0.0 if i == z else s[a:b].mean()
                    q[a:b] = c
                    val += float(np.sum((s[a:b] - c) ** 2))
                if val < best_val:
                    best_val, best_q = val, q
    out = np.empty(n)
    out[order] = best_q
    return BruteResult(np.ldexp(out.reshape(v.shape), e), _up(best_val, 2 * e),
                       count)


def brute_kmeans(x, k: int) -> BruteResult:
    """Exact 1-D k-means ``min Σ (x_i - c_{a_i})²`` by enumerating contiguous partitions.

    Optimal 1-D clusters are intervals of the sorted values (Fisher 1958), so the C(n-1, k-1)
    ways to cut the sorted values cover the optimum. ``x`` of the result is the quantized
    array (shape of the input). n <= 16 or so.

    Examples
    --------
    >>> round(brute_kmeans([0.0, 0.1, 0.9, 1.0, 5.0], 2).objective, 12)
    0.82
    """
    return _best_intervals(x, k, zero=False)


def brute_kmeans_zero(x, k: int) -> BruteResult:
    """Exact ``min_c Σ_i min(x_i², min_j (x_i - c_j)²)``, k free levels beside a fixed 0.

    The V projection of Yang et al.'s eq. (10) for one tensor. With nearest-level
    assignment the clusters, the one of 0 included, are intervals of the sorted values, so
    enumerating the cuts into at most k + 1 intervals and which one (if any) goes to 0
    covers the optimum. ``x`` of the result is the quantized array. n <= 12 or so.

    Examples
    --------
    >>> round(brute_kmeans_zero([-0.1, 0.05, 2.0, 2.2], 1).objective, 12)
    0.0325
    """
    return _best_intervals(x, k, zero=True)


def brute_scaled_grid(x, codes) -> BruteResult:
    """Exact ``min_{α, q} ||x - α q||²`` over ``q ∈ codes^n`` by enumeration.

    For each q the best α is ``<x, q>/<q, q>``, giving ``||x||² - <x, q>²/<q, q>``. With
    ``codes = (-1, 1)`` this is the binary projection, ``(-1, 0, 1)`` the ternary one and
    ``range(-L, L + 1)`` the uniform grid. ``|codes|^n`` candidates.

    Examples
    --------
    >>> r = brute_scaled_grid([1.0, -3.0, 2.0], (-1, 1))
    >>> r.x.tolist(), r.objective
    ([2.0, -2.0, 2.0], 2.0)
    """
    v = _host(x)
    e = frame_exponent(v)
    f = np.ldexp(v, -e).reshape(-1)
    cs = np.asarray(list(codes), dtype=np.float64)
    best_val, best_z, count = float(f @ f), np.zeros_like(f), 0
    if 0.0 not in cs:
        best_val = np.inf
    for q in itertools.product(cs, repeat=f.size):
        count += 1
        q = np.asarray(q)
        qq = float(q @ q)
        if qq == 0:
            continue
        val = float(f @ f) - float(f @ q) ** 2 / qq
        if val < best_val:  # ties keep the first
            best_val, best_z = val, (float(f @ q) / qq) * q
    return BruteResult(np.ldexp(best_z.reshape(v.shape), e), _up(max(best_val, 0.0), 2 * e),
                       count)


def brute_mckp(profits, weights, capacity: float) -> BruteResult:
    """Exact multiple-choice knapsack by enumerating one item per group (Π |group| choices).

    ``x`` of the result holds the chosen item of each group; ``objective`` is its profit
    (``-inf`` if nothing fits).
    """
    ps = [np.asarray(g, dtype=np.float64).reshape(-1) for g in profits]
    ws = [np.asarray(g, dtype=np.float64).reshape(-1) for g in weights]
    e = frame_exponent(*ps)
    ps = [np.ldexp(p, -e) for p in ps]  # sums of one profit per group: no overflow
    best_val, best_c, count = -np.inf, None, 0
    for choice in itertools.product(*[range(g.size) for g in ps]):
        count += 1
        if sum(w[c] for w, c in zip(ws, choice, strict=True)) <= capacity:
            val = float(sum(p[c] for p, c in zip(ps, choice, strict=True)))
            if val > best_val:
                best_val, best_c = val, choice
    x = np.asarray(best_c if best_c is not None else [], dtype=np.int64)
    return BruteResult(x, _up(best_val, e) if best_c is not None else best_val, count)


def brute_sparse_quantized(w, budget_bits: float, candidates) -> BruteResult:
    """Exact projection onto the joint set of Yang et al. (2020) for tiny instances.

    ``min Σ_i ||z_i - w_i||²`` over supports, bits b_i ∈ B and 2^b_i-entry codebooks of the
    kept values, with ``Σ b_i |support_i| <= S``: for every tensor, every support and every
    width the optimal codebook (:func:`brute_kmeans`) gives an item of a multiple-choice
    knapsack, solved by :func:`brute_mckp`. ``x`` is the list of the chosen (tensor)
    arrays in the mapping's order; 2^n supports per tensor (n <= 8 or so).
    """
    names = list(w)
    cands = sorted(set(int(b) for b in candidates))
    e = frame_exponent(*w.values())
    items, profits, weights = [], [], []
    for n in names:
        v = np.ldexp(_host(w[n]), -e)
        f = v.reshape(-1)
        nz = [i for i in range(f.size) if f[i] != 0]
        best: dict[tuple[int, int], tuple[float, np.ndarray]] = {}
        for size in range(len(nz) + 1):
            for support in itertools.combinations(nz, size):
                dropped = float(np.sum(f**2)) - float(np.sum(f[list(support)] ** 2))
                for b in cands:
                    z = np.zeros_like(f)
                    if size:
                        q = brute_kmeans(f[list(support)], 2**b)
                        z[list(support)] = q.x
                        err = dropped + q.objective
                    else:
                        err = dropped
                    key = (b, size)
                    if key not in best or err < best[key][0]:
                        best[key] = (err, z.reshape(v.shape))
        keys = sorted(best)
        items.append([best[k][1] for k in keys])
        profits.append([-best[k][0] for k in keys])
        weights.append([k[0] * k[1] for k in keys])
    r = brute_mckp(profits, weights, budget_bits)
    chosen = [np.ldexp(items[g][c], e) for g, c in enumerate(r.x.tolist())]
    return BruteResult(chosen, _up(-r.objective, 2 * e), r.candidates)  # type: ignore[arg-type]
