"""The compressed-model file (``model.cpz``): Θ in a safetensors container, no pickle.

Layout: a safetensors file with one uint8 tensor ``payload`` (every part of every record,
concatenated) and two ``__metadata__`` strings: ``"compressopt"``, the JSON header, and
``"sha256"``, the SHA-256 of the header's UTF-8 bytes followed by the payload. The header::

    {"format": "compressopt.model", "version": 1, "compressopt": "<package version>",
     "metadata": {...model, dataset, input shape, classes, accuracy...},
     "compression": "<repr of the compression>", "nominal": {...Σ bits·nnz...},
     "theta": <record>, "dense": {name: <record>}, "payload": <bytes>}

where a record is one :class:`~compressopt.storage.schemes.Codec`'s (scheme, shape, dtype,
its fields and ``"parts": {name: bytes}`` for raw parts or ``{name: [bytes, encoding]}``;
composites nest records). Reading checks, before decoding anything: the container's framing
and lengths, the checksum, the format name and version, every record's fields, that the
parts tile the payload exactly, and that the decoded arrays fit in memory.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressopt.errors import (
    CorruptFileError,
    FormatVersionError,
    ModelMismatchError,
    ResourceLimitError,
    ShapeMismatchError,
)
from compressopt.storage.atomic import atomic_write
from compressopt.storage.container import read_safetensors, write_safetensors
from compressopt.storage.schemes import (
    CODECS,
    Decoder,
    Encoder,
    expand,
    host_theta,
    leaf_records,
    part_spec,
    record_codec,
)

__all__ = [
    "FORMAT",
    "VERSION",
    "ModelFile",
    "check_model",
    "export_dense",
    "file_accounting",
    "inspect",
    "load_theta",
    "read_model",
    "save_theta",
    "theta_to_bytes",
]

FORMAT = "compressopt.model"
VERSION = 1
#: parts (name -> report category) of the byte accounting
CATEGORY = {"values": "values", "codes": "values", "left": "values", "right": "values",
            "positions": "positions", "codebook": "codebook", "scale": "codebook"}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _names(theta: Any) -> dict[str, None]:
    """The tensor names a compression's Θ covers (an ordered set).

    Raises
    ------
    TypeError
        `theta` is not a mapping of task keys (or an additive pair of such mappings).
    """
    from compressopt.projections import AdditiveTheta, Grouped

    if isinstance(theta, AdditiveTheta):
        return _names(theta.first)
    if not isinstance(theta, Mapping):
        raise TypeError(f"theta must map tensor names (task keys) to Θ, got {type(theta).__name__}")
    out: dict[str, None] = {}
    for key, child in theta.items():
        if isinstance(child, Grouped):
            out.update(dict.fromkeys(child.names))
        elif isinstance(key, str):
            out[key] = None
        else:
            raise TypeError(f"task key {key!r} of a single tensor must be its name")
    return out


def _nominal(compression: Any, theta: Any) -> dict[str, Any] | None:
    """The papers' count (Σ bits·nnz over the compressed tensors) of `compression`'s Θ."""
    if compression is None:
        return None
    from compressopt.projections import summarize

    s = summarize(compression.cost(theta))
    ratio = s.compression_ratio
    return {"numel": s.numel, "nnz": s.nnz, "weight_bits": s.weight_bits,
            "overhead_bits": s.overhead_bits,
            "compression_ratio": ratio if math.isfinite(ratio) else None}


def theta_to_bytes(
    theta: Any,
    compression: Any = None,
    *,
    dense: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    entropy: bool = True,
) -> bytes:
    """The compressed-model file of Θ, as bytes (see :func:`save_theta`)."""
    names = _names(theta)
    theta = host_theta(theta)
    dense = {n: host_theta(_as_array(x, n)) for n, x in (dense or {}).items()}
    both = sorted(set(names) & set(dense))
    if both:
        raise ShapeMismatchError(f"tensors {both} are both compressed and dense")
    enc = Encoder(entropy)
    root = enc.node(theta)
    dense_recs = {n: enc.node(x) for n, x in dense.items()}
    payload = b"".join(enc.chunks)
    header = {
        "format": FORMAT, "version": VERSION, "compressopt": _version(),
        "metadata": dict(metadata or {}),
        "compression": None if compression is None else repr(compression),
        "nominal": _nominal(compression, theta),
        "theta": root, "dense": dense_recs, "payload": len(payload),
    }
    try:
        text = _dumps(header)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata must be JSON-serializable with finite numbers: {e}") from e
    digest = hashlib.sha256(text.encode() + payload).hexdigest()
    return write_safetensors({"payload": np.frombuffer(payload, dtype=np.uint8)},
                             {"compressopt": text, "sha256": digest})


def _as_array(x: Any, name: str) -> Any:
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise TypeError(f"dense[{name!r}] must be an array, got {type(x).__name__}")
    return x


def _version() -> str:
    from compressopt import __version__

    return __version__


def save_theta(
    path: str | os.PathLike,
    theta: Any,
    compression: Any = None,
    *,
    dense: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    entropy: bool = True,
) -> int:
    """Write Θ (and the tensors left dense) as a compressed-model file, atomically.

    Parameters
    ----------
    path : file to write (``name.tmp-<pid>`` in the same folder, fsync, rename).
    theta : the Θ of a compression: a mapping task key -> Θ (what every
        :class:`~compressopt.projections.Compression` returns; groups as
        :class:`~compressopt.projections.Grouped`) or an
        :class:`~compressopt.projections.AdditiveTheta` of such mappings. Arrays may be numpy
        or any Array-API library (torch tensors on any device are copied to the host),
        float16/32/64 values and integer codes.
    compression : the compression that produced Θ, optional: its repr and its nominal cost
        (``compression.cost(theta)``, the papers' Σ bits·nnz) go into the header.
    dense : name -> array, tensors stored uncompressed (biases, excluded layers), bit-exact.
    metadata : JSON-serializable facts about the model (name, data set, input shape, classes,
        accuracy...), stored in the header.
    entropy : allow the ANS stage for codes and gaps (each part still takes the smaller of
        the entropy-coded and the fixed-width form).

    Returns
    -------
    int : bytes written.

    Raises
    ------
    TypeError
        A Θ type without a codec, or metadata that is not JSON-serializable.
    UnsupportedDTypeError
        An array dtype the format does not store (e.g. bfloat16).
    ShapeMismatchError
        A tensor is both in Θ and in `dense`.
    OutputError
        The file cannot be written.

    Notes
    -----
    ``load_theta(path)[0]`` equals ``compression.decompress(theta)`` (and `dense`) bit for
    bit: Θ is stored losslessly and Δ is recomputed with the projections' own functions
    (low-rank factors are multiplied again: bit-exact for the same BLAS). O(Σ numel) time.
    """
    data = theta_to_bytes(theta, compression, dense=dense, metadata=metadata, entropy=entropy)
    atomic_write(path, data)
    return len(data)


# ------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class ModelFile:
    """A decoded compressed-model file.

    Attributes
    ----------
    theta : the stored Θ (numpy arrays, the types of :mod:`compressopt.projections`).
    dense : name -> numpy array, the tensors stored uncompressed.
    header : the JSON header (format, versions, metadata, records).
    file_bytes : size of the file.
    """

    theta: Any
    dense: dict[str, np.ndarray]
    header: dict[str, Any]
    file_bytes: int

    def arrays(self) -> dict[str, np.ndarray]:
        """Δ(Θ) by name, then the dense tensors: every tensor of the file."""
        return {**expand(self.theta), **self.dense}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """name -> shape of every tensor of the file (from the header)."""
        return _header_shapes(self.header)


def _read_bytes(source: str | os.PathLike | bytes) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    return Path(source).read_bytes()


def _container(data: bytes) -> tuple[str, str, memoryview]:
    """(header JSON text, sha256 hex, payload) of a model file's safetensors container."""
    meta, tensors = read_safetensors(data)
    entry = tensors.get("payload")
    if set(tensors) != {"payload"} or entry[0] != "uint8" or len(entry[1]) != 1 or \
            set(meta) != {"compressopt", "sha256"}:
        raise CorruptFileError("not a compressopt model file (unexpected safetensors layout; "
                               "truncated or modified?)")
    return meta["compressopt"], meta["sha256"], entry[2]


def _header(data: bytes) -> tuple[dict[str, Any], memoryview]:
    text, digest, payload = _container(data)
    if hashlib.sha256(text.encode() + payload).hexdigest() != digest:
        raise CorruptFileError("checksum mismatch: the file is corrupted")
    try:
        header = json.loads(text)
    except json.JSONDecodeError as e:  # pragma: no cover - the checksum matched
        raise CorruptFileError(f"unreadable header: {e}") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        fmt = header.get("format") if isinstance(header, dict) else None
        raise CorruptFileError(f"not a compressopt model file (format {fmt!r})")
    if header.get("version") != VERSION:
        raise FormatVersionError(
            f"model file format version {header.get('version')!r}: this compressopt "
            f"({_version()}) reads version {VERSION}"
        )
    for key, kind in (("theta", dict), ("dense", dict), ("payload", int), ("metadata", dict)):
        if not isinstance(header.get(key), kind):
            raise CorruptFileError(f"header field {key!r} is missing or malformed")
    if header["payload"] != len(payload):
        raise CorruptFileError(f"the header promises {header['payload']} payload bytes, "
                               f"the file holds {len(payload)}")
    _check_records(header, len(payload))
    return header, payload


def _records(header: dict) -> list[tuple[Any, dict]]:
    """(key, leaf record) of every leaf, Θ first then the dense tensors, in payload order."""
    out = list(leaf_records(header["theta"]))
    out += [(name, rec) for name, rec in header["dense"].items()]
    return out


def _check_records(header: dict, payload: int) -> None:
    """Schemes known, parts well formed and tiling the payload, decoded size affordable."""
    try:
        leaves = _records(header)
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptFileError(f"malformed Θ records: {e}") from e
    total = need = 0
    for _, rec in leaves:
        record_codec(rec)
        parts = rec.get("parts", {})
        if not isinstance(parts, dict):
            raise CorruptFileError(f"malformed parts {parts!r}")
        total += sum(part_spec(spec)[0] for spec in parts.values())
        shape = rec.get("shape")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise CorruptFileError(f"malformed shape {shape!r}")
        need += 24 * math.prod(shape)  # values, int64 codes and indices while decoding
    if total != payload:
        raise CorruptFileError(f"the records' parts add up to {total} bytes, "
                               f"the payload holds {payload}")
    _check_memory(need)


def _check_memory(need: int) -> None:
    import psutil

    avail = psutil.virtual_memory().available
    if need > avail:
        raise ResourceLimitError(f"decoding needs about {need / 2**30:.1f} GiB, "
                                 f"{avail / 2**30:.1f} GiB available")


def read_model(source: str | os.PathLike | bytes) -> ModelFile:
    """Read and decode a compressed-model file (a path or its bytes).

    Returns
    -------
    ModelFile : Θ and the dense tensors as numpy arrays, the header, the size.

    Raises
    ------
    CorruptFileError
        Truncated, modified, not a compressopt model file, or inconsistent records.
    FormatVersionError
        Written in a format version this compressopt does not read.
    ResourceLimitError
        Decoding would need more memory than is available.
    OSError
        The file cannot be read.
    """
    data = _read_bytes(source)
    header, payload = _header(data)
    dec = Decoder(payload)
    theta = dec.node(header["theta"])
    dense = {}
    for name, rec in header["dense"].items():
        if rec.get("scheme") != "array":
            raise CorruptFileError(f"dense tensor {name!r} has scheme {rec.get('scheme')!r}")
        dense[name] = dec.node(rec)
    dec.finish()
    try:
        names = _names(theta)
    except TypeError as e:
        raise CorruptFileError(f"the stored Θ is not a compression's Θ: {e}") from e
    if set(names) & set(dense):
        raise CorruptFileError(f"tensors {sorted(set(names) & set(dense))} stored twice")
    return ModelFile(theta, dense, header, len(data))


def load_theta(path: str | os.PathLike | bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Δ(Θ) and the dense tensors of a compressed-model file, by name, and its header.

    The arrays equal what was saved bit for bit (``compression.decompress(theta)`` and the
    dense tensors). Raises as :func:`read_model`.
    """
    m = read_model(path)
    return m.arrays(), m.header


def export_dense(source: str | os.PathLike | bytes) -> bytes:
    """Every tensor of a compressed-model file, decompressed, as a plain safetensors file
    (``compressopt export FILE --dense OUT``): readable with ``safetensors.torch.load_file``
    and without compressopt; bit-identical to :func:`load_theta`'s arrays.

    Raises as :func:`read_model`.
    """
    arrays, header = load_theta(source)
    meta = {"format": "pt", "source": "compressopt", "compressopt": _version()}
    model = header.get("metadata", {}).get("model")
    if isinstance(model, str):
        meta["model"] = model
    return write_safetensors(arrays, meta)


def _header_shapes(header: dict) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}

    def walk(rec: dict, key: Any) -> None:
        scheme = rec["scheme"]
        if scheme == "group":
            out.update({n: tuple(s) for n, s in zip(rec["names"], rec["shapes"], strict=True)})
        elif scheme in ("dict", "additive"):
            for k, child in CODECS[scheme].children(rec):
                walk(child, k if k is not None else key)
        else:
            out[key] = tuple(rec["shape"])

    walk(header["theta"], None)
    out.update({n: tuple(r["shape"]) for n, r in header["dense"].items()})
    return out


def check_model(header: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Raise unless the file (its header) holds exactly the tensors `shapes` names, with
    those shapes.

    Raises
    ------
    ModelMismatchError
        Names missing from the file or from the model, or a shape differs.
    """
    have = _header_shapes(dict(header))
    missing, extra = sorted(set(shapes) - set(have)), sorted(set(have) - set(shapes))
    if missing or extra:
        model = header.get("metadata", {}).get("model")
        raise ModelMismatchError(
            f"the file holds another model{f' ({model})' if model else ''}: "
            f"tensors missing from the file {missing[:5]}, not in the model {extra[:5]}"
        )
    for n, s in shapes.items():
        if tuple(have[n]) != tuple(s):
            raise ModelMismatchError(f"{n}: the file has shape {list(have[n])}, "
                                     f"the model {list(s)}")


# ------------------------------------------------------------------------------ inspect


def _leaf_thetas(theta: Any, rec: dict) -> list[tuple[list[str], Any]]:
    """(names, leaf Θ) aligned with :func:`leaf_records` of `rec`."""
    scheme = rec["scheme"]
    if scheme == "dict":
        out = []
        for (k, child_rec), child in zip(CODECS["dict"].children(rec), theta.values(),
                                         strict=True):
            for names, t in _leaf_thetas(child, child_rec):
                out.append((names or ([k] if isinstance(k, str) else list(k)), t))
        return out
    if scheme == "additive":
        return (_leaf_thetas(theta.first, rec["first"])
                + _leaf_thetas(theta.second, rec["second"]))
    if scheme == "group":
        return [(list(theta.names), t) for _, t in _leaf_thetas(theta.theta, rec["theta"])]
    return [([], theta)]


def inspect(source: str | os.PathLike | bytes) -> dict[str, Any]:
    """Per-tensor byte accounting of a compressed-model file (``compressopt inspect``).

    Returns
    -------
    dict with
        ``tensors``: one row per stored Θ leaf, then per dense tensor: ``name`` (tensor names
        joined by "+" for a group; " [2/2]" marks the second part of an additive Θ),
        ``names``, ``scheme``, ``shape``, ``dtype``, ``numel``, ``nnz`` (nonzeros of the leaf's
        Δ), ``bits`` (nominal bits per stored value: ceil(log2 K) for codes, 32 for float32
        values), ``bytes`` {values, positions, codebook, header} (codes and factors count
        as values, scales as codebook; header: the record's share of the JSON header),
        ``total``, ``encodings`` {part: encoding}, ``compressed`` (False for dense tensors),
        ``lc_toolkit_bytes`` and ``floor_bytes`` (see :func:`file_accounting`), and
        ``position_floor_bytes``, ``log2 C(n, nnz) / 8`` for a sparse leaf (else None);
        ``totals``: {"compressed": ..., "dense": ...}, each the bytes by part, ``total``,
        ``numel`` and ``nnz`` summed over those rows (additive parts count their tensor
        twice); ``file_bytes``; ``header``: the file's header.

    Raises as :func:`read_model`.
    """
    m = read_model(source)
    thetas = _leaf_thetas(m.theta, m.header["theta"])
    records = list(leaf_records(m.header["theta"]))
    rows = []
    additive = _additive_parts(m.header["theta"])
    for i, ((key, rec), (names, t)) in enumerate(zip(records, thetas, strict=True)):
        label = "+".join(names) + additive.get(i, "")
        rows.append(_row(label, names, rec, t, key, compressed=True))
    for name, rec in m.header["dense"].items():
        rows.append(_row(name, [name], rec, m.dense[name], name, compressed=False))
    totals = {}
    for key, sel in (("compressed", True), ("dense", False)):
        part = [r for r in rows if r["compressed"] is sel]
        totals[key] = {k: sum(r["bytes"][k] for r in part)
                       for k in ("values", "positions", "codebook", "header")}
        totals[key].update(total=sum(r["total"] for r in part),
                           numel=sum(r["numel"] for r in part), nnz=sum(r["nnz"] for r in part))
    return {"tensors": rows, "totals": totals, "file_bytes": m.file_bytes, "header": m.header}


def _additive_parts(rec: dict) -> dict[int, str]:
    """Leaf index -> " [1/2]" / " [2/2]" for the leaves under an additive record."""
    out: dict[int, str] = {}
    count = 0

    def walk(r: dict, tag: str) -> None:
        nonlocal count
        if CODECS[r["scheme"]].account is not None:
            if tag:
                out[count] = tag
            count += 1
            return
        for j, (_, child) in enumerate(CODECS[r["scheme"]].children(r)):
            walk(child, f" [{j + 1}/2]" if r["scheme"] == "additive" else tag)

    walk(rec, "")
    return out


def _row(label: str, names: list[str], rec: dict, theta: Any, key: Any, *,
         compressed: bool) -> dict[str, Any]:
    from compressopt.storage.codecs import position_floor_bits

    acc = CODECS[rec["scheme"]].account(theta)
    numel = math.prod(rec["shape"])
    parts = {name: part_spec(spec) for name, spec in rec.get("parts", {}).items()}
    by = dict.fromkeys(("values", "positions", "codebook"), 0)
    for name, (size, _) in parts.items():
        by[CATEGORY[name]] += size
    keyed = [key, rec] if key is not None else rec
    by["header"] = len(_dumps(keyed).encode())
    sparse = "positions" in parts
    return {
        "name": label, "names": names, "scheme": rec["scheme"], "shape": rec["shape"],
        "dtype": rec["dtype"], "numel": numel, "nnz": acc["nnz"], "bits": acc["bits"],
        "bytes": by, "total": sum(by.values()),
        "encodings": {n: e for n, (_, e) in parts.items()}, "compressed": compressed,
        "lc_toolkit_bytes": acc["lc_bits"] / 8, "floor_bytes": acc["floor_bits"] / 8,
        "position_floor_bytes": position_floor_bits(numel, acc["nnz"]) / 8 if sparse else None,
    }


def file_accounting(source: str | os.PathLike | bytes, info: dict | None = None,
                    ) -> dict[str, Any]:
    """The byte figures of the report (issue 10, item 4) for a compressed-model file.

    Parameters
    ----------
    source : the file (path or bytes); info : :func:`inspect`'s result if already computed.

    Returns
    -------
    dict with
        ``file_bytes``: the file on disk, everything included;
        ``tensor_bytes``: bytes spent on the compressed tensors: values, positions,
        codebooks and their records' share of the JSON header;
        ``file_compression_ratio``: ``4·Σ numel / tensor_bytes`` over the compressed tensors
        (the tensors of the nominal ratio);
        ``model_bytes_ratio``: float32 bytes of every tensor of the file (compressed and
        dense: the whole model) / ``file_bytes``;
        ``layers``: name -> bytes by part {values, positions, codebook, header, total}
        (a group's row keeps its joined name; additive parts are summed);
        ``lc_toolkit_bytes``: the same Θ counted as the LC toolkit does (raw values or
        ceil(log2 K)-bit codes, raw codebooks, positions by the cheapest fixed-width gap
        code; no header); ``floor_bytes``: positions at ``log2 C(n, nnz)``, codes at their
        nominal bits, raw codebooks, no header; ``positions_bytes`` and
        ``position_floor_bytes``: the compressed tensors' position bytes and their floor;
        ``nominal_compression_ratio``: the papers' ``32·Σ numel / Σ bits·nnz`` when the file
        records it; ``compressed_numel`` and ``model_numel``: the entries of the compressed
        tensors and of every tensor of the file.
    """
    info = info or inspect(source)
    rows = info["tensors"]
    comp = [r for r in rows if r["compressed"]]
    # entries of each compressed tensor once, from the header's shapes (a tensor can sit in
    # several rows: both parts of an additive combination, a group of one part)
    shapes = _header_shapes(info["header"])
    numel = {n: math.prod(shapes[n]) for r in comp for n in r["names"]}
    all_numel = sum(numel.values()) + sum(r["numel"] for r in rows if not r["compressed"])
    tensor_bytes = sum(r["total"] for r in comp)
    layers: dict[str, dict[str, int]] = {}
    for r in comp:
        name = "+".join(r["names"])
        d = layers.setdefault(name, dict.fromkeys(("values", "positions", "codebook",
                                                   "header", "total"), 0))
        for k, v in r["bytes"].items():
            d[k] += v
        d["total"] += r["total"]
    nominal = info["header"].get("nominal") or {}
    pos_floor = [r["position_floor_bytes"] for r in comp if r["position_floor_bytes"]]
    return {
        "file_bytes": info["file_bytes"],
        "tensor_bytes": tensor_bytes,
        "file_compression_ratio": 4 * sum(numel.values()) / tensor_bytes if tensor_bytes
        else None,
        "model_bytes_ratio": 4 * all_numel / info["file_bytes"],
        "layers": layers,
        "lc_toolkit_bytes": sum(r["lc_toolkit_bytes"] for r in comp),
        "floor_bytes": sum(r["floor_bytes"] for r in comp),
        "positions_bytes": sum(r["bytes"]["positions"] for r in comp),
        "position_floor_bytes": sum(pos_floor),
        "nominal_compression_ratio": nominal.get("compression_ratio"),
        "compressed_numel": sum(numel.values()),
        "model_numel": all_numel,
    }
