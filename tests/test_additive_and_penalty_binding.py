"""The additive combination and the μ binding of penalty-form C steps."""

import itertools
from dataclasses import dataclass, replace

import numpy as np
import pytest

from compressopt.projections import (
    AdaptiveQuantization,
    Additive,
    Cardinality,
    PerTensor,
    StorageCost,
    Tasks,
    TensorScheme,
    bind_mu,
)
from compressopt.solvers import ADMM, LC, SLR, LeastSquares


def _err(c, w, iters):
    c = replace(c, iters=iters)
    out = c.decompress(c.compress(w))
    return float(np.sum((out["w"] - w["w"]) ** 2))


@pytest.mark.parametrize("seed", range(5))
def test_alternation_never_increases_the_error(seed):
    rng = np.random.default_rng(seed)
    w = {"w": np.concatenate([rng.standard_normal(50), 10 * rng.standard_normal(3)])}
    c = Additive(Cardinality(k=3), AdaptiveQuantization(2))
    errs = [_err(c, w, i) for i in (1, 2, 4, 8, 16)]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(errs))
    # the combination beats each part alone
    q = AdaptiveQuantization(2).project(w["w"])
    assert errs[-1] < float(np.sum((q - w["w"]) ** 2))


def test_decompress_is_the_sum_and_cost_adds_up():
    w = {"w": np.array([-1.0, -1.1, 1.0, 0.9, 5.0, -4.0])}
    c = Additive(Cardinality(k=2), AdaptiveQuantization(2), iters=3)
    t = c.compress(w)
    parts = Cardinality(k=2).decompress(t.first["w"]) + AdaptiveQuantization(2).decompress(
        t.second["w"]
    )
    assert np.array_equal(c.decompress(t)["w"], parts)
    cost = c.cost(t)["w"]
    # 2 corrections × 32 bits + 6 indices × 1 bit, over 8 stored values; one 2-entry codebook
    assert cost == StorageCost(numel=6, nnz=8, bits=(64 + 6) / 8, overhead_bits=64)
    assert cost.value_bits == pytest.approx(70)


def test_lc_with_quantization_plus_sparse_correction_is_feasible():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 12))
    truth = np.where(rng.random(12) < 0.2, 4.0, 1.0) * np.sign(rng.standard_normal(12))
    ls = LeastSquares(A, A @ truth + 0.1 * rng.standard_normal(40))
    w0 = {"w": np.linalg.lstsq(A, ls.b, rcond=None)[0]}
    comp = Additive(Cardinality(k=3), AdaptiveQuantization(2), iters=20)
    res = LC(mu0=1e-2, mu_growth=1.2, maxiter=80, tol=1e-8).run(w0, ls, comp)
    x = res.x["w"]
    corr = Cardinality(k=3).decompress(res.theta.first["w"])
    assert np.count_nonzero(corr) <= 3
    q = AdaptiveQuantization(2).decompress(res.theta.second["w"])
    assert np.unique(q).size <= 2  # the rest is a 2-entry codebook
    assert np.array_equal(x, corr + q)
    alone = LC(mu0=1e-2, mu_growth=1.2, maxiter=80, tol=1e-8).run(w0, ls, AdaptiveQuantization(2))
    assert ls.value(res.x) < ls.value(alone.x)


@dataclass(frozen=True)
class _RecordingPenalty(TensorScheme):
    """A penalty-form scheme that records the μ of each C step (soft threshold at α/μ)."""

    alpha: float
    log: list
    mu: float | None = None

    def with_mu(self, mu):
        return replace(self, mu=mu)

    def compress(self, x, /):
        assert self.mu is not None, "penalty form used without a bound mu"
        self.log.append(self.mu)
        t = self.alpha / self.mu
        return np.sign(x) * np.maximum(np.abs(x) - t, 0)

    def decompress(self, theta, /):
        return theta

    def cost(self, theta, /):
        return StorageCost(theta.size, int(np.count_nonzero(theta)), 32)


def test_bind_mu_reaches_every_c_step():
    rng = np.random.default_rng(1)
    A, b = rng.standard_normal((20, 5)), rng.standard_normal(20)
    ls, w0 = LeastSquares(A, b), {"w": np.zeros(5)}
    log = []
    LC(mu0=0.5, mu_growth=2.0, maxiter=4, tol=0).run(w0, ls, _RecordingPenalty(0.1, log))
    assert log == [0.5, 0.5, 1.0, 2.0, 4.0]  # init at μ0, then one C step per μ
    log.clear()
    ADMM(rho=3.0, maxiter=2, eps_abs=0, eps_rel=0, adaptive=False).run(
        w0, ls, Tasks({"w": _RecordingPenalty(0.1, log)})
    )
    assert log == [3.0, 3.0, 3.0]
    # SLR's surrogate conditions hold only for constraint sets: penalty forms are refused
    with pytest.raises(TypeError, match="constraint sets"):
        SLR(rho=0.7, maxiter=1).run(w0, ls, _RecordingPenalty(0.1, log))
    # schemes without with_mu pass through unchanged
    p = PerTensor(Cardinality(k=1))
    assert bind_mu(p, 1.0) == p and bind_mu(Cardinality(k=1), 1.0) == Cardinality(k=1)
