"""The compression interface, the shared storage-cost model, and combinators.

Two levels:

* A **tensor scheme** (:class:`TensorScheme`) compresses one array: ``compress`` is the
  projection Π (the C step, Carreira-Perpiñán 2017 eq. 2), ``decompress`` is Δ, ``contains``
  tests membership in the feasible set, ``cost`` gives the storage of Θ.
* A **compression** (:class:`Compression`) does the same for a named collection of arrays
  (``Params``); this is what the solvers take. Global constraints (one pruning budget for the
  whole net, a model-size budget in bits) are compressions in their own right;
  :class:`Tasks` and :class:`PerTensor` lift tensor schemes to collections, and :class:`Chain`
  composes two compressions.

Storage is counted with one model for every scheme (:class:`StorageCost`): a tensor stores
``nnz`` values of ``bits`` bits each, plus ``overhead_bits`` (codebooks, scales). Following Yang
et al. (CVPR 2020, §4.1, "compressed weights data"), the compression ratio counts only the
values: ``32 * sum(numel) / sum(bits * nnz)``; the overhead is reported separately.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

from compressopt._array import Array, array_namespace, numel
from compressopt.errors import ShapeMismatchError
from compressopt.tree import Params

__all__ = [
    "Chain",
    "Compression",
    "CostSummary",
    "Grouped",
    "PerTensor",
    "StorageCost",
    "Tasks",
    "TensorScheme",
    "as_compression",
    "bind_mu",
    "bits_for",
    "count_nonzero",
    "summarize",
]

FLOAT_BITS = 32  # bits of an uncompressed weight (float32), the reference of every ratio


def bits_for(k: int) -> int:
    """Index bits for a codebook of `k` entries: ``ceil(log2 k)`` (0 for ``k == 1``)."""
    if k < 1:
        raise ValueError(f"a codebook needs at least one entry, got {k}")
    return (k - 1).bit_length()


def count_nonzero(x: Array) -> int:
    """Number of nonzero entries of `x` as a Python int (one device synchronization)."""
    xp = array_namespace(x)
    return int(xp.count_nonzero(x))


class StorageCost(NamedTuple):
    """Storage of one compressed tensor.

    Attributes
    ----------
    numel : int
        Entries of the dense tensor.
    nnz : int
        Stored values (nonzeros for sparse or quantized tensors; ``r*(m+n)`` for a rank-r
        factorization).
    bits : int or float
        Bits per stored value: 32 for float weights, ``ceil(log2 K)`` for a K-entry codebook;
        the average over the parts for an additive combination.
    overhead_bits : int
        Side information: codebook entries, scales. Not part of the compression ratio.
    """

    numel: int
    nnz: int
    bits: int | float
    overhead_bits: int = 0

    @property
    def value_bits(self) -> int:
        """``bits * nnz``: the "compressed weights data" of Yang et al. §4.1."""
        return self.bits * self.nnz


class CostSummary(NamedTuple):
    """Totals over the compressed tensors (the figures of the report)."""

    numel: int
    nnz: int
    weight_bits: int  # sum(bits * nnz)
    overhead_bits: int
    compression_ratio: float  # 32 * numel / weight_bits
    average_bits: float  # weight_bits / nnz
    nonzero_fraction: float  # nnz / numel


def summarize(costs: Mapping[Any, StorageCost]) -> CostSummary:
    """Aggregate per-tensor costs.

    ``compression_ratio = 32 * sum(numel) / sum(bits * nnz)`` (``inf`` when nothing is stored),
    ``average_bits = sum(bits * nnz) / sum(nnz)`` (0 when ``nnz == 0``).
    """
    n = sum(c.numel for c in costs.values())
    nnz = sum(c.nnz for c in costs.values())
    wb = sum(c.value_bits for c in costs.values())
    ob = sum(c.overhead_bits for c in costs.values())
    return CostSummary(
        numel=n,
        nnz=nnz,
        weight_bits=wb,
        overhead_bits=ob,
        compression_ratio=FLOAT_BITS * n / wb if wb else math.inf,
        average_bits=wb / nnz if nnz else 0.0,
        nonzero_fraction=nnz / n if n else 0.0,
    )


class TensorScheme(abc.ABC):
    """A compression scheme for a single array (subclass it; instances are frozen dataclasses).

    Subclasses implement ``compress`` (Π), ``decompress`` (Δ) and ``cost`` and set the class
    attributes ``exact`` (Π is the exact Euclidean projection) and ``elementwise`` (the feasible
    set does not depend on the array's shape, so tensors may be flattened and grouped).
    """

    exact: ClassVar[bool] = True
    elementwise: ClassVar[bool] = True

    @abc.abstractmethod
    def compress(self, x: Array, /) -> Any:
        """Θ = Π(x): the compressed parameters closest to `x`."""

    @abc.abstractmethod
    def decompress(self, theta: Any, /) -> Array:
        """Δ(Θ): the array that Θ stands for, shaped like the compressed input."""

    @abc.abstractmethod
    def cost(self, theta: Any, /) -> StorageCost:
        """Storage of Θ."""

    def contains(self, x: Array, /, *, atol: float = 0.0) -> bool:
        """Whether `x` lies in the feasible set, up to `atol` in max-abs difference.

        The default tests ``max|Δ(Π(x)) - x| <= atol``, which is exact for exact projections;
        schemes with a direct membership test override it.
        """
        xp = array_namespace(x)
        if numel(x) == 0:
            return True
        return float(xp.max(xp.abs(self.decompress(self.compress(x)) - x))) <= atol

    def project(self, x: Array, /) -> Array:
        """Δ(Π(x)): the projection of `x` as an array."""
        return self.decompress(self.compress(x))


@runtime_checkable
class Compression(Protocol):
    """A compression of a named collection of arrays: what the solvers take.

    ``compress(w)`` returns Θ, ``decompress(Θ)`` a ``dict`` with the names and shapes of `w`,
    ``cost(Θ)`` a ``dict`` name -> :class:`StorageCost`, and ``contains(w)`` tests feasibility.
    """

    def compress(self, w: Params, /) -> Any: ...

    def decompress(self, theta: Any, /) -> dict[str, Array]: ...

    def contains(self, w: Params, /, *, atol: float = 0.0) -> bool: ...

    def cost(self, theta: Any, /) -> dict[str, StorageCost]: ...


class Grouped(NamedTuple):
    """Θ of a task over several tensors flattened into one vector."""

    theta: Any
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]


TaskKey = str | tuple[str, ...]


@dataclass(frozen=True)
class Tasks:
    """Compression tasks: a tensor scheme per tensor or per group of tensors.

    ``Tasks({"fc1.weight": Cardinality(k=100), ("fc2.weight", "fc3.weight"): Scheme(...)})``
    compresses ``fc1.weight`` alone and the two others flattened and concatenated into one
    vector (e.g. one codebook shared by two layers; only ``elementwise`` schemes can be
    grouped). Every tensor of the collection must belong to exactly one task.

    Θ is a ``dict`` task key -> the scheme's Θ (wrapped in :class:`Grouped` for a group).

    Raises
    ------
    ShapeMismatchError
        At ``compress``: a tensor of `w` is in no task, a task names a tensor not in `w`, or a
        tensor is in two tasks.
    TypeError
        A non-elementwise scheme is given a group of tensors.
    """

    tasks: Mapping[TaskKey, TensorScheme]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for key, scheme in self.tasks.items():
            names = (key,) if isinstance(key, str) else tuple(key)
            if not isinstance(scheme, TensorScheme):
                raise TypeError(
                    f"task {key!r}: expected a TensorScheme, got {type(scheme).__name__}"
                )
            if len(names) > 1 and not scheme.elementwise:
                raise TypeError(
                    f"task {key!r}: {type(scheme).__name__} depends on the tensor's shape and "
                    "cannot compress a group of tensors"
                )
            dup = seen.intersection(names)
            if dup:
                raise ShapeMismatchError(f"tensors {sorted(dup)} are in more than one task")
            seen.update(names)

    def with_mu(self, mu: float) -> Tasks:
        """The same tasks with penalty-form schemes bound to ``mu`` (see :func:`bind_mu`)."""
        return Tasks({k: bind_mu(s, mu) for k, s in self.tasks.items()})

    @property
    def names(self) -> frozenset[str]:
        out: set[str] = set()
        for key in self.tasks:
            out.update((key,) if isinstance(key, str) else key)
        return frozenset(out)

    def _check(self, w: Params) -> None:
        have, want = set(w), self.names
        if have != want:
            raise ShapeMismatchError(
                f"tasks cover {sorted(want)} but the parameters are {sorted(have)}: "
                f"missing {sorted(want - have)}, uncovered {sorted(have - want)}"
            )

    def compress(self, w: Params, /) -> dict[Hashable, Any]:
        self._check(w)
        theta: dict[Hashable, Any] = {}
        for key, scheme in self.tasks.items():
            if isinstance(key, str):
                theta[key] = scheme.compress(w[key])
                continue
            xs = [w[n] for n in key]
            xp = array_namespace(*xs)
            flat = xp.concat([xp.reshape(x, (-1,)) for x in xs])
            shapes = tuple(tuple(x.shape) for x in xs)
            theta[key] = Grouped(scheme.compress(flat), tuple(key), shapes)
        return theta

    def _pieces(self, key: TaskKey, th: Any) -> dict[str, Array]:
        scheme = self.tasks[key]
        if isinstance(key, str):
            return {key: scheme.decompress(th)}
        flat = scheme.decompress(th.theta)
        xp = array_namespace(flat)
        out, start = {}, 0
        for n, shape in zip(th.names, th.shapes, strict=True):
            m = math.prod(shape)
            out[n] = xp.reshape(flat[start : start + m], shape)
            start += m
        return out

    def decompress(self, theta: Mapping[Hashable, Any], /) -> dict[str, Array]:
        out: dict[str, Array] = {}
        for key in self.tasks:
            out.update(self._pieces(key, theta[key]))
        return out

    def contains(self, w: Params, /, *, atol: float = 0.0) -> bool:
        self._check(w)
        for key, scheme in self.tasks.items():
            if isinstance(key, str):
                ok = scheme.contains(w[key], atol=atol)
            else:
                xp = array_namespace(*(w[n] for n in key))
                ok = scheme.contains(xp.concat([xp.reshape(w[n], (-1,)) for n in key]), atol=atol)
            if not ok:
                return False
        return True

    def cost(self, theta: Mapping[Hashable, Any], /) -> dict[str, StorageCost]:
        out: dict[str, StorageCost] = {}
        for key, scheme in self.tasks.items():
            th = theta[key]
            if isinstance(key, str):
                out[key] = scheme.cost(th)
                continue
            # A group stores one scheme over the concatenation: split the counts per tensor,
            # the side information (shared codebook) goes to the first tensor of the group.
            total = scheme.cost(th.theta)
            for i, (n, x) in enumerate(self._pieces(key, th).items()):
                out[n] = StorageCost(
                    numel=numel(x),
                    nnz=count_nonzero(x) if total.nnz != total.numel else numel(x),
                    bits=total.bits,
                    overhead_bits=total.overhead_bits if i == 0 else 0,
                )
        return out


@dataclass(frozen=True)
class PerTensor:
    """The same tensor scheme applied to every tensor of the collection separately.

    Θ is a ``dict`` name -> the scheme's Θ.
    """

    scheme: TensorScheme

    def with_mu(self, mu: float) -> PerTensor:
        """The same scheme bound to ``mu`` if it is a penalty form (see :func:`bind_mu`)."""
        return PerTensor(bind_mu(self.scheme, mu))

    def _tasks(self, names: Any) -> Tasks:
        return Tasks({n: self.scheme for n in names})

    def compress(self, w: Params, /) -> dict[str, Any]:
        return self._tasks(w).compress(w)

    def decompress(self, theta: Mapping[str, Any], /) -> dict[str, Array]:
        return self._tasks(theta).decompress(theta)

    def contains(self, w: Params, /, *, atol: float = 0.0) -> bool:
        return self._tasks(w).contains(w, atol=atol)

    def cost(self, theta: Mapping[str, Any], /) -> dict[str, StorageCost]:
        return self._tasks(theta).cost(theta)


@dataclass(frozen=True)
class Chain:
    """Two compressions one after the other: Θ = Π₂(Δ₁(Π₁(w))), Δ = Δ₂.

    The result lies in the second scheme's feasible set, and in the intersection of both sets
    when the second maps the first's set into itself (e.g. pruning, then quantizing the
    nonzeros with zeros kept: ``AdaptiveQuantization(k, sparse=True)``). A heuristic, not the
    projection onto the intersection (Han et al. 2016's prune-then-quantize).
    """

    first: Compression
    then: Compression

    def with_mu(self, mu: float) -> Chain:
        """Both compressions bound to ``mu`` (see :func:`bind_mu`)."""
        return Chain(bind_mu(self.first, mu), bind_mu(self.then, mu))

    def compress(self, w: Params, /) -> Any:
        return self.then.compress(self.first.decompress(self.first.compress(w)))

    def decompress(self, theta: Any, /) -> dict[str, Array]:
        return self.then.decompress(theta)

    def contains(self, w: Params, /, *, atol: float = 0.0) -> bool:
        return self.first.contains(w, atol=atol) and self.then.contains(w, atol=atol)

    def cost(self, theta: Any, /) -> dict[str, StorageCost]:
        return self.then.cost(theta)


def bind_mu(c: Any, mu: float) -> Any:
    """`c` with its penalty parameter bound to `mu`, for a C step at penalty μ.

    Penalty-form schemes (the C step is a proximal operator, ``min_Θ α C(Θ) + μ/2 ||w −
    Δ(Θ)||²``, e.g. an ℓ0 or ℓ1 penalty: LC Part II, §4) define ``with_mu(mu)``; combinators
    pass it on to their parts; every other compression is returned unchanged.
    """
    f = getattr(c, "with_mu", None)
    return f(mu) if f is not None else c


def as_compression(c: Compression | TensorScheme) -> Compression:
    """A :class:`Compression` from a compression or a tensor scheme (lifted by PerTensor)."""
    if isinstance(c, TensorScheme):
        return PerTensor(c)
    if not isinstance(c, Compression):
        raise TypeError(
            f"expected a Compression or a TensorScheme, got {type(c).__name__} "
            "(it needs compress, decompress, contains and cost)"
        )
    return c
