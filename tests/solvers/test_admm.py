from dataclasses import dataclass

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from compressopt.projections import AdaptiveQuantization, Cardinality, StorageCost, TensorScheme
from compressopt.solvers import ADMM, ADMMRecord, LeastSquares, Status
from tests.solvers.problems import codebook_ls, sparse_ls

GROWING = {"rho": 1e-2, "rho_growth": 1.1, "maxiter": 300, "eps_abs": 1e-12, "eps_rel": 1e-10}


@dataclass(frozen=True)
class _Box(TensorScheme):
    """The box [lo, hi]^n, a convex set (test-local; Π is a clip)."""

    lo: float
    hi: float

    def compress(self, x, /):
        return np.clip(x, self.lo, self.hi)

    def decompress(self, theta, /):
        return theta

    def cost(self, theta, /):
        return StorageCost(theta.size, theta.size, 32)


def test_admm_reaches_best_subset_on_most_seeds():
    hits = 0
    for seed in range(30):
        inst = sparse_ls(seed)
        res = ADMM(**GROWING).run(inst.w0, inst.oracle, Cardinality(k=3))
        assert np.count_nonzero(res.x["w"]) <= 3
        hits += inst.oracle.value(res.x) <= inst.optimum * (1 + 1e-6)
    assert hits >= 27, f"ADMM reached the optimum on {hits}/30 seeds"


def test_admm_reaches_best_codebook_on_most_seeds():
    hits = 0
    for seed in range(30):
        inst = codebook_ls(seed)
        res = ADMM(**GROWING).run(inst.w0, inst.oracle, AdaptiveQuantization(2))
        assert np.unique(res.x["w"]).size <= 2
        hits += inst.oracle.value(res.x) <= inst.optimum * (1 + 1e-6)
    assert hits >= 27, f"ADMM reached the optimal codebook on {hits}/30 seeds"


@pytest.mark.parametrize("seed", range(5))
def test_fixed_rho_converges_on_a_convex_set(seed):
    # box-constrained least squares: convex, so ADMM with a fixed ρ converges (Boyd §3.2)
    rng = np.random.default_rng(seed)
    A, b = rng.standard_normal((30, 10)), 3 * rng.standard_normal(30)
    exact = lsq_linear(A, b, bounds=(-0.5, 0.5), tol=1e-14, method="bvls").x
    ls = LeastSquares(A, b)
    res = ADMM(rho=10.0, maxiter=2000, eps_abs=1e-10, eps_rel=1e-10).run(
        {"w": np.zeros(10)}, ls, _Box(-0.5, 0.5)
    )
    assert res.converged and res.status == Status.CONVERGED
    assert set(res.column("rho")) == {10.0}
    assert np.allclose(res.x["w"], exact, atol=1e-7)
    last = res.history[-1]
    assert isinstance(last, ADMMRecord)
    assert last.primal_residual <= last.eps_primal and last.dual_residual <= last.eps_dual


def test_rho_growth_rescales_scaled_dual():
    inst = sparse_ls(1)
    solver = ADMM(rho=0.5, rho_growth=2.0, maxiter=1)
    s0 = solver.init(inst.w0, Cardinality(k=3))
    s1, rec = solver.step(s0, inst.oracle, Cardinality(k=3))
    assert rec.rho == 0.5 and s1.rho == 1.0
    # the unscaled dual y = ρu is what the rescaling preserves: y = ρ_k (u_k + w - z)
    z = s1.theta["w"].values
    y = rec.rho * (s0.u["w"] + s1.w["w"] - z)
    assert np.allclose(s1.rho * s1.u["w"], y)


def test_residual_balancing_moves_rho():
    inst = sparse_ls(2)
    res = ADMM(rho=1e-4, residual_balancing=True, maxiter=10, eps_abs=0, eps_rel=0).run(
        inst.w0, inst.oracle, Cardinality(k=3)
    )
    rhos = res.column("rho")
    assert len(set(rhos)) > 1 and rhos[1] == 2e-4  # r >> s at first: ρ doubles


def test_rho_max_caps_growth():
    inst = sparse_ls(3)
    res = ADMM(rho=1.0, rho_growth=10.0, rho_max=50.0, maxiter=5, eps_abs=0, eps_rel=0).run(
        inst.w0, inst.oracle, Cardinality(k=3)
    )
    assert res.column("rho") == [1.0, 10.0, 50.0, 50.0, 50.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rho": 0}, "rho"),
        ({"rho_growth": 0.5}, "rho_growth"),
        ({"rho": 2, "rho_max": 1}, "rho_max"),
        ({"maxiter": 0}, "maxiter"),
        ({"eps_abs": -1}, "eps_abs"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ADMM(**kwargs)
