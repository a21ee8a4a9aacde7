"""The course's statistics (multilevel.course) against numbers not computed by the same code.

References:

* the course's artificial example (5 groups of 2): its regressions are exact by construction;
* ``tests/reference/course_lme4.json``, made by ``tests/reference/course_lme4.R`` (R 4.2.2,
  lme4 1.1-31, performance 0.10.2): lme4's ``anova()`` (ML refits), REML fixed effects and
  covariances, ``performance::r2_nakagawa``, ``lm()`` regressions, conditional variances, and
  the Snijders-Bosker R^2 / ANOVA ICC computed in R from lme4's variance components;
* closed forms computed in the tests themselves (ANOVA ICC from group means, design effect);
* ``shared/reference/lme4/cbpp_laplace.json`` for a binomial model's AIC/BIC.

Tolerances follow tests/test_frequentist_lme4.py: log-likelihoods 1e-3 absolute, estimates
1e-3 of their scale, standard errors and conditional sds 1e-2 relative, R^2 1e-3 absolute.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reference_paths import REFERENCE
from scipy import stats

import multilevel as ml
from multilevel import DataError, ModelSpec, course, datasets, fit_hierarchical
from multilevel.design import build_design
from multilevel.frequentist import fit_frequentist
from multilevel.results.loglik import pointwise_log_likelihood
from multilevel.spec.named import multilevel_logistic, varying_intercept, varying_slope

REF = json.loads((Path(__file__).parent / "reference" / "course_lme4.json").read_text())
SHARED = REFERENCE / "lme4"
KW = dict(draws=300, tune=300, chains=2, seed=1, progressbar=False)


def _fit(spec, df):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_hierarchical(spec, course.add_contextual_columns(spec, df), **KW)


@pytest.fixture(scope="module")
def hsb():
    return datasets.load("hsb82")


@pytest.fixture(scope="module")
def hsb_fits(hsb):
    """The four models of course_lme4.R, made with the builders' contextual/cross-level options."""
    specs = {
        "h0": varying_intercept("mAch", "school"),
        "h1": varying_intercept("mAch", "school", contextual=["ses"]),
        "h2": varying_slope("mAch", "school", slopes=["ses"], contextual=["ses"]),
        "h3": varying_slope("mAch", "school", slopes=["ses"], predictors=["sector"],
                            contextual=["ses"], cross_level={"ses": ["sector"]}),
    }
    return {k: _fit(s, hsb) for k, s in specs.items()}


@pytest.fixture(scope="module")
def sleep_fits():
    df = datasets.load("sleepstudy")
    forms = REF["sleepstudy_anova"]["formulas"]
    return [_fit(ModelSpec.from_formula(f), df) for f in forms]


# --- the course's artificial example -------------------------------------------------------


def test_course_example_is_the_constructed_data():
    df = datasets.load("course_example")
    j = np.repeat(np.arange(1, 6), 2)
    assert df["group"].tolist() == j.tolist()
    assert df["x"].tolist() == np.column_stack([np.arange(1, 6), np.arange(3, 8)]).ravel().tolist()
    assert df["y"].tolist() == np.column_stack([6 - np.arange(1, 6), 8 - np.arange(1, 6)]).ravel().tolist()


def test_within_between_course_numbers_are_exact():
    df = datasets.load("course_example")
    with pytest.warns(UserWarning, match="fit the data exactly"):
        wb = course.within_between(df, "y", "x", "group")
    est = wb.set_index(["model", "term"])["estimate"]
    expected = {
        ("total", "(Intercept)"): 16 / 3, ("total", "x"): -1 / 3,
        ("between", "(Intercept)"): 8.0, ("between", "x_between"): -1.0,
        ("within", "x_within"): 1.0,
        ("contextual", "(Intercept)"): 8.0, ("contextual", "x_between"): -1.0,
        ("contextual", "x_within"): 1.0, ("contextual", "contextual"): -2.0,
    }
    for key, value in expected.items():
        assert est[key] == pytest.approx(value, abs=1e-12), key
    r = REF["course_within_between"]  # R's lm() agrees, and y ~ xbar + x gives -2 and +1
    assert r["contextual_raw"]["estimate"] == pytest.approx([8.0, -2.0, 1.0], abs=1e-12)
    assert r["total"]["estimate"] == pytest.approx([16 / 3, -1 / 3], abs=1e-12)
    assert wb.query("model == 'contextual'")["std_error"].max() < 1e-12
    assert df.columns.tolist() == ["group", "x", "y"]  # input untouched


@pytest.mark.parametrize("formula", ["y ~ x + (1 | group)", "y ~ 1 + (1 + x | group)",
                                     "y ~ x_between + x_within + (1 | group)"])
def test_exact_course_data_are_refused_with_a_clear_error(formula):
    spec = ModelSpec.from_formula(formula)
    data = course.add_contextual_columns(spec, datasets.load("course_example"))
    with pytest.raises(DataError, match="level-1 residual variance is zero"):
        course.check_level1_variance(build_design(spec, data))  # (build_design may raise first)
    with pytest.raises(DataError, match="level-1 residual variance is zero"):
        course.check_level1_variance(formula, datasets.load("course_example"))


def test_level1_check_passes_real_and_inexact_data(hsb):
    course.check_level1_variance(build_design(ModelSpec.from_formula("y ~ 1 + (1 | group)"),
                                              datasets.load("course_example")))
    course.check_level1_variance(build_design(
        ModelSpec.from_formula("mAch ~ ses + (1 + ses | school)"), hsb))


def test_fitting_exact_data_raises():
    df = datasets.load("course_example")
    for fit in (fit_frequentist, ml.fit_hierarchical):
        with pytest.raises(DataError, match="residual variance is zero"):
            fit("y ~ x + (1 | group)", df)


# --- centring, contextual builder option, within/between on Hsb82 ---------------------------


def test_center_group_and_grand_without_mutation():
    df = pd.DataFrame({"g": ["a", "a", "b", "b", "b"], "x": [1.0, 3.0, 2.0, 4.0, 9.0]})
    before = df.copy()
    out = course.center(df, "x", "g")
    pd.testing.assert_frame_equal(df, before)
    assert out["x_between"].tolist() == [2.0, 2.0, 5.0, 5.0, 5.0]
    assert out["x_within"].tolist() == [-1.0, 1.0, -3.0, -1.0, 4.0]
    grand = course.center(df, "x", "g", kind="grand")
    assert grand["x_grand"].tolist() == pytest.approx([-2.8, -0.8, -1.8, 0.2, 5.2])
    assert grand["x_between"].tolist() == pytest.approx([-1.8, -1.8, 1.2, 1.2, 1.2])


def test_contextual_columns_equal_the_r_computed_hsb82_columns(hsb):
    spec = varying_intercept("mAch", "school", contextual=["ses"])
    assert spec.fixed == ("ses_between", "ses_within")
    out = course.add_contextual_columns(spec, hsb)
    assert "ses_between" not in hsb.columns
    # meanses and cses were recomputed in R as mean(ses) by school and ses - meanses
    assert np.allclose(out["ses_between"], hsb["meanses"], atol=1e-12)
    assert np.allclose(out["ses_within"], hsb["cses"], atol=1e-12)


def test_builder_options_contextual_and_cross_level():
    s = varying_slope("mAch", "school", slopes=["cses"], predictors=["meanses"],
                      cross_level={"cses": ["sector"]})
    assert s.fixed == ("meanses", "cses", "sector", "cses:sector")
    s = varying_slope("mAch", "school", slopes=["ses"], contextual="ses")
    assert s.fixed == ("ses_between", "ses_within") and s.groups[0].slopes == ("ses_within",)
    s = multilevel_logistic("use", "district", predictors=["age", "urban"], contextual=["age"],
                            cross_level={"age": "urban"})
    assert s.fixed == ("age_between", "age_within", "urban", "age_within:urban")


def test_within_between_hsb82_matches_lm(hsb):
    wb = course.within_between(hsb, "mAch", "ses", "school").set_index(["model", "term"])
    r = REF["hsb82_within_between"]
    pairs = [("total", "(Intercept)", r["total"], 0), ("total", "ses", r["total"], 1),
             ("between", "(Intercept)", r["between"], 0),
             ("between", "ses_between", r["between"], 1), ("within", "ses_within", r["within"], 1),
             ("contextual", "ses_between", r["contextual"], 1),
             ("contextual", "ses_within", r["contextual"], 2),
             ("contextual", "contextual", r["contextual_raw"], 1)]
    for model, term, ref, k in pairs:
        assert wb.loc[(model, term), "estimate"] == pytest.approx(ref["estimate"][k], rel=1e-9)
        assert wb.loc[(model, term), "std_error"] == pytest.approx(ref["std_error"][k], rel=1e-9)


# --- ICC, design effect ---------------------------------------------------------------------


def test_icc_anova_closed_form_by_hand(hsb):
    g = hsb.groupby("school", observed=True)["mAch"]
    n, means, y = g.size().to_numpy(float), g.mean().to_numpy(), hsb["mAch"].to_numpy()
    N, J = n.sum(), len(n)
    msb = np.sum(n * (means - y.mean()) ** 2) / (J - 1)
    msw = np.sum(g.var(ddof=1).to_numpy() * (n - 1)) / (N - J)
    n_tilde = (N - np.sum(n**2) / N) / (J - 1)
    icc = (msb - msw) / (msb + (n_tilde - 1) * msw)
    row = course.icc_anova(hsb, "mAch", "school").iloc[0]
    assert row["n_tilde"] == pytest.approx(n_tilde, rel=1e-12)
    assert row["msb"] == pytest.approx(msb, rel=1e-10)
    assert row["icc"] == pytest.approx(icc, rel=1e-10)
    r = REF["hsb82_icc_anova"]  # R's anova(lm(mAch ~ school))
    for key in ("msb", "msw", "n_tilde", "icc", "F"):
        assert row[key] == pytest.approx(r[key], rel=1e-9), key
    balanced = course.icc_anova(datasets.load("course_example"), "y", "group").iloc[0]
    assert balanced["icc"] == pytest.approx(1.5 / 3.5)  # MSB 5, MSW 2, n 2: tau^2 = 1.5


def test_design_effect_and_effective_n_formulas():
    assert course.design_effect(0.1, 11) == pytest.approx(2.0)
    sizes = [5, 15, 10]
    n_w = (25 + 225 + 100) / 30
    assert course.design_effect(0.2, sizes) == pytest.approx(1 + (n_w - 1) * 0.2)
    cv2 = np.var(sizes) / np.mean(sizes) ** 2  # Eldridge et al.: n_bar (1 + CV^2)
    assert course.design_effect(0.2, sizes) == pytest.approx(1 + (np.mean(sizes) * (1 + cv2) - 1) * 0.2)
    assert course.effective_n(0.2, sizes) == pytest.approx(30 / (1 + (n_w - 1) * 0.2))
    assert course.effective_n(0.1, 11, n_total=220) == pytest.approx(110.0)
    assert course.design_effect(np.array([[0.0, 0.5]]), 3).tolist() == [[1.0, 2.0]]
    with pytest.raises(DataError):
        course.effective_n(0.1, 11)


def test_icc_methods_and_design_effect_on_a_fit(hsb_fits, hsb):
    fit = hsb_fits["h0"]
    table = course.icc_methods(fit).set_index("method")
    r = REF["hsb82_icc_anova"]
    assert table.loc["anova", "mean"] == pytest.approx(r["icc"], rel=1e-9)
    assert table.loc["reml", "mean"] == pytest.approx(r["icc_reml"], abs=1e-3)
    assert table.loc["posterior", "lower"] < r["icc_reml"] < table.loc["posterior", "upper"]
    deff = course.design_effect_table(fit).set_index("stat")
    n = hsb.groupby("school", observed=True).size().to_numpy(float)
    expected = 1 + (np.sum(n**2) / n.sum() - 1) * r["icc_reml"]
    assert deff.loc["design_effect", "reml"] == pytest.approx(expected, rel=1e-3)
    assert deff.loc["effective_n", "reml"] == pytest.approx(len(hsb) / expected, rel=1e-3)
    assert deff.loc["design_effect", "lower"] < expected < deff.loc["design_effect", "upper"]


# --- contextual effects, cross-level interactions, group-effect errors ------------------------


def _ref_fixef(key):
    f = REF["hsb82_reml"][key]["fixef"]
    return pd.Series(f["estimate"], index=f["terms"]), pd.DataFrame(f["vcov"], f["terms"], f["terms"])


def test_contextual_effects_match_lme4(hsb_fits):
    fit = hsb_fits["h1"]
    est, V = _ref_fixef("h1")
    table = course.contextual_effects(fit).set_index("effect")
    a = {"within": {"ses_within": 1.0}, "between": {"ses_between": 1.0},
         "contextual": {"ses_between": 1.0, "ses_within": -1.0}}
    for effect, weights in a.items():
        w = pd.Series(weights).reindex(est.index, fill_value=0.0)
        ref, se = float(w @ est), float(np.sqrt(w @ V @ w))
        assert table.loc[effect, "reml"] == pytest.approx(ref, abs=1e-3 * max(abs(ref), se))
        assert table.loc[effect, "reml_se"] == pytest.approx(se, rel=1e-2)
        assert table.loc[effect, "lower"] < ref < table.loc[effect, "upper"]
    named = course.contextual_effects(fit, within="ses_within", between="ses_between")
    assert np.allclose(named["mean"], table["mean"])


def test_cross_level_interaction_is_reported_as_such(hsb_fits):
    fit = hsb_fits["h3"]
    table = course.fixed_effect_levels(fit).set_index("term")
    assert table.loc["ses_within:sectorCatholic", "kind"] == "cross-level interaction"
    assert table.loc["sectorCatholic", "kind"] == "level-2"
    assert table.loc["ses_between", "kind"] == "level-2"
    assert table.loc["ses_between", "role"] == "group mean"
    assert table.loc["ses_within", "kind"] == "level-1" and table.loc["ses_within", "varies"]
    est, V = _ref_fixef("h3")
    for term, value in est.items():
        se = np.sqrt(V.loc[term, term])
        assert table.loc[term, "reml"] == pytest.approx(value, abs=1e-3 * max(abs(value), se))


def test_comparative_and_diagnostic_errors_match_lme4(hsb_fits):
    table = course.group_effect_errors(hsb_fits["h0"]).set_index("level")
    r = REF["hsb82_group_errors"]
    ref = pd.DataFrame({k: r[k] for k in ("mode", "comparative_sd", "diagnostic_sd")},
                       index=r["level"]).loc[table.index]
    assert np.allclose(table["comparative_sd"], ref["comparative_sd"], rtol=1e-2)
    assert np.allclose(table["diagnostic_sd"], ref["diagnostic_sd"], rtol=1e-2)
    assert np.allclose(table["blup"], ref["mode"], atol=1e-2 * np.abs(ref["mode"]).max())
    # the posterior sd is the Bayesian comparative sd: close to lme4's on 160 schools
    ratio = table["posterior_sd"] / ref["comparative_sd"]
    assert 0.9 < ratio.median() < 1.15
    assert (table["posterior_diagnostic_sd"] > 0).all()


# --- explained variance ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["h0", "h1", "h2", "h3"])
def test_r2_nakagawa_matches_performance(hsb_fits, key):
    table = course.r2_nakagawa(hsb_fits[key]).set_index("type")
    r = REF["hsb82_reml"][key]
    assert table.loc["marginal", "reml"] == pytest.approx(r["r2_marginal"], abs=1e-3)
    assert table.loc["conditional", "reml"] == pytest.approx(r["r2_conditional"], abs=1e-3)
    if key != "h0":
        assert table.loc["marginal", "lower"] < r["r2_marginal"] < table.loc["marginal", "upper"]


def test_snijders_bosker_r2_and_variance_reduction(hsb_fits):
    r = REF["hsb82_snijders_bosker"]
    h0, h1 = hsb_fits["h0"], hsb_fits["h1"]
    table = course.r2_snijders_bosker(h1, h0).set_index("measure")
    assert table.loc["R1^2", "n"] == pytest.approx(r["n_harmonic"])
    assert table.loc["R1^2", "reml"] == pytest.approx(r["R1"], abs=1e-3)
    assert table.loc["R2^2", "reml"] == pytest.approx(r["R2_harmonic"], abs=1e-3)
    assert table.loc["R1^2", "lower"] < r["R1"] < table.loc["R1^2", "upper"]
    mean_n = course.r2_snijders_bosker(h1, h0, n=r["n_mean"]).set_index("measure")
    assert mean_n.loc["R2^2", "reml"] == pytest.approx(r["R2_mean"], abs=1e-3)
    pre = course.variance_reduction(h0, h1).set_index("group")
    assert pre.loc["school", "reml"] == pytest.approx(r["pre_school"], abs=1e-3)
    assert pre.loc["Residual", "reml"] == pytest.approx(r["pre_residual"], abs=1e-3)
    assert pre.loc["school", "lower"] < r["pre_school"] < pre.loc["school", "upper"]


# --- model comparison ------------------------------------------------------------------------


def _check_anova(table: pd.DataFrame, ref: dict) -> None:
    assert table["n_params"].tolist() == ref["npar"]
    for ours, theirs in (("loglik", "logLik"), ("deviance", "deviance"), ("aic", "AIC"),
                         ("bic", "BIC")):
        assert np.allclose(table[ours], ref[theirs], atol=2e-3), ours
    chisq = np.array(ref["Chisq"][1:], dtype=float)
    assert np.allclose(table["chisq"].iloc[1:], chisq, atol=2e-3)
    assert table["df"].iloc[1:].tolist() == ref["Df"][1:]
    p = np.array(ref["p_value"][1:], dtype=float)
    assert np.allclose(np.log(table["p_value"].iloc[1:].to_numpy(float)), np.log(p), atol=1e-3)


def test_compare_models_matches_lme4_anova_sleepstudy(sleep_fits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k warnings are expected with 10 rows a subject
        table = course.compare_models(sleep_fits[::-1])  # any order: sorted by n_params
    ref = REF["sleepstudy_anova"]
    _check_anova(table, ref)
    assert table["method"].tolist() == ["ML"] * 3  # REML fits were refitted by ML
    # (1 | S) -> (Days || S) adds one variance: 50:50 chi2_0 : chi2_1, i.e. the halved p-value
    assert table["p_boundary"].iloc[1] == pytest.approx(ref["p_value"][1] / 2, rel=1e-3)
    assert np.isnan(table["p_boundary"].iloc[2])  # a correlation is not on the boundary
    assert np.isfinite(table[["elpd_loo", "se", "p_loo"]].to_numpy()).all()
    assert (table["elpd_diff"] <= 0).all() and (table["elpd_diff"] == 0).sum() == 1


def test_compare_models_matches_lme4_anova_hsb82(hsb_fits):
    fits = [hsb_fits[k] for k in ("h0", "h1", "h2", "h3")]
    table = course.compare_models(fits, names=["h0", "h1", "h2", "h3"], loo=False)
    ref = REF["hsb82_anova"]
    _check_anova(table, ref)
    c = ref["Chisq"][2]  # h1 -> h2 adds the slope variance and its covariance: df = 2
    expected = 0.5 * stats.chi2.sf(c, 1) + 0.5 * stats.chi2.sf(c, 2)
    assert table["p_boundary"].iloc[2] == pytest.approx(expected, rel=1e-3)
    assert np.isnan(table["p_boundary"].iloc[[1, 3]]).all()  # fixed effects differ


def test_compare_binomial_models_and_loglik_by_hand():
    df = datasets.load("cbpp")
    f1 = _fit(ModelSpec.from_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"), df)
    f0 = _fit(ModelSpec.from_formula("cbind(incidence, size - incidence) ~ 1 + (1 | herd)"), df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = course.compare_models([f0, f1], names=["empty", "period"])
    ref = json.loads((SHARED / "cbpp_laplace.json").read_text()) if SHARED.is_dir() else None
    if ref is not None:  # binomial Laplace: up to 4e-3 above lme4's log-likelihood (README)
        assert table.set_index("model").loc["period", "aic"] == pytest.approx(ref["AIC"], abs=1e-2)
    ll = pointwise_log_likelihood(f1)  # multilevel.results.loglik, which compare_models uses
    b = f1.posterior["b"].isel(chain=1, draw=7).to_numpy()
    u = f1.posterior["u_herd"].isel(chain=1, draw=7).to_numpy()[:, 0]
    herd = df["herd"].astype(str).map({lv: i for i, lv in enumerate(f1.design.groups[0].levels)})
    X = pd.get_dummies(df["period"].astype(str), drop_first=True, dtype=float).to_numpy()
    eta = b[0] + X @ b[1:] + u[herd.to_numpy()]
    by_hand = stats.binom.logpmf(df["incidence"], df["size"], 1 / (1 + np.exp(-eta)))
    assert np.allclose(ll[1, 7], by_hand)
