import itertools
import math
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import lsq_linear

from compressopt import tree as T
from compressopt.projections import (
    AdaptiveQuantization,
    Box,
    Cardinality,
    L1Ball,
    Simplex,
    StorageCost,
    TensorScheme,
    as_compression,
)
from compressopt.solvers import ADMM, ADMMRecord, LeastSquares, Status
from tests.solvers.problems import codebook_ls, sparse_ls

# the papers' ADMM (fixed or growing ρ, no relaxation), as the DNN methods run it
PAPER = {"adaptive": False, "relaxation": 1.0}
GROWING = {"rho": 1e-2, "rho_growth": 1.1, "maxiter": 300, "eps_abs": 1e-12, "eps_rel": 1e-10,
           **PAPER}


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
    res = ADMM(rho=10.0, maxiter=2000, eps_abs=1e-10, eps_rel=1e-10, **PAPER).run(
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
    solver = ADMM(rho=0.5, rho_growth=2.0, maxiter=1, **PAPER)
    s0 = solver.init(inst.w0, Cardinality(k=3))
    s1, rec = solver.step(s0, inst.oracle, Cardinality(k=3))
    assert rec.rho == 0.5 and s1.rho == 1.0
    # the unscaled dual y = ρu is what the rescaling preserves: y = ρ_k (u_k + w - z)
    z = s1.theta["w"].values
    y = rec.rho * (s0.u["w"] + s1.w["w"] - z)
    assert np.allclose(s1.rho * s1.u["w"], y)


def test_residual_balancing_moves_rho():
    inst = sparse_ls(2)
    res = ADMM(rho=1e-4, residual_balancing=True, maxiter=10, eps_abs=0, eps_rel=0,
               adaptive=False).run(
        inst.w0, inst.oracle, Cardinality(k=3)
    )
    rhos = res.column("rho")
    assert len(set(rhos)) > 1 and rhos[1] == 2e-4  # r >> s at first: ρ doubles


def test_rho_max_caps_growth():
    inst = sparse_ls(3)
    res = ADMM(rho=1.0, rho_growth=10.0, rho_max=50.0, maxiter=5, eps_abs=0, eps_rel=0,
               **PAPER).run(
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
        ({"relaxation": 2.0}, "relaxation"),
        ({"relaxation": 0}, "relaxation"),
        ({"balance": 1.0}, "balance"),
        ({"residual_balancing": True}, "adaptive=False"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ADMM(**kwargs)


# ------------------------------------------------------------------ defaults (issue 13.4)


def _old_admm(w0, ls, scheme, rho, growth, maxiter, eps_abs=1e-6, eps_rel=1e-4):
    """ADMM's iteration as it was before the defaults changed (scaled form, growth, no
    relaxation, Boyd's stopping test), with the same tree operations: the papers' settings
    must reproduce it bit for bit."""
    C = as_compression(scheme)
    w, theta, u, rows = T.tree_check(w0), C.compress(w0), T.tree_zeros_like(w0), []
    for k in range(maxiter):
        z_prev = C.decompress(theta)
        w = ls.lstep(w, T.tree_sub(z_prev, u), rho, step=k)
        theta = C.compress(T.tree_add(w, u))
        z = C.decompress(theta)
        r_vec = T.tree_sub(w, z)
        u = T.tree_add(u, r_vec)
        r, s = T.tree_norm(r_vec), rho * T.tree_norm(T.tree_sub(z, z_prev))
        sqrt_n = math.sqrt(T.tree_numel(w))
        eps_pri = sqrt_n * eps_abs + eps_rel * max(T.tree_norm(w), T.tree_norm(z))
        eps_dual = sqrt_n * eps_abs + eps_rel * rho * T.tree_norm(u)
        rows.append((rho, w, z, r, s))
        new = rho * growth
        if new != rho:
            u = T.tree_scale(u, rho / new)
        rho = new
        if r <= eps_pri and s <= eps_dual:
            break
    return rows


@pytest.mark.parametrize(("rho", "growth"), [(1.0, 1.0), (1e-2, 1.1)])
def test_the_papers_settings_reproduce_the_old_default_bit_for_bit(rho, growth):
    # what the DNN methods pass to keep their ADMM: adaptive=False, relaxation=1.0 and the
    # old tolerances (eps_abs=1e-6, eps_rel=1e-4)
    inst = sparse_ls(4)
    res = ADMM(rho=rho, rho_growth=growth, maxiter=40, eps_abs=1e-6, eps_rel=1e-4,
               **PAPER).run(inst.w0, inst.oracle, Cardinality(k=3))
    ref = _old_admm(inst.w0, inst.oracle, Cardinality(k=3), rho, growth, 40)
    assert len(res.history) == len(ref)
    for rec, (r_rho, _, _, r, s) in zip(res.history, ref, strict=True):
        assert (rec.rho, rec.primal_residual, rec.dual_residual) == (r_rho, r, s)
    assert np.array_equal(res.state.w["w"], ref[-1][1]["w"])
    assert np.array_equal(res.x["w"], ref[-1][2]["w"])


@pytest.mark.parametrize("alpha", [1.0, 1.6])
def test_dual_residual_is_the_l_steps_optimality_gap_with_relaxation(alpha):
    # Boyd §3.3.1 with the relaxed updates: 0 = ∇L(w) + ρu + s, s = ρ[(w - ŵ) + (z - z_prev)]
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((30, 10)), 3 * rng.standard_normal(30)
    ls, box = LeastSquares(A, b), _Box(-0.3, 0.3)
    solver = ADMM(rho=2.0, relaxation=alpha, adaptive=False)
    state = solver.init({"w": np.zeros(10)}, box)
    for _ in range(3):
        prev = state
        state, rec = solver.step(prev, ls, box)
    z_prev, z, w = prev.theta["w"], state.theta["w"], state.w["w"]
    w_hat = alpha * w + (1 - alpha) * z_prev
    s_vec = rec.rho * ((w - w_hat) + (z - z_prev))
    y = state.rho * state.u["w"]  # the unscaled dual, unchanged by a rescaling of u
    assert np.allclose(ls.grad(state.w)["w"] + y + s_vec, 0, atol=1e-10)
    assert rec.dual_residual == pytest.approx(np.linalg.norm(s_vec), rel=1e-12)
    assert rec.primal_residual == pytest.approx(np.linalg.norm(w - z), rel=1e-12)


@pytest.mark.parametrize("rho", [1e-3, 1.0, 1e3])
def test_adaptive_rho_converges_from_a_bad_initial_rho(rho):
    rng = np.random.default_rng(1)
    A, b = rng.standard_normal((60, 30)), 3 * rng.standard_normal(60)
    ls, box = LeastSquares(A, b), _Box(-0.5, 0.5)
    ada = ADMM(rho=rho, maxiter=300).run({"w": np.zeros(30)}, ls, box)
    fixed = ADMM(rho=rho, maxiter=300, **PAPER).run({"w": np.zeros(30)}, ls, box)
    assert ada.converged and ada.nit <= 120 and not fixed.converged
    rhos = ada.column("rho")
    assert all(0.01 <= b_ / a_ <= 100 for a_, b_ in itertools.pairwise(rhos))  # clipped steps
    assert 1.0 <= rhos[-1] <= 30.0  # a penalty on the scale of the problem's curvature


def _convex_ls(seed, kappa, m=60, n=30):
    """60 × 30 least squares with condition number kappa (singular values log-spaced)."""
    rng = np.random.default_rng(seed)
    q1, _ = np.linalg.qr(rng.standard_normal((m, n)))
    q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (q1 * np.logspace(0, -np.log10(kappa), n)) @ q2.T * np.sqrt(m)
    return LeastSquares(A, A @ rng.standard_normal(n) + 0.1 * rng.standard_normal(m))


CONVEX = {
    "simplex": (Simplex(1.0), lambda x: [x >= 0, cp.sum(x) == 1]),
    "l1ball": (L1Ball(1.0), lambda x: [cp.norm1(x) <= 1]),
    "box": (Box(-0.5, 0.5), lambda x: [x >= -0.5, x <= 0.5]),
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kappa", [1, 10, 100, 1000])
@pytest.mark.parametrize("name", sorted(CONVEX))
def test_defaults_reach_cvxpy_within_1e8_in_100_iterations(name, kappa, seed):
    # issue 13.4: as a new user would call it; the old defaults (ρ = 1 fixed) stopped at
    # maxiter 100 with gaps up to 3e-3
    ls = _convex_ls(seed, kappa)
    scheme, cons = CONVEX[name]
    x = cp.Variable(30)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(ls.A @ x - ls.b)), cons(x))
    prob.solve(solver=cp.CLARABEL, tol_gap_rel=1e-12, tol_gap_abs=1e-12, tol_feas=1e-12)
    res = ADMM().run({"w": np.zeros(30)}, ls, scheme)
    assert res.converged and res.nit <= 100
    assert scheme.contains(res.x["w"], atol=1e-12)
    assert abs(ls.value(res.x) - prob.value) <= 1e-8 * abs(prob.value)
