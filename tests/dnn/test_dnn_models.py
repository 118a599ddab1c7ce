"""The LeNet models: parameter counts, shapes, errors."""

from __future__ import annotations

import pytest
import torch

from compressopt.dnn.models import LeNet5, LeNet300, build_model, count_parameters


def test_lenet5_caffe_has_431080_parameters():
    m = LeNet5((1, 28, 28), 10)
    assert count_parameters(m) == 431_080
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
    assert shapes == {
        "conv1.weight": (20, 1, 5, 5), "conv1.bias": (20,),
        "conv2.weight": (50, 20, 5, 5), "conv2.bias": (50,),
        "fc1.weight": (500, 800), "fc1.bias": (500,),
        "fc2.weight": (10, 500), "fc2.bias": (10,),
    }


def test_lenet300_parameter_counts():
    assert count_parameters(LeNet300((1, 28, 28), 10)) == 266_610
    assert count_parameters(LeNet300((1, 8, 8), 10)) == 64 * 300 + 300 + 300 * 100 + 100 + 1010
    weights = sum(p.numel() for n, p in LeNet300((1, 28, 28), 10).named_parameters()
                  if n.endswith("weight"))
    assert weights == 266_200 and round(0.05 * weights) == 13_310  # the LC papers' kappa


@pytest.mark.parametrize("name", ["lenet300", "lenet5"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8)])
def test_forward_shapes(name, shape):
    torch.manual_seed(0)
    m = build_model(name, shape, 10)
    out = m(torch.randn(3, *shape))
    assert out.shape == (3, 10) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_lenet5_on_digits_uses_padding():
    m = build_model("lenet5", (1, 8, 8), 10)
    assert m.conv1.padding == (2, 2) and m.fc1.in_features == 50 * 2 * 2
    assert build_model("lenet5", (1, 28, 28), 10).conv1.padding == (0, 0)


def test_model_errors():
    with pytest.raises(ValueError, match="needs larger inputs than 8x8"):
        LeNet5((1, 8, 8), 10)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        LeNet5((28, 28), 10)
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg", (1, 28, 28), 10)
    with pytest.raises(ValueError, match="positive"):
        LeNet300((1, 28, 28), 0)
