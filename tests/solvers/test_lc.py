import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from compressopt.errors import NonFiniteError
from compressopt.projections import (
    AdaptiveQuantization,
    Cardinality,
    GlobalCardinality,
    L1Penalty,
)
from compressopt.solvers import (
    LC,
    DirectCompression,
    IteratedDC,
    LCRecord,
    LeastSquares,
    Status,
    history_columns,
)
from compressopt.verify import best_subset_least_squares
from tests.solvers.problems import codebook_ls, sparse_ls

SCHEDULE = {"mu0": 1e-2, "mu_growth": 1.1, "maxiter": 300, "tol": 1e-10}
SEEDS = range(30)


# The augmented Lagrangian converges to the exact optimum of the support it finds; the
# quadratic penalty keeps an O(1/μ) bias off the support (w_k - Δ(Θ_k) ∝ ∇L/μ), so its
# objective is only close (LC paper §4: the reason to prefer the AL).
@pytest.mark.parametrize(("penalty", "rel", "need"), [("al", 1e-6, 27), ("qp", 1e-2, 24)])
def test_lc_reaches_best_subset_on_most_seeds(penalty, rel, need):
    hits = 0
    for seed in SEEDS:
        inst = sparse_ls(seed)
        res = LC(**SCHEDULE, penalty=penalty).run(inst.w0, inst.oracle, Cardinality(k=3))
        assert np.count_nonzero(res.x["w"]) <= 3  # never infeasible
        f = inst.oracle.value(res.x)
        assert f >= inst.optimum * (1 - 1e-9)
        hits += f <= inst.optimum * (1 + rel)
    assert hits >= need, f"LC({penalty}) reached the optimum on {hits}/30 seeds"


def test_lc_reaches_best_codebook_on_most_seeds():
    hits = 0
    for seed in SEEDS:
        inst = codebook_ls(seed)
        res = LC(**SCHEDULE).run(inst.w0, inst.oracle, AdaptiveQuantization(2))
        assert np.unique(res.x["w"]).size <= 2
        hits += inst.oracle.value(res.x) <= inst.optimum * (1 + 1e-6)
    assert hits >= 27, f"LC reached the optimal codebook on {hits}/30 seeds"


@given(seed=st.integers(0, 10_000), k=st.integers(1, 5))
def test_lc_never_infeasible_on_random_instances(seed, k):
    rng = np.random.default_rng(seed)
    A, b = rng.standard_normal((10, 6)), rng.standard_normal(10)
    ls = LeastSquares(A, b)
    res = LC(mu0=1e-3, mu_growth=1.5, maxiter=30).run(
        {"w": rng.standard_normal(6)}, ls, Cardinality(k=k)
    )
    assert np.count_nonzero(res.x["w"]) <= k
    assert ls.value(res.x) >= best_subset_least_squares(A, b, k).objective * (1 - 1e-9)
    assert res.nit == len(res.history) <= 30


def test_history_and_schedule():
    inst = sparse_ls(0)
    res = LC(mu0=1e-2, mu_growth=1.2, maxiter=60, tol=0.0).run(
        inst.w0, inst.oracle, Cardinality(k=3)
    )
    assert res.status == Status.MAXITER and not res.converged and res.nit == 60
    cols = history_columns(res.history)
    assert isinstance(res.history[0], LCRecord)
    assert cols["k"] == list(range(60))
    assert np.allclose(cols["mu"], 1e-2 * 1.2 ** np.arange(60))
    assert cols["weight_bits"] == [3 * 32] * 60 and cols["nnz"] == [3] * 60
    # as μ grows the penalty drives w to Δ(Θ) (the support may switch while μ is small)
    assert cols["feasibility"][-1] < 1e-6 * max(cols["feasibility"])
    assert cols["feasibility"][-1] <= cols["feasibility"][-10]
    # once w = Δ(Θ), the two losses agree and equal the loss of the returned point
    assert cols["loss"][-1] == pytest.approx(cols["loss_compressed"][-1], rel=1e-6)
    assert cols["loss_compressed"][-1] == pytest.approx(inst.oracle.value(res.x), rel=1e-12)
    assert res.column("mu") == cols["mu"]


def test_converged_status_and_feasible_result():
    inst = sparse_ls(2)
    res = LC(**SCHEDULE).run(inst.w0, inst.oracle, Cardinality(k=3))
    assert res.converged and res.status == Status.CONVERGED and res.nit < 300
    assert res.history[-1].feasibility <= 1e-10
    assert "converged" in res.message
    assert Cardinality(k=3).contains(res.x["w"])


def test_explicit_mu_schedule():
    inst = sparse_ls(3)
    mus = [0.1, 0.2, 0.4, 0.8]
    res = LC(mus=mus, tol=0.0).run(inst.w0, inst.oracle, Cardinality(k=3))
    assert res.column("mu") == mus and res.nit == 4


def test_callback_stops_and_resume_continues_identically():
    inst = sparse_ls(4)
    solver = LC(mu0=1e-2, mu_growth=1.2, maxiter=20, tol=0.0)
    seen = []

    def cb(state, record):
        seen.append(record.k)
        if record.k == 7:
            raise StopIteration("enough")

    part = solver.run(inst.w0, inst.oracle, Cardinality(k=3), callback=cb)
    assert part.status == Status.CALLBACK and part.nit == 8 and seen == list(range(8))
    assert "enough" in part.message
    resumed = solver.run(inst.w0, inst.oracle, Cardinality(k=3), resume=part)
    full = solver.run(inst.w0, inst.oracle, Cardinality(k=3))
    assert resumed.nit == full.nit == 20
    assert np.array_equal(resumed.x["w"], full.x["w"])
    assert [r.mu for r in resumed.history] == [r.mu for r in full.history]


def test_inputs_not_modified_and_torch_matches_numpy():
    inst = sparse_ls(5)
    w0 = {"w": inst.w0["w"].copy()}
    res = LC(**SCHEDULE).run(w0, inst.oracle, Cardinality(k=3))
    assert np.array_equal(w0["w"], inst.w0["w"])
    A = torch.tensor(inst.oracle.A)
    b = torch.tensor(inst.oracle.b)
    res_t = LC(**SCHEDULE).run({"w": torch.tensor(w0["w"])}, LeastSquares(A, b), Cardinality(k=3))
    assert isinstance(res_t.x["w"], torch.Tensor) and res_t.x["w"].dtype == torch.float64
    assert np.allclose(res_t.x["w"].numpy(), res.x["w"], atol=1e-9)


def test_global_budget_over_several_tensors():
    # two "layers" with one ℓ0 budget: the oracle is separable least squares
    inst1, inst2 = sparse_ls(6), sparse_ls(7)

    class Two:
        def value(self, w):
            return inst1.oracle.value({"w": w["a"]}) + inst2.oracle.value({"w": w["b"]})

        def lstep(self, w, center, mu, *, step=0):
            return {
                "a": inst1.oracle.lstep({"w": w["a"]}, {"w": center["a"]}, mu)["w"],
                "b": inst2.oracle.lstep({"w": w["b"]}, {"w": center["b"]}, mu)["w"],
            }

    w0 = {"a": inst1.w0["w"], "b": inst2.w0["w"]}
    res = LC(**SCHEDULE).run(w0, Two(), GlobalCardinality(k=6))
    assert np.count_nonzero(res.x["a"]) + np.count_nonzero(res.x["b"]) <= 6
    assert res.converged


def test_nonfinite_loss_stops():
    inst = sparse_ls(8)

    class Exploding:
        def value(self, w):
            return math.nan

        def lstep(self, w, center, mu, *, step=0):
            return inst.oracle.lstep(w, center, mu)

    res = LC(maxiter=5).run(inst.w0, Exploding(), Cardinality(k=3))
    assert res.status == Status.NONFINITE and res.nit == 1
    # without loss evaluation the same oracle runs to the end
    res = LC(maxiter=5, tol=0.0, eval_loss=False).run(inst.w0, Exploding(), Cardinality(k=3))
    assert res.status == Status.MAXITER and math.isnan(res.history[0].loss)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mu0": 0.0}, "mu0"),
        ({"mu_growth": 1.0}, "mu_growth"),
        ({"maxiter": 0}, "maxiter"),
        ({"tol": -1.0}, "tol"),
        ({"penalty": "x"}, "penalty"),
        ({"mus": []}, "mus"),
        ({"inner_iterations": 0}, "inner_iterations"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LC(**kwargs)


def test_nan_weights_rejected():
    inst = sparse_ls(0)
    with pytest.raises(NonFiniteError):
        LC().run({"w": np.array([np.nan] * 8)}, inst.oracle, Cardinality(k=3))


def test_several_l_and_c_steps_per_mu():
    # §4.1: "it may be advantageous to run multiple L and C steps per μ value": the L and C
    # steps alternate inner_iterations times, then the multipliers move once
    inst = sparse_ls(9)
    calls = []

    class Counting:
        def value(self, w):
            return inst.oracle.value(w)

        def lstep(self, w, center, mu, *, step=0):
            calls.append((mu, step))
            return inst.oracle.lstep(w, center, mu)

    res = LC(mu0=0.05, mu_growth=1.5, maxiter=4, tol=0.0, inner_iterations=3).run(
        inst.w0, Counting(), Cardinality(k=3))
    assert [c[1] for c in calls] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [c[0] for c in calls[::3]] == pytest.approx([0.05 * 1.5**k for k in range(4)])
    # by hand: three alternations at μ0 from w̄, Θ^DC, λ = 0, then λ ← λ - μ0 (w - Δ(Θ))
    C = Cardinality(k=3)
    w, z, mu = inst.w0["w"], np.asarray(C.project(inst.w0["w"])), 0.05
    for _ in range(3):
        w = inst.oracle.lstep({"w": w}, {"w": z}, mu)["w"]
        z = np.asarray(C.project(w))
    one = LC(mu0=0.05, mu_growth=1.5, maxiter=1, tol=0.0, inner_iterations=3).run(
        inst.w0, inst.oracle, C)
    np.testing.assert_allclose(one.state.w["w"], w, atol=1e-12)
    np.testing.assert_allclose(one.state.lam["w"], -mu * (w - z), atol=1e-12)
    assert res.history[0].time_lstep > 0


def test_lc_beats_direct_compression_and_idc_cycles():
    # Carreira-Perpiñán §4.2 and §6.2.3: DC ignores the loss; LC reaches a lower loss at the
    # same compression on most seeds; with an exact L step iDC cycles w̄ <-> Δ(Θ^DC), so it
    # returns DC's point
    better = 0
    for seed in range(10):
        inst = sparse_ls(seed)
        dc = DirectCompression().run(inst.w0, inst.oracle, Cardinality(k=3))
        lc = LC(**SCHEDULE).run(inst.w0, inst.oracle, Cardinality(k=3))
        assert inst.oracle.value(lc.x) <= inst.oracle.value(dc.x) * (1 + 1e-9)
        better += inst.oracle.value(lc.x) < 0.99 * inst.oracle.value(dc.x)
        idc = IteratedDC(maxiter=5, tol=1e-9).run(inst.w0, inst.oracle, Cardinality(k=3))
        np.testing.assert_allclose(idc.x["w"], dc.x["w"], atol=1e-9)
        assert idc.converged and idc.nit == 1 and idc.history[-1].change <= 1e-9
    assert better >= 5, f"LC beat DC by 1% on {better}/10 seeds"
    rec = dc.history[0]
    assert rec.nnz == 3 and rec.feasibility == pytest.approx(
        np.linalg.norm(inst.w0["w"] - dc.x["w"]))
    assert math.isnan(DirectCompression(eval_loss=False).run(
        inst.w0, None, Cardinality(k=3)).history[0].loss)


def test_dc_refuses_penalty_forms_and_bad_settings():
    inst = sparse_ls(0)
    for solver in (DirectCompression(), IteratedDC()):
        with pytest.raises(TypeError, match="penalty-form"):
            solver.run(inst.w0, inst.oracle, L1Penalty(1.0))
    with pytest.raises(ValueError, match="maxiter"):
        IteratedDC(maxiter=0)
    with pytest.raises(ValueError, match="tol"):
        IteratedDC(tol=-1.0)
