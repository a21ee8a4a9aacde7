"""Model matrices and response arrays from a prepared frame, through formulae.

Fixed-effect and varying-term matrices are built by formulae (bambi's formula engine) in a
namespace that holds only the whitelisted transforms (:data:`FORMULA_ENV`), and their columns
get lme4's names (:func:`lme4_name`).

Examples
--------
>>> lme4_name("sector[Catholic]")
'sectorCatholic'
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
from formulae import design_matrices
from formulae.environment import Environment

from multilevel.design.checks import rows_text
from multilevel.errors import DataError
from multilevel.spec.model import ModelSpec
from multilevel.spec.safety import SAFE_NAMESPACE, check_safe

__all__ = ["FORMULA_ENV", "lme4_name", "model_matrix", "response_arrays"]

FORMULA_ENV = Environment([SAFE_NAMESPACE])  # formulae looks names up in the data, then only here


def lme4_name(label: str) -> str:
    """Translate a formulae column label to lme4's name.

    Examples
    --------
    >>> lme4_name("Intercept"), lme4_name("cses:sector[Catholic]"), lme4_name("I(age ** 2)")
    ('(Intercept)', 'cses:sectorCatholic', 'I(age^2)')
    """
    if label == "Intercept":
        return "(Intercept)"
    label = re.sub(r"\[([^\]]*)\]", r"\1", label)
    return label.replace(" ** ", "^").replace("**", "^")


def model_matrix(
    rhs: str, frame: pd.DataFrame, where: str
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Columns, their lme4 names, and the term each column comes from."""
    check_safe(rhs, where=where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # log(0) etc.: checked below
            dm = design_matrices(rhs, frame, na_action="error", env=FORMULA_ENV)
    except Exception as err:
        raise DataError(f"Cannot build the {where} from {rhs!r}: {err!r}") from None
    common = dm.common
    labels: list[str] = []
    terms: list[str] = []
    for name, term_slice in common.slices.items():
        labels += common.terms[name].labels if hasattr(common.terms[name], "labels") else [name]
        terms += [name] * (term_slice.stop - term_slice.start)
    X = np.asarray(common.design_matrix, dtype=float)
    names = tuple(lme4_name(x) for x in labels)
    bad = ~np.isfinite(X)
    if bad.any():
        j = int(np.argmax(bad.any(axis=0)))
        raise DataError(
            f"Term {terms[j]!r} of the {where} has {int(bad[:, j].sum())} NaN or infinite values "
            f"(of {len(X)} rows) after its transform, e.g. log or sqrt of values <= 0 or a power "
            "that overflows: shift or filter the data, or choose another transform."
        )
    return X, names, tuple(terms)


def _numeric_counts(frame: pd.DataFrame, col: str, what: str) -> np.ndarray:
    s = frame[col]
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        raise DataError(
            f"{what} {col!r} must hold whole-number counts, but has dtype {s.dtype}: convert it "
            "with pd.to_numeric or choose the right column."
        )
    arr = s.to_numpy(dtype=float)
    if np.any(arr < 0) or np.any(arr != np.round(arr)):
        bad = int(np.sum((arr < 0) | (arr != np.round(arr))))
        raise DataError(
            f"Binomial counts in {col!r} must be non-negative whole numbers; found "
            f"{rows_text(bad)} with negative or fractional values."
        )
    return arr


def _bernoulli(s: pd.Series, col: str, order: tuple[str, ...] | None) -> np.ndarray:
    values = s.unique().tolist()
    if pd.api.types.is_bool_dtype(s) or (
        pd.api.types.is_numeric_dtype(s) and set(values) <= {0, 1}
    ):
        return s.to_numpy(dtype=float)
    if order is not None:
        levels = [lv for lv in order if lv in {str(v) for v in values}]
        s = s.astype(str)
    elif isinstance(s.dtype, pd.CategoricalDtype):
        levels = [lv for lv in s.cat.categories if lv in set(values)]
    else:
        levels = sorted(values, key=str)
    if len(levels) != 2 or pd.api.types.is_numeric_dtype(s):
        raise DataError(
            f"Response {col!r} of a bernoulli model must be 0/1, boolean or have exactly two "
            f"levels; it has values {sorted(values, key=str)[:6]}. Recode it (the second level, "
            "or levels= in the spec, marks a success), or use family='gaussian'."
        )
    return (s == levels[1]).to_numpy(dtype=float)


def response_arrays(frame: pd.DataFrame, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray | None]:
    col = spec.response
    s = frame[col]
    if spec.family == "bernoulli":
        y, n = _bernoulli(s, col, spec.level_order.get(col)), None
    elif not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        raise DataError(
            f"Response {col!r} must be numeric for family={spec.family!r}, has dtype {s.dtype}: "
            "convert it with pd.to_numeric, or use family='bernoulli' for a two-level outcome."
        )
    elif spec.family == "gaussian":
        y = s.to_numpy(dtype=float)
        if np.ptp(y) == 0:
            raise DataError(f"Response {col!r} is constant ({y[0]:g}): there is nothing to model.")
        return y, None
    else:
        y = _numeric_counts(frame, col, "The successes")
        if spec.trials:
            n = _numeric_counts(frame, spec.trials, "The trials")
        else:
            n = y + _numeric_counts(frame, spec.failures, "The failures")
        over = int(np.sum(y > n))
        if over:
            raise DataError(
                f"Successes {col!r} exceed the trials "
                f"{spec.trials or 'successes + failures'!r} in {rows_text(over)}: check that the "
                "trials column counts all trials (cbind(s, n - s) reads n as the trials)."
            )
    total = len(y) if n is None else float(n.sum())
    if y.sum() in (0, total):
        outcome = "a failure" if y.sum() == 0 else "a success"
        raise DataError(
            f"Every outcome of response {col!r} is {outcome}: a logistic model needs both "
            "successes and failures (its intercept would be infinite)."
        )
    return y, n
