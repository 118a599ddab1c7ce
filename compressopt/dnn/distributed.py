"""Several processes: ``torch.distributed`` for the L step, rank-0 I/O, rank agreement.

The job runs under ``torchrun --nproc-per-node N -m compressopt compress ...`` (one node) or
``torchrun --nnodes M --node-rank i --rdzv-endpoint HOST:PORT ...`` (several). Every rank
loads the data, builds the model and runs the whole coordinator; only the L step's
minibatch gradients are shared:

* :func:`init_from_env` joins the process group torchrun describes in the environment
  (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): gloo on the
  CPU, NCCL on CUDA (device ``cuda:LOCAL_RANK``). Without ``WORLD_SIZE`` (or with 1) it does
  nothing and the job is the single-process one, bit for bit.
* :func:`~compressopt.dnn.data.make_loader` with ``rank`` / ``world_size`` gives each rank
  its shard of every epoch (a DistributedSampler, ``set_epoch`` called at each pass).
* :func:`wrap_model` wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel`
  (DDP) for :class:`~compressopt.dnn.oracle.TorchOracle`'s ``train_model``: the backward
  pass averages the gradients over the ranks, so an L step on W ranks × batch B takes the
  steps of one process on batches of W·B, and the weights stay identical on every rank
  (DDP also copies rank 0's parameters and buffers to all ranks when it wraps).
* The C step and the multiplier updates are **not** communicated: every rank computes them
  from identical weights with identical code and seeds, so every rank holds the same Θ,
  bit for bit (the projections are deterministic given their input). This needs the same
  ``seed`` on every rank (the samplers and any randomized C step draw from it).
  :func:`check_ranks_agree` verifies it (two int64 fingerprints per tensor, one
  all-reduce): the job calls it on Θ (or Δ(Θ)) after each iteration and stops with
  :class:`RanksDisagreeError` at the first difference instead of writing a silently wrong
  result.
* Only rank 0 writes outputs and shows progress (:func:`is_main`, :func:`on_main`);
  :func:`world_size` is recorded in the report.

Evaluation (test accuracy, the oracle's ``value``/``grad`` on its fixed subset) runs whole on
every rank: the same numbers everywhere, no communication. Batch normalization normalizes
with each rank's own batch statistics (B, not W·B), as DDP does by default; running
statistics are rank 0's (DDP broadcasts buffers at each forward).
"""

from __future__ import annotations

import datetime
import logging
import os
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from compressopt.errors import CompressoptError, ConfigError

__all__ = [
    "RankInfo",
    "RanksDisagreeError",
    "all_average",
    "barrier",
    "check_ranks_agree",
    "init_from_env",
    "is_main",
    "on_main",
    "rank",
    "shutdown",
    "world_size",
    "wrap_model",
]

logger = logging.getLogger("compressopt.dnn")

T = TypeVar("T")

#: torchrun's variables that :func:`init_from_env` needs when WORLD_SIZE > 1
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class RanksDisagreeError(CompressoptError, RuntimeError):
    """The ranks of a distributed run hold different values where they must be identical
    (e.g. Θ after a C step): the ranks were seeded differently, or a computation is not
    deterministic across processes."""


class RankInfo(NamedTuple):
    """Where this process stands: ``rank`` of ``world_size`` (``local_rank`` on its node),
    the process group's ``backend`` ("gloo", "nccl"; None for a single process) and the
    ``device`` this rank computes on."""

    rank: int
    world_size: int
    local_rank: int
    backend: str | None
    device: torch.device


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes of the default process group; 1 when there is none."""
    return dist.get_world_size() if _active() else 1


def rank() -> int:
    """This process's rank in the default process group; 0 when there is none."""
    return dist.get_rank() if _active() else 0


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that writes outputs and logs."""
    return rank() == 0


def on_main(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T | None:
    """``fn(*args, **kwargs)`` on rank 0, None on the others (no synchronization)."""
    return fn(*args, **kwargs) if is_main() else None


def barrier() -> None:
    """Wait for every rank (nothing in a single process)."""
    if _active():
        dist.barrier()


def shutdown() -> None:
    """Leave the process group if this process is in one (idempotent)."""
    if _active():
        dist.destroy_process_group()


def _env_int(name: str, env: Mapping[str, str]) -> int:
    value = env.get(name)
    if value is None:
        raise ConfigError(f"torch.distributed: environment variable {name} is not set "
                          f"(run under torchrun, which sets {', '.join(ENV_VARS)})")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"torch.distributed: {name}={value!r} is not an integer") from None


def init_from_env(
    device: str | torch.device = "cpu",
    *,
    timeout_s: float = 1800.0,
    env: Mapping[str, str] | None = None,
) -> RankInfo:
    """Join the process group described by torchrun's environment variables.

    Parameters
    ----------
    device : the job's device: "cpu" (backend gloo) or "cuda" / "cuda:i" (backend NCCL;
        the rank computes on ``cuda:LOCAL_RANK`` and makes it the current device).
    timeout_s : seconds a collective may wait for the other ranks before failing.
    env : the environment to read (default ``os.environ``).

    Returns
    -------
    RankInfo
        With ``world_size == 1`` (``WORLD_SIZE`` unset or 1) nothing is initialized and the
        device is `device` unchanged. If a default process group exists already, its
        rank and size are returned (idempotent).

    Raises
    ------
    ConfigError
        A variable of :data:`ENV_VARS` missing or malformed, RANK / LOCAL_RANK out of range,
        a device type other than cpu and cuda, CUDA asked for but not available, or fewer
        CUDA devices than LOCAL_RANK needs.
    """
    env = os.environ if env is None else env
    dev = torch.device(device)
    size = _env_int("WORLD_SIZE", env) if "WORLD_SIZE" in env else 1
    if size < 1:
        raise ConfigError(f"torch.distributed: WORLD_SIZE must be >= 1, got {size}")
    if size == 1 and not _active():
        return RankInfo(0, 1, 0, None, dev)
    r, local = _env_int("RANK", env), _env_int("LOCAL_RANK", env)
    if not 0 <= r < size or local < 0:
        raise ConfigError(f"torch.distributed: RANK={r}, LOCAL_RANK={local} do not fit "
                          f"WORLD_SIZE={size}")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not env.get(name):
            raise ConfigError(f"torch.distributed: environment variable {name} is not set")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("torch.distributed with --device cuda: CUDA is not available")
        if local >= torch.cuda.device_count():
            raise ConfigError(f"torch.distributed: LOCAL_RANK={local} but only "
                              f"{torch.cuda.device_count()} CUDA devices")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        backend = "nccl"
    elif dev.type == "cpu":
        backend = "gloo"
    else:
        raise ConfigError(f"torch.distributed runs on cpu (gloo) or cuda (NCCL), not {dev.type}")
    if not _active():
        kwargs: dict[str, Any] = {}
        if env is not os.environ:  # an explicit environment: a TCP store of its own
            kwargs["init_method"] = f"tcp://{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
            kwargs.update(rank=r, world_size=size)
        else:
            kwargs["init_method"] = "env://"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s),
                                **kwargs)
        logger.info("rank %d of %d joined (%s, %s)", r, size, backend, dev)
    return RankInfo(dist.get_rank(), dist.get_world_size(), local, dist.get_backend(), dev)


def wrap_model(
    model: nn.Module, *, find_unused_parameters: bool = False
) -> nn.Module:
    """`model` in DistributedDataParallel when ``world_size() > 1``, else `model` itself.

    The wrapper shares `model`'s parameters (nothing is copied); pass it as
    ``TorchOracle(..., train_model=wrap_model(model))`` and to the reference training
    (:func:`~compressopt.dnn.train.train`). Wrapping copies rank 0's parameters and
    buffers to every rank. On CUDA, the model must already be on this rank's device.

    Parameters
    ----------
    find_unused_parameters : DDP's option, for models whose forward pass leaves some
        parameters without a gradient.
    """
    if world_size() == 1:
        return model
    p = next(model.parameters())
    ids = [p.device.index] if p.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused_parameters
    )


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_average(tensors: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
    """The mean over the ranks of each tensor (None stays None); new tensors.

    In a single process, the tensors themselves. One all-reduce per tensor.
    """
    n = world_size()
    if n == 1:
        return list(tensors)
    out: list[torch.Tensor | None] = []
    for t in tensors:
        if t is None:
            out.append(None)
            continue
        s = t.detach().clone()
        dist.all_reduce(s, op=dist.ReduceOp.SUM)
        out.append(s.div_(n))
    return out


# -- rank agreement -------------------------------------------------------------------------


def _leaves(obj: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, leaf) of a nested dict / NamedTuple / dataclass / list / tuple."""
    if isinstance(obj, Mapping):
        for k in obj:
            yield from _leaves(obj[k], f"{path}[{k!r}]")
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
        for k in obj._fields:  # type: ignore[attr-defined]
            yield from _leaves(getattr(obj, k), f"{path}.{k}")
    elif hasattr(obj, "__dataclass_fields__") and not isinstance(obj, type):
        for k in obj.__dataclass_fields__:
            yield from _leaves(getattr(obj, k), f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, obj


def _leaf_bytes(x: Any) -> torch.Tensor:
    """The bytes of a leaf as a flat uint8 CPU or device tensor."""
    if isinstance(x, torch.Tensor):
        t = x.detach().reshape(-1).contiguous()
        return t.view(torch.uint8) if t.numel() else t.new_empty(0, dtype=torch.uint8)
    if isinstance(x, (np.ndarray, np.generic)):
        a = np.ascontiguousarray(x).reshape(-1)
        return torch.from_numpy(a.view(np.uint8).copy())
    if isinstance(x, bool) or x is None:
        raw = repr(x).encode()
    elif isinstance(x, int):
        raw = x.to_bytes((x.bit_length() + 8) // 8 + 1, "little", signed=True)
    elif isinstance(x, float):
        raw = struct.pack("<d", x)
    else:
        raw = repr(x).encode()
    return torch.tensor(list(raw), dtype=torch.uint8)


def _fingerprint(b: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Two exact int64 sums of the bytes: Σ b_i and Σ b_i·(1 + i mod 65521), plus the length.

    Equal bytes give equal fingerprints on every rank; a change of any byte changes the
    first or second sum (unless a compensating change is made in the same tensor).
    """
    total = torch.zeros(3, dtype=torch.int64, device=device)
    chunk = 1 << 24
    for s in range(0, b.numel(), chunk):
        c = b[s : s + chunk].to(device=device, dtype=torch.int64)
        w = torch.arange(s, s + c.numel(), device=device, dtype=torch.int64) % 65521 + 1
        total[0] += c.sum()
        total[1] += (c * w).sum()
    total[2] = b.numel()
    return total


def check_ranks_agree(obj: Any, what: str = "Θ") -> None:
    """Raise unless every rank holds bitwise the same `obj` (no-op in a single process).

    Parameters
    ----------
    obj : a tensor, array, number, or a nested dict / NamedTuple / dataclass / list / tuple
        of them (e.g. a coordinator's Θ, Δ(Θ) as ``{name: tensor}``, or its whole state).
    what : the name used in the message.

    Raises
    ------
    RanksDisagreeError
        On every rank (the result of the all-reduce is the same everywhere), naming up to
        five differing leaves; also when the ranks' structures have different numbers of
        leaves.

    Notes
    -----
    Cost: O(bytes of obj) integer work per rank and two all-reduces (MIN and MAX) of
    3·(leaves + 1) int64 values; nothing is gathered.
    """
    if world_size() == 1:
        return
    dev = _collective_device()
    leaves = list(_leaves(obj, what))
    fps = [torch.tensor([len(leaves), 0, 0], dtype=torch.int64, device=dev)]
    sizes = torch.tensor([len(leaves), -len(leaves)], dtype=torch.int64, device=dev)
    dist.all_reduce(sizes, op=dist.ReduceOp.MAX)
    if int(sizes[0]) != -int(sizes[1]):
        raise RanksDisagreeError(
            f"{what} differs across ranks: {-int(sizes[1])} to {int(sizes[0])} leaves "
            f"(rank {rank()} has {len(leaves)})"
        )
    fps += [_fingerprint(_leaf_bytes(x), dev) for _, x in leaves]
    lo = torch.stack(fps)
    hi = lo.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    bad = [leaves[i - 1][0] for i in range(1, len(fps)) if not torch.equal(lo[i], hi[i])]
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise RanksDisagreeError(
            f"{what} differs across the {world_size()} ranks at {', '.join(bad[:5])}{more}: "
            "seed every rank alike and wrap the model with wrap_model"
        )

