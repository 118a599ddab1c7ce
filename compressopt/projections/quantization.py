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
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from compressopt._array import (
    Array,
    array_namespace,
    check_finite,
    from_numpy,
    numel,
    to_numpy,
)
from compressopt.projections.base import StorageCost, TensorScheme, bits_for, count_nonzero

__all__ = [
    "AdaptiveQuantization",
    "Quantized",
    "kmeans1d_exact",
    "kmeans1d_fast",
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
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"codebook size k must be a positive int, got {k!r}")


def _kmeans1d_host(v: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-means of the 1-D float64 array `v` (len >= 1) with kmeans1d; sorted codebook."""
    import kmeans1d

    n = v.shape[0]
    kk = min(k, n)
    # kmeans1d.cluster copies its input element by element into ctypes arrays, which costs
    # more than the DP itself for large n; hand it the numpy buffers when the C entry point is
    # there, and fall back on the public call otherwise.
    dll = getattr(getattr(kmeans1d, "core", None), "_DLL", None)
    if dll is not None:
        v = np.ascontiguousarray(v, dtype=np.float64)
        clusters = np.empty(n, dtype=np.uint64)
        centroids = np.empty(kk, dtype=np.float64)
        dll.cluster(
            v.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            ctypes.c_ulong(n),
            ctypes.c_ulong(kk),
            clusters.ctypes.data_as(ctypes.POINTER(ctypes.c_ulong)),
            centroids.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        )
        a = clusters.astype(np.int64)
    else:  # pragma: no cover - depends on kmeans1d's internals
        res = kmeans1d.cluster(v, kk)
        a = np.asarray(res.clusters, dtype=np.int64)
    # Recompute the centroids as cluster means (kmeans1d leaves empty clusters at 0.0, which
    # happens with repeated values) and give empty clusters their left neighbour's centroid.
    counts = np.bincount(a, minlength=kk)
    sums = np.bincount(a, weights=v, minlength=kk)
    c = np.full(kk, np.nan)
    used = counts > 0
    c[used] = sums[used] / counts[used]
    first = c[used][0]
    for j in range(kk):  # loop over at most k codebook entries, not over weights
        if not used[j]:
            c[j] = c[j - 1] if j > 0 else first
    if kk < k:
        c = np.concatenate([c, np.full(k - kk, c[-1])])
    return c, a


def kmeans1d_exact(x: Array, k: int, *, sparse: bool = False) -> Quantized:
    """Optimal scalar quantization of `x` with a `k`-entry codebook (exact 1-D k-means).

    .. math:: \\min_{c \\in \\mathbb{R}^k,\\, a} \\sum_i (x_i - c_{a_i})^2

    Parameters
    ----------
    x : array, any shape, real floating; numpy or torch on any device.
    k : int >= 1, codebook size.
    sparse : if True, the zeros of `x` stay zero and the `k` entries are learned on the
        nonzeros; ``codebook[0] = 0`` is the zeros' code (k + 1 codebook entries in all).

    Returns
    -------
    Quantized
        Codebook sorted ascending (dtype of `x`), assignments int64 shaped like `x`. With fewer
        than `k` distinct values each value is its own code and codebook entries repeat.

    Notes
    -----
    Exact: the O(kn) dynamic program of Wu (1991) / Grønlund et al. (2017) as implemented by
    the ``kmeans1d`` package, run on the host (a device round trip for accelerator arrays).
    Optimal codebooks are computed in float64 and rounded to the input's dtype.

    Raises
    ------
    ValueError
        `k` < 1.
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> q = kmeans1d_exact(np.array([0.0, 0.1, 0.9, 1.0, 5.0]), 2)
    >>> q.codebook, q.assignments
    (array([0.5, 5. ]), array([0, 0, 0, 0, 1]))
    """
    _check_k(k)
    check_finite(x)
    v = to_numpy(x).astype(np.float64).reshape(-1)
    if sparse:
        nz = v != 0
        a = np.zeros(v.shape, dtype=np.int64)
        if nz.any():
            c, a_nz = _kmeans1d_host(v[nz], k)
            a[nz] = a_nz + 1
        else:
            c = np.zeros(k)
        c = np.concatenate([[0.0], c])
    elif v.size == 0:
        c, a = np.zeros(k), np.zeros(0, dtype=np.int64)
    else:
        c, a = _kmeans1d_host(v, k)
    xp = array_namespace(x)
    codebook = xp.astype(from_numpy(c, x), x.dtype)
    assignments = xp.reshape(from_numpy(a, x), x.shape)
    return Quantized(codebook, assignments)


def kmeans1d_fast(x: Array, k: int, *, sparse: bool = False, iters: int = 100) -> Quantized:
    """Scalar quantization by Lloyd's algorithm on the sorted values (device-agnostic heuristic).

    Solves the problem of :func:`kmeans1d_exact` approximately: one sort, a weighted-quantile
    initialization, then `iters` Lloyd iterations, each O(k log n) (a binary search of the k-1
    midpoints in the sorted values and segment means from cumulative sums). Every operation is
    an Array-API call: torch tensors stay on their device, with no host transfer.

    Parameters and returns as :func:`kmeans1d_exact`; `iters` >= 0 Lloyd iterations.

    Notes
    -----
    Heuristic: a local optimum of the k-means objective (a Lloyd fixed point), never worse
    than the quantile initialization. Cumulative sums are accumulated in float64 where the
    array library supports it on that device.

    Examples
    --------
    >>> import numpy as np
    >>> q = kmeans1d_fast(np.array([0.0, 0.1, 0.9, 1.0, 5.0]), 2)
    >>> q.codebook, q.assignments
    (array([0.5, 5. ]), array([0, 0, 0, 0, 1]))
    """
    _check_k(k)
    check_finite(x)
    xp = array_namespace(x)
    flat = xp.reshape(x, (-1,))
    n = flat.shape[0]
    acc = xp.float64 if _has_float64(x) else x.dtype
    s = xp.astype(xp.sort(flat), acc)
    ones = xp.ones_like(s)
    wts = xp.astype(s != 0, acc) if sparse else ones
    if n == 0:
        c = xp.zeros((k,), dtype=acc, device=flat.device)
    else:
        cw = xp.cumulative_sum(wts, include_initial=True)
        cs = xp.cumulative_sum(wts * s, include_initial=True)
        total = cw[-1]
        j = xp.arange(k + 1, dtype=acc, device=flat.device)
        # Initialization: means of k buckets of equal weight (weighted quantiles).
        bounds = xp.searchsorted(cw, total * j / k, side="left")
        bounds = xp.clip(bounds - 1, 0, n)
        fallback = xp.take(s, xp.clip(bounds[:-1], 0, n - 1))
        c = _segment_means(cw, cs, bounds[:-1], bounds[1:], fallback)
        c = xp.sort(c)
        for _ in range(iters):  # Lloyd iterations: a loop over iterations, not over weights
            mids = (c[:-1] + c[1:]) / 2
            b = xp.searchsorted(s, mids, side="left")
            zero = xp.zeros((1,), dtype=b.dtype, device=b.device)
            end = xp.full((1,), n, dtype=b.dtype, device=b.device)
            edges = xp.concat([zero, b, end])
            c = xp.sort(_segment_means(cw, cs, edges[:-1], edges[1:], c))
    mids = xp.astype((c[:-1] + c[1:]) / 2, acc)
    a = xp.searchsorted(mids, xp.astype(flat, acc), side="left")
    a = xp.astype(a, xp.int64)
    if sparse:
        a = xp.where(flat != 0, a + 1, xp.zeros_like(a))
        c = xp.concat([xp.zeros((1,), dtype=acc, device=flat.device), c])
    return Quantized(xp.astype(c, x.dtype), xp.reshape(a, x.shape))


def _has_float64(x: Array) -> bool:
    dev = getattr(x, "device", None)
    return getattr(dev, "type", None) != "mps"


def _segment_means(cw: Array, cs: Array, lo: Array, hi: Array, fallback: Array) -> Array:
    """Weighted means of the sorted segments [lo, hi) from cumulative sums; `fallback` if empty."""
    xp = array_namespace(cw)
    w = xp.take(cw, hi) - xp.take(cw, lo)
    s = xp.take(cs, hi) - xp.take(cs, lo)
    ok = w > 0
    return xp.where(ok, s / xp.where(ok, w, xp.ones_like(w)), fallback)


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
        return xp.reshape(xp.take(theta.codebook, xp.reshape(theta.assignments, (-1,))),
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
        s = to_numpy(xp.sort(flat)).astype(np.float64)
        count, start = 1, s[0]
        gaps = np.flatnonzero(np.diff(s) > 0)
        for i in gaps:  # bounded by the number of distinct values; not a hot path
            if s[i + 1] - start > 2 * atol:
                count += 1
                start = s[i + 1]
                if count > self.k:
                    return False
        return True
