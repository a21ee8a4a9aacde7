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
from formulae.environment import Environment

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


def _term_columns(term: str) -> set[str]:
    if term == "1":
        return set()
    check_safe(term, where="term")
    desc = model_description(term)
    names: set[str] = set()
    for t in desc.terms:
        names |= {v for v in getattr(t, "var_names", set()) if v}
    return names


def _numeric_inputs(term: str) -> set[str]:
    """Columns that a numeric transform (``log(x)``, ``I(x^2)``, ...) of ``term`` reads."""
    if "(" not in term:
        return set()
    check_safe(term, where="term")
    out: set[str] = set()
    for t in model_description(term).terms:
        for c in getattr(t, "components", []):
            if type(c).__name__ == "Call" and not c.name.startswith("C("):
                out |= {v for v in c.var_names if v}
    return out


def _check_transforms(frame: pd.DataFrame, spec: ModelSpec) -> None:
    terms = list(spec.fixed) + [t for g in spec.groups for t in g.slopes]
    for term in terms:
        for col in sorted(_numeric_inputs(term)):
            if not pd.api.types.is_numeric_dtype(frame[col]):
                raise DataError(
                    f"The term {term!r} applies a numeric transform to column {col!r}, which is "
                    f"not numeric (dtype {frame[col].dtype}): convert the column to numbers, or "
                    "use it without the transform as a factor."
                )


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
        copies = int(np.sum(df.columns == col))
        if copies > 1:
            raise DataError(
                f"Column {col!r} appears {copies} times in the DataFrame: rename or drop the "
                "duplicates (df.loc[:, ~df.columns.duplicated()])."
            )
    rhs = {c for t in spec.fixed for c in _term_columns(t)}
    rhs |= {c for g in spec.groups for t in g.slopes for c in _term_columns(t)}
    for name in (spec.response, spec.trials, spec.failures, spec.se):
        if name in rhs:
            raise SpecError(
                f"Column {name!r} is the response (or its trials/standard errors) and also a "
                "predictor: remove it from the right-hand side."
            )
    unused = sorted(set(spec.level_order) - set(cols))
    if unused:
        raise SpecError(
            f"levels= is given for {', '.join(map(repr, unused))}, which the model does not use: "
            "remove it, or check the column name."
        )
    return cols


def _rows(k: int) -> str:
    return f"{k} row" if k == 1 else f"{k} rows"


def _missing_mask(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame.isna()
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            if pd.api.types.is_complex_dtype(s):
                raise DataError(
                    f"Column {col!r} holds complex numbers: use its real part or its modulus."
                )
            bad[col] |= ~np.isfinite(s.to_numpy(dtype=float, na_value=np.nan))
    return bad


def _role(col: str, spec: ModelSpec) -> str:
    if col == spec.response:
        return "Response"
    if any(col in g.columns for g in spec.groups):
        return "Grouping factor"
    return "Column"


def _handle_missing(
    frame: pd.DataFrame, missing: str, spec: ModelSpec
) -> tuple[pd.DataFrame, int]:
    bad = _missing_mask(frame)
    n = len(frame)
    for col in frame.columns:
        if bad[col].all():
            raise DataError(
                f"{_role(col, spec)} {col!r} is entirely missing: all {n} values are NaN, None or "
                "infinite. Check how the column was read or merged; a model cannot use it."
            )
    rows = bad.any(axis=1)
    if not rows.any():
        return frame, 0
    per_col = {c: int(bad[c].sum()) for c in frame.columns if bad[c].any()}
    if missing == "drop":
        warnings.warn(
            f"missing='drop': dropped {int(rows.sum())} of {n} rows with NaN or inf values "
            f"(by column: {per_col}).",
            UserWarning,
            stacklevel=3,
        )
        kept = frame.loc[~rows]
        if kept.empty:
            raise DataError(
                f"Every row has a missing value in a used column (by column: {per_col}); "
                "nothing is left to fit."
            )
        return kept, int(rows.sum())
    (first, count), *others = per_col.items()
    also = "".join(f"; {_role(c, spec).lower()} {c!r} has {k}" for c, k in others)
    raise DataError(
        f"{_role(first, spec)} {first!r} has {count} NaN or infinite values (of {n} rows){also}. "
        f"Fill or remove them, or pass missing='drop' to drop the {_rows(int(rows.sum()))} "
        "concerned (the fit reports how many)."
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


_ENV = Environment([SAFE_NAMESPACE])  # formulae looks names up in the data, then only here


def _matrix(
    rhs: str, frame: pd.DataFrame, where: str
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Columns, their lme4 names, and the term each column comes from."""
    check_safe(rhs, where=where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # log(0) etc.: checked below
            dm = design_matrices(rhs, frame, na_action="error", env=_ENV)
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
            f"{_rows(bad)} with negative or fractional values."
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
                f"{spec.trials or 'successes + failures'!r} in {_rows(over)}: check that the "
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


def _check_groups(term: GroupTerm, levels: tuple, n_rows: int, spec: ModelSpec,
                  trials: np.ndarray | None) -> None:
    if len(levels) < 2:
        raise DataError(
            f"Grouping factor {term.factor!r} has {len(levels)} level(s): a multilevel model "
            "needs at least two groups (five or more to estimate a variance well)."
        )
    single_ok = spec.se is not None or (trials is not None and bool(np.any(trials > 1)))
    if len(levels) == n_rows and not single_ok:
        residual = "residual variance" if spec.family == "gaussian" else "0/1 outcome noise"
        raise DataError(
            f"Every group of {term.factor!r} has a single row, so its variance cannot be told "
            f"apart from the {residual}: check the grouping column (is it a row id?)."
        )


def _warn_slopes(group: GroupDesign, term: GroupTerm, z_terms: tuple[str, ...]) -> None:
    """Warn about a varying slope whose column is constant within every group."""
    lo = np.full((group.n_levels, group.n_terms), np.inf)
    hi = np.full((group.n_levels, group.n_terms), -np.inf)
    np.minimum.at(lo, group.index, group.Z)
    np.maximum.at(hi, group.index, group.Z)
    flat = np.all(hi - lo == 0, axis=0)
    for name in dict.fromkeys(
        z_terms[k] for k in range(group.n_terms) if flat[k] and group.term_names[k] != "(Intercept)"
    ):
        warnings.warn(
            f"The varying slope of {name!r} in {term.to_formula()} does not vary within any group "
            f"of {term.factor!r}: {name} is constant within every group, so its group-level "
            "variance is not identified (only the intercept can absorb between-group "
            f"differences). Drop {name} from the group term and keep it as a fixed effect.",
            UserWarning,
            stacklevel=4,
        )


def _separation_warning(what: str, design: Design) -> None:
    warnings.warn(
        f"Perfect separation: {what} in {design.spec.response!r}. Its maximum-likelihood "
        "estimate is infinite and its posterior is set by the prior: merge sparse levels, give "
        "it an informative prior (e.g. priors={'b': Prior('Normal', mu=0, sigma=2.5)}), or drop "
        "the term.",
        UserWarning,
        stacklevel=5,
    )


def _warn_separation(design: Design, terms: tuple[str, ...]) -> None:
    """Warn when one factor level has only successes or only failures, or one fixed-effect
    column alone separates successes from failures (cheap, one column at a time)."""
    n = design.trials if design.trials is not None else np.ones_like(design.y)
    success, failure = design.y > 0, design.y < n
    if not success.any() or not failure.any():
        return
    factors = set()
    for term in dict.fromkeys(terms):
        cols = _term_columns(term) if term != "Intercept" else set()
        col = next(iter(cols)) if len(cols) == 1 else None
        if col is None or not isinstance(design.frame[col].dtype, pd.CategoricalDtype):
            continue
        factors.add(term)
        cat = design.frame[col].cat
        wins = np.bincount(cat.codes, weights=design.y, minlength=len(cat.categories))
        tries = np.bincount(cat.codes, weights=n, minlength=len(cat.categories))
        for level, w, t in zip(cat.categories, wins, tries, strict=True):
            if t > 0 and w in (0, t):
                outcome = "successes" if w else "failures"
                _separation_warning(
                    f"level {str(level)!r} of {col!r} (term {term!r}) has only {outcome}", design
                )
    for j, name in enumerate(design.fixed_names):
        if name == "(Intercept)" or terms[j] in factors:
            continue
        x = design.X[:, j]
        xs, xf = x[success], x[failure]
        if xf.max() <= xs.min():
            high, low, cut = "success", "failure", xf.max()
        elif xs.max() <= xf.min():
            high, low, cut = "failure", "success", xs.max()
        else:
            continue
        how = (
            f"every row with {name} = 1 is a {high}" if set(np.unique(x)) <= {0.0, 1.0}
            else f"every {high} has {name} >= {cut:g} and every {low} has {name} <= {cut:g}"
        )
        _separation_warning(
            f"the fixed-effect term {terms[j]!r} (column {name!r}) predicts the outcome ({how})",
            design,
        )


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
    cols = _check_columns(spec, df)
    frame = df.loc[:, cols].copy()
    frame, dropped = _handle_missing(frame, missing, spec)
    frame = frame.reset_index(drop=True)
    factor_cols = {c for g in spec.groups for c in g.columns}
    skip = {spec.response, spec.trials, spec.failures, spec.se} | factor_cols
    frame = _order_levels(frame, spec, skip - {None})
    _check_transforms(frame, spec)
    y, trials = _response(frame, spec)
    rhs = " + ".join(["1" if spec.intercept else "0", *spec.fixed])
    X, names, x_terms = _matrix(rhs, frame, "fixed-effect matrix")
    groups, z_terms = [], []
    for term in spec.groups:
        index, levels = _group_index(frame, term, spec.level_order)
        _check_groups(term, levels, len(frame), spec, trials)
        z_rhs = " + ".join(["1" if term.intercept else "0", *term.slopes])
        Z, z_names, terms = _matrix(z_rhs, frame, f"varying terms of {term.factor!r}")
        groups.append(
            GroupDesign(term.factor, index, levels, Z, z_names, term.correlated, term.intercept)
        )
        z_terms.append(terms)
    n_params = X.shape[1] + sum(g.n_terms for g in groups) + (
        spec.family == "gaussian" and spec.se is None
    )
    _check_fixed(X, names, n_params)
    design = Design(
        spec, y, X, names, tuple(groups), frame, trials, dropped, _known_se(frame, spec)
    )
    for group, term, terms in zip(groups, spec.groups, z_terms, strict=True):
        _warn_slopes(group, term, terms)
    if spec.is_logistic:
        _warn_separation(design, x_terms)
    return design


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
            f"Standard errors {spec.se!r} must be positive; found {_rows(bad)} with zero or "
            "negative values."
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
