"""The compressed-model file: bit-exact round trips of every scheme, byte accounting, and
typed errors on bad files."""

from __future__ import annotations

import hashlib
import inspect as pyinspect
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compressopt import projections as P
from compressopt import storage as S
from compressopt.errors import (
    CorruptFileError,
    FileFormatError,
    FormatVersionError,
    ModelMismatchError,
    ResourceLimitError,
    ShapeMismatchError,
    UnsupportedDTypeError,
)
from compressopt.storage.model_file import _container
from compressopt.storage.schemes import CODECS, codec_for
from compressopt.verify.registry import REGISTRY

# ------------------------------------------------------------------ compressions to test

#: verify-registry entry -> the compression (or tensor scheme) whose C step it is
FROM_REGISTRY = {
    "cardinality": lambda p: P.Cardinality(k=p["k"]),
    "global_cardinality": lambda p: P.GlobalCardinality(k=p["k"]),
    "l1_ball": lambda p: P.L1Ball(p["radius"]),
    "simplex": lambda p: P.Simplex(p["radius"]),
    "box": lambda p: P.Box(p["lower"], p["upper"]),
    "soft_threshold": lambda p: P.L1Penalty(p["t"], mu=1.0),
    "hard_threshold": lambda p: P.L0Penalty(p["t"], mu=1.0),
    "group_lasso": lambda p: P.GroupLassoPenalty(p["t"], mu=1.0),
    "channels": lambda p: P.ChannelPruning(k=p["k"]),
    "global_channels": lambda p: P.GlobalChannelPruning(k=p["k"]),
    "knapsack": lambda p: P.KnapsackPruning(p["bits"], p["budget_bits"]),
    "allocate_bits": lambda p: P.MixedPrecision(p["budget_bits"], p["candidates"]),
    "sparse_quantized": lambda p: P.SparseQuantized(p["budget_bits"], p["candidates"]),
    "kmeans_exact": lambda p: P.AdaptiveQuantization(p["k"], sparse=p["sparse"]),
    "kmeans_fast": lambda p: P.AdaptiveQuantization(p["k"], "fast", p["sparse"]),
    "binary": lambda p: P.Binary(),
    "ternary": lambda p: P.Ternary(),
    "uniform": lambda p: P.UniformQuantization(levels=p["levels"], method=p["method"]),
    "uniform_alternating": lambda p: P.UniformQuantization(levels=p["levels"],
                                                           method=p["method"]),
    "powers_of_two": lambda p: P.FixedCodebook(p["codebook"]),
    "low_rank": lambda p: P.LowRank(p["r"]),
    "rank_selection": lambda p: P.RankSelection(p["budget_params"]),
}


def _mat(rng, shape):
    return rng.standard_normal(shape)


#: compositions and schemes the verify registry does not sample: name -> (rng) -> (c, w)
EXTRA = {
    "prune_then_quantize": lambda rng: (
        P.Chain(P.GlobalCardinality(keep=0.3), P.PerTensor(P.AdaptiveQuantization(3, sparse=True))),
        {"a": _mat(rng, (7, 5)), "b": _mat(rng, (13,))}),
    "additive": lambda rng: (
        P.Additive(P.Cardinality(k=3), P.AdaptiveQuantization(2), iters=3),
        {"a": _mat(rng, (6, 4)), "b": _mat(rng, (9,))}),
    "additive_low_rank": lambda rng: (
        P.Additive(P.PerTensor(P.LowRank(1)), P.GlobalCardinality(k=4)),
        {"a": _mat(rng, (5, 3)), "b": _mat(rng, (4, 2, 2))}),
    "shared_codebook": lambda rng: (
        P.Tasks({"a": P.Ternary(), ("b", "c"): P.AdaptiveQuantization(3)}),
        {"a": _mat(rng, (3, 3)), "b": _mat(rng, (5,)), "c": _mat(rng, (2, 3))}),
    "powers_of_two_class": lambda rng: (
        P.PerTensor(P.PowersOfTwo(-4, 1)), {"a": _mat(rng, (11,))}),
    "channels_axis1": lambda rng: (
        P.PerTensor(P.ChannelPruning(k=2, axis=1)), {"a": _mat(rng, (4, 6, 3))}),
}


def _case(name, rng, size, dtype):
    """(compression, w) in `dtype` for a registry entry or an EXTRA case."""
    if name in EXTRA:
        c, w = EXTRA[name](rng)
    else:
        entry = REGISTRY[name]
        case = entry.sample(rng, size)
        c = FROM_REGISTRY[name](case.params)
        w = case.x if entry.collection else {"x": case.x}
        c = P.as_compression(c)
    return c, {k: np.asarray(v, dtype=dtype) for k, v in w.items()}


def _assert_bits_equal(got, want):
    assert set(got) >= set(want)
    for k, v in want.items():
        v = np.asarray(v)
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        assert got[k].tobytes() == v.tobytes(), k


def _round_trip(c, w, *, entropy=True, dense=None):
    theta = c.compress(w)
    data = S.theta_to_bytes(theta, c, dense=dense, entropy=entropy)
    arrays, _ = S.load_theta(data)
    _assert_bits_equal(arrays, c.decompress(theta))
    if dense:
        _assert_bits_equal(arrays, dense)
    return data, theta


NAMES = sorted(FROM_REGISTRY) + sorted(EXTRA)


def test_every_registry_entry_has_a_compression():
    assert set(FROM_REGISTRY) == set(REGISTRY)


def _classes(obj, out):
    out.add(type(obj))
    for part in ("scheme", "first", "then", "second"):
        if hasattr(obj, part) and not isinstance(getattr(obj, part), int):
            _classes(getattr(obj, part), out)
    for s in getattr(obj, "tasks", {}).values():
        _classes(s, out)


def test_every_projection_class_is_covered():
    """A new scheme class in compressopt.projections fails here until it has a case above
    (and so a round trip through the file)."""
    schemes = {
        obj for obj in vars(P).values()
        if pyinspect.isclass(obj) and not pyinspect.isabstract(obj)
        and callable(getattr(obj, "compress", None)) and callable(getattr(obj, "decompress", None))
        and obj.__module__.startswith("compressopt.projections") and obj is not P.Compression
    }
    covered: set = set()
    rng = np.random.default_rng(0)
    for name in NAMES:
        _classes(_case(name, rng, 12, np.float64)[0], covered)
    assert schemes - covered == set()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=8)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 40), entropy=st.booleans())
def test_round_trip_is_bit_exact(name, dtype, seed, size, entropy):
    rng = np.random.default_rng(seed)
    c, w = _case(name, rng, size, dtype)
    _, theta = _round_trip(c, w, entropy=entropy)
    for _, leaf in _leaves(theta):
        codec_for(leaf)  # every Θ kind produced has a codec


def _leaves(theta, key=None):
    if isinstance(theta, P.AdditiveTheta):
        yield from _leaves(theta.first)
        yield from _leaves(theta.second)
    elif isinstance(theta, dict):
        for k, v in theta.items():
            yield from _leaves(v, k)
    elif isinstance(theta, P.Grouped):
        yield from _leaves(theta.theta, key)
    else:
        yield key, theta


EDGE_SCHEMES = [P.Cardinality(k=0), P.Cardinality(keep=1.0), P.AdaptiveQuantization(2),
                P.AdaptiveQuantization(2, sparse=True), P.Ternary(), P.Binary(),
                P.UniformQuantization(bits=2), P.L1Penalty(0.5, mu=1.0), P.PowersOfTwo(-2, 0)]


@pytest.mark.parametrize("scheme", EDGE_SCHEMES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["zeros", "empty", "odd", "negzero"])
def test_degenerate_tensors(scheme, dtype, kind):
    rng = np.random.default_rng(3)
    x = {"zeros": np.zeros((3, 5)), "empty": np.zeros((0,)), "odd": rng.standard_normal(
        (1, 7, 3)), "negzero": np.array([-0.0, 0.0, -0.0, 1.5])}[kind].astype(dtype)
    c = P.PerTensor(scheme)
    _round_trip(c, {"w": x}, dense={"bias": np.array([-0.0, 2.0], dtype)})


def test_dense_tensors_and_metadata_are_kept(tmp_path):
    rng = np.random.default_rng(4)
    w = {"fc.weight": rng.standard_normal((20, 30)).astype(np.float32)}
    dense = {"fc.bias": rng.standard_normal(20).astype(np.float32),
             "bn.count": np.array([3.0])}
    c = P.GlobalCardinality(keep=0.1)
    meta = {"model": "toy", "input_shape": [1, 28, 28], "num_classes": 10, "accuracy": 0.97}
    n = S.save_theta(tmp_path / "m.cpz", c.compress(w), c, dense=dense, metadata=meta)
    assert n == (tmp_path / "m.cpz").stat().st_size
    assert not list(tmp_path.glob("*.tmp-*"))
    m = S.read_model(tmp_path / "m.cpz")
    assert m.header["metadata"] == meta
    assert m.header["nominal"]["compression_ratio"] == pytest.approx(10.0, rel=0.01)
    assert "GlobalCardinality" in m.header["compression"]
    _assert_bits_equal(m.arrays(), dense)
    assert m.shapes == {"fc.weight": (20, 30), "fc.bias": (20,), "bn.count": (1,)}


def test_the_file_is_a_plain_safetensors_file(tmp_path):
    from safetensors import safe_open

    c = P.PerTensor(P.AdaptiveQuantization(4))
    w = {"a": np.random.default_rng(5).standard_normal(100)}
    S.save_theta(tmp_path / "m.cpz", c.compress(w), c)
    with safe_open(tmp_path / "m.cpz", "numpy") as f:
        assert list(f.keys()) == ["payload"]
        assert json.loads(f.metadata()["compressopt"])["format"] == "compressopt.model"


def test_save_refuses_bad_input():
    c = P.GlobalCardinality(k=1)
    theta = c.compress({"a": np.ones(3)})
    with pytest.raises(ShapeMismatchError, match="both compressed and dense"):
        S.theta_to_bytes(theta, c, dense={"a": np.ones(3)})
    with pytest.raises(TypeError, match="JSON"):
        S.theta_to_bytes(theta, c, metadata={"f": object()})
    with pytest.raises(TypeError, match="no codec"):
        S.theta_to_bytes({"a": object()})
    with pytest.raises(UnsupportedDTypeError):
        S.theta_to_bytes({"a": P.Pruned(np.ones(3, dtype=np.int32))})
    with pytest.raises(TypeError, match="map tensor names"):
        S.theta_to_bytes(P.Pruned(np.ones(3)))


def test_every_codec_is_reachable():
    rng = np.random.default_rng(6)
    seen = set()
    for name in NAMES:
        c, w = _case(name, rng, 12, np.float64)
        header = S.read_model(S.theta_to_bytes(c.compress(w), c)).header
        seen |= {v for p, v in _paths(header["theta"]) if p and p[-1] == "scheme"}
    assert seen == set(CODECS)


# ------------------------------------------------------------------ sizes and accounting

LENET300 = {"fc1.weight": (300, 784), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}


@pytest.fixture(scope="module")
def lenet300_w():
    rng = np.random.default_rng(7)
    return {n: (rng.standard_normal(s) / math.sqrt(s[1])).astype(np.float32)
            for n, s in LENET300.items()}


@pytest.mark.parametrize("c", [
    P.GlobalCardinality(keep=0.05),
    P.Chain(P.GlobalCardinality(keep=0.05), P.PerTensor(P.AdaptiveQuantization(2, sparse=True))),
    P.SparseQuantized(budget_bits=32 * 266_200 / 500, candidates=(1, 2, 3)),
    P.PerTensor(P.AdaptiveQuantization(2)), P.PerTensor(P.Binary()),
    P.PerTensor(P.UniformQuantization(bits=2)),
    P.Additive(P.Tasks({tuple(LENET300): P.AdaptiveQuantization(2)}),
               P.GlobalCardinality(keep=0.01)),
], ids=["prune", "prune_quantize", "joint", "kmeans2", "binary", "uniform",
        "additive_shared_codebook"])
def test_payload_is_not_larger_than_the_lc_toolkit_count(lenet300_w, c):
    """Values, positions and codebooks never take more than the LC toolkit's count, up to the
    rounding of each part to whole bytes and the record bytes a positions part would add
    (the encoder minimizes payload + record; 44 bytes); the file adds each record's share of
    the JSON header (< 200 bytes a tensor), which incompressible codes (K = 2) cannot win
    back."""
    data, _ = _round_trip(c, lenet300_w)
    acc = S.file_accounting(data)
    for r in S.inspect(data)["tensors"]:
        payload = r["total"] - r["bytes"]["header"]
        assert payload <= r["lc_toolkit_bytes"] + len(r["encodings"]) + 44, r
        assert r["bytes"]["header"] < 200
    assert acc["file_bytes"] == len(data)
    numel = sum(math.prod(s) for s in LENET300.values())
    assert acc["compressed_numel"] == acc["model_numel"] == numel
    assert acc["file_compression_ratio"] == pytest.approx(4 * numel / acc["tensor_bytes"])
    assert acc["model_bytes_ratio"] == pytest.approx(4 * numel / len(data))


def test_positions_of_a_pruned_net_are_near_the_floor(lenet300_w):
    data, _ = _round_trip(P.GlobalCardinality(keep=0.05), lenet300_w)
    for r in S.inspect(data)["tensors"]:
        if r["nnz"] > 1000:
            assert r["bytes"]["positions"] <= 1.10 * r["position_floor_bytes"], r


def test_inspect_rows():
    rng = np.random.default_rng(8)
    c, w = EXTRA["shared_codebook"](rng)
    theta = c.compress(w)
    info = S.inspect(S.theta_to_bytes(theta, c, dense={"bias": np.zeros(3)}))
    rows = {r["name"]: r for r in info["tensors"]}
    assert set(rows) == {"a", "b+c", "bias"}
    assert rows["b+c"]["scheme"] == "codebook" and rows["b+c"]["bits"] == 2
    assert rows["a"]["scheme"] == "scaled" and not rows["bias"]["compressed"]
    for r in rows.values():
        assert r["total"] == sum(r["bytes"].values())
    assert info["totals"]["compressed"]["total"] == rows["a"]["total"] + rows["b+c"]["total"]
    assert info["totals"]["dense"]["numel"] == 3
    assert info["file_bytes"] > info["totals"]["compressed"]["total"] + rows["bias"]["total"]
    c, w = EXTRA["additive"](rng)
    rows = [r["name"] for r in S.inspect(S.theta_to_bytes(c.compress(w), c))["tensors"]]
    assert rows == ["a [1/2]", "b [1/2]", "a [2/2]", "b [2/2]"]


# ------------------------------------------------------------------ bad files


@pytest.fixture(scope="module")
def small_file():
    rng = np.random.default_rng(9)
    c = P.Chain(P.GlobalCardinality(keep=0.2),
                P.PerTensor(P.AdaptiveQuantization(4, sparse=True)))
    w = {"fc1.weight": rng.standard_normal((20, 30)), "fc2.weight": rng.standard_normal((5, 20))}
    return S.theta_to_bytes(c.compress(w), c, dense={"fc1.bias": rng.standard_normal(20)},
                          metadata={"model": "toy"})


@pytest.mark.parametrize("tenth", range(10))
def test_truncated_files_are_corrupt(small_file, tenth, tmp_path):
    cut = small_file[: len(small_file) * tenth // 10]
    with pytest.raises(CorruptFileError):
        S.read_model(cut)
    (tmp_path / "m.cpz").write_bytes(cut)
    with pytest.raises(CorruptFileError):
        S.load_theta(tmp_path / "m.cpz")


def test_one_byte_short_or_long_is_corrupt(small_file):
    for data in (small_file[:-1], small_file + b"\0"):
        with pytest.raises(CorruptFileError):
            S.read_model(data)


@pytest.mark.parametrize("xor", [0xFF, 0x01, 0x20])
def test_every_flipped_byte_is_detected(small_file, xor):
    for i in range(len(small_file)):
        bad = bytearray(small_file)
        bad[i] ^= xor
        with pytest.raises(CorruptFileError):
            S.read_model(bytes(bad))


def _resign(data: bytes, edit) -> bytes:
    """The file with its header edited by ``edit(header)`` and a valid checksum."""
    from safetensors.numpy import save

    text, _, payload = _container(data)
    header = json.loads(text)
    edit(header)
    new = json.dumps(header, separators=(",", ":"))
    digest = hashlib.sha256(new.encode() + bytes(payload)).hexdigest()
    return save({"payload": np.frombuffer(bytes(payload), np.uint8)},
                metadata={"compressopt": new, "sha256": digest})


def test_wrong_format_version(small_file):
    with pytest.raises(FormatVersionError, match="version 2"):
        S.read_model(_resign(small_file, lambda h: h.update(version=2)))
    with pytest.raises(CorruptFileError, match="not a compressopt model"):
        S.read_model(_resign(small_file, lambda h: h.update(format="other")))


def test_other_files_are_corrupt(tmp_path):
    from safetensors.numpy import save

    for data in (b"", b"hello world, not a model", save({"w": np.zeros(3)}),
                 save({"payload": np.zeros(3, np.uint8)}, metadata={"compressopt": "{}"})):
        with pytest.raises(CorruptFileError):
            S.read_model(data)


def test_file_of_another_model(small_file):
    header = S.read_model(small_file).header
    shapes = {"fc1.weight": (20, 30), "fc2.weight": (5, 20), "fc1.bias": (20,)}
    S.check_model(header, shapes)
    with pytest.raises(ModelMismatchError, match="another model"):
        S.check_model(header, {**shapes, "fc3.weight": (3, 3)})
    with pytest.raises(ModelMismatchError, match="shape"):
        S.check_model(header, {**shapes, "fc2.weight": (20, 5)})


def _paths(obj, path=()):
    """Every (path, leaf) of a JSON value."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*path, i))
    else:
        yield path, obj


@settings(max_examples=150)
@given(pick=st.integers(0, 10**6), value=st.one_of(
    st.integers(-3, 10**6), st.sampled_from(["raw", "mask", "ans", "bits:3", "gaps:2", "x"]),
    st.none(), st.floats(allow_nan=False), st.lists(st.integers(0, 4), max_size=3)))
def test_inconsistent_headers_raise_typed_errors(small_file, pick, value):
    """A header edited consistently with its checksum (a buggy or hostile writer) either
    reads or raises a FileFormatError: never another exception, never a crash."""
    text, _, _ = _container(small_file)
    leaves = [p for p, _ in _paths(json.loads(text)["theta"])]
    path = ("theta", *leaves[pick % len(leaves)])

    def edit(h):
        node = h
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    try:
        S.read_model(_resign(small_file, edit))
    except (FileFormatError, ResourceLimitError):  # a shape too large to decode is refused
        pass
