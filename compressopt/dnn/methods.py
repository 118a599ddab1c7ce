"""The registry of compression methods of ``compressopt compress --method NAME``.

A method turns the job's settings into a coordinator and a compression, and adds its own
diagnostics to the report. Adding one (e.g. SLR, or a joint sparsity–quantization ADMM with
its own options) is one :func:`register` call with a :class:`Method`; its ``add_arguments``
puts method-specific options on the command line, and they reach ``build`` through
``config.options``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compressopt.projections import (
    AdaptiveQuantization,
    Chain,
    Compression,
    GlobalCardinality,
    PerTensor,
)
from compressopt.solvers import ADMM, LC, SolveResult

if TYPE_CHECKING:
    from compressopt.dnn.experiment import JobConfig

__all__ = ["METHODS", "Method", "build_compression", "final_values", "register"]


def build_compression(prune: float | None, quantize: int | None) -> Compression:
    """The constraint set of ``--prune KEEP`` and/or ``--quantize K``.

    * prune only: :class:`~compressopt.projections.GlobalCardinality` ``(keep=KEEP)``, one ℓ0
      budget over all compressed tensors (Carreira-Perpiñán & Idelbayev, CVPR 2018);
    * quantize only: a K-entry codebook per tensor, optimal 1-D k-means
      (:class:`~compressopt.projections.AdaptiveQuantization`, Carreira-Perpiñán & Idelbayev
      2017, Part II, §4.1); ``ceil(log2 K)`` bits per weight;
    * both: prune, then quantize the nonzeros of each tensor with K learned entries, zeros kept
      (:class:`~compressopt.projections.Chain`; a heuristic for the intersection of the sets).

    Raises
    ------
    ValueError
        Neither given, KEEP outside (0, 1], or K < 2.
    """
    if prune is None and quantize is None:
        raise ValueError("give --prune KEEP and/or --quantize K")
    if prune is not None and not (isinstance(prune, float | int) and 0.0 < prune <= 1.0):
        raise ValueError(f"--prune KEEP must be in (0, 1], got {prune}")
    bad_k = isinstance(quantize, bool) or not isinstance(quantize, int) or quantize < 2
    if quantize is not None and bad_k:
        raise ValueError(f"--quantize K must be an integer >= 2, got {quantize}")
    if quantize is None:
        return GlobalCardinality(keep=float(prune))  # type: ignore[arg-type]
    if prune is None:
        return PerTensor(AdaptiveQuantization(quantize))
    return Chain(
        GlobalCardinality(keep=float(prune)),
        PerTensor(AdaptiveQuantization(quantize, sparse=True)),
    )


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Method:
    """One entry of :data:`METHODS`.

    Attributes
    ----------
    name : str
        The ``--method`` value.
    help : str
        One line for ``--help``.
    build : callable(config) -> (coordinator, compression)
        The solver (with the job's penalty schedule ``config.mus``) and the constraint.
    diagnostics : callable(result) -> dict
        Method-specific figures for ``report.json`` (JSON-serializable), from the solver's
        :class:`~compressopt.solvers.SolveResult`.
    add_arguments : callable(parser), optional
        Adds method-specific command-line options; their values arrive in ``config.options``.
    """

    name: str
    help: str
    build: Callable[[JobConfig], tuple[Any, Compression]]
    diagnostics: Callable[[SolveResult], dict[str, Any]] = field(default=lambda r: {})
    add_arguments: Callable[[argparse._ArgumentGroup], None] | None = None


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add `method` to :data:`METHODS` (replacing one of the same name) and return it."""
    METHODS[method.name] = method
    return method


def final_values(*fields: str) -> Callable[[SolveResult], dict[str, Any]]:
    """Diagnostics: the run's status and iterations, and ``final_<field>`` of the last record."""

    def diagnostics(r: SolveResult) -> dict[str, Any]:
        last = r.history[-1] if r.history else None
        out: dict[str, Any] = {"status": r.status.name.lower(), "iterations": r.nit}
        for f in fields:
            out[f"final_{f}"] = None if last is None else _finite_or_none(getattr(last, f))
        return out

    return diagnostics


def _lc_build(config: JobConfig) -> tuple[LC, Compression]:
    return LC(mus=config.mus, tol=0.0, penalty="al", eval_loss=False), build_compression(
        config.prune, config.quantize
    )


def _admm_build(config: JobConfig) -> tuple[ADMM, Compression]:
    mus = config.mus
    growth = mus[1] / mus[0] if len(mus) > 1 else 1.0
    solver = ADMM(rho=mus[0], rho_growth=max(growth, 1.0), maxiter=len(mus), eval_loss=False)
    return solver, build_compression(config.prune, config.quantize)


register(Method(
    "lc",
    "learning-compression, augmented Lagrangian (Carreira-Perpiñán 2017), mu_k = mu0 a^k",
    _lc_build,
    final_values("mu", "feasibility", "lambda_norm"),
))
register(Method(
    "admm",
    "ADMM with a projection z-update (Boyd et al. 2011), rho_k = mu0 a^k",
    _admm_build,
    final_values("rho", "primal_residual", "dual_residual"),
))
