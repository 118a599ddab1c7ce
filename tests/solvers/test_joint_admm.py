import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compressopt.projections import Cardinality
from compressopt.projections.joint import SparseQuantized
from compressopt.solvers import (
    JointADMM,
    JointADMMRecord,
    LeastSquares,
    budget_from_ratio,
    quantize_with_bits,
)
from tests.solvers.problems import best_sparse_quantized_ls


def _planted(seed, m=20, n=6, nnz=3):
    """Least squares whose truth has `nnz` nonzeros taking 2 values (1 bit each)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    values = np.array([-1.5, 1.5]) * (1 + 0.3 * rng.random(2))
    truth = np.zeros(n)
    truth[rng.choice(n, nnz, replace=False)] = values[rng.integers(0, 2, nnz)]
    b = A @ truth + 0.2 * rng.standard_normal(m)
    return LeastSquares(A, b), {"w": np.linalg.lstsq(A, b, rcond=None)[0]}


def _feasible(x, bits, budget):
    used = 0
    for n, v in x.items():
        nz = v[v != 0]
        assert np.unique(nz).size <= 2 ** bits[n], f"{n}: too many values for {bits[n]} bits"
        used += bits[n] * nz.size
    assert used <= budget
    return used


def test_planted_instances_against_exhaustive_search():
    # budget = the truth's cost (3 nonzeros × 1 bit): the method finds the structure and
    # comes within a few % of the enumerated optimum (its codebook is a k-means of W, not a
    # least-squares refit, so "equal" is not expected)
    close = 0
    for seed in range(20):
        ls, w0 = _planted(seed)
        joint = SparseQuantized(budget_bits=3, candidates=(1, 2), method="exact")
        res = JointADMM(rho=20.0, maxiter=30, init_bits=1, eval_loss=False).run(w0, ls, joint)
        _feasible(res.x, res.state.bits, 3)
        _, best, _ = best_sparse_quantized_ls(ls.A, ls.b, 3)
        assert ls.value(res.x) >= best * (1 - 1e-9)
        close += ls.value(res.x) <= 1.05 * best
    assert close >= 18, f"within 5% of the optimum on {close}/20 seeds"  # 20/20 seen


@given(seed=st.integers(0, 10_000), budget=st.integers(1, 40))
def test_result_always_meets_the_budget_exactly(seed, budget):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((30, 14))
    ls2 = LeastSquares(A, rng.standard_normal(30))

    class Two:  # two "layers" of a linear model, one global budget
        def value(self, w):
            return ls2.value({"w": np.concatenate([w["a"].ravel(), w["b"]])})

        def lstep(self, w, center, mu, *, step=0):
            c = np.concatenate([center["a"].ravel(), center["b"]])
            v = ls2.lstep({"w": c}, {"w": c}, mu)["w"]
            return {"a": v[:8].reshape(2, 4), "b": v[8:]}

    w0 = {"a": rng.standard_normal((2, 4)), "b": rng.standard_normal(6)}
    joint = SparseQuantized(budget_bits=budget, candidates=(1, 2, 3))
    res = JointADMM(rho=1.0, maxiter=4, eval_loss=False).run(w0, Two(), joint)
    used = _feasible(res.x, res.state.bits, budget)
    for rec in res.history:
        assert rec.budget_used <= budget and set(rec.bits.values()) <= {1, 2, 3}
        assert rec.lp_gap_knapsack >= -1e-9 and rec.lp_gap_mckp >= -1e-9
    assert used == sum(c.value_bits for c in joint.cost(res.theta).values())


@pytest.mark.parametrize("seed", range(4))
def test_eq10_v_projection_off_the_support(seed):
    # v_support="free": V quantizes all of W + Y/rho (zeros free, eq. 10 as written), so it
    # may be nonzero where W is zero; the budget still charges W's nonzeros and the output
    # meets it exactly; on the planted instances it finds the structure like the default
    ls, w0 = _planted(seed)
    joint = SparseQuantized(budget_bits=3, candidates=(1, 2), method="exact")
    res = JointADMM(rho=20.0, maxiter=30, init_bits=1, eval_loss=False, v_support="free").run(
        w0, ls, joint)
    _feasible(res.x, res.state.bits, 3)
    for rec in res.history:
        assert rec.budget_used == sum(rec.bits[n] * rec.nnz[n] for n in rec.nnz) <= 3
    _, best, _ = best_sparse_quantized_ls(ls.A, ls.b, 3)
    assert best * (1 - 1e-9) <= ls.value(res.x) <= 1.05 * best
    # one step by hand from duals that are nonzero everywhere: V is the zero-level
    # quantization of W + Y/rho on every entry, so it is nonzero where the new W is zero
    # (the default v_support="w" keeps V on W's support)
    rng = np.random.default_rng(seed)
    s0 = JointADMM(rho=20.0, init_bits=1).init(w0, joint)
    s0 = s0._replace(y={"w": 30.0 * rng.standard_normal(w0["w"].shape)})
    for support in ("free", "w"):
        s1, rec = JointADMM(rho=20.0, v_support=support, eval_loss=False).step(s0, ls, joint)
        v, w1 = s1.v["w"], s1.w["w"]
        assert np.unique(v[v != 0]).size <= 2 ** s1.bits["w"]
        assert rec.budget_used == s1.bits["w"] * np.count_nonzero(w1) <= 3
        off = (w1 == 0) & (v != 0)
        if support == "w":
            assert not off.any()
            continue
        assert off.any()
        target = w1 + s0.y["w"] / 20.0
        levels = np.concatenate([[0.0], np.unique(v[v != 0])])
        np.testing.assert_allclose(np.abs(target - v),
                                   np.abs(target[:, None] - levels[None, :]).min(axis=1))
    with pytest.raises(ValueError, match="v_support"):
        JointADMM(v_support="all")


def test_history_and_diagnostics():
    ls, w0 = _planted(1)
    joint = SparseQuantized(budget_bits=3, candidates=(1, 2), method="exact")
    res = JointADMM(rho=20.0, maxiter=5, init_bits=1).run(w0, ls, joint)
    rec = res.history[-1]
    assert isinstance(rec, JointADMMRecord) and len(res.history) == 5 and res.nit == 5
    assert rec.budget == 3 and rec.nnz["w"] * rec.bits["w"] == rec.budget_used
    x_q = {"w": quantize_with_bits(res.state.w, res.state.bits, method="exact")["w"]}
    assert rec.loss_quantized == pytest.approx(ls.value(res.x))
    assert np.count_nonzero(x_q["w"].assignments) == rec.nnz["w"]
    d = res.state.w["w"] - res.state.v["w"]
    assert rec.mse == pytest.approx(np.mean(d**2)) and rec.w_minus_v == pytest.approx(
        np.linalg.norm(d)
    )


def test_increasing_rho_schedule_drives_w_to_v():
    ls, w0 = _planted(3)
    joint = SparseQuantized(budget_bits=3, candidates=(1, 2), method="exact")
    fixed = JointADMM(rho=1.0, maxiter=12, init_bits=1).run(w0, ls, joint)
    grown = JointADMM(rho=1.0, rho_growth=2.0, maxiter=12, init_bits=1).run(w0, ls, joint)
    assert [r.rho for r in grown.history] == [2.0**k for k in range(12)]
    assert all(r.rho == 1.0 for r in fixed.history)
    # rho_11 = 2048: the exact L step lands on V - Y/rho, so W is within O(1/rho) of V
    assert grown.history[-1].w_minus_v < 1e-2 < fixed.history[-1].w_minus_v
    _feasible(grown.x, grown.state.bits, 3)


def test_tolerance_stops_early():
    ls, w0 = _planted(2)
    joint = SparseQuantized(budget_bits=3, candidates=(1, 2))
    res = JointADMM(rho=20.0, maxiter=50, init_bits=1, tol=1e-3, eval_loss=False).run(w0, ls, joint)
    assert res.converged and res.nit < 50 and res.history[-1].w_minus_v <= 1e-3


def test_budget_from_ratio_and_errors():
    w = {"a": np.zeros((10, 10)), "b": np.zeros(100)}
    assert budget_from_ratio(w, 2000) == pytest.approx(32 * 200 / 2000)
    with pytest.raises(ValueError, match="ratio"):
        budget_from_ratio(w, 0)
    with pytest.raises(TypeError, match="SparseQuantized"):
        JointADMM().run({"w": np.ones(3)}, LeastSquares(np.eye(3), np.ones(3)), Cardinality(k=1))
    for kw, match in [
        ({"rho": 0}, "rho"),
        ({"rho_growth": 0.5}, "rho_growth"),
        ({"rho_growth": float("inf")}, "rho_growth"),
        ({"maxiter": 0}, "maxiter"),
        ({"init_bits": 0}, "init_bits"),
        ({"tol": -1.0}, "tol"),
    ]:
        with pytest.raises(ValueError, match=match):
            JointADMM(**kw)


def test_init_does_algorithm1_lines_2_to_4():
    # Yang et al. Alg. 1: before the first SGD period W is projected (eq. 8) with the bit
    # widths of the uniformly quantized V, V projected from W + Y/rho (eq. 10), and Y
    # updated (eq. 7); so the first L step's centre V - Y/rho is not V
    _, w0 = _planted(5)
    joint = SparseQuantized(budget_bits=3, candidates=(1, 2), method="exact")
    s0 = JointADMM(rho=20.0, init_bits=1).init(w0, joint)
    assert np.count_nonzero(s0.w["w"]) == 3  # line 2: 3 bits of budget at 1 bit each
    kept = np.argsort(-np.abs(w0["w"]))[:3]
    np.testing.assert_array_equal(s0.w["w"][kept], w0["w"][kept])
    assert s0.bits == {"w": 1}  # line 3: V from W + 0/rho at 1 bit (3 nonzeros)
    assert np.unique(s0.v["w"][s0.v["w"] != 0]).size <= 2
    np.testing.assert_allclose(s0.y["w"], 20.0 * (s0.w["w"] - s0.v["w"]))  # line 4
    assert np.any(s0.y["w"] != 0)
    # the start before issue 12 stays available: dense W, V its uniform quantization, Y = 0
    old = JointADMM(rho=20.0, init_bits=1, init_projections=False).init(w0, joint)
    np.testing.assert_array_equal(old.w["w"], w0["w"])
    assert not np.any(old.y["w"]) and old.bits == {"w": 1}


def test_loss_records_with_any_oracle():
    # eval_loss=True: l(W) after the SGD period and l(W quantized with V's widths), through
    # the oracle's value alone (Fig. 2a/2b); NaN when off
    ls, w0 = _planted(2)
    joint = SparseQuantized(budget_bits=3, candidates=(1, 2), method="exact")

    class ValueAndLstep:
        calls = 0

        def value(self, w):
            ValueAndLstep.calls += 1
            return ls.value(w)

        def lstep(self, w, center, mu, *, step=0):
            return ls.lstep(w, center, mu)

    res = JointADMM(rho=20.0, maxiter=3, init_bits=1).run(w0, ValueAndLstep(), joint)
    assert ValueAndLstep.calls == 6 and all(np.isfinite(r.loss) for r in res.history)
    assert res.history[-1].loss_quantized == pytest.approx(ls.value(res.x))
    off = JointADMM(rho=20.0, maxiter=2, init_bits=1, eval_loss=False).run(w0, ls, joint)
    assert all(np.isnan(r.loss) and np.isnan(r.loss_quantized) for r in off.history)
