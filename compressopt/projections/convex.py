"""Euclidean projections onto convex sets: the ℓ1 ball, the simplex and a box.

All three are exact, vectorized and device-agnostic: the ℓ1 ball and the simplex need one
sort and one cumulative sum (Duchi, Shalev-Shwartz, Singer & Chandra, "Efficient projections
onto the ℓ1-ball for learning in high dimensions", ICML 2008, Fig. 1 and §4), the box one
clip.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from compressopt._array import Array, array_namespace, ldexp, numel, pow2_exponent, take
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


def _threshold(u: Array, radius: float) -> Array:
    """θ of Duchi et al.'s Fig. 1 for the 1-D array `u` (acc dtype) and a radius > 0.

    ``θ = (Σ_{j<=ρ} u_(j) - r) / ρ`` with u sorted descending and ρ the number of j with
    ``u_(j) - (Σ_{i<=j} u_(i) - r)/j > 0``; ρ >= 1 in exact arithmetic (the condition is r > 0
    at j = 1), and is kept >= 1 here when rounding loses it.
    """
    xp = array_namespace(u)
    s = xp.sort(u, descending=True, stable=False)
    css = xp.cumulative_sum(s) - radius
    j = xp.arange(1, s.shape[0] + 1, dtype=s.dtype, device=s.device)
    rho = xp.sum(xp.astype(s - css / j > 0, xp.int64))
    rho = xp.maximum(rho, xp.ones_like(rho))
    return take(css, xp.reshape(rho - 1, (1,)))[0] / xp.astype(rho, s.dtype)


def _simplex_frame(v: Array, radius: float) -> tuple[Array, Array, int, Array]:
    """The simplex problem of the 1-D `v` in a well-scaled frame: ``(y, θ', e, m)``.

    The projection onto ``{z >= 0, Σ z = r}`` commutes with shifts (``P(v - m·1) = P(v)``)
    and scales (``P_{cr}(c v) = c P_r(v)``). With ``m = max v``, ``y = max(v - m, -r) · 2^-e``
    and ``r' = r · 2^-e ∈ [0.5, 1)`` (``e`` the binary exponent of r):

    * the entries that can be nonzero in the projection satisfy ``v_i > m - r``; for them
      ``v_i - m`` is exact (Sterbenz: v_i and m lie within a factor 2 of each other when
      ``|m| >= 2r``; when ``|m| < 2r`` they are of the order of r and the usual rounding
      applies), and the others are clipped to ``-r``, which changes nothing (θ' >= -r);
      when ``max|v| >= 2^1021`` the differences are taken on ``v/4`` so that none overflows;
    * the scaling by the power of two ``2^-e`` is exact (only entries below ``r·2^-1074``
      round), so the frame's problem is the original one, with values in ``[-1, 0]``: no
      overflow (``[1e16, 0]``, ``[-1e16]``, radius 1 or 1e300) and no underflow (1e-300).

    The projection is ``max(y - θ', 0) · 2^e``. Accumulation dtype (float64 where available).
    """
    xp = array_namespace(v)
    acc = acc_dtype(v)
    va = xp.astype(v, acc)
    e = math.frexp(radius)[1]
    # v - m can overflow only when max|v| >= 2^1021: then work on v/4 (exact for the entries
    # within r of m, see above), and undo it in the final power-of-two scaling
    k = xp.where(pow2_exponent(xp.max(xp.abs(va))) >= 1022, 2, 0)
    vk = ldexp(va, -k)
    m = xp.max(vk)
    rk = ldexp(xp.asarray(radius, dtype=acc, device=va.device), -k)
    y = ldexp(xp.maximum(vk - m, -rk), k - e)
    return y, _threshold(y, math.ldexp(radius, -e)), e, ldexp(m, k)


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
    ``ρ = max{j : u_j - (sum_{i<=j} u_i - radius)/j > 0}``, computed in the shifted and
    rescaled frame of :func:`project_simplex` (so ρ >= 1 and no overflow at any magnitude)
    and returned as ``max(v) + θ'·2^e``: θ itself is rounded to the accumulation dtype (for
    ``v = [1e16, 0]``, radius 1, θ = 1e16 - 1 rounds to 1e16), so compute the projection with
    :func:`project_simplex`, not from θ. O(n log n): one sort, one cumulative sum.
    """
    _y, theta, e, m = _simplex_frame(v, radius)
    return m + ldexp(theta, e)


def project_simplex(x: Array, radius: float = 1.0) -> Array:
    """Euclidean projection onto the simplex {z : z >= 0, sum(z) = radius}.

    .. math:: \\operatorname{argmin}_z \\|z - x\\|_2^2 \\;\\text{s.t.}\\; z \\ge 0,\\;
        \\textstyle\\sum_i z_i = r

    Parameters
    ----------
    x : array, any shape (the whole tensor is one simplex), real floating, at least one entry.
    radius : float > 0, the sum r; at most the largest finite value of x's dtype.

    Returns
    -------
    array like `x` (shape, dtype, device; a new array): ``max(x - θ, 0)`` with θ of
    :func:`simplex_threshold`. Exact (up to one rounding of each output entry) at every
    finite magnitude of x and r, float32 and float64, subnormals included: θ is computed in
    the frame shifted by ``max x`` and scaled by a power of two (see ``_simplex_frame``), so
    ``project_simplex([-1e16])`` is ``[1]`` and ``project_simplex([1e16, 0])`` is ``[1, 0]``.
    O(n log n); no host transfer.

    Raises
    ------
    ValueError
        `radius` <= 0 or above the largest value of x's dtype, or `x` is empty (the simplex
        in R^0 is empty).
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
    >>> project_simplex(np.array([1e16, 0.0]))
    array([1., 0.])
    """
    xp = prepare(x)
    r = check_nonneg(radius, "radius", positive=True)
    if numel(x) == 0:
        raise ValueError("the simplex of an empty array is empty: x needs at least one entry")
    big = float(xp.finfo(x.dtype).max)
    if r > big:
        raise ValueError(f"radius {r:g} exceeds the largest {x.dtype} value {big:g}: the "
                         "simplex has no point in x's dtype")
    y, theta, e, _m = _simplex_frame(flat(x), r)
    z = ldexp(xp.maximum(y - theta, xp.zeros_like(y)), e)
    return xp.reshape(xp.astype(z, x.dtype), x.shape)


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
    ``sign(x) max(|x| - θ, 0)`` with θ > 0 from the simplex projection of |x|. Exact (up to
    one rounding of each output entry) at every finite magnitude, float32 and float64,
    subnormals included: ``||x||_1 <= r`` is tested in the frame scaled by ``2^-E`` (``E``
    the binary exponent of ``max(max|x|, r)``, so the sum cannot overflow) and the simplex
    projection of |x| runs in its shifted, power-of-two-scaled frame (:func:`project_simplex`),
    so
    ``project_l1_ball([1e17, 0], 1)`` is ``[1, 0]``. O(n log n): one sort and one cumulative
    sum; no host transfer.

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
    >>> project_l1_ball(np.array([1e17, 0.0]), 1.0)
    array([1., 0.])
    """
    xp = prepare(x)
    r = check_nonneg(radius, "radius")
    if numel(x) == 0:
        return xp.asarray(x, copy=True)
    if r == 0:
        return xp.zeros_like(x)
    acc = acc_dtype(x)
    a = xp.astype(xp.abs(flat(x)), acc)
    ra = xp.asarray(r, dtype=acc, device=a.device)
    big_e = pow2_exponent(xp.maximum(xp.max(a), ra))  # both sides <= 1 in the frame
    inside = xp.sum(ldexp(a, -big_e)) <= ldexp(ra, -big_e)
    y, theta, e, _m = _simplex_frame(a, r)
    z = ldexp(xp.maximum(y - theta, xp.zeros_like(y)), e)
    z = xp.reshape(xp.astype(z, x.dtype), x.shape)
    return xp.where(inside, x, xp.sign(x) * z)


def _float_bound(b: Any, name: str) -> float:
    """A float box bound: a real number, ±inf allowed; TypeError (bools too), NaN ValueError."""
    if isinstance(b, bool) or not isinstance(b, numbers.Real):
        raise TypeError(f"{name} must be a real number or an array, got {type(b).__name__}")
    b = float(b)
    if b != b:
        raise ValueError(f"box bounds must not be NaN ({name}={b})")
    return b


def _bound(b: Any, x: Array, name: str) -> Any:
    a = array_param(b, x, name)
    return a if a is not None else _float_bound(b, name)


def project_box(x: Array, lower: Any = -1.0, upper: Any = 1.0) -> Array:
    """Euclidean projection onto the box {z : lower <= z <= upper} (elementwise clip).

    .. math:: \\operatorname{argmin}_z \\|z - x\\|_2^2 \\;\\text{s.t.}\\; l \\le z \\le u

    Parameters
    ----------
    x : array, any shape, real floating.
    lower, upper : floats, or arrays broadcastable to `x` (same library and device), with
        ``lower <= upper``; ``-inf``/``inf`` float bounds are allowed, and float bounds beyond
        the range of x's dtype act as ±inf (a box that lies wholly beyond it is refused).

    Returns
    -------
    array like `x` (a new array): ``min(max(x, lower), upper)``. Exact at every magnitude
    (comparisons only; float bounds are rounded to x's dtype once); O(n).

    Raises
    ------
    TypeError
        A bound is neither a real number nor an array (bools refused).
    ValueError
        ``lower > upper`` somewhere, a NaN bound, or a box holding no finite value of x's
        dtype (e.g. ``lower = 1e300`` for float32).
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
    if not bool(xp.all(xp.asarray(lo <= hi))):
        raise ValueError(f"the box is empty: lower > upper somewhere ({lower=}, {upper=})")
    big = float(xp.finfo(x.dtype).max)
    if (isinstance(lo, float) and lo > big) or (isinstance(hi, float) and hi < -big):
        raise ValueError(f"the box [{lower}, {upper}] holds no finite {x.dtype} value")
    lo = max(lo, -big) if isinstance(lo, float) else lo  # beyond the dtype's range: ±inf
    hi = min(hi, big) if isinstance(hi, float) else hi
    out = xp.maximum(x, lo if not isinstance(lo, float) else xp.full_like(x, lo))
    return xp.minimum(out, hi if not isinstance(hi, float) else xp.full_like(x, hi))


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
        _float_bound(self.lower, "lower")
        _float_bound(self.upper, "upper")
        if not float(self.lower) <= float(self.upper):
            raise ValueError(f"the box is empty: lower={self.lower} > upper={self.upper}")

    def compress(self, x: Array, /) -> Array:
        return project_box(x, self.lower, self.upper)
