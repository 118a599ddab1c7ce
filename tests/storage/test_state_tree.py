"""The state codec: every coordinator's state, history and result round-trips exactly."""

from __future__ import annotations

import dataclasses
import enum
import math
import struct
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compressopt import projections as P
from compressopt.errors import CorruptFileError, FormatVersionError
from compressopt.solvers import ADMM, APGDSSM, LC, SLR, JointADMM, LeastSquares, Status
from compressopt.storage import tree as T
from tests.solvers.problems import codebook_ls, sparse_ls


def same(a, b, path="x"):
    """Equal with the same types all the way down; arrays and floats bit for bit."""
    assert type(a) is type(b), f"{path}: {type(a)} vs {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert a.tobytes() == b.tobytes(), path
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{path}: {a} vs {b}"
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), path
    elif isinstance(a, tuple | list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert len(a) == len(b), path
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
            same(ka, kb, f"{path}.key")
            same(va, vb, f"{path}[{ka!r}]")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    else:
        assert a == b, path


def round_trip(obj):
    tensors, skel = T.encode_tree(obj, prefix="s.")
    import json

    skel = json.loads(json.dumps(skel, allow_nan=False))  # really JSON
    back = T.decode_tree(tensors, skel)
    same(obj, back)
    obj2, meta = T.tree_from_bytes(T.tree_to_bytes(obj, {"note": "x"}))
    same(obj, obj2)
    assert meta == {"note": "x"}
    return back


class Split:
    """Least squares over several named tensors (flattened and concatenated)."""

    def __init__(self, seed: int, shapes: dict[str, tuple[int, ...]]):
        n = sum(math.prod(s) for s in shapes.values())
        rng = np.random.default_rng(seed)
        self.ls = LeastSquares(rng.standard_normal((3 * n, n)), rng.standard_normal(3 * n))
        self.shapes = shapes
        self.w0 = self.split(np.linalg.lstsq(self.ls.A, self.ls.b, rcond=None)[0])

    def flat(self, w):
        return {"w": np.concatenate([w[k].reshape(-1) for k in self.shapes])}

    def split(self, v):
        out, i = {}, 0
        for k, s in self.shapes.items():
            out[k] = v[i:i + math.prod(s)].reshape(s)
            i += math.prod(s)
        return out

    def value(self, w):
        return self.ls.value(self.flat(w))

    def grad(self, w):
        return self.split(self.ls.grad(self.flat(w))["w"])

    def lstep(self, w, center, mu, *, step=0):
        return self.split(self.ls.lstep(self.flat(w), self.flat(center), mu)["w"])

    def retrain(self, w, mask, *, steps=None):
        return self.split(self.ls.retrain(self.flat(w), self.flat(mask))["w"])


SHAPES = {"a": (2, 3), "b": (4,), "c": (3, 2)}


def _runs():
    """(id, solver, problem (w0, oracle), compression): two iterations of each coordinator
    over the Θ kinds of the projections."""
    sp, cb, split = sparse_ls(1), codebook_ls(2), Split(3, SHAPES)
    one = (sp.w0, sp.oracle)
    many = (split.w0, split)
    lc = LC(mu0=1e-2, maxiter=2, eval_loss=True)
    return [
        ("lc_l0", lc, one, P.Cardinality(k=3)),
        ("lc_kmeans", lc, (cb.w0, cb.oracle), P.AdaptiveQuantization(2)),
        ("lc_additive", lc, one, P.Additive(P.Cardinality(k=2), P.AdaptiveQuantization(2))),
        ("lc_tasks_group", lc, many,
         P.Tasks({"a": P.Ternary(), ("b", "c"): P.AdaptiveQuantization(2)})),
        ("lc_low_rank", lc, many, P.Tasks({"a": P.LowRank(1), "b": P.Binary(),
                                            "c": P.PowersOfTwo(-3, 0)})),
        ("lc_penalty", LC(mu0=1e-2, maxiter=2, penalty="qp"), one, P.L1Penalty(0.5)),
        ("lc_chain", lc, many, P.Chain(P.GlobalCardinality(keep=0.5),
                                       P.PerTensor(P.AdaptiveQuantization(2, sparse=True)))),
        ("admm", ADMM(rho=1e-1, maxiter=2), many, P.GlobalCardinality(k=5)),
        ("admm_uniform", ADMM(rho=1e-1, maxiter=2), one, P.UniformQuantization(bits=2)),
        ("joint_admm", JointADMM(rho=1.0, maxiter=2, init_bits=1), many,
         P.SparseQuantized(budget_bits=12.0, candidates=(1, 2))),
        ("slr", SLR(rho=1.0, maxiter=2), one, P.Cardinality(k=3)),
        ("apgdssm", APGDSSM(lr=1e-2, lambda1=0.1, lambda2=0.1, maxiter=2), many,
         P.PerTensor(P.UniformQuantization(bits=2))),
    ]


@pytest.mark.parametrize("case", _runs(), ids=lambda c: c[0])
def test_states_histories_and_results_round_trip(case):
    _, solver, (w0, oracle), c = case
    states = []
    res = solver.run(w0, oracle, c, callback=lambda s, r: states.append((s, r)))
    assert len(states) == 2
    for s, r in states:
        round_trip(s)
        round_trip(r)
    back = round_trip(res)
    assert back.status is res.status
    round_trip(P.as_compression(c))  # the compression itself


def test_resuming_from_a_decoded_result_continues_exactly():
    inst = sparse_ls(5)
    solver = LC(mu0=1e-2, mu_growth=1.3, maxiter=4)
    full = solver.run(inst.w0, inst.oracle, P.Cardinality(k=3))
    part = LC(mu0=1e-2, mu_growth=1.3, maxiter=2).run(inst.w0, inst.oracle, P.Cardinality(k=3))
    resumed = solver.run(inst.w0, inst.oracle, P.Cardinality(k=3),
                         resume=T.tree_from_bytes(T.tree_to_bytes(part))[0])
    same(resumed.state, full.state)
    for a, b in zip(resumed.history, full.history, strict=True):  # wall times differ
        same({k: v for k, v in a._asdict().items() if not k.startswith("time_")},
             {k: v for k, v in b._asdict().items() if not k.startswith("time_")})


class Color(enum.Enum):
    RED = 1


class Local(NamedTuple):
    x: int


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=5),
    st.floats(allow_nan=True, allow_infinity=True), st.binary(max_size=5),
    st.builds(lambda v, d: np.asarray(v, dtype=np.float64).astype(d),
              st.lists(st.floats(-100, 100, width=16), max_size=4),
              st.sampled_from(["float16", "float32", "float64", "int8", "bool"])),
    st.builds(np.float32, st.floats(width=32, allow_nan=False)),
    st.sampled_from([Status.CONVERGED, Status.NONFINITE, np.int64(-3), range(1, 9, 2)]),
)
trees = st.recursive(leaves, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.tuples(kids, kids),
    st.dictionaries(st.one_of(st.text(max_size=3), st.tuples(st.text(max_size=2))), kids,
                    max_size=3),
    st.builds(P.Pruned, kids), st.frozensets(st.integers(), max_size=3)), max_leaves=12)


@given(trees)
def test_arbitrary_nested_values_round_trip(obj):
    round_trip(obj)


def test_special_floats_and_arrays_are_bit_exact():
    nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_0000_0ABC))[0]
    obj = {"x": [-0.0, nan, math.inf, -math.inf, 5e-324],
           "a": np.array([np.nan, -0.0, 1.0], np.float32)[::2],  # non-contiguous
           "empty": np.zeros((0, 3)), "scalar": np.array(2.5)}
    back = round_trip(obj)
    assert back["a"].flags["C_CONTIGUOUS"]


def test_refuses_what_it_cannot_store():
    with pytest.raises(TypeError, match="cannot store"):
        T.encode_tree({"f": len})
    with pytest.raises(TypeError, match="allow-list"):
        T.encode_tree(Local(1))
    with pytest.raises(TypeError, match="allow-list"):
        T.encode_tree(Color.RED)
    with pytest.raises(TypeError, match="dtype"):
        T.encode_tree(np.zeros(2, np.complex64))
    loop: list = []
    loop.append(loop)
    with pytest.raises(TypeError, match="deeper"):
        T.encode_tree(loop)


def test_register_type_extends_the_allow_list():
    @dataclasses.dataclass(frozen=True)
    class Settings:
        lr: float
        steps: tuple

    T.register_type(Settings)
    T.register_type(Local)
    round_trip([Settings(0.1, (1, 2)), Local(3)])
    with pytest.raises(TypeError, match="not a NamedTuple"):
        T.register_type(int)


@pytest.mark.parametrize("skeleton", [
    {"t": "namedtuple", "c": "os.system", "v": []},
    {"t": "dataclass", "c": "subprocess.Popen", "v": {}},
    {"t": "pickle", "v": 1},
    {"t": "ndarray", "r": "missing"},
    {"t": "enum", "c": "compressopt.solvers.base.Status", "v": "NOPE"},
    {"t": "namedtuple", "c": "compressopt.projections.cardinality.Pruned", "v": [1, 2]},
    {"t": "dataclass", "c": "compressopt.projections.cardinality.Cardinality",
     "v": {"k": -1, "keep": None}},
    {"t": "dict", "k": [[1]], "v": [2]},
    {"t": "hook", "h": "jax", "r": "0", "m": {}},
    {"no": "kind"},
])
def test_malformed_skeletons_are_corrupt(skeleton):
    with pytest.raises(CorruptFileError):
        T.decode_tree({"0": np.zeros(1)}, skeleton)


def test_tree_files(tmp_path):
    path = tmp_path / "state.safetensors"
    obj = {"theta": {"w": P.Pruned(np.arange(3.0))}, "k": 2}
    n = T.save_tree(path, obj, {"config_hash": "abc"})
    assert n == path.stat().st_size
    back, meta = T.load_tree(path)
    same(back, obj)
    assert meta == {"config_hash": "abc"}
    data = path.read_bytes()
    with pytest.raises(CorruptFileError):
        T.tree_from_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError):
        T.tree_from_bytes(b"\x00" * 3)
    for i in range(0, len(data), 7):  # any flipped byte
        bad = bytearray(data)
        bad[i] ^= 0x41
        with pytest.raises(CorruptFileError):
            T.tree_from_bytes(bytes(bad))
    import hashlib

    from compressopt.storage.container import write_safetensors

    text = '{"format": "compressopt.tree", "version": 9}'
    wrong = write_safetensors({}, {"compressopt": text,
                                   "sha256": hashlib.sha256(text.encode()).hexdigest()})
    with pytest.raises(FormatVersionError):
        T.tree_from_bytes(wrong)


def test_allow_list_holds_the_states_and_thetas():
    names = set(T.allowed_types())
    for cls in ("solvers.lc.LCState", "solvers.admm.ADMMState", "solvers.slr.SLRRecord",
                "solvers.joint_admm.JointADMMState", "solvers.apgdssm.APGDSSMState",
                "solvers.base.SolveResult", "solvers.base.Status", "projections.base.Grouped",
                "projections.quantization.Quantized", "projections.additive.AdditiveTheta",
                "projections.lowrank.LowRankTheta", "projections.codebooks.ScaledCodes"):
        assert f"compressopt.{cls}" in names
