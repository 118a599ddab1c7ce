"""Li & Xin (2022), Algorithms 1 and 2, transcribed line by line in plain numpy.

Written from the paper's boxes (../shared/papers/li-xin-apgdssm.md, lines 76-94 and 163-167),
§II (the group lasso, the shrinkage Prox), §IV (the learning rate), §VI (eq. 6, CTL1 per
layer) and Table I (factors that multiply up), not from compressopt's code, and compared
iterate by iterate with :class:`compressopt.solvers.APGDSSM` on a least-squares problem with
a deterministic gradient. One iteration of the box (one t) is one recorded step here
(``iters_per_step=1``), so an "epoch" of Table I and of the learning-rate scheme is one t.

Q is a fixed grid s·{0, ±1, ..., ±2^(m-1)} (the paper's Q with its scale held fixed): the
algorithm is generic in Proj_Q, so the test fixes the simplest one.
"""

from dataclasses import dataclass

import numpy as np
import pytest

from compressopt.projections import StorageCost, TensorScheme
from compressopt.solvers import APGDSSM, MultiStepLR, PenaltySchedule

SCALE, M_BITS = 0.25, 2
SHAPE = (3, 4)  # one layer, 3 output channels (rows) of 4 weights
ITERS = 5
TOL = 1e-10


@dataclass(frozen=True)
class FixedGrid(TensorScheme):
    """Q = SCALE·{0, ±1, ..., ±2^(m-1)}, Proj_Q by rounding and clipping."""

    def compress(self, x, /):
        return np.clip(np.round(x / SCALE), -(2 ** (M_BITS - 1)), 2 ** (M_BITS - 1)) * SCALE

    def decompress(self, theta, /):
        return theta

    def cost(self, theta, /):
        return StorageCost(theta.size, int(np.count_nonzero(theta)), M_BITS + 1)


def _problem(seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((30, 12)) / np.sqrt(30)
    b = A @ rng.standard_normal(12) + 0.1 * rng.standard_normal(30)
    w0 = 0.5 * rng.standard_normal(SHAPE)
    return A, b, w0


class Oracle:
    """l(u) = ½||A vec(u) - b||², its exact gradient (deterministic)."""

    def __init__(self, A, b):
        self.A, self.b = A, b

    def value(self, w):
        r = self.A @ w["W"].reshape(-1) - self.b
        return 0.5 * float(r @ r)

    def grad(self, w):
        return {"W": (self.A.T @ (self.A @ w["W"].reshape(-1) - self.b)).reshape(SHAPE)}


# ---- the paper's operators, from its text -------------------------------------------------

def proj_q(w):  # Proj_Q: the nearest grid point (§I)
    return np.clip(np.round(w / SCALE), -(2 ** (M_BITS - 1)), 2 ** (M_BITS - 1)) * SCALE


def prox(x, lam):  # §II: Prox_λ(x) = sgn(x)·max(|x| - λ, 0)
    return np.sign(x) * np.maximum(np.abs(x) - lam, 0.0)


def grad_gl(u):  # §II: ||w||_GL = Σ_l Σ_{i∈I_l} ||w_{l,i}||_2 over channels (rows);
    n = np.linalg.norm(u, axis=1, keepdims=True)  # its gradient w_i/||w_i||, 0 at w_i = 0
    return np.where(n > 0, u / np.where(n > 0, n, 1.0), 0.0)


def grad_ctl1(u, a):  # eq. (6): Σ_l 1 - ||w_l||_1/(a + ||w_l||_1), one term for the layer:
    s = np.abs(u).sum()  # d/dw_i = -a sign(w_i) / (a + ||w_l||_1)²
    return -a * np.sign(u) / (a + s) ** 2


# ---- the schedules -------------------------------------------------------------------------
# §IV: "the initial learning rate is 0.1, and we multiply the learning rate by a factor of
# 0.1 at epochs 80, 120, and 160": here at t = 2 and 4 (0-based epochs), so the drop is seen.
LR0, LR_DROPS = 0.1, (2, 4)
# Table I: "at epochs listed ..., we multiply the parameters by the factor": here at epochs
# 1 and 3, λ₁ & λ₂ by .5 then .2, β by .5 then .1.
TABLE = {1: (0.5, 0.5), 3: (0.2, 0.1)}


def gamma(t0):  # γ^t for the 0-based epoch t0
    return LR0 * 0.1 ** sum(t0 >= m for m in LR_DROPS)


def algorithm1(A, b, w0, lam1, lam2, beta, splitting):
    """Algorithm 1 (APGDSM without splitting, APGDSSM with it); yields after every t."""
    w = w0.copy()  # Input: float weights w⁰
    for t0 in range(ITERS):  # for t = 1, ..., 200 (t0 = t - 1)
        if t0 in TABLE:  # Table I: multiply the parameters by the factors
            f_lam, f_beta = TABLE[t0]
            lam1, lam2, beta = lam1 * f_lam, lam2 * f_lam, beta * f_beta
        g = gamma(t0)
        u = proj_q(w)  # line 1: u^t = Proj_Q(w^t)   (w^t here is the previous iterate)
        grad_f = (A.T @ (A @ u.reshape(-1) - b)).reshape(SHAPE) + lam2 * grad_gl(u)
        # line 2: f(u^t) = l(u^t) + λ₂^t ||u^t||_GL
        w = w - g * grad_f  # line 3: w^t = w^{t-1} - α ∇f(u^t)   (α is γ^t, §IV)
        if splitting:  # line 4: if Splitting then
            w = w - g * beta * (w - u)  # line 5: w^t = w^t - γ^t β^t (w^t - u^t)
        w = prox(w, lam1)  # line 7: w^t = Prox_{λ₁^t}(w_g^t)
        yield w, proj_q(w), (g, lam1, lam2, beta)  # u = Proj_Q(w) after the loop


def algorithm2(A, b, w0, lam1, lam2, lam3, a, beta):
    """Algorithm 2 (APGDSSM with the CTL1 penalty); yields after every t."""
    w = w0.copy()
    for t0 in range(ITERS):  # for t = 1, ..., 200
        g = gamma(t0)
        u = proj_q(w)  # u^t = Proj_Q(w^t)
        # f(u^t) = l(u^t) + γ^t λ₂ ||u^t||_GL + λ₃ ||u^t||_{CTL1, γ^t a}
        grad_f = ((A.T @ (A @ u.reshape(-1) - b)).reshape(SHAPE) + g * lam2 * grad_gl(u)
                  + lam3 * grad_ctl1(u, g * a))
        w = w - g * grad_f  # w^t = w^{t-1} - γ^t ∇f(u^t)
        w = w - g * beta * (w - u)  # w^t = w^t - γ^t β (w^t - u^t)
        w = prox(w, g * lam1)  # w^t = Prox_{γ^t λ₁}(w_g^{t-1})
        yield w, proj_q(w), (g, g * lam1, g * lam2, beta)


def _compare(solver, A, b, w0, reference):
    oracle, C = Oracle(A, b), FixedGrid()
    state = solver.init({"W": w0}, C)
    for w_ref, u_ref, (g, tau, l2, beta) in reference:
        state, rec = solver.step(state, oracle, C)
        np.testing.assert_allclose(state.w["W"], w_ref, rtol=0, atol=TOL)
        np.testing.assert_allclose(C.decompress(state.theta["W"]), u_ref, rtol=0, atol=TOL)
        assert (rec.lr, rec.threshold, rec.lambda2, rec.beta) == pytest.approx(
            (g, tau, l2, beta), rel=0, abs=TOL)
    assert state.k == ITERS


def _lr():
    return MultiStepLR(LR0, LR_DROPS, 0.1)


def _table():
    ms = sorted(TABLE)
    return PenaltySchedule(milestones=tuple(ms), lambda1=tuple(TABLE[m][0] for m in ms),
                           lambda2=tuple(TABLE[m][0] for m in ms),
                           beta=tuple(TABLE[m][1] for m in ms))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("splitting", [False, True], ids=["APGDSM", "APGDSSM"])
def test_algorithm1_iterate_by_iterate(seed, splitting):
    A, b, w0 = _problem(seed)
    lam1, lam2, beta = 0.04, 0.3, (0.8 if splitting else 0.0)
    solver = APGDSSM(lr=_lr(), lambda1=lam1, lambda2=lam2, beta=beta, schedule=_table(),
                     iters_per_step=1, maxiter=ITERS, eval_loss=False)
    _compare(solver, A, b, w0, algorithm1(A, b, w0, lam1, lam2, beta, splitting))


@pytest.mark.parametrize("seed", [0, 1])
def test_algorithm2_iterate_by_iterate(seed):
    A, b, w0 = _problem(seed)
    lam1, lam2, lam3, a, beta = 0.2, 0.5, 0.3, 1.0, 0.6
    solver = APGDSSM(lr=_lr(), lambda1=lam1, lambda2=lam2, lambda3=lam3, a=a, beta=beta,
                     scale_with_lr=True, iters_per_step=1, maxiter=ITERS, eval_loss=False)
    _compare(solver, A, b, w0, algorithm2(A, b, w0, lam1, lam2, lam3, a, beta))


def test_the_transcription_is_not_trivial():
    # the shrinkage and the grid both act within the 5 iterations, so the comparison sees them
    A, b, w0 = _problem(0)
    ws = list(algorithm1(A, b, w0, 0.04, 0.3, 0.8, True))
    assert any(np.any(w == 0) for w, _, _ in ws)
    assert all(np.any(u != w) for w, u, _ in ws)
