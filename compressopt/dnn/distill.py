"""Knowledge distillation from the reference model, a term added to the training loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True, eq=False)
class Distillation:
    """The distillation term ``weight · KL(softmax(z_t/T) || softmax(z/T))``, batch mean.

    Hinton, Vinyals & Dean 2015 (*Distilling the knowledge in a neural network*): the
    compressed network (logits z) is trained to match the softened outputs of a teacher
    (logits z_t, here the uncompressed reference) as well as the labels. The term is added
    to the data loss ℓ(z, y) wherever :class:`~compressopt.dnn.oracle.TorchOracle` evaluates
    or trains L (L steps, masked or straight-through retraining, ``value``/``grad``), so
    the coordinators minimize ``L(w) = ℓ + weight·KL`` throughout.

    Parameters
    ----------
    teacher : torch.nn.Module
        Maps the inputs to logits of the same shape as the student's (N, C). Evaluated in
        eval mode under ``torch.no_grad`` (its mode is restored after each call); never
        trained or modified. On the inputs' device.
    temperature : float > 0
        T, the softmax temperature of both networks.
    weight : float >= 0, optional
        Factor of the KL term. Default: T, as in Yang et al.'s code (their ``--kdtemp``:
        cross-entropy + T · soft cross-entropy, which differs from the KL by the teacher's
        entropy, a constant); Hinton et al. use T².

    Raises
    ------
    ValueError
        T not positive and finite, or a negative or non-finite weight.

    Notes
    -----
    Cost: one teacher forward pass per minibatch (no backward). The KL is 0 when the
    student's logits equal the teacher's up to a per-row constant.
    """

    teacher: nn.Module
    temperature: float = 4.0
    weight: float | None = None

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be positive and finite, got {self.temperature}")
        if self.weight is not None and not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ValueError(f"weight must be >= 0 and finite, got {self.weight}")

    @property
    def factor(self) -> float:
        """The weight of the KL term (T unless given)."""
        return self.temperature if self.weight is None else self.weight

    def teacher_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """z_t = teacher(inputs) in eval mode, without gradients."""
        was = self.teacher.training
        self.teacher.eval()
        try:
            with torch.no_grad():
                return self.teacher(inputs)
        finally:
            self.teacher.train(was)

    def __call__(self, logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The term for student `logits` (N, C) on `inputs`: a 0-d tensor (differentiable).

        Raises
        ------
        ValueError
            The teacher's logits do not have the shape of `logits`.
        """
        target = self.teacher_logits(inputs)
        if target.shape != logits.shape:
            raise ValueError(
                f"teacher logits have shape {tuple(target.shape)}, the student's "
                f"{tuple(logits.shape)}"
            )
        t = self.temperature
        kl = F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(target / t, dim=1),
                      reduction="batchmean", log_target=True)
        return self.factor * kl
