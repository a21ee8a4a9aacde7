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

import difflib
import re
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from formulae import design_matrices, model_description

from multilevel.errors import DataError, SpecError
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


def _term_columns(term: str) -> set[str]:
    if term == "1":
        return set()
    desc = model_description(term)
    names: set[str] = set()
    for t in desc.terms:
        names |= {v for v in getattr(t, "var_names", set()) if v}
    return names


def used_columns(spec: ModelSpec) -> list[str]:
    """Every data column the spec reads, response first.

    Examples
    --------
    >>> from multilevel import ModelSpec
    >>> used_columns(ModelSpec.from_formula("y ~ x*z + (1 + x | g)"))
    ['y', 'x', 'z', 'g']
    """
    cols = [spec.response] + [c for c in (spec.trials, spec.failures, spec.se) if c]
    for term in spec.fixed:
        cols += sorted(_term_columns(term))
    for g in spec.groups:
        for term in g.slopes:
            cols += sorted(_term_columns(term))
        cols += list(g.columns)
    return list(dict.fromkeys(cols))


def _check_columns(spec: ModelSpec, df: pd.DataFrame) -> list[str]:
    cols = used_columns(spec)
    for col in cols:
        if col not in df.columns:
            close = difflib.get_close_matches(col, [str(c) for c in df.columns], n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise DataError(
                f"Column {col!r} used by the model is not in the data.{hint} "
                f"Available columns: {', '.join(map(str, df.columns[:20]))}."
            )
    return cols


def _handle_missing(frame: pd.DataFrame, missing: str) -> tuple[pd.DataFrame, int]:
    bad = frame.isna()
    for col in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col]):
            bad[col] |= ~np.isfinite(frame[col].to_numpy(dtype=float, na_value=np.nan))
    rows = bad.any(axis=1)
    if not rows.any():
        return frame, 0
    if missing == "drop":
        n = int(rows.sum())
        per_col = {c: int(bad[c].sum()) for c in frame.columns if bad[c].any()}
        warnings.warn(
            f"missing='drop': dropped {n} of {len(frame)} rows with NaN or inf values "
            f"(by column: {per_col}).",
            UserWarning,
            stacklevel=3,
        )
        kept = frame.loc[~rows]
        if kept.empty:
            raise DataError("Every row has a missing value in a used column; nothing is left.")
        return kept, n
    col = next(c for c in frame.columns if bad[c].any())
    raise DataError(
        f"Column {col!r} has {int(bad[col].sum())} NaN or infinite values (of {len(frame)} rows). "
        "Fill or remove them, or pass missing='drop' to drop those rows (the fit reports how "
        "many)."
    )


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
                    f"order given for it {list(order[col])}: add them."
                )
            frame[col] = pd.Categorical(s.astype(str), categories=list(order[col]), ordered=True)
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


def _matrix(rhs: str, frame: pd.DataFrame, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    try:
        dm = design_matrices(rhs, frame, na_action="error")
    except Exception as err:
        raise DataError(f"Cannot build the {where} from {rhs!r}: {err}") from None
    common = dm.common
    labels: list[str] = []
    for name, term_slice in common.slices.items():
        labels += common.terms[name].labels if hasattr(common.terms[name], "labels") else [name]
        assert term_slice.stop - term_slice.start == len(common.terms[name].labels)
    return np.asarray(common.design_matrix, dtype=float), tuple(lme4_name(x) for x in labels)


def _response(frame: pd.DataFrame, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray | None]:
    col = spec.response
    s = frame[col]
    if spec.family == "bernoulli":
        if pd.api.types.is_bool_dtype(s):
            return s.to_numpy(dtype=float), None
        if pd.api.types.is_numeric_dtype(s) and set(np.unique(s)) <= {0, 1}:
            return s.to_numpy(dtype=float), None
        levels = (
            list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype)
            else sorted(s.unique().tolist(), key=str)
        )
        levels = [lv for lv in levels if lv in set(s.unique())]
        if len(levels) != 2 or pd.api.types.is_numeric_dtype(s):
            raise DataError(
                f"Response {col!r} of a bernoulli model must be 0/1, boolean or have exactly two "
                f"levels; it has values {levels[:6]}. Recode it, or use family='gaussian'."
            )
        return (s == levels[1]).to_numpy(dtype=float), None
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        raise DataError(f"Response {col!r} must be numeric for family={spec.family!r}, has {s.dtype}.")
    y = s.to_numpy(dtype=float)
    if spec.family == "gaussian":
        if np.ptp(y) == 0:
            raise DataError(f"Response {col!r} is constant ({y[0]:g}): there is nothing to model.")
        return y, None
    if spec.trials:
        n = frame[spec.trials].to_numpy(dtype=float)
    else:
        n = y + frame[spec.failures].to_numpy(dtype=float)
    for name, arr in ((col, y), (spec.trials or spec.failures, n)):
        if np.any(arr < 0) or np.any(arr != np.round(arr)):
            raise DataError(f"Binomial counts in {name!r} must be non-negative whole numbers.")
    over = int(np.sum(y > n))
    if over:
        raise DataError(
            f"Successes {col!r} exceed the trials in {over} rows: check that trials is "
            f"{spec.trials or 'successes + failures'}."
        )
    return y, n


def _check_fixed(X: np.ndarray, names: tuple[str, ...], n_params: int) -> None:
    for j, name in enumerate(names):
        if name != "(Intercept)" and np.ptp(X[:, j]) == 0:
            raise DataError(
                f"Predictor {name!r} is constant ({X[0, j]:g} in every row): drop it, its effect "
                "is not identified beside the intercept."
            )
    if X.shape[0] < n_params:
        raise DataError(
            f"{X.shape[0]} rows are fewer than the {n_params} parameters of the model: collect "
            "more data or simplify the model."
        )
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[1]:
        _, _, vt = np.linalg.svd(X, full_matrices=False)
        null = np.abs(vt[-1])
        culprits = [names[j] for j in np.argsort(null)[::-1] if null[j] > 1e-6][:4]
        raise DataError(
            f"The fixed-effect columns are perfectly collinear (rank {rank} < {X.shape[1]}): "
            f"{', '.join(culprits)} are linear combinations of each other. Drop one of them."
        )


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

    Examples
    --------
    >>> from multilevel import datasets, ModelSpec
    >>> spec = ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)")
    >>> d = build_design(spec, datasets.load("sleepstudy"))
    >>> d.X.shape, d.groups[0].term_names, d.groups[0].n_levels
    ((180, 2), ('(Intercept)', 'Days'), 18)
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"Data must be a pandas DataFrame, got {type(df).__name__}.")
    if missing not in ("error", "drop"):
        raise SpecError(f"missing={missing!r} is not an option: use 'error' or 'drop'.")
    if df.empty:
        raise DataError("The DataFrame is empty: there is nothing to fit.")
    cols = _check_columns(spec, df)
    frame = df.loc[:, cols].copy()
    frame, dropped = _handle_missing(frame, missing)
    frame = frame.reset_index(drop=True)
    factor_cols = {c for g in spec.groups for c in g.columns}
    skip = {spec.response, spec.trials, spec.failures, spec.se} | factor_cols
    frame = _order_levels(frame, spec, skip - {None})
    y, trials = _response(frame, spec)
    rhs = " + ".join(["1" if spec.intercept else "0", *spec.fixed])
    X, names = _matrix(rhs, frame, "fixed-effect matrix")
    groups = []
    for term in spec.groups:
        index, levels = _group_index(frame, term, spec.level_order)
        if len(levels) < 2:
            raise DataError(
                f"Grouping factor {term.factor!r} has {len(levels)} level(s): a multilevel model "
                "needs at least two groups (five or more to estimate a variance well)."
            )
        if len(levels) == len(frame) and spec.family == "gaussian" and spec.se is None:
            raise DataError(
                f"Every group of {term.factor!r} has a single row, so its variance cannot be told "
                "apart from the residual variance: check the grouping column."
            )
        z_rhs = " + ".join(["1" if term.intercept else "0", *term.slopes])
        Z, z_names = _matrix(z_rhs, frame, f"varying terms of {term.factor!r}")
        groups.append(
            GroupDesign(term.factor, index, levels, Z, z_names, term.correlated, term.intercept)
        )
    n_params = X.shape[1] + sum(g.n_terms for g in groups) + (
        spec.family == "gaussian" and spec.se is None
    )
    _check_fixed(X, names, n_params)
    return Design(spec, y, X, names, tuple(groups), frame, trials, dropped, _known_se(frame, spec))


def _known_se(frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray | None:
    if spec.se is None:
        return None
    s = frame[spec.se]
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        raise DataError(f"Standard errors {spec.se!r} must be numeric, got {s.dtype}.")
    se = s.to_numpy(dtype=float)
    bad = int(np.sum(se <= 0))
    if bad:
        raise DataError(
            f"Standard errors {spec.se!r} must be positive; {bad} rows are zero or negative."
        )
    return se


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
