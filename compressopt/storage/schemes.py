"""Θ codecs: how each compression scheme's Θ is written as a JSON record plus byte parts.

One :class:`Codec` per kind of Θ, in one registry (:data:`CODECS`, keyed by the record's
``"scheme"`` name): adding a scheme is one encoder/decoder pair and one registry line. Each
codec stores the fewest bytes that reproduce Θ — and so Δ(Θ) — bit-exactly:

==========  ==============================================  ===================================
scheme      Θ (compressopt.projections)                     parts
==========  ==============================================  ===================================
array       an array: penalty forms, convex sets, dense     positions (if sparse), values
            tensors left uncompressed (also integer and
            boolean buffers, stored as themselves)
pruned      :class:`Pruned` (ℓ0, global ℓ0, knapsack,       positions, values
            channel pruning)
codebook    :class:`Quantized` (k-means, sparse mode,       codebook, positions (if sparse),
            fixed codebooks, powers of two, MCKP, joint)    codes
scaled      :class:`ScaledCodes` (binary, ternary,          scale, positions (if sparse), codes
            uniform m-bit grid)
low_rank    :class:`LowRankTheta`                            left, right
additive    :class:`AdditiveTheta`                           (two child records)
group       :class:`Grouped` (one Θ over several tensors)   (one child record)
dict        a mapping task key -> Θ (every Compression)     (child records)
==========  ==============================================  ===================================

Values, codebooks and scales are stored raw in the Θ's dtype (float16/32/64, little-endian;
a dense tensor may also be bool or a signed/unsigned integer of 8 to 64 bits, e.g. BatchNorm's
int64 ``num_batches_tracked``, so that a whole ``state_dict`` is stored as it is);
codes are bit-packed at ``ceil(log2 K)`` bits or ANS-coded; the positions of the stored entries
use :func:`~compressopt.storage.codecs.encode_positions` or, when every nonzero lies in a few
whole slices along an axis (channel pruning), a bitmask of the kept slices. "Zero" means an
entry whose bits are all zero (+0.0), so that -0.0 is reproduced too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compressopt._array import to_numpy
from compressopt.errors import CorruptFileError, UnsupportedDTypeError
from compressopt.projections import (
    AdaptiveQuantization,
    AdditiveTheta,
    Binary,
    Grouped,
    LowRank,
    LowRankTheta,
    Pruned,
    Quantized,
    ScaledCodes,
)
from compressopt.storage.codecs import (
    bits_needed,
    decode_positions,
    decode_symbols,
    encode_positions,
    encode_symbols,
    fixed_gap_bits,
    position_floor_bits,
    symbols_size,
)
from compressopt.tree import tree_add

__all__ = [
    "CODECS",
    "Codec",
    "Decoder",
    "Encoder",
    "codec_for",
    "expand",
    "host_theta",
    "leaf_records",
    "map_arrays",
    "part_spec",
    "record_codec",
]

#: value dtypes a file may hold (numpy names)
FLOAT_DTYPES = ("float16", "float32", "float64")
#: the further dtypes of a tensor stored dense (``array`` records: integer buffers such as
#: BatchNorm's ``num_batches_tracked``, boolean masks), stored as themselves, bit-exact
DENSE_DTYPES = (*FLOAT_DTYPES, "bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
                "uint32", "uint64")

Part = tuple[str, bytes, str]  # (name, data, encoding)


@dataclass(frozen=True)
class Codec:
    """How one kind of Θ is written and read.

    Attributes
    ----------
    name : the record's ``"scheme"``.
    matches : ``theta -> bool``: this codec writes `theta` (the first match in
        :data:`CODECS` order wins).
    encode : ``(theta, encoder) -> (fields, parts)``: the record's JSON fields and its byte
        parts ``(name, data, encoding)``; a composite calls ``encoder.node(child)`` for each
        child and returns its records among the fields.
    decode : ``(record, decoder) -> theta`` (numpy arrays); reads its parts with
        ``decoder.parts(record, ...)`` or its children with ``decoder.node(child)``, in the
        order they were written.
    expand : ``theta -> array or dict``: Δ(Θ), with the projections' own functions (so the
        result is bit-identical to the scheme's ``decompress``), on any array library.
    children : ``record -> child records`` of a composite (empty for a leaf).
    account : ``theta -> dict`` of a leaf: ``nnz`` (nonzeros of Δ), ``bits`` (nominal bits per
        stored value), ``lc_bits`` (the LC toolkit's count: raw values or fixed-width codes,
        codebooks, positions by the cheapest fixed-width gap code) and ``floor_bits``
        (positions at ``log2 C(n, nnz)``, codes at their nominal bits, codebooks raw).
    """

    name: str
    matches: Callable[[Any], bool]
    encode: Callable[[Any, Encoder], tuple[dict, list[Part]]]
    decode: Callable[[dict, Decoder], Any]
    expand: Callable[[Any], Any]
    children: Callable[[dict], list[dict]] = field(default=lambda rec: [])
    account: Callable[[Any], dict] | None = None


# ------------------------------------------------------------------------------ walkers


class Encoder:
    """Writes Θ records depth first; the parts' bytes go to :attr:`chunks` in order."""

    def __init__(self, entropy: bool = True) -> None:
        self.entropy = entropy
        self.chunks: list[bytes] = []

    def node(self, theta: Any) -> dict:
        """The record of `theta` (its parts appended to :attr:`chunks`)."""
        codec = codec_for(theta)
        fields, parts = codec.encode(theta, self)
        rec: dict[str, Any] = {"scheme": codec.name, **fields}
        if parts:
            rec["parts"] = {name: len(data) if enc == "raw" else [len(data), enc]
                            for name, data, enc in parts}
            self.chunks.extend(data for _, data, _ in parts)
        return rec


class Decoder:
    """Reads Θ records written by :class:`Encoder` from one payload buffer.

    Every read is bounds-checked; :meth:`finish` checks that the whole payload was used.
    """

    def __init__(self, payload: memoryview) -> None:
        self.payload = payload
        self.pos = 0

    def node(self, rec: Any) -> Any:
        codec = record_codec(rec)
        try:
            return codec.decode(rec, self)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            if isinstance(e, CorruptFileError):
                raise
            raise CorruptFileError(f"malformed {rec['scheme']!r} record: {e}") from e

    def parts(self, rec: dict, required: tuple[str, ...], optional: tuple[str, ...] = (),
              ) -> dict[str, tuple[memoryview, str]]:
        """The record's parts, name -> (bytes, encoding), read in their stored order."""
        parts = rec.get("parts", {})
        if not isinstance(parts, dict) or not set(required) <= set(parts) or not set(
                parts) <= set(required) | set(optional):
            raise CorruptFileError(f"{rec['scheme']!r} record has parts {sorted(parts)}, "
                                   f"expected {sorted(required)} (+ {sorted(optional)})")
        out = {}
        for name, spec in parts.items():
            size, enc = part_spec(spec)
            end = self.pos + size
            if end > len(self.payload):
                raise CorruptFileError(f"part {name!r} runs past the end of the payload")
            out[name] = (self.payload[self.pos:end], enc)
            self.pos = end
        return out

    def finish(self) -> None:
        if self.pos != len(self.payload):
            raise CorruptFileError(
                f"the records use {self.pos} bytes of a {len(self.payload)}-byte payload"
            )


def part_spec(spec: Any) -> tuple[int, str]:
    """(bytes, encoding) of a record's part: ``n`` (raw bytes) or ``[n, "encoding"]``."""
    if _is_count(spec):
        return spec, "raw"
    if (isinstance(spec, list) and len(spec) == 2 and _is_count(spec[0])
            and isinstance(spec[1], str)):
        return spec[0], spec[1]
    raise CorruptFileError(f"malformed part {spec!r}")


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def record_codec(rec: Any) -> Codec:
    """The codec of a record read from a file; CorruptFileError if there is none."""
    scheme = rec.get("scheme") if isinstance(rec, dict) else None
    if not isinstance(scheme, str) or scheme not in CODECS:
        raise CorruptFileError(f"unknown or malformed Θ record {str(rec)[:80]!r}")
    return CODECS[scheme]


def codec_for(theta: Any) -> Codec:
    """The codec that writes `theta`.

    Raises
    ------
    TypeError
        No codec matches (a Θ type without a registered codec).
    """
    for codec in CODECS.values():
        if codec.matches(theta):
            return codec
    raise TypeError(f"no codec stores a Θ of type {type(theta).__name__}; register one in "
                    "compressopt.storage.schemes.CODECS")


def expand(theta: Any) -> Any:
    """Δ(Θ) of a Θ (or decoded Θ): an array for a tensor's Θ, a dict name -> array for a
    compression's Θ. Uses the projections' own decompression, on any array library."""
    return codec_for(theta).expand(theta)


def map_arrays(obj: Any, fn: Callable[[Any], Any], *,
               is_array: Callable[[Any], bool] = lambda x: isinstance(x, np.ndarray)) -> Any:
    """`obj` (a Θ: NamedTuples, tuples, lists, dicts) with every array (numpy by default;
    `is_array` decides) replaced by ``fn(array)``, e.g. converted to torch tensors or to
    the host; other leaves unchanged."""
    if is_array(obj):
        return fn(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(map_arrays(v, fn, is_array=is_array) for v in obj))
    if isinstance(obj, tuple | list):
        return type(obj)(map_arrays(v, fn, is_array=is_array) for v in obj)
    if isinstance(obj, Mapping):
        return {k: map_arrays(v, fn, is_array=is_array) for k, v in obj.items()}
    return obj


def host_theta(theta: Any) -> Any:
    """Θ with every array copied to a numpy array on the host (torch tensors on any device).

    Raises
    ------
    UnsupportedDTypeError
        An array dtype numpy lacks (bfloat16, ...).
    """
    def host(x: Any) -> np.ndarray:
        try:
            return to_numpy(x)
        except TypeError as e:
            raise UnsupportedDTypeError(f"cannot store dtype {x.dtype}: {e}") from e

    return map_arrays(theta, host, is_array=_is_array)


def leaf_records(rec: dict, key: Any = None) -> Iterator[tuple[Any, dict]]:
    """(key in the enclosing dict, leaf record) for every leaf below `rec`, in payload order;
    the key is None below an additive or group record."""
    codec = record_codec(rec)
    if codec.account is not None:
        yield key, rec
        return
    for k, child in codec.children(rec):
        yield from leaf_records(child, k if k is not None else key)


# ------------------------------------------------------------------------------ helpers


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, tuple)


def _host(x: Any, what: str, kinds: tuple[str, ...] = FLOAT_DTYPES) -> np.ndarray:
    """`x` as a C-contiguous little-endian numpy array of an allowed dtype."""
    try:
        a = to_numpy(x)
        a = np.ascontiguousarray(a).reshape(a.shape)  # a 0-d array stays 0-d
    except TypeError as e:  # e.g. torch.bfloat16, which numpy lacks
        raise UnsupportedDTypeError(f"{what}: cannot store dtype {x.dtype}: {e}") from e
    if kinds != ("int",) and a.dtype.name not in kinds:
        raise UnsupportedDTypeError(f"{what} has dtype {a.dtype}; a file stores {kinds}")
    if kinds == ("int",) and a.dtype.kind not in "iu":
        raise UnsupportedDTypeError(f"{what} must hold integers, got {a.dtype}")
    return a.astype(a.dtype.newbyteorder("<"), copy=False)


def _dtype(rec: dict, kinds: tuple[str, ...] = FLOAT_DTYPES) -> np.dtype:
    name = rec.get("dtype")
    if name not in kinds:
        raise CorruptFileError(f"unsupported dtype {name!r} in a record")
    return np.dtype(name).newbyteorder("<")


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(_is_count(s) for s in value) or len(value) > 32:
        raise CorruptFileError(f"malformed shape {value!r}")
    if math.prod(value) > 1 << 40:
        raise CorruptFileError(f"implausible shape {value!r}")
    return tuple(value)


def _raw(buf: memoryview, dtype: np.dtype, count: int, what: str) -> np.ndarray:
    if len(buf) != count * dtype.itemsize:
        raise CorruptFileError(f"{what}: {count} values of {dtype.name} need "
                               f"{count * dtype.itemsize} bytes, got {len(buf)}")
    return np.frombuffer(buf, dtype=dtype).astype(dtype.newbyteorder("="))


def _nonzero_bits(a: np.ndarray) -> np.ndarray:
    """Mask of the entries of the float array `a` whose bits are not all zero (so -0.0 counts)."""
    return a.reshape(-1).view(f"<u{a.dtype.itemsize}") != 0


# ------------------------------------------------------------------------------ supports


@dataclass
class _Support:
    """One way to store which entries are listed: positions part + the listed flat indices
    (None: every entry, in order)."""

    data: bytes
    enc: str
    idx: np.ndarray | None


def _supports(mask: np.ndarray, shape: tuple[int, ...], entropy: bool) -> list[_Support]:
    """Candidate supports covering the True entries of `mask` (flat, C order): every entry;
    the entries themselves (bitmask / gaps / entropy-coded gaps); or, for ndim >= 2, the
    whole slices along an axis that hold them (a bitmask of the slices)."""
    n = mask.size
    idx = np.flatnonzero(mask)
    out = [_Support(b"", "all", None)]
    if idx.size < n:
        data, enc = encode_positions(idx, n, entropy=entropy)
        out.append(_Support(data, enc, idx))
    if len(shape) >= 2 and 0 < idx.size < n:
        m = mask.reshape(shape)
        for axis, g in enumerate(shape):
            kept = np.moveaxis(m, axis, 0).reshape(g, -1).any(axis=1)
            size = n // g
            if int(kept.sum()) * size < n and int(kept.sum()) * size < 2 * idx.size:
                grid = np.moveaxis(np.arange(n).reshape(shape), axis, 0)[kept].reshape(-1)
                out.append(_Support(np.packbits(kept, bitorder="little").tobytes(),
                                    f"slices:{axis}", grid))
    return out


def _read_support(pos: tuple[memoryview, str] | None, shape: tuple[int, ...], count: int,
                  ) -> np.ndarray | None:
    """Listed flat indices of a support (None: every entry)."""
    n = math.prod(shape)
    if pos is None:
        if count != n:
            raise CorruptFileError(f"no positions, but {count} of {n} entries stored")
        return None
    buf, enc = pos
    if enc.startswith("slices:"):
        axis = int(enc.partition(":")[2]) if enc[7:].isdigit() else -1
        if not 0 <= axis < len(shape) or len(buf) != (shape[axis] + 7) // 8:
            raise CorruptFileError(f"bad slice positions {enc!r} for shape {list(shape)}")
        bits = np.unpackbits(np.frombuffer(buf, np.uint8), bitorder="little")
        kept = bits[: shape[axis]].astype(bool)
        if bits[shape[axis]:].any() or int(kept.sum()) * (n // max(shape[axis], 1)) != count:
            raise CorruptFileError("slice mask does not match the stored entries")
        return np.moveaxis(np.arange(n).reshape(shape), axis, 0)[kept].reshape(-1)
    return decode_positions(buf, enc, n, count)


def _record_cost(s: _Support, counted: bool) -> int:
    """JSON bytes a candidate adds to its record: a positions part (about 32 bytes) and, if
    `counted`, the ``"nnz"`` field (about 12)."""
    return (32 if s.idx is not None else 0) + (12 if counted else 0)


def _support_parts(s: _Support) -> list[Part]:
    return [] if s.idx is None else [("positions", s.data, s.enc)]


# ------------------------------------------------------------------------------ arrays


def _encode_values(x: Any, enc: Encoder, kinds: tuple[str, ...] = FLOAT_DTYPES,
                   ) -> tuple[dict, list[Part]]:
    a = _host(x, "values", kinds)
    flat = a.reshape(-1)
    best = None
    for s in _supports(_nonzero_bits(a), a.shape, enc.entropy):
        vals = flat if s.idx is None else flat[s.idx]
        cost = len(s.data) + vals.nbytes + _record_cost(s, counted=False)  # always counted
        if best is None or cost < best[0]:
            best = (cost, s, vals)
    _, s, vals = best
    fields = {"shape": list(a.shape), "dtype": a.dtype.name, "nnz": vals.size}
    return fields, [*_support_parts(s), ("values", vals.tobytes(), "raw")]


def _decode_values(rec: dict, dec: Decoder, kinds: tuple[str, ...] = FLOAT_DTYPES,
                   ) -> np.ndarray:
    shape, dtype, count = _shape(rec["shape"]), _dtype(rec, kinds), rec["nnz"]
    if not _is_count(count) or count > math.prod(shape):
        raise CorruptFileError(f"{count} stored values in shape {list(shape)}")
    p = dec.parts(rec, ("values",), ("positions",))
    idx = _read_support(p.get("positions"), shape, count)
    vals = _raw(p["values"][0], dtype, count, "values")
    if idx is None:
        return vals.reshape(shape)
    out = np.zeros(math.prod(shape), dtype=vals.dtype)
    out[idx] = vals
    return out.reshape(shape)


def _account_values(x: Any) -> dict:
    a = to_numpy(x)
    nz = np.flatnonzero(_nonzero_bits(a))
    n, bits = a.size, 8 * a.dtype.itemsize
    return {"nnz": nz.size, "bits": bits, "lc_bits": bits * nz.size + _gap_bits(nz, n),
            "floor_bits": bits * nz.size + position_floor_bits(n, nz.size)}


def _gap_bits(idx: np.ndarray, n: int) -> int:
    """Positions by the cheapest fixed-width gap code (0 when every entry is stored)."""
    return 0 if idx.size in (0, n) else fixed_gap_bits(idx)[0]


# ------------------------------------------------------------------------------ codes


def _encode_codes(codes: np.ndarray, alphabet: int, zero: int | None, enc: Encoder,
                  ) -> tuple[dict, list[Part]]:
    """Symbols in [0, alphabet), shaped like the tensor; `zero` the symbol of a zero entry
    (or None). Candidates: every code; or, with a zero symbol, the codes of the entries a
    support lists: renumbered without `zero` for elementwise positions (or none, when no
    entry is zero), as they are for whole slices."""
    sym = codes.reshape(-1)
    candidates = [(_Support(b"", "all", None), False)]
    if zero is not None:
        mask = sym != zero
        for s in _supports(mask, codes.shape, enc.entropy):
            if s.idx is not None or mask.all():
                candidates.append((s, not s.enc.startswith("slices:")))
    best = None
    for s, remap in candidates:  # ranked by predicted size; only the best is encoded
        listed = sym if s.idx is None else sym[s.idx]
        size = alphabet - 1 if remap else alphabet
        listed = listed - (listed > zero) if remap else listed
        cost = (len(s.data) + symbols_size(listed, size, entropy=enc.entropy)
                + _record_cost(s, counted=remap or s.idx is not None))
        if best is None or cost < best[0]:
            best = (cost, s, listed, size, remap)
    _, s, listed, size, remap = best
    data, cenc = encode_symbols(listed, size, entropy=enc.entropy)
    fields = {"nnz": listed.size} if remap or s.idx is not None else {}
    return fields, [*_support_parts(s), ("codes", data, cenc)]


def _decode_codes(rec: dict, p: dict, shape: tuple[int, ...], alphabet: int,
                  zero: int | None) -> np.ndarray:
    """Inverse of :func:`_encode_codes`: ``"nnz"`` in the record marks listed codes."""
    n = math.prod(shape)
    pos = p.get("positions")
    if "nnz" not in rec:
        if pos is not None:
            raise CorruptFileError("positions without a count of the codes they list")
        return decode_symbols(*p["codes"], alphabet, n).reshape(shape)
    count = rec["nnz"]
    if not _is_count(count) or count > n or zero is None or not 0 <= zero < alphabet:
        raise CorruptFileError(f"bad sparse codes: nnz={count!r}, zero symbol {zero!r}")
    idx = _read_support(pos, shape, count)
    if pos is not None and pos[1].startswith("slices:"):
        listed = decode_symbols(*p["codes"], alphabet, count)
    else:
        listed = decode_symbols(*p["codes"], alphabet - 1, count)
        listed = listed + (listed >= zero)
    if idx is None:
        return listed.reshape(shape)
    out = np.full(n, zero, dtype=np.int64)
    out[idx] = listed
    return out.reshape(shape)


def _codes_account(sym: np.ndarray, alphabet: int, zero: int | None, side_bits: int,
                   ) -> dict:
    """nnz, nominal bits and the LC/floor counts of codes plus their side information
    (`side_bits` per codebook entry: the K entries of a dense code, K - 1 of a sparse one,
    since the zero is implied; scales pass the whole scale with alphabet-independent
    side_bits=0). Dense: every code at ceil(log2 K) bits; sparse: the positions of the
    non-zero codes (cheapest fixed-width gap code, or log2 C(n, nnz) for the floor) and
    ceil(log2(K-1))-bit codes. The LC count takes the cheaper; so does the floor."""
    n = sym.size
    b = bits_needed(alphabet)
    dense = n * b + side_bits * alphabet
    if zero is None:
        return {"nnz": n, "bits": b, "lc_bits": dense, "floor_bits": dense}
    nz = np.flatnonzero(sym.reshape(-1) != zero)
    bs = bits_needed(alphabet - 1)
    side = side_bits * (alphabet - 1)
    sparse = bs * nz.size + _gap_bits(nz, n) + side
    floor = bs * nz.size + position_floor_bits(n, nz.size) + side
    bits = b if dense <= sparse else bs
    return {"nnz": nz.size, "bits": bits, "lc_bits": min(dense, sparse),
            "floor_bits": min(dense, floor)}


# ------------------------------------------------------------------------------ Quantized


def _zero_index(book: np.ndarray, assignments: np.ndarray) -> int | None:
    """The index of the +0.0 codebook entry used most often (None if there is none)."""
    zeros = np.flatnonzero(book.view(f"<u{book.dtype.itemsize}") == 0)
    if zeros.size == 0:
        return None
    if zeros.size == 1:
        return int(zeros[0])
    counts = np.bincount(assignments.reshape(-1), minlength=book.size)[zeros]
    return int(zeros[np.argmax(counts)])


def _quantized_host(t: Quantized) -> tuple[np.ndarray, np.ndarray]:
    book = _host(t.codebook, "codebook")
    codes = _host(t.assignments, "assignments", ("int",)).astype(np.int64)
    if book.ndim != 1:
        raise ValueError(f"a codebook must be 1-D, got shape {book.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= book.size):
        raise ValueError(f"assignments must be in [0, {book.size}), got "
                         f"[{codes.min()}, {codes.max()}]")
    return book, codes


def _encode_quantized(t: Quantized, enc: Encoder) -> tuple[dict, list[Part]]:
    book, codes = _quantized_host(t)
    zero = _zero_index(book, codes)
    fields, parts = _encode_codes(codes, book.size, zero, enc)
    head = {"shape": list(codes.shape), "dtype": book.dtype.name}
    if zero is not None:  # the +0.0 entry is implied by its index
        head["zero"] = zero
        book = np.delete(book, zero)
    return {**head, **fields}, [("codebook", book.tobytes(), "raw"), *parts]


def _decode_quantized(rec: dict, dec: Decoder) -> Quantized:
    shape, dtype = _shape(rec["shape"]), _dtype(rec)
    p = dec.parts(rec, ("codebook", "codes"), ("positions",))
    size = len(p["codebook"][0]) // dtype.itemsize
    book = _raw(p["codebook"][0], dtype, size, "codebook")
    if "zero" in rec:
        if not _is_count(rec["zero"]) or rec["zero"] > size:
            raise CorruptFileError(f"bad zero entry {rec['zero']!r} of a codebook of {size}")
        book = np.insert(book, rec["zero"], np.zeros((), dtype=book.dtype))
    if book.size == 0 and math.prod(shape):
        raise CorruptFileError("an empty codebook for a non-empty tensor")
    return Quantized(book, _decode_codes(rec, p, shape, max(book.size, 1), rec.get("zero")))


def _account_quantized(t: Quantized) -> dict:
    book, codes = _quantized_host(t)
    return _codes_account(codes, book.size, _zero_index(book, codes), 8 * book.dtype.itemsize)


# ------------------------------------------------------------------------------ ScaledCodes


def _scaled_host(t: ScaledCodes) -> tuple[np.ndarray, np.ndarray, int, int]:
    scale = _host(t.scale, "scale")
    codes = _host(t.codes, "codes", ("int",)).astype(np.int64)
    if scale.size != 1:
        raise ValueError(f"a scale must be one value, got shape {scale.shape}")
    lo = int(codes.min()) if codes.size else 0
    hi = int(codes.max()) if codes.size else 0
    return scale, codes, lo, hi


def _encode_scaled(t: ScaledCodes, enc: Encoder) -> tuple[dict, list[Part]]:
    scale, codes, lo, hi = _scaled_host(t)
    zero = -lo if lo <= 0 <= hi else None
    fields, parts = _encode_codes(codes - lo, hi - lo + 1, zero, enc)
    head = {"shape": list(codes.shape), "dtype": scale.dtype.name, "lo": lo, "hi": hi}
    if scale.shape != ():  # a scale is 0-d unless a scheme says otherwise
        head["scale_shape"] = list(scale.shape)
    return {**head, **fields}, [("scale", scale.tobytes(), "raw"), *parts]


def _decode_scaled(rec: dict, dec: Decoder) -> ScaledCodes:
    shape, dtype = _shape(rec["shape"]), _dtype(rec)
    lo, hi = rec["lo"], rec["hi"]
    if not all(isinstance(v, int) and abs(v) < 1 << 40 for v in (lo, hi)) or hi < lo:
        raise CorruptFileError(f"bad code range [{lo!r}, {hi!r}]")
    p = dec.parts(rec, ("scale", "codes"), ("positions",))
    scale = _raw(p["scale"][0], dtype, 1, "scale").reshape(_shape(rec.get("scale_shape", [])))
    zero = -lo if lo <= 0 <= hi else None
    return ScaledCodes(scale, _decode_codes(rec, p, shape, hi - lo + 1, zero) + lo)


def _account_scaled(t: ScaledCodes) -> dict:
    scale, codes, lo, hi = _scaled_host(t)
    out = _codes_account(codes - lo, hi - lo + 1, -lo if lo <= 0 <= hi else None, 0)
    b = 8 * scale.dtype.itemsize
    return {**out, "lc_bits": out["lc_bits"] + b, "floor_bits": out["floor_bits"] + b}


# ------------------------------------------------------------------------------ low rank


def _encode_low_rank(t: LowRankTheta, enc: Encoder) -> tuple[dict, list[Part]]:
    left, right = _host(t.left, "left factor"), _host(t.right, "right factor")
    shape = [int(s) for s in t.shape]
    if left.ndim != 2 or right.ndim != 2 or left.shape[1] != right.shape[0] or \
            left.dtype != right.dtype or left.shape[0] * right.shape[1] != math.prod(shape):
        raise ValueError(f"factors {left.shape} x {right.shape} do not make shape {shape}")
    fields = {"shape": shape, "dtype": left.dtype.name, "m": left.shape[0],
              "rank": left.shape[1]}
    return fields, [("left", left.tobytes(), "raw"), ("right", right.tobytes(), "raw")]


def _decode_low_rank(rec: dict, dec: Decoder) -> LowRankTheta:
    shape, dtype, m, r = _shape(rec["shape"]), _dtype(rec), rec["m"], rec["rank"]
    n = math.prod(shape)
    if not (_is_count(m) and _is_count(r)) or (m == 0 and n) or (m and n % m):
        raise CorruptFileError(f"bad low-rank record: m={m!r}, rank={r!r}, shape {list(shape)}")
    cols = n // m if m else 0
    p = dec.parts(rec, ("left", "right"))
    left = _raw(p["left"][0], dtype, m * r, "left factor").reshape(m, r)
    right = _raw(p["right"][0], dtype, r * cols, "right factor").reshape(r, cols)
    return LowRankTheta(left, right, shape)


def _account_low_rank(t: LowRankTheta) -> dict:
    left, right = to_numpy(t.left), to_numpy(t.right)
    stored = left.size + right.size
    b = 8 * left.dtype.itemsize
    return {"nnz": stored, "bits": b, "lc_bits": b * stored, "floor_bits": b * stored}


# ------------------------------------------------------------------------------ composites


def _encode_dict(t: Mapping, enc: Encoder) -> tuple[dict, list[Part]]:
    items = []
    for key, child in t.items():
        k = key if isinstance(key, str) else list(key)
        if not all(isinstance(s, str) for s in ([k] if isinstance(k, str) else k)):
            raise TypeError(f"Θ keys must be tensor names or tuples of names, got {key!r}")
        items.append([k, enc.node(child)])
    return {"items": items}, []


def _dict_items(rec: dict) -> list[tuple[Any, dict]]:
    items = rec["items"]
    if not isinstance(items, list) or not all(isinstance(i, list) and len(i) == 2 for i in items):
        raise CorruptFileError("malformed dict record")
    out = []
    for k, child in items:
        if isinstance(k, list) and all(isinstance(s, str) for s in k):
            k = tuple(k)
        elif not isinstance(k, str):
            raise CorruptFileError(f"bad key {k!r} in a dict record")
        out.append((k, child))
    return out


def _expand_dict(t: Mapping) -> dict:
    out: dict[str, Any] = {}
    for key, child in t.items():
        d = expand(child)
        if isinstance(d, dict):  # a group of tensors
            out.update(d)
        else:
            out[key] = d
    return out


def _encode_group(t: Grouped, enc: Encoder) -> tuple[dict, list[Part]]:
    shapes = [[int(s) for s in shape] for shape in t.shapes]
    return {"names": list(t.names), "shapes": shapes, "theta": enc.node(t.theta)}, []


def _decode_group(rec: dict, dec: Decoder) -> Grouped:
    names, shapes = rec["names"], rec["shapes"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or \
            not isinstance(shapes, list) or len(shapes) != len(names):
        raise CorruptFileError("malformed group record")
    return Grouped(dec.node(rec["theta"]), tuple(names), tuple(_shape(s) for s in shapes))


def _expand_group(t: Grouped) -> dict:
    """The pieces of the flat Δ, as :meth:`compressopt.projections.Tasks.decompress` cuts them."""
    from compressopt._array import array_namespace

    flat = expand(t.theta)
    xp = array_namespace(flat)
    out, start = {}, 0
    for n, shape in zip(t.names, t.shapes, strict=True):
        m = math.prod(shape)
        if start + m > flat.shape[0]:
            raise CorruptFileError(f"group {list(t.names)} is shorter than its shapes")
        out[n] = xp.reshape(flat[start:start + m], shape)
        start += m
    return out


def _is_quantized(t: Any) -> bool:
    return isinstance(t, Quantized)


#: scheme name -> Codec; the first whose ``matches`` accepts a Θ writes it
CODECS: dict[str, Codec] = {c.name: c for c in [
    Codec("pruned", lambda t: isinstance(t, Pruned), lambda t, e: _encode_values(t.values, e),
          lambda r, d: Pruned(_decode_values(r, d)), lambda t: t.values,
          account=lambda t: _account_values(t.values)),
    Codec("codebook", _is_quantized, _encode_quantized, _decode_quantized,
          AdaptiveQuantization(1).decompress, account=_account_quantized),
    Codec("scaled", lambda t: isinstance(t, ScaledCodes), _encode_scaled, _decode_scaled,
          Binary().decompress, account=_account_scaled),
    Codec("low_rank", lambda t: isinstance(t, LowRankTheta), _encode_low_rank,
          _decode_low_rank, LowRank(0).decompress, account=_account_low_rank),
    Codec("additive", lambda t: isinstance(t, AdditiveTheta),
          lambda t, e: ({"first": e.node(t.first), "second": e.node(t.second)}, []),
          lambda r, d: AdditiveTheta(d.node(r["first"]), d.node(r["second"])),
          lambda t: tree_add(expand(t.first), expand(t.second)),
          children=lambda r: [(None, r["first"]), (None, r["second"])]),
    Codec("group", lambda t: isinstance(t, Grouped), _encode_group, _decode_group,
          _expand_group, children=lambda r: [(None, r["theta"])]),
    Codec("dict", lambda t: isinstance(t, Mapping), _encode_dict,
          lambda r, d: {k: d.node(child) for k, child in _dict_items(r)}, _expand_dict,
          children=_dict_items),
    Codec("array", _is_array, lambda t, e: _encode_values(t, e, DENSE_DTYPES),
          lambda r, d: _decode_values(r, d, DENSE_DTYPES), lambda t: t,
          account=_account_values),
]}
