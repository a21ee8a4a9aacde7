"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari and Gelman 2018) of every
sampler path of ``fit_hierarchical``.

For each kind of model the parameters are drawn from explicit priors (the same priors the fit is
given), data are simulated from them, the model is fitted, and the rank of each true parameter
among ``L`` thinned posterior draws is recorded. When the sampler and the model agree, each rank
is uniform on ``0..L``; a bias shows as a slope in the rank histogram, an over- or under-dispersed
posterior as a U or a hump. The truth and the data come from numpy alone (nothing in
``multilevel`` computes them), so a wrong likelihood, prior or parameterization cannot agree with
itself here.

Kinds (``KINDS``), one per sampler path:

* ``intercept``: Gaussian varying intercept (marginal: group effects integrated out);
* ``slope``: Gaussian correlated varying intercept and slope, LKJ(2) (marginal);
* ``bernoulli``: logistic varying intercept on 0/1 rows (linearized);
* ``binomial``: logistic varying intercept on counts of 10 trials (linearized);
* ``logit_slope``: logistic correlated varying intercept and slope, LKJ(2) (linearized);
* ``bernoulli_nc``: the ``bernoulli`` model with ``parameterization='noncentered'`` (the path
  of logistic models with several grouping factors);
* ``nested``: two nested factors ``(1 | a/b)`` (nested marginal);
* ``crossed``: Gaussian crossed intercepts ``(1 | a) + (1 | b) + (1 | c)``, ``c`` nested in
  ``b`` (linearized: conditional coordinates for ``a`` and ``c``, ``b`` non-centered);
* ``meta``: known-SE meta-analysis ``y | se(s) ~ 1 + (1 | study)`` (non-centered);
* ``ar1``: varying intercept with AR(1) residuals along integer times (marginal with R(phi)).

Used by ``bench/calibrate.py`` (``make calibrate``: >= 200 simulations per kind, figure and
``bench/CALIBRATION.md``) and ``tests/test_calibration.py`` (about 20 per kind, loose bounds).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

import multilevel as ml
from multilevel import naming

__all__ = ["KINDS", "Kind", "chi_square_p", "rank_statistics", "simulate_and_rank"]

P = ml.Prior
NORMAL = P("Normal", mu=0.0, sigma=1.0)
HALF = P("HalfNormal", sigma=1.0)


@dataclass(frozen=True)
class Kind:
    """One sampler path: its formula, explicit priors, and a simulator from those priors."""

    name: str
    formula: str
    family: str
    priors: dict
    simulate: Callable[[np.random.Generator], tuple[pd.DataFrame, dict[str, float]]]
    parameterization: str
    request: str = "auto"


def _groups(n_groups: int, size: int) -> np.ndarray:
    return np.repeat(np.arange(n_groups), size)


def _sim_intercept(rng):
    g = _groups(20, 8)
    b0, b1, sd, sigma = rng.normal(), rng.normal(), abs(rng.normal()), abs(rng.normal())
    x = rng.normal(size=g.size)
    u = rng.normal(0, sd, 20)
    y = b0 + b1 * x + u[g] + rng.normal(0, sigma, g.size)
    df = pd.DataFrame({"y": y, "x": x, "g": [f"g{j}" for j in g]})
    return df, {"Intercept": b0, "x": b1, "sd(g)": sd, "sigma": sigma}


def _sim_slope(rng):
    n_groups = 25
    g = _groups(n_groups, 8)
    b0, b1 = rng.normal(size=2)
    sd0, sd1, sigma = np.abs(rng.normal(size=3))
    r = 2 * rng.beta(2.0, 2.0) - 1  # LKJ(eta = 2) for a 2 x 2 correlation
    cov = np.array([[sd0**2, r * sd0 * sd1], [r * sd0 * sd1, sd1**2]])
    u = rng.multivariate_normal([0, 0], cov, n_groups)
    x = rng.normal(size=g.size)
    y = b0 + u[g, 0] + (b1 + u[g, 1]) * x + rng.normal(0, sigma, g.size)
    df = pd.DataFrame({"y": y, "x": x, "g": [f"g{j}" for j in g]})
    return df, {"Intercept": b0, "x": b1, "sd((Intercept) | g)": sd0, "sd(x | g)": sd1,
                "cor(g)": r, "sigma": sigma}


def _sim_bernoulli(rng):
    g = _groups(30, 15)
    b0, b1, sd = rng.normal(), rng.normal(), abs(rng.normal())
    x = rng.normal(size=g.size)
    eta = b0 + b1 * x + rng.normal(0, sd, 30)[g]
    y = (rng.uniform(size=g.size) < 1 / (1 + np.exp(-eta))).astype(int)
    df = pd.DataFrame({"y": y, "x": x, "g": [f"g{j}" for j in g]})
    return df, {"Intercept": b0, "x": b1, "sd(g)": sd}


def _sim_logit_slope(rng):
    n_groups = 30
    g = _groups(n_groups, 20)
    b0, b1 = rng.normal(size=2)
    sd0, sd1 = np.abs(rng.normal(size=2))
    r = 2 * rng.beta(2.0, 2.0) - 1  # LKJ(eta = 2) for a 2 x 2 correlation
    cov = np.array([[sd0**2, r * sd0 * sd1], [r * sd0 * sd1, sd1**2]])
    u = rng.multivariate_normal([0, 0], cov, n_groups)
    x = rng.normal(size=g.size)
    eta = b0 + u[g, 0] + (b1 + u[g, 1]) * x
    y = (rng.uniform(size=g.size) < 1 / (1 + np.exp(-eta))).astype(int)
    df = pd.DataFrame({"y": y, "x": x, "g": [f"g{j}" for j in g]})
    return df, {"Intercept": b0, "x": b1, "sd((Intercept) | g)": sd0, "sd(x | g)": sd1,
                "cor(g)": r}


def _sim_binomial(rng):
    g = _groups(20, 5)
    b0, b1, sd = rng.normal(), rng.normal(), abs(rng.normal())
    x = rng.normal(size=g.size)
    eta = b0 + b1 * x + rng.normal(0, sd, 20)[g]
    n = np.full(g.size, 10)
    s = rng.binomial(n, 1 / (1 + np.exp(-eta)))
    df = pd.DataFrame({"s": s, "n": n, "x": x, "g": [f"g{j}" for j in g]})
    return df, {"Intercept": b0, "x": b1, "sd(g)": sd}


def _sim_nested(rng):
    n_a, n_b, size = 12, 3, 4
    a = np.repeat(np.arange(n_a), n_b * size)
    b = np.tile(np.repeat(np.arange(n_b), size), n_a)
    b0, b1, sd_a, sd_ab, sigma = rng.normal(), rng.normal(), *np.abs(rng.normal(size=3))
    x = rng.normal(size=a.size)
    u_a = rng.normal(0, sd_a, n_a)
    u_ab = rng.normal(0, sd_ab, (n_a, n_b))
    y = b0 + b1 * x + u_a[a] + u_ab[a, b] + rng.normal(0, sigma, a.size)
    df = pd.DataFrame({"y": y, "x": x, "a": [f"a{j}" for j in a], "b": [f"b{k}" for k in b]})
    return df, {"Intercept": b0, "x": b1, "sd(a)": sd_a, "sd(a:b)": sd_ab, "sigma": sigma}


def _sim_crossed(rng):
    n, n_a, n_b = 240, 12, 5
    a, b = rng.integers(0, n_a, n), rng.integers(0, n_b, n)
    c = 3 * b + rng.integers(0, 3, n)
    b0, b1, sd_a, sd_b, sd_c, sigma = *rng.normal(size=2), *np.abs(rng.normal(size=4))
    x = rng.normal(size=n)
    y = (b0 + b1 * x + rng.normal(0, sd_a, n_a)[a] + rng.normal(0, sd_b, n_b)[b]
         + rng.normal(0, sd_c, 3 * n_b)[c] + rng.normal(0, sigma, n))
    df = pd.DataFrame({"y": y, "x": x, "a": [f"a{j}" for j in a], "b": [f"b{j}" for j in b],
                       "c": [f"c{j}" for j in c]})
    return df, {"Intercept": b0, "x": b1, "sd(a)": sd_a, "sd(b)": sd_b, "sd(c)": sd_c,
                "sigma": sigma}


def _sim_meta(rng):
    k = 15
    mu, tau = rng.normal(), abs(rng.normal())
    se = rng.uniform(0.3, 1.0, k)
    y = mu + rng.normal(0, tau, k) + rng.normal(0, se)
    df = pd.DataFrame({"y": y, "s": se, "study": [f"s{j}" for j in range(k)]})
    return df, {"Intercept": mu, "sd(study)": tau}


def _sim_ar1(rng):
    n_sub, n_t = 30, 6
    b0, b1, sd, sigma = rng.normal(), rng.normal(), abs(rng.normal()), abs(rng.normal())
    phi = rng.uniform(-1, 1)
    e = np.empty((n_sub, n_t))
    e[:, 0] = rng.normal(size=n_sub)
    for t in range(1, n_t):
        e[:, t] = phi * e[:, t - 1] + np.sqrt(1 - phi**2) * rng.normal(size=n_sub)
    t = np.tile(np.arange(n_t), n_sub)
    subj = np.repeat(np.arange(n_sub), n_t)
    x = rng.normal(size=subj.size)
    y = b0 + b1 * x + rng.normal(0, sd, n_sub)[subj] + sigma * e.ravel()
    df = pd.DataFrame({"y": y, "x": x, "t": t.astype(float), "g": [f"g{j}" for j in subj]})
    return df, {"Intercept": b0, "x": b1, "sd(g)": sd, "sigma": sigma, "phi": phi}


GAUSS = {"Intercept": NORMAL, "b": NORMAL, "sigma": HALF, "sd": HALF}
LOGIT = {"Intercept": NORMAL, "b": NORMAL, "sd": HALF}

KINDS = {k.name: k for k in (
    Kind("intercept", "y ~ x + (1 | g)", "gaussian", GAUSS, _sim_intercept, "marginal"),
    Kind("slope", "y ~ x + (1 + x | g)", "gaussian", {**GAUSS, "cor": P("LKJ", eta=2.0)},
         _sim_slope, "marginal"),
    Kind("bernoulli", "y ~ x + (1 | g)", "bernoulli", LOGIT, _sim_bernoulli, "linearized"),
    Kind("binomial", "cbind(s, n - s) ~ x + (1 | g)", "binomial", LOGIT, _sim_binomial,
         "linearized"),
    Kind("logit_slope", "y ~ x + (1 + x | g)", "bernoulli", {**LOGIT, "cor": P("LKJ", eta=2.0)},
         _sim_logit_slope, "linearized"),
    Kind("bernoulli_nc", "y ~ x + (1 | g)", "bernoulli", LOGIT, _sim_bernoulli, "noncentered",
         "noncentered"),
    Kind("nested", "y ~ x + (1 | a/b)", "gaussian", GAUSS, _sim_nested, "marginal"),
    Kind("crossed", "y ~ x + (1 | a) + (1 | b) + (1 | c)", "gaussian", GAUSS, _sim_crossed,
         "linearized"),
    Kind("meta", "y | se(s) ~ 1 + (1 | study)", "gaussian",
         {"Intercept": NORMAL, "sd": HALF}, _sim_meta, "noncentered"),
    Kind("ar1", "y ~ x + (1 | g) + ar1(t | g)", "gaussian", GAUSS, _sim_ar1, "marginal"),
)}


def posterior_of(fit, name: str) -> np.ndarray:
    """``(chain, draw)`` draws of a parameter named as in the truth dicts above."""
    post = fit.posterior
    fixed = list(post[naming.FIXED].coords[naming.FIXED_DIM].values)
    if name == "Intercept":
        return post[naming.FIXED].sel({naming.FIXED_DIM: "(Intercept)"}).values
    if name in fixed:
        return post[naming.FIXED].sel({naming.FIXED_DIM: name}).values
    if name in ("sigma", "phi"):
        return post[naming.SIGMA if name == "sigma" else naming.PHI].values
    if name.startswith("cor("):
        factor = name[4:-1]
        return post[naming.cor_name(factor)].values[..., 0, 1]
    inner = name[3:-1]  # sd(g) or sd(term | g)
    term, factor = (inner.split(" | ") if " | " in inner else (None, inner))
    sd = post[naming.sd_name(factor)].values
    if term is None:
        return sd[..., 0]
    design_group = next(g for g in fit.design.groups if g.factor == factor)
    return sd[..., design_group.term_names.index(term)]


def simulate_and_rank(kind: Kind, seed: int, *, n_ranks: int = 100, draws: int = 500,
                      tune: int = 500, chains: int = 2) -> dict:
    """One SBC replicate: truth from the prior, data, fit, and the rank of each parameter among
    ``n_ranks`` evenly thinned draws (0..n_ranks), plus 50%/90% interval coverage."""
    rng = np.random.default_rng(seed)
    df, truth = kind.simulate(rng)
    spec = ml.ModelSpec.from_formula(kind.formula, family=kind.family, priors=kind.priors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ml.fit_hierarchical(spec, df, draws=draws, tune=tune, chains=chains, seed=seed,
                                  frequentist=False, progressbar=False,
                                  parameterization=kind.request)
    if fit.parameterization != kind.parameterization:
        raise AssertionError(f"{kind.name}: sampled {fit.parameterization}, "
                             f"expected {kind.parameterization}")
    out = {"kind": kind.name, "seed": seed,
           "divergences": int(fit.idata["sample_stats"]["diverging"].values.sum())}
    for name, true in truth.items():
        d = posterior_of(fit, name)
        flat = d.reshape(-1)
        thin = d[:, :: max(1, d.shape[1] * d.shape[0] // n_ranks)].reshape(-1)[:n_ranks]
        if thin.size < n_ranks:
            raise ValueError(f"{kind.name}: {flat.size} draws cannot be thinned to {n_ranks}")
        lo50, hi50, lo90, hi90 = np.quantile(flat, [0.25, 0.75, 0.05, 0.95])
        out[name] = {"truth": float(true), "rank": int(np.sum(thin < true)),
                     "in50": bool(lo50 <= true <= hi50), "in90": bool(lo90 <= true <= hi90)}
    return out


def chi_square_p(ranks: np.ndarray, n_ranks: int, bins: int = 10) -> float:
    """p-value of the chi-square test that ``ranks`` (integers 0..n_ranks) are uniform, with the
    ``n_ranks + 1`` values split into ``bins`` contiguous bins and their exact expected counts."""
    values = np.arange(n_ranks + 1)
    which = values * bins // (n_ranks + 1)
    expected = np.bincount(which, minlength=bins) / (n_ranks + 1) * len(ranks)
    observed = np.bincount(which[np.asarray(ranks)], minlength=bins)
    return float(stats.chisquare(observed, expected).pvalue)


def rank_statistics(results: list[dict], n_ranks: int) -> pd.DataFrame:
    """Per kind and parameter: simulations, chi-square p, mean normalised rank, coverages."""
    rows = []
    for kind in dict.fromkeys(r["kind"] for r in results):
        these = [r for r in results if r["kind"] == kind]
        names = [k for k in these[0] if isinstance(these[0][k], dict)]
        for name in names:
            ranks = np.array([r[name]["rank"] for r in these])
            rows.append({
                "kind": kind, "parameter": name, "sims": len(these),
                "chi2_p": chi_square_p(ranks, n_ranks),
                "mean_rank": float(ranks.mean() / n_ranks),
                "cover50": float(np.mean([r[name]["in50"] for r in these])),
                "cover90": float(np.mean([r[name]["in90"] for r in these])),
                "sims_with_divergences": int(sum(r["divergences"] > 0 for r in these)),
            })
    return pd.DataFrame(rows)
