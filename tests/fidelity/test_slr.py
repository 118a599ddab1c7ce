"""Zhou et al. (SLR pruning), Algorithm 1 with eqs. (4)-(13), transcribed in plain numpy.

Written from the paper (../shared/papers/zhou-slr-pruning.md: eqs. (4)-(13) at lines 84-126,
Algorithm 1 at lines 174-192), not from compressopt's code, and compared iterate by iterate
with :class:`compressopt.solvers.SLR` on a two-layer least-squares problem with one
cardinality constraint per layer (eq. 2, card(W_n) <= l_n). The "loss function" subproblem
(5) is solved exactly (a linear system), so the run is deterministic.

The paper leaves line 1's initialization open; both sides take W^0 = the reference, Z^0 =
Π(W^0), Λ^0 = 0, s^0 = s0. When a surrogate condition fails the paper keeps the multipliers
(lines 7 and 13) and does not say which step size carries over; both sides carry the last
one (s'^k = s^{k-1}, s^k = s'^k).
"""

import numpy as np
import pytest

from compressopt.projections import Cardinality, as_compression
from compressopt.solvers import SLR

SIZES, KEEP = {"a": 6, "b": 5}, 2  # two layers, l_n = 2 each
RHO, S0, M, R = 1.5, 0.5, 20.0, 0.3
ITERS = 5
TOL = 1e-10


def _problem(seed):
    rng = np.random.default_rng(seed)
    n = sum(SIZES.values())
    A = rng.standard_normal((30, n))
    b = A @ rng.standard_normal(n) + 0.3 * rng.standard_normal(30)
    return A, b, np.linalg.lstsq(A, b, rcond=None)[0]


def _split(v):
    out, i = {}, 0
    for name, k in SIZES.items():
        out[name], i = v[i:i + k], i + k
    return out


def _join(w):
    return np.concatenate([w[name] for name in SIZES])


class Oracle:
    """f(W) = ½||A W − b||²; its L step argmin f(W) + μ/2||W − c||² exactly."""

    def __init__(self, A, b):
        self.A, self.b = A, b

    def value(self, w):
        r = self.A @ _join(w) - self.b
        return 0.5 * float(r @ r)

    def lstep(self, w, center, mu, *, step=0):
        n = self.A.shape[1]
        rhs = self.A.T @ self.b + mu * _join(center)
        return _split(np.linalg.solve(self.A.T @ self.A + mu * np.eye(n), rhs))


# ---- the paper --------------------------------------------------------------------------

def proj(x):  # Π_{S_n}: the Euclidean projection onto card(W_n) <= l_n, per layer (eq. 10)
    out = []
    for part in _split(x).values():
        z = np.zeros_like(part)
        keep = np.argsort(-np.abs(part), kind="stable")[:KEEP]
        z[keep] = part[keep]
        out.append(z)
    return np.concatenate(out)


def alpha(k):  # eq. (13): α^k = 1 − 1/(M k^(1 − 1/k^r))   (κ^r printed; k^r per Bragin 2015)
    return 1 - 1 / (M * k ** (1 - 1 / k**R))


def algorithm1(A, b, w0):
    def f(W):
        return 0.5 * float((A @ W - b) @ (A @ W - b))

    def L(W, Z, Lam):  # eq. (4): f(W) + tr[Λᵀ(W − Z)] + ρ/2 ||W − Z||²_F
        return f(W) + float(Lam @ (W - Z)) + RHO / 2 * float((W - Z) @ (W - Z))

    n = A.shape[1]
    W, Z, Lam, s = w0.copy(), proj(w0), np.zeros(n), S0  # line 1: initialize
    for k in range(1, ITERS + 1):  # line 2: while the stopping criteria are not satisfied
        # line 3, subproblem (5): min_W L_ρ(W, Z^{k-1}, Λ^k); ∇ = 0 is
        # (AᵀA + ρI) W = Aᵀb − Λ + ρ Z^{k-1}
        Wk = np.linalg.solve(A.T @ A + RHO * np.eye(n), A.T @ b - Lam + RHO * Z)
        if L(Wk, Z, Lam) < L(W, Z, Lam):  # line 4: surrogate optimality condition (6)
            # (8): s'^k = α^k s^{k-1} ||W^{k-1} − Z^{k-1}|| / ||W^k − Z^{k-1}||
            s_p = alpha(k) * s * np.linalg.norm(W - Z) / np.linalg.norm(Wk - Z)
            Lam = Lam + s_p * (Wk - Z)  # line 5, (7): Λ^{k+1} = Λ^k + s'^k (W^k − Z^{k-1})
        else:
            s_p = s  # line 7: do not update the multipliers
        Zk = proj(Wk + Lam / RHO)  # line 9, subproblem (9) by (10): Π(W^k + Λ^{k+1}/ρ)
        if L(Wk, Zk, Lam) < L(Wk, Z, Lam):  # line 10: surrogate optimality condition (11)
            # (13): s^k = α^k s'^k ||W^{k-1} − Z^{k-1}|| / ||W^k − Z^k||
            s = alpha(k) * s_p * np.linalg.norm(W - Z) / np.linalg.norm(Wk - Zk)
            Lam = Lam + s * (Wk - Zk)  # line 11, (12): Λ^{k+1} += s^k (W^k − Z^k)
        else:
            s = s_p  # line 13: do not update the multipliers
        W, Z = Wk, Zk
        yield W, Z, Lam, s, s_p


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_algorithm1_iterate_by_iterate(seed):
    A, b, w0 = _problem(seed)
    solver = SLR(rho=RHO, s0=S0, M=M, r=R, maxiter=ITERS)
    oracle, C = Oracle(A, b), Cardinality(k=KEEP)
    state = solver.init(_split(w0), C, oracle)
    for W, Z, Lam, s, s_p in algorithm1(A, b, w0):
        state, rec = solver.step(state, oracle, C)
        np.testing.assert_allclose(_join(state.w), W, rtol=0, atol=TOL)
        np.testing.assert_allclose(_join(as_compression(C).decompress(state.theta)), Z,
                                   rtol=0, atol=TOL)
        np.testing.assert_allclose(_join(state.lam), Lam, rtol=0, atol=TOL)
        assert (state.s, rec.s_prime, rec.rho) == pytest.approx((s, s_p, RHO), rel=1e-12)
    # the returned point: the hard-pruned W^K = Π(W^K)
    np.testing.assert_allclose(_join(solver.output(state, C)[0]), proj(W), rtol=0, atol=TOL)


def test_the_transcription_is_not_trivial():
    A, b, w0 = _problem(0)
    steps = list(algorithm1(A, b, w0))
    assert all(np.any(lam != 0) for _, _, lam, _, _ in steps)
    assert len({round(s, 12) for _, _, _, s, _ in steps}) == ITERS  # the step size moves
