"""Quantization onto fixed or scaled codebooks: binary, ternary, uniform grid, powers of two.

* Binary ``{-a, a}`` and ternary ``{-a, 0, a}`` with the optimal scale a (and threshold):
  exact closed forms (Rastegari et al. 2016, eq. 4; Yin, Zhang, Lyu, Osher, Qi & Xin,
  "BinaryRelax", SIAM J. Imaging Sci. 2018, §2: the ternary projection keeps the k largest
  magnitudes for the k maximizing ``(Σ_{top k} |x|)² / k``).
* The uniform grid with a learned scale, ``Q = ℝ × {0, ±1, …, ±L}`` with ``L = 2^(m-1)``
  (Li & Xin 2022, §I): the scale and the integers are projected together, exactly by a sweep
  over the breakpoints of the scale or by alternating minimization.
* A fixed codebook (e.g. signed powers of two): nearest element, exact and elementwise.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple

from compressopt._array import Array, array_namespace, ldexp, max_abs, numel, pow2_exponent, take
from compressopt.errors import NonFiniteError
from compressopt.projections._util import (
    acc_dtype,
    check_int,
    check_memory,
    flat,
    mask_top,
    prepare,
)
from compressopt.projections.base import StorageCost, TensorScheme, bits_for
from compressopt.projections.quantization import AdaptiveQuantization, Quantized, assign_nearest

__all__ = [
    "Binary",
    "FixedCodebook",
    "PowersOfTwo",
    "ScaledCodes",
    "Ternary",
    "UniformQuantization",
    "powers_of_two",
    "project_binary",
    "project_codebook",
    "project_ternary",
    "project_uniform",
    "uniform_memory",
]

#: above this many breakpoints (entries × levels) ``project_uniform(method="auto")`` alternates
EXACT_UNIFORM_LIMIT = 1 << 20
#: breakpoints of the weighted sketch whose exact scale starts the alternating method: small
#: enough for a projection per training step (≈ 15 ms for 400k entries on one core), and
#: measured within 2e-7 of the exact error on Gaussian, Laplace, Student-t(3) and sparse data
SKETCH_LIMIT = 1 << 17
#: bytes per breakpoint of the exact sweep (measured peak of ``_uniform_sweep``, numpy float64:
#: 88-94 bytes for n·L = 2^20 with n from 64 to 4096)
SWEEP_BYTES = 96


class ScaledCodes(NamedTuple):
    """Θ of a scaled integer codebook: ``x ≈ scale * codes``.

    ``scale`` is a 0-d array >= 0 in the input's dtype; ``codes`` are int64, shaped like the
    input, on its device.
    """

    scale: Array
    codes: Array


def _decode(theta: ScaledCodes) -> Array:
    xp = array_namespace(theta.codes)
    return xp.astype(theta.codes, theta.scale.dtype) * theta.scale


def _sign_codes(x: Array, keep: Array) -> Array:
    """int64 sign of `x` where `keep`, 0 elsewhere."""
    xp = array_namespace(x)
    return xp.astype(xp.where(keep, xp.sign(x), xp.zeros_like(x)), xp.int64)


def project_binary(x: Array) -> ScaledCodes:
    """Euclidean projection onto {a·s : a >= 0, s ∈ {-1, +1}^n} (binary weights with a scale).

    .. math:: \\min_{a \\ge 0,\\, s \\in \\{\\pm1\\}^n} \\|x - a s\\|^2:\\quad
        s = \\operatorname{sign}(x),\\; a = \\tfrac1n \\|x\\|_1

    Parameters
    ----------
    x : array, any shape, real floating.

    Returns
    -------
    ScaledCodes
        codes ±1 (zeros of x get +1), scale ``mean |x|`` (0 for an empty x). Exact
        (Rastegari et al., "XNOR-Net", ECCV 2016, eq. 4) at every finite magnitude, float32
        and float64, subnormals included: the mean is taken of ``|x|·2^-E`` (E the binary
        exponent of ``max|x|``) and scaled back, so it neither overflows (values near 1e308)
        nor loses digits to underflow (subnormals); the scale is rounded once to x's dtype.
        O(n); no host transfer.

    Raises
    ------
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> t = project_binary(np.array([1.0, -3.0, 2.0]))
    >>> float(t.scale), t.codes.tolist()
    (2.0, [1, -1, 1])
    """
    xp = prepare(x)
    n = numel(x)
    u = xp.astype(xp.abs(x), acc_dtype(x))
    e = pow2_exponent(max_abs(u))
    a = ldexp(xp.sum(ldexp(u, -e)) / max(n, 1), e)
    codes = xp.where(x >= 0, xp.ones_like(x), -xp.ones_like(x))
    return ScaledCodes(xp.astype(a, x.dtype), xp.astype(codes, xp.int64))


def project_ternary(x: Array) -> ScaledCodes:
    """Euclidean projection onto {a·s : a >= 0, s ∈ {-1, 0, +1}^n} (ternary weights).

    .. math:: \\min_{a,\\, s} \\|x - a s\\|^2 = \\|x\\|^2 - \\max_k \\frac{(\\sum_{j \\le k}
        |x|_{(j)})^2}{k}

    with ``|x|_(1) >= |x|_(2) >= …``: the support is the k* largest magnitudes for the
    maximizing k*, the signs are those of x, and ``a = Σ_{j <= k*} |x|_(j) / k*`` (so the
    threshold is ``|x|_(k*)``).

    Parameters
    ----------
    x : array, any shape, real floating.

    Returns
    -------
    ScaledCodes
        codes in {-1, 0, 1}, scale a. Exact (Yin et al., "BinaryRelax", 2018, §2) at every
        finite magnitude, float32 and float64, subnormals included: the ratios
        ``(Σ_{j<=k} |x|_(j))² / k`` are compared on ``|x|·2^-E`` (E the binary exponent of
        ``max|x|``; a power of two, so the comparison is the same one and neither overflows
        near 1e308 nor underflows below 1e-154); the scale is rounded once to x's dtype.
        Among equal magnitudes at the threshold the lower flat index is kept. O(n log n):
        one sort, one cumulative sum; no host transfer.

    Raises
    ------
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> t = project_ternary(np.array([0.1, -2.0, 1.8, 0.2]))
    >>> float(t.scale), t.codes.tolist()
    (1.9, [0, -1, 1, 0])
    """
    xp = prepare(x)
    n = numel(x)
    if n == 0:
        return ScaledCodes(xp.zeros((), dtype=x.dtype, device=x.device),
                           xp.zeros(x.shape, dtype=xp.int64, device=x.device))
    acc = acc_dtype(x)
    u = xp.abs(flat(x))
    su = xp.sort(u, descending=True, stable=False)
    s = xp.astype(su, acc)
    e = pow2_exponent(s[0])
    cs = xp.cumulative_sum(ldexp(s, -e))  # in the frame max|x|·2^-E ∈ [0.5, 1)
    k = xp.arange(1, n + 1, dtype=acc, device=x.device)
    best = xp.argmax(cs * cs / k)  # first maximum: the smallest optimal support
    kstar = best + 1
    at = xp.reshape(best, (1,))
    a = ldexp(take(cs, at)[0] / xp.astype(kstar, acc), e)
    thr = take(su, at)[0]
    keep = mask_top(u, thr, kstar) & (u > 0)
    return ScaledCodes(xp.astype(a, x.dtype), xp.reshape(_sign_codes(flat(x), keep), x.shape))


def _uniform_sweep(u: Array, weights: Array | None = None, *, levels: int) -> Array:
    """Exact optimal scale for magnitudes `u` (acc dtype, optional weights) and codes 0..L.

    For a fixed scale α the best codes are ``min(L, round(u/α))``; as α decreases from ∞
    code i steps from k to k+1 at the breakpoint ``u_i/(k + ½)``. Between consecutive
    breakpoints the codes are fixed, Σ w·u·q =: S1 and Σ w·q² =: S2 are prefix sums over the
    breakpoints crossed, and the best α on the interval is ``clip(S1/S2)``; the global
    optimum is the best interval (Lloyd-Max for a uniform grid, solved exactly). O(nL log nL)
    time and O(nL) memory.
    """
    xp = array_namespace(u)
    n, dev, acc = u.shape[0], u.device, u.dtype
    w = xp.ones_like(u) if weights is None else weights
    half = xp.arange(levels, dtype=acc, device=dev) + 0.5
    beta = xp.reshape(u[:, None] / half[None, :], (-1,))
    order = xp.argsort(beta, descending=True, stable=False)
    b = take(beta, order)
    d1 = take(xp.reshape(xp.broadcast_to((w * u)[:, None], (n, levels)), (-1,)), order)
    d2 = take(xp.reshape(w[:, None] * (2 * half[None, :]), (-1,)), order)
    s1, s2 = xp.cumulative_sum(d1), xp.cumulative_sum(d2)
    lower = xp.concat([b[1:], xp.zeros((1,), dtype=acc, device=dev)])
    alpha = xp.minimum(xp.maximum(s1 / s2, lower), b)
    gain = alpha * (2 * s1 - alpha * s2)  # Σ w u² - error
    best = xp.argmax(gain)
    a = take(alpha, xp.reshape(best, (1,)))[0]
    return xp.where(take(gain, xp.reshape(best, (1,)))[0] > 0, a, xp.zeros_like(a))


def _sketch(u: Array, m: int) -> tuple[Array, Array]:
    """A weighted summary of the magnitudes `u` with m points: the m/2 largest exactly (they
    decide the clipping) and the means of m/2 equal-count bins of the rest, weighted by the
    bin sizes (they decide the granular error)."""
    xp = array_namespace(u)
    n, acc, dev = u.shape[0], u.dtype, u.device
    s = xp.sort(u, stable=False)
    top = m // 2
    rest = n - top
    edges = xp.astype(xp.round(xp.linspace(0, rest, m - top + 1, dtype=acc, device=dev)), xp.int64)
    cs = xp.cumulative_sum(s[:rest], include_initial=True)
    cnt = xp.astype(edges[1:] - edges[:-1], acc)
    tot = take(cs, edges[1:]) - take(cs, edges[:-1])
    means = tot / xp.where(cnt > 0, cnt, xp.ones_like(cnt))
    return (xp.concat([means, s[rest:]]),
            xp.concat([cnt, xp.ones((top,), dtype=acc, device=dev)]))


def _codes_for(u: Array, a: Array, levels: int) -> Array:
    xp = array_namespace(u)
    safe = xp.where(a > 0, a, xp.ones_like(a))
    q = xp.minimum(xp.round(u / safe), xp.full_like(u, levels))
    return xp.where(a > 0, q, xp.zeros_like(q))


def _levels(bits: int | None, levels: int | None, method: str, iters: int) -> int:
    """Validate the settings of :func:`project_uniform` and return L."""
    if (bits is None) == (levels is None):
        raise ValueError("give exactly one of bits (L = 2^(bits-1)) and levels (L)")
    if method not in ("auto", "exact", "alternating"):
        raise ValueError(f"method must be 'auto', 'exact' or 'alternating', got {method!r}")
    check_int(iters, "iters")
    if bits is not None:
        return 2 ** (check_int(bits, "bits", low=1, high=31) - 1)
    return check_int(levels, "levels", low=1)


def _uses_sweep(n: int, big_l: int, method: str) -> bool:
    return method == "exact" or (method == "auto" and n * big_l <= EXACT_UNIFORM_LIMIT)


def _sketch_points(big_l: int) -> int | None:
    """Points of the sketch whose exact scale starts the alternating method, or None when L is
    so large (> 2^15) that even 4 points would need 4L breakpoints: then it starts from
    ``max|x| / L`` (the finest grid that clips nothing)."""
    return max(4, SKETCH_LIMIT // big_l) if big_l <= SKETCH_LIMIT // 4 else None


def uniform_memory(n: int, bits: int | None = None, *, levels: int | None = None,
                   method: Literal["auto", "exact", "alternating"] = "auto") -> int:
    """Estimated peak memory (bytes) of :func:`project_uniform` on `n` entries.

    The exact sweep holds about ``96·n·L`` bytes (its n·L breakpoints with their order, prefix
    sums and candidate scales, float64); the alternating method about ``64·n`` bytes plus the
    sweep of its sketch (at most 2^17 breakpoints, 12 MB). ``"auto"`` picks the exact sweep
    when ``n·L <= 2^20`` (at most 100 MB). Cheap (no allocation): for a job to check its C
    step against the memory it has before training.

    Examples
    --------
    >>> uniform_memory(10**6, bits=4)        # auto: alternating
    76582912
    >>> uniform_memory(1000, bits=31, method="exact") / 1e12   # ~ 103 TB: refused
    103.079215168
    """
    big_l = _levels(bits, levels, method, 0)
    n = check_int(n, "n")
    if _uses_sweep(n, big_l, method):
        return SWEEP_BYTES * n * big_l + 64 * n
    m = _sketch_points(big_l)
    return 64 * n + (SWEEP_BYTES * min(n, m) * big_l if m is not None else 0)


def project_uniform(x: Array, bits: int | None = None, *, levels: int | None = None,
                    method: Literal["auto", "exact", "alternating"] = "auto",
                    iters: int = 50) -> ScaledCodes:
    """Projection onto the uniform grid with a learned scale, Q = ℝ × {0, ±1, …, ±L}.

    .. math:: \\min_{\\alpha \\ge 0,\\; q \\in \\{-L, \\dots, L\\}^n} \\|x - \\alpha q\\|^2

    Both the scale α and the integers q are projected (Li & Xin 2022, §I, with ``L =
    2^(bits-1)``). For a fixed α the best q rounds ``x/α`` and clips at ±L; for a fixed q the
    best α is ``<x, q>/<q, q>``.

    Parameters
    ----------
    x : array, any shape, real floating.
    bits : m >= 1, giving ``L = 2^(m-1)`` (the grid of Li & Xin; ``2L + 1`` levels, stored in
        ``ceil(log2(2L + 1)) = m + 1`` bits). Give exactly one of `bits` and `levels`.
    levels : L >= 1, the largest integer.
    method : ``"exact"``: sweep over all n·L breakpoints of α (see ``_uniform_sweep``):
        the global optimum, O(nL log nL) time and about ``96·n·L`` bytes
        (:func:`uniform_memory`). ``"alternating"``: `iters` rounds of the two closed forms
        (Li & Xin's scheme; the error never increases) from the exact scale of a
        2^17/L-point weighted sketch of |x| (its largest half exactly, the rest as bin means),
        or, for L > 2^15, from ``max|x|/L``: a local optimum, O(n log n + n·iters) time and
        O(n) memory. ``"auto"``: exact when ``n·L <= 2^20``, else alternating.
    iters : rounds of the alternating method.

    Returns
    -------
    ScaledCodes
        scale α >= 0 (0 only for x = 0) and integer codes in [-L, L].

    Notes
    -----
    The problem is scale-equivariant (the codes of ``c·x`` are those of x, the scale is
    c·α), so it is solved on ``|x|·2^-E`` (E the binary exponent of ``max|x|``, an exact
    rescaling) and α scaled back: exact (resp. the same local optimum) at every finite
    magnitude, float32 and float64, subnormals included (no overflow of the squares near
    1e308, no scale 0 below 1e-154); α is rounded once to x's dtype.

    Raises
    ------
    TypeError, ValueError
        Bad `bits`, `levels`, `method` or `iters`.
    ResourceLimitError
        ``method="exact"`` would need more memory than is available (e.g. ``bits=31``:
        ``96·n·2^30`` bytes), checked before allocating.
    UnsupportedDTypeError, NonFiniteError
        `x` is not real floating, or holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> t = project_uniform(np.array([0.1, 1.0, 2.1, -2.9]), bits=2)   # L = 2
    >>> round(float(t.scale), 4), t.codes.tolist()
    (1.2222, [0, 1, 2, -2])
    >>> t = project_uniform(np.array([1e-200, 3e-200]), bits=31)   # L = 2^30, O(n) memory
    >>> t.codes.tolist()
    [357913941, 1073741824]
    """
    xp = prepare(x)
    big_l = _levels(bits, levels, method, iters)
    n = numel(x)
    acc = acc_dtype(x)
    if n == 0:
        return ScaledCodes(xp.zeros((), dtype=x.dtype, device=x.device),
                           xp.zeros(x.shape, dtype=xp.int64, device=x.device))
    u = xp.astype(xp.abs(flat(x)), acc)
    e = pow2_exponent(xp.max(u))
    u = ldexp(u, -e)  # max u ∈ [0.5, 1): the same problem, no overflow or underflow
    if _uses_sweep(n, big_l, method):
        check_memory(uniform_memory(n, levels=big_l, method="exact"),
                     f"the exact uniform-grid projection of {n} values with L = {big_l}",
                     "use fewer bits or method='alternating'")
        a = _uniform_sweep(u, levels=big_l)
    else:
        m = _sketch_points(big_l)
        if m is None:
            a = xp.max(u) / big_l
        elif n > m:
            a = _uniform_sweep(*_sketch(u, m), levels=big_l)
        else:
            a = _uniform_sweep(u, levels=big_l)
        for _ in range(iters):  # alternating closed forms (a loop over rounds)
            q = _codes_for(u, a, big_l)
            s2 = xp.sum(q * q)
            a = xp.where(s2 > 0, xp.sum(u * q) / xp.where(s2 > 0, s2, xp.ones_like(s2)), a)
    q = _codes_for(u, a, big_l)
    codes = xp.astype(q * xp.sign(xp.astype(flat(x), acc)), xp.int64)
    return ScaledCodes(xp.astype(ldexp(a, e), x.dtype), xp.reshape(codes, x.shape))


def powers_of_two(emin: int, emax: int, *, zero: bool = True) -> list[float]:
    """The signed powers of two ``{±2^e : emin <= e <= emax}`` (and 0), sorted ascending.

    Examples
    --------
    >>> powers_of_two(-1, 0)
    [-1.0, -0.5, 0.0, 0.5, 1.0]
    """
    check_int(emin, "emin", low=-1074)
    check_int(emax, "emax", low=emin, high=1023)
    pos = [2.0**e for e in range(emin, emax + 1)]
    return [-p for p in reversed(pos)] + ([0.0] if zero else []) + pos


def project_codebook(x: Array, codebook: Sequence[float] | Array) -> Quantized:
    """Euclidean projection onto a fixed finite codebook: every entry to its nearest value.

    .. math:: z_i = \\operatorname{argmin}_{c \\in C} |x_i - c|

    Parameters
    ----------
    x : array, any shape, real floating.
    codebook : 1-D finite values (a sequence of floats or an array on x's device), any
        order, at least one.

    Returns
    -------
    Quantized
        The codebook sorted ascending in x's dtype, and int64 assignments (ties halfway between
        two values go to the lower one). Exact; O(n log K).

    Raises
    ------
    ValueError
        An empty codebook, or a value beyond the range of x's dtype (e.g. 1e300 for
        float32: no entry could be quantized to it).
    TypeError
        A codebook value is not a real number.
    UnsupportedDTypeError, NonFiniteError
        `x` or the codebook is not real floating or finite.

    Notes
    -----
    Exact at every finite magnitude: the decision points are the midpoints ``a/2 + b/2`` of
    consecutive values (:func:`~compressopt.projections.quantization.assign_nearest`), which
    cannot overflow.

    Examples
    --------
    >>> import numpy as np
    >>> q = project_codebook(np.array([0.3, -0.8, 5.0]), powers_of_two(-1, 0))
    >>> q.codebook[q.assignments].tolist()
    [0.5, -1.0, 1.0]
    """
    xp = prepare(x)
    if hasattr(codebook, "shape"):
        c = codebook
    else:
        vals = _codebook_values(codebook)
        c = xp.asarray(vals, dtype=xp.float64 if vals else x.dtype, device=x.device)
    prepare(c, "codebook")
    if c.ndim != 1 or c.shape[0] == 0:
        raise ValueError(f"codebook must be a non-empty 1-D collection, got shape {tuple(c.shape)}")
    big = float(xp.finfo(x.dtype).max)
    if float(xp.max(xp.abs(xp.astype(c, xp.float64)))) > big:
        raise ValueError(f"a codebook value is beyond the range of {x.dtype} (largest {big:g})")
    c = xp.sort(xp.astype(c, x.dtype), stable=False)
    return Quantized(c, assign_nearest(x, c))


def _codebook_values(values: Iterable[object]) -> list[float]:
    """A fixed codebook as finite floats: TypeError for non-numbers (bools too), NonFiniteError
    for NaN/Inf."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"codebook values must be real numbers, got {v!r}")
        if not math.isfinite(v):
            raise NonFiniteError(f"codebook values must be finite, got {v}")
        out.append(float(v))
    return out


class _Scaled(TensorScheme):
    """Schemes whose Θ is :class:`ScaledCodes`: ``value_bits`` per entry, a 32-bit scale."""

    value_bits: ClassVar[int]

    def decompress(self, theta: ScaledCodes, /) -> Array:
        return _decode(theta)

    def cost(self, theta: ScaledCodes, /) -> StorageCost:
        n = numel(theta.codes)
        return StorageCost(numel=n, nnz=n, bits=self.value_bits, overhead_bits=32)


@dataclass(frozen=True)
class Binary(_Scaled):
    """Binary weights ``a · {-1, +1}`` with the optimal scale (:func:`project_binary`, exact).

    Storage: 1 bit per entry, 32 bits of scale (overhead).
    """

    value_bits = 1

    def compress(self, x: Array, /) -> ScaledCodes:
        return project_binary(x)


@dataclass(frozen=True)
class Ternary(_Scaled):
    """Ternary weights ``a · {-1, 0, +1}``, optimal scale and threshold (exact).

    Storage: 2 bits per entry (``ceil(log2 3)``), 32 bits of scale.
    """

    value_bits = 2

    def compress(self, x: Array, /) -> ScaledCodes:
        return project_ternary(x)


@dataclass(frozen=True)
class UniformQuantization(_Scaled):
    """The grid ``α · {0, ±1, …, ±L}``, ``L = 2^(bits-1)`` or `levels` (:func:`project_uniform`).

    Storage: ``ceil(log2(2L + 1))`` bits per entry, 32 bits of scale. Exact with
    ``method="exact"`` (or ``"auto"`` on small tensors).
    """

    bits: int | None = None
    levels: int | None = None
    method: Literal["auto", "exact", "alternating"] = "auto"
    iters: int = 50

    def __post_init__(self) -> None:
        _levels(self.bits, self.levels, self.method, self.iters)

    @property
    def exact(self) -> bool:  # type: ignore[override]
        return self.method == "exact"

    @property
    def big_l(self) -> int:
        """L, the largest integer code."""
        return _levels(self.bits, self.levels, self.method, self.iters)

    @property
    def value_bits(self) -> int:  # type: ignore[override]
        return bits_for(2 * self.big_l + 1)

    def compress(self, x: Array, /) -> ScaledCodes:
        return project_uniform(x, self.bits, levels=self.levels, method=self.method,
                               iters=self.iters)


class _Codebook(TensorScheme):
    """Schemes with a fixed codebook ``self.codebook`` (nearest value; exact)."""

    codebook: tuple[float, ...]

    def compress(self, x: Array, /) -> Quantized:
        return project_codebook(x, self.codebook)

    def decompress(self, theta: Quantized, /) -> Array:
        return AdaptiveQuantization(1).decompress(theta)

    def cost(self, theta: Quantized, /) -> StorageCost:
        n = numel(theta.assignments)
        return StorageCost(numel=n, nnz=n, bits=bits_for(len(set(self.codebook))))


@dataclass(frozen=True)
class FixedCodebook(_Codebook):
    """Every entry one of the given `values` (:func:`project_codebook`, exact).

    Storage: ``ceil(log2 K)`` bits per entry; the codebook is fixed, so no overhead.
    """

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(_codebook_values(self.values)))
        if not self.values:
            raise ValueError("a fixed codebook needs at least one value")

    @property
    def codebook(self) -> tuple[float, ...]:  # type: ignore[override]
        return self.values


@dataclass(frozen=True)
class PowersOfTwo(_Codebook):
    """Signed powers of two ``{0, ±2^e : emin <= e <= emax}`` (:func:`powers_of_two`, exact).

    Storage: ``ceil(log2 K)`` bits per entry (K = 2(emax - emin + 1) + 1), no overhead.
    """

    emin: int = -8
    emax: int = 0

    def __post_init__(self) -> None:
        powers_of_two(self.emin, self.emax)

    @property
    def codebook(self) -> tuple[float, ...]:  # type: ignore[override]
        return tuple(powers_of_two(self.emin, self.emax))
