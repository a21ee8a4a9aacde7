"""Design matrices against hand-built arrays, data checks, and the caller's data left alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multilevel import DataError, ModelSpec, datasets, multilevel_logistic, varying_intercept
from multilevel.design import build_design


def small() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "y": [1.0, 2.0, 0.5, 3.0, 2.5, 4.0],
            "x": [0.0, 1.0, 2.0, 0.0, 1.5, 3.0],
            "f": pd.Categorical(["lo", "hi", "lo", "hi", "mid", "lo"], categories=["mid", "lo", "hi"]),
            "g": ["b", "b", "a", "a", "c", "c"],
        }
    )


def test_exact_matrices_and_category_order():
    spec = ModelSpec.from_formula("y ~ x*f + (1 + x | g)")
    twice = pd.concat([small(), small()], ignore_index=True)
    twice.loc[6:, "x"] = twice.loc[6:, "x"] * 2 + 1
    d = build_design(spec, twice)
    # Categorical order respected: 'mid' is the reference level, as in R.
    assert d.fixed_names == ("(Intercept)", "x", "flo", "fhi", "x:flo", "x:fhi")
    x = twice["x"].to_numpy()
    lo = np.array([1, 0, 1, 0, 0, 1.0] * 2)
    hi = np.array([0, 1, 0, 1, 0, 0.0] * 2)
    expected = np.column_stack([np.ones(12), x, lo, hi, x * lo, x * hi])
    np.testing.assert_array_equal(d.X, expected)
    g = d.groups[0]
    assert g.levels == ("a", "b", "c")  # sorted for a plain string column
    assert g.index.tolist() == [1, 1, 0, 0, 2, 2] * 2
    np.testing.assert_array_equal(g.Z, np.column_stack([np.ones(12), x]))
    assert g.term_names == ("(Intercept)", "x")


def test_power_and_levels_from_spec():
    spec = ModelSpec.from_formula("y ~ I(x^2) + (1 | g)", levels={"g": ("c", "b", "a")})
    d = build_design(spec, small())
    assert d.fixed_names == ("(Intercept)", "I(x^2)")
    np.testing.assert_array_equal(d.X[:, 1], small()["x"].to_numpy() ** 2)


def test_nested_groups_labels():
    df = pd.DataFrame({"y": np.arange(8.0), "a": list("xxxxyyyy"), "b": list("1122" * 2)})
    d = build_design(ModelSpec.from_formula("y ~ 1 + (1 | a/b)"), df)
    assert [g.factor for g in d.groups] == ["a", "a:b"]
    assert d.groups[1].levels == ("x:1", "x:2", "y:1", "y:2")
    assert d.groups[1].index.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_bundled_reference_levels():
    d = build_design(ModelSpec.from_formula("mAch ~ sector + (1 | school)"), datasets.load("hsb82"))
    assert d.fixed_names == ("(Intercept)", "sectorCatholic")
    assert d.groups[0].levels[:3] == ("8367", "8854", "4458")  # R's level order


def test_binary_factor_response_second_level_is_success():
    df = datasets.load("contraception")
    d = build_design(multilevel_logistic("use", "district"), df)
    np.testing.assert_array_equal(d.y, (df["use"] == "Y").to_numpy(dtype=float))


def test_dataframe_not_mutated():
    df = pd.concat([small(), small()], ignore_index=True)
    df.loc[6:, "x"] = df.loc[6:, "x"] * 2 + 1
    before = df.copy(deep=True)
    build_design(ModelSpec.from_formula("y ~ x*f + (1 + x | g)"), df)
    pd.testing.assert_frame_equal(df, before)


@pytest.mark.parametrize(
    ("formula", "family", "change", "message"),
    [
        ("y ~ z + (1 | g)", "gaussian", None, "'z'"),
        ("y ~ x + (1 | h)", "gaussian", None, "'h'"),
        ("y ~ x + (1 | g)", "gaussian", {"y": [np.nan, 2, 3, 4, 5, 6]}, "1 NaN"),
        ("y ~ x + (1 | g)", "gaussian", {"x": [np.inf, 2, 3, 4, 5, 6]}, "'x'"),
        ("y ~ x + (1 | g)", "gaussian", {"g": ["a"] * 6}, "1 level"),
        ("y ~ x + (1 | g)", "gaussian", {"g": list("abcdef")}, "single row"),
        ("y ~ x + (1 | g)", "bernoulli", None, "0/1"),
        ("y ~ x + (1 | g)", "gaussian", {"x": [1.0] * 6}, "constant"),
        ("y ~ x + w + (1 | g)", "gaussian", {"w": [0, 2, 4, 0, 3, 6.0]}, "collinear"),
        ("y ~ x + (1 | g)", "gaussian", {"x": [1, "a", 2, 3, 4, 5]}, "mixes"),
        ("cbind(s, n - s) ~ x + (1 | g)", "binomial", {"s": [1, 2, 5, 0, 1, 1], "n": [3] * 6},
         "exceed"),
        ("cbind(s, n - s) ~ x + (1 | g)", "binomial", {"s": [1, 2, -1, 0, 1, 1], "n": [3] * 6},
         "non-negative"),
        ("cbind(s, n - s) ~ x + (1 | g)", "binomial", {"s": [1, 2, 1.5, 0, 1, 1], "n": [3] * 6},
         "whole"),
    ],
)
def test_bad_data_named_errors(formula, family, change, message):
    df = small()
    for col, values in (change or {}).items():
        df[col] = values
    before = df.copy(deep=True)
    with pytest.raises(DataError, match=message):
        build_design(ModelSpec.from_formula(formula, family=family), df)
    pd.testing.assert_frame_equal(df, before)


def test_empty_and_missing_drop():
    with pytest.raises(DataError, match="empty"):
        build_design(varying_intercept("y", "g"), small().iloc[:0])
    df = small()
    df.loc[0, "y"] = np.nan
    with pytest.warns(UserWarning, match="dropped 1 of 6 rows"):
        d = build_design(varying_intercept("y", "g", predictors=["x"]), df, missing="drop")
    assert d.n_obs == 5 and d.dropped_rows == 1
