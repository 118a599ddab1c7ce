"""LC with the compression families of issue 4 §4: low rank (fixed and selected ranks),
binary/ternary codebooks, the ℓ0 penalty form, and different schemes per layer — each against
an exact solution of the constrained problem."""

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from compressopt.projections import (
    AdaptiveQuantization,
    Binary,
    Cardinality,
    L0Penalty,
    LowRank,
    RankSelection,
    Tasks,
    Ternary,
)
from compressopt.solvers import LC, LeastSquares
from compressopt.verify import best_codebook_least_squares, best_subset_least_squares

GENTLE = {"mu0": 1e-2, "mu_growth": 1.1, "maxiter": 300, "tol": 1e-10}


@dataclass(frozen=True, eq=False)
class MatrixLS:
    """L(W) = ½||X W - Y||_F² over a (p, q) weight matrix, with an exact L step."""

    X: np.ndarray
    Y: np.ndarray
    name: str = "W"

    def value(self, w):
        return 0.5 * float(np.sum((self.X @ w[self.name] - self.Y) ** 2))

    def lstep(self, w, center, mu, *, step=0):
        p = self.X.shape[1]
        M = self.X.T @ self.X + mu * np.eye(p)
        return {self.name: np.linalg.solve(M, self.X.T @ self.Y + mu * center[self.name])}


def _reduced_rank(X, Y, r):
    """Reduced-rank regression (Reinsel & Velu 1998): W = W_ols V_r V_rᵀ with V_r the top
    right singular vectors of X W_ols — the exact minimizer under rank(W) <= r."""
    W = np.linalg.lstsq(X, Y, rcond=None)[0]
    _, _, vt = np.linalg.svd(X @ W, full_matrices=False)
    return W @ vt[:r].T @ vt[:r]


@pytest.mark.parametrize("seed", range(4))
def test_low_rank_reaches_reduced_rank_regression(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((60, 8))
    Y = X @ (rng.standard_normal((8, 2)) @ rng.standard_normal((2, 6))) + 0.3 * rng.standard_normal(
        (60, 6)
    )
    oracle = MatrixLS(X, Y)
    w0 = {"W": np.linalg.lstsq(X, Y, rcond=None)[0]}
    res = LC(**GENTLE).run(w0, oracle, LowRank(2))
    assert np.linalg.matrix_rank(res.x["W"], tol=1e-8) <= 2
    best = _reduced_rank(X, Y, 2)
    assert oracle.value(res.x) == pytest.approx(oracle.value({"W": best}), rel=1e-6)


def test_rank_selection_meets_the_parameter_budget():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((60, 8))
    parts = {}
    for name, true_rank in (("a", 1), ("b", 3)):
        Y = X @ (rng.standard_normal((8, true_rank)) @ rng.standard_normal((true_rank, 6)))
        parts[name] = MatrixLS(X, Y + 0.05 * rng.standard_normal((60, 6)), name)

    class Both:
        def value(self, w):
            return sum(o.value({n: w[n]}) for n, o in parts.items())

        def lstep(self, w, center, mu, *, step=0):
            return {n: o.lstep({n: w[n]}, {n: center[n]}, mu)[n] for n, o in parts.items()}

    w0 = {n: np.linalg.lstsq(X, o.Y, rcond=None)[0] for n, o in parts.items()}
    budget = 4 * (8 + 6)  # parameters for rank 4 in all, of (8, 6) matrices
    comp = RankSelection(budget)
    res = LC(**GENTLE).run(w0, Both(), comp)
    ranks = {n: np.linalg.matrix_rank(v, tol=1e-8) for n, v in res.x.items()}
    assert sum(r * 14 for r in ranks.values()) <= budget
    assert ranks == {"a": 1, "b": 3}  # the budget goes where the signal is


def _best_scaled_signs(A, b, zero: bool):
    """Exact min ½||A α s - b||² over α >= 0 and s in {-1, 1}^n (or {-1, 0, 1}^n)."""
    vals = (-1, 0, 1) if zero else (-1, 1)
    best = 0.5 * float(b @ b)
    for s in itertools.product(vals, repeat=A.shape[1]):
        As = A @ np.asarray(s, dtype=float)
        den = float(As @ As)
        if den > 0:
            a = max(0.0, float(As @ b) / den)
            best = min(best, 0.5 * float(np.sum((a * As - b) ** 2)))
    return best


@pytest.mark.parametrize(("scheme", "zero"), [(Binary(), False), (Ternary(), True)])
def test_binary_and_ternary_codebooks_against_enumeration(scheme, zero):
    hits = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        A = rng.standard_normal((20, 6))
        signs = rng.choice([-1.0, 0.0, 1.0] if zero else [-1.0, 1.0], 6)
        ls = LeastSquares(A, A @ (1.3 * signs) + 0.2 * rng.standard_normal(20))
        res = LC(**GENTLE).run({"w": np.linalg.lstsq(A, ls.b, rcond=None)[0]}, ls, scheme)
        vals = np.unique(np.abs(res.x["w"]))
        assert vals.size <= (2 if zero else 1)  # one scale (and 0 for ternary)
        best = _best_scaled_signs(A, ls.b, zero)
        assert ls.value(res.x) >= best * (1 - 1e-9)
        hits += ls.value(res.x) <= best * (1 + 1e-6)
    assert hits >= 9, f"LC reached the best {type(scheme).__name__} code on {hits}/10 seeds"


def test_l0_penalty_form_against_enumeration():
    # min ½||Aw - b||² + α||w||_0: enumerate supports, least squares on each
    alpha, hits = 0.5, 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        A = rng.standard_normal((20, 6))
        truth = np.where(rng.random(6) < 0.4, 2 * rng.standard_normal(6), 0.0)
        ls = LeastSquares(A, A @ truth + 0.3 * rng.standard_normal(20))
        best = min(best_subset_least_squares(A, ls.b, k).objective + alpha * k for k in range(7))
        res = LC(**GENTLE).run({"w": np.linalg.lstsq(A, ls.b, rcond=None)[0]}, ls, L0Penalty(alpha))
        f = ls.value(res.x) + alpha * np.count_nonzero(res.x["w"])
        assert f >= best * (1 - 1e-9)
        hits += f <= best * (1 + 1e-6)
    assert hits >= 8, f"LC reached the ℓ0-penalized optimum on {hits}/10 seeds"


def test_different_schemes_per_layer():
    # two independent layers: one pruned, one quantized; each part has its own exact optimum
    rng = np.random.default_rng(11)
    A1, A2 = rng.standard_normal((20, 6)), rng.standard_normal((20, 6))
    t1 = np.where(rng.random(6) < 0.4, 2.0, 0.0)
    t2 = np.array([1.5, -1.5])[rng.integers(0, 2, 6)]
    l1 = LeastSquares(A1, A1 @ t1 + 0.2 * rng.standard_normal(20))
    l2 = LeastSquares(A2, A2 @ t2 + 0.2 * rng.standard_normal(20))

    class Two:
        def value(self, w):
            return l1.value({"w": w["a"]}) + l2.value({"w": w["b"]})

        def lstep(self, w, center, mu, *, step=0):
            return {
                "a": l1.lstep({"w": w["a"]}, {"w": center["a"]}, mu)["w"],
                "b": l2.lstep({"w": w["b"]}, {"w": center["b"]}, mu)["w"],
            }

    w0 = {
        "a": np.linalg.lstsq(A1, l1.b, rcond=None)[0],
        "b": np.linalg.lstsq(A2, l2.b, rcond=None)[0],
    }
    comp = Tasks({"a": Cardinality(k=3), "b": AdaptiveQuantization(2)})
    res = LC(**GENTLE).run(w0, Two(), comp)
    best = (
        best_subset_least_squares(A1, l1.b, 3).objective
        + best_codebook_least_squares(A2, l2.b, 2).objective
    )
    assert Two().value(res.x) == pytest.approx(best, rel=1e-6)
    assert np.count_nonzero(res.x["a"]) <= 3 and np.unique(res.x["b"]).size <= 2
