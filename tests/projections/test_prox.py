"""Proximal operators, CTL1, and their penalty-form schemes."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compressopt.errors import ShapeMismatchError
from compressopt.projections import (
    GroupLassoPenalty,
    L0Penalty,
    L1Penalty,
    bind_mu,
    ctl1,
    ctl1_grad,
    group_norms,
    hard_threshold,
    prox_group_lasso,
    prox_l0,
    soft_threshold,
)
from compressopt.verify import verify_ctl1, verify_group_lasso


def test_thresholds_by_hand():
    x = np.array([-2.0, -0.5, 0.0, 0.7, 3.0])
    assert soft_threshold(x, 1.0).tolist() == [-1.0, 0.0, 0.0, 0.0, 2.0]
    assert hard_threshold(x, 0.7).tolist() == [-2.0, 0.0, 0.0, 0.0, 3.0]  # |x| = t -> 0
    assert prox_l0(x, 0.125).tolist() == [-2.0, -0.0, 0.0, 0.7, 3.0]  # sqrt(2 * .125) = .5
    t = np.array([0.0, 0.0, 0.0, 1.0, 1.0])  # elementwise thresholds
    assert soft_threshold(x, t).tolist() == [-2.0, -0.5, 0.0, 0.0, 2.0]
    with pytest.raises(ValueError, match=">= 0"):
        soft_threshold(x, -1.0)
    with pytest.raises(ShapeMismatchError, match="broadcast"):
        hard_threshold(x, np.ones(3))


def test_group_lasso_axes_and_per_group_thresholds():
    x = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    np.testing.assert_allclose(prox_group_lasso(x, 1.0), [[2.4, 3.2], [0, 0], [0, 0]])
    # groups along axis 1 (input channels): columns of norms 3.0149 and 4.0199
    z = prox_group_lasso(x, 3.5, axis=1)
    assert z[:, 0].tolist() == [0, 0, 0] and z[0, 1] == pytest.approx(4.0 * (1 - 3.5 / 4.0199502))
    assert prox_group_lasso(x, np.array([0.0, 0.0, 5.0])).tolist() == x.tolist()
    with pytest.raises(ShapeMismatchError, match="one threshold per group"):
        prox_group_lasso(x, np.ones(2))
    assert group_norms(x, ord=1).tolist() == pytest.approx([7.0, 0.7, 0.0])


@settings(max_examples=20)
@given(seed=st.integers(0, 2**32 - 1), a=st.floats(0.05, 5.0))
def test_ctl1_value_and_gradient(seed, a):
    x = np.random.default_rng(seed).standard_normal((4, 3, 2))
    r = verify_ctl1(x, a)
    assert r.ok, r
    assert r.details["grad_error"] < 1e-5
    rt = verify_ctl1(torch.from_numpy(x.astype(np.float32)), a)
    assert rt.ok, rt


def test_ctl1_by_hand():
    x = np.array([[1.0, -1.0], [0.0, 0.0]])
    # Li & Xin eq. (6): one term per layer on the layer's l1 norm, 1 - 2/(2 + 2)
    assert float(ctl1(x, 2.0)) == pytest.approx(1 - 2 / (2 + 2))
    np.testing.assert_allclose(ctl1_grad(x, 2.0), [[-0.125, 0.125], [0.0, 0.0]])
    # the per-channel variant: 2/(2 + 2) + 2/(2 + 0)
    assert float(ctl1(x, 2.0, axis=0)) == pytest.approx(2 / 4 + 1.0)
    np.testing.assert_allclose(ctl1_grad(x, 2.0, axis=0), [[-0.125, 0.125], [0.0, 0.0]])
    with pytest.raises(ValueError, match="> 0"):
        ctl1(x, 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ctl1_is_per_layer_on_the_layers_l1_norm(dtype):
    # eq. (6): sum_l 1 - ||w_l||_1 / (a + ||w_l||_1), "we apply it to each layer": a layer with
    # one large channel and one small one is one term; the per-channel form (axis=0) would
    # push the small channel away from zero, the per-layer one pushes every entry of the
    # layer alike (the same gradient magnitude a / (a + ||w_l||_1)^2 everywhere)
    x = np.array([[3.0, -2.0, 1.0], [0.01, 0.0, -0.02]], dtype=dtype)
    a, l1 = 0.5, 6.03
    assert float(ctl1(x, a)) == pytest.approx(1 - l1 / (a + l1), rel=1e-6)
    g = ctl1_grad(x, a)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, -a * np.sign(x) / (a + l1) ** 2, rtol=1e-6)
    per_channel = ctl1_grad(x, a, axis=0)
    assert abs(per_channel[1, 0]) > 100 * abs(g[1, 0])  # the variant's push on the small row
    # central differences of the per-layer penalty (float64; entries away from 0)
    if dtype == np.float64:
        h = 1e-7
        for i, j in [(0, 0), (0, 1), (1, 0), (1, 2)]:
            e = np.zeros_like(x)
            e[i, j] = h
            fd = (float(ctl1(x + e, a)) - float(ctl1(x - e, a))) / (2 * h)
            assert fd == pytest.approx(g[i, j], rel=1e-5)
    # any ndim, and torch on the same footing
    assert float(ctl1(np.array(-2.0), 1.0)) == pytest.approx(1 / 3)
    t = torch.from_numpy(x)
    torch.testing.assert_close(ctl1_grad(t, a), torch.from_numpy(g))


def test_group_lasso_on_conv_weights_matches_cvxpy():
    x = np.random.default_rng(3).standard_normal((5, 2, 3, 3))
    assert verify_group_lasso(x, 2.5).ok
    assert verify_group_lasso(x, 1.0, axis=1).ok


def test_penalty_forms_bind_mu():
    x = np.array([-2.0, 0.3, 1.5])
    with pytest.raises(ValueError, match="with_mu"):
        L1Penalty(1.0).compress(x)
    assert bind_mu(L1Penalty(1.0), 2.0).project(x).tolist() == [-1.5, 0.0, 1.0]  # t = 1/2
    assert bind_mu(L0Penalty(1.0), 2.0).project(x).tolist() == [-2.0, 0.0, 1.5]  # t = 1
    g = bind_mu(GroupLassoPenalty(3.0, axis=0), 1.0)
    np.testing.assert_allclose(g.project(np.array([[3.0, 4.0]])), [[1.2, 1.6]])
    assert g.cost(g.compress(np.array([[3.0, 4.0]]))).nnz == 2
