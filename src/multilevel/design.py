"""From a DataFrame and a :class:`ModelSpec` to numpy arrays, with every data check.

The :class:`Design` holds the response ``y`` (and binomial ``trials``), the fixed-effect matrix
``X`` with lme4-style column names, and per grouping factor an integer index, the level labels
and the matrix ``Z`` of its varying terms (one row per observation, one column per term: the
group effect of row ``i`` is ``Z[i] @ u[index[i]]``). Nothing in here knows about PyMC.

The caller's DataFrame is never modified: all work happens on a copy of the used columns.

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

import re
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from formulae import design_matrices
from formulae.environment import Environment

from multilevel.datachecks import (
    check_columns,
    check_fixed,
    check_groups,
    check_transforms,
    handle_missing,
    known_se,
    rows_text,
    used_columns,
    warn_separation,
    warn_slopes,
)
from multilevel.errors import DataError, SpecError
from multilevel.formula import SAFE_NAMESPACE, check_safe
from multilevel.spec import GroupTerm, ModelSpec

__all__ = ["Design", "GroupDesign", "build_design", "collapse_binomial", "lme4_name", "used_columns"]


@dataclass(frozen=True)
class GroupDesign:
    """Arrays for one grouping factor."""

    factor: str
    index: np.ndarray
    levels: tuple[str, ...]
    Z: np.ndarray
    term_names: tuple[str, ...]
    correlated: bool
    intercept: bool

    @property
    def n_levels(self) -> int:
        """Number of groups."""
        return len(self.levels)

    @property
    def n_terms(self) -> int:
        """Number of varying terms."""
        return len(self.term_names)

    @property
    def counts(self) -> np.ndarray:
        """Observations per group, in level order."""
        return np.bincount(self.index, minlength=self.n_levels)


@dataclass(frozen=True)
class Design:
    """Everything the model builders need, as numpy arrays."""

    spec: ModelSpec
    y: np.ndarray
    X: np.ndarray
    fixed_names: tuple[str, ...]
    groups: tuple[GroupDesign, ...]
    frame: pd.DataFrame
    trials: np.ndarray | None = None
    dropped_rows: int = 0
    se: np.ndarray | None = None

    @property
    def n_obs(self) -> int:
        """Number of rows used."""
        return int(self.y.shape[0])

    def group(self, factor: str) -> GroupDesign:
        """The :class:`GroupDesign` of one factor."""
        for g in self.groups:
            if g.factor == factor:
                return g
        raise KeyError(factor)


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












def _order_levels(frame: pd.DataFrame, spec: ModelSpec, skip: set[str]) -> pd.DataFrame:
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
                raise DataError(
                    f"Predictor column {col!r} mixes value types {sorted(k.__name__ for k in kinds)}: "
                    "make it numeric, or a string/pandas Categorical column for a factor."
                )
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


def _group_index(frame: pd.DataFrame, term: GroupTerm, order: dict) -> tuple[np.ndarray, tuple]:
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


#: Gaussian designs up to this many rows are checked for an exact fit (zero residual variance,
#: :func:`multilevel.course.check_level1_variance`); real data that large never fit exactly.
EXACT_FIT_CHECK_ROWS = 1_000_000
FORMULA_ENV = Environment([SAFE_NAMESPACE])  # formulae looks names up in the data, then only here


def _matrix(
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


def _response(frame: pd.DataFrame, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray | None]:
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




def build_design(spec: ModelSpec, df: pd.DataFrame, *, missing: str = "error") -> Design:
    """Check ``df`` against ``spec`` and build the model arrays.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    df : pandas.DataFrame
        The data; never modified.
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
    if not isinstance(df, pd.DataFrame):
        raise SpecError(
            f"Argument 'df' (the data) must be a pandas DataFrame, got {type(df).__name__}: "
            "wrap it with pd.DataFrame(...)."
        )
    if missing not in ("error", "drop"):
        raise SpecError(f"missing={missing!r} is not an option: use 'error' or 'drop'.")
    if df.empty:
        raise DataError("The DataFrame is empty: there is nothing to fit.")
    from multilevel.course_data import add_contextual_columns, check_level1_variance

    df = add_contextual_columns(spec, df)  # <x>_between / <x>_within of contextual=[...]
    cols = check_columns(spec, df)
    frame = df.loc[:, cols].copy()
    frame, dropped = handle_missing(frame, missing, spec)
    frame = frame.reset_index(drop=True)
    factor_cols = {c for g in spec.groups for c in g.columns}
    skip = {spec.response, spec.trials, spec.failures, spec.se} | factor_cols
    frame = _order_levels(frame, spec, skip - {None})
    check_transforms(frame, spec)
    y, trials = _response(frame, spec)
    rhs = " + ".join(["1" if spec.intercept else "0", *spec.fixed])
    X, names, x_terms = _matrix(rhs, frame, "fixed-effect matrix")
    groups, z_terms = [], []
    for term in spec.groups:
        index, levels = _group_index(frame, term, spec.level_order)
        check_groups(term, levels, len(frame), spec, trials)
        z_rhs = " + ".join(["1" if term.intercept else "0", *term.slopes])
        Z, z_names, terms = _matrix(z_rhs, frame, f"varying terms of {term.factor!r}")
        groups.append(
            GroupDesign(term.factor, index, levels, Z, z_names, term.correlated, term.intercept)
        )
        z_terms.append(terms)
    n_params = X.shape[1] + sum(g.n_terms for g in groups) + (
        spec.family == "gaussian" and spec.se is None
    )
    check_fixed(X, names, n_params)
    design = Design(
        spec, y, X, names, tuple(groups), frame, trials, dropped, known_se(frame, spec)
    )
    for group, term, terms in zip(groups, spec.groups, z_terms, strict=True):
        warn_slopes(group, term, terms)
    if spec.is_logistic:
        warn_separation(design, x_terms)
    if spec.family == "gaussian" and spec.se is None and design.n_obs <= EXACT_FIT_CHECK_ROWS:
        check_level1_variance(design)  # data fitted exactly: zero residual variance
    return design




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
