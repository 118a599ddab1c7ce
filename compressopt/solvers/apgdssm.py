"""APGDSM / APGDSSM: quantization-aware training with channel pruning.

Li & Xin, "Channel pruning in quantization-aware training: an adaptive projection-gradient
descent-shrinkage-splitting method", arXiv:2204.04375, 2022, Algorithms 1 and 2. The problem
(eqs. 5-6) is

.. math:: \\min_{u \\in Q}\\; l(u) + \\lambda_2 \\|u\\|_{GL} + \\lambda_3 \\mathrm{CTL1}_a(u)
          + \\lambda_1 \\|u\\|_1 ,

Q the m-bit grid with a learned scale (any compression can stand for it). The float weights w
are trained with the gradient taken at their projection u = Proj_Q(w) (the BinaryConnect
update), then shrunk (ℓ1 prox) and, with splitting, pulled towards u.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

from compressopt._array import Array, array_namespace
from compressopt.projections.base import Compression, TensorScheme, as_compression, summarize
from compressopt.projections.prox import ctl1_grad, group_lasso_grad, soft_threshold
from compressopt.solvers.base import Coordinator, DifferentiableOracle, Timer, check_positive_int
from compressopt.tree import Params, tree_check, tree_map, tree_norm, tree_sub

__all__ = ["APGDSSM", "APGDSSMRecord", "APGDSSMState", "PenaltySchedule", "sparsity_report"]


@dataclass(frozen=True)
class PenaltySchedule:
    """Piecewise-constant factors for λ₁, λ₂ and β by step (epoch): Li & Xin's adaptive scheme.

    Row i applies from step ``milestones[i-1]`` (row 0 from step 0) to the next milestone, as
    in Table I (epochs → factors). With no milestones the factors are constant.

    Examples
    --------
    >>> s = PenaltySchedule(milestones=(10, 20), lambda1=(1, 2, 4), beta=(0, 1, 1))
    >>> s.at(0), s.at(15), s.at(99)
    ((1.0, 1.0, 0.0), (2.0, 1.0, 1.0), (4.0, 1.0, 1.0))
    """

    milestones: tuple[int, ...] = ()
    lambda1: tuple[float, ...] = (1.0,)
    lambda2: tuple[float, ...] = (1.0,)
    beta: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        rows = len(self.milestones) + 1
        if list(self.milestones) != sorted(set(self.milestones)) or any(
            m <= 0 for m in self.milestones
        ):
            raise ValueError(f"milestones must be increasing positive steps, got {self.milestones}")
        for name in ("lambda1", "lambda2", "beta"):
            f = tuple(float(v) for v in getattr(self, name))
            if len(f) == 1:
                f = f * rows
            if len(f) != rows or any(v < 0 for v in f):
                raise ValueError(
                    f"{name} needs {rows} nonnegative factors (one per interval), got {f}"
                )
            object.__setattr__(self, name, f)

    def at(self, step: int) -> tuple[float, float, float]:
        """Factors (λ₁, λ₂, β) at a step."""
        i = sum(step >= m for m in self.milestones)
        return self.lambda1[i], self.lambda2[i], self.beta[i]


class APGDSSMState(NamedTuple):
    """Iterate of APGDSSM."""

    w: dict[str, Array]  #: float weights w
    theta: Any  #: Θ of u = Proj_Q(w)
    k: int  #: steps (recorded iterations, e.g. epochs) done
    t: int  #: inner iterations (gradient steps) done


class APGDSSMRecord(NamedTuple):
    """Diagnostics of one step (Li & Xin Table II: accuracy, weight and channel sparsity)."""

    k: int
    lr: float  #: γ of the last inner iteration
    lambda1: float
    lambda2: float
    beta: float
    loss: float  #: l(u) at the end of the step (NaN unless ``eval_loss``)
    w_minus_u: float  #: ||w - u||, the distance of the float weights to the grid
    weight_sparsity: float  #: fraction of zero entries of u over all tensors
    channel_sparsity: float  #: fraction of all-zero output channels of u over all tensors
    layers: dict[str, tuple[float, float]]  #: name -> (weight sparsity, channel sparsity)
    weight_bits: int  #: storage of Θ, Σ bits·nnz
    nnz: int
    time_grad: float  #: seconds in oracle gradients
    time_cstep: float  #: seconds in the projections Proj_Q
    time_prox: float  #: seconds in the penalty gradients, splitting and shrinkage


def sparsity_report(
    u: Params, axis: int = 0
) -> tuple[float, float, dict[str, tuple[float, float]]]:
    """Weight and channel sparsity of `u`: overall fractions and per tensor.

    Weight sparsity is the fraction of zero entries; channel sparsity the fraction of slices
    along `axis` (output channels) that are entirely zero.
    """
    from compressopt.projections.prox import group_norms

    zeros = entries = zch = chans = 0
    layers = {}
    for n, x in u.items():
        xp = array_namespace(x)
        nz = int(xp.count_nonzero(x))
        size = math.prod(x.shape)
        g = group_norms(x, axis) if x.ndim else xp.reshape(xp.abs(x), (1,))
        zc = int(xp.sum(xp.astype(g == 0, xp.int64)))
        layers[n] = ((size - nz) / size if size else 0.0, zc / g.shape[0] if g.shape[0] else 0.0)
        zeros, entries, zch, chans = zeros + size - nz, entries + size, zch + zc, chans + g.shape[0]
    return (zeros / entries if entries else 0.0), (zch / chans if chans else 0.0), layers


@dataclass(frozen=True)
class APGDSSM(Coordinator):
    """Adaptive projection-gradient descent-shrinkage(-splitting) method.

    Parameters
    ----------
    lr : float or callable(t) -> float
        Learning rate γ_t of inner iteration t.
    lambda1, lambda2, lambda3 : float >= 0
        Weights of the ℓ1 (shrinkage), group-lasso and CTL1 penalties.
    a : float > 0
        CTL1's shape parameter (eq. 6).
    beta : float >= 0
        Splitting strength β; 0 gives APGDSM (no splitting), > 0 APGDSSM.
    schedule : PenaltySchedule, optional
        Adaptive factors for λ₁, λ₂, β by step (Table I's scheme).
    scale_with_lr : bool
        Algorithm 2: every λ is multiplied by γ_t / γ_0.
    group_axis : int
        Axis of the channels for the group penalties and channel sparsity (0: outputs).
    iters_per_step : int >= 1, optional
        Gradient steps per recorded step. Default: the oracle's ``steps_per_epoch`` (the
        minibatches of one epoch, for a streaming oracle), else 1.
    maxiter : int >= 1
        Recorded steps.
    eval_loss : bool
        Evaluate l(u) for the history at the end of each step.

    Notes
    -----
    Inner iteration t (Algorithm 1; the gradient is taken at the projected point)::

        u  = Proj_Q(w)
        w ← w - γ (∇l(u) + λ₂ ∂||u||_GL + λ₃ ∇CTL1_a(u))
        w ← w - γ β (w_t - u)            (splitting, if β > 0)
        w ← S_{γλ₁}(w)                   (shrinkage: soft threshold)

    and the output is u = Proj_Q(w). The oracle's ``grad`` may be stochastic (a minibatch
    gradient for a network). Each inner iteration costs one gradient, one projection and O(n)
    vector work; nothing leaves the arrays' device except the recorded diagnostics.
    """

    lr: float | Callable[[int], float] = 1e-2
    lambda1: float = 0.0
    lambda2: float = 0.0
    lambda3: float = 0.0
    a: float = 1.0
    beta: float = 0.0
    schedule: PenaltySchedule | None = None
    scale_with_lr: bool = False
    group_axis: int = 0
    iters_per_step: int | None = None
    maxiter: int = 100
    eval_loss: bool = True
    name = "APGDSSM"

    def __post_init__(self) -> None:
        for f in ("lambda1", "lambda2", "lambda3", "beta"):
            if not getattr(self, f) >= 0:
                raise ValueError(f"{f} must be >= 0, got {getattr(self, f)}")
        if not self.a > 0:
            raise ValueError(f"a must be > 0, got {self.a}")
        if not callable(self.lr) and not self.lr > 0:
            raise ValueError(f"lr must be > 0 or a callable, got {self.lr}")
        check_positive_int(self.maxiter, "maxiter")
        if self.iters_per_step is not None:
            check_positive_int(self.iters_per_step, "iters_per_step")

    def _gamma(self, t: int) -> float:
        return float(self.lr(t)) if callable(self.lr) else float(self.lr)

    def penalties(self, k: int, t: int) -> tuple[float, float, float, float, float]:
        """(γ, λ₁, λ₂, λ₃, β) in effect at step k, inner iteration t."""
        g = self._gamma(t)
        f1, f2, fb = self.schedule.at(k) if self.schedule else (1.0, 1.0, 1.0)
        s = g / self._gamma(0) if self.scale_with_lr else 1.0
        return g, self.lambda1 * f1 * s, self.lambda2 * f2 * s, self.lambda3 * s, self.beta * fb

    def init(
        self, w: Params, compression: Compression | TensorScheme, oracle: Any = None
    ) -> APGDSSMState:
        """w⁰ = w̄, Θ = Proj_Q(w̄)."""
        w = tree_check(w)
        return APGDSSMState(w=w, theta=as_compression(compression).compress(w), k=0, t=0)

    def step(
        self,
        state: APGDSSMState,
        oracle: DifferentiableOracle,
        compression: Compression | TensorScheme,
    ) -> tuple[APGDSSMState, APGDSSMRecord]:
        """`iters_per_step` inner iterations of Algorithm 1, then one record."""
        C = as_compression(compression)
        w, t = state.w, state.t
        t_grad = t_c = t_p = 0.0
        inner = self.iters_per_step or getattr(oracle, "steps_per_epoch", 1)
        for _ in range(inner):  # loop over gradient steps, not over weights
            gamma, l1, l2, l3, beta = self.penalties(state.k, t)
            with Timer() as tc:
                u = C.decompress(C.compress(w))  # u^t = Proj_Q(w^t)
            with Timer() as tg:
                g = oracle.grad(u)  # ∇l at the projected point
            with Timer() as tp:
                upd = partial(self._update, gamma=gamma, l1=l1, l2=l2, l3=l3, beta=beta)
                w = tree_map(upd, w, u, g)
            t += 1
            t_c, t_grad, t_p = t_c + tc.seconds, t_grad + tg.seconds, t_p + tp.seconds
        with Timer() as tc:
            theta = C.compress(w)
            u = C.decompress(theta)
        ws, cs, layers = sparsity_report(u, self.group_axis)
        cost = summarize(C.cost(theta))
        record = APGDSSMRecord(
            k=state.k,
            lr=gamma,
            lambda1=l1,
            lambda2=l2,
            beta=beta,
            loss=oracle.value(u) if self.eval_loss else math.nan,
            w_minus_u=tree_norm(tree_sub(w, u)),
            weight_sparsity=ws,
            channel_sparsity=cs,
            layers=layers,
            weight_bits=cost.weight_bits,
            nnz=cost.nnz,
            time_grad=t_grad,
            time_cstep=t_c + tc.seconds,
            time_prox=t_p,
        )
        return APGDSSMState(w=w, theta=theta, k=state.k + 1, t=t), record

    def _update(
        self,
        w: Array,
        u: Array,
        g: Array,
        *,
        gamma: float,
        l1: float,
        l2: float,
        l3: float,
        beta: float,
    ) -> Array:
        """One tensor's inner update: gradient at u, splitting, shrinkage (Algorithm 1)."""
        d = g
        if l2 > 0:
            d = d + l2 * group_lasso_grad(u, self.group_axis)
        if l3 > 0:
            d = d + l3 * ctl1_grad(u, self.a, self.group_axis)
        v = w - gamma * d
        if beta > 0:  # splitting: a gradient step on β/2 ||w - u||²
            v = v - gamma * beta * (w - u)
        return soft_threshold(v, gamma * l1) if l1 > 0 else v  # shrinkage: prox of γλ₁||·||₁

    def converged(self, record: APGDSSMRecord) -> bool:
        return False  # a fixed training budget, as in the paper

    def finite(self, record: APGDSSMRecord) -> bool:
        return math.isfinite(record.w_minus_u) and (
            not self.eval_loss or math.isfinite(record.loss)
        )
