"""The per-projection verifiers: their reports, and that they catch wrong results."""

import numpy as np
import pytest
import torch

import compressopt.projections as P
from compressopt.verify import (
    Report,
    tol_for,
    verify_allocate_bits,
    verify_kmeans,
    verify_knapsack,
    verify_l1_ball,
    verify_mckp,
    verify_rank,
    verify_select_ranks,
    verify_sparse_quantized,
    verify_uniform,
)
from compressopt.verify.report import make_report


def test_make_report_semantics():
    r = make_report("x", "exact", 1.0, 1.0 - 1e-12, True, "brute force", np.float64)
    assert r.ok and r.bound == 0.0 and r.gap == pytest.approx(1e-12)
    assert not make_report("x", "exact", 1.1, 1.0, True, "brute force", np.float64).ok
    assert not make_report("x", "exact", 1.0, 1.0, False, "brute force", np.float64).ok
    g = make_report("x", "greedy", 1.5, 1.0, True, "ortools", "float64", bound=0.6)
    assert g.ok and g.rel_gap == pytest.approx(0.5)
    assert not make_report("x", "greedy", 1.7, 1.0, True, "ortools", "float64", bound=0.6).ok
    assert make_report("x", "heuristic", 9.0, 1.0, True, "kmeans1d", "float32").ok
    assert tol_for(torch.float32, "cvxpy").rtol == 2e-5 and tol_for("float64", "cvxpy").rtol == 1e-6


def test_verifiers_catch_a_wrong_projection(monkeypatch):
    x = np.array([3.0, -1.0, 0.5])
    assert verify_l1_ball(x, 2.0).ok
    monkeypatch.setattr(P, "project_l1_ball", lambda x, r: np.asarray(x) * (r / 4.5))  # feasible
    bad = verify_l1_ball(x, 2.0)
    assert bad.feasible and not bad.ok and bad.gap * 16 > 0.1  # in the frame x·2^-2
    monkeypatch.setattr(P, "project_l1_ball", lambda x, r: np.asarray(x))  # infeasible
    assert not verify_l1_ball(x, 2.0).feasible


def test_knapsack_verifier_checks_the_bound(monkeypatch):
    rng = np.random.default_rng(0)
    w = {"a": rng.standard_normal(40), "b": rng.standard_normal(30)}
    bits = {"a": 3, "b": 7}
    r = verify_knapsack(w, bits, 150)
    assert r.ok and r.method.startswith("ortools") and r.gap <= r.bound
    assert r.details["optimum"] <= r.details["lp_bound"] + 1e-9
    real = P.project_knapsack

    def worse(w, bits, budget):  # a feasible but poor answer with a false certificate
        res = real(w, bits, budget / 2)
        return res._replace(break_profit=res.break_profit * 0)

    monkeypatch.setattr(P, "project_knapsack", worse)
    assert not verify_knapsack(w, bits, 150).ok


def test_mckp_and_allocation_verifiers():
    r = verify_mckp([[0.0, 5.0, 6.0], [0.0, 4.0]], [[0, 2, 4], [0, 2]], 3)
    assert r.ok and r.details["lp_cvxpy"] == pytest.approx(7.0, abs=1e-6)
    rng = np.random.default_rng(1)
    w = {"a": np.where(rng.random(200) < 0.3, rng.standard_normal(200), 0.0),
         "b": rng.standard_normal(50)}
    for method in ("fast", "exact"):
        rep = verify_allocate_bits(w, 2.5 * 110, range(1, 5), method=method)
        assert rep.ok, rep
        if method == "exact" and rep.details["integral"]:
            assert rep.gap == pytest.approx(0.0, abs=1e-9)


def test_quantization_and_rank_verifiers():
    x = np.random.default_rng(2).standard_normal(300)
    fast = verify_kmeans(x, 16, method="fast")
    assert fast.method == "kmeans1d" and fast.feasible and 0 <= fast.rel_gap <= 0.01
    assert verify_kmeans(x[:9], 3).method == "brute force"
    assert verify_uniform(x[:5], levels=2).method == "brute force"
    big = verify_uniform(x, bits=4, method="alternating")
    assert big.feasible and big.rel_gap <= 1e-6
    m = np.random.default_rng(3).standard_normal((6, 9)).astype(np.float32)
    assert verify_rank(m, 3).ok and verify_rank(torch.from_numpy(m), 3).ok
    assert verify_select_ranks({"m": m, "n": m[:3].T.copy()}, 40).ok


def test_joint_verifier_reports_the_heuristic_gap():
    w = {"a": np.array([4.0, 4.1, 0.1, -3.0]), "b": np.array([1.0, -1.0, 0.05])}
    rep = verify_sparse_quantized(w, 8, (1, 2))
    assert isinstance(rep, Report) and rep.kind == "heuristic" and rep.feasible
    assert rep.gap == pytest.approx(0.0, abs=1e-12)  # this instance is solved exactly


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1.0])
def test_knapsack_and_channels_are_verified_at_extreme_magnitudes(scale):
    # issue 14: the knapsack's profits overflowed (NonFiniteError / inf objective) and the
    # channels' squared norms overflowed (a gap of 0.75) beyond 1e154
    from compressopt.verify import verify_channels, verify_knapsack

    r = verify_knapsack({"a": np.array([1.0, 2.0, 3.0]) * scale}, {"a": 2}, 4)
    assert r.ok and r.gap == 0.0 and r.details["objective"] == r.details["optimum"], r
    c = verify_channels(np.array([[1.0, 1.0], [3.0, 0.0], [0.5, 0.5]]) * scale, 1)
    assert c.ok and c.gap == 0.0, c
    c = verify_channels(np.array([[1e200, 1e200], [3e200, 0.0], [2e-300, 1.0]]), 1)
    assert c.ok and c.gap == 0.0, c


def test_allocate_bits_codes_frame_zeros_as_zeros():
    # a nonzero below max|x|·2^-1075 is 0 in the k-means' frame: it must get the zeros'
    # code, not a learned level 1e223 away
    from compressopt.projections import allocate_bits
    from compressopt.verify import verify_allocate_bits

    w = {"t0": np.array([6.54337449e223, 2.98447253e-112, 2.98447253e-112])}
    assert verify_allocate_bits(w, 5.0, (1, 2, 3)).ok
    assert allocate_bits(w, 5.0, (1, 2, 3)).decompress()["t0"].tolist() == [6.54337449e223,
                                                                            0.0, 0.0]
