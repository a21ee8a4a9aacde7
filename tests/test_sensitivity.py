"""Power-scaling prior sensitivity (:mod:`multilevel.results.sensitivity`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

import multilevel as ml
from multilevel import Prior
from multilevel.results.loglik import with_log_likelihood
from multilevel.results.sensitivity import (
    log_prior_draws,
    prior_logpdf,
    prior_sensitivity,
    sensitivity_check,
    summed_log_likelihood,
)

FORMULA = "Reaction ~ Days + (Days | Subject)"
VARIABLES = ["b[(Intercept)]", "b[Days]", "sd_Subject[(Intercept)]", "sd_Subject[Days]",
             "cor_Subject[(Intercept),Days]", "sigma"]


@pytest.fixture(scope="module")
def sleepstudy():
    return ml.datasets.load("sleepstudy")


def _fit(df, priors=None, **kwargs):
    spec = ml.ModelSpec.from_formula(FORMULA, priors=priors or {})
    return ml.fit_hierarchical(spec, df, seed=1, frequentist=False, progressbar=False, **kwargs)


@pytest.mark.parametrize(("prior", "reference"), [
    (Prior("Normal", mu=1.0, sigma=2.0), stats.norm(1.0, 2.0).logpdf),
    (Prior("StudentT", nu=3.0, mu=-1.0, sigma=0.5), stats.t(3.0, -1.0, 0.5).logpdf),
    (Prior("StudentT", nu=3.0, sigma=0.5), stats.t(3.0, 0.0, 0.5).logpdf),
    (Prior("Cauchy", alpha=0.5, beta=2.0), stats.cauchy(0.5, 2.0).logpdf),
    (Prior("Flat"), np.zeros_like),
    (Prior("HalfNormal", sigma=2.0), stats.halfnorm(scale=2.0).logpdf),
    (Prior("HalfStudentT", nu=3.0, sigma=2.0), lambda x: np.log(2) + stats.t(3.0, 0, 2.0).logpdf(x)),
    (Prior("HalfCauchy", beta=2.0), stats.halfcauchy(scale=2.0).logpdf),
    (Prior("Exponential", lam=0.5), stats.expon(scale=2.0).logpdf),
    (Prior("Gamma", alpha=2.0, beta=3.0), stats.gamma(2.0, scale=1 / 3.0).logpdf),
    (Prior("InverseGamma", alpha=2.0, beta=3.0), stats.invgamma(2.0, scale=3.0).logpdf),
])
def test_prior_logpdf_matches_scipy(prior, reference):
    x = np.array([[0.1, 0.7], [1.3, 4.0]])
    np.testing.assert_allclose(prior_logpdf(prior, x), reference(x), rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Sampler checks failed")
def test_log_prior_sums_the_top_level_priors(sleepstudy):
    priors = {"Intercept": Prior("Normal", mu=250.0, sigma=50.0),
              "Days": Prior("StudentT", nu=4.0, mu=5.0, sigma=5.0),
              "sd(Days | Subject)": Prior("Gamma", alpha=2.0, beta=0.2),
              "sigma": Prior("HalfNormal", sigma=50.0), "cor(Subject)": Prior("LKJ", eta=2.0)}
    fit = _fit(sleepstudy, priors, draws=100, tune=200, chains=2)
    post = fit.posterior

    def draws(name, **sel):
        return post[name].sel(**sel).transpose("chain", "draw").to_numpy()

    sd_intercept_prior = fit.resolved_priors.sd["Subject"]["(Intercept)"].kwargs  # default
    r = draws("cor_Subject", Subject_term="(Intercept)", Subject_term_bis="Days")
    expected = (
        stats.norm(250, 50).logpdf(draws("b", fixed_term="(Intercept)"))
        + stats.t(4.0, 5.0, 5.0).logpdf(draws("b", fixed_term="Days"))
        + np.log(2) + stats.t(3.0, 0, sd_intercept_prior["sigma"]).logpdf(
            draws("sd_Subject", Subject_term="(Intercept)"))
        + stats.gamma(2.0, scale=5.0).logpdf(draws("sd_Subject", Subject_term="Days"))
        + stats.halfnorm(scale=50.0).logpdf(draws("sigma"))
        + (2.0 - 1.0) * np.log1p(-r**2)  # LKJ(eta): (eta - 1) log det R
    )
    np.testing.assert_allclose(log_prior_draws(fit), expected, rtol=1e-10)


def test_default_priors_raise_no_flag(sleepstudy):
    fit = _fit(sleepstudy)
    assert fit.parameterization == "marginal"
    # The marginal fit power-scales the marginal likelihood it was sampled with: check it
    # against a dense multivariate normal density of y at a few draws.
    marginal = summed_log_likelihood(fit)
    post, d = fit.posterior, fit.design
    for c, k in [(0, 0), (1, 17), (3, 999)]:
        point = post.isel(chain=c, draw=k)
        sd, cor = point["sd_Subject"].to_numpy(), point["cor_Subject"].to_numpy()
        cov_u = sd[:, None] * cor * sd[None, :]
        g = d.groups[0]
        Z = np.zeros((d.n_obs, g.n_levels * 2))
        for t in range(2):
            Z[np.arange(d.n_obs), g.index * 2 + t] = g.Z[:, t]
        V = Z @ np.kron(np.eye(g.n_levels), cov_u) @ Z.T + float(point["sigma"]) ** 2 * np.eye(d.n_obs)
        dense = stats.multivariate_normal(d.X @ point["b"].to_numpy(), V).logpdf(d.y)
        assert marginal[c, k] == pytest.approx(dense, rel=1e-10)
    # The conditional path sums the pointwise log-likelihood a block of draws at a time.
    conditional = dataclasses.replace(fit, parameterization="noncentered")
    pointwise = with_log_likelihood(fit)["log_likelihood"]["y"].transpose("chain", "draw", "obs")
    for block in (1000, 2_000_000, None):  # 5 draws, whole chains, or the compiled kernel
        np.testing.assert_allclose(summed_log_likelihood(conditional, block=block),
                                   pointwise.to_numpy().sum(axis=-1), rtol=1e-12)
    table = prior_sensitivity(fit)
    print(table.to_string())
    assert table.columns.tolist() == ["variable", "prior", "likelihood", "diagnosis"]
    assert table["variable"].tolist() == VARIABLES
    assert (table["diagnosis"] == "-").all()
    assert (table["prior"] < 0.05).all() and (table["prior"] >= 0).all()
    assert table.set_index("variable").loc["sigma", "likelihood"] > 0.05


@pytest.mark.parametrize(("formula", "data", "family"), [
    ("use ~ urban + age + (1 + urban | district)", "contraception", "bernoulli"),
    ("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | period)", "cbpp", "binomial"),
    ("effect | se(se) ~ 1 + (1 | school)", "eight_schools", "gaussian"),
])
def test_compiled_summed_log_likelihood_matches_the_pointwise_one(formula, data, family):
    """The compiled sum over rows (logistic with its binomial constant, crossed factors, known
    standard errors) against numpy's pointwise log-likelihood summed."""
    fit = ml.fit_hierarchical(formula, ml.datasets.load(data), family=family, draws=50, tune=50,
                              chains=2, seed=1, frequentist=False, progressbar=False)
    compiled = summed_log_likelihood(fit)
    np.testing.assert_allclose(compiled, summed_log_likelihood(fit, block=2_000_000), rtol=1e-10)
    # against the rows as given: equal up to the constant log C(n, y) of collapsed binomial rows
    pointwise = with_log_likelihood(fit)["log_likelihood"]["y"].transpose("chain", "draw", "obs")
    diff = compiled - pointwise.to_numpy().sum(axis=-1)
    assert np.ptp(diff) < 1e-8 * np.abs(compiled).max()
    if fit.design.spec.family != "bernoulli":  # no rows collapsed: the same numbers
        assert abs(diff).max() < 1e-8 * np.abs(compiled).max()


def test_tight_wrong_prior_is_flagged(sleepstudy):
    fit = _fit(sleepstudy, {"Days": Prior("Normal", mu=0.0, sigma=0.1)})
    table = prior_sensitivity(fit).set_index("variable")
    print(table.to_string())
    assert table.loc["b[Days]", "diagnosis"] in ("prior-data conflict", "prior-dominated")
    assert table.loc["b[Days]", "prior"] >= 0.05
    assert table.loc["sigma", "diagnosis"] == "-"
    row = sensitivity_check(fit).iloc[0]
    assert row["check"] == "prior_sensitivity" and not row["ok"]
    assert "b[Days]" in row["remedy"] and row["value"] == table["prior"].max()


def test_known_se_and_logistic_models():
    schools = ml.fit_hierarchical("effect | se(se) ~ 1 + (1 | school)",
                                  ml.datasets.load("eight_schools"), draws=500, tune=500,
                                  seed=2, frequentist=False, progressbar=False)
    table = prior_sensitivity(schools)
    assert table["variable"].tolist() == ["b[(Intercept)]", "sd_school[(Intercept)]"]
    assert np.isfinite(table[["prior", "likelihood"]].to_numpy()).all()
    cbpp = ml.fit_hierarchical("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                               ml.datasets.load("cbpp"), draws=500, tune=500, seed=2,
                               frequentist=False, progressbar=False)
    table = prior_sensitivity(cbpp)
    assert table["variable"].tolist() == [
        "b[(Intercept)]", "b[period2]", "b[period3]", "b[period4]", "sd_herd[(Intercept)]"]
    assert sensitivity_check(cbpp).iloc[0]["ok"] == (table["diagnosis"] == "-").all()
