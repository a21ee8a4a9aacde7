"""Named builders: the three model kinds, each only filling in a :class:`ModelSpec`.

Examples
--------
>>> varying_intercept("log_radon", "county", predictors=["floor"]).to_formula()
'log_radon ~ 1 + floor + (1 | county)'
>>> varying_slope("Reaction", "Subject", slopes=["Days"]).to_formula()
'Reaction ~ 1 + Days + (1 + Days | Subject)'
>>> multilevel_logistic("incidence", "herd", predictors=["period"], trials="size").family
'binomial'

Contextual effects (Snijders and Bosker 2012, sec. 4.6) and cross-level interactions:

>>> varying_slope("mAch", "school", slopes=["ses"], predictors=["sector"], contextual=["ses"],
...               cross_level={"ses": ["sector"]}).to_formula()
'mAch ~ 1 + sector + ses_between + ses_within + ses_within:sector + (1 + ses_within | school)'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from multilevel.errors import SpecError
from multilevel.spec.contextual import between_name, within_name
from multilevel.spec.formula import parse_terms
from multilevel.spec.model import ModelSpec
from multilevel.spec.safety import check_safe
from multilevel.spec.terms import GroupTerm

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


def _level_terms(
    fixed: tuple[str, ...],
    slopes: tuple[str, ...],
    contextual: Iterable[str] | str,
    cross_level: Mapping[str, Iterable[str] | str] | None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Fixed and slope terms after the ``contextual=`` and ``cross_level=`` options.

    Each contextual ``x`` enters the fixed part as its group mean ``x_between`` and its
    within-group deviation ``x_within`` (in place of ``x``, or appended); ``x`` becomes
    ``x_within`` in slopes and interactions. ``cross_level={"x": ["z"]}`` adds the interaction
    ``x:z`` (and the main effects ``x`` and ``z`` when missing).
    """
    ctx = _terms(contextual, "contextual")
    for x in ctx:
        if not x.isidentifier():
            raise SpecError(f"contextual= takes column names, got {x!r}.")

    def rename(term: str) -> str:
        return ":".join(within_name(p) if p in ctx else p for p in term.split(":"))

    out: list[str] = []
    for term in fixed + tuple(t for t in slopes if t not in fixed):
        new = [between_name(term), within_name(term)] if term in ctx else [rename(term)]
        out += [t for t in new if t not in out]
    out += [t for x in ctx for t in (between_name(x), within_name(x)) if t not in out]
    for x, others in (cross_level or {}).items():
        (x,) = _terms(x, "cross_level keys")
        zs = _terms(others, f"cross_level[{x!r}]")
        if not zs:
            raise SpecError(f"cross_level[{x!r}] names no group-level variable.")
        main = rename(x)
        out += [t for t in (main, *zs) if t not in out]
        out += [t for z in zs if (t := f"{main}:{z}") not in out]
    return tuple(out), tuple(rename(t) for t in slopes)


def varying_intercept(
    response: str,
    group: str,
    predictors: Iterable[str] = (),
    *,
    contextual: Iterable[str] | str = (),
    cross_level: Mapping[str, Iterable[str] | str] | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """``response ~ predictors + (1 | group)``: every group has its own intercept.

    ``contextual=["x"]`` replaces (or adds) ``x`` by its group mean ``x_between`` and its
    within-group deviation ``x_within``: their coefficients are the between- and within-group
    effects, and between minus within is the contextual effect
    (:func:`multilevel.course.contextual_effects`). The data need those two columns:
    :func:`multilevel.course.add_contextual_columns` adds them. ``cross_level={"x": ["z"]}``
    adds the interaction ``x:z`` of a level-1 and a level-2 variable (with their main effects).

    Extra keyword arguments (``priors``, ``sampler``, ``levels``, ``name``, ``data``) go to
    :class:`ModelSpec`.
    """
    fixed, _ = _level_terms(_terms(predictors, "predictors"), (), contextual, cross_level)
    return ModelSpec(
        response=response,
        fixed=fixed,
        groups=(GroupTerm(_group(group)),),
        **kwargs,
    )


def varying_slope(
    response: str,
    group: str,
    slopes: Iterable[str],
    predictors: Iterable[str] = (),
    correlated: bool = True,
    *,
    contextual: Iterable[str] | str = (),
    cross_level: Mapping[str, Iterable[str] | str] | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """``response ~ predictors + slopes + (1 + slopes | group)``.

    Every varying slope is also a fixed effect (listed once). ``correlated=False`` gives
    lme4's ``(1 + x || group)``: independent intercept and slope variances.
    ``contextual`` and ``cross_level`` as in :func:`varying_intercept`; a contextual slope
    ``x`` varies as ``x_within``, e.g. ``cross_level={"cses": ["sector"]}`` adds
    ``cses:sector``.
    """
    slope_terms = _terms(slopes, "slopes")
    if not slope_terms:
        raise SpecError("varying_slope needs at least one slope; use varying_intercept otherwise.")
    fixed, slope_terms = _level_terms(
        _terms(predictors, "predictors"), slope_terms, contextual, cross_level
    )
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
    *,
    contextual: Iterable[str] | str = (),
    cross_level: Mapping[str, Iterable[str] | str] | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """A logit-link multilevel model: bernoulli for 0/1 or two-level responses, binomial when
    ``trials`` names the column of trial counts (``response`` is then the successes).
    ``contextual`` and ``cross_level`` as in :func:`varying_intercept` (log-odds scale).
    """
    fixed, slope_terms = _level_terms(
        _terms(predictors, "predictors"), _terms(slopes, "slopes"), contextual, cross_level
    )
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
