"""The knapsack (weighted ℓ0) projection of Yang et al. 2020, eq. (8)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compressopt.errors import NonFiniteError, ShapeMismatchError
from compressopt.projections import (
    KnapsackPruning,
    StorageCost,
    project_cardinality,
    project_global_cardinality,
    project_knapsack,
    summarize,
)
from compressopt.verify import brute_knapsack, knapsack_ilp, mckp_lp


def _items(w, bits):
    p = np.concatenate([np.asarray(v, dtype=np.float64).ravel() ** 2 for v in w.values()])
    b = np.concatenate([np.full(np.asarray(v).size, bits[k]) for k, v in w.items()])
    return p, b


def test_small_instance_by_hand():
    w = {"a": np.array([3.0, -1.0, 0.5]), "b": np.array([2.0, 1.9])}
    r = project_knapsack(w, {"a": 8, "b": 2}, 12)
    # densities: b: 4/2, 3.61/2; a: 9/8, 1/8, .25/8 -> b, b, then a[0] (8 bits) fills 12 exactly
    assert r.w["a"].tolist() == [3.0, 0.0, 0.0] and r.w["b"].tolist() == [2.0, 1.9]
    assert float(r.objective) == pytest.approx(16.61)
    assert float(r.lp_bound) == pytest.approx(16.61)  # budget used exactly: LP is integral
    assert float(r.break_profit) == pytest.approx(1.0)  # a[1] = -1 is next
    assert {k: int(v) for k, v in r.kept.items()} == {"a": 1, "b": 2}


def test_fill_uses_the_remainder():
    # the break item needs 8 bits, 3 remain: the 1-bit tensor's next entries still fit
    w = {"big": np.array([10.0, 9.0]), "small": np.array([1.0, 0.9, 0.8, 0.7])}
    r = project_knapsack(w, {"big": 8, "small": 1}, 11)
    assert r.w["big"].tolist() == [10.0, 0.0]
    assert r.w["small"].tolist() == [1.0, 0.9, 0.8, 0.0]
    assert float(r.budget_used) == 11
    opt = brute_knapsack(*_items(w, {"big": 8, "small": 1}), 11).objective
    assert float(r.objective) == pytest.approx(opt)
    assert float(r.objective) <= opt <= float(r.lp_bound) + 1e-12


def test_fill_takes_up_to_ceil_max_over_min_bits_minus_one_entries():
    # room 7 after the 8-bit break item: exactly 7 = ceil(8 / 1) - 1 one-bit entries fit
    w = {"big": np.array([10.0, 9.0]), "small": np.linspace(1.0, 0.1, 10)}
    r = project_knapsack(w, {"big": 8, "small": 1}, 15)
    assert r.kept == {"big": 1, "small": 7} and float(r.budget_used) == 15
    assert np.count_nonzero(r.w["small"][:7]) == 7 and not r.w["small"][7:].any()


@pytest.mark.parametrize("seed", range(6))
def test_bounds_against_ortools_on_random_instances(seed):
    rng = np.random.default_rng(seed)
    w = {f"t{i}": rng.standard_normal(int(rng.integers(20, 80))) for i in range(4)}
    bits = {k: int(rng.integers(1, 9)) for k in w}
    p, b = _items(w, bits)
    budget = int(rng.integers(1, int(b.sum())))
    r = project_knapsack(w, bits, budget)
    ilp = knapsack_ilp(p, b, budget)
    assert ilp.optimal
    obj, lp, brk = float(r.objective), float(r.lp_bound), float(r.break_profit)
    assert obj <= ilp.objective + 1e-9  # never better than the optimum
    assert ilp.objective <= lp + ilp.rounding + 1e-9  # the LP bound is a bound
    assert obj >= lp - brk - 1e-9  # greedy >= OPT - max single profit (via the LP)
    assert float(r.budget_used) <= budget
    # the greedy's LP bound is the LP relaxation's optimum (Dantzig): compare with cvxpy,
    # writing the 0-1 knapsack as an MCKP with choices {drop, keep} per item
    lp_cvx = mckp_lp([[0.0, q] for q in p], [[0, c] for c in b], budget).objective
    assert lp == pytest.approx(lp_cvx, rel=1e-6)


def test_everything_fits_is_identity_and_zeros_are_never_kept():
    w = {"a": np.array([0.0, 1.0, -2.0]), "b": np.array([[0.5, 0.0]])}
    r = project_knapsack(w, {"a": 3, "b": 5}, 1000)
    assert r.w["a"].tolist() == [0.0, 1.0, -2.0] and r.w["b"].tolist() == [[0.5, 0.0]]
    assert r.masks["a"].tolist() == [False, True, True]  # a zero costs bits, saves nothing
    assert float(r.budget_used) == 2 * 3 + 5
    assert float(r.lp_bound) == float(r.objective) == pytest.approx(5.25)


def test_zero_budget_keeps_nothing():
    r = project_knapsack({"a": np.array([1.0, 2.0])}, {"a": 1}, 0)
    assert r.w["a"].tolist() == [0.0, 0.0] and float(r.budget_used) == 0
    assert float(r.lp_bound) == 0.0 and not np.signbit(r.w["a"]).any()


def test_partial_ties_keep_the_lowest_indices():
    w = {"a": np.array([2.0, -2.0, 2.0, 2.0, 1.0])}
    r = project_knapsack(w, {"a": 2}, 5)  # two of the four ties fit
    assert r.masks["a"].tolist() == [True, True, False, False, False]
    rt = project_knapsack({"a": torch.from_numpy(w["a"])}, {"a": 2}, 5)
    assert rt.masks["a"].tolist() == [True, True, False, False, False]


def _gaussian_tensors(seed, tensors, low, high, keep):
    """`tensors` float32 Gaussians of low..high entries, 1..8 bits, budget `keep` of all bits."""
    rng = np.random.default_rng(seed)
    w = {f"t{i}": rng.standard_normal(int(rng.integers(low, high))).astype(np.float32)
         for i in range(tensors)}
    bits = {k: int(b) for k, b in zip(w, rng.integers(1, 9, tensors), strict=True)}
    return w, bits, keep * sum(bits[k] * v.size for k, v in w.items())


def test_torch_matches_numpy_on_a_large_instance():
    w, bits, budget = _gaussian_tensors(7, 5, 1000, 5000, 0.2)
    rn = project_knapsack(w, bits, budget)
    rt = project_knapsack({k: torch.from_numpy(v) for k, v in w.items()}, bits, budget)
    for k in w:
        assert np.array_equal(rn.masks[k], rt.masks[k].numpy())
        assert rt.w[k].dtype == torch.float32
    assert float(rt.objective) == pytest.approx(float(rn.objective), rel=1e-12)
    assert float(rn.budget_used) <= budget


def test_input_errors():
    w = {"a": np.ones(3)}
    with pytest.raises(ShapeMismatchError, match="only in bits"):
        project_knapsack(w, {"a": 1, "b": 2}, 3)
    with pytest.raises(ValueError, match=r"bits\['a'\] must be in"):
        project_knapsack(w, {"a": 0}, 3)
    with pytest.raises(ValueError, match="budget_bits must be >= 0"):
        project_knapsack(w, {"a": 1}, -1)
    with pytest.raises(ShapeMismatchError, match="non-empty"):
        project_knapsack({}, {}, 3)


def test_compression_wrapper_cost_and_membership():
    w = {"a": np.array([3.0, 0.1, -2.0]), "b": np.array([0.2, 5.0])}
    c = KnapsackPruning({"a": 4, "b": 2}, 10)
    out = c.decompress(c.compress(w))
    cost = c.cost(c.compress(w))
    assert cost == {"a": StorageCost(3, 2, 4), "b": StorageCost(2, 1, 2)}
    assert summarize(cost).weight_bits == 10 and c.contains(out) and not c.contains(w)


# ------------------------------------------------------------------ the selection (issue 13)


def _reference_greedy(w, bits, budget):
    """The density greedy written out with a sort (what project_knapsack computed before
    issue 13): keys (f*f)/b in the input dtype, decreasing; ties by tensor, then index; the
    prefix that fits, then every later entry that still fits. Zero keys are never kept."""
    keys, tid, idx, wt = [], [], [], []
    for t, (name, x) in enumerate(w.items()):
        f = np.asarray(x).reshape(-1)
        k = (f * f) / f.dtype.type(bits[name])
        keep = k > 0
        keys.append(k[keep].astype(np.float64))
        idx.append(np.flatnonzero(keep))
        tid.append(np.full(idx[-1].size, t))
        wt.append(np.full(idx[-1].size, bits[name]))
    k, t, j, b = (np.concatenate(a) for a in (keys, tid, idx, wt))
    order = np.lexsort((j, t, -k))
    t, j, b = t[order], j[order], b[order]
    cum = np.cumsum(b)
    over = np.flatnonzero(cum > budget)
    take = np.ones(t.size, dtype=bool)
    if over.size:
        p = over[0]
        take[p:] = False
        room = budget - (cum[p - 1] if p else 0)
        for q in range(p + 1, t.size):  # the fill (a test: a loop over entries is fine)
            if b[q] <= room:
                take[q], room = True, room - b[q]
    masks = {n: np.zeros(np.asarray(x).size, dtype=bool) for n, x in w.items()}
    names = list(w)
    for tt, jj in zip(t[take], j[take], strict=True):
        masks[names[tt]][jj] = True
    return masks


def _instance(rng, dtype, tensors=4, size=400):
    """Tensors mixing ties, zeros, rounded values and plain Gaussians, in a few scales."""
    w = {}
    for i in range(int(rng.integers(1, tensors + 1))):
        n = int(rng.integers(0, size))
        kind = int(rng.integers(0, 4))
        x = [rng.standard_normal(n), rng.integers(-3, 4, n).astype(float),
             rng.standard_normal(n) * (rng.random(n) < 0.3),
             np.round(rng.standard_normal(n), 1)][kind]
        w[f"t{i}"] = (x * 10.0 ** int(rng.integers(-3, 3))).astype(dtype)
    bits = {k: int(rng.integers(1, 9)) for k in w}
    total = sum(bits[k] * int(np.count_nonzero(v)) for k, v in w.items())
    budget = float(rng.integers(0, total + 2)) + (0.5 if rng.random() < 0.2 else 0.0)
    return w, bits, budget


def _check_against_reference(w, bits, budget, r):
    ref = _reference_greedy(w, bits, budget)
    for k, x in w.items():
        m = np.asarray(r.masks[k]).reshape(-1)
        assert np.array_equal(m, ref[k]), k
        assert r.kept[k] == int(m.sum())
        assert np.array_equal(np.asarray(r.w[k]).reshape(-1), np.where(m, x.reshape(-1), 0))
    exact = sum(float(np.sum(x.reshape(-1)[ref[k]].astype(np.float64) ** 2))
                for k, x in w.items())
    assert float(r.objective) == pytest.approx(exact, rel=1e-12, abs=1e-300)
    assert r.budget_used == sum(bits[k] * int(ref[k].sum()) for k in w) <= budget


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       torch_=st.booleans())
def test_selection_is_the_sort_based_greedy(seed, dtype, torch_):
    w, bits, budget = _instance(np.random.default_rng(seed), dtype)
    if not w or not any(v.size for v in w.values()):
        return
    r = project_knapsack({k: torch.from_numpy(v) for k, v in w.items()} if torch_ else w,
                         bits, budget)
    if torch_:
        assert all(r.w[k].dtype == torch.from_numpy(w[k]).dtype for k in w)
        r = r._replace(masks={k: m.numpy() for k, m in r.masks.items()},
                       w={k: v.numpy() for k, v in r.w.items()})
    _check_against_reference(w, bits, budget, r)


@pytest.fixture
def tiny_rounds(monkeypatch):
    """Samples and final sorts so small that every path of the selection runs on small
    inputs: several full passes (brackets that miss), candidate rounds, the fill reaching
    below the bracket."""
    from compressopt.projections import _selection

    monkeypatch.setattr(_selection, "SAMPLE", (8, 8))
    monkeypatch.setattr(_selection, "FINISH", 16)
    monkeypatch.setattr(_selection, "FINISH_PACKED", 16)
    monkeypatch.setattr(_selection, "FILL_CHUNK", 1)
    monkeypatch.setattr(_selection, "BLOCK", 64)


@pytest.mark.parametrize("seed", range(40))
def test_selection_rounds_and_fill_match_the_reference(seed, tiny_rounds):
    rng = np.random.default_rng(seed)
    w, bits, budget = _instance(rng, [np.float32, np.float64][seed % 2], tensors=5, size=300)
    if seed % 3 == 0:  # one heavy tensor: its break leaves room for many light entries
        bits = {k: 16 if i == 0 else 1 for i, k in enumerate(bits)}
    _check_against_reference(w, bits, budget, project_knapsack(w, bits, budget))


def test_selection_on_a_large_instance_matches_the_reference():
    w, bits, budget = _gaussian_tensors(3, 6, 20_000, 60_000, 0.3)
    _check_against_reference(w, bits, budget, project_knapsack(w, bits, budget))


@pytest.mark.parametrize("scale", [2.0**-90, 2.0**-120, 2.0**100])
def test_extreme_magnitudes_keep_the_order_of_the_densities(scale):
    # issue 14: float32 values below 1e-19 squared to 0 or subnormals (kept = 1 with an
    # empty mask); above 1e19 the squares overflowed (NonFiniteError). Scaling by a power of
    # two keeps the densities' order: the same masks as for the unscaled weights.
    rng = np.random.default_rng(5)
    w = {"a": rng.standard_normal(50).astype(np.float32),
         "b": rng.standard_normal(30).astype(np.float32)}
    bits = {"a": 3, "b": 5}
    base = project_knapsack(w, bits, 90)
    r = project_knapsack({k: v * np.float32(scale) for k, v in w.items()}, bits, 90)
    for k in w:
        assert np.array_equal(r.masks[k], base.masks[k]) and r.kept[k] == base.kept[k]
        assert r.kept[k] == int(np.count_nonzero(r.w[k]))
    assert float(r.objective) == pytest.approx(float(base.objective) * scale**2, rel=1e-12)


def test_tiny_float32_reported_counts_match_the_masks():
    # the catalogue's case: 5 values near 1e-21, budget 1 bit: one entry kept, and it is in
    # the mask (was kept = 1 with an empty mask)
    x = np.array([-3.841182e-21, -2.1392044e-21, 1.8630535e-21, -6.7504235e-21, 1.1591087e-21],
                 dtype=np.float32)
    r = project_knapsack({"a": x, "b": x[:3].copy()}, {"a": 1, "b": 1}, 1)
    assert r.kept == {"a": 1, "b": 0} and r.masks["a"].tolist() == [0, 0, 0, 1, 0]
    # subnormal magnitudes: every nonzero fits -> the identity; else the largest first
    s = (np.array([3.0, 1.0, 2.0, 0.0]) * 1e-42).astype(np.float32)
    assert np.array_equal(project_knapsack({"s": s}, {"s": 2}, 6).w["s"], s)
    r = project_knapsack({"s": s}, {"s": 2}, 4)
    assert r.masks["s"].tolist() == [True, False, True, False] and r.kept["s"] == 2


def test_non_finite_weights_are_refused():
    for bad in (np.nan, np.inf):
        x = np.array([1.0, bad, 2.0], dtype=np.float32)
        for budget in (2, 100):  # through the selection and through the identity
            with pytest.raises(NonFiniteError, match="'a'"):
                project_knapsack({"a": x, "b": np.ones(3, np.float32)}, {"a": 1, "b": 1},
                                 budget)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       scale=st.integers(-120, 120), ratio=st.floats(0.25, 4.0))
def test_magnitude_bounds_grid_is_the_bisection(seed, dtype, scale, ratio):
    # the knapsack's per-tensor magnitude bounds a_i(p) (the smallest |w| whose key
    # (w·2^e)²/b_i reaches p): numpy reads them off a 9-ulp grid, other libraries bisect
    from compressopt.projections.knapsack import _DensityKeys

    rng = np.random.default_rng(seed)
    top = float(np.ldexp(1.0, scale if dtype == np.float64 else scale // 4))
    fl = [(rng.standard_normal(20) * top).astype(dtype) for _ in range(4)]
    keys = _DensityKeys(fl, [int(b) for b in rng.integers(1, 33, 4)], top, 1)
    k = keys._key(np.abs(fl[1]), keys.bl[1])
    p = np.asarray(k[np.argmax(k)] * ratio, dtype=dtype)
    if not np.isfinite(p) or p <= 0:
        return
    fast = keys.magnitudes(p)
    keys.numpy = False  # the generic path
    slow = keys.magnitudes(p)
    assert np.array_equal(fast, slow)
    # centred on the exact bounds, the grid holds them: it must find them, not give up
    it = np.int32 if dtype == np.float32 else np.int64
    if np.all(np.isfinite(slow)) and np.all(slow.view(it) > 4):
        assert np.array_equal(keys._grid(slow, p), slow)
    reach = keys._key(fast, keys.bvec) >= p
    below = keys._key(np.nextafter(fast, 0 * fast), keys.bvec) >= p
    assert reach.all() and not below.any()


def test_order_desc_is_a_stable_sort_of_the_negated_keys():
    from compressopt.projections._selection import _order_desc

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        k = np.abs(np.round(rng.standard_normal(5000), 1)).astype(dtype)  # many ties, zeros
        k[:3] = [np.inf, np.finfo(dtype).tiny, np.finfo(dtype).max]
        expect = np.argsort(-k, kind="stable")
        assert np.array_equal(_order_desc(k, np), expect)
        kt = torch.from_numpy(k)
        assert np.array_equal(_order_desc(kt, torch).numpy(), expect)


def _reference_top_k(w, k):
    """The k largest magnitudes over the concatenation, ties by position (a stable sort)."""
    flat = np.concatenate([np.asarray(v).reshape(-1) for v in w.values()])
    keep = np.zeros(flat.size, dtype=bool)
    keep[np.argsort(-np.abs(flat), kind="stable")[:k]] = True
    out, start = {}, 0
    for name, v in w.items():
        out[name] = np.where(keep[start : start + v.size], np.asarray(v).reshape(-1), 0)
        start += v.size
    return out


@pytest.mark.parametrize("rounds", ["default", "tiny"])
@pytest.mark.parametrize("seed", range(12))
def test_global_cardinality_by_the_selection(seed, rounds, request):
    # issue 13.1: the global (and per-tensor) l0 projection share the knapsack's selection:
    # every entry weighs 1, the capacity is k; the result is the exact top-k with ties by
    # position in the concatenation
    if rounds == "tiny":
        request.getfixturevalue("tiny_rounds")
    rng = np.random.default_rng(seed)
    w, _, _ = _instance(rng, [np.float32, np.float64][seed % 2], tensors=4, size=500)
    total = sum(v.size for v in w.values())
    k = int(rng.integers(0, total + 1))
    ref = _reference_top_k(w, k)
    out = project_global_cardinality(w, k)
    for name in w:
        assert np.array_equal(out[name].reshape(-1), ref[name]) and out[name].dtype == w[name].dtype
    if seed % 4 == 0:
        out_t = project_global_cardinality({n: torch.from_numpy(v) for n, v in w.items()}, k)
        assert all(np.array_equal(out_t[n].numpy().reshape(-1), ref[n]) for n in w)
    name = next(iter(w))
    kk = min(k, w[name].size)
    assert np.array_equal(project_cardinality(w[name], kk).reshape(-1),
                          _reference_top_k({name: w[name]}, kk)[name])
