import numpy as np
import pytest
import torch

from compressopt.errors import NonFiniteError, ShapeMismatchError
from compressopt.solvers import DifferentiableOracle, LeastSquares, LogisticRegression, LossOracle


def _fd_grad(f, w, eps=1e-6):
    g = np.zeros_like(w)
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = eps
        g[i] = (f(w + e) - f(w - e)) / (2 * eps)
    return g


@pytest.fixture
def logistic():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    y = np.where(X @ rng.standard_normal(5) + 0.5 * rng.standard_normal(40) > 0, 1.0, -1.0)
    return LogisticRegression(X, y, l2=0.01)


def test_protocols(logistic):
    ls = LeastSquares(np.eye(3), np.ones(3))
    assert isinstance(ls, DifferentiableOracle) and isinstance(logistic, LossOracle)


def test_least_squares_value_grad_lstep():
    rng = np.random.default_rng(1)
    A, b = rng.standard_normal((8, 4)), rng.standard_normal(8)
    ls = LeastSquares(A, b)
    w = rng.standard_normal(4)
    assert ls.value({"w": w}) == pytest.approx(0.5 * np.sum((A @ w - b) ** 2))
    assert np.allclose(ls.grad({"w": w})["w"], _fd_grad(lambda v: ls.value({"w": v}), w), atol=1e-6)
    c, mu = rng.standard_normal(4), 0.7
    v = ls.lstep({"w": w}, {"w": c}, mu)["w"]
    # optimality of the penalized problem: ∇L(v) + μ(v - c) = 0
    assert np.allclose(ls.grad({"w": v})["w"] + mu * (v - c), 0, atol=1e-10)


def test_logistic_grad_and_lstep_optimality(logistic):
    rng = np.random.default_rng(2)
    w = rng.standard_normal(5)
    fd = _fd_grad(lambda v: logistic.value({"w": v}), w)
    assert np.allclose(logistic.grad({"w": w})["w"], fd, atol=1e-7)
    c, mu = rng.standard_normal(5), 0.3
    v = logistic.lstep({"w": w}, {"w": c}, mu)["w"]
    assert np.linalg.norm(logistic.grad({"w": v})["w"] + mu * (v - c)) < 1e-9


def test_logistic_torch_matches_numpy(logistic):
    t = LogisticRegression(torch.tensor(logistic.X), torch.tensor(logistic.y), l2=0.01)
    w = np.linspace(-1, 1, 5)
    assert t.value({"w": torch.tensor(w)}) == pytest.approx(logistic.value({"w": w}), rel=1e-12)
    v = t.lstep({"w": torch.tensor(w)}, {"w": torch.zeros(5, dtype=torch.float64)}, 0.1)["w"]
    assert np.allclose(v.numpy(), logistic.lstep({"w": w}, {"w": np.zeros(5)}, 0.1)["w"])


def test_bad_inputs():
    with pytest.raises(ShapeMismatchError, match=r"\(3, 2\) and \(4,\)"):
        LeastSquares(np.ones((3, 2)), np.ones(4))
    with pytest.raises(NonFiniteError, match="A holds"):
        LeastSquares(np.array([[np.inf]]), np.ones(1))
    with pytest.raises(ValueError, match="-1 or \\+1"):
        LogisticRegression(np.ones((2, 1)), np.array([0.0, 1.0]))
    with pytest.raises(ShapeMismatchError, match="shape"):
        LeastSquares(np.ones((3, 2)), np.ones(3)).value({"w": np.ones(3)})
