"""Lossless codecs for the compressed-model file: bit packing, positions, entropy stage.

Every function is vectorized numpy (no Python loop over entries) and torch-free.

* :func:`pack_bits` / :func:`unpack_bits`: unsigned codes at ``b`` bits each (1 <= b <= 32),
  little-endian bit order, ``ceil(n b / 8)`` bytes.
* :func:`ans_encode` / :func:`ans_decode`: the optional entropy stage, asymmetric numeral
  systems (``constriction.stream.stack.AnsCoder``) with a categorical model fitted to the
  symbols; the model's counts are stored bit-packed in front of the stream.
* :func:`encode_symbols`: the cheaper of fixed-width bits and ANS for a symbol stream.
* :func:`encode_positions` / :func:`decode_positions`: the sorted flat indices of the stored
  entries of a tensor, by whichever is smallest for that tensor: a bitmask, fixed-width
  relative indices (gaps) with filler entries (Han, Mao & Dally, "Deep Compression", ICLR
  2016, §3), or an entropy-coded gap stream (Rice split: the low ``k`` bits of every gap
  raw, the high part ANS-coded).
* :func:`position_floor_bits`: the information-theoretic floor ``log2 C(n, nnz)`` and
  :func:`fixed_gap_bits`, the cheapest fixed-width gap code (the LC toolkit's count).

Decoders check every length against what the caller promises (counts from a header) and
raise :class:`~compressopt.errors.CorruptFileError` on any inconsistency; they never allocate
more than ``count`` entries.
"""

from __future__ import annotations

import math

import numpy as np

from compressopt.errors import CorruptFileError

__all__ = [
    "ans_decode",
    "ans_encode",
    "bits_needed",
    "decode_positions",
    "decode_symbols",
    "encode_positions",
    "encode_symbols",
    "fixed_gap_bits",
    "pack_bits",
    "position_floor_bits",
    "symbols_size",
    "unpack_bits",
]

Buffer = bytes | bytearray | memoryview


def bits_needed(alphabet: int) -> int:
    """``ceil(log2 alphabet)``: bits of a fixed-width code for `alphabet` symbols (0 for 1)."""
    return max(int(alphabet) - 1, 0).bit_length()


def _u8(buf: Buffer) -> np.ndarray:
    return np.frombuffer(buf, dtype=np.uint8)


# ------------------------------------------------------------------------------ varints


def _varint(v: int) -> bytes:
    """LEB128 of a non-negative int (a few bytes of parameters inside a part)."""
    out = bytearray()
    while True:
        byte, v = v & 0x7F, v >> 7
        out.append(byte | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _read_varint(buf: Buffer, pos: int) -> tuple[int, int]:
    """(value, next position); CorruptFileError past the end or beyond 63 bits."""
    value = shift = 0
    b = memoryview(buf)
    while True:
        if pos >= len(b) or shift > 56:
            raise CorruptFileError("truncated or malformed integer in a compressed part")
        byte = b[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            return value, pos


# ------------------------------------------------------------------------------ bit packing


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Unsigned integers at `bits` bits each, little-endian bit order.

    Parameters
    ----------
    values : 1-D array of non-negative integers, each < 2**bits.
    bits : 0..32 (0 stores nothing: every value must be 0).

    Returns
    -------
    bytes, ``ceil(len(values) * bits / 8)`` of them; the padding bits of the last byte are 0.
    O(n·bits) time and memory.

    Raises
    ------
    ValueError
        `bits` out of range, or a value does not fit.

    Examples
    --------
    >>> pack_bits(np.array([1, 2, 3]), 2).hex()
    '39'
    >>> unpack_bits(pack_bits(np.array([5, 0, 7]), 3), 3, 3).tolist()
    [5, 0, 7]
    """
    if not 0 <= bits <= 32:
        raise ValueError(f"bits must be in [0, 32], got {bits}")
    v = np.asarray(values).reshape(-1)
    if v.size and (int(v.min()) < 0 or int(v.max()) >= 1 << bits):
        raise ValueError(f"values must be in [0, 2^{bits}), got [{v.min()}, {v.max()}]")
    if bits == 0 or v.size == 0:
        return b""
    if bits in (8, 16, 32):
        return v.astype(f"<u{bits // 8}").tobytes()
    if bits in (1, 2, 4):  # whole codes per byte: shift and add
        k = 8 // bits
        u = np.zeros(-(-v.size // k) * k, dtype=np.uint8)
        u[: v.size] = v
        shifts = (np.arange(k, dtype=np.uint8) * bits).astype(np.uint8)
        return (u.reshape(-1, k) << shifts).sum(axis=1, dtype=np.uint8).tobytes()
    u = v.astype(np.uint32)
    planes = (u[:, None] >> np.arange(bits, dtype=np.uint32)) & 1
    return np.packbits(planes.astype(np.uint8).reshape(-1), bitorder="little").tobytes()


def unpack_bits(buf: Buffer, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: `count` values (int64) of `bits` bits from `buf`.

    Raises
    ------
    CorruptFileError
        ``len(buf) != ceil(count * bits / 8)``, bits out of [0, 32], or nonzero padding.
    """
    if not 0 <= bits <= 32 or count < 0:
        raise CorruptFileError(f"bad bit width {bits} or count {count}")
    need = (count * bits + 7) // 8
    if len(buf) != need:
        raise CorruptFileError(f"{count} codes of {bits} bits need {need} bytes, got {len(buf)}")
    if bits == 0 or count == 0:
        return np.zeros(count, dtype=np.int64)
    if bits in (8, 16, 32):
        return np.frombuffer(buf, dtype=f"<u{bits // 8}").astype(np.int64)
    if bits in (1, 2, 4):
        k = 8 // bits
        shifts = (np.arange(k, dtype=np.uint8) * bits).astype(np.uint8)
        out = ((_u8(buf)[:, None] >> shifts) & ((1 << bits) - 1)).reshape(-1)
        if out[count:].any():
            raise CorruptFileError("nonzero padding bits after the last code")
        return out[:count].astype(np.int64)
    planes = np.unpackbits(_u8(buf), bitorder="little")
    if planes[count * bits:].any():
        raise CorruptFileError("nonzero padding bits after the last code")
    planes = planes[: count * bits].reshape(count, bits).astype(np.int64)
    return planes @ (np.int64(1) << np.arange(bits, dtype=np.int64))


# ------------------------------------------------------------------------------ entropy stage


def _model(counts: np.ndarray) -> object:
    import constriction  # its submodules are attributes of a native module, not importable

    p = counts.astype(np.float64) / float(counts.sum())
    return constriction.stream.model.Categorical(p, perfect=False)


def _entropy_bytes(counts: np.ndarray) -> float:
    """Empirical entropy of symbols with these counts, in bytes (the ANS payload's size)."""
    c = counts[counts > 0].astype(np.float64)
    n = c.sum()
    return float(np.sum(c * np.log2(n / c))) / 8 if n else 0.0


def _model_bytes(counts: np.ndarray) -> int:
    return 1 + (counts.size * bits_needed(int(counts.max()) + 1) + 7) // 8


def ans_encode(symbols: np.ndarray, alphabet: int) -> bytes:
    """Entropy-code `symbols` (ints in [0, alphabet)) with ANS and a fitted categorical model.

    Layout: one byte w, the `alphabet` symbol counts at w bits each (:func:`pack_bits`),
    then the ANS stream as little-endian 32-bit words. The model is the empirical
    distribution, so the stream costs the empirical entropy plus at most 64 bits
    (``constriction``'s final state and word padding).

    Parameters
    ----------
    symbols : 1-D integers in [0, alphabet).
    alphabet : >= 2 symbols.

    Returns
    -------
    bytes. O(n + alphabet).

    References
    ----------
    .. [1] Duda, "Asymmetric numeral systems", arXiv:1311.2540, 2013; the coder is
       ``constriction`` (Bamler, NeurIPS 2022).
    """
    if alphabet < 2:
        raise ValueError(f"ANS needs an alphabet of at least 2 symbols, got {alphabet}")
    s = np.asarray(symbols, dtype=np.int64).reshape(-1)
    counts = np.bincount(s, minlength=alphabet)
    if counts.size != alphabet:
        raise ValueError(f"symbols must be in [0, {alphabet})")
    w = bits_needed(int(counts.max()) + 1)
    head = bytes([w]) + pack_bits(counts, w)
    if s.size == 0:
        return head
    import constriction

    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(s.astype(np.int32), _model(counts))
    return head + coder.get_compressed().astype("<u4").tobytes()


def ans_decode(buf: Buffer, alphabet: int, count: int) -> np.ndarray:
    """Inverse of :func:`ans_encode`: `count` symbols (int64).

    Raises
    ------
    CorruptFileError
        The model's counts do not sum to `count`, the stream is not whole 32-bit words, or
        it is not a valid ANS stream.
    """
    if alphabet < 2 or not len(buf):
        raise CorruptFileError("empty or malformed entropy-coded part")
    w = buf[0]
    mbytes = (alphabet * w + 7) // 8
    if not 1 <= w <= 32 or len(buf) < 1 + mbytes:  # so alphabet <= 8 len(buf)
        raise CorruptFileError("truncated model of an entropy-coded part")
    counts = unpack_bits(buf[1 : 1 + mbytes], w, alphabet)
    if int(counts.sum()) != count:
        raise CorruptFileError(
            f"entropy model counts {int(counts.sum())} symbols, expected {count}")
    rest = buf[1 + mbytes:]
    if len(rest) % 4:
        raise CorruptFileError("an ANS stream must be whole 32-bit words")
    if count == 0:
        if len(rest):
            raise CorruptFileError("trailing bytes after an empty entropy-coded part")
        return np.zeros(0, dtype=np.int64)
    import constriction

    try:
        words = np.frombuffer(rest, dtype="<u4").astype(np.uint32)
        coder = constriction.stream.stack.AnsCoder(words)
        out = coder.decode(_model(counts), count)
    except (ValueError, RuntimeError) as e:
        raise CorruptFileError(f"invalid ANS stream: {e}") from e
    if not coder.is_empty():
        raise CorruptFileError("trailing data after the ANS stream")
    out = np.asarray(out, dtype=np.int64)
    if np.any(np.bincount(out, minlength=alphabet)[:alphabet] != counts):
        raise CorruptFileError("decoded symbols do not match the stored model counts")
    return out


#: largest alphabet the ANS stage models (its counts are stored with the stream)
MAX_ANS_ALPHABET = 1 << 16


def _ans_estimate(s: np.ndarray, alphabet: int) -> tuple[float, np.ndarray | None]:
    """Predicted bytes of :func:`ans_encode` (inf when ANS does not apply) and the counts."""
    if alphabet < 2 or not s.size or alphabet > max(MAX_ANS_ALPHABET, s.size):
        return math.inf, None
    counts = np.bincount(s, minlength=alphabet)
    return _entropy_bytes(counts) + _model_bytes(counts) + 8, counts


def symbols_size(symbols: np.ndarray, alphabet: int, *, entropy: bool = True) -> float:
    """Bytes :func:`encode_symbols` will take, predicted without encoding (the ANS stream
    to within a few bytes); for choosing between candidate layouts cheaply."""
    s = np.asarray(symbols, dtype=np.int64).reshape(-1)
    fixed = (s.size * bits_needed(alphabet) + 7) // 8
    return min(fixed, _ans_estimate(s, alphabet)[0]) if entropy else fixed


def encode_symbols(symbols: np.ndarray, alphabet: int, *, entropy: bool = True,
                   ) -> tuple[bytes, str]:
    """The cheaper of a fixed-width code and ANS for a stream of symbols in [0, alphabet).

    Returns
    -------
    (data, encoding) with encoding ``"bits:b"`` (``b = ceil(log2 alphabet)``, see
    :func:`pack_bits`) or ``"ans"`` (:func:`ans_encode`; tried only with `entropy` and when
    the empirical entropy predicts a saving).
    """
    s = np.asarray(symbols, dtype=np.int64).reshape(-1)
    b = bits_needed(alphabet)
    fixed = (s.size * b + 7) // 8
    if entropy and _ans_estimate(s, alphabet)[0] < fixed:
        data = ans_encode(s, alphabet)
        if len(data) < fixed:
            return data, "ans"
    return pack_bits(s, b), f"bits:{b}"


def decode_symbols(buf: Buffer, encoding: str, alphabet: int, count: int) -> np.ndarray:
    """Inverse of :func:`encode_symbols`; checks every symbol is below `alphabet`."""
    if encoding == "ans":
        out = ans_decode(buf, alphabet, count)
    else:
        out = unpack_bits(buf, _param(encoding, "bits"), count)
    if out.size and int(out.max()) >= alphabet:
        raise CorruptFileError(f"a code is {int(out.max())}, beyond the {alphabet} symbols")
    return out


def _param(encoding: str, kind: str) -> int:
    """The integer of an encoding string ``"kind:N"``."""
    head, _, tail = encoding.partition(":")
    if head != kind or not tail.isdigit():
        raise CorruptFileError(f"unknown encoding {encoding!r}")
    return int(tail)


# ------------------------------------------------------------------------------ positions


def position_floor_bits(n: int, nnz: int) -> float:
    """``log2 C(n, nnz)``: the fewest bits that can identify a support of `nnz` among `n`.

    Examples
    --------
    >>> round(position_floor_bits(4, 2), 6)   # C(4, 2) = 6
    2.584963
    """
    if not 0 <= nnz <= n:
        raise ValueError(f"need 0 <= nnz <= n, got nnz={nnz}, n={n}")
    return (math.lgamma(n + 1) - math.lgamma(nnz + 1) - math.lgamma(n - nnz + 1)) / math.log(2)


def _gaps(idx: np.ndarray) -> np.ndarray:
    """Zeros skipped before each stored entry: ``idx[i] - idx[i-1] - 1`` (idx[-1] = -1)."""
    return np.diff(idx, prepend=-1) - 1


def _filler_entries(gaps: np.ndarray, bits: int) -> int:
    """Entries of the fixed-width gap code at `bits` bits: one per gap plus its fillers."""
    return int(gaps.size + np.sum(gaps // ((1 << bits) - 1)))


def fixed_gap_bits(idx: np.ndarray) -> tuple[int, int]:
    """The cheapest fixed-width relative-index code of sorted positions `idx`.

    Each stored entry is coded by the number of zeros before it in ``b`` bits; a run of
    ``2^b - 1`` or more zeros first emits filler entries (the all-ones code, "skip 2^b - 1")
    as in Deep Compression §3 (whose fillers also store a zero value; ours do not).

    Returns
    -------
    (bits in all, the width b). O(n · 32).
    """
    g = _gaps(np.asarray(idx, dtype=np.int64))
    if g.size == 0:
        return 0, 1
    top = max(int(g.max()) + 1, 1).bit_length() + 1
    return min((b * _filler_entries(g, b), b) for b in range(1, min(top, 32) + 1))


def _fixed_gap_encode(g: np.ndarray, bits: int) -> bytes:
    m = (1 << bits) - 1
    reps = g // m + 1  # entries per stored value: its fillers, then the remainder
    sym = np.full(int(reps.sum()), m, dtype=np.int64)
    sym[np.cumsum(reps) - 1] = g % m
    return pack_bits(sym, bits)


def _fixed_gap_decode(buf: Buffer, bits: int, n: int, nnz: int) -> np.ndarray:
    """The entries end at the `nnz`-th non-filler; what follows must be zero padding."""
    if not 1 <= bits <= 32:
        raise CorruptFileError(f"bad gap width {bits}")
    m = (1 << bits) - 1
    room = 8 * len(buf) // bits
    sym = unpack_bits(buf[: (room * bits + 7) // 8], bits, room)
    stored = sym < m
    ends = np.flatnonzero(stored)
    if ends.size < nnz or (nnz == 0 and len(buf)):
        raise CorruptFileError(f"gap entries hold {ends.size} positions, expected {nnz}")
    entries = int(ends[nnz - 1]) + 1 if nnz else 0
    sym = unpack_bits(buf, bits, entries)  # checks the length and the zero padding
    stored = stored[:entries]
    step = np.where(stored, sym + 1, m)
    return (np.cumsum(step) - 1)[stored]


def _rice_cost(g: np.ndarray, k: int) -> float:
    high = g >> k
    counts = np.bincount(high)
    return (g.size * k + 7) // 8 + _entropy_bytes(counts) + _model_bytes(counts) + 8


def _rice_encode(g: np.ndarray, k: int) -> bytes:
    high = g >> k
    alphabet = max(int(high.max()) + 1, 2)
    low = pack_bits(g & ((1 << k) - 1), k)
    return bytes([k]) + _varint(alphabet) + low + ans_encode(high, alphabet)


def _rice_decode(buf: Buffer, n: int, nnz: int) -> np.ndarray:
    if len(buf) < 2:
        raise CorruptFileError("truncated entropy-coded positions")
    k = buf[0]
    alphabet, pos = _read_varint(buf, 1)
    if k > 40 or not 2 <= alphabet <= max(n, 2) or (alphabet - 1) << k > 2 * n + 2:
        raise CorruptFileError(f"bad parameters of entropy-coded positions (k={k})")
    lbytes = (nnz * k + 7) // 8
    low = unpack_bits(buf[pos : pos + lbytes], k, nnz)
    high = ans_decode(buf[pos + lbytes:], alphabet, nnz)
    return np.cumsum((high << k) + low + 1) - 1


def encode_positions(idx: np.ndarray, n: int, *, entropy: bool = True) -> tuple[bytes, str]:
    """The smallest encoding of the sorted distinct flat indices `idx` (of `n` entries).

    Candidates: ``"none"`` / ``"all"`` (no bytes, when nothing or everything is stored),
    ``"mask"`` (``np.packbits``, ``ceil(n/8)`` bytes), ``"gaps:b"`` (the cheapest fixed-width
    gap code with fillers, see :func:`fixed_gap_bits`), and with `entropy` ``"ans-gaps"``:
    every gap split as ``high·2^k + low`` (Rice), the k low bits packed raw and the high
    parts ANS-coded with their empirical model; k is chosen by the empirical entropy. For
    supports drawn uniformly at random this comes within a few percent of
    :func:`position_floor_bits` once more than ~1,000 entries are stored.

    Returns
    -------
    (data, encoding). O(nnz · 32 + n/8).

    Examples
    --------
    >>> idx = np.array([0, 3, 4, 9])
    >>> data, enc = encode_positions(idx, 10)
    >>> enc, decode_positions(data, enc, 10, 4).tolist()
    ('mask', [0, 3, 4, 9])
    """
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    nnz = idx.size
    if nnz == 0:
        return b"", "none"
    if nnz == n:
        return b"", "all"
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    best = (np.packbits(mask, bitorder="little").tobytes(), "mask")
    g = _gaps(idx)
    bits, b = fixed_gap_bits(idx)
    if (bits + 7) // 8 < len(best[0]):
        best = min(best, (_fixed_gap_encode(g, b), f"gaps:{b}"), key=lambda t: len(t[0]))
    if entropy:
        top = max(int(g.max()), 1).bit_length()
        k = min(range(top + 1), key=lambda k: _rice_cost(g, k))
        if _rice_cost(g, k) < len(best[0]):
            best = min(best, (_rice_encode(g, k), f"ans-gaps:{k}"), key=lambda t: len(t[0]))
    return best


def decode_positions(buf: Buffer, encoding: str, n: int, nnz: int) -> np.ndarray:
    """Inverse of :func:`encode_positions`: `nnz` sorted indices in [0, n) (int64).

    Raises
    ------
    CorruptFileError
        The data does not decode to exactly `nnz` increasing indices below `n`.
    """
    if not 0 <= nnz <= n:
        raise CorruptFileError(f"{nnz} stored entries in a tensor of {n}")
    if encoding in ("none", "all"):
        if len(buf) or nnz != (0 if encoding == "none" else n):
            raise CorruptFileError(f"positions {encoding!r} with {nnz} of {n} entries")
        return np.arange(nnz, dtype=np.int64)
    if encoding == "mask":
        if len(buf) != (n + 7) // 8:
            raise CorruptFileError(f"a mask of {n} entries needs {(n + 7) // 8} bytes")
        bits = np.unpackbits(_u8(buf), bitorder="little")
        if bits[n:].any():
            raise CorruptFileError("nonzero padding bits after the mask")
        idx = np.flatnonzero(bits[:n])
    elif encoding.startswith("gaps:"):
        idx = _fixed_gap_decode(buf, _param(encoding, "gaps"), n, nnz)
    elif encoding.startswith("ans-gaps"):
        idx = _rice_decode(buf, n, nnz)
    else:
        raise CorruptFileError(f"unknown positions encoding {encoding!r}")
    if idx.size != nnz or (nnz and int(idx[-1]) >= n):
        raise CorruptFileError(f"positions decode to {idx.size} entries (expected {nnz}) "
                               f"or beyond the tensor's {n} entries")
    return idx.astype(np.int64, copy=False)
