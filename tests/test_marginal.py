"""The marginal (group effects integrated out) Gaussian likelihood against independent references.

* The sufficient-statistics log-likelihood (numpy and PyTensor) equals the dense
  ``y ~ N(X b, Z (I_G kron Sigma) Z' + sigma^2 I)`` log-density from scipy, built here from
  the DataFrame without the package's design code, on a small unbalanced dataset (6 groups,
  2 varying terms) at random parameter values; the PyTensor gradient matches central finite
  differences of the numpy function.
* The PyMC marginal model's likelihood term, at random unconstrained points, equals the dense
  density with Sigma built from the model's own ``sd`` and ``cor`` values (this checks how
  the sds and the LKJ Cholesky factor are wired into ``Lambda``).
* ``recover_group_effects`` draws ``u_j`` from the exact conditional normal
  ``N(Sigma Z_j' V_j^{-1} (y_j - X_j b), Sigma - Sigma Z_j' V_j^{-1} Z_j Sigma)`` (dense formula
  here): mean and covariance over 20000 draws at one fixed hyperparameter value agree within
  Monte Carlo error.
* On sleepstudy (and Hsb82, marginal against non-centered), NUTS on the marginal and on the
  non-centered model (``fit_hierarchical``'s sampling paths, and the PyMC non-centered graph
  as a reference) give the same posterior:
  means and sds of b, sd_Subject, cor, sigma and the group effects u_Subject within
  ``4 sqrt(mcse_a^2 + mcse_b^2)`` (a 4-sigma band: with ~50 compared numbers the chance of a
  false failure is < 0.5%).
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr
from scipy import stats
from simulate import varying_slope

from multilevel import ModelSpec, SamplerSettings, datasets, fit_hierarchical
from multilevel.design import build_design
from multilevel.design.statistics import sufficient_stats
from multilevel.engine.pymc import sample_model
from multilevel.engine.recovery import recover_group_effects
from multilevel.model import build_model
from multilevel.model.marginal import marginal_loglik, marginal_loglik_numpy

FORMULA = "y ~ x + (1 + x | g)"
FORMULA_SLEEP = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def small():
    """6 groups of 3-9 rows (unbalanced), a varying intercept and slope."""
    df, _ = varying_slope(n_groups=6, n_per=9, seed=3)
    keep = np.random.default_rng(4).random(len(df)) < 0.7
    keep[df.groupby("g").cumcount().to_numpy() < 3] = True  # at least 3 rows per group
    df = df[keep].reset_index(drop=True)
    design = build_design(ModelSpec.from_formula(FORMULA), df)
    return df, design


def _random_params(rng: np.random.Generator):
    b = rng.normal(0.0, 2.0, size=2)
    sd = np.exp(rng.normal(0.0, 0.7, size=2))
    r = rng.uniform(-0.9, 0.9)
    chol = np.linalg.cholesky(np.array([[1.0, r], [r, 1.0]]))
    sigma = float(np.exp(rng.normal(0.0, 0.5)))
    return b, sd, chol, sigma


def _dense_loglik(df: pd.DataFrame, b, cov, sigma) -> float:
    """log N(y; X b, V), V_ik = [g_i = g_k] z_i' Sigma z_k + sigma^2 [i = k], z_i = (1, x_i)."""
    X = np.column_stack([np.ones(len(df)), df["x"].to_numpy()])
    same = (df["g"].to_numpy()[:, None] == df["g"].to_numpy()[None, :]).astype(float)
    V = same * (X @ cov @ X.T) + sigma**2 * np.eye(len(df))
    return float(stats.multivariate_normal(X @ b, V).logpdf(df["y"].to_numpy()))


def test_numpy_marginal_loglik_equals_dense_mvn(small):
    df, design = small
    assert design.groups[0].counts.min() >= 3 and len(set(design.groups[0].counts)) > 1
    st = sufficient_stats(design)
    rng = np.random.default_rng(0)
    for _ in range(5):
        b, sd, chol, sigma = _random_params(rng)
        lam = sd[:, None] * chol
        got = marginal_loglik_numpy(st, b, lam, sigma)
        want = _dense_loglik(df, b, lam @ lam.T, sigma)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-8)


def test_pytensor_marginal_loglik_and_gradient(small):
    _, design = small
    st = sufficient_stats(design)
    b_v, lam_v, sigma_v = pt.dvector("b"), pt.dmatrix("lam"), pt.dscalar("sigma")
    expr = marginal_loglik(st, b_v, lam_v, sigma_v)
    fn = pytensor.function(  # FAST_COMPILE: a cold C compile takes ~15 s
        [b_v, lam_v, sigma_v], [expr, *pt.grad(expr, [b_v, lam_v, sigma_v])], mode="FAST_COMPILE"
    )
    rng = np.random.default_rng(1)
    for _ in range(3):
        b, sd, chol, sigma = _random_params(rng)
        lam = sd[:, None] * chol
        value, g_b, g_lam, g_sigma = fn(b, lam, sigma)
        np.testing.assert_allclose(value, marginal_loglik_numpy(st, b, lam, sigma), rtol=1e-10)
        h = 1e-6

        def f(b=b, lam=lam, sigma=sigma):
            return marginal_loglik_numpy(st, b, lam, sigma)

        fd_b = [(f(b=b + h * e) - f(b=b - h * e)) / (2 * h) for e in np.eye(2)]
        fd_sigma = (f(sigma=sigma + h) - f(sigma=sigma - h)) / (2 * h)
        # lam is lower triangular in use, but the expression is defined for any matrix
        fd_lam = np.array([
            [(f(lam=lam + h * E) - f(lam=lam - h * E)) / (2 * h)
             for E in (np.eye(2)[:, [i]] @ np.eye(2)[[j], :] for j in range(2))]
            for i in range(2)
        ])
        np.testing.assert_allclose(g_b, fd_b, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(g_sigma, fd_sigma, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(g_lam, fd_lam, rtol=1e-5, atol=1e-5)


def test_pymc_marginal_model_likelihood_equals_dense_mvn(small):
    df, design = small
    model = build_model(design, parameterization="marginal")
    (potential,) = model.potentials
    loglik = model.compile_logp(vars=[potential], jacobian=False)
    outs = model.replace_rvs_by_values([model["b"], model["sd_g"], model["cor_g"], model["sigma"]])
    values = model.compile_fn(outs, inputs=model.value_vars, point_fn=True)
    rng = np.random.default_rng(2)
    start = model.initial_point()
    for _ in range(5):
        point = {k: v + rng.normal(0.0, 0.8, size=np.shape(v)) for k, v in start.items()}
        b, sd, cor, sigma = values(point)
        assert cor[0, 1] != 0.0 and np.allclose(np.diag(cor), 1.0)
        cov = sd[:, None] * cor * sd[None, :]
        np.testing.assert_allclose(loglik(point), _dense_loglik(df, b, cov, sigma), rtol=1e-10)


def test_recovered_group_effects_follow_exact_conditional(small):
    df, design = small
    g = design.groups[0]
    b, sd, chol, sigma = np.array([1.0, 2.0]), np.array([0.8, 0.5]), None, 0.6
    chol = np.linalg.cholesky(np.array([[1.0, 0.5], [0.5, 1.0]]))
    n_draws = 20000
    rep = lambda a: np.broadcast_to(a, (1, n_draws) + np.shape(a)).copy()  # noqa: E731
    post = xr.Dataset({
        "b": (("chain", "draw", "fixed_term"), rep(b)),
        "sd_g": (("chain", "draw", "g_term"), rep(sd)),
        "corchol_g": (("chain", "draw", "corchol_g_dim_0", "corchol_g_dim_1"), rep(chol)),
        "sigma": (("chain", "draw"), rep(sigma)),
    }, coords={"chain": [0], "draw": np.arange(n_draws), "fixed_term": list(design.fixed_names),
               "g_term": list(g.term_names)})
    idata, _ = recover_group_effects(xr.DataTree.from_dict({"posterior": post}), design, seed=5)
    u = idata["posterior"]["u_g"].to_numpy()[0]  # (draw, level, term)
    cov = (sd[:, None] * chol) @ (sd[:, None] * chol).T
    for j, level in enumerate(g.levels):
        rows = df[df["g"] == level]
        Zj = np.column_stack([np.ones(len(rows)), rows["x"].to_numpy()])
        Vj = Zj @ cov @ Zj.T + sigma**2 * np.eye(len(rows))
        gain = cov @ Zj.T @ np.linalg.inv(Vj)
        mean = gain @ (rows["y"].to_numpy() - Zj @ b)  # X_j = Z_j here
        var = cov - gain @ Zj @ cov
        se = np.sqrt(np.diag(var) / n_draws)
        np.testing.assert_array_less(np.abs(u[:, j].mean(axis=0) - mean), 4.5 * se)
        # sample covariance: relative sd of a sample variance is sqrt(2 / n) = 1%
        np.testing.assert_allclose(np.cov(u[:, j].T), var, rtol=0.06, atol=0.06 * var.max())


@pytest.fixture(scope="module")
def sleepstudy_fits():
    """Posteriors of the same model three ways: ``fit_hierarchical`` with the marginal and the
    non-centered parameterization (whatever sampling path it takes for them), and the PyMC
    non-centered model from ``build_model`` sampled by nutpie through PyMC's own graph (the
    readable reference definition)."""
    df = datasets.load("sleepstudy")
    kwargs = dict(draws=1000, tune=1000, chains=4, frequentist=False, progressbar=False)
    marginal = fit_hierarchical(FORMULA_SLEEP, df, parameterization="marginal", seed=21,
                                **kwargs)
    noncentered = fit_hierarchical(FORMULA_SLEEP, df, parameterization="noncentered", seed=22,
                                   **kwargs)
    assert marginal.parameterization == "marginal"
    assert noncentered.parameterization == "noncentered"
    model = build_model(build_design(ModelSpec.from_formula(FORMULA_SLEEP), df),
                        parameterization="noncentered")
    settings = SamplerSettings(draws=1000, tune=1000, chains=4, seed=23)
    reference = sample_model(model, settings, progressbar=False)["posterior"].to_dataset()
    return {"marginal": marginal.posterior, "noncentered": noncentered.posterior,
            "pymc_reference": reference}


def _compare(a: xr.DataArray, b: xr.DataArray, name: str, method: str = "mean") -> None:
    est = {"mean": lambda d: d.mean(("chain", "draw")), "sd": lambda d: d.std(("chain", "draw"))}
    diff = (est[method](a) - est[method](b)).to_numpy()
    mcse_a = az.mcse(a.to_dataset(name="x"), method=method)["x"].to_numpy()
    mcse_b = az.mcse(b.to_dataset(name="x"), method=method)["x"].to_numpy()
    tol = 4 * np.sqrt(mcse_a**2 + mcse_b**2)
    assert np.all(np.abs(diff) <= tol), f"{name} {method}: differences {diff} vs 4 MCSE {tol}"


@pytest.mark.slow
@pytest.mark.parametrize(("first", "second"), [
    ("marginal", "noncentered"), ("marginal", "pymc_reference"), ("noncentered", "pymc_reference"),
])
def test_posteriors_agree_on_sleepstudy(sleepstudy_fits, first, second):
    pa, pb = sleepstudy_fits[first], sleepstudy_fits[second]
    for name in ("b", "sd_Subject", "sigma", "u_Subject"):
        for method in ("mean", "sd"):
            _compare(pa[name], pb[name], f"{first} vs {second}: {name}", method)
    cor_a = pa["cor_Subject"].isel(Subject_term=0, Subject_term_bis=1)
    cor_b = pb["cor_Subject"].isel(Subject_term=0, Subject_term_bis=1)
    for method in ("mean", "sd"):
        _compare(cor_a, cor_b, f"{first} vs {second}: cor", method)


@pytest.mark.slow
def test_posteriors_agree_on_hsb82():
    """The issue's second case: Hsb82 with a contextual effect and a correlated cses slope
    (160 schools, 7185 pupils); marginal against non-centered."""
    formula = "mAch ~ meanses + cses + sector + (1 + cses | school)"
    df = datasets.load("hsb82")
    kwargs = dict(draws=1000, tune=1000, chains=4, frequentist=False, progressbar=False)
    marginal = fit_hierarchical(formula, df, parameterization="marginal", seed=41, **kwargs)
    noncentered = fit_hierarchical(formula, df, parameterization="noncentered", seed=42, **kwargs)
    pa, pb = marginal.posterior, noncentered.posterior
    for name in ("b", "sd_school", "sigma", "u_school"):
        for method in ("mean", "sd"):
            _compare(pa[name], pb[name], f"hsb82 {name}", method)
    for method in ("mean", "sd"):
        _compare(pa["cor_school"].isel(school_term=0, school_term_bis=1),
                 pb["cor_school"].isel(school_term=0, school_term_bis=1), "hsb82 cor", method)
