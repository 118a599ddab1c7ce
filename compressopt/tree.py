"""Arithmetic on named parameter collections (``Params``: a mapping name -> array).

The solvers see the compressible tensors of a model as a mapping from names to arrays, so
per-tensor and global (cross-layer) constraints are equally natural. These helpers never modify
their inputs: each returns a new ``dict``. Reductions return Python floats (one device
synchronization each) and are meant for diagnostics, not for hot loops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from compressopt._array import Array, array_namespace, check_finite
from compressopt.errors import ShapeMismatchError

Params = Mapping[str, Array]

__all__ = [
    "Params",
    "tree_add",
    "tree_axpy",
    "tree_check",
    "tree_map",
    "tree_norm",
    "tree_numel",
    "tree_scale",
    "tree_sq_norm",
    "tree_sub",
    "tree_vdot",
    "tree_zeros_like",
]


def _check_keys(trees: tuple[Params, ...]) -> None:
    keys = set(trees[0])
    for t in trees[1:]:
        if set(t) != keys:
            raise ShapeMismatchError(
                f"parameter names differ: {sorted(keys ^ set(t))} are not in both collections"
            )


def tree_map(f: Callable[..., Array], *trees: Params) -> dict[str, Array]:
    """``{name: f(t0[name], t1[name], ...)}`` over collections with the same names.

    Raises
    ------
    ShapeMismatchError
        The collections do not have the same names.
    """
    _check_keys(trees)
    return {k: f(*(t[k] for t in trees)) for k in trees[0]}


def tree_add(a: Params, b: Params) -> dict[str, Array]:
    """``a + b`` leaf by leaf."""
    return tree_map(lambda x, y: x + y, a, b)


def tree_sub(a: Params, b: Params) -> dict[str, Array]:
    """``a - b`` leaf by leaf."""
    return tree_map(lambda x, y: x - y, a, b)


def tree_scale(a: Params, s: float) -> dict[str, Array]:
    """``s * a`` leaf by leaf."""
    return tree_map(lambda x: s * x, a)


def tree_axpy(alpha: float, x: Params, y: Params) -> dict[str, Array]:
    """``alpha * x + y`` leaf by leaf."""
    return tree_map(lambda u, v: alpha * u + v, x, y)


def tree_zeros_like(a: Params) -> dict[str, Array]:
    """Zeros with the shapes, dtypes and devices of `a`."""
    return tree_map(lambda x: array_namespace(x).zeros_like(x), a)


def tree_vdot(a: Params, b: Params) -> float:
    """``sum_name <a[name], b[name]>`` as a Python float."""
    _check_keys((a, b))
    total = 0.0
    for k in a:
        xp = array_namespace(a[k], b[k])
        total += float(xp.sum(a[k] * b[k]))
    return total


def tree_sq_norm(a: Params) -> float:
    """``sum_name ||a[name]||_2^2`` as a Python float."""
    return tree_vdot(a, a)


def tree_norm(a: Params) -> float:
    """Euclidean norm of the concatenation of all leaves."""
    return math.sqrt(tree_sq_norm(a))


def tree_numel(a: Params) -> int:
    """Total number of entries over all leaves."""
    return sum(math.prod(x.shape) for x in a.values())


def tree_check(w: Any, name: str = "w") -> dict[str, Array]:
    """Validate a parameter collection and return it as a new ``dict`` (leaves not copied).

    Raises
    ------
    TypeError
        `w` is not a mapping of names to arrays (a name not a str, a leaf not an array: a
        list, a Python number, None).
    UnsupportedDTypeError, NonFiniteError
        A leaf is not real floating, or holds NaN/Inf.
    """
    if not isinstance(w, Mapping):
        raise TypeError(f"{name} must be a mapping name -> array, got {type(w).__name__}")
    out = {}
    for k, x in w.items():
        if not isinstance(k, str):
            raise TypeError(f"{name}: parameter names must be str, got {k!r}")
        try:
            array_namespace(x)
        except TypeError as e:
            raise TypeError(f"{name}[{k!r}] must be an array (numpy, torch, ...), got "
                            f"{type(x).__name__}") from e
        check_finite(x, f"{name}[{k!r}]")
        out[k] = x
    return out
