"""The main job: train (or load) a reference model, compress it, report.

:func:`run_job` is what ``compressopt compress`` runs; :class:`JobConfig` holds its settings,
with per-data-set defaults (:data:`DEFAULTS`) filled in by :meth:`JobConfig.resolved`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compressopt.dnn.data import load_dataset, make_loader
from compressopt.dnn.distill import Distillation
from compressopt.dnn.methods import METHODS
from compressopt.dnn.models import MODELS, build_model
from compressopt.dnn.oracle import LStepSchedule, TorchOracle
from compressopt.dnn.params import read_parameters, select_parameters, write_parameters
from compressopt.dnn.train import cosine_lr, evaluate, train
from compressopt.errors import DataError, ShapeMismatchError
from compressopt.projections import summarize

__all__ = ["DEFAULTS", "JobConfig", "TrainingDefaults", "layer_table", "run_job"]

logger = logging.getLogger("compressopt.dnn")

Event = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True)
class TrainingDefaults:
    """Per data set (and model) training settings of the main job.

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


#: (data set, model) -> defaults; the model key "*" applies to any model
DEFAULTS: dict[tuple[str, str], TrainingDefaults] = {
    ("digits", "*"): TrainingDefaults(
        pretrain_epochs=40, lr=0.05, batch_size=64, epochs=2, first_epochs=4, lstep_lr=0.05,
        lr_decay=0.98, steps=30, mu0=1e-3, mu_growth=1.2, prune=0.1,
    ),
    ("mnist", "lenet300"): TrainingDefaults(
        pretrain_epochs=40, lr=0.1, batch_size=128, epochs=6, first_epochs=12, lstep_lr=0.1,
        lr_decay=0.98, steps=40, mu0=9.76e-5, mu_growth=1.2,
    ),
    ("mnist", "lenet5"): TrainingDefaults(
        pretrain_epochs=15, lr=0.01, batch_size=128, epochs=2, first_epochs=4, lstep_lr=0.01,
        lr_decay=0.98, steps=20, mu0=9.76e-5, mu_growth=1.45,
    ),
}


def defaults_for(dataset: str, model: str) -> TrainingDefaults:
    """The :data:`DEFAULTS` entry of (`dataset`, `model`), else of (`dataset`, "*")."""
    for key in ((dataset, model), (dataset, "*")):
        if key in DEFAULTS:
            return DEFAULTS[key]
    raise ValueError(f"no training defaults for data set {dataset!r} and model {model!r}")


@dataclass(frozen=True)
class JobConfig:
    """Settings of one ``compressopt compress`` run; ``None`` means the data set's default.

    Attributes
    ----------
    model : "lenet300" or "lenet5".
    dataset : "digits" or "mnist"; data_dir : the MNIST directory.
    method : a key of :data:`~compressopt.dnn.methods.METHODS`.
    prune : fraction of compressed weights kept, in (0, 1]; quantize : codebook size K >= 2.
    epochs : L-step epochs; pretrain_epochs : reference epochs; steps : penalty values.
    mu0, mu_growth : μ_k = mu0 · mu_growth^k; lr, lstep_lr, lr_decay, batch_size : see
        :class:`TrainingDefaults`.
    seed : seeds the initialization and the minibatch order.
    out : directory of ``report.json`` (created); None writes nothing.
    reference : a ``state_dict`` file (``torch.save``) of the reference model to load
        instead of training one.
    include, exclude : parameter name patterns (:func:`~compressopt.dnn.params.select_parameters`).
    device : torch device, e.g. "cpu" or "cuda".
    momentum : of the L steps' SGD, default 0.9; nesterov : Nesterov momentum (default) or
        heavy-ball (False, as Yang et al.'s code); weight_decay : their weight decay
        (an ℓ2 term of L on all parameters), default 0.
    lr_schedule : "exp" (η0·lr_decay^k) or "cos" (a cosine over the L steps after the warm-up;
        lr_decay then defaults to 1); warmup : L steps of linear warm-up (default 0).
    keep_momentum : carry the optimizer's momentum across L steps instead of clearing it.
    distill : temperature T of knowledge distillation from the reference
        (:class:`~compressopt.dnn.distill.Distillation`, weight T) added to L; 0 (default)
        trains on the labels alone. distill_phase : where: "all" (default) the L steps and
        the method's final retraining or fine-tuning, "finish" the latter only.
    options : method-specific options (from the method's ``add_arguments``).
    """

    model: str = "lenet300"
    dataset: str = "digits"
    data_dir: str | None = None
    method: str = "lc"
    prune: float | None = None
    quantize: int | None = None
    epochs: int | None = None
    first_epochs: int | None = None
    pretrain_epochs: int | None = None
    steps: int | None = None
    mu0: float | None = None
    mu_growth: float | None = None
    lr: float | None = None
    lstep_lr: float | None = None
    lr_decay: float | None = None
    batch_size: int | None = None
    seed: int = 0
    out: str | None = None
    reference: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    device: str = "cpu"
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "exp"
    warmup: int = 0
    keep_momentum: bool = False
    nesterov: bool = True
    distill: float = 0.0
    distill_phase: str = "all"
    options: Mapping[str, Any] = field(default_factory=dict)

    def resolved(self) -> JobConfig:
        """A copy with every ``None`` setting taken from :func:`defaults_for`, validated.

        Raises
        ------
        ValueError
            Unknown model, data set or method; KEEP outside (0, 1]; K < 2; a non-positive
            count, rate or penalty; mu_growth < 1; a device that is malformed or absent.
        """
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {sorted(MODELS)}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {sorted(METHODS)}")
        d = defaults_for(self.dataset, self.model)
        fill = {
            f.name: getattr(d, f.name)
            for f in dataclasses.fields(d)
            if f.name != "prune" and getattr(self, f.name) is None
        }
        if self.prune is None and self.quantize is None and METHODS[self.method].prunes(self):
            fill["prune"] = d.prune
        if self.lr_schedule == "cos" and self.lr_decay is None:
            fill["lr_decay"] = 1.0  # the cosine alone
        if self.first_epochs is None and self.epochs is not None:
            fill["first_epochs"] = 2 * self.epochs  # the first L step trains twice as long
        c = dataclasses.replace(self, **fill)
        if c.prune is not None and not 0.0 < c.prune <= 1.0:
            raise ValueError(f"--prune KEEP must be in (0, 1], got {c.prune}")
        if c.quantize is not None and c.quantize < 2:
            raise ValueError(f"--quantize K must be >= 2, got {c.quantize}")
        for name in ("epochs", "first_epochs", "steps", "batch_size"):
            if getattr(c, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(c, name)}")
        if c.pretrain_epochs < 0:
            raise ValueError(f"--pretrain-epochs must be >= 0, got {c.pretrain_epochs}")
        for name in ("mu0", "lr", "lstep_lr"):
            v = getattr(c, name)
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {v}")
        if not c.mu_growth >= 1.0:
            raise ValueError(f"--mu-growth must be >= 1, got {c.mu_growth}")
        if not 0.0 < c.lr_decay <= 1.0:
            raise ValueError(f"--lr-decay must be in (0, 1], got {c.lr_decay}")
        if not 0.0 <= c.momentum < 1.0:
            raise ValueError(f"--momentum must be in [0, 1), got {c.momentum}")
        if not (c.weight_decay >= 0.0 and math.isfinite(c.weight_decay)):
            raise ValueError(f"--weight-decay must be >= 0, got {c.weight_decay}")
        if not (c.distill >= 0.0 and math.isfinite(c.distill)):
            raise ValueError(f"--distill must be >= 0, got {c.distill}")
        if c.distill_phase not in ("all", "finish"):
            raise ValueError(
                f"--distill-phase must be 'all' or 'finish', got {c.distill_phase!r}"
            )
        if c.lr_schedule not in ("exp", "cos"):
            raise ValueError(f"--lr-schedule must be 'exp' or 'cos', got {c.lr_schedule!r}")
        if not 0 <= c.warmup < c.steps:
            raise ValueError(f"--warmup must be in [0, steps), got {c.warmup}")
        _check_device(c.device)
        return c

    @property
    def mus(self) -> tuple[float, ...]:
        """The penalty schedule μ_k = mu0 · mu_growth^k, k = 0..steps-1 (after :meth:`resolved`)."""
        return tuple(self.mu0 * self.mu_growth**k for k in range(self.steps))  # type: ignore[operator]


def lstep_optimizer(model: nn.Module, lr: float, momentum: float = 0.9,
                    weight_decay: float = 0.0, nesterov: bool = True) -> torch.optim.SGD:
    """The L steps' optimizer of the job: SGD over all of `model`'s parameters, Nesterov
    momentum (heavy-ball with ``nesterov=False``; plain SGD when `momentum` is 0), weight
    decay as an ℓ2 term on every parameter.

    On a quadratic of curvature λ, heavy-ball momentum β is stable for ηλ < 2(1 + β) and
    Nesterov's for ηλ < 2(1 + β)/(1 + 2β): at β = 0.93 the heavy-ball bound is 2.9× larger.
    """
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                           nesterov=nesterov and momentum > 0, weight_decay=weight_decay)


def _check_device(name: str) -> None:
    """Raise ValueError unless `name` is a torch device this process can use."""
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device: not a torch device: {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available")


def _load_reference(model: nn.Module, path: str) -> None:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"reference model file not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except RuntimeError as e:  # wrong keys or shapes; torch's message spans many lines
        first = str(e).strip().splitlines()[0]
        raise ShapeMismatchError(f"{p} does not fit the model: {first}") from e
    except Exception as e:  # not a torch file at all
        raise DataError(f"{p}: not a readable state_dict ({type(e).__name__}: {e})") from e


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


def run_job(config: JobConfig, *, on_event: Event | None = None) -> dict[str, Any]:
    """Train or load the reference, compress it with ``config.method``, evaluate, report.

    Steps: load the data set; seed torch with ``config.seed``; build the model; load
    ``config.reference`` or train ``pretrain_epochs`` epochs; run the method's coordinator
    from the reference weights with a :class:`~compressopt.dnn.oracle.TorchOracle` (a test
    accuracy of Δ(Θ) is recorded after every iteration); write Δ(Θ) into the model; evaluate.

    Parameters
    ----------
    config : JobConfig (resolved here).
    on_event : callable(kind, info), optional
        Progress events: ``"data"``, ``"reference_start"`` {epochs}, ``"reference_epoch"``
        {epoch, loss}, ``"reference_done"`` {accuracy, seconds}, ``"compress_start"``
        {steps, method, epochs, first_epochs}, ``"lstep_epoch"`` {step, epoch, loss},
        ``"step"`` (one iteration's record), ``"done"`` {report}.

    Returns
    -------
    dict
        The report (also written to ``OUT/report.json`` when ``config.out`` is set): model,
        dataset, method, seed, epochs, reference_accuracy, accuracy, accuracy_drop (fractions
        in [0, 1] on the test split), compression_ratio = 32·Σnumel / Σ(bits·nonzeros),
        nonzero_fraction, average_bits = Σ(bits·nonzeros)/Σnonzeros, weight_bits,
        overhead_bits, wall_seconds, layers (:func:`layer_table`), iterations (one record
        per coordinator iteration, with ``test_accuracy`` of the coordinator's output point
        and, when the method's option ``eval_projected`` is set (``--eval-projected`` of
        ``--method admm``), ``projected_test_accuracy`` of Π(W), the constraint set's
        projection of the current W), diagnostics (the method's), config.

    Raises
    ------
    ValueError
        Bad settings (see :meth:`JobConfig.resolved`).
    DataError
        Missing or malformed data or reference file.
    ShapeMismatchError
        The reference file does not fit the model.
    """
    t_start = time.perf_counter()
    cfg = config.resolved()
    emit = on_event or (lambda kind, info: None)
    device = torch.device(cfg.device)
    data = load_dataset(cfg.dataset, cfg.data_dir)
    emit("data", {"name": data.name, "train": data.x_train.shape[0], "test": data.x_test.shape[0]})
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes).to(device)
    loss_fn = nn.CrossEntropyLoss()
    # Settings that can fail are checked before the reference is trained.
    params = select_parameters(model, cfg.include or None, cfg.exclude or None)
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    method = METHODS[cfg.method]
    solver, compression = method.build(cfg, shapes)
    if cfg.distill > 0 and cfg.distill_phase == "finish" and method.finish is None:
        raise ValueError(f"--distill-phase finish: --method {cfg.method} has no final "
                         "retraining or fine-tuning to distil")

    t_ref = time.perf_counter()
    if cfg.reference is not None:
        _load_reference(model, cfg.reference)
        model.to(device)
    else:
        emit("reference_start", {"epochs": cfg.pretrain_epochs})
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True)
        loader = make_loader(
            data.x_train, data.y_train, cfg.batch_size, shuffle=True, seed=cfg.seed
        )
        train(
            model, loss_fn, loader, opt, cfg.pretrain_epochs,
            lr=cosine_lr(cfg.lr, cfg.pretrain_epochs),
            on_epoch=lambda e, loss: emit("reference_epoch", {"epoch": e, "loss": loss}),
        )
    ref_seconds = time.perf_counter() - t_ref
    _, ref_acc = evaluate(model, data.x_test, data.y_test)
    emit("reference_done", {"accuracy": ref_acc, "seconds": ref_seconds})
    out = Path(cfg.out) if cfg.out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if cfg.reference is None:
            torch.save(model.state_dict(), out / "reference.pt")

    # The coordinator over the selected weights; biases are trained inside the L steps.
    t_comp = time.perf_counter()
    # a frozen copy of the reference as the teacher (the model itself is compressed)
    distill = Distillation(copy.deepcopy(model), cfg.distill) if cfg.distill > 0 else None
    oracle = TorchOracle(
        model, loss_fn,
        make_loader(data.x_train, data.y_train, cfg.batch_size, shuffle=True, seed=cfg.seed + 1),
        lstep_optimizer(model, cfg.lstep_lr, cfg.momentum, cfg.weight_decay, cfg.nesterov),
        params=params,
        schedule=LStepSchedule(
            epochs=cfg.epochs, first_epochs=cfg.first_epochs, lr_decay=cfg.lr_decay,
            reset_momentum=not cfg.keep_momentum, warmup=cfg.warmup,
            cosine=cfg.steps - cfg.warmup if cfg.lr_schedule == "cos" else None,
        ),
        on_epoch=lambda k, e, loss: emit("lstep_epoch", {"step": k, "epoch": e, "loss": loss}),
        distill=distill if cfg.distill_phase == "all" else None,
    )
    run_oracle: Any = oracle
    if method.adapt is not None:  # e.g. minibatch gradients for a gradient-step coordinator
        solver, run_oracle = method.adapt(solver, oracle, cfg)
    iterations: list[dict[str, Any]] = []

    def callback(state: Any, record: Any) -> None:
        # the point the coordinator would return now: Δ(Θ) for LC/ADMM, the hard-pruned W
        # for SLR, W quantized with V's widths for the joint ADMM, u = Proj_Q(w) for APGDSSM
        x_now, _ = solver.output(state, compression)
        _, acc = evaluate(model, data.x_test, data.y_test, params=x_now)
        rec = {
            k: v for k, v in record._asdict().items()
            if not (isinstance(v, float) and math.isnan(v))  # L(w) is not evaluated
        }
        if cfg.options.get("eval_projected"):  # Π(W): W projected without the dual
            hard = compression.decompress(compression.compress(state.w))
            _, rec["projected_test_accuracy"] = evaluate(
                model, data.x_test, data.y_test, params=hard
            )
        rec.update(
            test_accuracy=acc,
            train_loss=oracle.lstep_losses[-1] if oracle.lstep_losses else None,
            lr=oracle.optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - t_comp,
        )
        iterations.append(rec)
        logger.info("iteration %d: test accuracy %.4f, lr %.4g", len(iterations), acc, rec["lr"])
        emit("step", rec)

    emit("compress_start", {
        "steps": len(cfg.mus), "method": cfg.method, "epochs": cfg.epochs,
        "first_epochs": cfg.first_epochs,
    })
    result = solver.run(read_parameters(params), run_oracle, compression, callback=callback)
    x, theta, extra = result.x, result.theta, {}
    if method.finish is not None:  # e.g. masked retraining after hard pruning
        _, extra["accuracy_before_finish"] = evaluate(
            model, data.x_test, data.y_test, params=result.x
        )
        oracle.distill = distill
        x, more = method.finish(solver, result, oracle, compression, cfg)
        extra.update(more)
        theta = compression.compress(x) if x is not result.x else theta
        x = compression.decompress(theta)
    write_parameters(params, x)  # the compressed weights into the model (documented)
    compress_seconds = time.perf_counter() - t_comp
    _, acc = evaluate(model, data.x_test, data.y_test)

    costs = compression.cost(theta)
    s = summarize(costs)
    report: dict[str, Any] = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "method": cfg.method,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "pretrain_epochs": cfg.pretrain_epochs if cfg.reference is None else 0,
        "prune": cfg.prune,
        "quantize": cfg.quantize,
        "reference_accuracy": ref_acc,
        "accuracy": acc,
        "accuracy_drop": ref_acc - acc,
        "compression_ratio": s.compression_ratio,
        "nonzero_fraction": s.nonzero_fraction,
        "average_bits": s.average_bits,
        "weight_bits": s.weight_bits,
        "overhead_bits": s.overhead_bits,
        "compressed_numel": s.numel,
        "compressed_nonzeros": s.nnz,
        "wall_seconds": time.perf_counter() - t_start,
        "reference_seconds": ref_seconds,
        "compress_seconds": compress_seconds,
        "layers": layer_table(costs, shapes),
        "iterations": iterations,
        "diagnostics": {**method.diagnostics(result), **extra},
        "message": result.message,
        "config": {
            **{k: v for k, v in dataclasses.asdict(cfg).items() if k != "options"},
            "options": dict(cfg.options),
            "mus": list(cfg.mus),
        },
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        },
    }
    if out is not None:
        (out / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
        torch.save(model.state_dict(), out / "compressed.pt")
    emit("done", {"report": report})
    logger.info(
        "%s %s %s: accuracy %.4f (reference %.4f), ratio %.2f, %.1f s",
        cfg.model, cfg.dataset, cfg.method, acc, ref_acc, s.compression_ratio,
        report["wall_seconds"],
    )
    return report
