"""A torch model, a loss, a data loader and an optimizer as the coordinators' loss oracle.

The compressed parameters w (by default the weights of the Conv/Linear layers, see
:func:`~compressopt.dnn.params.select_parameters`) are what the coordinator sees; every other
parameter (biases, norm layers) is the oracle's own and is trained inside the L step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.data import default_collate

from compressopt.dnn import distributed
from compressopt.dnn.distill import Distillation
from compressopt.dnn.params import check_like, read_parameters, select_parameters, write_parameters
from compressopt.dnn.train import Inputs, batch_len, batch_slice, to_device

__all__ = ["LStepSchedule", "MinibatchOracle", "TorchOracle", "clipped_lr"]

logger = logging.getLogger("compressopt.dnn")

Batch = tuple[Inputs, torch.Tensor]


def clipped_lr(lr: float, mu: float) -> float:
    """The L step's learning rate η' = min(η, 1/μ).

    The penalty (μ/2)||w - c||² has curvature μ: a gradient step of size 1/μ on it alone lands
    on the center c, and steps above 2/μ diverge. Clipping keeps SGD stable as μ → ∞
    (Carreira-Perpiñán 2017, eq. 17).

    Raises
    ------
    ValueError
        `lr` or `mu` not positive and finite.

    Examples
    --------
    >>> clipped_lr(0.1, 2.0), clipped_lr(0.1, 50.0)
    (0.1, 0.02)
    """
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"learning rate must be positive and finite, got {lr}")
    if not (mu > 0 and math.isfinite(mu)):
        raise ValueError(f"mu must be positive and finite, got {mu}")
    return min(lr, 1.0 / mu)


@dataclass(frozen=True)
class LStepSchedule:
    """How long each L step trains, and at what learning rate.

    Parameters
    ----------
    epochs : int >= 1
        Passes over the loader per L step.
    first_epochs : int >= 1, optional
        Passes in the first L step (k = 0), which starts from the reference and usually moves
        furthest; the LC toolkit doubles it. Default: `epochs`.
    iterations : int >= 1, optional
        Minibatch steps per L step instead of epochs (the loader is cycled; the first L step
        also does this many).
    lr_decay : float in (0, 1]
        η_k = η0 · lr_decay^k for the k-th L step, with η0 the optimizer's learning rate at
        construction (per parameter group); e.g. 0.98 as in the LC papers.
    clip : bool
        Use η'_k = min(η_k, 1/μ_k) (:func:`clipped_lr`).
    reset_momentum : bool
        Clear the optimizer's state (momentum buffers) at the start of every L step, which
        then starts like a fresh optimizer (as the LC toolkit does); False carries it over.
    warmup : int >= 0
        L steps of linear warm-up: η_k is multiplied by (k + 1)/warmup for k < warmup.
    cosine : int >= 1, optional
        L steps of a cosine decay after the warm-up: η_k is multiplied by
        ½(1 + cos(π t/T)), t = min(max(k − warmup, 0), T), T = `cosine` (e.g. the run's
        number of L steps minus `warmup`; Yang et al.'s LeNet-5 recipe, per L step instead of
        per minibatch). Both factors multiply ``lr_decay^k``; the rate is constant within an
        L step.

    Examples
    --------
    >>> s = LStepSchedule(warmup=2, cosine=4, clip=False)
    >>> [round(s.lr_at(1.0, k, 1.0), 3) for k in range(6)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """

    epochs: int = 1
    first_epochs: int | None = None
    iterations: int | None = None
    lr_decay: float = 1.0
    clip: bool = True
    reset_momentum: bool = True
    warmup: int = 0
    cosine: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "first_epochs", "iterations"):
            v = getattr(self, name)
            if v is None and name != "epochs":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an int >= 0, got {self.warmup!r}")
        c = self.cosine
        if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
            raise ValueError(f"cosine must be a positive int, got {c!r}")

    def epochs_at(self, step: int) -> int:
        """Passes over the data in L step `step` (ignored when `iterations` is set)."""
        return self.first_epochs if step == 0 and self.first_epochs is not None else self.epochs

    def lr_at(self, lr0: float, step: int, mu: float) -> float:
        """η'_k for the base rate `lr0`, step k = `step` and penalty `mu`."""
        lr = lr0 * self.lr_decay**step
        if step < self.warmup:
            lr *= (step + 1) / self.warmup
        if self.cosine is not None:
            t = min(max(step - self.warmup, 0), self.cosine)
            lr *= 0.5 * (1.0 + math.cos(math.pi * t / self.cosine))
        return clipped_lr(lr, mu) if self.clip else lr


class TorchOracle:
    """Loss oracle (:class:`~compressopt.solvers.base.DifferentiableOracle`) of a torch model.

    Parameters
    ----------
    model : torch.nn.Module
        Owned by the oracle during a solve: ``lstep`` writes its iterate into the model and
        trains it (the compressed parameters and all the others). On any device; batches are
        moved to the device of the compressed parameters.
    loss_fn : callable(logits, targets) -> 0-d tensor
        A mean-reduced loss, e.g. ``torch.nn.CrossEntropyLoss()``.
    loader : iterable of (inputs, targets)
        Training minibatches; iterated once per epoch (a :class:`~torch.utils.data.DataLoader`).
    optimizer : torch.optim.Optimizer
        Over (at least) the compressed parameters. Its learning rates at construction are the
        base rates η0 of the schedule; ``lstep`` overwrites the groups' ``lr``.
    params : mapping name -> parameter, optional
        The compressed parameters (model's own objects). Default
        :func:`~compressopt.dnn.params.select_parameters` ``(model)``.
    schedule : LStepSchedule
    eval_data : (inputs, targets), optional
        The fixed data on which :meth:`value` and :meth:`grad` evaluate L. Default: the first
        `eval_size` examples of ``loader.dataset`` (in index order).
    eval_size : int
        Size of the default evaluation subset (all of the data set if smaller).
    on_epoch : callable(step, epoch, mean_loss), optional
        Called after every pass over the loader in an L step with the mean minibatch loss
        L (without the penalty) of that pass, e.g. to drive a progress display.
    penalty : {"gradient", "prox"}
        How the L step treats ``(μ/2)||w - c||²``: "gradient" (default) adds its gradient
        to the loss's before each optimizer step; "prox" steps on L alone and then applies
        the penalty's proximal map with the step's learning rate η,
        ``w ← (w + ημ c)/(1 + ημ)`` (Yang et al. 2020, eq. 5: proximal SGD; momentum then
        acts on L's gradients only). The attribute may be changed between L steps.
    distill : Distillation, optional
        Knowledge distillation (:class:`~compressopt.dnn.distill.Distillation`): its term
        ``weight·KL(teacher || model)`` on each batch's inputs is added to `loss_fn`
        everywhere L is evaluated or trained, so L = data loss + distillation term. The
        attribute may be changed between calls (e.g. set only for a final retraining).
    train_model : torch.nn.Module, optional
        The module called on the minibatches of the L steps and of :meth:`retrain` (the
        passes that update the model); default `model`. Under ``torch.distributed``, a
        :class:`~torch.nn.parallel.DistributedDataParallel` wrapper of `model`
        (:func:`compressopt.dnn.distributed.wrap_model`): its backward pass averages the
        gradients over the ranks, so with a sharded loader each rank's optimizer takes the
        step of the ranks' union minibatch and every rank holds the same weights. ``value``
        and ``grad`` evaluate `model` itself on the evaluation subset (the same data on
        every rank, no communication).

    Attributes
    ----------
    iterations : int
        Minibatch steps done over all L steps (the optimizer's step counter).
    lstep_losses : list of float
        Mean minibatch loss of each L step.

    Raises
    ------
    ValueError
        A compressed parameter is not in the optimizer, or `eval_size` < 1.
    TypeError
        No `eval_data` and ``loader.dataset`` cannot be indexed.

    Notes
    -----
    ``value(w)`` and ``grad(w)`` cost one forward (and backward) pass over the evaluation
    subset with `w` substituted for the compressed parameters through
    :func:`torch.func.functional_call` (the model is not modified), the other parameters
    at their current values, in ``eval`` mode. So L(w) is an estimate of the training loss on
    a fixed subset, cheap enough for the coordinators' ``eval_loss`` histories.

    The L step minimizes ``L(w) + (μ/2)||w - c||²`` (Carreira-Perpiñán 2017, eq. 9/13) by the
    optimizer on minibatches: after each backward pass the penalty's gradient μ(w - c) is
    added to the compressed parameters' gradients, then the optimizer steps, with learning
    rate η'_k (:meth:`LStepSchedule.lr_at`); with ``penalty="prox"`` the optimizer steps on L
    and the penalty's proximal map follows each step. It returns fresh copies of the trained
    w, on the model's device. Inputs `w` and `center` are never modified.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        loader: Iterable[Batch],
        optimizer: torch.optim.Optimizer,
        *,
        params: Mapping[str, nn.Parameter] | None = None,
        schedule: LStepSchedule | None = None,
        eval_data: Batch | None = None,
        eval_size: int = 2048,
        on_epoch: Callable[[int, int, float], None] | None = None,
        penalty: str = "gradient",
        distill: Distillation | None = None,
        train_model: nn.Module | None = None,
    ) -> None:
        if penalty not in ("gradient", "prox"):
            raise ValueError(f"penalty must be 'gradient' or 'prox', got {penalty!r}")
        self.penalty = penalty
        self.model = model
        self.train_model = model if train_model is None else train_model
        if train_model is None and distributed.world_size() > 1:
            logger.warning("torch.distributed has %d ranks but the L step trains the bare model "
                           "(no DistributedDataParallel): the ranks' weights will diverge; pass "
                           "train_model=distributed.wrap_model(model)", distributed.world_size())
        self.loss_fn = loss_fn
        self.distill = distill
        self.loader = loader
        self.optimizer = optimizer
        self.params = dict(select_parameters(model) if params is None else params)
        self.schedule = schedule if schedule is not None else LStepSchedule()
        self.on_epoch = on_epoch
        in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
        missing = [n for n, p in self.params.items() if id(p) not in in_opt]
        if missing:
            raise ValueError(f"compressed parameters not in the optimizer: {missing}")
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.device = next(iter(self.params.values())).device
        if eval_size < 1:
            raise ValueError(f"eval_size must be >= 1, got {eval_size}")
        if eval_data is None:
            eval_data = self._subset(eval_size)
        self.eval_data = self._to_device(eval_data)
        self.iterations = 0
        self.lstep_losses: list[float] = []

    # -- data ------------------------------------------------------------------------------

    def _subset(self, n: int) -> Batch:
        ds = getattr(self.loader, "dataset", None)
        if ds is None or not hasattr(ds, "__getitem__") or not hasattr(ds, "__len__"):
            raise TypeError("the loader has no indexable dataset: pass eval_data=(inputs, targets)")
        return default_collate([ds[i] for i in range(min(n, len(ds)))])

    def _to_device(self, batch: Batch) -> Batch:
        x, y = batch
        return to_device(x, self.device), y.to(self.device, non_blocking=True)

    def _passes(self, step: int) -> Iterator[Iterator[Batch]]:
        """The L step's data: one iterator of batches per pass (an epoch, or `iterations`)."""
        s = self.schedule
        if s.iterations is None:
            for _ in range(s.epochs_at(step)):
                yield iter(self.loader)
            return

        def cycled() -> Iterator[Batch]:
            done = 0
            while True:
                empty = True
                for batch in self.loader:
                    empty = False
                    yield batch
                    done += 1
                    if done == s.iterations:
                        return
                if empty:
                    raise ValueError("the loader yields no batches")

        yield cycled()

    # -- the oracle ------------------------------------------------------------------------

    def objective(
        self, logits: torch.Tensor, inputs: Inputs, targets: torch.Tensor
    ) -> torch.Tensor:
        """L on one batch: ``loss_fn(logits, targets)`` plus the distillation term if any."""
        loss = self.loss_fn(logits, targets)
        if self.distill is not None:
            loss = loss + self.distill(logits, inputs)
        return loss

    def _loss(self, w: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Mean loss over the evaluation subset with `w` substituted (a 0-d tensor)."""
        x, y = self.eval_data
        total = torch.zeros((), device=self.device)
        chunk = 4096
        n = batch_len(x)
        for i in range(0, n, chunk):
            xi = batch_slice(x, i, i + chunk)
            out = functional_call(self.model, dict(w), (xi,))
            total = total + self.objective(out, xi, y[i : i + chunk]) * out.shape[0]
        return total / n

    def _in_eval_mode(self, f: Callable[[], torch.Tensor]) -> torch.Tensor:
        was = self.model.training
        self.model.eval()
        try:
            return f()
        finally:
            self.model.train(was)

    def value(self, w: Mapping[str, torch.Tensor]) -> float:
        """L(w): the mean loss over the evaluation subset, as a Python float.

        Raises
        ------
        ShapeMismatchError, TypeError
            `w` does not match the compressed parameters in names, shapes or device.
        """
        check_like(w, self.params)
        with torch.no_grad():
            return float(self._in_eval_mode(lambda: self._loss(w)))

    def grad(self, w: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """∇L(w) over the evaluation subset: new tensors with the names, shapes and device of w.

        Raises
        ------
        ShapeMismatchError, TypeError
            As :meth:`value`.
        """
        check_like(w, self.params)
        leaves = {n: t.detach().requires_grad_(True) for n, t in w.items()}
        loss = self._in_eval_mode(lambda: self._loss(leaves))
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        return {
            n: torch.zeros_like(leaves[n]) if g is None else g
            for n, g in zip(leaves, grads, strict=True)
        }

    def learning_rates(self, mu: float, step: int) -> list[float]:
        """η'_k of every parameter group for L step `step` at penalty `mu`."""
        return [self.schedule.lr_at(lr0, step, mu) for lr0 in self.base_lrs]

    def lstep(
        self,
        w: Mapping[str, torch.Tensor],
        center: Mapping[str, torch.Tensor],
        mu: float,
        *,
        step: int = 0,
    ) -> dict[str, torch.Tensor]:
        """The L step: train ``L(v) + (μ/2)||v - center||²`` from v = `w`.

        Parameters
        ----------
        w : mapping name -> tensor
            Warm start for the compressed parameters (copied into the model).
        center : mapping name -> tensor
            Δ(Θ) + λ/μ (augmented Lagrangian, eq. 13) or Δ(Θ) (quadratic penalty, eq. 9).
        mu : float > 0
        step : int
            The coordinator's iteration k, for the learning rate η0·decay^k and the first
            L step's epochs.

        Returns
        -------
        dict name -> tensor
            The trained compressed parameters: fresh tensors on the model's device.

        Raises
        ------
        ShapeMismatchError, TypeError
            `w` or `center` does not match the compressed parameters.
        ValueError
            `mu` not positive and finite.
        """
        check_like(w, self.params)
        check_like(center, self.params, "center")
        logger.debug("L step %d: mu=%.4g", step, mu)

        def add_penalty_grad(named: list[tuple[str, nn.Parameter]]) -> None:
            for n, p in named:  # + ∇ (μ/2)||w - c||² = μ (w - c)
                pen = (p - center[n]).mul_(mu)
                if p.grad is None:
                    p.grad = pen
                else:
                    p.grad.add_(pen)

        lrs = self.learning_rates(mu, step)
        if self.penalty == "prox":
            group_lr = {id(p): lr for g, lr in zip(self.optimizer.param_groups, lrs, strict=True)
                        for p in g["params"]}

            def prox(named: list[tuple[str, nn.Parameter]]) -> None:
                for n, p in named:  # argmin_v (μ/2)||v - c||² + ||v - p||²/(2η)
                    b = group_lr[id(p)] * mu
                    p.add_(center[n], alpha=b).div_(1.0 + b)

            mean = self._train(w, lrs, self._passes(step), step,
                               after_backward=lambda named: None, after_step=prox)
        else:
            mean = self._train(w, lrs, self._passes(step), step,
                               after_backward=add_penalty_grad)
        self.lstep_losses.append(mean)
        return read_parameters(self.params)

    def retrain(
        self,
        w: Mapping[str, torch.Tensor],
        mask: Mapping[str, torch.Tensor],
        *,
        steps: int | None = None,
        project: Callable[[dict[str, torch.Tensor]], Mapping[str, torch.Tensor]] | None = None,
        lr: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Masked retraining: train L with the zeros of `mask` held at zero.

        The :class:`~compressopt.solvers.base.RetrainOracle` method (e.g. after SLR's hard
        pruning, Zhou et al. §4): `steps` epochs (default: the schedule's ``epochs``) of the
        optimizer at its base learning rates (or `lr` for every group), with the compressed
        parameters' gradients multiplied by the mask and the masked entries reset to 0 after
        every step (momentum cannot revive them). Other parameters train freely. Returns
        fresh tensors.

        With `project` (a map onto a set, e.g. quantization with fixed bit widths), the
        retraining is straight-through (BinaryConnect; the fine-tuning of Yang et al.'s
        code): the model computes with ``q = project(u)`` of latent weights u (masked), the
        optimizer's step on q is added to u, and q is recomputed after every step. The
        result is ``project(u)`` of the last step. `project` takes and returns dicts of
        tensors shaped like `w`, on the model's device; it is called once per minibatch.

        Raises
        ------
        ShapeMismatchError, TypeError
            `w` or `mask` does not match the compressed parameters.
        ValueError
            `steps` < 1 or `lr` not positive.
        """
        check_like(w, self.params)
        check_like(mask, self.params, "mask")
        epochs = self.schedule.epochs if steps is None else steps
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        if lr is not None and not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be positive and finite, got {lr}")
        keep = {n: m.to(device=self.device, dtype=self.params[n].dtype) for n, m in mask.items()}
        lrs = list(self.base_lrs) if lr is None else [lr] * len(self.base_lrs)
        latent = {n: t.detach().to(self.device) * keep[n] for n, t in w.items()}

        def masked_projection() -> dict[str, torch.Tensor]:
            q = project(latent)  # type: ignore[misc]
            return {n: q[n] * keep[n] for n in latent}

        q = masked_projection() if project is not None else latent

        def mask_grads(named: list[tuple[str, nn.Parameter]]) -> None:
            for n, p in named:
                if p.grad is not None:
                    p.grad.mul_(keep[n])

        def mask_weights(named: list[tuple[str, nn.Parameter]]) -> None:
            for n, p in named:
                p.mul_(keep[n])

        def straight_through(named: list[tuple[str, nn.Parameter]]) -> None:
            for n, p in named:  # u += (the optimizer's step on q), masked
                latent[n].add_(p - q[n]).mul_(keep[n])
            q.update(masked_projection())
            for n, p in named:
                p.copy_(q[n])

        self._train(
            q, lrs, (iter(self.loader) for _ in range(epochs)), -1,
            after_backward=mask_grads,
            after_step=mask_weights if project is None else straight_through,
        )
        return read_parameters(self.params)

    def _train(
        self,
        w: Mapping[str, torch.Tensor],
        lrs: list[float],
        passes: Iterable[Iterator[Batch]],
        step: int,
        *,
        after_backward: Callable[[list[tuple[str, nn.Parameter]]], None],
        after_step: Callable[[list[tuple[str, nn.Parameter]]], None] | None = None,
    ) -> float:
        """Write `w` into the model and train over `passes`; the mean minibatch loss.

        ``after_backward`` edits the compressed parameters' gradients (under no_grad) before
        each optimizer step, ``after_step`` their values after it.
        """
        write_parameters(self.params, w)
        if self.schedule.reset_momentum:
            self.optimizer.state.clear()
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.model.train()
        named = list(self.params.items())
        sum_loss = torch.zeros((), device=self.device)
        n_batches = 0
        for epoch, batches in enumerate(passes):
            pass_loss = torch.zeros((), device=self.device)
            pass_batches = 0
            for x, y in batches:
                x, y = self._to_device((x, y))
                self.optimizer.zero_grad(set_to_none=True)
                loss = self.objective(self.train_model(x), x, y)
                loss.backward()
                with torch.no_grad():
                    after_backward(named)
                self.optimizer.step()
                if after_step is not None:
                    with torch.no_grad():
                        after_step(named)
                pass_loss += loss.detach()
                pass_batches += 1
            self.iterations += pass_batches
            n_batches += pass_batches
            sum_loss += pass_loss
            if self.on_epoch is not None and pass_batches:
                self.on_epoch(step, epoch, float(pass_loss) / pass_batches)
        return float(sum_loss) / max(n_batches, 1)


class MinibatchOracle:
    """A :class:`TorchOracle` seen through minibatch gradients, for gradient-step coordinators.

    :meth:`grad` returns the gradient of the loss on the *next* minibatch of the loader
    (cycled, a stochastic gradient) with `w` substituted for the compressed parameters, as
    APGDSSM's inner iterations need (Li & Xin 2022, Algorithm 1: one gradient at the projected
    point per iteration). The uncompressed parameters (biases) take an SGD step (Nesterov
    momentum 0.9) on the same minibatch at learning rate ``lr * lr_decay**epoch``, so they
    train alongside. :meth:`value` is the wrapped oracle's (the fixed evaluation subset).

    Parameters
    ----------
    oracle : TorchOracle
    lr : float > 0
        Learning rate of the uncompressed parameters.
    lr_decay : float in (0, 1]
        Per-epoch decay of `lr`.

    Under ``torch.distributed`` (more than one rank), the gradients are averaged over the
    ranks (each rank's loader draws its own shard), so every rank takes the same step.

    Attributes
    ----------
    steps_per_epoch : int
        Minibatches in one pass over the loader (coordinators use it as an epoch).
    calls : int
        Gradients computed so far.
    """

    def __init__(self, oracle: TorchOracle, *, lr: float, lr_decay: float = 1.0) -> None:
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be positive and finite, got {lr}")
        if not 0.0 < lr_decay <= 1.0:
            raise ValueError(f"lr_decay must be in (0, 1], got {lr_decay}")
        self.oracle = oracle
        self.lr, self.lr_decay = lr, lr_decay
        compressed = {id(p) for p in oracle.params.values()}
        self.free = [p for p in oracle.model.parameters() if id(p) not in compressed]
        self.free_optimizer = (
            torch.optim.SGD(self.free, lr=lr, momentum=0.9, nesterov=True) if self.free else None
        )
        self.steps_per_epoch = len(oracle.loader)  # type: ignore[arg-type]
        if self.steps_per_epoch < 1:
            raise ValueError("the loader yields no batches")
        self.calls = 0
        self._batches: Iterator[Batch] = iter(())
        self._epoch_loss = torch.zeros((), device=oracle.device)

    def value(self, w: Mapping[str, torch.Tensor]) -> float:
        """L(w) on the wrapped oracle's evaluation subset."""
        return self.oracle.value(w)

    def _next_batch(self) -> Batch:
        for batch in self._batches:
            return self.oracle._to_device(batch)
        self._batches = iter(self.oracle.loader)
        return self.oracle._to_device(next(self._batches))

    def grad(self, w: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """∇L at `w` on the next minibatch (train mode); steps the uncompressed parameters.

        Every `steps_per_epoch` calls the epoch's mean minibatch loss is appended to the
        wrapped oracle's ``lstep_losses``.
        """
        o = self.oracle
        check_like(w, o.params)
        x, y = self._next_batch()
        leaves = {n: t.detach().requires_grad_(True) for n, t in w.items()}
        o.model.train()
        if self.free_optimizer is not None:
            self.free_optimizer.zero_grad(set_to_none=True)
            for g in self.free_optimizer.param_groups:
                g["lr"] = self.lr * self.lr_decay ** (self.calls // self.steps_per_epoch)
        loss = o.objective(functional_call(o.model, dict(leaves), (x,)), x, y)
        grads = torch.autograd.grad(loss, list(leaves.values()) + self.free, allow_unused=True)
        if distributed.world_size() > 1:  # each rank's batch is a shard: average them
            grads = tuple(distributed.all_average(grads))
        if self.free_optimizer is not None:
            for p, g in zip(self.free, grads[len(leaves):], strict=True):
                p.grad = g
            self.free_optimizer.step()
        self.calls += 1
        o.iterations += 1
        self._epoch_loss += loss.detach()
        if self.calls % self.steps_per_epoch == 0:
            o.lstep_losses.append(float(self._epoch_loss) / self.steps_per_epoch)
            self._epoch_loss.zero_()
        return {
            n: torch.zeros_like(leaves[n]) if g is None else g
            for n, g in zip(leaves, grads[: len(leaves)], strict=True)
        }
