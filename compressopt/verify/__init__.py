"""Exact oracles that certify the fast projections and solvers. No torch import.

OR-Tools and cvxpy are imported lazily inside the functions that need them, so the core
installs and imports without them.
"""

from compressopt.verify.brute import (
    BruteResult,
    best_codebook_least_squares,
    best_subset_least_squares,
)

__all__ = ["BruteResult", "best_codebook_least_squares", "best_subset_least_squares"]
