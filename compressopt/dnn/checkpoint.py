"""Checkpoint and resume of a compression job: ``OUT/checkpoint.safetensors``.

While a run with an output directory OUT is in progress, the job writes its whole state to
``OUT/checkpoint.safetensors`` (:func:`~compressopt.storage.atomic.atomic_write`: a
temporary file, ``fsync``, ``rename``) after every reference epoch and every coordinator
iteration (at most every ``--checkpoint-every`` seconds; 0, the default, after each one),
and ``compressopt compress --resume OUT`` (or ``compress(..., resume=OUT)``) continues from
it. A run killed at any point (SIGKILL included) and resumed ends with the same report as
the run that was never stopped: the same accuracies, the same Θ bit for bit on the CPU, the
same history; only the timings differ.

What the file holds
-------------------
One safetensors file of :func:`compressopt.storage.tree.tree_to_bytes` (tensors and a JSON
skeleton, a SHA-256 over both; no pickle): the phase (``"reference"``: the reference is
being trained; ``"solve"``: the coordinator runs), and

* reference phase: the epochs done, the model's ``state_dict``, the optimizer's state;
* solve phase: the coordinator's state (w, Θ, multipliers/duals, μ or ρ, SLR's step size
  and surrogate loss, APGDSSM's epoch and inner-iteration counters) and history, the
  report's per-iteration records, whether the coordinator was told to stop at that
  iteration (``--target-accuracy``, a callback), the model's ``state_dict`` (biases, norm
  buffers), the L steps' optimizer state, the oracle's counters and, for the minibatch
  oracle of APGDSSM, its free-parameter optimizer, its epoch-loss accumulator and its
  position in the current epoch, and the reference's ``state_dict`` (the distillation
  teacher, ``reference.safetensors``);
* both: the random states (torch, CUDA when initialized, numpy, Python ``random``) and the
  training loader's generators and epoch counters (:func:`loader_state`).

The JSON metadata holds the run's ``run_id`` (so that
:meth:`RunOutput.open <compressopt.storage.atomic.RunOutput.open>` accepts OUT again), the
resolved settings (``config.toml``'s keys) with their hash (:func:`config_hash`), and the
facts the report needs that are not state (reference accuracy and time, the world size,
whether the run replaces another with ``--overwrite``).

A position inside an epoch is kept as the loader's state at the start of the epoch plus the
number of batches taken (:class:`TrackedLoader`): on resume the epoch is replayed from that
state and the batches taken are skipped, so the next minibatch is the one the uninterrupted
run takes. Only APGDSSM's minibatch oracle keeps an epoch open across iterations; every
other L step starts its passes afresh.

The checkpoint is not part of the run's output set: it is removed once the set is
committed, and a kill between the commit and the removal leaves a checkpoint whose run is
finished (``--resume`` says so). The final stage of a method (masked retraining, the joint
ADMM's fine-tuning) is not checkpointed: a run killed during it resumes from the last
iteration and runs the stage again, with the same result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

import compressopt.dnn.compressed  # noqa: F401  (registers the tree codec's torch hook)
from compressopt import __version__
from compressopt.errors import CheckpointError, CompressoptError, OutputError
from compressopt.storage.atomic import JOURNAL, REPORT, atomic_write, read_run
from compressopt.storage.tree import tree_from_bytes, tree_to_bytes

__all__ = [
    "CHECKPOINT",
    "RUN_CONTROL",
    "Checkpoint",
    "Checkpointer",
    "TrackedLoader",
    "check_fresh_out",
    "config_hash",
    "loader_state",
    "module_state",
    "read_checkpoint",
    "restore_solve",
    "resumed_settings",
    "rng_state",
    "set_loader_state",
    "set_rng_state",
    "solve_tree",
    "without_timings",
]

logger = logging.getLogger("compressopt.dnn")

#: the checkpoint's file name in OUT
CHECKPOINT = "checkpoint.safetensors"
FORMAT = "compressopt.checkpoint"
VERSION = 1
#: settings that may differ between a checkpoint and the run that resumes it: where the
#: files and the data are, and how often checkpoints and figures are written; they do not
#: change the result (the hash leaves them out)
RUN_CONTROL = frozenset({"out", "data_dir", "checkpoint_every", "plots"})


def config_hash(settings: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the settings that determine a run's result: the canonical JSON
    (sorted keys) of `settings` without the :data:`RUN_CONTROL` keys."""
    kept = {k: v for k, v in settings.items() if k not in RUN_CONTROL}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


#: a record's timing fields in a message (e.g. DC's "converged (... time_lstep=0.1 ...)")
_TIME_FIELD = re.compile(r" time_\w+=\S+?(?=[ )]|$)")


def without_timings(report: Mapping[str, Any]) -> dict[str, Any]:
    """`report` without what a resumed run may change: the seconds (``wall_seconds``,
    ``reference_seconds``, ``compress_seconds``; each iteration's ``seconds`` and
    ``time_*`` fields, also where the message quotes a record). Two runs of the same
    settings, one of them killed and resumed any number of times, give equal results
    (besides their ``run_id``, and the ``files`` entries of figures that plot seconds)."""
    out = {k: v for k, v in report.items() if not k.endswith("_seconds")}
    if isinstance(out.get("message"), str):
        out["message"] = _TIME_FIELD.sub("", out["message"])
    if isinstance(out.get("iterations"), list):
        out["iterations"] = [
            {k: v for k, v in rec.items() if k != "seconds" and not k.startswith("time_")}
            if isinstance(rec, dict) else rec for rec in out["iterations"]]
    return out


# -- random states and loaders --------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """The process's random states: torch's CPU generator, every CUDA device's (when CUDA
    is initialized), numpy's legacy global generator and Python's ``random``."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),  # noqa: NPY002
                             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002 (the legacy global one users seed)
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


#: the attributes followed from a loader to the objects holding its random state
_LINKS = ("generator", "sampler", "batch_sampler", "distributed_sampler")


def _walk(obj: Any, path: str, seen: set[int], out: dict[str, Any], depth: int) -> None:
    epoch = getattr(obj, "epoch", None)
    if isinstance(epoch, int) and not isinstance(epoch, bool):
        out[f"{path}epoch"] = epoch
    for name in _LINKS:
        child = getattr(obj, name, None)
        if child is None or id(child) in seen:
            continue
        seen.add(id(child))
        if isinstance(child, torch.Generator):
            out[f"{path}{name}"] = child.get_state()
        elif depth < 4:
            _walk(child, f"{path}{name}.", seen, out, depth + 1)


def loader_state(loader: Any) -> dict[str, Any]:
    """The random state of a data loader: the state of every :class:`torch.Generator`
    reachable through its ``generator``, ``sampler``, ``batch_sampler`` and
    ``distributed_sampler`` attributes (e.g. a shuffled
    :func:`~compressopt.dnn.data.make_loader`'s ``sampler.sampler.generator``, or a
    ``DataLoader(..., shuffle=True, generator=g)``), and every integer ``epoch`` on the way
    (a :class:`~torch.utils.data.DistributedSampler`'s), by dotted attribute path.

    A loader that shuffles with the global torch generator (``shuffle=True`` without a
    generator) is covered by :func:`rng_state`; any other source of randomness (a dataset
    that draws its own augmentations from a private generator) is not.
    """
    out: dict[str, Any] = {}
    _walk(loader, "", {id(loader)}, out, 0)
    return out


def set_loader_state(loader: Any, state: Mapping[str, Any]) -> None:
    """Restore :func:`loader_state`.

    Raises
    ------
    CheckpointError
        The loader has no object at one of the paths (another kind of loader).
    """
    for path, value in state.items():
        *links, last = path.split(".")
        obj = loader
        for name in links:
            obj = getattr(obj, name, None)
        target = getattr(obj, last, None) if obj is not None else None
        if last == "epoch" and isinstance(target, int):
            setattr(obj, last, value)
        elif isinstance(target, torch.Generator):
            target.set_state(value)
        else:
            raise CheckpointError(f"the training loader has no {path!r} (the checkpoint was "
                                  "written with another kind of loader)")


class TrackedLoader:
    """A training loader that remembers where its latest pass is: the loader's random state
    (:func:`loader_state` and torch's global generator) when the pass began and the batches
    taken since. Everything else (``len``, ``dataset``, other attributes) is the loader's.

    :meth:`replay` rebuilds a pass from such a position: the same batches follow, and the
    loader's generators end where the original pass left them.
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.start: dict[str, Any] | None = None
        self.consumed = 0

    @property
    def dataset(self) -> Any:
        return self.loader.dataset

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator[Any]:
        self.start = {"loader": loader_state(self.loader), "torch": torch.get_rng_state()}
        self.consumed = 0
        return self._count(iter(self.loader))

    def _count(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self.consumed += 1
            yield batch

    def position(self) -> dict[str, Any] | None:
        """Where the latest pass is (None before the first)."""
        return None if self.start is None else {"start": self.start, "consumed": self.consumed}

    def replay(self, position: Mapping[str, Any]) -> Iterator[Any]:
        """A pass rebuilt at `position`: the loader's state and torch's global generator set
        to those of the pass's start, the batches taken skipped. The caller restores the
        global generator afterwards (:func:`set_rng_state`).

        Raises
        ------
        CheckpointError
            The loader yields fewer batches than were taken (other data).
        """
        set_loader_state(self.loader, position["start"]["loader"])
        torch.set_rng_state(position["start"]["torch"])
        it = iter(self)
        for i in range(position["consumed"]):
            if next(it, None) is None:
                raise CheckpointError(f"the training loader ends after {i} batches; the "
                                      f"checkpoint's pass had taken {position['consumed']}")
        return it


# -- what the solve phase saves ----------------------------------------------------------


def module_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """`module`'s ``state_dict`` (parameters and buffers), detached, not copied."""
    return {k: v.detach() for k, v in module.state_dict().items()}


def solve_tree(*, model: nn.Module, reference: Mapping[str, torch.Tensor], oracle: Any,
               run_oracle: Any, loader: TrackedLoader, state: Any, history: list[Any],
               iterations: list[dict[str, Any]], stopped: str | None) -> dict[str, Any]:
    """The solve phase's state after a coordinator iteration (see the module docstring):
    `oracle` is the job's :class:`~compressopt.dnn.oracle.TorchOracle`, `run_oracle` what
    the coordinator calls (the same, or a :class:`~compressopt.dnn.oracle.MinibatchOracle`
    around it), `stopped` the message of a StopIteration that ends the coordinator after
    this iteration. Tensors are referenced, not copied: serialize at once."""
    from compressopt.dnn.oracle import MinibatchOracle

    tree: dict[str, Any] = {
        "state": state, "history": tuple(history), "iterations": list(iterations),
        "stopped": stopped, "model": module_state(model), "reference": dict(reference),
        "optimizer": oracle.optimizer.state_dict(),
        "oracle": {"iterations": oracle.iterations, "lstep_losses": list(oracle.lstep_losses)},
        "loader": loader_state(loader.loader), "position": None,
    }
    if isinstance(run_oracle, MinibatchOracle):
        tree["minibatch"] = {
            "calls": run_oracle.calls, "epoch_loss": run_oracle._epoch_loss,
            "optimizer": (None if run_oracle.free_optimizer is None
                          else run_oracle.free_optimizer.state_dict()),
        }
        tree["position"] = loader.position()
    tree["rng"] = rng_state()  # last: nothing above draws from it
    return tree


def restore_solve(tree: Mapping[str, Any], *, model: nn.Module, oracle: Any, run_oracle: Any,
                  loader: TrackedLoader) -> None:
    """Put `model`, the oracles, the loader and the random states back where
    :func:`solve_tree` found them; torch's generator last (a replayed pass draws from it).

    Raises
    ------
    CheckpointError
        The model, the optimizer or the loader do not fit the checkpoint's.
    """
    from compressopt.dnn.oracle import MinibatchOracle

    try:
        model.load_state_dict(tree["model"])
        oracle.optimizer.load_state_dict(tree["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"the checkpoint does not fit the model: {first}") from e
    oracle.iterations = tree["oracle"]["iterations"]
    oracle.lstep_losses = list(tree["oracle"]["lstep_losses"])
    set_loader_state(loader.loader, tree["loader"])
    mb = tree.get("minibatch")
    if (mb is not None) != isinstance(run_oracle, MinibatchOracle):
        raise CheckpointError("the checkpoint was written by another kind of method")
    if mb is not None:
        run_oracle.calls = mb["calls"]
        run_oracle._epoch_loss = mb["epoch_loss"].to(run_oracle._epoch_loss.device)
        if run_oracle.free_optimizer is not None:
            run_oracle.free_optimizer.load_state_dict(mb["optimizer"])
        if tree["position"] is not None:
            run_oracle._batches = loader.replay(tree["position"])
            set_loader_state(loader.loader, tree["loader"])
    set_rng_state(tree["rng"])


# -- reading ------------------------------------------------------------------------------


class Checkpoint(NamedTuple):
    """A checkpoint read back (:func:`read_checkpoint`)."""

    path: Path
    phase: str  #: "reference" or "solve"
    run_id: str
    settings: dict[str, Any]  #: the resolved settings of the run (``config.toml``'s keys)
    facts: dict[str, Any]  #: reference accuracy and seconds, world size, overwrite, ...
    where: str  #: "after iteration 3", "after reference epoch 2"
    tree: dict[str, Any]  #: the state (see the module docstring)


def _finished(out: Path, run_id: str) -> bool:
    """Whether OUT holds the committed report of run `run_id` (an interrupted commit of it
    is completed first: it is the run's own)."""
    if (out / JOURNAL).exists():
        try:
            read_run(out)
        except (CompressoptError, OSError):
            pass
    try:
        report = json.loads((out / REPORT).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and report.get("run_id") == run_id


def read_checkpoint(out: str | os.PathLike[str]) -> Checkpoint:
    """The checkpoint of the run in OUT, checked: readable (checksum), of this format, its
    settings matching their hash, its run not finished. Nothing in OUT is changed (but an
    interrupted commit of the run's own files, which is completed).

    Raises
    ------
    CheckpointError
        OUT is not a folder or holds no checkpoint (a finished run's OUT: the message says
        so); the file is truncated, altered or of another format or version; the run is
        finished (its report is committed).
    """
    folder = Path(out)
    if not folder.is_dir():
        raise CheckpointError(f"--resume {folder}: no such directory")
    path = folder / CHECKPOINT
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if (folder / REPORT).exists():
            raise CheckpointError(f"--resume {folder}: the run there is finished (it has a "
                                  f"{REPORT} and no {CHECKPOINT}): nothing to resume") from None
        raise CheckpointError(f"--resume {folder}: no {CHECKPOINT} there, nothing to resume "
                              "(start the run without --resume)") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it: {e.strerror or e}") from e
    try:
        tree, meta = tree_from_bytes(data)
    except CompressoptError as e:
        raise CheckpointError(f"{path} is not a readable checkpoint ({e}); start the run "
                              "again with --overwrite") from e
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: not a compressopt checkpoint of version {VERSION} "
                              f"(format {meta.get('format')!r}, version {meta.get('version')!r})")
    settings, run_id = meta.get("settings"), meta.get("run_id")
    phase = meta.get("phase")
    if (not isinstance(settings, dict) or not isinstance(run_id, str) or not run_id
            or phase not in ("reference", "solve") or not isinstance(tree, dict)):
        raise CheckpointError(f"{path}: malformed checkpoint metadata")
    if config_hash(settings) != meta.get("config_hash"):
        raise CheckpointError(f"{path}: its settings do not match their hash")
    if _finished(folder, run_id):
        raise CheckpointError(f"--resume {folder}: the run there is finished (its {REPORT} "
                              "is committed): nothing to resume")
    return Checkpoint(path, phase, run_id, settings, dict(meta.get("facts") or {}),
                      str(meta.get("where", "")), tree)


def resumed_settings(ckpt: Checkpoint, given: Mapping[str, Any], out: str) -> dict[str, Any]:
    """The settings of a resumed run: the checkpoint's, with ``out`` = `out` (the folder
    resumed) and the :data:`RUN_CONTROL` settings of `given` (the options given again: a
    recipe, a --config file, the command line).

    Raises
    ------
    CheckpointError
        A setting of `given` contradicts the checkpoint's (after the data set's defaults
        are filled in: giving again a value the run had is fine); ``out`` names another
        folder.
    ConfigError
        `given` holds an unknown option or one of another method.
    """
    from compressopt.options import JobConfig, option_fields

    if "out" in given and given["out"] is not None and not _same_dir(given["out"], out):
        raise CheckpointError(f"--out {given['out']} contradicts --resume {out}: a resumed "
                              "run writes where it began")
    base = {**ckpt.settings, "out": out}
    if given.get("method", base.get("method")) != base.get("method"):  # before its options
        raise CheckpointError(f"--resume {out}: --method = {given['method']!r} (the run has "
                              f"{base.get('method')!r}): a resumed run keeps its settings")
    merged = {**base, **{k: v for k, v in given.items() if k != "out"}}
    now = JobConfig.from_settings(merged).resolved().to_settings()
    keys = sorted((set(now) | set(base)) - RUN_CONTROL)
    changed = [k for k in keys if now.get(k) != base.get(k)]
    if changed:
        flags = {**option_fields(JobConfig)}
        parts = []
        for k in changed:
            spec = flags.get(k)
            parts.append(f"{spec.flag if spec else k} = {now.get(k)!r} (the run has "
                         f"{base.get(k)!r})")
        raise CheckpointError(f"--resume {out}: {'; '.join(parts)}: a resumed run keeps its "
                              "settings (only --checkpoint-every, --no-plots and --data-dir "
                              "may change)")
    return {**base, **{k: v for k, v in given.items() if k in RUN_CONTROL and k != "out"}}


def _same_dir(a: Any, b: Any) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_fresh_out(out: str | os.PathLike[str], overwrite: bool) -> None:
    """A new run (not resumed) refuses an OUT that holds a checkpoint, unless `overwrite`:
    the interrupted run there could still be resumed.

    Raises
    ------
    OutputError
        OUT holds ``checkpoint.safetensors`` and not `overwrite`.
    """
    if not overwrite and (Path(out) / CHECKPOINT).exists():
        raise OutputError(f"--out {out} holds the checkpoint of an interrupted run: continue "
                          f"it with compressopt compress --resume {out}, or use --overwrite "
                          "to start over")


# -- writing ------------------------------------------------------------------------------


class Checkpointer:
    """Writes a run's checkpoints into OUT (the main rank only).

    Parameters
    ----------
    out : OUT (it exists: :meth:`RunOutput.open
        <compressopt.storage.atomic.RunOutput.open>` made it).
    run_id : the run's identifier (the report's ``run_id``).
    settings : the run's resolved settings (``config.toml``'s keys).
    every : seconds; a checkpoint is written when at least this long has passed since the
        last one (0: every time); the others are kept in memory, and :meth:`flush` writes
        the last of them (at a stop).
    facts : what the report needs beyond the state (updated by the job as it learns them).

    Attributes
    ----------
    written : whether a checkpoint of this run is in OUT (this process's or the one the run
        was resumed from).
    """

    def __init__(self, out: str | os.PathLike[str], run_id: str, settings: Mapping[str, Any],
                 *, every: float = 0.0, facts: Mapping[str, Any] | None = None,
                 resumed: bool = False) -> None:
        self.path = Path(out) / CHECKPOINT
        self.run_id = run_id
        self.settings = dict(settings)
        self.hash = config_hash(self.settings)
        self.every = every
        self.facts: dict[str, Any] = {**(facts or {}), "compressopt": __version__,
                                      "torch": torch.__version__}
        self.pending: bytes | None = None
        self.last = time.monotonic()
        self.written = resumed

    def save(self, phase: str, tree: Callable[[], dict[str, Any]], where: str) -> None:
        """Checkpoint the state `tree()` builds (serialized at once); written now if due,
        else kept for :meth:`flush`.

        Raises
        ------
        OutputError
            The write failed (disk full, ...); the previous checkpoint is intact.
        """
        meta = {"format": FORMAT, "version": VERSION, "phase": phase, "run_id": self.run_id,
                "settings": self.settings, "config_hash": self.hash, "facts": self.facts,
                "where": where}
        data = tree_to_bytes(tree(), meta)
        if time.monotonic() - self.last >= self.every:
            self._write(data)
        else:
            self.pending = data

    def _write(self, data: bytes) -> None:
        atomic_write(self.path, data)
        self.pending, self.last, self.written = None, time.monotonic(), True
        logger.debug("checkpoint written: %s (%d bytes)", self.path, len(data))

    def flush(self, *, quiet: bool = False) -> None:
        """Write the checkpoint kept in memory, if any (at a stop); a failure is logged as
        a warning (`quiet`: at debug level, when the error that stopped the run already
        says that OUT cannot be written)."""
        if self.pending is None:
            return
        try:
            self._write(self.pending)
        except OutputError as e:
            (logger.debug if quiet else logger.warning)(
                "the last checkpoint could not be written: %s", e)

    def remove(self) -> None:
        """Remove the checkpoint (the run's files are committed)."""
        self.pending = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.written = False
