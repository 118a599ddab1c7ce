"""ADMM for compression constraints (scaled form, fixed or increasing ρ).

Boyd, Parikh, Chu, Peleato & Eckstein, "Distributed optimization and statistical learning via
the alternating direction method of multipliers", Found. Trends ML 3(1), 2011, §3.1.1 (scaled
form), §3.3 (stopping criterion) and §3.4.1 (varying penalty), applied to

.. math:: \\min_{w, z} L(w) + I_{\\mathcal{C}}(z) \\quad \\text{s.t.} \\quad w = z,

where :math:`\\mathcal{C} = \\{\\Delta(\\Theta)\\}` is the feasible set of a compression, so the
z-update is its projection Π (Boyd §9.1, nonconvex constraints). The joint sparsity–
quantization ADMM of Yang et al. (CVPR 2020) specializes this scheme.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from compressopt._array import Array
from compressopt.projections.base import Compression, TensorScheme, as_compression, bind_mu
from compressopt.solvers.base import Coordinator, LossOracle, Timer, check_positive_int, diagnostics
from compressopt.tree import (
    Params,
    tree_add,
    tree_check,
    tree_norm,
    tree_numel,
    tree_scale,
    tree_sub,
    tree_zeros_like,
)

__all__ = ["ADMM", "ADMMRecord", "ADMMState"]


class ADMMState(NamedTuple):
    """Iterate of ADMM (scaled form)."""

    w: dict[str, Array]  #: x in Boyd's notation: the loss's variable
    theta: Any  #: compressed parameters; z = Δ(Θ)
    u: dict[str, Array]  #: scaled dual variable u = y / ρ
    rho: float  #: penalty parameter of the next iteration
    k: int  #: iterations done


class ADMMRecord(NamedTuple):
    """Diagnostics of one ADMM iteration (Boyd §3.3)."""

    k: int
    rho: float  #: ρ used in this iteration
    loss: float  #: L(w) (NaN unless ``eval_loss``)
    loss_compressed: float  #: L(z) (NaN unless ``eval_loss``)
    primal_residual: float  #: ||r|| = ||w - z||
    dual_residual: float  #: ||s|| = ρ ||z - z_prev||
    eps_primal: float  #: primal tolerance of eq. (3.12)
    eps_dual: float  #: dual tolerance of eq. (3.12)
    weight_bits: int  #: storage of Θ, Σ bits·nnz
    nnz: int
    time_lstep: float
    time_cstep: float
    time_multipliers: float


@dataclass(frozen=True)
class ADMM(Coordinator):
    """ADMM with a projection z-update, scaled duals, fixed or increasing ρ.

    Iteration k (Boyd eqs. 3.5-3.7, scaled form)::

        w ← argmin_w L(w) + ρ/2 ||w - z + u||²      (the L step, center z - u)
        z ← Δ(Π(w + u))                             (the C step)
        u ← u + w - z

    Parameters
    ----------
    rho : float > 0
        Initial penalty ρ0.
    rho_growth : float >= 1
        ρ_{k+1} = min(ρ_k · rho_growth, rho_max); 1 keeps ρ fixed. With a constraint set that
        is not convex, ρ → ∞ (growth > 1) is what guarantees w - z → 0.
    rho_max : float
        Cap on ρ.
    residual_balancing : bool
        Boyd §3.4.1 eq. (3.13) (μ = 10, τ = 2): double ρ when ||r|| > 10 ||s||, halve it when
        ||s|| > 10 ||r||; applied after `rho_growth`.
    maxiter : int >= 1
    eps_abs, eps_rel : float >= 0
        Stop when ||r|| <= ε_pri and ||s|| <= ε_dual with
        ε_pri = √n ε_abs + ε_rel max(||w||, ||z||), ε_dual = √n ε_abs + ε_rel ||ρu|| (eq. 3.12).
    eval_loss : bool
        Evaluate L(w) and L(z) each iteration for the history.

    Notes
    -----
    When ρ changes, the scaled dual is rescaled, u ← u ρ_k / ρ_{k+1}, so that the unscaled
    dual y = ρu is unchanged (Boyd §3.4.1). Returns z = Δ(Θ), feasible by construction.

    Examples
    --------
    >>> import numpy as np
    >>> from compressopt.solvers import ADMM, LeastSquares
    >>> from compressopt.projections import Cardinality
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((20, 5)); b = A @ np.array([2.0, 0, 0, -1.0, 0])
    >>> res = ADMM(rho=1e-2, rho_growth=1.5, maxiter=60).run(
    ...     {"w": np.zeros(5)}, LeastSquares(A, b), Cardinality(k=2))
    >>> np.round(res.x["w"], 6), res.converged
    (array([ 2.,  0.,  0., -1.,  0.]), True)
    """

    rho: float = 1.0
    rho_growth: float = 1.0
    rho_max: float = math.inf
    residual_balancing: bool = False
    maxiter: int = 100
    eps_abs: float = 1e-6
    eps_rel: float = 1e-4
    eval_loss: bool = True
    name = "ADMM"

    def __post_init__(self) -> None:
        if not self.rho > 0:
            raise ValueError(f"rho must be > 0, got {self.rho}")
        if not self.rho_growth >= 1:
            raise ValueError(f"rho_growth must be >= 1, got {self.rho_growth}")
        if not self.rho_max >= self.rho:
            raise ValueError(f"rho_max ({self.rho_max}) must be >= rho ({self.rho})")
        check_positive_int(self.maxiter, "maxiter")
        if not (self.eps_abs >= 0 and self.eps_rel >= 0):
            raise ValueError("eps_abs and eps_rel must be >= 0")

    def init(
        self, w: Params, compression: Compression | TensorScheme, oracle: LossOracle | None = None
    ) -> ADMMState:
        """w = w̄, z = Δ(Π(w̄)), u = 0."""
        w = tree_check(w)
        theta = bind_mu(as_compression(compression), self.rho).compress(w)
        return ADMMState(w=w, theta=theta, u=tree_zeros_like(w), rho=self.rho, k=0)

    def _next_rho(self, rho: float, r: float, s: float) -> float:
        new = min(rho * self.rho_growth, self.rho_max)
        if self.residual_balancing:
            if r > 10 * s:
                new = min(2 * new, self.rho_max)
            elif s > 10 * r:
                new = new / 2
        return new

    def step(
        self, state: ADMMState, oracle: LossOracle, compression: Compression | TensorScheme
    ) -> tuple[ADMMState, ADMMRecord]:
        """One ADMM iteration: w-update (L step), z-update (C step), dual update, ρ update."""
        C = as_compression(compression)
        rho, u = state.rho, state.u
        with Timer() as t_l:
            z_prev = C.decompress(state.theta)
            w = oracle.lstep(state.w, tree_sub(z_prev, u), rho, step=state.k)  # eq. (3.5)
        with Timer() as t_c:
            theta = bind_mu(C, rho).compress(tree_add(w, u))  # eq. (3.6): z = Π(w + u)
            z = C.decompress(theta)
        with Timer() as t_m:
            r_vec = tree_sub(w, z)
            u = tree_add(u, r_vec)  # eq. (3.7)
        r = tree_norm(r_vec)
        s = rho * tree_norm(tree_sub(z, z_prev))
        sqrt_n = math.sqrt(tree_numel(w))
        eps_pri = sqrt_n * self.eps_abs + self.eps_rel * max(tree_norm(w), tree_norm(z))
        eps_dual = sqrt_n * self.eps_abs + self.eps_rel * rho * tree_norm(u)
        d = diagnostics(oracle, C, w, z, theta, self.eval_loss)
        record = ADMMRecord(
            k=state.k,
            rho=rho,
            loss=d.loss,
            loss_compressed=d.loss_compressed,
            primal_residual=r,
            dual_residual=s,
            eps_primal=eps_pri,
            eps_dual=eps_dual,
            weight_bits=d.weight_bits,
            nnz=d.nnz,
            time_lstep=t_l.seconds,
            time_cstep=t_c.seconds,
            time_multipliers=t_m.seconds,
        )
        new_rho = self._next_rho(rho, r, s)
        if new_rho != rho:
            u = tree_scale(u, rho / new_rho)
        return ADMMState(w=w, theta=theta, u=u, rho=new_rho, k=state.k + 1), record

    def converged(self, record: ADMMRecord) -> bool:
        return (
            record.primal_residual <= record.eps_primal and record.dual_residual <= record.eps_dual
        )

    def finite(self, record: ADMMRecord) -> bool:
        return math.isfinite(record.primal_residual) and (
            not self.eval_loss or math.isfinite(record.loss)
        )
