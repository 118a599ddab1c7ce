"""The models: parameter counts, shapes, errors; ResNet-20 and the transformer through every
coordinator."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compressopt.dnn.models import (
    INPUT_SIZES,
    LeNet5,
    LeNet300,
    ResNet20,
    TransformerClassifier,
    build_model,
    count_parameters,
)


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


# -- ResNet-20 and the transformer classifier ------------------------------------------------


def test_resnet20_has_the_papers_parameter_count():
    """0.27 M on CIFAR-10 (He et al. 2016, Table 6): 269,722 with BN, option A (no
    projection shortcuts)."""
    m = ResNet20((3, 32, 32), 10)
    assert count_parameters(m) == 269_722
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    assert len(convs) == 19 and all(c.bias is None for c in convs)
    assert [c.out_channels for c in convs] == [16] * 7 + [32] * 6 + [64] * 6
    assert [c.stride for c in convs if c.stride != (1, 1)] == [(2, 2), (2, 2)]
    # channels and classes from the data: MNIST (1 channel), 100 classes
    m1 = build_model("resnet20", (1, 32, 32), 100)
    assert m1.conv1.in_channels == 1 and m1.fc.out_features == 100
    assert INPUT_SIZES["resnet20"] == 32


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 32, 32), (1, 28, 28), (2, 8, 8)])
def test_resnet20_forward(shape):
    torch.manual_seed(0)
    m = build_model("resnet20", shape, 10)
    out = m(torch.randn(4, *shape))
    assert out.shape == (4, 10) and torch.isfinite(out).all()


def test_resnet20_option_a_shortcut():
    """With the block's convolutions zeroed, a stride-2 block outputs
    relu(x subsampled by 2, zero-padded from 16 to 32 channels): no projection."""
    m = ResNet20((3, 32, 32), 10).eval()
    block = m.layers[3]  # first block of stage 2
    assert block.stride == 2 and block.pad == 16
    with torch.no_grad():
        block.conv1.weight.zero_()
        block.conv2.weight.zero_()
    x = torch.randn(2, 16, 8, 8)
    expect = torch.zeros(2, 32, 4, 4)
    expect[:, 8:24] = x[:, :, ::2, ::2]
    torch.testing.assert_close(block(x), torch.relu(expect))
    identity = m.layers[1]
    with torch.no_grad():
        identity.conv1.weight.zero_()
        identity.conv2.weight.zero_()
    torch.testing.assert_close(identity(x), torch.relu(x))


def test_resnet20_errors():
    with pytest.raises(ValueError, match=r"needs \(C, H, W\)"):
        ResNet20((32, 32), 10)
    with pytest.raises(ValueError, match="at least 4x4"):
        ResNet20((1, 3, 3), 10)


def test_transformer_on_images():
    torch.manual_seed(0)
    m = build_model("transformer", (1, 28, 28), 10)
    assert m.pos.shape == (1, 49, 64)  # 4x4 patches
    assert build_model("transformer", (1, 8, 8), 10).pos.shape == (1, 16, 64)  # 2x2 patches
    out = m(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10) and torch.isfinite(out).all()


def test_transformer_on_tokens_and_tuple_input():
    torch.manual_seed(0)
    m = build_model("transformer", (6,), 4, vocab_size=30).eval()
    ids = torch.randint(0, 30, (5, 6))
    out = m(ids)
    assert out.shape == (5, 4) and torch.isfinite(out).all()
    mask = torch.zeros(5, 6, dtype=torch.bool)
    mask[:, 4:] = True  # the last two positions are padding
    with torch.no_grad():
        a = m((ids, mask))
        other = ids.clone()
        other[:, 4:] = (other[:, 4:] + 7) % 30  # change only padded tokens
        torch.testing.assert_close(m((other, mask)), a)  # padding ignored
        torch.testing.assert_close(m(ids[:, :4]), a, rtol=1e-5, atol=1e-5)  # = shorter input
        assert not torch.allclose(m(other), out)  # without the mask they count
    built = TransformerClassifier(((6,), (6,)), 4, vocab_size=30)  # a tuple input's shapes
    assert built.pos.shape == (1, 6, 64)


def test_transformer_errors():
    with pytest.raises(ValueError, match="takes images; the data set holds token ids"):
        build_model("resnet20", (6,), 4, vocab_size=30)
    m = TransformerClassifier((6,), 4, vocab_size=30)
    with pytest.raises(TypeError, match="int64 token ids"):
        m(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="7 tokens, more than the 6"):
        m(torch.zeros(2, 7, dtype=torch.int64))
    with pytest.raises(ValueError, match="dim % heads"):
        TransformerClassifier((1, 8, 8), 3, dim=30, heads=4)
    with pytest.raises(ValueError, match=r"patch must be in \[1, 8\]"):
        TransformerClassifier((1, 8, 8), 3, patch=9)
    with pytest.raises(ValueError, match=r"needs \(L,\) inputs"):
        TransformerClassifier((1, 8, 8), 3, vocab_size=10)


# -- both models through every coordinator, on synthetic data --------------------------------


def _synthetic(kind):
    g = torch.Generator().manual_seed(0)
    if kind == "resnet20":
        x = torch.randn(32, 1, 12, 12, generator=g)
        return x, (x.mean(dim=(1, 2, 3)) > 0).long(), build_model("resnet20", (1, 12, 12), 2)
    if kind == "vit":
        x = torch.randn(32, 1, 8, 8, generator=g)
        return x, (x[:, 0, 0, 0] > 0).long(), build_model("transformer", (1, 8, 8), 2)
    ids = torch.randint(0, 12, (32, 6), generator=g)
    mask = torch.zeros(32, 6, dtype=torch.bool)
    mask[::2, 5] = True
    x = (ids, mask)
    return x, (ids[:, 0] < 6).long(), build_model("transformer", (6,), 2, vocab_size=12)


@pytest.mark.parametrize("kind", ["resnet20", "vit", "text"])
@pytest.mark.parametrize("method", ["lc", "admm", "slr", "apgdssm"])
def test_compress_new_models_with_every_method(kind, method):
    from compressopt.dnn.data import make_loader
    from compressopt.dnn.oracle import LStepSchedule, MinibatchOracle, TorchOracle
    from compressopt.dnn.params import read_parameters, select_parameters
    from compressopt.dnn.train import evaluate
    from compressopt.projections import GlobalCardinality, PerTensor, UniformQuantization
    from compressopt.solvers import ADMM, APGDSSM, LC, SLR

    torch.manual_seed(0)
    x, y, model = _synthetic(kind)
    params = select_parameters(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    oracle = TorchOracle(model, nn.CrossEntropyLoss(), make_loader(x, y, 16, shuffle=True),
                         opt, params=params, schedule=LStepSchedule(epochs=1))
    run_oracle = oracle
    prune = GlobalCardinality(keep=0.2)
    if method == "lc":
        solver, compression = LC(mus=(1e-3, 1e-2), tol=0.0, eval_loss=False), prune
    elif method == "admm":
        solver, compression = ADMM(rho=1e-3, maxiter=2, eval_loss=False), prune
    elif method == "slr":
        solver, compression = SLR(maxiter=2), prune
    else:
        solver = APGDSSM(lr=0.01, lambda1=1e-4, maxiter=2, eval_loss=False)
        compression = PerTensor(UniformQuantization(bits=2))
        run_oracle = MinibatchOracle(oracle, lr=0.01)
    result = solver.run(read_parameters(params), run_oracle, compression)
    assert result.nit == 2
    out = result.x
    if method == "slr":
        out = solver.retrain(out, oracle, steps=1)
    assert set(out) == set(params) and all(torch.isfinite(t).all() for t in out.values())
    if method != "apgdssm":
        kept = sum(int((t != 0).sum()) for t in out.values())
        assert kept <= round(0.2 * sum(t.numel() for t in out.values())) + 1
    _, acc = evaluate(model, x, y, params=out)
    assert 0.0 <= acc <= 1.0
