"""The learning-compression (LC) algorithm.

Carreira-Perpiñán, "Model compression as constrained optimization, with application to neural
nets. Part I: general framework", arXiv:1707.01209, 2017. The problem (eq. 1)

.. math:: \\min_{w, \\Theta} L(w) \\quad \\text{s.t.} \\quad w = \\Delta(\\Theta)

is solved with the augmented Lagrangian (eq. 7, or its shifted form eq. 8)

.. math:: L_A(w, \\Theta, \\lambda; \\mu) = L(w) - \\lambda^T (w - \\Delta(\\Theta))
          + \\frac{\\mu}{2} \\|w - \\Delta(\\Theta)\\|^2

(or the quadratic penalty, eq. 6, with λ = 0), alternating over w (the L step, eq. 9) and Θ
(the C step, eq. 10) for an increasing sequence μ_k = μ0 · a^k → ∞ (§4.1). Fig. 2 of the
paper, line by line, is :meth:`LC.init` and :meth:`LC.step`. The path starts at the direct
compression Θ^DC = Π(w̄) (eq. 12, §4.2); :mod:`compressopt.solvers.dc` has DC and iterated
DC (§6.2.3) as coordinators of their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from compressopt._array import Array
from compressopt.projections.base import Compression, TensorScheme, as_compression, bind_mu
from compressopt.solvers.base import Coordinator, LossOracle, Timer, check_positive_int, diagnostics
from compressopt.tree import (
    Params,
    tree_axpy,
    tree_check,
    tree_norm,
    tree_sub,
    tree_zeros_like,
)

__all__ = ["LC", "LCRecord", "LCState"]


class LCState(NamedTuple):
    """Iterate of the LC algorithm."""

    w: dict[str, Array]  #: uncompressed weights (the L step's variable)
    theta: Any  #: compressed parameters Θ; Δ(Θ) is feasible
    lam: dict[str, Array]  #: Lagrange multipliers λ, shaped like w (zero for "qp")
    mu: float  #: penalty parameter μ of the next L step
    k: int  #: iterations done


class LCRecord(NamedTuple):
    """Diagnostics of one LC iteration (one value of μ)."""

    k: int  #: iteration (0-based)
    mu: float  #: μ used in this iteration's L step
    loss: float  #: L(w) after the L step (NaN unless ``eval_loss``)
    loss_compressed: float  #: L(Δ(Θ)) after the C step (NaN unless ``eval_loss``)
    feasibility: float  #: ||w - Δ(Θ)||, the constraint violation
    lambda_norm: float  #: ||λ|| after the multiplier step
    weight_bits: int  #: storage of Θ, Σ bits·nnz (the constraint's value)
    nnz: int  #: stored values of Θ
    time_lstep: float  #: seconds in the L step
    time_cstep: float  #: seconds in the C step
    time_multipliers: float  #: seconds in the multiplier step


@dataclass(frozen=True)
class LC(Coordinator):
    """Learning-compression algorithm, augmented-Lagrangian or quadratic-penalty version.

    Parameters
    ----------
    mu0 : float > 0
        First penalty parameter μ0.
    mu_growth : float > 1
        a in μ_k = μ0 · a^k.
    maxiter : int >= 1
        Number of μ values (one L and one C step each).
    tol : float >= 0
        Stop when ||w - Δ(Θ)|| <= tol (Euclidean norm over all compressed tensors; Fig. 2:
        "if ||w - Δ(Θ)|| is small enough then exit the loop").
    penalty : {"al", "qp"}
        Augmented Lagrangian (eq. 7) or quadratic penalty (eq. 6).
    mus : sequence of float, optional
        An explicit μ schedule; overrides `mu0`, `mu_growth` and `maxiter`.
    eval_loss : bool
        Evaluate L(w) and L(Δ(Θ)) each iteration for the history (one oracle ``value`` call
        each; set False when that is expensive).
    inner_iterations : int >= 1
        L and C steps per μ value before the multiplier update (default 1, Fig. 2: "a single
        LC iteration per λ update"; §4.1: "in some cases it may be advantageous to run
        multiple L and C steps per μ value"). The multipliers move once per μ, after the
        alternation ("after optimizing L_A over (w, Θ) for each μ", §4).

    Notes
    -----
    Fig. 2, line by line: :meth:`init` is w ← w̄, Θ ← Θ^DC = Π(w̄), λ ← 0; each :meth:`step`
    is one μ of the loop::

        w ← argmin_w L(w) + μ/2 ||w - Δ(Θ) - λ/μ||²      L step, eq. (9)  (the oracle's lstep)
        Θ ← Π(w - λ/μ)                                   C step, eq. (10)
        (the two repeated `inner_iterations` times)
        λ ← λ - μ (w - Δ(Θ))                             multipliers (§4, after eq. 8)
        exit if ||w - Δ(Θ)|| <= tol

    Each iteration costs `inner_iterations` L steps (the oracle) and C steps (Π over all
    tensors) and O(n) vector work. The returned point Δ(Θ) is feasible whatever the iteration
    count; as μ → ∞ it converges to a local solution of the constrained problem (Theorem 5.1
    of the paper, stated for the quadratic penalty). The L step is as exact as the oracle
    makes it (Theorem 5.1 asks for increasingly accurate L and C steps); §5.1's clipped
    learning rate min(η_t, 1/μ) (eq. 17) is the torch oracle's business. §5.1 writes the L
    step as eq. (13) with w' = Δ(Θ) − λ/μ, a sign slip against eq. (9) (w' = Δ(Θ) + λ/μ), which
    is what is implemented.

    Examples
    --------
    Least squares with at most 2 nonzero coefficients:

    >>> import numpy as np
    >>> from compressopt.solvers import LC, LeastSquares
    >>> from compressopt.projections import Cardinality
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((20, 5)); b = A @ np.array([2.0, 0, 0, -1.0, 0])
    >>> res = LC(mu0=1e-2, mu_growth=1.5, maxiter=60, tol=1e-8).run(
    ...     {"w": np.zeros(5)}, LeastSquares(A, b), Cardinality(k=2))
    >>> np.round(res.x["w"], 6)
    array([ 2.,  0.,  0., -1.,  0.])
    """

    mu0: float = 1e-3
    mu_growth: float = 1.1
    maxiter: int = 50
    tol: float = 1e-4
    penalty: Literal["al", "qp"] = "al"
    mus: Sequence[float] | None = None
    eval_loss: bool = True
    inner_iterations: int = 1
    name = "LC"

    def __post_init__(self) -> None:
        if self.mus is not None:
            mus = tuple(float(m) for m in self.mus)
            if not mus or any(not m > 0 for m in mus):
                raise ValueError(
                    f"mus must be a non-empty sequence of positive floats, got {self.mus!r}"
                )
            object.__setattr__(self, "mus", mus)
        if not self.mu0 > 0:
            raise ValueError(f"mu0 must be > 0, got {self.mu0}")
        if not self.mu_growth > 1:
            raise ValueError(f"mu_growth must be > 1 (mu -> infinity), got {self.mu_growth}")
        check_positive_int(self.maxiter, "maxiter")
        check_positive_int(self.inner_iterations, "inner_iterations")
        if not self.tol >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if self.penalty not in ("al", "qp"):
            raise ValueError(f"penalty must be 'al' or 'qp', got {self.penalty!r}")

    def _mu(self, k: int) -> float:
        if self.mus is not None:
            return self.mus[min(k, len(self.mus) - 1)]
        return self.mu0 * self.mu_growth**k

    @property
    def niter(self) -> int:
        return len(self.mus) if self.mus is not None else self.maxiter

    def init(
        self, w: Params, compression: Compression | TensorScheme, oracle: LossOracle | None = None
    ) -> LCState:
        """Fig. 2's first lines: w ← w̄, Θ ← Θ^DC = Π(w̄) (direct compression, eq. 12), λ ← 0.

        `w` (the reference weights w̄, ideally a minimizer of L) is validated, not copied
        and not modified.
        """
        w = tree_check(w)
        theta = bind_mu(as_compression(compression), self._mu(0)).compress(w)
        return LCState(w=w, theta=theta, lam=tree_zeros_like(w), mu=self._mu(0), k=0)

    def step(
        self, state: LCState, oracle: LossOracle, compression: Compression | TensorScheme
    ) -> tuple[LCState, LCRecord]:
        """One μ of Fig. 2's loop: L step, C step (`inner_iterations` times), multipliers."""
        C = as_compression(compression)
        mu, lam, w, theta = state.mu, state.lam, state.w, state.theta
        al = self.penalty == "al"
        Cmu = bind_mu(C, mu)  # penalty forms: the C step is a prox with α/μ
        t_l, t_c = Timer(), Timer()
        l_sec = c_sec = 0.0
        for _ in range(self.inner_iterations):
            with t_l:
                delta = C.decompress(theta)
                # L step, eq. (9): min_w L(w) + μ/2 ||w - Δ(Θ) - λ/μ||²  (eq. 6's, λ = 0, "qp")
                center = tree_axpy(1.0 / mu, lam, delta) if al else delta
                w = oracle.lstep(w, center, mu, step=state.k)
            with t_c:
                # C step, eq. (10): Θ = Π(w - λ/μ)
                theta = Cmu.compress(tree_axpy(-1.0 / mu, lam, w) if al else w)
                delta = C.decompress(theta)
            l_sec, c_sec = l_sec + t_l.seconds, c_sec + t_c.seconds
        with Timer() as t_m:
            residual = tree_sub(w, delta)
            if al:  # multiplier step (§4, Fig. 2): λ ← λ - μ (w - Δ(Θ))
                lam = tree_axpy(-mu, residual, lam)
        feas = tree_norm(residual)
        d = diagnostics(oracle, C, w, delta, theta, self.eval_loss)
        record = LCRecord(
            k=state.k,
            mu=mu,
            loss=d.loss,
            loss_compressed=d.loss_compressed,
            feasibility=feas,
            lambda_norm=tree_norm(lam) if al else 0.0,
            weight_bits=d.weight_bits,
            nnz=d.nnz,
            time_lstep=l_sec,
            time_cstep=c_sec,
            time_multipliers=t_m.seconds,
        )
        new = LCState(w=w, theta=theta, lam=lam, mu=self._mu(state.k + 1), k=state.k + 1)
        return new, record

    def converged(self, record: LCRecord) -> bool:
        return record.feasibility <= self.tol

    def finite(self, record: LCRecord) -> bool:
        return math.isfinite(record.feasibility) and (
            not self.eval_loss or math.isfinite(record.loss)
        )
