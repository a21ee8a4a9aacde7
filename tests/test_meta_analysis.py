"""Known standard errors (``y | se(s) ~ ...``): REML meta-analysis and the Bayesian side.

References for the frequentist fit:

* metafor's documented output for the BCG vaccine trials (``dat.bcg``; log risk ratios from the
  2x2 tables, ``escalc(measure = "RR")``): ``rma(yi, vi, method = "REML")`` gives
  tau^2 = 0.3132, estimate -0.7145, se 0.1798, I^2 = 92.22%; with the moderator ``ablat``
  (absolute latitude) tau^2 = 0.0764, intercept 0.2515 (se 0.2491), ablat -0.0291 (se 0.0072),
  residual I^2 = 68.39%;
* pymare's ``VarianceBasedLikelihoodEstimator(method="REML")`` (Wald standard errors), an
  independent implementation;
* the closed-form BLUPs of a random-effects meta-analysis, ``tau^2 / (tau^2 + v_i)
  (y_i - mu)``, with conditional sds ``sqrt(tau^2 v_i / (tau^2 + v_i))``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import multilevel as ml
from multilevel.design.statistics import typical_within_variance
from multilevel.frequentist import MetaAnalysisFit, fit_frequentist

ROOT = Path(__file__).resolve().parents[1]
# tpos, tneg, cpos, cneg of the 13 BCG trials (metafor's dat.bcg), and the absolute latitude.
BCG = np.array([
    [4, 119, 11, 128], [6, 300, 29, 274], [3, 228, 11, 209], [62, 13536, 248, 12619],
    [33, 5036, 47, 5761], [180, 1361, 372, 1079], [8, 2537, 10, 619], [505, 87886, 499, 87892],
    [29, 7470, 45, 7232], [17, 1699, 65, 1600], [186, 50448, 141, 27197], [5, 2493, 3, 2338],
    [27, 16886, 29, 17825],
], dtype=float)
ABLAT = [44, 55, 42, 52, 13, 44, 19, 13, 27, 42, 18, 33, 33]


@pytest.fixture(scope="module")
def bcg() -> pd.DataFrame:
    tpos, tneg, cpos, cneg = BCG.T
    yi = np.log(tpos / (tpos + tneg)) - np.log(cpos / (cpos + cneg))
    vi = 1 / tpos - 1 / (tpos + tneg) + 1 / cpos - 1 / (cpos + cneg)
    return pd.DataFrame({"trial": [f"trial{i + 1:02d}" for i in range(len(yi))], "yi": yi,
                         "sei": np.sqrt(vi), "ablat": ABLAT})


def _pymare(df: pd.DataFrame, X: np.ndarray):
    from pymare.estimators import VarianceBasedLikelihoodEstimator

    est = VarianceBasedLikelihoodEstimator(method="REML", small_sample_correction="wald")
    est.fit(df["yi"].to_numpy()[:, None], df["sei"].to_numpy()[:, None] ** 2, X)
    p = est.params_
    return float(p["tau2"].ravel()[0]), p["fe_params"][:, 0], p["inv_cov"][:, :, 0]


def test_bcg_matches_metafor(bcg):
    fit = fit_frequentist("yi | se(sei) ~ 1 + (1 | trial)", bcg)
    assert isinstance(fit, MetaAnalysisFit) and fit.method == "REML"
    fe = fit.fixed_effects().set_index("term").loc["(Intercept)"]
    assert fit.tau2 == pytest.approx(0.3132, abs=5e-5)
    assert fe["estimate"] == pytest.approx(-0.7145, abs=5e-5)
    assert fe["std_error"] == pytest.approx(0.1798, abs=5e-5)
    icc = fit.icc().set_index("type")
    assert icc.loc["I2", "group"] == "trial"
    assert 100 * icc.loc["I2", "estimate"] == pytest.approx(92.22, abs=5e-3)
    vc = fit.variance_components().set_index("stat")["estimate"]
    assert vc["var"] == fit.tau2 and vc["sd"] == pytest.approx(np.sqrt(fit.tau2))


@pytest.mark.parametrize("moderator", [False, True])
def test_matches_pymare(bcg, moderator):
    formula = "yi | se(sei) ~ ablat + (1 | trial)" if moderator else "yi | se(sei) ~ 1 + (1 | trial)"
    X = np.column_stack([np.ones(len(bcg))] + ([bcg["ablat"]] if moderator else []))
    tau2, beta, cov = _pymare(bcg, X)
    fit = fit_frequentist(formula, bcg)
    print(f"tau2 ours {fit.tau2:.8f} pymare {tau2:.8f}")
    assert fit.tau2 == pytest.approx(tau2, rel=1e-5)
    np.testing.assert_allclose(fit.beta.to_numpy(), beta, rtol=1e-5)
    np.testing.assert_allclose(fit.cov_fixed.to_numpy(), cov, rtol=1e-4)


def test_meta_regression_matches_metafor(bcg):
    fit = fit_frequentist("yi | se(sei) ~ ablat + (1 | trial)", bcg)
    fe = fit.fixed_effects().set_index("term")
    # metafor's Fisher scoring stops once tau^2 changes by < 1e-5; pymare and we agree on
    # 0.076348 (test_matches_pymare), which metafor prints as 0.0764
    assert fit.tau2 == pytest.approx(0.0764, abs=1e-4)
    assert fe.loc["(Intercept)", "estimate"] == pytest.approx(0.2515, abs=5e-5)
    assert fe.loc["(Intercept)", "std_error"] == pytest.approx(0.2491, abs=5e-5)
    assert fe.loc["ablat", "estimate"] == pytest.approx(-0.0291, abs=5e-5)
    assert fe.loc["ablat", "std_error"] == pytest.approx(0.0072, abs=5e-5)


def test_meta_regression_residual_i2_matches_metafor(bcg):
    fit = fit_frequentist("yi | se(sei) ~ ablat + (1 | trial)", bcg)
    assert 100 * fit.icc()["estimate"].iloc[0] == pytest.approx(68.39, abs=5e-3)


def test_blups_are_the_closed_form(bcg):
    fit = fit_frequentist("yi | se(sei) ~ 1 + (1 | trial)", bcg)
    mu, v = float(fit.beta.iloc[0]), bcg["sei"].to_numpy() ** 2
    ranef = fit.ranef().set_index("level").loc[bcg["trial"]]
    shrink = fit.tau2 / (fit.tau2 + v)
    np.testing.assert_allclose(ranef["estimate"], shrink * (bcg["yi"] - mu), rtol=1e-10)
    np.testing.assert_allclose(ranef["cond_sd"], np.sqrt(fit.tau2 * v / (fit.tau2 + v)),
                               rtol=1e-10)


def test_eight_schools_reml_is_on_the_boundary():
    """REML puts tau^2 at 0 (as metafor's rma: estimate 7.686), so the estimate is the
    fixed-effect (inverse-variance weighted) mean with se ``1 / sqrt(sum w)``."""
    df = ml.datasets.load("eight_schools")
    fit = fit_frequentist("effect | se(se) ~ 1 + (1 | school)", df)
    fe = fit.fixed_effects().iloc[0]
    w = 1 / df["se"].to_numpy(float) ** 2
    assert fit.tau2 == 0.0 and fit.singular and fit.messages
    assert fe["estimate"] == pytest.approx(w @ df["effect"] / w.sum(), rel=1e-10)
    assert fe["estimate"] == pytest.approx(7.686, abs=5e-4)
    assert fe["std_error"] == pytest.approx(1 / np.sqrt(w.sum()), rel=1e-10)
    assert fit.icc()["estimate"].iloc[0] == 0.0


def test_builder_equals_formula():
    assert ml.meta_analysis("effect", "se", group="school") == ml.ModelSpec.from_formula(
        "effect | se(se) ~ 1 + (1 | school)")
    assert ml.meta_analysis("yi", "sei", group="trial", predictors=["ablat"]) == (
        ml.ModelSpec.from_formula("yi | se(sei) ~ ablat + (1 | trial)"))


@pytest.fixture(scope="module")
def schools_fit():
    return ml.fit_hierarchical(ROOT / "models" / "eight_schools.toml", progressbar=False)


def test_eight_schools_toml_loads_and_fits(schools_fit):
    spec = ml.load_spec(ROOT / "models" / "eight_schools.toml")
    assert spec == ml.meta_analysis("effect", "se", group="school").replace(
        priors=spec.priors, sampler=spec.sampler, data="eight_schools", name=spec.name)
    assert spec.prior_overrides == {"sd(school)": ml.Prior("HalfCauchy", beta=5.0)}
    fit = schools_fit
    assert isinstance(fit.frequentist, MetaAnalysisFit)
    priors = fit.priors().set_index("target")
    assert priors.loc["sd((Intercept) | school)", "prior"] == "HalfCauchy(beta=5)"
    assert priors.loc["sd((Intercept) | school)", "source"] == "sd(school)"
    assert "sigma" not in priors.index and "sigma" not in fit.posterior
    checks = fit.diagnostics().set_index("check")
    assert checks.drop(["parameterization", "prior_sensitivity"])["ok"].all()
    # Eight schools is the textbook case of a between-school sd the data say little about.
    assert not checks.loc["prior_sensitivity", "ok"]
    assert "sd_school[(Intercept)] (prior-dominated)" in checks.loc["prior_sensitivity", "remedy"]


def test_eight_schools_posterior_i2_and_shrinkage(schools_fit):
    fit = schools_fit
    df = ml.datasets.load("eight_schools")
    icc = fit.icc()
    assert icc["type"].tolist() == ["I2"] and icc["group"].tolist() == ["school"]
    tau = fit.posterior["sd_school"].isel(school_term=0).to_numpy()
    s2 = typical_within_variance(df["se"].to_numpy(float))
    w = 1 / df["se"].to_numpy(float) ** 2
    assert s2 == pytest.approx((len(w) - 1) * w.sum() / (w.sum() ** 2 - (w**2).sum()))
    assert icc["mean"].iloc[0] == pytest.approx(np.mean(tau**2 / (tau**2 + s2)), rel=1e-10)
    assert icc["reml"].iloc[0] == 0.0
    table = fit.shrinkage()
    assert {"blup", "blup_cond_sd"} <= set(table.columns)
    assert table["level"].tolist() == df["school"].tolist()
    # REML puts tau^2 at 0: every BLUP is the pooled mean, with no conditional spread
    np.testing.assert_allclose(table["blup"], fit.frequentist.beta.iloc[0])
    np.testing.assert_allclose(table["blup_cond_sd"], 0.0)
    # partial pooling sits between a school's own estimate and the pooled mean (checked where
    # the two are far enough apart for Monte Carlo error not to matter)
    own, pooled = table["no_pooling"].to_numpy(), fit.fixed_effects()["mean"].iloc[0]
    np.testing.assert_allclose(own, df["effect"].to_numpy(float))
    far = np.abs(own - pooled) > 3
    partial = table["partial_mean"].to_numpy()[far]
    assert far.sum() >= 4
    assert np.all((partial - pooled) * (own[far] - pooled) > 0)
    assert np.all(np.abs(partial - pooled) < np.abs(own[far] - pooled))


@pytest.mark.filterwarnings("ignore:Sampler checks failed")
def test_posterior_blups_with_heterogeneity(bcg):
    fit = ml.fit_hierarchical(ml.meta_analysis("yi", "sei", group="trial"), bcg, draws=500,
                              tune=500, chains=2, seed=3, progressbar=False)
    table = fit.shrinkage().set_index("level").loc[bcg["trial"]]
    mu, tau2, v = float(fit.frequentist.beta.iloc[0]), fit.frequentist.tau2, bcg["sei"] ** 2
    blup = mu + tau2 / (tau2 + v) * (bcg["yi"] - mu)
    np.testing.assert_allclose(table["blup"], blup.to_numpy(), rtol=1e-8)
    assert fit.icc().set_index("type").loc["I2", "reml"] == pytest.approx(0.9222, abs=5e-5)
