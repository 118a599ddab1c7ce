"""Array-API helpers shared by projections and solvers.

Nothing here imports torch: torch tensors are handled through ``array_api_compat`` and the
tensor's own methods, so the same code runs on numpy arrays and on torch tensors on any device.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from array_api_compat import (
    array_namespace,
    device,
    is_numpy_array,
    is_torch_array,
    size,
)

from compressopt.errors import NonFiniteError, ShapeMismatchError, UnsupportedDTypeError

Array = Any  # any Array-API array: numpy.ndarray, torch.Tensor, ...

__all__ = [
    "Array",
    "array_namespace",
    "check_finite",
    "check_floating",
    "clip",
    "common_exponent",
    "device",
    "fast_namespace",
    "from_numpy",
    "host_numpy",
    "kth_largest",
    "lagged",
    "ldexp",
    "max_abs",
    "numel",
    "pow2_exponent",
    "scalar",
    "take",
    "to_numpy",
]


def numel(x: Array) -> int:
    """Number of entries of `x` (0 for an empty array)."""
    n = size(x)
    return int(n) if n is not None else math.prod(x.shape)


def check_floating(x: Array, name: str = "x") -> None:
    """Raise :class:`UnsupportedDTypeError` unless `x` has a real floating dtype."""
    xp = array_namespace(x)
    if not xp.isdtype(x.dtype, "real floating"):
        raise UnsupportedDTypeError(f"{name} must have a real floating dtype, got {x.dtype}")


def check_finite(x: Array, name: str = "x") -> None:
    """Raise unless `x` is a real floating array with only finite entries.

    Costs one reduction and one device-to-host transfer of a single boolean.

    Raises
    ------
    UnsupportedDTypeError
        `x` is not real floating.
    NonFiniteError
        `x` holds NaN or Inf.
    """
    check_floating(x, name)
    xp = array_namespace(x)
    if not bool(xp.all(xp.isfinite(x))):
        n_bad = int(xp.sum(xp.astype(~xp.isfinite(x), xp.int64)))
        raise NonFiniteError(f"{name} holds {n_bad} NaN or Inf entries")


def check_same_shape(a: Array, b: Array, what: str = "arrays") -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeMismatchError(f"{what} differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")


def kth_largest(a: Array, k: int) -> Array:
    """The `k`-th largest entry of the 1-D array `a` as a 0-d array on `a`'s device.

    ``1 <= k <= a.shape[0]``. Linear-time selection on numpy (``np.partition``) and torch
    (``Tensor.kthvalue``); a sort on other libraries. No host transfer.
    """
    n = a.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if is_numpy_array(a):
        return np.asarray(np.partition(a, n - k)[n - k])
    if is_torch_array(a) and a.device.type != "mps":
        return a.kthvalue(n - k + 1).values
    xp = array_namespace(a)
    return xp.sort(a)[n - k]


def pow2_exponent(m: Array) -> Array:
    """The exponent E with ``m = f · 2^E``, ``0.5 <= |f| < 1`` (``E = 0`` for ``m = 0``).

    `m` is a 0-d (or any) real floating array; the result is an integer array of its shape on
    its device (numpy and torch: ``frexp``; other libraries: one host read per entry of a
    0-d array). Exact for every finite value, subnormals included.

    Used to rescale a scale-equivariant problem by the power of two ``2^-E`` (see
    :func:`ldexp`): multiplying by a power of two is exact unless the result overflows or
    falls below the normal range, so the rescaled problem is the same problem.

    Examples
    --------
    >>> import numpy as np
    >>> int(pow2_exponent(np.asarray(3e-320))), int(pow2_exponent(np.asarray(0.75)))
    (-1061, 0)
    """
    xp = array_namespace(m)
    if hasattr(xp, "frexp"):
        return xp.frexp(m)[1]
    return xp.asarray(math.frexp(float(m))[1], device=device(m))  # pragma: no cover


def common_exponent(arrays: Iterable[Array]) -> int:
    """The largest binary exponent :func:`pow2_exponent` of ``max|x|`` over the arrays with a
    nonzero entry (0 when none has one): the frame ``2^-E`` in which several tensors' squared
    errors are compared.

    An all-zero array is left out: its exponent (0 by convention) says nothing of its
    magnitude, and at extreme magnitudes (``|x| ~ 1e-300``) it would push the others' errors
    below the float range, making every choice look free. One pass (``max|x|``) and one
    host read per array; no error is raised (a NaN's exponent counts as 0; the callers
    check finiteness). Used by :func:`~compressopt.projections.select_ranks` and
    :func:`~compressopt.projections.project_sparse_quantized`;
    :func:`~compressopt.projections.allocate_bits` applies the same rule to the frames its
    k-means sweeps already hold (no second pass).

    Examples
    --------
    >>> import numpy as np
    >>> common_exponent([np.array([3e-300, 1e-300]), np.zeros(2)])
    -994
    """
    ms = [float(max_abs(x)) for x in arrays]  # exact: every real float dtype fits a double
    return max((math.frexp(m)[1] for m in ms if m != 0.0), default=0)


def ldexp(x: Array, e: Array | int) -> Array:
    """``x · 2^e``, computed exactly: one rounding only when the result is subnormal (or
    overflows to ±inf, or underflows to 0).

    `e` is a Python int or an integer array broadcastable to `x` (e.g. the 0-d result of
    :func:`pow2_exponent`), on `x`'s device. Any exponent, beyond the range of the powers of
    two of `x`'s dtype too (``ldexp(3e-320, 1074)`` is ``6072.0``). Returns a new array of
    `x`'s dtype; no host transfer on numpy and torch.

    Examples
    --------
    >>> import numpy as np
    >>> float(ldexp(np.asarray(3e-320), 1074))
    6072.0
    """
    xp = array_namespace(x)
    if isinstance(e, int) and not isinstance(e, bool):
        e = xp.asarray(e, dtype=xp.int32, device=device(x))
    if hasattr(xp, "ldexp"):
        with np.errstate(over="ignore", under="ignore"):  # ±inf and 0 are the documented results
            return xp.asarray(xp.ldexp(x, e), dtype=x.dtype)
    k = int(e)  # pragma: no cover - libraries without ldexp: two exact power-of-two steps
    h = k // 2  # pragma: no cover
    return (x * 2.0**h) * 2.0 ** (k - h)  # pragma: no cover


def max_abs(x: Array) -> Array:
    """``max |x|`` as a 0-d array of `x`'s dtype on its device (0 for an empty `x`)."""
    xp = array_namespace(x)
    if numel(x) == 0:
        return xp.zeros((), dtype=x.dtype, device=device(x))
    return xp.max(xp.abs(x))


def clip(x: Array, lo: int | float, hi: int | float) -> Array:
    """``min(max(x, lo), hi)`` elementwise for Python-number bounds, a new array like `x`.

    numpy: ``np.clip`` directly (array_api_compat's ``clip`` is written in Python and costs
    tens of µs a call, which matters in loops over small arrays); other libraries: their
    ``clip``.
    """
    if type(x) is np.ndarray:
        return np.clip(x, lo, hi)
    return array_namespace(x).clip(x, lo, hi)


def take(x: Array, indices: Array, /, *, axis: int = 0) -> Array:
    """``x`` gathered at `indices` along `axis` (the Array API's ``take``), fast on every library.

    `indices` is a 1-D integer array of positions in ``[0, x.shape[axis])`` on `x`'s device
    (negative positions are not supported: they are what makes array_api_compat's torch
    ``take`` slow, a ``where`` over the indices before the gather). numpy: ``np.take``;
    torch: ``torch.index_select`` (measured 0.4 ms against 14 ms for array_api_compat's
    ``take`` of 400,000 codes from a 257-entry codebook, 2-core CPU); other libraries: their
    ``take``. Returns a new array of `x`'s dtype and device; no host transfer.

    Examples
    --------
    >>> import numpy as np
    >>> take(np.array([10.0, 20.0, 30.0]), np.array([2, 0, 2]))
    array([30., 10., 30.])
    """
    if type(x) is np.ndarray:  # the common case first: array_api_compat's checks cost µs
        return x.take(indices, axis=axis)
    if is_numpy_array(x):
        return np.take(x, indices, axis=axis)
    if is_torch_array(x):
        if str(indices.dtype) not in ("torch.int64", "torch.int32"):  # index_select's types
            indices = indices.long()
        return x.index_select(axis, indices)
    return array_namespace(x).take(x, indices, axis=axis)


#: numpy implements the Array API names this package uses from 2.1 on (astype, concat,
#: cumulative_sum with include_initial, unique_values, sort(stable=...))
_NUMPY_ARRAY_API = hasattr(np, "cumulative_sum") and hasattr(np, "astype")


def fast_namespace(*xs: Array) -> Any:
    """:func:`array_namespace` of `xs`, but ``numpy`` itself when every one is a plain
    ``numpy.ndarray`` and numpy is 2.1 or later.

    array_api_compat's numpy namespace wraps several functions (``astype``, ``sort``,
    ``ones_like``, ``cumulative_sum``, ...) in Python that costs microseconds a call and
    forwards to the same numpy function; in loops over small arrays (the k-means DP and
    Lloyd behind :func:`~compressopt.projections.allocate_bits`) that was 10-14 % of the
    time. The functions are numpy's own, so the results are the same bit for bit. Other
    libraries (torch, ...) get array_api_compat's namespace.

    Examples
    --------
    >>> import numpy as np
    >>> xp = fast_namespace(np.zeros(2))
    >>> xp.sort(xp.asarray([2.0, 1.0]), stable=False).tolist()
    [1.0, 2.0]
    """
    if _NUMPY_ARRAY_API and all(type(x) is np.ndarray for x in xs):
        return np
    return array_namespace(*xs)


def lagged(x: Array, width: int, fill: float) -> Array:
    """The ``(n, width)`` array ``out[b, w] = x[b - w]`` of the 1-D `x` (n entries), `fill`
    where ``b - w < 0``: each row holds an entry and the ``width - 1`` before it, nearest
    first (the band of a dynamic program over a sequence).

    numpy: a read-only strided view of `x` padded once (``as_strided``, no gather);
    torch: ``unfold`` of the padded `x`, columns flipped (one copy); other libraries: a gather
    of ``n·width`` entries. Same values on every library; no host transfer.

    Examples
    --------
    >>> import numpy as np
    >>> lagged(np.array([1.0, 2.0, 3.0]), 2, 0.0).tolist()
    [[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]]
    """
    if is_numpy_array(x):
        pad = np.empty(x.shape[0] + width - 1, dtype=x.dtype)
        pad[: width - 1] = fill
        pad[width - 1 :] = x
        st = pad.strides[0]  # [b, w] = pad[width - 1 + b - w]: a view, negative column stride
        return np.lib.stride_tricks.as_strided(pad[width - 1 :], (x.shape[0], width),
                                               (st, -st), writeable=False)
    xp = array_namespace(x)
    pad = xp.concat([xp.full((width - 1,), fill, dtype=x.dtype, device=device(x)), x])
    if is_torch_array(x):
        return pad.unfold(0, width, 1).flip(1)
    n = x.shape[0]
    b = xp.reshape(xp.arange(n, device=device(x)), (-1, 1))
    a = b + (width - 1) - xp.reshape(xp.arange(width, device=device(x)), (1, -1))
    return xp.reshape(take(pad, xp.reshape(a, (-1,))), (n, width))


def scalar(x: Array) -> float:
    """A 0-d array (or Python number) as a Python float. Synchronizes with the device."""
    return float(x)


def to_numpy(x: Array) -> np.ndarray:
    """Copy `x` to a numpy array on the host (a device round trip for accelerator arrays)."""
    if is_numpy_array(x):
        return x
    if is_torch_array(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def host_numpy(x: Array) -> np.ndarray | None:
    """`x` itself when it is a numpy array, a numpy view of it when it is a torch tensor on
    the CPU (no copy; detached), else None (accelerator arrays, dtypes numpy lacks).

    For host work made of many small steps, where numpy's per-call cost (about 1 µs) is far
    below torch's (5-20 µs, and its thread pool on a loaded machine): the k-means tables of
    the bit allocation run on this view for CPU tensors and on the device otherwise.
    """
    if is_numpy_array(x):
        return x
    if is_torch_array(x) and x.device.type == "cpu":
        try:
            return x.detach().numpy()
        except (TypeError, RuntimeError):  # bfloat16 and other dtypes numpy lacks
            return None
    return None


def from_numpy(a: np.ndarray, like: Array) -> Array:
    """The numpy array `a` as an array of `like`'s library, on `like`'s device."""
    xp = array_namespace(like)
    if is_numpy_array(like):
        return a
    return xp.asarray(a, device=device(like))
