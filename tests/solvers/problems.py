"""Small test problems with known exact solutions (planted signal + noise)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from compressopt.solvers import LeastSquares
from compressopt.verify import best_codebook_least_squares, best_subset_least_squares


class Instance(NamedTuple):
    oracle: LeastSquares
    w0: dict  # the unconstrained minimizer (the "reference" model)
    optimum: float  # brute-force optimal objective
    x_opt: np.ndarray


def sparse_ls(seed: int, m: int = 20, n: int = 8, k: int = 3, noise: float = 0.3) -> Instance:
    """min ½||Aw - b||² s.t. ||w||_0 <= k, b from a k-sparse truth plus noise."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    truth = np.zeros(n)
    truth[rng.choice(n, k, replace=False)] = 2 * rng.standard_normal(k)
    b = A @ truth + noise * rng.standard_normal(m)
    bf = best_subset_least_squares(A, b, k)
    return Instance(
        LeastSquares(A, b), {"w": np.linalg.lstsq(A, b, rcond=None)[0]}, bf.objective, bf.x
    )


def codebook_ls(seed: int, m: int = 20, n: int = 7, k: int = 2, noise: float = 0.3) -> Instance:
    """min ½||Aw - b||² s.t. w has <= k distinct values, b from such a truth plus noise."""
    rng = np.random.default_rng(seed + 1000)
    A = rng.standard_normal((m, n))
    truth = (2 * rng.standard_normal(k))[rng.integers(0, k, n)]
    b = A @ truth + noise * rng.standard_normal(m)
    bf = best_codebook_least_squares(A, b, k)
    return Instance(
        LeastSquares(A, b), {"w": np.linalg.lstsq(A, b, rcond=None)[0]}, bf.objective, bf.x
    )


def best_uniform_grid_ls(A: np.ndarray, b: np.ndarray, levels: int) -> tuple[np.ndarray, float]:
    """Exact min ½||A α q - b||² over α >= 0 and q in {-L..L}^n, by enumerating q (tiny n)."""
    import itertools

    n = A.shape[1]
    best_x, best_f = np.zeros(n), 0.5 * float(b @ b)
    for q in itertools.product(range(-levels, levels + 1), repeat=n):
        Aq = A @ np.asarray(q, dtype=float)
        den = float(Aq @ Aq)
        if den == 0:
            continue
        alpha = max(0.0, float(Aq @ b) / den)
        f = 0.5 * float(np.sum((alpha * Aq - b) ** 2))
        if f < best_f:
            best_x, best_f = alpha * np.asarray(q, dtype=float), f
    return best_x, best_f


def best_sparse_quantized_ls(
    A: np.ndarray, b: np.ndarray, budget: float, candidates: tuple[int, ...] = (1, 2)
) -> tuple[np.ndarray, float, int]:
    """Exact min ½||Aw - b||² s.t. bits·||w||_0 <= budget and the nonzeros of w take at most
    2^bits values, over bits in `candidates` (one tensor, tiny n): enumerate the labellings
    (0 = pruned, 1..2^bits = codebook entry) and fit the codebook by least squares.
    Returns (w, objective, bits)."""
    import itertools

    n = A.shape[1]
    best = (np.zeros(n), 0.5 * float(b @ b), candidates[0])
    for bits in candidates:
        kmax, k = int(budget // bits), 2**bits
        for labels in itertools.product(range(k + 1), repeat=n):
            nz = [i for i, lab in enumerate(labels) if lab]
            if not nz or len(nz) > kmax:
                continue
            P = np.zeros((n, k))
            for i in nz:
                P[i, labels[i] - 1] = 1.0
            used = P.any(axis=0)
            M = A @ P[:, used]
            c, *_ = np.linalg.lstsq(M, b, rcond=None)
            f = 0.5 * float(np.sum((M @ c - b) ** 2))
            if f < best[1] - 1e-12:
                best = (P[:, used] @ c, f, bits)
    return best
