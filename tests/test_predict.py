"""Predictions: frequentist against lme4 / metafor, posterior against hand computations and an
exact quadrature reference, newdata transforms, new levels, errors.

References (not computed by the package): ``../shared/reference/predict/`` (lme4 sleepstudy) and
``tests/reference/predict_lme4.json`` (``tests/reference/predict_lme4.R``: lme4 1.1-31 on cbpp,
Contraception and Hsb82 with ``scale(ses)``; metafor 3.8 on the BCG trials). GLMM predictions
of our fit differ from lme4's by up to ~7e-4 relative because the fits differ (lme4's inexact
PIRLS; see the reference README): with lme4's own estimates plugged in, the prediction
arithmetic matches lme4 to 1e-10, so both are checked.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reference_paths import REFERENCE
from scipy import stats
from scipy.special import expit
from simulate import nested
from test_priors import COUNTIES, RADON_PRIORS, compare, quadrature_reference

import multilevel as ml
from multilevel.design import build_design
from multilevel.design.newdata import new_design
from multilevel.errors import DataError, SpecError
from multilevel.frequentist import fit_frequentist

PREDICT_REF = json.loads((Path(__file__).parent / "reference" / "predict_lme4.json").read_text())
FAMILY = {"cbpp": "binomial", "contraception": "bernoulli", "hsb82_scale": "gaussian"}
DATASET = {"cbpp": "cbpp", "contraception": "contraception", "hsb82_scale": "hsb82"}


# ---------------------------------------------------------------- frequentist vs lme4


def test_sleepstudy_predictions_equal_lme4():
    path = REFERENCE / "predict" / "lme4_predict_sleepstudy.json"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    ref = json.loads(path.read_text())["sleepstudy"]
    fit = fit_frequentist(ref["formula"], ml.datasets.load("sleepstudy"))
    new = pd.DataFrame(ref["newdata"])
    np.testing.assert_allclose(fit.predict(new), ref["conditional"], rtol=1e-4)
    np.testing.assert_allclose(fit.predict(new, groups=False), ref["population"], rtol=1e-4)
    assert fit.predict(new)[-1] == pytest.approx(ref["population"][-1], rel=1e-12)  # new subject


def _lme4_estimates(fit, ref):
    """The fit with lme4's fixed effects and conditional modes in place of ours."""
    rows = []
    for factor, re in ref["ranef"].items():
        terms = [re["terms"]] if isinstance(re["terms"], str) else re["terms"]
        values = np.asarray(re["values"], dtype=float).reshape(len(re["levels"]), len(terms))
        rows += [(factor, lv, t, values[i, j]) for i, lv in enumerate(re["levels"])
                 for j, t in enumerate(terms)]
    table = pd.DataFrame(rows, columns=["group", "level", "term", "estimate"])
    g = fit.design.groups[0]
    order = [(lv, t) for lv in g.levels for t in g.term_names]
    table = table.set_index(["level", "term"]).loc[order].reset_index()
    beta = pd.Series(ref["fixef"])[list(fit.beta.index)]
    return replace(fit, beta=beta, ranef_table=table)


@pytest.mark.parametrize("case", ["cbpp", "contraception", "hsb82_scale"])
def test_predictions_equal_lme4(case):
    ref = PREDICT_REF[case]
    fit = fit_frequentist(ref["formula"], ml.datasets.load(DATASET[case]), family=FAMILY[case])
    new = pd.DataFrame(ref["newdata"])
    # our fit: Gaussian REML equals lme4 to 1e-4; GLMMs within the fits' own difference
    rtol = 1e-4 if case == "hsb82_scale" else 2e-3
    for groups, key in ((True, "conditional"), (False, "population")):
        for scale in ("link", "response"):
            got = fit.predict(new, groups=groups, scale=scale)
            np.testing.assert_allclose(got, ref[f"{key}_{scale}"], rtol=rtol, err_msg=key + scale)
    np.testing.assert_allclose(fit.predict(), ref["fitted"], rtol=rtol)
    if case != "hsb82_scale":  # (formulae's scale() divides by the ddof-0 sd, R's by ddof 1)
        plugged = _lme4_estimates(fit, ref)
        for groups, key in ((True, "conditional"), (False, "population")):
            for scale in ("link", "response"):
                np.testing.assert_allclose(plugged.predict(new, groups=groups, scale=scale),
                                           ref[f"{key}_{scale}"], rtol=1e-10)


def test_meta_prediction_interval_equals_metafor():
    ref = PREDICT_REF["bcg"]
    df = pd.DataFrame(ref["data"])
    fit = fit_frequentist(ref["formula"], df)
    assert fit.tau2 == pytest.approx(ref["tau2"], rel=1e-4)
    row = fit.prediction_interval().iloc[0]
    for key in ("pred", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper"):
        assert row[key] == pytest.approx(ref[key], rel=1e-4, abs=1e-6), key
    np.testing.assert_allclose(fit.predict(), ref["blup"], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- newdata handling


def test_scale_uses_the_training_centre_and_scale():
    df = ml.datasets.load("hsb82")
    design = build_design(ml.ModelSpec.from_formula("mAch ~ scale(ses) + (1 | school)"), df)
    new = pd.DataFrame({"ses": [1.5, 2.0, 2.5], "school": ["1224", "1224", "1288"]})
    x = new_design(design, new).X[:, 1]
    ses = df["ses"].to_numpy(float)
    np.testing.assert_allclose(x, (new["ses"] - ses.mean()) / ses.std(), rtol=1e-12)
    own = (new["ses"] - new["ses"].mean()) / new["ses"].std(ddof=0)
    assert not np.allclose(x, own)  # never the newdata's own centre


def test_factors_interactions_and_transforms_use_training_levels():
    df = ml.datasets.load("contraception")
    spec = ml.ModelSpec.from_formula("use ~ livch * urban + I(age^2) + (1 | district)",
                                     family="bernoulli")
    design = build_design(spec, df)
    new = pd.DataFrame({"livch": ["2", "0"], "urban": ["Y", "N"], "age": [3.0, -2.0],
                        "district": ["1", "2"]})
    X = pd.DataFrame(new_design(design, new).X, columns=design.fixed_names)
    expected = {"(Intercept)": [1, 1], "livch1": [0, 0], "livch2": [1, 0], "livch3+": [0, 0],
                "urbanY": [1, 0], "I(age^2)": [9.0, 4.0], "livch2:urbanY": [1, 0]}
    for name, values in expected.items():
        np.testing.assert_array_equal(X[name], values, err_msg=name)
    assert X.shape[1] == 9  # 1 + 3 livch + urbanY + I(age^2) + 3 interactions


def test_contextual_means_come_from_training_or_the_new_group():
    df = ml.datasets.load("hsb82")
    spec = ml.varying_intercept("mAch", "school", contextual=["ses"])
    fit = fit_frequentist(spec, df)
    train_mean = df.loc[df["school"] == "1224", "ses"].mean()
    new = pd.DataFrame({"ses": [0.5, 1.0, 2.0], "school": ["1224", "new", "new"]})
    nd = new_design(fit.design, new)
    X = pd.DataFrame(nd.X, columns=fit.design.fixed_names)
    np.testing.assert_allclose(X["ses_between"], [train_mean, 1.5, 1.5], rtol=1e-12)
    np.testing.assert_allclose(X["ses_within"], [0.5 - train_mean, -0.5, 0.5], rtol=1e-12)
    b = fit.beta
    expected = b["(Intercept)"] + b["ses_between"] * X["ses_between"] + b["ses_within"] * X[
        "ses_within"]
    np.testing.assert_allclose(fit.predict(new, groups=False), expected, rtol=1e-12)
    with pytest.raises(DataError, match="'ses_between'.*supply 'ses'"):
        fit.predict(new.drop(columns="ses"))


def test_newdata_errors_name_the_column_and_level():
    df = ml.datasets.load("contraception")
    fit = fit_frequentist("use ~ urban + age + (1 | district)", df, family="bernoulli")
    good = pd.DataFrame({"urban": ["Y"], "age": [1.0], "district": ["1"]})
    with pytest.raises(DataError, match=r"lacks the column\(s\) 'age'"):
        fit.predict(good.drop(columns="age"))
    with pytest.raises(DataError, match=r"'urban' of newdata has level\(s\) \['maybe'\]"):
        fit.predict(good.assign(urban="maybe"))
    with pytest.raises(DataError, match="'age' of newdata has 1 missing"):
        fit.predict(good.assign(age=np.nan))
    with pytest.raises(DataError, match="'age' of newdata must be numeric"):
        fit.predict(good.assign(age="old"))
    with pytest.raises(SpecError, match="scale='prob'"):
        fit.predict(good, scale="prob")
    before = good.copy()
    fit.predict(good)
    pd.testing.assert_frame_equal(good, before)  # never mutated
    assert fit.predict(good.drop(columns="district"), groups=False).shape == (1,)


# ---------------------------------------------------------------- posterior predictions


@pytest.fixture(scope="module")
def sleep_fit():
    return ml.fit_hierarchical("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"),
                               draws=500, tune=500, chains=2, seed=3, progressbar=False)


def _flat(da):
    return da.stack(s=("chain", "draw")).transpose("s", ...).to_numpy()


def test_posterior_predictions_equal_a_hand_computation(sleep_fit):
    fit = sleep_fit
    new = pd.DataFrame({"Days": [0.0, 4.5, 12.0], "Subject": ["308", "372", "308"]})
    post = fit.posterior
    b = _flat(post["b"])  # (S, 2)
    u = _flat(post["u_Subject"])  # (S, levels, 2)
    levels = list(post["Subject_level"].values)
    j = [levels.index(s) for s in new["Subject"]]
    x = np.column_stack([np.ones(3), new["Days"]])
    hand = b @ x.T + np.einsum("snq,nq->sn", u[:, j], x)
    draws = fit.predict_draws(new)
    np.testing.assert_allclose(_flat(draws), hand, rtol=1e-12)
    np.testing.assert_allclose(_flat(fit.predict_draws(new, groups=False)), b @ x.T, rtol=1e-12)
    table = fit.predict(new, prob=0.9)
    np.testing.assert_allclose(table["mean"], hand.mean(0), rtol=1e-12)
    np.testing.assert_allclose(table["sd"], hand.std(0, ddof=1), rtol=1e-10)
    for col, q in (("median", 0.5), ("lower", 0.05), ("upper", 0.95)):
        np.testing.assert_allclose(table[col], np.quantile(hand, q, axis=0), rtol=1e-12)
    np.testing.assert_allclose(table["reml"], fit.frequentist.predict(new), rtol=1e-12)
    fitted = fit.predict()
    assert len(fitted) == fit.design.n_obs and "Reaction" in fitted.columns


def test_new_subject_draws_its_effect_from_the_group_distribution(sleep_fit):
    fit = sleep_fit
    new = pd.DataFrame({"Days": [0.0, 0.0], "Subject": ["new", "new"]})
    draws = _flat(fit.predict_draws(new, seed=5))
    np.testing.assert_array_equal(draws[:, 0], draws[:, 1])  # one effect per new level
    b0 = _flat(fit.posterior["b"])[:, 0]
    sd0 = _flat(fit.posterior["sd_Subject"])[:, 0]
    z = (draws[:, 0] - b0) / sd0  # the new intercept effect over its sd: N(0, 1)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    pop = _flat(fit.predict_draws(new, new_levels="population"))
    np.testing.assert_allclose(pop[:, 0], b0, rtol=1e-12)
    with pytest.raises(DataError, match=r"level\(s\) \['new'\] of 'Subject' not seen"):
        fit.predict(new, new_levels="error")
    with pytest.raises(SpecError, match="new_levels='zero'"):
        fit.predict(new, new_levels="zero")
    a = fit.predict(new, seed=1)
    pd.testing.assert_frame_equal(a, fit.predict(new, seed=1))  # reproducible


def test_posterior_predict_adds_residual_noise_and_fills_idata(sleep_fit):
    fit = sleep_fit
    new = pd.DataFrame({"Days": [3.0] * 4, "Subject": ["308"] * 4})
    y = _flat(fit.posterior_predict(new, seed=2))
    mu = _flat(fit.predict_draws(new))
    sigma = _flat(fit.posterior["sigma"])
    z = (y - mu) / sigma[:, None]
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    tree = fit.predictions_idata(new, seed=2)
    assert tree["predictions"]["Reaction"].shape == (2, 500, 4)
    assert list(tree["predictions_constant_data"]["Subject"].values) == ["308"] * 4
    assert "predictions" not in fit.idata.children  # a copy


def test_nested_known_school_new_class():
    df, _ = nested(n_schools=6, n_classes=3, n_per=6, seed=2)
    fit = ml.fit_hierarchical("y ~ x + (1 | school) + (1 | school:klass)", df, draws=300,
                              tune=300, chains=2, seed=1, progressbar=False, frequentist=False)
    new = pd.DataFrame({"x": [0.0], "school": [df["school"].iloc[0]], "klass": ["c9"]})
    draws = _flat(fit.predict_draws(new, seed=4))[:, 0]
    post = fit.posterior
    b0 = _flat(post["b"])[:, 0]
    school = _flat(post["u_school"])[:, list(post["school_level"].values).index(new["school"][0]), 0]
    class_effect = draws - b0 - school  # the known school's effect is kept
    sd_class = _flat(post["sd_school__klass"])[:, 0]
    assert stats.kstest(class_effect / sd_class, "norm").pvalue > 1e-3
    pop = _flat(fit.predict_draws(new, new_levels="population"))[:, 0]
    np.testing.assert_allclose(pop, b0 + school, rtol=1e-12)


@pytest.fixture(scope="module")
def district_fit():
    df = ml.datasets.load("contraception")
    return ml.fit_hierarchical("use ~ urban + (1 | district)", df, family="bernoulli",
                               draws=500, tune=500, chains=2, seed=2, progressbar=False)


def test_logistic_new_district_averages_over_its_effect(district_fit):
    fit = district_fit
    new = pd.DataFrame({"urban": ["N"], "district": ["new"]})
    table = fit.predict(new, seed=3)
    b = _flat(fit.posterior["b"])
    tau = _flat(fit.posterior["sd_district"])[:, 0]
    eta = b[:, 0]  # rural: the intercept, about -0.7
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    exact = np.mean(expit(eta[:, None] + tau[:, None] * nodes) @ weights / weights.sum())
    mc_error = table["sd"].iloc[0] / np.sqrt(len(eta))
    assert abs(table["mean"].iloc[0] - exact) < 4 * mc_error
    population = fit.predict(new, groups=False)["mean"].iloc[0]
    assert population == pytest.approx(np.mean(expit(eta)), rel=1e-12)
    assert exact - np.mean(expit(eta)) > 0.005  # averaging over the effect pulls toward 1/2
    link = fit.predict(new, groups=False, scale="link")
    assert link["mean"].iloc[0] == pytest.approx(eta.mean(), rel=1e-12)
    assert link["laplace"].iloc[0] == pytest.approx(fit.frequentist.beta.iloc[0], rel=1e-12)
    y = _flat(fit.posterior_predict(new, seed=1))
    assert set(np.unique(y)) <= {0.0, 1.0}


def test_binomial_posterior_predict_needs_trials():
    df = ml.datasets.load("cbpp")
    fit = ml.fit_hierarchical("cbind(incidence, size - incidence) ~ period + (1 | herd)", df,
                              family="binomial", draws=200, tune=200, chains=2, seed=1,
                              progressbar=False, frequentist=False)
    new = pd.DataFrame({"period": ["1", "4"], "herd": ["1", "new"], "size": [20, 5]})
    y = _flat(fit.posterior_predict(new, seed=1))
    assert y[:, 0].max() <= 20 and y[:, 1].max() <= 5 and y.min() >= 0
    with pytest.raises(DataError, match="lacks the trials column 'size'"):
        fit.posterior_predict(new.drop(columns="size"))


# ---------------------------------------------------------------- exact reference


@pytest.mark.slow
def test_county_predictions_match_the_exact_posterior():
    """Gaussian random intercept under fixed priors: the predicted county mean at floor = 0 is
    intercept + county effect, whose exact posterior the quadrature gives; a new county's
    predictive sd is sqrt(Var(intercept) + E[tau^2])."""
    df = ml.datasets.load("radon")
    df = df[df["county"].isin(COUNTIES)].reset_index(drop=True)
    df["county"] = df["county"].astype(str)
    y = df["log_radon"].to_numpy(float)
    X = np.column_stack([np.ones(len(df)), df["floor"].to_numpy(float)])
    Z = (df["county"].to_numpy()[:, None] == np.array(COUNTIES)[None, :]).astype(float)
    combos = np.zeros((len(COUNTIES), 2 + len(COUNTIES)))
    combos[:, 0] = 1.0
    combos[np.arange(len(COUNTIES)), 2 + np.arange(len(COUNTIES))] = 1.0
    sd = RADON_PRIORS["sd"].kwargs
    ref = quadrature_reference(
        np.hstack([X, Z]), y, np.r_[1.0, 0.0, np.zeros(len(COUNTIES))], [2.0, 1.0],
        lambda t: np.log(2.0) + stats.t.logpdf(t, sd["nu"], scale=sd["sigma"]),
        lambda s: stats.expon.logpdf(s, scale=1.0 / RADON_PRIORS["sigma"].kwargs["lam"]),
        combos=combos,
    )
    spec = ml.ModelSpec.from_formula("log_radon ~ floor + (1 | county)", priors=RADON_PRIORS)
    fit = ml.fit_hierarchical(spec, df, draws=2000, tune=1000, chains=4, seed=11,
                              frequentist=False, progressbar=False)
    new = pd.DataFrame({"floor": 0.0, "county": COUNTIES + ["NEW"]})
    draws = fit.predict_draws(new, seed=7).transpose("chain", "draw", "obs").to_numpy()
    compare({c: draws[..., k] for k, c in enumerate(COUNTIES)},
            dict(zip(COUNTIES, ref["combos"], strict=True)))
    table = fit.predict(new, seed=7)
    np.testing.assert_allclose(table["mean"][:-1], draws[..., :-1].mean(axis=(0, 1)), rtol=1e-12)
    tau_mean, tau_sd, _ = ref["tau"]
    exact_sd = np.sqrt(ref["theta"][0][1] ** 2 + tau_sd**2 + tau_mean**2)
    assert table["sd"].iloc[-1] == pytest.approx(exact_sd, rel=0.05)
    assert table["mean"].iloc[-1] == pytest.approx(ref["theta"][0][0],
                                                   abs=4 * exact_sd / np.sqrt(8000))


# ---------------------------------------------------------------- plot


def test_plot_predictions(sleep_fit, district_fit):
    import matplotlib

    matplotlib.use("Agg")
    ax = sleep_fit.plot_predictions("Days", groups=["308", "309"])
    means = ax.lines[0].get_ydata()
    grid = pd.DataFrame({"Days": np.linspace(0, 9, 50)})
    np.testing.assert_allclose(means, sleep_fit.predict(grid, groups=False)["mean"], rtol=1e-12)
    assert len(ax.lines) == 1 + 1 + 2 + 1  # population, REML, two subjects, legend proxy
    ax = district_fit.plot_predictions("urban")
    assert ax.get_ylabel() == "P(use)"
    with pytest.raises(SpecError, match="x='district' is not a predictor"):
        district_fit.plot_predictions("district")


# ---------------------------------------------------------------- review: edge cases


def test_row_summaries_with_non_finite_and_extreme_draws():
    from multilevel.results.rowstats import summarize_rows

    cases = [np.r_[np.arange(10.0), np.inf], np.r_[-np.inf, np.arange(10.0)],
             np.r_[np.full(10, -1.5e308), 1.5e308], np.r_[np.zeros(10), 5e-324],
             np.r_[np.zeros(10), 1e-307], np.r_[3.0, 3.0, 3.0, 3.0]]
    for v in cases:
        out = summarize_rows(v[None], np.array([[0]]), np.array([[1.0]]), False, 0.9)[0]
        with np.errstate(all="ignore"):
            expected = np.quantile(v, [0.5, (1 - 0.9) / 2, (1 + 0.9) / 2])
        finite = np.isfinite(expected)  # numpy's interpolation toward inf gives nan or inf
        np.testing.assert_array_equal(out[2:][finite], expected[finite], err_msg=str(v))
        assert np.isinf(out[2:][~finite]).all() or np.isnan(expected[~finite]).all()
    out = summarize_rows(np.r_[np.nan, np.arange(10.0)][None], np.array([[0]]),
                         np.array([[1.0]]), False, 0.9)[0]
    assert np.isnan(out[2:]).all()


def test_levels_match_by_value_across_int_float_and_text():
    sleep = ml.datasets.load("sleepstudy")
    as_float = sleep.assign(Subject=sleep["Subject"].astype(str).astype(int).astype(float))
    fit = fit_frequentist("Reaction ~ Days + (Days | Subject)", as_float)
    for label in (308, 308.0, "308"):
        nd = new_design(fit.design, pd.DataFrame({"Days": [1.0], "Subject": [label]}))
        assert nd.groups[0].index.tolist() == [0], label
    contra = ml.datasets.load("contraception")
    fit = fit_frequentist("use ~ urban + (1 | district)", contra, family="bernoulli")
    nd = new_design(fit.design, pd.DataFrame({"urban": ["Y", "N"], "district": [1.0, 2]}))
    assert nd.groups[0].index.tolist() == [0, 1]


def test_population_prediction_keeps_a_factor_that_is_also_a_predictor():
    df = ml.datasets.load("cbpp")
    fit = fit_frequentist("cbind(incidence, size - incidence) ~ period + (1 | herd:period)", df,
                          family="binomial")
    new = pd.DataFrame({"period": [1, 4]})  # integers, the training column holds text
    b = fit.beta
    np.testing.assert_allclose(fit.predict(new, groups=False, scale="link"),
                               [b["(Intercept)"], b["(Intercept)"] + b["period4"]], rtol=1e-12)


def test_within_only_model_asks_for_the_within_column():
    df = ml.datasets.load("hsb82")
    spec = ml.ModelSpec.from_formula("mAch ~ ses_within + (1 | school)")
    fit = fit_frequentist(spec, ml.course.add_contextual_columns(spec, df))
    with pytest.raises(DataError, match="supply 'ses_within'"):
        fit.predict(pd.DataFrame({"ses": [1.0], "school": ["1224"]}))
    new = pd.DataFrame({"ses": [1.0, 2.0], "school": ["new", "new"]})  # a new school: its own mean
    X = new_design(fit.design, new).X
    np.testing.assert_allclose(X[:, 1], [-0.5, 0.5], rtol=1e-12)


def test_tables_keep_the_newdata_index(sleep_fit):
    new = pd.DataFrame({"Days": [1.0, 5.0, 9.0], "Subject": ["308", "309", "310"]},
                       index=[7, 3, 1])
    table = sleep_fit.predict(new)
    assert list(table.index) == [7, 3, 1]
    new["pred"] = table["mean"]  # aligns row by row
    assert np.isfinite(new["pred"]).all()
    assert list(sleep_fit.predict_draws(new)["obs"].values) == [7, 3, 1]


def test_nested_group_lines_keep_the_chosen_school():
    import matplotlib

    matplotlib.use("Agg")
    df, _ = nested(n_schools=5, n_classes=3, n_per=6, seed=4)
    fit = ml.fit_hierarchical("y ~ x + (1 | school) + (1 | school:klass)", df, draws=200,
                              tune=200, chains=2, seed=1, progressbar=False, frequentist=False)
    school = df["school"].iloc[0]
    ax = fit.plot_predictions("x", groups=[school], data=False)
    post = fit.posterior
    b = _flat(post["b"])
    u = _flat(post["u_school"])[:, list(post["school_level"].values).index(school), 0]
    x = np.linspace(df["x"].min(), df["x"].max(), 50)
    hand = (b[:, :1] + u[:, None] + b[:, 1:2] * x).mean(axis=0)  # the new class contributes 0
    np.testing.assert_allclose(ax.lines[-2].get_ydata(), hand, rtol=1e-10)
