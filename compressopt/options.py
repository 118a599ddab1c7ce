"""Typed options of a ``compressopt compress`` job: one source for Python, the CLI and TOML.

A job's settings are a frozen :class:`JobConfig`: the options every method shares (model,
data, training schedule, output) and, in ``JobConfig.options``, one frozen dataclass of the
method's own options (:class:`LCOptions`, :class:`ADMMOptions`, :class:`JointADMMOptions`,
:class:`SLROptions`, :class:`APGDSSMOptions`). Every field carries its help text, command-line
flag, metavar and valid range (:func:`opt`); ``__post_init__`` checks each value against its
type and range (finite where a number must be finite) and raises
:class:`~compressopt.errors.ConfigError` naming the flag and the valid range. The command
line's argument groups (:mod:`compressopt.cli`) and the keys of a TOML configuration
(:func:`load_toml`; flat keys, the field names) are derived from these fields, so the three
cannot drift. Adding an option = adding a field.

This module does not import torch.

Examples
--------
>>> c = JobConfig(method="admm", options={"budget_ratio": 2000, "rho": 0.05})
>>> type(c.options).__name__, c.options.budget_ratio
('JointADMMOptions', 2000.0)
>>> JobConfig(prune=1.5)
Traceback (most recent call last):
...
compressopt.errors.ConfigError: --prune must be a finite number in (0, 1], got 1.5
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

from compressopt.errors import ConfigError

__all__ = [
    "DEFAULTS",
    "GENERIC_DEFAULTS",
    "METHOD_OPTIONS",
    "ADMMOptions",
    "APGDSSMOptions",
    "JobConfig",
    "JointADMMOptions",
    "LCOptions",
    "MemoryEstimate",
    "MethodOptions",
    "OptionInfo",
    "SLROptions",
    "TrainingDefaults",
    "defaults_for",
    "dump_toml",
    "load_recipe",
    "load_toml",
    "method_options",
    "option_fields",
    "recipes",
    "register_options",
]


#: the largest float32: torch uses learning rates and weight decay as float32 scalars
FLOAT32_MAX = 3.4028234663852886e38

# -- field metadata -------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionInfo:
    """What a field of an options class means on the command line and in messages.

    Attributes
    ----------
    help : one line for ``--help``.
    flag : the command-line flag (default ``--`` + the field name with dashes).
    metavar : the value's name in ``--help``.
    low, high : the valid range (None: unbounded); `low_open`/`high_open` exclude the end.
    finite : a float must be finite (default True).
    group : the ``--help`` group of a :class:`JobConfig` field.
    negate : a bool whose flag stores False (``--heavy-ball`` sets ``nesterov = false``).
    append : a sequence whose flag is repeated (``--include P --include Q``), not ``nargs``.
    """

    help: str
    flag: str = ""
    metavar: str | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    finite: bool = True
    group: str = ""
    negate: bool = False
    append: bool = False


def opt(default: Any, help: str, **info: Any) -> Any:
    """A dataclass field with :class:`OptionInfo` metadata (``info``: its attributes)."""
    return field(default=default, metadata={"option": OptionInfo(help, **info)})


@dataclass(frozen=True)
class _Kind:
    """A field's type: ``base`` (bool, int, float, str), a tuple of them, optional, choices."""

    base: type
    seq: bool = False
    optional: bool = False
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        one = {bool: "boolean", int: "integer", float: "number", str: "string"}[self.base]
        return f"a list of {one}s" if self.seq else ("an " if one[0] == "i" else "a ") + one


def _kind(tp: Any) -> _Kind:
    optional = False
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        optional = type(None) in args
        (tp,) = [a for a in args if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin is Literal:
        return _Kind(str, optional=optional, choices=tuple(typing.get_args(tp)))
    if origin is tuple:
        return _Kind(typing.get_args(tp)[0], seq=True, optional=optional)
    return _Kind(tp, optional=optional)


@dataclass(frozen=True)
class FieldSpec:
    """One option: its name, type, default and :class:`OptionInfo` (see :func:`option_fields`)."""

    name: str
    kind: _Kind
    default: Any
    info: OptionInfo

    @property
    def flag(self) -> str:
        return self.info.flag or "--" + self.name.replace("_", "-")


_SPECS: dict[type, dict[str, FieldSpec]] = {}


def option_fields(cls: type) -> dict[str, FieldSpec]:
    """The options of dataclass `cls` in field order, ``{name: FieldSpec}`` (cached)."""
    if cls not in _SPECS:
        hints = typing.get_type_hints(cls)
        _SPECS[cls] = {
            f.name: FieldSpec(f.name, _kind(hints[f.name]), f.default, f.metadata["option"])
            for f in dataclasses.fields(cls)
            if "option" in f.metadata
        }
    return _SPECS[cls]


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _range_text(spec: FieldSpec) -> str:
    i = spec.info
    if i.low is not None and i.high is not None:
        lo, hi = "(" if i.low_open else "[", ")" if i.high_open else "]"
        return f" in {lo}{_fmt(i.low)}, {_fmt(i.high)}{hi}"
    if i.low is not None:
        return f" {'>' if i.low_open else '>='} {_fmt(i.low)}"
    if i.high is not None:
        return f" {'<' if i.high_open else '<='} {_fmt(i.high)}"
    return ""


def _what(spec: FieldSpec) -> str:
    """"a finite number in (0, 1]", "an integer >= 1", ... (the valid values of `spec`)."""
    k = spec.kind
    if k.choices is not None:
        return "one of " + ", ".join(repr(c) for c in k.choices)
    base = {int: "an integer", float: "a finite number" if spec.info.finite else "a number",
            str: "a string", bool: "true or false"}[k.base]
    return base + _range_text(spec)


def _convert(spec: FieldSpec, v: Any) -> Any:
    """`v` checked against `spec` (one element of a sequence option); ConfigError if not."""
    k, i = spec.kind, spec.info
    ok = True
    if k.base is bool:
        ok = isinstance(v, bool)
    elif k.base is int:
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif k.base is float:
        ok = isinstance(v, int | float) and not isinstance(v, bool)
        if ok:
            v = float(v)
            ok = math.isfinite(v) or (not i.finite and not math.isnan(v))
    elif k.base is str:
        ok = isinstance(v, str) and (k.choices is None or v in k.choices)
    if ok and k.base in (int, float):
        ok = ((i.low is None or (v > i.low if i.low_open else v >= i.low))
              and (i.high is None or (v < i.high if i.high_open else v <= i.high)))
    if not ok:
        what = _what(spec)
        if k.seq:
            raise ConfigError(f"{spec.flag} takes values that are each {what}, got {v!r}")
        raise ConfigError(f"{spec.flag} must be {what}, got {v!r}")
    return v


def _check_fields(obj: Any) -> None:
    """Check and normalize every option field of the frozen dataclass `obj` in place
    (ints of float fields become floats, lists of sequence fields tuples)."""
    for name, spec in option_fields(type(obj)).items():
        v = getattr(obj, name)
        if v is None:
            if not spec.kind.optional:
                raise ConfigError(f"{spec.flag} must be {_what(spec)}, got None")
            continue
        if spec.kind.seq:
            if isinstance(v, str | bytes) or not isinstance(v, Iterable):
                raise ConfigError(f"{spec.flag} must be a list, got {v!r}")
            v = tuple(_convert(spec, x) for x in v)
        else:
            v = _convert(spec, v)
        object.__setattr__(obj, name, v)


def _given(obj: Any, *names: str) -> list[str]:
    """The flags of those `names` whose value differs from the field's default."""
    specs = option_fields(type(obj))
    return [specs[n].flag for n in names if getattr(obj, n) != specs[n].default]


# -- method options ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodOptions:
    """Base of the per-method options classes.

    Class attributes
    ----------------
    method : the ``--method`` value; summary : its one line in ``--help``.
    title : how messages name this set of options; hint : what the method takes instead.
    selected_by : fields whose presence selects this class among the method's classes (the
        joint ADMM is ``--method admm`` with ``--budget-ratio`` or ``--budget-bits``).
    takes_prune, takes_quantize : whether the method takes ``--prune`` (and the data set's
        default KEEP when neither ``--prune`` nor ``--quantize`` is given) and ``--quantize``.
    takes_combine : whether its constraint follows ``--combine`` and ``--shared-codebook``
        (a method that builds its own from ``--prune``/``--quantize`` leaves it False, so
        those options are refused rather than ignored).
    has_finish : whether the method ends with a retraining or fine-tuning stage
        (``--distill-phase finish`` needs one).
    memory_flag : the option that lowers the C step's memory (:meth:`cstep_memory`).
    clips_lr : whether the L step's learning rate is clipped to 1/μ (a method without a
        penalty, such as iterated DC, trains at the plain rate).
    """

    method: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    title: ClassVar[str] = ""
    hint: ClassVar[str] = ""
    selected_by: ClassVar[tuple[str, ...]] = ()
    takes_prune: ClassVar[bool] = True
    takes_quantize: ClassVar[bool] = True
    takes_combine: ClassVar[bool] = False
    has_finish: ClassVar[bool] = False
    memory_flag: ClassVar[str] = "--quantize"
    clips_lr: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_fields(self)
        self.check()

    def check(self) -> None:
        """Relations between this class's fields (ConfigError); ranges are checked already."""

    def check_job(self, job: JobConfig) -> None:
        """Relations with the job's common options (ConfigError), e.g. ``--prune``."""
        if job.quantize is not None and not self.takes_quantize:
            drop = "--prune and --quantize" if not self.takes_prune else "--quantize"
            raise ConfigError(f"{self.hint}: drop {drop}")
        if job.prune is not None and not self.takes_prune:
            raise ConfigError(f"{self.hint}: drop --prune and --quantize")
        if (job.combine != "chain" or job.shared_codebook) and not self.takes_combine:
            raise ConfigError(f"--method {self.method} builds its own constraint: drop "
                              "--combine and --shared-codebook")

    def cstep_memory(self, job: JobConfig, shapes: Mapping[str, tuple[int, ...]],
                     ) -> MemoryEstimate:
        """The C step's peak memory for these options and `shapes` (the compressed tensors'
        shapes; `job` resolved): the projections' own estimate for the tensor that needs
        the most. Default: the exact k-means of ``--quantize K`` on each tensor
        (:func:`~compressopt.projections.kmeans1d_memory`, about 16·K·n bytes; on at most
        KEEP of the weights with ``--prune``), else the sort of the global ℓ0 projection
        (24 bytes per weight)."""
        return _prune_quantize_memory(job, shapes)

    def cstep_bytes(self, job: JobConfig, shapes: Mapping[str, tuple[int, ...]]) -> int:
        """:meth:`cstep_memory` in bytes."""
        return self.cstep_memory(job, shapes).bytes


#: method name -> its options classes, the default one (no ``selected_by``) first
METHOD_OPTIONS: dict[str, list[type[MethodOptions]]] = {}


def register_options(cls: type[MethodOptions]) -> type[MethodOptions]:
    """Add `cls` to :data:`METHOD_OPTIONS` under ``cls.method`` (replacing a class of the same
    name); usable as a class decorator."""
    found = METHOD_OPTIONS.setdefault(cls.method, [])
    found[:] = [c for c in found if c.__name__ != cls.__name__]
    found.insert(0 if not cls.selected_by else len(found), cls)
    _SPECS.pop(cls, None)
    return cls


def options_class(method: str, keys: Iterable[str]) -> type[MethodOptions]:
    """The options class of `method` selected by the given option names `keys`."""
    classes = METHOD_OPTIONS.get(method)
    if not classes:
        raise ConfigError(f"--method must be one of {', '.join(sorted(METHOD_OPTIONS))}, "
                          f"got {method!r}")
    keys = set(keys)
    for cls in classes:
        if cls.selected_by and keys & set(cls.selected_by):
            return cls
    return classes[0]


def method_options(method: str, settings: Mapping[str, Any]) -> MethodOptions:
    """The options of `method` from ``{field name: value}`` (None values are left out).

    Raises
    ------
    ConfigError
        A name that is no option of the selected class (an option of another method, or of
        the method's other variant), or a value out of range.
    """
    given = {k: v for k, v in settings.items() if v is not None}
    cls = options_class(method, given)
    mine = option_fields(cls)
    foreign = [k for k in given if k not in mine]
    if foreign:
        raise ConfigError(_foreign_message(method, cls, foreign))
    return cls(**given)


def _all_method_fields() -> dict[str, tuple[type[MethodOptions], FieldSpec]]:
    out: dict[str, tuple[type[MethodOptions], FieldSpec]] = {}
    for classes in METHOD_OPTIONS.values():
        for cls in classes:
            for name, spec in option_fields(cls).items():
                out.setdefault(name, (cls, spec))
    return out


def _foreign_message(method: str, cls: type[MethodOptions], keys: list[str]) -> str:
    known = _all_method_fields()
    siblings = [k for k in keys if any(k in option_fields(c) for c in METHOD_OPTIONS[method])]
    if siblings:
        other = next(c for c in METHOD_OPTIONS[method] if siblings[0] in option_fields(c))
        flags = ", ".join(option_fields(other)[k].flag for k in siblings)
        return f"{flags}: options of {other.title}; {cls.hint}"
    parts = []
    for k in keys:
        if k in known:
            owner, spec = known[k]
            parts.append(f"{spec.flag} (--method {owner.method})")
        else:
            parts.append(_unknown(k, list(known)))
    return f"--method {method} does not take {', '.join(parts)}"


def _unknown(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    return f"unknown option {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


@register_options
@dataclass(frozen=True)
class LCOptions(MethodOptions):
    """Options of ``--method lc``: none beyond the job's (μ schedule: --mu0, --mu-growth)."""

    method: ClassVar[str] = "lc"
    takes_combine: ClassVar[bool] = True
    summary: ClassVar[str] = ("learning-compression, augmented Lagrangian "
                              "(Carreira-Perpiñán 2017), mu_k = mu0 a^k")
    title: ClassVar[str] = "--method lc"
    hint: ClassVar[str] = "--method lc"

    inner_iterations: int = opt(
        1, "L/C alternations per penalty value mu_k before the multiplier update "
        "(Carreira-Perpiñán 2017 §4.1; default 1)", metavar="N", low=1)


@register_options
@dataclass(frozen=True)
class DCOptions(MethodOptions):
    """Options of ``--method dc``: direct compression, the LC paper's baseline (eq. 12), or
    iterated DC (§6.2.3) with ``--iterated``."""

    method: ClassVar[str] = "dc"
    takes_combine: ClassVar[bool] = True
    summary: ClassVar[str] = ("direct compression (Carreira-Perpiñán 2017, eq. 12): the "
                              "reference's weights compressed once; with --iterated, iDC")
    title: ClassVar[str] = "--method dc"
    hint: ClassVar[str] = "--method dc"
    clips_lr: ClassVar[bool] = False

    iterated: bool = opt(
        False, "iterated DC (§6.2.3): --steps rounds, each trains L from the compressed "
        "model (--epochs, no penalty) and compresses the result")


_PENALTY_STEP = ("how the L step applies rho/2 ||W - V + Y/rho||^2: prox, the proximal SGD "
                 "step of Yang et al.'s eq. (5) (default with --budget-ratio/--budget-bits), "
                 "or gradient, added to the loss's gradient (default otherwise)")
_EVAL_PROJECTED = ("also record each iteration's test accuracy of P(W), the projection of the "
                   "current W onto the constraint set without the scaled dual (Zhou et al.'s "
                   "hard-prune accuracy; one more test evaluation per iteration)")


@register_options
@dataclass(frozen=True)
class ADMMOptions(MethodOptions):
    """Options of ``--method admm`` with ``--prune``/``--quantize`` (Boyd et al. 2011): the
    penalty ρ_k = mu0 · mu_growth^k comes from the job's --mu0 and --mu-growth."""

    method: ClassVar[str] = "admm"
    takes_combine: ClassVar[bool] = True
    summary: ClassVar[str] = (
        "ADMM with a projection z-update (Boyd et al. 2011), rho_k = mu0 a^k; with "
        "--budget-ratio/--budget-bits the joint sparsity-quantization ADMM (Yang et al. 2020)")
    title: ClassVar[str] = "the ADMM of --prune/--quantize"
    hint: ClassVar[str] = "the ADMM of --prune/--quantize takes --mu0 and --mu-growth"
    has_finish: ClassVar[bool] = True

    penalty_step: Literal["gradient", "prox"] = opt("gradient", _PENALTY_STEP)
    eval_projected: bool = opt(False, _EVAL_PROJECTED)


@register_options
@dataclass(frozen=True)
class JointADMMOptions(MethodOptions):
    """Options of the joint sparsity-quantization ADMM (Yang et al. 2020, Algorithm 1):
    ``--method admm`` with ``--budget-ratio R`` or ``--budget-bits S`` (exactly one)."""

    method: ClassVar[str] = "admm"
    title: ClassVar[str] = "the joint ADMM (with --budget-ratio or --budget-bits)"
    hint: ClassVar[str] = ("--budget-ratio/--budget-bits choose the sparsity and the bit "
                           "widths")
    selected_by: ClassVar[tuple[str, ...]] = ("budget_ratio", "budget_bits")
    memory_flag: ClassVar[str] = "the largest of --bit-candidates"
    takes_prune: ClassVar[bool] = False
    takes_quantize: ClassVar[bool] = False
    has_finish: ClassVar[bool] = True

    budget_ratio: float | None = opt(
        None, "joint sparsity-quantization ADMM (Yang et al. 2020) under the budget "
        "S = 32 x weights / R bits; the method picks each layer's sparsity and bits",
        metavar="R", low=0.0, low_open=True)
    budget_bits: float | None = opt(
        None, "the same budget in bits (0: prune everything)", metavar="S", low=0.0)
    rho: float = opt(0.05, "penalty rho of the joint ADMM (default 0.05)", low=0.0,
                     low_open=True)
    rho_growth: float = opt(1.0, "rho_k = rho A^k in epoch k (default 1: fixed rho, as in "
                            "the paper)", metavar="A", low=1.0)
    bit_candidates: tuple[int, ...] = opt(
        tuple(range(1, 9)), "candidate bit widths (default 1..8)", metavar="B", low=1, high=16)
    init_bits: int = opt(3, "bits of the uniform quantization that starts V, and so of the "
                         "first pruning step (default 3, the authors' LeNet-5 setting)",
                         metavar="B", low=1, high=16)
    v_support: Literal["w", "free"] = opt(
        "w", "the V projection of eq. (10): w (default), W + Y/rho quantized on W's support; "
        "free, eq. (10) as written: every entry to 0 or one of the 2^b levels (the authors' "
        "code), W's nonzeros charged")
    finetune_epochs: int = opt(
        0, "after the joint ADMM: N epochs of straight-through fine-tuning with the nonzeros "
        "and bit widths fixed, codebooks refitted, learning rate a cosine from --finetune-lr "
        "(default 0)", metavar="N", low=0)
    finetune_lr: float | None = opt(
        None, "first learning rate of the fine-tuning (default: --lstep-lr / 10)", metavar="LR",
        low=0.0, low_open=True, high=FLOAT32_MAX)
    penalty_step: Literal["gradient", "prox"] = opt("prox", _PENALTY_STEP)
    eval_projected: bool = opt(False, _EVAL_PROJECTED)
    init_projections: bool = opt(
        True, "start as Algorithm 1 lines 2-4 (W projected, eq. 8; V from W + Y/rho, eq. 10; "
        "Y updated, eq. 7) by default; with this flag the earlier start: V a uniform "
        "quantization of W, Y = 0", flag="--no-init-projections", negate=True)

    def check(self) -> None:
        if (self.budget_ratio is None) == (self.budget_bits is None):
            raise ConfigError("give one of --budget-bits and --budget-ratio")
        if not self.bit_candidates:
            raise ConfigError("--bit-candidates needs at least one bit width")

    def cstep_memory(self, job: JobConfig, shapes: Mapping[str, tuple[int, ...]],
                     ) -> MemoryEstimate:
        """The V projection's k-means sweep (``method="fast"``) over the candidate codebook
        sizes 2^b of each tensor (:func:`~compressopt.projections.kmeans1d_memory`)."""
        from compressopt.projections import kmeans1d_memory

        return _largest(
            MemoryEstimate(kmeans1d_memory(n, 2**b, method="fast"),
                           f"the fast k-means with K = 2^{b} on the {n:,} weights of {name}")
            for name, n in _sizes(shapes).items() for b in self.bit_candidates)


@register_options
@dataclass(frozen=True)
class SLROptions(MethodOptions):
    """Options of ``--method slr``: surrogate Lagrangian relaxation pruning (Zhou et al.)."""

    method: ClassVar[str] = "slr"
    summary: ClassVar[str] = ("surrogate Lagrangian relaxation pruning (Zhou et al.): "
                              "hard-pruned W, optional retraining")
    title: ClassVar[str] = "--method slr"
    hint: ClassVar[str] = "--method slr prunes"
    takes_quantize: ClassVar[bool] = False
    has_finish: ClassVar[bool] = True

    prune_scope: Literal["global", "layer"] = opt(
        "global", "one l0 budget for the net, or KEEP of every layer (the paper's l_n)")
    slr_rho: float = opt(0.1, "penalty rho (default 0.1)", low=0.0, low_open=True)
    s0: float = opt(1e-2, "initial step size s0 (default 1e-2)", low=0.0, low_open=True)
    slr_M: float = opt(300.0, "M of the step decay alpha_k (default 300)", metavar="M",
                       low=1.0, low_open=True)
    slr_r: float = opt(0.1, "r of the step decay alpha_k (default 0.1)", metavar="R",
                       low=0.0, high=1.0, low_open=True, high_open=True)
    retrain_epochs: int = opt(0, "masked retraining epochs after hard pruning (default 0)",
                              metavar="N", low=0)
    step_rule: Literal["paper", "bragin"] = opt(
        "paper", "the step size s^k: paper, eq. (13) as printed (numerator ||W^(k-1) - "
        "Z^(k-1)||, default), or bragin, Bragin et al.'s rule (numerator ||W^k - Z^(k-1)||)")
    alpha_index: Literal["iteration", "update"] = opt(
        "iteration", "alpha_k indexed by the iteration (default, as printed) or by the "
        "multiplier updates done")


@register_options
@dataclass(frozen=True)
class APGDSSMOptions(MethodOptions):
    """Options of ``--method apgdssm`` (Li & Xin): the m-bit grid and the penalties' λ's."""

    method: ClassVar[str] = "apgdssm"
    summary: ClassVar[str] = ("quantization-aware training with channel pruning (Li & Xin): "
                              "m-bit grid, shrinkage, group lasso, splitting")
    title: ClassVar[str] = "--method apgdssm"
    hint: ClassVar[str] = "--method apgdssm quantizes to --bits m"
    memory_flag: ClassVar[str] = "--bits"
    takes_prune: ClassVar[bool] = False
    takes_quantize: ClassVar[bool] = False

    bits: int = opt(4, "the grid alpha x {0, +-1, ..., +-2^(M-1)} per layer (default 4)",
                    metavar="M", low=1, high=31)
    lambda1: float = opt(0.0, "l1 shrinkage weight (default 0)", low=0.0)
    lambda2: float = opt(0.0, "group-lasso weight over channels (default 0)", low=0.0)
    lambda3: float = opt(0.0, "CTL1 weight (default 0)", low=0.0)
    ctl1_a: float = opt(1.0, "CTL1 shape parameter a (default 1)", metavar="A", low=0.0,
                        low_open=True)
    beta: float = opt(0.0, "splitting strength beta; 0 (default) is APGDSM, no splitting",
                      low=0.0)
    scale_with_lr: bool = opt(False, "Algorithm 2: the lambdas scale with the learning rate")
    milestones: tuple[int, ...] | None = opt(
        None, "epochs where the penalty factors change (the adaptive scheme)", metavar="E",
        low=1)
    lambda1_factors: tuple[float, ...] | None = opt(
        None, "factors of lambda1: one per milestone (or one), multiplied up; one per "
        "interval with --per-interval-factors", metavar="F",
        low=0.0)
    lambda2_factors: tuple[float, ...] | None = opt(
        None, "factors of lambda2: one per milestone (or one), multiplied up; one per "
        "interval with --per-interval-factors", metavar="F",
        low=0.0)
    beta_factors: tuple[float, ...] | None = opt(
        None, "factors of beta: one per milestone (or one), multiplied up; one per "
        "interval with --per-interval-factors", metavar="F",
        low=0.0)
    cumulative_factors: bool = opt(
        True, "the factors multiply up over the intervals (Table I as printed) by default; "
        "with this flag each factor applies to its interval alone",
        flag="--per-interval-factors", negate=True)
    threshold: Literal["paper", "prox_grad"] = opt(
        "paper", "the shrinkage threshold: paper, lambda1 (Alg. 1) or gamma_t lambda1 (Alg. "
        "2, --scale-with-lr), default; prox_grad, gamma lambda1 (a proximal-gradient step)")
    splitting: Literal["paper", "simultaneous"] = opt(
        "paper", "the splitting step on the updated w (Alg. 1, default) or on the w before "
        "the gradient step (simultaneous)")
    ctl1_groups: Literal["layer", "channel"] = opt(
        "layer", "CTL1 on each layer's l1 norm (eq. 6, default) or per output channel")
    shrink_every: Literal["iteration", "epoch"] = opt(
        "iteration", "splitting and shrinkage after every inner iteration (default) or once "
        "per epoch (Algorithm 1's loop over epochs read literally)")
    lr_milestones: tuple[int, ...] | None = opt(
        None, "epochs where the learning rate is multiplied by --lr-factor (a step schedule, "
        "Li & Xin: 80 120 160 of 200); replaces --lr-decay", metavar="E", low=1)
    lr_factor: float = opt(0.1, "the factor of --lr-milestones (default 0.1)", metavar="F",
                           low=0.0, low_open=True)

    def check_job(self, job: JobConfig) -> None:
        super().check_job(job)
        if job.lr_schedule != "exp" or job.warmup:
            raise ConfigError("--method apgdssm sets its learning rate per epoch (--lstep-lr, "
                              "--lr-decay or --lr-milestones): drop --lr-schedule and "
                              "--warmup")

    def check(self) -> None:
        if self.lr_milestones is not None and list(self.lr_milestones) != sorted(
                set(self.lr_milestones)):
            raise ConfigError(f"--lr-milestones must be increasing, got "
                              f"{list(self.lr_milestones)}")
        m = self.milestones
        factors = ("lambda1_factors", "lambda2_factors", "beta_factors")
        if not m:
            given = [f for f in factors if getattr(self, f) is not None]
            if given:
                raise ConfigError(f"{option_fields(type(self))[given[0]].flag} needs "
                                  "--milestones")
            return
        if list(m) != sorted(set(m)):
            raise ConfigError(f"--milestones must be increasing, got {list(m)}")
        # as PenaltySchedule: one factor per milestone when they multiply up (the default),
        # one per interval with --per-interval-factors
        n, what = ((len(m), "one per milestone: they multiply up") if self.cumulative_factors
                   else (len(m) + 1, "one per interval, --per-interval-factors"))
        for f in factors:
            v = getattr(self, f)
            if v is not None and len(v) not in (1, n):
                raise ConfigError(f"{option_fields(type(self))[f].flag} needs 1 or "
                                  f"{n} factors ({what}), got {len(v)}")

    def cstep_memory(self, job: JobConfig, shapes: Mapping[str, tuple[int, ...]],
                     ) -> MemoryEstimate:
        """The m-bit grid projection of each tensor (``project_uniform``, method "auto":
        :func:`~compressopt.projections.uniform_memory`)."""
        from compressopt.projections import uniform_memory

        return _largest(
            MemoryEstimate(uniform_memory(n, bits=self.bits),
                           f"the {self.bits}-bit grid projection of the {n:,} weights of {name}")
            for name, n in _sizes(shapes).items())


# -- the job ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingDefaults:
    """Per data set (and model) training settings of the job.

    Attributes
    ----------
    pretrain_epochs : reference training epochs (SGD, Nesterov momentum 0.9, cosine lr).
    lr : reference training's initial learning rate.
    batch_size : minibatch size, reference and L steps.
    epochs : L-step epochs per LC/ADMM iteration.
    first_epochs : epochs of the first L step.
    lstep_lr : η0 of the L steps (SGD, Nesterov momentum 0.9), decayed as η0·lr_decay^k and
        clipped to 1/μ_k.
    lr_decay : per-iteration learning-rate decay of the L steps.
    steps : number of penalty values μ_k = mu0 · mu_growth^k.
    mu0, mu_growth : the penalty schedule.
    prune : fraction of weights kept when neither --prune nor --quantize is given.
    """

    pretrain_epochs: int
    lr: float
    batch_size: int
    epochs: int
    first_epochs: int
    lstep_lr: float
    lr_decay: float
    steps: int
    mu0: float
    mu_growth: float
    prune: float = 0.05


#: the defaults of a data set the table does not name (and of :func:`compressopt.dnn.compress`)
GENERIC_DEFAULTS = TrainingDefaults(
    pretrain_epochs=40, lr=0.05, batch_size=64, epochs=2, first_epochs=4, lstep_lr=0.05,
    lr_decay=0.98, steps=30, mu0=1e-3, mu_growth=1.2, prune=0.1,
)

#: (data set, model) -> defaults; the model key "*" applies to any model
DEFAULTS: dict[tuple[str, str], TrainingDefaults] = {
    ("digits", "*"): GENERIC_DEFAULTS,
    ("mnist", "lenet300"): TrainingDefaults(
        pretrain_epochs=40, lr=0.1, batch_size=128, epochs=6, first_epochs=12, lstep_lr=0.1,
        lr_decay=0.98, steps=40, mu0=9.76e-5, mu_growth=1.2,
    ),
    ("mnist", "lenet5"): TrainingDefaults(
        pretrain_epochs=15, lr=0.01, batch_size=128, epochs=2, first_epochs=4, lstep_lr=0.01,
        lr_decay=0.98, steps=20, mu0=9.76e-5, mu_growth=1.45,
    ),
}


def defaults_for(dataset: str | None, model: str | None) -> TrainingDefaults:
    """The :data:`DEFAULTS` entry of (`dataset`, `model`), else of (`dataset`, "*"), else
    :data:`GENERIC_DEFAULTS`."""
    for key in ((dataset, model), (dataset, "*")):
        if key in DEFAULTS:
            return DEFAULTS[key]  # type: ignore[index]
    return GENERIC_DEFAULTS


_MODEL, _TRAIN, _OUT = "model and data", "training (default: per data set)", "parameters and output"
_EVAL = "evaluation and stopping"


@dataclass(frozen=True)
class JobConfig:
    """Settings of one ``compressopt compress`` run; ``None`` means the data set's default
    (:meth:`resolved` fills them from :func:`defaults_for`).

    The fields are the command line's options (``--first-epochs`` is ``first_epochs``) and a
    TOML configuration's keys; `options` holds the method's own options (a
    :class:`MethodOptions`, or a mapping of field names that selects and builds one).

    Raises
    ------
    ConfigError
        Any option out of its range or of the wrong type (the message names the flag and
        the valid values), an unknown method, an option of another method, options that
        contradict each other (``--warmup`` >= ``--steps``, ``--prune`` with a method that
        chooses its own sparsity, ``--distill-phase finish`` without a final stage).
    """

    model: str = opt("lenet300", "the model: lenet300, lenet5, resnet20, transformer, or your "
                     "own: file.py:factory or package.module:factory (called with the "
                     "arguments it takes of input_shape, num_classes, vocab_size)",
                     metavar="NAME", group=_MODEL)
    dataset: str = opt("digits", "the data set: digits (scikit-learn's, bundled), mnist "
                       "(--data-dir), or your own: data.npz (x_train, y_train, x_test, "
                       "y_test) or module:factory returning (train, test) Datasets",
                       metavar="NAME", group=_MODEL)
    data_dir: str | None = opt(None, "directory of the four MNIST IDX .gz files (default: "
                               "$COMPRESSOPT_MNIST_DIR)", metavar="DIR", group=_MODEL)
    method: str = opt("lc", "the compression method", metavar="NAME", group=_MODEL)
    prune: float | None = opt(
        None, "keep this fraction of the compressed weights (global l0), in (0, 1]; with "
        "neither --prune nor --quantize, the data set's default (digits 0.1, mnist 0.05)",
        metavar="KEEP", low=0.0, high=1.0, low_open=True, group=_MODEL)
    quantize: int | None = opt(None, "a K-entry codebook per layer, ceil(log2 K) bits per "
                               "weight", metavar="K", low=2, group=_MODEL)
    combine: Literal["chain", "additive"] = opt(
        "chain", "how --prune and --quantize combine: chain (default), prune, then quantize "
        "the nonzeros with the codebook; or additive, w = Q(w) + s, every weight quantized "
        "plus a sparse float32 correction s with KEEP of the weights (Carreira-Perpinan & "
        "Idelbayev 2021, Part V: the LC authors' 'quantization with a 1% correction')",
        group=_MODEL)
    shared_codebook: bool = opt(
        False, "one --quantize codebook shared by all the compressed tensors (flattened "
        "together) instead of one per layer", group=_MODEL)
    epochs: int | None = opt(None, "L-step epochs per iteration", metavar="N", low=1,
                             group=_TRAIN)
    first_epochs: int | None = opt(None, "epochs of the first L step (default: 2 x --epochs "
                                   "if given)", metavar="N", low=1, group=_TRAIN)
    pretrain_epochs: int | None = opt(None, "reference training epochs", metavar="N", low=0,
                                      group=_TRAIN)
    steps: int | None = opt(None, "number of penalty values mu_k (coordinator iterations)",
                            metavar="N", low=1, group=_TRAIN)
    mu0: float | None = opt(None, "first penalty mu_0", low=0.0, low_open=True, group=_TRAIN)
    mu_growth: float | None = opt(None, "mu_k = mu0 * A**k", metavar="A", low=1.0,
                                  group=_TRAIN)
    lr: float | None = opt(None, "reference learning rate (cosine schedule)", low=0.0,
                           low_open=True, high=FLOAT32_MAX, group=_TRAIN)
    lstep_lr: float | None = opt(None, "L-step learning rate eta_0 (then eta_0 * decay**k, "
                                 "clipped to 1/mu)", metavar="LR", low=0.0, low_open=True,
                                 high=FLOAT32_MAX, group=_TRAIN)
    lr_decay: float | None = opt(None, "L-step learning-rate decay per iteration",
                                 metavar="D", low=0.0, high=1.0, low_open=True, group=_TRAIN)
    lr_schedule: Literal["exp", "cos"] = opt(
        "exp", "L-step learning rates: exp, eta_0 * D**k (default), or cos, a cosine over the "
        "iterations after the warm-up (--lr-decay then defaults to 1)", group=_TRAIN)
    warmup: int = opt(0, "iterations of linear learning-rate warm-up (default 0)",
                      metavar="N", low=0, group=_TRAIN)
    momentum: float = opt(0.9, "L-step SGD momentum, Nesterov unless --heavy-ball (default "
                          "0.9)", metavar="M", low=0.0, high=1.0, high_open=True, group=_TRAIN)
    weight_decay: float = opt(0.0, "L-step weight decay on all parameters (default 0)",
                              metavar="WD", low=0.0, high=FLOAT32_MAX, group=_TRAIN)
    nesterov: bool = opt(True, "L-step momentum of the heavy-ball kind instead of Nesterov's "
                         "(a wider stable range of learning rates; Yang et al.'s code)",
                         flag="--heavy-ball", negate=True, group=_TRAIN)
    keep_momentum: bool = opt(False, "carry the momentum over from one L step to the next "
                              "(default: clear)", group=_TRAIN)
    distill: float = opt(0.0, "knowledge distillation from the reference at temperature T: "
                         "L = cross-entropy + T * KL(reference || model) in the L steps and "
                         "any retraining (default 0: off)", metavar="T", low=0.0, group=_TRAIN)
    distill_phase: Literal["all", "finish"] = opt(
        "all", "distil in the L steps and the final retraining/fine-tuning (all, default) or "
        "in the latter only (finish)", group=_TRAIN)
    optimizer: Literal["sgd", "adam"] = opt(
        "sgd", "the L steps' optimizer: sgd (default; --momentum, Nesterov unless "
        "--heavy-ball) or adam (--momentum is its beta1; Zhou et al.'s CIFAR setting)",
        group=_TRAIN)
    batch_size: int | None = opt(None, "minibatch size", metavar="B", low=1, group=_TRAIN)
    seed: int = opt(0, "seeds the initialization and the minibatch order (default 0)",
                    low=0, high=2**32 - 1, group=_TRAIN)
    device: str = opt("cpu", "torch device (default: cpu)", group=_TRAIN)
    val_split: int = opt(
        0, "hold out N training examples (stratified by label, seeded with --val-seed) as a "
        "validation split, used neither for the reference nor the L steps: val_accuracy is "
        "reported beside accuracy and --target-accuracy reads it (default 0: none)",
        metavar="N", low=0, group=_EVAL)
    val_seed: int | None = opt(
        None, "seed of the validation split's draw (default: --seed); give the same value "
        "to runs of several seeds that share one --reference, so that no run validates on "
        "examples its reference was trained on", metavar="S", low=0, high=2**32 - 1,
        group=_EVAL)
    target_accuracy: float | None = opt(
        None, "stop the coordinator at the first iteration whose output point (e.g. SLR's "
        "hard-pruned W) reaches this accuracy on the validation split (Zhou et al.'s stop "
        "rule; needs --val-split)", metavar="A", low=0.0, high=1.0, low_open=True,
        group=_EVAL)
    eval_loss: int = opt(
        0, "record the coordinator's loss values each iteration (L(w), and e.g. the loss of "
        "W quantized for the joint ADMM, Yang et al. Fig. 2) on the first N training "
        "examples: one forward pass over them per value (default 0: off)", metavar="N",
        low=0, group=_EVAL)
    include: tuple[str, ...] = opt((), "compress the parameters matching this glob "
                                   "(repeatable; default: Conv/Linear weights)",
                                   metavar="PATTERN", append=True, group=_OUT)
    exclude: tuple[str, ...] = opt((), "do not compress the parameters matching this glob "
                                   "(repeatable)", metavar="PATTERN", append=True, group=_OUT)
    reference: str | None = opt(None, "load this reference model (.safetensors, or a torch "
                                "state_dict of tensors) instead of training", metavar="PATH",
                                group=_OUT)
    out: str | None = opt(None, "output directory (default: runs/compress)", metavar="DIR",
                          group=_OUT)
    plots: bool = opt(True, "draw the run's figures into OUT: layers.png (kept fraction and "
                      "bits per layer), iterations.png, histograms.png (weights and codebook "
                      "levels); skipped with a warning without matplotlib. The flag turns "
                      "them off", flag="--no-plots", negate=True, group=_OUT)
    checkpoint_every: float = opt(
        0.0, "write OUT/checkpoint.safetensors (what --resume OUT continues from) at most "
        "every SECONDS, after a reference epoch or a coordinator iteration; 0 (default): "
        "after every one. A stop by SIGINT/SIGTERM always writes the last one",
        metavar="SECONDS", low=0.0, group=_OUT)
    options: MethodOptions | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_fields(self)
        opts = self.options
        if opts is None or isinstance(opts, Mapping):
            opts = method_options(self.method, opts or {})
        elif not isinstance(opts, MethodOptions):
            raise ConfigError(f"options must be a MethodOptions or a mapping, got "
                              f"{type(opts).__name__}")
        elif type(opts) not in METHOD_OPTIONS.get(self.method, []):
            options_class(self.method, ())  # an unknown method is named first
            raise ConfigError(f"{type(opts).__name__} are options of --method {opts.method}, "
                              f"not of --method {self.method}")
        object.__setattr__(self, "options", opts)
        opts.check_job(self)
        if self.combine == "additive" and (self.prune is None or self.quantize is None):
            raise ConfigError("--combine additive needs both --prune KEEP (the correction) "
                              "and --quantize K (the codebook)")
        if self.shared_codebook and self.quantize is None:
            raise ConfigError("--shared-codebook needs --quantize K")
        if self.out == "":
            raise ConfigError("--out must name a directory, got ''")
        if self.distill_phase == "finish" and self.distill > 0 and not opts.has_finish:
            raise ConfigError(f"--distill-phase finish: --method {self.method} has no final "
                              "retraining or fine-tuning to distil")
        if self.optimizer == "adam" and not self.nesterov:
            raise ConfigError("--heavy-ball is a kind of SGD momentum: drop it with "
                              "--optimizer adam (--momentum is Adam's beta1)")
        if self.steps is not None and not self.warmup < self.steps:
            raise ConfigError(f"--warmup must be in [0, --steps) = [0, {self.steps}), "
                              f"got {self.warmup}")
        _check_schedules(self)

    @property
    def method_options(self) -> MethodOptions:
        """`options`, typed (always a :class:`MethodOptions` after construction)."""
        return self.options  # type: ignore[return-value]

    def resolved(self, defaults: TrainingDefaults | None = None) -> JobConfig:
        """A copy with every ``None`` training setting filled from `defaults` (default
        :func:`defaults_for` of the data set and model), and ``--prune`` from it when the
        method prunes and neither --prune nor --quantize is given."""
        d = defaults or defaults_for(self.dataset, self.model)
        fill = {
            f.name: getattr(d, f.name)
            for f in dataclasses.fields(d)
            if f.name != "prune" and getattr(self, f.name) is None
        }
        o = self.method_options
        if self.prune is None and self.quantize is None and o.takes_prune:
            fill["prune"] = d.prune
        if self.lr_schedule == "cos" and self.lr_decay is None:
            fill["lr_decay"] = 1.0  # the cosine alone
        if self.first_epochs is None and self.epochs is not None:
            fill["first_epochs"] = 2 * self.epochs  # the first L step trains twice as long
        return dataclasses.replace(self, **fill)

    @property
    def mus(self) -> tuple[float, ...]:
        """The penalty schedule μ_k = mu0 · mu_growth^k, k = 0..steps-1 (after :meth:`resolved`)."""
        return tuple(self.mu0 * self.mu_growth**k for k in range(self.steps))  # type: ignore[operator]

    # -- flat settings: the TOML keys -----------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> JobConfig:
        """A config from flat ``{option name: value}`` (the TOML keys: the common fields,
        ``method`` and the method's own fields). Raises ConfigError for an unknown name or
        an option of another method."""
        common = option_fields(cls)
        mine = {k: v for k, v in settings.items() if k in common}
        rest = {k: v for k, v in settings.items() if k not in common}
        unknown = [k for k in rest if k not in _all_method_fields()]
        if unknown:
            raise ConfigError(_unknown(unknown[0], [*common, *_all_method_fields()]))
        return cls(**mine, options=method_options(mine.get("method", "lc"), rest))

    def to_settings(self) -> dict[str, Any]:
        """The flat settings (None left out, sequences as lists) that :meth:`from_settings`
        turns back into this config: what ``OUT/config.toml`` holds."""
        out: dict[str, Any] = {}
        for obj in (self, self.method_options):
            for name in option_fields(type(obj)):
                v = getattr(obj, name)
                if v is not None:
                    out[name] = list(v) if isinstance(v, tuple) else v
        return out

    def report_config(self) -> dict[str, Any]:
        """The report's ``config``: the common fields, ``options`` (the method's) and ``mus``."""
        common = {n: getattr(self, n) for n in option_fields(type(self))}
        return {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in common.items()},
            "options": {k: list(v) if isinstance(v, tuple) else v
                        for k, v in dataclasses.asdict(self.method_options).items()},
            "mus": list(self.mus) if self.steps is not None and self.mu0 is not None else None,
        }


def _geometric_last(first: float, factor: float, steps: int) -> float:
    """log of ``first · factor^(steps-1)``, the last term of a geometric schedule (no
    overflow: a log)."""
    return math.log(first) + (steps - 1) * math.log(factor)


def _check_schedules(c: JobConfig) -> None:
    """The penalty schedule μ_k = mu0·a^k and the L-step learning rates η0·D^k stay normal
    positive floats for k < --steps (ConfigError naming the options otherwise)."""
    if c.steps is None or c.steps < 2:
        return
    k = c.steps - 1
    if c.mu0 is not None and c.mu_growth is not None and (
            _geometric_last(c.mu0, c.mu_growth, c.steps) > math.log(sys.float_info.max)):
        raise ConfigError(f"--mu0 {c.mu0:g} x --mu-growth {c.mu_growth:g}^{k} (the penalty of "
                          f"the last of --steps {c.steps}) overflows: lower --mu-growth or "
                          "--steps")
    if c.lstep_lr is not None and c.lr_decay is not None and (
            _geometric_last(c.lstep_lr, c.lr_decay, c.steps) < math.log(sys.float_info.min)):
        raise ConfigError(f"--lstep-lr {c.lstep_lr:g} x --lr-decay {c.lr_decay:g}^{k} (the "
                          f"learning rate of the last of --steps {c.steps}) underflows to 0: "
                          "raise --lr-decay or lower --steps")


# -- TOML ---------------------------------------------------------------------------------


def setting_kinds() -> dict[str, FieldSpec]:
    """Every flat setting name (a TOML key) and its :class:`FieldSpec`."""
    return {**option_fields(JobConfig),
            **{k: spec for k, (_, spec) in _all_method_fields().items()}}


def check_settings(settings: Mapping[str, Any], source: str) -> dict[str, Any]:
    """`settings` (parsed TOML) with each key known and each value of its option's type
    (ints of float options become floats, lists tuples); ConfigError naming the key and
    `source` otherwise. Ranges are checked later, by the options classes."""
    kinds = setting_kinds()
    out: dict[str, Any] = {}
    for key, v in settings.items():
        if isinstance(v, dict):
            raise ConfigError(f"{source}: key {key!r} is a table; the keys are flat option "
                              "names (key = value)")
        if key not in kinds:
            raise ConfigError(f"{source}: {_unknown(key, list(kinds))}")
        k = kinds[key].kind
        elems = v if k.seq and isinstance(v, list) else [v]
        bad = (k.seq and not isinstance(v, list)) or (not k.seq and isinstance(v, list))
        for x in elems:
            if k.base is float:
                bad |= isinstance(x, bool) or not isinstance(x, int | float)
            elif k.base is int:
                bad |= isinstance(x, bool) or not isinstance(x, int)
            else:
                bad |= not isinstance(x, k.base)
        if bad:
            raise ConfigError(f"{source}: key {key!r} must be {k.describe()}, got "
                              f"{type(v).__name__} {v!r}")
        out[key] = tuple(v) if k.seq else v
    return out


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The flat settings of the TOML file `path` (:func:`check_settings`).

    Raises
    ------
    ConfigError
        The file is missing or unreadable, not valid TOML, or has an unknown key or a value
        of the wrong type (the message names the key).
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--config {os.fspath(path)}: no such file") from None
    except OSError as e:
        raise ConfigError(f"--config {os.fspath(path)}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{os.fspath(path)}: not valid TOML: {e}") from None
    return check_settings(data, os.fspath(path))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else
                                                  ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        out = ['"']
        for ch in v:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return "".join(out) + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(settings: Mapping[str, Any], header: str = "") -> str:
    """Flat settings (scalars and lists of scalars) as TOML text; ``tomllib.loads`` of it
    gives `settings` back (floats exactly: ``repr`` round-trips). `header`: comment lines."""
    lines = [f"# {h}" if h else "#" for h in header.splitlines()]
    lines += [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


# -- recipes --------------------------------------------------------------------------------


def recipe_folder() -> Any:
    """Where the recipes are: the package data of :mod:`compressopt.recipes` (a
    :class:`importlib.resources.abc.Traversable`)."""
    from importlib.resources import files

    return files("compressopt.recipes")


def recipes() -> dict[str, str]:
    """The recipes shipped with compressopt: name -> its first comment line (a ``NAME.toml``
    file of :func:`recipe_folder`; its keys are those of ``--config``)."""
    out = {}
    for f in sorted(recipe_folder().iterdir(), key=lambda f: f.name):
        if f.name.endswith(".toml"):
            first = f.read_text(encoding="utf-8").splitlines()[:1]
            out[f.name[:-5]] = first[0].lstrip("# ").strip() if first else ""
    return out


def load_recipe(name: str) -> dict[str, Any]:
    """The flat settings of recipe `name` (ConfigError naming the known recipes if absent)."""
    known = recipes()
    if name not in known:
        raise ConfigError(f"--recipe: no recipe {name!r}; the recipes: "
                          f"{', '.join(known) or 'none yet'} (compressopt recipes)")
    text = (recipe_folder() / f"{name}.toml").read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"recipe {name}: not valid TOML: {e}") from None
    return check_settings(data, f"recipe {name}")


# -- C-step memory estimates ----------------------------------------------------------------
# The projections' own estimates (compressopt.projections.kmeans1d_memory, uniform_memory),
# imported when a job is checked: parsing options does not import the projections.


class MemoryEstimate(NamedTuple):
    """An estimate of a C step's peak memory (:meth:`MethodOptions.cstep_memory`).

    Attributes
    ----------
    bytes : the estimate, in bytes.
    what : the computation that needs it, for a message (e.g. "exact k-means with K = 8192
        on the 30,000 weights of fc2.weight").
    """

    bytes: int
    what: str


def _sizes(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """Entries of each nonempty tensor."""
    return {name: n for name, s in shapes.items() if (n := math.prod(s)) > 0}


def _largest(estimates: Iterable[MemoryEstimate]) -> MemoryEstimate:
    return max(estimates, key=lambda e: e.bytes, default=MemoryEstimate(0, "nothing"))


def _prune_quantize_memory(job: JobConfig, shapes: Mapping[str, tuple[int, ...]],
                           ) -> MemoryEstimate:
    sizes = _sizes(shapes)
    if job.quantize is None:  # sort keys and indices of the global ℓ0 projection
        total = sum(sizes.values())
        return MemoryEstimate(24 * total, f"the global l0 projection of {total:,} weights")
    from compressopt.projections import kmeans1d_memory

    k, what = job.quantize, "the {n:,} weights"
    if job.shared_codebook:  # one k-means over all the compressed weights together
        sizes = {"all the compressed tensors": sum(sizes.values())}
    if job.prune is not None and job.combine == "chain":  # at most KEEP of all the weights
        cap = math.ceil(job.prune * sum(sizes.values()))
        sizes = {name: min(n, cap) for name, n in sizes.items()}
        what = "at most {n:,} nonzeros"
    return _largest(
        MemoryEstimate(kmeans1d_memory(n, k, method="exact"),
                       f"exact k-means with K = {k} on {what.format(n=n)} of {name}")
        for name, n in sizes.items())
