"""Truncated SVD and rank selection under a parameter budget."""

import numpy as np
import pytest
import torch

from compressopt.errors import ShapeMismatchError
from compressopt.projections import LowRank, RankSelection, StorageCost, project_rank, select_ranks
from compressopt.verify import mckp_ilp


def test_eckart_young_error_and_conv_shapes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 2, 2))  # a conv weight: seen as 6 x 12
    s = np.linalg.svd(x.reshape(6, 12), compute_uv=False)
    for r in range(7):
        z = project_rank(x, r)
        assert z.shape == x.shape
        assert np.sum((z - x) ** 2) == pytest.approx(np.sum(s[r:] ** 2), abs=1e-10)
        assert np.linalg.matrix_rank(z.reshape(6, 12), tol=1e-8) == r
    with pytest.raises(ValueError, match="rank must be in"):
        project_rank(x, 7)
    with pytest.raises(ShapeMismatchError, match="ndim >= 2"):
        project_rank(np.ones(3), 1)


def test_select_ranks_is_the_cp_sat_optimum_on_random_layers():
    rng = np.random.default_rng(1)
    w = {f"l{i}": rng.standard_normal((int(rng.integers(3, 9)), int(rng.integers(3, 9))))
         for i in range(4)}
    profits, weights = [], []
    for v in w.values():
        s2 = np.linalg.svd(v, compute_uv=False) ** 2
        profits.append(np.concatenate([[0.0], np.cumsum(s2)]))
        weights.append(np.arange(s2.size + 1) * sum(v.shape))
    total = sum(p[-1] for p in profits)
    for budget in (0, 13, 40, 77, 1000):
        r = select_ranks(w, budget)
        ilp = mckp_ilp(profits, weights, budget)
        assert r.params_used <= budget
        eps = 1e-9 * total
        assert r.lp_bound - eps <= total - ilp.objective <= r.error + eps
        z = r.decompress()
        assert sum(np.sum((z[k] - w[k]) ** 2) for k in w) == pytest.approx(r.error)
        assert r.optimal  # four small layers: the Pareto DP always finishes
        assert r.error == pytest.approx(total - ilp.objective, abs=1e-9 * total)


def test_greedy_prefers_large_singular_values_per_parameter():
    w = {"a": np.diag([4.0, 1.0]), "b": np.diag([3.0, 2.0])}  # every rank costs 4 params
    r = select_ranks(w, 8)
    assert r.ranks == {"a": 1, "b": 1} and r.error == pytest.approx(5.0) and r.integral
    r = select_ranks(w, 12)  # next is b's sigma = 2 (4 > 1)
    assert r.ranks == {"a": 1, "b": 2} and r.error == pytest.approx(1.0)


def test_schemes_on_torch():
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((5, 7)))
    s = LowRank(2)
    th = s.compress(x)
    assert th.left.shape == (5, 2) and th.right.shape == (2, 7)
    assert isinstance(s.decompress(th), torch.Tensor)
    assert s.cost(th) == StorageCost(35, 24, 32)
    c = RankSelection(24)
    out = c.decompress(c.compress({"x": x}))
    assert c.contains(out, atol=1e-9) and not c.contains({"x": x})
