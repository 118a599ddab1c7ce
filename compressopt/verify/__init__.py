"""Exact oracles that certify the fast projections and solvers. No torch import.

* :mod:`~compressopt.verify.brute`: enumeration of tiny instances (exact, exponential).
* :mod:`~compressopt.verify.ilp`: the 0-1 and multiple-choice knapsacks with OR-Tools.
* :mod:`~compressopt.verify.convex`: the convex projections, proximal operators and the LP
  relaxation of the multiple-choice knapsack with cvxpy.
* :mod:`~compressopt.verify.checks`: one ``verify_<projection>`` per projection, comparing the
  fast result with the exact one (a :class:`Report`: objectives, gap, bound, feasibility).
* :mod:`~compressopt.verify.registry`: every projection with a sampler of valid inputs, for
  the shared property tests.

OR-Tools and cvxpy are imported lazily inside the functions that need them, so the core
installs and imports without them.
"""

from compressopt.verify.brute import (
    BruteResult,
    best_codebook_least_squares,
    best_subset_least_squares,
    brute_cardinality,
    brute_channels,
    brute_kmeans,
    brute_kmeans_zero,
    brute_knapsack,
    brute_mckp,
    brute_scaled_grid,
    brute_sparse_quantized,
)
from compressopt.verify.checks import (
    verify_allocate_bits,
    verify_binary,
    verify_box,
    verify_cardinality,
    verify_channels,
    verify_codebook,
    verify_ctl1,
    verify_global_cardinality,
    verify_global_channels,
    verify_group_lasso,
    verify_hard_threshold,
    verify_kmeans,
    verify_knapsack,
    verify_l1_ball,
    verify_mckp,
    verify_rank,
    verify_select_ranks,
    verify_simplex,
    verify_soft_threshold,
    verify_sparse_quantized,
    verify_ternary,
    verify_uniform,
)
from compressopt.verify.convex import (
    ConvexResult,
    box_cvx,
    group_lasso_cvx,
    l1_ball_cvx,
    mckp_lp,
    simplex_cvx,
    soft_threshold_cvx,
)
from compressopt.verify.ilp import ILPResult, knapsack_ilp, mckp_ilp
from compressopt.verify.report import TOL, Report, Tol, tol_for

__all__ = [
    "TOL",
    "BruteResult",
    "ConvexResult",
    "ILPResult",
    "Report",
    "Tol",
    "best_codebook_least_squares",
    "best_subset_least_squares",
    "box_cvx",
    "brute_cardinality",
    "brute_channels",
    "brute_kmeans",
    "brute_kmeans_zero",
    "brute_knapsack",
    "brute_mckp",
    "brute_scaled_grid",
    "brute_sparse_quantized",
    "group_lasso_cvx",
    "knapsack_ilp",
    "l1_ball_cvx",
    "mckp_ilp",
    "mckp_lp",
    "simplex_cvx",
    "soft_threshold_cvx",
    "tol_for",
    "verify_allocate_bits",
    "verify_binary",
    "verify_box",
    "verify_cardinality",
    "verify_channels",
    "verify_codebook",
    "verify_ctl1",
    "verify_global_cardinality",
    "verify_global_channels",
    "verify_group_lasso",
    "verify_hard_threshold",
    "verify_kmeans",
    "verify_knapsack",
    "verify_l1_ball",
    "verify_mckp",
    "verify_rank",
    "verify_select_ranks",
    "verify_simplex",
    "verify_soft_threshold",
    "verify_sparse_quantized",
    "verify_ternary",
    "verify_uniform",
]
