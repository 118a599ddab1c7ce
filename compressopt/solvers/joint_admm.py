"""Joint sparsity-quantization ADMM under one model-size budget.

Yang, Gui, Zhu & Liu, "Automatic neural network compression by sparsity-quantization joint
learning: a constrained optimization-based approach", CVPR 2020, Algorithm 1. Problem (1):

.. math:: \\min_W \\ell(W) \\quad \\text{s.t.} \\quad
          \\sum_i b(W^{(i)}) \\|W^{(i)}\\|_0 \\le S, \\qquad
          b(W) = \\lceil \\log_2 (\\#\\text{unique nonzeros of } W) \\rceil ,

decoupled (2)/(3) into W (which carries the sparsity) and a copy V (which carries the bit
widths), ``g(V, W) = Σ b(V_i) ||W_i||_0 <= S``, with the augmented Lagrangian
``ℓ(W) + <Y, W - V> + ρ/2 ||W - V||²``. The layers' sparsity and bit widths are chosen by the
method: the W projection is a 0-1 knapsack (eq. 8, Prop. 1), the V projection a
multiple-choice knapsack over bit widths (eq. 10, Prop. 2).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from compressopt._array import Array, array_namespace
from compressopt.projections.base import FLOAT_BITS, count_nonzero
from compressopt.projections.codebooks import UniformQuantization
from compressopt.projections.joint import SparseQuantized
from compressopt.projections.knapsack import project_knapsack
from compressopt.projections.mckp import allocate_bits
from compressopt.projections.quantization import AdaptiveQuantization, Quantized
from compressopt.solvers.base import Coordinator, LossOracle, Timer, check_positive_int
from compressopt.tree import (
    Params,
    tree_axpy,
    tree_check,
    tree_map,
    tree_norm,
    tree_numel,
    tree_sq_norm,
    tree_sub,
    tree_zeros_like,
)

__all__ = [
    "JointADMM",
    "JointADMMRecord",
    "JointADMMState",
    "budget_from_ratio",
    "quantize_with_bits",
]


def budget_from_ratio(w: Params | int, ratio: float) -> float:
    """The budget S in bits for a compression ratio R: ``S = 32 Σ numel / R`` (Yang §4.1).

    `w` is the collection of compressed tensors, or their total number of entries.

    Raises
    ------
    ValueError
        ``ratio <= 0``.
    """
    if not ratio > 0:
        raise ValueError(f"the compression ratio must be > 0, got {ratio}")
    n = w if isinstance(w, int) else tree_numel(w)
    return FLOAT_BITS * n / ratio


def quantize_with_bits(
    w: Params, bits: Mapping[str, int], *, method: str = "fast"
) -> dict[str, Quantized]:
    """Quantize each tensor's nonzeros with a ``2**bits[name]``-entry k-means codebook.

    Zeros stay zero (sparse mode), so the storage is ``Σ bits_i nnz_i``. The final step of
    Yang et al. (§4.1): W quantized with V's bit widths.
    """
    return {
        n: AdaptiveQuantization(2 ** bits[n], method=method, sparse=True).compress(x)
        for n, x in w.items()
    }


def _dequantize(theta: Mapping[str, Quantized]) -> dict[str, Array]:
    return {n: AdaptiveQuantization(1).decompress(q) for n, q in theta.items()}


class _Projections(NamedTuple):
    knapsack: Any  #: the W projection's result (eq. 8)
    mckp: Any  #: the V projection's allocation (eq. 10)
    nnz: dict[str, int]  #: ||W_i||_0 after the W projection
    time_w: float  #: seconds in the W projection
    time_v: float  #: seconds in the V projection


class JointADMMState(NamedTuple):
    """Iterate of the joint ADMM."""

    w: dict[str, Array]  #: W: weights, sparse after each knapsack projection
    v: dict[str, Array]  #: V: the quantized copy (W's sparsity, b(V_i) bits per nonzero)
    y: dict[str, Array]  #: dual variables Y
    bits: dict[str, int]  #: b(V_i), bits per nonzero of each tensor
    k: int  #: iterations (projection periods τ') done


def _unscaled(x: float, exponent: int) -> float:
    """``x · 4^exponent``: a squared quantity the projections report in units of
    ``4^exponent`` (nonzero only beyond 2^±255) in w's own units (inf on overflow)."""
    try:
        return math.ldexp(x, 2 * exponent)
    except OverflowError:
        return math.inf


class JointADMMRecord(NamedTuple):
    """Diagnostics of one period τ' (Yang et al. Fig. 2 and Fig. 3)."""

    k: int
    rho: float
    loss: float  #: ℓ(W) after the SGD phase (NaN unless ``eval_loss``)
    loss_quantized: float  #: ℓ(W quantized with V's bits) (NaN unless ``eval_loss``)
    mse: float  #: ||W - V||² / n, the MSE of their Fig. 2
    w_minus_v: float  #: ||W - V||, the constraint violation
    budget_used: int  #: Σ b(V_i) ||W_i||_0 in bits (<= budget)
    budget: float  #: S in bits
    lp_gap_knapsack: float  #: LP bound - greedy objective of the W projection (>= 0)
    lp_gap_mckp: float  #: greedy error - LP bound of the V projection (>= 0)
    nnz: dict[str, int]  #: ||W_i||_0 per tensor
    bits: dict[str, int]  #: b(V_i) per tensor
    time_lstep: float
    time_cstep: float  #: both projections (the two below, plus W's nonzero counts)
    time_multipliers: float
    time_wproj: float = math.nan  #: the W projection (eq. 8), part of time_cstep
    time_vproj: float = math.nan  #: the V projection (eq. 10), part of time_cstep


@dataclass(frozen=True)
class JointADMM(Coordinator):
    """ADMM for pruning and mixed-precision quantization under one budget in bits.

    Takes the joint set as its compression:
    ``JointADMM().run(w, oracle, SparseQuantized(budget_bits=S))`` (the set's ``candidates``
    and k-means ``method`` are used; see :func:`budget_from_ratio` for a ratio R).

    Parameters
    ----------
    rho : float > 0
        Penalty ρ of the augmented Lagrangian (paper default 0.05).
    rho_growth : float >= 1
        ρ_k = ρ·a^k in period k (default 1: the paper's fixed ρ). An increasing ρ drives
        ||W − V|| to 0 as in LC's μ → ∞; the duals Y are unscaled, so they carry over
        unchanged when ρ changes.
    maxiter : int >= 1
        Projection periods τ' (the paper projects once per epoch; each period is one L step).
    init_bits : int, optional
        b of the uniform quantization that initializes V (Algorithm 1, line 1); its bit
        widths drive the first W projection (line 2). Default: the largest candidate of the
        set (the paper does not give b; the authors' LeNet-5 setting is 3).
    tol : float >= 0, optional
        Stop when ||W - V|| <= tol; by default every period runs, as in the paper.
    eval_loss : bool
        Evaluate ℓ(W) and ℓ of the quantized W for the history (two oracle ``value`` calls
        and one quantization per period).
    v_support : {"w", "free"}
        The V projection (eq. 10). "w" (default): V quantizes W + Y/ρ on W's support, so V
        is itself sparse and quantized (a point of problem 1). "free": eq. (10) as written,
        ``min_V ||V − (W + Y/ρ)||² s.t. Σ b(V_i)||W_i||_0 <= S`` — b(V) counts V's distinct
        nonzeros, so every entry of W + Y/ρ goes to 0 or one of the 2^b_i levels, V may be
        nonzero off W's support, and the budget charges W's nonzeros (the authors' code does
        this); see :func:`~compressopt.projections.allocate_bits` ``(zero_level=True)``.
    init_projections : bool
        True (default): :meth:`init` does Algorithm 1's lines 2-4 (W projected, V projected
        from W + Y/ρ, Y updated) before the first SGD period. False: skip them, V the uniform
        quantization of the dense W and Y = 0 (the library's start before issue 12).

    Notes
    -----
    Algorithm 1 line by line: :meth:`init` is lines 1-4, :meth:`step` one period τ' (lines
    5-10), :meth:`output` line 13 and §4.1's final quantization::

        1  W = w̄; V = uniform quantization of W; Y = 0
        2  W ← P_W(W)          knapsack projection with V's bit widths        (eq. 8)
        3  V ← P_V(W + Y/ρ)    MCKP projection                               (eq. 10)
        4  Y ← Y + ρ(W − V)                                                   (eq. 7)
        5-6  τ' times: W ← (W − α∇ℓ(W) + αρ(V − Y/ρ)) / (1 + αρ)   (eq. 5: the oracle's L step)
        7  W ← P_W(W)                                                         (eq. 8)
        8  V ← P_V(W + Y/ρ)                                                   (eq. 10)
        9  Y ← Y + ρ(W − V)                                                   (eq. 7)
        13 W* = W, quantized with V's bit widths (§4.1)

    Deviations from the paper: the V projection keeps V on W's support by default
    (``v_support="w"``; eq. 10 as written is ``"free"``); ``rho_growth > 1`` (an option; the
    paper's ρ is fixed at 0.05); lines 5-6 are whatever the oracle's ``lstep`` does with
    centre V − Y/ρ and penalty ρ (the torch oracle's ``penalty="prox"`` is eq. 5's step, its
    ``"gradient"`` adds ρ(W − c) to the gradient instead); the period τ' is the oracle's L
    step (an epoch for the torch oracle, as in §3.4: "τ' is set to be the iteration number of
    one epoch"). The projections solve eqs. (8) and (10) at least as well as the paper's
    greedies: P_W takes entries in decreasing W̄²/b order while they fit, also after the
    first that does not (Prop. 1's "until the constraint boundary is reached"); P_V solves
    the MCKP of Prop. 2 exactly when its Pareto frontier is small (LeNet-5: always), where
    §3.4's greedy stops at the first upgrade that does not fit; its k-means errors are the
    ``"fast"`` method's (within 1 % of optimal) unless the set says ``method="exact"``. The
    history's ℓ(W) is taken after the SGD period, before the W projection (Fig. 2a's
    "training loss of W"), and ℓ(W quantized) with V's widths (Fig. 2b), both through the
    oracle's ``value`` (the torch oracle's: a fixed evaluation subset).

    The returned point quantizes the final W with V's bit widths (§4.1), so it meets the
    budget exactly: Σ b_i nnz_i <= S, each tensor's nonzeros from a 2^b_i-entry codebook.
    The oracle's L step with centre ``V - Y/ρ`` and penalty ρ is eq. (5)'s proximal SGD (for
    a network: SGD on ℓ + ρ/2 ||W - c||² for τ' iterations).

    A heuristic for a nonconvex, mixed-integer problem. The W projection maximizes the kept
    energy Σ W̄² and so fills any slack in the budget with small entries, which the V
    projection must then fit into the same codebook; on tiny problems whose budget exceeds
    what the data need this can cost a lot (measured in ``tests/solvers/test_joint_admm.py``
    against exhaustive search: within 5% on planted instances whose budget matches the
    structure). The final codebook is a k-means of W's nonzeros, not refitted to the loss.
    """

    rho: float = 0.05
    rho_growth: float = 1.0
    maxiter: int = 50
    init_bits: int | None = None
    tol: float | None = None
    eval_loss: bool = True
    v_support: Literal["w", "free"] = "w"
    init_projections: bool = True
    name = "JointADMM"

    def __post_init__(self) -> None:
        if not self.rho > 0:
            raise ValueError(f"rho must be > 0, got {self.rho}")
        if not (math.isfinite(self.rho_growth) and self.rho_growth >= 1):
            raise ValueError(f"rho_growth must be a finite number >= 1, got {self.rho_growth}")
        check_positive_int(self.maxiter, "maxiter")
        b = self.init_bits
        if b is not None and (isinstance(b, bool) or not isinstance(b, numbers.Integral)
                              or not 1 <= b <= 16):
            raise ValueError(f"init_bits must be an int in [1, 16], got {b!r}")
        if b is not None:
            object.__setattr__(self, "init_bits", int(b))
        if self.tol is not None and not self.tol >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if self.v_support not in ("w", "free"):
            raise ValueError(f"v_support must be 'w' or 'free', got {self.v_support!r}")

    @staticmethod
    def _joint(compression: Any) -> SparseQuantized:
        if not isinstance(compression, SparseQuantized):
            raise TypeError(
                "JointADMM needs the joint set SparseQuantized(budget_bits=...) as its "
                f"compression, got {type(compression).__name__}"
            )
        return compression

    def init(
        self, w: Params, compression: SparseQuantized, oracle: LossOracle | None = None
    ) -> JointADMMState:
        """Algorithm 1, lines 1-4, before the first SGD period.

        Line 1: W = w̄ (the pretrained dense model), V = a uniform `init_bits`-bit
        quantization of W (its bit widths b(V_i) drive the first W projection), Y = 0.
        Line 2: W ← P_W(W), the knapsack projection with V's bit widths (eq. 8).
        Line 3: V ← P_V(W + Y/ρ), the MCKP projection (eq. 10; Y = 0 here).
        Line 4: Y ← Y + ρ(W − V) (eq. 7).

        With ``init_projections=False`` lines 2-4 are skipped (V the uniform quantization of
        the dense W, Y = 0: the library's start before issue 12).
        """
        J = self._joint(compression)
        w = tree_check(w)
        b0 = self.init_bits if self.init_bits is not None else max(J.candidates)
        uq = UniformQuantization(bits=b0)
        v = {n: uq.project(x) for n, x in w.items()}  # line 1: V = uniform quantization of W
        y, bits = tree_zeros_like(w), {n: b0 for n in w}  # line 1: Y = 0
        if self.init_projections:
            rho = self._rho(0)
            w, v, bits, _ = self._project(w, y, bits, rho, J)  # lines 2-3: eqs. (8), (10)
            y = tree_axpy(rho, tree_sub(w, v), y)  # line 4: Y ← Y + ρ(W − V), eq. (7)
        return JointADMMState(w=w, v=v, y=y, bits=bits, k=0)

    def _rho(self, k: int) -> float:
        return self.rho * self.rho_growth**k

    def _project(
        self, w: Params, y: Params, bits: Mapping[str, int], rho: float, J: SparseQuantized
    ) -> tuple[dict[str, Array], dict[str, Array], dict[str, int], _Projections]:
        """Algorithm 1 lines 7-8 (and 2-3): W ← P_W(W) with V's widths `bits` (eq. 8), then
        V ← P_V(W + Y/ρ) (eq. 10). Returns W, V, b(V) and the projections' diagnostics."""
        with Timer() as t_w:
            kn = project_knapsack(w, bits, J.budget_bits)  # eq. (8)
            w = kn.w
            nnz = {n: count_nonzero(x) for n, x in w.items()}  # ||W_i||_0, one host read each
        with Timer() as t_v:
            alloc = self._project_v(w, y, kn.masks, nnz, rho, J)
        return w, alloc.decompress(), dict(alloc.bits), _Projections(kn, alloc, nnz, t_w.seconds,
                                                                     t_v.seconds)

    def _project_v(self, w: Params, y: Params, masks: Params, nnz: Mapping[str, int],
                   rho: float, J: SparseQuantized) -> Any:
        """Algorithm 1 line 8 (and 3): V ← P_V(W + Y/ρ), eq. (10); the allocation."""
        if self.v_support == "w":  # eq. (10) on W's sparsity pattern
            target = tree_map(
                lambda wi, yi, m: array_namespace(wi).where(m, wi + yi / rho, 0 * wi),
                w,
                y,
                masks,
            )
            return allocate_bits(target, J.budget_bits, J.candidates, method=J.method)
        # eq. (10) as written: zeros free anywhere, W's nonzeros charged
        return allocate_bits(tree_axpy(1.0 / rho, y, w), J.budget_bits, J.candidates,
                             method=J.method, zero_level=True, nnz=dict(nnz))

    def step(
        self, state: JointADMMState, oracle: LossOracle, compression: SparseQuantized
    ) -> tuple[JointADMMState, JointADMMRecord]:
        """One projection period τ': Algorithm 1 lines 6-10 (the L step, then the W
        projection, the V projection and the dual update)."""
        J = self._joint(compression)
        rho, y, S = self._rho(state.k), state.y, J.budget_bits
        with Timer() as t_l:
            # lines 5-6, τ' times: W ← (W − α∇ℓ(W) + αρ(V − Y/ρ)) / (1 + αρ), the proximal
            # SGD step of eq. (5) on ℓ + ρ/2||W − (V − Y/ρ)||²: the oracle's L step
            w = oracle.lstep(state.w, tree_axpy(-1.0 / rho, y, state.v), rho, step=state.k)
            loss = oracle.value(w) if self.eval_loss else math.nan
        with Timer() as t_c:
            w, v, bits, pr = self._project(w, y, state.bits, rho, J)  # lines 7-8
        with Timer() as t_m:
            y = tree_axpy(rho, tree_sub(w, v), y)  # line 9: Y ← Y + ρ(W − V), eq. (7)
        if self.eval_loss:
            loss_q = oracle.value(_dequantize(quantize_with_bits(w, bits, method=J.method)))
        else:
            loss_q = math.nan
        record = JointADMMRecord(
            k=state.k,
            rho=rho,
            loss=loss,
            loss_quantized=loss_q,
            mse=tree_sq_norm(tree_sub(w, v)) / max(tree_numel(w), 1),
            w_minus_v=tree_norm(tree_sub(w, v)),
            budget_used=sum(bits[n] * pr.nnz[n] for n in w),
            budget=S,
            lp_gap_knapsack=_unscaled(float(pr.knapsack.lp_bound) - float(pr.knapsack.objective),
                                      pr.knapsack.exponent),
            lp_gap_mckp=_unscaled(pr.mckp.error - pr.mckp.lp_bound,
                                  getattr(pr.mckp, "exponent", 0)),
            nnz=pr.nnz,
            bits=dict(bits),
            time_lstep=t_l.seconds,
            time_cstep=t_c.seconds,
            time_multipliers=t_m.seconds,
            time_wproj=pr.time_w,
            time_vproj=pr.time_v,
        )
        new = JointADMMState(w=w, v=v, y=y, bits=bits, k=state.k + 1)
        return new, record

    def converged(self, record: JointADMMRecord) -> bool:
        return self.tol is not None and record.w_minus_v <= self.tol

    def finite(self, record: JointADMMRecord) -> bool:
        return math.isfinite(record.mse) and (not self.eval_loss or math.isfinite(record.loss))

    def finetune(
        self,
        x: Params,
        bits: Mapping[str, int],
        oracle: Any,
        compression: SparseQuantized,
        *,
        steps: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Array]:
        """Fine-tune the output with its sparsity and bit widths fixed (budget kept).

        Straight-through retraining of ``min L(Q(u))`` over latent u on the support of `x`,
        Q = :func:`quantize_with_bits` with widths `bits` (each tensor's nonzeros to a
        ``2**bits[name]``-entry k-means codebook, refitted at every call): the fine-tuning
        stage of Yang et al.'s code (not in the paper's Algorithm 1). The result has at most
        the nonzeros of `x` and ``2**bits`` values per tensor, so it still meets the budget.
        `oracle` needs ``retrain(w, mask, steps=..., project=...)`` (the torch adapter's
        :meth:`~compressopt.dnn.oracle.TorchOracle.retrain`); `kwargs` go to it (e.g. ``lr``).
        """
        J = self._joint(compression)
        x = tree_check(x)
        mask = {n: t != 0 for n, t in x.items()}

        def project(w: Params) -> dict[str, Array]:
            return _dequantize(quantize_with_bits(w, bits, method=J.method))

        return oracle.retrain(x, mask, steps=steps, project=project, **kwargs)

    def output(
        self, state: JointADMMState, compression: SparseQuantized
    ) -> tuple[dict[str, Array], dict[str, Quantized]]:
        """§4.1: quantize W with V's bit widths; the result meets the budget exactly."""
        J = self._joint(compression)
        theta = quantize_with_bits(state.w, state.bits, method=J.method)
        return _dequantize(theta), theta
