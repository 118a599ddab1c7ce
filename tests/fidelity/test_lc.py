"""Carreira-Perpiñán (2017), Fig. 2 (the LC algorithm), transcribed line by line in numpy.

Written from the paper (../shared/papers/carreira-perpinan2017-lc-part1.md: eqs. (6)-(10) at
lines 140-167, Fig. 2 at lines 179-183, §4.1's "multiple L and C steps per μ value", §6.2.3's
iterated direct compression), not from compressopt's code, and compared iterate by iterate
with :class:`compressopt.solvers.LC` (and the DC / iDC coordinators) on least squares, where
the L step (eq. 9) is solved exactly (a linear system), so the run is deterministic.
"""

import numpy as np
import pytest

from compressopt.projections import Cardinality, FixedCodebook, as_compression
from compressopt.solvers import LC, DirectCompression, IteratedDC, LeastSquares

N, KEEP = 8, 3
CODEBOOK = (-1.0, -0.5, 0.0, 0.5, 1.0)
MU0, A_GROWTH = 0.05, 1.6
ITERS = 5
TOL = 1e-10


def _problem(seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((20, N))
    b = A @ rng.standard_normal(N) + 0.3 * rng.standard_normal(20)
    return A, b, np.linalg.lstsq(A, b, rcond=None)[0]


def pi_prune(w):  # Π for ||w||_0 <= KEEP: keep the KEEP largest |w_i| (Part II; §6.1)
    z = np.zeros_like(w)
    keep = np.argsort(-np.abs(w), kind="stable")[:KEEP]
    z[keep] = w[keep]
    return z


def pi_codebook(w):  # Π for a fixed codebook: each weight to its nearest value (§3.2)
    c = np.asarray(CODEBOOK)
    return c[np.argmin(np.abs(w[:, None] - c[None, :]), axis=1)]


def figure2(A, b, w_bar, pi, penalty="al", inner=1):
    """Fig. 2; yields (w, Δ(Θ), λ, μ) after each μ."""
    w = w_bar.copy()  # w ← w̄ = argmin L(w): reference model
    delta = pi(w_bar)  # Θ ← Θ^DC = Π(w̄): compress reference model (Δ(Θ) kept)
    lam = np.zeros(N)  # λ ← 0
    for k in range(ITERS):  # for μ = μ0 < μ1 < ... < ∞   (μ_k = μ0 a^k, §4.1)
        mu = MU0 * A_GROWTH**k
        if penalty == "qp":
            lam = np.zeros(N)  # QP: "ignore or set to zero λ everywhere"
        for _ in range(inner):  # §4.1: possibly several L and C steps per μ value
            # L step, eq. (9): w ← argmin L(w) + μ/2 ||w − Δ(Θ) − λ/μ||²; for L = ½||Aw − b||²
            # the gradient is zero at (AᵀA + μI) w = Aᵀb + μ Δ(Θ) + λ
            w = np.linalg.solve(A.T @ A + mu * np.eye(N), A.T @ b + mu * delta + lam)
            delta = pi(w - lam / mu)  # C step, eq. (10): Θ ← Π(w − λ/μ)
        if penalty == "al":
            lam = lam - mu * (w - delta)  # λ ← λ − μ (w − Δ(Θ)): Lagrange multipliers
        yield w, delta, lam, mu
        # "if ||w − Δ(Θ)|| is small enough then exit the loop": tol = 0 here, never


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("penalty", ["al", "qp"])
@pytest.mark.parametrize("scheme", ["prune", "codebook"])
@pytest.mark.parametrize("inner", [1, 2])
def test_figure2_iterate_by_iterate(seed, penalty, scheme, inner):
    A, b, w_bar = _problem(seed)
    pi, C = ((pi_prune, Cardinality(k=KEEP)) if scheme == "prune"
             else (pi_codebook, FixedCodebook(CODEBOOK)))
    solver = LC(mu0=MU0, mu_growth=A_GROWTH, maxiter=ITERS, tol=0.0, penalty=penalty,
                inner_iterations=inner, eval_loss=False)
    oracle = LeastSquares(A, b)
    state = solver.init({"w": w_bar}, C)
    np.testing.assert_allclose(as_compression(C).decompress(state.theta)["w"], pi(w_bar))
    for w, delta, lam, mu in figure2(A, b, w_bar, pi, penalty, inner):
        mu_used = state.mu
        state, rec = solver.step(state, oracle, C)
        np.testing.assert_allclose(state.w["w"], w, rtol=0, atol=TOL)
        np.testing.assert_allclose(as_compression(C).decompress(state.theta)["w"], delta,
                                   rtol=0, atol=TOL)
        np.testing.assert_allclose(state.lam["w"], lam, rtol=0, atol=TOL)
        assert mu_used == pytest.approx(mu, rel=1e-14) and rec.mu == mu_used
        assert rec.feasibility == pytest.approx(np.linalg.norm(w - delta), abs=TOL)


GD_STEPS, ETA = 4, 0.02  # an inexact L step for iDC: a few gradient steps on L


class GradientSteps(LeastSquares):
    """L(w) = ½||Aw − b||² whose L step is GD_STEPS gradient steps on L + μ/2||w − c||²."""

    def lstep(self, w, center, mu, *, step=0):
        v = w["w"]
        for _ in range(GD_STEPS):
            v = v - ETA * (self.A.T @ (self.A @ v - self.b) + mu * (v - center["w"]))
        return {"w": v}


def iterated_dc(A, b, w_bar, pi):
    """§6.2.3: "we optimize L(w) to obtain w̄ and then compress it into Θ^DC. Next, we
    optimize L(w) again but initializing w from Δ(Θ^DC), and then we compress it; etc."
    Yields (w, Δ(Θ)) per round; the optimization is GD_STEPS gradient steps (inexact)."""
    w = w_bar.copy()  # optimize L(w) to obtain w̄
    delta = pi(w)  # and then compress it into Θ^DC
    yield w, delta
    for _ in range(ITERS):
        w = delta.copy()  # next, optimize L(w) again but initializing w from Δ(Θ^DC)
        for _ in range(GD_STEPS):
            w = w - ETA * (A.T @ (A @ w - b))
        delta = pi(w)  # and then we compress it
        yield w, delta


@pytest.mark.parametrize("scheme", ["prune", "codebook"])
def test_direct_and_iterated_direct_compression(scheme):
    A, b, w_bar = _problem(3)
    pi, C = ((pi_prune, Cardinality(k=KEEP)) if scheme == "prune"
             else (pi_codebook, FixedCodebook(CODEBOOK)))
    oracle = GradientSteps(A, b)
    # DC, eq. (12): Θ^DC = Π(w̄); the compressed model is Δ(Θ^DC), w̄ discarded (§4.2)
    dc = DirectCompression().run({"w": w_bar}, oracle, C)
    np.testing.assert_allclose(dc.x["w"], pi(w_bar), rtol=0, atol=TOL)
    assert dc.converged and dc.nit == 1 and dc.history[0].loss_compressed == pytest.approx(
        oracle.value(dc.x))
    idc = IteratedDC(maxiter=ITERS, eval_loss=False)
    state = idc.init({"w": w_bar}, C)
    for k, (w, delta) in enumerate(iterated_dc(A, b, w_bar, pi)):
        if k:
            state, rec = idc.step(state, oracle, C)
            assert rec.feasibility == pytest.approx(np.linalg.norm(w - delta), abs=TOL)
        np.testing.assert_allclose(state.w["w"], w, rtol=0, atol=TOL)
        np.testing.assert_allclose(as_compression(C).decompress(state.theta)["w"], delta,
                                   rtol=0, atol=TOL)
    res = idc.run({"w": w_bar}, oracle, C)
    np.testing.assert_allclose(res.x["w"], delta, rtol=0, atol=TOL)
    assert res.nit == ITERS and not res.converged
