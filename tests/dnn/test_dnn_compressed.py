"""The compressed-model file from torch: save a model's Θ, reload it bit-exactly, write it into
a model; torch tensors in the state codec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compressopt import projections as P
from compressopt.dnn import (
    LeNet5,
    LeNet300,
    compressed_bytes,
    load_compressed,
    read_parameters,
    save_compressed,
    select_parameters,
    write_parameters,
)
from compressopt.errors import ModelMismatchError, ShapeMismatchError, UnsupportedDTypeError
from compressopt.storage import file_accounting, read_model, theta_to_bytes
from compressopt.storage.tree import decode_tree, encode_tree, tree_from_bytes, tree_to_bytes

COMPRESSIONS = {
    "prune": P.GlobalCardinality(keep=0.05),
    "quantize": P.PerTensor(P.AdaptiveQuantization(2)),
    "prune_quantize": P.Chain(P.GlobalCardinality(keep=0.05),
                              P.PerTensor(P.AdaptiveQuantization(4, sparse=True))),
    "joint": P.SparseQuantized(budget_bits=32 * 430_500 / 2000, candidates=(1, 2, 3, 4)),
    "uniform": P.PerTensor(P.UniformQuantization(bits=3)),
}


def _net(name):
    torch.manual_seed(0)
    return LeNet5((1, 28, 28), 10) if name == "lenet5" else LeNet300((1, 28, 28), 10)


def _compressed(name, key):
    """A model with Δ(Θ) written into its compressed weights, its compression and Θ."""
    net = _net(name)
    params = select_parameters(net)
    c = COMPRESSIONS[key]
    theta = c.compress(read_parameters(params))
    write_parameters(params, c.decompress(theta))
    return net, c, theta


@pytest.mark.parametrize(("name", "key"), [
    (n, k) for n in ("lenet300", "lenet5") for k in sorted(COMPRESSIONS)
    if (n, k) != ("lenet300", "joint")  # one joint case (LeNet-5 at 2000x) is enough
])
def test_reloaded_model_is_bit_identical(name, key, tmp_path):
    net, c, theta = _compressed(name, key)
    path = tmp_path / "model.cpz"
    meta = {"model": name, "dataset": "mnist", "input_shape": [1, 28, 28], "num_classes": 10}
    n = save_compressed(path, net, c, theta, metadata=meta)
    cm = load_compressed(path)
    assert cm.metadata == meta and cm.file_bytes == n
    assert set(cm.compressed) == set(select_parameters(net))
    fresh = _net(name)
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)  # nothing of the original survives in the fresh model
    cm.apply_to(fresh)
    for k, v in net.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fresh(x), net(x))  # so the test accuracy is the same, exactly
    acc = file_accounting(path)
    assert acc["file_bytes"] == n
    assert acc["model_bytes_ratio"] == pytest.approx(
        4 * sum(p.numel() for p in net.parameters()) / n)


def test_export_dense_is_a_plain_safetensors_state_dict(tmp_path):
    from safetensors.torch import load_file

    from compressopt.storage import export_dense

    net, c, theta = _compressed("lenet5", "joint")
    (tmp_path / "dense.safetensors").write_bytes(export_dense(compressed_bytes(net, c, theta)))
    fresh = _net("lenet5")
    fresh.load_state_dict(load_file(tmp_path / "dense.safetensors"))
    for k, v in net.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_torch_and_numpy_theta_give_the_same_file():
    _, c, theta = _compressed("lenet5", "prune_quantize")
    from compressopt.storage.schemes import map_arrays

    def to_np(t):
        if isinstance(t, torch.Tensor):
            return t.numpy()
        if isinstance(t, tuple) and hasattr(t, "_fields"):
            return type(t)(*(to_np(v) for v in t))
        if isinstance(t, dict):
            return {k: to_np(v) for k, v in t.items()}
        return t

    theta_np = to_np(theta)
    assert compressed_bytes({}, c, theta) == theta_to_bytes(theta_np, c)
    cm = load_compressed(compressed_bytes({}, c, theta))
    back = map_arrays(read_model(compressed_bytes({}, c, theta)).theta, torch.from_numpy)
    for k, v in c.decompress(back).items():
        assert torch.equal(v, cm.tensors[k])


def test_file_of_another_model_is_refused(tmp_path):
    net, c, theta = _compressed("lenet300", "prune")
    save_compressed(tmp_path / "m.cpz", net, c, theta)
    cm = load_compressed(tmp_path / "m.cpz")
    with pytest.raises(ModelMismatchError, match="another model"):
        cm.apply_to(LeNet5((1, 28, 28), 10))
    with pytest.raises(ModelMismatchError, match="shape"):
        cm.apply_to(LeNet300((1, 8, 8), 10))  # digits: fc1 takes 64 inputs
    partial = load_compressed(compressed_bytes({}, c, theta))  # the weights only
    with pytest.raises(ModelMismatchError):
        partial.apply_to(_net("lenet300"))
    partial.apply_to(_net("lenet300"), strict=False)


def test_save_checks_names_and_dtypes():
    _, c, theta = _compressed("lenet300", "prune")
    with pytest.raises(ShapeMismatchError, match="lacks"):
        compressed_bytes(LeNet5((1, 28, 28), 10), c, theta)
    bf = {"w": P.Pruned(torch.ones(3, dtype=torch.bfloat16))}
    with pytest.raises(UnsupportedDTypeError):
        compressed_bytes({}, None, bf)


def test_load_on_a_device():
    net, c, theta = _compressed("lenet300", "quantize")
    cm = load_compressed(compressed_bytes(net, c, theta), device="cpu")
    assert all(t.device.type == "cpu" for t in cm.tensors.values())
    assert cm.tensors["fc1.weight"].dtype == torch.float32


def _bits(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


@pytest.mark.parametrize("make", [
    lambda: torch.randn(3, 4),
    lambda: torch.randn(4, 3).T,  # not contiguous
    lambda: torch.tensor([1.5, -0.0, float("nan")], dtype=torch.bfloat16),
    lambda: torch.arange(5, dtype=torch.int64),
    lambda: torch.tensor([True, False]),
    lambda: torch.zeros(0, 2, dtype=torch.float64),
    lambda: torch.tensor(2.5, dtype=torch.float16),
    lambda: torch.randn(2, requires_grad=True),
    lambda: torch.nn.Parameter(torch.randn(2)),
], ids=["f32", "strided", "bf16", "i64", "bool", "empty", "scalar16", "grad", "param"])
def test_torch_tensors_in_the_state_codec(make):
    x = make()
    tensors, skel = encode_tree({"x": x, "theta": P.Pruned(x.detach())})
    back = decode_tree(tensors, skel)
    for y in (back["x"], back["theta"].values):
        assert y.dtype == x.dtype and y.shape == x.shape and y.device == x.device
        assert torch.equal(_bits(y), _bits(x))
    assert back["x"].requires_grad == x.requires_grad
    assert type(back["x"]) is type(x)
    obj, _ = tree_from_bytes(tree_to_bytes({"x": x}))
    assert obj["x"].dtype == x.dtype


def test_a_model_state_dict_and_an_optimizer_state_round_trip():
    net = _net("lenet300")
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(4, 1, 28, 28)).sum().backward()
    opt.step()
    state = {"model": net.state_dict(), "optimizer": opt.state_dict(),
             "rng": torch.get_rng_state(), "np_rng": np.random.default_rng(0).bit_generator.state}
    back, _ = tree_from_bytes(tree_to_bytes(state))
    for k, v in state["model"].items():
        assert torch.equal(back["model"][k], v)
    net2 = _net("lenet300")
    opt2 = torch.optim.SGD(net2.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(back["optimizer"])
    for a, b in zip(opt.state.values(), opt2.state.values(), strict=True):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert torch.equal(back["rng"], state["rng"])
    assert back["np_rng"] == state["np_rng"]
