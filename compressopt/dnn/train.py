"""Plain training (the reference model) and evaluation.

A batch's input is a tensor or a tuple of tensors (e.g. token ids and a padding mask) with
the same first dimension; a model is called with it as its one argument. :func:`to_device`,
:func:`batch_len` and :func:`batch_slice` handle both forms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn
from torch.func import functional_call

from compressopt.errors import DataError, NonFiniteError

__all__ = ["batch_len", "batch_slice", "cosine_lr", "evaluate", "to_device", "train"]

Inputs = torch.Tensor | tuple[torch.Tensor, ...]


def to_device(x: Inputs | list[torch.Tensor], device: torch.device) -> Inputs:
    """`x` on `device` (``non_blocking``); a list or tuple becomes a tuple of tensors."""
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    return tuple(t.to(device, non_blocking=True) for t in x)


def batch_len(x: Inputs) -> int:
    """Number of examples in the input `x` (its first tensor's first dimension)."""
    return int((x if isinstance(x, torch.Tensor) else x[0]).shape[0])


def batch_slice(x: Inputs, start: int, stop: int) -> Inputs:
    """Examples ``start:stop`` of the input `x` (every tensor of a tuple)."""
    if isinstance(x, torch.Tensor):
        return x[start:stop]
    return tuple(t[start:stop] for t in x)


def cosine_lr(lr0: float, epochs: int) -> Callable[[int], float]:
    """η_e = η0 · (1 + cos(π e / E)) / 2 for epoch e = 0..E-1 (Loshchilov & Hutter 2017, eq. 5,
    without restarts and with η_min = 0)."""
    return lambda e: lr0 * 0.5 * (1.0 + math.cos(math.pi * e / max(epochs, 1)))


def train(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    *,
    lr: Callable[[int], float] | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train `model` in place for `epochs` passes over `loader`; return each epoch's mean loss.

    Parameters
    ----------
    lr : callable(epoch) -> float, optional
        Learning rate of every parameter group in each epoch (e.g. :func:`cosine_lr`); by
        default the optimizer's rates are left alone.
    on_epoch : callable(epoch, mean_loss), optional
        Called after each epoch (one host synchronization per epoch).

    Raises
    ------
    ValueError
        `epochs` < 0.
    NonFiniteError
        An epoch's mean loss is NaN or infinite (training diverged: the learning rate is
        too high for this model and initialization); raised at the end of that epoch, so a
        long run stops at once instead of training NaN weights to the end.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    device = next(model.parameters()).device
    model.train()
    losses = []
    for e in range(epochs):
        if lr is not None:
            for g in optimizer.param_groups:
                g["lr"] = lr(e)
        total, n = torch.zeros((), device=device), 0
        for x, y in loader:
            x, y = to_device(x, device), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            n += 1
        losses.append(float(total) / max(n, 1))
        if on_epoch is not None:
            on_epoch(e, losses[-1])
        if not math.isfinite(losses[-1]):
            raise NonFiniteError(f"training diverged in epoch {e + 1}: mean loss "
                                 f"{losses[-1]}; lower the learning rate (--lr)")
    return losses


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: Inputs,
    y: torch.Tensor,
    *,
    params: Mapping[str, torch.Tensor] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 4096,
) -> tuple[float, float]:
    """Mean loss and accuracy of `model` on ``(x, y)``.

    Parameters
    ----------
    x : tensor (N, ...) or tuple of tensors (N, ...), y : int64 tensor (N,)
        Moved to the model's device batch by batch.
    params : mapping name -> tensor, optional
        Values substituted for those parameters (:func:`torch.func.functional_call`), e.g.
        Δ(Θ) during a run; the model itself is not modified.
    loss_fn : default ``cross_entropy`` (mean).

    Returns
    -------
    (loss, accuracy) : floats; accuracy is the fraction of argmax predictions equal to `y`,
    in [0, 1]. The model is evaluated in ``eval`` mode and its mode restored.

    Raises
    ------
    DataError
        No examples (an accuracy of an empty set would read as 0).
    """
    if batch_len(x) == 0:
        raise DataError("cannot evaluate on an empty data set (0 examples)")
    loss_fn = loss_fn or nn.functional.cross_entropy
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        loss = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for i in range(0, batch_len(x), batch_size):
            xb = to_device(batch_slice(x, i, i + batch_size), device)
            yb = y[i : i + batch_size].to(device, non_blocking=True)
            out = model(xb) if params is None else functional_call(model, dict(params), (xb,))
            loss += loss_fn(out, yb).double() * yb.shape[0]
            correct += (out.argmax(dim=1) == yb).sum()
    finally:
        model.train(was)
    n = batch_len(x)
    return float(loss) / n, int(correct) / n
