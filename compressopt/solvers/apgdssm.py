"""APGDSM / APGDSSM: quantization-aware training with channel pruning.

Li & Xin, "Channel pruning in quantization-aware training: an adaptive projection-gradient
descent-shrinkage-splitting method", arXiv:2204.04375, 2022, Algorithms 1 and 2. The problem
(eqs. 5-6) is

.. math:: \\min_{u \\in Q}\\; l(u) + \\lambda_2 \\|u\\|_{GL} + \\lambda_3 \\|u\\|_{CTL_1,a}
          + \\lambda_1 \\|u\\|_1 ,

Q the m-bit grid with a learned scale (any compression can stand for it), ``||u||_GL`` the
group lasso over channels (§II), ``||u||_CTL1,a = Σ_l 1 - ||u_l||_1 / (a + ||u_l||_1)`` over the
layers (§VI). The float weights w are trained with the gradient taken at their projection
u = Proj_Q(w) (the BinaryConnect update, eq. 1), then, with splitting, pulled towards u, then
shrunk (the ℓ1 prox): the ℓ1 term "does not contribute to the gradient" (§III).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Literal, NamedTuple

from compressopt._array import Array, array_namespace
from compressopt.projections.base import Compression, TensorScheme, as_compression, summarize
from compressopt.projections.prox import ctl1_grad, group_lasso_grad, soft_threshold
from compressopt.solvers.base import Coordinator, DifferentiableOracle, Timer, check_positive_int
from compressopt.tree import Params, tree_check, tree_map, tree_norm, tree_sub

__all__ = [
    "APGDSSM",
    "APGDSSMRecord",
    "APGDSSMState",
    "MultiStepLR",
    "Penalties",
    "PenaltySchedule",
    "sparsity_report",
]


def _milestones(m: tuple[int, ...]) -> tuple[int, ...]:
    m = tuple(m)
    if (
        any(isinstance(v, bool) or not isinstance(v, int) for v in m)
        or list(m) != sorted(set(m))
        or any(v <= 0 for v in m)
    ):
        raise ValueError(f"milestones must be increasing positive ints, got {m}")
    return m


@dataclass(frozen=True)
class PenaltySchedule:
    """Li & Xin's adaptive scheme (Table I): factors for λ₁ & λ₂ and for β by step (epoch).

    Table I reads "at epochs listed in the left-side column, we multiply the parameters by the
    factor in the right-side column", so by default (``cumulative=True``) the factors
    *multiply up*: ``lambda1[i]`` is the factor applied at ``milestones[i]``, and from that
    step on the parameter is λ₁ · Π_{j<=i} lambda1[j]. Table I itself is :meth:`table1`
    (λ factors 1, .5, .1, .05, .025 and β factors 1, .5, .1, .01, .001 over its five intervals).

    With ``cumulative=False`` each entry is the factor *of an interval* instead: one per
    interval, ``lambda1[0]`` before the first milestone (the reading of Table I this library
    used before issue 12; a deliberate option for schedules stated per interval).

    A single factor is repeated (for every milestone, or every interval). Steps are 0-based:
    a milestone m applies from step m on (PyTorch's ``MultiStepLR`` convention).

    Raises
    ------
    ValueError
        Milestones not increasing positive ints; a factor list of the wrong length, or a
        negative or non-finite factor.

    Examples
    --------
    >>> s = PenaltySchedule(milestones=(10, 20), lambda1=(0.5, 0.5), beta=(0.5,))
    >>> s.at(0), s.at(15), s.at(99)   # (λ₁ factor, λ₂ factor, β factor)
    ((1.0, 1.0, 1.0), (0.5, 1.0, 0.5), (0.25, 1.0, 0.25))
    >>> PenaltySchedule(milestones=(10,), lambda1=(1, 4), cumulative=False).at(10)
    (4.0, 1.0, 1.0)
    """

    milestones: tuple[int, ...] = ()
    lambda1: tuple[float, ...] = (1.0,)
    lambda2: tuple[float, ...] = (1.0,)
    beta: tuple[float, ...] = (1.0,)
    cumulative: bool = True

    def __post_init__(self) -> None:
        m = _milestones(self.milestones)
        object.__setattr__(self, "milestones", m)
        n = len(m) if self.cumulative else len(m) + 1
        what = "one per milestone (they multiply up)" if self.cumulative else "one per interval"
        for name in ("lambda1", "lambda2", "beta"):
            f = tuple(float(v) for v in getattr(self, name))
            if len(f) == 1:
                f = f * n
            if len(f) != n or any(not (v >= 0 and math.isfinite(v)) for v in f):
                raise ValueError(
                    f"{name} needs {n} finite nonnegative factors, {what}, got {f}"
                )
            object.__setattr__(self, name, f)

    @classmethod
    def table1(cls) -> PenaltySchedule:
        """Li & Xin's Table I: at epochs 35, 70, 110, 150 multiply λ₁ and λ₂ by .5, .2, .5, .5
        and β by .5, .2, .1, .1."""
        return cls(milestones=(35, 70, 110, 150), lambda1=(0.5, 0.2, 0.5, 0.5),
                   lambda2=(0.5, 0.2, 0.5, 0.5), beta=(0.5, 0.2, 0.1, 0.1))

    def at(self, step: int) -> tuple[float, float, float]:
        """Factors (λ₁, λ₂, β) in effect at `step` (0-based)."""
        i = sum(step >= m for m in self.milestones)
        if not self.cumulative:
            return self.lambda1[i], self.lambda2[i], self.beta[i]
        return tuple(math.prod(f[:i], start=1.0)  # type: ignore[return-value]
                     for f in (self.lambda1, self.lambda2, self.beta))


@dataclass(frozen=True)
class MultiStepLR:
    """A step learning-rate schedule: ``lr · factor^(number of milestones <= epoch)``.

    Called with the inner iteration t (as :class:`APGDSSM` calls its ``lr``); the epoch is
    ``t // steps_per_epoch``. Li & Xin §IV: "the initial learning rate is 0.1, and we multiply
    the learning rate by a factor of 0.1 at epochs 80, 120, and 160" (:meth:`li_xin`).

    Raises
    ------
    ValueError
        ``lr <= 0``, ``factor <= 0`` (or not finite), milestones not increasing positive
        ints, ``steps_per_epoch < 1``.

    Examples
    --------
    >>> s = MultiStepLR(0.1, (2, 4), steps_per_epoch=10)
    >>> [round(s(t), 6) for t in (0, 19, 20, 39, 40)]
    [0.1, 0.1, 0.01, 0.01, 0.001]
    """

    lr: float
    milestones: tuple[int, ...] = ()
    factor: float = 0.1
    steps_per_epoch: int = 1

    def __post_init__(self) -> None:
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be > 0 and finite, got {self.lr}")
        if not (self.factor > 0 and math.isfinite(self.factor)):
            raise ValueError(f"factor must be > 0 and finite, got {self.factor}")
        object.__setattr__(self, "milestones", _milestones(self.milestones))
        check_positive_int(self.steps_per_epoch, "steps_per_epoch")

    @classmethod
    def li_xin(cls, steps_per_epoch: int = 1) -> MultiStepLR:
        """Li & Xin §IV: 0.1, × 0.1 at epochs 80, 120 and 160 (of 200)."""
        return cls(0.1, (80, 120, 160), 0.1, steps_per_epoch)

    def __call__(self, t: int) -> float:
        epoch = t // self.steps_per_epoch
        return self.lr * self.factor ** sum(epoch >= m for m in self.milestones)


class Penalties(NamedTuple):
    """The parameters in effect at one inner iteration (see :meth:`APGDSSM.penalties`)."""

    lr: float  #: γ_t, the gradient (and splitting) step
    threshold: float  #: the shrinkage threshold τ of ``w ← Prox_τ(w)``
    lambda2: float  #: the coefficient of ||u||_GL in f (its gradient step is γ_t · lambda2)
    lambda3: float  #: the coefficient of CTL1 in f
    a: float  #: CTL1's shape parameter in effect
    beta: float  #: β of the splitting step ``w ← w - γ_t β (w - u)``


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
    lambda1: float  #: λ₁ times its schedule factor (before any learning-rate scaling)
    lambda2: float  #: the coefficient of ||u||_GL in f at the last inner iteration
    beta: float  #: β of the splitting step at the last inner iteration
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
    threshold: float = math.nan  #: shrinkage threshold τ at the last inner iteration
    lambda3: float = math.nan  #: the coefficient of CTL1 at the last inner iteration
    a: float = math.nan  #: CTL1's shape parameter at the last inner iteration


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
    """Adaptive projection-gradient descent-shrinkage(-splitting) method, Li & Xin Alg. 1-2.

    Parameters
    ----------
    lr : float or callable(t) -> float
        Learning rate γ_t of inner iteration t (0-based). Li & Xin §IV: 0.1, × 0.1 at epochs
        80, 120, 160 of 200, :meth:`MultiStepLR.li_xin`.
    lambda1, lambda2, lambda3 : float >= 0
        Weights of the ℓ1 (shrinkage), group-lasso and CTL1 penalties, as the paper means
        them (Table II: λ₁ = 0.04, λ₂ = 5e-6, β = 1e-3 for CIFAR-10 with Algorithm 1; Table
        III: λ₁ = 0.2, β = 0.01, λ₂ from 5e-4 to 5e-3 with Algorithm 2).
    a : float > 0
        CTL1's shape parameter (§VI, eq. 6).
    beta : float >= 0
        Splitting strength β; 0 gives APGDSM (no splitting), > 0 APGDSSM.
    schedule : PenaltySchedule, optional
        Adaptive factors for λ₁ & λ₂ and β by step (Table I is
        :meth:`PenaltySchedule.table1`; its factors multiply up).
    scale_with_lr : bool
        False: Algorithm 1. True: Algorithm 2, where "we let the parameters λ₁, λ₂, λ₃ and β
        have the same adaptive scheme by multiply it by the learning rate": f(u) = l(u) +
        γ_t λ₂ ||u||_GL + λ₃ ||u||_{CTL1, γ_t a}, shrinkage threshold γ_t λ₁, splitting γ_t β.
    threshold : {"paper", "prox_grad"}
        The shrinkage threshold. "paper" (default): Algorithm 1's ``Prox_{λ₁^t}``, threshold
        λ₁ times its schedule factor (Algorithm 2: γ_t λ₁). "prox_grad": γ_t λ₁ times its
        factor in both, the proximal-gradient (ISTA) step on eq. (5)'s λ₁||u||₁, so that λ₁
        is the weight of the ℓ1 term in the objective (the library's behaviour for Algorithm
        1 before issue 12; with a constant γ the fixed points solve eq. (5) with λ₁).
    splitting : {"paper", "simultaneous"}
        "paper" (default): Algorithm 1 line 5, ``w ← w - γ_t β (w - u)`` on the w *after* the
        gradient step. "simultaneous": relaxed variable splitting eq. (4) (RVSM), one step
        on l + β/2||w - u||², the splitting term evaluated at the w *before* the gradient step
        (the library's behaviour before issue 12).
    ctl1_groups : {"layer", "channel"}
        "layer" (default): eq. (6), one CTL1 term per tensor on its ℓ1 norm. "channel": one
        term per output channel (slices along `group_axis`), which also pushes small channels
        away from zero, against the group lasso (the library's behaviour before issue 12).
    shrink_every : {"iteration", "epoch"}
        How often lines 4-7 (splitting and shrinkage) run. "iteration" (default): after every
        gradient step, like lines 1-3. "epoch": once per recorded step (an epoch), after its
        gradient steps, with that epoch's u^t (the projection at its start): the box read
        literally, its loop being over epochs ("for t = 1, ..., 200"; Table I's epochs).
        The text does not settle it; Table II's λ₁ = 0.04 as a threshold applied at every
        minibatch exceeds most weights of a trained network (which collapses), as a
        threshold per epoch it does not.
    group_axis : int
        Axis of the channels for the group lasso and channel sparsity (0: outputs).
    iters_per_step : int >= 1, optional
        Gradient steps per recorded step. Default: the oracle's ``steps_per_epoch`` (the
        minibatches of one epoch, for a streaming oracle), else 1. The schedule's step is this
        recorded step (an epoch).
    maxiter : int >= 1
        Recorded steps (Li & Xin: 200 epochs).
    eval_loss : bool
        Evaluate l(u) for the history at the end of each step.

    Notes
    -----
    Inner iteration t, Algorithm 1 line by line (epoch k = the recorded step; λ₁^k, λ₂^k, β^k
    from the schedule; the box writes α for the gradient step and γ^t for the splitting
    step, and §IV names γ^t the learning rate: both are γ_t here)::

        u   = Proj_Q(w)                                   line 1
        f   = l(u) + λ₂^k ||u||_GL  [+ λ₃ CTL1_a(u)]      line 2 (λ₃: eq. 6's extra term)
        w  ← w - γ_t ∇f(u)                                line 3
        w  ← w - γ_t β^k (w - u)    (if β > 0)            lines 4-6
        w  ← Prox_{λ₁^k}(w)         (soft threshold)      line 7

    and Algorithm 2: f = l(u) + γ_t λ₂ ||u||_GL + λ₃ ||u||_{CTL1, γ_t a}, the same steps with
    threshold γ_t λ₁. The output is u = Proj_Q(w). ∂||u||_GL is u_g/||u_g|| on nonzero
    channels and 0 on zero ones; ∇CTL1 uses sign(0) = 0 (both keep zeros at rest).

    Deviations from the paper, all deliberate or forced by the text: Alg. 1's box prints
    ``Prox(w_g^t)`` and Alg. 2's ``Prox(w_g^{t-1})``; both are read as the current w (the
    other readings make the splitting step dead code). The box loops over epochs; by default,
    as in any SGD implementation, every line runs once per minibatch (inner iteration) and
    the penalties' schedule moves per epoch (``shrink_every="epoch"`` runs lines 4-7 once per
    epoch instead). The paper does not say whether Table I also applies under Algorithm 2;
    `schedule` applies under both if given. The ℓ1 term also takes λ₃'s CTL1 under
    Algorithm 1 when λ₃ > 0 (the paper uses CTL1 only with Algorithm 2).

    The oracle's ``grad`` may be stochastic (a minibatch gradient for a network). Each inner
    iteration costs one gradient, one projection and O(n) vector work; nothing leaves the
    arrays' device except the recorded diagnostics.
    """

    lr: float | Callable[[int], float] = 1e-2
    lambda1: float = 0.0
    lambda2: float = 0.0
    lambda3: float = 0.0
    a: float = 1.0
    beta: float = 0.0
    schedule: PenaltySchedule | None = None
    scale_with_lr: bool = False
    threshold: Literal["paper", "prox_grad"] = "paper"
    splitting: Literal["paper", "simultaneous"] = "paper"
    ctl1_groups: Literal["layer", "channel"] = "layer"
    shrink_every: Literal["iteration", "epoch"] = "iteration"
    group_axis: int = 0
    iters_per_step: int | None = None
    maxiter: int = 100
    eval_loss: bool = True
    name = "APGDSSM"
    _choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "threshold": ("paper", "prox_grad"),
        "splitting": ("paper", "simultaneous"),
        "ctl1_groups": ("layer", "channel"),
        "shrink_every": ("iteration", "epoch"),
    }

    def __post_init__(self) -> None:
        for f in ("lambda1", "lambda2", "lambda3", "beta"):
            v = getattr(self, f)
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{f} must be finite and >= 0, got {v}")
        if not (self.a > 0 and math.isfinite(self.a)):
            raise ValueError(f"a must be finite and > 0, got {self.a}")
        if not callable(self.lr) and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be > 0 and finite, or a callable, got {self.lr}")
        for f, allowed in self._choices.items():
            if getattr(self, f) not in allowed:
                raise ValueError(f"{f} must be one of {allowed}, got {getattr(self, f)!r}")
        check_positive_int(self.maxiter, "maxiter")
        if self.iters_per_step is not None:
            check_positive_int(self.iters_per_step, "iters_per_step")

    def _gamma(self, t: int) -> float:
        return float(self.lr(t)) if callable(self.lr) else float(self.lr)

    def penalties(self, k: int, t: int) -> Penalties:
        """The parameters in effect at step (epoch) k, inner iteration t.

        Algorithm 1: threshold λ₁^k (γ_t λ₁^k with ``threshold="prox_grad"``), GL coefficient
        λ₂^k, CTL1 λ₃ with shape a, splitting β^k. Algorithm 2 (``scale_with_lr``): threshold
        γ_t λ₁^k, GL coefficient γ_t λ₂^k, CTL1 λ₃ with shape γ_t a, splitting β^k. λ^k is λ
        times the schedule's factor at k (1 without a schedule).
        """
        g = self._gamma(t)
        f1, f2, fb = self.schedule.at(k) if self.schedule else (1.0, 1.0, 1.0)
        l1, l2, beta = self.lambda1 * f1, self.lambda2 * f2, self.beta * fb
        if self.scale_with_lr:  # Algorithm 2
            return Penalties(g, g * l1, g * l2, self.lambda3, g * self.a, beta)
        tau = l1 if self.threshold == "paper" else g * l1
        return Penalties(g, tau, l2, self.lambda3, self.a, beta)

    def init(
        self, w: Params, compression: Compression | TensorScheme, oracle: Any = None
    ) -> APGDSSMState:
        """w⁰ = w̄ (the float weights, "Input: float weights w⁰"), Θ = Proj_Q(w̄)."""
        w = tree_check(w)
        return APGDSSMState(w=w, theta=as_compression(compression).compress(w), k=0, t=0)

    def step(
        self,
        state: APGDSSMState,
        oracle: DifferentiableOracle,
        compression: Compression | TensorScheme,
    ) -> tuple[APGDSSMState, APGDSSMRecord]:
        """`iters_per_step` inner iterations of Algorithm 1 (or 2), then one record."""
        C = as_compression(compression)
        w, t = state.w, state.t
        t_grad = t_c = t_p = 0.0
        inner = self.iters_per_step or getattr(oracle, "steps_per_epoch", 1)
        per_iteration = self.shrink_every == "iteration"
        w0, u0 = w, None
        for _ in range(inner):  # loop over gradient steps, not over weights
            p = self.penalties(state.k, t)
            with Timer() as tc:
                u = C.decompress(C.compress(w))  # line 1: u^t = Proj_Q(w^{t-1})
            with Timer() as tg:
                g = oracle.grad(u)  # ∇l at the projected point
            with Timer() as tp:
                v = tree_map(partial(self._gradient_step, p=p), w, u, g)  # lines 2-3
                w = tree_map(partial(self._split_shrink, p=p), v, w, u) if per_iteration else v
            u0 = u if u0 is None else u0
            t += 1
            t_c, t_grad, t_p = t_c + tc.seconds, t_grad + tg.seconds, t_p + tp.seconds
        if not per_iteration:  # lines 4-7 once per epoch, with the epoch's u^t
            with Timer() as tp:
                w = tree_map(partial(self._split_shrink, p=p), w, w0, u0)
            t_p += tp.seconds
        with Timer() as tc:
            theta = C.compress(w)  # the output u = Proj_Q(w)
            u = C.decompress(theta)
        ws, cs, layers = sparsity_report(u, self.group_axis)
        cost = summarize(C.cost(theta))
        f1 = self.schedule.at(state.k)[0] if self.schedule else 1.0
        record = APGDSSMRecord(
            k=state.k,
            lr=p.lr,
            lambda1=self.lambda1 * f1,
            lambda2=p.lambda2,
            beta=p.beta,
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
            threshold=p.threshold,
            lambda3=p.lambda3,
            a=p.a,
        )
        return APGDSSMState(w=w, theta=theta, k=state.k + 1, t=t), record

    def _gradient_step(self, w: Array, u: Array, g: Array, *, p: Penalties) -> Array:
        """One tensor's lines 2-3: w - γ_t ∇f(u), ∇f(u) = ∇l(u) + λ₂ ∂||u||_GL + λ₃ ∇CTL1(u)."""
        d = g
        if p.lambda2 > 0:
            d = d + p.lambda2 * group_lasso_grad(u, self.group_axis)
        if p.lambda3 > 0:
            axis = None if self.ctl1_groups == "layer" or u.ndim == 0 else self.group_axis
            d = d + p.lambda3 * ctl1_grad(u, p.a, axis)
        return w - p.lr * d  # line 3: w^t = w^{t-1} - γ_t ∇f(u^t)

    def _split_shrink(self, v: Array, w: Array, u: Array, *, p: Penalties) -> Array:
        """One tensor's lines 4-7 on the gradient-updated `v` (`w`: before the gradient)."""
        if p.beta > 0:  # lines 4-6, splitting: w^t = w^t - γ_t β (w^t - u^t)
            v = v - p.lr * p.beta * ((v if self.splitting == "paper" else w) - u)
        return soft_threshold(v, p.threshold) if p.threshold > 0 else v  # line 7: Prox_τ

    def converged(self, record: APGDSSMRecord) -> bool:
        return False  # a fixed training budget, as in the paper

    def finite(self, record: APGDSSMRecord) -> bool:
        return math.isfinite(record.w_minus_u) and (
            not self.eval_loss or math.isfinite(record.loss)
        )
