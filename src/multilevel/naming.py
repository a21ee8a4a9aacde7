"""The one place where PyMC variable, dimension and coordinate names are made.

Every name is a valid Python identifier and nothing else in the package parses a name back
apart: code that needs the name of a group's standard deviations calls :func:`sd_name`.

Examples
--------
>>> group_key("school")
'school'
>>> group_key("a:b")
'a__b'
>>> sd_name("a:b")
'sd_a__b'
"""

from __future__ import annotations

import re

__all__ = [
    "FIXED",
    "FIXED_DIM",
    "GROUP_SUMMARIES",
    "OBS_DIM",
    "PHI",
    "SIGMA",
    "chol_name",
    "coef_name",
    "cor_name",
    "corchol_name",
    "effect_name",
    "group_key",
    "level_dim",
    "offset_name",
    "sd_name",
    "term_dim",
    "term_dim_bis",
]

FIXED = "b"
FIXED_DIM = "fixed_term"
OBS_DIM = "obs"
SIGMA = "sigma"
#: Residual autocorrelation of an ``ar1``/``car1`` model (nlme's ``Phi``).
PHI = "phi"
#: The idata group of per-level group-effect summaries when the draws are not kept.
GROUP_SUMMARIES = "group_effect_summaries"
RESPONSE = "y"
LINPRED = "eta"


def group_key(factor: str) -> str:
    """Identifier for a grouping factor (``a:b`` becomes ``a__b``)."""
    key = factor.replace(":", "__")
    key = re.sub(r"\W", "_", key)
    if not key or key[0].isdigit():
        key = "g_" + key
    return key


def sd_name(factor: str) -> str:
    """Name of the vector of group-level standard deviations of ``factor``."""
    return f"sd_{group_key(factor)}"


def cor_name(factor: str) -> str:
    """Name of the correlation matrix of ``factor``'s varying terms."""
    return f"cor_{group_key(factor)}"


def corchol_name(factor: str) -> str:
    """Name of the Cholesky factor of ``factor``'s correlation matrix (LKJ).

    Examples
    --------
    >>> corchol_name("a:b")
    'corchol_a__b'
    """
    return f"corchol_{group_key(factor)}"


def chol_name(factor: str) -> str:
    """Name of the packed Cholesky factor of ``factor``'s covariance."""
    return f"chol_{group_key(factor)}"


def offset_name(factor: str) -> str:
    """Name of the standard-normal (non-centered) offsets of ``factor``."""
    return f"z_{group_key(factor)}"


def effect_name(factor: str) -> str:
    """Name of the group effects (deviations from the fixed effects) of ``factor``."""
    return f"u_{group_key(factor)}"


def coef_name(factor: str) -> str:
    """Per-level summaries of the coefficients ``b + u`` of a factor (``group_draws='summary'``)."""
    return f"coef_{group_key(factor)}"


def level_dim(factor: str) -> str:
    """Dimension holding the levels of ``factor``."""
    return f"{group_key(factor)}_level"


def term_dim(factor: str) -> str:
    """Dimension holding the varying terms of ``factor``."""
    return f"{group_key(factor)}_term"


def term_dim_bis(factor: str) -> str:
    """Second term dimension, for correlation matrices."""
    return f"{group_key(factor)}_term_bis"
