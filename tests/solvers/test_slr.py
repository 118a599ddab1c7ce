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


@pytest.mark.parametrize(("rule", "index"), [("paper", "iteration"), ("bragin", "update")])
def test_first_iteration_follows_equations_7_8_12_13(rule, index):
    inst = sparse_ls(3)
    slr = SLR(rho=2.0, s0=0.5, M=10.0, r=0.5, maxiter=1, step_rule=rule, alpha_index=index)
    C = Cardinality(k=3)
    s0 = slr.init(inst.w0, C, inst.oracle)
    s1, rec = slr.step(s0, inst.oracle, C)
    # recompute by hand
    W0, Z0 = inst.w0["w"], s0.theta["w"].values
    W1 = inst.oracle.lstep({"w": W0}, {"w": Z0}, 2.0)["w"]  # Λ^0 = 0: centre Z^0
    assert np.allclose(s1.w["w"], W1)
    assert rec.condition1 == 1 and rec.condition2 == 1
    a1, a2 = slr_alpha(1, 10, 0.5), slr_alpha(2, 10, 0.5)
    sp = a1 * 0.5 * np.linalg.norm(W0 - Z0) / np.linalg.norm(W1 - Z0)  # (8)
    lam = sp * (W1 - Z0)  # (7)
    Z1 = np.asarray(C.project(W1 + lam / 2.0))  # (10)
    if rule == "paper":  # (13) as printed: α^k, numerator ||W^{k-1} - Z^{k-1}||
        alpha, s = a1, a1 * sp * np.linalg.norm(W0 - Z0) / np.linalg.norm(W1 - Z1)
    else:  # Bragin's previous direction and α by update count (before issue 12)
        alpha, s = a2, a2 * sp * np.linalg.norm(W1 - Z0) / np.linalg.norm(W1 - Z1)
    lam = lam + s * (W1 - Z1)  # (12)
    assert rec.s_prime == pytest.approx(sp) and rec.s == pytest.approx(s)
    assert rec.alpha == pytest.approx(alpha) and s1.m == 2
    assert np.allclose(s1.theta["w"].values, Z1) and np.allclose(s1.lam["w"], lam)
    assert rec.w_minus_z == pytest.approx(np.linalg.norm(W1 - Z1))


def test_alpha_follows_the_iteration_not_the_update_count():
    # eq. (13): α^k with k the iteration; after 3 iterations with both conditions holding the
    # last update used α^3 (the update count would give α_6)
    inst = sparse_ls(7)
    res = SLR(rho=10.0, maxiter=3, M=5.0, r=0.5).run(inst.w0, inst.oracle, Cardinality(k=3))
    assert res.column("condition1") == [1, 1, 1] and res.column("condition2") == [1, 1, 1]
    assert res.column("alpha") == pytest.approx([slr_alpha(k, 5.0, 0.5) for k in (1, 2, 3)])
    old = SLR(rho=10.0, maxiter=3, M=5.0, r=0.5, alpha_index="update").run(
        inst.w0, inst.oracle, Cardinality(k=3))
    assert old.column("alpha") == pytest.approx([slr_alpha(k, 5.0, 0.5) for k in (2, 4, 6)])


def test_callback_stops_at_a_target_on_the_hard_pruned_point():
    # Zhou et al. §4.2: training stops when the hard-pruned metric meets the target; the
    # callback sees each record's hard_prune_metric and the returned x is that point
    inst = sparse_ls(8)
    slr = SLR(rho=10.0, maxiter=50, evaluate=lambda x: -inst.oracle.value(x))
    full = slr.run(inst.w0, inst.oracle, Cardinality(k=3))
    target = full.history[5].hard_prune_metric

    def stop(state, record):
        np.testing.assert_allclose(slr.output(state, Cardinality(k=3))[0]["w"],
                                   np.asarray(Cardinality(k=3).project(state.w["w"])))
        if record.hard_prune_metric >= target:
            raise StopIteration("target reached")

    res = slr.run(inst.w0, inst.oracle, Cardinality(k=3), callback=stop)
    assert res.status == Status.CALLBACK and "target reached" in res.message
    assert res.nit <= 6 and res.history[-1].hard_prune_metric >= target
    assert -inst.oracle.value(res.x) == pytest.approx(res.history[-1].hard_prune_metric)


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
        ({"step_rule": "bragin2015"}, "step_rule"),
        ({"alpha_index": "k"}, "alpha_index"),
    ]:
        with pytest.raises(ValueError, match=match):
            SLR(**kw)
    res = SLR(maxiter=3).run(inst.w0, inst.oracle, Cardinality(k=3))
    assert math.isnan(res.history[0].hard_prune_metric)
