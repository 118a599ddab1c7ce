"""Coordinators (LC, ADMM, ...) over a loss oracle and a compression. No torch import."""

from compressopt.solvers.admm import ADMM, ADMMRecord, ADMMState
from compressopt.solvers.apgdssm import (
    APGDSSM,
    APGDSSMRecord,
    APGDSSMState,
    MultiStepLR,
    Penalties,
    PenaltySchedule,
    sparsity_report,
)
from compressopt.solvers.base import (
    Coordinator,
    DifferentiableOracle,
    LossOracle,
    RetrainOracle,
    SolveResult,
    Status,
    history_columns,
)
from compressopt.solvers.dc import DCRecord, DCState, DirectCompression, IteratedDC
from compressopt.solvers.joint_admm import (
    JointADMM,
    JointADMMRecord,
    JointADMMState,
    budget_from_ratio,
    quantize_with_bits,
)
from compressopt.solvers.lc import LC, LCRecord, LCState
from compressopt.solvers.oracles import LeastSquares, LogisticRegression
from compressopt.solvers.slr import SLR, SLRRecord, SLRState, slr_alpha

__all__ = [
    "ADMM",
    "APGDSSM",
    "LC",
    "SLR",
    "ADMMRecord",
    "ADMMState",
    "APGDSSMRecord",
    "APGDSSMState",
    "Coordinator",
    "DCRecord",
    "DCState",
    "DifferentiableOracle",
    "DirectCompression",
    "IteratedDC",
    "JointADMM",
    "JointADMMRecord",
    "JointADMMState",
    "LCRecord",
    "LCState",
    "LeastSquares",
    "LogisticRegression",
    "LossOracle",
    "MultiStepLR",
    "Penalties",
    "PenaltySchedule",
    "RetrainOracle",
    "SLRRecord",
    "SLRState",
    "SolveResult",
    "Status",
    "budget_from_ratio",
    "history_columns",
    "quantize_with_bits",
    "slr_alpha",
    "sparsity_report",
]
