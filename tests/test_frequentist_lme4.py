"""The frequentist fit against lme4 1.1 reference fits (``shared/reference``), plus behaviour
that the references do not cover: nested and crossed terms, singular fits, option checks.

Tolerances (the reference README explains the binomial Laplace allowances):

* fixed effects: 1e-3 of max(|estimate|, its standard error);
* standard errors: 1e-2 relative (binomial Laplace 1.5e-2);
* variance-component sds (and the residual sd): 2e-3 relative; correlations 2e-3 absolute;
* logLik: 1e-3 absolute (binomial Laplace: from 1e-3 below to 4e-3 above lme4's);
* ICC: 1e-3 absolute;
* conditional modes: 1e-2 of the largest |mode| of that group term (the term's scale, so modes
  near zero are not held to a relative tolerance); conditional sds: 1e-2 relative per level.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from reference_paths import REFERENCE
from scipy import stats

from multilevel import ModelSpec, SpecError, datasets
from multilevel.frequentist import FrequentistFit, fit_frequentist

CASES = (
    json.loads((REFERENCE / "cases.json").read_text())
    if (REFERENCE / "cases.json").is_file()
    else []
)
needs_reference = pytest.mark.skipif(
    not CASES, reason=f"lme4 reference fits not found at {REFERENCE / 'cases.json'}"
)
case_ids = [c["id"] for c in CASES] or ["no-reference"]


def _family_and_method(case: dict[str, Any]) -> tuple[str, str, int]:
    if case["family"] == "gaussian":
        return "gaussian", case["method"], 1
    family = "binomial" if case["formula"].startswith("cbind(") else "bernoulli"
    if case["method"].startswith("AGQ"):
        return family, "AGQ", int(case["method"].split("=")[1])
    return family, case["method"], 1


@cache
def _fit(case_id: str) -> tuple[FrequentistFit, dict[str, Any], bool]:
    """(fit, lme4 reference, whether the binomial Laplace allowances apply)."""
    case = next(c for c in CASES if c["id"] == case_id)
    ref = json.loads((REFERENCE / case["reference_file"]).read_text())
    family, method, n_agq = _family_and_method(case)
    fit = fit_frequentist(
        case["formula"], datasets.load(case["dataset"]), family=family, method=method, n_agq=n_agq
    )
    return fit, ref, family != "gaussian" and method == "Laplace"


@needs_reference
@pytest.mark.parametrize("case_id", case_ids)
def test_fixed_effects_match_lme4(case_id: str) -> None:
    fit, ref, laplace = _fit(case_id)
    table = fit.fixed_effects().set_index("term")
    assert list(table.index) == list(ref["fixed_effects"])
    se_tol = 1.5e-2 if laplace else 1e-2
    for term, r in ref["fixed_effects"].items():
        scale = max(abs(r["estimate"]), r["std_error"])
        assert abs(table.loc[term, "estimate"] - r["estimate"]) <= 1e-3 * scale, term
        assert table.loc[term, "std_error"] == pytest.approx(r["std_error"], rel=se_tol), term
        stat = r.get("z_value", r.get("t_value"))
        assert table.loc[term, "statistic"] == pytest.approx(stat, rel=se_tol, abs=1e-3), term
        if "p_value_wald_z" in r:  # a 1% SE change moves small p-values by ~10%
            log_p = np.log10(table.loc[term, "p_value"])
            assert log_p == pytest.approx(np.log10(r["p_value_wald_z"]), abs=0.1), term
    names = ref["vcov_fixed"]["names"]
    ref_cov = np.asarray(ref["vcov_fixed"]["matrix"])
    scale = np.outer(np.sqrt(np.diag(ref_cov)), np.sqrt(np.diag(ref_cov)))
    cov = fit.cov_fixed.loc[names, names].to_numpy()
    np.testing.assert_allclose(cov / scale, ref_cov / scale, atol=3 * se_tol)


@needs_reference
@pytest.mark.parametrize("case_id", case_ids)
def test_variance_components_match_lme4(case_id: str) -> None:
    fit, ref, _ = _fit(case_id)
    vc = fit.variance_components()
    assert set(vc["stat"]) <= {"sd", "var", "cor"}

    def value(group: str, term: str, stat: str) -> float:
        rows = vc[(vc["group"] == group) & (vc["term"] == term) & (vc["stat"] == stat)]
        assert len(rows) == 1, (group, term, stat)
        return float(rows["estimate"].iloc[0])

    for block in ref["variance_components"].values():
        group = block["group_factor"]
        for term, sd in block["std_devs"].items():
            assert value(group, term, "sd") == pytest.approx(sd, rel=2e-3), (group, term)
            assert value(group, term, "var") == pytest.approx(sd**2, rel=4e-3), (group, term)
        for pair, cor in block["correlations"].items():
            a, b = (part.strip() for part in pair.split(","))
            assert value(group, f"{a},{b}", "cor") == pytest.approx(cor, abs=2e-3), pair
    residual = ref.get("residual")
    if residual:
        assert value("Residual", "", "sd") == pytest.approx(residual["sigma"], rel=2e-3)
        assert value("Residual", "", "var") == pytest.approx(residual["variance"], rel=4e-3)
        assert fit.sigma == pytest.approx(residual["sigma"], rel=2e-3)
    else:
        assert fit.sigma is None and "Residual" not in set(vc["group"])
    assert list(fit.theta.index) == list(ref["theta"])
    scale = max(abs(v) for v in ref["theta"].values())
    np.testing.assert_allclose(fit.theta.to_numpy(), list(ref["theta"].values()), atol=5e-3 * scale)


@needs_reference
@pytest.mark.parametrize("case_id", case_ids)
def test_loglik_and_information_criteria_match_lme4(case_id: str) -> None:
    fit, ref, laplace = _fit(case_id)
    diff = fit.loglik - ref["logLik"]
    if laplace:
        assert -1e-3 <= diff <= 4e-3
    else:
        assert abs(diff) <= 1e-3
    tol = 2 * (4e-3 if laplace else 1e-3)
    assert fit.n_params == ref["logLik_df"]
    assert fit.aic == pytest.approx(ref["AIC"], abs=tol)
    assert fit.bic == pytest.approx(ref["BIC"], abs=tol)
    deviance = ref["REML_criterion"] if ref.get("REML") else ref["deviance"]
    assert fit.deviance == pytest.approx(deviance, abs=tol)
    assert fit.nobs == ref["nobs"]
    assert fit.singular == ref["isSingular"]
    assert fit.converged


@needs_reference
@pytest.mark.parametrize("case_id", case_ids)
def test_icc_matches_performance(case_id: str) -> None:
    fit, ref, _ = _fit(case_id)
    icc = fit.icc().set_index(["group", "type"])["estimate"]
    total = "all" if len(fit.groups) > 1 else fit.groups[0].factor
    expected = ref["icc"]
    if case_id == "sleepstudy_slope_uncorr_reml":
        expected = _uncorrelated_icc_from_lme4(ref)
    assert icc[(total, "adjusted")] == pytest.approx(expected["ICC_adjusted"], abs=1e-3)
    assert icc[("all", "conditional")] == pytest.approx(expected["ICC_conditional"], abs=1e-3)


def _uncorrelated_icc_from_lme4(ref: dict[str, Any]) -> dict[str, float]:
    """Nakagawa's ICC of ``(1 | Subject) + (0 + Days | Subject)`` from lme4's estimates.

    performance::icc (insight 0.19) drops lme4's split block ``Subject.1`` and so reports the
    intercept variance alone (0.4898); the definition both our sides use counts the slope
    variance too: ``v = tau0^2 + tau1^2 * mean(Days^2)``, ``var_fixed = var(b0 + b1 Days)``.
    """
    days = datasets.load("sleepstudy")["Days"].to_numpy(dtype=float)
    vc = ref["variance_components"]
    v = vc["Subject"]["variances"]["(Intercept)"] + vc["Subject.1"]["variances"]["Days"] * np.mean(
        days**2
    )
    resid = ref["residual"]["variance"]
    var_fixed = np.var(ref["fixed_effects"]["Days"]["estimate"] * days, ddof=1)
    return {"ICC_adjusted": v / (v + resid), "ICC_conditional": v / (v + resid + var_fixed)}


@needs_reference
@pytest.mark.parametrize("case_id", case_ids)
def test_conditional_modes_match_lme4(case_id: str) -> None:
    fit, ref, _ = _fit(case_id)
    table = fit.ranef()
    assert list(table.columns) == ["group", "level", "term", "estimate", "cond_sd"]
    for group, block in ref["ranef"].items():
        levels = [lv["level"] for lv in block["levels"]]
        for term in block["terms"]:
            rows = table[(table["group"] == group) & (table["term"] == term)].set_index("level")
            assert list(rows.index) == levels, "levels must come in R's order with R's labels"
            modes = np.array([lv["values"][term] for lv in block["levels"]])
            sds = np.array([lv["condSD"][term] for lv in block["levels"]])
            scale = np.max(np.abs(modes))
            np.testing.assert_allclose(rows["estimate"].to_numpy(), modes, atol=1e-2 * scale)
            np.testing.assert_allclose(rows["cond_sd"].to_numpy(), sds, rtol=1e-2)


@needs_reference
def test_double_bar_equals_split_terms() -> None:
    fit, ref, _ = _fit("sleepstudy_slope_uncorr_reml")
    double = fit_frequentist("Reaction ~ Days + (Days || Subject)", datasets.load("sleepstudy"))
    assert double.loglik == pytest.approx(fit.loglik, abs=1e-8)
    assert "cor" not in set(double.variance_components()["stat"])


def test_agq_log_likelihood_leaves_out_the_saturated_constant() -> None:
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    df = datasets.load("cbpp")
    laplace = fit_frequentist(formula, df)
    agq = fit_frequentist(formula, df, n_agq=9)
    assert (laplace.method, agq.method, agq.n_agq) == ("Laplace", "AGQ", 9)
    y, n = df["incidence"].to_numpy(), df["size"].to_numpy()
    saturated = stats.binom.logpmf(y, n, y / n).sum()  # -41.978 on cbpp
    assert agq.loglik + saturated == pytest.approx(laplace.loglik, abs=0.1)


def _nested_data(seed: int = 3, tau_b: float = 0.7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(8), 30)
    b = np.tile(np.repeat(np.arange(3), 10), 8)  # b labels repeat inside each a: nested
    ua, ub = rng.normal(0, 1.0, 8), rng.normal(0, tau_b, (8, 3))
    y = 2.0 + ua[a] + ub[a, b] + rng.normal(0, 0.5, a.size)
    return pd.DataFrame({"y": y, "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b]})


def test_nested_term_gives_two_variance_components() -> None:
    fit = fit_frequentist("y ~ 1 + (1 | a/b)", _nested_data())
    vc = fit.variance_components()
    sds = vc[(vc["stat"] == "sd") & (vc["group"] != "Residual")]
    assert list(sds["group"]) == ["a", "a:b"]
    assert np.all(sds["estimate"] > 0.2)
    assert set(fit.ranef()["group"]) == {"a", "a:b"}
    assert len(fit.ranef().query("group == 'a:b'")) == 24
    assert "a0:b1" in set(fit.ranef()["level"])


def test_crossed_terms_keep_their_own_variances() -> None:
    rng = np.random.default_rng(7)
    n = 1200
    a, b = rng.integers(0, 40, n), rng.integers(0, 12, n)
    y = 1.0 + rng.normal(0, 2.0, 40)[a] + rng.normal(0, 0.3, 12)[b] + rng.normal(0, 1.0, n)
    df = pd.DataFrame({"y": y, "a": a.astype(str), "b": b.astype(str)})
    fit = fit_frequentist("y ~ 1 + (1 | b) + (1 | a)", df, method="ML")
    vc = fit.variance_components().query("stat == 'sd'").set_index("group")["estimate"]
    assert vc["a"] > 1.3 and vc["b"] < 0.8
    icc = fit.icc()
    assert list(zip(icc["group"], icc["type"], strict=True)) == [
        ("b", "adjusted"), ("a", "adjusted"), ("all", "adjusted"), ("all", "conditional")
    ]
    parts = icc.set_index(["group", "type"])["estimate"]
    assert parts[("a", "adjusted")] + parts[("b", "adjusted")] == pytest.approx(
        parts[("all", "adjusted")]
    )


def test_singular_fit_is_flagged() -> None:
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(10), 8)
    noise = rng.normal(size=g.size)
    noise -= pd.Series(noise).groupby(g).transform("mean").to_numpy()  # equal group means
    fit = fit_frequentist("y ~ 1 + (1 | g)", pd.DataFrame({"y": 3.0 + noise, "g": g}))
    assert fit.singular
    assert fit.theta.iloc[0] < 1e-4
    assert [m for m in fit.messages if "singular" in m] == [
        "boundary (singular) fit: see help('isSingular')"
    ]
    assert not fit_frequentist("y ~ 1 + (1 | a)", _nested_data()).singular


def test_user_frame_is_not_modified() -> None:
    df = datasets.load("contraception")
    before = df.copy()
    fit_frequentist("use ~ urban + (1 | district)", df, family="bernoulli")
    pd.testing.assert_frame_equal(df, before)


@pytest.mark.parametrize(
    ("formula", "family", "kwargs", "match"),
    [
        ("use ~ urban + (1 | district)", "bernoulli", {"method": "REML"}, "does not suit"),
        ("use ~ urban + (1 | district)", "bernoulli", {"method": "ML"}, "does not suit"),
        ("y ~ 1 + (1 | a)", "gaussian", {"method": "Laplace"}, "does not suit"),
        ("y ~ 1 + (1 | a)", "gaussian", {"method": "Bayes"}, "Unknown method"),
        ("use ~ urban + (urban | district)", "bernoulli", {"n_agq": 5}, "single scalar"),
        ("use ~ urban + (1 | district)", "bernoulli", {"method": "AGQ"}, "n_agq > 1"),
        ("use ~ urban + (1 | district)", "bernoulli", {"n_agq": 0}, "n_agq"),
        ("use ~ urban + (1 | district)", "bernoulli", {"method": "Laplace", "n_agq": 3}, "AGQ"),
    ],
)
def test_invalid_options_raise_spec_error(
    formula: str, family: str, kwargs: dict[str, Any], match: str
) -> None:
    df = datasets.load("contraception") if family != "gaussian" else _nested_data()
    with pytest.raises(SpecError, match=match):
        fit_frequentist(formula, df, family=family, **kwargs)


def test_spec_and_family_must_agree() -> None:
    spec = ModelSpec.from_formula("y ~ 1 + (1 | a)")
    with pytest.raises(SpecError, match="conflicts"):
        fit_frequentist(spec, _nested_data(), family="bernoulli")
    assert fit_frequentist(spec, _nested_data()).method == "REML"


def test_toml_spec_path_is_accepted(tmp_path: Path) -> None:
    spec = ModelSpec.from_formula("y ~ 1 + (1 | a)")
    path = tmp_path / "model.toml"
    path.write_text(spec.to_toml())
    data = _nested_data()
    assert fit_frequentist(path, data).loglik == pytest.approx(
        fit_frequentist(spec, data).loglik, abs=1e-10
    )
