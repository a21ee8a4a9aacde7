"""The vectorised row loops of the logistic kernels (``engine/kernels/rows.py``) against numpy's
libm-backed ``exp``, ``log1p``, ``logaddexp`` and scipy's ``expit``, which they replace.

The whole logistic log-densities built on them are checked against PyMC in
``test_fast_logp.py``; here each piece is held to the accuracy its docstring claims, over
dense grids and the edges (0, tiny, huge and infinite arguments).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy.special import expit

from multilevel.engine.kernels.rows import (
    columns_dot,
    columns_times,
    exp_neg_abs,
    log1p_unit,
    logistic_rows,
    summed,
)


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return np.abs(got - want) / np.spacing(np.abs(want))


def test_exp_is_within_one_ulp_of_libm():
    rng = np.random.default_rng(0)
    x = np.concatenate([
        rng.uniform(-50, 50, 500_000),
        rng.uniform(-708, 708, 200_000),
        np.linspace(-1.0, 1.0, 200_001),  # across the reduction's rounding boundaries
        np.arange(-1000, 1001) * np.log(2) / 2,  # k ln 2 / 2: ties of round(x / ln 2)
        [0.0, -0.0, 1e-300, -1e-300, 5e-324],
    ])
    out, work = np.empty_like(x), np.empty_like(x)
    exp_neg_abs(x, out, work)
    assert np.max(_ulps(out, np.exp(-np.abs(x)))) <= 1.0
    assert out[-5:].tolist() == [1.0] * 5


def test_exp_of_large_arguments_is_below_the_floor():
    x = np.array([708.0, 709.0, 745.0, 1e6, -1e300, np.inf, -np.inf])
    out, work = np.empty_like(x), np.empty_like(x)
    exp_neg_abs(x, out, work)
    assert np.all(out >= 0.0) and np.all(out <= np.exp(-707.9))
    assert out[0] == pytest.approx(np.exp(-708.0), rel=1e-15)


@numba.njit(error_model="numpy")
def _log1p_all(v):
    out = np.empty_like(v)
    for i in range(v.shape[0]):  # inlined into a loop, as in logistic_rows
        out[i] = log1p_unit(v[i])
    return out


def test_log1p_is_within_three_ulp_of_libm():
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.uniform(0, 1, 500_000), np.linspace(0, 1, 100_001),
                        10.0 ** -rng.uniform(0, 300, 100_000), [1.0, 5e-324, 0.0]])
    got, want = _log1p_all(v), np.log1p(v)
    pos = want > 0
    assert np.max(_ulps(got[pos], want[pos])) <= 3.0
    assert got[-1] == 0.0


@pytest.mark.parametrize("scale", [0.5, 3.0, 40.0, 800.0])
def test_logistic_rows_match_numpy(scale):
    rng = np.random.default_rng(2)
    n = 5_003  # not a multiple of the vector width: the loop's remainder is used
    eta = rng.normal(0, scale, n)
    trials = rng.integers(1, 6, n).astype(float)
    y = rng.binomial(trials.astype(int), 0.4).astype(float)
    resid = np.empty(n)
    lp = logistic_rows(eta, y, trials, resid)
    want = np.sum(y * eta - trials * np.logaddexp(0.0, eta))
    assert lp == pytest.approx(want, rel=1e-13)
    # y - n expit(eta) cancels where they nearly agree: an absolute error of a few eps * n
    np.testing.assert_allclose(resid, y - trials * expit(eta), rtol=1e-14, atol=2e-15 * trials.max())


def test_logistic_rows_propagate_nan_and_hold_at_huge_eta():
    resid = np.empty(3)
    assert np.isnan(logistic_rows(np.array([np.nan, 0.0, 0.0]), np.ones(3), np.ones(3), resid))
    eta, y = np.array([-1e4, 1e4, 1e4]), np.array([0.0, 1.0, 0.0])
    lp = logistic_rows(eta, y, np.ones(3), resid)
    assert lp == pytest.approx(-1e4, rel=1e-15)  # the third row: 0 - log(1 + e^1e4)
    np.testing.assert_allclose(resid, [0.0, 0.0, -1.0], atol=1e-300)


def test_column_products_and_sum_match_numpy():
    rng = np.random.default_rng(3)
    XT = rng.normal(size=(7, 1_001))
    beta, r = rng.normal(size=7), rng.normal(size=1_001)
    out = np.empty(1_001)
    columns_times(XT, beta, out)
    np.testing.assert_allclose(out, XT.T @ beta, rtol=1e-13, atol=1e-13)
    g = np.empty(7)
    columns_dot(XT, r, g)
    np.testing.assert_allclose(g, XT @ r, rtol=1e-12, atol=1e-12)
    assert summed(r) == pytest.approx(np.sum(r), rel=1e-12, abs=1e-12)
