"""Data checks of :func:`multilevel.design.build_design`: every problem gets a clear error.

Each check names the column, term or option at fault and how to fix it
(:class:`~multilevel.errors.DataError` for the data, :class:`~multilevel.errors.SpecError` for
an argument); the warnings (a varying slope that does not vary within groups, perfect separation
in a logistic model, rows dropped by ``missing='drop'``) let the fit go on. None of them modifies
the caller's DataFrame.

Examples
--------
>>> import pandas as pd
>>> missing_mask(pd.DataFrame({"x": [1.0, float("inf")]}))["x"].tolist()
[False, True]
"""

from __future__ import annotations

import difflib
import warnings

import numpy as np
import pandas as pd
from formulae import model_description

from multilevel.design.statistics import group_cross
from multilevel.design.types import Design, GroupDesign
from multilevel.errors import DataError, SpecError
from multilevel.spec.model import ModelSpec
from multilevel.spec.safety import check_safe
from multilevel.spec.terms import GroupTerm

__all__ = [
    "check_columns", "check_fixed", "check_frame", "check_groups", "check_transforms",
    "design_level1_variance",
    "check_fixed_cross", "handle_missing", "missing_counts", "missing_mask", "missing_verdict",
    "known_se", "predictor_inputs", "rows_text", "used_columns", "warn_flat_slopes", "warn_separation",
    "warn_slopes",
]


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
    if spec.correlation is not None:
        cols += [spec.correlation.time, *spec.correlation.columns]
    return list(dict.fromkeys(cols))

def predictor_inputs(spec: ModelSpec) -> set[str]:
    """The columns the fixed and varying terms read (not the grouping columns as such).

    Examples
    --------
    >>> from multilevel import ModelSpec
    >>> sorted(predictor_inputs(ModelSpec.from_formula("y ~ x*z + (1 + w | g)")))
    ['w', 'x', 'z']
    """
    cols = {c for t in spec.fixed for c in _term_columns(t)}
    return cols | {c for g in spec.groups for t in g.slopes for c in _term_columns(t)}


def check_transforms(frame: pd.DataFrame, spec: ModelSpec) -> None:
    terms = list(spec.fixed) + [t for g in spec.groups for t in g.slopes]
    for term in terms:
        for col in sorted(_numeric_inputs(term)):
            if not pd.api.types.is_numeric_dtype(frame[col]):
                raise DataError(
                    f"The term {term!r} applies a numeric transform to column {col!r}, which is "
                    f"not numeric (dtype {frame[col].dtype}): convert the column to numbers, or "
                    "use it without the transform as a factor."
                )


def check_frame(df: pd.DataFrame) -> None:
    """The shape of the DataFrame itself: flat columns, named by strings.

    Examples
    --------
    >>> df = pd.DataFrame({("y", "mean"): [1.0], ("g", ""): ["a"]})
    >>> check_frame(df)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    multilevel.errors.DataError: The DataFrame has MultiIndex (2-level) columns such as ...
    """
    if isinstance(df.columns, pd.MultiIndex):
        raise DataError(
            f"The DataFrame has MultiIndex ({df.columns.nlevels}-level) columns such as "
            f"{df.columns[0]!r}; a formula names flat columns. Flatten them first, e.g. df.columns "
            "= ['_'.join(map(str, c)).strip('_') for c in df.columns]."
        )
    if len(df.columns) and not any(isinstance(c, str) for c in df.columns):
        raise DataError(
            f"No column of the DataFrame is named by a string (they are "
            f"{', '.join(map(repr, list(df.columns[:5])))}{', ...' if len(df.columns) > 5 else ''}"
            "), and a formula names columns by strings: set df.columns to names, e.g. "
            "df.columns = ['y', 'x', 'g']."
        )


def check_columns(spec: ModelSpec, df: pd.DataFrame) -> list[str]:
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
    rhs = predictor_inputs(spec)
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


def rows_text(k: int) -> str:
    return f"{k} row" if k == 1 else f"{k} rows"


def missing_mask(frame: pd.DataFrame) -> pd.DataFrame:
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
    if spec.correlation is not None and col == spec.correlation.time:
        return f"Time column of {spec.correlation.to_formula()}"
    return "Column"


def handle_missing(
    frame: pd.DataFrame, missing: str, spec: ModelSpec
) -> tuple[pd.DataFrame, int]:
    bad = missing_mask(frame)
    rows = bad.any(axis=1)
    missing_verdict(bad.sum(), len(frame), int(rows.sum()), missing, spec)
    if not rows.any():
        return frame, 0
    return frame.loc[~rows], int(rows.sum())


def missing_counts(frame: pd.DataFrame) -> tuple[pd.Series, int]:
    """NaN/None/inf values per column and the rows with any of them."""
    bad = missing_mask(frame)
    return bad.sum(), int(bad.any(axis=1).sum())


def missing_verdict(per_column: pd.Series, n: int, n_bad_rows: int, missing: str,
                    spec: ModelSpec) -> None:
    """Raise for missing values (or warn that they are dropped, ``missing='drop'``) from their
    counts: ``per_column`` NaN/inf values per used column of ``n`` rows, ``n_bad_rows`` rows
    with any (the same check for a DataFrame and, as a reduction, for a Dask one)."""
    for col, k in per_column.items():
        if k == n:
            raise DataError(
                f"{_role(col, spec)} {col!r} is entirely missing: all {n} values are NaN, None or "
                "infinite. Check how the column was read or merged; a model cannot use it."
            )
    if not n_bad_rows:
        return
    per_col = {c: int(k) for c, k in per_column.items() if k}
    if missing == "drop":
        warnings.warn(
            f"missing='drop': dropped {n_bad_rows} of {n} rows with NaN or inf values "
            f"(by column: {per_col}).",
            UserWarning,
            stacklevel=4,
        )
        if n_bad_rows == n:
            raise DataError(
                f"Every row has a missing value in a used column (by column: {per_col}); "
                "nothing is left to fit."
            )
        return
    (first, count), *others = per_col.items()
    also = "".join(f"; {_role(c, spec).lower()} {c!r} has {k}" for c, k in others)
    raise DataError(
        f"{_role(first, spec)} {first!r} has {count} NaN or infinite values (of {n} rows){also}. "
        f"Fill or remove them, or pass missing='drop' to drop the {rows_text(n_bad_rows)} "
        "concerned (the fit reports how many)."
    )


def check_groups(term: GroupTerm, levels: tuple, n_rows: int, spec: ModelSpec,
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


def warn_slopes(group: GroupDesign, term: GroupTerm, z_terms: tuple[str, ...]) -> None:
    """Warn about a varying slope whose column is constant within every group."""
    lo = np.full((group.n_levels, group.n_terms), np.inf)
    hi = np.full((group.n_levels, group.n_terms), -np.inf)
    np.minimum.at(lo, group.index, group.Z)
    np.maximum.at(hi, group.index, group.Z)
    warn_flat_slopes(lo, hi, group, term, z_terms)


def warn_flat_slopes(lo: np.ndarray, hi: np.ndarray, group: GroupDesign, term: GroupTerm,
                     z_terms: tuple[str, ...]) -> None:
    """:func:`warn_slopes` from each group's smallest and largest ``Z`` values (``(levels,
    terms)``, reduced over the partitions of data larger than memory)."""
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
            stacklevel=5,
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


def warn_separation(design: Design, terms: tuple[str, ...]) -> None:
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


def check_fixed(X: np.ndarray, names: tuple[str, ...], n_params: int) -> None:
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


def check_fixed_cross(xtx: np.ndarray, lo: np.ndarray, hi: np.ndarray, names: tuple[str, ...],
                      n_rows: int, n_params: int) -> None:
    """:func:`check_fixed` from ``X'X`` and each column's range (data larger than memory)."""
    for j, name in enumerate(names):
        if name != "(Intercept)" and hi[j] == lo[j]:
            raise DataError(
                f"Predictor {name!r} is constant ({lo[j]:g} in every row): drop it, its effect "
                "is not identified beside the intercept."
            )
    if n_rows < n_params:
        raise DataError(
            f"{n_rows} rows are fewer than the {n_params} parameters of the model: collect "
            "more data or simplify the model."
        )
    scale = np.sqrt(np.clip(np.diag(xtx), 1e-300, None))
    values, vectors = np.linalg.eigh(xtx / np.outer(scale, scale))
    rank = int(np.sum(values > values.max() * len(names) * np.finfo(float).eps * 1e3))
    if rank < len(names):
        null = np.abs(vectors[:, 0])
        culprits = [names[j] for j in np.argsort(null)[::-1] if null[j] > 1e-6][:4]
        raise DataError(
            f"The fixed-effect columns are perfectly collinear (rank {rank} < {len(names)}): "
            f"{', '.join(culprits)} are linear combinations of each other. Drop one of them."
        )


def known_se(frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray | None:
    if spec.se is None:
        return None
    s = frame[spec.se]
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        raise DataError(f"Standard errors {spec.se!r} must be numeric, got {s.dtype}.")
    se = s.to_numpy(dtype=float)
    bad = int(np.sum(se <= 0))
    if bad:
        raise DataError(
            f"Standard errors {spec.se!r} must be positive; found {rows_text(bad)} with zero or "
            "negative values."
        )
    return se


def design_level1_variance(design: Design, rtol: float = 1e-10) -> None:
    """Raise :class:`DataError` when a Gaussian design's residual variance is zero (see
    :func:`multilevel.course.check_level1_variance`, which also takes a spec and data)."""
    if design.spec.is_logistic or getattr(design, "se", None) is not None:
        return
    y, X = design.y, design.X
    tss = float(np.sum((y - y.mean()) ** 2))
    for g in design.groups:
        W = np.column_stack([y, X])
        ztz = group_cross(g.index, g.n_levels, g.Z, g.Z)
        ztw = group_cross(g.index, g.n_levels, g.Z, W)
        coef = np.linalg.pinv(ztz) @ ztw
        R = W - np.einsum("nq,nqk->nk", g.Z, coef[g.index])
        beta, *_ = np.linalg.lstsq(R[:, 1:], R[:, 0], rcond=None)
        rss = float(np.sum((R[:, 0] - R[:, 1:] @ beta) ** 2))
        if rss <= rtol * tss:
            terms = " + ".join(g.term_names)
            pinned = bool(np.any(g.counts > np.linalg.matrix_rank(ztz)))
            why = (
                "A Gaussian multilevel likelihood is unbounded there (sigma -> 0)"
                if pinned else
                "Every group has no more rows than varying terms, so sigma^2 cannot be told "
                "apart from the group-level covariance"
            )
            raise DataError(
                f"The level-1 residual variance is zero: the fixed effects plus a separate "
                f"{terms} for every group of {g.factor!r} reproduce {design.spec.response!r} "
                f"exactly (residual sum of squares {rss:.3g} of a total {tss:.3g}). {why}: "
                "REML/ML estimates, ICCs and the posterior would be meaningless. These look like "
                "the data of a worked example: use within_between() for its regressions, or "
                "drop a term."
            )
