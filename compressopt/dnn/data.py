"""Data sets for the main job: scikit-learn's bundled digits and MNIST from its IDX files.

Both load into memory as float32 tensors ``(N, 1, H, W)`` with int64 labels ``(N,)``,
standardized with the training split's pixel mean and standard deviation (a scalar each), and
are served by :func:`make_loader`, a :class:`torch.utils.data.DataLoader` that draws whole
minibatches by index (one gather per batch, no per-example collation) with a seeded shuffle.
Nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

from compressopt.errors import DataError

__all__ = [
    "DATASETS",
    "MNIST_FILES",
    "Splits",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "make_loader",
    "read_idx",
]

#: IDX type codes (LeCun's format description) -> big-endian numpy dtype
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: the four original MNIST files: split -> (images, labels)
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class Splits(NamedTuple):
    """A data set in memory, train and test splits.

    ``x_*``: float32 ``(N, C, H, W)``, standardized; ``y_*``: int64 ``(N,)`` in
    ``[0, num_classes)``. Tensors on the CPU (move batches to the model's device).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, ``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (LeCun's MNIST format), gzip-compressed or not.

    Layout: a big-endian 4-byte magic ``0x00 0x00 <type> <ndim>``, then `ndim` big-endian
    uint32 sizes, then the values in C order, big-endian. Type codes: 0x08 uint8, 0x09 int8,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64. A name ending in ``.gz`` is read
    through gzip.

    Parameters
    ----------
    path : path of the file.

    Returns
    -------
    numpy.ndarray
        Shape given by the header, the file's dtype in native byte order (uint8 for MNIST).

    Raises
    ------
    DataError
        The file is missing, not valid gzip, has a bad magic number or type code, or holds
        fewer or more bytes than its header announces.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny-idx1-ubyte"
    >>> _ = p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> read_idx(p)
    array([7, 8, 9], dtype=uint8)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file not found: {path}")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable gzip file ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: bad IDX magic number {raw[:4].hex() or '(empty file)'}")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    want = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != want:
        what = "truncated" if len(raw) < want else "has trailing bytes"
        raise DataError(f"{path}: {what}: {len(raw)} bytes, header {shape} needs {want}")
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def _standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(x - mean) / std with the training split's scalar mean and std; float32 (N, 1, H, W)."""
    x_train = x_train.astype(np.float32)
    x_test = x_test.astype(np.float32)
    mean, std = float(x_train.mean()), float(x_train.std())
    tr, te = (torch.from_numpy((x - mean) / std).unsqueeze(1) for x in (x_train, x_test))
    return tr.contiguous(), te.contiguous()


def load_mnist(directory: str | os.PathLike[str]) -> Splits:
    """MNIST from the four original IDX files in `directory` (60,000 train, 10,000 test).

    Returns
    -------
    Splits
        28×28 images as float32 ``(N, 1, 28, 28)``, standardized with the training mean and
        standard deviation of the pixel values scaled to [0, 1]; labels int64 in 0..9.

    Raises
    ------
    DataError
        `directory` does not exist, one of :data:`MNIST_FILES` is missing from it (the message
        names the file), a file is malformed (see :func:`read_idx`), or images and labels do
        not agree in number or shape.

    References
    ----------
    .. [1] LeCun, Cortes & Burges, "The MNIST database of handwritten digits", 1998.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"MNIST directory not found: {directory}")
    arrays = {}
    for split, names in MNIST_FILES.items():
        for name in names:
            if not (directory / name).is_file():
                raise DataError(f"MNIST file missing: {directory / name}")
        images, labels = (read_idx(directory / n) for n in names)
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DataError(
                f"MNIST {split} split: images {images.shape} and labels {labels.shape} do not "
                "match (expected (N, 28, 28) and (N,))"
            )
        if labels.size and int(labels.max()) > 9:
            raise DataError(f"MNIST {split} labels must be 0..9, found {int(labels.max())}")
        arrays[split] = (images.astype(np.float32) / 255.0, labels)
    x_train, x_test = _standardize(arrays["train"][0], arrays["test"][0])
    return Splits(
        "mnist", x_train, torch.from_numpy(arrays["train"][1].astype(np.int64)),
        x_test, torch.from_numpy(arrays["test"][1].astype(np.int64)), 10,
    )


def load_digits(test_fraction: float = 0.2) -> Splits:
    """scikit-learn's bundled 8×8 digits (1,797 images, 10 classes), a fixed stratified split.

    The split is the same for every seed (``train_test_split(..., random_state=0,
    stratify=y)``): 1,437 training and 360 test images with ``test_fraction=0.2``. Pixels
    (0..16) are scaled to [0, 1] and standardized with the training mean and std.

    Returns
    -------
    Splits
        float32 ``(N, 1, 8, 8)`` images, int64 labels.

    Raises
    ------
    ValueError
        `test_fraction` outside (0, 1).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=0, stratify=y
    )
    x_tr_t, x_te_t = _standardize(x_tr, x_te)
    return Splits("digits", x_tr_t, torch.from_numpy(y_tr), x_te_t, torch.from_numpy(y_te), 10)


DATASETS = ("digits", "mnist")


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None) -> Splits:
    """:func:`load_digits` (``"digits"``) or :func:`load_mnist` of `data_dir` (``"mnist"``).

    Raises
    ------
    DataError
        ``"mnist"`` without a `data_dir`, or as :func:`load_mnist`.
    ValueError
        Unknown `name`.
    """
    if name == "digits":
        return load_digits()
    if name == "mnist":
        if data_dir is None:
            raise DataError("the mnist data set needs a data directory (--data-dir)")
        return load_mnist(data_dir)
    raise ValueError(f"unknown data set {name!r}; choose one of {list(DATASETS)}")


def make_loader(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool, seed: int = 0
) -> DataLoader:
    """A DataLoader of ``(x[idx], y[idx])`` minibatches, reproducible with `seed`.

    Each batch is one gather of `batch_size` rows (the last batch may be smaller). With
    `shuffle`, the order is a fresh permutation every epoch, drawn from a generator seeded
    once with `seed`, so a run's sequence of batches is the same on every run.

    Raises
    ------
    ValueError
        `batch_size` < 1, or `x` and `y` differ in length.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y differ in length: {x.shape[0]} vs {y.shape[0]}")
    ds = TensorDataset(x, y)
    if shuffle:
        gen = torch.Generator().manual_seed(seed)
        base = RandomSampler(ds, generator=gen)
    else:
        base = SequentialSampler(ds)
    return DataLoader(ds, sampler=BatchSampler(base, batch_size, drop_last=False), batch_size=None)
