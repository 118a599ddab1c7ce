"""Euclidean projections onto convex sets: the ℓ1 ball, the simplex and a box.

All three are exact, vectorized and device-agnostic: the ℓ1 ball and the simplex need one
sort and one cumulative sum (Duchi, Shalev-Shwartz, Singer & Chandra, "Efficient projections
onto the ℓ1-ball for learning in high dimensions", ICML 2008, Fig. 1 and §4), the box one
clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compressopt._array import Array, array_namespace, numel
from compressopt.projections._util import acc_dtype, array_param, check_nonneg, flat, prepare
from compressopt.projections.base import StorageCost, TensorScheme, count_nonzero

__all__ = [
    "Box",
    "L1Ball",
    "Simplex",
    "project_box",
    "project_l1_ball",
    "project_simplex",
    "simplex_threshold",
]


def simplex_threshold(v: Array, radius: float) -> Array:
    """The shift θ with ``sum(max(v - θ, 0)) == radius`` (Duchi et al. 2008, Fig. 1).

    Parameters
    ----------
    v : 1-D array, real floating, at least one entry.
    radius : float > 0.

    Returns
    -------
    0-d array in the accumulation dtype (float64 where the device has it), on `v`'s device:
    ``θ = (sum_{j<=ρ} u_j - radius) / ρ`` with u = sort(v) descending and
    ``ρ = max{j : u_j - (sum_{i<=j} u_i - radius)/j > 0}``. θ <= 0 iff ``sum(max(v, 0)) <=
    radius`` when all entries are nonnegative. O(n log n): one sort, one cumulative sum.
    """
    xp = array_namespace(v)
    acc = acc_dtype(v)
    u = xp.astype(xp.sort(v, descending=True, stable=False), acc)
    css = xp.cumulative_sum(u) - radius
    j = xp.arange(1, u.shape[0] + 1, dtype=acc, device=u.device)
    rho = xp.sum(xp.astype(u - css / j > 0, xp.int64))  # >= 1: the condition holds at j = 1
    idx = xp.reshape(rho - 1, (1,))
    return xp.take(css, idx)[0] / xp.astype(rho, acc)


def project_simplex(x: Array, radius: float = 1.0) -> Array:
    """Euclidean projection onto the simplex {z : z >= 0, sum(z) = radius}.

    .. math:: \\operatorname{argmin}_z \\|z - x\\|_2^2 \\;\\text{s.t.}\\; z \\ge 0,\\;
        \\textstyle\\sum_i z_i = r

    Parameters
    ----------
    x : array, any shape (the whole tensor is one simplex), real floating, at least one entry.
    radius : float > 0, the sum r.

    Returns
    -------
    array like `x` (shape, dtype, device; a new array): ``max(x - θ, 0)`` with θ from
    :func:`simplex_threshold`. Exact. O(n log n).

    Raises
    ------
    ValueError
        `radius` <= 0, or `x` is empty (the simplex in R^0 is empty).
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    References
    ----------
    .. [1] Duchi et al., ICML 2008, Fig. 1 (Held, Wolfe & Crowder 1974).

    Examples
    --------
    >>> import numpy as np
    >>> project_simplex(np.array([0.5, 1.5, -1.0]))
    array([0., 1., 0.])
    """
    xp = prepare(x)
    r = check_nonneg(radius, "radius", positive=True)
    if numel(x) == 0:
        raise ValueError("the simplex of an empty array is empty: x needs at least one entry")
    theta = xp.astype(simplex_threshold(flat(x), r), x.dtype)
    return xp.maximum(x - theta, xp.zeros_like(x))


def project_l1_ball(x: Array, radius: float) -> Array:
    """Euclidean projection onto the ℓ1 ball {z : ||z||_1 <= radius}.

    .. math:: \\operatorname{argmin}_z \\|z - x\\|_2^2 \\;\\text{s.t.}\\; \\|z\\|_1 \\le r

    Parameters
    ----------
    x : array, any shape (the whole tensor is one ball), real floating.
    radius : float >= 0.

    Returns
    -------
    array like `x` (a new array): `x` itself if ``||x||_1 <= r``, else the soft threshold
    ``sign(x) max(|x| - θ, 0)`` with θ > 0 from the simplex projection of |x|. Exact. O(n log n):
    one sort and one cumulative sum; no host transfer.

    Raises
    ------
    ValueError
        `radius` < 0.
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    References
    ----------
    .. [1] Duchi et al., ICML 2008, §4 (Lemma 3: the ℓ1 projection is the simplex projection
       of |x| with the signs of x).

    Examples
    --------
    >>> import numpy as np
    >>> project_l1_ball(np.array([3.0, -1.0, 0.5]), 2.0)
    array([ 2., -0.,  0.])
    >>> project_l1_ball(np.array([0.5, -0.5]), 2.0)
    array([ 0.5, -0.5])
    """
    xp = prepare(x)
    r = check_nonneg(radius, "radius")
    if numel(x) == 0:
        return xp.asarray(x, copy=True)
    if r == 0:
        return xp.zeros_like(x)
    a = xp.abs(x)
    theta = simplex_threshold(flat(a), r)
    theta = xp.astype(xp.maximum(theta, xp.zeros_like(theta)), x.dtype)  # 0 inside the ball
    return xp.sign(x) * xp.maximum(a - theta, xp.zeros_like(a))


def _bound(b: Any, x: Array, name: str) -> Any:
    a = array_param(b, x, name)
    return a if a is not None else float(b)


def project_box(x: Array, lower: Any = -1.0, upper: Any = 1.0) -> Array:
    """Euclidean projection onto the box {z : lower <= z <= upper} (elementwise clip).

    .. math:: \\operatorname{argmin}_z \\|z - x\\|_2^2 \\;\\text{s.t.}\\; l \\le z \\le u

    Parameters
    ----------
    x : array, any shape, real floating.
    lower, upper : floats, or arrays broadcastable to `x` (same library and device), with
        ``lower <= upper``; ``-inf``/``inf`` float bounds are allowed.

    Returns
    -------
    array like `x` (a new array): ``min(max(x, lower), upper)``. Exact; O(n).

    Raises
    ------
    ValueError
        ``lower > upper`` somewhere.
    ShapeMismatchError
        An array bound does not broadcast to `x`.
    UnsupportedDTypeError, NonFiniteError
        `x` (or an array bound) is not real floating, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> project_box(np.array([-2.0, 0.5, 3.0]), 0.0, 1.0)
    array([0. , 0.5, 1. ])
    """
    xp = prepare(x)
    lo, hi = _bound(lower, x, "lower"), _bound(upper, x, "upper")
    if any(isinstance(b, float) and b != b for b in (lo, hi)):
        raise ValueError("box bounds must not be NaN")
    if not bool(xp.all(xp.asarray(lo <= hi))):
        raise ValueError(f"the box is empty: lower > upper somewhere ({lower=}, {upper=})")
    out = xp.asarray(x, copy=True)
    if not (isinstance(lo, float) and lo == float("-inf")):
        out = xp.maximum(out, lo if not isinstance(lo, float) else xp.full_like(x, lo))
    if not (isinstance(hi, float) and hi == float("inf")):
        out = xp.minimum(out, hi if not isinstance(hi, float) else xp.full_like(x, hi))
    return out


def _dense_cost(x: Array) -> StorageCost:
    return StorageCost(numel=numel(x), nnz=count_nonzero(x), bits=32)


class _ArrayTheta(TensorScheme):
    """Schemes whose Θ is the projected array itself; storage: 32 bits per nonzero."""

    def decompress(self, theta: Array, /) -> Array:
        return theta

    def cost(self, theta: Array, /) -> StorageCost:
        return _dense_cost(theta)


@dataclass(frozen=True)
class L1Ball(_ArrayTheta):
    """The ℓ1 ball ``||x||_1 <= radius`` of one tensor (:func:`project_l1_ball`, exact)."""

    radius: float

    def __post_init__(self) -> None:
        check_nonneg(self.radius, "radius")

    def compress(self, x: Array, /) -> Array:
        return project_l1_ball(x, self.radius)


@dataclass(frozen=True)
class Simplex(_ArrayTheta):
    """The simplex ``x >= 0, sum(x) = radius`` of one tensor (:func:`project_simplex`, exact)."""

    radius: float = 1.0

    def __post_init__(self) -> None:
        check_nonneg(self.radius, "radius", positive=True)

    def compress(self, x: Array, /) -> Array:
        return project_simplex(x, self.radius)


@dataclass(frozen=True)
class Box(_ArrayTheta):
    """The box ``lower <= x <= upper`` with float bounds (:func:`project_box`, exact)."""

    lower: float = -1.0
    upper: float = 1.0

    def __post_init__(self) -> None:
        if not float(self.lower) <= float(self.upper):
            raise ValueError(f"the box is empty: lower={self.lower} > upper={self.upper}")

    def compress(self, x: Array, /) -> Array:
        return project_box(x, self.lower, self.upper)
