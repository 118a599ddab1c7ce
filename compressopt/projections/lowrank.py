"""Low-rank compression: best rank-r approximation and rank selection under a parameter budget.

A weight of shape ``(out, …)`` is seen as the matrix ``(out, in·kh·kw)``. Its best rank-r
approximation in Frobenius norm is the truncated SVD (Eckart & Young 1936; Mirsky 1960), with
error ``Σ_{l > r} σ_l²`` and ``r(m + n)`` stored values (the factors ``U_r Σ_r`` and
``V_rᵀ``). Choosing one rank per layer under ``Σ_i r_i (m_i + n_i) <= P`` to minimize the
total error is a multiple-choice knapsack with concave profits (Idelbayev & Carreira-Perpiñán,
"Low-rank compression of neural nets: learning the rank of each layer", CVPR 2020, pose it
with a penalty; here it is the budget form), solved by :func:`~compressopt.projections.mckp.
mckp_greedy` and, for a few layers, exactly by :func:`~compressopt.projections.mckp.mckp_pareto`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from compressopt._array import (
    Array,
    array_namespace,
    common_exponent,
    ldexp,
    max_abs,
    pow2_exponent,
    to_numpy,
)
from compressopt.errors import ShapeMismatchError
from compressopt.projections._util import check_int, check_nonneg, ldexp_float, prepare
from compressopt.projections.base import StorageCost, TensorScheme
from compressopt.projections.mckp import mckp_best
from compressopt.tree import Params, tree_check

__all__ = [
    "LowRank",
    "LowRankTheta",
    "RankAllocation",
    "RankSelection",
    "project_rank",
    "select_ranks",
]


class LowRankTheta(NamedTuple):
    """Θ of a rank-r tensor: ``reshape(left @ right, shape)``.

    ``left`` is ``(m, r)`` (``U_r Σ_r``), ``right`` is ``(r, n)`` (``V_rᵀ``), both in the
    input's dtype and on its device; ``shape`` is the original shape.
    """

    left: Array
    right: Array
    shape: tuple[int, ...]


def _as_matrix(x: Array) -> tuple[object, Array]:
    xp = prepare(x)
    if x.ndim < 2:
        raise ShapeMismatchError(f"low rank needs a tensor with ndim >= 2, got shape {x.shape}")
    return xp, xp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))


def _factors(x: Array, r: int) -> LowRankTheta:
    _xp, a = _as_matrix(x)
    m, n = a.shape
    r = check_int(r, "rank", low=0, high=min(m, n))
    e = pow2_exponent(max_abs(a))
    u, s, vh = _svd(ldexp(a, -e))
    return _theta(u, s, vh, r, e, tuple(x.shape))


def _theta(u: Array, s: Array, vh: Array, r: int, e: Array, shape: tuple[int, ...]) -> Array:
    """Θ of rank r from the SVD of ``A·2^-e`` (so ``σ_1 <= sqrt(mn)``): the factors
    ``U_r Σ_r`` and ``V_rᵀ`` scaled back by powers of two, split so that neither overflows
    (``2^(e-h)`` on the left and ``2^h`` on the right, ``2^h >= 2 sqrt(mn)``, when e > 0) nor
    loses more than the output's own rounding (all on the left when e <= 0)."""
    xp = array_namespace(u)
    m, n = u.shape[0], vh.shape[1]
    h = (max(m * n, 1).bit_length() + 1) // 2 + 1
    hr = xp.where(e > 0, xp.asarray(h, dtype=e.dtype, device=e.device), xp.zeros_like(e))
    return LowRankTheta(ldexp(u[:, :r] * s[None, :r], e - hr), ldexp(vh[:r, :], hr), shape)


def _svd(a: Array) -> tuple[Array, Array, Array]:
    """Thin SVD on the array's device; an empty matrix has empty factors."""
    xp = array_namespace(a)
    m, n = a.shape
    if m == 0 or n == 0:
        z = xp.zeros((0,), dtype=a.dtype, device=a.device)
        return (xp.zeros((m, 0), dtype=a.dtype, device=a.device), z,
                xp.zeros((0, n), dtype=a.dtype, device=a.device))
    return xp.linalg.svd(a, full_matrices=False)


def _expand(theta: LowRankTheta) -> Array:
    xp = array_namespace(theta.left)
    return xp.reshape(theta.left @ theta.right, theta.shape)


def project_rank(x: Array, r: int) -> Array:
    """Euclidean (Frobenius) projection onto the matrices of rank at most r.

    .. math:: \\operatorname{argmin}_{\\operatorname{rank}(Z) \\le r} \\|Z - X\\|_F^2 =
        U_r \\Sigma_r V_r^\\top

    Parameters
    ----------
    x : array with ``ndim >= 2``, real floating; seen as ``(x.shape[0], -1)``.
    r : int, ``0 <= r <= min(m, n)``.

    Returns
    -------
    array like `x` (a new array). Exact (Eckart–Young–Mirsky), unique when ``σ_r > σ_{r+1}``;
    error ``Σ_{l > r} σ_l²``. O(mn·min(m, n)) (one thin SVD, on the array's device). The SVD
    is taken of ``x·2^-E`` (E the binary exponent of ``max|x|``; the projection commutes with
    this exact rescaling), so it is exact to the SVD's accuracy at every finite magnitude,
    float32 and float64, subnormals included.

    Raises
    ------
    ShapeMismatchError
        ``x.ndim < 2``.
    TypeError, ValueError
        `r` is not an int in range.
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> project_rank(np.array([[3.0, 0.0], [0.0, 1.0]]), 1)
    array([[3., 0.],
           [0., 0.]])
    """
    return _expand(_factors(x, r))


class RankAllocation(NamedTuple):
    """Result of :func:`select_ranks`.

    Attributes
    ----------
    ranks : dict name -> int
    theta : dict name -> LowRankTheta
    error : float
        ``Σ_i Σ_{l > r_i} σ_{i,l}²``: the squared distance of the projection.
    lp_bound : float
        LP lower bound on the optimal error (``lp_bound <= OPT <= error``).
    params_used : int
        ``Σ_i r_i (m_i + n_i)``.
    budget : float
    integral : bool
        The LP optimum is integral: the greedy's ranks are optimal.
    optimal : bool
        The ranks are optimal: the LP optimum is integral or
        :func:`~compressopt.projections.mckp.mckp_pareto` solved the instance.
    """

    ranks: dict[str, int]
    theta: dict[str, LowRankTheta]
    error: float
    lp_bound: float
    params_used: int
    budget: float
    integral: bool
    optimal: bool = False

    def decompress(self) -> dict[str, Array]:
        return {n: _expand(t) for n, t in self.theta.items()}


def select_ranks(w: Params, budget_params: float) -> RankAllocation:
    """One rank per tensor minimizing the total low-rank error under a parameter budget.

    .. math:: \\min_{r_i} \\sum_i \\sum_{l > r_i} \\sigma_{i,l}^2 \\;\\text{s.t.}\\;
        \\sum_i r_i (m_i + n_i) \\le P

    A multiple-choice knapsack (group = tensor, item = rank r with weight ``r(m+n)`` and profit
    ``Σ_{l <= r} σ_l²``); the profits are concave in r, so every rank is on the convex hull and
    the greedy takes singular values in decreasing order of ``σ²/(m + n)`` across tensors
    (:func:`~compressopt.projections.mckp.mckp_greedy`); when its LP optimum is fractional,
    :func:`~compressopt.projections.mckp.mckp_pareto` solves the instance exactly if its
    frontier stays within 10⁵ states.

    Parameters
    ----------
    w : mapping name -> array (``ndim >= 2``, real floating).
    budget_params : P >= 0, stored values (parameters) in all.

    Returns
    -------
    RankAllocation

    Raises
    ------
    ShapeMismatchError
        `w` is empty or a tensor has ``ndim < 2``.
    ValueError
        A negative budget.
    UnsupportedDTypeError, NonFiniteError
        A tensor is not real floating, or holds NaN/Inf.

    Notes
    -----
    Greedy with the LP bound (integral, hence optimal, when the budget is used up exactly or
    every rank is full). The singular values (min(m, n) per tensor) are read on the host for
    the knapsack; the SVDs and the projections run on the arrays' device. The SVDs are taken
    of the tensors scaled by one power of two ``2^-E`` (E the binary exponent of the largest
    ``|w|``), so the σ² neither overflow nor underflow and the ranks are the same at every
    finite magnitude; ``error`` and ``lp_bound`` are in w's units squared (inf beyond the
    float range).

    Examples
    --------
    >>> import numpy as np
    >>> w = {"a": np.diag([4.0, 1.0]), "b": np.diag([3.0, 2.0])}
    >>> r = select_ranks(w, budget_params=8)   # each rank costs m + n = 4
    >>> r.ranks, r.error
    ({'a': 1, 'b': 1}, 5.0)
    """
    w = tree_check(w)
    if not w:
        raise ShapeMismatchError("w is empty: give at least one tensor")
    p = check_nonneg(budget_params, "budget_params")
    names, svds, profits, weights = list(w), {}, [], []
    mats = {name: _as_matrix(w[name])[1] for name in names}
    # one power of two for all tensors, so that the σ² are comparable and in range
    e = common_exponent(mats.values())
    for name in names:  # a loop over tensors
        a = mats[name]
        svds[name] = _svd(ldexp(a, -e))
        s2 = to_numpy(svds[name][1]).astype(np.float64) ** 2
        profits.append(np.concatenate([[0.0], np.cumsum(s2)]))
        weights.append(np.arange(s2.size + 1) * sum(a.shape))
    res, choice, optimal = mckp_best(profits, weights, p)
    ranks = dict(zip(names, choice, strict=True))
    theta = {}
    for name in names:
        u, s, vh = svds[name]
        xp = array_namespace(u)
        ea = xp.asarray(e, dtype=xp.int32, device=u.device)
        theta[name] = _theta(u, s, vh, ranks[name], ea, tuple(w[name].shape))
    total = float(sum(pr[-1] for pr in profits))
    kept = float(sum(pr[r] for pr, r in zip(profits, choice, strict=True)))
    used = int(sum(wt[r] for wt, r in zip(weights, choice, strict=True)))
    return RankAllocation(ranks=ranks, theta=theta, error=ldexp_float(total - kept, 2 * e),
                          lp_bound=ldexp_float(total - res.lp_bound, 2 * e), params_used=used,
                          budget=p, integral=res.integral, optimal=optimal)


def _low_rank_cost(theta: LowRankTheta) -> StorageCost:
    m, r = theta.left.shape
    n = theta.right.shape[1]
    return StorageCost(numel=m * n, nnz=r * (m + n), bits=32)


@dataclass(frozen=True)
class LowRank(TensorScheme):
    """Rank at most `rank` for one tensor seen as ``(out, -1)`` (:func:`project_rank`, exact).

    Θ is :class:`LowRankTheta`; storage ``r (m + n)`` 32-bit values.
    """

    rank: int
    elementwise = False

    def __post_init__(self) -> None:
        check_int(self.rank, "rank")

    def compress(self, x: Array, /) -> LowRankTheta:
        _, a = _as_matrix(x)
        return _factors(x, min(self.rank, *a.shape))

    def decompress(self, theta: LowRankTheta, /) -> Array:
        return _expand(theta)

    def cost(self, theta: LowRankTheta, /) -> StorageCost:
        return _low_rank_cost(theta)


@dataclass(frozen=True)
class RankSelection:
    """Ranks chosen across tensors under ``Σ r_i (m_i + n_i) <= budget_params`` (a Compression).

    Greedy with an LP bound (:func:`select_ranks`). Θ is a ``dict`` name -> LowRankTheta.
    """

    budget_params: float

    exact = False

    def __post_init__(self) -> None:
        check_nonneg(self.budget_params, "budget_params")

    def compress(self, w: Params, /) -> dict[str, LowRankTheta]:
        return select_ranks(w, self.budget_params).theta

    def decompress(self, theta: dict[str, LowRankTheta], /) -> dict[str, Array]:
        return {n: _expand(t) for n, t in theta.items()}

    def cost(self, theta: dict[str, LowRankTheta], /) -> dict[str, StorageCost]:
        return {n: _low_rank_cost(t) for n, t in theta.items()}

    def contains(self, w: Params, /, *, atol: float = 0.0) -> bool:
        """Whether the numerical ranks (singular values > atol) fit the budget."""
        used = 0
        for x in tree_check(w).values():
            xp, a = _as_matrix(x)
            e = pow2_exponent(max_abs(a))
            s = _svd(ldexp(a, -e))[1]  # σ·2^-e
            thr = ldexp(xp.asarray(atol, dtype=s.dtype, device=s.device), -e)
            used += int(xp.sum(xp.astype(s > thr, xp.int64))) * sum(a.shape)
        return used <= self.budget_params
