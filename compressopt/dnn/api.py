"""The library's front door: :func:`compress` any ``nn.Module`` in one call.

The job is a few named steps, each a function here (:func:`compress` calls them in order):

1. :func:`prepare` — the options typed and checked, the parameters selected, the method's
   coordinator and compression built, the device and the C step's memory checked: every
   check that can fail does so before any training;
2. the reference — the model as given (:func:`compressopt.dnn.job.run_job` trains or loads
   one first);
3. :func:`solve` — the method's coordinator from the reference weights, with a
   :class:`~compressopt.dnn.oracle.TorchOracle`, the test score of the coordinator's output
   point recorded after every iteration;
4. :func:`finish` — the method's final stage (retraining, fine-tuning), Δ(Θ) written into
   the model, the final score;
5. :func:`write` — the report, ``config.toml`` and the compressed model staged in OUT and
   committed together, the report last (:class:`~compressopt.storage.atomic.RunOutput`).

A stop requested from outside (``stop()`` true: the command line's SIGINT/SIGTERM handler)
is honoured at the next epoch or iteration boundary by raising :class:`JobStopped`.

With an output directory, the state after every coordinator iteration is checkpointed
(:mod:`compressopt.dnn.checkpoint`: ``OUT/checkpoint.safetensors``, removed once the run is
committed), and ``compress(..., resume=OUT)`` continues from it to the uninterrupted run's
result.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.func import functional_call

from compressopt import __version__
from compressopt.dnn import distributed
from compressopt.dnn.checkpoint import (
    CHECKPOINT,
    Checkpoint,
    Checkpointer,
    TrackedLoader,
    check_fresh_out,
    read_checkpoint,
    restore_solve,
    resumed_settings,
    solve_tree,
)
from compressopt.dnn.compressed import compressed_bytes
from compressopt.dnn.distill import Distillation
from compressopt.dnn.methods import METHODS, Method
from compressopt.dnn.oracle import LStepSchedule, TorchOracle
from compressopt.dnn.params import read_parameters, select_parameters, write_parameters
from compressopt.dnn.train import to_device
from compressopt.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    NonFiniteError,
    OutputError,
    ResourceLimitError,
)
from compressopt.options import (
    ADMMOptions,
    JobConfig,
    JointADMMOptions,
    dump_toml,
)
from compressopt.projections import Compression, summarize
from compressopt.projections._util import available_memory, format_bytes
from compressopt.projections.base import as_compression
from compressopt.solvers import SolveResult
from compressopt.solvers.base import Status, drive
from compressopt.storage.atomic import RunOutput, read_run
from compressopt.storage.model_file import file_accounting

__all__ = [
    "CompressionResult",
    "JobStopped",
    "Plan",
    "check_device",
    "check_resources",
    "compress",
    "finish",
    "interrupted",
    "layer_table",
    "lstep_optimizer",
    "prepare",
    "solve",
    "write",
]

logger = logging.getLogger("compressopt.dnn")

Event = Callable[[str, Mapping[str, Any]], None]
Score = Callable[[Mapping[str, torch.Tensor] | None], float | None]


class CompressionResult(NamedTuple):
    """What :func:`compress` returns.

    Attributes
    ----------
    model : the model, with Δ(Θ) written into its compressed parameters (in place).
    x : dict name -> tensor, Δ(Θ) of the compressed parameters.
    theta : Θ, the compression's parameters (codebooks and codes, masks, ...).
    report : dict, the report (as ``OUT/report.json`` when `out` is given).
    result : :class:`~compressopt.solvers.SolveResult` of the coordinator.
    compression : the :class:`~compressopt.projections.Compression` (Δ, Π).
    config : the resolved :class:`~compressopt.options.JobConfig` of the run.
    """

    model: nn.Module
    x: dict[str, torch.Tensor]
    theta: Any
    report: dict[str, Any]
    result: SolveResult
    compression: Compression
    config: JobConfig


class JobStopped(KeyboardInterrupt):
    """The job stopped at an epoch or iteration boundary because ``stop()`` returned a value
    (the command line passes the number of the signal received: SIGINT, SIGTERM).

    Attributes
    ----------
    reason : what ``stop()`` returned (a signal number for the command line).
    where : the last boundary passed, e.g. "after iteration 3".
    checkpoint : the path of the run's checkpoint when one is in OUT (``--resume OUT``
        continues from it), else None.
    """

    def __init__(self, reason: Any, where: str) -> None:
        super().__init__(f"stopped {where}")
        self.reason = reason
        self.where = where
        self.checkpoint: str | None = None


class _Events:
    """Progress events (``on_event(kind, info)``) and the stop check at each boundary."""

    def __init__(self, on_event: Event | None, stop: Callable[[], Any] | None) -> None:
        self.on_event = on_event
        self.stop = stop

    def __call__(self, kind: str, info: Mapping[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(kind, info)
        self.check(kind, info)

    def check(self, kind: str = "", info: Mapping[str, Any] | None = None) -> None:
        reason = self.stop() if self.stop is not None else None
        if reason:
            raise JobStopped(reason, _where(kind, info or {}))


def _where(kind: str, info: Mapping[str, Any]) -> str:
    if kind == "reference_epoch":
        return f"after reference epoch {info['epoch'] + 1}"
    if kind == "lstep_epoch":
        return f"after epoch {info['epoch'] + 1} of iteration {info['step'] + 1}"
    if kind == "step":
        return f"after iteration {info.get('k', 0) + 1}"
    return "before training" if kind in ("", "data", "reference_start") else f"at {kind}"


# -- small pieces -------------------------------------------------------------------------


def lstep_optimizer(model: nn.Module, lr: float, momentum: float = 0.9,
                    weight_decay: float = 0.0, nesterov: bool = True,
                    kind: str = "sgd") -> torch.optim.Optimizer:
    """The L steps' optimizer of the job over all of `model`'s parameters, weight decay as
    an ℓ2 term on every parameter: SGD with Nesterov momentum (heavy-ball with
    ``nesterov=False``; plain SGD when `momentum` is 0), or with ``kind="adam"`` Adam with
    β₁ = `momentum` and β₂ = 0.999 (Kingma & Ba 2015).

    On a quadratic of curvature λ, heavy-ball momentum β is stable for ηλ < 2(1 + β) and
    Nesterov's for ηλ < 2(1 + β)/(1 + 2β): at β = 0.93 the heavy-ball bound is 2.9× larger.
    """
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, betas=(momentum, 0.999),
                                weight_decay=weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                           nesterov=nesterov and momentum > 0, weight_decay=weight_decay)


def layer_table(
    costs: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]
) -> list[dict[str, Any]]:
    """The report's ``layers``: ``{name, shape, numel, nonzeros, bits, overhead_bits}`` per tensor.

    `costs` maps names to :class:`~compressopt.projections.StorageCost`; ``nonzeros`` are the
    stored values (nonzeros of a pruned tensor, every entry of a dense quantized one).
    """
    return [
        {
            "name": n,
            "shape": list(shapes[n]),
            "numel": c.numel,
            "nonzeros": c.nnz,
            "bits": c.bits,
            "overhead_bits": c.overhead_bits,
        }
        for n, c in costs.items()
    ]


@torch.no_grad()
def loader_accuracy(
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    params: Mapping[str, torch.Tensor] | None = None,
) -> float:
    """Fraction of `loader`'s examples whose argmax prediction equals the label, with
    `params` substituted for those parameters (:func:`torch.func.functional_call`; the model
    is not modified), in ``eval`` mode (restored after).

    Raises
    ------
    DataError
        The loader yields no example.
    """
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    correct = torch.zeros((), device=device, dtype=torch.int64)
    n = 0
    try:
        for x, y in loader:
            x, y = to_device(x, device), y.to(device, non_blocking=True)
            out = model(x) if params is None else functional_call(model, dict(params), (x,))
            correct += (out.argmax(dim=1) == y).sum()
            n += y.shape[0]
    finally:
        model.train(was)
    if n == 0:
        raise DataError("the test data is empty: no accuracy to measure")
    return int(correct) / n


@contextlib.contextmanager
def _holding(params: Mapping[str, nn.Parameter], x: Mapping[str, torch.Tensor] | None,
             ) -> Iterator[None]:
    """The model's parameters temporarily set to `x` (restored after)."""
    if x is None:
        yield
        return
    saved = read_parameters(params)
    write_parameters(params, x)
    try:
        yield
    finally:
        write_parameters(params, saved)


def _scorer(model: nn.Module, params: Mapping[str, nn.Parameter], test_loader: Any,
            evaluate: Callable[[nn.Module], float] | None) -> Score:
    """score(x) of the model with `x` substituted (None: as it is): `evaluate(model)` if
    given, else the accuracy on `test_loader`, else None."""
    if evaluate is not None:
        def score(x: Mapping[str, torch.Tensor] | None) -> float | None:
            with _holding(params, x):
                return float(evaluate(model))
        return score
    if test_loader is not None:
        return lambda x: loader_accuracy(model, test_loader, x)
    return lambda x: None


def check_device(name: str) -> torch.device:
    """The torch device `name`, checked with torch's own queries.

    Raises
    ------
    ConfigError
        Not a device name; ``meta`` (holds no data); a device type this torch build or
        machine does not have (cuda, mps, xpu, ... not available); an index beyond the
        devices present.
    """
    try:
        with warnings.catch_warnings():  # e.g. "mkldnn is no longer used": the error says it
            warnings.simplefilter("ignore")
            dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device: not a torch device: {name!r}") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "meta":
        raise ConfigError("--device meta: a meta tensor holds no data, so nothing can be "
                          "trained or evaluated; use cpu or an accelerator")
    if dev.type == "mps":
        available = torch.backends.mps.is_available()
        count = 1 if available else 0
    else:
        backend = getattr(torch, dev.type, None)
        is_available = getattr(backend, "is_available", None)
        available = bool(is_available()) if callable(is_available) else False
        count_fn = getattr(backend, "device_count", None)
        count = int(count_fn()) if available and callable(count_fn) else int(available)
    if not available:
        raise ConfigError(f"--device {name}: {dev.type} is not available to this process "
                          f"(torch {torch.__version__})")
    if dev.index is not None and dev.index >= count:
        raise ConfigError(f"--device {name}: only {count} {dev.type} device(s) present")
    return dev


def check_resources(config: JobConfig, shapes: Mapping[str, tuple[int, ...]], *,
                    available: int | None = None) -> int:
    """Check the C step's memory before training; return the estimate in bytes.

    The estimate is the method's (:meth:`~compressopt.options.MethodOptions.cstep_memory`),
    made of the projections' own estimates for the tensor that needs the most: the exact
    k-means of ``--quantize K`` (:func:`~compressopt.projections.kmeans1d_memory`, about
    16·K·n bytes), the joint ADMM's k-means sweep over ``--bit-candidates`` (its "fast"
    method), the m-bit grid of ``--method apgdssm --bits m``
    (:func:`~compressopt.projections.uniform_memory`), ... It is compared with 90 % of the
    memory available now (:func:`compressopt.projections._util.available_memory`, or
    `available`), leaving room for the model, the data and the L step.

    Raises
    ------
    ConfigError
        ``--quantize K`` above the number of weights of a compressed tensor (such a codebook
        would store every weight as its own level: refused rather than clamped, so the
        reported bits are what was asked).
    ResourceLimitError
        The estimate exceeds 90 % of the available memory; the message names the
        computation, the tensor and the option to change.
    """
    if config.quantize is not None:
        small = {n: math.prod(s) for n, s in shapes.items() if math.prod(s) < config.quantize}
        if small:
            name, size = min(small.items(), key=lambda kv: kv[1])
            raise ConfigError(f"--quantize {config.quantize} exceeds the {size:,} weights of "
                              f"{name}: choose K <= {size} or --exclude {name}")
    o = config.method_options
    need, what = o.cstep_memory(config, shapes)
    avail = available_memory() if available is None else available
    if need > 0.9 * avail:
        flag = "--quantize" if config.quantize is not None else o.memory_flag
        raise ResourceLimitError(
            f"the C step of --method {config.method} ({what}) needs about "
            f"{format_bytes(need)} of memory, more than 90 % of the {format_bytes(avail)} "
            f"available: lower {flag}")
    return need


# -- step 1: prepare ----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The result of :func:`prepare`: what the later steps use."""

    config: JobConfig
    params: dict[str, nn.Parameter]
    shapes: dict[str, tuple[int, ...]]
    method: Method
    solver: Any
    compression: Compression


def prepare(model: nn.Module, config: JobConfig, compression: Compression | None = None,
            ) -> Plan:
    """Step 1: check everything that can be checked before training and build the method.

    `config` is resolved (:meth:`~compressopt.options.JobConfig.resolved`). Selects the
    compressed parameters (``include``/``exclude``), builds the coordinator and the
    compression (`compression` replaces the method's own if given) and checks the device and
    the C step's memory (:func:`check_device`, :func:`check_resources`).

    Raises
    ------
    ConfigError, ResourceLimitError, ValueError
        As the checks; a method without a registered :class:`~compressopt.dnn.methods.Method`.
    """
    check_device(config.device)
    if config.method not in METHODS:
        raise ConfigError(f"--method {config.method}: no such method registered in "
                          "compressopt.dnn.methods")
    params = select_parameters(model, config.include or None, config.exclude or None)
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    method = METHODS[config.method]
    solver, built = method.build(config, shapes)
    if compression is not None:  # it replaces the one of --prune/--quantize (the default)
        config = replace(config, prune=None, quantize=None)
    check_resources(config, shapes)
    return Plan(config, params, shapes, method, solver, compression or built)


# -- step 3: solve ------------------------------------------------------------------------


class Solved(NamedTuple):
    """The result of :func:`solve`."""

    result: SolveResult
    iterations: list[dict[str, Any]]
    oracle: TorchOracle
    distill: Distillation | None
    solver: Any


def solve(
    plan: Plan, model: nn.Module, loss: Callable[..., torch.Tensor], train_loader: Any,
    score: Score, emit: _Events, *, callback: Callable[[dict[str, Any]], Any] | None = None,
    on_checkpoint: Callable[[Any, dict[str, Any]], None] | None = None,
    val_score: Score | None = None, train_model: nn.Module | None = None,
    checkpoints: Checkpointer | None = None, resume: Mapping[str, Any] | None = None,
) -> Solved:
    """Step 3: run the method's coordinator from the model's (reference) weights.

    The L steps train the whole model (compressed and free parameters) with
    :func:`lstep_optimizer` and the schedule of the config; after every iteration the test
    score of the coordinator's output point (Δ(Θ) for LC/ADMM, the hard-pruned W for SLR, W
    quantized with V's widths for the joint ADMM, u = Proj_Q(w) for APGDSSM) is recorded,
    then ``callback(record)`` (raising StopIteration ends the coordinator after this
    iteration), then the checkpoint is saved (`checkpoints`:
    :func:`~compressopt.dnn.checkpoint.solve_tree`) and ``on_checkpoint(state, record)``
    called, then the stop check. With `val_score`, the record holds ``val_accuracy`` too,
    and ``target_accuracy`` ends the coordinator at the first iteration whose output point
    reaches it on the validation data. Under ``torch.distributed`` (`train_model` the DDP
    wrapper of :func:`~compressopt.dnn.distributed.wrap_model`) every rank runs the
    coordinator, and Θ is checked to be the same on all of them after every iteration
    (:func:`~compressopt.dnn.distributed.check_ranks_agree`).

    With `resume` (a solve-phase checkpoint's tree; the model holds the reference), the
    model, the optimizers, the loader and the random states are put back as they were after
    the checkpoint's iteration, and the coordinator continues from its state and history
    (:func:`_resumed_run`).
    """
    cfg, compression = plan.config, plan.compression
    done = [] if resume is None else list(resume["iterations"])
    t0 = time.perf_counter() - (done[-1]["seconds"] if done else 0.0)
    # the reference, kept for the checkpoints (the model itself is compressed)
    reference = ({} if checkpoints is None else
                 {k: v.detach().clone() for k, v in model.state_dict().items()})
    # a frozen copy of the reference as the teacher
    distill = Distillation(copy.deepcopy(model), cfg.distill) if cfg.distill > 0 else None
    loader = TrackedLoader(train_loader)  # the position inside an epoch, for the checkpoints
    oracle = TorchOracle(
        model, loss, loader,
        lstep_optimizer(model, cfg.lstep_lr, cfg.momentum, cfg.weight_decay, cfg.nesterov,
                        cfg.optimizer),
        params=plan.params, eval_size=cfg.eval_loss or 2048, train_model=train_model,
        schedule=LStepSchedule(
            epochs=cfg.epochs, first_epochs=cfg.first_epochs, lr_decay=cfg.lr_decay,
            reset_momentum=not cfg.keep_momentum, warmup=cfg.warmup,
            cosine=cfg.steps - cfg.warmup if cfg.lr_schedule == "cos" else None,
            clip=cfg.method_options.clips_lr,
        ),
        on_epoch=lambda k, e, loss: emit("lstep_epoch", {"step": k, "epoch": e, "loss": loss}),
        distill=distill if cfg.distill_phase == "all" else None,
    )
    solver, run_oracle = plan.solver, oracle
    if plan.method.adapt is not None:  # e.g. minibatch gradients for a gradient-step method
        solver, run_oracle = plan.method.adapt(solver, oracle, cfg)
    o = cfg.method_options
    projected = isinstance(o, ADMMOptions | JointADMMOptions) and o.eval_projected
    iterations: list[dict[str, Any]] = done
    history: list[Any] = [] if resume is None else list(resume["history"])

    def on_iteration(state: Any, record: Any) -> None:
        x_now, theta_now = solver.output(state, compression)
        distributed.check_ranks_agree(theta_now)  # no-op in a single process
        acc = score(x_now)
        rec = {
            k: v for k, v in record._asdict().items()
            if not (isinstance(v, float) and math.isnan(v))  # L(w) is not evaluated
        }
        if projected:  # Π(W): W projected without the dual
            rec["projected_test_accuracy"] = score(
                compression.decompress(compression.compress(state.w)))
        if val_score is not None:
            rec["val_accuracy"] = val_score(x_now)
        rec.update(
            test_accuracy=acc,
            train_loss=oracle.lstep_losses[-1] if oracle.lstep_losses else None,
            seconds=time.perf_counter() - t0,
        )
        # the L step's optimizer's rate, unless the coordinator takes its own gradient steps
        # and records their rate (APGDSSM's γ_t, a step schedule's included)
        rec.setdefault("lr", oracle.optimizer.param_groups[0]["lr"])
        iterations.append(rec)
        history.append(record)
        logger.info("iteration %d: test accuracy %s, lr %.4g", len(iterations),
                    "-" if acc is None else f"{acc:.4f}", rec["lr"])
        end: StopIteration | None = None
        if callback is not None:
            try:
                callback(rec)
            except StopIteration as e:
                end = e
        target = cfg.target_accuracy
        if end is None and target is not None and rec.get("val_accuracy") is not None and \
                rec["val_accuracy"] >= target:
            end = StopIteration(f"validation accuracy {rec['val_accuracy']:.4f} reached "
                                f"--target-accuracy {target:g}")
        if checkpoints is not None:
            checkpoints.save("solve", lambda: solve_tree(
                model=model, reference=reference, oracle=oracle, run_oracle=run_oracle,
                loader=loader, state=state, history=history, iterations=iterations,
                stopped=None if end is None else str(end)),
                f"after iteration {len(iterations)}")
        if on_checkpoint is not None:
            on_checkpoint(state, rec)
        emit("step", rec)
        if end is not None:
            raise end

    emit("compress_start", {
        "steps": getattr(solver, "niter", None) or len(cfg.mus), "method": cfg.method,
        "epochs": cfg.epochs,
        "first_epochs": cfg.first_epochs,
    })
    if resume is None:
        result = solver.run(read_parameters(plan.params), run_oracle, compression,
                            callback=on_iteration)
    else:
        restore_solve(resume, model=model, oracle=oracle, run_oracle=run_oracle, loader=loader)
        result = _resumed_run(solver, run_oracle, compression, resume, on_iteration)
    return Solved(result, iterations, oracle, distill, solver)


def _resumed_run(solver: Any, oracle: Any, compression: Compression,
                 tree: Mapping[str, Any], callback: Callable[[Any, Any], None]) -> SolveResult:
    """The coordinator continued from a checkpoint's state and history.

    The decisions the uninterrupted run took after the checkpoint's iteration are replayed
    first through the same loop (:func:`~compressopt.solvers.base.drive`, so with the same
    messages): the stop that ended it there (a callback's StopIteration, the target
    accuracy), the solver's convergence test. If neither ended it, the solver's ``run``
    continues from the state (``resume=``) up to its iteration limit.
    """
    state, history, stopped = tree["state"], tuple(tree["history"]), tree["stopped"]

    def stop_again(s: Any, r: Any) -> None:
        raise StopIteration(stopped)

    _, _, status, message = drive(
        lambda s: (state, history[-1]), state, maxiter=1,
        converged=lambda s, r: solver.converged(r), finite=solver.finite,
        callback=None if stopped is None else stop_again, name=solver.name,
        history=history[:-1])
    if status in (Status.CONVERGED, Status.CALLBACK):
        x, theta = solver.output(state, as_compression(compression))
        return SolveResult(x=x, theta=theta, state=state, converged=status == Status.CONVERGED,
                           status=status, message=message, nit=state.k, history=history)
    before = SolveResult(x={}, theta=None, state=state, converged=False, status=status,
                         message=message, nit=state.k, history=history)
    return solver.run({}, oracle, compression, callback=callback, resume=before)


# -- step 4: finish -----------------------------------------------------------------------


class Finished(NamedTuple):
    """The result of :func:`finish`."""

    x: dict[str, torch.Tensor]
    theta: Any
    accuracy: float | None
    extra: dict[str, Any]


def finish(plan: Plan, solved: Solved, score: Score) -> Finished:
    """Step 4: the method's final stage (e.g. masked retraining, fine-tuning with the
    structure fixed; distilled when ``distill_phase`` says so), then Δ(Θ) written into the
    model's compressed parameters and its score."""
    cfg, compression, result = plan.config, plan.compression, solved.result
    x, theta, extra = result.x, result.theta, {}
    if plan.method.finish is not None:
        extra["accuracy_before_finish"] = score(result.x)
        solved.oracle.distill = solved.distill
        x, more = plan.method.finish(solved.solver, result, solved.oracle, compression, cfg)
        extra.update(more)
        theta = compression.compress(x) if x is not result.x else theta
        x = compression.decompress(theta)
    write_parameters(plan.params, x)  # the compressed weights into the model (documented)
    return Finished(dict(x), theta, score(None), extra)


# -- the report and step 5: write ---------------------------------------------------------


def _json_safe(v: Any) -> Any:
    """`v` with every non-finite float replaced by None (JSON has no inf or NaN): e.g. the
    compression ratio of a budget of 0 bits (everything pruned)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    return v


def build_report(plan: Plan, solved: Solved, done: Finished, *, model_name: str,
                 dataset: str, reference_accuracy: float | None, pretrain_epochs: int,
                 seconds: Mapping[str, float], device: torch.device,
                 validation: Mapping[str, float | None] | None = None) -> dict[str, Any]:
    """The report (see :func:`compressopt.dnn.job.run_job` for its fields); `validation`:
    ``reference_val_accuracy`` and ``val_accuracy`` when there is a validation split."""
    cfg = plan.config
    costs = plan.compression.cost(done.theta)
    s = summarize(costs)
    acc, ref = done.accuracy, reference_accuracy
    report: dict[str, Any] = {
        "model": model_name,
        "dataset": dataset,
        "method": cfg.method,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "pretrain_epochs": pretrain_epochs,
        "prune": cfg.prune,
        "quantize": cfg.quantize,
        "reference_accuracy": ref,
        "accuracy": acc,
        "accuracy_drop": None if acc is None or ref is None else ref - acc,
        **(validation or {}),
        "compression_ratio": s.compression_ratio,
        "nonzero_fraction": s.nonzero_fraction,
        "average_bits": s.average_bits,
        "weight_bits": s.weight_bits,
        "overhead_bits": s.overhead_bits,
        "compressed_numel": s.numel,
        "compressed_nonzeros": s.nnz,
        **seconds,
        "world_size": distributed.world_size(),
        "layers": layer_table(costs, plan.shapes),
        "iterations": solved.iterations,
        "diagnostics": {**plan.method.diagnostics(solved.result), **done.extra},
        "message": solved.result.message,
        "config": cfg.report_config(),
        "environment": {
            "compressopt": __version__,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        },
    }
    return _json_safe(report)


def state_bytes(model: nn.Module) -> bytes:
    """The model's ``state_dict`` as a safetensors file (tensors copied to the CPU)."""
    return safetensors_bytes({k: v.detach().to("cpu").contiguous()
                              for k, v in model.state_dict().items()})


#: the file names of a run's set
MODEL_FILE, CONFIG_FILE = "model.cpz", "config.toml"
#: the byte figures of :func:`~compressopt.storage.model_file.file_accounting` in the report
FILE_FIGURES = ("file_bytes", "tensor_bytes", "file_compression_ratio", "model_bytes_ratio",
                "lc_toolkit_bytes", "floor_bytes", "positions_bytes", "position_floor_bytes")


def with_file_figures(report: dict[str, Any], blob: bytes) -> dict[str, Any]:
    """`report` with the measured sizes of the compressed-model file `blob` (issue 10):
    ``compressed_file``, ``file_bytes``, ``tensor_bytes``, ``file_compression_ratio``,
    ``model_bytes_ratio``, the LC-toolkit count and floors, and each layer's ``bytes`` by
    part (values, positions, codebook, header, total)."""
    acc = file_accounting(blob)
    by_layer = acc["layers"]
    layers = [{**x, "bytes": by_layer.get(x["name"])} for x in report["layers"]]
    return _json_safe({**report, "compressed_file": MODEL_FILE,
                       **{k: acc[k] for k in FILE_FIGURES}, "layers": layers})


def stage_figures(run: RunOutput, report: Mapping[str, Any], weights: Mapping[str, Any],
                  theta: Any) -> None:
    """Stage the run's figures (:func:`compressopt.plots.render_report`: per-layer kept
    fraction and bits, the per-iteration curves, the weights' histograms with the codebook
    levels of Θ); without matplotlib, a warning and no figures."""
    try:
        from compressopt.plots import codebook_levels, render_report

        figures = render_report(report, weights=weights, levels=codebook_levels(theta))
    except ImportError as e:
        logger.warning("no figures: %s", e)
        return
    for name, png in figures.items():
        run.stage(name, png)


def write(run: RunOutput, report: dict[str, Any], model: nn.Module, plan: Plan,
          done: Finished, metadata: Mapping[str, Any] | None = None,
          weights: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Step 5: stage ``config.toml`` and the compressed model ``model.cpz`` (Θ, not Δ(Θ):
    :func:`~compressopt.dnn.compressed.compressed_bytes`, with `metadata` and the accuracy
    in its header; its measured sizes go into the report), then commit with the report last
    (:meth:`~compressopt.storage.atomic.RunOutput.commit`); return the report as written and
    read back (:func:`~compressopt.storage.atomic.read_run`: every file's size and SHA-256
    checked, ``files`` listing them). With ``plots`` (the default) the figures are staged
    too (:func:`stage_figures`; the histograms show `weights`, default Δ(Θ))."""
    header = (f"compressopt {__version__}: the settings of this run (defaults resolved).\n"
              "Repeat it with: compressopt compress --config config.toml --out OTHER_DIR")
    settings = {k: v for k, v in plan.config.to_settings().items() if k != "out"}
    run.stage(CONFIG_FILE, dump_toml(settings, header).encode())
    facts = {"model": plan.config.model, "dataset": plan.config.dataset,
             "method": plan.config.method, "accuracy": report["accuracy"], **(metadata or {})}
    blob = compressed_bytes(model, plan.compression, done.theta, metadata=facts)
    report = with_file_figures(report, blob)
    run.stage(MODEL_FILE, blob)
    if plan.config.plots:
        stage_figures(run, report, weights if weights is not None else done.x, done.theta)
    run.commit(report, delete=(CHECKPOINT,))  # a committed run leaves nothing to resume
    return read_run(plan.config.out)


# -- the front door -----------------------------------------------------------------------

def compress(
    model: nn.Module,
    train_loader: Iterable[Any],
    *,
    loss: Callable[..., torch.Tensor] | None = None,
    method: str | None = None,
    prune: float | None = None,
    quantize: int | None = None,
    budget_ratio: float | None = None,
    budget_bits: float | None = None,
    compression: Compression | None = None,
    test_loader: Iterable[Any] | None = None,
    val_loader: Iterable[Any] | None = None,
    evaluate: Callable[[nn.Module], float] | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    config: JobConfig | None = None,
    on_event: Event | None = None,
    stop: Callable[[], Any] | None = None,
    on_checkpoint: Callable[[Any, dict[str, Any]], None] | None = None,
    resume: str | os.PathLike[str] | None = None,
    **options: Any,
) -> CompressionResult:
    """Compress the weights of `model` with a constrained-optimization method, in place.

    The model as given is the reference. Its Conv/Linear weights (or the parameters chosen
    by `include`/`exclude` globs) are compressed by the method's coordinator (LC, ADMM, SLR,
    APGDSSM: ``method``), whose L steps train the whole model on `train_loader` with `loss`;
    at the end Δ(Θ) is written into the model.

    Parameters
    ----------
    model : torch.nn.Module, on the device to train on; modified in place.
    train_loader : iterable of (inputs, targets) minibatches, re-iterable (one pass per
        epoch), e.g. a :class:`~torch.utils.data.DataLoader`; its ``dataset`` must be
        indexable (the first 2048 examples are the fixed subset L(w) is evaluated on).
    loss : callable(outputs, targets) -> 0-d tensor, mean-reduced; default cross-entropy.
    method : "lc" (default; "admm" when a budget is given), "admm", "slr" or "apgdssm".
    prune : fraction of the compressed weights kept (global ℓ0), in (0, 1].
    quantize : K >= 2, a K-entry codebook per tensor (⌈log₂ K⌉ bits per weight).
        With neither (and a method that prunes), ``prune=0.1``.
    budget_ratio, budget_bits : the joint sparsity-quantization ADMM (``method="admm"``)
        under the budget S = 32·n/R bits, or S bits.
    compression : a :class:`~compressopt.projections.Compression` to use instead of the one
        `prune`/`quantize` describe (LC and ADMM).
    test_loader : (inputs, labels) minibatches: the accuracy of the reference, of every
        iteration's output point and of the result is measured on them.
    val_loader : validation minibatches, scored the same way (``val_accuracy``); the stop
        rule ``target_accuracy=A`` reads them.
    evaluate : callable(model) -> float, a score to record instead of the accuracy; called
        with the point to score written into the model (restored after).
    epochs, steps : L-step epochs per iteration and coordinator iterations (defaults: 2 and
        30; the first L step trains twice `epochs`).
    include, exclude : glob patterns of parameter names to compress / leave out.
    out : a directory to write the run into (``report.json`` last, ``config.toml``, the
        compressed model), as one transaction; None (default) writes nothing. While the run
        is in progress, ``out/checkpoint.safetensors`` holds its state after every
        iteration (``checkpoint_every=S``: at most every S seconds), removed at the end.
    overwrite : replace a run already in `out`, or the checkpoint of an interrupted one
        (otherwise refused).
    callback : callable(record), called after every iteration with its record (the report's
        ``iterations`` entry); raising StopIteration ends the coordinator early.
    config : a :class:`~compressopt.options.JobConfig` to start from (the keywords given
        override it).
    on_event : callable(kind, info), progress events (see
        :func:`compressopt.dnn.job.run_job`).
    stop : callable() -> truthy to stop; checked at every epoch and iteration boundary.
    on_checkpoint : callable(state, record), called after every iteration, once its
        checkpoint is saved.
    resume : a folder holding the checkpoint of an interrupted run of this call (same
        model class, loaders and options): continue it there (`out` defaults to it). The
        model's weights and the loaders' random state are replaced by the checkpoint's;
        the options given must not contradict its (CheckpointError). The result is the
        uninterrupted run's.
    **options : any other option of :class:`~compressopt.options.JobConfig` (``lstep_lr``,
        ``mu0``, ``momentum``, ``distill``, ...) or of the method (``rho``, ``s0``,
        ``bits``, ...), by its field name.

    Returns
    -------
    CompressionResult
        ``(model, x, theta, report, result, compression, config)``.

    Raises
    ------
    ConfigError
        An option out of range, unknown, or of another method (before any training).
    ResourceLimitError
        The C step would need more memory than is available.
    OutputError
        `out` cannot be used (empty, not writable, holding another run without `overwrite`).
    JobStopped
        ``stop()`` returned a value; `out` is left as it was, but for the checkpoint (then
        ``resume=out`` continues the run).
    CheckpointError
        `resume` holds no checkpoint, an unreadable one, the checkpoint of a finished run,
        or options contradict the checkpoint's.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> torch.manual_seed(0) and None
    >>> x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    >>> net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> r = compress(net, DataLoader(TensorDataset(x, y), batch_size=32), prune=0.25, steps=2)
    >>> r.report["nonzero_fraction"], sum(int((net[i].weight != 0).sum()) for i in (0, 2))
    (0.25, 16)
    """
    t_start = time.perf_counter()
    if method is None and config is None and (budget_ratio, budget_bits) != (None, None):
        method = "admm"  # a budget is the joint ADMM's
    keywords = dict(method=method, prune=prune, quantize=quantize, budget_ratio=budget_ratio,
                    budget_bits=budget_bits, epochs=epochs, steps=steps,
                    include=(include,) if isinstance(include, str) else include,
                    exclude=(exclude,) if isinstance(exclude, str) else exclude,
                    out=None if out is None else os.fspath(out))
    given = {k: v for k, v in {**keywords, **options}.items() if v is not None}
    if config is None:
        first = next(model.parameters(), None)
        base: dict[str, Any] = {"model": type(model).__name__, "dataset": "custom",
                                "device": str(first.device if first is not None else "cpu")}
    else:
        base = config.to_settings()
    if compression is not None and any(v is not None for v in (prune, quantize, budget_ratio,
                                                                 budget_bits)):
        raise ConfigError("compression= replaces prune, quantize, budget_ratio and "
                          "budget_bits: give one or the other")
    ckpt = None
    if resume is not None:  # the checkpoint's settings; those given must agree
        ckpt = read_checkpoint(resume)
        if ckpt.phase != "solve":
            raise CheckpointError(f"--resume {os.fspath(resume)}: the checkpoint is of a "
                                  "command line's reference training: resume it with "
                                  f"compressopt compress --resume {os.fspath(resume)}")
        settings = resumed_settings(ckpt, {**base, **given}, os.fspath(resume))
        cfg = JobConfig.from_settings(settings).resolved()
        overwrite = bool(ckpt.facts.get("overwrite", False))
    else:
        cfg = JobConfig.from_settings({**base, **given}).resolved()
    if cfg.target_accuracy is not None and val_loader is None:
        raise ConfigError("target_accuracy needs validation data (val_loader): a stop rule "
                          "is not tuned on the test set")
    plan = prepare(model, cfg, compression)
    run = checkpoints = None
    if cfg.out is not None:
        if ckpt is None:
            check_fresh_out(cfg.out, overwrite)
        run = RunOutput.open(cfg.out, overwrite=overwrite,
                             run_id=None if ckpt is None else ckpt.run_id)
        checkpoints = Checkpointer(run.path, run.run_id, cfg.to_settings(),
                                   every=cfg.checkpoint_every, resumed=ckpt is not None,
                                   facts={"overwrite": overwrite, "world_size": 1})
    try:
        result = compress_prepared(
            plan, model, train_loader, loss=loss, test_loader=test_loader,
            val_loader=val_loader, evaluate=evaluate, callback=callback, on_event=on_event,
            stop=stop, on_checkpoint=on_checkpoint, run=run, t_start=t_start,
            checkpoints=checkpoints, resume=ckpt)
    except BaseException as e:
        interrupted(e, run, checkpoints)
        raise
    return result


def interrupted(e: BaseException, run: RunOutput | None, checkpoints: Checkpointer | None,
                ) -> None:
    """After a failure or a stop of the job: write the checkpoint kept in memory (one not
    yet due under ``checkpoint_every``), tell a :class:`JobStopped` or KeyboardInterrupt
    where the checkpoint is (its ``checkpoint`` attribute), remove the files staged in OUT.
    A :class:`~compressopt.errors.NonFiniteError` (the training diverged) removes the
    checkpoint instead: resuming would replay the same divergence."""
    if checkpoints is not None and isinstance(e, NonFiniteError):
        checkpoints.remove()  # the run diverged: resuming would replay the divergence
    elif checkpoints is not None:
        checkpoints.flush(quiet=isinstance(e, OutputError))
        if isinstance(e, KeyboardInterrupt) and checkpoints.written:
            e.checkpoint = str(checkpoints.path)  # type: ignore[attr-defined]
    if run is not None:
        run.abort()


def compress_prepared(
    plan: Plan, model: nn.Module, train_loader: Iterable[Any], *,
    loss: Callable[..., torch.Tensor] | None = None, test_loader: Iterable[Any] | None = None,
    val_loader: Iterable[Any] | None = None,
    evaluate: Callable[[nn.Module], float] | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None, on_event: Event | None = None,
    stop: Callable[[], Any] | None = None,
    on_checkpoint: Callable[[Any, dict[str, Any]], None] | None = None,
    run: RunOutput | None = None, t_start: float | None = None,
    reference_accuracy: float | None = None, reference_seconds: float = 0.0,
    pretrain_epochs: int = 0, metadata: Mapping[str, Any] | None = None,
    train_model: nn.Module | None = None, checkpoints: Checkpointer | None = None,
    resume: Checkpoint | None = None,
) -> CompressionResult:
    """Steps 2-5 of :func:`compress` after :func:`prepare` (what
    :func:`~compressopt.dnn.job.run_job` calls after training its reference): score the
    reference (unless its `reference_accuracy` is given), :func:`solve`, :func:`finish`,
    report, :func:`write` into `run` if given (`metadata`: facts for the compressed file's
    header, e.g. the input shape and classes that rebuild the model; `train_model`: the
    model's DDP wrapper under ``torch.distributed``, for the L steps), then remove the
    checkpoint `checkpoints` saved. With `resume` (a solve-phase checkpoint), the model
    is first set to the checkpoint's reference, and :func:`solve` continues the run."""
    t_start = time.perf_counter() if t_start is None else t_start
    cfg = plan.config
    emit = _Events(on_event, stop)
    if resume is not None:
        try:
            model.load_state_dict(resume.tree["reference"])
        except RuntimeError as e:
            raise CheckpointError(f"{resume.path} does not fit the model: "
                                  f"{str(e).strip().splitlines()[0]}") from e
    emit.check()
    score = _scorer(model, plan.params, test_loader, evaluate)
    val_score = None if val_loader is None else _scorer(model, plan.params, val_loader, None)
    ref = score(None) if reference_accuracy is None else reference_accuracy
    validation = None if val_score is None else {"reference_val_accuracy": val_score(None)}
    t_comp = time.perf_counter()
    solved = solve(plan, model, loss or nn.CrossEntropyLoss(), train_loader, score, emit,
                   callback=callback, on_checkpoint=on_checkpoint, val_score=val_score,
                   train_model=train_model, checkpoints=checkpoints,
                   resume=None if resume is None else resume.tree)
    done = finish(plan, solved, score)
    if validation is not None and val_score is not None:
        validation["val_accuracy"] = val_score(None)
    compress_seconds = time.perf_counter() - t_comp
    report = build_report(
        plan, solved, done, model_name=cfg.model, dataset=cfg.dataset, reference_accuracy=ref,
        pretrain_epochs=pretrain_epochs, device=next(model.parameters()).device,
        validation=validation,
        seconds={"wall_seconds": time.perf_counter() - t_start,
                 "reference_seconds": reference_seconds, "compress_seconds": compress_seconds})
    emit.check("finish")
    if run is not None:
        w_last = getattr(solved.result.state, "w", None)  # the uncompressed weights
        report = write(run, report, model, plan, done, metadata, w_last)
    if checkpoints is not None:  # the commit deleted the file; drop the pending state too
        checkpoints.remove()
    if on_event is not None:
        on_event("done", {"report": report})
    logger.info("%s %s %s: accuracy %s (reference %s), ratio %s, %.1f s", cfg.model, cfg.dataset,
                cfg.method, report["accuracy"], report["reference_accuracy"],
                report["compression_ratio"], report["wall_seconds"])
    return CompressionResult(model, done.x, done.theta, report, solved.result,
                             plan.compression, cfg)
