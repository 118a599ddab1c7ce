"""The fast k-means of many host tensors at once: one padded stack per codebook size.

:class:`SweepBatch` fills the error tables of several :class:`~.quantization._Sweep`
objects (the bit allocation's tensors, :func:`~compressopt.projections.allocate_bits`). Its
result is the one of calling ``sweep.compute(ks)`` on each, bit for bit: the same companded
bins, the same banded DP (Wang & Song 2011, eq. 1) and the same Lloyd iterations, each step
the same floating-point operations on the same operands, only done for all tensors of one
codebook size in one numpy call instead of one call per tensor. The per-tensor path costs
about 1 ms of small numpy calls per tensor and size (arrays of a few hundred entries); here
the calls are per size and the work is per entry.

Batched: numpy (host) sweeps of the fast method without the zero level, accumulating in
float64 (float32 and float64 tensors), for the sizes whose DP runs on companded bins
(``n > per·k``) or on the points themselves (``n <= per·k``: rows padded to the longest of
the group, by length). Everything else — torch arrays on an accelerator, float16 tensors,
the exact method, the zero level, tensors with at most k distinct values, sizes whose
tables would not fit (companded cells) — goes through ``sweep.compute``.

The searches in sorted rows of different lengths are vectorized binary searches over one
concatenated array (each query confined to its row's segment), or numpy's own search row
by row where the rows hold many queries, so their answers are :func:`numpy.searchsorted`'s
exactly. The DP's chunks of rows run on a thread per CPU (at most 4): numpy releases the
GIL in their large calls.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from compressopt.projections.quantization import (
    _BAND,
    _BINS_PER_CLUSTER,
    _distinct_count,
    _dp_bins,
    _pilot,
    _segment_means,
    _Sweep,
)

__all__ = ["SweepBatch"]

_ROW_LOOP = 64  # queries per row from which _search loops over rows
_CHUNK = 1 << 16  # entries of one (tensors, bins, band) table of the batched DP (512 KiB:
# the stages' add, argmin and gather stay in cache; 16 MiB chunks took 1.2x as long)


class SweepBatch:
    """Several :class:`~.quantization._Sweep` objects whose entries are computed together:
    for tensor i and size k the codebook c and the error ``E_i(k) = Σ_j (s_ij − c[a_j])²``
    over the nonzeros s_i (float64, in the tensor's frame ``·2^-2e``; Yang et al. 2020,
    Definition 1), by the fast method (heuristic, within 1 % of the exact k-means on the
    benchmark layers). ``batch.compute(needs)`` is ``sweeps[i].compute(needs[i])`` for every
    i, batched where it
    pays (module docstring), bit for bit the per-tensor results. The tensors' values are
    concatenated once, at the first batched call, and reused by later calls (the rounds of
    :func:`~compressopt.projections.allocate_bits`).

    Cost: per codebook size, O(Σ n) vectorized work and O(k + iterations + log n) numpy
    calls for all the tensors that need it, instead of O(k + iterations) calls per tensor.
    """

    def __init__(self, sweeps: Sequence[_Sweep]) -> None:
        self.sweeps = list(sweeps)
        self.row = {i: r for r, i in enumerate(
            i for i, sw in enumerate(self.sweeps)
            if sw.method == "fast" and not sw.zero_level and type(sw.st.s) is np.ndarray
            and sw.st.s.dtype == np.float64  # one accumulation dtype in the stack
            and sw.st.s.shape[0] > 0)}  # sweep -> row of the batched arrays
        self.rows: _Rows | None = None

    def compute(self, needs: Sequence[Sequence[int]]) -> None:
        """Codebooks and errors for the sizes ``needs[i]`` of sweep i not computed yet."""
        if len(needs) != len(self.sweeps):
            raise ValueError("one list of sizes per sweep")  # pragma: no cover
        groups: dict[tuple, list[int]] = {}
        for i, (sw, ks) in enumerate(zip(self.sweeps, needs, strict=True)):
            todo = [k for k in dict.fromkeys(ks) if k not in sw.books]
            if not todo:
                continue
            if i not in self.row:
                sw.compute(todo)
                continue
            st, n = sw.st, sw.st.s.shape[0]
            d = st.cache.get("distinct")
            if d is None:
                d = st.cache["distinct"] = _distinct_count(st)
            rest = []
            for k in todo:
                per = _dp_bins(n, k)
                if d <= k or per is None:
                    rest.append(k)  # the distinct values, or companded cells
                else:  # the DP on companded bins, or on the points as bins
                    groups.setdefault((k, per, sw.x.dtype, n <= per * k), []).append(i)
            if rest:
                sw.compute(rest)
        if not groups:
            return
        if self.rows is None:
            self.rows = _Rows([self.sweeps[i] for i in self.row])
        for (k, per, dtype, points), members in groups.items():
            if points:  # by length: the chunks of the DP pad to similar lengths
                members = sorted(members, key=lambda i: self.sweeps[i].st.s.shape[0])
            _batch(k, per, dtype, points, self.rows,
                   np.asarray([self.row[i] for i in members], dtype=np.int64),
                   [self.sweeps[i] for i in members])


class _Rows:
    """Sorted rows of different lengths as one array: row r is ``s[off[r]:off[r] + n[r]]``;
    its prefix sums (length n + 1) are ``cw[offc[r]:...]`` and ``cs[...]``, its frame exponent
    ``e[r]``; ``pilot_v`` and ``pilot_fc`` the companding's density estimates
    (:func:`~.quantization._pilot`), P entries per row (row r at ``r·P``)."""

    def __init__(self, sweeps: Sequence[_Sweep]) -> None:
        sts = [sw.st for sw in sweeps]
        self.n = np.asarray([st.s.shape[0] for st in sts], dtype=np.int64)
        self.off = np.concatenate([[0], np.cumsum(self.n)[:-1]]).astype(np.int64)
        self.offc = self.off + np.arange(len(sts), dtype=np.int64)
        self.s = np.concatenate([st.s for st in sts])
        self.cw = np.concatenate([st.cw for st in sts])
        self.cs = np.concatenate([st.cs for st in sts])
        self.e = np.asarray([int(st.e) for st in sts], dtype=np.int64)
        pil = [_pilot(st) for st in sts]
        self.p = pil[0][1].shape[0]
        self.pilot_v = np.concatenate([v for v, _ in pil])
        self.pilot_fc = np.concatenate([fc for _, fc in pil])


def _search(a: np.ndarray, lo: np.ndarray, hi: np.ndarray, q: np.ndarray,
            side: str) -> np.ndarray:
    """``lo + np.searchsorted(a[lo:hi], q, side)`` for each query (arrays broadcast to q's
    shape): a binary search of all queries at once, ``ceil(log2(max(hi - lo) + 1))`` steps;
    with at least ``_ROW_LOOP`` queries in each row of a (rows, m) `q` (the companded
    edges), :func:`numpy.searchsorted` row by row instead (its C loop beats the steps'
    numpy calls there; few queries a row, as Lloyd's midpoints, favour the steps)."""
    if q.ndim == 2 and q.shape[1] >= _ROW_LOOP and np.shape(lo) == np.shape(hi) == (
            q.shape[0], 1):  # many queries per row: numpy's C search, row by row
        out = np.empty(q.shape, dtype=np.int64)
        for r, (a0, a1) in enumerate(zip(lo[:, 0].tolist(), hi[:, 0].tolist(), strict=True)):
            np.add(np.searchsorted(a[a0:a1], q[r], side), a0, out=out[r])  # a loop over rows
        return out
    lo = np.broadcast_to(lo, q.shape).copy()
    hi = np.broadcast_to(hi, q.shape).copy()
    if q.size == 0:
        return lo
    top = a.shape[0] - 1
    for _ in range(int(np.max(hi - lo)).bit_length()):  # a loop over halvings
        active = lo < hi
        mid = (lo + hi) >> 1
        v = a[np.minimum(mid, top)]
        right = (v < q) if side == "left" else (v <= q)
        go = active & right
        lo = np.where(go, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
    return lo


def _lagged_rows(rows: int, m: int, width: int, fill: float, dtype: np.dtype
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A writable (rows, m) array ``head`` and the read-only view ``out[r, b, w] =
    head[r, b - w]`` (`fill` where ``b - w < 0``) over one padded buffer: the band of the DP,
    row by row (:func:`~compressopt._array.lagged` for a stack of rows), no copy per read."""
    pad = np.full((rows, width - 1 + m), fill, dtype=dtype)
    head = pad[:, width - 1:]
    view = np.lib.stride_tricks.as_strided(
        head, (rows, m, width), (pad.strides[0], pad.strides[1], -pad.strides[1]),
        writeable=False)
    return head, view


def _lag(v: np.ndarray, width: int, fill: float) -> np.ndarray:
    """``out[t, b, w] = v[t, b - w]`` (`fill` where ``b - w < 0``), a read-only view."""
    head, view = _lagged_rows(v.shape[0], v.shape[1], width, fill, v.dtype)
    head[...] = v
    return view


def _workers() -> int:
    """Threads for the batched DP: the CPUs this process may run on (at most 4)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 4))


def _dp_rows(big_n: np.ndarray, m1: np.ndarray, m2: np.ndarray, band: int, r: np.ndarray,
             hops: np.ndarray) -> None:
    """The banded DP (:func:`~.quantization._dp_codebooks`) of a few rows at once: the
    prefix weights, sums and sums of squared bin means (T, nb + 1) and each row's last bin r
    (T,) in, each stage's first argmin span written to ``hops`` (k, T, nb + 1) at the bins
    that matter.

    With ``lo = min r`` and ``hi = max r``, stage j (1-based) computes only the bins
    ``lo - (k - j)·band <= b <= min(j·band, hi)``: above j·band ``D_j`` is +inf (j clusters
    span at most j·band bins; a row of all +inf has no argmin used); above hi, no row's
    backtrack starts, and the recursion only looks back; below, no backtrack from a last bin
    >= lo passes (each step back moves at most `band` bins), and the next stage reads no bin
    below its own window minus `band`. Inside the window every value is the unrestricted
    recursion's, bit for bit."""
    t_rows, nb1 = big_n.shape
    k = hops.shape[0]
    lo, hi = int(np.min(r)), int(np.max(r))
    valid = np.arange(nb1)[:, None] - np.arange(band + 1)[None, :] >= 0
    dn = big_n[:, :, None] - _lag(big_n, band + 1, 0.0)
    d1 = m1[:, :, None] - _lag(m1, band + 1, 0.0)
    d2 = m2[:, :, None] - _lag(m2, band + 1, 0.0)
    cost = d2 - d1 * d1 / np.where(dn > 0, dn, np.ones_like(dn))
    cost = np.where(dn > 0, np.maximum(cost, np.zeros_like(cost)), np.zeros_like(cost))
    cost = np.where(valid, cost, np.full_like(cost, math.inf))
    head, win = _lagged_rows(t_rows, nb1, band + 1, math.inf, cost.dtype)  # D_{j-1}[b - w]
    head[:, 0] = 0.0  # D_0: 0 at bin 0, inf elsewhere
    tt = np.empty_like(cost)
    flat = tt.reshape(-1)
    at = (np.arange(t_rows * nb1) * (band + 1)).reshape(t_rows, nb1)
    for j, stage in enumerate(hops, start=1):  # the stages (a loop over clusters)
        z = slice(max(lo - (k - j) * band, 0), min(j * band, hi) + 1)
        t = tt[:, z]
        np.add(win[:, z], cost[:, z], out=t)
        arg = t.argmin(axis=2)
        head[:, z] = flat[at[:, z] + arg]  # the minimum, at its first position
        stage[:, z] = arg


def _edges(rows: _Rows, idx: np.ndarray, k: int, per: int, points: bool
           ) -> tuple[np.ndarray, np.ndarray]:
    """The DP's bin edges for the rows `idx`, weightless bins moved to the end
    (:func:`~.quantization._weighted_edges`, row by row): (T, nb + 1) and each row's last
    real bin R. ``points``: every value a bin, the rows padded to the longest (the edges
    ``0..n``, then n); else :func:`~.quantization._companded_edges` (per·k bins)."""
    n, off = rows.n[idx][:, None], rows.off[idx][:, None]
    if points:
        e = np.minimum(np.arange(int(np.max(n)) + 1)[None, :], n)
    else:
        p, m = rows.p, per * k
        base = (idx * p)[:, None]  # the rows' pilots in the flat arrays
        top = rows.pilot_fc[base[:, 0] + p - 1][:, None]
        t = top * np.arange(1, m, dtype=rows.pilot_fc.dtype) / m
        i = np.clip(_search(rows.pilot_fc, base, base + p, t, "right") - base - 1, 0, p - 2)
        f0, f1 = rows.pilot_fc[base + i], rows.pilot_fc[base + i + 1]
        step = np.where(f1 > f0, f1 - f0, np.ones_like(f0))
        vi = rows.pilot_v[base + i]
        vals = vi + (t - f0) / step * (rows.pilot_v[base + i + 1] - vi)
        vals = vals.astype(rows.s.dtype, copy=False)
        cuts = _search(rows.s, off, off + n, vals, "left") - off
        e = np.sort(np.concatenate([np.zeros_like(n), n, cuts], axis=1), axis=1)
    # _weighted_edges, row by row
    w = rows.cw[rows.offc[idx][:, None] + e]
    dup = np.concatenate([np.zeros((idx.shape[0], 1), dtype=bool), w[:, 1:] <= w[:, :-1]],
                         axis=1)
    r = np.sum(~dup, axis=1) - 1
    e = np.sort(np.where(dup, n + 1, e), axis=1)
    return np.minimum(np.maximum(e, 0), n), r


def _dp_starts(rows: _Rows, idx: np.ndarray, k: int, per: int, points: bool) -> np.ndarray:
    """:func:`~.quantization._dp_codebooks` for the rows `idx` (companded bins, or the
    points as bins): (T, k), each row sorted.

    The band is the longest row's (a row of nb < band bins has no span above nb: the spans
    past a bin's position are invalid either way, so its recursion is unchanged)."""
    e, r = _edges(rows, idx, k, per, points)
    t_rows, nb1 = e.shape
    nb = nb1 - 1
    band = min(nb, max(_BAND * per // _BINS_PER_CLUSTER, 4))
    offc = rows.offc[idx][:, None]
    big_n, m1 = rows.cw[offc + e], rows.cs[offc + e]
    cnt, tot = big_n[:, 1:] - big_n[:, :-1], m1[:, 1:] - m1[:, :-1]
    mean = np.where(cnt > 0, tot / np.where(cnt > 0, cnt, np.ones_like(cnt)),
                    np.zeros_like(cnt))
    m2 = np.concatenate([np.zeros((t_rows, 1), dtype=cnt.dtype),
                         np.cumsum(cnt * mean * mean, axis=1)], axis=1)
    chunk = max(1, _CHUNK // (nb1 * (band + 1)))
    path = np.empty((t_rows, k + 1), dtype=np.int64)  # each row's bins at stages 0..k

    def rows_dp(z: slice) -> None:  # the DP of rows z: its own buffers, path[z] written
        hops = np.empty((k, z.stop - z.start, nb1), dtype=np.int8)  # memory: one chunk's
        _dp_rows(big_n[z], m1[z], m2[z], band, r[z], hops)
        p, every = r[z].astype(np.int64), np.arange(z.stop - z.start)
        path[z, k] = p
        for i in range(k - 1, -1, -1):  # the backtrack: k steps for the chunk's rows
            p = p - hops[i, every, p]
            path[z, i] = p

    parts = [slice(a, min(a + chunk, t_rows)) for a in range(0, t_rows, chunk)]
    workers = _workers()
    if workers > 1 and len(parts) > 1:  # numpy releases the GIL in the stages' big calls
        with ThreadPoolExecutor(min(workers, len(parts))) as pool:
            list(pool.map(rows_dp, parts))
    else:
        for z in parts:  # chunks of tensors (cache), not a loop over weights
            rows_dp(z)
    cut = np.take_along_axis(e, path, 1)  # (T, k + 1)
    lo, hi = cut[:, :-1], cut[:, 1:]
    n, off = rows.n[idx][:, None], rows.off[idx][:, None]
    fallback = rows.s[off + np.clip(lo, 0, n - 1)]
    return np.sort(_segment_means(rows.cw, rows.cs, offc + lo, offc + hi, fallback), axis=1)


def _lloyd(rows: _Rows, idx: np.ndarray, c: np.ndarray, iters: int) -> np.ndarray:
    """:func:`~.quantization._lloyd` for the rows `idx` (each stops at its own fixed point)."""
    c = c.copy()
    active = np.arange(c.shape[0])
    for _ in range(iters):  # a loop over iterations, not over weights
        if active.size == 0:
            break
        r = idx[active]
        n, off, offc = rows.n[r][:, None], rows.off[r][:, None], rows.offc[r][:, None]
        ca = c[active]
        mids = (ca[:, :-1] + ca[:, 1:]) / 2
        b = _search(rows.s, off, off + n, mids, "left") - off
        edges = np.concatenate([np.zeros_like(n), b, n], axis=1)
        new = np.sort(_segment_means(rows.cw, rows.cs, offc + edges[:, :-1], offc + edges[:, 1:],
                                 ca), axis=1)
        fixed = np.all(new == ca, axis=1)
        c[active] = new
        active = active[~fixed]
    return c


def _batch(k: int, per: int, dtype: np.dtype, points: bool, rows: _Rows, idx: np.ndarray,
           sweeps: Sequence[_Sweep]) -> None:
    """Codebooks and errors of size k for the rows `idx` (`sweeps`), which all take the
    DP on companded bins (or all on their points)."""
    c = _lloyd(rows, idx, _dp_starts(rows, idx, k, per, points), sweeps[0].iters)
    e = rows.e[idx][:, None]
    with np.errstate(over="ignore", under="ignore"):  # as ldexp: exact in the float range
        books = np.ldexp(c, e).astype(dtype)  # _from_frame: x's units and dtype
        frame = np.ldexp(books.astype(c.dtype), -e)  # _to_frame, for the error
    # _sse: every value against its nearest center (ties to the lower one), squared, summed
    mids = frame[:, :-1] / 2 + frame[:, 1:] / 2
    n, off = rows.n[idx][:, None], rows.off[idx][:, None]
    p = _search(rows.s, off, off + n, mids, "right") - off
    lens = np.diff(np.concatenate([np.zeros_like(n), p, n], axis=1), axis=1)
    s = np.concatenate([rows.s[int(a):int(a) + int(m)]
                        for a, m in zip(off[:, 0], n[:, 0], strict=True)])
    d = s - np.repeat(frame.reshape(-1), lens.reshape(-1))
    d = d * d
    a = 0
    for r, sw in enumerate(sweeps):  # per tensor: numpy's own sum of its values
        m = int(n[r, 0])  # k centers: more than k distinct values (_codebook_size)
        sw.books[k] = books[r].copy()
        sw.errs[k] = np.sum(d[a:a + m])
        a += m
