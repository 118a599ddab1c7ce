"""Yang, Gui, Zhu & Liu (CVPR 2020), Algorithm 1, transcribed line by line in plain numpy.

Written from the paper (../shared/papers/yang2020-joint-sparsity-quantization.md: Algorithm
1 at lines 203-228, eqs. (5), (7), (8), (10), Propositions 1-2 and the MCKP greedy of §3.4),
not from compressopt's code, and compared iterate by iterate with
:class:`compressopt.solvers.JointADMM` on a two-layer least-squares problem. Lines 5-6 (τ'
proximal SGD steps, eq. 5) use the exact gradient, so the run is deterministic; the oracle's
``lstep`` is that step (the coordinator hands it the centre V − Y/ρ and ρ).

P_W (eq. 8) is Proposition 1's greedy; P_V (eq. 10) the MCKP of Proposition 2 solved exactly
(by enumeration) over the k-means errors E_j (exact 1-D k-means, here by enumerating the
contiguous partitions of the sorted values): the argmin that eq. (10) defines, where the
paper uses a greedy that may stop short of it (§3.4; compressopt solves the MCKP exactly).
V quantizes W + Y/ρ on W's support, compressopt's default (``v_support="w"``; eq. 10 as
printed lets V be nonzero off W's support, ``v_support="free"``, whose zero-level k-means is
a heuristic in compressopt and so is not transcribed here).
"""

import itertools

import numpy as np
import pytest

from compressopt.projections.joint import SparseQuantized
from compressopt.solvers import JointADMM

SHAPES = {"a": (3, 4), "b": (6,)}
TAU_PRIME = 3  # SGD iterations per projection period
ALPHA = 0.05  # the learning rate α of eq. (5)
ITERS = 5
TOL = 1e-10


def _problem(seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((30, 18)) / 2
    b = A @ rng.standard_normal(18) + 0.1 * rng.standard_normal(30)
    w0 = {n: rng.standard_normal(s) for n, s in SHAPES.items()}
    return A, b, w0


def _flat(w):
    return np.concatenate([w[n].reshape(-1) for n in SHAPES])


def _unflat(v):
    out, i = {}, 0
    for n, s in SHAPES.items():
        k = int(np.prod(s))
        out[n] = v[i:i + k].reshape(s)
        i += k
    return out


def grad_l(A, b, w):  # ∇ℓ(W) of ℓ(W) = ½||A vec(W) − b||²
    return _unflat(A.T @ (A @ _flat(w) - b))


class Oracle:
    """ℓ and the L step of lines 5-6: τ' steps W ← (W − α∇ℓ(W) + αρ c)/(1 + αρ), c = V − Y/ρ."""

    def __init__(self, A, b):
        self.A, self.b = A, b

    def value(self, w):
        r = self.A @ _flat(w) - self.b
        return 0.5 * float(r @ r)

    def lstep(self, w, center, mu, *, step=0):
        w = dict(w)
        for _ in range(TAU_PRIME):
            g = grad_l(self.A, self.b, w)
            w = {n: (w[n] - ALPHA * g[n] + ALPHA * mu * center[n]) / (1 + ALPHA * mu) for n in w}
        return w


# ---- the projections, from §3.3-3.4 --------------------------------------------------------

def p_w(wbar, bits, budget):
    """Eq. (8) by Proposition 1: the 0-1 knapsack max <W̄², X> s.t. <A, X> <= S (A_j = b(V_i))
    by its greedy: items by the profit-to-weight ratio W̄_j²/A_j, largest first, each selected
    while the total weight stays within S ("until the constraint boundary is reached")."""
    items = [(-(wbar[n].flat[j] ** 2) / bits[n], i, j)  # sort key: ratio desc, then order
             for i, n in enumerate(SHAPES) for j in range(wbar[n].size)]
    keep = {n: np.zeros(wbar[n].size, bool) for n in SHAPES}
    used = 0
    for key, i, j in sorted(items):
        n = list(SHAPES)[i]
        if key < 0 and used + bits[n] <= budget:  # a zero has no profit
            keep[n][j], used = True, used + bits[n]
    return {n: np.where(keep[n].reshape(wbar[n].shape), wbar[n], 0.0) for n in SHAPES}


def kmeans(x, k):
    """E_j's minimizer: the optimal k-means of the 1-D values x (clusters are contiguous in
    sorted order, so enumerate the split points). Returns (error, quantized x)."""
    if x.size <= k:
        return 0.0, x.copy()
    order = np.argsort(x, kind="stable")
    s = x[order]
    best = (np.inf, None)
    for cuts in itertools.combinations(range(1, s.size), k - 1):
        segs = np.split(s, cuts)
        err = sum(float(((g - g.mean()) ** 2).sum()) for g in segs)
        if err < best[0]:
            best = (err, np.concatenate([np.full(g.size, g.mean()) for g in segs]))
    q = np.empty_like(x)
    q[order] = best[1]
    return best[0], q


def p_v(vbar, w, budget, candidates):
    """Eq. (10) as the MCKP of Proposition 2: group i = layer i, item j = bit width j with
    profit −E_j(V̄_i) and weight j·||W_i||_0, one item per group, total weight <= S. Solved
    exactly here, by enumerating the |B|^L choices (ties: the lighter one): the optimum of
    eq. (10). The paper solves the MCKP by a greedy (§3.4 steps 1-3) that stops at the first
    upgrade that does not fit; compressopt solves it exactly (never worse), so the exact
    argmin is the contract."""
    nnz = {n: int(np.count_nonzero(w[n])) for n in SHAPES}
    err, quant = {}, {}
    for n in SHAPES:
        on = w[n] != 0  # V on W's support (v_support="w")
        for j in candidates:
            e, q = kmeans(vbar[n][on], 2**j)
            v = np.zeros_like(vbar[n])
            v[on] = q
            err[n, j], quant[n, j] = e, v
    best = None
    for choice in itertools.product(candidates, repeat=len(SHAPES)):
        sel = dict(zip(SHAPES, choice, strict=True))
        weight = sum(sel[n] * nnz[n] for n in SHAPES)
        if weight > budget:
            continue
        key = (sum(err[n, sel[n]] for n in SHAPES), weight)
        if best is None or key < best[0]:
            best = (key, sel)
    sel = best[1]
    return {n: quant[n, sel[n]] for n in SHAPES}, sel


# ---- Algorithm 1 ---------------------------------------------------------------------------

def algorithm1(A, b, w0, rho, budget, candidates, init_bits):
    bits = {n: init_bits for n in SHAPES}  # line 1: V uniformly quantizes W: b(V_i) = init
    W = {n: w0[n].copy() for n in SHAPES}  # line 1: W = the pretrained dense model
    Y = {n: np.zeros(SHAPES[n]) for n in SHAPES}  # line 1: Y = 0
    W = p_w(W, bits, budget)  # line 2: W ← P_W(W)
    V, bits = p_v({n: W[n] + Y[n] / rho for n in SHAPES}, W, budget, candidates)  # line 3
    Y = {n: Y[n] + rho * (W[n] - V[n]) for n in SHAPES}  # line 4: Y ← Y + ρ(W − V)
    yield W, V, Y, bits
    for _period in range(ITERS):
        for _t in range(TAU_PRIME):  # line 5: for t ← 1 to τ (τ' of them per period)
            g = grad_l(A, b, W)  # compute the (here exact) gradient ∇ℓ(W)
            W = {n: (W[n] - ALPHA * g[n] + ALPHA * rho * (V[n] - Y[n] / rho))
                 / (1 + ALPHA * rho) for n in SHAPES}  # line 6: eq. (5)
        # line 7: if t mod τ' = 0 then
        W = p_w(W, bits, budget)  # line 8 (printed 7): W ← P_W(W)
        V, bits = p_v({n: W[n] + Y[n] / rho for n in SHAPES}, W, budget, candidates)  # line 9
        Y = {n: Y[n] + rho * (W[n] - V[n]) for n in SHAPES}  # line 10: Y ← Y + ρ(W − V)
        yield W, V, Y, bits


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_algorithm1_iterate_by_iterate(seed):
    A, b, w0 = _problem(seed)
    rho, budget, cands, b0 = 0.5, 20, (1, 2, 3), 2
    joint = SparseQuantized(budget_bits=budget, candidates=cands, method="exact")
    solver = JointADMM(rho=rho, maxiter=ITERS, init_bits=b0, eval_loss=False)
    oracle = Oracle(A, b)
    ref = algorithm1(A, b, w0, rho, budget, cands, b0)
    state = solver.init(w0, joint)
    W, V, Y, bits = next(ref)  # lines 1-4, before the first SGD period
    for it in range(ITERS + 1):
        if it:
            state, rec = solver.step(state, oracle, joint)
            W, V, Y, bits = next(ref)
            assert rec.rho == rho and rec.bits == bits
        for n in SHAPES:
            np.testing.assert_allclose(state.w[n], W[n], rtol=0, atol=TOL, err_msg=f"W {it}")
            np.testing.assert_allclose(state.v[n], V[n], rtol=0, atol=TOL, err_msg=f"V {it}")
            np.testing.assert_allclose(state.y[n], Y[n], rtol=0, atol=TOL, err_msg=f"Y {it}")
        assert state.bits == bits
    # line 13 and §4.1: W* = W, quantized with V's bit widths; it meets the budget
    res = solver.run(w0, oracle, joint)
    used = sum(res.state.bits[n] * np.count_nonzero(res.x[n]) for n in SHAPES)
    assert used <= budget


def test_the_transcription_is_not_trivial():
    # the projections act (W pruned, Y nonzero from line 4 on, the widths move)
    A, b, w0 = _problem(2)
    steps = list(algorithm1(A, b, w0, 0.5, 20, (1, 2, 3), 2))
    W, _, Y, _ = steps[0]
    assert sum(np.count_nonzero(W[n]) for n in SHAPES) < 18
    assert any(np.any(Y[n] != 0) for n in SHAPES)
    assert len({tuple(sorted(s[3].items())) for s in steps}) > 1
