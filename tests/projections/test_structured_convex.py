"""Channel pruning and the convex projections: examples, errors, schemes."""

import numpy as np
import pytest
import torch

from compressopt.errors import ShapeMismatchError
from compressopt.projections import (
    Box,
    ChannelPruning,
    GlobalChannelPruning,
    L1Ball,
    Simplex,
    StorageCost,
    project_box,
    project_channels,
    project_global_channels,
    project_l1_ball,
    project_simplex,
)


def test_channels_keep_the_largest_filters():
    x = np.zeros((4, 2, 3, 3))
    x[0] += 1.0
    x[2] -= 2.0
    x[3, 0, 0, 0] = 10.0  # one big entry, norm 10 < 2*sqrt(18)
    z = project_channels(x, 2)
    assert [bool(np.any(z[g])) for g in range(4)] == [False, False, True, True]
    z1 = project_channels(x, 1, axis=1)  # input channels
    assert np.all(z1[:, 1] == 0) and np.array_equal(z1[:, 0], x[:, 0])
    with pytest.raises(ValueError, match="k must be in"):
        project_channels(x, 5)


def test_global_channels_across_layers():
    w = {"a": np.array([[3.0, 0.0], [0.1, 0.1]]), "b": np.array([[1.0], [2.5], [0.2]])}
    z = project_global_channels(w, 3)
    assert z["a"].tolist() == [[3.0, 0.0], [0.0, 0.0]] and z["b"].tolist() == [[1.0], [2.5], [0.0]]
    c = GlobalChannelPruning(keep=0.5)  # 5 groups -> round(2.5) = 3 (half to even? no: floor +.5)
    assert sum(int(np.any(v, axis=tuple(range(1, v.ndim))).sum())
               for v in c.decompress(c.compress(w)).values()) == 3
    s = ChannelPruning(k=1)
    th = s.compress(torch.from_numpy(w["b"]))
    assert s.cost(th) == StorageCost(3, 1, 32) and s.contains(th.values)


def test_convex_sets_by_hand():
    assert project_simplex(np.array([2.0, 0.0, -1.0]), 1.0).tolist() == [1.0, 0.0, 0.0]
    assert project_simplex(np.array([0.2, 0.2]), 1.0).tolist() == [0.5, 0.5]
    z = project_l1_ball(np.array([3.0, -2.0, 0.5]), 2.0)
    assert z.tolist() == pytest.approx([1.5, -0.5, 0.0]) and np.abs(z).sum() == pytest.approx(2)
    assert project_l1_ball(np.array([1.0, -1.0]), 0.0).tolist() == [0.0, 0.0]
    lo, hi = np.array([0.0, -1.0]), np.array([1.0, 0.0])
    assert project_box(np.array([5.0, 5.0]), lo, hi).tolist() == [1.0, 0.0]
    assert project_box(np.array([5.0, -5.0]), -np.inf, 1.0).tolist() == [1.0, -5.0]
    with pytest.raises(ValueError, match="empty"):
        project_box(np.ones(2), 1.0, 0.0)
    with pytest.raises(ShapeMismatchError, match="broadcast"):
        project_box(np.ones(2), np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="radius must be > 0"):
        project_simplex(np.ones(2), 0.0)


def test_schemes_and_float32_feasibility():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    for s, ok in ((L1Ball(3.0), lambda z: np.abs(z).sum() <= 3.0 * (1 + 1e-5)),
                  (Simplex(2.0), lambda z: abs(z.sum() - 2.0) < 1e-4 and z.min() >= 0),
                  (Box(-0.5, 0.5), lambda z: np.abs(z).max() <= 0.5)):
        z = s.project(x)
        assert z.dtype == np.float32 and ok(z)
        assert s.cost(s.compress(x)).numel == 1000
