"""Structured pruning: keep the k groups (output channels / filters) of largest norm.

The feasible set is ``{z : at most k of the slices z_g along the group axis are nonzero}``;
since ``||z - x||² = Σ_{g kept} ||z_g - x_g||² + Σ_{g dropped} ||x_g||²``, the projection
keeps the k groups of largest ``||x_g||_2`` unchanged and zeroes the rest: exact, one
selection over the group norms. Globally (one budget of groups over several tensors) the same
holds with all groups of all tensors ranked together (Carreira-Perpiñán & Idelbayev 2018's
global ℓ0 argument applied to groups). Groups along axis 0 are the output channels of Linear
``(out, in)`` and Conv ``(out, in, kh, kw)`` weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressopt._array import Array, array_namespace, ldexp, max_abs, numel
from compressopt.projections._util import (
    acc_dtype,
    as_groups,
    check_int,
    from_groups,
    square_exponent,
    to_list,
    zeros_where_not,
)
from compressopt.projections.base import StorageCost, TensorScheme, count_nonzero
from compressopt.projections.cardinality import Pruned, _check_k_or_keep, keep_to_k, topk_mask
from compressopt.tree import Params, tree_check

__all__ = [
    "ChannelPruning",
    "GlobalChannelPruning",
    "project_channels",
    "project_global_channels",
]


def _sq_norms(g: Array, e: int = 0) -> Array:
    """The groups' (rows') squared norms of ``g·2^-e`` (accumulation dtype)."""
    xp = array_namespace(g)
    ga = xp.astype(g, acc_dtype(g))
    ga = ldexp(ga, -e) if e else ga
    return xp.sum(ga * ga, axis=1)


def _norm_exponent(xs: list[Array]) -> int:
    """The power of two that keeps the squared group norms of `xs` in range
    (:func:`~compressopt.projections._util.square_exponent`; 0 without a host read when the
    accumulation dtype is wider than the weights', e.g. float32 weights, float64 sums)."""
    xp = array_namespace(*xs)
    acc = acc_dtype(xs[0])
    if xs[0].dtype != acc:  # float32 squares always fit float64
        return 0
    top = max(to_list(xp.stack([max_abs(x) for x in xs])))
    return square_exponent(top, float(xp.finfo(acc).max))


def project_channels(x: Array, k: int, axis: int = 0) -> Array:
    """Euclidean projection onto {z : at most k nonzero slices of z along `axis`}.

    .. math:: \\operatorname{argmin}_z \\|z - x\\|_2^2 \\;\\text{s.t.}\\;
        \\#\\{g : z_g \\ne 0\\} \\le k

    Parameters
    ----------
    x : array with ``ndim >= 1``, real floating; groups are the slices along `axis`.
    k : int, ``0 <= k <= x.shape[axis]``: groups kept.
    axis : group axis (default 0: output channels / filters).

    Returns
    -------
    array like `x` (a new array): the k groups of largest ℓ2 norm kept, the others zero.
    Exact; among equal norms the lower group index is kept. O(n) (norms) + O(G) selection.

    Raises
    ------
    TypeError, ValueError
        `k` is not an int in range; `axis` out of range.
    ShapeMismatchError
        `x` is 0-d.
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    References
    ----------
    .. [1] Li, Kadav, Durdanovic, Samet & Graf, "Pruning filters for efficient ConvNets",
       ICLR 2017 (norm-based filter pruning); the projection argument above makes it exact
       for the Euclidean distance.

    Examples
    --------
    >>> import numpy as np
    >>> project_channels(np.array([[1.0, 1.0], [3.0, 0.0], [0.5, 0.5]]), 1)
    array([[0., 0.],
           [3., 0.],
           [0., 0.]])
    """
    xp, g, ax = as_groups(x, axis)
    k = check_int(k, "k", low=0, high=g.shape[0])
    keep = topk_mask(_sq_norms(g, _norm_exponent([g])), k)
    return from_groups(xp, zeros_where_not(xp.reshape(keep, (-1, 1)), g), x, ax)


def project_global_channels(w: Params, k: int, axis: int = 0) -> dict[str, Array]:
    """Projection onto {z : Σ_i #nonzero groups of z_i <= k}: one channel budget for the net.

    The k groups of largest ℓ2 norm over all tensors together are kept (tensors with more
    salient channels keep more). Exact; ties keep the group that comes first (tensors in the
    mapping's order, groups in index order). O(n) + O(G) selection over all G groups.

    Parameters
    ----------
    w : mapping name -> array (``ndim >= 1``, real floating, one library and device).
    k : int, ``0 <= k <=`` total number of groups.
    axis : group axis of every tensor (default 0).

    Returns
    -------
    dict name -> array, shaped like `w`.

    Raises
    ------
    As :func:`project_channels`.

    Examples
    --------
    >>> import numpy as np
    >>> w = {"a": np.array([[3.0], [0.1]]), "b": np.array([[2.0], [1.0]])}
    >>> {n: v.ravel().tolist() for n, v in project_global_channels(w, 2).items()}
    {'a': [3.0, 0.0], 'b': [2.0, 0.0]}
    """
    w = tree_check(w)
    parts = {n: as_groups(x, axis) for n, x in w.items()}
    total = sum(g.shape[0] for _, g, _ in parts.values())
    k = check_int(k, "k", low=0, high=total)
    if not w:
        return {}
    xp = array_namespace(*w.values())
    e = _norm_exponent([g for _, g, _ in parts.values()])
    keep = topk_mask(xp.concat([_sq_norms(g, e) for _, g, _ in parts.values()]), k)
    out, start = {}, 0
    for n, (_, g, ax) in parts.items():
        m = xp.reshape(keep[start : start + g.shape[0]], (-1, 1))
        out[n] = from_groups(xp, zeros_where_not(m, g), w[n], ax)
        start += g.shape[0]
    return out


def _nonzero_groups(x: Array, axis: int, atol: float) -> int:
    """Groups of `x` with an entry above `atol` in magnitude (one device synchronization)."""
    xp, g, _ = as_groups(x, axis)
    return int(xp.sum(xp.astype(xp.any(xp.abs(g) > atol, axis=1), xp.int64)))


def _group_cost(x: Array) -> StorageCost:
    """32-bit values of the kept groups (the zero groups are not stored)."""
    return StorageCost(numel=numel(x), nnz=count_nonzero(x), bits=32)


@dataclass(frozen=True)
class ChannelPruning(TensorScheme):
    """At most `k` nonzero groups (or a fraction `keep` of them) along `axis` of one tensor.

    Θ is :class:`~compressopt.projections.cardinality.Pruned`; storage counts 32 bits per
    nonzero. Exact projection (:func:`project_channels`).
    """

    k: int | None = None
    keep: float | None = None
    axis: int = 0
    elementwise = False

    def __post_init__(self) -> None:
        _check_k_or_keep(self.k, self.keep)

    def _k(self, x: Array) -> int:
        g = x.shape[self.axis] if x.ndim else 0
        return keep_to_k(self.keep, g) if self.keep is not None else self.k  # type: ignore[return-value]

    def compress(self, x: Array, /) -> Pruned:
        return Pruned(project_channels(x, self._k(x), self.axis))

    def decompress(self, theta: Pruned, /) -> Array:
        return theta.values

    def cost(self, theta: Pruned, /) -> StorageCost:
        return _group_cost(theta.values)

    def contains(self, x: Array, /, *, atol: float = 0.0) -> bool:
        return _nonzero_groups(x, self.axis, atol) <= self._k(x)


@dataclass(frozen=True)
class GlobalChannelPruning:
    """One budget of nonzero groups across all tensors (a Compression; exact projection).

    ``k`` groups in all, or a fraction ``keep`` of all groups (:func:`project_global_channels`).
    Θ is a ``dict`` name -> :class:`~compressopt.projections.cardinality.Pruned`.
    """

    k: int | None = None
    keep: float | None = None
    axis: int = 0

    def __post_init__(self) -> None:
        _check_k_or_keep(self.k, self.keep)

    def _k(self, w: Params) -> int:
        total = sum(x.shape[self.axis] for x in w.values())
        return keep_to_k(self.keep, total) if self.keep is not None else self.k  # type: ignore[return-value]

    def compress(self, w: Params, /) -> dict[str, Pruned]:
        return {n: Pruned(v) for n, v in project_global_channels(w, self._k(w), self.axis).items()}

    def decompress(self, theta: dict[str, Pruned], /) -> dict[str, Array]:
        return {n: t.values for n, t in theta.items()}

    def cost(self, theta: dict[str, Pruned], /) -> dict[str, StorageCost]:
        return {n: _group_cost(t.values) for n, t in theta.items()}

    def contains(self, w: Params, /, *, atol: float = 0.0) -> bool:
        return sum(_nonzero_groups(x, self.axis, atol) for x in w.values()) <= self._k(w)
