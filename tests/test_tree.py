import math

import numpy as np
import pytest
import torch

from compressopt.errors import NonFiniteError, ShapeMismatchError, UnsupportedDTypeError
from compressopt.tree import (
    tree_add,
    tree_axpy,
    tree_check,
    tree_norm,
    tree_numel,
    tree_scale,
    tree_sub,
    tree_vdot,
    tree_zeros_like,
)


def _np(x):
    return np.array(x.tolist())


@pytest.fixture(params=["numpy", "torch"])
def pair(request):
    a = {"x": np.array([1.0, 2.0]), "y": np.array([[3.0], [4.0]])}
    b = {"x": np.array([0.5, -1.0]), "y": np.array([[1.0], [0.0]])}
    if request.param == "torch":
        a = {k: torch.tensor(v) for k, v in a.items()}
        b = {k: torch.tensor(v) for k, v in b.items()}
    return a, b


def test_arithmetic(pair):
    a, b = pair
    assert np.allclose(_np(tree_add(a, b)["y"]), [[4.0], [4.0]])
    assert np.allclose(_np(tree_sub(a, b)["x"]), [0.5, 3.0])
    assert np.allclose(_np(tree_scale(a, 2.0)["x"]), [2.0, 4.0])
    assert np.allclose(_np(tree_axpy(-1.0, b, a)["x"]), [0.5, 3.0])
    assert tree_vdot(a, b) == pytest.approx(0.5 - 2.0 + 3.0)
    assert tree_norm(a) == pytest.approx(math.sqrt(30.0))
    assert tree_numel(a) == 4
    z = tree_zeros_like(a)
    assert tree_norm(z) == 0.0 and type(z["x"]) is type(a["x"])


def test_inputs_not_modified(pair):
    a, b = pair
    before = {k: np.array(v.tolist()) for k, v in a.items()}
    tree_axpy(3.0, b, a)
    tree_sub(a, b)
    for k in a:
        assert np.array_equal(np.array(a[k].tolist()), before[k])


def test_name_mismatch_is_an_error():
    with pytest.raises(ShapeMismatchError, match=r"\['z'\]"):
        tree_add({"x": np.zeros(1)}, {"x": np.zeros(1), "z": np.zeros(1)})


def test_tree_check():
    with pytest.raises(NonFiniteError, match=r"w\['a'\] holds 1 NaN"):
        tree_check({"a": np.array([1.0, np.nan])})
    with pytest.raises(UnsupportedDTypeError, match="real floating"):
        tree_check({"a": np.array([1, 2])})
    with pytest.raises(TypeError, match="mapping"):
        tree_check([np.zeros(2)])
    w = {"a": np.zeros(2)}
    out = tree_check(w)
    assert out == w and out is not w
