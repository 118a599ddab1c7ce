"""Scalar quantization with a learned codebook: optimal 1-D k-means.

The C step of adaptive quantization (Carreira-Perpiñán & Idelbayev, "Model compression as
constrained optimization, with application to neural nets. Part II: quantization", 2017,
§4.1): given weights x, find a codebook c (K entries) and assignments minimizing
``sum_i (x_i - c_{a_i})^2``. In one dimension this is solved exactly by dynamic programming
(the exact path, via :mod:`kmeans1d`); a device-agnostic heuristic (Lloyd's algorithm on the
sorted values, from quantiles) serves arrays on accelerators without a host round trip.
"""

from __future__ import annotations

import ctypes
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from compressopt._array import (
    Array,
    array_namespace,
    check_finite,
    clip,
    fast_namespace,
    from_numpy,
    host_numpy,
    lagged,
    ldexp,
    max_abs,
    numel,
    pow2_exponent,
    take,
    to_numpy,
)
from compressopt.projections._util import acc_dtype, check_int, check_memory
from compressopt.projections.base import StorageCost, TensorScheme, bits_for, count_nonzero

__all__ = [
    "AdaptiveQuantization",
    "KMeansSweep",
    "Quantized",
    "assign_nearest",
    "kmeans1d_exact",
    "kmeans1d_fast",
    "kmeans1d_memory",
    "kmeans1d_sweep",
    "quantize_zero_level",
]


class Quantized(NamedTuple):
    """Θ of a quantized tensor: ``x ≈ codebook[assignments]``.

    ``codebook`` is 1-D, sorted ascending, in the input's dtype; ``assignments`` has the
    input's shape and dtype int64. In sparse mode ``codebook[0] == 0`` is the pruned entries'
    code and is not one of the K learned entries.
    """

    codebook: Array
    assignments: Array


def _check_k(k: int) -> None:
    """k must be an int >= 1: TypeError for other types (bools, floats), ValueError below 1."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"codebook size k must be a positive int, got {type(k).__name__} "
                        f"({k!r})")
    if k < 1:
        raise ValueError(f"codebook size k must be a positive int, got {k!r}")


def _check_flag(value: object, name: str) -> None:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} ({value!r})")


def _codebook_size(k: int, n: int) -> int:
    """Entries of the codebook returned for k clusters of n values: ``min(k, max(n, 1))``
    (more than n entries could only repeat values, and ``k = 10**12`` must not allocate)."""
    return min(k, max(n, 1))


#: bytes per (cluster, value) pair of kmeans1d's dynamic program (its cost and argmin tables:
#: one float64 and one size_t each; measured 16.0-16.2 bytes for n = 2·10^4..4·10^4, K = 500..2000)
EXACT_DP_BYTES = 16


def kmeans1d_memory(n: int, k: int, *, method: Literal["exact", "fast"] = "exact") -> int:
    """Estimated peak memory (bytes) of :func:`kmeans1d_exact` / :func:`kmeans1d_fast` with
    a `k`-entry codebook on `n` values (an upper bound: fewer distinct values cost less).

    * exact: about ``16·K·n`` bytes (kmeans1d's dynamic program over K clusters and n values)
      plus ``160·n`` (host copies, sort); nothing beyond O(n) when ``k >= n`` (the values
      themselves are the optimal codebook, found by a sort);
    * fast: about ``80·n`` bytes (sort, prefix sums) plus its binned dynamic program,
      ``64·(b + 1)·33 + k·(b + 1)`` bytes with ``b = min(n, 8k)`` bins, kept below 256 MiB
      (coarser bins for large k; beyond about k = 11000, Lloyd starts from k companded cells:
      O(n + k)).

    Cheap (no allocation): for a job to check its C step against the memory it has before
    training.

    Examples
    --------
    >>> kmeans1d_memory(60_000, 8192) / 1e9          # exact: 16·K·n
    7.87392
    >>> kmeans1d_memory(60_000, 10**12)              # k >= n: the values themselves
    9600000
    >>> kmeans1d_memory(60_000, 8192, method="fast")  # the DP with 2 bins per cluster
    148987968
    """
    n = check_int(n, "n")
    _check_k(k)
    if method == "exact":
        return 160 * n + (EXACT_DP_BYTES * k * n if k < n else 0)
    if method != "fast":
        raise ValueError(f"method must be 'exact' or 'fast', got {method!r}")
    per = _dp_bins(n, k) if n > k else None
    dp = _dp_bytes(n, k, per) if per is not None else 0
    return 80 * n + dp + 64 * _codebook_size(k, n)


def _kmeans1d_host(v: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-means of the 1-D float64 array `v` (len >= 1, values in [-1, 1]) with kmeans1d;
    sorted codebook of `k` entries (k <= len(v)).

    With at most k distinct values the codebook is those values (zero error; no DP).
    Otherwise kmeans1d's O(kn) dynamic program, after checking its ``16·k·n`` bytes against
    the memory available.
    """
    n = v.shape[0]
    d = np.unique(v)
    if d.size <= k:  # the values themselves: optimal, O(n log n), no DP
        return np.concatenate([d, np.full(k - d.size, d[-1])]), np.searchsorted(d, v)
    check_memory(kmeans1d_memory(n, k), f"exact k-means of {n} values with k = {k}",
                 "use a smaller k or method='fast'")
    import kmeans1d

    # kmeans1d.cluster copies its input element by element into ctypes arrays, which costs
    # more than the DP itself for large n; hand it the numpy buffers when the C entry point is
    # there, and fall back on the public call otherwise.
    dll = getattr(getattr(kmeans1d, "core", None), "_DLL", None)
    if dll is not None:
        v = np.ascontiguousarray(v, dtype=np.float64)
        clusters = np.empty(n, dtype=np.uint64)
        centroids = np.empty(k, dtype=np.float64)
        dll.cluster(
            v.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            ctypes.c_ulong(n),
            ctypes.c_ulong(k),
            clusters.ctypes.data_as(ctypes.POINTER(ctypes.c_ulong)),
            centroids.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        )
        a = clusters.astype(np.int64)
    else:  # pragma: no cover - depends on kmeans1d's internals
        res = kmeans1d.cluster(v, k)
        a = np.asarray(res.clusters, dtype=np.int64)
    # Recompute the centroids as cluster means (kmeans1d leaves empty clusters at 0.0, which
    # happens with repeated values) and give empty clusters their left neighbour's centroid
    # (the first used one for leading empty clusters).
    counts = np.bincount(a, minlength=k)
    sums = np.bincount(a, weights=v, minlength=k)
    used = counts > 0
    c = np.where(used, sums / np.where(used, counts, 1), np.nan)
    last = np.maximum.accumulate(np.where(used, np.arange(k), -1))
    first = int(np.argmax(used))
    return c[np.where(last >= 0, last, first)], a


def kmeans1d_exact(x: Array, k: int, *, sparse: bool = False) -> Quantized:
    """Optimal scalar quantization of `x` with a `k`-entry codebook (exact 1-D k-means).

    .. math:: \\min_{c \\in \\mathbb{R}^k,\\, a} \\sum_i (x_i - c_{a_i})^2

    Parameters
    ----------
    x : array, any shape, real floating; numpy or torch on any device.
    k : int >= 1, codebook size.
    sparse : if True, the zeros of `x` stay zero and the `k` entries are learned on the
        nonzeros; ``codebook[0] = 0`` is the zeros' code (one more codebook entry). A nonzero
        below ``max|x|·2^-1075`` is 0 at the precision of the rescaled problem and gets the
        zeros' code.

    Returns
    -------
    Quantized
        Codebook sorted ascending (dtype of `x`) of ``min(k, max(x.size, 1))`` learned entries
        (more could only repeat values: ``k = 10**12`` allocates nothing), assignments int64
        shaped like `x`. With at most k distinct values each value is its own code (zero
        error) and codebook entries repeat.

    Notes
    -----
    Exact: the O(kn) dynamic program of Wu (1991) / Grønlund et al. (2017) as implemented by
    the ``kmeans1d`` package, run on the host (a device round trip for accelerator arrays),
    about ``16·k·n`` bytes (:func:`kmeans1d_memory`); skipped when `x` has at most k distinct
    values (their sort gives the optimum). K-means is scale-equivariant, so it runs on
    ``x·2^-E`` (E the binary exponent of ``max|x|``: an exact rescaling) and the codebook is
    scaled back: optimal at every finite magnitude, float32 and float64, subnormals included
    (the squared distances neither overflow near 1e308 nor underflow below 1e-154). Optimal
    codebooks are computed in float64 and rounded to the input's dtype.

    Raises
    ------
    ValueError
        `k` < 1.
    TypeError
        `k` is not an int (bools and floats refused), or `sparse` not a bool.
    ResourceLimitError
        The dynamic program would need more memory than is available (checked before it
        allocates anything).
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> q = kmeans1d_exact(np.array([0.0, 0.1, 0.9, 1.0, 5.0]), 2)
    >>> q.codebook, q.assignments
    (array([0.5, 5. ]), array([0, 0, 0, 0, 1]))
    >>> kmeans1d_exact(np.array([1.0, 1.1, 5.0, 5.2]) * 1e-200, 2).codebook
    array([1.05e-200, 5.10e-200])
    """
    _check_k(k)
    _check_flag(sparse, "sparse")
    check_finite(x)
    kc = _codebook_size(k, numel(x))
    v = to_numpy(x).astype(np.float64).reshape(-1)
    e = int(np.frexp(np.max(np.abs(v), initial=0.0))[1])
    v = np.ldexp(v, -e)  # exact: max |v| ∈ [0.5, 1)
    if sparse:
        nz = v != 0
        a = np.zeros(v.shape, dtype=np.int64)
        if nz.any():
            c, a_nz = _kmeans1d_host(v[nz], kc)
            a[nz] = a_nz + 1
        else:
            c = np.zeros(kc)
        c = np.concatenate([[0.0], c])
    elif v.size == 0:
        c, a = np.zeros(kc), np.zeros(0, dtype=np.int64)
    else:
        c, a = _kmeans1d_host(v, kc)
    xp = array_namespace(x)
    codebook = xp.astype(from_numpy(np.ldexp(c, e), x), x.dtype)
    assignments = xp.reshape(from_numpy(a, x), x.shape)
    return Quantized(codebook, assignments)


class _Stats(NamedTuple):
    """Sorted values and the prefix sums that every fast k-means step reads (accumulation dtype).

    The values are those of x scaled by ``2^-e`` (e the binary exponent of ``max|x|``, so
    ``max|s| ∈ [0.5, 1)``): an exact rescaling under which k-means is the same problem, and
    no sum of squares overflows or underflows. Centers in this frame are ``c·2^-e``. In
    sparse mode only the nonzeros (of the frame) are kept: the zeros have their own code and
    weigh nothing, so every step costs O(nnz), not O(x.size).
    """

    s: Array  # sorted values · 2^-e (the nonzeros only in sparse mode), (n,)
    w: Array  # weights (all 1), (n,)
    cw: Array  # prefix sums of w, (n + 1,)
    cs: Array  # prefix sums of w * s, (n + 1,)
    e: Array  # 0-d int: the frame's binary exponent
    cache: dict  # work shared by the codebook sizes (the companding's pilot)


def _stats(x: Array, sparse: bool) -> _Stats:
    xp = array_namespace(x)
    acc = acc_dtype(x)
    f = xp.astype(xp.reshape(x, (-1,)), acc)
    e = pow2_exponent(max_abs(f))
    f = ldexp(f, -e)
    if sparse:  # a nonzero below max|x|·2^-1075 is 0 in the frame: the zeros' code
        f = f[f != 0]
    s = xp.sort(f, stable=False)
    w = xp.ones_like(s)
    return _Stats(s, w, xp.cumulative_sum(w, include_initial=True),
                  xp.cumulative_sum(s, include_initial=True), e, {})


def _to_frame(st: _Stats, c: Array) -> Array:
    """A codebook in x's units as centers of the frame of `st` (accumulation dtype)."""
    return ldexp(array_namespace(c).astype(c, st.s.dtype), -st.e)


def _from_frame(st: _Stats, c: Array, dtype: object) -> Array:
    """Centers of the frame of `st` as a codebook in x's units and `dtype`."""
    return array_namespace(c).astype(ldexp(c, st.e), dtype)


def _segment_means(cw: Array, cs: Array, lo: Array, hi: Array, fallback: Array) -> Array:
    """Weighted means of the sorted segments [lo, hi) from prefix sums; `fallback` if empty."""
    xp = fast_namespace(cw)
    w = take(cw, hi) - take(cw, lo)
    s = take(cs, hi) - take(cs, lo)
    ok = w > 0
    return xp.where(ok, s / xp.where(ok, w, xp.ones_like(w)), fallback)


def _distinct_codebook(st: _Stats, k: int) -> tuple[Array, Array]:
    """The first `k` distinct weighted values (repeating the last) and their count D (0-d).

    When ``D <= k`` this codebook is optimal (zero error). O(n), no data-dependent shapes.
    """
    xp = fast_namespace(st.s)
    s, n = st.s, st.s.shape[0]
    first = xp.ones((1,), dtype=xp.bool, device=s.device)
    new = xp.concat([first, s[1:] != s[:-1]]) & (st.w > 0)
    rank = xp.cumulative_sum(xp.astype(new, xp.int64))  # rank[i] = distinct values in s[:i+1]
    d = rank[-1]
    j = xp.arange(1, k + 1, dtype=xp.int64, device=s.device)
    j = xp.minimum(j, xp.maximum(d, xp.ones_like(d)))  # beyond D: repeat the last value
    pos = clip(xp.searchsorted(rank, j, side="left"), 0, n - 1)
    return take(s, pos), d


# Fast-path constants, chosen by measurement against the exact DP (benchmarks/projections.py):
_BINS_PER_CLUSTER = 8  # companded bins per codebook entry
_BAND = 32  # a cluster spans at most this many bins (4x the average)
_PILOT = 4096  # equal-mass cells of the density estimate behind the companding
_DP_BYTES = 1 << 28  # the binned DP runs while its tables stay below 256 MiB


def _dp_bytes(n: int, k: int, per: int = _BINS_PER_CLUSTER) -> int:
    """Bytes of :func:`_dp_codebook`'s tables with `per` bins per cluster: eight
    (bins+1)×(band+1) arrays of 8 bytes and the k stages' argmins (int8)."""
    nb = min(n, per * k)
    return 64 * (nb + 1) * (min(nb, max(_BAND * per // _BINS_PER_CLUSTER, 4)) + 1) + \
        k * (nb + 1)


def _dp_bins(n: int, k: int) -> int | None:
    """Bins per cluster of the binned DP: the finest of 8, 4, 2 whose tables fit in
    ``_DP_BYTES``; None when none does (then Lloyd starts from k companded cells; one bin per
    cluster measured no better than that start)."""
    return next((per for per in (8, 4, 2) if _dp_bytes(n, k, per) <= _DP_BYTES), None)


def _pilot(st: _Stats) -> tuple[Array, Array]:
    """The companding's density estimate, once per `st`: the values v at the edges of
    ``_PILOT`` equal-mass cells and ``fc``, the prefix sums of their widths^(2/3) (∫ p^(1/3)
    up to a constant, p ≈ mass / width)."""
    if "pilot" not in st.cache:
        xp = fast_namespace(st.s)
        s, n, acc = st.s, st.s.shape[0], st.s.dtype
        total = st.cw[-1]
        q = (xp.arange(_PILOT, dtype=acc, device=s.device) + 0.5) / _PILOT
        lo = xp.searchsorted(st.cw[1:], xp.zeros_like(total), side="right")  # first weighted
        hi = xp.searchsorted(st.cw[1:], total, side="left")  # last weighted entry
        idx = xp.concat([xp.reshape(lo, (1,)), xp.searchsorted(st.cw[1:], total * q,
                                                               side="left"),
                         xp.reshape(hi, (1,))])
        v = take(s, clip(idx, 0, n - 1))
        width = xp.maximum(v[1:] - v[:-1], xp.zeros_like(v[1:]))
        st.cache["pilot"] = v, xp.cumulative_sum(width ** (2.0 / 3.0), include_initial=True)
    return st.cache["pilot"]


def _companded_edges(st: _Stats, k: int, per_cluster: int = _BINS_PER_CLUSTER
                     ) -> tuple[Array, Array]:
    """Bin edges (positions in the sorted data) equally spaced in the companded variable.

    The asymptotically optimal quantizer has cell density ∝ p(x)^(1/3) (Panter & Dite 1951;
    Gersho & Gray 1992, §6.3): with ``8k`` bins equally spaced in ``∫ p^(1/3)`` (p estimated
    from ``_PILOT`` equal-mass cells) every optimal cell spans about 8 bins, in the core and
    in the tails alike. Edges sit at value boundaries (ties never straddle two bins); repeated
    edges are moved to the end, so the first ``R + 1`` edges are distinct and span the data.

    Returns the edges (``8k + 1`` positions, nondecreasing; the first R + 1 bound bins of
    positive weight) and R (0-d). With ``per_cluster = 1``: k cells, a start for Lloyd.
    """
    xp = fast_namespace(st.s)
    s, n, acc = st.s, st.s.shape[0], st.s.dtype
    dev = s.device
    v, fc = _pilot(st)
    m = per_cluster * k
    t = fc[-1] * xp.arange(1, m, dtype=acc, device=dev) / m
    i = clip(xp.searchsorted(fc, t, side="right") - 1, 0, v.shape[0] - 2)
    f0, f1 = take(fc, i), take(fc, i + 1)
    step = xp.where(f1 > f0, f1 - f0, xp.ones_like(f0))
    vals = take(v, i) + (t - f0) / step * (take(v, i + 1) - take(v, i))
    cuts = xp.searchsorted(s, xp.astype(vals, s.dtype), side="left")
    ends = xp.asarray([0, n], dtype=cuts.dtype, device=dev)
    return _weighted_edges(st, xp.sort(xp.concat([ends, cuts]), stable=False))


def _weighted_edges(st: _Stats, e: Array) -> tuple[Array, Array]:
    """Drop the edges that close a weightless bin (repeated positions, or only zeros in sparse
    mode), moving them to the end: the first R + 1 edges then bound bins of positive weight
    (weightless entries join the next bin) and the DP's band counts only those."""
    xp = fast_namespace(e)
    n = st.s.shape[0]
    w = take(st.cw, e)
    dup = xp.concat([xp.zeros((1,), dtype=xp.bool, device=e.device), w[1:] <= w[:-1]])
    r = xp.sum(xp.astype(~dup, xp.int64)) - 1
    return clip(xp.sort(xp.where(dup, xp.full_like(e, n + 1), e), stable=False), 0, n), r


def _dp_codebooks(st: _Stats, ks: Sequence[int], per: int = _BINS_PER_CLUSTER) -> list[Array]:
    """Optimal k-means of the bins of :func:`_companded_edges` (banded DP), as k centers,
    for every k of `ks` (ascending).

    Bellman recursion of the 1-D k-means DP (Wang & Song 2011, eq. 1) over `per`·k bins
    (8 by default; fewer for large k, see :func:`_dp_bins`) instead of points (the points
    themselves when there are at most per·k):
    ``D_j[b] = min_{0 <= w <= W} D_{j-1}[b - w] + cost(b - w, b)``, where cost is the
    within-cluster sum of squares of the bin means (the within-bin part is a constant), the
    span w <= W bins (the band) and w = 0 (an empty cluster) keeps the recursion feasible when
    there are fewer bins than clusters. O(k · 8k · W) vectorized work, k sequential steps.

    When the points are the bins (``n <= per·ks[0]``) the recursion does not depend on k: its
    stage j is the j-cluster table, so one run of ``max(ks)`` stages serves every k of `ks`
    (each backtracked from its own stage; the same centers as separate runs). Otherwise `ks`
    holds one k.
    """
    xp = fast_namespace(st.s)
    s, n, dev = st.s, st.s.shape[0], st.s.device
    if n <= per * ks[0]:  # few points: every (weighted) point is a bin
        e, r = _weighted_edges(st, xp.arange(n + 1, device=dev))
    else:
        if len(ks) != 1:
            raise ValueError("companded bins serve one codebook size")  # pragma: no cover
        e, r = _companded_edges(st, ks[0], per)
    nb = e.shape[0] - 1  # bins
    big_n, m1 = take(st.cw, e), take(st.cs, e)
    cnt, tot = big_n[1:] - big_n[:-1], m1[1:] - m1[:-1]
    mean = xp.where(cnt > 0, tot / xp.where(cnt > 0, cnt, xp.ones_like(cnt)), xp.zeros_like(cnt))
    m2 = xp.cumulative_sum(cnt * mean * mean, include_initial=True)
    band = min(nb, max(_BAND * per // _BINS_PER_CLUSTER, 4))  # spans <= 4x the average
    b = xp.reshape(xp.arange(nb + 1, device=dev), (-1, 1))
    valid = b - xp.reshape(xp.arange(band + 1, device=dev), (1, -1)) >= 0  # (nb+1, band+1)

    def gather(v: Array, fill: float = 0.0) -> Array:  # [b, w] = v[b - w]
        return lagged(v, band + 1, fill)

    dn = big_n[:, None] - gather(big_n)  # weight, sum and sum of squares of bins a..b-1
    d1 = m1[:, None] - gather(m1)
    d2 = m2[:, None] - gather(m2)
    cost = d2 - d1 * d1 / xp.where(dn > 0, dn, xp.ones_like(dn))
    cost = xp.where(dn > 0, xp.maximum(cost, xp.zeros_like(cost)), xp.zeros_like(cost))
    cost = xp.where(valid, cost, xp.full_like(cost, math.inf))
    dv = xp.where(xp.reshape(b, (-1,)) == 0, xp.zeros(nb + 1, dtype=s.dtype, device=dev),
                  xp.full((nb + 1,), math.inf, dtype=s.dtype, device=dev))
    rows = xp.arange(nb + 1, device=dev) * (band + 1)
    spans, hops = [], None
    if type(dv) is np.ndarray:  # numpy: dv written into one padded buffer that a fixed
        pad = np.full(band + nb + 1, np.inf, dtype=dv.dtype)  # strided view reads as
        head = pad[band:]  # lagged(dv, band + 1, inf) does: no view or array per stage
        head[...] = dv
        win = np.lib.stride_tricks.as_strided(head, (nb + 1, band + 1),
                                              (pad.strides[0], -pad.strides[0]),
                                              writeable=False)
        t = np.empty_like(cost)
        tf = t.reshape(-1)
        table = np.empty((ks[-1], nb + 1), dtype=np.int8)  # spans of at most _BAND bins
        for stage in table:  # the DP's stages (a loop over clusters, not over weights)
            np.add(win, cost, out=t)
            j = t.argmin(axis=1)
            tf.take(rows + j, out=head)  # the minimum, at its first position
            stage[...] = j
        hops = table.tolist()  # the backtrack in Python ints: k steps of ~0.1 µs, not ~8 µs
        last = int(r)
    else:
        for _ in range(ks[-1]):  # the DP's stages (a loop over clusters, not over weights)
            t = gather(dv, math.inf) + cost
            j = xp.argmin(t, axis=1)
            dv = take(xp.reshape(t, (-1,)), rows + j)  # the minimum, at its first position
            spans.append(xp.astype(j, xp.int8))  # spans of at most _BAND bins
    out = []
    for k in ks:
        if hops is None:  # backtrack from the last real bin, on the device
            pos = xp.reshape(r, (1,))
            cuts = [pos]
            for j in reversed(spans[:k]):
                pos = pos - xp.astype(take(j, pos), xp.int64)
                cuts.append(pos)
            at = xp.concat(cuts[::-1])
        else:  # numpy: on the host
            p, back = last, [last]
            for i in range(k - 1, -1, -1):
                p -= hops[i][p]
                back.append(p)
            at = np.asarray(back[::-1], dtype=np.int64)
        cut = take(e, at)  # k + 1 positions in the sorted data
        fallback = take(s, clip(cut[:-1], 0, n - 1))
        out.append(xp.sort(_segment_means(st.cw, st.cs, cut[:-1], cut[1:], fallback),
                           stable=False))
    return out


def _lloyd(st: _Stats, c: Array, iters: int) -> Array:
    """At most `iters` Lloyd iterations on the sorted data, each O(k log n) from prefix sums;
    stops at a fixed point (one host read of a flag per iteration; the result is the one of
    `iters` iterations, since a fixed point stays)."""
    xp = fast_namespace(st.s)
    n = st.s.shape[0]
    zero = xp.zeros((1,), dtype=xp.int64, device=st.s.device)
    end = xp.full((1,), n, dtype=xp.int64, device=st.s.device)
    for _ in range(iters):  # a loop over iterations, not over weights
        mids = (c[:-1] + c[1:]) / 2
        b = xp.astype(xp.searchsorted(st.s, mids, side="left"), xp.int64)
        edges = xp.concat([zero, b, end])
        new = xp.sort(_segment_means(st.cw, st.cs, edges[:-1], edges[1:], c), stable=False)
        if bool(xp.all(new == c)):
            return new
        c = new
    return c


def _companded_codebook(st: _Stats, k: int) -> Array:
    """k centers: the means of k cells equally spaced in the companded variable ``∫ p^(1/3)``
    (the cell density of the optimal high-resolution quantizer, see :func:`_companded_edges`);
    O(n + k) memory. The start of Lloyd when the binned DP's tables would be too large."""
    xp = fast_namespace(st.s)
    n = st.s.shape[0]
    e, _r = _companded_edges(st, k, per_cluster=1)
    fallback = take(st.s, clip(e[:-1], 0, n - 1))
    return xp.sort(_segment_means(st.cw, st.cs, e[:-1], e[1:], fallback), stable=False)


def _distinct_count(st: _Stats) -> int:
    """The number D of distinct values of `st` (one host read)."""
    xp = fast_namespace(st.s)
    if st.s.shape[0] == 0:
        return 0
    return 1 + int(xp.sum(xp.astype(st.s[1:] != st.s[:-1], xp.int64)))


def _fast_codebooks(st: _Stats, ks: Sequence[int], iters: int, size: int) -> list[Array]:
    """For each k of `ks`: ``min(k, max(size, 1))`` sorted centers in the frame of `st`
    (accumulation dtype; `size` the entries of x, so the codebook's length does not depend
    on how many are zero). The distinct values if D <= k (zero error; the last repeated),
    else the binned DP (8, 4 or 2 bins per cluster, the finest whose tables fit in 256 MiB;
    k companded cells beyond) refined by Lloyd. The sizes whose bins are the points share one
    DP (:func:`_dp_codebooks`)."""
    xp = array_namespace(st.s)
    n = st.s.shape[0]
    out: dict[int, Array] = {}
    if n == 0:
        return [xp.zeros((_codebook_size(k, size),), dtype=st.s.dtype, device=st.s.device)
                for k in ks]
    d = _distinct_count(st)
    groups: dict[object, list[int]] = {}
    for k in sorted(set(ks)):  # a loop over codebook sizes
        if d <= k:  # at most k values: the distinct ones are optimal
            out[k] = _distinct_codebook(st, _codebook_size(k, size))[0]
            continue
        per = _dp_bins(n, k)
        key = ("points", per) if per is not None and n <= per * k else ("one", per, k)
        groups.setdefault(key, []).append(k)
    for key, group in groups.items():
        per = key[1]
        starts = (_dp_codebooks(st, group, per) if per is not None else
                  [_companded_codebook(st, group[0])])
        for k, start in zip(group, starts, strict=True):
            out[k] = _lloyd(st, start, iters)
    return [out[k] for k in ks]


def _fast_codebook(st: _Stats, k: int, iters: int, size: int | None = None) -> Array:
    """:func:`_fast_codebooks` for one size (``size`` defaults to the values of `st`)."""
    return _fast_codebooks(st, [k], iters, st.s.shape[0] if size is None else size)[0]


def assign_nearest(x: Array, codebook: Array) -> Array:
    """Index of the nearest entry of the sorted 1-D `codebook` for every entry of `x`.

    Ties (a value halfway between two entries) go to the lower entry. O(n log K), one binary
    search per entry; int64, shaped like `x`, on `x`'s device. Exact for a fixed codebook at
    every finite magnitude (the midpoints are ``a/2 + b/2``, which cannot overflow).

    Examples
    --------
    >>> import numpy as np
    >>> assign_nearest(np.array([-1.0, 0.2, 0.5, 3.0]), np.array([0.0, 1.0]))
    array([0, 0, 0, 1])
    """
    xp = array_namespace(x, codebook)
    acc = acc_dtype(x)
    cb = xp.astype(codebook, acc)
    mids = cb[:-1] / 2 + cb[1:] / 2  # no overflow near 1e308 (halving is exact above 2^-1021)
    a = xp.searchsorted(mids, xp.astype(xp.reshape(x, (-1,)), acc), side="left")
    return xp.reshape(xp.astype(a, xp.int64), x.shape)


def _with_zero(c: Array) -> tuple[Array, Array]:
    """The sorted levels ``{0} ∪ c`` and the position of 0 among them (0-d int64)."""
    xp = fast_namespace(c)
    z = xp.sum(xp.astype(c < 0, xp.int64))
    return xp.sort(xp.concat([xp.zeros((1,), dtype=c.dtype, device=c.device), c]),
                   stable=False), z


def _lloyd_zero(st: _Stats, c: Array, iters: int) -> Array:
    """Lloyd iterations for the `k` free centers `c` with a fixed center at 0 (sorted)."""
    xp = fast_namespace(st.s)
    n, k = st.s.shape[0], c.shape[0]
    zero = xp.zeros((1,), dtype=xp.int64, device=st.s.device)
    end = xp.full((1,), n, dtype=xp.int64, device=st.s.device)
    idx = xp.arange(k + 1, dtype=xp.int64, device=st.s.device)
    for _ in range(iters):  # a loop over iterations, not over weights
        cc, z = _with_zero(c)
        mids = (cc[:-1] + cc[1:]) / 2
        b = xp.astype(xp.searchsorted(st.s, mids, side="left"), xp.int64)
        edges = xp.concat([zero, b, end])
        means = _segment_means(st.cw, st.cs, edges[:-1], edges[1:], cc)
        # drop the fixed center's segment: k free means, in order
        keep = xp.argsort(xp.astype(idx == z, xp.int64), stable=True)[:k]
        new = xp.sort(take(means, keep), stable=False)
        if bool(xp.all(new == c)):  # a fixed point stays: the result of `iters` iterations
            return new
        c = new
    return c


def _zero_level_codebook(x: Array, st: _Stats, c: Array, method: str,
                         iters: int) -> tuple[Array, Array]:
    """k levels beside a fixed 0, and their error: the best of up to four Lloyd starts, all
    in the frame of `st` (centers and error ``·2^-e`` and ``·2^-2e``).

    Starts: the k-means codebook `c` of the nonzeros, and for k <= 16 also, for j = 1, 2, 3,
    the (k+j)-means codebook without its j entries nearest 0 (the fixed level takes the place
    of the clusters around 0; with more levels the cluster at 0 matters less and these starts
    cost most). All on the device; no host read.
    """
    xp = array_namespace(st.s)
    starts = [c]
    k = c.shape[0]  # min(k, n)
    size = numel(x)
    for j in range(1, 4 if k <= 16 else 1):
        if k + j > size:  # no (k+j)-entry codebook to drop j entries from
            break
        if method == "exact":
            cj = _to_frame(st, kmeans1d_exact(x, k + j, sparse=True).codebook[1:])
        else:
            cj = _fast_codebook(st, k + j, iters, size)
        far = xp.argsort(xp.abs(cj), stable=True)[j:]  # drop the j entries nearest 0
        starts.append(xp.sort(take(cj, far), stable=False))
    best_c, best_e = None, None
    for start in starts:
        cz = _lloyd_zero(st, start, iters)
        e = _sse(st, _with_zero(cz)[0])
        if best_e is None:
            best_c, best_e = cz, e
        else:
            better = e < best_e
            best_c, best_e = xp.where(better, cz, best_c), xp.where(better, e, best_e)
    return best_c, best_e


def _quantized_zero(x: Array, c: Array) -> Quantized:
    """Θ for the levels ``{0} ∪ c``: every entry to its nearest level, ``codebook[0] = 0``."""
    xp = array_namespace(x)
    c = xp.sort(xp.astype(c, x.dtype), stable=False)
    cc, z = _with_zero(c)
    a = assign_nearest(x, cc)
    a = xp.where(a == z, xp.zeros_like(a), xp.where(a < z, a + 1, a))
    return Quantized(xp.concat([xp.zeros((1,), dtype=c.dtype, device=c.device), c]), a)


def _frame_nonzero(x: Array) -> Array:
    """The entries of `x` that are nonzero in its frame ``x·2^-E`` (E the binary exponent of
    ``max|x|``): the nonzeros but those below ``max|x|·2^-1075``, which the sparse k-means
    of :func:`_stats` treats as zeros (only float64 has such pairs)."""
    acc = acc_dtype(x)
    if x.dtype != acc:  # float32 in float64: no entry underflows in the frame
        return x != 0
    return ldexp(x, -pow2_exponent(max_abs(x))) != 0


def _quantized(x: Array, c: Array, sparse: bool) -> Quantized:
    """Θ for the codebook `c` (any float dtype): assignments to the nearest entry; in sparse
    mode code 0 (the value 0) for the entries that are 0 in x's frame."""
    xp = array_namespace(x)
    c = xp.astype(c, x.dtype)
    a = assign_nearest(x, c)
    if sparse:
        a = xp.where(_frame_nonzero(x), a + 1, xp.zeros_like(a))
        c = xp.concat([xp.zeros((1,), dtype=c.dtype, device=c.device), c])
    return Quantized(c, a)


def _sse(st: _Stats, c: Array) -> Array:
    """Weighted squared error of the sorted data against its nearest centers (0-d, acc dtype)."""
    xp = fast_namespace(st.s)
    d = st.s - take(c, xp.reshape(assign_nearest(st.s, c), (-1,)))
    return xp.sum(st.w * d * d)


def kmeans1d_fast(x: Array, k: int, *, sparse: bool = False, iters: int = 30) -> Quantized:
    """Scalar quantization by a binned k-means DP refined by Lloyd (device-agnostic heuristic).

    Solves the problem of :func:`kmeans1d_exact` approximately, with Array-API calls only
    (torch tensors stay on their device; no host transfer):

    1. one sort, prefix sums of the (weighted) values;
    2. ``8k`` bins equally spaced in the companded variable ``∫ p^(1/3)`` (the point density
       of the optimal high-resolution quantizer, Panter & Dite 1951), estimated from 4096
       equal-mass cells;
    3. the exact k-means DP over the bins (Wang & Song 2011's recursion with bins for points,
       each cluster spanning at most 32 bins): k vectorized stages of O(8k · 33) work. Its
       tables are kept below 256 MiB: for k above about 4700 (n > 8k) it uses 4 or 2 bins
       per cluster (spans of at most 16 or 8 bins), and beyond about k = 11000 Lloyd starts
       from the means of k cells equally spaced in the companded variable (O(n + k) memory);
    4. `iters` Lloyd iterations on all the data, O(k log n) each from the prefix sums.

    With at most k distinct values the codebook is exactly those values (zero error).

    Parameters and returns as :func:`kmeans1d_exact` (``min(k, max(x.size, 1))`` entries);
    `iters` >= 0 Lloyd iterations.

    Notes
    -----
    Heuristic: a Lloyd fixed point (no worse than the binned DP's clustering, which is the
    optimum over clusterings that do not split a bin). Measured on Gaussian, uniform,
    Student-t(3) and pruned (bimodal) data with K = 2..256 (``benchmarks/projections.py``):
    within 1% of the exact optimum (typically 0.1%). With many clusters per value (30,000
    normal or t(3) values): with 8 bins per cluster (k = 2000) +0.1 %, with 4 (k = 3000)
    +0.7 % / +1.2 %, with 2 (k = 12000) +11 %, from the companded start alone (k = 6000 or
    12000) +72 % to +900 %: for k > n/8 prefer the exact method where
    :func:`kmeans1d_memory` allows it. Cost: O(n log n + 264 k² + iters k log n) time,
    :func:`kmeans1d_memory` bytes. Runs on ``x·2^-E`` (E the binary exponent of
    ``max|x|``, an exact rescaling, so the same at every finite magnitude, float32 and
    float64, subnormals included); prefix sums in float64 where the device supports it. In
    sparse mode n is the number of nonzeros (the zeros are dropped before the sort). Lloyd
    stops at its fixed point (one host read per iteration; the same result as `iters`
    iterations). A torch tensor on the CPU is worked on as a numpy view (the many small
    steps cost about 1 µs each in numpy, 5-20 µs in torch); the result is a torch tensor.

    Examples
    --------
    >>> import numpy as np
    >>> q = kmeans1d_fast(np.array([0.0, 0.1, 0.9, 1.0, 5.0]), 2)
    >>> q.codebook, q.assignments
    (array([0.5, 5. ]), array([0, 0, 0, 0, 1]))
    """
    _check_k(k)
    _check_flag(sparse, "sparse")
    check_int(iters, "iters")
    check_finite(x)
    h = host_numpy(x)
    v = x if h is None else h  # CPU tensors: numpy's cheaper small steps
    st = _stats(v, sparse)
    c = _from_frame(st, _fast_codebook(st, k, iters, numel(x)), v.dtype)
    return _quantized(x, c if v is x else from_numpy(c, x), sparse)


def quantize_zero_level(x: Array, codebook: Array) -> Quantized:
    """Every entry of `x` to its nearest level among ``{0} ∪ codebook`` (a projection).

    The V of Yang et al.'s eq. (10) for one tensor, given its k learned levels (e.g. from
    :func:`kmeans1d_sweep` with ``zero_level=True``). Returns Θ with ``codebook[0] = 0`` (code
    0: the zeros) followed by the sorted levels; assignments int64 shaped like `x`. Exact for
    the given levels; O(n log k), on `x`'s device.

    Raises
    ------
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> q = quantize_zero_level(np.array([-0.9, 0.1, 0.3, 2.0]), np.array([1.0, -1.0]))
    >>> q.codebook, q.assignments
    (array([ 0., -1.,  1.]), array([1, 0, 0, 2]))
    """
    check_finite(x)
    return _quantized_zero(x, codebook)


class KMeansSweep(NamedTuple):
    """Optimal-or-near codebooks for several sizes on one tensor (:func:`kmeans1d_sweep`).

    ``codebooks[i]`` (sorted, dtype of the input, ``min(ks[i], max(x.size, 1))`` entries,
    learned on the nonzeros in sparse mode, without the zero code) and ``sse[i]``, the squared
    error of the (nonzero) entries against it: a 1-D array on the input's device, accumulation
    dtype (float64 where available). The codebooks are computed on an exactly rescaled copy
    (any finite magnitude); ``sse`` is in x's units squared, so it overflows to inf for
    values beyond about 1e154 and underflows to 0 below about 1e-154 (scale the tensors by a
    common power of two first to compare errors at such magnitudes).
    """

    ks: tuple[int, ...]
    codebooks: tuple[Array, ...]
    sse: Array


def kmeans1d_sweep(x: Array, ks: Sequence[int], *, sparse: bool = False,
                   method: Literal["exact", "fast"] = "fast", iters: int = 30,
                   zero_level: bool = False) -> KMeansSweep:
    """k-means codebooks and their errors for every size in `ks`, sharing one sort.

    .. math:: E_k = \\min_{c \\in \\mathbb{R}^k,\\, a} \\sum_{i : x_i \\ne 0} (x_i - c_{a_i})^2
        \\quad (\\text{all } i \\text{ unless sparse})

    the error table of the bit-allocation knapsack (Yang et al. 2020, Definition 1). With
    `zero_level`, the k learned levels come with a fixed level 0 open to every entry:

    .. math:: E^0_k = \\min_{c \\in \\mathbb{R}^k} \\sum_i \\min(x_i^2, \\min_j (x_i - c_j)^2),

    the error of Yang et al.'s eq. (10) for one tensor (b(V) counts the distinct nonzeros, so
    a zero costs nothing and V may be zero anywhere). A heuristic for every method: `iters`
    Lloyd iterations with the level 0 held fixed (each lowers E^0 or keeps it) from the
    k-means codebook of the nonzeros and, for k <= 16, also from the (k+j)-means ones without
    their j entries nearest 0 (j = 1, 2, 3), the best kept; so ``E^0_k <= E_k`` of sparse
    mode (same method). Not always optimal: on 600 random instances with n <= 11, k <= 3 it
    matched enumeration (:func:`~compressopt.verify.brute_kmeans_zero`) in 98 % and stayed
    within 10 % of it; e.g. x = (0.625, 0.875, 2), k = 1 ends at the level 7/6 (error 1.073)
    instead of 1.4375 (error 1.023), since 0.625 is nearer 7/6 than 0.

    Parameters
    ----------
    x : array, any shape, real floating.
    ks : codebook sizes, each >= 1.
    sparse : learn on the nonzeros only (zeros keep their own code); implied by `zero_level`.
    method : ``"fast"`` (:func:`kmeans1d_fast`'s algorithm, on the device — a numpy view for
        CPU tensors —, the sort, the companding's pilot and, for the sizes whose bins are the
        points (``n <= 8k``), the DP's stages shared by all sizes) or ``"exact"``
        (:func:`kmeans1d_exact`, on the host).
    iters : Lloyd iterations of the fast method (and of the zero-level refinement).
    zero_level : a fixed level 0 beside the k learned ones, for every entry; ``codebooks[i]``
        then holds the k learned levels (quantize with :func:`quantize_zero_level`).

    Returns
    -------
    KMeansSweep

    Raises
    ------
    ValueError
        A size < 1, or an unknown method.
    TypeError
        A size that is not an int, a flag that is not a bool, or non-int `iters`.
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> sw = kmeans1d_sweep(np.array([0.0, 1.0, 2.0, 10.0]), [1, 2, 4])
    >>> sw.sse.round(3).tolist()
    [62.75, 2.0, 0.0]
    """
    ks = tuple(ks)
    for k in ks:
        _check_k(k)
    _check_flag(sparse, "sparse")
    _check_flag(zero_level, "zero_level")
    check_int(iters, "iters")
    if method not in ("exact", "fast"):
        raise ValueError(f"method must be 'exact' or 'fast', got {method!r}")
    check_finite(x)
    sw = _Sweep(x, sparse=sparse, method=method, iters=iters, zero_level=zero_level)
    sw.compute(ks)
    return KMeansSweep(ks, tuple(sw.book(k) for k in ks),
                       sw.out(ldexp(sw.frame_sse(ks), 2 * sw.st.e)))


class _Sweep:
    """One tensor's codebooks and errors, computed on demand and kept (the frame, the sort and
    the prefix sums shared by every size): :func:`kmeans1d_sweep`'s work, for callers that
    need only some sizes (:func:`~compressopt.projections.mckp.allocate_bits`). Arguments
    checked by the caller.

    A torch tensor on the CPU is worked on as a numpy view (:func:`host_numpy`: the many small
    steps cost about 1 µs each in numpy, 5-20 µs in torch); :meth:`book` and :meth:`out`
    give results in the input's library. Accelerator arrays stay on their device.
    """

    def __init__(self, x: Array, *, sparse: bool, method: str, iters: int,
                 zero_level: bool) -> None:
        h = host_numpy(x)
        self.like, self.host = x, h is not None and h is not x
        x = x if h is None else h
        self.x, self.method, self.iters, self.zero_level = x, method, iters, zero_level
        self.sparse = sparse or zero_level
        self.st = _stats(x, self.sparse)
        self.books: dict[int, Array] = {}  # k -> codebook, x's dtype and units
        self.errs: dict[int, Array] = {}  # k -> 0-d squared error in the frame (·2^-2e)

    def compute(self, ks: Sequence[int]) -> None:
        """Codebooks and errors for the sizes of `ks` not computed yet."""
        todo = [k for k in dict.fromkeys(ks) if k not in self.books]
        if not todo:
            return
        x, st = self.x, self.st
        xp = array_namespace(st.s)
        if self.method == "exact":
            books = []
            for k in todo:  # a loop over codebook sizes
                c = kmeans1d_exact(x, k, sparse=self.sparse).codebook
                books.append(c[1:] if self.sparse else c)
        else:
            books = [_from_frame(st, c, x.dtype) for c in
                     _fast_codebooks(st, todo, self.iters, numel(x))]
        for k, c in zip(todo, books, strict=True):
            if self.zero_level and st.s.shape[0]:
                c, e = _zero_level_codebook(x, st, _to_frame(st, c), self.method, self.iters)
                c = _from_frame(st, c, x.dtype)
            elif st.s.shape[0]:
                e = _sse(st, _to_frame(st, c))
            else:
                e = xp.zeros((), dtype=st.s.dtype, device=st.s.device)
            self.books[k], self.errs[k] = c, e

    def out(self, a: Array) -> Array:
        """An array of the work as one of the input's library and device."""
        return from_numpy(a, self.like) if self.host else a

    def book(self, k: int) -> Array:
        """The codebook of size `k` (computed) in the input's library, dtype and units."""
        return self.out(self.books[k])

    def frame_sse(self, ks: Sequence[int]) -> Array:
        """The errors of `ks` (computed) in the frame, 1-D, accumulation dtype."""
        xp = array_namespace(self.st.s)
        if not ks:
            return xp.zeros((0,), dtype=self.st.s.dtype, device=self.st.s.device)
        return xp.stack([self.errs[k] for k in ks])


@dataclass(frozen=True)
class AdaptiveQuantization(TensorScheme):
    """Quantization with a learned K-entry codebook per tensor (per task).

    Feasible set: arrays with at most `k` distinct values (plus zeros in sparse mode).
    Storage: ``ceil(log2 k)`` bits per stored value (every entry; only the nonzeros in sparse
    mode) plus ``32 k`` bits of codebook (overhead).

    Parameters
    ----------
    k : codebook size, >= 1.
    method : ``"exact"`` (:func:`kmeans1d_exact`, optimal, on the host) or ``"fast"``
        (:func:`kmeans1d_fast`, Lloyd, on the array's device).
    sparse : keep zeros at zero and learn the codebook on the nonzeros (to quantize a pruned
        tensor, e.g. after :class:`~compressopt.projections.cardinality.GlobalCardinality`).
    """

    k: int
    method: Literal["exact", "fast"] = "exact"
    sparse: bool = False

    def __post_init__(self) -> None:
        _check_k(self.k)
        _check_flag(self.sparse, "sparse")
        if self.method not in ("exact", "fast"):
            raise ValueError(f"method must be 'exact' or 'fast', got {self.method!r}")

    @property
    def exact(self) -> bool:  # type: ignore[override]
        return self.method == "exact" and not self.sparse

    def compress(self, x: Array, /) -> Quantized:
        f = kmeans1d_exact if self.method == "exact" else kmeans1d_fast
        return f(x, self.k, sparse=self.sparse)

    def decompress(self, theta: Quantized, /) -> Array:
        xp = array_namespace(theta.codebook)
        return xp.reshape(take(theta.codebook, xp.reshape(theta.assignments, (-1,))),
                          theta.assignments.shape)

    def cost(self, theta: Quantized, /) -> StorageCost:
        n = numel(theta.assignments)
        nnz = count_nonzero(theta.assignments) if self.sparse else n
        return StorageCost(numel=n, nnz=nnz, bits=bits_for(self.k), overhead_bits=32 * self.k)

    def contains(self, x: Array, /, *, atol: float = 0.0) -> bool:
        check_finite(x)
        xp = array_namespace(x)
        flat = xp.reshape(x, (-1,))
        if self.sparse:
            flat = flat[flat != 0]
        if numel(flat) <= self.k:
            return True
        if atol == 0.0:
            return numel(xp.unique_values(flat)) <= self.k
        # With a tolerance: the optimal k-means with max deviation <= atol exists iff a greedy
        # left-to-right cover of the sorted values by intervals of width 2*atol needs <= k.
        s = to_numpy(xp.sort(flat, stable=False)).astype(np.float64)
        count, start = 1, s[0]
        gaps = np.flatnonzero(np.diff(s) > 0)
        for i in gaps:  # bounded by the number of distinct values; not a hot path
            if s[i + 1] - start > 2 * atol:
                count += 1
                start = s[i + 1]
                if count > self.k:
                    return False
        return True
