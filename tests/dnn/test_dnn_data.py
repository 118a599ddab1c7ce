"""The IDX reader (synthetic files), MNIST (synthetic and real), digits, the loader."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from compressopt.dnn.data import (
    MNIST_FILES,
    Splits,
    check_splits,
    load_dataset,
    load_digits,
    load_mnist,
    make_loader,
    read_idx,
    read_idx_header,
)
from compressopt.errors import DataError, ResourceLimitError


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
    padded = load_mnist(real_mnist, size=32)  # ResNet-20's input: the same pixels, centered
    assert padded.x_train.shape == (60_000, 1, 32, 32)
    assert torch.equal(padded.x_test[:, :, 2:30, 2:30], s.x_test)


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


# -- issue 14: the IDX header first, bounded memory, labels, empty splits, constant images --


def gzip_bomb(header: bytes, mib: int) -> bytes:
    """`header` then `mib` MiB of zeros, as a multi-member gzip stream (~1 KB per MiB)."""
    return gzip.compress(header) + gzip.compress(bytes(2**20), compresslevel=9) * mib


def mnist_header(n: int, *rest: int, code: int = 0x08) -> bytes:
    dims = (n, *rest)
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


_MEASURE = """
import resource, sys
from compressopt.dnn.data import read_idx
from compressopt.errors import CompressoptError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_idx(sys.argv[1])
    print("accepted")
except CompressoptError as e:
    print(type(e).__name__, e)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) // 1024)
"""


def test_gzip_bomb_is_refused_with_little_memory(tmp_path):
    """A 12.8 MB gzip file that decompresses to 12 GiB behind a valid MNIST header: read the
    60000x28x28 bytes the header promises, find more, stop (the old reader decompressed all
    of it: 6.6 GB for the issue's bomb)."""
    import subprocess
    import sys

    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip_bomb(mnist_header(60_000, 28, 28), 12_180))
    assert 12.5e6 < bomb.stat().st_size < 13.2e6
    r = subprocess.run([sys.executable, "-c", _MEASURE, str(bomb)], capture_output=True,
                       text=True, timeout=120, check=True)
    kind_line, grown = r.stdout.strip().splitlines()[-2:]
    assert kind_line.startswith("DataError") and "trailing bytes" in kind_line
    assert int(grown) < 150, f"peak memory grew by {grown} MiB"  # the 47 MB payload


def test_header_promising_more_than_the_file_can_hold(tmp_path):
    # 1 KB of gzip cannot hold 784 MB: refused before any payload is read
    f = write(tmp_path / "lie.gz", mnist_header(1_000_000, 28, 28) + bytes(100))
    with pytest.raises(DataError, match="more than a gzip file of"):
        read_idx(f)
    plain = write(tmp_path / "lie", mnist_header(1_000, 28, 28) + bytes(100))
    with pytest.raises(DataError, match="truncated"):
        read_idx(plain)
    # a gzip that could hold what its header asks, more than the limit: refused unread
    big = tmp_path / "big.gz"
    big.write_bytes(gzip_bomb(mnist_header(2_100, 1024, 1024), 2_100))
    with pytest.raises(ResourceLimitError, match=r"promises 2202009600 bytes, more than the "
                       r"limit of 2147483648 \(read_idx max_bytes\)"):
        read_idx(big)
    big.write_bytes(gzip_bomb(mnist_header(4_000, 1024, 1024), 4))
    with pytest.raises(DataError, match="more than a gzip file of 4"):
        read_idx(big)
    small = write(tmp_path / "s.gz", idx_bytes(np.zeros((10, 10), np.uint8)))
    with pytest.raises(ResourceLimitError, match="limit of 99"):
        read_idx(small, max_bytes=99)
    assert read_idx(small, max_bytes=100).shape == (10, 10)


def test_read_idx_header_reads_only_the_header(tmp_path):
    f = tmp_path / "h.gz"
    f.write_bytes(gzip.compress(mnist_header(7, 28, 28)) + b"garbage, not gzip")
    dtype, shape = read_idx_header(f)
    assert dtype == np.uint8 and shape == (7, 28, 28)
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_idx(f)


def test_mnist_headers_are_checked_before_any_payload(tmp_path):
    fake_mnist(tmp_path)
    # test images: a valid header for 10 images, then a payload that is not gzip at all;
    # the mismatch with the labels' header (9) is reported, so no payload was decompressed
    img, lab = MNIST_FILES["test"]
    (tmp_path / img).write_bytes(gzip.compress(mnist_header(10, 28, 28)) + b"\x00junk")
    write(tmp_path / lab, idx_bytes(np.zeros(9, np.uint8)))
    with pytest.raises(DataError, match=r"MNIST test split: images \(10, 28, 28\) and labels "
                       r"\(9,\) do not match"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("label, found", [(-1, -1), (10, 10), (-128, -128)])
def test_mnist_labels_outside_0_to_9(tmp_path, label, found):
    fake_mnist(tmp_path)
    lab = MNIST_FILES["test"][1]
    labels = np.zeros(10, np.int8)
    labels[3] = label
    write(tmp_path / lab, idx_bytes(labels))  # type 0x09, int8: -1 is representable
    with pytest.raises(DataError, match=f"MNIST test labels must be 0..9, found {found}$"):
        load_mnist(tmp_path)


def test_mnist_label_and_image_types(tmp_path):
    fake_mnist(tmp_path)
    write(tmp_path / MNIST_FILES["train"][1], idx_bytes(np.zeros(20, np.float32)))
    with pytest.raises(DataError, match="images must be uint8 and labels integers"):
        load_mnist(tmp_path)
    fake_mnist(tmp_path)
    write(tmp_path / MNIST_FILES["train"][0], idx_bytes(np.zeros((20, 28, 28), np.int16)))
    with pytest.raises(DataError, match="images must be uint8"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("split", ["train", "test"])
def test_empty_mnist_split_is_refused(tmp_path, split):
    fake_mnist(tmp_path, **{f"n_{split}": 0})
    with pytest.raises(DataError, match=f"MNIST {split} split is empty"):
        load_mnist(tmp_path)


def test_evaluate_refuses_an_empty_set():
    from compressopt.dnn.models import LeNet300
    from compressopt.dnn.train import evaluate

    with pytest.raises(DataError, match="empty data set"):
        evaluate(LeNet300((1, 8, 8), 10), torch.zeros(0, 1, 8, 8),
                 torch.zeros(0, dtype=torch.int64))


def test_constant_images_standardize_without_warnings(tmp_path):
    import warnings

    for split, (img, lab) in MNIST_FILES.items():
        n = 6 if split == "train" else 3
        write(tmp_path / img, idx_bytes(np.full((n, 28, 28), 7, np.uint8)))
        write(tmp_path / lab, idx_bytes(np.arange(n, dtype=np.uint8)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = load_mnist(tmp_path)
    assert torch.equal(s.x_train, torch.zeros(6, 1, 28, 28))
    assert torch.equal(s.x_test, torch.zeros(3, 1, 28, 28))


def test_mnist_padded_to_32(tmp_path):
    fake_mnist(tmp_path)
    plain, padded = load_mnist(tmp_path), load_mnist(tmp_path, size=32)
    assert padded.input_shape == (1, 32, 32) and padded.x_test.shape == (10, 1, 32, 32)
    # the original pixels keep their values (the unpadded statistics); the border is black
    assert torch.equal(padded.x_train[:, :, 2:30, 2:30], plain.x_train)
    raw = read_idx(tmp_path / MNIST_FILES["train"][0]).astype(np.float32) / 255
    black = float((0 - raw.mean()) / raw.std())
    border = padded.x_train.clone()
    border[:, :, 2:30, 2:30] = black
    assert torch.allclose(border, torch.full_like(border, black))
    assert torch.equal(padded.y_train, plain.y_train)
    d = load_dataset("digits", size=12)
    assert d.input_shape == (1, 12, 12)
    with pytest.raises(ValueError, match="cannot pad 28x28 images to 20x20"):
        load_mnist(tmp_path, size=20)


def splits(**kw):
    base = dict(name="t", x_train=torch.zeros(4, 3), y_train=torch.tensor([0, 1, 2, 0]),
                x_test=torch.zeros(2, 3), y_test=torch.tensor([1, 2]), num_classes=3)
    return Splits(**{**base, **kw})


def test_check_splits():
    assert check_splits(splits()).num_classes == 3
    cases = [
        (dict(y_test=torch.zeros(0, dtype=torch.int64), x_test=torch.zeros(0, 3)),
         "the test split is empty"),
        (dict(x_train=torch.zeros(3, 3)), "x_train has 3 examples, y_train 4 labels"),
        (dict(y_train=torch.tensor([0.0, 1, 2, 0])), "y_train must be int64"),
        (dict(y_test=torch.tensor([1, 3])), r"y_test labels must be in 0..2, found 3"),
        (dict(y_test=torch.tensor([-1, 2])), r"y_test labels must be in 0..2, found -1"),
        (dict(x_test=torch.tensor([[0.0, float("nan"), 0]] * 2)), "x_test holds NaN"),
        (dict(x_train=(torch.zeros(4, 3), torch.zeros(5, 3))), "x_train has 5 examples"),
        (dict(x_train="no"), "x_train must be a tensor"),
    ]
    for kw, msg in cases:
        with pytest.raises(DataError, match=msg):
            check_splits(splits(**kw))


def test_splits_shapes_and_vocab():
    assert splits().input_shape == (3,) and splits().vocab_size is None
    tok = splits(x_train=torch.tensor([[1, 2], [3, 4], [0, 0], [1, 1]]),
                 x_test=torch.tensor([[9, 1], [1, 1]]))
    assert tok.vocab_size == 10 and tok.input_shape == (2,)
    tup = splits(x_train=(tok.x_train, torch.zeros(4, 2, dtype=torch.bool)),
                 x_test=(tok.x_test, torch.zeros(2, 2, dtype=torch.bool)))
    assert tup.input_shape == ((2,), (2,)) and tup.vocab_size == 10


def test_make_loader_tuple_inputs():
    ids = torch.arange(20).reshape(10, 2)
    mask = ids % 3 == 0
    y = torch.arange(10)
    (xb, mb), yb = next(iter(make_loader((ids, mask), y, 4, shuffle=False)))
    assert torch.equal(xb, ids[:4]) and torch.equal(mb, mask[:4]) and yb.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="differ in length"):
        make_loader((ids, mask[:5]), y, 2, shuffle=False)


def test_distributed_loader_shards():
    """Two ranks' shards: disjoint, together the epoch; a new order each epoch, the same on
    every rank; without shuffle rank r's batch t is rows r, r+2, ... of the 2B batch t."""
    x = torch.arange(24.0).reshape(24, 1)
    y = torch.arange(24)

    def labels(loader, epochs=2):
        return [[b[1].tolist() for b in loader] for _ in range(epochs)]

    r0 = labels(make_loader(x, y, 3, shuffle=True, seed=5, rank=0, world_size=2))
    r1 = labels(make_loader(x, y, 3, shuffle=True, seed=5, rank=1, world_size=2))
    for e in range(2):
        a = [i for b in r0[e] for i in b]
        b = [i for b in r1[e] for i in b]
        assert sorted(a + b) == list(range(24)) and not set(a) & set(b)
    assert r0[0] != r0[1]  # set_epoch was called: another permutation
    assert r0 == labels(make_loader(x, y, 3, shuffle=True, seed=5, rank=0, world_size=2))
    single = [b[1].tolist() for b in make_loader(x, y, 6, shuffle=False)]
    ranks = [labels(make_loader(x, y, 3, shuffle=False, rank=r, world_size=2), 1)[0]
             for r in (0, 1)]
    for t, batch in enumerate(single):
        assert ranks[0][t] == batch[0::2] and ranks[1][t] == batch[1::2]
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\)"):
        make_loader(x, y, 3, shuffle=False, rank=2, world_size=2)
