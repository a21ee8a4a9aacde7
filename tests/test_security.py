"""Formulas, builder arguments and TOML specs are data, not code.

Each payload would create a sentinel file (or call ``os.system``) if anything evaluated it; the
tests check that it is rejected with a :class:`SpecError` before formulae sees it, and that
nothing ran.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest

import multilevel as ml
from multilevel import GroupTerm, ModelSpec, SpecError
from multilevel.design import build_design
from multilevel.design import checks as datachecks
from multilevel.design import matrices as design_module
from multilevel.spec import formula as formula_module
from multilevel.spec.io import spec_from_toml
from multilevel.spec.safety import check_safe


@pytest.fixture
def guard(tmp_path, monkeypatch):
    """A sentinel path payloads would create; os.system and formulae are watched."""
    sentinel = tmp_path / "pwned"
    calls: list[str] = []
    monkeypatch.setattr(os, "system", lambda cmd: calls.append(cmd) or 0)
    for module, name in ((design_module, "design_matrices"), (datachecks, "model_description"),
                         (formula_module, "model_description")):
        real = getattr(module, name)

        def watched(text, *args, _real=real, **kwargs):
            calls.append(f"formulae:{text}")
            return _real(text, *args, **kwargs)

        monkeypatch.setattr(module, name, watched)
    yield sentinel, calls
    assert not sentinel.exists(), "a payload ran"
    assert not [c for c in calls if not c.startswith("formulae:")], calls
    for call in calls:  # whatever reached formulae passes the whitelist
        check_safe(call.removeprefix("formulae:"))


def payloads(sentinel) -> list[str]:
    path = str(sentinel)
    return [
        f"__import__('os').system('touch {path}')",
        f"open('{path}', 'w')",
        f"I(__import__('os').system('touch {path}'))",
        "x.__class__",
        "log(x).real",
        "(lambda: 1)()",
        "I((lambda: 1)())",
        "exec('1')",
        "eval('1')",
        "globals()",
        "x[0]",
        "{x**2}",
        "x if x else x",
        "C(x, Treatment('a'))",
        "np.log(x)",
        "I(x) @ x",
        "x; import os",
        "`x`",
        "x # comment",
    ]


def small() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"y": rng.normal(size=12), "x": rng.normal(size=12),
                         "g": list("aabbccddeeff")})


def test_formula_payloads_are_rejected(guard):
    sentinel, calls = guard
    for payload in payloads(sentinel):
        for formula in (f"y ~ {payload} + (1 | g)", f"y ~ x + (1 + {payload} | g)",
                        f"y ~ x + (1 | {payload})"):
            with pytest.raises(SpecError):
                ModelSpec.from_formula(formula)
            with pytest.raises(SpecError):
                ml.fit_hierarchical(formula, small(), draws=10, tune=10, chains=1)
    assert not calls  # formulae never saw any of it


def test_builder_payloads_are_rejected(guard):
    sentinel, calls = guard
    for payload in payloads(sentinel):
        attempts = [
            lambda p=payload: ml.varying_intercept("y", "g", predictors=[p]),
            lambda p=payload: ml.varying_intercept("y", p),
            lambda p=payload: ml.varying_intercept(p, "g"),
            lambda p=payload: ml.varying_slope("y", "g", slopes=[p]),
            lambda p=payload: ml.multilevel_logistic("y", "g", trials=p),
            lambda p=payload: ml.meta_analysis("y", p, group="g"),
        ]
        for attempt in attempts:
            with pytest.raises(SpecError):
                attempt()
    assert not calls


def test_hand_built_specs_are_checked(guard):
    sentinel, calls = guard
    for payload in payloads(sentinel):
        with pytest.raises(SpecError):
            ModelSpec(response="y", fixed=(payload,), groups=(GroupTerm("g"),))
        with pytest.raises(SpecError):
            ModelSpec(response="y", groups=(GroupTerm("g", slopes=(payload,)),))
        with pytest.raises(SpecError):
            GroupTerm(payload)
        with pytest.raises(SpecError):
            ModelSpec(response=payload, groups=(GroupTerm("g"),))
    assert not calls


def test_a_spec_altered_after_validation_is_checked_again(guard):
    """Defense in depth: build_design checks the text it hands to formulae."""
    sentinel, calls = guard
    payload = payloads(sentinel)[0]
    bad_fixed = ModelSpec.from_formula("y ~ x + (1 | g)")
    object.__setattr__(bad_fixed, "fixed", (payload,))  # bypassing the frozen dataclass
    with pytest.raises(SpecError, match="__import__"):
        build_design(bad_fixed, small())
    bad_slope = ModelSpec.from_formula("y ~ x + (1 + x | g)")
    object.__setattr__(bad_slope.groups[0], "slopes", (payload,))
    with pytest.raises(SpecError, match="__import__"):
        build_design(bad_slope, small())
    assert not [c for c in calls if "__import__" in c]


def test_toml_payloads_are_rejected(guard):
    sentinel, calls = guard
    for payload in payloads(sentinel):
        quoted = payload.replace("\\", "\\\\").replace('"', '\\"')
        texts = [
            f'formula = "y ~ {quoted} + (1 | g)"\n',
            f'[builder]\nkind = "varying_intercept"\nresponse = "y"\ngroup = "{quoted}"\n',
            f'[builder]\nkind = "varying_intercept"\nresponse = "y"\ngroup = "g"\n'
            f'predictors = ["{quoted}"]\n',
            f'[builder]\nkind = "varying_slope"\nresponse = "{quoted}"\ngroup = "g"\n'
            f'slopes = ["x"]\n',
            f'formula = "y ~ x + (1 | g)"\n[levels]\n"{quoted}" = ["a", "b"]\n',
            f'formula = "y ~ x + (1 | g)"\n[priors]\nsigma = {{ dist = "{quoted}", sigma = 1 }}\n',
        ]
        for text in texts:
            with pytest.raises(SpecError):
                spec_from_toml(text)
    assert not [c for c in calls if c not in ("formulae:x", "formulae:1")], calls


def test_builder_kind_cannot_name_a_function(guard):
    with pytest.raises(SpecError, match="kind must be one of"):
        spec_from_toml('[builder]\nkind = "__import__"\nresponse = "y"\ngroup = "g"\n')
    with pytest.raises(SpecError, match="kind must be one of"):
        spec_from_toml('[builder]\nkind = "eval"\nresponse = "y"\ngroup = "g"\n')


def test_power_bombs_are_rejected_quickly():
    start = time.perf_counter()
    for text in ("y ~ I(9**9**9) + (1 | g)", "y ~ I(x ** (10 ** 10 ** 10)) + (1 | g)",
                 "y ~ I(x ^ 9 ^ 9 ^ 9) + (1 | g)", "y ~ I(2 ** 3) + (1 | g)"):
        with pytest.raises(SpecError, match="raises a number to a power"):
            ModelSpec.from_formula(text)
    assert time.perf_counter() - start < 1.0


def test_c_with_a_reference_level_points_to_levels():
    for text in ("y ~ C(f, Treatment('b')) + (1 | g)", "y ~ C(f, levels=['b', 'a']) + (1 | g)",
                 "y ~ C(f, 'b') + (1 | g)"):
        with pytest.raises(SpecError, match=r"levels="):
            ModelSpec.from_formula(text)
    df = small().assign(f=list("abab" * 3))
    d = build_design(ModelSpec.from_formula("y ~ C(f) + (1 | g)", levels={"f": ("b", "a")}), df)
    assert d.fixed_names == ("(Intercept)", "C(f)a")  # 'b' is the reference


def test_whitelisted_transforms_work():
    df = small().assign(z=np.linspace(1.0, 3.0, 12), f=list("pqr" * 4))
    cases = {
        "log(z)": np.log, "log2(z)": np.log2, "log10(z)": np.log10, "exp(z)": np.exp,
        "sqrt(z)": np.sqrt, "abs(x)": None, "I(z^2)": None, "center(z)": None, "scale(z)": None,
    }
    for term, fn in cases.items():
        d = build_design(ModelSpec.from_formula(f"y ~ {term} + (1 | g)"), df)
        col = d.X[:, 1]
        if fn is not None:
            np.testing.assert_allclose(col, fn(df["z"].to_numpy()))
    np.testing.assert_allclose(
        build_design(ModelSpec.from_formula("y ~ abs(x) + (1 | g)"), df).X[:, 1], df["x"].abs()
    )
    np.testing.assert_allclose(
        build_design(ModelSpec.from_formula("y ~ I(z^2) + (1 | g)"), df).X[:, 1], df["z"] ** 2
    )
    np.testing.assert_allclose(
        build_design(ModelSpec.from_formula("y ~ center(z) + (1 | g)"), df).X[:, 1],
        df["z"] - df["z"].mean(),
    )
    d = build_design(ModelSpec.from_formula("y ~ log(z):f + C(f) + (1 | g)"), df)
    assert d.fixed_names[:2] == ("(Intercept)", "log(z):fp")


def test_names_outside_the_data_do_not_reach_module_globals():
    """formulae resolves unknown names in a namespace of the transforms only."""
    df = small()
    for name in ("np", "pd", "warnings", "design_matrices"):
        with pytest.raises(ml.DataError, match=f"'{name}'"):
            build_design(ModelSpec.from_formula(f"y ~ {name} + (1 | g)"), df)


@pytest.mark.parametrize(
    "text",
    ["y ~ x + (1 | g)", "y ~ log(x) * z + (1 + x || g)", "cbind(s, n - s) ~ I(x^2) + (1 | a/b)",
     "y | se(s) ~ 1 + (1 | g)", "y ~ 0 + C(f) + center(x) + (1 | g)"],
)
def test_plain_formulas_pass_the_check(text):
    check_safe(text)
