"""The parts of a model specification: group terms, priors and sampler settings.

Examples
--------
>>> GroupTerm("school", slopes=("cses",)).to_formula()
'(1 + cses | school)'
>>> str(Prior("HalfNormal", sigma=2.0))
'HalfNormal(sigma=2)'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from multilevel.errors import SpecError
from multilevel.spec.safety import check_column_name, check_safe

__all__ = [
    "CORRELATIONS",
    "DISTRIBUTIONS",
    "FAMILIES",
    "PARAMETERIZATIONS",
    "SAMPLERS",
    "GroupTerm",
    "Prior",
    "ResidualCorrelation",
    "SamplerSettings",
    "as_terms",
    "check_bool",
    "check_term",
]

FAMILIES = ("gaussian", "bernoulli", "binomial")
#: Residual correlation structures: nlme's ``corAR1`` and ``corCAR1``.
CORRELATIONS = ("ar1", "car1")
SAMPLERS = ("pymc", "nutpie")
PARAMETERIZATIONS = ("auto", "marginal", "linearized", "noncentered", "centered")

#: Distributions a prior may name, with their parameters and whether they are scale priors.
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], bool]] = {
    "Flat": ((), False),
    "Normal": (("mu", "sigma"), False),
    "Uniform": (("lower", "upper"), False),
    "StudentT": (("nu", "mu", "sigma"), False),
    "Cauchy": (("alpha", "beta"), False),
    "HalfNormal": (("sigma",), True),
    "HalfStudentT": (("nu", "sigma"), True),
    "HalfCauchy": (("beta",), True),
    "Exponential": (("lam",), True),
    "Gamma": (("alpha", "beta"), True),
    "InverseGamma": (("alpha", "beta"), True),
    "LKJ": (("eta",), False),
}


def check_term(term: Any, where: str) -> str:
    """``term`` if it is formula text that :func:`multilevel.spec.safety.check_safe` admits."""
    if not isinstance(term, str) or not term.strip():
        raise SpecError(f"Each {where} must be a non-empty string, got {term!r}.")
    check_safe(term, where=where)
    return term


def as_terms(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Iterable):
        raise SpecError(f"{what} must be a list of terms, got {value!r}.")
    return tuple(value)


def check_bool(value: Any, what: str) -> None:
    if not isinstance(value, bool):
        raise SpecError(f"{what} must be True or False, got {value!r}.")


@dataclass(frozen=True)
class GroupTerm:
    """The varying (random) part for one grouping factor.

    Parameters
    ----------
    factor : str
        Column holding the group labels; ``"a:b"`` is the interaction of two columns (the
        inner factor of a nested ``(1 | a/b)`` term).
    intercept : bool
        Whether the intercept varies by group.
    slopes : tuple of str
        Terms whose coefficients vary by group (each also a fixed effect in named builders).
    correlated : bool
        Full covariance (LKJ prior on the correlations) or independent terms (``||``).

    Examples
    --------
    >>> GroupTerm("school", slopes=("cses",)).terms
    ('1', 'cses')
    """

    factor: str
    intercept: bool = True
    slopes: tuple[str, ...] = ()
    correlated: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.factor, str) or not self.factor.strip():
            raise SpecError("A group term needs a grouping factor: write (1 | group).")
        for part in self.factor.split(":"):
            check_column_name(part.strip(), "The grouping factor")
        object.__setattr__(self, "slopes", as_terms(self.slopes, f"The slopes of '{self.factor}'"))
        check_bool(self.intercept, f"intercept of the group term for '{self.factor}'")
        check_bool(self.correlated, f"correlated of the group term for '{self.factor}'")
        for slope in self.slopes:
            check_term(slope, f"varying term of '{self.factor}'")
        if not self.intercept and not self.slopes:
            raise SpecError(
                f"The group term for '{self.factor}' varies nothing: give it an intercept "
                "(1 | g) or a slope (0 + x | g)."
            )
        if len(set(self.slopes)) != len(self.slopes):
            raise SpecError(f"The group term for '{self.factor}' repeats a slope: {self.slopes}.")
        if len(self.terms) == 1:  # one term has no correlation: (1 || g) is (1 | g)
            object.__setattr__(self, "correlated", True)

    @property
    def terms(self) -> tuple[str, ...]:
        """Varying terms in formula order; ``'1'`` stands for the intercept."""
        return (("1",) if self.intercept else ()) + self.slopes

    @property
    def columns(self) -> tuple[str, ...]:
        """Data columns whose interaction defines the groups (``'a:b'`` gives ``('a', 'b')``)."""
        return tuple(part.strip() for part in self.factor.split(":"))

    def to_formula(self) -> str:
        """The lme4 text of this term, e.g. ``(1 + x | g)`` or ``(1 + x || g)``."""
        lhs = " + ".join(("1",) + self.slopes) if self.intercept else " + ".join(
            ("0",) + self.slopes
        )
        bar = "|" if self.correlated or len(self.terms) == 1 else "||"
        return f"({lhs} {bar} {self.factor})"


@dataclass(frozen=True)
class ResidualCorrelation:
    """Serially correlated residuals within groups (nlme's ``correlation =`` argument).

    Parameters
    ----------
    kind : {'ar1', 'car1'}
        ``'ar1'`` is nlme's ``corAR1``: the lag between two rows of a group is the difference
        of their times converted to integers (truncated), the correlation ``phi^lag`` with
        ``-1 < phi < 1``. ``'car1'`` is ``corCAR1``: correlation ``phi^|t_i - t_j|`` with real
        times and ``0 <= phi < 1``.
    time : str
        Column of the measurement times (numeric).
    group : str
        Column whose levels hold the series (``'a:b'`` for an interaction); it must be the
        model's grouping factor or nested in it.

    Examples
    --------
    >>> ResidualCorrelation("ar1", "age", "subject").to_formula()
    'ar1(age | subject)'
    """

    kind: str
    time: str
    group: str

    def __post_init__(self) -> None:
        if self.kind not in CORRELATIONS:
            raise SpecError(
                f"Unknown residual correlation {self.kind!r}: choose one of "
                f"{', '.join(CORRELATIONS)} (as in ar1(time | group))."
            )
        check_column_name(self.time, f"The time column of {self.kind}()")
        if not isinstance(self.group, str) or not self.group.strip():
            raise SpecError(f"{self.kind}() needs a grouping column: write {self.kind}(time | group).")
        for part in self.group.split(":"):
            check_column_name(part.strip(), f"The grouping column of {self.kind}()")

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns whose interaction defines the series."""
        return tuple(part.strip() for part in self.group.split(":"))

    def to_formula(self) -> str:
        """The formula term, e.g. ``ar1(age | subject)``."""
        return f"{self.kind}({self.time} | {self.group})"


@dataclass(frozen=True)
class Prior:
    """A prior distribution by PyMC name and keyword parameters.

    Examples
    --------
    >>> Prior("HalfNormal", sigma=2.0)
    Prior(dist='HalfNormal', params=(('sigma', 2.0),))
    >>> Prior("HalfNormal", sigma=2.0).kwargs
    {'sigma': 2.0}
    """

    dist: str
    params: tuple[tuple[str, float], ...] = ()

    def __init__(self, dist: str, params: Any = (), **kwargs: float) -> None:
        if not isinstance(dist, str) or not dist.isidentifier():
            raise SpecError(f"A prior names its distribution, e.g. Prior('HalfNormal', sigma=1); "
                            f"got {dist!r}.")
        try:
            items = dict(params) if params else {}
        except (TypeError, ValueError):
            raise SpecError(f"Prior {dist}: params must be name/number pairs, got {params!r}.") from None
        items.update(kwargs)
        for key, value in items.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SpecError(
                    f"Prior {dist}: parameter {key!r} must be a number, got {value!r}."
                )
        object.__setattr__(self, "dist", dist)
        object.__setattr__(
            self, "params", tuple(sorted((str(k), float(v)) for k, v in items.items()))
        )

    @property
    def kwargs(self) -> dict[str, float]:
        """Parameters as a dict for the PyMC distribution."""
        return dict(self.params)

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v:g}" for k, v in self.params)
        return f"{self.dist}({inner})"


@dataclass(frozen=True)
class SamplerSettings:
    """How to run NUTS. All options are keyword-only in :func:`fit_hierarchical`.

    Examples
    --------
    >>> SamplerSettings(draws=500).chains
    4
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int | None = None
    sampler: str = "nutpie"
    target_accept: float = 0.9
    parameterization: str = "auto"

    def __post_init__(self) -> None:
        for name in ("draws", "tune", "chains"):
            value = getattr(self, name)
            minimum = 0 if name == "tune" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise SpecError(
                    f"Sampler option '{name}' must be an integer >= {minimum}, got {value!r}."
                )
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
            or not 0 <= self.seed < 2**63
        ):
            raise SpecError(
                f"Sampler option 'seed' must be a whole number in [0, 2**63) or None, got "
                f"{self.seed!r}."
            )
        if self.sampler not in SAMPLERS:
            raise SpecError(
                f"Unknown sampler {self.sampler!r}: choose one of {', '.join(SAMPLERS)}."
            )
        if isinstance(self.target_accept, bool) or not isinstance(self.target_accept, int | float):
            raise SpecError(
                f"Sampler option 'target_accept' must be a number in [0.5, 1), got "
                f"{self.target_accept!r}."
            )
        if not 0.5 <= float(self.target_accept) < 1.0:
            raise SpecError(
                f"Sampler option 'target_accept' must lie in [0.5, 1), got {self.target_accept!r}."
            )
        if self.parameterization not in PARAMETERIZATIONS:
            raise SpecError(
                f"Unknown parameterization {self.parameterization!r}: choose one of "
                f"{', '.join(PARAMETERIZATIONS)}."
            )


