r"""Explained variance of multilevel models, posterior and frequentist side by side.

* :func:`r2_nakagawa`: Nakagawa and Schielzeth's marginal and conditional :math:`R^2`;
* :func:`r2_snijders_bosker`: Snijders and Bosker's level-1 and level-2 :math:`R^2` against the
  empty model;
* :func:`variance_reduction`: the proportional reduction of each variance component between
  two nested models.

Posterior columns are those of :func:`multilevel.results.describe`; the frequentist value
of the fit's method (``reml``/``ml``/``laplace``) is the last column.

Examples
--------
>>> from multilevel import datasets, fit_hierarchical
>>> fit = fit_hierarchical("mAch ~ meanses + (1 | school)", datasets.load("hsb82"), draws=200,
...                        tune=200, chains=2, seed=1, progressbar=False)
>>> r2_nakagawa(fit)["type"].tolist()
['marginal', 'conditional']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from multilevel import naming
from multilevel.design.statistics import fitted_variance
from multilevel.errors import SpecError
from multilevel.results.core import DEFAULT_PROB, draws_of, summarize
from multilevel.results.tables import random_variance_draws, residual_variance_draws

__all__ = ["r2_nakagawa", "r2_snijders_bosker", "variance_reduction"]


def _variance_parts(fit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per draw: var(X b), sum of random variances, level-1 variance."""
    b = draws_of(fit.posterior, naming.FIXED)
    var_f = fitted_variance(fit.design, b)
    var_r = sum(random_variance_draws(fit.posterior, g) for g in fit.design.groups)
    return var_f, var_r, residual_variance_draws(fit.posterior, fit.design)


def r2_nakagawa(fit, prob: float = DEFAULT_PROB) -> pd.DataFrame:
    r"""Nakagawa and Schielzeth's marginal and conditional :math:`R^2` (``performance``'s).

    With :math:`\sigma_f^2 = \mathrm{var}(X\beta)` over the rows, :math:`\sigma_r^2` the random
    variances averaged over the rows (:mod:`multilevel.results.tables`) and
    :math:`\sigma_e^2` the level-1 variance (:math:`\sigma^2`, or :math:`\pi^2/3` for the
    logit link): marginal :math:`R^2 = \sigma_f^2 / (\sigma_f^2 + \sigma_r^2 + \sigma_e^2)`,
    conditional :math:`R^2 = (\sigma_f^2 + \sigma_r^2) / (\sigma_f^2 + \sigma_r^2 +
    \sigma_e^2)`. Per draw, and at the frequentist estimates.
    """
    vf, vr, ve = _variance_parts(fit)
    total = vf + vr + ve
    table = summarize([({"type": "marginal"}, vf / total),
                       ({"type": "conditional"}, (vf + vr) / total)], prob)
    f = fit.frequentist
    if f is not None:
        ft = f.var_fixed + sum(f.var_random) + f.var_residual
        table[fit.method] = [f.var_fixed / ft, (f.var_fixed + sum(f.var_random)) / ft]
    return table


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draws of two independent posteriors paired by position (same shape)."""
    if a.shape == b.shape:
        return a, b
    n = min(a.size, b.size)
    return a.reshape(-1)[:n][None, :], b.reshape(-1)[:n][None, :]


def _two_level_parts(fit) -> tuple[np.ndarray, np.ndarray]:
    if fit.design.spec.is_logistic or len(fit.design.groups) != 1:
        raise SpecError("Snijders-Bosker R^2 is defined for Gaussian two-level models (one "
                        "grouping factor); use r2_nakagawa otherwise.")
    g = fit.design.groups[0]
    return residual_variance_draws(fit.posterior, fit.design), random_variance_draws(
        fit.posterior, g)


def r2_snijders_bosker(fit, null_fit, n: float | None = None,
                       prob: float = DEFAULT_PROB) -> pd.DataFrame:
    r"""Snijders and Bosker's explained variance at level 1 and level 2.

    The proportional reduction of prediction error against the empty model ``null_fit``
    (:math:`y = \gamma_0 + u_{0j} + e_{ij}`; Snijders and Bosker 1994; 2012, sec. 7.1):

    .. math::

        R_1^2 = 1 - \frac{\sigma_M^2 + \tau_M^2}{\sigma_0^2 + \tau_0^2},\qquad
        R_2^2 = 1 - \frac{\sigma_M^2 / n + \tau_M^2}{\sigma_0^2 / n + \tau_0^2},

    :math:`n` a representative group size (default: the harmonic mean :math:`J / \sum_j
    1/n_j`). With random slopes :math:`\tau^2` is the random variance averaged over the rows
    (Snijders and Bosker advise computing these from the random-intercept version). Posterior:
    draws of the two fits paired by position (independent posteriors); frequentist: from the
    two fits' estimates.
    """
    s1, t1 = _two_level_parts(fit)
    s0, t0 = _two_level_parts(null_fit)
    counts = fit.design.groups[0].counts
    n = float(len(counts) / np.sum(1.0 / counts)) if n is None else float(n)
    s1, s0 = _paired(s1, s0)
    t1, t0 = _paired(t1, t0)
    table = summarize([
        ({"level": "1", "measure": "R1^2", "n": n}, 1 - (s1 + t1) / (s0 + t0)),
        ({"level": "2", "measure": "R2^2", "n": n}, 1 - (s1 / n + t1) / (s0 / n + t0)),
    ], prob)
    f1, f0 = fit.frequentist, null_fit.frequentist
    if f1 is not None and f0 is not None:
        fs1, ft1, fs0, ft0 = f1.var_residual, f1.var_random[0], f0.var_residual, f0.var_random[0]
        table[fit.method] = [1 - (fs1 + ft1) / (fs0 + ft0), 1 - (fs1 / n + ft1) / (fs0 / n + ft0)]
    return table


def variance_reduction(null_fit, fit, prob: float = DEFAULT_PROB) -> pd.DataFrame:
    r"""Proportional reduction of each variance component from ``null_fit`` to ``fit``.

    For every variance the two models share (a group term's variance, the residual variance):
    :math:`\mathrm{PRE} = (v_0 - v_1) / v_0`. Negative values are possible (adding a level-1
    predictor can raise :math:`\tau^2`). Posterior draws are paired by position.
    """
    labelled, est = [], []
    f0, f1 = null_fit.frequentist, fit.frequentist
    fv0 = None if f0 is None else f0.variance_components().query("stat == 'var'")
    fv1 = None if f1 is None else f1.variance_components().query("stat == 'var'")

    def parts(f):
        out = {}
        for g in f.design.groups:
            sd = draws_of(f.posterior, naming.sd_name(g.factor))
            out |= {(g.factor, t): sd[..., k] ** 2 for k, t in enumerate(g.term_names)}
        if naming.SIGMA in f.posterior:
            out[("Residual", "")] = draws_of(f.posterior, naming.SIGMA) ** 2
        return out

    p0, p1 = parts(null_fit), parts(fit)
    for key in (k for k in p0 if k in p1):
        a, b = _paired(p0[key], p1[key])
        labelled.append(({"group": key[0], "term": key[1]}, (a - b) / a))
        if fv0 is not None and fv1 is not None:
            v0 = fv0.query("group == @key[0] and term == @key[1]")["estimate"]
            v1 = fv1.query("group == @key[0] and term == @key[1]")["estimate"]
            est.append(float((v0.iloc[0] - v1.iloc[0]) / v0.iloc[0]))
    table = summarize(labelled, prob)
    if est:
        table[fit.method] = est
    return table
