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


# ------------------------------------------------------------------ every finite magnitude

#: the magnitudes the magnitude tests draw, by dtype: from the subnormals (float32 1e-44,
#: float64 1e-320) up to 1/16 of the largest finite value (outputs such as a low-rank
#: approximation may exceed max|x| a little)
MAGNITUDES = {np.float32: (1e-44, 2e37), np.float64: (1e-320, 1e307)}
#: parameters in the units of x (scaled with it)
UNIT_PARAMS = ("radius", "lower", "upper", "codebook", "t")


def magnitudes(dtype: Any) -> st.SearchStrategy[float]:
    """Magnitudes log-uniform over :data:`MAGNITUDES` (10^p, p real), and its two ends and
    1e±300 / 1e±38 exactly; float32-representable for float32."""
    lo, hi = MAGNITUDES[dtype]
    ends = [lo, hi, 1e-300, 1e300] if dtype == np.float64 else [lo, hi, 1e-38, 1e38, 1e-40]
    m = st.one_of(st.sampled_from(ends), st.floats(np.log10(lo), np.log10(hi)).map(
        lambda p: 10.0**p))
    return m.map(lambda v: float(np.asarray(v, dtype=dtype)))


def _leaves(x: Any) -> list:
    return list(x.values()) if isinstance(x, dict) else [x]


def _unit_max(case: Case) -> float:
    """The largest finite magnitude of x and the parameters in its units."""
    vals = [np.abs(np.asarray(v, dtype=np.float64)).reshape(-1) for v in _leaves(case.x)]
    vals += [np.abs(np.asarray(case.params[k], dtype=np.float64)).reshape(-1)
             for k in UNIT_PARAMS if k in case.params]
    v = np.concatenate(vals)
    v = v[np.isfinite(v)]
    return float(v.max(initial=0.0))


def _to(v: Any, big: float, m: float) -> Any:
    """`v` scaled by m/big, as (v/big)·m so that the factor itself cannot overflow."""
    if isinstance(v, tuple):
        return tuple(_to(c, big, m) for c in v)
    return (v / big) * m if big > 0 else v * m


def _scale_params(params: dict, big: float, m: float) -> dict:
    return {k: _to(v, big, m) if k in UNIT_PARAMS else v for k, v in params.items()}


def rescale(case: Case, m: float) -> Case:
    """`case` scaled so that its largest magnitude (x and the parameters in x's units) is `m`
    (scale-equivariant projections: the same instance at another magnitude)."""
    big = _unit_max(case)
    x = {k: _to(v, big, m) for k, v in case.x.items()} if isinstance(case.x, dict) else \
        _to(case.x, big, m)
    return Case(x, _scale_params(case.params, big, m))


@st.composite
def scaled_cases(draw: st.DrawFn, entry: Entry, dtype: Any, max_size: int = 12) -> Case:
    """A registry sample moved to a magnitude drawn by :func:`magnitudes`."""
    return rescale(draw(cases(entry, max_size=max_size)), draw(magnitudes(dtype)))


@st.composite
def raw_cases(draw: st.DrawFn, entry: Entry, dtype: Any, max_size: int = 8) -> Case:
    """A registry sample's shape and parameters with entries drawn by hypothesis directly:
    ``floats(allow_subnormal=True, width=32/64)`` within ±m, m from :func:`magnitudes`
    (mixtures of ±m, 0, subnormals and everything between); parameters in x's units scaled
    from the sample's to m."""
    base = draw(cases(entry, max_size=max_size))
    m = draw(magnitudes(dtype))
    width = 32 if dtype == np.float32 else 64
    el = st.floats(-m, m, allow_nan=False, allow_infinity=False, allow_subnormal=True,
                   width=width)

    def leaf(v: np.ndarray) -> np.ndarray:
        vals = draw(st.lists(el, min_size=v.size, max_size=v.size))
        return np.asarray(vals, dtype=np.float64).reshape(v.shape)

    x = {k: leaf(v) for k, v in base.x.items()} if isinstance(base.x, dict) else leaf(base.x)
    params = _scale_params(base.params, _unit_max(base), m)
    if entry.name == "allocate_bits":  # the budget must pay min(B) bits for every nonzero
        nnz = sum(int(np.count_nonzero(v)) for v in x.values())
        params["budget_bits"] = max(params["budget_bits"], min(params["candidates"]) * nnz)
    return Case(x, params)


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
