"""The joint sparse + quantized set of Yang et al. (CVPR 2020), eqs. (1)-(2).

.. math:: \\mathcal{C}(S) = \\Big\\{W : \\exists\\, b_i \\in B,\\; W^{(i)} \\text{ has at most }
    2^{b_i} \\text{ distinct nonzero values},\\; g = \\sum_i b_i \\|W^{(i)}\\|_0 \\le S\\Big\\}

(b_i bits per stored nonzero; zeros are not stored). The Euclidean projection onto C(S) is a
mixed combinatorial problem; Yang et al. split it (§3.2) into a pruning step with the bits
fixed (eq. 8, :func:`~compressopt.projections.knapsack.project_knapsack`) and a quantization
step with the sparsity fixed (eq. 10, :func:`~compressopt.projections.mckp.allocate_bits`).
:func:`project_sparse_quantized` alternates the two, each output feasible, and returns the
best round: a heuristic whose result is always in C(S).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from compressopt._array import Array, array_namespace, common_exponent, ldexp
from compressopt.errors import ShapeMismatchError
from compressopt.projections._util import acc_dtype, check_int, check_nonneg, ldexp_float
from compressopt.projections.base import count_nonzero
from compressopt.projections.knapsack import project_knapsack
from compressopt.projections.mckp import (
    BitAllocation,
    MixedPrecision,
    _check_candidates,
    allocate_bits,
)
from compressopt.projections.quantization import Quantized
from compressopt.tree import Params, tree_check

__all__ = ["JointResult", "SparseQuantized", "project_sparse_quantized"]


class JointResult(NamedTuple):
    """Result of :func:`project_sparse_quantized`.

    Attributes
    ----------
    allocation : BitAllocation
        The best round's quantization (bits, Θ, budget used, LP bound of its quantization
        step). ``allocation.decompress()`` is the projection.
    error : float
        ``||W - P(W)||²`` of the returned point.
    errors : tuple of float
        The error of each candidate: the unpruned allocation (when tried), then each round.
    """

    allocation: BitAllocation
    error: float
    errors: tuple[float, ...]

    @property
    def bits(self) -> dict[str, int]:
        return self.allocation.bits

    @property
    def w(self) -> dict[str, Array]:
        return self.allocation.decompress()


def _sq_dist(a: Params, b: Params, e: int) -> float:
    """``||a - b||² · 2^-2e``: the squared distance in the frame scaled by ``2^-e``, where it
    neither overflows nor underflows when ``2^e`` is of the order of the entries."""
    total = 0.0
    for n in a:
        xp = array_namespace(a[n])
        d = ldexp(xp.astype(a[n], acc_dtype(a[n])) - xp.astype(b[n], acc_dtype(a[n])), -e)
        total += float(xp.sum(d * d))
    return total


def project_sparse_quantized(
    w: Params, budget_bits: float, candidates: Iterable[int] = range(1, 9), *,
    rounds: int = 3, bits0: Mapping[str, int] | None = None,
    method: Literal["fast", "exact"] = "fast",
) -> JointResult:
    """Approximate projection onto the joint sparse + quantized set of Yang et al. (2020).

    .. math:: \\min_{V, W'} \\sum_i \\|W'^{(i)} - W^{(i)}\\|^2 \\;\\text{s.t.}\\;
        W'^{(i)}_{\\ne 0} \\in V_i,\\; |V_i| = 2^{b_i},\\; \\sum_i b_i \\|W'^{(i)}\\|_0 \\le S

    Alternation (Yang et al., §3.2, eqs. (8) and (10)): from bits `bits0` (default: the
    largest candidate for every tensor), (a) prune with the bits fixed by the knapsack greedy,
    (b) choose the bits and codebooks of the kept entries by the MCKP greedy with the same
    budget; set the bits to (b)'s and repeat; keep the round of least error. Without `bits0`,
    and when the budget allows ``min B`` bits for every nonzero, the bit allocation of the
    unpruned W is tried too (so a feasible W is its own projection). Every candidate is
    feasible: (a) leaves Σ b_i nnz_i <= S with b_i >= min B, so (b) is feasible.

    Parameters
    ----------
    w : mapping name -> array (real floating, one library and device).
    budget_bits : S >= 0, bits.
    candidates : bit widths B (1..16; default 1..8).
    rounds : >= 1 alternations (stops early when the bits repeat).
    bits0 : starting bits per tensor (e.g. the previous ADMM iteration's), in B.
    method : k-means of the quantization step, ``"fast"`` (device) or ``"exact"`` (host).

    Returns
    -------
    JointResult

    Raises
    ------
    ShapeMismatchError
        `w` is empty, or `bits0` names other tensors.
    TypeError, ValueError
        Bad budget, candidates, rounds or bits0.
    UnsupportedDTypeError, NonFiniteError
        A tensor is not real floating, or holds NaN/Inf.

    Notes
    -----
    Heuristic (alternating minimization over a nonconvex set); the result is feasible, not
    necessarily the nearest point (``verify.verify_sparse_quantized`` compares with an
    enumeration on tiny instances). The candidates' errors are compared in the frame scaled
    by ``2^-E`` (E the binary exponent of the largest ``|w|``), so the choice does not depend
    on the magnitude; ``error`` is reported in w's units squared (inf beyond the float range).
    Cost per round: one knapsack projection and one bit allocation, plus one device
    synchronization for the error.

    Examples
    --------
    >>> import numpy as np
    >>> w = {"a": np.array([4.0, 4.1, 0.1, -3.0]), "b": np.array([1.0, -1.0, 0.05])}
    >>> r = project_sparse_quantized(w, budget_bits=8, candidates=[1, 2])
    >>> r.bits, r.w["a"].tolist(), r.w["b"].tolist()
    ({'a': 2, 'b': 1}, [4.0, 4.1, 0.0, -3.0], [1.0, -1.0, 0.0])
    """
    w = tree_check(w)
    if not w:
        raise ShapeMismatchError("w is empty: give at least one tensor")
    s = check_nonneg(budget_bits, "budget_bits")
    cands = _check_candidates(candidates)
    check_int(rounds, "rounds", low=1)
    if bits0 is None:
        bits = {n: cands[-1] for n in w}
    else:
        if set(bits0) != set(w):
            raise ShapeMismatchError(f"bits0 names {sorted(bits0)}, w names {sorted(w)}")
        bits = {n: check_int(b, f"bits0[{n!r}]", low=1) for n, b in bits0.items()}
        for n, b in bits.items():
            if b not in cands:
                raise ValueError(f"bits0[{n!r}] = {b} is not a candidate {cands}")
    best: tuple[float, BitAllocation] | None = None
    errors = []

    # errors are compared in the frame scaled by 2^-e (e the binary exponent of max|w|)
    e = common_exponent(w.values())

    def consider(alloc: BitAllocation) -> None:
        nonlocal best
        err = _sq_dist(w, alloc.decompress(), e)
        errors.append(err)
        if best is None or err < best[0]:
            best = (err, alloc)

    if bits0 is None and s >= cands[0] * sum(count_nonzero(x) for x in w.values()):
        consider(allocate_bits(w, s, cands, method=method))  # no pruning needed: try it
    for _ in range(rounds):  # a loop over alternation rounds
        alloc = allocate_bits(project_knapsack(w, bits, s).w, s, cands, method=method)
        consider(alloc)
        if alloc.bits == bits:
            break
        bits = alloc.bits
    assert best is not None
    return JointResult(allocation=best[1], error=ldexp_float(best[0], 2 * e),
                       errors=tuple(ldexp_float(v, 2 * e) for v in errors))


@dataclass(frozen=True)
class SparseQuantized(MixedPrecision):
    """The joint set C(S) of Yang et al. (2020) as a Compression (pruning + quantization).

    Same feasible set and Θ (``dict`` name -> sparse-mode Quantized) as
    :class:`~compressopt.projections.mckp.MixedPrecision`, but the C step also prunes
    (:func:`project_sparse_quantized`), so every budget >= 0 is feasible. Heuristic.
    """

    rounds: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.rounds, "rounds", low=1)

    def compress(self, w: Params, /) -> dict[str, Quantized]:
        return project_sparse_quantized(w, self.budget_bits, self.candidates,
                                        rounds=self.rounds, method=self.method).allocation.theta
