"""The batched error table of allocate_bits (SweepBatch) against the per-tensor sweeps: the
same codebooks and errors bit for bit, on every kind of tensor a network holds."""

import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compressopt.projections import allocate_bits, kmeans1d_sweep
from compressopt.projections._kmeans_batch import SweepBatch
from compressopt.projections.quantization import _Sweep

KS = [2, 4, 8, 16, 32, 64, 128, 256]


def _network(seed: int) -> dict[str, np.ndarray]:
    """Tensors of many sizes, sparsities, magnitudes and dtypes, with the edge cases: few
    values (the DP's bins are the points), few distinct values, one value, all zeros."""
    rng = np.random.default_rng(zlib.crc32(f"batch-{seed}".encode()))
    w = {}
    for i in range(12):
        n = int(np.exp(rng.uniform(np.log(20), np.log(20_000))))
        x = rng.standard_t(3, n) * 10.0 ** rng.integers(-30, 30)
        x = np.where(rng.random(n) < rng.uniform(0.1, 0.9), x, 0)
        w[f"t{i}"] = x.astype(np.float32 if i % 3 else np.float64)
    w["distinct"] = rng.choice([-2.0, 0.5, 3.0], 5000)
    w["one"] = np.full(300, 7.0)
    w["zeros"] = np.zeros(100)
    w["tiny"] = rng.standard_normal(9) * 1e-300
    w["huge"] = rng.standard_normal(4000) * 1e300
    w["ties"] = np.round(rng.standard_normal(6000), 1)
    w["half"] = rng.standard_normal(3000).astype(np.float16)  # books in float16
    return w


def _sweeps(w):
    return [_Sweep(x, sparse=True, method="fast", iters=30, zero_level=False)
            for x in w.values()]


def _assert_same(a, b, ks):
    for sa, sb in zip(a, b, strict=True):
        for k in ks:
            assert sb.books[k].dtype == sa.books[k].dtype
            np.testing.assert_array_equal(sb.books[k], sa.books[k])
            assert sb.errs[k] == sa.errs[k], (k, sb.errs[k], sa.errs[k])


@pytest.mark.parametrize("seed", range(4))
def test_batch_is_the_per_tensor_sweep_bit_for_bit(seed):
    w = _network(seed)
    one, batch = _sweeps(w), _sweeps(w)
    for sw in one:
        sw.compute(KS)
    b = SweepBatch(batch)
    b.compute([KS] * len(batch))
    _assert_same(one, batch, KS)
    assert len(b.row) >= 14  # the batched path ran (all but the empty tensors)


def test_batch_in_rounds_and_on_torch_cpu():
    """Sizes asked for in several calls (allocate_bits' rounds), on torch CPU tensors (worked
    on as numpy views), give the per-tensor results too."""
    w = {n: torch.from_numpy(x.copy()) for n, x in _network(7).items()}
    one, batch = _sweeps(w), _sweeps(w)
    for sw in one:
        sw.compute(KS)
    b = SweepBatch(batch)
    b.compute([[2, 8]] * len(batch))
    b.compute([[4, 8, 32]] * len(batch))
    b.compute([KS] * len(batch))
    _assert_same(one, batch, KS)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 6))
def test_batch_matches_on_random_tensors(seed, tensors):
    rng = np.random.default_rng(seed)
    w = {f"t{i}": rng.standard_normal(int(rng.integers(1, 3000))) * rng.uniform(1e-3, 1e3)
         for i in range(tensors)}
    ks = sorted({int(k) for k in rng.choice(KS, 3)})
    one, batch = _sweeps(w), _sweeps(w)
    for sw in one:
        sw.compute(ks)
    SweepBatch(batch).compute([ks] * len(batch))
    _assert_same(one, batch, ks)


def test_allocate_bits_table_is_the_sweeps_errors():
    """allocate_bits (batched) reports kmeans1d_sweep's (per tensor) errors, exactly."""
    w = {n: x for n, x in _network(3).items() if x.dtype == np.float64 and n != "huge"
         and n != "tiny"}
    nnz = sum(int(np.count_nonzero(x)) for x in w.values())
    r = allocate_bits(w, 3.5 * nnz, table="full")
    for n, x in w.items():
        sse = kmeans1d_sweep(x, KS, sparse=True).sse
        np.testing.assert_array_equal(r.errors[n], sse)


def _full_dp(big_n, m1, m2, band, k):
    """The banded DP over every bin of every stage, one scalar at a time (the recursion of
    quantization._dp_codebooks with the same floating-point operations)."""
    t_rows, nb1 = big_n.shape
    hops = np.zeros((k, t_rows, nb1), dtype=np.int64)
    for t in range(t_rows):
        d = [0.0] + [np.inf] * (nb1 - 1)
        for j in range(k):
            nxt = []
            for b in range(nb1):
                best, arg = np.inf, 0
                for w in range(min(band, b) + 1):
                    dn = big_n[t, b] - big_n[t, b - w]
                    d1 = m1[t, b] - m1[t, b - w]
                    c = max(m2[t, b] - m2[t, b - w] - d1 * d1 / dn, 0.0) if dn > 0 else 0.0
                    if d[b - w] + c < best:
                        best, arg = d[b - w] + c, w
                nxt.append(best)
                hops[j, t, b] = arg
            d = nxt
    return hops


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(1, 5), st.integers(1, 4))
def test_dp_rows_window_is_the_full_recursion(seed, k, band, slack):
    """_dp_rows computes each stage only inside its window (bins a last bin can be reached
    from, up to the last one, and bins j clusters can cover): there, every span is the full
    recursion's, and every row's backtrack from its last bin stays inside the windows (so it
    reads no span the window left out). With ``nb = k·band`` (slack 1) the only optimal path
    spans `band` bins in every cluster, so the window's edges are on it."""
    from compressopt.projections._kmeans_batch import _dp_rows

    rng = np.random.default_rng(seed)
    nb = max(1, k * band - int(rng.integers(0, slack)))
    cnt = rng.integers(0, 4, (3, nb)).astype(np.float64)
    mean = np.sort(rng.standard_normal((3, nb)), axis=1)
    big_n = np.concatenate([np.zeros((3, 1)), np.cumsum(cnt, axis=1)], axis=1)
    m1 = np.concatenate([np.zeros((3, 1)), np.cumsum(cnt * mean, axis=1)], axis=1)
    m2 = np.concatenate([np.zeros((3, 1)), np.cumsum(cnt * mean * mean, axis=1)], axis=1)
    r = np.maximum(nb - rng.integers(0, 3, 3), 0)  # the rows' last bins
    lo, hi = int(np.min(r)), int(np.max(r))
    hops = np.full((k, 3, nb + 1), -1, dtype=np.int8)
    _dp_rows(big_n, m1, m2, band, r, hops)
    ref = _full_dp(big_n, m1, m2, band, k)
    windows = [range(max(lo - (k - j) * band, 0), min(j * band, hi) + 1)
               for j in range(k + 1)]
    for j in range(1, k + 1):
        z = slice(windows[j].start, windows[j].stop)
        np.testing.assert_array_equal(hops[j - 1][:, z], ref[j - 1][:, z])
    for t in range(3):  # the full recursion's path of every row, inside every window
        p = int(r[t])
        for j in range(k, 0, -1):
            assert p in windows[j], (t, j, p, windows[j])
            p -= int(ref[j - 1][t, p])
        assert p == 0
