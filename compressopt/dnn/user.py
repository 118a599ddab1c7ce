"""The user's own model and data: ``--model module:factory``, ``--dataset module:factory``,
``--dataset file.npz``.

* :func:`load_factory` resolves ``"package.module:name"`` (imported like any module) or
  ``"path/to/file.py:name"`` (the file is executed as a fresh module) to a callable.
  Importing runs the user's code: that is the point, and it happens only for a spec the user
  gave.
* :func:`build_user_model` calls a model factory with the data's input shape and number of
  classes (as keywords, for the parameters the factory declares).
* :func:`load_user_dataset` reads ``x_train, y_train, x_test, y_test`` from an ``.npz`` file
  (``allow_pickle=False``) or calls a data set factory returning ``(train, test)`` torch
  Datasets, and returns a checked :class:`~compressopt.dnn.data.Splits` held in memory.

Every failure is one line: :class:`~compressopt.errors.ConfigError` for a model spec,
:class:`~compressopt.errors.DataError` for a data set (the message names the spec, the
array or the item at fault).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import default_collate

from compressopt.dnn.data import Inputs, Splits, check_splits
from compressopt.errors import ConfigError, DataError, ResourceLimitError

__all__ = ["NPZ_ARRAYS", "build_user_model", "is_factory_spec", "load_factory",
           "load_user_dataset"]

#: the arrays a data set ``.npz`` must hold
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def is_factory_spec(spec: str) -> bool:
    """True when `spec` has the form ``module:name`` or ``file.py:name`` (not a plain name
    such as ``"lenet5"`` or a file such as ``"data.npz"``)."""
    mod, sep, name = spec.rpartition(":")
    return bool(sep and mod and name)


def load_factory(spec: str, *, error: type[Exception] = ConfigError) -> Callable[..., Any]:
    """The callable named by ``"package.module:name"`` or ``"path/to/file.py:name"``.

    Parameters
    ----------
    spec : str
        Module part: a dotted module path (imported with :func:`importlib.import_module`,
        so it must be on ``sys.path``) or, when it ends in ``.py`` or contains a path
        separator, a Python file (executed as a new module named after its path; the
        file's folder is not added to ``sys.path``). Name part: an attribute of the module;
        dots reach nested attributes (``"mod:Class.build"``).
    error : the exception type raised (ConfigError for models, DataError for data sets).

    Returns
    -------
    callable

    Raises
    ------
    `error`
        One line: a spec without ``:``, a file that does not exist, a module that cannot be
        found or raises while importing (the exception's type and first line), a missing
        attribute, or an attribute that is not callable.

    Examples
    --------
    >>> load_factory("math:sqrt")(9.0)
    3.0
    """
    mod, sep, name = spec.rpartition(":")
    if not (sep and mod and name):
        raise error(f"{spec!r}: expected 'package.module:factory' or 'path/to/file.py:factory'")
    if mod.endswith(".py") or "/" in mod or "\\" in mod:
        module = _import_file(Path(mod), spec, error)
    else:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            raise error(f"{spec!r}: cannot import module {mod!r} ({_one_line(e)})") from e
        except Exception as e:  # the user's module failed while importing
            raise error(f"{spec!r}: importing {mod!r} failed: {_one_line(e)}") from e
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise error(f"{spec!r}: {mod!r} has no attribute {name!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise error(f"{spec!r}: {name!r} is a {type(obj).__name__}, not a callable")
    return obj


def _import_file(path: Path, spec: str, error: type[Exception]) -> Any:
    if not path.is_file():
        raise error(f"{spec!r}: file not found: {path}")
    resolved = path.resolve()
    key = "compressopt_user_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    if key in sys.modules:
        return sys.modules[key]
    mspec = importlib.util.spec_from_file_location(key, resolved)
    if mspec is None or mspec.loader is None:
        raise error(f"{spec!r}: {path} is not an importable Python file")
    module = importlib.util.module_from_spec(mspec)
    sys.modules[key] = module  # dataclasses and pickling-free introspection need it there
    try:
        mspec.loader.exec_module(module)
    except BaseException as e:
        del sys.modules[key]
        if not isinstance(e, Exception):
            raise
        raise error(f"{spec!r}: executing {path} failed: {_one_line(e)}") from e
    return module


def _call_with(factory: Callable[..., Any], spec: str, error: type[Exception],
               **available: Any) -> Any:
    """``factory(**subset of available)``: the keywords its signature accepts (all of them
    with ``**kwargs``; none for a factory without parameters)."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: call with nothing
        kwargs: dict[str, Any] = {}
    else:
        params = sig.parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            kwargs = dict(available)
        else:
            kwargs = {k: v for k, v in available.items() if k in sig.parameters}
        missing = [p.name for p in params if p.default is inspect.Parameter.empty
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in kwargs]
        if missing:
            raise error(f"{spec!r}: the factory needs {missing}; it is called with "
                        f"keywords from {sorted(available)} only")
    try:
        return factory(**kwargs)
    except Exception as e:
        raise error(f"{spec!r}: the factory raised {_one_line(e)}") from e


def build_user_model(
    spec: str,
    input_shape: Sequence[int] | Sequence[Sequence[int]],
    num_classes: int,
    *,
    vocab_size: int | None = None,
) -> nn.Module:
    """The model a user factory ``spec`` builds for the data.

    The factory is called with the keywords it declares among ``input_shape`` (one
    example's shape, e.g. ``(1, 28, 28)``; a tuple of shapes for a tuple input),
    ``num_classes`` and ``vocab_size`` (token data, else None): ``def net():``,
    ``def net(num_classes):`` and ``def net(input_shape, num_classes, **kw):`` all work. It
    must return a :class:`torch.nn.Module` that maps a batch's input to ``(N, num_classes)``
    logits.

    Raises
    ------
    ConfigError
        As :func:`load_factory`, the factory needs other arguments or raises, or it returns
        something that is not an ``nn.Module``.
    """
    factory = load_factory(spec, error=ConfigError)
    model = _call_with(factory, spec, ConfigError, input_shape=tuple(input_shape),
                       num_classes=num_classes, vocab_size=vocab_size)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{spec!r}: the factory returned a {type(model).__name__}, "
                          "not a torch.nn.Module")
    return model


def load_user_dataset(spec: str | Path) -> Splits:
    """A user's data set as :class:`~compressopt.dnn.data.Splits` (in memory, checked).

    Parameters
    ----------
    spec : str or path
        * ``"path/data.npz"``: arrays ``x_train, y_train, x_test, y_test`` (read with
          ``allow_pickle=False``). x: float (any float dtype, stored as float32) or
          integer token ids (stored as int64), first dimension N; y: integer labels
          (N,), >= 0.
        * ``"package.module:factory"`` or ``"file.py:factory"``: ``factory()`` returns
          ``(train, test)``, two map-style torch Datasets (``len`` and ``ds[i]``) whose
          items are ``(x, y)`` with x a tensor (or a tuple of tensors) and y an integer
          label. Every item is read once and stacked (``default_collate``): random
          augmentations in a Dataset's transform are drawn once, not per epoch.

    Returns
    -------
    Splits
        ``name`` the file's stem or the factory's spec; ``num_classes`` = largest label of
        both splits + 1; inputs as given (no standardization), on the CPU.

    Raises
    ------
    DataError
        One line naming the array or item: a missing file, not an npz, a missing array,
        an object (pickled) array, wrong dtypes (x neither float nor integer, y not
        integer), mismatched lengths, an empty split, NaN or Inf in x, negative labels;
        for a factory, as :func:`load_factory`, or it does not return two Datasets, or an
        item is not ``(x, y)``.
    ResourceLimitError
        Stacking a Dataset's items would need more memory than is available.
    """
    spec = str(spec)
    if is_factory_spec(spec) and not spec.endswith(".npz"):
        return _from_factory(spec)
    return _from_npz(Path(spec))


def _from_npz(path: Path) -> Splits:
    if path.suffix != ".npz":
        raise DataError(f"{path}: a data set file must be an .npz (or give module:factory)")
    if not path.is_file():
        raise DataError(f"data set file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [a for a in NPZ_ARRAYS if a not in z.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {missing}; it holds {z.files}")
            arrays = {a: z[a] for a in NPZ_ARRAYS}
    except DataError:
        raise
    except ValueError as e:  # an object array: np.load refuses to unpickle it
        raise DataError(f"{path}: an array holds Python objects (pickle), refused; store "
                        "numeric arrays") from e
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({_one_line(e)})") from e
    tensors: dict[str, torch.Tensor] = {}
    for a, v in arrays.items():
        kind = v.dtype.kind
        if kind == "f" and not np.isfinite(v).all():
            raise DataError(f"{path}: {a} holds NaN or Inf values")
        if kind == "f" and np.abs(v).max(initial=0.0) > np.finfo(np.float32).max:
            raise DataError(f"{path}: {a} holds values beyond float32's range")
        if a.startswith("x"):
            if kind == "f":
                t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            elif kind in "iu":
                t = torch.from_numpy(v.astype(np.int64))
            else:
                raise DataError(f"{path}: {a} has dtype {v.dtype}; expected floats (features, "
                                "images) or integers (token ids)")
            if v.ndim < 1:
                raise DataError(f"{path}: {a} must have a first dimension (examples)")
        else:
            if kind not in "iu" or v.ndim != 1:
                raise DataError(f"{path}: {a} must be integer labels of shape (N,), got "
                                f"{v.dtype} {v.shape}")
            t = torch.from_numpy(v.astype(np.int64))
        tensors[a] = t
    return _checked(path.stem, tensors["x_train"], tensors["y_train"], tensors["x_test"],
                    tensors["y_test"], str(path))


def _checked(name: str, x_tr: Inputs, y_tr: torch.Tensor, x_te: Inputs, y_te: torch.Tensor,
             where: str) -> Splits:
    for split, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        n = int((x if isinstance(x, torch.Tensor) else x[0]).shape[0])
        if n != y.shape[0]:
            raise DataError(f"{where}: x_{split} has {n} examples, y_{split} {y.shape[0]} labels")
        if n == 0:
            raise DataError(f"{where}: the {split} split is empty (x_{split} has 0 examples)")
        if int(y.min()) < 0:
            raise DataError(f"{where}: y_{split} holds a negative label ({int(y.min())})")
    x_kinds = {(t if isinstance(t, torch.Tensor) else t[0]).is_floating_point()
               for t in (x_tr, x_te)}
    if len(x_kinds) > 1:
        raise DataError(f"{where}: x_train and x_test must both be floats or both integers")
    classes = max(int(y_tr.max()), int(y_te.max())) + 1
    return check_splits(Splits(name, x_tr, y_tr, x_te, y_te, classes))


def _from_factory(spec: str) -> Splits:
    factory = load_factory(spec, error=DataError)
    out = _call_with(factory, spec, DataError)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise DataError(f"{spec!r}: the factory must return (train, test) Datasets, got a "
                        f"{type(out).__name__}")
    split = {}
    for name, ds in zip(("train", "test"), out, strict=True):
        if not (hasattr(ds, "__len__") and hasattr(ds, "__getitem__")):
            raise DataError(f"{spec!r}: the {name} set is a {type(ds).__name__}, not a "
                            "map-style Dataset (len and indexing)")
        split[name] = _stack(ds, f"{spec!r} {name} set")
    (x_tr, y_tr), (x_te, y_te) = split["train"], split["test"]
    return _checked(spec, x_tr, y_tr, x_te, y_te, spec)


def _item(ds: Any, i: int, where: str) -> tuple[Any, Any]:
    try:
        item = ds[i]
    except Exception as e:
        raise DataError(f"{where}: item {i} raised {_one_line(e)}") from e
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        raise DataError(f"{where}: item {i} is a {type(item).__name__}, expected (x, y)")
    return item[0], item[1]


def _nbytes(x: Any) -> int:
    if isinstance(x, torch.Tensor):
        return x.numel() * x.element_size()
    if isinstance(x, np.ndarray):
        return int(x.nbytes)
    if isinstance(x, (tuple, list)):
        return sum(_nbytes(t) for t in x)
    return 8


def _stack(ds: Any, where: str) -> tuple[Inputs, torch.Tensor]:
    """All items of `ds` stacked: (x as a tensor or tuple of tensors, int64 labels)."""
    n = len(ds)
    if n == 0:
        raise DataError(f"{where} is empty (len 0)")
    first = _item(ds, 0, where)
    x0 = first[0]
    need = n * _nbytes(x0)
    try:
        import psutil

        avail = psutil.virtual_memory().available
    except Exception:  # pragma: no cover - psutil is a core dependency
        avail = math.inf
    if need > avail / 2:
        raise ResourceLimitError(f"{where}: {n} items of {_nbytes(x0)} bytes need {need} "
                                 f"bytes in memory, more than half of the {avail:.0f} available")
    xs, ys = [], []
    for i in range(n):
        x, y = _item(ds, i, where) if i else first
        if isinstance(y, torch.Tensor):
            if y.numel() != 1 or y.is_floating_point() or y.is_complex():
                raise DataError(f"{where}: item {i}'s label must be one integer, got {y!r}")
            y = int(y)
        elif isinstance(y, np.integer):
            y = int(y)
        if isinstance(y, bool) or not isinstance(y, int):
            raise DataError(f"{where}: item {i}'s label must be an int, got "
                            f"{type(y).__name__}")
        xs.append(x)
        ys.append(y)
    try:
        x_all = default_collate(xs)
    except Exception as e:
        raise DataError(f"{where}: items cannot be stacked ({_one_line(e)}); every x must "
                        "be a tensor (or tuple of tensors) of one shape") from e
    if isinstance(x_all, list):
        x_all = tuple(x_all)
    parts = (x_all,) if isinstance(x_all, torch.Tensor) else x_all
    if not all(isinstance(t, torch.Tensor) for t in parts):
        raise DataError(f"{where}: inputs must be tensors or tuples of tensors")
    for t in parts:
        if not (t.is_floating_point() or t.dtype in (torch.int64, torch.int32, torch.bool,
                                                      torch.uint8, torch.int16, torch.int8)):
            raise DataError(f"{where}: inputs of dtype {t.dtype} are not supported")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise DataError(f"{where}: the inputs hold NaN or Inf values")
    return x_all, torch.tensor(ys, dtype=torch.int64)
