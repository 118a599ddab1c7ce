"""Parameter selection (defaults and patterns) and moving values in and out of a model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compressopt.dnn.models import LeNet5, LeNet300
from compressopt.dnn.params import read_parameters, select_parameters, write_parameters
from compressopt.errors import ShapeMismatchError


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.emb = nn.Embedding(5, 3)
        self.head = nn.Linear(4, 2)
        self.ln = nn.LayerNorm(2)
        self.scale = nn.Parameter(torch.ones(2))  # a bare parameter: not compressed by default


def test_default_selects_conv_and_linear_weights_only():
    sel = select_parameters(Mixed())
    assert list(sel) == ["conv.weight", "head.weight"]
    m = Mixed()
    sel = select_parameters(m)
    assert sel["conv.weight"] is m.conv.weight  # the model's own objects, not copies


def test_lenets_default_selection():
    assert list(select_parameters(LeNet300((1, 28, 28), 10))) == [
        "fc1.weight", "fc2.weight", "fc3.weight"
    ]
    assert list(select_parameters(LeNet5((1, 28, 28), 10))) == [
        "conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"
    ]


def test_include_and_exclude_patterns():
    m = Mixed()
    assert list(select_parameters(m, include="*.bias")) == [
        "conv.bias", "bn.bias", "head.bias", "ln.bias"
    ]
    # named_parameters order: a module's own parameters before its children's
    assert list(select_parameters(m, include=["emb.*", "scale"])) == ["scale", "emb.weight"]
    assert list(select_parameters(m, exclude="conv.*")) == ["head.weight"]
    assert list(select_parameters(m, include="*", exclude=["bn.*", "ln.*", "*.bias"])) == [
        "scale", "conv.weight", "emb.weight", "head.weight"
    ]


def test_bad_patterns_raise():
    m = Mixed()
    with pytest.raises(ValueError, match=r"pattern 'fc\*' matches no parameter"):
        select_parameters(m, include="fc*")
    with pytest.raises(ValueError, match="matches no parameter"):
        select_parameters(m, exclude="nothing")
    with pytest.raises(ValueError, match="no parameter left"):
        select_parameters(m, exclude="*.weight")


def test_shared_weight_appears_once():
    m = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3))
    m[2].weight = m[0].weight
    assert list(select_parameters(m)) == ["0.weight"]


def test_read_and_write_parameters():
    m = LeNet300((1, 8, 8), 10)
    sel = select_parameters(m)
    w = read_parameters(sel)
    assert all(w[n].data_ptr() != p.data_ptr() and torch.equal(w[n], p) for n, p in sel.items())
    new = {n: torch.full_like(t, 0.5) for n, t in w.items()}
    write_parameters(sel, new)
    assert torch.all(m.fc2.weight == 0.5)
    assert torch.all(new["fc2.weight"] == 0.5)  # source untouched
    assert not torch.all(m.fc2.bias == 0.5)  # only the selected tensors
    with pytest.raises(ShapeMismatchError, match="missing"):
        write_parameters(sel, {"fc1.weight": new["fc1.weight"]})
    with pytest.raises(ShapeMismatchError, match="has shape"):
        write_parameters(sel, {**new, "fc3.weight": torch.zeros(3)})
