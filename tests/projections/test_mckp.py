"""The multiple-choice knapsack greedy and the bit allocation of Yang et al. 2020, eq. (10)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compressopt.errors import InfeasibleBudgetError, NonFiniteError, ShapeMismatchError
from compressopt.projections import (
    MixedPrecision,
    StorageCost,
    allocate_bits,
    kmeans1d_exact,
    kmeans1d_sweep,
    mckp_best,
    mckp_greedy,
    mckp_pareto,
    mckp_solve,
    upper_hull,
)
from compressopt.verify import brute_mckp, mckp_ilp, mckp_lp


def test_upper_hull_drops_dominated_and_lp_dominated_items():
    # (1, 0) base; (2, 1) below the chord to (3, 5); (4, 5) dominated; (5, 6) on the hull
    assert upper_hull([1, 2, 3, 4, 5], [0.0, 1.0, 5.0, 5.0, 6.0]) == [0, 2, 4]
    assert upper_hull([2, 1, 1], [3.0, 1.0, 2.0]) == [2, 0]  # equal weights: the best profit
    assert upper_hull([0, 1, 2], [0.0, 1.0, 2.0]) == [0, 1, 2]  # collinear points are kept


def test_greedy_by_hand():
    r = mckp_greedy([[0.0, 5.0, 6.0], [0.0, 4.0]], [[0, 2, 4], [0, 2]], 3)
    # increments: g0 (2, +5) density 2.5, g1 (2, +4) 2.0, g0 (2, +1) 0.5
    assert r.choice == (1, 0) and r.profit == 5.0 and r.weight == 2
    assert r.lp_bound == pytest.approx(5.0 + 0.5 * 4.0)  # half of g1's increment
    assert not r.integral and r.fraction == (1, 1, 0.5) and r.lp_choice == (1, 0)
    full = mckp_greedy([[0.0, 5.0, 6.0], [0.0, 4.0]], [[0, 2, 4], [0, 2]], 6)
    assert full.choice == (2, 1) and full.integral and full.lp_bound == full.profit == 10.0


mckp_instances = st.integers(0, 2**32 - 1).map(np.random.default_rng).map(
    lambda rng: (
        [rng.normal(size=int(rng.integers(1, 5))) for _ in range(int(rng.integers(1, 5)))],
        rng,
    )
)


@settings(max_examples=40)
@given(inst=mckp_instances)
def test_greedy_against_enumeration_and_lp(inst):
    profits, rng = inst
    weights = [rng.integers(0, 6, size=p.size) for p in profits]
    lightest = sum(int(w.min()) for w in weights)
    cap = lightest + int(rng.integers(0, 10))
    r = mckp_greedy(profits, weights, cap)
    b = brute_mckp(profits, weights, cap)
    assert r.weight <= cap
    assert r.profit == pytest.approx(sum(p[c] for p, c in zip(profits, r.choice, strict=True)))
    assert r.profit <= b.objective + 1e-12 <= r.lp_bound + 2e-12
    if r.integral:
        assert r.profit == pytest.approx(b.objective)  # exact when the LP is integral
    lp = mckp_lp(profits, weights, cap).objective
    assert r.lp_bound == pytest.approx(lp, rel=1e-6, abs=1e-6)  # Zemel: greedy = LP optimum


@settings(max_examples=40)
@given(inst=mckp_instances)
def test_pareto_dp_is_exact_against_enumeration(inst):
    profits, rng = inst
    weights = [rng.integers(0, 6, size=p.size) for p in profits]
    cap = sum(int(w.min()) for w in weights) + int(rng.integers(0, 10))
    choice = mckp_pareto(profits, weights, cap)
    b = brute_mckp(profits, weights, cap)
    assert sum(w[c] for w, c in zip(weights, choice, strict=True)) <= cap
    assert sum(p[c] for p, c in zip(profits, choice, strict=True)) == pytest.approx(b.objective)


def test_pareto_dp_gives_up_past_max_states_and_when_nothing_fits():
    profits = [np.arange(8.0) for _ in range(6)]
    weights = [np.arange(8) * (7 + g) for g in range(6)]
    assert mckp_pareto(profits, weights, 200, max_states=5) is None
    assert mckp_pareto(profits, weights, 200) is not None
    assert mckp_pareto([[1.0]], [[3]], 2) is None
    # mckp_best: the LP optimum is fractional here, so the DP decides (never below the greedy)
    res, choice, optimal = mckp_best(profits, weights, 200)
    assert optimal and not res.integral
    g = mckp_greedy(profits, weights, 200)
    assert sum(p[c] for p, c in zip(profits, choice, strict=True)) >= g.profit
    with pytest.raises(ShapeMismatchError):
        mckp_pareto([[1.0, 2.0]], [[1]], 3)
    with pytest.raises(NonFiniteError):
        mckp_pareto([[np.inf]], [[1]], 3)
    with pytest.raises(ValueError, match="negative"):
        mckp_pareto([[1.0]], [[-1]], 3)


def test_pareto_dp_finds_the_optimum_the_greedy_misses():
    # k-means-like errors c·4^-j for 1..4 bits, nonzeros (1, 2, 4), 2 bits per nonzero: the
    # greedy ends at (4, 1, 2) bits; the optimum gives every group 2 bits (all three move)
    profits = [-c * 4.0 ** -np.arange(1, 5) for c in (4.0, 2.0, 3.0)]
    weights = [np.arange(1, 5) * n for n in (1, 2, 4)]
    g = mckp_greedy(profits, weights, 14)
    assert g.choice == (3, 0, 1) and g.profit == pytest.approx(-0.703125)
    assert mckp_pareto(profits, weights, 14) == (1, 1, 1)
    assert brute_mckp(profits, weights, 14).objective == pytest.approx(-0.5625)


def test_allocation_is_optimal_where_the_greedy_is_not():
    rng = np.random.default_rng(4)
    w = {"a": 3 * rng.standard_normal(8), "b": rng.standard_normal(16), "c": rng.laplace(size=32)}
    cands, budget = (1, 2, 3, 4), 2 * 56
    r = allocate_bits(w, budget, candidates=cands, method="exact", table="full")
    profits = [-r.errors[n] for n in w]
    weights = [[j * r.nnz[n] for j in cands] for n in w]
    greedy = mckp_greedy(profits, weights, budget)
    ilp = mckp_ilp(profits, weights, budget)
    assert r.optimal and not r.integral and ilp.optimal
    assert r.error == pytest.approx(-ilp.objective, rel=1e-9)
    assert r.error < -greedy.profit - 1.0  # 7.90 vs the greedy's 10.10
    assert r.bits == {"a": 2, "b": 2, "c": 2} and r.budget_used <= budget
    assert r.lp_bound <= r.error


def test_greedy_matches_cp_sat_on_a_larger_instance():
    rng = np.random.default_rng(0)
    profits = [np.sort(rng.random(8)).cumsum() for _ in range(30)]  # concave-ish
    weights = [np.arange(1, 9) * int(rng.integers(10, 100)) for _ in range(30)]
    cap = int(sum(w[3] for w in weights))
    r = mckp_greedy(profits, weights, cap)
    ilp = mckp_ilp(profits, weights, cap)
    assert ilp.optimal and r.profit <= ilp.objective + 1e-9 <= r.lp_bound + ilp.rounding + 1e-9
    assert r.lp_bound - r.profit < 0.05 * r.profit  # the greedy is close on such instances


def test_infeasible_budget_names_the_minimum():
    with pytest.raises(InfeasibleBudgetError, match="below the cheapest choice 5") as e:
        mckp_greedy([[1.0, 2.0], [0.0]], [[2, 3], [3]], 4)
    assert e.value.minimum == 5 and e.value.budget == 4


def test_bad_instances():
    with pytest.raises(ShapeMismatchError):
        mckp_greedy([[1.0]], [[1, 2]], 3)
    with pytest.raises(NonFiniteError):
        mckp_greedy([[np.nan]], [[1]], 3)
    with pytest.raises(ValueError, match="negative weight"):
        mckp_greedy([[1.0]], [[-1]], 3)


def _pruned(rng, n, keep):
    x = rng.standard_normal(n)
    return np.where(rng.random(n) < keep, x, 0.0)


def test_allocate_bits_error_table_and_choice():
    rng = np.random.default_rng(1)
    w = {"a": _pruned(rng, 300, 0.3), "b": _pruned(rng, 200, 0.5).reshape(10, 20)}
    nnz = {k: int(np.count_nonzero(v)) for k, v in w.items()}
    budget = 3 * sum(nnz.values())
    r = allocate_bits(w, budget, candidates=range(1, 6), method="exact", table="full")
    assert r.nnz == nnz and r.candidates == (1, 2, 3, 4, 5)
    for k, v in w.items():  # E_j is the optimal k-means error of the nonzeros
        nz = v[v != 0]
        for j in (1, 3):
            q = kmeans1d_exact(nz, 2**j)
            err = np.sum((nz - q.codebook[q.assignments]) ** 2)
            assert r.errors[k][j - 1] == pytest.approx(err)
        assert np.all(np.diff(r.errors[k]) <= 1e-12)  # more bits, less error
    assert r.budget_used == sum(r.bits[k] * nnz[k] for k in w) <= budget
    err = sum(r.errors[k][r.bits[k] - 1] for k in w)
    assert r.error == pytest.approx(err)
    out = r.decompress()
    assert sum(np.sum((out[k] - w[k]) ** 2) for k in w) == pytest.approx(r.error)
    for k in w:
        assert np.all(out[k][w[k] == 0] == 0)  # zeros stay zeros
        assert np.unique(out[k][w[k] != 0]).size <= 2 ** r.bits[k]
    ilp = mckp_ilp([-r.errors[k] for k in w], [[j * nnz[k] for j in r.candidates] for k in w],
                   budget)
    assert r.lp_bound <= -ilp.objective + 1e-9 <= r.error + 1e-9


def test_allocate_bits_zero_level_charges_the_given_counts():
    # eq. (10) as written: every entry to 0 or one of the levels, the budget charging the
    # counts given (W's nonzeros), not the target's nonzeros
    rng = np.random.default_rng(3)
    w = {"a": rng.standard_normal(40) * (rng.random(40) < 0.5), "b": rng.standard_normal(30)}
    counts = {"a": 5, "b": 7}
    r = allocate_bits(w, 3 * 12, candidates=(1, 2, 3), method="exact", nnz=counts,
                      zero_level=True, table="full")
    assert r.nnz == counts and r.budget_used == sum(r.bits[k] * counts[k] for k in w) <= 36
    plain = allocate_bits(w, 10_000, candidates=(1, 2, 3), method="exact", table="full")
    out = r.decompress()
    for k in w:
        sw = kmeans1d_sweep(w[k], [2, 4, 8], zero_level=True, method="exact")
        np.testing.assert_allclose(r.errors[k], sw.sse)
        assert np.all(r.errors[k] <= plain.errors[k] + 1e-12)  # a free 0 never hurts
        assert np.unique(out[k][out[k] != 0]).size <= 2 ** r.bits[k]
    assert sum(np.sum((out[k] - w[k]) ** 2) for k in w) == pytest.approx(r.error)
    with pytest.raises(ShapeMismatchError, match="nnz names"):
        allocate_bits(w, 36, nnz={"a": 5})
    with pytest.raises(ValueError, match="nnz"):
        allocate_bits(w, 36, nnz={"a": 5, "b": -1})


def test_allocate_bits_infeasible_budget():
    w = {"a": np.array([1.0, 0.0, 2.0]), "b": np.array([3.0])}
    with pytest.raises(InfeasibleBudgetError, match="2 bits for each of the 3 nonzeros = 6") as e:
        allocate_bits(w, 5, candidates=[2, 4])
    assert e.value.minimum == 6


def test_allocate_bits_torch_matches_numpy():
    rng = np.random.default_rng(2)
    w = {"a": _pruned(rng, 2000, 0.2).astype(np.float32), "b": rng.standard_normal(500).astype(
        np.float32)}
    budget = 4.0 * sum(np.count_nonzero(v) for v in w.values())
    rn = allocate_bits(w, budget)
    rt = allocate_bits({k: torch.from_numpy(v) for k, v in w.items()}, budget)
    assert rn.bits == rt.bits and rn.error == pytest.approx(rt.error, rel=1e-5)
    for k in w:
        assert rt.theta[k].assignments.dtype == torch.int64
        assert torch.allclose(rt.decompress()[k], torch.from_numpy(rn.decompress()[k]))


def test_mixed_precision_compression():
    w = {"a": np.array([1.0, 1.1, 5.0, 0.0]), "b": np.array([2.0, 2.0, 2.0])}
    c = MixedPrecision(budget_bits=6, candidates=(1, 2))
    theta = c.compress(w)
    out = c.decompress(theta)
    assert out["b"].tolist() == [2.0, 2.0, 2.0]
    assert c.cost(theta) == {"a": StorageCost(4, 3, 1, 64), "b": StorageCost(3, 3, 1, 64)}
    assert c.contains(out) and not c.contains({"a": np.array([1.0, 2.0, 3.0]), "b": np.ones(3)})


# ------------------------------------------------------------------ exact at any size (issue 13.2)


@settings(max_examples=60, deadline=None)
@given(inst=mckp_instances, floats=st.booleans())
def test_mckp_solve_is_exact_against_enumeration(inst, floats):
    profits, rng = inst
    weights = [rng.integers(0, 6, size=p.size) for p in profits]
    if floats:  # binary fractions: compared exactly too
        weights = [w * 0.25 for w in weights]
    cap = sum(float(w.min()) for w in weights) + float(rng.integers(0, 10)) * (
        0.25 if floats else 1)
    s = mckp_solve(profits, weights, cap)
    b = brute_mckp(profits, weights, cap)
    assert s.optimal and s.path in ("lp", "pareto")
    assert sum(w[c] for w, c in zip(weights, s.choice, strict=True)) <= cap
    assert s.profit == pytest.approx(b.objective, abs=1e-12)
    assert s.greedy.profit - 1e-12 <= s.profit <= s.bound + 1e-12


def _bit_tables(groups, seed):
    """Bit-allocation-like instances: E_gj ~ nnz σ² 4^-j with noise, weight j·nnz (8 widths)."""
    rng = np.random.default_rng(seed)
    nnz = rng.integers(100, 20000, groups)
    sig = rng.uniform(0.1, 2.0, groups)
    prof = [-n * s2 * 4.0 ** (-np.arange(1, 9)) * np.exp(rng.normal(0, 0.3, 8)).cumprod() ** 0.3
            for n, s2 in zip(nnz, sig, strict=True)]
    return prof, [np.arange(1, 9) * n for n in nnz], int(3.5 * nnz.sum())


@pytest.mark.parametrize(("groups", "seed"), [(30, 0), (30, 1), (100, 2), (200, 3)])
@pytest.mark.parametrize("force_milp", [False, True])
def test_mckp_solve_matches_cp_sat_on_medium_instances(groups, seed, force_milp):
    prof, wts, cap = _bit_tables(groups, seed)
    s = mckp_solve(prof, wts, cap, max_states=0 if force_milp else 100_000)
    ilp = mckp_ilp(prof, wts, cap, hint=s.choice)
    assert ilp.optimal and s.optimal
    assert s.path == ("milp" if force_milp and not s.greedy.integral else s.path)
    assert s.path != "greedy"
    assert s.weight == sum(int(w[c]) for w, c in zip(wts, s.choice, strict=True)) <= cap
    assert abs(s.profit - ilp.objective) <= ilp.rounding  # 0 gap (up to CP-SAT's rounding)


def test_mckp_solve_reports_the_greedy_with_a_bound_when_no_solver_finishes():
    prof, wts, cap = _bit_tables(200, 7)
    s = mckp_solve(prof, wts, cap, max_states=0, time_limit=1e-9)
    ilp = mckp_ilp(prof, wts, cap, hint=s.choice)
    assert not s.greedy.integral and s.path == "greedy" and not s.optimal
    assert s.profit >= s.greedy.profit - 1e-9  # the greedy, or a better MILP incumbent
    assert s.profit <= ilp.objective + ilp.rounding <= s.bound + 2 * ilp.rounding
    with pytest.raises(ValueError, match="time_limit"):
        mckp_solve(prof, wts, cap, time_limit=0)


def test_capacity_is_never_exceeded_above_2_53():
    # issue 14: the float sums rounded 2^53 + 1 down to 2^53, so mckp_best returned (1, 1),
    # one unit over the capacity
    for w in ([[0, 2**53], [0, 1]], [[0.0, 2.0**53], [0.0, 1.0]]):
        _, choice, optimal = mckp_best([[0.0, 1.0], [0.0, 1.0]], w, 2**53)
        assert choice == (0, 1) and optimal
        assert sum(int(g[c]) for g, c in zip(w, choice, strict=True)) <= 2**53
        assert mckp_greedy([[0.0, 1.0], [0.0, 1.0]], w, 2**53).weight <= 2**53
    rng = np.random.default_rng(0)
    for _ in range(20):  # huge integer weights: feasibility decided in integers
        w = [[2**60 + int(rng.integers(0, 2**20)) * 2**10 + int(rng.integers(0, 4))
              for _ in range(3)] for _ in range(4)]
        p = [rng.normal(size=3) for _ in range(4)]
        cap = sum(min(g) for g in w) + int(rng.integers(0, 2**31))
        s = mckp_solve(p, w, cap)
        assert s.weight == sum(g[c] for g, c in zip(w, s.choice, strict=True)) <= cap
        choice = mckp_pareto(p, w, cap)
        assert choice is None or sum(g[c] for g, c in zip(w, choice, strict=True)) <= cap


def test_allocate_bits_is_exact_on_many_tensors_and_says_how():
    rng = np.random.default_rng(11)
    w = {f"t{i}": _pruned(rng, int(rng.integers(50, 400)), 0.5) * rng.uniform(0.1, 3)
         for i in range(60)}
    nnz = {k: int(np.count_nonzero(v)) for k, v in w.items()}
    budget = 3.3 * sum(nnz.values())
    r = allocate_bits(w, budget, method="exact", table="full")
    assert r.optimal and r.path in ("lp", "pareto", "milp")
    ilp = mckp_ilp([-r.errors[k] for k in w], [[j * nnz[k] for j in r.candidates] for k in w],
                   int(budget))
    assert ilp.optimal and abs(r.error + ilp.objective) <= ilp.rounding
    assert r.budget_used <= budget and r.lp_bound <= r.error
    forced = allocate_bits(w, budget, method="exact", time_limit=1e-9)  # may fall back
    assert forced.path in ("lp", "pareto", "milp", "greedy")
    assert forced.error >= r.error - ilp.rounding


def _network(rng, tensors):
    """Pruned tensors of 30-600 entries at log-normal scales (some get many bits)."""
    return {f"t{i}": _pruned(rng, int(rng.integers(30, 600)), rng.uniform(0.2, 0.7))
            * float(np.exp(rng.normal(0, 1.5))) for i in range(tensors)}


@pytest.mark.parametrize("method,zero_level", [("fast", False), ("exact", False),
                                               ("fast", True)])
@pytest.mark.parametrize("seed", range(2))
def test_needed_table_gives_the_full_tables_optimum(method, zero_level, seed):
    rng = np.random.default_rng(100 + seed)
    w = _network(rng, 12)
    nnz = sum(int(np.count_nonzero(v)) for v in w.values())
    for avg in (1.5, 3.0, 5.0):  # tight to generous budgets
        kw = {"method": method, "zero_level": zero_level}
        full = allocate_bits(w, avg * nnz, **kw, table="full")
        lazy = allocate_bits(w, avg * nnz, **kw)
        assert lazy.optimal and full.optimal
        assert lazy.error == pytest.approx(full.error, rel=1e-9, abs=1e-300)
        assert lazy.bits == full.bits or lazy.error <= full.error * (1 + 1e-9)
        for n in w:  # the computed entries are the full table's; the chosen one is computed
            got = ~np.isnan(lazy.errors[n])
            np.testing.assert_array_equal(lazy.errors[n][got], full.errors[n][got])
            assert got[lazy.bits[n] - 1] and not np.isnan(full.errors[n]).any()
        ilp = mckp_ilp([-full.errors[n] for n in w],
                       [[j * lazy.nnz[n] for j in lazy.candidates] for n in w], int(avg * nnz))
        assert abs(lazy.error + ilp.objective) <= ilp.rounding + 1e-9 * lazy.error


def test_needed_table_skips_the_large_codebooks_at_a_tight_budget():
    rng = np.random.default_rng(5)
    w = {f"t{i}": _pruned(rng, 2000, 0.3) for i in range(4)}
    nnz = sum(int(np.count_nonzero(v)) for v in w.values())
    r = allocate_bits(w, 2 * nnz)
    assert r.optimal and all(np.isnan(r.errors[n][5:]).all() for n in w)  # 64-256 entries
    assert all(not np.isnan(r.errors[n][:4]).any() for n in w)  # up to 16: the first round
    with pytest.raises(ValueError, match="table"):
        allocate_bits(w, 2 * nnz, table="some")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-4, 4), min_size=1, max_size=14), st.integers(1, 6),
       st.booleans())
def test_gap_bound_is_below_the_optimal_kmeans_error(values, k, zero_level):
    from compressopt.projections.mckp import _gap_bound
    from compressopt.verify import brute_kmeans_zero

    x = np.asarray(values, dtype=np.float64)
    s = np.sort(x[x != 0])
    if s.size == 0:
        return
    bound = _gap_bound(s, [k], zero_level)[0]
    if zero_level:
        if s.size > 11:
            s = s[:11]
            bound = _gap_bound(s, [k], True)[0]
        opt = brute_kmeans_zero(s, k).objective
    else:
        q = kmeans1d_exact(s, k)
        opt = float(np.sum((s - q.codebook[q.assignments]) ** 2))
    assert bound <= opt * (1 + 1e-12) + 1e-15


@pytest.mark.parametrize("zero_level", [False, True])
def test_numpy_namespace_gives_the_compat_results_bit_for_bit(monkeypatch, zero_level):
    """The k-means table on numpy's own functions (``_array.fast_namespace``) equals the one
    through array_api_compat's wrappers, entry for entry."""
    import compressopt.projections.quantization as Q
    from compressopt._array import array_namespace, fast_namespace

    x = np.zeros(3)
    assert fast_namespace(x) is np or not hasattr(np, "cumulative_sum")
    assert fast_namespace(torch.zeros(3)) is array_namespace(torch.zeros(3))
    rng = np.random.default_rng(11)
    w = {f"t{i}": _pruned(rng, int(rng.integers(50, 3000)), 0.4) * rng.lognormal()
         for i in range(12)}
    budget = 3.5 * sum(int(np.count_nonzero(v)) for v in w.values())
    fast = allocate_bits(w, budget, zero_level=zero_level, table="full")
    monkeypatch.setattr(Q, "fast_namespace", array_namespace)
    compat = allocate_bits(w, budget, zero_level=zero_level, table="full")
    assert fast.bits == compat.bits and fast.error == compat.error
    for n in w:
        np.testing.assert_array_equal(fast.errors[n], compat.errors[n])
        np.testing.assert_array_equal(fast.theta[n].codebook, compat.theta[n].codebook)
        np.testing.assert_array_equal(fast.theta[n].assignments, compat.theta[n].assignments)
