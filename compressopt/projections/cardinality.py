"""ℓ0 (cardinality) projection, per tensor and global: keep the k largest magnitudes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from compressopt._array import Array, array_namespace, check_finite, kth_largest, numel
from compressopt.projections._selection import (
    MagnitudeKeys,
    apply_masks,
    first_step,
    greedy_select,
)
from compressopt.projections._util import mask_top
from compressopt.projections.base import StorageCost, TensorScheme, count_nonzero
from compressopt.tree import Params, tree_check

__all__ = [
    "Cardinality",
    "GlobalCardinality",
    "Pruned",
    "keep_to_k",
    "project_cardinality",
    "project_global_cardinality",
    "topk_mask",
]


def keep_to_k(keep: float, n: int) -> int:
    """Entries kept out of `n` for a keep ratio in (0, 1]: ``round(keep * n)``, at least 1 if n > 0.

    Raises
    ------
    ValueError
        `keep` is outside (0, 1].
    """
    if isinstance(keep, bool) or not 0.0 < keep <= 1.0:
        raise ValueError(f"keep ratio must be in (0, 1], got {keep!r}")
    if n == 0:
        return 0
    return min(n, max(1, math.floor(keep * n + 0.5)))


def _check_k(k: int, n: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, {n}] (the number of entries), got {k}")


def topk_mask(a: Array, k: int) -> Array:
    """Boolean mask of the `k` largest entries of the 1-D array `a`; ties keep the lower index.

    Vectorized: one selection (:func:`~compressopt._array.kth_largest`) and one cumulative sum
    over the entries equal to the threshold. O(n) on numpy and torch; no host transfer.
    """
    xp = array_namespace(a)
    n = a.shape[0]
    if k >= n:
        return xp.ones(a.shape, dtype=xp.bool, device=a.device)
    if k == 0:
        return xp.zeros(a.shape, dtype=xp.bool, device=a.device)
    return mask_top(a, kth_largest(a, k), k)


def project_cardinality(x: Array, k: int) -> Array:
    """Euclidean projection onto the ℓ0 ball {z : ||z||_0 <= k}.

    .. math:: \\operatorname{argmin}_z \\|z - x\\|_2^2 \\;\\text{s.t.}\\; \\|z\\|_0 \\le k

    Parameters
    ----------
    x : array, any shape, real floating (numpy, torch on any device, ...).
    k : int, 0 <= k <= x.size: number of entries kept.

    Returns
    -------
    array like `x` (same shape, dtype, device; a new array): the `k` largest-magnitude entries
    of `x`, the rest zero. Exact; among equal magnitudes the lower flat (C-order) index is kept.
    O(n) expected: the selection of :func:`project_global_cardinality` (no sort, no
    partition of a copy).

    Raises
    ------
    ValueError
        `k` is out of range.
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    References
    ----------
    .. [1] Carreira-Perpiñán & Idelbayev, "'Learning-compression' algorithms for neural net
       pruning", CVPR 2018, eq. (5) (the C step for the ℓ0 constraint).

    Examples
    --------
    >>> import numpy as np
    >>> project_cardinality(np.array([0.5, -2.0, 1.0, -1.0]), 2)
    array([ 0., -2.,  1.,  0.])
    """
    check_finite(x)
    _check_k(k, numel(x))
    return project_global_cardinality({"x": x}, k)["x"]


def project_global_cardinality(w: Params, k: int) -> dict[str, Array]:
    """Projection of a collection of tensors onto {z : sum_i ||z_i||_0 <= k} (one κ for the net).

    The `k` largest magnitudes over all tensors together are kept (LC's global ℓ0 pruning,
    Carreira-Perpiñán & Idelbayev 2018 §3): layers end up with different sparsities. Exact; ties
    keep the entry that comes first in the concatenation of the flattened tensors in the
    mapping's order.

    Parameters
    ----------
    w : mapping name -> array (real floating, one array library and device).
    k : int, 0 <= k <= total number of entries.

    Returns
    -------
    dict name -> array, the shapes and dtypes of `w` (new arrays).

    Raises
    ------
    ValueError, UnsupportedDTypeError, NonFiniteError
        As :func:`project_cardinality`.

    Notes
    -----
    O(n) expected, without concatenating or sorting the tensors: the threshold on the
    magnitudes is a selection across the tensors (the knapsack greedy of
    :mod:`compressopt.projections._selection` with every entry weighing 1): a strided
    sample brackets it, one pass per tensor counts and extracts the candidates, a few
    rounds on those.

    Examples
    --------
    >>> import numpy as np
    >>> out = project_global_cardinality({"a": np.array([3.0, 0.1]), "b": np.array([-2.0, 1.0])}, 2)
    >>> out["a"], out["b"]
    (array([3., 0.]), array([-2.,  0.]))
    """
    w = tree_check(w)
    if not w:
        _check_k(k, 0)
        return {}
    names = list(w)
    xs = [w[n] for n in names]
    xp = array_namespace(*xs)
    flats = [xp.reshape(x, (-1,)) for x in xs]
    sizes = [f.shape[0] for f in flats]
    _check_k(k, sum(sizes))
    if k == sum(sizes):
        return {n: xp.asarray(x, copy=True) for n, x in zip(names, xs, strict=True)}
    if any(x.dtype != xs[0].dtype for x in xs):  # one key dtype for the selection
        mask = topk_mask(xp.abs(xp.concat(flats)), k)
        masks, start = [], 0
        for m in sizes:
            masks.append(mask[start : start + m])
            start += m
    else:
        keys = MagnitudeKeys(flats, first_step(sum(sizes)))
        masks = greedy_select(keys, sizes, [1] * len(xs), k, like=flats[0]).masks
    outs, _ = apply_masks(flats, masks, None)
    return {n: xp.reshape(o, x.shape) for n, o, x in zip(names, outs, xs, strict=True)}


class Pruned(NamedTuple):
    """Θ of a pruned tensor: the dense array with zeros off the support."""

    values: Array


def _sparse_cost(values: Array) -> StorageCost:
    return StorageCost(numel=numel(values), nnz=count_nonzero(values), bits=32)


def _resolve_k(k: int | None, keep: float | None, n: int) -> int:
    return keep_to_k(keep, n) if keep is not None else k  # type: ignore[return-value]


def _check_k_or_keep(k: int | None, keep: float | None) -> None:
    if (k is None) == (keep is None):
        raise ValueError("give exactly one of k (entries kept) and keep (fraction kept)")
    if keep is not None:
        keep_to_k(keep, 1)
    elif isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}")


@dataclass(frozen=True)
class Cardinality(TensorScheme):
    """ℓ0 ball of one tensor: at most `k` nonzeros, or a fraction `keep` of its entries.

    Θ is :class:`Pruned`; storage counts 32 bits per nonzero. Exact projection
    (:func:`project_cardinality`).
    """

    k: int | None = None
    keep: float | None = None

    def __post_init__(self) -> None:
        _check_k_or_keep(self.k, self.keep)

    def compress(self, x: Array, /) -> Pruned:
        return Pruned(project_cardinality(x, _resolve_k(self.k, self.keep, numel(x))))

    def decompress(self, theta: Pruned, /) -> Array:
        return theta.values

    def cost(self, theta: Pruned, /) -> StorageCost:
        return _sparse_cost(theta.values)

    def contains(self, x: Array, /, *, atol: float = 0.0) -> bool:
        xp = array_namespace(x)
        nnz = int(xp.sum(xp.astype(xp.abs(x) > atol, xp.int64)))
        return nnz <= _resolve_k(self.k, self.keep, numel(x))


@dataclass(frozen=True)
class GlobalCardinality:
    """One ℓ0 budget across all tensors: ``sum_i ||w_i||_0 <= k`` (or ``keep`` of all entries).

    A :class:`~compressopt.projections.base.Compression`; Θ is a ``dict`` name ->
    :class:`Pruned`. Exact projection (:func:`project_global_cardinality`).
    """

    k: int | None = None
    keep: float | None = None

    def __post_init__(self) -> None:
        _check_k_or_keep(self.k, self.keep)

    def _k(self, w: Params) -> int:
        return _resolve_k(self.k, self.keep, sum(numel(x) for x in w.values()))

    def compress(self, w: Params, /) -> dict[str, Pruned]:
        return {n: Pruned(v) for n, v in project_global_cardinality(w, self._k(w)).items()}

    def decompress(self, theta: dict[str, Pruned], /) -> dict[str, Array]:
        return {n: t.values for n, t in theta.items()}

    def cost(self, theta: dict[str, Pruned], /) -> dict[str, StorageCost]:
        return {n: _sparse_cost(t.values) for n, t in theta.items()}

    def contains(self, w: Params, /, *, atol: float = 0.0) -> bool:
        total = 0
        for x in w.values():
            xp = array_namespace(x)
            total += int(xp.sum(xp.astype(xp.abs(x) > atol, xp.int64)))
        return total <= self._k(w)
