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
    assert float(ctl1(x, 2.0)) == pytest.approx(2 / 4 + 1.0)
    np.testing.assert_allclose(ctl1_grad(x, 2.0), [[-0.125, 0.125], [0.0, 0.0]])
    with pytest.raises(ValueError, match="> 0"):
        ctl1(x, 0.0)


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
