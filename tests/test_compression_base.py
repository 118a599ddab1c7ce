"""The compression combinators (Tasks, PerTensor, Chain) and the shared cost model."""

import math

import numpy as np
import pytest
import torch

from compressopt.errors import ShapeMismatchError
from compressopt.projections import (
    AdaptiveQuantization,
    Cardinality,
    Chain,
    GlobalCardinality,
    PerTensor,
    StorageCost,
    Tasks,
    as_compression,
    bits_for,
    summarize,
)


def test_bits_for():
    assert [bits_for(k) for k in (1, 2, 3, 4, 5, 16, 17, 256)] == [0, 1, 2, 2, 3, 4, 5, 8]
    with pytest.raises(ValueError):
        bits_for(0)


def test_summarize_matches_yang_definitions():
    costs = {
        "a": StorageCost(numel=100, nnz=10, bits=32),
        "b": StorageCost(numel=300, nnz=300, bits=2, overhead_bits=4 * 32),
    }
    s = summarize(costs)
    assert s.weight_bits == 10 * 32 + 300 * 2
    assert s.compression_ratio == pytest.approx(32 * 400 / (320 + 600))
    assert s.average_bits == pytest.approx(920 / 310)
    assert s.nonzero_fraction == pytest.approx(310 / 400)
    assert s.overhead_bits == 128
    assert summarize({"a": StorageCost(5, 0, 32)}).compression_ratio == math.inf


def test_tasks_groups_share_one_codebook():
    rng = np.random.default_rng(0)
    w = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5), "c": rng.standard_normal(6)}
    tasks = Tasks({("a", "b"): AdaptiveQuantization(2), "c": Cardinality(k=2)})
    theta = tasks.compress(w)
    out = tasks.decompress(theta)
    assert {k: v.shape for k, v in out.items()} == {"a": (3, 4), "b": (5,), "c": (6,)}
    shared = np.unique(np.concatenate([out["a"].ravel(), out["b"].ravel()]))
    assert shared.size == 2  # one codebook for both tensors
    assert np.count_nonzero(out["c"]) == 2
    cost = tasks.cost(theta)
    assert cost["a"] == StorageCost(12, 12, 1, 64) and cost["b"] == StorageCost(5, 5, 1, 0)
    assert cost["c"] == StorageCost(6, 2, 32, 0)
    assert tasks.contains(out) and not tasks.contains(w)


def test_tasks_coverage_errors():
    w = {"a": np.zeros(3), "b": np.zeros(3)}
    with pytest.raises(ShapeMismatchError, match=r"uncovered \['b'\]"):
        Tasks({"a": Cardinality(k=1)}).compress(w)
    with pytest.raises(ShapeMismatchError, match="more than one task"):
        Tasks({"a": Cardinality(k=1), ("a", "b"): Cardinality(k=1)})
    with pytest.raises(TypeError, match="TensorScheme"):
        Tasks({"a": object()})


def test_per_tensor_and_global_differ():
    w = {"a": np.array([5.0, 4.0, 3.0]), "b": np.array([0.1, 0.2, 0.3])}
    per = PerTensor(Cardinality(k=1)).decompress(PerTensor(Cardinality(k=1)).compress(w))
    glob = GlobalCardinality(k=2)
    g = glob.decompress(glob.compress(w))
    assert per["a"].tolist() == [5.0, 0, 0] and per["b"].tolist() == [0, 0, 0.3]
    assert g["a"].tolist() == [5.0, 4.0, 0] and g["b"].tolist() == [0, 0, 0]


def test_chain_prune_then_quantize_nonzeros():
    rng = np.random.default_rng(1)
    w = {"a": rng.standard_normal(200), "b": rng.standard_normal((10, 10))}
    chain = Chain(GlobalCardinality(keep=0.1), PerTensor(AdaptiveQuantization(2, sparse=True)))
    theta = chain.compress(w)
    out = chain.decompress(theta)
    nnz = sum(np.count_nonzero(v) for v in out.values())
    assert nnz == 30
    for v in out.values():
        assert np.unique(v[v != 0]).size <= 2
    assert chain.contains(out)
    s = summarize(chain.cost(theta))
    assert (
        s.nnz == 30 and s.weight_bits == 30 and s.compression_ratio == pytest.approx(32 * 300 / 30)
    )


def test_as_compression():
    c = as_compression(Cardinality(k=1))
    assert isinstance(c, PerTensor)
    g = GlobalCardinality(k=1)
    assert as_compression(g) is g
    with pytest.raises(TypeError, match="Compression or a TensorScheme"):
        as_compression(3)


def test_torch_tensors_stay_torch():
    w = {"a": torch.tensor([1.0, -3.0, 2.0]), "b": torch.tensor([[0.5, 4.0]])}
    c = Chain(
        GlobalCardinality(k=3), PerTensor(AdaptiveQuantization(2, method="fast", sparse=True))
    )
    out = c.decompress(c.compress(w))
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float32 for v in out.values())
    # global top-3 keeps -3, 2 and 4; each tensor then has <= 2 distinct nonzeros: exact codes
    assert out["a"].tolist() == [0.0, -3.0, 2.0] and out["b"].tolist() == [[0.0, 4.0]]
