"""A whole ``state_dict`` stored as it is: integer and boolean tensors left dense (BatchNorm's
int64 ``num_batches_tracked``, masks) round-trip bit-exactly, 0-d tensors keep their shape,
and a ResNet-20 with BatchNorm saved, reloaded and applied strictly equals the original."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compressopt import projections as P
from compressopt import storage as S
from compressopt.errors import CorruptFileError, UnsupportedDTypeError
from compressopt.storage.schemes import DENSE_DTYPES

INT_DTYPES = [d for d in DENSE_DTYPES if not d.startswith("float")]


@given(dtype=st.sampled_from(DENSE_DTYPES), shape=st.lists(st.integers(0, 4), max_size=3),
       seed=st.integers(0, 2**32 - 1), sparse=st.booleans())
def test_every_dense_dtype_round_trips_bit_exactly(dtype, shape, seed, sparse):
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * np.dtype(dtype).itemsize,
                       dtype=np.uint8)
    a = raw.view(np.uint8 if dtype == "bool" else dtype).reshape(shape)
    if dtype == "bool":
        a = (a & 1).astype(bool)
    elif dtype.startswith("float"):
        a = np.nan_to_num(a)  # any finite bits; the file stores bits
    if sparse and a.size:
        a = a.copy()
        a.reshape(-1)[rng.random(a.size) < 0.8] = 0
    arrays, _ = S.load_theta(S.theta_to_bytes({}, dense={"t": a}))
    got = arrays["t"]
    assert got.dtype == a.dtype and got.shape == a.shape
    assert got.tobytes() == a.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_zero_dimensional_tensors_keep_their_shape(dtype):
    a = np.array(7, dtype=dtype)  # was read back as shape (1,)
    got = S.load_theta(S.theta_to_bytes({}, dense={"t": a}))[0]["t"]
    assert got.shape == () and got.dtype == a.dtype and got == a


def test_extreme_integers_are_exact():
    a = np.array([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max])
    b = np.array([0, np.iinfo(np.uint64).max], dtype=np.uint64)
    got = S.load_theta(S.theta_to_bytes({}, dense={"a": a, "b": b}))[0]
    assert got["a"].tolist() == a.tolist() and got["b"].tolist() == b.tolist()


def test_integers_only_where_a_tensor_is_stored_dense():
    # a compressed Θ still holds float values: an integer Pruned is refused
    with pytest.raises(UnsupportedDTypeError):
        S.theta_to_bytes({"a": P.Pruned(np.ones(3, dtype=np.int32))})
    with pytest.raises(UnsupportedDTypeError):
        S.theta_to_bytes({}, dense={"c": np.ones(2, dtype=np.complex64)})


def test_an_integer_dtype_in_a_compressed_record_is_refused_on_reading():
    data = S.theta_to_bytes({"a": P.Pruned(np.array([0.0, 2.0]))})
    rec = S.read_model(data).header["theta"]["items"][0][1]
    assert rec["scheme"] == "pruned" and rec["dtype"] == "float64"
    # rewrite the record as int64 (same 8-byte values) with a valid checksum: refused
    import hashlib

    from compressopt.storage.container import write_safetensors
    from compressopt.storage.model_file import _container

    text, _, payload = _container(data)
    bad = text.replace('"dtype":"float64"', '"dtype":"int64"')
    assert bad != text
    digest = hashlib.sha256(bad.encode() + bytes(payload)).hexdigest()
    forged = write_safetensors({"payload": np.frombuffer(bytes(payload), np.uint8)},
                               {"compressopt": bad, "sha256": digest})
    with pytest.raises(CorruptFileError, match="unsupported dtype 'int64'"):
        S.read_model(forged)


torch = pytest.importorskip("torch")


def test_resnet20_with_batchnorm_round_trips_and_loads_strictly(tmp_path):
    from compressopt.dnn.compressed import load_compressed, save_compressed
    from compressopt.dnn.models import ResNet20

    torch.manual_seed(0)
    net = ResNet20((3, 32, 32), num_classes=10)
    net.train()
    with torch.no_grad():
        net(torch.randn(4, 3, 32, 32))  # BatchNorm statistics and counters move
    state = net.state_dict()
    counters = [n for n, t in state.items() if t.dtype == torch.int64]
    assert counters and all(state[n].item() == 1 for n in counters)
    weights = {n: p.detach() for n, p in net.named_parameters()
               if p.ndim > 1 and n.endswith("weight")}
    c = P.PerTensor(P.AdaptiveQuantization(4, method="fast"))
    theta = c.compress(weights)
    x = c.decompress(theta)
    with torch.no_grad():
        for n, v in x.items():
            state[n].copy_(v)
    path = tmp_path / "resnet20.cpz"
    save_compressed(path, net, c, theta, metadata={"model": "resnet20"})
    cm = load_compressed(path)
    assert "buffers_left_out" not in cm.metadata
    fresh = ResNet20((3, 32, 32), num_classes=10)
    cm.apply_to(fresh)  # strict: every name of the state_dict, int64 counters included
    got = fresh.state_dict()
    assert list(got) == list(state)
    for n, t in state.items():
        assert got[n].dtype == t.dtype and got[n].shape == t.shape, n
        assert torch.equal(got[n], t), n
    assert all(got[n].item() == 1 for n in counters)
