"""The API half of issue 14's bad-input catalogue (the command lines are tests/test_cli*).

Every case asserts the exact outcome: a typed error from :mod:`compressopt.errors` (or the
built-in it derives from) with a fragment of its message, or a correct result, checked
against the known answer or an exact verifier. Families:

* the issue's own API cases (extreme magnitudes, huge codebooks, bits = 31, misnamed ``w``);
* every projection of the magnitude work at powers of two from 2^-1000 to 2^1000 (float64)
  and 2^-100 to 2^100 (float32), on subnormals and near the largest float: the known answer
  scaled, or a verifier;
* empty tensors, huge K, memory limits (ResourceLimitError before allocating), bad types and
  values of every projection parameter of these modules;
* every solver with a bad ``w``, a mismatched compression, oracle or callback, and every
  numeric setting of LC, ADMM, JointADMM, SLR and APGDSSM given NaN, inf, a negative value, a
  bool and a string.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import torch

import compressopt.projections as P
from compressopt.errors import (
    NonFiniteError,
    ResourceLimitError,
    ShapeMismatchError,
    UnsupportedDTypeError,
)
from compressopt.projections import _util
from compressopt.projections.codebooks import uniform_memory
from compressopt.projections.quantization import kmeans1d_memory
from compressopt.solvers import (
    ADMM,
    APGDSSM,
    LC,
    SLR,
    JointADMM,
    LeastSquares,
    PenaltySchedule,
    SolveResult,
)
from compressopt.verify import (
    verify_binary,
    verify_kmeans,
    verify_l1_ball,
    verify_rank,
    verify_simplex,
    verify_ternary,
    verify_uniform,
)

NAN, INF = math.nan, math.inf

# ------------------------------------------------------------------------ the issue's cases


def test_issue_simplex_and_l1_ball_at_large_magnitudes():
    assert P.project_simplex(np.array([-1e16])).tolist() == [1.0]  # was [inf]
    assert P.project_simplex(np.array([1e16, 0.0])).tolist() == [1.0, 0.0]  # was [0, 0]
    assert P.project_l1_ball(np.array([1e17, 0.0]), 1).tolist() == [1.0, 0.0]  # was [0, 0]


def test_issue_quantizers_below_1e_154():
    x = np.array([1.0, 1.1, 5.0, 5.2]) * 1e-200
    for f in (P.kmeans1d_exact, P.kmeans1d_fast):  # exact: error 16.4 (x 1e-400) before
        q = f(x, 2)
        err = float(np.sum(((x - q.codebook[q.assignments]) * 1e200) ** 2))
        assert err == pytest.approx(0.025, rel=1e-9)
    t = P.project_ternary(x)  # the support of the 2 largest, scale their mean
    assert t.codes.tolist() == [0, 0, 1, 1] and float(t.scale) == pytest.approx(5.1e-200)
    u = P.project_uniform(x, bits=2)  # the scale was 0 below ~1e-154
    assert float(u.scale) > 0 and verify_uniform(x, bits=2).ok


def test_issue_binary_near_the_largest_float():
    t = P.project_binary(np.array([1.7e308, -1.6e308, 1.5e308]))
    assert float(t.scale) == pytest.approx(1.6e308) and math.isfinite(float(t.scale))
    assert t.codes.tolist() == [1, -1, 1]


@pytest.mark.parametrize("f", [P.kmeans1d_exact, P.kmeans1d_fast])
@pytest.mark.parametrize("sparse", [False, True])
def test_issue_kmeans_with_10_to_the_12_clusters(f, sparse):
    x = np.array([3.0, -1.0, 0.0, 2.0, 3.0])
    tracemalloc.start()
    q = f(x, 10**12, sparse=sparse)  # was MemoryError
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1e6
    np.testing.assert_array_equal(q.codebook[q.assignments], x)  # the values themselves
    assert q.codebook.shape == ((6,) if sparse else (5,))  # min(k, n) (+ the zero code)


def test_issue_uniform_grid_with_31_bits():
    x = np.random.default_rng(0).standard_normal(1000)
    tracemalloc.start()
    t = P.project_uniform(x, 31)  # was MemoryError (auto: the alternating method)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5e6
    z = t.codes * float(t.scale)
    assert np.abs(t.codes).max() <= 2**30 and np.max(np.abs(z - x)) <= float(t.scale)
    with pytest.raises(ResourceLimitError, match=r"TB of memory.*fewer bits"):
        P.project_uniform(x, 31, method="exact")  # 96·n·L = 103 TB: refused first


def test_issue_knapsack_float32_tiny_values():
    r = P.project_knapsack({"a": np.array([1e-20, 2e-20], dtype=np.float32)}, {"a": 1}, 1)
    assert r.masks["a"].tolist() == [False, True] and r.kept == {"a": 1}


@pytest.mark.parametrize("solver", [LC(maxiter=2), ADMM(maxiter=2), SLR(maxiter=2)],
                         ids=["LC", "ADMM", "SLR"])
@pytest.mark.parametrize(("w", "match"), [
    ({"v": np.zeros(8)}, "exactly the oracle's parameter 'w'"),  # was a bare KeyError
    ({}, "w is empty"),
])
def test_issue_misnamed_or_empty_w(solver, w, match):
    A = np.random.default_rng(0).standard_normal((12, 8))
    with pytest.raises(ShapeMismatchError, match=match):
        solver.run(w, LeastSquares(A, A @ np.ones(8)), P.Cardinality(k=3))


# ------------------------------------------------------------ every power-of-two magnitude

SCALES = ([(np.float64, e) for e in (-1000, -500, 0, 500, 1000)]
          + [(np.float32, e) for e in (-100, -60, 60, 100)])


def _scaled(f):
    def call(x, c):
        t = f(x, c)
        return t.codes.astype(np.float64) * float(t.scale)
    return call


def _q(f, *args, **kw):
    def call(x, c):
        q = f(x, *args, **kw)
        return q.codebook[q.assignments]
    return call


#: name -> (call(x, c) -> projected array, x at scale 1, the answer at scale 1)
KNOWN = {
    "simplex": (lambda x, c: P.project_simplex(x, c), [0.5, 1.5, -1.0], [0.0, 1.0, 0.0]),
    "simplex_far": (lambda x, c: P.project_simplex(x, c), [4.0, 0.0], [1.0, 0.0]),
    "l1_ball": (lambda x, c: P.project_l1_ball(x, 2 * c), [3.0, -1.0, 0.5], [2.0, 0.0, 0.0]),
    "l1_inside": (lambda x, c: P.project_l1_ball(x, 2 * c), [0.5, -0.5], [0.5, -0.5]),
    "box": (lambda x, c: P.project_box(x, -c, c), [-2.0, 0.5, 3.0], [-1.0, 0.5, 1.0]),
    "binary": (_scaled(lambda x, c: P.project_binary(x)), [1.0, -3.0, 2.0], [2.0, -2.0, 2.0]),
    "ternary": (_scaled(lambda x, c: P.project_ternary(x)), [0.1, -2.0, 1.8, 0.2],
                [0.0, -1.9, 1.9, 0.0]),
    "uniform": (_scaled(lambda x, c: P.project_uniform(x, bits=2)), [0.1, 1.0, 2.1, -2.9],
                [0.0, 11 / 9, 22 / 9, -22 / 9]),
    "uniform_alternating": (_scaled(lambda x, c: P.project_uniform(x, bits=2,
                                                                   method="alternating")),
                            [0.1, 1.0, 2.1, -2.9], [0.0, 11 / 9, 22 / 9, -22 / 9]),
    "kmeans_exact": (lambda x, c: _q(P.kmeans1d_exact, 2)(x, c), [0.0, 0.1, 0.9, 1.0, 5.0],
                     [0.5, 0.5, 0.5, 0.5, 5.0]),
    "kmeans_fast": (lambda x, c: _q(P.kmeans1d_fast, 2)(x, c), [0.0, 0.1, 0.9, 1.0, 5.0],
                    [0.5, 0.5, 0.5, 0.5, 5.0]),
    "kmeans_sparse": (lambda x, c: _q(P.kmeans1d_exact, 2, sparse=True)(x, c),
                      [0.0, 1.0, 1.2, 0.0, -4.0], [0.0, 1.1, 1.1, 0.0, -4.0]),
    "kmeans_zero_level": (lambda x, c: P.quantize_zero_level(x, P.kmeans1d_sweep(
        x, [1], zero_level=True).codebooks[0]).codebook[P.quantize_zero_level(
            x, P.kmeans1d_sweep(x, [1], zero_level=True).codebooks[0]).assignments],
                          [-0.1, 0.05, 2.0, 2.2], [0.0, 0.0, 2.1, 2.1]),
    "codebook": (lambda x, c: _q(P.project_codebook, [c * v for v in P.powers_of_two(-1, 0)])(
        x, c), [0.3, -0.8, 5.0], [0.5, -1.0, 1.0]),
    "rank": (lambda x, c: P.project_rank(x.reshape(2, 2), 1).reshape(-1), [3.0, 0.0, 0.0, 1.0],
             [3.0, 0.0, 0.0, 0.0]),
}


@pytest.mark.parametrize(("dtype", "e"), SCALES,
                         ids=[f"{np.dtype(d).name}-2^{e}" for d, e in SCALES])
@pytest.mark.parametrize("name", list(KNOWN))
def test_known_answer_at_every_scale(name, dtype, e):
    """P(2^e x) = 2^e P(x): the answer at scale 1, scaled (exact powers of two)."""
    call, x, want = KNOWN[name]
    c = 2.0**e
    z = np.asarray(call((np.asarray(x) * c).astype(dtype), c), dtype=np.float64)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(z / c, want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_select_ranks_at_extreme_scales(dtype):
    for e in ((-1000, 1000) if dtype == np.float64 else (-100, 100)):
        c = 2.0**e
        w = {"a": (np.diag([4.0, 1.0]) * c).astype(dtype), "b": (np.diag([3.0, 2.0]) * c)
             .astype(dtype)}
        r = P.select_ranks(w, budget_params=8)
        assert r.ranks == {"a": 1, "b": 1}
        np.testing.assert_allclose(r.decompress()["a"] / c, np.diag([4.0, 0.0]), rtol=1e-6)


SUBNORMAL = {np.float64: [3e-320, -1e-321, 2.5e-320, 7e-322],
             np.float32: [3e-42, -1e-43, 2.5e-42, 7e-44]}
NEAR_MAX = {np.float64: [1.7e308, -1.6e308, 1e308, 5e307],
            np.float32: [3.3e38, -3.2e38, 1e38, 5e37]}

#: name -> verifier call(x): the verifier runs the projection and the exact solver
VERIFIED = {
    "simplex": lambda x: verify_simplex(x, float(np.abs(x).max())),
    "l1_ball": lambda x: verify_l1_ball(x, float(np.abs(x).max())),
    "binary": verify_binary,
    "ternary": verify_ternary,
    "uniform": lambda x: verify_uniform(x, levels=2),
    "kmeans_exact": lambda x: verify_kmeans(x, 2),
    "kmeans_fast": lambda x: verify_kmeans(x, 2, method="fast"),
    # halved: the rank-1 projection of the unhalved matrix has an entry 1.83e308 > max
    "rank": lambda x: verify_rank(x.reshape(2, 2) / 2, 1),
}


@pytest.mark.parametrize("where", ["subnormal", "near_max"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(VERIFIED))
def test_verified_on_subnormals_and_near_the_largest_float(name, dtype, where):
    x = np.asarray((SUBNORMAL if where == "subnormal" else NEAR_MAX)[dtype], dtype=dtype)
    with np.errstate(all="raise"):  # no overflow, underflow to 0 aside
        try:
            report = VERIFIED[name](x)
        except FloatingPointError as err:  # only underflow is expected of subnormals
            assert "underflow" in str(err), err
            with np.errstate(under="ignore"):
                report = VERIFIED[name](x)
    assert report.feasible and report.gap >= -report.tol, report
    assert report.ok or report.kind == "heuristic", report


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_torch_tensors_at_extreme_magnitudes(backend):
    def arr(v, dtype):
        a = np.asarray(v, dtype=dtype)
        return torch.from_numpy(a) if backend == "torch" else a

    s = P.project_simplex(arr([1e16, 0.0], np.float64))
    assert np.asarray(s).tolist() == [1.0, 0.0]
    t = P.project_binary(arr([3.3e38, -3.3e38], np.float32))
    assert math.isfinite(float(t.scale))
    q = P.kmeans1d_fast(arr(np.array([1.0, 1.1, 5.0, 5.2]) * 1e-40, np.float32), 2)
    assert np.allclose(np.asarray(q.codebook, dtype=np.float64) * 1e40, [1.05, 5.1], rtol=1e-3)


# ------------------------------------------------------------------------ empty tensors

EMPTY = np.zeros(0)

#: name -> (call, expected): "empty" (a result with no entries) or (error, message fragment)
EMPTY_CASES = {
    "simplex": (lambda: P.project_simplex(EMPTY), (ValueError, "empty")),
    "l1_ball": (lambda: P.project_l1_ball(EMPTY, 1.0), "empty"),
    "box": (lambda: P.project_box(EMPTY, 0.0, 1.0), "empty"),
    "binary": (lambda: P.project_binary(EMPTY).codes, "empty"),
    "ternary": (lambda: P.project_ternary(EMPTY).codes, "empty"),
    "uniform": (lambda: P.project_uniform(EMPTY, bits=3).codes, "empty"),
    "kmeans_exact": (lambda: P.kmeans1d_exact(EMPTY, 4).assignments, "empty"),
    "kmeans_fast": (lambda: P.kmeans1d_fast(EMPTY, 4).assignments, "empty"),
    "kmeans_huge_k": (lambda: P.kmeans1d_exact(EMPTY, 10**12).assignments, "empty"),
    "codebook": (lambda: P.project_codebook(EMPTY, [0.0, 1.0]).assignments, "empty"),
    "rank": (lambda: P.project_rank(np.zeros((0, 3)), 0), "empty"),
    "sweep": (lambda: P.kmeans1d_sweep(EMPTY, [1, 4]).sse, "zeros"),
}


@pytest.mark.parametrize("name", list(EMPTY_CASES))
def test_empty_tensors(name):
    call, expect = EMPTY_CASES[name]
    if expect == "empty":
        assert np.asarray(call()).size == 0
    elif expect == "zeros":
        assert np.asarray(call()).tolist() == [0.0, 0.0]
    else:
        with pytest.raises(expect[0], match=expect[1]):
            call()


def test_empty_kmeans_codebook_has_one_entry():
    assert P.kmeans1d_exact(EMPTY, 10**12).codebook.shape == (1,)
    assert P.kmeans1d_fast(EMPTY, 10**12, sparse=True).codebook.shape == (2,)


# ------------------------------------------------------------------ memory: huge K, bits

X8 = np.linspace(-1.0, 1.0, 8)


def test_memory_estimates():
    assert kmeans1d_memory(60_000, 8192) == 16 * 8192 * 60_000 + 160 * 60_000
    assert kmeans1d_memory(60_000, 10**12) == 160 * 60_000  # k >= n: no DP
    assert kmeans1d_memory(60_000, 10**12, method="fast") < 1e7
    assert uniform_memory(1000, bits=31, method="exact") == 96 * 1000 * 2**30 + 64 * 1000
    assert uniform_memory(10**6, bits=31) == 64 * 10**6  # alternating, O(n)
    assert uniform_memory(1000, bits=4) == 96 * 1000 * 8 + 64 * 1000  # auto: exact sweep
    with pytest.raises(ValueError, match="method"):
        kmeans1d_memory(10, 2, method="magic")


def test_exact_kmeans_refuses_before_allocating(monkeypatch):
    monkeypatch.setattr(_util, "available_memory", lambda: 10**8)
    x = np.random.default_rng(0).standard_normal(20_000)
    with pytest.raises(ResourceLimitError, match=r"k = 10000 needs about 3.2 GB.*smaller k"):
        P.kmeans1d_exact(x, 10_000)  # 16·K·n = 3.2 GB
    with pytest.raises(MemoryError):  # a MemoryError for callers that catch the built-in
        P.AdaptiveQuantization(10_000).project(x)
    assert P.kmeans1d_exact(np.repeat(x[:50], 400), 10_000).codebook.shape == (10_000,)


def test_uniform_exact_sweep_refuses_before_allocating(monkeypatch):
    monkeypatch.setattr(_util, "available_memory", lambda: 10**6)
    with pytest.raises(ResourceLimitError, match="L = 1048576"):
        P.project_uniform(X8, levels=2**20, method="exact")
    assert P.project_uniform(X8, levels=2**20).codes.shape == (8,)  # alternating: fine


def test_fast_kmeans_with_many_clusters_stays_small():
    x = np.random.default_rng(1).standard_normal(50_000)
    tracemalloc.start()
    q = P.kmeans1d_fast(x, 20_000, iters=3)  # the binned DP would need 10 GB: skipped
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64e6 and q.codebook.shape == (20_000,)
    err = float(np.sum((x - q.codebook[q.assignments]) ** 2))
    assert err < 1e-3 * float(np.sum(x**2))


# ------------------------------------------------------- bad projection types and values

XF32 = np.ones(3, dtype=np.float32)

#: id -> (call, error, message fragment)
BAD_PROJECTION_ARGS = {
    "kmeans k bool": (lambda: P.kmeans1d_exact(X8, True), TypeError, "codebook size"),
    "kmeans k float": (lambda: P.kmeans1d_exact(X8, 2.5), TypeError, "codebook size"),
    "kmeans k str": (lambda: P.kmeans1d_fast(X8, "3"), TypeError, "codebook size"),
    "kmeans k 0": (lambda: P.kmeans1d_fast(X8, 0), ValueError, "codebook size"),
    "kmeans k -1": (lambda: P.kmeans1d_exact(X8, -1), ValueError, "codebook size"),
    "kmeans sparse str": (lambda: P.kmeans1d_exact(X8, 2, sparse="yes"), TypeError, "sparse"),
    "kmeans iters -1": (lambda: P.kmeans1d_fast(X8, 2, iters=-1), ValueError, "iters"),
    "kmeans iters float": (lambda: P.kmeans1d_fast(X8, 2, iters=1.5), TypeError, "iters"),
    "sweep ks 0": (lambda: P.kmeans1d_sweep(X8, [2, 0]), ValueError, "codebook size"),
    "sweep method": (lambda: P.kmeans1d_sweep(X8, [2], method="magic"), ValueError, "method"),
    "sweep zero_level int": (lambda: P.kmeans1d_sweep(X8, [2], zero_level=1), TypeError,
                             "zero_level"),
    "kmeans int input": (lambda: P.kmeans1d_exact(np.arange(4), 2), UnsupportedDTypeError,
                         "real floating"),
    "kmeans nan": (lambda: P.kmeans1d_fast(np.array([1.0, NAN]), 2), NonFiniteError, "NaN"),
    "AQ k bool": (lambda: P.AdaptiveQuantization(True), TypeError, "codebook size"),
    "AQ method": (lambda: P.AdaptiveQuantization(2, method="slow"), ValueError, "method"),
    "AQ sparse int": (lambda: P.AdaptiveQuantization(2, sparse=1), TypeError, "sparse"),
    "uniform bits 0": (lambda: P.project_uniform(X8, 0), ValueError, "bits"),
    "uniform bits 32": (lambda: P.project_uniform(X8, 32), ValueError, "bits"),
    "uniform bits float": (lambda: P.project_uniform(X8, 2.0), TypeError, "bits"),
    "uniform bits bool": (lambda: P.project_uniform(X8, True), TypeError, "bits"),
    "uniform levels 0": (lambda: P.project_uniform(X8, levels=0), ValueError, "levels"),
    "uniform both": (lambda: P.project_uniform(X8, 2, levels=2), ValueError, "exactly one"),
    "uniform neither": (lambda: P.project_uniform(X8), ValueError, "exactly one"),
    "uniform method": (lambda: P.project_uniform(X8, 2, method="x"), ValueError, "method"),
    "uniform iters": (lambda: P.project_uniform(X8, 2, iters=-1), ValueError, "iters"),
    "UQ bits 40": (lambda: P.UniformQuantization(bits=40), ValueError, "bits"),
    "binary list": (lambda: P.project_binary([1.0, 2.0]), TypeError, "supported array"),
    "binary int": (lambda: P.project_binary(np.arange(3)), UnsupportedDTypeError, "floating"),
    "ternary inf": (lambda: P.project_ternary(np.array([INF])), NonFiniteError, "NaN or Inf"),
    "simplex radius 0": (lambda: P.project_simplex(X8, 0), ValueError, "radius"),
    "simplex radius -1": (lambda: P.project_simplex(X8, -1.0), ValueError, "radius"),
    "simplex radius nan": (lambda: P.project_simplex(X8, NAN), NonFiniteError, "radius"),
    "simplex radius inf": (lambda: P.project_simplex(X8, INF), NonFiniteError, "radius"),
    "simplex radius str": (lambda: P.project_simplex(X8, "1"), TypeError, "radius"),
    "simplex radius bool": (lambda: P.project_simplex(X8, True), TypeError, "radius"),
    "simplex radius > f32": (lambda: P.project_simplex(XF32, 1e300), ValueError, "exceeds"),
    "l1 radius -1": (lambda: P.project_l1_ball(X8, -1.0), ValueError, "radius"),
    "l1 radius nan": (lambda: P.project_l1_ball(X8, NAN), NonFiniteError, "radius"),
    "l1 radius inf": (lambda: P.project_l1_ball(X8, INF), NonFiniteError, "radius"),
    "l1 radius str": (lambda: P.project_l1_ball(X8, "a"), TypeError, "radius"),
    "L1Ball nan": (lambda: P.L1Ball(NAN), NonFiniteError, "radius"),
    "Simplex 0": (lambda: P.Simplex(0.0), ValueError, "radius"),
    "box lower nan": (lambda: P.project_box(X8, NAN, 1.0), ValueError, "NaN"),
    "box lower str": (lambda: P.project_box(X8, "a", 1.0), TypeError, "lower"),
    "box upper bool": (lambda: P.project_box(X8, 0.0, True), TypeError, "upper"),
    "box empty": (lambda: P.project_box(X8, 2.0, 1.0), ValueError, "empty"),
    "box beyond f32": (lambda: P.project_box(XF32, 1e300, 2e300), ValueError, "no finite"),
    "box bound shape": (lambda: P.project_box(X8, np.zeros(3), 1.0), ShapeMismatchError,
                        "broadcast"),
    "Box nan": (lambda: P.Box(NAN, 1.0), ValueError, "NaN"),
    "Box str": (lambda: P.Box("a", 1.0), TypeError, "lower"),
    "Box empty": (lambda: P.Box(2.0, 1.0), ValueError, "empty"),
    "codebook empty": (lambda: P.project_codebook(X8, []), ValueError, "non-empty"),
    "codebook nan": (lambda: P.project_codebook(X8, [NAN]), NonFiniteError, "finite"),
    "codebook str": (lambda: P.project_codebook(X8, ["a"]), TypeError, "real numbers"),
    "codebook bool": (lambda: P.project_codebook(X8, [True]), TypeError, "real numbers"),
    "codebook > f32": (lambda: P.project_codebook(XF32, [1e300]), ValueError, "beyond"),
    "FixedCodebook str": (lambda: P.FixedCodebook(("a",)), TypeError, "real numbers"),
    "FixedCodebook inf": (lambda: P.FixedCodebook((INF,)), NonFiniteError, "finite"),
    "FixedCodebook empty": (lambda: P.FixedCodebook(()), ValueError, "at least one"),
    "powers_of_two order": (lambda: P.powers_of_two(5, 1), ValueError, "emax"),
    "powers_of_two float": (lambda: P.powers_of_two(1.5, 2), TypeError, "emin"),
    "rank -1": (lambda: P.project_rank(np.ones((3, 3)), -1), ValueError, "rank"),
    "rank float": (lambda: P.project_rank(np.ones((3, 3)), 1.5), TypeError, "rank"),
    "rank too big": (lambda: P.project_rank(np.ones((3, 2)), 3), ValueError, "rank"),
    "rank 1-D": (lambda: P.project_rank(X8, 1), ShapeMismatchError, "ndim"),
    "LowRank bool": (lambda: P.LowRank(True), TypeError, "rank"),
    "select_ranks empty": (lambda: P.select_ranks({}, 4), ShapeMismatchError, "empty"),
    "select_ranks nan": (lambda: P.select_ranks({"a": np.eye(2)}, NAN), NonFiniteError,
                         "budget"),
    "RankSelection -1": (lambda: P.RankSelection(-1.0), ValueError, "budget"),
    "joint empty": (lambda: P.project_sparse_quantized({}, 8), ShapeMismatchError, "empty"),
    "joint rounds 0": (lambda: P.project_sparse_quantized({"a": X8}, 8, rounds=0), ValueError,
                       "rounds"),
    "joint bits0 names": (lambda: P.project_sparse_quantized({"a": X8}, 8, bits0={"b": 1}),
                          ShapeMismatchError, "bits0"),
    "Additive iters 0": (lambda: P.Additive(P.Cardinality(1), P.Binary(), iters=0), ValueError,
                         "iters"),
}


@pytest.mark.parametrize("case", list(BAD_PROJECTION_ARGS))
def test_bad_projection_arguments(case):
    call, err, match = BAD_PROJECTION_ARGS[case]
    with pytest.raises(err, match=match):
        call()


# ------------------------------------------------------------------------------ solvers

_RNG = np.random.default_rng(5)
A = _RNG.standard_normal((12, 8))
ORACLE = LeastSquares(A, A @ np.linspace(-1.0, 1.0, 8))
W = {"w": np.linalg.lstsq(A, ORACLE.b, rcond=None)[0]}

SOLVERS = {
    "LC": (LC(maxiter=2), P.Cardinality(k=3)),
    "ADMM": (ADMM(maxiter=2), P.Cardinality(k=3)),
    "SLR": (SLR(maxiter=2), P.Cardinality(k=3)),
    "JointADMM": (JointADMM(maxiter=2), P.SparseQuantized(budget_bits=16, candidates=(1, 2))),
    "APGDSSM": (APGDSSM(maxiter=2), P.UniformQuantization(bits=2)),
}

#: id -> (w, error, fragment)
BAD_W = {
    "misnamed": ({"v": np.zeros(8)}, ShapeMismatchError, "exactly the oracle's parameter"),
    "empty": ({}, ShapeMismatchError, "w is empty"),
    "extra name": ({"w": np.zeros(8), "b": np.zeros(2)}, ShapeMismatchError, "exactly"),
    "wrong shape": ({"w": np.zeros(7)}, ShapeMismatchError, r"shape \(8,\)"),
    "matrix": ({"w": np.zeros((8, 1))}, ShapeMismatchError, "shape"),
    "int dtype": ({"w": np.arange(8)}, UnsupportedDTypeError, "real floating"),
    "float32 vs float64": ({"w": np.zeros(8, np.float32)}, UnsupportedDTypeError, "dtype"),
    "nan in w0": ({"w": np.full(8, NAN)}, NonFiniteError, "NaN or Inf"),
    "inf in w0": ({"w": np.full(8, INF)}, NonFiniteError, "NaN or Inf"),
    "list leaf": ({"w": [0.0] * 8}, TypeError, "must be an array"),
    "not a mapping": (np.zeros(8), TypeError, "mapping"),
    "None": (None, TypeError, "mapping"),
    "non-str name": ({1: np.zeros(8)}, TypeError, "names must be str"),
}


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("bad", list(BAD_W))
def test_solvers_refuse_bad_w(solver, bad):
    s, comp = SOLVERS[solver]
    w, err, match = BAD_W[bad]
    with pytest.raises(err, match=match):
        s.run(w, ORACLE, comp)


#: id -> (kwargs of run besides w, error, fragment)
BAD_RUN = {
    "tasks name mismatch": ({"compression": P.Tasks({"v": P.Cardinality(k=1)})},
                            ShapeMismatchError, "tasks cover"),
    "not a compression": ({"compression": "prune"}, TypeError, "Compression"),
    "callback not callable": ({"callback": 5}, TypeError, "callback"),
    "resume not a result": ({"resume": {"k": 0}}, TypeError, "resume"),
    "oracle None": ({"oracle": None}, TypeError, "loss oracle"),
    "oracle str": ({"oracle": "mse"}, TypeError, "loss oracle"),
}


@pytest.mark.parametrize("solver", ["LC", "ADMM", "SLR"])
@pytest.mark.parametrize("bad", list(BAD_RUN))
def test_solvers_refuse_bad_run_arguments(solver, bad):
    s, comp = SOLVERS[solver]
    kw, err, match = BAD_RUN[bad]
    args = {"oracle": ORACLE, "compression": comp, **kw}
    with pytest.raises(err, match=match):
        s.run(W, args.pop("oracle"), args.pop("compression"), **args)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_solvers_run_on_good_input(solver):
    """The checks refuse nothing valid: each solver runs and returns a feasible point."""
    s, comp = SOLVERS[solver]
    res = s.run(W, ORACLE, comp)
    assert isinstance(res, SolveResult) and res.nit == 2
    assert all(np.all(np.isfinite(v)) for v in res.x.values())


# every numeric setting of every solver: NaN, inf, a negative value, a bool, a string
SETTINGS = {
    LC: ["mu0", "mu_growth", "maxiter", "tol"],
    ADMM: ["rho", "rho_growth", "rho_max", "maxiter", "eps_abs", "eps_rel"],
    JointADMM: ["rho", "rho_growth", "maxiter", "init_bits", "tol"],
    SLR: ["rho", "s0", "M", "r", "maxiter", "tol"],
    APGDSSM: ["lr", "lambda1", "lambda2", "lambda3", "a", "beta", "group_axis",
              "iters_per_step", "maxiter"],
}
INT_SETTINGS = {"maxiter", "init_bits", "group_axis", "iters_per_step"}
#: settings for which a negative value is valid (APGDSSM's axis counts from the end)
NEGATIVE_OK = {"group_axis"}
#: settings for which inf is valid (a cap that may be absent)
INF_OK = {"rho_max"}


def _expect(field, kind):
    """The outcome of setting `field` to a value of `kind`: None (accepted), or (error,
    fragment); every message names the field."""
    is_int = field in INT_SETTINGS
    if kind in ("bool", "str"):
        return TypeError, field
    if kind == "nan":
        return (TypeError if is_int else NonFiniteError), field
    if kind == "inf":
        if field in INF_OK:
            return None
        return (TypeError if is_int else NonFiniteError), field
    return None if field in NEGATIVE_OK else (ValueError, field)  # negative


BAD_VALUES = {"nan": NAN, "inf": INF, "negative": -2, "bool": True, "str": "1"}
SETTING_CASES = [(cls, f, k) for cls, fields in SETTINGS.items() for f in fields
                 for k in BAD_VALUES]


@pytest.mark.parametrize(("cls", "field", "kind"), SETTING_CASES,
                         ids=[f"{c.__name__}.{f}={k}" for c, f, k in SETTING_CASES])
def test_solver_settings(cls, field, kind):
    value = BAD_VALUES[kind]
    if field == "rho_max" and kind == "negative":
        kw = {"rho": 1.0}  # rho_max must be >= rho
    else:
        kw = {}
    expect = _expect(field, kind)
    if expect is None:
        s = cls(**kw, **{field: value})
        assert getattr(s, field) == value
        return
    err, match = expect
    with pytest.raises(err, match=match):
        cls(**kw, **{field: value})


@pytest.mark.parametrize(("kwargs", "err", "match"), [
    ({"mus": [1.0, NAN]}, NonFiniteError, r"mus\[1\]"),
    ({"mus": [1.0, INF]}, NonFiniteError, r"mus\[1\]"),
    ({"mus": ["a"]}, TypeError, r"mus\[0\]"),
    ({"mus": 3.0}, TypeError, "mus"),
    ({"mus": []}, ValueError, "mus"),
    ({"eval_loss": "yes"}, TypeError, "eval_loss"),
    ({"penalty": "l2"}, ValueError, "penalty"),
    ({"maxiter": 2.0}, TypeError, "maxiter"),
])
def test_lc_sequence_flag_and_choice_settings(kwargs, err, match):
    with pytest.raises(err, match=match):
        LC(**kwargs)


@pytest.mark.parametrize(("cls", "kwargs", "err", "match"), [
    (ADMM, {"residual_balancing": 1}, TypeError, "residual_balancing"),
    (JointADMM, {"v_support": "z"}, ValueError, "v_support"),
    (JointADMM, {"init_bits": 17}, ValueError, "init_bits"),
    (JointADMM, {"eval_loss": None}, TypeError, "eval_loss"),
    (SLR, {"evaluate": 3}, TypeError, "evaluate"),
    (SLR, {"r": 1.0}, ValueError, "r must be"),
    (APGDSSM, {"lr": "fast"}, TypeError, "lr"),
    (APGDSSM, {"scale_with_lr": "no"}, TypeError, "scale_with_lr"),
])
def test_other_solver_settings(cls, kwargs, err, match):
    with pytest.raises(err, match=match):
        cls(**kwargs)


def test_valid_edge_settings_are_accepted():
    assert ADMM(rho_max=INF).rho_max == INF
    assert APGDSSM(lr=lambda t: 0.1, group_axis=-1).group_axis == -1
    assert LC(mus=(1e-3, 1e-2), maxiter=np.int64(3)).niter == 2
    assert JointADMM(tol=None, init_bits=None).tol is None


@pytest.mark.parametrize("bad", [NAN, INF, -1.0])
def test_penalty_schedule_factors(bad):
    with pytest.raises(ValueError, match="lambda1 needs 1 finite nonnegative"):
        PenaltySchedule(milestones=(2,), lambda1=(bad,))


class _NoGrad:
    """A loss oracle without grad (value and lstep only)."""

    def value(self, w):
        return 0.0

    def lstep(self, w, center, mu, *, step=0):
        return dict(w)


def test_apgdssm_refuses_an_oracle_without_grad():
    with pytest.raises(TypeError, match="grad"):
        APGDSSM(maxiter=1).run(W, _NoGrad(), P.UniformQuantization(bits=2))


def test_joint_admm_accepts_numpy_int_bits():
    assert JointADMM(init_bits=np.int64(2)).init_bits == 2
