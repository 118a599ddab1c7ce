"""Property tests for every projection of the registry, float32 and float64, numpy and torch.

Each test runs over ``compressopt.verify.registry.REGISTRY``: adding a projection to the
registry adds it to every test here.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compressopt.verify.registry import REGISTRY
from compressopt.verify.report import tol_for

from .support import (
    BACKENDS,
    DTYPES,
    assert_close,
    assert_equal,
    assert_same_kind,
    cases,
    convert,
    copy,
    host,
    permute,
    raw_cases,
    scaled_cases,
)

ENTRIES = list(REGISTRY.values())
by_entry = pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
by_dtype = pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
by_backend = pytest.mark.parametrize("backend", BACKENDS)
FEW = settings(max_examples=max(5, settings.default.max_examples // 2))


def _entries(flag: str) -> list:
    chosen = [e for e in ENTRIES if getattr(e, flag)]
    return pytest.mark.parametrize("entry", chosen, ids=[e.name for e in chosen])


@by_entry
@by_dtype
@by_backend
@given(data=st.data())
def test_feasible_same_kind_and_input_untouched(entry, dtype, backend, data):
    case = data.draw(cases(entry))
    x = convert(case.x, dtype, backend)
    before = copy(x)
    z = entry.project(x, **case.params)
    assert_same_kind(z, x)
    assert_equal(x, before)  # the input is not modified
    if entry.feasible is not None:
        assert entry.feasible(host(z), case, tol_for(dtype))


@_entries("idempotent")
@by_dtype
@by_backend
@given(data=st.data())
def test_idempotent(entry, dtype, backend, data):
    case = data.draw(cases(entry))
    z = entry.project(convert(case.x, dtype, backend), **case.params)
    assert_close(entry.project(z, **case.params), z, dtype, scale=10)


@_entries("feasible_sample")
@by_dtype
@by_backend
@given(data=st.data())
def test_feasible_point_is_fixed(entry, dtype, backend, data):
    case = data.draw(cases(entry, feasible=True))
    x = convert(case.x, dtype, backend)
    assert entry.feasible(host(x), case, tol_for(dtype))  # the sampler is right
    assert_close(entry.project(x, **case.params), x, dtype, scale=10)


@_entries("perm")
@by_dtype
@given(data=st.data())
def test_permutation_equivariant(entry, dtype, data):
    case = data.draw(cases(entry))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = convert(case.x, dtype, "numpy")
    xp_, apply = permute(x, entry.perm, rng)
    assert_close(entry.project(convert(xp_, dtype, "numpy"), **case.params),
                 apply(entry.project(x, **case.params)), dtype, scale=10)


@by_entry
@by_dtype
@given(data=st.data())
def test_numpy_and_torch_agree(entry, dtype, data):
    case = data.draw(cases(entry))
    zn = entry.project(convert(case.x, dtype, "numpy"), **case.params)
    zt = entry.project(convert(case.x, dtype, "torch"), **case.params)
    assert_close(zt, zn, dtype, scale=10)


@by_entry
@by_dtype
@by_backend
@FEW
@given(data=st.data())
def test_matches_exact_verifier(entry, dtype, backend, data):
    """Exact methods equal the exact solver; greedy ones are within their proven bound;
    heuristics are feasible and never better than the optimum (a check of the verifier)."""
    case = data.draw(cases(entry))
    report = entry.verify(convert(case.x, dtype, backend), **case.params)
    assert report.kind == entry.kind
    assert report.feasible, report
    assert report.gap >= -report.tol, report
    if entry.kind == "exact":
        assert report.bound == 0.0
    if entry.kind != "heuristic":
        assert report.gap <= report.bound + report.tol, report
    assert report.ok or entry.kind == "heuristic", report


# ------------------------------------------------------------------ every finite magnitude

#: the projections checked from the smallest subnormal to near the largest float
MAGNITUDE_ENTRIES = [e for e in ENTRIES if e.name in (
    "l1_ball", "simplex", "box", "kmeans_exact", "kmeans_fast", "binary", "ternary", "uniform",
    "uniform_alternating", "powers_of_two", "low_rank", "rank_selection", "cardinality",
    "global_cardinality", "soft_threshold", "hard_threshold", "channels", "global_channels",
    "knapsack", "allocate_bits", "sparse_quantized", "group_lasso")]
by_magnitude_entry = pytest.mark.parametrize("entry", MAGNITUDE_ENTRIES,
                                             ids=[e.name for e in MAGNITUDE_ENTRIES])
MAGNITUDE_RUN = settings(max_examples=max(4, settings.default.max_examples // 3))


def _check(entry, report):
    assert report.feasible, report
    assert report.gap >= -report.tol, report
    if entry.kind != "heuristic":
        assert report.gap <= report.bound + report.tol, report


@by_magnitude_entry
@by_dtype
@MAGNITUDE_RUN
@given(data=st.data())
def test_exact_at_every_magnitude(entry, dtype, data):
    """A registry sample scaled to a magnitude from 1e-320 (1e-44 in float32) to 1e307
    (2e37): exact methods equal the exact solver in the verifier's frame, greedy ones stay
    within their bound, heuristics are feasible; numpy or torch."""
    case = data.draw(scaled_cases(entry, dtype))
    backend = data.draw(st.sampled_from(BACKENDS))
    _check(entry, entry.verify(convert(case.x, dtype, backend), **case.params))


@by_magnitude_entry
@by_dtype
@MAGNITUDE_RUN
@given(data=st.data())
def test_exact_on_raw_floats(entry, dtype, data):
    """Entries drawn by ``floats(allow_subnormal=True, width=32/64)`` within ±m: mixtures of
    huge, tiny, subnormal and zero values in one tensor."""
    case = data.draw(raw_cases(entry, dtype))
    _check(entry, entry.verify(convert(case.x, dtype, "numpy"), **case.params))


#: the projections over several tensors (a dict sample), each compared in one common frame
TREE_ENTRIES = [e for e in MAGNITUDE_ENTRIES
                if isinstance(e.sample(np.random.default_rng(0), 4).x, dict)]


def _with_zero_tensor(x, params, scale):
    """The sample with its tensors multiplied by `scale` (a power of two: exact) and an
    all-zero tensor added (and, where the parameters name the tensors, its entry)."""
    first = next(iter(x))
    y = {k: np.ldexp(np.asarray(v, dtype=np.float64), scale) for k, v in x.items()}
    # (the float64 sample's entries, scaled exactly; `convert` rounds them to the dtype)
    y["zero"] = np.zeros_like(y[first])
    p = {k: ({**v, "zero": v[first]} if isinstance(v, dict) else v) for k, v in params.items()}
    return y, p


@pytest.mark.parametrize("entry", TREE_ENTRIES, ids=[e.name for e in TREE_ENTRIES])
@by_backend
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("dtype", "scale"), [
    (np.float64, -1000), (np.float64, 900), (np.float32, -110), (np.float32, 100)],
    ids=["f64-2^-1000", "f64-2^900", "f32-2^-110", "f32-2^100"])
def test_zero_tensor_beside_tiny_ones(entry, backend, seed, dtype, scale):
    """An all-zero tensor among tensors of magnitude 2^scale leaves the answer that of the
    unit-scale instance, scaled. (Its exponent once set the common frame: at 1e-300 every
    other tensor's squared error fell below the float range, so every width or rank looked
    free: allocate_bits chose 1 bit, select_ranks rank 0, project_sparse_quantized lost the
    sparsity.)"""
    case = entry.sample(np.random.default_rng(seed), 6)
    x1, p = _with_zero_tensor(case.x, case.params, 0)
    xs, _ = _with_zero_tensor(case.x, case.params, scale)
    want = host(entry.project(convert(x1, dtype, backend), **p))
    got = host(entry.project(convert(xs, dtype, backend), **p))
    assert set(got) == set(want)
    for k in want:  # the unit-scale answer, scaled exactly by the power of two
        np.testing.assert_array_equal(got[k], np.ldexp(want[k], scale), err_msg=k)
