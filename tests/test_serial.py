"""AR(1)/CAR(1) residuals: syntax, nlme's lag semantics, nlme-equal REML/ML fits, the marginal
kernel against a dense multivariate normal, and the posterior against known truth.

References: ``shared/reference/nlme/nlme_blackmore.json`` (the course's table, nlme 3.1-162) and
``tests/reference/serial_nlme.json`` (made by ``tests/reference/serial_nlme.R`` from nlme on the
simulated panel ``tests/reference/ar1_sim.csv`` and on Blackmore).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import multilevel as ml
from multilevel import Prior, datasets
from multilevel.design import build_design
from multilevel.design.serial import inverse_weighted_cross, serial_stats
from multilevel.engine.kernels.serial import serial_loglik_draws, serial_recover_draws
from multilevel.engine.serial import serial_problem
from multilevel.errors import DataError, SpecError
from multilevel.frequentist import fit_frequentist
from multilevel.frequentist.serial_deviance import SerialDeviance
from multilevel.model import build_model, resolve_priors
from multilevel.model.marginal import serial_marginal_loglik
from tests.reference_paths import REFERENCE

HERE = Path(__file__).resolve().parent / "reference"
BLACKMORE = "log_exercise ~ age * group + (age | subject)"
AR1 = BLACKMORE + " + ar1(age | subject)"


@pytest.fixture(scope="module")
def blackmore():
    return datasets.load("blackmore")


@pytest.fixture(scope="module")
def sim():
    return pd.read_csv(HERE / "ar1_sim.csv")


def _design(formula, df, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ar1 on Blackmore's non-integer ages warns (tested below)
        return build_design(ml.ModelSpec.from_formula(formula, **kwargs), df)


def _dense_loglik(design, beta, lam, sigma, phi):
    """log N(y | X beta, Z Lambda Lambda' Z' + sigma^2 R(phi)) group by group, from scratch."""
    g, t, kind = design.groups[0], design.serial.time, design.spec.correlation.kind
    total = 0.0
    for j in range(g.n_levels):
        rows = np.flatnonzero(g.index == j)
        lag = np.abs(np.subtract.outer(t[rows], t[rows]))
        R = np.sign(phi) ** lag * np.abs(phi) ** lag if kind == "ar1" else phi**lag
        V = g.Z[rows] @ lam @ lam.T @ g.Z[rows].T + sigma**2 * R
        total += stats.multivariate_normal(design.X[rows] @ beta, V).logpdf(design.y[rows])
    return total


# ---------------------------------------------------------------- syntax


def test_formula_toml_and_spec_round_trip():
    spec = ml.ModelSpec.from_formula(AR1)
    assert spec.correlation == ml.ResidualCorrelation("ar1", "age", "subject")
    assert spec.to_formula().endswith("+ ar1(age | subject)")
    assert ml.ModelSpec.from_formula(spec.to_formula()) == spec
    assert ml.spec.spec_from_toml(spec.to_toml()) == spec
    by_hand = ml.ModelSpec(response="y", groups=(ml.GroupTerm("g"),),
                           correlation=ml.ResidualCorrelation("car1", "t", "g"))
    assert by_hand.to_formula() == "y ~ 1 + (1 | g) + car1(t | g)"


@pytest.mark.parametrize("formula, family, fragment", [
    ("y ~ x + (1 | g) + ar1(t)", "gaussian", "ar1(time | group)"),
    ("y ~ x + (1 | g) + ar1(t | g) + car1(t | g)", "gaussian", "takes one"),
    ("y ~ x + (1 | g) + ar1(log(t) | g)", "gaussian", "must be a column name"),
    ("y ~ ar1(t | g) : x + (1 | g)", "gaussian", "top level"),
    ("y ~ x + (1 | g) + ar1(t | g)", "bernoulli", "Gaussian response"),
    ("y ~ x + (1 | g) + (1 | h) + ar1(t | g)", "gaussian", "one grouping factor"),
    ("y ~ x + (1 | g) + ar1(g | g)", "gaussian", "time column"),
    ("y ~ x + (1 | g) + ar2(t | g)", "gaussian", "ar2"),
])
def test_bad_correlation_terms_are_named(formula, family, fragment):
    with pytest.raises(SpecError) as err:
        ml.ModelSpec.from_formula(formula, family=family)
    assert fragment in str(err.value)


def test_noncentered_request_is_refused(blackmore):
    with pytest.raises(SpecError, match="parameterization='marginal'"):
        ml.fit_hierarchical(AR1, blackmore, parameterization="noncentered", progressbar=False)


@pytest.mark.parametrize("parameterization", ["noncentered", "centered"])
def test_sampling_stage_refuses_serial_design_outside_marginal(blackmore, parameterization):
    """The sampling stage itself refuses, before any sampling: the compiled non-centered kernel
    has no AR(1) term, and the PyMC model is built only when PyMC samples it."""
    from multilevel.engine import sample_posterior

    design = build_design(ml.ModelSpec.from_formula(AR1), blackmore)
    settings = ml.SamplerSettings(draws=10, tune=10, chains=1, seed=1)
    with pytest.raises(SpecError, match="parameterization='marginal'"):
        sample_posterior(design, resolve_priors(design), settings, parameterization,
                         progressbar=False)


# ---------------------------------------------------------------- design: nlme's lags


def test_lags_follow_nlme_truncation(blackmore):
    with pytest.warns(UserWarning, match=r"truncated.*car1\(age \| subject\)"):
        d = build_design(ml.ModelSpec.from_formula(AR1), blackmore)
    ser = d.serial
    frame = d.frame
    # subject 100: ages 8, 10, 12, 14, 15.92 -> integer lags 2, 2, 2, 1 (14 -> 15.92 is 1)
    pairs = [(float(frame["age"][i]), float(frame["age"][k]), lag) for i, k, lag in
             zip(ser.first, ser.second, ser.lag, strict=True) if frame["subject"][i] == "100"]
    assert pairs == [(8.0, 10.0, 2.0), (10.0, 12.0, 2.0), (12.0, 14.0, 2.0), (14.0, 15.92, 1.0)]
    # the lag from 8 to 15.92 is 7 (nlme's corMatrix, shared/reference/README.md)
    t = ser.time[frame["subject"] == "100"]
    assert t.max() - t.min() == 7.0
    car = _design(BLACKMORE + " + car1(age | subject)", blackmore)
    assert np.isclose(car.serial.lag[ser.second == np.flatnonzero(frame["age"] == 15.92)[0]], 1.92).all()


def test_rows_are_ordered_internally_and_frame_untouched(blackmore):
    shuffled = blackmore.sample(frac=1.0, random_state=3)
    before = shuffled.copy()
    a = fit_frequentist(AR1, blackmore)
    b = fit_frequentist(AR1, shuffled)
    pd.testing.assert_frame_equal(shuffled, before)
    assert abs(a.loglik - b.loglik) < 1e-5  # summation order only (the optimum is flat)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-4)


def test_data_errors_name_the_problem():
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 1.5, 2.5, 0.5], "t": [1, 1.5, 3, 1, 2, 3],
                       "g": list("aaabbb"), "s": list("aaabbb")})
    with pytest.raises(DataError, match=r"Series 'a'.*integer time 1.*car1"):
        _design("y ~ 1 + (1 | g) + ar1(t | g)", df)
    _design("y ~ 1 + (1 | g) + car1(t | g)", df)  # real times: 1 and 1.5 differ
    crossing = df.assign(g=list("aabbab"), t=[1, 2, 3, 4, 5, 6])
    with pytest.raises(DataError, match="spans more than one level"):
        _design("y ~ 1 + (1 | g) + ar1(t | s)", crossing)
    with pytest.raises(DataError, match="must be numeric"):
        _design("y ~ 1 + (1 | g) + ar1(t | g)", df.assign(t=list("abcdef")))
    with pytest.raises(DataError, match="number of days"):
        _design("y ~ 1 + (1 | g) + ar1(t | g)", df.assign(t=pd.date_range("2020", periods=6)))
    singles = df.assign(s=list("abcdef"), t=[1, 2, 3, 4, 5, 6])
    with pytest.raises(DataError, match="No series .* has two rows"):
        _design("y ~ 1 + (1 | g) + ar1(t | g:s)", singles)
    with pytest.raises(SpecError, match="time column"):
        ml.ModelSpec.from_formula("y ~ 1 + (1 | g) + ar1(t | t)")


# ---------------------------------------------------------------- kernels


@pytest.mark.parametrize("term, phi", [("ar1", -0.6), ("ar1", 0.4), ("car1", 0.7)])
def test_marginal_loglik_equals_dense_mvn(blackmore, term, phi):
    d = _design(BLACKMORE + f" + {term}(age | subject)", blackmore)
    st = serial_stats(d)
    beta = np.array([0.3, 0.04, -0.7, 0.09])
    lam = np.array([[0.5, 0.0], [-0.02, 0.05]])
    ours = serial_loglik_draws(beta[None], lam[None], np.array([0.45]), np.array([phi]),
                               *st.kernel_args(), st.n_total)[0]
    assert abs(ours - _dense_loglik(d, beta, lam, 0.45, phi)) < 1e-10 * abs(ours)


@pytest.mark.parametrize("formula, priors", [
    (AR1, {}),
    (BLACKMORE.replace("(age |", "(age ||") + " + car1(age | subject)",
     {"phi": Prior("Normal", mu=0.5, sigma=0.2)}),
    ("log_exercise ~ age + (1 | subject) + ar1(age | subject)",
     {"phi": Prior("Uniform", lower=-0.9, upper=0.5)}),
])
def test_gradient_matches_finite_differences(blackmore, formula, priors):
    d = _design(formula, blackmore, priors=priors)
    problem = serial_problem(d, resolve_priors(d))
    rng = np.random.default_rng(0)
    for _ in range(3):
        theta = problem.start_point()
        theta = np.r_[theta, 0.0] + rng.normal(scale=0.3, size=problem.ndim)
        _, grad = problem.logp_grad(theta)
        h = 1e-6
        fd = [(problem.logp_grad(theta + h * e)[0] - problem.logp_grad(theta - h * e)[0]) / (2 * h)
              for e in np.eye(problem.ndim)]
        np.testing.assert_allclose(fd, grad, rtol=1e-5, atol=1e-5)


def test_phi_rounding_onto_its_bound_is_a_rejection_not_a_crash(blackmore):
    """An optimizer step (found by the calibration of bench/sbc.py) sent logit(phi) to -64, where
    phi = -1 in floating point and R(phi) is singular: the density is -inf, not a ZeroDivisionError."""
    d = _design(AR1, blackmore)
    problem = serial_problem(d, resolve_priors(d))
    theta = np.r_[problem.start_point(), 0.0]
    for z in (-64.0, 64.0, -800.0):
        theta[-1] = z
        lp, grad = problem.logp_grad(theta)
        assert lp == -np.inf and np.all(grad == 0)
    theta[-1] = 30.0  # phi = 1 - 2e-13: still inside, finite
    assert np.isfinite(problem.logp_grad(theta)[0])


@pytest.mark.parametrize("term, phi", [("ar1", -0.45), ("car1", 0.6)])
def test_pymc_definition_equals_kernel(blackmore, term, phi):
    """The readable PyMC (PyTensor) likelihood equals the compiled kernel's."""
    d = _design(BLACKMORE + f" + {term}(age | subject)", blackmore)
    st = serial_stats(d)
    beta, lam = np.array([0.3, 0.04, -0.7, 0.09]), np.array([[0.4, 0.0], [0.01, 0.05]])
    graph = serial_marginal_loglik(st, beta, lam, 0.5, phi).eval()
    kernel = serial_loglik_draws(beta[None], lam[None], np.array([0.5]), np.array([phi]),
                                 *st.kernel_args(), st.n_total)[0]
    assert abs(graph - kernel) < 1e-9 * abs(kernel)
    model = build_model(d, parameterization="marginal", priors=resolve_priors(d))
    assert "phi" in model.named_vars


def test_recovery_at_zero_noise_is_the_blup(blackmore):
    """With eps = 0 the recovered effects are E[u | y, theta] = Sigma Z' V^-1 (y - X beta)."""
    d = _design(AR1, blackmore)
    st, g = serial_stats(d), d.groups[0]
    beta, lam = np.array([0.35, 0.04, -0.75, 0.09]), np.array([[0.3, 0], [0.01, 0.04]])
    sigma, phi = 0.47, -0.6
    u = serial_recover_draws(beta[None], lam[None], np.array([sigma]), np.array([phi]),
                             *st.kernel_args(), np.zeros((1, g.n_levels, g.n_terms)))[0]
    t = d.serial.time
    for j in (0, 57, 200):
        rows = np.flatnonzero(g.index == j)
        lag = np.abs(np.subtract.outer(t[rows], t[rows]))
        V = g.Z[rows] @ lam @ lam.T @ g.Z[rows].T + sigma**2 * np.sign(phi) ** lag * np.abs(phi) ** lag
        blup = lam @ lam.T @ g.Z[rows].T @ np.linalg.solve(V, d.y[rows] - d.X[rows] @ beta)
        np.testing.assert_allclose(u[j], blup, rtol=1e-9, atol=1e-12)


def test_inverse_weighted_cross_equals_dense(sim):
    d = _design("y ~ time + trt + (time | id) + ar1(time | id)", sim)
    g = d.groups[0]
    out = inverse_weighted_cross(d.serial, g.index, g.n_levels, g.Z, d.y[:, None], np.array([0.3, -0.5]))
    t = d.serial.time
    for s, phi in enumerate((0.3, -0.5)):
        for j in (0, 40):
            rows = np.flatnonzero(g.index == j)
            lag = np.abs(np.subtract.outer(t[rows], t[rows]))
            R = np.sign(phi) ** lag * np.abs(phi) ** lag
            np.testing.assert_allclose(out[s, j, :, 0], g.Z[rows].T @ np.linalg.solve(R, d.y[rows]),
                                       rtol=1e-10)


# ---------------------------------------------------------------- REML/ML against nlme


def test_blackmore_course_table_equals_nlme(blackmore):
    ref = json.loads((REFERENCE / "nlme" / "nlme_blackmore.json").read_text())
    plain = fit_frequentist(BLACKMORE, blackmore)
    ar1 = fit_frequentist(AR1, blackmore)
    for fit, key in ((plain, "blackmore_lme"), (ar1, "blackmore_ar1")):
        r = ref[key]
        assert abs(fit.loglik - r["logLik"]) < 1e-3
        assert abs(fit.aic - r["AIC"]) < 2e-3
        fe = fit.fixed_effects().set_index("term")
        for name, v in r["fixed_effects"].items():
            scale = max(abs(v["estimate"]), v["std_error"])
            assert abs(fe.loc[name, "estimate"] - v["estimate"]) < 2e-3 * scale, name
            assert abs(fe.loc[name, "std_error"] / v["std_error"] - 1) < 1e-2, name
    assert abs(ar1.bic - ref["blackmore_ar1"]["BIC"]) < 2e-3  # nlme's log(n - p) for REML
    assert abs(ar1.phi - ref["blackmore_ar1"]["phi"]) < 0.01
    vc = ar1.variance_components().set_index(["group", "term", "stat"])["estimate"]
    sds = ref["blackmore_ar1"]["sds"]
    assert abs(vc[("subject", "age", "sd")] - sds["age"]) < 1e-3
    assert abs(vc[("Residual", "", "sd")] - sds["Residual"]) < 1e-3
    assert vc[("subject", "(Intercept)", "sd")] < 0.01  # at the boundary, as nlme (0.002)
    table = ml.course.compare_models([plain, ar1], names=["lme", "ar1"], loo=False)
    assert list(table["method"]) == ["REML", "REML"]
    assert abs(table["chisq"].iloc[1] - ref["blackmore_lrt"]["L.Ratio"]) < 2e-3
    assert abs(table["bic"].iloc[0] - ref["blackmore_lme"]["BIC"]) < 2e-3
    assert table["p_value"].iloc[1] == pytest.approx(ref["blackmore_lrt"]["p"], rel=1e-3)
    refit = ml.course.compare_models([plain, ar1], loo=False, refit=True, data=blackmore)
    assert list(refit["method"]) == ["ML", "ML"]
    assert abs(refit["loglik"].iloc[1] - json.loads((HERE / "serial_nlme.json").read_text())
               ["blackmore_ar1_ml"]["logLik"]) < 1e-3


@pytest.mark.parametrize("key", ["sim_ar1_reml", "sim_ar1_ml", "sim_car1_ri", "sim_ar1_diag",
                                 "blackmore_car1", "blackmore_ar1_ml"])
def test_fits_equal_nlme(key, sim, blackmore):
    r = json.loads((HERE / "serial_nlme.json").read_text())[key]
    df = blackmore if r["data"] == "blackmore" else sim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_frequentist(r["formula"], df, method=r["method"])
    # ours may find a higher maximum than nlme's optimizer (Blackmore car1: by 1.0e-3)
    assert fit.loglik > r["logLik"] - 1e-3
    assert fit.loglik < r["logLik"] + 2e-3
    assert abs(fit.phi - r["phi"]) < 0.01
    assert abs(fit.sigma / r["sds"]["Residual"] - 1) < 2e-3
    fe = fit.fixed_effects().set_index("term")
    for name, v in r["fixed_effects"].items():
        assert abs(fe.loc[name, "estimate"] - v["estimate"]) < 2e-3 * max(abs(v["estimate"]), v["std_error"])
        # nlme's ML standard errors carry sqrt(n / (n - p)) (summary.lme's adjustSigma)
        assert abs(fe.loc[name, "std_error"] / v["std_error"] - 1) < 1e-2


def test_profile_interval_of_phi_is_a_likelihood_ratio_bound(sim):
    fit = fit_frequentist("y ~ time + trt + (time | id) + ar1(time | id)", sim, method="ML")
    ci = fit.confint().set_index(["group", "term", "stat"])
    lo, hi = ci.loc[("Residual", "", "phi"), ["lower", "upper"]]
    assert lo < fit.phi < hi
    dev = SerialDeviance(fit.design)
    best = -2 * fit.loglik
    for end in (lo, hi):
        res = optimize.minimize(lambda th, e=end: dev(np.r_[th, e], reml=False), fit.theta.to_numpy(),
                                method="L-BFGS-B", bounds=[(0, None), (None, None), (0, None)])
        assert abs(res.fun - best - stats.chi2.ppf(0.95, 1)) < 2e-2
    assert ci.loc[("", "time", "coef"), "lower"] < fit.beta["time"] < ci.loc[("", "time", "coef"), "upper"]


# ---------------------------------------------------------------- the posterior


def test_prior_predictive_has_phi(blackmore):
    idata = ml.prior_predictive(AR1, blackmore, draws=200, seed=3)
    phi = idata["prior"]["phi"].values.ravel()
    assert phi.min() > -1 and phi.max() < 1
    y = idata["prior_predictive"]["y"].values[0]
    d = _design(AR1, blackmore)
    prior = idata["prior"]
    g = d.groups[0]
    u = prior["u_subject"].values[0][:, g.index]
    eta = prior["b"].values[0] @ d.X.T + np.einsum("nq,snq->sn", g.Z, u)
    e = (y - eta) / prior["sigma"].values[0][:, None]
    two = d.serial.lag == 2
    lag2 = np.mean(e[:, d.serial.first[two]] * e[:, d.serial.second[two]], axis=1)
    # per draw, the lag-2 residual products average phi^2 (605 pairs: sd about 0.05)
    assert np.abs(lag2 - phi**2).max() < 0.3
    assert np.corrcoef(lag2, phi**2)[0, 1] > 0.95


@pytest.mark.slow
def test_pymc_sampler_path(blackmore):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ml.fit_hierarchical(AR1, blackmore, sampler="pymc", draws=100, tune=150, chains=1,
                                  seed=4, progressbar=False, frequentist=False)
    phi = fit.posterior["phi"].values.ravel()
    assert -0.75 < phi.mean() < -0.45  # the main mode (REML -0.60)
    assert fit.posterior["u_subject"].shape[-2:] == (231, 2)


@pytest.mark.slow
def test_posterior_covers_truth_and_sits_on_reml():
    """Simulated panel with known phi (many subjects): the posterior of phi covers the truth,
    its mean is within a posterior sd of the REML estimate, and the tables carry phi."""
    rng = np.random.default_rng(11)
    n_sub, times, phi, sigma = 300, np.arange(6), 0.6, 0.7
    rows = []
    for s in range(n_sub):
        keep = times[rng.uniform(size=6) > 0.2]
        keep = keep if len(keep) >= 2 else times[:2]
        e = np.empty(6)
        e[0] = rng.normal()
        for k in range(1, 6):
            e[k] = phi * e[k - 1] + np.sqrt(1 - phi**2) * rng.normal()
        y = 1.0 + 0.2 * times + rng.normal(0, 0.8) + sigma * e
        rows += [(f"s{s}", t, y[t]) for t in keep]
    df = pd.DataFrame(rows, columns=["id", "time", "y"])
    fit = ml.fit_hierarchical("y ~ time + (1 | id) + ar1(time | id)", df, seed=5,
                              draws=500, tune=500, progressbar=False)
    draws = fit.posterior["phi"].values.ravel()
    lo, hi = np.quantile(draws, [0.005, 0.995])
    assert lo < phi < hi
    assert abs(draws.mean() - fit.frequentist.phi) < draws.std()
    vc = fit.variance_components().set_index(["group", "term", "stat"])
    assert vc.loc[("Residual", "", "phi"), "lower"] < phi < vc.loc[("Residual", "", "phi"), "upper"]
    assert vc.loc[("Residual", "", "phi"), "reml_lower"] < phi < vc.loc[("Residual", "", "phi"), "reml_upper"]
    assert fit.diagnostics().query("check == 'r_hat'")["ok"].item()


@pytest.mark.slow
def test_blackmore_posterior_tables(blackmore):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ml.fit_hierarchical(AR1, blackmore, seed=2, draws=500, tune=500, progressbar=False)
    phi = fit.posterior["phi"].values.ravel()
    assert abs(phi.mean() - fit.frequentist.phi) < 2 * phi.std()
    assert any("second mode" in n for n in fit.notes)  # phi = +0.6 is a local mode (4.5 lower)
    # the pointwise terms at one draw
    from multilevel.results.loglik import pointwise_log_likelihood
    point = pointwise_log_likelihood(fit)[0, 0]
    post = fit.posterior.isel(chain=0, draw=0)
    d = fit.design
    g = d.groups[0]
    resid = d.y - d.X @ post["b"].values - np.einsum("nq,nq->n", g.Z, post["u_subject"].values[g.index])
    sig, ph = float(post["sigma"]), float(post["phi"])
    # LOO terms: each row's density given the other rows of its series (dense Gaussian
    # conditioning, from scratch)
    loo = point
    for j in (0, 100):
        rows = np.flatnonzero(g.index == j)
        lag = np.abs(np.subtract.outer(d.serial.time[rows], d.serial.time[rows]))
        S = sig**2 * np.sign(ph) ** lag * np.abs(ph) ** lag
        e = resid[rows]
        for a in range(len(rows)):
            o = np.delete(np.arange(len(rows)), a)
            w = np.linalg.solve(S[np.ix_(o, o)], S[o, a])
            m, v = w @ e[o], S[a, a] - S[a, o] @ w
            assert abs(loo[rows[a]] - stats.norm.logpdf(e[a], m, np.sqrt(v))) < 1e-9
    # shrinkage: the no-pooling estimate is the group's GLS fit at the posterior-mean phi
    shrink = fit.shrinkage().set_index(["level", "term"])
    phibar = float(fit.posterior["phi"].mean())
    # the offset: the fixed effects that are not group terms (grouppatient, age:grouppatient)
    offset = d.X[:, [2, 3]] @ fit.posterior["b"].mean(("chain", "draw")).values[[2, 3]]
    for j in (3, 150):
        rows = np.flatnonzero(g.index == j)
        lag = np.abs(np.subtract.outer(d.serial.time[rows], d.serial.time[rows]))
        Ri = np.linalg.inv(np.sign(phibar) ** lag * np.abs(phibar) ** lag)
        Z = g.Z[rows]
        gls = np.linalg.solve(Z.T @ Ri @ Z, Z.T @ Ri @ (d.y[rows] - offset[rows]))
        level = g.levels[j]
        assert shrink.loc[(level, "(Intercept)"), "no_pooling"] == pytest.approx(gls[0], rel=1e-8)
        assert shrink.loc[(level, "age"), "no_pooling"] == pytest.approx(gls[1], rel=1e-8)
    # effective n: 1'R^-1 1 per series, against a dense solve at the REML phi
    eff = fit.effective_n().set_index(["series", "stat"])
    f_phi = fit.frequentist.phi
    t = d.serial.time
    total = 0.0
    for j in range(len(d.serial.series_levels)):
        rows = np.flatnonzero(d.serial.series == j)
        lag = np.abs(np.subtract.outer(t[rows], t[rows]))
        value = np.ones(len(rows)) @ np.linalg.solve(np.sign(f_phi) ** lag * np.abs(f_phi) ** lag,
                                                     np.ones(len(rows)))
        total += value
        if j in (0, 77):
            assert eff.loc[(d.serial.series_levels[j], "exact"), "reml"] == pytest.approx(value)
    assert eff.loc[("total", "exact"), "reml"] == pytest.approx(total)
    # posterior predictive draws of the fitted rows: the noise is correlated along a series,
    # ~phi^2 at lag 2 (the draws minus each draw's expected value are sigma times the noise)
    noise = (fit.posterior_predict(seed=1) - fit.predict_draws()).values.reshape(-1, d.n_obs)
    i, k = d.serial.first, d.serial.second
    two = d.serial.lag == 2
    corr = np.mean([np.corrcoef(noise[:, a], noise[:, b])[0, 1]
                    for a, b in zip(i[two][:200], k[two][:200], strict=True)])
    assert abs(corr - np.mean(fit.posterior["phi"].values ** 2)) < 0.03
    assert ml.plots.compute.posterior_predictive(fit, draws=50, seed=1).shape == (50, d.n_obs)
    # predictions need neither the time column nor a correlation-only column
    new = pd.DataFrame({"age": [10.0, 12.0], "group": ["control", "patient"],
                        "subject": ["100", "a new girl"]})
    assert fit.predict(new).shape[0] == 2
    draws_new = fit.posterior_predict(new.assign(subject="100", age=[10.0, 11.0]), seed=1)
    assert draws_new.shape[-1] == 2
    folder = Path(__import__("tempfile").mkdtemp())
    page = ml.report.write_report(fit, folder / "ar1.html").read_text()
    assert "Conditional effect of age" in page and "phi" in ml.report.text_summary(fit)
    # save / load keeps phi, the series and every derived table
    path = fit.save(folder / "ar1.nc")
    again = ml.load_fit(path)
    assert again.spec == fit.spec
    assert again.frequentist.phi == pytest.approx(fit.frequentist.phi)
    np.testing.assert_array_equal(again.design.serial.lag, d.serial.lag)
    pd.testing.assert_frame_equal(again.shrinkage(), fit.shrinkage())
    pd.testing.assert_frame_equal(again.variance_components(), fit.variance_components())
