"""Parameter recovery: fit simulated data whose true parameters are known (tests/simulate.py).

Every fit uses fixed data and sampler seeds, so each test is deterministic. The references are
the simulation truths, which no package code computes. Tolerances, for every model:

* truth inside the central 95% posterior interval (fixed effects, group-level sds, the
  correlation, the residual sd). With ~5-8 checked quantities per model and calibrated
  posteriors, a random seed would fail about 1 time in 4-6, so the seeds are fixed; a broken
  likelihood, prior scaling or parameterization moves the posterior far outside.
* ``|posterior mean - truth| <= 3 posterior sd``: the posterior sd is the scale of the
  estimation error (a 3-sd miss has probability ~0.3% per quantity when calibrated).
* the posterior is informative: for an sd, posterior sd < 30% of the truth (with J groups the
  relative error of an sd estimate is about ``1 / sqrt(2 J)``, 0.08-0.11 here), so a test cannot
  pass with a posterior that just reproduces a wide prior.
* group effects: the posterior means of ``u_j`` correlate with the true ``u_j`` above a bound
  set below the expected correlation ``sqrt(lambda)`` (lambda: the reliability of a group
  mean), and at least 85% of the true ``u_j`` lie in their 95% intervals (expected 95%; 85% is
  ~3 binomial sds below for 40-60 groups).
* a healthy sampler: no divergences, R-hat <= 1.02, bulk ESS >= 300.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from simulate import binomial_logistic, logistic, varying_intercept, varying_slope

from multilevel import fit_hierarchical

pytestmark = pytest.mark.slow

SAMPLER = dict(draws=1000, tune=1000, chains=4, progressbar=False, frequentist=False)


def _fit(formula: str, df: pd.DataFrame, seed: int, **kwargs):
    fit = fit_hierarchical(formula, df, seed=seed, **SAMPLER, **kwargs)
    # a healthy sampler, so the checks below mean something (looser than the package's own
    # warning thresholds, R-hat 1.01 and ESS 400, which a correct sampler misses by chance)
    diag = fit.diagnostics().set_index("check")["value"]
    assert diag["divergences"] == 0 and diag["r_hat"] <= 1.02 and diag["ess_bulk"] >= 300, diag
    return fit


def _check_row(row: pd.Series, true: float, label: str, rel_sd: float | None = None) -> None:
    assert row["lower"] <= true <= row["upper"], (
        f"{label}: truth {true} outside 95% interval [{row['lower']:.4g}, {row['upper']:.4g}]"
    )
    assert abs(row["mean"] - true) <= 3 * row["sd"], (
        f"{label}: posterior mean {row['mean']:.4g} more than 3 sd ({row['sd']:.3g}) from {true}"
    )
    if rel_sd is not None:
        assert row["sd"] < rel_sd * true, f"{label}: posterior sd {row['sd']:.3g} too wide"


def _check_truth(fit, truth: dict, group: str = "g") -> None:
    fe = fit.fixed_effects().set_index("term")
    assert list(fe.index) == list(truth["fixed"])
    for term, true in truth["fixed"].items():
        _check_row(fe.loc[term], true, f"fixed {term}")
    vc = fit.variance_components()
    for term, true in truth["sd"].items():
        row = vc.query("group == @group and term == @term and stat == 'sd'").iloc[0]
        _check_row(row, true, f"sd({term} | {group})", rel_sd=0.3)
    for term, true in truth["cor"].items():
        row = vc.query("group == @group and term == @term and stat == 'cor'").iloc[0]
        _check_row(row, true, f"cor({term} | {group})")
    if truth["sigma"] is not None:
        row = vc.query("group == 'Residual' and stat == 'sd'").iloc[0]
        _check_row(row, truth["sigma"], "sigma", rel_sd=0.1)


def _check_group_effects(fit, truth: dict, min_corr: float, group: str = "g") -> None:
    u = fit.posterior[f"u_{group}"].transpose("chain", "draw", ...).to_numpy()
    levels = list(fit.design.groups[0].levels)
    assert levels == sorted(levels)  # g00, g01, ...: the simulation's group order
    u = u.reshape(-1, *u.shape[2:])
    true = truth["u"]
    lo, hi = np.quantile(u, [0.025, 0.975], axis=0)
    for k in range(true.shape[1]):
        corr = np.corrcoef(u.mean(axis=0)[:, k], true[:, k])[0, 1]
        assert corr > min_corr, f"term {k}: corr(posterior mean u, true u) = {corr:.3f}"
        covered = np.mean((lo[:, k] <= true[:, k]) & (true[:, k] <= hi[:, k]))
        assert covered >= 0.85, f"term {k}: only {covered:.0%} of true u_j in their intervals"


def _assert_posterior_average(got: np.ndarray, per_draw: np.ndarray) -> None:
    """``got`` is the posterior mean of ``per_draw`` ``(draws, ...)``, up to thinning.

    The package averages over at most 200 evenly thinned draws, so allow 4 Monte Carlo
    standard errors of a 200-draw mean (thinned draws are close to independent).
    """
    want = per_draw.mean(axis=0)
    tol = 4 * per_draw.std(axis=0) / np.sqrt(min(200, len(per_draw))) + 1e-12
    assert np.all(np.abs(got - want) <= tol), (
        f"max |diff| / tol = {np.max(np.abs(got - want) / tol):.2f}"
    )


def _gaussian_pooling_draws(fit, df: pd.DataFrame) -> np.ndarray:
    """``(draws, groups, terms)``: diagonal of ``A_j = (Sigma^-1 + Z_j'Z_j / sigma^2)^-1
    Z_j'Z_j / sigma^2`` per posterior draw (inverse form, with ``Z = (1, x)`` from ``df``)."""
    post = fit.posterior.stack(s=("chain", "draw")).transpose("s", ...)
    sd = post["sd_g"].to_numpy()
    cor = post["cor_g"].to_numpy() if "cor_g" in post else np.eye(sd.shape[1])[None]
    cov = sd[:, :, None] * cor * sd[:, None, :]
    sigma2 = post["sigma"].to_numpy() ** 2
    out = []
    for _, rows in df.groupby("g"):
        Z = np.column_stack([np.ones(len(rows)), rows["x"]])[:, : sd.shape[1]]
        data_prec = (Z.T @ Z)[None] / sigma2[:, None, None]
        A = np.linalg.inv(np.linalg.inv(cov) + data_prec) @ data_prec
        out.append(np.diagonal(A, axis1=1, axis2=2))
    return np.stack(out, axis=1)


@pytest.fixture(scope="module")
def intercept_fit():
    df, truth = varying_intercept(n_groups=40, n_per=15, seed=11)
    return _fit("y ~ x + (1 | g)", df, seed=1), df, truth


def test_varying_intercept_recovers_truth(intercept_fit):
    fit, _, truth = intercept_fit
    assert fit.parameterization == "marginal"  # 'auto' picks it for a Gaussian model
    _check_truth(fit, truth)
    # reliability of a group mean: 0.64 / (0.64 + 1/15) = 0.91, expected corr ~0.95
    # (observed 0.91 with this seed: 40 groups leave the sample correlation some spread)
    _check_group_effects(fit, truth, min_corr=0.85)


def test_varying_intercept_shrinkage_table(intercept_fit):
    fit, df, _ = intercept_fit
    table = fit.shrinkage()
    assert len(table) == 40
    assert table["level"].tolist() == sorted(df["g"].unique())
    assert table["n"].sum() == len(df)
    assert (table["n"] == 15).all()
    assert table["pooling_factor"].between(0, 1).all()
    # lambda_j = tau^2 / (tau^2 + sigma^2 / n_j), averaged over the posterior draws
    tau2 = fit.posterior["sd_g"].isel(g_term=0).to_numpy().ravel() ** 2
    sigma2 = fit.posterior["sigma"].to_numpy().ravel() ** 2
    counts = df.groupby("g").size().loc[table["level"]].to_numpy()
    lam = tau2[:, None] / (tau2[:, None] + sigma2[:, None] / counts[None, :])
    _assert_posterior_average(table["pooling_factor"].to_numpy(), lam)
    # no pooling: each group's mean of y - x * (posterior mean slope)
    slope = float(fit.posterior["b"].sel(fixed_term="x").mean())
    own = (df["y"] - slope * df["x"]).groupby(df["g"]).mean().loc[table["level"]]
    np.testing.assert_allclose(table["no_pooling"], own.to_numpy(), rtol=1e-8)
    # complete pooling: OLS of y on (1, x)
    ols = np.linalg.lstsq(np.column_stack([np.ones(len(df)), df["x"]]), df["y"], rcond=None)[0]
    np.testing.assert_allclose(table["complete_pooling"], ols[0], rtol=1e-8)
    # partial pooling pulls every group from its own estimate towards the overall intercept
    pulled = (table["partial_mean"] - table["complete_pooling"]).abs()
    assert (pulled < (table["no_pooling"] - table["complete_pooling"]).abs() + 0.05).all()


def test_correlated_varying_slope_recovers_truth():
    df, truth = varying_slope(n_groups=50, n_per=20, cor=0.4, seed=12)
    fit = _fit("y ~ x + (1 + x | g)", df, seed=2)
    assert fit.parameterization == "marginal"
    _check_truth(fit, truth)
    # pooling factors of intercept and slope: the diagonal of the pooling matrix A_j
    table = fit.shrinkage()
    assert len(table) == 100 and table["n"].sum() == 2 * len(df)
    expected = _gaussian_pooling_draws(fit, df)
    for k, term in enumerate(["(Intercept)", "x"]):
        got = table.loc[table["term"] == term, "pooling_factor"].to_numpy()
        assert np.all((got > 0) & (got < 1))
        _assert_posterior_average(got, expected[:, :, k])
    # reliabilities: intercept 1 / (1 + 0.49/20) = 0.98, slope 0.25 / (0.25 + 0.49/20) = 0.91
    # (observed 0.98 and 0.95)
    _check_group_effects(fit, truth, min_corr=0.85)


def test_bernoulli_logistic_recovers_truth():
    df, truth = logistic(n_groups=60, n_per=30, tau=0.8, seed=13)
    fit = _fit("y ~ x + (1 | g)", df, seed=3, family="bernoulli")
    assert fit.parameterization == "linearized"
    assert "sigma" not in fit.posterior
    _check_truth(fit, truth)
    # latent-scale reliability ~0.64 / (0.64 + 5/30) = 0.8, expected corr ~0.89 (observed 0.83)
    _check_group_effects(fit, truth, min_corr=0.75)


def test_binomial_logistic_recovers_truth():
    df, truth = binomial_logistic(n_groups=40, n_cells=4, trials=25, tau=0.6, seed=14)
    fit = _fit("cbind(s, n - s) ~ x + (1 | g)", df, seed=4, family="binomial")
    _check_truth(fit, truth)
    # 100 trials per group: reliability ~0.36 / (0.36 + 5/100) = 0.88, expected corr ~0.94
    # (observed 0.91)
    _check_group_effects(fit, truth, min_corr=0.85)
