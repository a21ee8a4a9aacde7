"""The frame the design is built from: used columns, contextual columns, level order, data.

Everything here returns new objects; the caller's DataFrame is never modified.

* :func:`load_data`: the DataFrame a spec names (bundled dataset or CSV file);
* :func:`center` and :func:`add_contextual_columns`: group means ``x_between`` and within-group
  deviations ``x_within`` (the contextual columns a spec made with ``contextual=[...]`` names);
* :func:`order_levels` and :func:`group_index`: R's level order for factors and the integer
  group index of each grouping factor.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"g": ["a", "a", "b", "b"], "x": [1.0, 3.0, 2.0, 4.0]})
>>> center(df, "x", "g")["x_within"].tolist()
[-1.0, 1.0, -1.0, 1.0]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multilevel import datasets
from multilevel.design.checks import used_columns
from multilevel.errors import DataError, SpecError
from multilevel.spec.contextual import (
    BETWEEN_SUFFIX,
    GRAND_SUFFIX,
    WITHIN_SUFFIX,
    between_name,
    within_name,
)
from multilevel.spec.model import ModelSpec
from multilevel.spec.terms import GroupTerm

__all__ = [
    "add_contextual_columns",
    "center",
    "group_index",
    "grouped",
    "is_partitioned",
    "load_data",
    "numeric_column",
    "order_levels",
]


_PARQUET = (".parquet", ".parq", ".pq")


def is_partitioned(data: Any) -> bool:
    """Whether ``data`` is a Dask DataFrame or names a Parquet data set (a ``.parquet`` file,
    a directory or a glob).

    Examples
    --------
    >>> is_partitioned("sales/*.parquet"), is_partitioned("sleepstudy"), is_partitioned(None)
    (True, False, False)
    """
    if isinstance(data, (str, os.PathLike)):
        text = str(data)
        if Path(text).is_file():  # an existing file: by its suffix ('runs[2024].csv' is CSV)
            return text.lower().endswith(_PARQUET)
        return text.lower().endswith(_PARQUET) or any(c in text for c in "*?[") or Path(text).is_dir()
    return type(data).__module__.startswith(("dask.", "dask_expr."))


def load_data(spec: ModelSpec, data: str | Path | None = None) -> pd.DataFrame | str:
    """The DataFrame a spec names (or ``data``): a bundled dataset or a CSV file; a Parquet
    file, directory or glob is returned as its path, for
    :func:`~multilevel.design.build_design` to read lazily with Dask."""
    source = str(data) if data is not None else spec.data
    if source is None:
        raise DataError("No data given: pass a DataFrame, --data FILE, or set data in the spec.")
    if source.lower() in datasets.names():
        return datasets.load(source)
    if is_partitioned(source):  # a Parquet data set: read lazily by the design stage
        return source
    path = Path(source)
    if not path.is_file():
        raise DataError(
            f"Data file {source!r} does not exist (bundled datasets: {', '.join(datasets.names())})."
        )
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DataError(f"Cannot read {source!r} as CSV: {err}.") from None


def grouped(df: pd.DataFrame, group: str | Sequence[str]) -> pd.core.groupby.DataFrameGroupBy:
    cols = [group] if isinstance(group, str) else list(group)
    for col in cols:
        if col not in df.columns:
            raise DataError(f"Grouping column {col!r} is not in the data.")
    return df.groupby(cols, observed=True, sort=False)


def numeric_column(df: pd.DataFrame, col: str, allow_nan: bool = False) -> pd.Series:
    if col not in df.columns:
        raise DataError(f"Column {col!r} is not in the data.")
    s = df[col]
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        raise DataError(f"Column {col!r} must be numeric, has dtype {s.dtype}.")
    if not allow_nan and s.isna().any():
        raise DataError(f"Column {col!r} has {int(s.isna().sum())} missing values: drop them first.")
    return s.astype(float)


def center(
    df: pd.DataFrame, x: str | Sequence[str], group: str | Sequence[str], kind: str = "group"
) -> pd.DataFrame:
    r"""A new DataFrame with the group mean of ``x`` and its centred version added.

    ``kind='group'`` adds ``x_between`` :math:`= \bar x_{.j}` and ``x_within``
    :math:`= x_{ij} - \bar x_{.j}` (group-mean centring: in ``y ~ x_between + x_within`` the
    coefficients are the between- and within-group regressions). ``kind='grand'`` adds
    ``x_between`` :math:`= \bar x_{.j} - \bar x_{..}` and ``x_grand`` :math:`= x_{ij} -
    \bar x_{..}` (grand-mean centring: in ``y ~ x_grand + x_between`` the coefficient of
    ``x_between`` is the contextual effect, between minus within). Means are over the rows
    of ``df`` with ``x`` present (a missing ``x`` gets a missing deviation). ``df`` is never
    modified.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"g": ["a", "a", "b", "b"], "x": [1.0, 3.0, 2.0, 4.0]})
    >>> center(df, "x", "g")[["x_between", "x_within"]].values.tolist()
    [[2.0, -1.0], [2.0, 1.0], [3.0, -1.0], [3.0, 1.0]]
    """
    if kind not in ("group", "grand"):
        raise SpecError(f"kind={kind!r} is not an option: use 'group' or 'grand'.")
    out = df.copy()
    by_group = grouped(df, group)
    for col in [x] if isinstance(x, str) else list(x):
        values = numeric_column(df, col, allow_nan=True)
        means = by_group[col].transform("mean").astype(float)
        if kind == "group":
            out[between_name(col)] = means
            out[within_name(col)] = values - means
        else:
            grand = float(values.mean())
            out[between_name(col)] = means - grand
            out[f"{col}{GRAND_SUFFIX}"] = values - grand
    return out


def add_contextual_columns(
    spec, df: pd.DataFrame, group: str | Sequence[str] | None = None
) -> pd.DataFrame:
    """``df`` with the ``<x>_between`` / ``<x>_within`` columns the spec uses but ``df`` lacks.

    A spec made with ``contextual=["ses"]`` names ``ses_between`` (group mean) and
    ``ses_within`` (deviation from it); they are computed from ``ses`` by the spec's first
    grouping factor (or ``group``). Columns already in ``df`` are kept as they are. Returns a
    new DataFrame; ``df`` is never modified.

    Examples
    --------
    >>> from multilevel import datasets, varying_intercept
    >>> spec = varying_intercept("y", "group", contextual=["x"])
    >>> add_contextual_columns(spec, datasets.load("course_example"))["x_between"].tolist()[:4]
    [2.0, 2.0, 3.0, 3.0]
    """
    group = group or list(spec.groups[0].columns)
    cols = used_columns(spec)
    wanted = [c for c in cols if c.endswith(BETWEEN_SUFFIX) or c.endswith(WITHIN_SUFFIX)]
    out = df
    for col in wanted:
        if col in out.columns:
            continue
        suffix = BETWEEN_SUFFIX if col.endswith(BETWEEN_SUFFIX) else WITHIN_SUFFIX
        x = col[: -len(suffix)]
        if x in out.columns:
            out = out.assign(**{col: center(out, x, group, kind="group")[col]})
    return out


def order_levels(frame: pd.DataFrame, spec: ModelSpec, skip: set[str]) -> pd.DataFrame:
    """Make categorical predictors ordered Categoricals with R's level order."""
    order = spec.level_order
    for col in frame.columns:
        if col in skip:
            continue
        s = frame[col]
        if col in order:
            values = set(s.astype(str).unique())
            unknown = values - set(order[col])
            if unknown:
                raise DataError(
                    f"Column {col!r} has values {sorted(unknown)[:5]} missing from the level "
                    f"order given for it {list(order[col])}: add them to levels[{col!r}]."
                )
            present = [lv for lv in order[col] if lv in values]  # unused levels: no columns
            frame[col] = pd.Categorical(s.astype(str), categories=present, ordered=True)
        elif isinstance(s.dtype, pd.CategoricalDtype):
            used = [c for c in s.cat.categories if c in set(s.unique())]
            frame[col] = pd.Categorical(s, categories=used, ordered=True)
        elif pd.api.types.is_bool_dtype(s):
            frame[col] = s.astype(float)
        elif pd.api.types.is_numeric_dtype(s):
            continue
        elif pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s):
            kinds = {type(v) for v in s}
            if kinds != {str}:
                raise DataError(_object_message(col, kinds))
            frame[col] = pd.Categorical(s, categories=sorted(s.unique()), ordered=True)
        else:
            raise DataError(
                f"Predictor column {col!r} has dtype {s.dtype}, which is neither numeric nor "
                "categorical: convert it (e.g. a date to a number of days) first."
            )
        if isinstance(frame[col].dtype, pd.CategoricalDtype) and len(frame[col].cat.categories) < 2:
            raise DataError(
                f"Predictor {col!r} is a factor with a single level "
                f"({list(frame[col].cat.categories)}): it is constant, so its effect is not "
                "identified. Drop it, or check how the data were filtered."
            )
    return frame


def _object_message(col: str, kinds: set[type]) -> str:
    names = sorted(k.__name__ for k in kinds)
    if all(issubclass(k, (int, float, np.number)) and not issubclass(k, bool) for k in kinds):
        return (f"Predictor column {col!r} holds numbers stored as Python objects (dtype object, "
                f"types {names}): convert it with pd.to_numeric(df[{col!r}]).")
    if len(kinds) == 1:
        return (f"Predictor column {col!r} holds {names[0]} values (dtype object), neither numbers "
                "nor text: convert it to numbers, or to strings/a pandas Categorical for a factor.")
    return (f"Predictor column {col!r} mixes value types {names}: make it numeric, or a "
            "string/pandas Categorical column for a factor.")


def group_index(frame: pd.DataFrame, term: GroupTerm, order: dict) -> tuple[np.ndarray, tuple]:
    parts = []
    for col in term.columns:
        s = frame[col]
        if col in order:
            parts.append(pd.Categorical(s.astype(str), categories=list(order[col])))
        elif isinstance(s.dtype, pd.CategoricalDtype):
            parts.append(s.cat.remove_unused_categories().array)
        else:
            parts.append(pd.Categorical(s))
    if len(parts) == 1:
        cat = pd.Categorical(parts[0]).remove_unused_categories()
        return cat.codes.astype(np.int64), tuple(str(c) for c in cat.categories)
    codes = np.column_stack([np.asarray(p.codes) for p in parts])
    uniq, index = np.unique(codes, axis=0, return_inverse=True)
    labels = tuple(
        ":".join(str(parts[k].categories[c]) for k, c in enumerate(row)) for row in uniq
    )
    return index.astype(np.int64).ravel(), labels
