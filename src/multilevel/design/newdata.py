"""Model matrices for new rows, with the training data's transforms, levels and group means.

Prediction code usually goes wrong here, so :func:`new_design` follows lme4's ``predvars``:

* Stateful transforms (``scale(x)``, ``center(x)``) use the *training* centre and scale:
  formulae re-evaluates the fitted terms on the new rows (``evaluate_new_data``), it does not
  refit them. ``I(x^2)``, ``log(x)``, interactions and categorical predictors are evaluated on
  the new rows with the training levels and contrasts.
* A category not seen in fitting, a missing column or a missing value is a :class:`DataError`
  that names the column (and level); the response column is not needed.
* Grouping factors: each factor decides on its own whether a row's level was seen in fitting
  (``index >= 0``) or is new (``index == -1``, numbered in ``new_index``), so a known school
  with a new class is a known school effect plus a new class effect.
* Contextual group means ``x_between`` (and ``x_within``) are taken from the new rows when they
  hold those columns; otherwise computed from ``x``: the training group mean for a group seen
  in fitting, the mean of the new rows of that group for a new group.

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> import pandas as pd
>>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                  datasets.load("sleepstudy"))
>>> nd = new_design(d, pd.DataFrame({"Days": [1.0, 2.0], "Subject": ["308", "999"]}))
>>> nd.X.tolist(), nd.groups[0].index.tolist(), nd.groups[0].new_levels
([[1.0, 1.0], [1.0, 2.0]], [0, -1], ('999',))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from formulae import design_matrices

from multilevel.design.checks import predictor_inputs, used_columns
from multilevel.design.matrices import FORMULA_ENV
from multilevel.design.types import Design, GroupDesign
from multilevel.errors import DataError, SpecError
from multilevel.spec.contextual import BETWEEN_SUFFIX, WITHIN_SUFFIX, between_name, within_name

__all__ = ["NEW_LEVELS", "SCALES", "NewDesign", "NewGroup", "check_scale", "new_design",
           "predictor_columns"]

#: ``scale=`` of every predict function: the inverse link applied, or the linear predictor.
SCALES = ("response", "link")
#: ``new_levels=`` of the posterior predictions: what a level not seen in fitting gets.
NEW_LEVELS = ("sample", "population", "error")


def check_scale(scale: str) -> str:
    """``scale`` if it is one of :data:`SCALES`, else a SpecError naming the choices.

    Examples
    --------
    >>> check_scale("link")
    'link'
    """
    if scale not in SCALES:
        raise SpecError(
            f"scale={scale!r} is not an option: use 'response' (the inverse link applied, a "
            "probability for logistic models) or 'link' (the linear predictor)."
        )
    return scale


@dataclass(frozen=True, eq=False)
class NewGroup:
    """One grouping factor on the new rows.

    ``index`` is the training level of each row (``-1`` for a level not seen in fitting);
    ``new_index`` numbers the unseen levels (``-1`` for a seen one) in ``new_levels``."""

    factor: str
    index: np.ndarray
    Z: np.ndarray
    new_index: np.ndarray
    new_levels: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class NewDesign:
    """Arrays for new rows: fixed-effect matrix, groups (None when predicting without them),
    binomial trials and known standard errors when the rows hold those columns."""

    X: np.ndarray
    groups: tuple[NewGroup, ...] | None
    trials: np.ndarray | None
    se: np.ndarray | None

    @property
    def n_obs(self) -> int:
        """Number of new rows."""
        return int(self.X.shape[0])


def predictor_columns(design: Design, *, groups: bool = True) -> list[str]:
    """The columns a prediction needs: predictors, and the grouping columns when ``groups``.

    Examples
    --------
    >>> from multilevel import ModelSpec, datasets
    >>> from multilevel.design import build_design
    >>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
    ...                  datasets.load("sleepstudy"))
    >>> predictor_columns(d), predictor_columns(d, groups=False)
    (['Days', 'Subject'], ['Days'])
    """
    spec = design.spec
    skip = {spec.response, spec.trials, spec.failures, spec.se}
    if not groups:  # grouping columns, unless a term also reads them
        skip |= {c for g in spec.groups for c in g.columns} - predictor_inputs(spec)
    if spec.correlation is not None:  # the residuals' time and series: not predictors
        corr = spec.correlation
        skip |= ({corr.time, *corr.columns} - predictor_inputs(spec)
                 - {c for g in spec.groups for c in g.columns if groups})
    return [c for c in used_columns(spec) if c not in skip]


def _training_design(design: Design) -> NewDesign:
    groups = tuple(
        NewGroup(g.factor, g.index, g.Z, np.full(len(g.index), -1, dtype=np.int64), ())
        for g in design.groups
    )
    return NewDesign(design.X, groups, design.trials, design.se)


def new_design(design: Design, newdata: pd.DataFrame | None, *, groups: bool = True) -> NewDesign:
    """The arrays of ``newdata`` for the model of ``design`` (module docstring).

    ``newdata=None`` returns the fitted rows (all levels seen). ``groups=False`` skips the
    grouping columns (population-level prediction). ``newdata`` is never modified.

    Raises
    ------
    DataError
        A missing column, a missing value, a non-numeric value in a numeric predictor, a
        category not seen in fitting, or a contextual column that cannot be computed.
    """
    if newdata is None:
        out = _training_design(design)
        return out if groups else NewDesign(out.X, None, out.trials, out.se)
    if not isinstance(newdata, pd.DataFrame):
        raise SpecError(
            f"newdata must be a pandas DataFrame, got {type(newdata).__name__}: wrap it with "
            "pd.DataFrame(...), or pass None to predict the fitted rows."
        )
    if newdata.empty:
        raise DataError("newdata has no rows: there is nothing to predict.")
    spec = design.spec
    frame = _with_contextual(design, newdata.reset_index(drop=True), groups)
    needed = predictor_columns(design, groups=groups)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(
            f"newdata lacks the column(s) {', '.join(map(repr, missing))} that the model uses: "
            f"add them (the model needs {', '.join(map(repr, needed))}; the response "
            f"{spec.response!r} is not needed)."
        )
    factors = {c for g in spec.groups for c in g.columns} - predictor_inputs(spec)
    frame = frame.loc[:, needed].copy()
    for col in needed:
        _check_present(frame, col)
        if col not in factors:
            frame[col] = _as_training(design.frame[col], frame[col], col)
    X = _evaluate(" + ".join(["1" if spec.intercept else "0", *spec.fixed]), design, frame)
    new_groups = None
    if groups:
        new_groups = tuple(
            _new_group(design, g, term, frame)
            for g, term in zip(design.groups, spec.groups, strict=True)
        )
    return NewDesign(X, new_groups, _trials(design, newdata), _se(design, newdata))


def _check_present(frame: pd.DataFrame, col: str) -> None:
    bad = int(frame[col].isna().sum())
    if bad:
        raise DataError(
            f"Column {col!r} of newdata has {bad} missing value(s): predictions need every "
            "predictor; fill them in or drop those rows first."
        )


def _as_training(train: pd.Series, new: pd.Series, col: str) -> pd.Series:
    """``new`` with the training column's type: its categories, or numbers."""
    if isinstance(train.dtype, pd.CategoricalDtype):
        cats = list(train.cat.categories)
        codes = _match(new, cats)
        if (codes < 0).any():
            unseen = sorted({str(v) for v in new[codes < 0]})
            raise DataError(
                f"Column {col!r} of newdata has level(s) {unseen[:5]} not seen in fitting (the "
                f"model knows {[str(c) for c in cats][:10]}): a coefficient for an unseen "
                "category does not exist; drop those rows or recode them."
            )
        return pd.Series(pd.Categorical.from_codes(codes, categories=cats, ordered=True))
    if pd.api.types.is_bool_dtype(new):
        return new.astype(float)
    if not pd.api.types.is_numeric_dtype(new):
        raise DataError(
            f"Column {col!r} of newdata must be numeric, as in fitting, but has dtype "
            f"{new.dtype}: convert it with pd.to_numeric."
        )
    return new.astype(float)


def _evaluate(rhs: str, design: Design, frame: pd.DataFrame) -> np.ndarray:
    """Columns of ``rhs`` for ``frame``, with the transforms fitted to the training frame."""
    if rhs in ("1", "0"):
        return np.ones((len(frame), 1)) if rhs == "1" else np.zeros((len(frame), 0))
    train = design.frame if design.encoding is None else design.encoding  # no rows: the levels
    trained = design_matrices(rhs, train, na_action="error", env=FORMULA_ENV)
    try:
        out = trained.common.evaluate_new_data(frame).design_matrix
    except Exception as err:
        raise DataError(f"Cannot evaluate {rhs!r} on newdata: {err!r}") from None
    X = np.asarray(out, dtype=float)
    if not np.isfinite(X).all():
        rows = int((~np.isfinite(X)).any(axis=1).sum())
        raise DataError(
            f"{rows} row(s) of newdata give NaN or infinite values in {rhs!r} (e.g. log of a "
            "value <= 0): filter or fix those rows."
        )
    return X


def _text(value) -> str:
    """A value as level text; a whole float reads as the integer (308.0 is '308')."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _match(new: pd.Series, values: list) -> np.ndarray:
    """Position of each new value among the training ``values`` (-1 if absent): equal values
    match (308 and 308.0), then equal text ('308' and 308)."""
    try:  # vectorized lookup by value (hash table)
        out = pd.Categorical(new, categories=pd.Index(values, dtype=object)).codes.astype(np.int64)
    except (TypeError, ValueError):
        out = np.full(len(new), -1, dtype=np.int64)
    missing = out < 0
    if missing.any():
        by_text = {_text(v): i for i, v in enumerate(values)}
        out[missing] = [by_text.get(_text(v), -1) for v in new.to_numpy(dtype=object)[missing]]
    return out


def _labels(frame: pd.DataFrame, train: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Level labels of the new rows, written as the design writes the training levels
    (``str`` of the training value that matches; a value never seen keeps its own text)."""
    parts = []
    for col in columns:
        s = frame[col]
        t = train[col]
        values = list(t.cat.categories) if isinstance(t.dtype, pd.CategoricalDtype) else list(
            pd.unique(t))
        pos = _match(s, values)
        text = np.array([str(v) for v in values] + [""], dtype=object)[pos]
        own = pos < 0
        if own.any():
            text[own] = [_text(v) for v in s.to_numpy(dtype=object)[own]]
        parts.append(text)
    if len(parts) == 1:
        return parts[0]
    return np.array([":".join(row) for row in zip(*parts, strict=True)], dtype=object)


def _new_group(design: Design, g: GroupDesign, term, frame: pd.DataFrame) -> NewGroup:
    train = design.frame if design.encoding is None else design.encoding  # no rows: the levels
    labels = _labels(frame, train, term.columns)
    lookup = {lv: i for i, lv in enumerate(g.levels)}
    index = np.fromiter((lookup.get(lv, -1) for lv in labels), dtype=np.int64, count=len(labels))
    unseen = labels[index < 0]
    new_levels, inverse = np.unique(unseen, return_inverse=True) if len(unseen) else ([], [])
    new_index = np.full(len(labels), -1, dtype=np.int64)
    new_index[index < 0] = np.asarray(inverse, dtype=np.int64).ravel()
    z_rhs = " + ".join(["1" if term.intercept else "0", *term.slopes])
    Z = _evaluate(z_rhs, design, frame)
    return NewGroup(g.factor, index, Z, new_index, tuple(str(v) for v in new_levels))


def _with_contextual(design: Design, newdata: pd.DataFrame, groups: bool) -> pd.DataFrame:
    """``newdata`` plus the ``x_between`` / ``x_within`` columns it lacks (module docstring)."""
    spec = design.spec
    wanted = [
        c for c in used_columns(spec)
        if (c.endswith(BETWEEN_SUFFIX) or c.endswith(WITHIN_SUFFIX)) and c not in newdata.columns
        and c in design.frame.columns
    ]
    if not wanted:
        return newdata
    if not design.has_rows:
        raise DataError(
            f"newdata lacks {', '.join(map(repr, wanted))}: supply the column(s); the training "
            "group means are not kept for data larger than memory."
        )
    by = list(spec.groups[0].columns)
    out = newdata.copy()
    for col in wanted:
        suffix = BETWEEN_SUFFIX if col.endswith(BETWEEN_SUFFIX) else WITHIN_SUFFIX
        x = col[: -len(suffix)]
        if x not in out.columns or any(b not in out.columns for b in by):
            raise DataError(
                f"newdata lacks {col!r}: supply it, or supply {x!r} and the grouping column(s) "
                f"{by} so that it is computed (group means come from the training data for "
                "groups seen in fitting, from newdata's rows for a new group)."
            )
        means = _group_means(design, x, by, out)
        out[col] = means if suffix == BETWEEN_SUFFIX else out[x].astype(float) - means
    return out


def _group_means(design: Design, x: str, by: list[str], out: pd.DataFrame) -> np.ndarray:
    """Training group mean of ``x`` for seen groups, the newdata mean for new groups."""
    train = design.frame
    key_new = pd.Series(_labels(out, train, tuple(by)))
    key_train = _labels(train, train, tuple(by))
    col = between_name(x)
    if col in train.columns:
        known = pd.Series(train[col].to_numpy(float)).groupby(key_train).first().to_dict()
    elif x in train.columns:
        known = pd.Series(train[x].to_numpy(float)).groupby(key_train).mean().to_dict()
    else:  # only x_within was kept: the training means of the seen groups are not known
        seen = sorted(set(key_new) & set(key_train))
        if seen:
            raise DataError(
                f"newdata lacks {within_name(x)!r} for group(s) {seen[:5]} seen in fitting, and "
                f"the fit kept no training group means of {x!r}: supply {within_name(x)!r}."
            )
        known = {}
    own = pd.Series(out[x].to_numpy(float)).groupby(key_new).transform("mean").to_numpy()
    return np.array(
        [known.get(k, m) for k, m in zip(key_new, own, strict=True)], dtype=float
    )


def _trials(design: Design, newdata: pd.DataFrame) -> np.ndarray | None:
    spec = design.spec
    if spec.family == "bernoulli":
        return np.ones(len(newdata))
    if spec.family != "binomial":
        return None
    if spec.trials and spec.trials in newdata.columns:
        return newdata[spec.trials].to_numpy(dtype=float)
    if spec.failures and {spec.failures, spec.response} <= set(newdata.columns):
        return newdata[spec.response].to_numpy(float) + newdata[spec.failures].to_numpy(float)
    return None


def _se(design: Design, newdata: pd.DataFrame) -> np.ndarray | None:
    se = design.spec.se
    if se is None or se not in newdata.columns:
        return None
    values = newdata[se].to_numpy(dtype=float)
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise DataError(f"Standard errors {se!r} of newdata must be positive and finite.")
    return values
