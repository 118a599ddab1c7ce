"""Direct compression (DC) and iterated direct compression (iDC): the LC paper's baselines.

Carreira-Perpiñán, "Model compression as constrained optimization, with application to neural
nets. Part I: general framework", arXiv:1707.01209, 2017:

* **DC** (§4.2, eq. 12; §6.2.1): train the reference w̄, then compress its weights,
  Θ^DC = Π(w̄) = argmin_Θ ||w̄ − Δ(Θ)||²; the model is Δ(Θ^DC) and w̄ is discarded. It is
  the start of the LC path (μ → 0⁺) and ignores the loss, so it degrades as the compression
  grows.
* **iDC** (§6.2.3): "we optimize L(w) to obtain w̄ and then compress it into Θ^DC. Next, we
  optimize L(w) again but initializing w from Δ(Θ^DC), and then we compress it; etc." With
  exact steps it cycles between w̄ and Δ(Θ^DC); with inexact (SGD) steps or local optima it
  wanders between them (e.g. Han et al.'s trained quantization). It does not converge to a
  solution of the constrained problem (the LC algorithm does).

Both are coordinators on the common interface (``init``, ``step``, ``run`` →
:class:`~compressopt.solvers.base.SolveResult`), so they sit beside :class:`LC` in every
comparison table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from compressopt._array import Array
from compressopt.projections.base import Compression, TensorScheme, as_compression, bind_mu
from compressopt.solvers.base import Coordinator, LossOracle, Timer, check_positive_int, diagnostics
from compressopt.tree import Params, tree_check, tree_norm, tree_sub

__all__ = ["DCRecord", "DCState", "DirectCompression", "IteratedDC"]


class DCState(NamedTuple):
    """Iterate of DC / iDC."""

    w: dict[str, Array]  #: the last uncompressed weights (w̄ for DC)
    theta: Any  #: Θ = Π(w); Δ(Θ) is the model
    k: int  #: iterations done


class DCRecord(NamedTuple):
    """Diagnostics of one DC / iDC round."""

    k: int
    loss: float  #: L(w) of the uncompressed weights (NaN unless ``eval_loss``)
    loss_compressed: float  #: L(Δ(Θ)), the compressed model's loss (NaN unless ``eval_loss``)
    feasibility: float  #: ||w − Δ(Θ)||, the compression error
    change: float  #: ||Δ(Θ_k) − Δ(Θ_{k−1})|| (0 for DC's single round)
    weight_bits: int  #: storage of Θ, Σ bits·nnz
    nnz: int
    time_lstep: float
    time_cstep: float


def _constraint(compression: Compression | TensorScheme, name: str) -> Compression:
    C = as_compression(compression)
    if bind_mu(C, 1.0) != C:
        raise TypeError(
            f"{name} projects onto a constraint set; a penalty-form C step (e.g. L1Penalty) "
            "has no direct compression (its prox at μ → 0⁺ is 0): use LC or ADMM"
        )
    return C


def _round(oracle: LossOracle | None, C: Compression, w: Params, theta: Any, k: int,
           change: float, eval_loss: bool, t_l: float, t_c: float) -> DCRecord:
    delta = C.decompress(theta)
    d = diagnostics(oracle, C, w, delta, theta, eval_loss and oracle is not None)
    return DCRecord(k=k, loss=d.loss, loss_compressed=d.loss_compressed,
                    feasibility=tree_norm(tree_sub(w, delta)), change=change,
                    weight_bits=d.weight_bits, nnz=d.nnz, time_lstep=t_l, time_cstep=t_c)


@dataclass(frozen=True)
class DirectCompression(Coordinator):
    """Direct compression: Θ^DC = Π(w̄) (Carreira-Perpiñán 2017, eq. 12).

    Parameters
    ----------
    eval_loss : bool
        Record L(w̄) and L(Δ(Θ^DC)) (two oracle ``value`` calls).

    Notes
    -----
    :meth:`init` compresses (one C step, Π over all tensors); the single :meth:`step`
    records the diagnostics and never calls the oracle's L step, so ``run`` needs the
    oracle only for ``eval_loss``. Exact whenever Π is (it is the C step of LC's first
    iteration at μ → 0⁺). Penalty-form compressions are refused (TypeError).

    Examples
    --------
    >>> import numpy as np
    >>> from compressopt.projections import Cardinality
    >>> from compressopt.solvers import DirectCompression, LeastSquares
    >>> ls = LeastSquares(np.eye(3), np.array([3.0, -1.0, 2.0]))
    >>> DirectCompression().run({"w": np.array([3.0, -1.0, 2.0])}, ls, Cardinality(k=2)).x
    {'w': array([3., 0., 2.])}
    """

    eval_loss: bool = True
    name = "DC"

    @property
    def niter(self) -> int:
        return 1

    def init(self, w: Params, compression: Compression | TensorScheme,
             oracle: LossOracle | None = None) -> DCState:
        """w = w̄ (validated, not modified), Θ = Π(w̄)."""
        C = _constraint(compression, "DirectCompression")
        w = tree_check(w)
        return DCState(w=w, theta=C.compress(w), k=0)

    def step(self, state: DCState, oracle: LossOracle | None,
             compression: Compression | TensorScheme) -> tuple[DCState, DCRecord]:
        """The single round: the diagnostics of Δ(Θ^DC)."""
        C = _constraint(compression, "DirectCompression")
        record = _round(oracle, C, state.w, state.theta, state.k, 0.0, self.eval_loss, 0.0, 0.0)
        return state._replace(k=state.k + 1), record

    def converged(self, record: DCRecord) -> bool:
        return True

    def finite(self, record: DCRecord) -> bool:
        return math.isfinite(record.feasibility)


@dataclass(frozen=True)
class IteratedDC(Coordinator):
    """Iterated direct compression (Carreira-Perpiñán 2017, §6.2.3).

    Parameters
    ----------
    maxiter : int >= 1
        Rounds after the first DC (each one L step from Δ(Θ) and one C step).
    tol : float >= 0, optional
        Stop when ||Δ(Θ_k) − Δ(Θ_{k−1})|| <= tol (the iterates cycle); by default every round
        runs.
    eval_loss : bool
        Record L(w) and L(Δ(Θ)) each round.

    Notes
    -----
    :meth:`init` is DC (w = w̄, Θ = Π(w̄)); round k::

        w ← argmin_w L(w), from w = Δ(Θ)     the oracle's ``lstep(Δ(Θ), Δ(Θ), 0)`` (μ = 0)
        Θ ← Π(w)

    The L step is the oracle's with μ = 0 (no penalty: plain training of L), started at the
    compressed model; an oracle must accept μ = 0 (``LeastSquares`` and
    ``LogisticRegression`` do, given a nonsingular problem). There are no multipliers and no
    μ: unlike LC nothing links the L step to the compression, which is why iDC does not
    converge to a solution of problem (1). The returned point is Δ(Θ) of the last round.
    Penalty-form compressions are refused (TypeError).
    """

    maxiter: int = 10
    tol: float | None = None
    eval_loss: bool = True
    name = "iDC"

    def __post_init__(self) -> None:
        check_positive_int(self.maxiter, "maxiter")
        if self.tol is not None and not self.tol >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")

    def init(self, w: Params, compression: Compression | TensorScheme,
             oracle: LossOracle | None = None) -> DCState:
        """The first round is DC: w = w̄, Θ = Π(w̄)."""
        return DirectCompression().init(w, _constraint(compression, "IteratedDC"), oracle)

    def step(self, state: DCState, oracle: LossOracle,
             compression: Compression | TensorScheme) -> tuple[DCState, DCRecord]:
        """One round: optimize L from Δ(Θ), then compress."""
        C = _constraint(compression, "IteratedDC")
        with Timer() as t_l:
            start = C.decompress(state.theta)
            w = oracle.lstep(start, start, 0.0, step=state.k)  # optimize L(w) from Δ(Θ)
        with Timer() as t_c:
            theta = C.compress(w)  # and compress it
        change = tree_norm(tree_sub(C.decompress(theta), start))
        record = _round(oracle, C, w, theta, state.k, change, self.eval_loss, t_l.seconds,
                        t_c.seconds)
        return DCState(w=w, theta=theta, k=state.k + 1), record

    def converged(self, record: DCRecord) -> bool:
        return self.tol is not None and record.change <= self.tol

    def finite(self, record: DCRecord) -> bool:
        return math.isfinite(record.feasibility) and (
            not self.eval_loss or math.isfinite(record.loss))
