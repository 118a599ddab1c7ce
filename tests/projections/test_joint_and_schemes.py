"""The joint sparse + quantized set, and every scheme/compression class under the solvers'
protocol (compress/decompress/cost/contains, one storage model)."""

import numpy as np
import pytest
import torch

from compressopt.errors import ShapeMismatchError
from compressopt.projections import (
    Binary,
    Box,
    ChannelPruning,
    Compression,
    FixedCodebook,
    GlobalChannelPruning,
    KnapsackPruning,
    L1Ball,
    LowRank,
    MixedPrecision,
    PowersOfTwo,
    RankSelection,
    Simplex,
    SparseQuantized,
    StorageCost,
    Tasks,
    Ternary,
    UniformQuantization,
    as_compression,
    project_sparse_quantized,
    summarize,
)
from compressopt.solvers import LC, LeastSquares
from compressopt.verify import verify_sparse_quantized
from compressopt.verify.checks import in_sparse_quantized


@pytest.mark.parametrize("frac", [0.0, 0.3, 1.0, 2.5, 6.0])
def test_joint_projection_is_feasible_for_every_budget(frac):
    rng = np.random.default_rng(0)
    w = {"conv": rng.standard_normal((8, 3, 3, 3)), "fc": rng.standard_normal((10, 40))}
    budget = frac * sum(v.size for v in w.values())
    r = project_sparse_quantized(w, budget, candidates=range(1, 5))
    assert in_sparse_quantized(r.w, budget, range(1, 5))
    assert r.error == pytest.approx(sum(np.sum((r.w[k] - w[k]) ** 2) for k in w))
    assert r.error == min(r.errors)
    assert r.allocation.budget_used <= budget
    if frac >= 4.0:  # 4 bits for every weight fit: at least as good as quantizing at 4 bits
        assert r.allocation.bits == {"conv": 4, "fc": 4}


@pytest.mark.parametrize("seed", range(4))
def test_joint_projection_against_enumeration(seed):
    rng = np.random.default_rng(seed)
    w = {"a": rng.standard_normal(5), "b": rng.standard_normal(4)}
    for budget in (3, 8, 14):
        rep = verify_sparse_quantized(w, budget, (1, 2))
        assert rep.feasible and rep.gap >= -rep.tol
        # a heuristic, but on these tiny instances it stays within a factor of the optimum
        assert rep.fast <= 3.0 * rep.exact + 1e-9, rep


def test_joint_projection_arguments():
    w = {"a": np.ones(3)}
    with pytest.raises(ShapeMismatchError, match="bits0"):
        project_sparse_quantized(w, 3, bits0={"b": 1})
    with pytest.raises(ValueError, match="not a candidate"):
        project_sparse_quantized(w, 3, (1, 2), bits0={"a": 3})
    with pytest.raises(ValueError, match="rounds"):
        project_sparse_quantized(w, 3, rounds=0)


def test_lc_runs_with_the_joint_set():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 12))
    truth = np.where(rng.random(12) < 0.5, 0.0, np.sign(rng.standard_normal(12)))
    ls = LeastSquares(A, A @ truth + 0.05 * rng.standard_normal(40))
    w0 = {"w": np.linalg.lstsq(A, ls.b, rcond=None)[0]}
    comp = SparseQuantized(budget_bits=8, candidates=(1, 2))
    res = LC(mu0=1e-2, mu_growth=1.3, maxiter=40, tol=1e-8).run(w0, ls, comp)
    assert comp.contains(res.x)
    assert summarize(comp.cost(res.theta)).weight_bits <= 8
    assert ls.value(res.x) < ls.value({"w": np.zeros(12)})


SCHEMES = [L1Ball(2.0), Simplex(1.0), Box(-0.5, 0.5), ChannelPruning(k=2), Binary(), Ternary(),
           UniformQuantization(bits=2), FixedCodebook((-1.0, 0.0, 1.0)), PowersOfTwo(-2, 0),
           LowRank(2)]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_tensor_schemes_follow_the_protocol(scheme, backend):
    x = np.random.default_rng(1).standard_normal((4, 6))
    x = torch.from_numpy(x) if backend == "torch" else x
    c = as_compression(scheme)
    assert isinstance(c, Compression)
    theta = c.compress({"w": x})
    out = c.decompress(theta)
    assert type(out["w"]) is type(x) and out["w"].shape == x.shape
    cost = c.cost(theta)["w"]
    assert isinstance(cost, StorageCost) and cost.numel == 24 and 0 <= cost.nnz <= 24
    assert c.contains(out, atol=1e-9)
    again = c.decompress(c.compress(out))["w"]
    np.testing.assert_allclose(np.asarray(again), np.asarray(out["w"]), atol=1e-9)


def test_elementwise_schemes_can_share_a_task():
    rng = np.random.default_rng(2)
    w = {"a": rng.standard_normal(5), "b": rng.standard_normal((2, 3))}
    t = Tasks({("a", "b"): Ternary()})
    out = t.decompress(t.compress(w))
    vals = np.unique(np.abs(np.concatenate([out["a"], out["b"].ravel()])))
    assert vals.size <= 2  # one scale for both tensors: {0, a}
    with pytest.raises(TypeError, match="depends on the tensor's shape"):
        Tasks({("a", "b"): LowRank(1)})


def test_collection_compressions_follow_the_protocol():
    rng = np.random.default_rng(3)
    w = {"a": rng.standard_normal((4, 5)), "b": rng.standard_normal((3, 5))}
    for c in (GlobalChannelPruning(k=3), KnapsackPruning({"a": 2, "b": 4}, 40),
              MixedPrecision(70, (1, 2, 3)), SparseQuantized(40, (1, 2)), RankSelection(30)):
        theta = c.compress(w)
        out = c.decompress(theta)
        assert set(out) == {"a", "b"} and out["a"].shape == (4, 5)
        assert c.contains(out, atol=1e-9), type(c).__name__
        assert set(c.cost(theta)) == {"a", "b"}
