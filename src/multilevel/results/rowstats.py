"""Per-row posterior summaries of linear combinations of draws, without materializing them.

A prediction of row ``i`` at draw ``s`` is a short weighted sum of rows of one table of draws,
``value[i, s] = sum_c w[i, c] * E[idx[i, c], s]``: ``E`` stacks the fixed effects, the group
effects and any new-level effects (one row each, ``draws`` columns), ``idx``/``w`` say which
rows a prediction uses with which weights (the row's ``x`` and ``z`` values).
:func:`summarize_rows` forms each row's draws in a private buffer, optionally applies the
inverse logit, and returns the mean, sd (ddof 1), median and the ``prob`` central interval with
numpy's default (linear) quantile rule, found exactly by a counting pass rather than a sort
(:func:`_order_stats`).
Rows run in parallel; memory is one buffer of ``draws`` per thread.

Examples
--------
>>> import numpy as np
>>> E = np.random.default_rng(0).normal(size=(2, 1001))
>>> idx, w = np.array([[0, 1]]), np.array([[1.0, 2.0]])
>>> out = summarize_rows(E, idx, w, False, 0.9)
>>> v = E[0] + 2 * E[1]
>>> bool(np.allclose(out[0], [v.mean(), v.std(ddof=1), *np.quantile(v, [0.5, 0.05, 0.95])]))
True
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["combine_rows", "summarize_rows"]


#: Buckets of the counting pass of :func:`_order_stats`.
BUCKETS = 1024


@numba.njit(cache=True, nogil=True)
def _order_stats(a, ks, out, bucket, counts):
    """The order statistics ``ks`` (sorted, 0-based) of ``a``, exactly, into ``out``.

    One pass counts the values into :data:`BUCKETS` equal-width buckets between the minimum and
    the maximum; the cumulative counts tell which bucket holds each wanted order statistic and
    its rank there; only those buckets' values are then sorted. Two mostly branch-free passes
    instead of a sort or a branchy quickselect. NaN draws give NaN; infinite draws, or a range
    too wide or too narrow for the bucket scale, fall back to a sort."""
    n = a.shape[0]
    lo, hi = a[0], a[0]
    total = 0.0
    for t in range(n):
        v = a[t]
        total += v
        lo = min(lo, v)
        hi = max(hi, v)
    if total != total:  # NaN: a NaN draw, or +inf and -inf together
        for t in range(n):
            if a[t] != a[t]:  # as np.quantile: a NaN draw makes every quantile NaN
                out[:] = np.nan
                return
    if hi == lo:
        for j in range(ks.shape[0]):
            out[j] = lo
        return
    nb = counts.shape[0]
    scale = nb / (hi - lo)
    if not (math.isfinite(scale) and scale > 0.0 and math.isfinite(lo) and math.isfinite(hi)):
        ordered = np.sort(a)  # infinite draws or a range outside floating point: plain sort
        for j in range(ks.shape[0]):
            out[j] = ordered[ks[j]]
        return
    counts[:] = 0
    for t in range(n):
        b = min(int((a[t] - lo) * scale), nb - 1)
        bucket[t] = b
        counts[b] += 1
    # which bucket holds each wanted order statistic, and where its values go in ``pool``
    first = np.empty(nb, dtype=np.int64)  # pool offset of each needed bucket, -1 if not needed
    first[:] = -1
    where = np.empty(ks.shape[0], dtype=np.int64)
    below = 0
    b = 0
    size = 0
    base = np.empty(ks.shape[0], dtype=np.int64)  # order statistics below each one's bucket
    for j in range(ks.shape[0]):
        while ks[j] >= below + counts[b]:
            below += counts[b]
            b += 1
        if first[b] < 0:
            first[b] = size
            size += counts[b]
        where[j] = b
        base[j] = below
    pool = np.empty(size)
    fill = first.copy()
    for t in range(n):  # one pass gathers the needed buckets' values
        f = fill[bucket[t]]
        if f >= 0:
            pool[f] = a[t]
            fill[bucket[t]] = f + 1
    for j in range(ks.shape[0]):
        b = where[j]
        if j == 0 or where[j - 1] != b:
            pool[first[b] : first[b] + counts[b]].sort()
        out[j] = pool[first[b] + ks[j] - base[j]]


@numba.njit(cache=True, nogil=True)
def _lerp(a, b, t):
    """numpy's linear interpolation between order statistics (exact at both ends)."""
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


@numba.njit(cache=True, nogil=True)
def _positions(S, prob):
    """Linear-rule positions ``h`` of the median, lower and upper quantiles, and the sorted
    order statistics they need (``floor(h)`` and the next, clipped to the sample)."""
    h = np.array([0.5, 0.5 * (1.0 - prob), 0.5 * (1.0 + prob)]) * (S - 1)
    ks = np.empty(6, dtype=np.int64)
    for j in range(3):
        k = int(math.floor(h[j]))
        ks[2 * j] = k
        ks[2 * j + 1] = min(k + 1, S - 1)
    return h, ks


@numba.njit(cache=True, nogil=True)
def _row(E, idx, w, i, buf):
    S = E.shape[1]
    for s in range(S):
        buf[s] = 0.0
    for c in range(idx.shape[1]):
        wc = w[i, c]
        if wc != 0.0:
            r = idx[i, c]
            for s in range(S):
                buf[s] += wc * E[r, s]


@numba.njit(cache=True, nogil=True)
def _expit(x):
    return 1.0 / (1.0 + math.exp(-x))


@numba.njit(cache=True, nogil=True, parallel=True)
def _summaries(E, idx, w, order, logistic, prob, out):
    S = E.shape[1]
    h, ks = _positions(S, prob)
    sorter = np.argsort(ks)
    sorted_ks = ks[sorter]
    for ii in numba.prange(idx.shape[0]):
        i = order[ii]  # rows sorted by group: the same effect rows stay in cache
        buf = np.empty(S)
        bucket = np.empty(S, dtype=np.int32)
        counts = np.empty(BUCKETS, dtype=np.int64)
        stats = np.empty(6)
        _row(E, idx, w, i, buf)
        resp = buf
        if logistic:
            resp = np.empty(S)
            for s in range(S):
                resp[s] = _expit(buf[s])
        total = 0.0
        for s in range(S):
            total += resp[s]
        mean = total / S
        ss = 0.0
        for s in range(S):
            ss += (resp[s] - mean) ** 2
        out[i, 0] = mean
        out[i, 1] = math.sqrt(ss / (S - 1)) if S > 1 else math.nan
        found = np.empty(6)
        _order_stats(buf, sorted_ks, found, bucket, counts)
        stats[sorter] = found
        if logistic:  # quantiles commute with the monotone inverse link
            for j in range(6):
                stats[j] = _expit(stats[j])
        for j in range(3):
            out[i, 2 + j] = _lerp(stats[2 * j], stats[2 * j + 1], h[j] - ks[2 * j])


@numba.njit(cache=True, nogil=True, parallel=True)
def _combine(E, idx, w, logistic, out):
    for i in numba.prange(idx.shape[0]):
        _row(E, idx, w, i, out[i])
        if logistic:
            for s in range(out.shape[1]):
                out[i, s] = _expit(out[i, s])


def summarize_rows(
    E: np.ndarray, idx: np.ndarray, w: np.ndarray, logistic: bool, prob: float
) -> np.ndarray:
    """``(rows, 5)``: mean, sd, median, lower, upper of each row's draws (module docstring)."""
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    order = np.lexsort(idx.T[::-1]) if idx.shape[1] else np.arange(idx.shape[0])
    out = np.empty((idx.shape[0], 5))
    _summaries(np.ascontiguousarray(E, dtype=float), idx, np.ascontiguousarray(w, dtype=float),
               order.astype(np.int64), bool(logistic), float(prob), out)
    return out


def combine_rows(E: np.ndarray, idx: np.ndarray, w: np.ndarray, logistic: bool) -> np.ndarray:
    """``(rows, draws)`` values ``sum_c w[i, c] E[idx[i, c]]`` (inverse logit if ``logistic``)."""
    out = np.empty((idx.shape[0], E.shape[1]))
    _combine(np.ascontiguousarray(E, dtype=float), np.ascontiguousarray(idx, dtype=np.int64),
             np.ascontiguousarray(w, dtype=float), bool(logistic), out)
    return out
