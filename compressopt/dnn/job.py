"""The command line's job: load the data and the model a config names, train (or load) the
reference, then :func:`~compressopt.dnn.api.compress` it.

:func:`run_job` is what ``compressopt compress`` runs. Its steps are :func:`load`, then
:func:`~compressopt.dnn.api.prepare` (every check before training; OUT probed by
:meth:`RunOutput.open <compressopt.storage.atomic.RunOutput.open>`), :func:`reference`, and
the steps of :func:`~compressopt.dnn.api.compress_prepared` (solve, finish, write).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from compressopt.dnn import distributed
from compressopt.dnn.api import (
    CompressionResult,
    Event,
    _Events,
    check_device,
    compress_prepared,
    interrupted,
    prepare,
    state_bytes,
)
from compressopt.dnn.checkpoint import (
    Checkpoint,
    Checkpointer,
    check_fresh_out,
    loader_state,
    module_state,
    rng_state,
    set_loader_state,
    set_rng_state,
)
from compressopt.dnn.data import DATASETS, Splits, check_splits, load_dataset, make_loader
from compressopt.dnn.models import INPUT_SIZES, build_model
from compressopt.dnn.train import batch_len, cosine_lr, evaluate, to_device, train
from compressopt.dnn.user import build_user_model, is_factory_spec, load_user_dataset
from compressopt.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    NonFiniteError,
    OutputError,
    ShapeMismatchError,
)
from compressopt.options import JobConfig
from compressopt.storage.atomic import RunOutput

__all__ = ["load", "load_reference", "reference", "resumed_reference", "run", "run_job"]

#: the test split is scored in batches of this size (as :func:`~compressopt.dnn.train.evaluate`)
EVAL_BATCH = 4096


class Loaded(NamedTuple):
    """The result of :func:`load`."""

    data: Splits
    model: nn.Module


def load(config: JobConfig, emit: Event) -> Loaded:
    """Step: the data set and the model of `config` (resolved), the model seeded with
    ``config.seed`` and on ``config.device``.

    The data set is a built-in one (``digits``, ``mnist`` from ``data_dir``; padded to the
    model's input size, e.g. 32×32 for ResNet-20) or the user's (``file.npz`` or
    ``module:factory``, :func:`~compressopt.dnn.user.load_user_dataset`); the model a
    built-in one (:func:`~compressopt.dnn.models.build_model`) or the user's factory
    (``file.py:factory``, :func:`~compressopt.dnn.user.build_user_model`), sized for the
    data. Both splits are checked (:func:`~compressopt.dnn.data.check_splits`: non-empty,
    labels in range, finite inputs) before anything trains.
    """
    if config.dataset in DATASETS:
        data = load_dataset(config.dataset, config.data_dir, size=INPUT_SIZES.get(config.model))
    else:
        data = load_user_dataset(config.dataset)
    data = check_splits(data)
    emit("data", {"name": data.name, "train": data.y_train.shape[0],
                  "test": data.y_test.shape[0]})
    torch.manual_seed(config.seed)
    build = build_user_model if is_factory_spec(config.model) else build_model
    model = build(config.model, data.input_shape, data.num_classes, vocab_size=data.vocab_size)
    model = model.to(torch.device(config.device))
    check_forward(model, data, config.model)
    return Loaded(data, model)


@torch.no_grad()
def check_forward(model: nn.Module, data: Splits, name: str) -> None:
    """One forward pass of two training examples (eval mode, restored after): the model
    must accept the data's inputs and give one score per class, before anything trains.

    Raises
    ------
    ShapeMismatchError
        The forward pass fails (e.g. a first layer sized for other inputs), or the output
        is not ``(examples, num_classes)``.
    """
    x = data.x_train
    sample = x[:2] if isinstance(x, torch.Tensor) else tuple(t[:2] for t in x)
    was = model.training
    model.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        out = model(to_device(sample, device))
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ShapeMismatchError(f"the model {name} does not accept the inputs of "
                                 f"{data.name} (shape {tuple(data.input_shape)}): "
                                 f"{first}") from e
    finally:
        model.train(was)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (batch_len(sample),
                                                                 data.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeMismatchError(f"the model {name} gives outputs of shape {got} for a batch "
                                 f"of {data.name}; expected (batch, {data.num_classes}): one "
                                 "score per class")


def load_reference(model: nn.Module, path: str) -> None:
    """Load the reference weights at `path` into `model`: a ``.safetensors`` file, or a
    torch ``state_dict`` of plain tensors (read with ``weights_only=True``; any other
    object in the file is refused).

    Raises
    ------
    DataError
        The file is missing or is neither kind of file, or a tensor holds NaN or Inf.
    ShapeMismatchError
        Its tensors do not fit the model (names or shapes).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"reference model file not found: {p}")
    with open(p, "rb") as f:
        head = f.read(9)
    try:
        if p.suffix == ".safetensors" or (len(head) == 9 and head[8:9] == b"{"):
            state = load_file(p)
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except (SafetensorError, Exception) as e:  # torch's own message may suggest unsafe loading
        raise DataError(f"{p}: not a readable reference model: expected a .safetensors file "
                        f"or a torch state_dict of plain tensors ({type(e).__name__})") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor)
                                                 for v in state.values()):
        raise DataError(f"{p}: not a state_dict (a mapping of names to tensors)")
    bad = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise DataError(f"{p}: {bad[0]} holds NaN or Inf values (a diverged training?)")
    device = next(model.parameters()).device
    try:
        model.load_state_dict({k: v.to(device) for k, v in state.items()})
    except RuntimeError as e:  # wrong keys or shapes; torch's message spans many lines
        first = str(e).strip().splitlines()[0]
        raise ShapeMismatchError(f"{p} does not fit the model: {first}") from e


class Reference(NamedTuple):
    """The result of :func:`reference`."""

    accuracy: float
    seconds: float


def reference(config: JobConfig, loaded: Loaded, emit: Event,
              trained: nn.Module | None = None, shard: Mapping[str, int] | None = None, *,
              checkpoints: Checkpointer | None = None, resume: Checkpoint | None = None,
              ) -> Reference:
    """Step: train the model ``pretrain_epochs`` epochs (SGD, Nesterov momentum 0.9, cosine
    learning rate from ``lr``), unless ``config.reference`` is set: then the model already
    holds it (:func:`run` loads it with :func:`load_reference` before opening OUT, so a bad
    file is refused before anything is written); its test accuracy.
    Under ``torch.distributed``, `trained` is the model's DDP wrapper and `shard` this rank's
    part of the data (``rank``, ``world_size`` of :func:`make_loader`).

    The training saves a checkpoint after every epoch (`checkpoints`: the epochs done, the
    model, the optimizer, the loader's and the process's random states), and with `resume`
    (a reference-phase checkpoint) continues from it.
    A resumed solve-phase run does not train: :func:`resumed_reference`."""
    t = time.perf_counter()
    model, data = loaded.model, loaded.data
    if config.reference is None:
        opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True)
        loader = make_loader(data.x_train, data.y_train, config.batch_size, shuffle=True,
                             seed=config.seed, **(shard or {}))
        start = 0
        if resume is not None:
            tree = resume.tree
            try:
                model.load_state_dict(tree["model"])
                opt.load_state_dict(tree["optimizer"])
            except (RuntimeError, ValueError) as e:
                raise CheckpointError(f"{resume.path} does not fit the model: "
                                      f"{str(e).strip().splitlines()[0]}") from e
            set_loader_state(loader, tree["loader"])
            start, t = tree["epoch"], t - tree["seconds"]
        emit("reference_start", {"epochs": config.pretrain_epochs})

        def on_epoch(e: int, loss: float) -> None:
            if checkpoints is not None:
                checkpoints.save("reference", lambda: {
                    "epoch": e + 1, "seconds": time.perf_counter() - t,
                    "model": module_state(model), "optimizer": opt.state_dict(),
                    "loader": loader_state(loader), "rng": rng_state()},
                    f"after reference epoch {e + 1}")
            emit("reference_epoch", {"epoch": e, "loss": loss})

        lr = cosine_lr(config.lr, config.pretrain_epochs)
        if resume is not None:
            set_rng_state(resume.tree["rng"])  # last: as after the checkpoint's epoch
        try:
            train(trained or model, nn.CrossEntropyLoss(), loader, opt,
                  config.pretrain_epochs - start, lr=lambda e: lr(e + start),
                  on_epoch=lambda e, loss: on_epoch(e + start, loss))
        except NonFiniteError as e:  # "training diverged in epoch ...; lower ... (--lr)"
            raise NonFiniteError(f"the reference {e}") from e
        bad = [n for n, p in model.named_parameters() if not p.isfinite().all()]
        if bad:
            raise NonFiniteError(f"the reference training diverged: {bad[0]} holds NaN or Inf "
                                 f"after {config.pretrain_epochs} epochs; lower --lr (now "
                                 f"{config.lr:g})")
    seconds = time.perf_counter() - t
    _, acc = evaluate(model, data.x_test, data.y_test)
    emit("reference_done", {"accuracy": acc, "seconds": seconds})
    return Reference(acc, seconds)


def resumed_reference(loaded: Loaded, emit: Event, resume: Checkpoint) -> Reference:
    """Step, in place of :func:`reference` for a run resumed after its reference: the
    checkpoint's reference weights into the model, its accuracy and time from the
    checkpoint."""
    try:
        loaded.model.load_state_dict(resume.tree["reference"])
    except RuntimeError as e:
        raise CheckpointError(f"{resume.path} does not fit the model: "
                              f"{str(e).strip().splitlines()[0]}") from e
    acc, seconds = resume.facts["reference_accuracy"], resume.facts["reference_seconds"]
    emit("reference_done", {"accuracy": acc, "seconds": seconds})
    return Reference(acc, seconds)


def hold_out(data: Splits, n: int, seed: int) -> tuple[Splits, Any, torch.Tensor]:
    """`data` with `n` training examples held out as a validation split, stratified by
    label (each class's share of the `n` in proportion to its count, remainders to the
    largest fractions) and drawn by a permutation seeded with `seed`; returns (the rest,
    x_val, y_val). The order of the remaining examples is kept.

    Raises
    ------
    ConfigError
        `n` leaves no training example.
    """
    y = data.y_train
    total = y.shape[0]
    if n >= total:
        raise ConfigError(f"--val-split {n} leaves no training example ({total} in all)")
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    counts = torch.bincount(y, minlength=data.num_classes).double()
    share = counts * n / total
    quota = share.floor().long()
    rest = n - int(quota.sum())
    quota[torch.argsort(share - quota, descending=True, stable=True)[:rest]] += 1
    chosen = torch.cat([perm[y[perm] == c][: int(quota[c])] for c in range(data.num_classes)])
    keep = torch.ones(total, dtype=torch.bool)
    keep[chosen] = False

    def take(x: Any, idx: torch.Tensor) -> Any:
        return x[idx] if isinstance(x, torch.Tensor) else tuple(t[idx] for t in x)

    chosen = chosen.sort().values
    return (data._replace(x_train=take(data.x_train, keep), y_train=y[keep]),
            take(data.x_train, chosen), y[chosen])


def run(
    config: JobConfig, *, on_event: Event | None = None, stop: Callable[[], Any] | None = None,
    overwrite: bool = False, on_checkpoint: Callable[[Any, dict[str, Any]], None] | None = None,
    resume: Checkpoint | None = None,
) -> CompressionResult:
    """:func:`run_job`, returning the whole :class:`~compressopt.dnn.api.CompressionResult`."""
    t_start = time.perf_counter()
    cfg = config.resolved()
    check_device(cfg.device)  # before the data are loaded
    ranks = distributed.init_from_env(cfg.device)  # torchrun: join the group (else nothing)
    try:
        return _run(cfg, ranks, on_event=on_event, stop=stop, overwrite=overwrite,
                    on_checkpoint=on_checkpoint, t_start=t_start, resume=resume)
    finally:
        distributed.shutdown()


def _open_on_main(cfg: JobConfig, overwrite: bool, resume: Checkpoint | None,
                  ) -> RunOutput | None:
    """OUT opened (probed, refusals) by rank 0 only; every rank learns whether that worked,
    so that a refused OUT stops all of them (one all-reduce when there are several). A new
    run refuses an OUT holding a checkpoint (unless `overwrite`); a resumed one opens OUT
    as its own run (its run_id)."""
    out, error = None, None
    if cfg.out is not None and distributed.is_main():
        try:
            if resume is None:
                check_fresh_out(cfg.out, overwrite)
            out = RunOutput.open(cfg.out, overwrite=overwrite,
                                 run_id=None if resume is None else resume.run_id)
        except OutputError as e:
            error = e
    if distributed.world_size() > 1:
        ok = distributed.all_average([torch.tensor([0.0 if error else 1.0])])[0]
        if error is None and float(ok) < 1.0:  # type: ignore[arg-type]
            raise OutputError(f"--out {cfg.out}: rank 0 cannot use it")
    if error is not None:
        raise error
    return out


def _run(cfg: JobConfig, ranks: Any, *, on_event: Event | None, stop: Callable[[], Any] | None,
         overwrite: bool, on_checkpoint: Callable[[Any, dict[str, Any]], None] | None,
         t_start: float, resume: Checkpoint | None = None) -> CompressionResult:
    """The steps of :func:`run` in this process (one rank of several under torchrun)."""
    if ranks.world_size > 1:
        cfg = replace(cfg, device=str(ranks.device))  # this rank's accelerator
    if cfg.target_accuracy is not None and not cfg.val_split:
        raise ConfigError("--target-accuracy needs a validation split (--val-split N): a stop "
                          "rule is not tuned on the test set")
    if resume is not None:
        overwrite = bool(resume.facts.get("overwrite", False))
        if resume.facts.get("world_size", 1) != ranks.world_size:
            raise CheckpointError(f"{resume.path} was written by {resume.facts.get('world_size')}"
                                  f" process(es); resume it with as many, not "
                                  f"{ranks.world_size}")
    emit = _Events(on_event, stop)
    loaded = load(cfg, emit)
    val_loader = None
    if cfg.val_split:
        seed = cfg.seed if cfg.val_seed is None else cfg.val_seed
        rest, x_val, y_val = hold_out(loaded.data, cfg.val_split, seed)
        loaded = loaded._replace(data=rest)
        val_loader = make_loader(x_val, y_val, EVAL_BATCH, shuffle=False)
    plan = prepare(loaded.model, cfg)  # every check that can fail, before training
    if cfg.reference is not None:  # a bad reference file is refused before OUT is touched
        load_reference(loaded.model, cfg.reference)
    out = _open_on_main(cfg, overwrite, resume)
    checkpoints = None if out is None else Checkpointer(
        out.path, out.run_id, cfg.to_settings(), every=cfg.checkpoint_every,
        resumed=resume is not None,
        facts={**(resume.facts if resume is not None else {}), "overwrite": overwrite,
               "world_size": ranks.world_size})
    shard = {"rank": ranks.rank, "world_size": ranks.world_size}
    trained = distributed.wrap_model(loaded.model)  # DDP under torchrun, else the model
    solving = resume if resume is not None and resume.phase == "solve" else None
    try:
        if solving is not None:
            ref = resumed_reference(loaded, emit, solving)
        else:
            ref = reference(cfg, loaded, emit, trained, shard, checkpoints=checkpoints,
                            resume=resume)
        if checkpoints is not None:
            checkpoints.facts.update(reference_accuracy=ref.accuracy,
                                     reference_seconds=ref.seconds)
        if out is not None and cfg.reference is None:
            out.stage("reference.safetensors", state_bytes(loaded.model))
        data = loaded.data
        return compress_prepared(
            plan, loaded.model,
            make_loader(data.x_train, data.y_train, cfg.batch_size, shuffle=True,
                        seed=cfg.seed + 1, **shard),
            test_loader=make_loader(data.x_test, data.y_test, EVAL_BATCH, shuffle=False),
            val_loader=val_loader,
            on_event=on_event, stop=stop, on_checkpoint=on_checkpoint, run=out, t_start=t_start,
            train_model=trained,
            reference_accuracy=ref.accuracy, reference_seconds=ref.seconds,
            metadata={"input_shape": data.input_shape, "num_classes": data.num_classes,
                      "vocab_size": data.vocab_size},
            pretrain_epochs=cfg.pretrain_epochs if cfg.reference is None else 0,
            checkpoints=checkpoints, resume=solving,
        )
    except BaseException as e:
        interrupted(e, out, checkpoints)
        raise


def run_job(
    config: JobConfig, *, on_event: Event | None = None, stop: Callable[[], Any] | None = None,
    overwrite: bool = False, on_checkpoint: Callable[[Any, dict[str, Any]], None] | None = None,
    resume: Checkpoint | None = None,
) -> dict[str, Any]:
    """Train or load the reference, compress it with ``config.method``, evaluate, report.

    Steps: :func:`load` the data set and the model (seeded with ``config.seed``);
    :func:`~compressopt.dnn.api.prepare` (options, parameters, method, device and memory
    checked); open OUT (probed, refused if it holds another run unless `overwrite`);
    :func:`reference` (load ``config.reference`` or train ``pretrain_epochs`` epochs); then
    :func:`~compressopt.dnn.api.compress_prepared`: solve, finish, write.

    Parameters
    ----------
    config : JobConfig (resolved here).
    on_event : callable(kind, info), optional
        Progress events: ``"data"``, ``"reference_start"`` {epochs}, ``"reference_epoch"``
        {epoch, loss}, ``"reference_done"`` {accuracy, seconds}, ``"compress_start"``
        {steps, method, epochs, first_epochs}, ``"lstep_epoch"`` {step, epoch, loss},
        ``"step"`` (one iteration's record), ``"done"`` {report}.
    stop : callable() -> truthy to stop at the next epoch or iteration boundary
        (:class:`~compressopt.dnn.api.JobStopped`; OUT is left as it was).
    overwrite : replace the run already in ``config.out``.
    on_checkpoint : callable(state, record), optional
        Called after every coordinator iteration with its state and record, once its
        checkpoint is saved, before the stop check.
    resume : Checkpoint, optional
        The checkpoint of an interrupted run of `config`
        (:func:`~compressopt.dnn.checkpoint.read_checkpoint` of ``config.out``; the config
        from :func:`~compressopt.dnn.checkpoint.resumed_settings`): the run continues from
        it (after the reference epoch or the coordinator iteration it holds) and ends as
        the uninterrupted run would have. While a run with ``config.out`` is in progress,
        ``OUT/checkpoint.safetensors`` holds its state (:mod:`compressopt.dnn.checkpoint`);
        it is removed once the run's files are committed.

    Returns
    -------
    dict
        The report (also written to ``OUT/report.json`` when ``config.out`` is set, with
        ``config.toml``, the compressed model and, when trained, ``reference.safetensors``):
        model, dataset, method, seed, epochs, reference_accuracy, accuracy, accuracy_drop
        (fractions in [0, 1] on the test split), compression_ratio = 32·Σnumel /
        Σ(bits·nonzeros) (null when nothing is stored), nonzero_fraction, average_bits =
        Σ(bits·nonzeros)/Σnonzeros, weight_bits, overhead_bits, wall_seconds, layers
        (:func:`~compressopt.dnn.api.layer_table`), iterations (one record per coordinator
        iteration, with ``test_accuracy`` of the coordinator's output point and, with
        ``eval_projected`` (``--eval-projected`` of ``--method admm``),
        ``projected_test_accuracy`` of Π(W), the constraint set's projection of the current
        W), diagnostics (the method's), config, environment, files (name -> bytes, sha256).
        Non-finite numbers are written as null.

    Raises
    ------
    ConfigError
        Bad settings (see :class:`~compressopt.options.JobConfig`), an unusable device.
    DataError
        Missing or malformed data or reference file.
    ShapeMismatchError
        The reference file does not fit the model.
    OutputError
        OUT cannot be used or written.
    ResourceLimitError
        The C step would need more memory than is available.
    """
    return run(config, on_event=on_event, stop=stop, overwrite=overwrite,
               on_checkpoint=on_checkpoint, resume=resume).report
