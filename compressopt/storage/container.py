"""The safetensors container, written deterministically and read strictly.

Format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length
N, N bytes of JSON ``{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}}``
padded with spaces, then the tensors' bytes. Writing it here (rather than with the
``safetensors`` package, whose metadata order varies between processes) makes equal content
give equal files; the files are read by ``safetensors`` as usual. Reading checks every
length and offset before any array is made, and never trusts a size the file does not hold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import numpy as np

from compressopt.errors import CorruptFileError

__all__ = ["read_safetensors", "write_safetensors"]

#: numpy dtype name -> safetensors dtype
DTYPES = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16",
          "uint32": "U32", "int32": "I32", "uint64": "U64", "int64": "I64",
          "float16": "F16", "float32": "F32", "float64": "F64"}
NUMPY = {v: k for k, v in DTYPES.items()}
#: largest header accepted (bytes)
MAX_HEADER = 64 << 20


def write_safetensors(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """The safetensors file of `tensors` (in the given order) and `metadata`.

    Raises
    ------
    TypeError
        A dtype safetensors cannot hold, or metadata values that are not strings.
    """
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("safetensors metadata maps strings to strings")
    head: dict = {"__metadata__": dict(metadata)}
    chunks, pos = [], 0
    for name, a in tensors.items():
        if a.dtype.name not in DTYPES:
            raise TypeError(f"{name}: safetensors cannot hold dtype {a.dtype}")
        data = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        head[name] = {"dtype": DTYPES[a.dtype.name], "shape": list(a.shape),
                      "data_offsets": [pos, pos + len(data)]}
        chunks.append(data)
        pos += len(data)
    text = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def read_safetensors(data: bytes | memoryview,
                     ) -> tuple[dict[str, str], dict[str, tuple[str, tuple[int, ...], memoryview]]]:
    """(metadata, name -> (numpy dtype name, shape, bytes)) of a safetensors file.

    Raises
    ------
    CorruptFileError
        Truncated, a malformed header, offsets that overlap, leave holes or run past the
        end, or a byte count that does not match a tensor's shape.
    """
    view = memoryview(data)
    if len(view) < 8:
        raise CorruptFileError(f"a file of {len(view)} bytes is too short for safetensors")
    n = int.from_bytes(view[:8], "little")
    if not 2 <= n <= min(len(view) - 8, MAX_HEADER):
        raise CorruptFileError(f"header length {n} does not fit a file of {len(view)} bytes")
    raw = bytes(view[8:8 + n])
    body = raw.rstrip(b" ")
    if not body.startswith(b"{") or not body.endswith(b"}"):
        raise CorruptFileError("the safetensors header is not a JSON object")
    try:
        head = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFileError(f"unreadable safetensors header: {e}") from e
    if not isinstance(head, dict):
        raise CorruptFileError("the safetensors header is not a JSON object")
    meta = head.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CorruptFileError("malformed safetensors metadata")
    payload = view[8 + n:]
    out, spans = {}, []
    for name, spec in head.items():
        ok = (isinstance(spec, dict) and set(spec) == {"dtype", "shape", "data_offsets"}
              and spec["dtype"] in NUMPY and isinstance(spec["shape"], list)
              and all(type(s) is int and s >= 0 for s in spec["shape"])
              and isinstance(spec["data_offsets"], list) and len(spec["data_offsets"]) == 2
              and all(type(o) is int for o in spec["data_offsets"]))
        if not ok:
            raise CorruptFileError(f"malformed safetensors entry {name!r}")
        begin, end = spec["data_offsets"]
        size = math.prod(spec["shape"]) * np.dtype(NUMPY[spec["dtype"]]).itemsize
        if not 0 <= begin <= end <= len(payload) or end - begin != size:
            raise CorruptFileError(f"tensor {name!r}: offsets {begin}..{end} do not hold "
                                   f"{spec['shape']} of {spec['dtype']} in {len(payload)} bytes")
        spans.append((begin, end))
        out[name] = (NUMPY[spec["dtype"]], tuple(spec["shape"]), payload[begin:end])
    spans.sort()
    ends = [0] + [e for _, e in spans]
    if [b for b, _ in spans] != ends[:-1] or ends[-1] != len(payload):
        raise CorruptFileError("the tensors do not tile the data section (truncated?)")
    return meta, out


def to_array(entry: tuple[str, tuple[int, ...], memoryview]) -> np.ndarray:
    """A writable numpy array (a copy) of one :func:`read_safetensors` entry."""
    dtype, shape, buf = entry
    return np.frombuffer(buf, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
