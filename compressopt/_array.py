"""Array-API helpers shared by projections and solvers.

Nothing here imports torch: torch tensors are handled through ``array_api_compat`` and the
tensor's own methods, so the same code runs on numpy arrays and on torch tensors on any device.
"""

from __future__ import annotations

import math
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
    "device",
    "from_numpy",
    "kth_largest",
    "numel",
    "scalar",
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


def from_numpy(a: np.ndarray, like: Array) -> Array:
    """The numpy array `a` as an array of `like`'s library, on `like`'s device."""
    xp = array_namespace(like)
    if is_numpy_array(like):
        return a
    return xp.asarray(a, device=device(like))
