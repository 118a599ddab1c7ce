"""The LeNet models of the LC papers, written out (no torchvision).

* LeNet-300-100 (LeCun et al. 1998): a fully connected net ``d -> 300 -> 100 -> classes``
  with ReLU; d is the number of input pixels (784 on MNIST, 64 on scikit-learn's digits).
* LeNet-5, Caffe variant (the ``lenet.prototxt`` of Caffe's MNIST example, used by Han et al.
  2016 and the LC papers): conv 5×5 × 20 → max-pool 2 → conv 5×5 × 50 → max-pool 2 →
  fc 500 (ReLU) → fc classes; 431,080 parameters on 28×28 inputs with 10 classes.

Both take inputs of shape ``(N, C, H, W)`` (LeNet-300-100 flattens them) and return logits of
shape ``(N, classes)``, float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MODELS", "LeNet5", "LeNet300", "build_model", "count_parameters"]


class LeNet300(nn.Module):
    """LeNet-300-100: ``fc1 (d→300), ReLU, fc2 (300→100), ReLU, fc3 (100→classes)``.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of one example, e.g. ``(1, 28, 28)``; ``d = prod(input_shape)``.
    num_classes : int
        Output logits.

    Notes
    -----
    ``(d·300 + 300) + (300·100 + 100) + (100·c + c)`` parameters: 266,610 for MNIST
    (266,200 weights, of which 5 % is the 13,310 kept by the LC pruning experiments).

    References
    ----------
    .. [1] LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
       recognition", Proc. IEEE 86(11), 1998.

    Examples
    --------
    >>> count_parameters(LeNet300((1, 28, 28), 10))
    266610
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int = 10) -> None:
        super().__init__()
        d = math.prod(input_shape)
        _check_positive(d, num_classes)
        self.fc1 = nn.Linear(d, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """LeNet-5, Caffe variant: conv 20, pool, conv 50, pool, fc 500, ReLU, fc classes.

    Parameters
    ----------
    input_shape : sequence of int
        ``(C, H, W)`` of one example.
    num_classes : int
    padding : int
        Zero padding of both convolutions. Caffe's net uses 0 (28×28 → 24 → 12 → 8 → 4, so
        fc1 sees 50·4·4 = 800 inputs); small images such as the 8×8 digits need 2.

    Raises
    ------
    ValueError
        The input is too small for two 5×5 convolutions and two 2×2 poolings at this padding.

    Notes
    -----
    On 28×28×1 inputs with 10 classes: 520 + 25,050 + 400,500 + 5,010 = 431,080 parameters,
    as in Han et al. 2016 (Table 1) and Carreira-Perpiñán & Idelbayev 2018.

    Examples
    --------
    >>> count_parameters(LeNet5((1, 28, 28), 10))
    431080
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int = 10, *, padding: int = 0
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"LeNet5 needs (C, H, W) inputs, got shape {tuple(input_shape)}")
        c, h, w = (int(s) for s in input_shape)
        _check_positive(c * h * w, num_classes)
        side = [h, w]
        for _ in range(2):  # conv 5x5 then max-pool 2x2 (floor)
            side = [(s + 2 * padding - 4) // 2 for s in side]
        if min(side) < 1:
            raise ValueError(
                f"LeNet5 with padding={padding} needs larger inputs than {h}x{w} "
                "(use padding=2 for 8x8 images)"
            )
        self.conv1 = nn.Conv2d(c, 20, 5, padding=padding)
        self.conv2 = nn.Conv2d(20, 50, 5, padding=padding)
        self.fc1 = nn.Linear(50 * side[0] * side[1], 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(self.conv1(x), 2)
        x = torch.max_pool2d(self.conv2(x), 2)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def _check_positive(d: int, num_classes: int) -> None:
    if d < 1 or num_classes < 1:
        raise ValueError(f"need positive input size and classes, got {d} and {num_classes}")


MODELS = {"lenet300": LeNet300, "lenet5": LeNet5}


def build_model(name: str, input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """A model of :data:`MODELS` by name, sized for the data.

    LeNet-5 gets padding 2 when the images are smaller than 28×28 (the 8×8 digits), so
    that two 5×5 convolutions fit; on MNIST it is Caffe's net exactly.

    Raises
    ------
    ValueError
        Unknown `name`.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if name == "lenet5":
        padding = 0 if min(input_shape[-2:]) >= 28 else 2
        return LeNet5(input_shape, num_classes, padding=padding)
    return MODELS[name](input_shape, num_classes)


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of `model` (weights, biases, everything)."""
    return sum(p.numel() for p in model.parameters())
