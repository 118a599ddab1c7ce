"""Private helpers shared by the projections: validation, accumulation dtype, top-k masks.

Everything here is Array-API only (no torch import) and free of host round trips unless a
docstring says otherwise.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from array_api_compat import is_numpy_array

from compressopt._array import Array, array_namespace, check_finite, numel
from compressopt.errors import NonFiniteError, ResourceLimitError, ShapeMismatchError
from compressopt.tree import Params, tree_check

__all__ = [
    "acc_dtype",
    "array_param",
    "as_groups",
    "available_memory",
    "check_int",
    "check_memory",
    "check_nonneg",
    "concat_flat",
    "flat",
    "format_bytes",
    "from_groups",
    "ldexp_float",
    "mask_top",
    "prepare",
    "sort_owned",
    "split_flat",
    "square_exponent",
    "to_ints",
    "to_list",
    "zeros_where_not",
]


def prepare(x: Array, name: str = "x") -> Any:
    """Validate a real floating, finite array and return its namespace.

    Raises
    ------
    UnsupportedDTypeError, NonFiniteError
    """
    check_finite(x, name)
    return array_namespace(x)


def acc_dtype(x: Array) -> Any:
    """float64 for accumulations (prefix sums, objectives), unless the device lacks it (MPS)."""
    xp = array_namespace(x)
    dev = getattr(x, "device", None)
    return x.dtype if getattr(dev, "type", None) == "mps" else xp.float64


def flat(x: Array) -> Array:
    """`x` as a 1-D view (C order)."""
    return array_namespace(x).reshape(x, (-1,))


def check_int(value: Any, name: str, *, low: int = 0, high: int | None = None) -> int:
    """`value` as an int in ``[low, high]``; TypeError for non-ints, ValueError out of range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {rng}, got {value}")
    return value


def check_nonneg(value: Any, name: str, *, positive: bool = False) -> float:
    """`value` as a finite float >= 0 (> 0 if `positive`).

    Raises
    ------
    TypeError
        `value` is not a real number.
    NonFiniteError
        `value` is NaN or infinite.
    ValueError
        `value` is negative (or zero when `positive`).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise NonFiniteError(f"{name} must be finite, got {value}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value}")
    return value


def as_groups(x: Array, axis: int) -> tuple[Any, Array, int]:
    """Namespace, x as (G, m) with the groups (slices along `axis`) as rows, and the axis.

    Raises ShapeMismatchError for a 0-d x, ValueError for an axis out of range.
    """
    xp = prepare(x)
    if x.ndim == 0:
        raise ShapeMismatchError("group operators need at least a 1-D array, got a 0-d one")
    ax = check_int(axis, "axis", low=-x.ndim, high=x.ndim - 1) % x.ndim
    moved = xp.moveaxis(x, ax, 0) if ax else x
    return xp, xp.reshape(moved, (x.shape[ax], math.prod(moved.shape[1:]))), ax


def from_groups(xp: Any, g: Array, x: Array, ax: int) -> Array:
    """Inverse of :func:`as_groups`: the (G, m) array `g` back in the shape of `x`."""
    shape = (x.shape[ax], *[s for i, s in enumerate(x.shape) if i != ax])
    out = xp.reshape(g, shape)
    return xp.moveaxis(out, 0, ax) if ax else out


def array_param(value: Any, x: Array, name: str) -> Array | None:
    """`value` cast to x's dtype if it is an array (finite, real floating, broadcastable to x),
    else None (a Python number, validated by the caller).

    Raises
    ------
    UnsupportedDTypeError, NonFiniteError
        The array is not real floating, or holds NaN/Inf.
    ShapeMismatchError
        The array does not broadcast to x's shape.
    """
    if not hasattr(value, "shape") or isinstance(value, numbers.Real):
        return None
    xp = prepare(value, name)
    try:
        xp.broadcast_shapes(tuple(value.shape), tuple(x.shape))
    except (ValueError, RuntimeError) as e:
        raise ShapeMismatchError(f"{name} of shape {tuple(value.shape)} does not broadcast to "
                                 f"x's shape {tuple(x.shape)}") from e
    return xp.astype(value, x.dtype)


def zeros_where_not(mask: Array, x: Array) -> Array:
    """``x`` where `mask`, 0 elsewhere (a new array)."""
    xp = array_namespace(x)
    return xp.where(mask, x, xp.zeros_like(x))


def mask_top(a: Array, t: Array, k: Array | int) -> Array:
    """Mask of the `k` largest entries of the 1-D array `a`, given its `k`-th largest value `t`.

    Entries above `t` are kept, and among those equal to `t` the ones with the lowest index
    until `k` are kept. `t` and `k` may be 0-d arrays on `a`'s device (no host transfer).
    O(n): two comparisons and one cumulative sum over the ties.
    """
    xp = array_namespace(a)
    greater = a > t
    equal = a == t
    need = k - xp.sum(xp.astype(greater, xp.int64))
    rank = xp.cumulative_sum(xp.astype(equal, xp.int64))  # 1-based rank among the ties
    return greater | (equal & (rank <= need))


def concat_flat(w: Params, name: str = "w") -> tuple[list[str], list[Array], Array, list[int]]:
    """Validate a collection and concatenate its flattened tensors (one copy of all weights).

    Returns the names, the original arrays, the concatenation and the sizes.

    Raises
    ------
    TypeError, UnsupportedDTypeError, NonFiniteError
        As :func:`compressopt.tree.tree_check`.
    ShapeMismatchError
        The collection is empty.
    """
    w = tree_check(w, name)
    if not w:
        raise ShapeMismatchError(f"{name} is empty: give at least one tensor")
    names = list(w)
    xs = [w[n] for n in names]
    xp = array_namespace(*xs)
    return names, xs, xp.concat([flat(x) for x in xs]), [numel(x) for x in xs]


def split_flat(v: Array, names: list[str], xs: list[Array]) -> dict[str, Array]:
    """Split the concatenation `v` back into arrays shaped like `xs`."""
    xp = array_namespace(v)
    out, start = {}, 0
    for n, x in zip(names, xs, strict=True):
        m = numel(x)
        out[n] = xp.reshape(v[start : start + m], x.shape)
        start += m
    return out


def sort_owned(a: Array) -> Array:
    """Sort a 1-D array the caller owns and will not read unsorted again.

    numpy sorts in place (no copy: allocating and touching a second buffer costs as much as
    the sort on large arrays); other libraries return ``xp.sort(a)``. Not stable.
    """
    if is_numpy_array(a):
        a.sort()
        return a
    return array_namespace(a).sort(a, stable=False)


def to_ints(v: Array) -> list[int]:
    """A small 1-D integer array as a list of Python ints (one device synchronization)."""
    xp = array_namespace(v)
    return [int(e) for e in xp.unstack(v)] if v.shape[0] else []


def to_list(v: Array) -> list[float]:
    """A small 1-D array as a list of Python floats (one device synchronization)."""
    xp = array_namespace(v)
    return [float(e) for e in xp.unstack(xp.astype(v, xp.float64))] if v.shape[0] else []


def available_memory() -> int:
    """Bytes of memory available to a new allocation: psutil's ``available`` (MemAvailable
    on Linux); ``/proc/meminfo`` without psutil; a huge number when neither can be read."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil is a core dependency
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    return 1 << 62  # pragma: no cover


def format_bytes(n: float) -> str:
    """``n`` bytes for a message: ``"4.3 GB"``, ``"512 kB"`` (powers of 1000)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def check_memory(estimate: int, what: str, change: str) -> None:
    """Raise :class:`ResourceLimitError` before allocating when `estimate` bytes exceed the
    memory available (:func:`available_memory`).

    `what` names the computation (``"exact k-means of 60000 values with k = 8192"``),
    `change` the parameter to change (``"use a smaller k or method='fast'"``); both go into the
    message with the estimate and the memory available.
    """
    avail = available_memory()
    if estimate > avail:
        raise ResourceLimitError(
            f"{what} needs about {format_bytes(estimate)} of memory, more than the "
            f"{format_bytes(avail)} available: {change}")


def ldexp_float(v: float, e: int) -> float:
    """``v · 2^e`` as a Python float: inf on overflow (as float arithmetic gives), where
    :func:`math.ldexp` raises."""
    try:
        return math.ldexp(v, e)
    except OverflowError:
        return math.copysign(math.inf, v)


def square_exponent(top: float, acc_max: float) -> int:
    """The power of two E for sums of squares of magnitudes up to `top` in an accumulation
    dtype whose largest value is `acc_max`: 0 while ``top`` lies within ``2^±(m/4)`` (m the
    exponent of `acc_max`; float64: ``2^±255``, so n squares neither overflow nor underflow
    for any practical n), else the binary exponent of `top` (then ``(v·2^-E)² <= 1``). 0 for
    ``top = 0`` or non-finite `top`. The sums are taken of ``(v·2^-E)²``: an exact rescaling
    but for entries below ``2^-537`` times `top` (float64), whose squares vanish."""
    e_top = math.frexp(top)[1] if math.isfinite(top) and top > 0 else 0
    limit = (math.frexp(acc_max)[1] - 2) // 4
    return 0 if -limit <= e_top <= limit else e_top
