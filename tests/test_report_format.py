"""The display form of a fit (summary(), Jupyter, the HTML report): numbers as a paper prints
them, headline sentences whose numbers are those of the tables, a table of contents whose links
resolve, and no NaN anywhere."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import multilevel as ml
from multilevel.report import display_table, headline, p_value, rhat, sig3, whole


@pytest.mark.parametrize(("value", "text"), [
    (251.4178, "251"), (10.4176, "10.4"), (7.0836, "7.08"), (0.09049, "0.0905"), (-0.4706, "-0.471"),
    (1822.99, "1823"), (99.96, "100"), (9.996, "10.0"), (0.0, "0"), (2.5e-6, "2.50e-06"),
    (3.1e7, "3.10e+07"), (float("nan"), "–"), (None, "–"), (float("inf"), "inf"),
])
def test_three_significant_digits(value, text):
    assert sig3(value) == text


@given(st.floats(min_value=1e-3, max_value=99.9, allow_nan=False))
def test_sig3_keeps_three_significant_digits(value):
    text = sig3(value)
    digits = text.replace("-", "").replace(".", "").lstrip("0")
    assert len(digits) == 3, text
    assert math.isclose(float(text), value, rel_tol=5.01e-3)  # half a unit in the third digit


def test_other_forms():
    assert (whole(4550.5), whole(812.4), rhat(1.0), rhat(1.00449)) == ("4550", "812", "1.000", "1.004")
    assert (p_value(0.0009999), p_value(0.001), p_value(0.5)) == ("< 0.001", "0.001", "0.500")
    assert (p_value(float("nan")), whole(None)) == ("–", "–")


def test_display_table_by_column_and_never_nan():
    t = pd.DataFrame({"term": ["a", "b"], "mean": [1234.5, np.nan], "ess_bulk": [99.6, 4000.0],
                      "r_hat": [1.0123, np.nan], "p_value": [1e-5, 0.0421], "ok": [True, False],
                      "n": np.array([3, 12])})
    shown = display_table(t)
    assert shown.to_dict("list") == {
        "term": ["a", "b"], "mean": ["1234", "–"], "ess_bulk": ["100", "4000"],
        "r_hat": ["1.012", "–"], "p_value": ["< 0.001", "0.042"], "ok": ["yes", "no"],
        "n": ["3", "12"]}
    assert t["mean"].isna().sum() == 1  # the input is not changed


@pytest.fixture(scope="module")
def sleep_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ml.fit_hierarchical("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"),
                                   draws=300, tune=300, chains=2, seed=5, progressbar=False)


def _number(pattern: str, text: str) -> list[float]:
    match = re.search(pattern, text)
    assert match, (pattern, text)
    return [float(g.replace(",", "")) for g in match.groups()]


def test_headline_numbers_are_the_tables(sleep_fit):
    lines = headline(sleep_fit)
    icc = sleep_fit.icc().set_index("type").loc["adjusted"]
    mean, lower, upper, pct, n_groups, reml = _number(
        r"ICC ([\d.]+) \[([\d.]+), ([\d.]+)\]: (\d+)% of the variance in Reaction lies between the "
        r"(\d+) Subject groups \(averaged over the observed Days; REML ([\d.]+)\)", lines[0])
    assert (mean, lower, upper, reml) == tuple(round(float(v), 3) for v in
                                               (icc["mean"], icc["lower"], icc["upper"], icc["reml"]))
    assert pct == round(100 * icc["mean"]) and n_groups == 18
    assert not any(line.startswith("Design effect") for line in lines)  # a slope: not a mean's deff
    # shrinkage: 1 - the mean pooling factor, per term
    shrink = sleep_fit.shrinkage()
    intercept, days = _number(r"intercepts shrink (\d+)%, Days slopes shrink (\d+)%", lines[1])
    by_term = 1 - shrink.groupby("term")["pooling_factor"].mean()
    assert intercept == round(100 * by_term["(Intercept)"]) and days == round(100 * by_term["Days"])
    assert lines[-1] == "Every sampler check passed." or "failed" in lines[-1]


def test_design_effect_sentence_is_the_formula():
    """One factor with a varying intercept alone: 1 + (n - 1) ICC from the ICC by hand."""
    df = ml.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ml.fit_hierarchical("Reaction ~ 1 + (1 | Subject)", df, draws=300, tune=300, chains=2,
                                  seed=3, progressbar=False)
    icc = fit.icc().set_index("type").loc["adjusted"]
    line = next(s for s in headline(fit) if s.startswith("Design effect"))
    n, icc_shown, deff, rows, eff_n = _number(
        r"1 \+ \((\d+) - 1\) x ([\d.]+) = ([\d.]+) .*the (\d+) rows carry about as much "
        r"information as (\d+) independent", line)
    assert (n, rows) == (10, 180) and icc_shown == round(icc["mean"], 3)
    assert deff == pytest.approx(1 + 9 * icc["mean"], abs=0.006)
    assert deff == pytest.approx(1 + 9 * icc_shown, abs=0.01)  # the printed arithmetic adds up
    # the posterior mean of N / deff per draw: by Jensen at least N / mean(deff), and close to it
    assert 180 / deff - 0.5 <= eff_n < 1.15 * 180 / deff
    assert "residual ICC" not in line  # no predictors


def test_nested_factor_is_described_within_its_parent():
    from multilevel.report.sentences import icc_sentences

    icc = pd.DataFrame({"group": ["a", "a:b"], "type": ["adjusted"] * 2, "mean": [0.3, 0.1],
                        "lower": [0.2, 0.05], "upper": [0.4, 0.2]})
    lines = icc_sentences(icc, "y", {"a": 10, "a:b": 50}, None, latent=False)
    assert lines[1] == ("ICC 0.100 [0.0500, 0.200]: 10% of the variance in y lies between the 50 "
                        "a:b groups within a.")


def test_summary_and_html_have_no_nan_and_integer_ess(sleep_fit):
    text = sleep_fit.summary()
    assert "NaN" not in text and "nan" not in text.lower().replace("nanvar", "")
    ess = sleep_fit.fixed_effects()["ess_bulk"]
    for value in ess:
        assert re.search(rf"\b{round(value)}\b", text)
    assert "In brief" in text and "parameterization marginal" in re.sub(r"\s+", " ", text)
    page = sleep_fit._repr_html_()  # no figures here, so no base64 to strip
    assert "NaN" not in page and "In brief" in page
    assert f">{round(ess.iloc[0])}<" in page


def test_report_has_contents_linking_to_sections(sleep_fit, tmp_path):
    page = ml.report.write_report(sleep_fit, tmp_path / "r.html").read_text(encoding="utf-8")
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)  # base64 may spell NaN
    links = re.findall(r"<a href='#([\w-]+)'>", page)
    assert {"headline", "fixed-effects", "variance-components", "icc", "shrinkage", "diagnostics",
            "spec", "versions"} <= set(links)
    for anchor in links:
        assert re.search(rf"id=['\"]{anchor}['\"]", page), anchor
    # figures sit in the section of the table they illustrate, each with alt text
    section = page.split("id='variance-components'")[1].split("<section")[0]
    assert "alt='Variance components and ICC'" in section
    assert "alt='Caterpillar: Subject'" in page.split("id='shrinkage'")[1].split("<section")[0]
    assert "NaN" not in text and "nan<" not in text


def test_logistic_headline_is_on_the_latent_scale():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ml.fit_hierarchical("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                                  ml.datasets.load("cbpp"), draws=200, tune=200, chains=2, seed=2,
                                  progressbar=False)
    lines = headline(fit)
    assert "latent (logit-scale) variance in incidence lies between the 15 herd groups" in lines[0]
    assert "(Laplace " in lines[0]
    assert not any(line.startswith("Design effect") for line in lines)  # Gaussian models only
