"""The user's own model and data: factories by module or file path, .npz files, Datasets."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from compressopt.dnn.data import Splits
from compressopt.dnn.user import (
    build_user_model,
    is_factory_spec,
    load_factory,
    load_user_dataset,
)
from compressopt.errors import ConfigError, DataError

USER_FILE = '''
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

NOT_CALLABLE = 3

def net():
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 2))

def sized(input_shape, num_classes, **kw):
    import math
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))

def classes_only(num_classes):
    return nn.Linear(4, num_classes)

def needs_more(hidden):
    return nn.Linear(4, hidden)

def not_a_module(num_classes):
    return "a string"

def broken():
    raise RuntimeError("out of coffee\\nsecond line")

class Builders:
    @staticmethod
    def small(num_classes):
        return nn.Linear(4, num_classes)

def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 4, generator=g)
    return TensorDataset(x, torch.arange(10) % 3), TensorDataset(x[:4], torch.arange(4) % 3)

class Pairs(Dataset):
    def __init__(self, items):
        self.items = items
    def __len__(self):
        return len(self.items)
    def __getitem__(self, i):
        return self.items[i]

def tuple_data():
    ids = torch.randint(0, 9, (6, 5), generator=torch.Generator().manual_seed(0))
    items = [((ids[i], ids[i] == 0), i % 2) for i in range(6)]
    return Pairs(items), Pairs(items[:2])

def one_set():
    return data()[0]

def not_datasets():
    return 1, 2

def bad_item():
    return Pairs([(torch.zeros(2), 0), torch.zeros(2)]), Pairs([(torch.zeros(2), 0)])

def float_label():
    return Pairs([(torch.zeros(2), 0.5)]), Pairs([(torch.zeros(2), 0)])

def empty_test():
    return Pairs([(torch.zeros(2), 0)]), Pairs([])

def nan_inputs():
    return Pairs([(torch.tensor([0.0, float("nan")]), 0)]), Pairs([(torch.zeros(2), 0)])

def ragged():
    return Pairs([(torch.zeros(2), 0), (torch.zeros(3), 1)]), Pairs([(torch.zeros(2), 0)])

def negative_label():
    return Pairs([(torch.zeros(2), 0)]), Pairs([(torch.zeros(2), -1)])
'''


@pytest.fixture
def user_file(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text(textwrap.dedent(USER_FILE))
    return f


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


def test_is_factory_spec():
    assert is_factory_spec("pkg.mod:make") and is_factory_spec("a/b.py:f")
    assert not is_factory_spec("lenet5") and not is_factory_spec("data.npz")
    assert not is_factory_spec(":f") and not is_factory_spec("mod:")


def test_load_factory_by_module_and_file(user_file):
    assert load_factory("math:sqrt")(16.0) == 4.0
    assert load_factory("os.path:join")("a", "b") == "a/b"
    net = load_factory(f"{user_file}:net")
    assert isinstance(net(), nn.Module)
    assert load_factory(f"{user_file}:Builders.small")(5).out_features == 5
    # the file is loaded once per path
    assert load_factory(f"{user_file}:net") is net


@pytest.mark.parametrize("spec, error, msg", [
    ("nocolon", ConfigError, "expected 'package.module:factory'"),
    ("no_such_module_xyz:f", ConfigError, "cannot import module 'no_such_module_xyz'"),
    ("math:no_such", ConfigError, "'math' has no attribute 'no_such'"),
    ("math:pi", ConfigError, "'pi' is a float, not a callable"),
    ("missing/file.py:f", DataError, "file not found: missing/file.py"),
])
def test_load_factory_errors(spec, error, msg):
    with pytest.raises(error, match=msg) as e:
        load_factory(spec, error=error)
    one_line(e)


def test_load_factory_file_errors(tmp_path, user_file):
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_real_module_abc\n")
    with pytest.raises(ConfigError, match=r"executing .*bad.py failed: ModuleNotFoundError: "
                       "No module named 'not_a_real_module_abc'") as e:
        load_factory(f"{bad}:f")
    one_line(e)
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def f(:\n")
    with pytest.raises(ConfigError, match="SyntaxError") as e:
        load_factory(f"{syntax}:f")
    one_line(e)
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        load_factory(f"{user_file}:nope")
    with pytest.raises(ConfigError, match="'NOT_CALLABLE' is a int, not a callable"):
        load_factory(f"{user_file}:NOT_CALLABLE")


def test_build_user_model(user_file):
    m = build_user_model(f"{user_file}:sized", (1, 2, 3), 7)
    assert m(torch.zeros(2, 1, 2, 3)).shape == (2, 7)
    assert isinstance(build_user_model(f"{user_file}:net", (4,), 2), nn.Module)
    assert build_user_model(f"{user_file}:classes_only", (4,), 9).out_features == 9


@pytest.mark.parametrize("name, msg", [
    ("not_a_module", "the factory returned a str, not a torch.nn.Module"),
    ("needs_more", r"the factory needs \['hidden'\]"),
    ("broken", "the factory raised RuntimeError: out of coffee$"),
])
def test_build_user_model_errors(user_file, name, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        build_user_model(f"{user_file}:{name}", (4,), 2)
    one_line(e)


# -- npz ------------------------------------------------------------------------------------


def npz(path, **arrays):
    rng = np.random.default_rng(0)
    base = dict(x_train=rng.standard_normal((8, 1, 4, 4)), y_train=np.arange(8) % 3,
                x_test=rng.standard_normal((3, 1, 4, 4)), y_test=np.array([0, 1, 4]))
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_npz_dataset(tmp_path):
    s = load_user_dataset(npz(tmp_path / "d.npz"))
    assert isinstance(s, Splits) and s.name == "d" and s.num_classes == 5
    assert s.x_train.dtype == torch.float32 and s.input_shape == (1, 4, 4)
    assert s.y_test.tolist() == [0, 1, 4] and s.y_train.dtype == torch.int64
    assert s.vocab_size is None
    tokens = load_user_dataset(str(npz(tmp_path / "t.npz", x_train=np.arange(16).reshape(8, 2),
                                       x_test=np.zeros((3, 2), np.uint8))))
    assert tokens.x_train.dtype == torch.int64 and tokens.vocab_size == 16


@pytest.mark.parametrize("arrays, msg", [
    (dict(y_test=None), r"missing array\(s\) \['y_test'\]"),
    (dict(x_train=np.zeros((7, 2))), "x_train has 7 examples, y_train 8 labels"),
    (dict(y_train=np.zeros(8)), r"y_train must be integer labels of shape \(N,\), got float64"),
    (dict(y_test=np.zeros((3, 1), np.int64)), "y_test must be integer labels of shape"),
    (dict(x_train=np.zeros((8, 2), bool)), "x_train has dtype bool; expected floats"),
    (dict(x_test=np.array(["a", "b", "c"])), "x_test has dtype <U1"),
    (dict(x_test=np.zeros((0, 1, 4, 4)), y_test=np.zeros(0, np.int64)),
     "the test split is empty"),
    (dict(x_train=np.full((8, 1, 4, 4), np.nan)), "x_train holds NaN or Inf values"),
    (dict(x_test=np.full((3, 1, 4, 4), 1e300)), "x_test holds values beyond float32's range"),
    (dict(y_train=-(np.arange(8) % 3)), r"y_train holds a negative label \(-2\)"),
    (dict(x_train=np.zeros(8)), None),  # 1-d features are fine
    (dict(x_test=np.zeros((3, 2), np.int64)), "must both be floats or both integers"),
])
def test_npz_errors(tmp_path, arrays, msg):
    f = npz(tmp_path / "d.npz", **arrays)
    if msg is None:
        assert load_user_dataset(f).input_shape == ()
        return
    with pytest.raises(DataError, match=msg) as e:
        load_user_dataset(f)
    one_line(e)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    f = tmp_path / "obj.npz"
    np.savez(f, x_train=np.array([{"a": 1}] * 8, dtype=object), y_train=np.arange(8),
             x_test=np.zeros(3), y_test=np.zeros(3, np.int64))
    with pytest.raises(DataError, match="Python objects \\(pickle\\), refused") as e:
        load_user_dataset(f)
    assert "allow_pickle" not in one_line(e)  # never advise enabling pickle


def test_npz_file_errors(tmp_path):
    with pytest.raises(DataError, match="data set file not found"):
        load_user_dataset(tmp_path / "none.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"not a readable \.npz file") as e:
        load_user_dataset(junk)
    one_line(e)
    with pytest.raises(DataError, match=r"must be an \.npz"):
        load_user_dataset(tmp_path / "x.csv")


# -- Dataset factories ----------------------------------------------------------------------


def test_dataset_factory(user_file):
    s = load_user_dataset(f"{user_file}:data")
    assert s.x_train.shape == (10, 4) and s.x_test.shape == (4, 4) and s.num_classes == 3
    assert s.y_train.tolist() == [i % 3 for i in range(10)]
    t = load_user_dataset(f"{user_file}:tuple_data")
    ids, mask = t.x_train
    assert ids.shape == (6, 5) and mask.dtype == torch.bool and t.input_shape == ((5,), (5,))
    assert t.vocab_size is not None and t.num_classes == 2


@pytest.mark.parametrize("name, msg", [
    ("one_set", "must return \\(train, test\\) Datasets, got a TensorDataset"),
    ("not_datasets", "the train set is a int, not a map-style Dataset"),
    ("bad_item", "item 1 is a Tensor, expected \\(x, y\\)"),
    ("float_label", "item 0's label must be an int, got float"),
    ("empty_test", "test set is empty"),
    ("nan_inputs", "the inputs hold NaN or Inf values"),
    ("ragged", "items cannot be stacked"),
    ("negative_label", "y_test holds a negative label"),
    ("broken", "the factory raised RuntimeError: out of coffee$"),
    ("nope", "has no attribute 'nope'"),
])
def test_dataset_factory_errors(user_file, name, msg):
    with pytest.raises(DataError, match=msg) as e:
        load_user_dataset(f"{user_file}:{name}")
    one_line(e)


def test_user_model_on_user_data_trains(user_file, tmp_path):
    """The CLI's path in small: --model file.py:factory --dataset data.npz."""
    from compressopt.dnn.data import make_loader
    from compressopt.dnn.train import evaluate, train

    data = load_user_dataset(npz(tmp_path / "d.npz"))
    model = build_user_model(f"{user_file}:sized", data.input_shape, data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = train(model, nn.CrossEntropyLoss(), make_loader(data.x_train, data.y_train, 4,
                                                             shuffle=True), opt, 3)
    assert len(losses) == 3 and all(np.isfinite(losses))
    _, acc = evaluate(model, data.x_test, data.y_test)
    assert 0 <= acc <= 1
