"""Compressed models on disk, torch side: save a model's Θ, load it back into a model.

The format and the codecs are torch-free (:mod:`compressopt.storage`); this module adds the
glue from an ``nn.Module`` to named arrays, and registers the tree codec's hook for torch
tensors (:func:`compressopt.storage.tree.register_array_hook`), so checkpoints can hold them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from compressopt.errors import ModelMismatchError, ShapeMismatchError
from compressopt.storage.atomic import atomic_write
from compressopt.storage.model_file import (
    _names,
    check_model,
    read_model,
    theta_to_bytes,
)
from compressopt.storage.schemes import expand, map_arrays
from compressopt.storage.tree import register_array_hook

__all__ = ["CompressedModel", "compressed_bytes", "load_compressed", "save_compressed"]


def _dense_tensors(model_or_params: nn.Module | Mapping[str, torch.Tensor],
                   theta: Any) -> dict[str, torch.Tensor]:
    """The tensors stored uncompressed: the model's state_dict (or the mapping) minus Θ's
    names, after checking that Θ's tensors are the model's, with the model's shapes."""
    if isinstance(model_or_params, nn.Module):
        state = dict(model_or_params.state_dict())
    elif isinstance(model_or_params, Mapping):
        state = dict(model_or_params)
    else:
        raise TypeError("expected an nn.Module or a mapping name -> tensor, got "
                        f"{type(model_or_params).__name__}")
    names = _names(theta)
    if isinstance(model_or_params, nn.Module):
        missing = sorted(set(names) - set(state))
        if missing:
            raise ShapeMismatchError(f"Θ names tensors the model lacks: {missing}")
    return {n: t.detach() for n, t in state.items() if n not in names}


def compressed_bytes(
    model_or_params: nn.Module | Mapping[str, torch.Tensor],
    compression: Any,
    theta: Any,
    *,
    metadata: Mapping[str, Any] | None = None,
    entropy: bool = True,
) -> bytes:
    """The compressed-model file of `theta` (+ the model's other tensors, dense) as bytes,
    e.g. to stage it in a run's output set. See :func:`save_compressed`."""
    dense = _dense_tensors(model_or_params, theta)
    return theta_to_bytes(theta, compression, dense=dense, metadata=metadata, entropy=entropy)


def save_compressed(
    path: str | os.PathLike,
    model_or_params: nn.Module | Mapping[str, torch.Tensor],
    compression: Any,
    theta: Any,
    *,
    metadata: Mapping[str, Any] | None = None,
    entropy: bool = True,
) -> int:
    """Write a compressed model file (``model.cpz``): Θ of the compressed tensors, and every
    other tensor of the model (biases, excluded layers, buffers) dense, bit-exact.

    Parameters
    ----------
    path : the file, written atomically (temporary name, fsync, rename).
    model_or_params : an ``nn.Module`` (its ``state_dict`` supplies the dense tensors) or a
        mapping name -> tensor of the tensors to store dense.
    compression : the compression of the run (its repr and nominal cost go into the header).
    theta : its Θ (``compression.compress(w)``; torch tensors on any device).
    metadata : JSON facts for the header: ``model``, ``dataset``, ``input_shape``,
        ``num_classes``, ``accuracy``... (``compressopt evaluate`` rebuilds the model from
        them).
    entropy : allow the ANS stage.

    Returns
    -------
    int : bytes written.

    Raises
    ------
    ShapeMismatchError
        Θ names a tensor the model does not have.
    UnsupportedDTypeError
        A tensor's dtype cannot be stored (bfloat16 and other non-numpy dtypes).
    OutputError
        The file cannot be written.
    """
    data = compressed_bytes(model_or_params, compression, theta, metadata=metadata,
                            entropy=entropy)
    atomic_write(path, data)
    return len(data)


@dataclass(frozen=True)
class CompressedModel:
    """A loaded compressed-model file.

    Attributes
    ----------
    tensors : name -> torch tensor: Δ(Θ) of the compressed tensors (computed with torch, so
        bit-identical to the run's ``compression.decompress(theta)`` on the same device) and
        the dense ones.
    theta : the stored Θ, its arrays as torch tensors.
    compressed : names of the compressed tensors.
    header : the file's JSON header (``header["metadata"]`` holds the model's facts).
    file_bytes : the file's size.
    """

    tensors: dict[str, torch.Tensor]
    theta: Any
    compressed: tuple[str, ...]
    header: dict[str, Any]
    file_bytes: int

    @property
    def metadata(self) -> dict[str, Any]:
        return self.header.get("metadata", {})

    @torch.no_grad()
    def apply_to(self, model: nn.Module, *, strict: bool = True) -> nn.Module:
        """Write the file's tensors into `model` (in place, on the model's devices) and
        return it.

        Parameters
        ----------
        strict : the file must hold exactly the model's ``state_dict`` names; with False,
            a subset is enough (every name the file holds must be the model's, same shape).

        Raises
        ------
        ModelMismatchError
            The names or shapes differ (the file of another model).
        """
        state = model.state_dict()
        shapes = {n: tuple(t.shape) for n, t in state.items()}
        if strict:
            check_model(self.header, shapes)
        else:
            check_model(self.header, {n: shapes[n] for n in self.tensors if n in shapes})
        for n, t in self.tensors.items():
            if state[n].dtype != t.dtype:
                raise ModelMismatchError(f"{n}: the file has dtype {t.dtype}, the model "
                                         f"{state[n].dtype}")
            state[n].copy_(t)
        return model


def _to_torch(device: torch.device | str | None) -> Any:
    def convert(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a).reshape(a.shape))  # 0-d stays 0-d
        return t.to(device) if device is not None else t
    return convert


def load_compressed(path: str | os.PathLike | bytes, *,
                    device: torch.device | str | None = None) -> CompressedModel:
    """Read a compressed-model file (a path or its bytes) as torch tensors.

    Δ(Θ) is recomputed from the stored Θ with the projections' own functions, in torch on
    `device` (default CPU): gathers from codebooks (``index_select``, see
    :func:`compressopt._array.take`), elementwise products, low-rank products. The tensors
    equal what the run wrote into its model, bit for bit (for low-rank factors: on the
    device the run used).

    Raises
    ------
    CorruptFileError, FormatVersionError, ResourceLimitError
        As :func:`compressopt.storage.read_model`.
    """
    m = read_model(path)
    convert = _to_torch(device)
    theta = map_arrays(m.theta, convert)
    tensors = dict(expand(theta))
    compressed = tuple(tensors)
    tensors.update({n: convert(a) for n, a in m.dense.items()})
    return CompressedModel(tensors, theta, compressed, m.header, m.file_bytes)


# ------------------------------------------------------------------------------ tree hook


_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _encode_tensor(x: torch.Tensor) -> tuple[np.ndarray, dict]:
    t = x.detach().contiguous().cpu()
    meta = {"dtype": str(t.dtype).removeprefix("torch."), "device": str(x.device),
            "requires_grad": bool(x.requires_grad),
            "parameter": isinstance(x, nn.Parameter)}
    if t.is_complex():
        raise TypeError(f"cannot store a complex tensor ({t.dtype})")
    try:
        return t.numpy(), meta
    except TypeError:  # bfloat16, float8...: no numpy dtype; store the bits
        return t.view(_INT_OF_SIZE[t.element_size()]).numpy(), {**meta, "view": True}


def _decode_tensor(a: np.ndarray, meta: dict) -> torch.Tensor:
    from compressopt.errors import CorruptFileError

    dtype = getattr(torch, str(meta.get("dtype")), None)
    if not isinstance(dtype, torch.dtype):
        raise CorruptFileError(f"unknown torch dtype {meta.get('dtype')!r}")
    t = torch.from_numpy(np.array(a, copy=True))
    t = t.view(dtype) if meta.get("view") else t
    if t.dtype != dtype:
        raise CorruptFileError(f"tensor stored as {t.dtype}, recorded as {dtype}")
    t = t.to(torch.device(str(meta.get("device", "cpu"))))
    if meta.get("parameter"):
        return nn.Parameter(t, requires_grad=bool(meta.get("requires_grad")))
    return t.requires_grad_(bool(meta.get("requires_grad")))


register_array_hook("torch", lambda x: isinstance(x, torch.Tensor), _encode_tensor,
                    _decode_tensor)
