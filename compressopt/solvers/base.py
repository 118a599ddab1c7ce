"""Interfaces and result types shared by every coordinator.

A coordinator alternates two oracles:

* a **loss oracle** (:class:`LossOracle`): the loss L(w), its gradient, and the L step, an
  approximate minimization of ``L(w) + (mu/2) ||w - c||^2`` from a warm start (LC eq. 9/13);
* a **compression** (:class:`~compressopt.projections.base.Compression`): Π (the C step) and Δ.

Settings live in a frozen dataclass (the solver), the iterate in a ``NamedTuple`` state, and a
run ends in a :class:`SolveResult` holding the feasible point Δ(Θ), the last state and one
history record per iteration.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import numbers
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar, runtime_checkable

from compressopt._array import Array
from compressopt.errors import NonFiniteError, ShapeMismatchError
from compressopt.tree import Params, tree_check

__all__ = [
    "Coordinator",
    "Diagnostics",
    "DifferentiableOracle",
    "LossOracle",
    "RetrainOracle",
    "SolveResult",
    "Status",
    "Timer",
    "check_positive_int",
    "check_real",
    "check_settings",
    "diagnostics",
    "drive",
    "history_columns",
]

logger = logging.getLogger("compressopt.solvers")

S = TypeVar("S", bound=tuple)
R = TypeVar("R", bound=tuple)


@runtime_checkable
class LossOracle(Protocol):
    """What a coordinator needs to know of the loss L(w).

    ``w`` is a mapping name -> array over the compressed tensors; anything else a model holds
    (biases, norm layers) is the oracle's own business and is trained inside ``lstep``.
    Implementations never modify the arrays they are given.
    """

    def value(self, w: Params) -> float:
        """L(w) as a Python float."""
        ...

    def lstep(self, w: Params, center: Params, mu: float, *, step: int = 0) -> dict[str, Array]:
        """The L step: approximately minimize ``L(v) + (mu/2) ||v - center||^2`` over v.

        Starts from `w` (warm start) and returns the new iterate as a new ``dict``. `step` is
        the coordinator's iteration number (0-based), for learning-rate schedules.
        Carreira-Perpiñán 2017, eq. (9) (quadratic penalty) and (13) (augmented Lagrangian,
        ``center = Δ(Θ) + λ/μ``).
        """
        ...


@runtime_checkable
class RetrainOracle(LossOracle, Protocol):
    """A loss oracle that can retrain with a fixed sparsity pattern (masked retraining)."""

    def retrain(self, w: Params, mask: Params, *, steps: int | None = None,
                project: Any = None) -> dict[str, Array]:
        """Approximately minimize L(v) over v with ``v = 0`` where `mask` is False.

        Starts from `w` (zero off the mask); `mask` holds boolean arrays shaped like `w`.
        `steps` bounds the work (epochs, iterations) where the oracle is iterative. With
        `project` (a callable on dicts of arrays), minimize L(project(v)) straight-through:
        the result is a point ``project(v)`` (e.g. quantized with fixed bit widths).
        """
        ...


@runtime_checkable
class DifferentiableOracle(LossOracle, Protocol):
    """A loss oracle that also gives ∇L(w), as the gradient-based coordinators need."""

    def grad(self, w: Params) -> dict[str, Array]:
        """∇L(w), a mapping with the names and shapes of `w`."""
        ...


def check_positive_int(value: Any, name: str) -> None:
    """Raise ``ValueError`` unless `value` is an int >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_real(value: Any, name: str, *, allow_inf: bool = False) -> float:
    """`value` as a float: a real number (bools refused), not NaN, finite unless `allow_inf`.

    Raises
    ------
    TypeError
        `value` is not a real number (a str, a bool, None, an array, ...).
    NonFiniteError
        `value` is NaN, or infinite without `allow_inf` (a ``ValueError``).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise NonFiniteError(f"{name} must be a finite number, got {v}")
    return v


def _kinds(annotation: Any) -> set[str] | None:
    """The kinds of a settings field from its annotation (a string under postponed
    evaluation): a subset of float, int, bool, None, floats (a sequence of floats) and
    callable; None when some part is another type (not checked here)."""
    out = set()
    for part in str(annotation).split("|"):
        p = part.strip().replace("typing.", "").replace("collections.abc.", "")
        if p in ("float", "int", "bool", "None"):
            out.add(p)
        elif p == "Sequence[float]":
            out.add("floats")
        elif p.startswith("Callable"):
            out.add("callable")
        else:
            return None
    return out


def check_settings(obj: Any) -> None:
    """Check the types of a frozen dataclass's settings from their annotations.

    For every field annotated with ``float``, ``int``, ``bool``, ``Sequence[float]``,
    ``Callable`` and ``None`` (alone or as a union): a float must be a real number (bools
    refused), not NaN, and finite unless the field's default is infinite (e.g.
    ``rho_max = inf``); an int an integer (bools and floats refused); a bool a bool; a
    sequence of floats an iterable of such numbers; a callable callable; None where None is
    allowed. Fields of other types (``Literal``, schedules) are left to the class. Ranges
    (``> 0``, ``>= 1``) are the class's own ``__post_init__``'s business.

    :class:`Coordinator` runs it before every subclass's ``__post_init__``.

    Raises
    ------
    TypeError
        A value of the wrong type, naming ``Class.field``.
    NonFiniteError
        A NaN, or an infinite value where the default is finite (a ``ValueError``).
    """
    cls = type(obj).__name__
    for f in dataclasses.fields(obj):
        kinds = _kinds(f.type)
        if kinds is None:
            continue
        v, label = getattr(obj, f.name), f"{cls}.{f.name}"
        if (v is None and "None" in kinds) or ("callable" in kinds and callable(v)):
            continue
        if "float" in kinds:
            inf_ok = isinstance(f.default, float) and math.isinf(f.default)
            check_real(v, label, allow_inf=inf_ok)
        elif "int" in kinds:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{label} must be an int, got {type(v).__name__} ({v!r})")
        elif "bool" in kinds:
            if not isinstance(v, bool):
                raise TypeError(f"{label} must be a bool, got {type(v).__name__} ({v!r})")
        elif "floats" in kinds:
            if isinstance(v, str | bytes | Mapping) or not (isinstance(v, Iterable)
                                                            and hasattr(v, "__len__")):
                raise TypeError(f"{label} must be a sequence of numbers, got "
                                f"{type(v).__name__}")
            for i, e in enumerate(v):
                check_real(e, f"{label}[{i}]")
        else:  # only callable (and None) allowed
            raise TypeError(f"{label} must be callable, got {type(v).__name__}")


class Status(enum.IntEnum):
    """Why a run stopped."""

    CONVERGED = 0  #: the solver's stopping test held
    MAXITER = 1  #: the iteration limit was reached first
    CALLBACK = 2  #: the callback raised StopIteration
    NONFINITE = 3  #: the loss or an iterate became NaN/Inf


@dataclass(frozen=True)
class SolveResult(Generic[S, R]):
    """Outcome of a coordinator's ``run`` (cf. ``scipy.optimize.OptimizeResult``).

    Attributes
    ----------
    x : dict name -> array
        The returned point: Δ(Θ) for the constrained coordinators, feasible by construction.
    theta : object
        The compressed parameters Θ with ``compression.decompress(theta) == x``.
    state : NamedTuple
        The last state; pass the result as ``resume=`` to continue the run.
    converged : bool
        Whether the stopping test held.
    status : Status
    message : str
    nit : int
        Iterations done in all (over resumed runs too).
    history : tuple of NamedTuple
        One record per iteration, the fields of the solver's record type.
    """

    x: dict[str, Array]
    theta: Any
    state: S
    converged: bool
    status: Status
    message: str
    nit: int
    history: tuple[R, ...] = field(default=())

    def column(self, name: str) -> list[Any]:
        """One field of every history record, e.g. ``result.column("mu")``."""
        return [getattr(r, name) for r in self.history]


def history_columns(history: Sequence[NamedTuple]) -> dict[str, list[Any]]:
    """History records as columns: ``{field: [value per iteration]}``."""
    if not history:
        return {}
    return {f: [getattr(r, f) for r in history] for f in history[0]._fields}


class Timer:
    """Accumulating wall-clock timer: ``with timer: ...``; ``timer.seconds`` is the last span."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0


Callback = Callable[[Any, Any], None]


def drive(
    step: Callable[[S], tuple[S, R]],
    state: S,
    *,
    maxiter: int,
    converged: Callable[[S, R], bool],
    finite: Callable[[R], bool],
    callback: Callback | None,
    name: str,
    history: Sequence[R] = (),
) -> tuple[S, tuple[R, ...], Status, str]:
    """The loop shared by the coordinators' ``run``.

    Calls ``state, record = step(state)``, then ``callback(state, record)``, until
    ``converged(state, record)``, `maxiter` more iterations were done, ``finite(record)`` is
    false (NaN/Inf in the iterate or loss), or the callback raises ``StopIteration``. Logs one
    line per iteration at INFO level on ``compressopt.solvers``.
    """
    hist = list(history)
    # the limit counts the iterations of `history` too (a resumed run: nit counts all)
    status = Status.MAXITER
    message = f"{name}: reached maxiter={len(hist) + maxiter} iterations"
    for _ in range(maxiter):
        state, record = step(state)
        hist.append(record)
        logger.info("%s %s", name, _fmt(record))
        if not finite(record):
            status, message = (
                Status.NONFINITE,
                f"{name}: the iterate or loss is not finite: {_fmt(record)}",
            )
            break
        if callback is not None:
            try:
                callback(state, record)
            except StopIteration as stop:
                status = Status.CALLBACK
                message = f"{name}: stopped by the callback" + (f": {stop}" if str(stop) else "")
                break
        if converged(state, record):
            status, message = Status.CONVERGED, f"{name}: converged ({_fmt(record)})"
            break
    return state, tuple(hist), status, message


def _fmt(record: NamedTuple) -> str:
    parts = []
    for k, v in record._asdict().items():
        if isinstance(v, float):
            parts.append(f"{k}={v:.4g}")
        elif isinstance(v, int | str):
            parts.append(f"{k}={v}")
    return " ".join(parts)


class Diagnostics(NamedTuple):
    loss: float
    loss_compressed: float
    weight_bits: int
    nnz: int


def diagnostics(
    oracle: LossOracle, compression: Any, w: Params, delta: Params, theta: Any, eval_loss: bool
) -> Diagnostics:
    """L(w), L(Δ(Θ)) (NaN unless `eval_loss`), and the storage Σ bits·nnz and nnz of Θ."""
    from compressopt.projections.base import summarize

    s = summarize(compression.cost(theta))
    if eval_loss:
        return Diagnostics(oracle.value(w), oracle.value(delta), s.weight_bits, s.nnz)
    return Diagnostics(math.nan, math.nan, s.weight_bits, s.nnz)


class Coordinator:
    """Mixin giving a coordinator its ``run``: init (or resume), then ``step`` until done.

    A subclass (a frozen dataclass of settings) defines ``init(w, compression, oracle=None)``,
    ``step(state, oracle, compression) -> (state, record)``, ``converged(record)``,
    ``finite(record)`` and the number of iterations ``niter``; the state has a field ``k``
    (iterations done) and ``theta`` (the compressed parameters).
    """

    name: str = "solver"
    #: the oracle methods ``run`` requires (checked before any work when a subclass sets it)
    oracle_methods: ClassVar[tuple[str, ...] | None] = None

    @property
    def needs_oracle(self) -> bool:
        """Whether ``run`` needs a loss oracle (direct compression without ``eval_loss``
        does not: its C step alone is the answer)."""
        return True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Run :func:`check_settings` before the subclass's own ``__post_init__``, so every
        coordinator refuses NaN, infinite and mistyped settings the same way."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")

        def __post_init__(self: Any) -> None:
            check_settings(self)
            if own is not None:
                own(self)

        __post_init__.__doc__ = own.__doc__ if own is not None else None
        cls.__post_init__ = __post_init__  # type: ignore[attr-defined]

    @property
    def niter(self) -> int:
        return self.maxiter  # type: ignore[attr-defined]

    def converged(self, record: Any) -> bool:  # pragma: no cover - always overridden
        raise NotImplementedError

    def finite(self, record: Any) -> bool:  # pragma: no cover - always overridden
        raise NotImplementedError

    def output(self, state: Any, compression: Any) -> tuple[dict[str, Array], Any]:
        """The returned point and its Θ: Δ(Θ) of the state by default."""
        return compression.decompress(state.theta), state.theta

    def run(
        self,
        w: Params,
        oracle: LossOracle,
        compression: Any,
        *,
        callback: Callback | None = None,
        resume: SolveResult | None = None,
    ) -> SolveResult:
        """Run from the reference weights `w` (or continue `resume`) and return Δ(Θ).

        Parameters
        ----------
        w : mapping name -> array
            Reference weights w̄ (ignored when resuming). Validated, never modified.
        oracle : LossOracle
        compression : Compression or TensorScheme
            The constraint w = Δ(Θ); a tensor scheme applies to every tensor.
        callback : callable(state, record), optional
            Called after every iteration; raising ``StopIteration`` ends the run.
        resume : SolveResult, optional
            A previous result of this solver: continue from its state and history up to
            the solver's iteration limit (``nit`` counts all iterations).

        Returns
        -------
        SolveResult
            ``x = Δ(Θ)`` (feasible), the last state and the history.

        Raises
        ------
        NonFiniteError, UnsupportedDTypeError
            `w` holds NaN/Inf or non-floating arrays.
        ShapeMismatchError
            `w` is empty, or its names or shapes are not the oracle's (when the oracle has a
            ``check_params(w)`` method, as :class:`~compressopt.solvers.LeastSquares` does),
            or not the compression's.
        TypeError
            `w` is not a mapping of names to arrays, `oracle` is not a loss oracle or lacks a
            method the solver declares in ``oracle_methods``, `compression` is not a
            compression, `callback` is not callable, or `resume` is not a
            :class:`SolveResult`.
        """
        from compressopt.projections.base import as_compression

        C = as_compression(compression)
        _check_run(self, w, oracle, callback, resume)
        if resume is not None:
            state, history = resume.state, resume.history
        else:
            state, history = self.init(w, C, oracle), ()  # type: ignore[attr-defined]
        state, history, status, message = drive(
            lambda s: self.step(s, oracle, C),  # type: ignore[attr-defined]
            state,
            maxiter=max(0, self.niter - state.k),
            converged=lambda s, r: self.converged(r),
            finite=self.finite,
            callback=callback,
            name=self.name,
            history=history,
        )
        x, theta = self.output(state, C)
        return SolveResult(
            x=x,
            theta=theta,
            state=state,
            converged=status == Status.CONVERGED,
            status=status,
            message=message,
            nit=state.k,
            history=history,
        )


def _check_run(solver: Any, w: Any, oracle: Any, callback: Any, resume: Any) -> None:
    """The checks of :meth:`Coordinator.run` before any work (see its Raises)."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if oracle is not None or solver.needs_oracle:
        if not any(callable(getattr(oracle, m, None)) for m in ("value", "lstep", "grad")):
            raise TypeError(f"oracle must be a loss oracle (value, lstep or grad methods), got "
                            f"{type(oracle).__name__}")
        for m in solver.oracle_methods or ():
            if not callable(getattr(oracle, m, None)):
                raise TypeError(f"{solver.name} needs an oracle with a {m}() method; "
                                f"{type(oracle).__name__} has none")
    if resume is not None:
        if not isinstance(resume, SolveResult):
            raise TypeError(f"resume must be a SolveResult of {solver.name}, got "
                            f"{type(resume).__name__}")
        return
    w = tree_check(w)  # a mapping of finite floating arrays (TypeError, NonFiniteError, ...)
    if not w:
        raise ShapeMismatchError("w is empty: give at least one tensor (name -> array)")
    check = getattr(oracle, "check_params", None)
    if callable(check):
        check(w)
