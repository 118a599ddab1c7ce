"""The exact solvers themselves: OR-Tools ILPs and cvxpy programs against enumeration and
closed forms."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compressopt.errors import InfeasibleBudgetError, NonFiniteError, ShapeMismatchError
from compressopt.verify import (
    box_cvx,
    brute_cardinality,
    brute_channels,
    brute_kmeans,
    brute_knapsack,
    brute_mckp,
    brute_scaled_grid,
    brute_sparse_quantized,
    group_lasso_cvx,
    knapsack_ilp,
    l1_ball_cvx,
    mckp_ilp,
    mckp_lp,
    simplex_cvx,
    soft_threshold_cvx,
)

seeds = st.integers(0, 2**32 - 1).map(np.random.default_rng)


@settings(max_examples=25)
@given(rng=seeds, solver=st.sampled_from(["branch_and_bound", "cp_sat"]))
def test_knapsack_ilp_equals_enumeration(rng, solver):
    n = int(rng.integers(1, 13))
    p, w = rng.random(n) * 10, rng.integers(0, 9, n)
    cap = int(rng.integers(0, 30))
    r = knapsack_ilp(p, w, cap, solver=solver)
    b = brute_knapsack(p, w, cap)
    assert r.optimal and r.weight <= cap
    assert r.objective == pytest.approx(b.objective, abs=r.rounding + 1e-12)
    assert r.objective <= r.bound


@settings(max_examples=25)
@given(rng=seeds)
def test_mckp_ilp_equals_enumeration(rng):
    groups = int(rng.integers(1, 5))
    p = [rng.normal(size=int(rng.integers(1, 5))) for _ in range(groups)]
    w = [rng.integers(0, 7, g.size) for g in p]
    cap = sum(int(g.min()) for g in w) + int(rng.integers(0, 8))
    r = mckp_ilp(p, w, cap)
    b = brute_mckp(p, w, cap)
    assert r.optimal and r.weight <= cap
    assert r.objective == pytest.approx(b.objective, abs=r.rounding + 1e-12)
    assert b.objective <= mckp_lp(p, w, cap).objective + 1e-7  # LP relaxation >= ILP


def test_ilp_input_errors():
    with pytest.raises(ValueError, match="integers"):
        knapsack_ilp([1.0], [0.5], 1)
    with pytest.raises(ShapeMismatchError):
        knapsack_ilp([1.0, 2.0], [1], 1)
    with pytest.raises(NonFiniteError):
        knapsack_ilp([np.inf], [1], 1)
    with pytest.raises(ValueError, match="solver"):
        knapsack_ilp([1.0], [1], 1, solver="magic")
    with pytest.raises(InfeasibleBudgetError, match="cheapest choice 3") as e:
        mckp_ilp([[1.0], [2.0, 3.0]], [[1], [2, 5]], 2)
    assert e.value.minimum == 3


def test_knapsack_ilp_solves_a_large_instance_quickly():
    rng = np.random.default_rng(0)
    p, w = rng.standard_normal(2000) ** 2, rng.integers(1, 9, 2000)
    r = knapsack_ilp(p, w, int(w.sum() // 3), time_limit=30)
    assert r.optimal and r.bound - r.objective <= 2 * r.rounding + 1e-9


def test_convex_programs_against_closed_forms():
    x = np.array([3.0, -1.0, 0.5, -0.2])
    # l1 ball of radius 2: soft threshold at 1 -> [2, 0, 0, 0]
    r = l1_ball_cvx(x, 2.0)
    np.testing.assert_allclose(r.x, [2.0, 0, 0, 0], atol=1e-4)  # IPM: x to ~sqrt(tol)
    assert r.objective == pytest.approx(1 + 1 + 0.25 + 0.04, rel=1e-6)
    np.testing.assert_allclose(simplex_cvx(x, 1.0).x, [1.0, 0, 0, 0], atol=1e-4)
    np.testing.assert_allclose(box_cvx(x, -0.5, 0.6).x, [0.6, -0.5, 0.5, -0.2], atol=1e-4)
    np.testing.assert_allclose(soft_threshold_cvx(x, 0.6).x, [2.4, -0.4, 0, 0], atol=1e-4)
    g = group_lasso_cvx(np.array([[3.0, 4.0], [0.3, 0.4]]), 1.0)
    np.testing.assert_allclose(g.x, [[2.4, 3.2], [0, 0]], atol=1e-4)


def test_brute_force_enumerations_by_hand():
    assert brute_cardinality([0.5, -2.0, 1.0], 2).objective == pytest.approx(0.25)
    assert brute_channels(np.array([[1.0, 1.0], [0.0, 3.0]]), 1).objective == pytest.approx(2.0)
    assert brute_kmeans([0.0, 0.1, 0.9, 1.0, 5.0], 2).objective == pytest.approx(0.82)
    assert brute_kmeans([1.0, 2.0], 3).objective == 0.0
    t = brute_scaled_grid([0.1, 1.0, 2.1, -2.9], range(-2, 3))
    assert t.objective == pytest.approx(0.1**2 + (1 - 11 / 9) ** 2 + (2.1 - 22 / 9) ** 2
                                        + (2.9 - 22 / 9) ** 2)
    r = brute_mckp([[1.0, 5.0], [2.0, 3.0]], [[0, 4], [0, 1]], 4)
    assert r.x.tolist() == [1, 0] and r.objective == 7.0
    j = brute_sparse_quantized({"a": np.array([4.0, 4.1, 0.1, -3.0])}, 3, (1,))
    # 3 nonzeros at 1 bit: drop 0.1, codebook {4.05, -3}
    assert j.objective == pytest.approx(0.01 + 2 * 0.05**2)
    with pytest.raises(ValueError, match="n <= 22"):
        brute_knapsack(np.ones(23), np.ones(23), 1)
