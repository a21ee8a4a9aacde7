"""From a DataFrame and a :class:`ModelSpec` to the :class:`Design`, with every data check.

:func:`build_design` is the design stage of the data path: the used columns (and contextual
group means) are copied out of the caller's DataFrame (:mod:`multilevel.design.frame`), checked
(:mod:`multilevel.design.checks`) and turned into arrays (:mod:`multilevel.design.matrices`).
The caller's DataFrame is never modified.

Examples
--------
>>> import pandas as pd
>>> from multilevel import varying_intercept
>>> df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "g": ["a", "a", "b", "b"]})
>>> d = build_design(varying_intercept("y", "g"), df)
>>> d.fixed_names, d.groups[0].levels, d.groups[0].index.tolist()
(('(Intercept)',), ('a', 'b'), [0, 0, 1, 1])
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from multilevel.design.checks import (
    check_columns,
    check_fixed,
    check_frame,
    check_groups,
    check_transforms,
    design_level1_variance,
    handle_missing,
    known_se,
    warn_separation,
    warn_slopes,
)
from multilevel.design.collapse import Collapsed, collapse_partitioned
from multilevel.design.frame import add_contextual_columns, group_index, is_partitioned, order_levels
from multilevel.design.matrices import model_matrix, response_arrays
from multilevel.design.partitioned import build_partitioned_design
from multilevel.design.serial import serial_design
from multilevel.design.types import Design, GroupDesign
from multilevel.errors import DataError, SpecError
from multilevel.spec.model import ModelSpec
from multilevel.spec.terms import GroupTerm

__all__ = ["EXACT_FIT_CHECK_ROWS", "build_design", "collapse_binomial", "weighted_design"]

#: Gaussian designs up to this many rows are checked for an exact fit (zero residual variance,
#: :func:`multilevel.design.checks.design_level1_variance`); real data that large never fit exactly.
EXACT_FIT_CHECK_ROWS = 1_000_000


def build_design(spec: ModelSpec, df: pd.DataFrame, *, missing: str = "error") -> Design:
    """Check ``df`` against ``spec`` and build the model arrays.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    df : pandas.DataFrame, dask.dataframe.DataFrame, str or Path
        The data; never modified. A Dask DataFrame or a Parquet path (file, directory or glob)
        is reduced to statistics without collecting its rows (Gaussian models; logistic ones
        become binomial counts): see :mod:`multilevel.design.partitioned`.
    missing : {'error', 'drop'}
        What to do with rows that have NaN/inf in a used column: raise a :class:`DataError`
        (default) or drop them with a warning that says how many.

    Returns
    -------
    Design

    Raises
    ------
    DataError
        When the data do not fit the model; the message names the column or term and a fix.
    SpecError
        When an argument is wrong (``df`` not a DataFrame, an unknown ``missing``, ``levels``
        for a column the model does not use, the response used as a predictor).

    Warns
    -----
    UserWarning
        A varying slope whose column is constant within every group; a logistic model whose
        outcome one fixed-effect column separates perfectly; rows dropped by ``missing='drop'``.

    Examples
    --------
    >>> from multilevel import datasets, ModelSpec
    >>> spec = ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)")
    >>> d = build_design(spec, datasets.load("sleepstudy"))
    >>> d.X.shape, d.groups[0].term_names, d.groups[0].n_levels
    ((180, 2), ('(Intercept)', 'Days'), 18)
    """
    if not isinstance(spec, ModelSpec):
        raise SpecError(f"spec must be a ModelSpec, got {type(spec).__name__}.")
    if is_partitioned(df):  # data larger than memory: statistics, or binomial counts
        if not spec.is_logistic:
            return build_partitioned_design(spec, df, missing=missing)
        return weighted_design(collapse_partitioned(spec, df, missing=missing))
    if not isinstance(df, pd.DataFrame):
        raise SpecError(
            f"Argument 'df' (the data) must be a pandas DataFrame, got {type(df).__name__}: "
            "wrap it with pd.DataFrame(...)."
        )
    if missing not in ("error", "drop"):
        raise SpecError(f"missing={missing!r} is not an option: use 'error' or 'drop'.")
    check_frame(df)
    if df.empty:
        raise DataError("The DataFrame is empty: there is nothing to fit.")
    df = add_contextual_columns(spec, df)  # <x>_between / <x>_within of contextual=[...]
    cols = check_columns(spec, df)
    frame = df.loc[:, cols].copy()
    frame, dropped = handle_missing(frame, missing, spec)
    frame = frame.reset_index(drop=True)
    factor_cols = {c for g in spec.groups for c in g.columns}
    if spec.correlation is not None:
        factor_cols |= set(spec.correlation.columns)
    skip = {spec.response, spec.trials, spec.failures, spec.se} | factor_cols
    frame = order_levels(frame, spec, skip - {None})
    check_transforms(frame, spec)
    y, trials = response_arrays(frame, spec)
    rhs = " + ".join(["1" if spec.intercept else "0", *spec.fixed])
    X, names, x_terms = model_matrix(rhs, frame, "fixed-effect matrix")
    groups, z_terms = [], []
    for term in spec.groups:
        index, levels = group_index(frame, term, spec.level_order)
        check_groups(term, levels, len(frame), spec, trials)
        z_rhs = " + ".join(["1" if term.intercept else "0", *term.slopes])
        Z, z_names, terms = model_matrix(z_rhs, frame, f"varying terms of {term.factor!r}")
        groups.append(
            GroupDesign(term.factor, index, levels, Z, z_names, term.correlated, term.intercept)
        )
        z_terms.append(terms)
    n_params = X.shape[1] + sum(g.n_terms for g in groups) + (
        spec.family == "gaussian" and spec.se is None
    )
    check_fixed(X, names, n_params)
    serial = None
    if spec.correlation is not None:
        series = group_index(frame, GroupTerm(spec.correlation.group), spec.level_order)
        serial = serial_design(spec, frame, series, (groups[0].index, groups[0].levels))
    design = Design(
        spec, y, X, names, tuple(groups), frame, trials, dropped, known_se(frame, spec), serial
    )
    for group, term, terms in zip(groups, spec.groups, z_terms, strict=True):
        warn_slopes(group, term, terms)
    if spec.is_logistic:
        warn_separation(design, x_terms)
    if spec.family == "gaussian" and spec.se is None and design.n_obs <= EXACT_FIT_CHECK_ROWS:
        design_level1_variance(design)  # data fitted exactly: zero residual variance
    return design




def weighted_design(c: Collapsed) -> Design:
    """The design of binomial counts that stand for ``c.rows`` original rows each
    (:func:`~multilevel.design.collapse.collapse_partitioned`): statistics over rows (group
    sizes, ``Z'Z``, moments) weight each count by its rows, and ``loglik_offset`` restores the
    original rows' log-likelihood."""
    design = build_design(c.spec, c.frame)  # separation and flat slopes show on the counts too
    w = c.rows
    groups = tuple(
        replace(g, level_counts=np.bincount(g.index, weights=w, minlength=g.n_levels),
                z_sum=w @ g.Z, z_cross=(g.Z * w[:, None]).T @ g.Z)
        for g in design.groups
    )
    return replace(design, groups=groups, notes=(c.note,), dropped_rows=c.dropped,
                   row_weights=w, loglik_offset=c.loglik_offset)


def collapse_binomial(design: Design) -> Design:
    """Collapse rows with identical covariates and groups into binomial counts.

    The likelihood is the same up to a constant: the product of Bernoulli or binomial terms
    with the same success probability is one binomial term with the summed successes and
    trials. Returns ``design`` itself for Gaussian models or when no rows coincide.

    Examples
    --------
    >>> import pandas as pd
    >>> from multilevel import multilevel_logistic
    >>> df = pd.DataFrame({"y": [1, 0, 1, 1, 0, 0], "x": [0, 0, 1, 1, 0, 1],
    ...                    "g": list("aaaabb")})
    >>> d = collapse_binomial(build_design(multilevel_logistic("y", "g", predictors=["x"]), df))
    >>> d.n_obs, d.y.tolist(), d.trials.tolist()
    (4, [1.0, 0.0, 2.0, 0.0], [2.0, 1.0, 2.0, 1.0])
    """
    if not design.spec.is_logistic:
        return design
    key = np.column_stack(
        [design.X] + [np.column_stack([g.index, g.Z]) for g in design.groups]
    )
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    if len(first) == design.n_obs:
        return design
    trials = design.trials if design.trials is not None else np.ones(design.n_obs)
    y = np.bincount(inverse, weights=design.y, minlength=len(first))
    n = np.bincount(inverse, weights=trials, minlength=len(first))
    groups = tuple(
        replace(g, index=g.index[first], Z=g.Z[first]) for g in design.groups
    )
    return replace(design, y=y, X=design.X[first], groups=groups, trials=n)
