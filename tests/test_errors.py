"""The catalogue of bad input, and sampler and fit trouble explained.

Every case goes through a public entry point and must raise :class:`SpecError` or
:class:`DataError` (both ``ValueError``) whose message names the column, term or option at
fault, before any model is built or sampled (the sampler is replaced by a function that fails
the test), with the caller's DataFrame unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pytest

import multilevel as ml
from multilevel import DataError, GroupTerm, ModelSpec, Prior, SpecError
from multilevel.design import build_design
from multilevel.frequentist import fit_frequentist
from multilevel.spec.io import spec_from_toml


def frame(n_groups: int = 6, per: int = 5, seed: int = 0, **columns: Any) -> pd.DataFrame:
    """Small valid data for every family; keyword arguments replace or add columns."""
    rng = np.random.default_rng(seed)
    n = n_groups * per
    df = pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "z": rng.uniform(0.5, 2.0, size=n),
            "g": np.repeat([f"g{j}" for j in range(n_groups)], per),
            "f": rng.choice(["lo", "mid", "hi"], size=n),
            "b": np.tile([0, 1], n // 2 + 1)[:n],
            "s": rng.integers(0, 4, size=n),
            "n": np.full(n, 4),
            "se": rng.uniform(0.5, 1.0, size=n),
        }
    )
    for name, values in columns.items():
        df[name] = values
    return df


def with_nan(col: str, rows: list[int], value: float = np.nan) -> Callable[[], pd.DataFrame]:
    def make() -> pd.DataFrame:
        df = frame()
        df[col] = df[col].astype(float if col != "g" else object)
        df.loc[rows, col] = value
        return df

    return make


fit = partial(ml.fit_hierarchical, draws=10, tune=10, chains=1, progressbar=False)
N = 30  # rows of frame()


@dataclasses.dataclass(frozen=True)
class Case:
    make: Callable[[], pd.DataFrame]
    call: Callable[[pd.DataFrame], Any]
    error: type[ValueError]
    culprits: tuple[str, ...]


def case(id_: str, make, call, error, *culprits: str):
    return pytest.param(Case(make, call, error, culprits), id=id_)


def toml(text: str) -> Callable[[pd.DataFrame], Any]:
    return lambda df: spec_from_toml(text)


CATALOGUE = [
    # --- columns and grouping factors -------------------------------------------------------
    case("unknown column in formula", frame, lambda df: fit("y ~ w + (1 | g)", df),
         DataError, "'w'", "not in the data"),
    case("unknown column in builder", frame,
         lambda df: build_design(ml.varying_intercept("y", "g", predictors=["xx"]), df),
         DataError, "'xx'", "Did you mean 'x'"),
    case("grouping factor missing", frame, lambda df: fit("y ~ x + (1 | h)", df),
         DataError, "'h'"),
    case("grouping factor all NaN", lambda: frame(g=[None] * N),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "'g'", "entirely missing"),
    case("grouping factor all NaN, missing=drop", lambda: frame(g=[np.nan] * N),
         lambda df: fit("y ~ x + (1 | g)", df, missing="drop"), DataError, "'g'",
         "entirely missing"),
    case("grouping factor one level", lambda: frame(g=["a"] * N),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "'g'", "1 level"),
    case("every group a singleton", lambda: frame(g=[f"r{i}" for i in range(N)]),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "'g'", "single row"),
    case("every group a singleton, bernoulli", lambda: frame(g=[f"r{i}" for i in range(N)]),
         lambda df: fit("b ~ x + (1 | g)", df, family="bernoulli"), DataError, "'g'",
         "single row"),
    case("duplicate column", lambda: pd.concat([frame(), frame()[["x"]]], axis=1),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "'x'", "2 times"),
    # --- missing values ---------------------------------------------------------------------
    case("NaN in response", with_nan("y", [0, 3]), lambda df: fit("y ~ x + (1 | g)", df),
         DataError, "'y'", "2 NaN", "missing='drop'"),
    case("inf in predictor", with_nan("x", [4], np.inf), lambda df: fit("y ~ x + (1 | g)", df),
         DataError, "'x'", "1 NaN or infinite"),
    case("NaN in grouping factor", with_nan("g", [1]), lambda df: fit("y ~ x + (1 | g)", df),
         DataError, "'g'", "1 NaN"),
    case("NaN through fit_frequentist", with_nan("y", [2]),
         lambda df: fit_frequentist("y ~ x + (1 | g)", df), DataError, "'y'", "1 NaN"),
    case("log of non-positive values", lambda: frame(z=np.linspace(-1, 1, N)),
         lambda df: fit("y ~ log(z) + (1 | g)", df), DataError, "log(z)", "NaN or infinite"),
    # --- predictors -------------------------------------------------------------------------
    case("date predictor", lambda: frame(x=pd.date_range("2020-01-01", periods=N)),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "'x'", "datetime"),
    case("mixed-type predictor", lambda: frame(x=[1.0, "a"] * (N // 2)),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "'x'", "mixes"),
    case("complex predictor", lambda: frame(x=np.arange(N) + 1j),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "'x'", "complex"),
    case("constant predictor", lambda: frame(x=np.ones(N)),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "'x'", "constant"),
    case("collinear predictors", lambda: frame(w=2.0 * frame()["x"] + 1.0),
         lambda df: fit("y ~ x + w + (1 | g)", df), DataError, "collinear", "w", "x"),
    case("fewer rows than parameters", lambda: frame(n_groups=2, per=2),
         lambda df: build_design(ModelSpec.from_formula("y ~ x + z + f + (1 + x | g)"), df),
         DataError, "4 rows", "parameters"),
    case("empty DataFrame", lambda: frame().iloc[:0], lambda df: fit("y ~ x + (1 | g)", df),
         DataError, "empty"),
    case("level missing from levels=", frame,
         lambda df: build_design(ModelSpec.from_formula("y ~ f + (1 | g)",
                                                        levels={"f": ("lo", "hi")}), df),
         DataError, "'f'", "mid"),
    # --- responses --------------------------------------------------------------------------
    case("gaussian response not numeric", lambda: frame(y=["a", "b"] * (N // 2)),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "'y'", "numeric"),
    case("bernoulli response three levels", frame,
         lambda df: fit("f ~ x + (1 | g)", df, family="bernoulli"), DataError, "'f'",
         "two levels"),
    case("bernoulli response 0/2", lambda: frame(b=[0, 2] * (N // 2)),
         lambda df: build_design(ml.multilevel_logistic("b", "g"), df), DataError, "'b'", "0/1"),
    case("bernoulli response one outcome", lambda: frame(b=np.ones(N, dtype=int)),
         lambda df: fit("b ~ x + (1 | g)", df, family="bernoulli"), DataError, "'b'",
         "success"),
    case("binomial successes exceed trials", lambda: frame(s=np.full(N, 5)),
         lambda df: fit("cbind(s, n - s) ~ x + (1 | g)", df), DataError, "'s'", "exceed"),
    case("binomial negative counts", lambda: frame(s=np.r_[-1, np.ones(N - 1)]),
         lambda df: fit("cbind(s, n - s) ~ x + (1 | g)", df), DataError, "'s'",
         "non-negative"),
    case("binomial non-integer counts", lambda: frame(n=np.full(N, 4.5)),
         lambda df: build_design(ml.multilevel_logistic("s", "g", trials="n"), df),
         DataError, "'n'", "whole"),
    case("binomial trials not numeric", lambda: frame(n=["4"] * N),
         lambda df: fit("cbind(s, n - s) ~ x + (1 | g)", df), DataError, "'n'", "counts"),
    case("non-positive known standard errors", lambda: frame(se=np.zeros(N)),
         lambda df: build_design(ml.meta_analysis("y", "se", group="g"), df), DataError,
         "'se'", "positive"),
    # --- formulas ---------------------------------------------------------------------------
    case("unbalanced parentheses", frame, lambda df: ModelSpec.from_formula("y ~ x + (1 | g"),
         SpecError, "parentheses"),
    case("nothing before the bar", frame, lambda df: ModelSpec.from_formula("y ~ x + (|g)"),
         SpecError, "(|g)", "(1 | g)"),
    case("no grouping factor", frame, lambda df: ModelSpec.from_formula("y ~ x + (x|)"),
         SpecError, "(x|)", "grouping factor"),
    case("unknown function", frame, lambda df: fit("y ~ foo(x) + (1 | g)", df), SpecError,
         "'foo'", "log"),
    case("power outside I()", frame, lambda df: ModelSpec.from_formula("y ~ x^2 + (1 | g)"),
         SpecError, "I(x^2)"),
    case("C() with a reference level", frame,
         lambda df: ModelSpec.from_formula("y ~ C(f, Treatment('lo')) + (1 | g)"), SpecError,
         "C()", "levels="),
    case("response also a predictor", frame,
         lambda df: build_design(ModelSpec.from_formula("y ~ x + I(y^2) + (1 | g)"), df),
         SpecError, "'y'", "predictor"),
    case("levels= for an unused column", frame,
         lambda df: build_design(ModelSpec.from_formula("y ~ x + (1 | g)",
                                                        levels={"q": ("a", "b")}), df),
         SpecError, "'q'"),
    case("column name not usable", frame,
         lambda df: ml.varying_intercept("log.y", "g"), SpecError, "'log.y'", "rename"),
    case("groups not GroupTerm", frame, lambda df: ModelSpec(response="y", groups=("g",)),
         SpecError, "GroupTerm", "'g'"),
    # --- family, priors, options ------------------------------------------------------------
    case("unknown family", frame, lambda df: fit("y ~ x + (1 | g)", df, family="poisson"),
         SpecError, "'poisson'", "gaussian"),
    case("unknown prior distribution", frame,
         lambda df: fit(ModelSpec.from_formula("y ~ x + (1 | g)",
                                               priors={"sigma": Prior("Foo", a=1.0)}), df),
         SpecError, "'Foo'", "HalfNormal"),
    case("unknown prior target", frame,
         lambda df: fit(ModelSpec.from_formula("y ~ x + (1 | g)",
                                               priors={"zzz": Prior("Normal", sigma=1.0)}), df),
         SpecError, "'zzz'", "Valid targets"),
    case("negative prior scale", frame,
         lambda df: fit(ModelSpec.from_formula("y ~ x + (1 | g)",
                                               priors={"sigma": Prior("HalfNormal", sigma=-1.0)}),
                        df),
         SpecError, "'sigma'", "positive"),
    case("prior parameter not a number", frame,
         lambda df: Prior("Normal", sigma="wide"), SpecError, "'sigma'", "number"),
    case("df not a DataFrame", frame, lambda df: fit("y ~ x + (1 | g)", df.to_dict()),
         SpecError, "'df'", "DataFrame"),
    case("draws=0", frame, lambda df: fit("y ~ x + (1 | g)", df, draws=0), SpecError,
         "'draws'"),
    case("negative draws", frame, lambda df: fit("y ~ x + (1 | g)", df, draws=-5), SpecError,
         "'draws'"),
    case("chains=-1", frame, lambda df: fit("y ~ x + (1 | g)", df, chains=-1), SpecError,
         "'chains'"),
    case("chains=0", frame, lambda df: fit("y ~ x + (1 | g)", df, chains=0), SpecError,
         "'chains'"),
    case("negative seed", frame, lambda df: fit("y ~ x + (1 | g)", df, seed=-1), SpecError,
         "'seed'"),
    case("sampler='stan'", frame, lambda df: fit("y ~ x + (1 | g)", df, sampler="stan"),
         SpecError, "'stan'", "nutpie"),
    case("target_accept=2", frame, lambda df: fit("y ~ x + (1 | g)", df, target_accept=2),
         SpecError, "'target_accept'"),
    case("parameterization='x'", frame,
         lambda df: fit("y ~ x + (1 | g)", df, parameterization="x"), SpecError,
         "parameterization", "'x'"),
    case("marginal for a logistic model", frame,
         lambda df: fit("b ~ x + (1 | g)", df, family="bernoulli", parameterization="marginal"),
         SpecError, "'marginal'"),
    case("frequentist='bogus'", frame,
         lambda df: fit("y ~ x + (1 | g)", df, frequentist="bogus"), SpecError, "'bogus'"),
    case("frequentist='ML' for a logistic model", frame,
         lambda df: fit("b ~ x + (1 | g)", df, family="bernoulli", frequentist="ML"),
         SpecError, "'ML'", "bernoulli"),
    case("missing='bogus'", frame, lambda df: fit("y ~ x + (1 | g)", df, missing="bogus"),
         SpecError, "missing", "'drop'"),
    case("spec of the wrong type", frame, lambda df: fit(42, df), SpecError, "spec"),
    case("frequentist='' (an empty method)", frame,
         lambda df: fit("y ~ x + (1 | g)", df, frequentist=""), SpecError, "''", "REML"),
    case("known-SE slopes with the frequentist fit", frame,
         lambda df: fit("y | se(z) ~ x + (1 + x | g)", df), SpecError, "(1 | study)",
         "frequentist=False"),
    case("fit_frequentist unknown method", frame,
         lambda df: fit_frequentist("y ~ x + (1 | g)", df, method="foo"), SpecError, "'foo'",
         "REML"),
    # --- TOML specs -------------------------------------------------------------------------
    case("TOML file missing", frame, lambda df: ml.load_spec("/nonexistent/spec.toml"),
         SpecError, "spec.toml", "does not exist"),
    case("TOML unparsable", frame, toml('formula = "y ~ x + (1|g)\n'), SpecError,
         "Cannot parse"),
    case("TOML unknown key", frame, toml('formula = "y ~ x + (1|g)"\nfromula = 1\n'), SpecError,
         "'fromula'", "formula"),
    case("TOML unknown sampler key", frame,
         toml('formula = "y ~ x + (1|g)"\n[sampler]\ndraw = 10\n'), SpecError, "'draw'",
         "draws"),
    case("TOML unknown builder argument", frame,
         toml('[builder]\nkind = "varying_intercept"\nresponse = "y"\ngroup = "g"\nfoo = 1\n'),
         SpecError, "'foo'", "predictors"),
    case("TOML priors not a table", frame, toml('formula = "y ~ x + (1|g)"\npriors = 3\n'),
         SpecError, "'priors'", "table"),
    case("TOML levels not lists", frame,
         toml('formula = "y ~ f + (1|g)"\n[levels]\nf = "lo"\n'), SpecError, "levels['f']"),
    # --- hostile sizes and shapes -------------------------------------------------------------
    case("formula of 400 KB", frame,
         lambda df: fit("y ~ " + " + ".join(["x"] * 50_000) + " + (1 | g)", df), SpecError,
         "characters long", "10,000"),
    case("formula with 600 terms", frame,
         lambda df: fit("y ~ " + " + ".join(["x"] * 600) + " + (1 | g)", df), SpecError,
         "601 terms", "limit is 500"),
    case("5,000 balanced nested parentheses", frame,
         lambda df: fit("y ~ " + "(" * 5000 + "x" + ")" * 5000 + " + (1 | g)", df), SpecError,
         "nests parentheses 5000 deep", "limit is 50"),
    case("TOML of 1 MB", frame, toml('formula = "y ~ x + (1|g)"\n' + "# pad\n" * 200_000),
         SpecError, "characters long", "100,000"),
    case("MultiIndex columns",
         lambda: frame().set_axis(pd.MultiIndex.from_product([list("yxzgfbsnq"), ["a"]]),
                                  axis=1), lambda df: fit("y ~ x + (1 | g)", df), DataError,
         "MultiIndex", "Flatten"),
    case("integer column names", lambda: frame().set_axis(range(9), axis=1),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "named by a string", "df.columns"),
    case("numbers stored as objects", lambda: frame(x=np.arange(N).astype(object)),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "'x'", "pd.to_numeric"),
    case("Period predictor", lambda: frame(x=[pd.Period("2020-01")] * N),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "'x'", "period[M]", "neither numeric"),
    case("Period objects in an object column",
         lambda: frame(x=pd.Series([pd.Period("2020-01")] * N, dtype=object)),
         lambda df: fit("y ~ x + (1 | g)", df), DataError, "'x'", "Period values"),
    case("TOML bad sampler value", frame,
         toml('formula = "y ~ x + (1|g)"\n[sampler]\nchains = "four"\n'), SpecError,
         "'chains'"),
]


@pytest.fixture
def no_sampling(monkeypatch):
    """Building or sampling a model fails the test: errors must come before both."""

    def reached(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was built or sampled before the error")

    for name in ("build_model", "sample_model", "run_nutpie"):
        monkeypatch.setattr(f"multilevel.engine.run.{name}", reached)


@pytest.mark.usefixtures("no_sampling")
@pytest.mark.parametrize("bad", CATALOGUE)
def test_bad_input_is_named_before_sampling(bad: Case):
    df = bad.make()
    before = df.copy(deep=True)
    with pytest.raises(bad.error) as info:
        bad.call(df)
    assert type(info.value) is bad.error and isinstance(info.value, ValueError)
    for culprit in bad.culprits:
        assert culprit in str(info.value), (culprit, str(info.value))
    pd.testing.assert_frame_equal(df, before)


def test_catalogue_is_long_enough():
    assert len(CATALOGUE) >= 40


def test_missing_drop_reports_what_it_dropped():
    df = frame()
    df.loc[[0, 7], "y"] = np.nan
    df.loc[[7, 9], "x"] = np.inf
    before = df.copy(deep=True)
    with pytest.warns(UserWarning, match=r"dropped 3 of 30 rows .*'y': 2, 'x': 2"):
        d = build_design(ModelSpec.from_formula("y ~ x + (1 | g)"), df, missing="drop")
    assert (d.n_obs, d.dropped_rows) == (27, 3)
    with pytest.warns(UserWarning, match="dropped 3 of 30"):
        freq = fit_frequentist("y ~ x + (1 | g)", df, missing="drop")
    assert "3 rows with missing values were dropped." in freq.messages
    pd.testing.assert_frame_equal(df, before)


# --- warnings: the fit goes on, the message names the term ------------------------------------


def test_slope_constant_within_groups_warns():
    df = frame()
    df["w"] = df.groupby("g")["x"].transform("mean")  # a group-level variable
    with pytest.warns(UserWarning, match=r"varying slope of 'w' in \(1 \+ w \| g\).*'g'"):
        d = build_design(ModelSpec.from_formula("y ~ w + (1 + w | g)"), df)
    assert d.groups[0].term_names == ("(Intercept)", "w")


def test_slope_that_varies_within_groups_does_not_warn(recwarn):
    build_design(ModelSpec.from_formula("y ~ x + (1 + x | g)"), frame())
    assert not [w for w in recwarn if "varying slope" in str(w.message)]


def test_perfect_separation_by_a_continuous_predictor_warns():
    df = frame()
    df["b"] = (df["x"] > 0.1).astype(int)
    with pytest.warns(UserWarning, match=r"Perfect separation: the fixed-effect term 'x'.*'b'"):
        build_design(ml.multilevel_logistic("b", "g", predictors=["x", "z"]), df)


def test_perfect_separation_by_a_level_warns():
    df = frame()
    df.loc[df["f"] == "hi", "b"] = 1  # every 'hi' row (the reference level) is a success
    with pytest.warns(UserWarning, match=r"level 'hi' of 'f' \(term 'f'\) has only successes"):
        build_design(ml.multilevel_logistic("b", "g", predictors=["f", "x"]), df)
    df.loc[df["f"] == "mid", "b"] = 0
    with pytest.warns(UserWarning, match="Perfect separation") as record:
        build_design(ml.multilevel_logistic("b", "g", predictors=["f"]), df)
    text = " ".join(str(w.message) for w in record)
    assert "level 'mid' of 'f' (term 'f') has only failures" in text
    assert "level 'hi' of 'f' (term 'f') has only successes" in text


def test_no_separation_no_warning(recwarn):
    build_design(ml.multilevel_logistic("b", "g", predictors=["x", "f"]), frame())
    assert not [w for w in recwarn if "separation" in str(w.message)]


def test_sampler_options_checked_before_the_data():
    """Option errors come first even when the data are bad too."""
    with pytest.raises(SpecError, match="'chains'"):
        fit("y ~ x + (1 | g)", frame(g=[None] * N), chains=0)


def test_group_term_and_spec_types():
    with pytest.raises(SpecError, match="correlated"):
        GroupTerm("g", correlated="yes")
    assert GroupTerm("g", slopes="x").slopes == ("x",)
    assert ModelSpec(response="y", fixed="x1", groups=GroupTerm("g")).fixed == ("x1",)


# --- sampler and fit trouble explained ---------------------------------------------------------


def test_bad_sampling_warns_and_explains_in_summary():
    df = ml.datasets.load("sleepstudy")
    with pytest.warns(UserWarning, match="Sampler checks failed: .*ess_bulk") as record:
        result = ml.fit_hierarchical("Reaction ~ Days + (Days | Subject)", df, draws=20,
                                     tune=20, chains=2, seed=3, progressbar=False)
    message = next(str(w.message) for w in record if "Sampler checks" in str(w.message))
    assert "raise draws" in message
    diag = result.diagnostics().set_index("check")
    assert not diag.loc["ess_bulk", "ok"]
    text = result.summary()
    assert "! ess_bulk: Too few effective draws" in text
    assert "raise draws" in text


def test_divergences_explained_with_a_remedy():
    """Centered eight schools (a funnel) with PyMC's NUTS diverges; the fit still returns."""
    df = ml.datasets.load("eight_schools")
    spec = ml.meta_analysis("effect", "se", group="school")
    with pytest.warns(UserWarning) as record:
        result = ml.fit_hierarchical(spec, df, draws=200, tune=200, chains=2, seed=1,
                                     sampler="pymc", parameterization="centered",
                                     target_accept=0.5, frequentist=False, progressbar=False)
    assert any("Sampler checks failed" in str(w.message) and "divergences=" in str(w.message)
               for w in record)
    diag = result.diagnostics().set_index("check")
    assert diag.loc["divergences", "value"] > 0
    assert "raise target_accept" in result.summary()


def test_singular_reml_fit_is_explained_in_summary():
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"g": np.repeat(np.arange(8), 6), "x": rng.normal(size=48)})
    noise = rng.normal(size=48)
    df["y"] = 2.0 + 0.5 * df["x"] + noise - pd.Series(noise).groupby(df["g"]).transform("mean")
    with pytest.warns(UserWarning):
        result = ml.fit_hierarchical("y ~ x + (1 | g)", df, draws=100, tune=100, chains=2,
                                     seed=1, progressbar=False)
    assert result.frequentist.singular
    text = result.summary()
    assert "REML fit is singular" in text and "isSingular" in text
