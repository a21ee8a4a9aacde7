"""Names of the contextual (group-mean) columns a spec may use: ``x_between`` and ``x_within``.

A spec made with ``contextual=["ses"]`` names ``ses_between`` (the group mean of ``ses``) and
``ses_within`` (the deviation from it); the design step computes them from ``ses``
(:func:`multilevel.design.frame.add_contextual_columns`).

Examples
--------
>>> between_name("ses"), within_name("ses")
('ses_between', 'ses_within')
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BETWEEN_SUFFIX",
    "GRAND_SUFFIX",
    "WITHIN_SUFFIX",
    "between_name",
    "contextual_variables",
    "within_name",
]

BETWEEN_SUFFIX = "_between"
WITHIN_SUFFIX = "_within"
GRAND_SUFFIX = "_grand"


def between_name(x: str) -> str:
    """Column name of the group mean of ``x`` (``ses`` -> ``ses_between``)."""
    return f"{x}{BETWEEN_SUFFIX}"


def within_name(x: str) -> str:
    """Column name of the within-group deviation of ``x`` (``ses`` -> ``ses_within``)."""
    return f"{x}{WITHIN_SUFFIX}"


def contextual_variables(names: Sequence[str]) -> tuple[str, ...]:
    """The ``x`` whose group mean ``x_between`` and a within part are among ``names``.

    The within part is ``x_within`` (group-mean centred) or ``x`` itself (raw).

    Examples
    --------
    >>> contextual_variables(["(Intercept)", "ses_between", "ses_within", "sector"])
    ('ses',)
    """
    out = []
    for name in names:
        if name.endswith(BETWEEN_SUFFIX):
            x = name[: -len(BETWEEN_SUFFIX)]
            if x and (within_name(x) in names or x in names):
                out.append(x)
    return tuple(out)
