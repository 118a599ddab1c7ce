"""Bit packing, the ANS stage and the position codes: round trips, bounds, corrupt input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compressopt.errors import CorruptFileError
from compressopt.storage import codecs as K


@given(st.integers(0, 32), st.integers(0, 300), st.integers(0, 2**32 - 1))
def test_pack_bits_round_trip(bits, n, seed):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 1 << bits, n, dtype=np.uint64) if bits else np.zeros(n, np.int64)
    data = K.pack_bits(v, bits)
    assert len(data) == (n * bits + 7) // 8
    np.testing.assert_array_equal(K.unpack_bits(data, bits, n), v.astype(np.int64))


def test_pack_bits_refuses_values_that_do_not_fit():
    with pytest.raises(ValueError, match="values must be in"):
        K.pack_bits(np.array([4]), 2)
    with pytest.raises(ValueError, match="bits must be in"):
        K.pack_bits(np.array([1]), 33)


def test_unpack_bits_checks_length_and_padding():
    data = K.pack_bits(np.array([1, 2, 3]), 3)
    with pytest.raises(CorruptFileError, match="need 2 bytes"):
        K.unpack_bits(data + b"\0", 3, 3)
    with pytest.raises(CorruptFileError, match="padding"):
        K.unpack_bits(bytes([data[0], data[1] | 0x80]), 3, 3)


@given(st.integers(2, 40), st.integers(1, 2000), st.integers(0, 2**32 - 1))
def test_ans_round_trip_and_size(alphabet, n, seed):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(alphabet, 0.3))
    s = rng.choice(alphabet, n, p=p)
    data = K.ans_encode(s, alphabet)
    np.testing.assert_array_equal(K.ans_decode(data, alphabet, n), s)
    counts = np.bincount(s, minlength=alphabet)
    # the stream costs the empirical entropy plus at most 64 bits, plus the model
    assert len(data) <= K._entropy_bytes(counts) + 8 + 4 + K._model_bytes(counts)


def test_ans_decode_rejects_inconsistent_input():
    s = np.array([0, 1, 1, 2, 1, 0, 1])
    data = K.ans_encode(s, 3)
    with pytest.raises(CorruptFileError, match="counts"):
        K.ans_decode(data, 3, len(s) + 1)
    with pytest.raises(CorruptFileError, match="32-bit words"):
        K.ans_decode(data[:-1], 3, len(s))
    with pytest.raises(CorruptFileError):
        K.ans_decode(data[:-4], 3, len(s))
    with pytest.raises(CorruptFileError):
        K.ans_decode(b"", 3, 0)


@pytest.mark.parametrize("entropy", [True, False])
def test_encode_symbols_takes_the_smaller_form(entropy):
    rng = np.random.default_rng(0)
    skewed = rng.choice(4, 5000, p=[0.85, 0.05, 0.05, 0.05])
    data, enc = K.encode_symbols(skewed, 4, entropy=entropy)
    assert enc == ("ans" if entropy else "bits:2")
    assert len(data) <= (5000 * 2 + 7) // 8
    np.testing.assert_array_equal(K.decode_symbols(data, enc, 4, 5000), skewed)
    uniform = rng.integers(0, 4, 5000)
    data, enc = K.encode_symbols(uniform, 4, entropy=entropy)
    assert enc == "bits:2" and len(data) == 1250  # ANS cannot win on uniform codes


def test_decode_symbols_checks_the_alphabet():
    data, enc = K.encode_symbols(np.array([0, 1, 2, 3]), 4)
    with pytest.raises(CorruptFileError, match="beyond"):
        K.decode_symbols(data, enc, 3, 4)
    with pytest.raises(CorruptFileError, match="unknown encoding"):
        K.decode_symbols(data, "zip", 4, 4)


def _support(rng, n, nnz):
    return np.sort(rng.choice(n, nnz, replace=False))


@given(st.integers(1, 3000), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1), st.booleans())
def test_positions_round_trip(n, density, seed, entropy):
    rng = np.random.default_rng(seed)
    idx = _support(rng, n, round(density * n))
    data, enc = K.encode_positions(idx, n, entropy=entropy)
    np.testing.assert_array_equal(K.decode_positions(data, enc, n, idx.size), idx)
    assert len(data) <= (n + 7) // 8  # never worse than the bitmask


@pytest.mark.parametrize("enc_kind", ["mask", "gaps", "ans-gaps"])
def test_each_position_code_round_trips(enc_kind):
    rng = np.random.default_rng(1)
    n, idx = 50_000, None
    density = {"mask": 0.5, "gaps": 0.01, "ans-gaps": 0.01}[enc_kind]
    idx = _support(rng, n, int(density * n))
    if enc_kind == "gaps":
        _, b = K.fixed_gap_bits(idx)
        data, enc = K._fixed_gap_encode(K._gaps(idx), b), f"gaps:{b}"
    else:
        data, enc = K.encode_positions(idx, n)
    assert enc.startswith(enc_kind)
    np.testing.assert_array_equal(K.decode_positions(data, enc, n, idx.size), idx)


def test_fixed_gap_bits_is_the_cheapest_width():
    rng = np.random.default_rng(2)
    idx = _support(rng, 5000, 200)
    gaps = np.diff(idx, prepend=-1) - 1
    brute = min((b * sum(int(g) // (2**b - 1) + 1 for g in gaps), b) for b in range(1, 20))
    assert K.fixed_gap_bits(idx) == brute


@pytest.mark.parametrize("density", [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5])
def test_positions_within_ten_percent_of_the_floor(density):
    """Issue 10: position bytes within 10 % of log2 C(n, nnz) above 1,000 nonzeros."""
    rng = np.random.default_rng(int(density * 1000))
    for nnz in (1001, 4000, 20_000):
        n = int(nnz / density)
        idx = _support(rng, n, nnz)
        data, _ = K.encode_positions(idx, n)
        floor = K.position_floor_bits(n, nnz) / 8
        assert len(data) <= 1.10 * floor, (n, nnz, len(data), floor)
        assert len(data) >= floor - 1  # nothing beats the floor on random supports


def test_positions_empty_full_and_errors():
    assert K.encode_positions(np.array([], np.int64), 10) == (b"", "none")
    assert K.encode_positions(np.arange(10), 10) == (b"", "all")
    data, enc = K.encode_positions(np.array([2, 7]), 1000)
    with pytest.raises(CorruptFileError):
        K.decode_positions(data, enc, 1000, 5)
    with pytest.raises(CorruptFileError):
        K.decode_positions(data, enc, 5, 2)
    with pytest.raises(CorruptFileError, match="unknown positions"):
        K.decode_positions(data, "rle", 1000, 2)
    with pytest.raises(CorruptFileError):
        K.decode_positions(b"\x01", "mask", 20, 1)


def test_position_floor():
    assert K.position_floor_bits(10, 0) == 0
    assert K.position_floor_bits(10, 10) == 0
    assert K.position_floor_bits(6, 3) == pytest.approx(np.log2(20))
    with pytest.raises(ValueError):
        K.position_floor_bits(3, 4)
