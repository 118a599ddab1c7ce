"""The knapsack (weighted ℓ0) projection of Yang et al. 2020, eq. (8)."""

import numpy as np
import pytest
import torch

from compressopt.errors import ShapeMismatchError
from compressopt.projections import KnapsackPruning, StorageCost, project_knapsack, summarize
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


def test_torch_matches_numpy_on_a_large_instance():
    rng = np.random.default_rng(7)
    w = {f"t{i}": rng.standard_normal(int(rng.integers(1000, 5000))).astype(np.float32)
         for i in range(5)}
    bits = {k: int(b) for k, b in zip(w, rng.integers(1, 9, 5), strict=True)}
    budget = 0.2 * sum(bits[k] * v.size for k, v in w.items())
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
