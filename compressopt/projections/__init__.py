"""C steps: projections onto compression sets and proximal operators. No torch import.

Every projection works on any Array-API array (numpy; torch tensors on any device).
"""

from compressopt.projections.additive import Additive, AdditiveTheta
from compressopt.projections.base import (
    Chain,
    Compression,
    CostSummary,
    Grouped,
    PerTensor,
    StorageCost,
    Tasks,
    TensorScheme,
    as_compression,
    bind_mu,
    bits_for,
    summarize,
)
from compressopt.projections.cardinality import (
    Cardinality,
    GlobalCardinality,
    Pruned,
    keep_to_k,
    project_cardinality,
    project_global_cardinality,
)
from compressopt.projections.quantization import (
    AdaptiveQuantization,
    Quantized,
    kmeans1d_exact,
    kmeans1d_fast,
)

__all__ = [
    "AdaptiveQuantization",
    "Additive",
    "AdditiveTheta",
    "Cardinality",
    "Chain",
    "Compression",
    "CostSummary",
    "GlobalCardinality",
    "Grouped",
    "PerTensor",
    "Pruned",
    "Quantized",
    "StorageCost",
    "Tasks",
    "TensorScheme",
    "as_compression",
    "bind_mu",
    "bits_for",
    "keep_to_k",
    "kmeans1d_exact",
    "kmeans1d_fast",
    "project_cardinality",
    "project_global_cardinality",
    "summarize",
]
