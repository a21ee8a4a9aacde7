"""Simulated multilevel data with known truth, for the recovery tests.

Every simulator takes a ``seed`` and returns ``(df, truth)``: a DataFrame whose grouping column
``g`` holds string labels ``g00, g01, ...`` (zero-padded, so alphabetical order is group order),
and a dict with the true fixed effects (lme4 names), group-level sds, correlations, residual sd
and the realised group effects ``u`` (``(n_groups, q)``, in group order).

Examples
--------
>>> df, truth = varying_intercept(n_groups=3, n_per=2, seed=0)
>>> df.shape, sorted(truth)
((6, 3), ['cor', 'fixed', 'sd', 'sigma', 'u'])
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

__all__ = ["binomial_logistic", "logistic", "nested", "varying_intercept", "varying_slope"]


def _labels(n_groups: int, n_per: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.repeat(np.arange(n_groups), n_per)
    width = len(str(n_groups - 1))
    return idx, np.array([f"g{j:0{width}d}" for j in idx])


def varying_intercept(
    n_groups: int = 40, n_per: int = 15, *, beta: tuple[float, float] = (2.0, 0.5),
    tau: float = 0.8, sigma: float = 1.0, seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """``y = b0 + b1 x + u_j + e``, ``u_j ~ N(0, tau^2)``, ``e ~ N(0, sigma^2)``, ``x ~ N(0, 1)``."""
    rng = np.random.default_rng(seed)
    idx, labels = _labels(n_groups, n_per)
    u = rng.normal(0.0, tau, size=n_groups)
    x = rng.normal(size=idx.size)
    y = beta[0] + beta[1] * x + u[idx] + rng.normal(0.0, sigma, size=idx.size)
    df = pd.DataFrame({"y": y, "x": x, "g": labels})
    truth = {
        "fixed": {"(Intercept)": beta[0], "x": beta[1]},
        "sd": {"(Intercept)": tau}, "cor": {}, "sigma": sigma, "u": u[:, None],
    }
    return df, truth


def varying_slope(
    n_groups: int = 50, n_per: int = 20, *, beta: tuple[float, float] = (1.0, 2.0),
    sds: tuple[float, float] = (1.0, 0.5), cor: float = 0.4, sigma: float = 0.7, seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """``y = (b0 + u0_j) + (b1 + u1_j) x + e`` with ``(u0, u1)`` bivariate normal."""
    rng = np.random.default_rng(seed)
    idx, labels = _labels(n_groups, n_per)
    cov = np.array([[sds[0] ** 2, cor * sds[0] * sds[1]], [cor * sds[0] * sds[1], sds[1] ** 2]])
    u = rng.multivariate_normal(np.zeros(2), cov, size=n_groups)
    x = rng.normal(size=idx.size)
    y = (beta[0] + u[idx, 0]) + (beta[1] + u[idx, 1]) * x + rng.normal(0.0, sigma, size=idx.size)
    df = pd.DataFrame({"y": y, "x": x, "g": labels})
    truth = {
        "fixed": {"(Intercept)": beta[0], "x": beta[1]},
        "sd": {"(Intercept)": sds[0], "x": sds[1]}, "cor": {"(Intercept),x": cor},
        "sigma": sigma, "u": u,
    }
    return df, truth


def logistic(
    n_groups: int = 60, n_per: int = 30, *, beta: tuple[float, float] = (-0.5, 1.0),
    tau: float = 0.8, seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Bernoulli ``y`` with ``logit P(y = 1) = b0 + b1 x + u_j``, ``u_j ~ N(0, tau^2)``."""
    rng = np.random.default_rng(seed)
    idx, labels = _labels(n_groups, n_per)
    u = rng.normal(0.0, tau, size=n_groups)
    x = rng.normal(size=idx.size)
    y = rng.binomial(1, expit(beta[0] + beta[1] * x + u[idx]))
    df = pd.DataFrame({"y": y.astype(int), "x": x, "g": labels})
    truth = {
        "fixed": {"(Intercept)": beta[0], "x": beta[1]},
        "sd": {"(Intercept)": tau}, "cor": {}, "sigma": None, "u": u[:, None],
    }
    return df, truth


def binomial_logistic(
    n_groups: int = 40, n_cells: int = 4, trials: int = 25, *,
    beta: tuple[float, float] = (-1.0, 0.8), tau: float = 0.6, seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Binomial counts ``s`` of ``n`` trials per (group, x) cell, logit link as in
    :func:`logistic`; ``x`` takes ``n_cells`` evenly spaced values in [-1.5, 1.5]."""
    rng = np.random.default_rng(seed)
    idx, labels = _labels(n_groups, n_cells)
    u = rng.normal(0.0, tau, size=n_groups)
    x = np.tile(np.linspace(-1.5, 1.5, n_cells), n_groups)
    n = np.full(idx.size, trials)
    s = rng.binomial(n, expit(beta[0] + beta[1] * x + u[idx]))
    df = pd.DataFrame({"s": s, "n": n, "x": x, "g": labels})
    truth = {
        "fixed": {"(Intercept)": beta[0], "x": beta[1]},
        "sd": {"(Intercept)": tau}, "cor": {}, "sigma": None, "u": u[:, None],
    }
    return df, truth


def nested(
    n_schools: int = 30, n_classes: int = 4, n_per: int = 8, *, beta: tuple[float, float] = (1.0, 0.5),
    sds: tuple[float, float, float] = (0.8, 0.3, 0.5), cor: float = -0.3, tau_class: float = 0.6,
    sigma: float = 1.0, seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Students in classes in schools: ``y = (b0 + u0_s + w_c) + (b1 + u1_s) x + e`` with a
    correlated school intercept and slope ``(u0, u1)`` (sds ``sds[:2]``, correlation ``cor``) and a
    class intercept ``w_c ~ N(0, tau_class^2)``. Class labels repeat across schools (``c0`` in
    every school), as in real data: only ``school/klass`` identifies a class. Unbalanced: class
    sizes vary between ``n_per // 2`` and ``n_per``."""
    rng = np.random.default_rng(seed)
    cov = np.array([[sds[0] ** 2, cor * sds[0] * sds[1]], [cor * sds[0] * sds[1], sds[1] ** 2]])
    u = rng.multivariate_normal(np.zeros(2), cov, size=n_schools)
    w = rng.normal(0.0, tau_class, size=(n_schools, n_classes))
    sizes = rng.integers(n_per // 2, n_per + 1, size=(n_schools, n_classes))
    school = np.repeat(np.repeat(np.arange(n_schools), n_classes), sizes.ravel())
    klass = np.repeat(np.tile(np.arange(n_classes), n_schools), sizes.ravel())
    x = rng.normal(size=school.size)
    y = (beta[0] + u[school, 0] + w[school, klass] + (beta[1] + u[school, 1]) * x
         + rng.normal(0.0, sigma, size=school.size))
    width = len(str(n_schools - 1))
    df = pd.DataFrame({"y": y, "x": x, "school": [f"s{j:0{width}d}" for j in school],
                       "klass": [f"c{k}" for k in klass]})
    truth = {"fixed": {"(Intercept)": beta[0], "x": beta[1]}, "sd": {"(Intercept)": sds[0], "x": sds[1]},
             "cor": {"(Intercept):x": cor}, "sd_class": tau_class, "sigma": sigma, "u": u, "w": w}
    return df, truth
