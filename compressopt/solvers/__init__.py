"""Coordinators (LC, ADMM, ...) over a loss oracle and a compression. No torch import."""

from compressopt.solvers.admm import ADMM, ADMMRecord, ADMMState
from compressopt.solvers.base import (
    Coordinator,
    DifferentiableOracle,
    LossOracle,
    SolveResult,
    Status,
    history_columns,
)
from compressopt.solvers.lc import LC, LCRecord, LCState
from compressopt.solvers.oracles import LeastSquares, LogisticRegression

__all__ = [
    "ADMM",
    "LC",
    "ADMMRecord",
    "ADMMState",
    "Coordinator",
    "DifferentiableOracle",
    "LCRecord",
    "LCState",
    "LeastSquares",
    "LogisticRegression",
    "LossOracle",
    "SolveResult",
    "Status",
    "history_columns",
]
