"""Numbers as a paper prints them: the display form of every table of a fit.

* estimates and intervals: 3 significant digits (``251``, ``10.4``, ``0.0905``; scientific
  below 0.001 and from 10^6);
* effective sample sizes and counts: whole numbers;
* R-hat: 3 decimals;
* p-values: ``< 0.001``, else 3 decimals;
* booleans: ``yes`` / ``no``;
* a missing value: a dash (``DASH``), never ``NaN``.

The tables a fit returns keep every digit; only ``summary()``, Jupyter's display and the HTML
report use these forms.

Examples
--------
>>> [sig3(v) for v in (251.4178, 10.4176, 7.0836, 0.09049, -0.4706, 1822.99, 0.0, 2.5e-6)]
['251', '10.4', '7.08', '0.0905', '-0.471', '1823', '0', '2.50e-06']
>>> sig3(999999.6), sig3(np.float32("nan"))
('1.00e+06', '–')
>>> p_value(0.0004), p_value(0.01234), rhat(1.00234), whole(4550.2)
('< 0.001', '0.012', '1.002', '4550')
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

__all__ = ["DASH", "display_table", "format_value", "p_value", "rhat", "sig3", "whole"]

#: What a missing or inapplicable number is shown as.
DASH = "–"

#: Columns shown as whole numbers (effective sample sizes and counts).
WHOLE = frozenset({"ess_bulk", "ess_tail", "ess", "n", "groups", "rows", "min_size", "max_size",
                   "n_groups", "n_params", "df", "n_bad_k", "divergences", "max_treedepth", "n_obs"})
#: Group sizes: whole numbers when they are (a median size may end in .5).
SIZES = frozenset({"median_size", "n_mean", "n_weighted"})
#: Columns shown with 3 decimals.
RHAT = frozenset({"r_hat"})
#: Columns shown in the p-value style.
P_VALUES = frozenset({"p", "p_value", "p_boundary", "pvalue"})


def _missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(np.isnan(value))
    except (TypeError, ValueError):
        return False


def sig3(value) -> str:
    """``value`` to 3 significant digits; integers parts are never rounded away (1823, not 1820)."""
    if _missing(value):
        return DASH
    v = float(value)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    v = float(f"{v:.3g}") if abs(v) < 100 else float(round(v))  # settle the rounding first
    a = abs(v)
    if a < 1e-3 or a >= 1e6:
        return f"{v:.2e}"
    decimals = max(0, 2 - math.floor(math.log10(a)))
    return f"{v:.{decimals}f}"


def whole(value) -> str:
    """A count or an effective sample size: the nearest whole number."""
    return DASH if _missing(value) else f"{float(value):.0f}"


def rhat(value) -> str:
    """R-hat with 3 decimals."""
    return DASH if _missing(value) else f"{float(value):.3f}"


def p_value(value) -> str:
    """``< 0.001`` or 3 decimals."""
    if _missing(value):
        return DASH
    return "< 0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def format_value(column: str, value) -> str:
    """``value`` in the display form of the column (or diagnostic check) called ``column``."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if _missing(value):
        return DASH
    if isinstance(value, str):
        return value
    if column in WHOLE:
        return whole(value)
    if column in SIZES and float(value).is_integer():
        return whole(value)
    if column in RHAT:
        return rhat(value)
    if column in P_VALUES:
        return p_value(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    try:
        return sig3(float(value))
    except (TypeError, ValueError):
        return str(value)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` with every cell as its display string (module docstring).

    Examples
    --------
    >>> t = pd.DataFrame({"term": ["x"], "mean": [0.12345], "r_hat": [1.0], "ess_bulk": [812.6],
    ...                   "ok": [True], "reml": [float("nan")]})
    >>> display_table(t).iloc[0].tolist()
    ['x', '0.123', '1.000', '813', 'yes', '–']
    """
    out = table.copy()
    for column in out.columns:
        out[column] = [format_value(str(column), v) for v in table[column].tolist()]
    return out
