"""Degenerate inputs for every projection of the registry: NaN/Inf, integers, zeros, ties, a
single element, empty tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compressopt.errors import NonFiniteError, UnsupportedDTypeError
from compressopt.verify.registry import REGISTRY
from compressopt.verify.report import tol_for

from .support import BACKENDS, convert, host

ENTRIES = list(REGISTRY.values())
by_entry = pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])


def _sample(entry, n=6, seed=3):
    return entry.sample(np.random.default_rng(seed), n)


def _replace_first(x, value):
    if isinstance(x, dict):
        k = next(iter(x))
        return {**x, k: _replace_first(x[k], value)}
    y = np.array(x, dtype=np.float64, copy=True)
    y.reshape(-1)[0] = value
    return y


@by_entry
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_input_raises(entry, bad, backend):
    case = _sample(entry)
    x = convert(_replace_first(case.x, bad), np.float64, backend)
    with pytest.raises(NonFiniteError, match="NaN or Inf"):
        entry.project(x, **case.params)


@by_entry
@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_input_raises(entry, backend):
    case = _sample(entry)

    def ints(x):
        if isinstance(x, dict):
            return {k: ints(v) for k, v in x.items()}
        a = np.rint(np.asarray(x) * 3).astype(np.int64)
        return torch.from_numpy(a) if backend == "torch" else a

    with pytest.raises(UnsupportedDTypeError, match="real floating"):
        entry.project(ints(case.x), **case.params)


def _zeros(x):
    if isinstance(x, dict):
        return {k: _zeros(v) for k, v in x.items()}
    return np.zeros_like(np.asarray(x, dtype=np.float64))


# sets that do not contain 0: the projection of 0 is some other feasible point
NO_ZERO = {"simplex"}


@by_entry
def test_zeros(entry):
    case = _sample(entry)
    x = _zeros(case.x)
    z = entry.project(x, **case.params)
    if entry.feasible is not None:
        assert entry.feasible(host(z), case, tol_for(np.float64))
    if entry.name not in NO_ZERO:
        flat = np.concatenate([v.ravel() for v in z.values()]) if isinstance(z, dict) \
            else np.asarray(z).ravel()
        assert np.all(flat == 0)
    assert entry.verify(x, **case.params).ok


@by_entry
def test_single_element(entry):
    case = entry.sample(np.random.default_rng(0), 1)
    x, params = case.x, dict(case.params)
    if not entry.collection:  # one entry, in the sample's number of dimensions
        a = np.asarray(x)
        x = a.reshape(-1)[:1].reshape((1,) * a.ndim)
        for key in ("k", "r"):
            if key in params and not entry.name.startswith("kmeans"):
                params[key] = min(params[key], 1)
    r = entry.verify(x, **params)
    assert r.ok or entry.kind == "heuristic", r
    assert r.feasible


def _empty(x):
    if isinstance(x, dict):
        return {k: np.zeros((0, *np.asarray(v).shape[1:])) for k, v in x.items()}
    return np.zeros((0, *np.asarray(x).shape[1:]))


# what an empty tensor does: "ok" = returns an empty result; otherwise the error raised
EMPTY = {"simplex": ValueError}


@by_entry
def test_empty_tensor(entry):
    case = _sample(entry)
    x = _empty(case.x)
    params = dict(case.params)
    if "k" in params and not entry.name.startswith("kmeans"):
        params["k"] = 0  # a count of kept entries or groups
    if "budget_bits" in params:
        params["budget_bits"] = 0.0
    if "radius" in params:
        params["radius"] = 1.0
    if "r" in params:
        params["r"] = 0
    expect = EMPTY.get(entry.name, "ok")
    if expect == "ok":
        z = entry.project(x, **params)
        leaves = z.values() if isinstance(z, dict) else [z]
        assert all(np.asarray(host(v)).size == 0 for v in leaves)
    else:
        with pytest.raises(expect):
            entry.project(x, **params)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_keep_the_lower_index(backend):
    from compressopt.projections import (
        project_cardinality,
        project_channels,
        project_global_cardinality,
        project_knapsack,
        project_ternary,
    )

    x = convert(np.array([1.0, -1.0, 1.0, 0.1]), np.float64, backend)
    assert host(project_cardinality(x, 2)).tolist() == [1.0, -1.0, 0.0, 0.0]
    assert host(project_ternary(x).codes).tolist() == [1, -1, 1, 0]
    g = project_global_cardinality({"a": x, "b": convert(np.ones(2), np.float64, backend)}, 4)
    assert host(g["a"]).tolist() == [1.0, -1.0, 1.0, 0.0] and host(g["b"]).tolist() == [1, 0]
    m = convert(np.ones((3, 2)), np.float64, backend)
    assert host(project_channels(m, 2)).tolist() == [[1, 1], [1, 1], [0, 0]]
    # equal densities across tensors: the first tensor in the mapping wins
    r = project_knapsack({"a": convert(np.full(3, 2.0), np.float64, backend),
                          "b": convert(np.full(2, 2.0), np.float64, backend)},
                         {"a": 1, "b": 1}, 4)
    assert host(r.masks["a"]).tolist() == [True] * 3
    assert host(r.masks["b"]).tolist() == [True, False]
