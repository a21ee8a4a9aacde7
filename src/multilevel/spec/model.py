"""Model specifications: what to fit, independent of PyMC and of any data.

A :class:`ModelSpec` is a frozen, validated description of a generalized linear mixed model

.. math::

    g(E[y_i]) = x_i^\\top \\beta + \\sum_k z_{ik}^\\top u_{k, j_k(i)},\\qquad
    u_{k, j} \\sim N(0, \\Sigma_k)

with a response, fixed-effect terms, one :class:`GroupTerm` per grouping factor ``k`` (its
varying terms and whether their covariance :math:`\\Sigma_k` is full or diagonal), a family,
priors and sampler settings. It is made from an lme4 formula (:meth:`ModelSpec.from_formula`),
from a named builder (:mod:`multilevel.spec.named`) or from a TOML file
(:func:`multilevel.spec.io.load_spec`).

Examples
--------
>>> spec = ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)")
>>> spec.fixed, spec.groups[0].factor, spec.groups[0].slopes
(('Days',), 'Subject', ('Days',))
>>> spec.to_formula()
'Reaction ~ 1 + Days + (1 + Days | Subject)'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import tomli_w

from multilevel.errors import SpecError
from multilevel.spec.formula import parse_formula
from multilevel.spec.safety import check_column_name
from multilevel.spec.terms import (
    DISTRIBUTIONS,
    FAMILIES,
    GroupTerm,
    Prior,
    ResidualCorrelation,
    SamplerSettings,
    as_terms,
    check_bool,
    check_term,
)

__all__ = ["ModelSpec"]


def _levels(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    hint = "levels= maps column names to their levels, reference first: levels={'x': ('a', 'b')}"
    items = value.items() if isinstance(value, Mapping) else value
    if isinstance(items, str) or not isinstance(items, Iterable):
        raise SpecError(f"{hint}; got {value!r}.")
    out = []
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise SpecError(f"{hint}; got the entry {item!r}.")
        col, levels = item
        check_column_name(col, "A levels= key")
        if isinstance(levels, str) or not isinstance(levels, Iterable):
            raise SpecError(f"levels[{col!r}] must be a list of levels, got {levels!r}. {hint}.")
        levels = tuple(str(v) for v in levels)
        if not levels:
            raise SpecError(f"levels[{col!r}] is empty: list the levels, reference first.")
        if len(set(levels)) != len(levels):
            raise SpecError(f"levels[{col!r}] lists a level twice: {list(levels)}.")
        out.append((col, levels))
    return tuple(out)


@dataclass(frozen=True)
class ModelSpec:
    """A validated multilevel model specification.

    Parameters
    ----------
    response : str
        Response column (successes for a binomial model).
    fixed : tuple of str
        Fixed-effect terms besides the intercept, in formulae syntax (``x``, ``x:z``,
        ``I(x**2)``); categorical predictors expand to treatment contrasts.
    groups : tuple of GroupTerm
        One entry per grouping factor.
    intercept : bool
        Whether the fixed part has an intercept.
    family : {'gaussian', 'bernoulli', 'binomial'}
        Response distribution; the logistic families use the logit link.
    trials : str, optional
        Column with the number of trials (binomial).
    failures : str, optional
        Column with the number of failures (binomial, from ``cbind(s, f)``).
    se : str, optional
        Column of known standard errors of a Gaussian response (``y | se(s) ~ ...``, brms
        syntax; meta-analysis): the residual sd of row ``i`` is ``se_i``, not estimated.
    priors : tuple of (str, Prior)
        Prior overrides by target name; see :mod:`multilevel.model.priors`.
    sampler : SamplerSettings
        NUTS settings used when :func:`fit_hierarchical` is not told otherwise.
    levels : tuple of (str, tuple of str)
        Level order for categorical columns (the first level is the reference).
    data : str, optional
        Bundled dataset name or CSV path the spec goes with (used by TOML specs and the CLI).
    name : str, optional
        A label for reports.
    correlation : ResidualCorrelation, optional
        Serially correlated residuals within groups (``ar1(time | group)``,
        ``car1(time | group)``; Gaussian models with one grouping factor).

    Examples
    --------
    >>> spec = ModelSpec(response="y", fixed=("x",), groups=(GroupTerm("g"),))
    >>> spec.to_formula()
    'y ~ 1 + x + (1 | g)'
    """

    response: str
    fixed: tuple[str, ...] = ()
    groups: tuple[GroupTerm, ...] = ()
    intercept: bool = True
    family: str = "gaussian"
    trials: str | None = None
    failures: str | None = None
    se: str | None = None
    priors: tuple[tuple[str, Prior], ...] = ()
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    levels: tuple[tuple[str, tuple[str, ...]], ...] = ()
    data: str | None = None
    name: str | None = None
    correlation: ResidualCorrelation | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fixed", as_terms(self.fixed, "fixed"))
        groups = (self.groups,) if isinstance(self.groups, GroupTerm) else self.groups
        object.__setattr__(self, "groups", as_terms(groups, "groups"))
        priors = self.priors.items() if isinstance(self.priors, Mapping) else self.priors
        if isinstance(priors, str) or not isinstance(priors, Iterable):
            raise SpecError(
                f"priors maps targets to priors, e.g. {{'sigma': Prior('HalfNormal', sigma=1)}}; "
                f"got {self.priors!r}."
            )
        object.__setattr__(self, "priors", tuple(tuple(p) if isinstance(p, list) else p
                                                 for p in priors))
        object.__setattr__(self, "levels", _levels(self.levels))
        if not isinstance(self.response, str) or not self.response.strip():
            raise SpecError("The model needs a response column, e.g. 'y ~ x + (1 | g)'.")
        self._check_fields()
        if self.family not in FAMILIES:
            raise SpecError(
                f"Unknown family {self.family!r}: choose one of {', '.join(FAMILIES)}."
            )
        if self.family == "binomial" and not (self.trials or self.failures):
            raise SpecError(
                "A binomial model needs the number of trials: write cbind(s, n - s) ~ ... or "
                "p(s, n) ~ ..., or pass trials='n'."
            )
        if self.family != "binomial" and (self.trials or self.failures):
            raise SpecError(
                f"Trials are only used by the binomial family, not {self.family!r}: drop "
                "trials or set family='binomial'."
            )
        if self.se is not None and self.family != "gaussian":
            raise SpecError(
                f"Known standard errors se({self.se}) need family='gaussian', not {self.family!r}."
            )
        if self.trials and self.failures:
            raise SpecError("Give either trials or failures for a binomial model, not both.")
        if not self.groups:
            raise SpecError(
                "A multilevel model needs at least one group term, e.g. '+ (1 | group)'."
            )
        if len(set(self.fixed)) != len(self.fixed):
            raise SpecError(f"A fixed-effect term is listed twice: {self.fixed}.")
        factors = [g.factor for g in self.groups]
        if len(set(factors)) != len(factors):
            raise SpecError(
                f"Grouping factor listed in more than one group term: {factors}. Combine them "
                "into one term such as (1 + x | g) or (1 + x || g)."
            )
        if not self.intercept and not self.fixed:
            raise SpecError("The fixed part is empty: keep the intercept or add a predictor.")
        self._check_correlation()
        self._check_priors()

    def _check_correlation(self) -> None:
        corr = self.correlation
        if corr is None:
            return
        if not isinstance(corr, ResidualCorrelation):
            raise SpecError(
                f"correlation must be a multilevel.ResidualCorrelation, got {corr!r}: write "
                "ResidualCorrelation('ar1', 'time', 'group') or '+ ar1(time | group)' in the formula."
            )
        term = corr.to_formula()
        if self.family != "gaussian" or self.se is not None:
            what = f"family={self.family!r}" if self.family != "gaussian" else "known standard errors"
            raise SpecError(
                f"{term} models correlated residuals of a Gaussian response; a model with "
                f"{what} has none. Drop {term}."
            )
        if len(self.groups) != 1:
            raise SpecError(
                f"{term} is supported with one grouping factor; this model has "
                f"{len(self.groups)} ({', '.join(g.factor for g in self.groups)})."
            )
        if corr.time == self.response or corr.time in self.groups[0].columns + corr.columns:
            raise SpecError(
                f"The time column {corr.time!r} of {term} is the response or a grouping column: "
                "name the column of measurement times."
            )


    def _check_fields(self) -> None:
        """Types and names of every field: all text that reaches formulae is checked here."""
        check_column_name(self.response, "The response")
        for name in ("trials", "failures", "se"):
            if getattr(self, name) is not None:
                check_column_name(getattr(self, name), f"The {name} column")
        for term in self.fixed:
            check_term(term, "fixed-effect term")
        for group in self.groups:
            if not isinstance(group, GroupTerm):
                raise SpecError(
                    f"groups must hold multilevel.GroupTerm objects, got {group!r}: write "
                    "GroupTerm('g') or use ModelSpec.from_formula('y ~ x + (1 | g)')."
                )
            if self.response in group.columns:
                raise SpecError(
                    f"The response {self.response!r} is also the grouping factor "
                    f"{group.factor!r}: group by another column."
                )
        check_bool(self.intercept, "intercept")
        if not isinstance(self.sampler, SamplerSettings):
            raise SpecError(
                f"sampler must be a multilevel.SamplerSettings, got {self.sampler!r}; or pass "
                "draws=, chains=, ... to fit_hierarchical."
            )
        for name in ("data", "name"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise SpecError(f"{name} must be a string, got {value!r}.")

    def _check_priors(self) -> None:
        for entry in self.priors:
            if not isinstance(entry, tuple | list) or len(entry) != 2:
                raise SpecError(
                    f"priors maps targets to priors, e.g. {{'sigma': Prior('HalfNormal', "
                    f"sigma=1)}}; got the entry {entry!r}."
                )
            target, prior = entry
            if not isinstance(target, str) or not target.strip():
                raise SpecError(f"A prior target must be a parameter name, got {target!r}.")
            if not isinstance(prior, Prior):
                raise SpecError(f"Prior for {target!r} must be a multilevel.Prior, got {prior!r}.")
            if prior.dist not in DISTRIBUTIONS:
                raise SpecError(
                    f"Unknown prior distribution {prior.dist!r} for {target!r}: choose one of "
                    f"{', '.join(DISTRIBUTIONS)}."
                )

    @property
    def is_logistic(self) -> bool:
        """True for the bernoulli and binomial families."""
        return self.family in ("bernoulli", "binomial")

    @property
    def level_order(self) -> dict[str, tuple[str, ...]]:
        """User-set level orders as a dict."""
        return dict(self.levels)

    @property
    def prior_overrides(self) -> dict[str, Prior]:
        """Prior overrides as a dict keyed by target."""
        return dict(self.priors)

    def replace(self, **changes: Any) -> ModelSpec:
        """A copy with some fields changed (validated again).

        Examples
        --------
        >>> ModelSpec.from_formula("y ~ x + (1 | g)").replace(name="demo").name
        'demo'
        """
        return replace(self, **changes)

    def with_sampler(self, **changes: Any) -> ModelSpec:
        """A copy with some sampler settings changed."""
        return replace(self, sampler=replace(self.sampler, **changes))

    def response_formula(self) -> str:
        """Left-hand side in lme4 syntax."""
        if self.trials:
            return f"cbind({self.response}, {self.trials} - {self.response})"
        if self.failures:
            return f"cbind({self.response}, {self.failures})"
        if self.se:
            return f"{self.response} | se({self.se})"
        return self.response

    def to_formula(self) -> str:
        """The model as an lme4 formula (round-trips through :meth:`from_formula`); powers are
        written as in R, ``I(age^2)``."""
        parts = ["1" if self.intercept else "0", *self.fixed]
        parts += [g.to_formula() for g in self.groups]
        if self.correlation is not None:
            parts.append(self.correlation.to_formula())
        return (f"{self.response_formula()} ~ " + " + ".join(parts)).replace(" ** ", "^")

    @classmethod
    def from_formula(cls, formula: str, family: str = "gaussian", **kwargs: Any) -> ModelSpec:
        """Parse an lme4-style formula; see :mod:`multilevel.spec.formula` for the syntax.

        Examples
        --------
        >>> ModelSpec.from_formula("y ~ x + (1 | a/b)").to_formula()
        'y ~ 1 + x + (1 | a) + (1 | a:b)'
        """
        parsed = parse_formula(formula)
        if parsed.trials or parsed.failures:
            if family == "gaussian":
                family = "binomial"
            if family != "binomial":
                raise SpecError(
                    f"A cbind()/p() response is a binomial count, but family={family!r}: "
                    "use family='binomial'."
                )
        return cls(
            response=parsed.response,
            fixed=parsed.fixed,
            groups=parsed.groups,
            intercept=parsed.intercept,
            family=family,
            trials=parsed.trials,
            failures=parsed.failures,
            se=parsed.se,
            correlation=parsed.correlation,
            **kwargs,
        )

    def to_toml(self) -> str:
        """TOML text that :func:`multilevel.load_spec` reads back to an equal spec (a formula
        plus every setting).

        Examples
        --------
        >>> print(ModelSpec.from_formula("y ~ x + (1 | g)").to_toml().splitlines()[0])
        formula = "y ~ 1 + x + (1 | g)"
        """
        doc: dict[str, Any] = {}
        if self.name:
            doc["name"] = self.name
        if self.data:
            doc["data"] = self.data
        doc["formula"] = self.to_formula()
        doc["family"] = self.family
        if self.priors:
            doc["priors"] = {t: {"dist": p.dist, **p.kwargs} for t, p in self.priors}
        if self.levels:
            doc["levels"] = {k: list(v) for k, v in self.levels}
        doc["sampler"] = {
            k: getattr(self.sampler, k) for k in SamplerSettings.__dataclass_fields__
            if getattr(self.sampler, k) is not None
        }
        return tomli_w.dumps(doc)
