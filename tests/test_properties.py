"""Property-based tests of the design step and the parsers (hypothesis).

Random valid data never fail; random invalid data, formulas and TOML give only our errors
(:class:`DataError`, :class:`SpecError`), never a KeyError, TypeError or numpy error, and the
caller's DataFrame is never changed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multilevel import DataError, ModelSpec, SpecError
from multilevel.design import Design, build_design
from multilevel.spec.io import spec_from_toml

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SPECS = [
    ("y ~ x + (1 | g)", "gaussian"),
    ("y ~ x + f + (1 + x | g)", "gaussian"),
    ("y ~ x * f + (x || g)", "gaussian"),
    ("y ~ log(x) + I(x^2) + (1 | g)", "gaussian"),
    ("y ~ 1 + (1 | g/f)", "gaussian"),
    ("y ~ x + (1 | g) + (1 | f)", "gaussian"),
    ("y | se(s) ~ 1 + (1 | g)", "gaussian"),
    ("b ~ x + f + (1 | g)", "bernoulli"),
    ("cbind(s, n - s) ~ x + (1 | g)", "binomial"),
]

finite = st.floats(-1e3, 1e3, allow_nan=False)
odd_float = st.one_of(finite, st.just(np.nan), st.just(np.inf), st.just(-np.inf), st.just(0.0))
labels = st.sampled_from(["a", "b", "c", "d"])


@st.composite
def column(draw, n: int, kind: str):
    """One column of ``n`` values, sometimes degenerate or of a wrong type."""
    style = draw(st.sampled_from(["good"] * 6 + ["odd", "constant", "text", "none"]))
    if style == "constant":
        return [draw(st.one_of(finite, labels))] * n
    if style == "none":
        return [None] * n
    if style == "text":
        return draw(st.lists(st.one_of(labels, finite), min_size=n, max_size=n))
    if kind == "label":
        return draw(st.lists(st.one_of(labels, st.integers(0, 3)) if style == "odd" else labels,
                             min_size=n, max_size=n))
    if kind == "count":
        ints = st.integers(-1, 6) if style == "odd" else st.integers(0, 3)
        return draw(st.lists(st.one_of(ints, odd_float) if style == "odd" else ints,
                             min_size=n, max_size=n))
    return draw(st.lists(odd_float if style == "odd" else finite, min_size=n, max_size=n))


@st.composite
def frames(draw):
    n = draw(st.integers(0, 24))
    kinds = {"y": "float", "x": "float", "g": "label", "f": "label", "b": "count", "s": "count",
             "n": "count"}
    data = {name: draw(column(n, kind)) for name, kind in kinds.items()}
    df = pd.DataFrame(data) if n else pd.DataFrame({k: [] for k in kinds})
    if n and draw(st.booleans()):
        df["f"] = df["f"].astype("category")
    if draw(st.integers(0, 5)) == 0:
        df = df.drop(columns=draw(st.sampled_from(list(kinds))))
    return df


def check_design(d: Design) -> None:
    assert d.X.shape == (d.n_obs, len(d.fixed_names))
    assert np.isfinite(d.y).all() and np.isfinite(d.X).all()
    for g in d.groups:
        assert g.Z.shape == (d.n_obs, g.n_terms) and np.isfinite(g.Z).all()
        assert g.index.min() >= 0 and g.index.max() < g.n_levels
    if d.trials is not None:
        assert (d.trials >= d.y).all()


@SETTINGS
@given(df=frames(), which=st.sampled_from(SPECS), missing=st.sampled_from(["error", "drop"]))
def test_any_data_give_a_design_or_our_error(df, which, missing):
    spec = ModelSpec.from_formula(which[0], family=which[1])
    before = df.copy(deep=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            design = build_design(spec, df, missing=missing)
        except (DataError, SpecError):
            pass
        else:
            check_design(design)
    pd.testing.assert_frame_equal(df, before)


@SETTINGS
@given(
    groups=st.integers(3, 6), per=st.integers(3, 6), seed=st.integers(0, 2**16),
    which=st.sampled_from([0, 1, 2, 5, 7]),
)
def test_valid_data_always_give_a_design(groups, per, seed, which):
    rng = np.random.default_rng(seed)
    n = groups * per
    df = pd.DataFrame({
        "y": rng.normal(size=n), "x": rng.normal(size=n),
        "g": np.repeat([f"g{j}" for j in range(groups)], per),
        "f": np.tile(["u", "v"], n // 2 + 1)[:n],
        "b": np.tile([0, 1, 1, 0, 1], n // 5 + 1)[:n],
    })
    formula, family = SPECS[which]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = build_design(ModelSpec.from_formula(formula, family=family), df)
    check_design(d)
    assert d.n_obs == n


TOKENS = ["y", "x", "g", "~", "+", "-", "*", ":", "|", "||", "(", ")", "1", "0", "I(", "log(",
          "C(", "^", "**", "2", "/", ",", ".", "'a'", "__import__", "cbind(", "se(", " ", "=",
          "[", "lambda", "9", "\n", "{", "#"]


FIXED_TERMS = ["x", "z", "x:z", "x*z", "I(x^2)", "log(z)", "C(f)", "0", "1", "scale(x)", "-1",
               "x^2", "(x", "f(x)"]
structured = st.builds(
    lambda lhs, fixed, groups: f"{lhs} ~ {' + '.join(fixed + groups)}",
    st.sampled_from(["y", "cbind(s, n - s)", "p(s, n)", "y | se(s)", "", "log(y)"]),
    st.lists(st.sampled_from(FIXED_TERMS), max_size=3),
    st.lists(
        st.builds(lambda lhs, bar, g: f"({lhs} {bar} {g})",
                  st.sampled_from(["1", "x", "1 + x", "0 + x", "", "z + I(z^2)"]),
                  st.sampled_from(["|", "||"]), st.sampled_from(["g", "a/b", "g:h", "", "1"])),
        max_size=2,
    ),
)


@SETTINGS
@given(st.one_of(structured, st.lists(st.sampled_from(TOKENS), max_size=20).map("".join),
                 st.text(max_size=40)))
def test_random_formulas_parse_or_raise_spec_error(text):
    try:
        spec = ModelSpec.from_formula(text)
    except SpecError:
        return
    assert ModelSpec.from_formula(spec.to_formula()) == spec


TOML_LINES = ['formula = "y ~ x + (1 | g)"', "formula = 3", 'family = "bernoulli"', "family = []",
              "[sampler]", "draws = 10", "chains = -1", 'seed = "a"', "[priors]",
              'sigma = { dist = "HalfNormal", sigma = 1 }', "sigma = 2", "[levels]",
              'f = ["a", "b"]', "f = 1", "[builder]", 'kind = "varying_intercept"',
              'response = "y"', 'group = "g"', "predictors = [1]", 'name = "n"', "data = 4",
              "x = ", '"', "[[a]]"]


@SETTINGS
@given(st.one_of(st.lists(st.sampled_from(TOML_LINES), max_size=8).map("\n".join),
                 st.text(max_size=60)))
def test_random_toml_loads_or_raises_spec_error(text):
    try:
        spec = spec_from_toml(text)
    except SpecError:
        return
    assert spec_from_toml(spec.to_toml()) == spec
