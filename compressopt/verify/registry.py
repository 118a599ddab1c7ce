"""The registry of every projection: how to call it, sample valid inputs, check and verify it.

One :class:`Entry` per projection drives the shared property tests (``tests/projections/
test_properties.py``) and lets users certify every projection on random instances::

    >>> import numpy as np
    >>> from compressopt.verify.registry import REGISTRY
    >>> case = REGISTRY["l1_ball"].sample(np.random.default_rng(0), 6)
    >>> REGISTRY["l1_ball"].verify(case.x, **case.params).ok
    True

Adding a projection = its module in :mod:`compressopt.projections`, a ``verify_*`` function
in :mod:`compressopt.verify.checks`, and one :class:`Entry` below. Samples are float64 numpy
arrays (the tests cast them to float32/float64 and to torch tensors) drawn from continuous
distributions, so that ties, which the projections break by index, have probability 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from compressopt import projections as P
from compressopt._array import array_namespace
from compressopt.verify import checks as C
from compressopt.verify.report import Report, Tol

__all__ = ["REGISTRY", "Case", "Entry"]

Rng = np.random.Generator


@dataclass(frozen=True)
class Case:
    """An instance: the input `x` (array or ``dict`` name -> array, float64) and parameters."""

    x: Any
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """A projection in the registry.

    Attributes
    ----------
    name : str
    kind : "exact", "greedy" or "heuristic" (what the verifier may assert).
    project : callable ``(x, **params) -> array or dict``: the projected point.
    verify : callable ``(x, **params) -> Report``.
    sample : callable ``(rng, size) -> Case``: a random valid input.
    feasible : callable ``(z, case, tol) -> bool``, independent membership test of the
        output, or None for proximal operators (no set).
    feasible_sample : callable ``(rng, size) -> Case`` whose x is in the set (P(x) = x), or
        None when there is no set.
    perm : how entries may be permuted with the projection commuting: ``"flat"`` (any
        permutation of the entries), ``"rows"`` (of the slices along axis 0), ``"rows_cols"``
        (of rows and of columns of a matrix), or None.
    idempotent : P(P(x)) = P(x).
    collection : x is a ``dict`` of tensors (perm applies to each).
    """

    name: str
    kind: Literal["exact", "greedy", "heuristic"]
    project: Callable[..., Any]
    verify: Callable[..., Report]
    sample: Callable[[Rng, int], Case]
    feasible: Callable[[Any, Case, Tol], bool] | None
    feasible_sample: Callable[[Rng, int], Case] | None
    perm: Literal["flat", "rows", "rows_cols"] | None = "flat"
    idempotent: bool = True
    collection: bool = False


# ------------------------------------------------------------------------------ helpers


def _vec(rng: Rng, n: int, scale: float = 1.0) -> np.ndarray:
    """A vector or matrix of n-ish Gaussian entries (shape chosen at random)."""
    n = max(int(n), 1)
    if n >= 4 and rng.random() < 0.5:
        a = int(rng.integers(1, int(np.sqrt(n)) + 1))
        return scale * rng.standard_normal((a, max(n // a, 1)))
    return scale * rng.standard_normal(n)


def _mat(rng: Rng, n: int, groups: int | None = None) -> np.ndarray:
    g = groups or int(rng.integers(1, max(2, int(np.sqrt(max(n, 1)))) + 1))
    shape = (g, max(n // g, 1)) if rng.random() < 0.7 else (g, 2, max(n // (2 * g), 1))
    return rng.standard_normal(shape)


def _dict(rng: Rng, n: int, make: Callable[[Rng, int], np.ndarray], most: int = 3) -> dict:
    t = int(rng.integers(1, most + 1))
    return {f"t{i}": make(rng, max(1, n // t)) for i in range(t)}


def _u(z: Any) -> np.ndarray:
    return C._h(z)


def _sparsify(rng: Rng, x: np.ndarray, keep: float) -> np.ndarray:
    return np.where(rng.random(x.shape) < keep, x, 0.0)


# ------------------------------------------------------------------------------ samples


def _card(rng: Rng, n: int) -> Case:
    x = _vec(rng, n)
    return Case(x, {"k": int(rng.integers(0, x.size + 1))})


def _card_feas(rng: Rng, n: int) -> Case:
    c = _card(rng, n)
    k = c.params["k"]
    x = c.x.copy().reshape(-1)
    x[rng.permutation(x.size)[k:]] = 0.0
    return Case(x.reshape(c.x.shape), c.params)


def _gcard(rng: Rng, n: int) -> Case:
    w = _dict(rng, n, _vec)
    return Case(w, {"k": int(rng.integers(0, sum(v.size for v in w.values()) + 1))})


def _gcard_feas(rng: Rng, n: int) -> Case:
    w = _dict(rng, n, lambda r, m: _sparsify(r, _vec(r, m), 0.5))
    return Case(w, {"k": sum(int(np.count_nonzero(v)) for v in w.values())})


def _l1(rng: Rng, n: int) -> Case:
    x = _vec(rng, n)
    return Case(x, {"radius": float(rng.uniform(0.05, 1.5) * max(np.abs(x).sum(), 1e-3))})


def _l1_feas(rng: Rng, n: int) -> Case:
    c = _l1(rng, n)
    x = c.x * (rng.uniform(0.1, 0.99) * c.params["radius"] / max(np.abs(c.x).sum(), 1e-12))
    return Case(x, c.params)


def _simplex(rng: Rng, n: int) -> Case:
    return Case(_vec(rng, n), {"radius": float(rng.uniform(0.3, 3.0))})


def _simplex_feas(rng: Rng, n: int) -> Case:
    c = _simplex(rng, n)
    return Case(rng.dirichlet(np.ones(c.x.size)).reshape(c.x.shape) * c.params["radius"],
                c.params)


def _box(rng: Rng, n: int) -> Case:
    lo = -float(rng.uniform(0.1, 2.0))
    return Case(2 * _vec(rng, n), {"lower": lo, "upper": lo + float(rng.uniform(0.1, 3.0))})


def _box_feas(rng: Rng, n: int) -> Case:
    c = _box(rng, n)
    lo, hi = c.params["lower"], c.params["upper"]
    return Case(rng.uniform(lo, hi, c.x.shape), c.params)


def _thresh(rng: Rng, n: int) -> Case:
    return Case(_vec(rng, n), {"t": float(rng.uniform(0.0, 1.5))})


def _hard_feas(rng: Rng, n: int) -> Case:
    c = _thresh(rng, n)
    t = c.params["t"]
    x = np.where(np.abs(c.x) > t, c.x, np.sign(c.x) * (t + 0.1 + np.abs(c.x)))
    return Case(_sparsify(rng, x, 0.6), c.params)


def _glasso(rng: Rng, n: int) -> Case:
    return Case(_mat(rng, n), {"t": float(rng.uniform(0.0, 2.0))})


def _chan(rng: Rng, n: int) -> Case:
    x = _mat(rng, n)
    return Case(x, {"k": int(rng.integers(0, x.shape[0] + 1))})


def _chan_feas(rng: Rng, n: int) -> Case:
    c = _chan(rng, n)
    x = c.x.copy()
    x[rng.permutation(x.shape[0])[c.params["k"]:]] = 0.0
    return Case(x, c.params)


def _gchan(rng: Rng, n: int) -> Case:
    w = _dict(rng, n, _mat)
    return Case(w, {"k": int(rng.integers(0, sum(v.shape[0] for v in w.values()) + 1))})


def _gchan_feas(rng: Rng, n: int) -> Case:
    w = {}
    for name, v in _dict(rng, n, _mat).items():
        v = v.copy()
        v[rng.random(v.shape[0]) < 0.5] = 0.0
        w[name] = v
    return Case(w, {"k": sum(C.nonzero_groups(v) for v in w.values())})


def _bits_for(w: dict, rng: Rng) -> dict:
    return {k: int(rng.integers(1, 9)) for k in w}


def _knap(rng: Rng, n: int) -> Case:
    w = _dict(rng, n, lambda r, m: _sparsify(r, _vec(r, m), 0.9))
    bits = _bits_for(w, rng)
    full = sum(bits[k] * np.count_nonzero(v) for k, v in w.items())
    return Case(w, {"bits": bits, "budget_bits": float(np.floor(rng.uniform(0, 1.1) * full))})


def _knap_feas(rng: Rng, n: int) -> Case:
    c = _knap(rng, n)
    w = c.x
    full = sum(c.params["bits"][k] * np.count_nonzero(v) for k, v in w.items())
    return Case(w, {**c.params, "budget_bits": float(full + rng.integers(0, 5))})


_CANDS = (1, 2, 3)


def _alloc(rng: Rng, n: int) -> Case:
    w = _dict(rng, n, lambda r, m: _sparsify(r, _vec(r, m), 0.8))
    nnz = sum(int(np.count_nonzero(v)) for v in w.values())
    budget = float(np.floor(rng.uniform(1.0, 3.2) * nnz))
    return Case(w, {"budget_bits": budget, "candidates": _CANDS})


def _quantized(rng: Rng, w: dict, cands: tuple[int, ...]) -> Case:
    """A point of the joint set: the nonzeros of each tensor of `w` replaced by one of 2^b
    random values (b drawn from `cands`), with exactly the budget it needs."""
    out, used = {}, 0
    for name, v in w.items():
        b = int(rng.choice(cands))
        vals = rng.standard_normal(2**b)
        out[name] = np.where(v != 0, vals[rng.integers(0, 2**b, v.shape)], 0.0)
        used += b * int(np.count_nonzero(out[name]))
    return Case(out, {"budget_bits": float(used), "candidates": cands})


def _alloc_feas(rng: Rng, n: int) -> Case:
    return _quantized(rng, _alloc(rng, n).x, _CANDS)


def _joint(rng: Rng, n: int) -> Case:
    w = _dict(rng, min(n, 8), lambda r, m: _vec(r, min(m, 5)).reshape(-1), most=2)
    full = sum(v.size for v in w.values())
    return Case(w, {"budget_bits": float(rng.integers(0, 2 * full + 1)), "candidates": (1, 2)})


def _joint_feas(rng: Rng, n: int) -> Case:
    w = {k: _sparsify(rng, v, 0.7) for k, v in _joint(rng, n).x.items()}
    return _quantized(rng, w, (1, 2))


def _km(small: bool) -> Callable[[Rng, int], Case]:
    def sample(rng: Rng, n: int) -> Case:
        m = min(n, 10) if small else n
        x = _vec(rng, m)
        return Case(x, {"k": int(rng.integers(1, 5 if small else 9)),
                        "sparse": bool(rng.random() < 0.3)})
    return sample


def _km_feas(rng: Rng, n: int) -> Case:
    k = int(rng.integers(1, 6))
    vals = rng.standard_normal(k)
    x = vals[rng.integers(0, k, max(n, 1))]
    return Case(x, {"k": k, "sparse": False})


def _small(limit: int) -> Callable[[Rng, int], Case]:
    return lambda rng, n: Case(_vec(rng, min(n, limit)).reshape(-1))


def _grid_feas(codes: tuple[int, ...]) -> Callable[[Rng, int], Case]:
    def sample(rng: Rng, n: int) -> Case:
        q = rng.choice(codes, min(max(n, 1), 9))
        if not np.any(q):
            q[0] = max(codes)
        return Case(float(rng.uniform(0.2, 3.0)) * q.astype(np.float64))
    return sample


def _uni(method: str) -> Callable[[Rng, int], Case]:
    def sample(rng: Rng, n: int) -> Case:
        levels = int(rng.integers(1, 4))
        m = 4 if levels == 3 else 5
        return Case(_vec(rng, min(n, m)).reshape(-1), {"levels": levels, "method": method})
    return sample


def _uni_feas(method: str) -> Callable[[Rng, int], Case]:
    def sample(rng: Rng, n: int) -> Case:
        levels = int(rng.integers(1, 4))
        q = rng.integers(-levels, levels + 1, min(max(n, 1), 5))
        if not np.any(q):
            q[0] = levels
        return Case(float(rng.uniform(0.2, 3.0)) * q.astype(np.float64),
                    {"levels": levels, "method": method})
    return sample


_P2 = tuple(P.powers_of_two(-3, 1))


def _cb(rng: Rng, n: int) -> Case:
    return Case(_vec(rng, n), {"codebook": _P2})


def _cb_feas(rng: Rng, n: int) -> Case:
    return Case(np.asarray(_P2)[rng.integers(0, len(_P2), max(n, 1))], {"codebook": _P2})


def _rank(rng: Rng, n: int) -> Case:
    m = int(rng.integers(1, 7))
    x = rng.standard_normal((m, int(rng.integers(1, 7))))
    return Case(x, {"r": int(rng.integers(0, min(x.shape) + 1))})


def _rank_feas(rng: Rng, n: int) -> Case:
    c = _rank(rng, n)
    m, k = c.x.shape
    r = c.params["r"]
    return Case(rng.standard_normal((m, r)) @ rng.standard_normal((r, k)), c.params)


def _ranks(rng: Rng, n: int) -> Case:
    w = {f"t{i}": rng.standard_normal((int(rng.integers(1, 6)), int(rng.integers(1, 6))))
         for i in range(int(rng.integers(1, 4)))}
    full = sum(min(v.shape) * sum(v.shape) for v in w.values())
    return Case(w, {"budget_params": float(rng.integers(0, full + 1))})


def _ranks_feas(rng: Rng, n: int) -> Case:
    w, used = {}, 0
    for name, v in _ranks(rng, n).x.items():
        r = int(rng.integers(0, min(v.shape) + 1))
        w[name] = rng.standard_normal((v.shape[0], r)) @ rng.standard_normal((r, v.shape[1]))
        used += r * sum(v.shape)
    return Case(w, {"budget_params": float(used)})


# ------------------------------------------------------------------------------ entries


def _scaled(f: Callable[..., P.ScaledCodes]) -> Callable[..., Any]:
    """A projection returning ScaledCodes, as the projected array (on the input's device)."""
    def project(x: Any, **params: Any) -> Any:
        t = f(x, **params)
        xp = array_namespace(t.codes)
        return xp.astype(t.codes, t.scale.dtype) * t.scale
    return project


def _tol_rank(z: Any, case: Case, tol: Tol) -> bool:
    return C.has_rank_at_most(z, case.params["r"], tol)


_ENTRIES = [
    Entry("cardinality", "exact", P.project_cardinality, C.verify_cardinality, _card,
          lambda z, c, t: int(np.count_nonzero(_u(z))) <= c.params["k"], _card_feas),
    Entry("global_cardinality", "exact", P.project_global_cardinality,
          C.verify_global_cardinality, _gcard,
          lambda z, c, t: sum(int(np.count_nonzero(_u(v))) for v in z.values()) <= c.params["k"],
          _gcard_feas, collection=True),
    Entry("l1_ball", "exact", P.project_l1_ball, C.verify_l1_ball, _l1,
          lambda z, c, t: C.in_l1_ball(z, c.params["radius"], t), _l1_feas),
    Entry("simplex", "exact", P.project_simplex, C.verify_simplex, _simplex,
          lambda z, c, t: C.in_simplex(z, c.params["radius"], t), _simplex_feas),
    Entry("box", "exact", P.project_box, C.verify_box, _box,
          lambda z, c, t: C.in_box(z, c.params["lower"], c.params["upper"], t), _box_feas),
    Entry("soft_threshold", "exact", P.soft_threshold, C.verify_soft_threshold, _thresh,
          None, None, idempotent=False),
    Entry("hard_threshold", "exact", P.hard_threshold, C.verify_hard_threshold, _thresh,
          lambda z, c, t: bool(np.all((_u(z) == 0) | (np.abs(_u(z)) > c.params["t"]))),
          _hard_feas),
    Entry("group_lasso", "exact", P.prox_group_lasso, C.verify_group_lasso, _glasso, None,
          None, perm="rows", idempotent=False),
    Entry("channels", "exact", P.project_channels, C.verify_channels, _chan,
          lambda z, c, t: C.nonzero_groups(z) <= c.params["k"], _chan_feas, perm="rows"),
    Entry("global_channels", "exact", P.project_global_channels, C.verify_global_channels,
          _gchan, lambda z, c, t: sum(C.nonzero_groups(v) for v in z.values()) <= c.params["k"],
          _gchan_feas, perm="rows", collection=True),
    Entry("knapsack", "greedy", lambda w, **p: P.project_knapsack(w, **p).w, C.verify_knapsack,
          _knap, lambda z, c, t: sum(c.params["bits"][k] * int(np.count_nonzero(_u(v)))
                                     for k, v in z.items()) <= c.params["budget_bits"],
          _knap_feas, collection=True),
    Entry("allocate_bits", "greedy", lambda w, **p: P.allocate_bits(w, **p).decompress(),
          C.verify_allocate_bits, _alloc,
          lambda z, c, t: C.in_sparse_quantized(z, c.params["budget_bits"],
                                                c.params["candidates"]),
          _alloc_feas, collection=True),
    Entry("sparse_quantized", "heuristic",
          lambda w, **p: P.project_sparse_quantized(w, **p).w, C.verify_sparse_quantized,
          _joint, lambda z, c, t: C.in_sparse_quantized(z, c.params["budget_bits"],
                                                         c.params["candidates"]),
          _joint_feas, collection=True),
    Entry("kmeans_exact", "exact",
          lambda x, k, sparse: P.AdaptiveQuantization(k, sparse=sparse).project(x),
          lambda x, k, sparse: C.verify_kmeans(x, k, sparse=sparse), _km(True),
          lambda z, c, t: np.unique(_u(z)[_u(z) != 0] if c.params["sparse"] else _u(z)).size
          <= c.params["k"], _km_feas),
    Entry("kmeans_fast", "heuristic",
          lambda x, k, sparse: P.AdaptiveQuantization(k, "fast", sparse).project(x),
          lambda x, k, sparse: C.verify_kmeans(x, k, sparse=sparse, method="fast"), _km(False),
          lambda z, c, t: np.unique(_u(z)[_u(z) != 0] if c.params["sparse"] else _u(z)).size
          <= c.params["k"], _km_feas),
    Entry("binary", "exact", _scaled(P.project_binary), C.verify_binary, _small(12),
          lambda z, c, t: C.in_scaled_grid(z, (-1, 1)), _grid_feas((-1, 1))),
    Entry("ternary", "exact", _scaled(P.project_ternary), C.verify_ternary, _small(9),
          lambda z, c, t: C.in_scaled_grid(z, (-1, 0, 1)), _grid_feas((-1, 0, 1))),
    Entry("uniform", "exact", _scaled(P.project_uniform), C.verify_uniform, _uni("exact"),
          lambda z, c, t: C.in_scaled_grid(z, range(-c.params["levels"],
                                                    c.params["levels"] + 1)), _uni_feas("exact")),
    Entry("uniform_alternating", "heuristic", _scaled(P.project_uniform), C.verify_uniform,
          _uni("alternating"),
          lambda z, c, t: C.in_scaled_grid(z, range(-c.params["levels"],
                                                    c.params["levels"] + 1)),
          _uni_feas("alternating")),
    Entry("powers_of_two", "exact",
          lambda x, codebook: P.FixedCodebook(codebook).project(x), C.verify_codebook, _cb,
          lambda z, c, t: bool(np.all(np.isin(_u(z), np.asarray(c.params["codebook"])))),
          _cb_feas),
    Entry("low_rank", "exact", P.project_rank, C.verify_rank, _rank, _tol_rank, _rank_feas,
          perm="rows_cols"),
    Entry("rank_selection", "greedy", lambda w, **p: P.select_ranks(w, **p).decompress(),
          C.verify_select_ranks, _ranks,
          lambda z, c, t: sum(int(np.sum(np.linalg.svd(_u(v), compute_uv=False) >
                                         1e-5 * max(1.0, float(np.abs(_u(v)).max(initial=0)))))
                              * sum(v.shape) for v in z.values()) <= c.params["budget_params"],
          _ranks_feas, perm="rows_cols", collection=True),
]

#: name -> Entry, for every projection of :mod:`compressopt.projections`
REGISTRY: dict[str, Entry] = {e.name: e for e in _ENTRIES}
