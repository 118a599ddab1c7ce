"""The IDX reader (synthetic files), MNIST (synthetic and real), digits, the loader."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from compressopt.dnn.data import (
    MNIST_FILES,
    load_dataset,
    load_digits,
    load_mnist,
    make_loader,
    read_idx,
)
from compressopt.errors import DataError


def idx_bytes(a: np.ndarray, code: int | None = None) -> bytes:
    codes = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
             np.float32: 0x0D, np.float64: 0x0E}
    code = codes[a.dtype.type] if code is None else code
    head = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write(path, data: bytes):
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_roundtrip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((3, 5, 7)) * 50).astype(dtype)
    out = read_idx(write(tmp_path / f"a-idx3{suffix}", idx_bytes(a)))
    assert out.dtype == np.dtype(dtype) and out.shape == (3, 5, 7)
    np.testing.assert_array_equal(out, a)
    out[0, 0, 0] = 1  # writable, native byte order


def test_read_idx_empty_and_1d(tmp_path):
    assert read_idx(write(tmp_path / "e", idx_bytes(np.zeros((0, 4), np.uint8)))).shape == (0, 4)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "l.gz", idx_bytes(labels))), labels)


def test_read_idx_errors(tmp_path):
    good = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    with pytest.raises(DataError, match=r"IDX file not found: .*nope\.gz"):
        read_idx(tmp_path / "nope.gz")
    with pytest.raises(DataError, match="bad IDX magic number 01000802"):
        read_idx(write(tmp_path / "m1", b"\x01" + good[1:]))
    with pytest.raises(DataError, match="bad IDX magic number 00000702"):
        read_idx(write(tmp_path / "m2", good[:2] + b"\x07" + good[3:]))
    with pytest.raises(DataError, match="empty file"):
        read_idx(write(tmp_path / "m3", b""))
    with pytest.raises(DataError, match=r"truncated: 23 bytes, header \(3, 4\) needs 24"):
        read_idx(write(tmp_path / "t.gz", good[:-1]))
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(write(tmp_path / "h", good[:9]))
    with pytest.raises(DataError, match="trailing bytes"):
        read_idx(write(tmp_path / "x", good + b"\x00"))
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_idx(bad)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_idx(cut)


def fake_mnist(d, n_train=20, n_test=10, *, drop=None, labels_n=None):
    rng = np.random.default_rng(1)
    sizes = {"train": n_train, "test": n_test}
    for split, (img, lab) in MNIST_FILES.items():
        n = sizes[split]
        write(d / img, idx_bytes(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)))
        write(d / lab, idx_bytes(rng.integers(0, 10, (labels_n or n,), dtype=np.uint8)))
    if drop:
        (d / drop).unlink()
    return d


def test_load_mnist_synthetic(tmp_path):
    s = load_mnist(fake_mnist(tmp_path))
    assert s.name == "mnist" and s.num_classes == 10 and s.input_shape == (1, 28, 28)
    assert s.x_train.shape == (20, 1, 28, 28) and s.x_test.shape == (10, 1, 28, 28)
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.int64
    assert abs(float(s.x_train.mean())) < 1e-4
    assert float(s.x_train.std()) == pytest.approx(1, abs=1e-3)
    raw = read_idx(tmp_path / MNIST_FILES["train"][1])
    np.testing.assert_array_equal(s.y_train.numpy(), raw)


@pytest.mark.parametrize("missing", [f for pair in MNIST_FILES.values() for f in pair])
def test_load_mnist_missing_file_is_named(tmp_path, missing):
    with pytest.raises(DataError, match=f"MNIST file missing: .*{missing}"):
        load_mnist(fake_mnist(tmp_path, drop=missing))


def test_load_mnist_errors(tmp_path):
    with pytest.raises(DataError, match="MNIST directory not found"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(DataError, match="do not match"):
        load_mnist(fake_mnist(tmp_path, labels_n=7))
    with pytest.raises(DataError, match="needs a data directory"):
        load_dataset("mnist", None)
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("cifar")


def test_real_mnist_shapes(real_mnist):
    s = load_mnist(real_mnist)
    assert s.x_train.shape == (60_000, 1, 28, 28) and s.y_train.shape == (60_000,)
    assert s.x_test.shape == (10_000, 1, 28, 28) and s.y_test.shape == (10_000,)
    counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert torch.bincount(s.y_test).tolist() == counts
    assert int(s.y_train[0]) == 5 and int(s.y_test[0]) == 7  # the well-known first labels


def test_digits():
    s = load_digits()
    assert s.name == "digits" and s.input_shape == (1, 8, 8)
    assert s.x_train.shape == (1437, 1, 8, 8) and s.x_test.shape == (360, 1, 8, 8)
    assert s.y_train.dtype == torch.int64 and set(s.y_test.tolist()) == set(range(10))
    counts = torch.bincount(s.y_test)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified
    assert abs(float(s.x_train.mean())) < 1e-5
    assert float(s.x_train.std()) == pytest.approx(1, abs=1e-4)
    again = load_digits()
    assert torch.equal(again.x_test, s.x_test) and torch.equal(again.y_train, s.y_train)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(1.0)


def test_make_loader_is_seeded_and_covers_the_data():
    x = torch.arange(10.0).reshape(10, 1)
    y = torch.arange(10)

    def epochs(seed, n=2):
        loader = make_loader(x, y, 4, shuffle=True, seed=seed)
        return [[b[1].tolist() for b in loader] for _ in range(n)]

    a, b = epochs(3), epochs(3)
    assert a == b  # same seed, same order, epoch after epoch
    assert a[0] != a[1]  # a fresh permutation each epoch
    assert epochs(4) != a
    assert [len(batch) for batch in a[0]] == [4, 4, 2]
    assert sorted(i for batch in a[0] for i in batch) == list(range(10))
    xb, yb = next(iter(make_loader(x, y, 3, shuffle=False)))
    assert yb.tolist() == [0, 1, 2] and torch.equal(xb[:, 0], yb.float())
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(x, y, 0, shuffle=False)
    with pytest.raises(ValueError, match="differ in length"):
        make_loader(x, y[:5], 2, shuffle=False)
