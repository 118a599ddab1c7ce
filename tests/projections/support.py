"""Helpers shared by the projection tests: backends, dtypes, comparisons, permutations."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from compressopt.verify.registry import Case, Entry
from compressopt.verify.report import TOL

DTYPES = (np.float32, np.float64)
BACKENDS = ("numpy", "torch")
TORCH = {np.float32: torch.float32, np.float64: torch.float64}


def convert(x: Any, dtype: Any, backend: str) -> Any:
    """A float64 numpy sample (array or dict) in `dtype` on `backend`."""
    if isinstance(x, dict):
        return {k: convert(v, dtype, backend) for k, v in x.items()}
    a = np.asarray(x, dtype=dtype)
    return torch.from_numpy(a.copy()) if backend == "torch" else a


def host(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: host(v) for k, v in x.items()}
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def copy(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: copy(v) for k, v in x.items()}
    return x.clone() if isinstance(x, torch.Tensor) else np.array(x, copy=True)


def assert_close(a: Any, b: Any, dtype: Any, scale: float = 1.0) -> None:
    """Leafwise allclose with the dtype's tolerance (relative to the data's magnitude)."""
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            assert_close(a[k], b[k], dtype, scale)
        return
    a, b = host(a).astype(np.float64), host(b).astype(np.float64)
    assert a.shape == b.shape
    t = TOL[np.dtype(dtype)]
    mag = max(1.0, float(np.abs(b).max(initial=0.0)))
    np.testing.assert_allclose(a, b, rtol=t.rtol * scale,
                               atol=t.atol * scale + t.rtol * scale * mag)


def assert_same_kind(z: Any, x: Any) -> None:
    """Same library, dtype, device and shape (leafwise)."""
    if isinstance(x, dict):
        assert set(z) == set(x)
        for k in x:
            assert_same_kind(z[k], x[k])
        return
    assert type(z) is type(x)
    assert z.dtype == x.dtype
    assert tuple(z.shape) == tuple(x.shape)
    if isinstance(x, torch.Tensor):
        assert z.device == x.device


def assert_equal(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        for k in a:
            assert_equal(a[k], b[k])
        return
    np.testing.assert_array_equal(host(a), host(b))


@st.composite
def cases(draw: st.DrawFn, entry: Entry, feasible: bool = False, max_size: int = 24) -> Case:
    """A registry sample from a hypothesis-drawn seed and size."""
    seed = draw(st.integers(0, 2**32 - 1))
    size = draw(st.integers(1, max_size))
    make = entry.feasible_sample if feasible else entry.sample
    return make(np.random.default_rng(seed), size)


def permute(x: Any, kind: str, rng: np.random.Generator) -> tuple[Any, Any]:
    """(x permuted, a function applying the same permutation to an output like x)."""
    if isinstance(x, dict):
        fs = {k: permute(v, kind, rng) for k, v in x.items()}
        return {k: f[0] for k, f in fs.items()}, lambda z: {k: fs[k][1](z[k]) for k in z}
    shape = x.shape
    if kind == "flat":
        p = rng.permutation(int(np.prod(shape)))

        def f(a):
            return host(a).reshape(-1)[p].reshape(shape)
    elif kind == "rows":
        p = rng.permutation(shape[0])

        def f(a):
            return host(a)[p]
    else:  # rows_cols
        p, q = rng.permutation(shape[0]), rng.permutation(shape[1])

        def f(a):
            return host(a)[p][:, q]
    return f(x), f
