"""Surrogate Lagrangian relaxation (SLR) for weight pruning.

Zhou, Bragin, Pepin, Gurevin, Miao & Ding, "Surrogate Lagrangian relaxation: a path to
retrain-free deep neural network pruning" (2023; Gurevin et al., IJCAI 2021), Algorithm 1,
eqs. (4)-(13), after Bragin, Luh, Yan, Yu & Stern, "Convergence of the surrogate Lagrangian
relaxation method", JOTA 164, 2015. The problem

.. math:: \\min_W f(W) \\quad \\text{s.t.} \\quad W = Z,\\; Z \\in \\mathcal{S}

with :math:`\\mathcal{S} = \\{Z : \\operatorname{card}(Z_n) \\le l_n\\}` (per layer) or one
global κ,

is relaxed with the augmented Lagrangian (4)

.. math:: L_\\rho(W, Z, \\Lambda) = f(W) + \\langle \\Lambda, W - Z \\rangle
          + \\frac{\\rho}{2} \\|W - Z\\|^2 ,

and the multipliers move only when a *surrogate optimality condition* says the subproblem
made progress, with step sizes that decay by α^k (eq. 13), which is what makes the method
converge for the nonconvex set 𝒮 (Bragin et al. 2015, Thm. 2.1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from compressopt._array import Array
from compressopt.projections.base import (
    Compression,
    TensorScheme,
    as_compression,
    bind_mu,
    summarize,
)
from compressopt.solvers.base import (
    Coordinator,
    LossOracle,
    RetrainOracle,
    Timer,
    check_positive_int,
)
from compressopt.tree import (
    Params,
    tree_axpy,
    tree_check,
    tree_map,
    tree_norm,
    tree_sq_norm,
    tree_sub,
    tree_vdot,
    tree_zeros_like,
)

__all__ = ["SLR", "SLRRecord", "SLRState", "slr_alpha"]


def slr_alpha(k: int, M: float, r: float) -> float:
    """Step-size decay of eq. (13): ``α_k = 1 - 1 / (M k^(1 - 1/k^r))``, k >= 1.

    The exponent follows Bragin et al. 2015 eq. (67) (``k^r``; the pruning paper prints κ^r).
    """
    return 1.0 - 1.0 / (M * k ** (1.0 - 1.0 / k**r))


class SLRState(NamedTuple):
    """Iterate of SLR."""

    w: dict[str, Array]  #: W^k, the weights trained in the L step
    theta: Any  #: Θ with Z^k = Δ(Θ) in the constraint set
    lam: dict[str, Array]  #: multipliers Λ^k
    s: float  #: last step size s^k
    m: int  #: multiplier updates done so far (α's index with ``alpha_index="update"``)
    loss: float  #: f(W^k), kept for the next surrogate condition (6)
    k: int  #: iterations done


class SLRRecord(NamedTuple):
    """Diagnostics of one SLR iteration (Zhou et al. Fig. 9: the two conditions per epoch)."""

    k: int
    rho: float
    loss: float  #: f(W^k)
    lagrangian: float  #: L_ρ(W^k, Z^k, Λ^{k+1})
    condition1: int  #: 1 if the surrogate condition (6) held (Λ updated by eq. 7)
    condition2: int  #: 1 if the surrogate condition (11) held (Λ updated by eq. 12)
    s_prime: float  #: s'^k of eq. (8) (the previous step size when (6) failed)
    s: float  #: s^k of eq. (13) (s'^k when (11) failed)
    alpha: float  #: α used by the last multiplier update of this iteration (NaN if none)
    w_minus_z: float  #: ||W^k - Z^k||
    hard_prune_metric: float  #: evaluate(Π(W^k)) if an evaluator is given, else NaN
    weight_bits: int  #: storage of the hard-pruned Π(W^k)
    nnz: int
    time_lstep: float
    time_cstep: float
    time_multipliers: float


@dataclass(frozen=True)
class SLR(Coordinator):
    """Surrogate Lagrangian relaxation for a compression constraint (pruning).

    Parameters
    ----------
    rho : float > 0
        Penalty ρ of the augmented Lagrangian (4) (paper default 0.1).
    s0 : float > 0
        Initial step size s^0 (paper default 1e-2).
    M : float > 1, r : float in (0, 1)
        Step-size decay α_k of eq. (13) (paper defaults M = 300, r = 0.1).
    maxiter : int >= 1
        Iterations (one L step and one C step each; an epoch of SGD for a network).
    tol : float >= 0
        Stop when ||W^k - Z^k|| <= tol.
    evaluate : callable(dict name -> array) -> float, optional
        A metric of the hard-pruned weights Π(W^k), recorded each iteration (e.g. test
        accuracy: the paper's "hard-prune accuracy without retraining").
    step_rule : {"paper", "bragin"}
        The numerator of eq. (13). "paper" (default), as printed:
        ``s^k = α^k s'^k ||W^{k-1} - Z^{k-1}|| / ||W^k - Z^k||``. "bragin": ``||W^k -
        Z^{k-1}||``, the norm of the previous multiplier update's direction (eq. 7's), which
        is Bragin et al. 2015's rule ``s^k = α_k s^{k-1} ||g̃^{k-1}|| / ||g̃^k||`` applied to
        the two updates in turn (the library's rule before issue 12). Eq. (8) is the same in
        both: ``s'^k = α^k s^{k-1} ||W^{k-1} - Z^{k-1}|| / ||W^k - Z^{k-1}||``. Measured
        (tests/solvers/test_convex_and_agreement.py's problems): on six convex constrained
        least-squares problems (box, simplex, ℓ1 ball; ρ = s0 = 10, M = 5, 1000 iterations)
        "bragin" reaches cvxpy's optimum to 1e-12 while "paper" stalls 0.9-19 % above it;
        on ten planted 3-sparse problems (ρ = 10, 200 iterations) "bragin" finds the optimal
        support on 9, "paper" on 7. With "bragin" the step times the residual telescopes,
        ``s^k ||W^k - Z^k|| = α α' s^{k-1} ||W^{k-1} - Z^{k-1}||`` (α, α' the iteration's
        two α's), so the multiplier increments shrink; as printed it does not.
    alpha_index : {"iteration", "update"}
        The index of α in eqs. (8) and (13). "iteration" (default), as printed: α^k, k the
        iteration (1-based), the same α in both updates of an iteration. "update": α_{m+1},
        m the multiplier updates made so far, so α advances with each update (as in the
        authors' code; the library's rule before issue 12).

    Notes
    -----
    Iteration k, in the order of Algorithm 1 (centre of the L step: Z − Λ/ρ)::

        W^k  ≈ argmin_W L_ρ(W, Z^{k-1}, Λ)                          (5)   line 3
        if L_ρ(W^k, Z^{k-1}, Λ) < L_ρ(W^{k-1}, Z^{k-1}, Λ):         (6)   line 4
            s' = α^k s ||W^{k-1} - Z^{k-1}|| / ||W^k - Z^{k-1}||    (8)
            Λ  ← Λ + s' (W^k - Z^{k-1})                             (7)   line 5
        Z^k = Π(W^k + Λ/ρ)                                          (10)  line 9, C step
        if L_ρ(W^k, Z^k, Λ) < L_ρ(W^k, Z^{k-1}, Λ):                 (11)  line 10
            s  = α^k s' ||W^{k-1} - Z^{k-1}|| / ||W^k - Z^k||       (13)
            Λ  ← Λ + s (W^k - Z^k)                                  (12)  line 11

    with α^k = 1 - 1/(M k^(1 - 1/k^r)) (eq. 13). When a condition fails, W^k and Z^k are
    kept and the multiplier update is skipped (Algorithm 1, lines 7 and 13), its step size
    carried over (s' = s^{k-1}, s^k = s'). Each condition costs one oracle ``value`` call
    (f(W^k)); f(W^{k-1}) is carried in the state. The returned point is the *hard-pruned*
    W: x = Δ(Π(W^K)); ``output(state, compression)`` gives it for any state, so a callback
    can stop the run when the hard-pruned accuracy reaches a target (Zhou et al. §4.2: "if
    the hard-pruning accuracy meets the accuracy criteria, the training is stopped"; with
    `evaluate`, ``record.hard_prune_metric`` holds it).

    Deviations and readings: the paper leaves the initialization free (line 1); here W^0 =
    w̄, Z^0 = Π(W^0), Λ^0 = 0, s = s0. Footnote 1 (solve the subproblems again when (11)
    fails) is not done: the next iteration solves them anyway. The exponent of α is k^r
    (Bragin et al. 2015, eq. 67; the paper prints κ^r). The L step is whatever the oracle's
    ``lstep`` does (SGD, or Adam in the authors' CIFAR setting).
    """

    rho: float = 0.1
    s0: float = 1e-2
    M: float = 300.0
    r: float = 0.1
    maxiter: int = 50
    tol: float = 0.0
    evaluate: Callable[[dict[str, Array]], float] | None = None
    step_rule: Literal["paper", "bragin"] = "paper"
    alpha_index: Literal["iteration", "update"] = "iteration"
    name = "SLR"

    def __post_init__(self) -> None:
        if not self.rho > 0:
            raise ValueError(f"rho must be > 0, got {self.rho}")
        if not self.s0 > 0:
            raise ValueError(f"s0 must be > 0, got {self.s0}")
        if not self.M > 1:
            raise ValueError(f"M must be > 1, got {self.M}")
        if not 0 < self.r < 1:
            raise ValueError(f"r must be in (0, 1), got {self.r}")
        check_positive_int(self.maxiter, "maxiter")
        if not self.tol >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if self.step_rule not in ("paper", "bragin"):
            raise ValueError(f"step_rule must be 'paper' or 'bragin', got {self.step_rule!r}")
        if self.alpha_index not in ("iteration", "update"):
            raise ValueError(
                f"alpha_index must be 'iteration' or 'update', got {self.alpha_index!r}")

    def _lagrangian(self, f: float, w: Params, z: Params, lam: Params) -> float:
        """L_ρ(W, Z, Λ) of eq. (4), given f = f(W)."""
        d = tree_sub(w, z)
        return f + tree_vdot(lam, d) + 0.5 * self.rho * tree_sq_norm(d)

    def init(
        self, w: Params, compression: Compression | TensorScheme, oracle: LossOracle | None = None
    ) -> SLRState:
        """W^0 = w̄, Z^0 = Π(W^0), Λ^0 = 0, s = s0.

        Raises
        ------
        TypeError
            The compression is a penalty form (a prox C step): the surrogate conditions (6)
            and (11) compare L_ρ without a penalty term, which is valid only for constraint
            sets.
        """
        C = as_compression(compression)
        if bind_mu(C, self.rho) != C:
            raise TypeError(
                "SLR is defined for constraint sets (its surrogate conditions omit a penalty "
                "term); use LC or ADMM for penalty-form C steps such as L1Penalty"
            )
        w = tree_check(w)
        theta = bind_mu(C, self.rho).compress(w)
        loss = oracle.value(w) if oracle is not None else math.nan
        return SLRState(w=w, theta=theta, lam=tree_zeros_like(w), s=self.s0, m=0, loss=loss, k=0)

    def step(
        self, state: SLRState, oracle: LossOracle, compression: Compression | TensorScheme
    ) -> tuple[SLRState, SLRRecord]:
        """One iteration of Algorithm 1 (both surrogate conditions and multiplier updates)."""
        C = as_compression(compression)
        rho, lam, s, m = self.rho, state.lam, state.s, state.m
        w_prev = state.w
        f_prev = state.loss if math.isfinite(state.loss) else oracle.value(w_prev)
        alpha = math.nan
        with Timer() as t_l:
            z_prev = C.decompress(state.theta)
            w = oracle.lstep(w_prev, tree_axpy(-1.0 / rho, lam, z_prev), rho, step=state.k)  # (5)
            f = oracle.value(w)
        last = (w_prev, z_prev)  # W^{k-1} - Z^{k-1}: the numerator of eqs. (8) and (13)
        with Timer() as t_m1:
            cond1 = self._lagrangian(f, w, z_prev, lam) < self._lagrangian(
                f_prev, w_prev, z_prev, lam
            )
            s_prime = s
            if cond1:  # (6) holds: step (8), multipliers (7)
                lam, s_prime, alpha = self._multipliers(
                    lam, s, self._alpha_k(state.k, m), last, (w, z_prev))
                m += 1
        with Timer() as t_c:
            theta = bind_mu(C, rho).compress(tree_axpy(1.0 / rho, lam, w))  # (10)
            z = C.decompress(theta)
        with Timer() as t_m2:
            cond2 = self._lagrangian(f, w, z, lam) < self._lagrangian(f, w, z_prev, lam)
            s_new = s_prime
            if cond2:  # (11) holds: step (13), multipliers (12)
                before = last if self.step_rule == "paper" else (w, z_prev)
                lam, s_new, alpha = self._multipliers(
                    lam, s_prime, self._alpha_k(state.k, m), before, (w, z))
                m += 1
        hard_theta = bind_mu(C, rho).compress(w)
        hard = C.decompress(hard_theta)
        cost = summarize(C.cost(hard_theta))
        record = SLRRecord(
            k=state.k,
            rho=rho,
            loss=f,
            lagrangian=self._lagrangian(f, w, z, lam),
            condition1=int(cond1),
            condition2=int(cond2),
            s_prime=s_prime,
            s=s_new,
            alpha=alpha,
            w_minus_z=tree_norm(tree_sub(w, z)),
            hard_prune_metric=float(self.evaluate(hard)) if self.evaluate else math.nan,
            weight_bits=cost.weight_bits,
            nnz=cost.nnz,
            time_lstep=t_l.seconds,
            time_cstep=t_c.seconds,
            time_multipliers=t_m1.seconds + t_m2.seconds,
        )
        new = SLRState(w=w, theta=theta, lam=lam, s=s_new, m=m, loss=f, k=state.k + 1)
        return new, record

    def _alpha_k(self, k: int, m: int) -> float:
        """α of eq. (13) for an update in iteration k (0-based) after m updates."""
        return slr_alpha(k + 1 if self.alpha_index == "iteration" else m + 1, self.M, self.r)

    @staticmethod
    def _multipliers(
        lam: Params,
        s: float,
        alpha: float,
        before: tuple[Params, Params],
        after: tuple[Params, Params],
    ) -> tuple[dict[str, Array], float, float]:
        """One multiplier update: ``Λ + s_new (W - Z)`` at `after` = (W, Z), with the step
        ``s_new = α s ||W' - Z'|| / ||W - Z||`` from `before` = (W', Z') (eqs. 7-8 and
        12-13; the step is kept when a norm is 0). Returns (Λ, s_new, α)."""
        g = tree_sub(*after)
        num, den = tree_norm(tree_sub(*before)), tree_norm(g)
        s_new = alpha * s * num / den if num > 0 and den > 0 else s
        return tree_axpy(s_new, g, lam), s_new, alpha

    def converged(self, record: SLRRecord) -> bool:
        return record.w_minus_z <= self.tol

    def finite(self, record: SLRRecord) -> bool:
        return math.isfinite(record.w_minus_z) and math.isfinite(record.loss)

    def output(
        self, state: SLRState, compression: Compression | TensorScheme
    ) -> tuple[dict[str, Array], Any]:
        """Hard pruning: Θ = Π(W^k), x = Δ(Θ) (not Z^k), for any state (e.g. in a callback)."""
        C = as_compression(compression)
        theta = bind_mu(C, self.rho).compress(state.w)
        return C.decompress(theta), theta

    def retrain(
        self, x: Params, oracle: RetrainOracle, *, steps: int | None = None
    ) -> dict[str, Array]:
        """Masked retraining: minimize L over the kept weights of the hard-pruned `x`.

        The support ``x != 0`` is fixed; the oracle's ``retrain`` does the work (gradient
        masking for a network, an exact solve for least squares). Returns new arrays.
        """
        mask = tree_map(lambda v: v != 0, x)
        return oracle.retrain(x, mask, steps=steps)
