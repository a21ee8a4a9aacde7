"""Exceptions raised for bad specs and bad data.

Both subclass :class:`ValueError`, so ``except ValueError`` keeps working for callers that do
not care which stage rejected their input.
"""

from __future__ import annotations

__all__ = ["DataError", "SpecError"]


class SpecError(ValueError):
    """A model specification (formula, builder arguments, TOML file, option) is invalid.

    Examples
    --------
    >>> from multilevel import ModelSpec, SpecError
    >>> try:
    ...     ModelSpec.from_formula("y ~ x + (|g)")
    ... except SpecError as err:
    ...     print("rejected")
    rejected
    """


class DataError(ValueError):
    """The data do not fit the model: a missing column, NaN, a bad response, too few groups.

    Examples
    --------
    >>> import pandas as pd
    >>> from multilevel import DataError, varying_intercept
    >>> from multilevel.design import build_design
    >>> try:
    ...     build_design(varying_intercept("y", "g"), pd.DataFrame({"y": [1.0, 2.0]}))
    ... except DataError as err:
    ...     print("rejected")
    rejected
    """
