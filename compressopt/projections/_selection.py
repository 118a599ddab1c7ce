"""The greedy of a 0-1 knapsack with one weight per tensor, by a threshold instead of a sort.

Items are the entries of T tensors; the entries of tensor l weigh ``b_l`` (an int >= 1) and
have a key (their profit density, e.g. ``W̄²/b_l``). The density greedy (Dantzig 1957) takes
the items in decreasing key order (ties: tensor order, then flat index) while they fit in the
capacity; the first that does not is the *break item*; then every later item that still fits
(the *fill*). Its prefix is a threshold: every item whose key exceeds the break item's key τ is
taken. So τ is a weighted selection — the largest key v with ``Σ_l b_l #{k_l >= v} > cap`` —
found here without sorting (the break item in linear time, as in Balas & Zemel 1980; Kellerer,
Pferschy & Pisinger, *Knapsack Problems*, 2004, §3.1):

1. a strided sample of m keys (``m ≈ 2 n^(2/3)``, within [2^11, 2^16]) estimates the
   weighted quantile; two pivots bracket it by ``SIGMAS`` standard deviations of the
   estimate;
2. one pass over every tensor counts the keys above each pivot and extracts the indices of
   the keys between them (the candidates: about ``2 SIGMAS n / sqrt(m)``), keeping the mask
   of the keys above the upper pivot (all taken). With :class:`MagnitudeKeys` the pass
   compares magnitudes with per-tensor bounds and computes keys only for the candidates;
   numpy arrays go in cache-sized blocks;
3. the same on the candidates (one concatenated set) until at most ``FINISH`` remain
   (``FINISH_PACKED`` for numpy float32 keys, ordered by one sort of 64-bit integers that
   pack a key's bits with its position), which are sorted; then the break item, the prefix
   and the fill.

A bracket that misses (a sample unlike its tensor) only costs another round: the counts are
exact, so the result never depends on the sample. Keys of 0 are never taken. All array work
is Array-API (numpy, torch on any device); a round reads a few counts back to the host (on
an accelerator, a synchronization per round and per tensor's candidate extraction), and
the sample's order and the fill (at most ``ceil(max b / min b) - 1`` items) run on the host.
Used by :func:`~compressopt.projections.project_knapsack` (keys ``W̄²/b_i``) and the ℓ0
projections (keys ``|w|``, every entry weighing 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
from array_api_compat import is_numpy_array, is_numpy_namespace

from compressopt._array import Array, array_namespace, kth_largest, ldexp, take, to_numpy
from compressopt.projections._util import mask_top, to_list

__all__ = [
    "ArrayKeys",
    "Keys",
    "MagnitudeKeys",
    "Selection",
    "apply_masks",
    "first_step",
    "greedy_select",
    "split_values",
]

SAMPLE = (1 << 11, 1 << 16)  #: bounds on the keys sampled per round
FINISH = 1 << 13  #: candidates sorted outright
FINISH_PACKED = 1 << 18  #: the same where one integer sort orders them (numpy float32 keys)
SIGMAS = 4.0  #: half-width of the bracket, in standard deviations of the sampled estimate
DOT = 1 << 13  #: entries per np.dot of the sums of squares (OpenBLAS threads dots > 10,000)
FILL_CHUNK = 64  #: candidates after the break item scanned first for the fill (then 4 x more)
FULL_ROUNDS = 3  #: passes over the whole tensors before the region is extracted outright
BLOCK = 1 << 16  #: entries per block of the numpy passes (about 320 kB of scratch)

class Keys(Protocol):
    """The keys of the items of T tensors (>= 0, one dtype), computed the same way whatever
    the selection."""

    def at(self, i: int, sel: Any) -> Array:
        """Keys of tensor i at `sel`: None (all of it, a new 1-D array), a slice, or a 1-D
        int64 index array."""
        ...

    def sample(self, i: int, step: int) -> Array:
        """Keys of tensor i at the flat positions 0, step, 2 step, ..."""
        ...

    def split(self, i: int, p_lo: Array, p_hi: Array | None, out: Array | None
              ) -> tuple[Array | None, Array, Array, Array | int]:
        """One pass over tensor i: the flat mask of its keys >= p_hi (None when p_hi is None;
        written into `out`, a flat bool array of the tensor's size, where the library
        allows, else a new array), the flat indices (int64, ascending) of its keys in
        [p_lo, p_hi) and those keys, and the number of keys >= p_hi (an int or a 0-d
        array)."""
        ...


class ArrayKeys:
    """:class:`Keys` computed by a function ``key(i, values)`` of the entries of flat arrays."""

    def __init__(self, flats: list[Array], key: Callable[[int, Array], Array]) -> None:
        self.flats, self.key = flats, key
        self.xp = array_namespace(*flats)

    def at(self, i: int, sel: Any) -> Array:
        f = self.flats[i]
        if sel is None:
            return self.key(i, f)
        return self.key(i, f[sel] if isinstance(sel, slice) else take(f, sel))

    def sample(self, i: int, step: int) -> Array:
        return self.at(i, slice(0, None, step))

    def split(self, i: int, p_lo: Array, p_hi: Array | None, out: Array | None
              ) -> tuple[Array | None, Array, Array, Array | int]:
        k = self.at(i, None)
        ge, j, count = split_values(k, p_lo, p_hi)
        return ge, j, take(k, j), count


def split_values(k: Array, p_lo: Array, p_hi: Array | None
                 ) -> tuple[Array | None, Array, Array | int]:
    """The mask of ``k >= p_hi`` (None when p_hi is None), the indices of ``p_lo <= k <
    p_hi`` (int64) and the number of ``k >= p_hi``, for 1-D values `k`."""
    xp = array_namespace(k)
    mid = k >= p_lo
    ge, count = None, 0
    if p_hi is not None:
        ge = k >= p_hi
        mid ^= ge  # p_hi > p_lo: ge is a subset
        count = xp.count_nonzero(ge)
    return ge, xp.astype(xp.nonzero(mid)[0], xp.int64), count


class MagnitudeKeys:
    """:class:`Keys` that are a nondecreasing function of the magnitudes |f| of flat arrays
    (default: |f| itself): ``key >= p`` is ``|f| >= a_i(p)`` (:meth:`magnitudes`), so a pass
    over a tensor compares magnitudes and computes keys only for the candidates. numpy
    arrays are read in cache-sized blocks of ``BLOCK`` entries (a loop over blocks, not over
    weights: the weights are read once, the mask and the candidates' mask written once, the
    latter into a scratch of the largest tensor's size, then one index extraction per
    tensor); other libraries in whole-tensor operations. :meth:`split` records each
    tensor's largest magnitude (NaN if it holds one), read by :meth:`tops`.
    """

    def __init__(self, fl: list[Array], step: int) -> None:
        self.fl, self.step = fl, step
        self.raw = [f[::step] for f in fl]  # the first sample: strided, cheap
        self.xp = array_namespace(*fl)
        self.dtype, self.dev = fl[0].dtype, fl[0].device
        self.top: list[Any] = [0.0] * len(fl)
        self.cached: tuple[Any, Any, Array, Array | None] | None = None
        self.numpy = is_numpy_array(fl[0])
        if self.numpy:  # scratch: the magnitudes of a block, a tensor's candidates' mask
            big = max(f.shape[0] for f in fl)
            self.mag = np.empty(min(BLOCK, big), dtype=self.dtype)
            self.mid = np.empty(big, dtype=bool)
            self.blocktop = np.empty(-(-big // BLOCK) if big else 0, dtype=self.dtype)

    def key(self, i: int, v: Array) -> Array:
        """The keys of the values `v` of tensor i (a new array)."""
        return self.xp.abs(v)

    def magnitudes(self, p: Array) -> Array:
        """``a_i(p)``, per tensor: the smallest magnitude whose key reaches p."""
        return self.xp.full((len(self.fl),), p, dtype=self.dtype, device=self.dev)

    def at(self, i: int, sel: Any) -> Array:
        f = self.fl[i]
        if sel is not None:
            f = f[sel] if isinstance(sel, slice) else take(f, sel)
        return self.key(i, f)

    def sample(self, i: int, step: int) -> Array:
        return self.key(i, self.raw[i]) if step == self.step else self.at(
            i, slice(0, None, step))

    def tops(self) -> list[float]:
        """The largest magnitude of every tensor split so far (NaN if it holds one)."""
        xp = self.xp
        dt = xp.float64 if self.numpy else self.dtype
        return to_list(xp.stack([xp.asarray(t, dtype=dt, device=self.dev) for t in self.top]))

    def split(self, i: int, p_lo: Array, p_hi: Array | None, out: Array | None
              ) -> tuple[Array | None, Array, Array, Array | int]:
        if self.cached is None or self.cached[0] is not p_lo or self.cached[1] is not p_hi:
            self.cached = (p_lo, p_hi, self.magnitudes(p_lo),
                           None if p_hi is None else self.magnitudes(p_hi))
        a_lo, a_hi = self.cached[2][i], None if p_hi is None else self.cached[3][i]
        f = self.fl[i]
        if not self.numpy:
            mag = self.xp.abs(f)
            self.top[i] = self.xp.max(mag)
            ge, j, count = split_values(mag, a_lo, a_hi)
            return ge, j, self.key(i, take(f, j)), count
        n = f.shape[0]
        ge = None if a_hi is None else (np.empty(n, dtype=bool) if out is None else out)
        mid, tops, k = self.mid[:n], self.blocktop, 0
        for s in range(0, n, BLOCK):  # blocks in the cache: a loop over blocks
            e = min(n, s + BLOCK)
            mag = np.abs(f[s:e], out=self.mag[: e - s])
            tops[k] = mag.max()
            k += 1
            m = np.greater_equal(mag, a_lo, out=mid[s:e])
            if ge is not None:
                np.logical_xor(m, np.greater_equal(mag, a_hi, out=ge[s:e]), out=m)
        self.top[i] = float(np.max(tops[:k]))  # NaN if one is
        j = np.flatnonzero(mid)
        return ge, j, self.key(i, f[j]), 0 if ge is None else int(np.count_nonzero(ge))


def apply_masks(fl: list[Array], masks: list[Array], acc: Any, ex: int = 0
                ) -> tuple[list[Array], list[Array]]:
    """Per tensor ``f`` where its mask, +0.0 elsewhere (views of one new buffer), and ``Σ``
    of the squares of its entries times ``2^-ex`` as a 0-d array of `acc` (float64 but on
    MPS: the squares of float32 entries exact, the sum rounded in float64; `acc` None: no
    sums). numpy: in cache-sized blocks."""
    xp = array_namespace(*fl)
    buf = xp.empty((sum(f.shape[0] for f in fl),), dtype=fl[0].dtype, device=fl[0].device)
    outs, sums, start = [], [], 0
    for f, m in zip(fl, masks, strict=True):  # a loop over tensors
        o = buf[start : start + f.shape[0]]
        start += f.shape[0]
        outs.append(o)
        if not is_numpy_array(f):
            o[...] = xp.astype(m, f.dtype)
            o *= f
            o += 0.0  # -0.0 -> 0.0 where an entry is dropped
            if acc is not None:
                a = xp.astype(o, acc)
                a = ldexp(a, -ex) if ex else a
                sums.append(xp.vecdot(a, a))
            continue
        sq = np.empty(min(BLOCK, f.shape[0]), dtype=acc) if acc is not None else None
        total = 0.0
        for s in range(0, f.shape[0], BLOCK):  # blocks in the cache: a loop over blocks
            e = min(f.shape[0], s + BLOCK)
            ob = np.multiply(f[s:e], m[s:e], out=o[s:e])
            ob += 0.0
            if sq is not None:
                sb = sq[: e - s]
                np.copyto(sb, ob)
                if ex:
                    np.ldexp(sb, -ex, out=sb)
                for c in range(0, e - s, DOT):  # one thread: at most DOT entries a dot
                    total += float(np.dot(sb[c : c + DOT], sb[c : c + DOT]))
        if acc is not None:
            sums.append(np.asarray(total, dtype=acc))
    return outs, sums


class Selection(NamedTuple):
    """The greedy's choice (see the module docstring)."""

    masks: list[Array]  #: per tensor, flat bool arrays of the taken items (new arrays)
    kept: list[int]  #: items taken per tensor
    used: int  #: Σ b_l kept_l
    prefix_used: int  #: weight of the prefix (the items before the break item)
    brk: tuple[int, int] | None  #: (tensor, flat index) of the break item; None if all fit
    fill: list[tuple[int, int]]  #: (tensor, flat index) of the items taken after the break


class _Region(NamedTuple):
    """Candidates of all tensors, ordered by (tensor, flat index)."""

    keys: Array
    tid: Array  #: tensor of each candidate (int32)
    idx: Array  #: flat index in its tensor (int64)
    bw: Array  #: its weight (int32)

    def size(self) -> int:
        return int(self.keys.shape[0])

    def where(self, m: Array) -> _Region:
        return _Region(self.keys[m], self.tid[m], self.idx[m], self.bw[m])


def greedy_select(keys: Keys, sizes: Sequence[int], weights: Sequence[int], cap: int,
                  like: Array) -> Selection:
    """The density greedy of a 0-1 knapsack (module docstring) by a weighted selection.

    Parameters
    ----------
    keys : Keys
        The keys (>= 0; 0 = never taken).
    sizes : entries per tensor.
    weights : the weight b_l >= 1 of every item of tensor l (ints).
    cap : the capacity, an int >= 0, with ``Σ_l b_l sizes_l < 2**62``.
    like : an array of the tensors' library and device.

    Returns
    -------
    Selection
        Exactly the choice of the sort-based greedy for these keys.

    Notes
    -----
    O(n) expected: per tensor one key computation, two comparisons, two counts and an index
    extraction, then work on the O(n^(2/3)) candidates; never a full sort.
    """
    return _Greedy(keys, [int(s) for s in sizes], [int(b) for b in weights], int(cap),
                   like).run()


class _Greedy:
    """State of the search: the bracket [lo, hi) holding the break item's key, the items
    above hi (all taken: A) and the explicit candidates once extracted."""

    def __init__(self, keys: Keys, sizes: list[int], bits: list[int], cap: int,
                 like: Array) -> None:
        self.keys, self.n, self.b, self.cap = keys, sizes, bits, cap
        self.t = len(sizes)
        self.xp = xp = array_namespace(like)
        self.dev = like.device
        self.kdt = keys.at(0, slice(0, 0)).dtype
        self.hdt = xp.float64 if _has_f64(like) else xp.float32  # sample keys on the host
        zero = xp.zeros((), dtype=self.kdt, device=self.dev)
        self.tiny = xp.nextafter(zero, xp.ones_like(zero))  # k >= tiny  <=>  k > 0
        self.amask: list[Array | None] = [None] * self.t  # keys >= hi, from a full pass
        self.a_cnt = [0] * self.t  # their counts
        self.buf: Array | None = None  # the buffer of the masks of a full pass
        self.taken: list[tuple[Array, Array]] = []  # (tid, idx) added to A since
        self.g_a = 0  # weight of A
        self.lo, self.hi = self.tiny, None  # None: +inf

    # ------------------------------------------------------------------ host helpers

    def _ints(self, vals: list[Array]) -> list[int]:
        xp = self.xp
        return [int(v) for v in to_numpy(xp.stack([xp.astype(v, xp.int64) for v in vals]))]

    def _host(self, a: Array) -> np.ndarray:
        return to_numpy(self.xp.astype(a, self.hdt))

    def _dev(self, v: Any) -> Array:
        return self.xp.asarray(float(v), dtype=self.kdt, device=self.dev)

    # ------------------------------------------------------------------ pivots

    def _pivots(self, region: _Region | None) -> tuple[Array, Array | None]:
        """Two keys bracketing the break item's key, from a strided sample (p_lo < p_hi;
        p_hi None for +inf)."""
        xp = self.xp
        if region is None:
            step = first_step(sum(self.n))
            parts, tids, per = [], [], np.zeros(max(self.t, 1))
            for i in range(self.t):  # a loop over tensors
                if self.n[i]:
                    parts.append(self.keys.sample(i, step))
                    m = -(-self.n[i] // step)
                    tids.append(np.full(m, i, dtype=np.int64))
                    per[i] = self.b[i] * self.n[i] / m  # bits each sampled key stands for
            sk, tid = self._host_keys(xp.concat(parts)), np.concatenate(tids)
        else:
            step = max(1, region.size() // _sample_size(region.size()))
            sk, tid = self._host_keys(region.keys[::step]), to_numpy(region.tid[::step])
            per = np.asarray(self.b, dtype=np.float64) * (region.size() / max(1, sk.size))
        keep = sk >= _host_scalar(self.lo, sk.dtype)
        if self.hi is not None:
            keep &= sk < _host_scalar(self.hi, sk.dtype)
        sk, tid = sk[keep], tid[keep].astype(np.int64)
        if sk.size == 0:
            return self.lo, self.hi
        sk, tid = _sort_desc(sk, tid)
        sw = per[tid]
        cum = np.cumsum(sw)
        j = int(np.searchsorted(cum, self.cap - self.g_a, side="right"))  # first over
        jj = min(j, sk.size - 1)
        sd = math.sqrt(float(np.sum(sw[: jj + 1] ** 2)))
        d = 2 + math.ceil(SIGMAS * sd / float(np.mean(sw[max(0, jj - 8) : jj + 9])))
        p_hi = self.hi if j - d < 0 else self._dev(sk[j - d])
        p_lo = self.lo if j + d >= sk.size else self._dev(sk[j + d])
        if p_hi is not None and not bool(p_lo < p_hi):  # ties: bracket exactly the tied key
            p_hi = xp.nextafter(p_lo, xp.full_like(p_lo, math.inf))
        return p_lo, p_hi

    def _host_keys(self, a: Array) -> np.ndarray:
        """Keys on the host: as they are for float32/float64, else in the host dtype."""
        if a.dtype in (self.xp.float32, self.xp.float64):
            return to_numpy(a)
        return self._host(a)

    # ------------------------------------------------------------------ rounds

    def _full_round(self, p_lo: Array, p_hi: Array | None) -> _Region | bool | None:
        """One pass over the tensors: the explicit candidates in [p_lo, p_hi) when they hold
        the break item, None when the bracket missed (lo or hi moved), True when every
        positive key fits."""
        xp, i64 = self.xp, self.xp.int64
        ges, cand, ckeys, n_hi = [], [], [], []
        zero = xp.zeros((), dtype=i64, device=self.dev)
        # the masks of all tensors in one buffer (one allocation: large pages, few faults),
        # a new one if A's masks live in the current one
        if self.buf is None or any(m is not None for m in self.amask):
            self.buf = xp.empty((sum(self.n),), dtype=xp.bool, device=self.dev)
        start = 0
        for i in range(self.t):  # a loop over tensors
            ge, j, c = None, xp.zeros((0,), dtype=i64, device=self.dev), zero
            kj = xp.zeros((0,), dtype=self.kdt, device=self.dev)
            if self.n[i]:
                out = self.buf[start : start + self.n[i]]
                ge, j, kj, c = self.keys.split(i, p_lo, p_hi, out)
            start += self.n[i]
            ges.append(ge)
            cand.append(j)
            ckeys.append(kj)
            n_hi.append(xp.asarray(c, dtype=i64, device=self.dev) if isinstance(c, int) else c)
        c_hi = self._ints(n_hi)
        c_mid = [int(j.shape[0]) for j in cand]
        g_hi = sum(b * c for b, c in zip(self.b, c_hi, strict=True))
        g_lo = g_hi + sum(b * c for b, c in zip(self.b, c_mid, strict=True))
        if g_hi > self.cap:  # the break item is above p_hi
            self.lo = p_hi
            return None
        if g_lo <= self.cap:  # everything >= p_lo fits: the break item is below p_lo
            self.amask = [self._scatter(g, j, i) for i, (g, j) in enumerate(zip(
                ges, cand, strict=True))]
            self.a_cnt = [a + c for a, c in zip(c_hi, c_mid, strict=True)]
            self.g_a, self.hi = g_lo, p_lo
            return True if p_lo is self.tiny else None
        if p_hi is not None:
            self.amask, self.a_cnt, self.g_a = ges, c_hi, g_hi
        self.lo, self.hi = p_lo, p_hi
        return _Region(
            xp.concat(ckeys),
            xp.concat([xp.full(j.shape, i, dtype=xp.int32, device=self.dev)
                       for i, j in enumerate(cand)]),
            xp.concat(cand),
            xp.concat([xp.full(j.shape, b, dtype=xp.int32, device=self.dev)
                       for b, j in zip(self.b, cand, strict=True)]))

    def _scatter(self, m: Array | None, j: Array, i: int) -> Array:
        """`m` (or a new all-False mask of tensor i) with the indices `j` set."""
        xp = self.xp
        if m is None:
            m = xp.zeros((self.n[i],), dtype=xp.bool, device=self.dev)
        if j.shape[0]:
            m[j] = True
        return m

    def _region_round(self, region: _Region, p_lo: Array, p_hi: Array | None
                      ) -> _Region | bool:
        xp = self.xp
        k = region.keys
        mid = k >= p_lo
        if p_hi is not None:
            ge = k >= p_hi
            mid ^= ge
        else:
            ge = xp.zeros(k.shape, dtype=xp.bool, device=self.dev)
        g_hi, g_mid = self._ints([xp.sum(region.bw * ge, dtype=xp.int64),
                                  xp.sum(region.bw * mid, dtype=xp.int64)])
        if self.g_a + g_hi > self.cap:
            self.lo = p_hi
            return region.where(ge)
        if self.g_a + g_hi + g_mid <= self.cap:
            both = ge | mid
            self.taken.append((region.tid[both], region.idx[both]))
            self.g_a += g_hi + g_mid
            self.hi = p_lo
            return True if p_lo is self.tiny else region.where(~both)
        self.taken.append((region.tid[ge], region.idx[ge]))
        self.g_a += g_hi
        self.lo, self.hi = p_lo, p_hi
        return region.where(mid)

    # ------------------------------------------------------------------ driver

    def run(self) -> Selection:
        region: _Region | bool | None = None
        finish = FINISH_PACKED if _packable(self.kdt, self.xp) else FINISH
        if sum(self.n) <= FINISH:
            region = self._full_round(self.tiny, None)
        rounds = 0
        while region is None or (region is not True and region.size() > finish):
            p_lo, p_hi = self._pivots(region if isinstance(region, _Region) else None)
            if region is None:
                rounds += 1
                if rounds > FULL_ROUNDS:  # a sample that keeps missing: extract outright
                    p_lo, p_hi = self.lo, self.hi
                region = self._full_round(p_lo, p_hi)
            else:
                before = region.size()
                region = self._region_round(region, p_lo, p_hi)
                if region is not True and region.size() > 0.75 * before:
                    break  # ties or an unlucky sample: sort what is left
        if region is True:
            return self._result(None, self.g_a, [])
        return self._finish(region)

    def _finish(self, region: _Region) -> Selection:
        """Sort the candidates: the prefix, the break item, then the fill."""
        xp = self.xp
        order = _order_desc(region.keys, xp)  # ties keep (tensor, index) order
        cum = self.g_a + xp.cumulative_sum(xp.astype(take(region.bw, order), xp.int64))
        over = cum > self.cap
        if region.size() == 0 or not bool(xp.any(over)):
            # every candidate fits (then no positive key is left below them)
            self.taken.append((region.tid, region.idx))
            return self._result(None, self.g_a + int(xp.sum(region.bw, dtype=xp.int64)), [])
        pos = int(xp.argmax(xp.astype(over, xp.int8)))
        prefix_used = self._ints([cum[pos - 1]])[0] if pos else self.g_a
        at = order[pos : pos + 1]
        brk = tuple(self._ints([take(region.tid, at)[0], take(region.idx, at)[0]]))
        prefix = order[:pos]  # in key order: the scatter of _result needs no other
        self.taken.append((take(region.tid, prefix), take(region.idx, prefix)))
        return self._result(brk, prefix_used, self._fill(region, order[pos + 1 :],
                                                         self.cap - prefix_used))

    def _fill(self, region: _Region, rest: Array, room: int) -> list[tuple[int, int]]:
        """Items after the break item (the candidates at `rest`, in greedy order) that still
        fit, in greedy order (on the host): the candidates' in chunks of growing size until
        no tensor can take more; then, if the candidates ran out first, the largest keys
        below lo of the tensors that still can."""
        if room < min(self.b):
            return []
        taken: list[tuple[int, int]] = []
        blocked: set[int] = set()  # tensors that did not fit once: never again
        pos, size, m = 0, FILL_CHUNK, int(rest.shape[0])

        def open_() -> bool:
            return any(b <= room and i not in blocked for i, b in enumerate(self.b))

        while pos < m and open_():  # a loop over chunks (the first one ends it mostly)
            part = rest[pos : pos + size]
            pos, size = pos + size, 4 * size
            part = part[take(region.bw, part) <= room]
            got, room, bl = _scan(list(zip(to_numpy(take(region.tid, part)).tolist(),
                                           to_numpy(take(region.idx, part)).tolist(),
                                           strict=True)), self.b, room)
            taken += got
            blocked |= bl
        if not open_():  # (the loop ends either so or with the candidates run out)
            return taken
        # the candidates ran out with room left: the tensors' best keys below lo (rare)
        more = []
        for i in range(self.t):  # a loop over tensors
            if self.b[i] <= room and i not in blocked:
                more += self._below_lo(i, room // self.b[i])
        if more:
            more.sort(key=lambda e: (-e[2], e[0], e[1]))
            taken += _scan([(t, j) for t, j, _ in more], self.b, room)[0]
        return taken

    def _below_lo(self, i: int, q: int) -> list[tuple[int, int, float]]:
        """The q largest positive keys of tensor i below lo, as (tensor, index, key)."""
        xp = self.xp
        if self.n[i] == 0:
            return []
        k = self.keys.at(i, None)
        j = xp.nonzero((k < self.lo) & (k > 0))[0]
        if j.shape[0] == 0:
            return []
        kj = take(k, j)
        if j.shape[0] > q:
            top = mask_top(kj, kth_largest(kj, q), q)
            j, kj = j[top], kj[top]
        return [(i, a, b) for a, b in zip(to_numpy(j).tolist(), self._host(kj).tolist(),
                                          strict=True)]

    def _result(self, brk: tuple[int, int] | None, prefix_used: int,
                fill: list[tuple[int, int]]) -> Selection:
        """A's masks (or zeros) with every item taken since scattered in: one flat mask (the
        full pass's buffer when A's masks are its views), the tensors' masks its views."""
        xp, i64 = self.xp, self.xp.int64
        if fill:
            self.taken.append((xp.asarray([t for t, _ in fill], dtype=xp.int32, device=self.dev),
                               xp.asarray([j for _, j in fill], dtype=i64, device=self.dev)))
        flat = self._flat_amask()
        taken = [p for p in self.taken if p[0].shape[0]]
        kept = list(self.a_cnt)
        if taken:  # disjoint from A's mask and from one another
            tid = xp.concat([p[0] for p in taken])
            idx = xp.concat([p[1] for p in taken])
            off = xp.asarray(np.cumsum([0, *self.n[:-1]]), dtype=i64, device=self.dev)
            flat[take(off, tid) + idx] = True
            kept = [a + int(c) for a, c in zip(kept, np.bincount(to_numpy(tid),
                                                                  minlength=self.t),
                                               strict=True)]
        masks, start = [], 0
        for n in self.n:  # a loop over tensors
            masks.append(flat[start : start + n])
            start += n
        used = sum(b * k for b, k in zip(self.b, kept, strict=True))
        return Selection(masks=masks, kept=kept, used=used, prefix_used=prefix_used, brk=brk,
                         fill=fill)

    def _flat_amask(self) -> Array:
        """A's masks as one flat bool array: the full pass's buffer itself when every mask is
        its view (numpy: _full_round hands each tensor its slice, in order), else a new
        array."""
        xp = self.xp
        if self.buf is not None and is_numpy_array(self.buf) and all(
                n == 0 or (m is not None and m.base is self.buf)
                for m, n in zip(self.amask, self.n, strict=True)):
            return self.buf
        if all(m is None for m in self.amask):
            return xp.zeros((sum(self.n),), dtype=xp.bool, device=self.dev)
        return xp.concat([m if m is not None else xp.zeros((n,), dtype=xp.bool,
                                                           device=self.dev)
                          for m, n in zip(self.amask, self.n, strict=True)])


def _host_scalar(v: Array, dtype: Any) -> Any:
    """A 0-d key as a host scalar of `dtype` (exact: the sample's dtype holds the keys')."""
    return np.asarray(float(v), dtype=dtype)


def _sort_desc(keys: np.ndarray, tid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys (>= 0) in decreasing order with their tensors: float32 by :func:`_order_desc`'s
    integer sort, else an argsort (the sample's order among equal keys does not matter)."""
    order = _order_desc(keys, np) if keys.dtype == np.float32 else np.argsort(-keys)
    return keys[order], tid[order]


def _packable(dtype: Any, xp: Any) -> bool:
    """Whether keys of `dtype` in library `xp` are ordered by :func:`_order_desc`'s packed
    integer sort (numpy float32)."""
    return is_numpy_namespace(xp) and dtype == np.float32


def _order_desc(keys: Array, xp: Any) -> Array:
    """The positions of `keys` (>= 0, 1-D) in decreasing key order, ties in position order
    (a stable sort of -keys). numpy float32: one sort of the 64-bit integers ``(~bits(k)) <<
    32 | position`` (the bits of a nonnegative float order as integers; numpy's integer sort
    is several times faster than its stable float argsort)."""
    m = int(keys.shape[0])
    if _packable(keys.dtype, xp) and m < 2**32:
        packed = np.empty(m, dtype=np.uint64)
        halves = packed.view(np.uint32)  # little-endian: (low, high) words
        lo, hi = (0, 1) if np.little_endian else (1, 0)
        np.invert(keys.view(np.uint32), out=halves[hi::2])
        halves[lo::2] = np.arange(m, dtype=np.uint32)
        packed.sort()
        return (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return xp.argsort(-keys, stable=True)


def first_step(total: int) -> int:
    """The stride of the first sample of :func:`greedy_select` over `total` items."""
    return max(1, total // _sample_size(total))


def _sample_size(n: int) -> int:
    """Keys to sample from n: the sample's sort (m log m) against the candidates it leaves
    (about 8 n / sqrt(m)) balance near m = 2 n^(2/3)."""
    return min(SAMPLE[1], max(SAMPLE[0], int(2 * n ** (2 / 3))))


def _has_f64(like: Array) -> bool:
    """Whether the device computes in float64 (not MPS)."""
    return getattr(getattr(like, "device", None), "type", None) != "mps"


def _scan(items: list[tuple[int, int]], bits: list[int], room: int
          ) -> tuple[list[tuple[int, int]], int, set[int]]:
    """Take, in order, every item that fits (a tensor that does not fit once never does)."""
    taken, blocked = [], set()
    for t, j in items:  # at most Σ_l room // b_l items: the fill, not the weights
        if bits[t] <= room:
            taken.append((t, j))
            room -= bits[t]
        else:
            blocked.add(t)
    return taken, room, blocked
