"""Specs, lme4 formula parsing, named builders and TOML round trips."""

from __future__ import annotations

import pytest

from multilevel import (
    GroupTerm,
    ModelSpec,
    Prior,
    SamplerSettings,
    SpecError,
    load_spec,
    multilevel_logistic,
    varying_intercept,
    varying_slope,
)
from multilevel.spec.io import spec_from_toml


@pytest.mark.parametrize(
    ("formula", "fixed", "groups"),
    [
        ("y ~ x + (1 | g)", ("x",), [("g", True, (), True)]),
        ("y ~ x + (1 + x | g)", ("x",), [("g", True, ("x",), True)]),
        ("y ~ x + (x | g)", ("x",), [("g", True, ("x",), True)]),
        ("y ~ x + (0 + x | g)", ("x",), [("g", False, ("x",), True)]),
        ("y ~ x + (x || g)", ("x",), [("g", True, ("x",), False)]),
        ("y ~ x + (1 | g) + (0 + x | g)", ("x",), [("g", True, ("x",), False)]),
        ("y ~ 1 + (1 | a/b)", (), [("a", True, (), True), ("a:b", True, (), True)]),
        ("y ~ 1 + (1 | a) + (1 | b)", (), [("a", True, (), True), ("b", True, (), True)]),
        ("y ~ x*z + (1 | g)", ("x", "z", "x:z"), [("g", True, (), True)]),
        ("y ~ age + I(age^2) + (1 | g)", ("age", "I(age ** 2)"), [("g", True, (), True)]),
    ],
)
def test_formula_terms(formula, fixed, groups):
    spec = ModelSpec.from_formula(formula)
    assert spec.fixed == fixed
    assert [(g.factor, g.intercept, g.slopes, g.correlated) for g in spec.groups] == groups


def test_binomial_responses():
    a = ModelSpec.from_formula("cbind(s, n - s) ~ x + (1 | g)")
    b = ModelSpec.from_formula("p(s, n) ~ x + (1 | g)")
    c = ModelSpec.from_formula("cbind(s, f) ~ x + (1 | g)")
    assert (a.family, a.response, a.trials) == ("binomial", "s", "n")
    assert (b.family, b.response, b.trials) == ("binomial", "s", "n")
    assert (c.family, c.response, c.failures, c.trials) == ("binomial", "s", "f", None)


def test_no_intercept_and_round_trip():
    spec = ModelSpec.from_formula("y ~ 0 + x + (1 + x || g)")
    assert not spec.intercept
    assert ModelSpec.from_formula(spec.to_formula()) == spec


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ x + (1 | g",  # unbalanced
        "y ~ x + 1 | g)",
        "y ~ x + (|g)",
        "y ~ x + (x|)",
        "y ~ x",  # no group term
        "y ~ foo(x) + (1 | g)",  # unknown function
        "y ~ __import__('os').system('echo hi') + (1 | g)",
        "y ~ x.__class__ + (1 | g)",
        "y ~ (lambda: 1)() + (1 | g)",
        "y ~ x ^ 2 + (1 | g)",
        "log(y) ~ x + (1 | g)",
        "y ~ x ~ z + (1 | g)",
    ],
)
def test_bad_formulas_are_spec_errors(formula):
    with pytest.raises(SpecError):
        ModelSpec.from_formula(formula)


def test_named_builders_match_formulas():
    assert varying_intercept("y", "g", predictors=["x"]) == ModelSpec.from_formula("y ~ x + (1 | g)")
    slope = varying_slope("y", "g", slopes=["x"], predictors=["x", "z"])
    assert slope.fixed == ("x", "z")  # the slope is listed once
    assert slope == ModelSpec.from_formula("y ~ x + z + (1 + x | g)")
    assert varying_slope("y", "g", slopes=["x"], correlated=False).groups[0].correlated is False
    logit = multilevel_logistic("s", "g", predictors=["x"], trials="n")
    assert logit == ModelSpec.from_formula("cbind(s, n - s) ~ x + (1 | g)")
    assert multilevel_logistic("use", "g").family == "bernoulli"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"family": "poisson"}, "Unknown family"),
        ({"family": "binomial"}, "trials"),
        ({"groups": ()}, "group term"),
        ({"trials": "n"}, "binomial"),
    ],
)
def test_spec_validation(kwargs, message):
    base = {"response": "y", "fixed": ("x",), "groups": (GroupTerm("g"),)}
    with pytest.raises(SpecError, match=message):
        ModelSpec(**{**base, **kwargs})


@pytest.mark.parametrize(
    "settings",
    [{"draws": 0}, {"chains": -1}, {"draws": 1.5}, {"sampler": "stan"}, {"target_accept": 1.2},
     {"parameterization": "magic"}],
)
def test_sampler_settings_validation(settings):
    with pytest.raises(SpecError):
        SamplerSettings(**settings)


def test_toml_round_trip_with_priors_and_levels(tmp_path):
    spec = varying_slope(
        "y", "g", slopes=["x"], priors={"sigma": Prior("HalfNormal", sigma=2.0)},
        levels={"z": ("b", "a")}, name="demo",
    ).with_sampler(draws=123, seed=7)
    path = tmp_path / "spec.toml"
    path.write_text(spec.to_toml())
    assert load_spec(path) == spec


def test_toml_builder_and_errors(tmp_path):
    text = '[builder]\nkind = "varying_intercept"\nresponse = "y"\ngroup = "g"\npredictors = ["x"]\n'
    assert spec_from_toml(text) == varying_intercept("y", "g", predictors=["x"])
    with pytest.raises(SpecError, match="Unknown key"):
        spec_from_toml('formula = "y ~ x + (1|g)"\nfromula = 1\n')
    with pytest.raises(SpecError, match="Unknown key"):
        spec_from_toml('formula = "y ~ x + (1|g)"\n[sampler]\ndraw = 10\n')
    with pytest.raises(SpecError, match="parse"):
        spec_from_toml('formula = "y ~ x + (1|g)\n')
    with pytest.raises(SpecError, match="not allowed"):
        spec_from_toml("formula = \"y ~ __import__('os') + (1|g)\"\n")
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")


def test_shipped_model_specs_load():
    from pathlib import Path

    models = sorted((Path(__file__).resolve().parents[1] / "models").glob("*.toml"))
    assert len(models) >= 5
    for path in models:
        spec = load_spec(path)
        assert spec.data is not None
        assert spec.groups
