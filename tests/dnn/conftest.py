"""Fixtures of the torch adapter's tests: small models and data, and the real MNIST if present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from compressopt.dnn.data import MNIST_FILES

#: ../shared/data/mnist beside the checkout (CI); COMPRESSOPT_MNIST_DIR overrides it
_SHARED_MNIST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"


def mnist_dir() -> Path | None:
    """The real MNIST directory, or None when neither the env var nor ../shared has it."""
    env = os.environ.get("COMPRESSOPT_MNIST_DIR")
    for d in ([Path(env)] if env else []) + [_SHARED_MNIST]:
        if all((d / f).is_file() for pair in MNIST_FILES.values() for f in pair):
            return d.resolve()
    return None


@pytest.fixture
def real_mnist() -> Path:
    d = mnist_dir()
    if d is None:
        pytest.skip(
            "real MNIST not found: set COMPRESSOPT_MNIST_DIR or put the IDX files in "
            f"{_SHARED_MNIST.resolve()}"
        )
    return d


class TinyNet(nn.Module):
    """Linear(5→7), tanh, Linear(7→3): smooth, so finite differences are accurate."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(5, 7)
        self.fc2 = nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


@pytest.fixture
def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 5, generator=g)
    y = torch.randint(0, 3, (48,), generator=g)
    return x, y


def tiny_net(dtype: torch.dtype = torch.float32, seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet().to(dtype)
