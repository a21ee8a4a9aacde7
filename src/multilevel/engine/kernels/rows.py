"""Loops over the rows of the logistic kernels, written so that LLVM vectorises them (numba).

A logistic log-density spends most of its time on one ``exp`` and one ``log`` per row.
numba calls the scalar libm functions for ``math.exp``/``math.log1p``, one row at a time
(its vectorised SVML versions need an llvmlite built with them, which pip's is not). Here the
two are polynomials, which LLVM compiles into packed SIMD instructions, with the accuracy of
libm:

* ``e^x`` for ``x <= 0`` (:func:`exp_neg_abs`): ``x = k ln 2 + r`` with ``|r| <= ln 2 / 2``
  (Cody-Waite: ``ln 2`` in two parts, so ``r`` is exact), ``e^r`` by its Taylor polynomial of
  degree 13 (truncation below ``4e-18``), ``2^k`` assembled in the exponent bits: within 1 ulp
  of ``math.exp``;
* ``log(1 + v)`` for ``0 <= v <= 1`` (:func:`log1p_unit`): ``2 atanh(s)`` with ``s = v / (2 + v)
  <= 1/3``, its odd series to ``s^41`` (truncation below ``1e-19``): within 3 ulp of
  ``math.log1p``.

The loops read each row's data in column order: ``XT`` is the transposed fixed-effect matrix
``(p, n)`` and ``ZT`` the transposed varying-term matrix ``(q, n)``, so a column is contiguous.

Examples
--------
>>> import numpy as np
>>> eta = np.array([-2.0, 0.0, 3.0])
>>> resid = np.empty(3)
>>> lp = logistic_rows(eta, np.array([0.0, 1.0, 1.0]), np.ones(3), resid)
>>> bool(np.isclose(lp, -np.logaddexp(0, -2.0) - np.log(2) - np.logaddexp(0, -3.0)))
True
>>> np.round(resid, 6).tolist()  # y - expit(eta)
[-0.119203, 0.5, 0.047426]
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["columns_dot", "columns_times", "exp_neg_abs", "log1p_unit", "logistic_rows",
           "summed"]

_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts: kf * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.0 / math.log(2.0)
_ROUND = 6755399441055744.0  # 1.5 * 2^52: x + _ROUND rounds x to an integer in the low bits
_ROUND_BITS = int(np.float64(_ROUND).view(np.int64))
_FLOOR = -708.0  # e^-708 ~ 3e-308, the smallest power of two kept normal
_CONTRACT = {"contract"}  # fused multiply-adds only: every rounding stays as written
_REASSOC = {"reassoc", "contract"}  # sums in any order (SIMD partial sums)
# error_model="numpy" everywhere: Python's check for a zero divisor is a branch that keeps
# LLVM from vectorising a loop (no divisor here can be zero).


@numba.njit(cache=True, nogil=True, inline="always")
def _exp_reduced(r):
    """``e^r`` for ``|r| <= ln 2 / 2``: the Taylor polynomial of degree 13 (Horner)."""
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    return p * r + 1.0


@numba.njit(cache=True, nogil=True, inline="always")
def log1p_unit(v):
    """``log(1 + v)`` for ``0 <= v <= 1``: ``2 atanh(v / (2 + v))`` by its series.

    Examples
    --------
    >>> bool(abs(log1p_unit(0.5) - math.log1p(0.5)) < 1e-16)
    True
    """
    s = v / (2.0 + v)
    s2 = s * s
    p = 1.0 / 41.0
    p = p * s2 + 1.0 / 39.0
    p = p * s2 + 1.0 / 37.0
    p = p * s2 + 1.0 / 35.0
    p = p * s2 + 1.0 / 33.0
    p = p * s2 + 1.0 / 31.0
    p = p * s2 + 1.0 / 29.0
    p = p * s2 + 1.0 / 27.0
    p = p * s2 + 1.0 / 25.0
    p = p * s2 + 1.0 / 23.0
    p = p * s2 + 1.0 / 21.0
    p = p * s2 + 1.0 / 19.0
    p = p * s2 + 1.0 / 17.0
    p = p * s2 + 1.0 / 15.0
    p = p * s2 + 1.0 / 13.0
    p = p * s2 + 1.0 / 11.0
    p = p * s2 + 1.0 / 9.0
    p = p * s2 + 1.0 / 7.0
    p = p * s2 + 1.0 / 5.0
    p = p * s2 + 1.0 / 3.0
    p = p * s2 + 1.0
    return 2.0 * s * p


@numba.njit(cache=True, nogil=True, fastmath=_CONTRACT, error_model="numpy")
def exp_neg_abs(x, out, work):
    """``out[i] = e^-|x[i]|`` (``work``: a scratch array of the same length).

    Examples
    --------
    >>> out = np.empty(2)
    >>> exp_neg_abs(np.array([1.0, -2.0]), out, np.empty(2))
    >>> bool(np.allclose(out, np.exp([-1.0, -2.0]), rtol=1e-15))
    True
    """
    n = x.shape[0]
    for i in range(n):  # k = round(x / ln 2) in the low bits of work[i]
        work[i] = max(-abs(x[i]), _FLOOR) * _INV_LN2 + _ROUND
    kbits = work.view(np.int64)
    scale = out.view(np.int64)
    for i in range(n):  # 2^k, as the bits of a double
        scale[i] = (kbits[i] - _ROUND_BITS + 1023) << 52
    for i in range(n):
        kf = work[i] - _ROUND
        r = (max(-abs(x[i]), _FLOOR) - kf * _LN2_HI) - kf * _LN2_LO
        out[i] = _exp_reduced(r) * out[i]


@numba.njit(cache=True, nogil=True, fastmath=_REASSOC, error_model="numpy")
def summed(x):
    """``sum(x)`` in SIMD partial sums.

    Examples
    --------
    >>> summed(np.arange(5.0))
    10.0
    """
    acc = 0.0
    for i in range(x.shape[0]):
        acc += x[i]
    return acc


@numba.njit(cache=True, nogil=True, fastmath=_CONTRACT, error_model="numpy")
def logistic_rows(eta, y, trials, resid):
    """``sum_i y_i eta_i - n_i log(1 + e^eta_i)``, the binomial log-likelihood without its
    ``log C(n, y)``, and ``resid[i] = y_i - n_i expit(eta_i)``, its derivative in ``eta_i``
    (overflow-free for any ``eta``)."""
    n = eta.shape[0]
    rows = np.empty(n)
    exp_neg_abs(eta, resid, rows)
    for i in range(n):
        v = resid[i]
        e = eta[i]
        rows[i] = y[i] * e - trials[i] * (log1p_unit(v) + max(e, 0.0))
        resid[i] = y[i] - trials[i] * ((1.0 if e > 0.0 else v) / (1.0 + v))
    return summed(rows)


@numba.njit(cache=True, nogil=True, fastmath=_CONTRACT, error_model="numpy")
def columns_times(XT, beta, out):
    """``out = XT' beta`` (``XT``: ``(p, n)``), one column at a time.

    Examples
    --------
    >>> out = np.empty(2)
    >>> columns_times(np.array([[1.0, 1.0], [2.0, 3.0]]), np.array([1.0, 0.5]), out)
    >>> out.tolist()
    [2.0, 2.5]
    """
    p, n = XT.shape
    for i in range(n):
        out[i] = 0.0
    for k in range(p):
        b = beta[k]
        for i in range(n):
            out[i] += XT[k, i] * b


@numba.njit(cache=True, nogil=True, fastmath=_REASSOC, error_model="numpy")
def columns_dot(XT, r, out):
    """``out = XT r`` (``XT``: ``(p, n)``), each entry a SIMD dot product.

    Examples
    --------
    >>> out = np.empty(2)
    >>> columns_dot(np.array([[1.0, 1.0], [2.0, 3.0]]), np.array([1.0, 2.0]), out)
    >>> out.tolist()
    [3.0, 8.0]
    """
    p, n = XT.shape
    for k in range(p):
        acc = 0.0
        for i in range(n):
            acc += XT[k, i] * r[i]
        out[k] = acc
