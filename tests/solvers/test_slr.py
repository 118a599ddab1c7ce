import math

import numpy as np
import pytest

from compressopt.projections import Cardinality, GlobalCardinality
from compressopt.solvers import SLR, RetrainOracle, SLRRecord, Status, slr_alpha
from tests.solvers.problems import sparse_ls


def test_alpha_formula():
    # α_k = 1 - 1/(M k^(1 - 1/k^r)); k = 1 gives 1 - 1/M
    assert slr_alpha(1, 300, 0.1) == pytest.approx(1 - 1 / 300)
    k, M, r = 7, 300.0, 0.1
    assert slr_alpha(k, M, r) == pytest.approx(1 - 1 / (M * k ** (1 - 1 / k**r)))
    a = [slr_alpha(k, 300, 0.1) for k in range(1, 50)]
    assert all(0 < x < 1 for x in a) and a == sorted(a)  # increasing towards 1


def test_hard_pruned_and_retrained_slr_finds_best_subset():
    hits = 0
    for seed in range(30):
        inst = sparse_ls(seed)
        res = SLR(rho=10.0, maxiter=200).run(inst.w0, inst.oracle, Cardinality(k=3))
        assert np.count_nonzero(res.x["w"]) <= 3  # the hard-pruned point is feasible
        retrained = SLR().retrain(res.x, inst.oracle)
        assert np.all(retrained["w"][res.x["w"] == 0] == 0)  # support kept
        assert inst.oracle.value(retrained) <= inst.oracle.value(res.x) + 1e-12
        hits += inst.oracle.value(retrained) <= inst.optimum * (1 + 1e-6)
    assert hits >= 25, f"SLR found the best support on {hits}/30 seeds"


def test_first_iteration_follows_equations_7_8_12_13():
    inst = sparse_ls(3)
    slr = SLR(rho=2.0, s0=0.5, M=10.0, r=0.5, maxiter=1)
    C = Cardinality(k=3)
    s0 = slr.init(inst.w0, C, inst.oracle)
    s1, rec = slr.step(s0, inst.oracle, C)
    # recompute by hand
    W0, Z0 = inst.w0["w"], s0.theta["w"].values
    W1 = inst.oracle.lstep({"w": W0}, {"w": Z0}, 2.0)["w"]  # Λ^0 = 0: centre Z^0
    assert np.allclose(s1.w["w"], W1)
    assert rec.condition1 == 1 and rec.condition2 == 1
    a1, a2 = slr_alpha(1, 10, 0.5), slr_alpha(2, 10, 0.5)
    sp = a1 * 0.5 * np.linalg.norm(W0 - Z0) / np.linalg.norm(W1 - Z0)
    lam = sp * (W1 - Z0)
    Z1 = np.asarray(C.project(W1 + lam / 2.0))
    s = a2 * sp * np.linalg.norm(W1 - Z0) / np.linalg.norm(W1 - Z1)
    lam = lam + s * (W1 - Z1)
    assert rec.s_prime == pytest.approx(sp) and rec.s == pytest.approx(s)
    assert rec.alpha == pytest.approx(a2) and s1.m == 2
    assert np.allclose(s1.theta["w"].values, Z1) and np.allclose(s1.lam["w"], lam)
    assert rec.w_minus_z == pytest.approx(np.linalg.norm(W1 - Z1))


def test_failed_condition_skips_the_multiplier_update():
    inst = sparse_ls(4)

    class Worse:  # an L step that increases the Lagrangian: condition (6) must fail
        def value(self, w):
            return inst.oracle.value(w)

        def lstep(self, w, center, mu, *, step=0):
            return {"w": w["w"] + 5.0}

    slr = SLR(maxiter=1)
    s0 = slr.init(inst.w0, Cardinality(k=3), inst.oracle)
    s1, rec = slr.step(s0, Worse(), Cardinality(k=3))
    assert rec.condition1 == 0 and rec.s_prime == slr.s0
    # (11) still holds (exact projection), so exactly one update happened, with α_1
    assert rec.condition2 == 1 and s1.m == 1 and rec.alpha == pytest.approx(slr_alpha(1, 300, 0.1))
    z1 = s1.theta["w"].values
    assert np.allclose(s1.lam["w"], rec.s * (s1.w["w"] - z1))


def test_history_evaluator_and_global_budget():
    inst1, inst2 = sparse_ls(5), sparse_ls(6)

    class Two:
        def value(self, w):
            return inst1.oracle.value({"w": w["a"]}) + inst2.oracle.value({"w": w["b"]})

        def lstep(self, w, center, mu, *, step=0):
            a = inst1.oracle.lstep({"w": w["a"]}, {"w": center["a"]}, mu)["w"]
            return {"a": a, "b": inst2.oracle.lstep({"w": w["b"]}, {"w": center["b"]}, mu)["w"]}

    calls = []

    def evaluate(x):
        calls.append(sum(np.count_nonzero(v) for v in x.values()))
        return -Two().value(x)

    res = SLR(rho=10.0, maxiter=20, evaluate=evaluate).run(
        {"a": inst1.w0["w"], "b": inst2.w0["w"]}, Two(), GlobalCardinality(k=6)
    )
    assert res.status == Status.MAXITER and len(res.history) == 20
    assert isinstance(res.history[0], SLRRecord)
    assert calls == [6] * 20
    assert res.history[-1].hard_prune_metric == pytest.approx(-Two().value(res.x))
    assert set(res.column("condition1")) <= {0, 1} and res.column("nnz") == [6] * 20
    ws = res.column("w_minus_z")
    assert ws[-1] < ws[0]


def test_retrain_protocol_and_errors():
    inst = sparse_ls(0)
    assert isinstance(inst.oracle, RetrainOracle)
    for kw, match in [
        ({"rho": 0}, "rho"),
        ({"s0": 0}, "s0"),
        ({"M": 1}, "M"),
        ({"r": 1}, "r"),
        ({"maxiter": 0}, "maxiter"),
        ({"tol": -1}, "tol"),
    ]:
        with pytest.raises(ValueError, match=match):
            SLR(**kw)
    res = SLR(maxiter=3).run(inst.w0, inst.oracle, Cardinality(k=3))
    assert math.isnan(res.history[0].hard_prune_metric)
