"""k-means quantization: the fast device path against the exact DP (the <= 1% target)."""

import itertools
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compressopt.projections import (
    AdaptiveQuantization,
    assign_nearest,
    kmeans1d_exact,
    kmeans1d_fast,
    kmeans1d_sweep,
    quantize_zero_level,
)
from compressopt.verify import brute_kmeans_zero

from .support import BACKENDS, DTYPES, convert, host


def _sse(x, q):
    return float(np.sum((x - q.codebook[q.assignments]) ** 2))


def _data(kind, n, rng):
    if kind == "normal":
        return rng.standard_normal(n)
    if kind == "uniform":  # Kaiming-uniform init
        return rng.uniform(-1, 1, n)
    if kind == "t3":  # heavy tails, like trained weights
        return rng.standard_t(3, n)
    z = rng.standard_normal(20 * n)  # pruned: the nonzeros avoid a band around 0
    return z[np.abs(z) > np.quantile(np.abs(z), 0.95)]


@pytest.mark.parametrize("kind", ["normal", "uniform", "t3", "pruned"])
@pytest.mark.parametrize("n", [300, 6000])
def test_fast_is_within_one_percent_of_exact(kind, n):
    rng = np.random.default_rng(zlib.crc32(f"{kind}-{n}".encode()))  # hash() is salted
    x = _data(kind, n, rng)
    ks = [2, 4, 8, 16, 32, 64, 128, 256]
    fast = kmeans1d_sweep(x, ks).sse
    exact = kmeans1d_sweep(x, ks, method="exact").sse
    assert np.all(fast >= exact * (1 - 1e-9))  # a check of the reference
    assert np.all(fast <= exact * 1.01 + 1e-12), (fast / exact - 1).round(4)


def test_sweep_matches_single_calls_and_is_monotone():
    x = np.random.default_rng(0).standard_normal(2000)
    sw = kmeans1d_sweep(x, [2, 4, 16])
    for k, c, e in zip(sw.ks, sw.codebooks, sw.sse, strict=True):
        q = kmeans1d_fast(x, k)
        np.testing.assert_array_equal(q.codebook, c)
        assert _sse(x, q) == pytest.approx(e)
    assert np.all(np.diff(sw.sse) < 0)


def test_fast_is_exact_with_few_values_and_small_inputs():
    x = np.array([3.0, 1.0, 3.0, -2.0, 1.0, 1.0])
    q = kmeans1d_fast(x, 4)  # 3 distinct values, 4 entries: zero error, last value repeated
    assert q.codebook.tolist() == [-2.0, 1.0, 3.0, 3.0] and _sse(x, q) == 0.0
    y = np.random.default_rng(1).standard_normal(40)  # <= 8k points: the DP is over points
    assert _sse(y, kmeans1d_fast(y, 8)) == pytest.approx(_sse(y, kmeans1d_exact(y, 8)))


def test_sparse_mode_learns_on_the_nonzeros():
    x = np.array([0.0, 1.0, 1.2, 0.0, -4.0, 0.0])
    for f in (kmeans1d_fast, kmeans1d_exact):
        q = f(x, 2, sparse=True)
        assert q.codebook.tolist() == pytest.approx([0.0, -4.0, 1.1])
        assert q.assignments.tolist() == [0, 2, 2, 0, 1, 0]


def test_fast_runs_on_torch_without_leaving_the_device():
    x = torch.from_numpy(np.random.default_rng(3).standard_normal(5000).astype(np.float32))
    q = kmeans1d_fast(x, 16)
    assert isinstance(q.codebook, torch.Tensor) and q.codebook.dtype == torch.float32
    qn = kmeans1d_fast(x.numpy(), 16)
    np.testing.assert_allclose(q.codebook.numpy(), qn.codebook, rtol=1e-6)
    assert np.array_equal(q.assignments.numpy(), qn.assignments)


def test_lloyd_iterations_never_hurt():
    x = np.random.default_rng(4).standard_t(3, 20000)
    errs = [_sse(x, kmeans1d_fast(x, 32, iters=i)) for i in (0, 1, 5, 30)]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(errs))


def test_assign_nearest_ties_go_low_and_scheme_cost():
    assert assign_nearest(np.array([0.5, 1.5, 2.0]), np.array([0.0, 1.0, 2.0])).tolist() == [
        0, 1, 2]
    s = AdaptiveQuantization(4, method="fast")
    th = s.compress(np.arange(10.0))
    assert s.cost(th).bits == 2 and s.cost(th).overhead_bits == 128


def test_bad_arguments():
    with pytest.raises(ValueError, match="codebook size"):
        kmeans1d_fast(np.ones(3), 0)
    with pytest.raises(ValueError, match="method"):
        kmeans1d_sweep(np.ones(3), [2], method="magic")
    with pytest.raises(TypeError, match="iters"):
        kmeans1d_fast(np.ones(3), 2, iters=1.5)


@pytest.mark.parametrize("n", [500, 5000])
def test_sparse_mode_on_a_pruned_tensor_is_within_one_percent(n):
    """The zeros of a pruned tensor must not waste clusters (they weigh nothing)."""
    rng = np.random.default_rng(n)
    x = rng.uniform(-1, 1, n)
    x[np.abs(x) < np.quantile(np.abs(x), 0.34)] = 0.0  # a third pruned, in the middle
    ks = [2**j for j in range(1, 9)]
    fast = kmeans1d_sweep(x, ks, sparse=True).sse
    exact = kmeans1d_sweep(x, ks, sparse=True, method="exact").sse
    assert np.all(fast <= exact * 1.01 + 1e-12), (fast / exact - 1).round(4)


# -- k levels beside a fixed 0 (Yang et al. eq. 10) -----------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-3, 3, allow_nan=False, width=64), min_size=1, max_size=8),
    zeros=st.integers(0, 3), k=st.integers(1, 3), method=st.sampled_from(["fast", "exact"]),
)
def test_zero_level_error_is_bracketed(values, zeros, k, method):
    # what holds on every input: the enumerated optimum below, the codebook without the free
    # 0 (sparse mode, same method) above, and the levels achieve the reported error
    x = np.array(values + [0.0] * zeros)
    sw = kmeans1d_sweep(x, [k], zero_level=True, method=method)
    e = float(sw.sse[0])
    assert e >= brute_kmeans_zero(x, k).objective * (1 - 1e-9) - 1e-12
    assert e <= float(kmeans1d_sweep(x, [k], sparse=True, method=method).sse[0]) * (
        1 + 1e-9) + 1e-12
    q = quantize_zero_level(x, sw.codebooks[0])
    assert _sse(x, q) == pytest.approx(e, rel=1e-9, abs=1e-12)


def test_zero_level_gap_to_enumeration():
    # a heuristic (Lloyd with the 0 level fixed, four starts): on fixed random tiny instances
    # it finds the optimum in >= 97 % and stays within 10 % (measured: 98.3 %, 9.95 %); the
    # known miss of the docstring is reproduced
    gaps = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        x = np.concatenate([rng.uniform(-3, 3, rng.integers(1, 9)), np.zeros(rng.integers(0, 4))])
        if rng.random() < 0.5:
            x = np.round(x * 8) / 8
        k = int(rng.integers(1, 4))
        best = brute_kmeans_zero(x, k).objective
        for method in ("fast", "exact"):
            e = float(kmeans1d_sweep(x, [k], zero_level=True, method=method).sse[0])
            gaps.append((e - best) / best if best > 1e-12 else e)
    gaps = np.array(gaps)
    assert np.mean(gaps <= 1e-9) >= 0.97 and gaps.max() <= 0.10
    x = np.array([0.625, 0.875, 2.0])
    sw = kmeans1d_sweep(x, [1], zero_level=True, method="exact")
    assert float(sw.sse[0]) == pytest.approx(1.0729, abs=1e-4)
    assert brute_kmeans_zero(x, 1).objective == pytest.approx(1.0234375)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_quantize_zero_level_is_a_projection(dtype, backend):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(200) * (rng.random(200) < 0.3)
    sw = kmeans1d_sweep(convert(x, dtype, backend), [1, 2, 4], zero_level=True)
    for c, e in zip(sw.codebooks, host(sw.sse), strict=True):
        q = quantize_zero_level(convert(x, dtype, backend), c)
        cb, a = host(q.codebook), host(q.assignments)
        assert cb[0] == 0 and cb.dtype == dtype and a.shape == x.shape
        v = cb[a]
        # nearest level for every entry: no level of {0} ∪ c is closer
        levels = np.concatenate([[0.0], host(c)]).astype(np.float64)
        d = np.abs(x[:, None] - levels[None, :]).min(axis=1)
        np.testing.assert_allclose(np.abs(x - v), d, atol=1e-6)
        assert float(np.sum((x - v) ** 2)) == pytest.approx(float(e), rel=1e-5)
        # idempotent: V is a fixed point of its own quantization
        q2 = quantize_zero_level(convert(v, dtype, backend), c)
        np.testing.assert_array_equal(host(q2.codebook)[host(q2.assignments)], v)
        assert np.unique(v[v != 0]).size <= c.shape[0]


def test_take_gathers_like_indexing_on_every_library():
    from compressopt._array import take

    cb = np.array([0.0, -1.0, 2.5, 7.0])
    idx = np.array([3, 0, 0, 2, 1])
    np.testing.assert_array_equal(take(cb, idx), cb[idx])
    m = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(take(m, np.array([2, 0]), axis=1), m[:, [2, 0]])
    t = torch.from_numpy(cb)
    for dt in (torch.int64, torch.int32, torch.uint8, torch.int16):  # any integer codes
        got = take(t, torch.from_numpy(idx).to(dt))
        assert got.dtype == t.dtype
        np.testing.assert_array_equal(got.numpy(), cb[idx])


def test_decompress_on_torch_is_a_plain_gather():
    x = torch.randn(5000, dtype=torch.float32)
    q = AdaptiveQuantization(16, method="fast")
    th = q.compress(x)
    got = q.decompress(th)
    assert got.dtype == x.dtype and got.shape == x.shape
    assert torch.equal(got, th.codebook[th.assignments])
