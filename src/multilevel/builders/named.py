"""Named builders: the three model kinds, each only filling in a :class:`ModelSpec`.

Examples
--------
>>> varying_intercept("log_radon", "county", predictors=["floor"]).to_formula()
'log_radon ~ 1 + floor + (1 | county)'
>>> varying_slope("Reaction", "Subject", slopes=["Days"]).to_formula()
'Reaction ~ 1 + Days + (1 + Days | Subject)'
>>> multilevel_logistic("incidence", "herd", predictors=["period"], trials="size").family
'binomial'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from multilevel.errors import SpecError
from multilevel.formula import check_safe, parse_terms
from multilevel.spec import GroupTerm, ModelSpec

__all__ = ["meta_analysis", "multilevel_logistic", "varying_intercept", "varying_slope"]


def _terms(values: Iterable[str] | str, what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise SpecError(f"Each of {what} must be a non-empty column name or term, got {value!r}.")
        check_safe(value, where=what)
        _, expanded = parse_terms(value, where=what)
        out += [t for t in expanded if t not in out]
    return tuple(out)


def _group(group: str) -> str:
    if not isinstance(group, str) or not group.strip():
        raise SpecError(f"group must be a column name, got {group!r}.")
    check_safe(group, where="group")
    return group.strip()


def varying_intercept(
    response: str, group: str, predictors: Iterable[str] = (), **kwargs: Any
) -> ModelSpec:
    """``response ~ predictors + (1 | group)``: every group has its own intercept.

    Extra keyword arguments (``priors``, ``sampler``, ``levels``, ``name``, ``data``) go to
    :class:`ModelSpec`.
    """
    return ModelSpec(
        response=response,
        fixed=_terms(predictors, "predictors"),
        groups=(GroupTerm(_group(group)),),
        **kwargs,
    )


def varying_slope(
    response: str,
    group: str,
    slopes: Iterable[str],
    predictors: Iterable[str] = (),
    correlated: bool = True,
    **kwargs: Any,
) -> ModelSpec:
    """``response ~ predictors + slopes + (1 + slopes | group)``.

    Every varying slope is also a fixed effect (listed once). ``correlated=False`` gives
    lme4's ``(1 + x || group)``: independent intercept and slope variances.
    """
    slope_terms = _terms(slopes, "slopes")
    if not slope_terms:
        raise SpecError("varying_slope needs at least one slope; use varying_intercept otherwise.")
    fixed = _terms(predictors, "predictors")
    fixed += tuple(t for t in slope_terms if t not in fixed)
    return ModelSpec(
        response=response,
        fixed=fixed,
        groups=(GroupTerm(_group(group), slopes=slope_terms, correlated=correlated),),
        **kwargs,
    )


def multilevel_logistic(
    response: str,
    group: str,
    predictors: Iterable[str] = (),
    slopes: Iterable[str] = (),
    trials: str | None = None,
    correlated: bool = True,
    **kwargs: Any,
) -> ModelSpec:
    """A logit-link multilevel model: bernoulli for 0/1 or two-level responses, binomial when
    ``trials`` names the column of trial counts (``response`` is then the successes).
    """
    slope_terms = _terms(slopes, "slopes")
    fixed = _terms(predictors, "predictors")
    fixed += tuple(t for t in slope_terms if t not in fixed)
    return ModelSpec(
        response=response,
        fixed=fixed,
        groups=(GroupTerm(_group(group), slopes=slope_terms, correlated=correlated),),
        family="binomial" if trials else "bernoulli",
        trials=trials,
        **kwargs,
    )


def meta_analysis(
    effect: str, se: str, group: str, predictors: Iterable[str] = (), **kwargs: Any
) -> ModelSpec:
    """Random-effects meta-analysis: ``effect | se(se) ~ predictors + (1 | group)``.

    Each row is an estimate ``effect`` with its known standard error ``se``; the group effects
    (study effects) have sd ``tau``. Examples: eight schools, or meta-regression with
    ``predictors``.

    Examples
    --------
    >>> meta_analysis("effect", "se", group="school").to_formula()
    'effect | se(se) ~ 1 + (1 | school)'
    """
    return ModelSpec(
        response=effect,
        fixed=_terms(predictors, "predictors"),
        groups=(GroupTerm(_group(group)),),
        se=se,
        **kwargs,
    )
