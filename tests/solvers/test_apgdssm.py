import math
from dataclasses import dataclass, replace

import cvxpy as cp
import numpy as np
import pytest

from compressopt.projections import StorageCost, TensorScheme
from compressopt.projections.codebooks import UniformQuantization
from compressopt.projections.prox import ctl1_grad, group_lasso_grad, soft_threshold
from compressopt.solvers import (
    APGDSSM,
    APGDSSMRecord,
    LeastSquares,
    MultiStepLR,
    PenaltySchedule,
    sparsity_report,
)
from tests.solvers.problems import best_uniform_grid_ls


def _matrix_oracle(ls, shape):
    """A differentiable oracle over one weight matrix ``W`` of `shape` (flattened into the
    least-squares problem `ls`); APGDSSM's groups are then the rows of ``W``."""

    class Mat:
        def value(self, w):
            return ls.value({"w": w["W"].reshape(-1)})

        def grad(self, w):
            return {"W": ls.grad({"w": w["W"].reshape(-1)})["w"].reshape(shape)}

        def lstep(self, w, center, mu, *, step=0):  # pragma: no cover - not used
            raise NotImplementedError

    return Mat


@dataclass(frozen=True)
class _Identity(TensorScheme):
    """Q = ℝⁿ: APGDSSM without quantization is a proximal-gradient method."""

    def compress(self, x, /):
        return x

    def decompress(self, theta, /):
        return theta

    def cost(self, theta, /):
        return StorageCost(theta.size, theta.size, 32)


def test_without_quantization_it_is_ista_and_solves_the_lasso():
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((30, 8)), rng.standard_normal(30)
    ls, lam = LeastSquares(A, b), 2.0
    step = 1 / np.linalg.norm(A, 2) ** 2
    # threshold="prox_grad": the shrinkage Prox_{γλ₁} of ISTA; the paper's Prox_{λ₁} with
    # λ₁ = γ·lam is the same iteration
    res = APGDSSM(lr=step, lambda1=lam, maxiter=3000, eval_loss=False,
                  threshold="prox_grad").run({"w": np.zeros(8)}, ls, _Identity())
    res2 = APGDSSM(lr=step, lambda1=step * lam, maxiter=3000, eval_loss=False).run(
        {"w": np.zeros(8)}, ls, _Identity())
    np.testing.assert_allclose(res2.x["w"], res.x["w"], atol=1e-12)
    x = cp.Variable(8)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ x - b) + lam * cp.norm1(x)))
    prob.solve()
    f = 0.5 * np.sum((A @ res.x["w"] - b) ** 2) + lam * np.abs(res.x["w"]).sum()
    assert f == pytest.approx(prob.value, rel=1e-6)
    assert res.history[-1].weight_sparsity == pytest.approx(np.mean(res.x["w"] == 0))


def _grid_instance(seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((20, 5))
    b = A @ (0.7 * rng.integers(-2, 3, 5)) + 0.2 * rng.standard_normal(20)
    return LeastSquares(A, b), np.linalg.lstsq(A, b, rcond=None)[0]


def test_two_bit_grid_least_squares_against_brute_force():
    # Projected-gradient (BinaryConnect-style) training is a heuristic on a discrete set:
    # always on the grid, usually close to the best grid point, rarely exactly on it.
    close = 0
    for seed in range(20):
        ls, w0 = _grid_instance(seed)
        step = 0.5 / np.linalg.norm(ls.A, 2) ** 2
        res = APGDSSM(
            lr=lambda t, s=step: s * 0.99**t,
            beta=2.0,
            iters_per_step=100,
            maxiter=8,
            eval_loss=False,
        )
        out = res.run({"w": w0}, ls, UniformQuantization(bits=2, method="exact"))
        u, scale = out.x["w"], float(out.theta["w"].scale)
        codes = out.theta["w"].codes
        assert np.all(np.abs(codes) <= 2) and np.allclose(u, scale * codes)  # feasible
        _, best = best_uniform_grid_ls(ls.A, ls.b, 2)
        assert ls.value(out.x) >= best * (1 - 1e-9)
        close += ls.value(out.x) <= 1.25 * best
    assert close >= 16, f"within 25% of the best grid point on {close}/20 seeds"  # 18 seen


def test_one_inner_iteration_by_hand():
    rng = np.random.default_rng(1)
    A, b = rng.standard_normal((12, 6)), rng.standard_normal(12)
    ls = LeastSquares(A, b)
    w0 = rng.standard_normal((2, 3))
    Q = UniformQuantization(bits=3, method="exact")

    Mat = _matrix_oracle(ls, (2, 3))  # least squares over a 2×3 weight (groups = rows)
    kw = dict(lr=0.05, lambda1=0.3, lambda2=0.2, lambda3=0.1, a=0.5, beta=0.7, maxiter=1)
    out = APGDSSM(**kw).run({"W": w0}, Mat(), Q)
    u = Q.project(w0)
    # Algorithm 1: gradient at u (CTL1 per layer, eq. 6), then splitting on the updated w,
    # then Prox_{λ₁} (threshold λ₁, not γλ₁)
    g = Mat().grad({"W": u})["W"] + 0.2 * group_lasso_grad(u) + 0.1 * ctl1_grad(u, 0.5)
    v = w0 - 0.05 * g
    v = v - 0.05 * 0.7 * (v - u)
    assert np.allclose(out.state.w["W"], soft_threshold(v, 0.3))
    assert np.allclose(out.x["W"], Q.project(out.state.w["W"]))
    assert isinstance(out.history[0], APGDSSMRecord) and out.state.t == 1
    rec = out.history[0]
    assert (rec.threshold, rec.lambda1, rec.lambda2, rec.lambda3, rec.a) == (0.3, 0.3, 0.2,
                                                                            0.1, 0.5)
    # the three options give the library's iteration before issue 12: CTL1 per channel,
    # splitting at the pre-gradient w (RVSM eq. 4), threshold γλ₁
    old = APGDSSM(**kw, threshold="prox_grad", splitting="simultaneous", ctl1_groups="channel")
    out = old.run({"W": w0}, Mat(), Q)
    g = Mat().grad({"W": u})["W"] + 0.2 * group_lasso_grad(u) + 0.1 * ctl1_grad(u, 0.5, axis=0)
    v = w0 - 0.05 * g - 0.05 * 0.7 * (w0 - u)
    assert np.allclose(out.state.w["W"], soft_threshold(v, 0.05 * 0.3))


@pytest.mark.parametrize("seed", [3, 4])
def test_group_lasso_recovers_planted_zero_channels(seed):
    # rows 0 and 2 of the true 4×3 weight are zero; shrinkage + group lasso zero them out
    rng = np.random.default_rng(seed)
    A, T = rng.standard_normal((40, 12)), rng.standard_normal((4, 3))
    T[[0, 2]] = 0
    ls = LeastSquares(A, A @ T.reshape(-1) + 0.5 * rng.standard_normal(40))

    Mat = _matrix_oracle(ls, (4, 3))
    w0 = {"W": np.linalg.lstsq(A, ls.b, rcond=None)[0].reshape(4, 3)}
    step = 0.5 / np.linalg.norm(A, 2) ** 2
    Q = UniformQuantization(bits=4, method="exact")
    solver = APGDSSM(lr=step, lambda1=step, lambda2=10.0, beta=1.0, iters_per_step=50, maxiter=6)
    res = solver.run(w0, Mat(), Q)
    zero_rows = np.flatnonzero(np.all(res.x["W"] == 0, axis=1))
    assert zero_rows.tolist() == [0, 2]
    last = res.history[-1]
    assert last.channel_sparsity == 0.5 and last.layers["W"][1] == 0.5
    assert last.weight_sparsity == pytest.approx(np.mean(res.x["W"] == 0))
    assert res.state.t == 300 and len(res.history) == 6


def test_schedule_and_lr_scaling():
    # Table I's factors multiply up: λ × .5 at 2, × .5 again at 4; β × .1 then × .1
    sched = PenaltySchedule(milestones=(2, 4), lambda1=(0.5,), lambda2=(1,), beta=(0.1,))
    s = APGDSSM(lr=lambda t: 0.1 / (1 + t), lambda1=1.0, lambda2=0.5, beta=2.0, schedule=sched)
    assert tuple(s.penalties(0, 0)) == pytest.approx((0.1, 1.0, 0.5, 0.0, 1.0, 2.0))
    assert tuple(s.penalties(3, 0)) == pytest.approx((0.1, 0.5, 0.5, 0.0, 1.0, 0.2))
    assert tuple(s.penalties(5, 0)) == pytest.approx((0.1, 0.25, 0.5, 0.0, 1.0, 0.02))
    assert s.penalties(5, 1).threshold == pytest.approx(0.25)  # Alg. 1: λ₁^t, not γλ₁^t
    assert replace(s, threshold="prox_grad").penalties(5, 1).threshold == pytest.approx(0.0125)
    # the per-interval reading is an option
    per = PenaltySchedule(milestones=(2, 4), lambda1=(1, 2, 4), beta=(0, 1, 3), cumulative=False)
    assert per.at(0) == (1.0, 1.0, 0.0) and per.at(3) == (2.0, 1.0, 1.0)
    # Algorithm 2: threshold γ_t λ₁, f = l + γ_t λ₂ GL + λ₃ CTL1_{γ_t a}, β unscaled
    s2 = APGDSSM(lr=lambda t: 0.1 / (1 + t), lambda1=1.0, lambda2=0.5, lambda3=0.2, a=2.0,
                 beta=0.3, scale_with_lr=True)
    assert tuple(s2.penalties(0, 3)) == pytest.approx((0.025, 0.025, 0.0125, 0.2, 0.05, 0.3))
    with pytest.raises(ValueError, match="factors"):
        PenaltySchedule(milestones=(2,), lambda1=(1, 2))
    with pytest.raises(ValueError, match="factors"):
        PenaltySchedule(milestones=(2,), lambda1=(1, 2, 3), cumulative=False)
    with pytest.raises(ValueError, match="milestones"):
        PenaltySchedule(milestones=(3, 2))
    for kw, match in [
        ({"lambda1": -1}, "lambda1"),
        ({"lambda2": math.inf}, "lambda2"),
        ({"a": 0}, "a"),
        ({"lr": 0}, "lr"),
        ({"iters_per_step": 0}, "iters_per_step"),
        ({"threshold": "gamma"}, "threshold"),
        ({"splitting": "rvsm"}, "splitting"),
        ({"ctl1_groups": "group"}, "ctl1_groups"),
    ]:
        with pytest.raises(ValueError, match=match):
            APGDSSM(**kw)


def test_table1_multiplies_up_and_li_xin_learning_rate():
    t1 = PenaltySchedule.table1()
    lam = [t1.at(e)[0] for e in (0, 34, 35, 70, 110, 150, 199)]
    beta = [t1.at(e)[2] for e in (0, 35, 70, 110, 150)]
    assert lam == pytest.approx([1, 1, 0.5, 0.1, 0.05, 0.025, 0.025])  # Table I, multiplied
    assert beta == pytest.approx([1, 0.5, 0.1, 0.01, 0.001])
    assert t1.at(80)[1] == t1.at(80)[0]  # λ₁ and λ₂ share the column
    lr = MultiStepLR.li_xin(steps_per_epoch=3)
    assert [lr(3 * e) for e in (0, 79, 80, 119, 120, 160, 199)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 1e-3, 1e-4, 1e-4])
    assert lr(3 * 80 - 1) == 0.1
    for kw, match in [({"lr": 0}, "lr"), ({"lr": 1, "factor": 0}, "factor"),
                      ({"lr": 1, "milestones": (0,)}, "milestones"),
                      ({"lr": 1, "steps_per_epoch": 0}, "steps_per_epoch")]:
        with pytest.raises(ValueError, match=match):
            MultiStepLR(**kw)


def test_sparsity_report():
    u = {"a": np.array([[0.0, 0.0], [1.0, 0.0]]), "b": np.array([0.0, 2.0, 0.0])}
    ws, cs, layers = sparsity_report(u)
    assert ws == pytest.approx(5 / 7) and cs == pytest.approx(3 / 5)
    assert layers == {"a": (0.75, 0.5), "b": (pytest.approx(2 / 3), pytest.approx(2 / 3))}


def test_shrinkage_once_per_epoch():
    # shrink_every="epoch": the box read with its loop over epochs: the gradient steps of
    # the epoch at the projected points, then splitting with the epoch's u^t and Prox_{λ₁}
    rng = np.random.default_rng(5)
    A, b = rng.standard_normal((12, 6)), rng.standard_normal(12)
    ls = LeastSquares(A, b)
    Mat = _matrix_oracle(ls, (2, 3))
    w0 = rng.standard_normal((2, 3))
    Q = UniformQuantization(bits=3, method="exact")
    kw = dict(lr=0.05, lambda1=0.3, lambda2=0.2, beta=0.7, maxiter=1, eval_loss=False)
    per_epoch = APGDSSM(**kw, iters_per_step=3, shrink_every="epoch").run({"W": w0}, Mat(), Q)
    w, u0 = w0, Q.project(w0)
    for _ in range(3):
        u = Q.project(w)
        w = w - 0.05 * (Mat().grad({"W": u})["W"] + 0.2 * group_lasso_grad(u))
    w = soft_threshold(w - 0.05 * 0.7 * (w - u0), 0.3)
    np.testing.assert_allclose(per_epoch.state.w["W"], w, atol=1e-12)
    # one gradient step per epoch: the two readings coincide
    a = APGDSSM(**kw, iters_per_step=1).run({"W": w0}, Mat(), Q)
    b_ = APGDSSM(**kw, iters_per_step=1, shrink_every="epoch").run({"W": w0}, Mat(), Q)
    np.testing.assert_allclose(a.state.w["W"], b_.state.w["W"], atol=1e-15)
    with pytest.raises(ValueError, match="shrink_every"):
        APGDSSM(shrink_every="step")
