"""The registry of compression methods of ``compressopt compress --method NAME``.

A method turns the job's settings into a coordinator and a compression, and adds its own
diagnostics to the report. Its options are a frozen dataclass of :mod:`compressopt.options`
(:class:`~compressopt.options.LCOptions`, ...), which the command line and the TOML keys are
derived from; ``build`` reads them, typed, from ``config.options``. Adding a method is one
:func:`register` call with a :class:`Method` naming its options classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from compressopt.options import (
    ADMMOptions,
    APGDSSMOptions,
    DCOptions,
    JobConfig,
    JointADMMOptions,
    LCOptions,
    MethodOptions,
    SLROptions,
    register_options,
)
from compressopt.projections import (
    AdaptiveQuantization,
    Additive,
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
    DirectCompression,
    IteratedDC,
    JointADMM,
    JointADMMState,
    MultiStepLR,
    PenaltySchedule,
    SolveResult,
    budget_from_ratio,
)

__all__ = ["METHODS", "Method", "build_compression", "final_values", "finetune_joint", "register"]

def build_compression(prune: float | None, quantize: int | None, *,
                      combine: str = "chain", shared: Sequence[str] | None = None
                      ) -> Compression:
    """The constraint set of ``--prune KEEP`` and/or ``--quantize K`` (``--combine``,
    ``--shared-codebook``).

    * prune only: :class:`~compressopt.projections.GlobalCardinality` ``(keep=KEEP)``, one ℓ0
      budget over all compressed tensors (Carreira-Perpiñán & Idelbayev, CVPR 2018);
    * quantize only: a K-entry codebook per tensor, optimal 1-D k-means
      (:class:`~compressopt.projections.AdaptiveQuantization`, Carreira-Perpiñán & Idelbayev
      2017, Part II, §4.1); ``ceil(log2 K)`` bits per weight;
    * both, ``combine="chain"``: prune, then quantize the nonzeros of each tensor with K
      learned entries, zeros kept (:class:`~compressopt.projections.Chain`; a heuristic for
      the intersection of the sets): ``ceil(log2 K)`` bits per nonzero;
    * both, ``combine="additive"``: w = Q(w) + s, every weight in the codebook plus a
      correction s with KEEP of the weights nonzero in float32
      (:class:`~compressopt.projections.Additive`; Carreira-Perpiñán & Idelbayev 2021, Part V,
      §3; the C step alternates the two exact projections, so its error never increases):
      ``ceil(log2 K)`` bits per weight plus 32 per correction.

    `shared`: the names of all the compressed tensors, for one codebook over them flattened
    together (:class:`~compressopt.projections.Tasks` with one group) instead of one per
    tensor; ``None``: one per tensor.

    Raises
    ------
    ValueError
        Neither given, KEEP outside (0, 1], K < 2, `combine` not "chain" or "additive",
        "additive" without both, or `shared` without K.
    """
    if combine not in ("chain", "additive"):
        raise ValueError(f"combine must be 'chain' or 'additive', got {combine!r}")
    if combine == "additive" and (prune is None or quantize is None):
        raise ValueError("combine='additive' needs both prune (the correction) and quantize")
    if shared is not None and quantize is None:
        raise ValueError("a shared codebook needs quantize")
    if prune is None and quantize is None:
        raise ValueError("give --prune KEEP and/or --quantize K")
    if prune is not None and not (isinstance(prune, float | int) and 0.0 < prune <= 1.0):
        raise ValueError(f"--prune KEEP must be in (0, 1], got {prune}")
    bad_k = isinstance(quantize, bool) or not isinstance(quantize, int) or quantize < 2
    if quantize is not None and bad_k:
        raise ValueError(f"--quantize K must be an integer >= 2, got {quantize}")
    if quantize is None:
        return GlobalCardinality(keep=float(prune))  # type: ignore[arg-type]

    def codebook(sparse: bool) -> Compression:
        scheme = AdaptiveQuantization(quantize, sparse=sparse)
        return PerTensor(scheme) if shared is None else Tasks({tuple(shared): scheme})

    if prune is None:
        return codebook(False)
    if combine == "additive":
        return Additive(codebook(False), GlobalCardinality(keep=float(prune)))
    return Chain(GlobalCardinality(keep=float(prune)), codebook(True))


def _job_compression(config: JobConfig, shapes: Mapping[str, tuple[int, ...]]) -> Compression:
    """:func:`build_compression` of a job's ``--prune``/``--quantize``/``--combine``/
    ``--shared-codebook`` over the compressed tensors `shapes`."""
    return build_compression(config.prune, config.quantize, combine=config.combine,
                             shared=tuple(shapes) if config.shared_codebook else None)


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Method:
    """One entry of :data:`METHODS`.

    Attributes
    ----------
    name : str
        The ``--method`` value.
    help : str
        One line for ``--help`` (default: the summary of its first options class).
    build : callable(config, shapes) -> (coordinator, compression)
        The solver (with the job's penalty schedule ``config.mus``) and the constraint;
        `shapes` maps the compressed parameters' names to their shapes; the method's options
        are ``config.options``, an instance of one of `options`.
    diagnostics : callable(result) -> dict
        Method-specific figures for ``report.json`` (JSON-serializable), from the solver's
        :class:`~compressopt.solvers.SolveResult`.
    options : tuple of MethodOptions subclasses
        The method's options (the first is the default; another is selected by its
        ``selected_by`` fields). :func:`register` registers them in
        :data:`compressopt.options.METHOD_OPTIONS`, so they appear on the command line.
    adapt : callable(solver, oracle, config) -> (solver, oracle), optional
        Adapts the job's :class:`~compressopt.dnn.oracle.TorchOracle` (and the solver) before
        the run, e.g. minibatch gradients for a gradient-step coordinator.
    finish : callable(solver, result, oracle, compression, config) -> (x, extra), optional
        After the run: the weights to write into the model (default ``result.x``) and extra
        report entries (e.g. masked retraining after hard pruning, fine-tuning with the
        compression's structure fixed).
    """

    name: str
    help: str
    build: Callable[[JobConfig, Mapping[str, tuple[int, ...]]], tuple[Any, Compression]]
    diagnostics: Callable[[SolveResult], dict[str, Any]] = field(default=lambda r: {})
    options: tuple[type[MethodOptions], ...] = ()
    adapt: Callable[[Any, Any, JobConfig], tuple[Any, Any]] | None = None
    finish: Callable[[Any, SolveResult, Any, Compression, JobConfig],
                     tuple[Any, dict[str, Any]]] | None = None


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add `method` to :data:`METHODS` (replacing one of the same name) and its options
    classes to :data:`compressopt.options.METHOD_OPTIONS`; return it.

    Raises
    ------
    ValueError
        An options class names another method.
    """
    for cls in method.options:
        if cls.method != method.name:
            raise ValueError(f"{cls.__name__}.method is {cls.method!r}, not {method.name!r}")
        register_options(cls)
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
    o = config.options
    assert isinstance(o, LCOptions)
    solver = LC(mus=config.mus, tol=0.0, penalty="al", eval_loss=config.eval_loss > 0,
                inner_iterations=o.inner_iterations)
    return solver, _job_compression(config, shapes)


def _dc_build(config: JobConfig, shapes: Mapping[str, tuple[int, ...]]) -> tuple[Any, Compression]:
    """DC: Π of the reference; iDC: ``--steps`` rounds of training from Δ(Θ), then Π."""
    o = config.options
    assert isinstance(o, DCOptions)
    solver = (IteratedDC(maxiter=config.steps, eval_loss=config.eval_loss > 0) if o.iterated
              else DirectCompression(eval_loss=config.eval_loss > 0))
    return solver, _job_compression(config, shapes)


def _admm_build(
    config: JobConfig, shapes: Mapping[str, tuple[int, ...]]
) -> tuple[ADMM | JointADMM, Compression]:
    if isinstance(config.options, JointADMMOptions):
        return _joint_build(config, config.options, shapes)
    mus = config.mus
    growth = mus[1] / mus[0] if len(mus) > 1 else 1.0
    # the papers' ADMM for DNNs: rho_k = mu0 a^k fixed by the schedule (no residual
    # balancing, no over-relaxation: the solver's small-problem defaults do not apply here)
    solver = ADMM(rho=mus[0], rho_growth=max(growth, 1.0), maxiter=len(mus),
                  eval_loss=config.eval_loss > 0, adaptive=False, relaxation=1.0,
                  eps_abs=1e-6, eps_rel=1e-4)
    return solver, _job_compression(config, shapes)


def _joint_build(
    config: JobConfig, o: JointADMMOptions, shapes: Mapping[str, tuple[int, ...]]
) -> tuple[JointADMM, Compression]:
    """Yang et al.'s joint ADMM under one budget (``--budget-bits S`` or ``--budget-ratio R``)."""
    if o.budget_bits is not None:
        budget = o.budget_bits
    else:
        budget = budget_from_ratio(sum(math.prod(s) for s in shapes.values()), o.budget_ratio)
    joint = SparseQuantized(budget_bits=budget, candidates=o.bit_candidates)
    solver = JointADMM(rho=o.rho, rho_growth=o.rho_growth, maxiter=config.steps,
                       init_bits=o.init_bits, eval_loss=config.eval_loss > 0, v_support=o.v_support,
                       init_projections=o.init_projections)
    return solver, joint


def _joint_diagnostics(r: SolveResult) -> dict[str, Any]:
    out = final_values("mse", "w_minus_v", "budget_used", "budget")(r)
    last = r.history[-1] if r.history else None
    out["layers"] = (
        {} if last is None else {n: {"nnz": last.nnz[n], "bits": last.bits[n]} for n in last.nnz}
    )
    return out


def _admm_adapt(solver: ADMM | JointADMM, oracle: Any, config: JobConfig) -> tuple[Any, Any]:
    """The L step's penalty: eq. (5)'s proximal step for the joint ADMM unless told otherwise
    (``--penalty-step``; its default differs between the two options classes)."""
    o = config.options
    assert isinstance(o, ADMMOptions | JointADMMOptions)
    oracle.penalty = o.penalty_step
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
    o = config.options
    if not isinstance(o, JointADMMOptions) or o.finetune_epochs == 0:
        return result.x, {}
    n = o.finetune_epochs
    lr = o.finetune_lr if o.finetune_lr is not None else config.lstep_lr / 10
    x = finetune_joint(result.x, result.state.bits, oracle, compression, n, lr)
    return x, {"finetune_epochs": n, "finetune_lr": lr}


def _slr_build(
    config: JobConfig, shapes: Mapping[str, tuple[int, ...]]
) -> tuple[SLR, Compression]:
    """SLR (Zhou et al.) pruning: ``--prune KEEP`` global or per layer (``--prune-scope``)."""
    o = config.options
    assert isinstance(o, SLROptions)
    keep = config.prune
    if o.prune_scope == "layer":
        compression: Compression = Tasks({n: Cardinality(keep=keep) for n in shapes})
    else:
        compression = GlobalCardinality(keep=keep)
    solver = SLR(rho=o.slr_rho, s0=o.s0, M=o.slr_M, r=o.slr_r, maxiter=config.steps,
                 step_rule=o.step_rule, alpha_index=o.alpha_index)
    return solver, compression


def _slr_finish(
    solver: SLR, result: SolveResult, oracle: Any, compression: Compression, config: JobConfig
) -> tuple[Any, dict[str, Any]]:
    n = config.options.retrain_epochs  # type: ignore[union-attr]
    if n == 0:
        return result.x, {}
    return solver.retrain(result.x, oracle, steps=n), {"retrain_epochs": n}


def _apgdssm_build(
    config: JobConfig, shapes: Mapping[str, tuple[int, ...]]
) -> tuple[APGDSSM, Compression]:
    """APGDSSM (Li & Xin): the m-bit grid ``--bits m`` per layer, with the penalties' λ's."""
    o = config.options
    assert isinstance(o, APGDSSMOptions)
    sched = None
    if o.milestones:
        sched = PenaltySchedule(
            milestones=o.milestones, lambda1=o.lambda1_factors or (1.0,),
            lambda2=o.lambda2_factors or (1.0,), beta=o.beta_factors or (1.0,),
            cumulative=o.cumulative_factors,
        )
    solver = APGDSSM(
        lr=config.lstep_lr, lambda1=o.lambda1, lambda2=o.lambda2, lambda3=o.lambda3,
        a=o.ctl1_a, beta=o.beta, schedule=sched, scale_with_lr=o.scale_with_lr,
        threshold=o.threshold, splitting=o.splitting, ctl1_groups=o.ctl1_groups,
        shrink_every=o.shrink_every, maxiter=config.steps, eval_loss=config.eval_loss > 0,
    )
    return solver, PerTensor(UniformQuantization(bits=o.bits))


def _apgdssm_adapt(solver: APGDSSM, oracle: Any, config: JobConfig) -> tuple[APGDSSM, Any]:
    from dataclasses import replace

    from compressopt.dnn.oracle import MinibatchOracle

    o = config.options
    assert isinstance(o, APGDSSMOptions)
    mb = MinibatchOracle(oracle, lr=config.lstep_lr, lr_decay=config.lr_decay)
    spe, lr0, decay = mb.steps_per_epoch, config.lstep_lr, config.lr_decay
    if o.lr_milestones:  # a step schedule (Li & Xin: x0.1 at epochs 80, 120, 160)
        return replace(solver, lr=MultiStepLR(lr0, o.lr_milestones, o.lr_factor, spe)), mb
    return replace(solver, lr=lambda t: lr0 * decay ** (t // spe)), mb


def _apgdssm_diagnostics(r: SolveResult) -> dict[str, Any]:
    out = final_values("weight_sparsity", "channel_sparsity", "w_minus_u")(r)
    last = r.history[-1] if r.history else None
    out["layers"] = {} if last is None else {
        n: {"weight_sparsity": ws, "channel_sparsity": cs} for n, (ws, cs) in last.layers.items()
    }
    return out


register(Method(
    "lc", LCOptions.summary, _lc_build, final_values("mu", "feasibility", "lambda_norm"),
    options=(LCOptions,),
))
register(Method(
    "dc", DCOptions.summary, _dc_build, final_values("feasibility", "change"),
    options=(DCOptions,),
))
register(Method(
    "admm", ADMMOptions.summary, _admm_build,
    lambda r: (_joint_diagnostics(r) if isinstance(r.state, JointADMMState)
               else final_values("rho", "primal_residual", "dual_residual")(r)),
    options=(ADMMOptions, JointADMMOptions),
    adapt=_admm_adapt,
    finish=_admm_finish,
))
register(Method(
    "slr", SLROptions.summary, _slr_build, final_values("w_minus_z", "s", "hard_prune_metric"),
    options=(SLROptions,),
    finish=_slr_finish,
))
register(Method(
    "apgdssm", APGDSSMOptions.summary, _apgdssm_build, _apgdssm_diagnostics,
    options=(APGDSSMOptions,),
    adapt=_apgdssm_adapt,
))
