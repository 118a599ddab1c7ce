"""The registry of compression methods of ``compressopt compress --method NAME``.

A method turns the job's settings into a coordinator and a compression, and adds its own
diagnostics to the report. Adding one (e.g. SLR, or a joint sparsity–quantization ADMM with
its own options) is one :func:`register` call with a :class:`Method`; its ``add_arguments``
puts method-specific options on the command line, and they reach ``build`` through
``config.options``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compressopt.projections import (
    AdaptiveQuantization,
    Cardinality,
    Chain,
    Compression,
    GlobalCardinality,
    PerTensor,
    SparseQuantized,
    Tasks,
    UniformQuantization,
)
from compressopt.solvers import (
    ADMM,
    APGDSSM,
    LC,
    SLR,
    JointADMM,
    JointADMMState,
    PenaltySchedule,
    SolveResult,
    budget_from_ratio,
)

if TYPE_CHECKING:
    from compressopt.dnn.experiment import JobConfig

__all__ = ["METHODS", "Method", "build_compression", "final_values", "finetune_joint", "register"]


def build_compression(prune: float | None, quantize: int | None) -> Compression:
    """The constraint set of ``--prune KEEP`` and/or ``--quantize K``.

    * prune only: :class:`~compressopt.projections.GlobalCardinality` ``(keep=KEEP)``, one ℓ0
      budget over all compressed tensors (Carreira-Perpiñán & Idelbayev, CVPR 2018);
    * quantize only: a K-entry codebook per tensor, optimal 1-D k-means
      (:class:`~compressopt.projections.AdaptiveQuantization`, Carreira-Perpiñán & Idelbayev
      2017, Part II, §4.1); ``ceil(log2 K)`` bits per weight;
    * both: prune, then quantize the nonzeros of each tensor with K learned entries, zeros kept
      (:class:`~compressopt.projections.Chain`; a heuristic for the intersection of the sets).

    Raises
    ------
    ValueError
        Neither given, KEEP outside (0, 1], or K < 2.
    """
    if prune is None and quantize is None:
        raise ValueError("give --prune KEEP and/or --quantize K")
    if prune is not None and not (isinstance(prune, float | int) and 0.0 < prune <= 1.0):
        raise ValueError(f"--prune KEEP must be in (0, 1], got {prune}")
    bad_k = isinstance(quantize, bool) or not isinstance(quantize, int) or quantize < 2
    if quantize is not None and bad_k:
        raise ValueError(f"--quantize K must be an integer >= 2, got {quantize}")
    if quantize is None:
        return GlobalCardinality(keep=float(prune))  # type: ignore[arg-type]
    if prune is None:
        return PerTensor(AdaptiveQuantization(quantize))
    return Chain(
        GlobalCardinality(keep=float(prune)),
        PerTensor(AdaptiveQuantization(quantize, sparse=True)),
    )


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _opt(options: Mapping[str, Any], key: str, default: Any) -> Any:
    """``options[key]`` unless absent or None (then `default`): a given 0 stays 0, so the
    solver's own checks refuse it instead of `default` silently replacing it."""
    value = options.get(key)
    return default if value is None else value


def _epochs_and_lr(options: Mapping[str, Any], epochs_key: str, lr_key: str | None = None,
                   ) -> None:
    """Refuse a negative epoch count (or a non-positive learning rate) of a finish stage
    before anything is trained."""
    n = _opt(options, epochs_key, 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"--{epochs_key.replace('_', '-')} must be an int >= 0, got {n!r}")
    lr = options.get(lr_key) if lr_key is not None else None
    if lr is not None and not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"--{lr_key.replace('_', '-')} must be positive, got {lr}")


@dataclass(frozen=True)
class Method:
    """One entry of :data:`METHODS`.

    Attributes
    ----------
    name : str
        The ``--method`` value.
    help : str
        One line for ``--help``.
    build : callable(config, shapes) -> (coordinator, compression)
        The solver (with the job's penalty schedule ``config.mus``) and the constraint;
        `shapes` maps the compressed parameters' names to their shapes.
    diagnostics : callable(result) -> dict
        Method-specific figures for ``report.json`` (JSON-serializable), from the solver's
        :class:`~compressopt.solvers.SolveResult`.
    add_arguments : callable(parser), optional
        Adds method-specific command-line options; their values arrive in ``config.options``.
    adapt : callable(solver, oracle, config) -> (solver, oracle), optional
        Adapts the job's :class:`~compressopt.dnn.oracle.TorchOracle` (and the solver) before
        the run, e.g. minibatch gradients for a gradient-step coordinator.
    finish : callable(solver, result, oracle, compression, config) -> (x, extra), optional
        After the run: the weights to write into the model (default ``result.x``) and extra
        report entries (e.g. masked retraining after hard pruning, fine-tuning with the
        compression's structure fixed).
    prunes : callable(config) -> bool
        Whether the method takes ``--prune`` (and the data set's default KEEP when neither
        ``--prune`` nor ``--quantize`` is given).
    """

    name: str
    help: str
    build: Callable[[JobConfig, Mapping[str, tuple[int, ...]]], tuple[Any, Compression]]
    diagnostics: Callable[[SolveResult], dict[str, Any]] = field(default=lambda r: {})
    add_arguments: Callable[[argparse._ArgumentGroup], None] | None = None
    adapt: Callable[[Any, Any, JobConfig], tuple[Any, Any]] | None = None
    finish: Callable[[Any, SolveResult, Any, Compression, JobConfig],
                     tuple[Any, dict[str, Any]]] | None = None
    prunes: Callable[[JobConfig], bool] = field(default=lambda config: True)


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add `method` to :data:`METHODS` (replacing one of the same name) and return it."""
    METHODS[method.name] = method
    return method


def final_values(*fields: str) -> Callable[[SolveResult], dict[str, Any]]:
    """Diagnostics: the run's status and iterations, and ``final_<field>`` of the last record."""

    def diagnostics(r: SolveResult) -> dict[str, Any]:
        last = r.history[-1] if r.history else None
        out: dict[str, Any] = {"status": r.status.name.lower(), "iterations": r.nit}
        for f in fields:
            out[f"final_{f}"] = None if last is None else _finite_or_none(getattr(last, f))
        return out

    return diagnostics


def _lc_build(config: JobConfig, shapes: Mapping[str, tuple[int, ...]]) -> tuple[LC, Compression]:
    return LC(mus=config.mus, tol=0.0, penalty="al", eval_loss=False), build_compression(
        config.prune, config.quantize
    )


def _admm_build(
    config: JobConfig, shapes: Mapping[str, tuple[int, ...]]
) -> tuple[ADMM | JointADMM, Compression]:
    o = config.options
    if o.get("budget_ratio") is not None or o.get("budget_bits") is not None:
        return _joint_build(config, shapes)
    joint_only = [f"--{k.replace('_', '-')}" for k in ("rho", "rho_growth", "bit_candidates",
                                                       "init_bits", "v_support", "finetune_lr")
                  if o.get(k) is not None]
    if o.get("finetune_epochs"):
        joint_only.append("--finetune-epochs")
    if joint_only:
        raise ValueError(f"{', '.join(joint_only)}: options of the joint ADMM (with "
                         "--budget-ratio or --budget-bits); the ADMM of --prune/--quantize "
                         "takes --mu0 and --mu-growth")
    mus = config.mus
    growth = mus[1] / mus[0] if len(mus) > 1 else 1.0
    solver = ADMM(rho=mus[0], rho_growth=max(growth, 1.0), maxiter=len(mus), eval_loss=False)
    return solver, build_compression(config.prune, config.quantize)


def _joint_build(
    config: JobConfig, shapes: Mapping[str, tuple[int, ...]]
) -> tuple[JointADMM, Compression]:
    """Yang et al.'s joint ADMM under one budget (``--budget-bits S`` or ``--budget-ratio R``)."""
    o = config.options
    if config.prune is not None or config.quantize is not None:
        raise ValueError("--budget-ratio/--budget-bits choose the sparsity and the bit widths: "
                         "drop --prune and --quantize")
    if o.get("budget_bits") is not None and o.get("budget_ratio") is not None:
        raise ValueError("give one of --budget-bits and --budget-ratio")
    if o.get("budget_bits") is not None:
        budget = float(o["budget_bits"])
    else:
        budget = budget_from_ratio(sum(math.prod(s) for s in shapes.values()), o["budget_ratio"])
    _epochs_and_lr(o, "finetune_epochs", "finetune_lr")
    joint = SparseQuantized(budget_bits=budget,
                            candidates=tuple(_opt(o, "bit_candidates", range(1, 9))))
    solver = JointADMM(rho=_opt(o, "rho", 0.05), rho_growth=_opt(o, "rho_growth", 1.0),
                       maxiter=config.steps, init_bits=_opt(o, "init_bits", 3),
                       eval_loss=False, v_support=_opt(o, "v_support", "w"))
    return solver, joint


def _joint_diagnostics(r: SolveResult) -> dict[str, Any]:
    out = final_values("mse", "w_minus_v", "budget_used", "budget")(r)
    last = r.history[-1] if r.history else None
    out["layers"] = (
        {} if last is None else {n: {"nnz": last.nnz[n], "bits": last.bits[n]} for n in last.nnz}
    )
    return out


def _admm_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--budget-ratio", type=float, metavar="R",
                   help="joint sparsity-quantization ADMM (Yang et al. 2020) under the budget "
                   "S = 32 x weights / R bits; the method picks each layer's sparsity and bits")
    g.add_argument("--budget-bits", type=float, metavar="S", help="the same budget in bits")
    g.add_argument("--rho", type=float, help="penalty rho of the joint ADMM (default 0.05)")
    g.add_argument("--rho-growth", type=float, metavar="A",
                   help="rho_k = rho A^k in epoch k (default 1: fixed rho, as in the paper)")
    g.add_argument("--bit-candidates", type=int, nargs="+", metavar="B",
                   help="candidate bit widths (default 1..8)")
    g.add_argument("--init-bits", type=int, metavar="B",
                   help="bits of the uniform quantization that starts V, and so of the first "
                   "pruning step (default 3, the authors' LeNet-5 setting)")
    g.add_argument("--v-support", choices=["w", "free"],
                   help="the V projection of eq. (10): w (default), W + Y/rho quantized on W's "
                   "support; free, eq. (10) as written: every entry to 0 or one of the "
                   "2^b levels (the authors' code), W's nonzeros charged")
    g.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                   help="after the joint ADMM: N epochs of straight-through fine-tuning with "
                   "the nonzeros and bit widths fixed, codebooks refitted, learning rate "
                   "a cosine from --finetune-lr (default 0)")
    g.add_argument("--finetune-lr", type=float, metavar="LR",
                   help="first learning rate of the fine-tuning (default: --lstep-lr / 10)")
    g.add_argument("--penalty-step", choices=["prox", "gradient"],
                   help="how the L step applies rho/2 ||W - V + Y/rho||^2: prox, the proximal "
                   "SGD step of Yang et al.'s eq. (5) (default with --budget-ratio/--budget-bits), "
                   "or gradient, added to the loss's gradient (default otherwise)")
    g.add_argument("--eval-projected", action="store_true",
                   help="also record each iteration's test accuracy of P(W), the projection "
                   "of the current W onto the constraint set without the scaled dual "
                   "(Zhou et al.'s hard-prune accuracy; one more test evaluation per iteration)")


def _admm_adapt(solver: ADMM | JointADMM, oracle: Any, config: JobConfig) -> tuple[Any, Any]:
    """The L step's penalty: eq. (5)'s proximal step for the joint ADMM unless told otherwise."""
    step = config.options.get("penalty_step")
    oracle.penalty = step or ("prox" if isinstance(solver, JointADMM) else "gradient")
    return solver, oracle


def finetune_joint(
    x: Mapping[str, Any], bits: Mapping[str, int], oracle: Any, joint: SparseQuantized,
    epochs: int, lr: float, on_epoch: Callable[[int, Any], None] | None = None,
) -> Any:
    """`epochs` epochs of :meth:`JointADMM.finetune` at a cosine rate from `lr` down.

    Epoch e (0-based) runs at ``lr · ½(1 + cos(π e / epochs))``, so the last epochs settle;
    ``on_epoch(e, x)`` sees each epoch's result. Returns the last one (the budget is kept).
    """
    for e in range(epochs):
        x = JointADMM().finetune(x, bits, oracle, joint, steps=1,
                                 lr=lr * 0.5 * (1.0 + math.cos(math.pi * e / epochs)))
        if on_epoch is not None:
            on_epoch(e, x)
    return x


def _admm_finish(
    solver: ADMM | JointADMM, result: SolveResult, oracle: Any, compression: Compression,
    config: JobConfig,
) -> tuple[Any, dict[str, Any]]:
    """``--finetune-epochs N``: the joint ADMM's output fine-tuned with its nonzeros and bits."""
    n = _opt(config.options, "finetune_epochs", 0)
    if n <= 0 or not isinstance(solver, JointADMM):
        return result.x, {}
    lr = _opt(config.options, "finetune_lr", config.lstep_lr / 10)
    x = finetune_joint(result.x, result.state.bits, oracle, compression, n, lr)
    return x, {"finetune_epochs": n, "finetune_lr": lr}


def _slr_build(
    config: JobConfig, shapes: Mapping[str, tuple[int, ...]]
) -> tuple[SLR, Compression]:
    """SLR (Zhou et al.) pruning: ``--prune KEEP`` global or per layer (``--prune-scope``)."""
    o = config.options
    if config.quantize is not None:
        raise ValueError("--method slr prunes: drop --quantize")
    keep = config.prune
    if o.get("prune_scope", "global") == "layer":
        compression: Compression = Tasks({n: Cardinality(keep=keep) for n in shapes})
    else:
        compression = GlobalCardinality(keep=keep)
    _epochs_and_lr(o, "retrain_epochs")
    solver = SLR(
        rho=_opt(o, "slr_rho", 0.1), s0=_opt(o, "s0", 1e-2), M=_opt(o, "slr_M", 300.0),
        r=_opt(o, "slr_r", 0.1), maxiter=config.steps,
    )
    return solver, compression


def _slr_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--prune-scope", choices=["global", "layer"], default="global",
                   help="one l0 budget for the net, or KEEP of every layer (the paper's l_n)")
    g.add_argument("--slr-rho", type=float, help="penalty rho (default 0.1)")
    g.add_argument("--s0", type=float, help="initial step size s0 (default 1e-2)")
    g.add_argument("--slr-M", type=float, help="M of the step decay alpha_k (default 300)")
    g.add_argument("--slr-r", type=float, help="r of the step decay alpha_k (default 0.1)")
    g.add_argument("--retrain-epochs", type=int, default=0, metavar="N",
                   help="masked retraining epochs after hard pruning (default 0)")


def _slr_finish(
    solver: SLR, result: SolveResult, oracle: Any, compression: Compression, config: JobConfig
) -> tuple[Any, dict[str, Any]]:
    n = _opt(config.options, "retrain_epochs", 0)
    if n <= 0:
        return result.x, {}
    return solver.retrain(result.x, oracle, steps=n), {"retrain_epochs": n}


def _apgdssm_build(
    config: JobConfig, shapes: Mapping[str, tuple[int, ...]]
) -> tuple[APGDSSM, Compression]:
    """APGDSSM (Li & Xin): the m-bit grid ``--bits m`` per layer, with the penalties' λ's."""
    o = config.options
    if config.prune is not None or config.quantize is not None:
        raise ValueError("--method apgdssm quantizes to --bits m: drop --prune and --quantize")
    sched = None
    if o.get("milestones"):
        sched = PenaltySchedule(
            milestones=tuple(o["milestones"]), lambda1=tuple(_opt(o, "lambda1_factors", (1,))),
            lambda2=tuple(_opt(o, "lambda2_factors", (1,))),
            beta=tuple(_opt(o, "beta_factors", (1,))),
        )
    solver = APGDSSM(
        lr=config.lstep_lr, lambda1=_opt(o, "lambda1", 0.0), lambda2=_opt(o, "lambda2", 0.0),
        lambda3=_opt(o, "lambda3", 0.0), a=_opt(o, "ctl1_a", 1.0), beta=_opt(o, "beta", 0.0),
        schedule=sched, scale_with_lr=bool(o.get("scale_with_lr")), maxiter=config.steps,
        eval_loss=False,
    )
    return solver, PerTensor(UniformQuantization(bits=_opt(o, "bits", 4)))


def _apgdssm_adapt(solver: APGDSSM, oracle: Any, config: JobConfig) -> tuple[APGDSSM, Any]:
    from dataclasses import replace

    from compressopt.dnn.oracle import MinibatchOracle

    mb = MinibatchOracle(oracle, lr=config.lstep_lr, lr_decay=config.lr_decay)
    spe, lr0, decay = mb.steps_per_epoch, config.lstep_lr, config.lr_decay
    return replace(solver, lr=lambda t: lr0 * decay ** (t // spe)), mb


def _apgdssm_diagnostics(r: SolveResult) -> dict[str, Any]:
    out = final_values("weight_sparsity", "channel_sparsity", "w_minus_u")(r)
    last = r.history[-1] if r.history else None
    out["layers"] = {} if last is None else {
        n: {"weight_sparsity": ws, "channel_sparsity": cs} for n, (ws, cs) in last.layers.items()
    }
    return out


def _apgdssm_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--bits", type=int, metavar="M",
                   help="the grid alpha x {0, +-1, ..., +-2^(M-1)} per layer (default 4)")
    g.add_argument("--lambda1", type=float, help="l1 shrinkage weight (default 0)")
    g.add_argument("--lambda2", type=float, help="group-lasso weight over channels (default 0)")
    g.add_argument("--lambda3", type=float, help="CTL1 weight (default 0)")
    g.add_argument("--ctl1-a", type=float, help="CTL1 shape parameter a (default 1)")
    g.add_argument("--beta", type=float,
                   help="splitting strength beta; 0 (default) is APGDSM, no splitting")
    g.add_argument("--scale-with-lr", action="store_true",
                   help="Algorithm 2: the lambdas scale with the learning rate")
    g.add_argument("--milestones", type=int, nargs="+", metavar="E",
                   help="epochs where the penalty factors change (the adaptive scheme)")
    g.add_argument("--lambda1-factors", type=float, nargs="+", metavar="F")
    g.add_argument("--lambda2-factors", type=float, nargs="+", metavar="F")
    g.add_argument("--beta-factors", type=float, nargs="+", metavar="F")


register(Method(
    "lc",
    "learning-compression, augmented Lagrangian (Carreira-Perpiñán 2017), mu_k = mu0 a^k",
    _lc_build,
    final_values("mu", "feasibility", "lambda_norm"),
))
register(Method(
    "admm",
    "ADMM with a projection z-update (Boyd et al. 2011), rho_k = mu0 a^k; with "
    "--budget-ratio/--budget-bits the joint sparsity-quantization ADMM (Yang et al. 2020)",
    _admm_build,
    lambda r: (_joint_diagnostics(r) if isinstance(r.state, JointADMMState)
               else final_values("rho", "primal_residual", "dual_residual")(r)),
    _admm_arguments,
    adapt=_admm_adapt,
    finish=_admm_finish,
    prunes=lambda c: c.options.get("budget_ratio") is None and c.options.get("budget_bits") is None,
))
register(Method(
    "slr",
    "surrogate Lagrangian relaxation pruning (Zhou et al.): hard-pruned W, optional retraining",
    _slr_build,
    final_values("w_minus_z", "s", "hard_prune_metric"),
    _slr_arguments,
    finish=_slr_finish,
))
register(Method(
    "apgdssm",
    "quantization-aware training with channel pruning (Li & Xin): m-bit grid, shrinkage, "
    "group lasso, splitting",
    _apgdssm_build,
    _apgdssm_diagnostics,
    _apgdssm_arguments,
    adapt=_apgdssm_adapt,
    prunes=lambda c: False,
))
