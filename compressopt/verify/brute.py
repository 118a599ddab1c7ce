"""Brute-force exact solutions of tiny instances (enumeration), numpy only.

Ground truth for the coordinators and projections on problems small enough to enumerate:
best-subset least squares (the ℓ0-constrained problem) and least squares over a K-entry
codebook (the quantization-constrained problem).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

__all__ = ["BruteResult", "best_codebook_least_squares", "best_subset_least_squares"]


class BruteResult(NamedTuple):
    """Optimal point and objective of an enumerated problem."""

    x: np.ndarray
    objective: float
    candidates: int  #: how many candidates were enumerated


def _ls(M: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    c, *_ = np.linalg.lstsq(M, b, rcond=None)
    r = M @ c - b
    return c, 0.5 * float(r @ r)


def best_subset_least_squares(A: np.ndarray, b: np.ndarray, k: int) -> BruteResult:
    """Exact ``min ½||A w - b||² s.t. ||w||_0 <= k`` by enumerating all supports of size k.

    C(n, k) least-squares solves, each O(m k²); meant for n <= 20 or so. Ties keep the first
    support in lexicographic order.
    """
    A, b = np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = A.shape[1]
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, {n}], got {k}")
    best = BruteResult(np.zeros(n), 0.5 * float(b @ b), 1)
    count = 1
    for support in itertools.combinations(range(n), k):
        if not support:
            continue
        count += 1
        c, f = _ls(A[:, support], b)
        if f < best.objective - 1e-12 * max(1.0, abs(best.objective)):
            x = np.zeros(n)
            x[list(support)] = c
            best = BruteResult(x, f, count)
    return best._replace(candidates=count)


def best_codebook_least_squares(A: np.ndarray, b: np.ndarray, k: int) -> BruteResult:
    """Exact ``min ½||A w - b||² s.t. w has at most k distinct values`` by enumeration.

    Every assignment of the n coordinates to k labels (up to relabeling: labels in order of
    first use) gives ``w = P c`` with P the n × k assignment matrix; the best codebook c for
    it is a least-squares fit. About k^n / k! candidates: n <= 10 for k = 2.
    """
    A, b = np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = A.shape[1]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    best: BruteResult | None = None
    count = 0
    for labels in itertools.product(range(k), repeat=n):
        # canonical form: label j appears only after labels 0..j-1 have appeared
        if any(lab > max(labels[:i], default=-1) + 1 for i, lab in enumerate(labels)):
            continue
        count += 1
        P = np.zeros((n, k))
        P[np.arange(n), labels] = 1.0
        used = P.any(axis=0)
        c, f = _ls(A @ P[:, used], b)
        if best is None or f < best.objective - 1e-12 * max(1.0, abs(best.objective)):
            best = BruteResult(P[:, used] @ c, f, count)
    assert best is not None
    return best._replace(candidates=count)
