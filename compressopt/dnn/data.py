"""Data sets for the main job: scikit-learn's bundled digits and MNIST from its IDX files.

Both load into memory as float32 tensors ``(N, 1, H, W)`` with int64 labels ``(N,)``,
standardized with the training split's pixel mean and standard deviation (a scalar each), and
are served by :func:`make_loader`, a :class:`torch.utils.data.DataLoader` that draws whole
minibatches by index (one gather per batch, no per-example collation) with a seeded shuffle,
or, under ``torch.distributed``, this process's shard of every epoch (``world_size > 1``).
Nothing is ever downloaded.

Inputs may be a tensor or a tuple of tensors with the same first dimension (e.g. token ids
and a padding mask); a model is always called with one argument, the batch's input.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

from compressopt.errors import DataError, ResourceLimitError

__all__ = [
    "DATASETS",
    "MAX_IDX_BYTES",
    "MNIST_FILES",
    "Inputs",
    "Splits",
    "check_splits",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "make_loader",
    "read_idx",
    "read_idx_header",
]

#: a batch's input: one tensor, or a tuple of tensors with the same first dimension
Inputs = torch.Tensor | tuple[torch.Tensor, ...]

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


#: the largest IDX payload :func:`read_idx` reads by default (2 GiB; EMNIST's largest file
#: holds 0.55 GB): a header promising more is refused before anything is decompressed
MAX_IDX_BYTES = 2**31

#: deflate's largest expansion (a 258-byte match coded in about 2 bits): no gzip file of
#: n bytes decompresses to more than about 1032·n bytes
_DEFLATE_MAX_RATIO = 1032

#: bytes decompressed per read
_CHUNK = 1 << 22


class Splits(NamedTuple):
    """A data set in memory, train and test splits.

    ``x_*``: float32 ``(N, C, H, W)``, standardized (the built-in sets), or whatever a
    user's data set holds: a tensor or a tuple of tensors with first dimension N (integer
    token ids are int64); ``y_*``: int64 ``(N,)`` in ``[0, num_classes)``. Tensors on the
    CPU (move batches to the model's device).
    """

    name: str
    x_train: Inputs
    y_train: torch.Tensor
    x_test: Inputs
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...] | tuple[tuple[int, ...], ...]:
        """Shape of one example, ``(C, H, W)``; a tuple of shapes for a tuple input."""
        if isinstance(self.x_train, torch.Tensor):
            return tuple(self.x_train.shape[1:])
        return tuple(tuple(t.shape[1:]) for t in self.x_train)

    @property
    def vocab_size(self) -> int | None:
        """For integer inputs (token ids; the first tensor of a tuple input): the largest id
        of both splits plus one; None for floating inputs (images). Pass it to
        :func:`~compressopt.dnn.models.build_model`."""
        tr, te = (x if isinstance(x, torch.Tensor) else x[0] for x in (self.x_train, self.x_test))
        if tr.is_floating_point() or tr.dtype == torch.bool or not tr.numel():
            return None
        return int(max(int(tr.max()), int(te.max()) if te.numel() else 0)) + 1


def _first_dim(x: Inputs) -> int:
    return int((x if isinstance(x, torch.Tensor) else x[0]).shape[0])


def check_splits(s: Splits) -> Splits:
    """Return `s` after checking what every job needs of a data set, else raise DataError.

    Checks: both splits non-empty; inputs and labels agree in length (every tensor of a
    tuple input too); labels int64, one-dimensional, in ``[0, num_classes)``; floating
    inputs finite.

    Raises
    ------
    DataError
        The message names the split and the array (e.g. ``"x_test"``).
    """
    for split in ("train", "test"):
        x, y = getattr(s, f"x_{split}"), getattr(s, f"y_{split}")
        xs = (x,) if isinstance(x, torch.Tensor) else tuple(x)
        if not xs or not all(isinstance(t, torch.Tensor) for t in xs):
            raise DataError(f"{s.name}: x_{split} must be a tensor or a tuple of tensors")
        if y.ndim != 1 or y.dtype != torch.int64:
            raise DataError(f"{s.name}: y_{split} must be int64 of shape (N,), got "
                            f"{y.dtype} {tuple(y.shape)}")
        if y.shape[0] == 0:
            raise DataError(f"{s.name}: the {split} split is empty (y_{split} has 0 labels)")
        for t in xs:
            if t.ndim < 1 or t.shape[0] != y.shape[0]:
                raise DataError(f"{s.name}: x_{split} has {t.shape[0] if t.ndim else 0} "
                                f"examples, y_{split} {y.shape[0]} labels")
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise DataError(f"{s.name}: x_{split} holds NaN or Inf values")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= s.num_classes:
            raise DataError(f"{s.name}: y_{split} labels must be in 0..{s.num_classes - 1}, "
                            f"found {lo if lo < 0 else hi}")
    return s


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_header(f: IO[bytes], path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: bad IDX magic number {magic.hex() or '(empty file)'}")
    dtype, ndim = _IDX_DTYPES[magic[2]], magic[3]
    header = 4 + 4 * ndim
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({4 + len(dims)} bytes, need {header})")
    return dtype, struct.unpack(f">{ndim}I", dims), header


def _gzip_errors() -> tuple[type[BaseException], ...]:
    return (OSError, EOFError, zlib.error)


def read_idx_header(path: str | os.PathLike[str]) -> tuple[np.dtype, tuple[int, ...]]:
    """The element type and shape an IDX file's header announces; reads only the header.

    Raises
    ------
    DataError
        As :func:`read_idx` for the file's first ``4 + 4·ndim`` (decompressed) bytes.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file not found: {path}")
    try:
        with _open(path) as f:
            dtype, shape, _ = _read_header(f, path)
    except _gzip_errors() as e:
        raise DataError(f"{path}: not a readable gzip file ({e})") from e
    return dtype.newbyteorder("="), shape


def read_idx(path: str | os.PathLike[str], *, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read one IDX file (LeCun's MNIST format), gzip-compressed or not.

    Layout: a big-endian 4-byte magic ``0x00 0x00 <type> <ndim>``, then `ndim` big-endian
    uint32 sizes, then the values in C order, big-endian. Type codes: 0x08 uint8, 0x09 int8,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64. A name ending in ``.gz`` is read
    through gzip.

    The header is checked first: the byte count its sizes promise, B = prod(sizes)·itemsize,
    must be at most `max_bytes` and at most what the file can hold (its size for a plain
    file, 1032 times its size for gzip, deflate's largest ratio). Then exactly B bytes are
    decompressed, in 4 MiB chunks, and one more byte must not exist: a gzip bomb is refused
    after at most B + 4 MiB of output, and memory stays O(B).

    Parameters
    ----------
    path : path of the file.
    max_bytes : int
        Largest payload accepted, in bytes (default :data:`MAX_IDX_BYTES`, 2 GiB).

    Returns
    -------
    numpy.ndarray
        Shape given by the header, the file's dtype in native byte order (uint8 for MNIST),
        writable.

    Raises
    ------
    DataError
        The file is missing, not valid gzip, has a bad magic number or type code, or holds
        fewer or more bytes than its header announces (or could hold).
    ResourceLimitError
        The header promises more than `max_bytes`.

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
    size = path.stat().st_size
    gz = path.suffix == ".gz"
    try:
        with _open(path) as f:
            dtype, shape, header = _read_header(f, path)
            nbytes = math.prod(shape) * dtype.itemsize
            want = header + nbytes
            if not gz and size != want:
                what = "truncated" if size < want else "has trailing bytes"
                raise DataError(f"{path}: {what}: {size} bytes, header {shape} needs {want}")
            if gz and nbytes > _DEFLATE_MAX_RATIO * size + (1 << 16):
                raise DataError(
                    f"{path}: header {shape} promises {nbytes} bytes, more than a gzip file "
                    f"of {size} bytes can hold"
                )
            if nbytes > max_bytes:
                raise ResourceLimitError(
                    f"{path}: header {shape} promises {nbytes} bytes, more than the limit of "
                    f"{max_bytes} (read_idx max_bytes)"
                )
            buf = np.empty(nbytes, dtype=np.uint8)
            got = _read_into(f, memoryview(buf))
            if got < nbytes:
                raise DataError(
                    f"{path}: truncated: {header + got} bytes, header {shape} needs {want}"
                )
            if f.read(1):
                raise DataError(
                    f"{path}: has trailing bytes: more than {want} bytes, header {shape} "
                    f"needs {want}"
                )
    except _gzip_errors() as e:
        if isinstance(e, DataError):
            raise
        what = "not a readable gzip file" if gz else "cannot be read"
        raise DataError(f"{path}: {what} ({e})") from e
    values = buf.view(dtype).reshape(shape)
    if dtype.itemsize == 1:
        return values.view(dtype.newbyteorder("="))  # already writable and native
    return values.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def _read_into(f: IO[bytes], out: memoryview) -> int:
    """Fill `out` from `f` chunk by chunk; the number of bytes read (short at end of file)."""
    got = 0
    while got < len(out):
        n = f.readinto(out[got : got + _CHUNK])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def _standardize(
    x_train: np.ndarray, x_test: np.ndarray, size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x - mean) / std with the training split's scalar mean and std; float32 (N, 1, H, W).

    A zero (constant images) or non-finite std is replaced by 1. With `size`, the images
    are first padded with zeros (of the unstandardized pixels) to ``size × size``, centered;
    mean and std are those of the unpadded training images.
    """
    x_train = x_train.astype(np.float32)
    x_test = x_test.astype(np.float32)
    mean, std = float(x_train.mean()), float(x_train.std())
    if not (std > 0 and math.isfinite(std)):
        std = 1.0
    if size is not None:
        x_train, x_test = (_pad_images(x, size) for x in (x_train, x_test))
    tr, te = (torch.from_numpy((x - mean) / std).unsqueeze(1) for x in (x_train, x_test))
    return tr.contiguous(), te.contiguous()


def _pad_images(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (N, H, W) images to (N, size, size), centered (an odd extra row goes last)."""
    h, w = x.shape[1:]
    if size < max(h, w):
        raise ValueError(f"cannot pad {h}x{w} images to {size}x{size}")
    ph, pw = size - h, size - w
    return np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))


def load_mnist(directory: str | os.PathLike[str], *, size: int | None = None) -> Splits:
    """MNIST from the four original IDX files in `directory` (60,000 train, 10,000 test).

    Every file's header is read and checked (shapes ``(N, 28, 28)`` and ``(N,)``, uint8
    images, integer labels, the same N in each split, N > 0) before any payload is
    decompressed; then the payloads (see :func:`read_idx`) and the label range 0..9.

    Parameters
    ----------
    directory : folder holding :data:`MNIST_FILES`.
    size : int, optional
        Pad the 28×28 images with black (zero) pixels to ``size × size``, centered, e.g. 32
        for the CIFAR-style ResNet-20 (He et al. 2016, §4.2); the standardization is the
        unpadded images', so the original pixels get the same values as without padding.

    Returns
    -------
    Splits
        28×28 (or size×size) images as float32 ``(N, 1, H, W)``, standardized with the
        training mean and standard deviation of the pixel values scaled to [0, 1]; labels
        int64 in 0..9.

    Raises
    ------
    DataError
        `directory` does not exist, one of :data:`MNIST_FILES` is missing from it (the message
        names the file), a file is malformed (see :func:`read_idx`), images and labels do
        not agree in number or shape, a split is empty, or a label is outside 0..9.
    ResourceLimitError
        As :func:`read_idx`.

    References
    ----------
    .. [1] LeCun, Cortes & Burges, "The MNIST database of handwritten digits", 1998.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"MNIST directory not found: {directory}")
    for names in MNIST_FILES.values():
        for name in names:
            if not (directory / name).is_file():
                raise DataError(f"MNIST file missing: {directory / name}")
    for split, names in MNIST_FILES.items():  # headers first: nothing decompressed yet
        (di, images), (dl, labels) = (read_idx_header(directory / n) for n in names)
        if len(images) != 3 or len(labels) != 1 or images[0] != labels[0]:
            raise DataError(
                f"MNIST {split} split: images {images} and labels {labels} do not "
                "match (expected (N, 28, 28) and (N,))"
            )
        if di != np.uint8 or dl.kind not in "iu":
            raise DataError(f"MNIST {split} split: images must be uint8 and labels integers, "
                            f"got {di} and {dl}")
        if labels[0] == 0:
            raise DataError(f"MNIST {split} split is empty (0 images)")
    arrays = {}
    for split, names in MNIST_FILES.items():
        images, labels = (read_idx(directory / n) for n in names)
        if images.shape[0] != labels.shape[0]:  # the headers changed under us
            raise DataError(f"MNIST {split} split: {images.shape[0]} images, "
                            f"{labels.shape[0]} labels")
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi > 9:
            raise DataError(f"MNIST {split} labels must be 0..9, found {lo if lo < 0 else hi}")
        arrays[split] = (images.astype(np.float32) / 255.0, labels)
    x_train, x_test = _standardize(arrays["train"][0], arrays["test"][0], size)
    return Splits(
        "mnist", x_train, torch.from_numpy(arrays["train"][1].astype(np.int64)),
        x_test, torch.from_numpy(arrays["test"][1].astype(np.int64)), 10,
    )


def load_digits(test_fraction: float = 0.2, *, size: int | None = None) -> Splits:
    """scikit-learn's bundled 8×8 digits (1,797 images, 10 classes), a fixed stratified split.

    The split is the same for every seed (``train_test_split(..., random_state=0,
    stratify=y)``): 1,437 training and 360 test images with ``test_fraction=0.2``. Pixels
    (0..16) are scaled to [0, 1] and standardized with the training mean and std; `size`
    pads as in :func:`load_mnist`.

    Returns
    -------
    Splits
        float32 ``(N, 1, 8, 8)`` images, int64 labels.

    Raises
    ------
    ValueError
        `test_fraction` outside (0, 1), or `size` below 8.
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
    x_tr_t, x_te_t = _standardize(x_tr, x_te, size)
    return Splits("digits", x_tr_t, torch.from_numpy(y_tr), x_te_t, torch.from_numpy(y_te), 10)


DATASETS = ("digits", "mnist")


def load_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None, *, size: int | None = None
) -> Splits:
    """:func:`load_digits` (``"digits"``) or :func:`load_mnist` of `data_dir` (``"mnist"``).

    `size` pads the images to ``size × size`` (see :func:`load_mnist`); e.g.
    ``size=models.INPUT_SIZES.get(model)`` gives ResNet-20 its 32×32 MNIST.

    Raises
    ------
    DataError
        ``"mnist"`` without a `data_dir`, or as :func:`load_mnist`.
    ValueError
        Unknown `name`.
    """
    if name == "digits":
        return load_digits(size=size)
    if name == "mnist":
        if data_dir is None:
            raise DataError("the mnist data set needs a data directory (--data-dir)")
        return load_mnist(data_dir, size=size)
    raise ValueError(f"unknown data set {name!r}; choose one of {list(DATASETS)}")


class _TupleInputs(TensorDataset):
    """``ds[idx] = ((x1[idx], ..., xk[idx]), y[idx])``: a tuple input and its labels."""

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        *xs, y = super().__getitem__(index)
        return tuple(xs), y


class _EpochLoader(DataLoader):
    """A DataLoader over a :class:`DistributedSampler` that calls ``set_epoch(e)`` itself
    at the start of its e-th pass (e = 0, 1, ...), so every epoch is a fresh permutation,
    the same on every rank."""

    def __init__(self, dataset, sampler: DistributedSampler, batch_size: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=False),
                         batch_size=None)
        self.distributed_sampler = sampler
        self.epoch = 0

    def __iter__(self) -> Iterator:  # type: ignore[override]
        self.distributed_sampler.set_epoch(self.epoch)
        self.epoch += 1
        return super().__iter__()


def make_loader(
    x: Inputs,
    y: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A DataLoader of ``(x[idx], y[idx])`` minibatches, reproducible with `seed`.

    Each batch is one gather of `batch_size` rows (the last batch may be smaller). With
    `shuffle`, the order is a fresh permutation every epoch, drawn from a generator seeded
    once with `seed`, so a run's sequence of batches is the same on every run. A tuple `x`
    gives batches ``((x1[idx], ..., xk[idx]), y[idx])``.

    With ``world_size > 1`` (one process of ``torch.distributed``), the batches are this
    `rank`'s shard: a :class:`~torch.utils.data.DistributedSampler` (permutation seeded with
    ``seed + epoch``, the same on every rank; ``set_epoch`` is called at each pass; the
    data padded by repetition to a multiple of `world_size`) cut into batches of
    `batch_size`. The ranks' batches t together are a batch of ``world_size·batch_size``.
    Without shuffle, rank r's batch t is rows ``r, r + W, ...`` of the single-process batch
    t of size ``W·batch_size``.

    Raises
    ------
    ValueError
        `batch_size` < 1, `x` and `y` differ in length, or `rank` not in [0, world_size).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    xs = (x,) if isinstance(x, torch.Tensor) else tuple(x)
    for t in xs:
        if t.shape[0] != y.shape[0]:
            raise ValueError(f"x and y differ in length: {t.shape[0]} vs {y.shape[0]}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    ds = TensorDataset(x, y) if isinstance(x, torch.Tensor) else _TupleInputs(*xs, y)
    if world_size > 1:
        sampler = DistributedSampler(ds, num_replicas=world_size, rank=rank, shuffle=shuffle,
                                     seed=seed, drop_last=False)
        return _EpochLoader(ds, sampler, batch_size)
    if shuffle:
        gen = torch.Generator().manual_seed(seed)
        base = RandomSampler(ds, generator=gen)
    else:
        base = SequentialSampler(ds)
    return DataLoader(ds, sampler=BatchSampler(base, batch_size, drop_last=False), batch_size=None)
