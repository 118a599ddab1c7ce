"""Additive combination of two compressions: Δ(Θ₁, Θ₂) = Δ₁(Θ₁) + Δ₂(Θ₂).

Carreira-Perpiñán & Idelbayev, "Model compression as constrained optimization, with
application to neural nets. Part V: combining compressions", arXiv:2107.04380, 2021, §3: the
weights are the sum of two compressed parts (e.g. a low-bit quantization plus a few
full-precision corrections), and the C step

.. math:: \\min_{\\Theta_1, \\Theta_2} \\|w - \\Delta_1(\\Theta_1) - \\Delta_2(\\Theta_2)\\|^2

is solved by alternating optimization: each half-step is the projection of one part onto its
set with the other fixed, so the error never increases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from compressopt._array import Array
from compressopt.projections.base import (
    Compression,
    StorageCost,
    TensorScheme,
    as_compression,
    bind_mu,
)
from compressopt.tree import Params, tree_add, tree_check, tree_sub

__all__ = ["Additive", "AdditiveTheta"]


class AdditiveTheta(NamedTuple):
    """Θ of an additive combination: the two parts' Θ."""

    first: Any
    second: Any


@dataclass(frozen=True)
class Additive:
    """Weights as the sum of two compressed parts, ``Δ₁(Θ₁) + Δ₂(Θ₂)``.

    Parameters
    ----------
    first, second : Compression or TensorScheme
        The two parts (a tensor scheme applies to every tensor).
    iters : int >= 1
        Alternating rounds of the C step (Θ₁ = Π₁(w − Δ₂(Θ₂)), then Θ₂ = Π₂(w − Δ₁(Θ₁))),
        starting from Θ₂ = Π₂(w − Δ₁(Π₁(w))).

    Notes
    -----
    Heuristic (alternating optimization): the error ``||w − Δ(Θ)||`` is non-increasing over
    the rounds when both parts are exact projections, but the result is a local optimum of
    the joint problem. Storage: both parts are stored, so ``nnz = nnz₁ + nnz₂`` and ``bits``
    is their average, ``(bits₁ nnz₁ + bits₂ nnz₂) / (nnz₁ + nnz₂)``.

    The part fitted first matters: put the one that should capture the outliers first (a
    sparse correction before a coarse quantization), or the quantization bends to the outliers.

    Examples
    --------
    Two full-precision corrections plus one bit per weight:

    >>> import numpy as np
    >>> from compressopt.projections import AdaptiveQuantization, Cardinality
    >>> c = Additive(Cardinality(k=2), AdaptiveQuantization(2), iters=50)
    >>> w = {"w": np.array([-1.0, -1.1, 1.0, 0.9, 5.0, -4.0])}
    >>> np.round(c.decompress(c.compress(w))["w"], 3)
    array([-1.05, -1.05,  0.95,  0.95,  5.  , -4.  ])
    """

    first: Compression | TensorScheme
    second: Compression | TensorScheme
    iters: int = 10

    exact = False

    def __post_init__(self) -> None:
        if isinstance(self.iters, bool) or not isinstance(self.iters, int) or self.iters < 1:
            raise ValueError(f"iters must be a positive int, got {self.iters!r}")

    @property
    def _parts(self) -> tuple[Compression, Compression]:
        return as_compression(self.first), as_compression(self.second)

    def with_mu(self, mu: float) -> Additive:
        """The same combination with penalty-form parts bound to ``mu``."""
        return Additive(bind_mu(self._parts[0], mu), bind_mu(self._parts[1], mu), self.iters)

    def compress(self, w: Params, /) -> AdditiveTheta:
        w = tree_check(w)
        c1, c2 = self._parts
        t1 = c1.compress(w)
        t2 = c2.compress(tree_sub(w, c1.decompress(t1)))
        for _ in range(self.iters - 1):
            t1 = c1.compress(tree_sub(w, c2.decompress(t2)))
            t2 = c2.compress(tree_sub(w, c1.decompress(t1)))
        return AdditiveTheta(t1, t2)

    def decompress(self, theta: AdditiveTheta, /) -> dict[str, Array]:
        c1, c2 = self._parts
        return tree_add(c1.decompress(theta.first), c2.decompress(theta.second))

    def contains(self, w: Params, /, *, atol: float = 0.0) -> bool:
        """Whether the alternating C step reproduces `w` to `atol` (a sufficient test)."""
        out = self.decompress(self.compress(w))
        d = tree_sub(out, w)
        return all(float(abs(v).max()) <= atol if v.shape != (0,) else True for v in d.values())

    def cost(self, theta: AdditiveTheta, /) -> dict[str, StorageCost]:
        c1, c2 = self._parts
        a, b = c1.cost(theta.first), c2.cost(theta.second)
        out = {}
        for n in a:
            nnz = a[n].nnz + b[n].nnz
            vb = a[n].value_bits + b[n].value_bits
            out[n] = StorageCost(
                numel=a[n].numel,
                nnz=nnz,
                bits=vb / nnz if nnz else 0,
                overhead_bits=a[n].overhead_bits + b[n].overhead_bits,
            )
        return out
