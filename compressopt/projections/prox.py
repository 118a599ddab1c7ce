"""Proximal operators of sparsity penalties, and the CTL1 penalty of Li & Xin.

``prox_{t g}(x) = argmin_z ½||z - x||² + t g(z)`` for g = ||·||_1 (soft threshold), ||·||_0
(hard threshold) and the group lasso ||·||_GL = Σ_g ||z_g||_2 over channels; plus the
complementary transformed-ℓ1 penalty CTL1_a and its gradient (Li & Xin, "Channel pruning in
quantization-aware training: an adaptive projection-gradient descent-shrinkage-splitting
method", 2022, §VI, eq. (6); per layer, as the paper applies it). All are closed forms, exact,
elementwise, per group or per tensor, O(n), and run on any Array-API array without host
transfers.

Groups are the slices along ``axis`` (default 0: the output channels of a Linear weight
``(out, in)`` or a Conv weight ``(out, in, kh, kw)``); a 1-D tensor with ``axis=0`` has one
entry per group.

The penalty-form schemes :class:`L1Penalty`, :class:`L0Penalty` and :class:`GroupLassoPenalty`
are C steps ``min_Θ α C(Θ) + μ/2 ||w - Θ||²`` for the coordinators: bind μ with
``with_mu(mu)`` (see :func:`compressopt.projections.base.bind_mu`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from compressopt._array import Array, array_namespace, ldexp, max_abs, numel
from compressopt.errors import ShapeMismatchError
from compressopt.projections._util import (
    acc_dtype,
    array_param,
    as_groups,
    check_nonneg,
    from_groups,
    ldexp_float,
    prepare,
    square_exponent,
)
from compressopt.projections.base import StorageCost, TensorScheme, count_nonzero

__all__ = [
    "GroupLassoPenalty",
    "L0Penalty",
    "L1Penalty",
    "ctl1",
    "ctl1_grad",
    "group_lasso_grad",
    "group_norms",
    "hard_threshold",
    "prox_group_lasso",
    "prox_l0",
    "soft_threshold",
]


def _threshold(t: Any, x: Array, name: str = "t") -> Any:
    """A nonnegative scalar threshold, or an array of them broadcastable to `x`."""
    a = array_param(t, x, name)
    if a is None:
        return check_nonneg(t, name)
    if not bool(array_namespace(a).all(a >= 0)):
        raise ValueError(f"{name} must be >= 0 everywhere")
    return a


def soft_threshold(x: Array, t: Any) -> Array:
    """Soft threshold: the proximal operator of ``t ||·||_1``.

    .. math:: \\operatorname{prox}_{t\\|\\cdot\\|_1}(x) = \\operatorname{argmin}_z
        \\tfrac12\\|z - x\\|_2^2 + t\\|z\\|_1 = \\operatorname{sign}(x)\\max(|x| - t, 0)

    Parameters
    ----------
    x : array, any shape, real floating.
    t : float >= 0, or an array of thresholds >= 0 broadcastable to `x`.

    Returns
    -------
    array like `x` (a new array). Exact (Donoho 1995); O(n), elementwise.

    Raises
    ------
    ValueError
        A threshold is negative.
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> soft_threshold(np.array([-2.0, 0.5, 1.5]), 1.0)
    array([-1. ,  0. ,  0.5])
    """
    xp = prepare(x)
    t = _threshold(t, x)
    a = xp.abs(x)
    return xp.sign(x) * xp.maximum(a - t, xp.zeros_like(a))


def hard_threshold(x: Array, t: Any) -> Array:
    """Hard threshold: keep the entries with ``|x| > t``, zero the others.

    .. math:: H_t(x)_i = x_i \\,[\\,|x_i| > t\\,]

    This is the proximal operator of ``(t²/2) ||·||_0`` (see :func:`prox_l0`); at ``|x_i| = t``
    both 0 and x_i are optimal and 0 is returned.

    Parameters
    ----------
    x : array, any shape, real floating.
    t : float >= 0, or an array of thresholds >= 0 broadcastable to `x`.

    Returns
    -------
    array like `x` (a new array). Exact; O(n), elementwise.

    Raises
    ------
    ValueError, UnsupportedDTypeError, NonFiniteError
        As :func:`soft_threshold`.

    Examples
    --------
    >>> import numpy as np
    >>> hard_threshold(np.array([-2.0, 0.5, 1.0]), 1.0)
    array([-2.,  0.,  0.])
    """
    xp = prepare(x)
    t = _threshold(t, x)
    return xp.where(xp.abs(x) > t, x, xp.zeros_like(x))


def prox_l0(x: Array, lam: Any) -> Array:
    """Proximal operator of ``lam ||·||_0``: the hard threshold at ``sqrt(2 lam)``.

    .. math:: \\operatorname{argmin}_z \\tfrac12\\|z - x\\|_2^2 + \\lambda\\|z\\|_0
        = H_{\\sqrt{2\\lambda}}(x)

    Coordinate i is kept iff ``x_i²/2 > lam`` (keeping costs lam, zeroing costs x_i²/2). Exact
    (Blumensath & Davies 2008, eq. 3); O(n). Parameters and errors as :func:`hard_threshold`
    with ``lam >= 0`` in place of t.

    Examples
    --------
    >>> import numpy as np
    >>> prox_l0(np.array([-2.0, 0.5, 1.5]), 1.0)   # threshold sqrt(2) = 1.414...
    array([-2. ,  0. ,  1.5])
    """
    xp = prepare(x)
    lam = _threshold(lam, x, "lam")
    t = math.sqrt(lam) if isinstance(lam, float) else xp.sqrt(lam)
    return hard_threshold(x, t * math.sqrt(2.0))


def group_norms(x: Array, axis: int = 0, *, ord: int = 2) -> Array:
    """ℓ2 (or ℓ1, ``ord=1``) norm of each slice of `x` along `axis`.

    Parameters
    ----------
    x : array with ``ndim >= 1``, real floating.
    axis : the group axis (default 0: output channels).
    ord : 2 or 1.

    Returns
    -------
    1-D array of length ``x.shape[axis]``, dtype of `x`, on `x`'s device (accumulated in
    float64 where available). O(n).

    Raises
    ------
    ShapeMismatchError
        `x` is 0-d.
    ValueError
        `ord` is not 1 or 2, or `axis` is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> group_norms(np.array([[3.0, 4.0], [0.0, -1.0]]))
    array([5., 1.])
    """
    if ord not in (1, 2):
        raise ValueError(f"ord must be 1 or 2, got {ord!r}")
    xp, g, _ = as_groups(x, axis)
    acc = acc_dtype(x)
    ga = xp.astype(g, acc)
    n = xp.sum(xp.abs(ga), axis=1) if ord == 1 else xp.sqrt(xp.sum(ga * ga, axis=1))
    return xp.astype(n, x.dtype)


def prox_group_lasso(x: Array, t: Any, axis: int = 0) -> Array:
    """Proximal operator of the group lasso ``t Σ_g ||x_g||_2`` (block soft threshold).

    .. math:: \\operatorname{prox}(x)_g = x_g \\max\\Big(0,\\; 1 - \\frac{t_g}{\\|x_g\\|_2}\\Big)

    Parameters
    ----------
    x : array with ``ndim >= 1``, real floating; groups are the slices along `axis`.
    t : float >= 0, or a 1-D array of ``x.shape[axis]`` per-group thresholds (e.g.
        ``t * sqrt(group size)`` for the size-weighted group lasso of Yuan & Lin 2006).
    axis : the group axis (default 0: output channels, Li & Xin §II).

    Returns
    -------
    array like `x` (a new array): groups with ``||x_g|| <= t_g`` become 0, the others shrink
    toward 0 by t_g in norm. Exact (Yuan & Lin 2006; Li & Xin 2022 §II, the shrinkage
    step); O(n).

    Raises
    ------
    ValueError
        A threshold is negative.
    ShapeMismatchError
        `x` is 0-d, or an array `t` does not have one entry per group.
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> prox_group_lasso(np.array([[3.0, 4.0], [0.3, 0.4]]), 1.0)
    array([[2.4, 3.2],
           [0. , 0. ]])
    """
    xp, g, ax = as_groups(x, axis)
    if hasattr(t, "shape") and not isinstance(t, float | int):
        if tuple(t.shape) != (g.shape[0],):
            raise ShapeMismatchError(
                f"t must have one threshold per group, shape ({g.shape[0]},), got {tuple(t.shape)}"
            )
        t = xp.reshape(_threshold(t, t), (-1, 1))
    else:
        t = check_nonneg(t, "t")
    # in the accumulation dtype and the frame g·2^-e, where the squared norms neither
    # overflow nor underflow (e = 0 but beyond 2^±255 in float64); the factor is unitless
    acc = acc_dtype(x)
    ga = xp.astype(g, acc)
    e = 0 if x.dtype != acc else square_exponent(float(max_abs(ga)), float(xp.finfo(acc).max))
    if e:
        ga_e = ldexp(ga, -e)
        t = ldexp(xp.astype(t, acc), -e) if hasattr(t, "shape") else ldexp_float(t, -e)
    else:
        ga_e = ga
        t = xp.astype(t, acc) if hasattr(t, "shape") else t
    norms = xp.sqrt(xp.sum(ga_e * ga_e, axis=1, keepdims=True))
    safe = xp.where(norms > 0, norms, xp.ones_like(norms))
    with np.errstate(over="ignore"):  # t far above a norm: t/norm = inf, the factor 0
        scale = xp.maximum(1 - t / safe, xp.zeros_like(safe))
    return from_groups(xp, xp.astype(ga * scale, x.dtype), x, ax)


def group_lasso_grad(x: Array, axis: int = 0) -> Array:
    """A subgradient of the group lasso ``Σ_g ||x_g||_2``: ``x_g / ||x_g||``, 0 on zero groups.

    .. math:: \\partial \\|x\\|_{GL} \\ni g, \\quad g_g = x_g / \\|x_g\\|_2 \\; (x_g \\ne 0),
        \\quad g_g = 0 \\; (x_g = 0)

    The gradient where every group is nonzero; at a zero group 0 is the minimum-norm element
    of the subdifferential (the unit ball), which keeps zero channels at rest. This is the
    group-lasso term of the gradient step in Li & Xin's Algorithm 1 (taken at the projected
    point). O(n).

    Parameters and errors as :func:`group_norms`. Returns an array like `x`.

    Examples
    --------
    >>> import numpy as np
    >>> group_lasso_grad(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    norms = group_norms(x, axis)
    xp, g, ax = as_groups(x, axis)
    n = xp.reshape(norms, (-1, 1))
    safe = xp.where(n > 0, n, xp.ones_like(n))
    return from_groups(xp, g / safe, x, ax)


def _l1_norms(x: Array, axis: int | None) -> tuple[Any, Array]:
    """Namespace and ||w_l||_1: one 0-d norm of the whole tensor (``axis=None``) or a 1-D
    array of the groups' norms along `axis`."""
    if axis is None:
        xp = prepare(x)
        return xp, xp.astype(xp.sum(xp.abs(xp.astype(x, acc_dtype(x)))), x.dtype)
    return array_namespace(x), group_norms(x, axis, ord=1)


def ctl1(x: Array, a: float, axis: int | None = None) -> Array:
    """The complementary transformed-ℓ1 penalty of Li & Xin (2022), §VI, eq. (6).

    .. math:: \\mathrm{CTL1}_a(w_l) = 1 - \\frac{\\|w_l\\|_1}{a + \\|w_l\\|_1}
        = \\frac{a}{a + \\|w_l\\|_1}

    of one layer's tensor `x` = w_l (``axis=None``, the default). The paper applies it "to each
    layer of our model", ``||w||_CTL1 = Σ_l 1 - ||w_l||_1 / (a + ||w_l||_1)``: sum this over
    the layers. The term is 1 for a zero layer and decreases to 0 as the layer grows, so it
    keeps every layer away from zero (a zero layer collapses the network).

    With an int `axis` the penalty is taken per group instead (the slices along `axis`, e.g.
    output channels) and summed over the groups, ``Σ_g a / (a + ||x_g||_1)``: a variant, not
    the paper's, which pushes every *channel* away from zero (against the group lasso).

    Parameters
    ----------
    x : array, real floating (any ndim for ``axis=None``; ``ndim >= 1`` with an axis).
    a : float > 0, the shape parameter.
    axis : None (default: the whole tensor is one layer, eq. 6) or the group axis.

    Returns
    -------
    0-d array, dtype of `x`, on `x`'s device (the ℓ1 norms accumulated in float64 where
    available). Exact; O(n).

    Raises
    ------
    ValueError
        ``a <= 0``, or `axis` out of range.
    ShapeMismatchError
        A 0-d `x` with an int `axis`.
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> float(ctl1(np.array([[1.0, -1.0], [0.0, 0.0]]), 2.0))   # 2/(2+2): one layer
    0.5
    >>> float(ctl1(np.array([[1.0, -1.0], [0.0, 0.0]]), 2.0, axis=0))   # 2/(2+2) + 2/2
    1.5
    """
    a = check_nonneg(a, "a", positive=True)
    xp, s = _l1_norms(x, axis)
    return xp.sum(a / (a + s))


def ctl1_grad(x: Array, a: float, axis: int | None = None) -> Array:
    """Gradient of :func:`ctl1` with respect to `x`.

    .. math:: \\frac{\\partial\\,\\mathrm{CTL1}_a(w_l)}{\\partial w_{l,i}} =
        -\\frac{a\\,\\operatorname{sign}(w_{l,i})}{(a + \\|w_l\\|_1)^2}

    with w_l the whole tensor (``axis=None``, eq. 6) or each group along `axis` (the variant
    of :func:`ctl1`). Exact where every entry is nonzero; at ``w_{l,i} = 0`` (where ||·||_1 is
    not differentiable) the value with sign(0) = 0 is returned, an element of the Clarke
    subdifferential's convex hull that keeps zero entries at rest. O(n).

    Parameters and errors as :func:`ctl1`. Returns an array like `x`.

    Examples
    --------
    >>> import numpy as np
    >>> ctl1_grad(np.array([[1.0, -1.0], [0.0, 0.0]]), 2.0)   # -2 sign(x) / (2 + 2)²
    array([[-0.125,  0.125],
           [ 0.   ,  0.   ]])
    >>> ctl1_grad(np.array([[1.0, -1.0], [0.0, 0.0]]), 2.0, axis=0)
    array([[-0.125,  0.125],
           [ 0.   ,  0.   ]])
    """
    a = check_nonneg(a, "a", positive=True)
    xp, s = _l1_norms(x, axis)
    # "+ 0.0" turns the -0.0 of sign(0) * (negative) into +0.0
    if axis is None:
        return xp.sign(x) * (-a / (a + s) ** 2) + 0.0
    _, g, ax = as_groups(x, axis)
    coef = xp.reshape(-a / (a + s) ** 2, (-1, 1))
    return from_groups(xp, xp.sign(g) * coef + 0.0, x, ax)


@dataclass(frozen=True)
class _Penalty(TensorScheme):
    """A penalty-form C step ``min_Θ α C(Θ) + μ/2 ||x - Θ||²``: a prox with threshold α/μ."""

    alpha: float
    mu: float | None = None

    def __post_init__(self) -> None:
        check_nonneg(self.alpha, "alpha")
        if self.mu is not None:
            check_nonneg(self.mu, "mu", positive=True)

    def with_mu(self, mu: float) -> Any:
        """The same penalty bound to the coordinator's μ."""
        return replace(self, mu=mu)

    @property
    def t(self) -> float:
        if self.mu is None:
            raise ValueError(
                f"{type(self).__name__} is a penalty form: bind the penalty parameter with "
                "with_mu(mu) (the coordinators do it) before compressing"
            )
        return self.alpha / self.mu

    def decompress(self, theta: Array, /) -> Array:
        return theta

    def cost(self, theta: Array, /) -> StorageCost:
        return StorageCost(numel=numel(theta), nnz=count_nonzero(theta), bits=32)


@dataclass(frozen=True)
class L1Penalty(_Penalty):
    """``α ||Θ||_1``: the C step is :func:`soft_threshold` at α/μ (exact)."""

    def compress(self, x: Array, /) -> Array:
        return soft_threshold(x, self.t)


@dataclass(frozen=True)
class L0Penalty(_Penalty):
    """``α ||Θ||_0``: the C step is :func:`prox_l0` with λ = α/μ (exact)."""

    def compress(self, x: Array, /) -> Array:
        return prox_l0(x, self.t)


@dataclass(frozen=True)
class GroupLassoPenalty(_Penalty):
    """``α Σ_g ||Θ_g||_2`` over the slices along `axis`: :func:`prox_group_lasso` at α/μ."""

    axis: int = 0
    elementwise = False

    def compress(self, x: Array, /) -> Array:
        return prox_group_lasso(x, self.t, self.axis)
