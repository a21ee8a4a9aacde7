"""Logistic models on data larger than memory: the rows as binomial counts.

The rows of a Dask DataFrame or Parquet data set are counted per distinct (group, covariate)
pattern in each partition and the counts merged by the tree of
:func:`~multilevel.design.partitioned.partition_compute`, as long as there are at most
:data:`MAX_PATTERNS` patterns (discrete covariates); the counts are an ordinary in-memory
binomial design with the same likelihood up to a constant.

Examples
--------
>>> import numpy as np, pandas as pd, dask.dataframe as dd
>>> from multilevel import ModelSpec
>>> df = pd.DataFrame({"y": [1, 0, 1, 1, 0, 0, 1, 0], "x": [0, 0, 1, 1, 0, 1, 1, 0],
...                    "g": list("aaaabbbb")})
>>> c = collapse_partitioned(
...     ModelSpec.from_formula("y ~ x + (1 | g)", family="bernoulli"), dd.from_pandas(df, 2))
>>> c.spec.family, int(c.frame["y_trials"].sum()), int(c.frame["y"].sum()) == int(df.y.sum())
('binomial', 8, True)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import gammaln

from multilevel.design.checks import missing_mask, rows_text
from multilevel.design.matrices import _bernoulli
from multilevel.design.partitioned import partition_compute, profile_partitions
from multilevel.errors import DataError
from multilevel.spec.model import ModelSpec

__all__ = ["MAX_PATTERNS", "Collapsed", "collapse_partitioned"]

#: Most distinct (group, covariate) patterns a logistic model on Dask is collapsed to.
MAX_PATTERNS = 1_000_000


_COUNT = "__rows__"


def _patterns(part: pd.DataFrame) -> pd.DataFrame:
    kept = part.loc[~missing_mask(part).any(axis=1)]
    return kept.value_counts(dropna=False, sort=False).rename(_COUNT).reset_index()


def _merge_patterns(*ps: pd.DataFrame) -> pd.DataFrame:
    both = pd.concat(ps, ignore_index=True)
    keys = [c for c in both.columns if c != _COUNT]
    out = both.groupby(keys, observed=True, dropna=False, sort=False)[_COUNT].sum().reset_index()
    if len(out) > MAX_PATTERNS:
        raise DataError(
            f"The logistic model's rows do not collapse to binomial counts: they have more than "
            f"{MAX_PATTERNS:,} distinct (group, covariate) patterns, so a covariate is continuous "
            "and the model needs the rows in memory. Fit a pandas DataFrame (ddf.compute(), or a "
            "sample), or round/bin the continuous covariate."
        )
    return out


@dataclass(frozen=True)
class Collapsed:
    """A logistic model's rows as binomial counts: the binomial ``spec`` (trials column
    ``trials``), the in-memory ``frame`` of counts, the number of original ``rows`` behind each
    count, ``loglik_offset`` (what turns the counts' binomial log-likelihood into that of the
    original rows: the difference of the log binomial coefficients), the rows dropped for
    missing values and a ``note`` for the fit."""

    spec: ModelSpec
    frame: pd.DataFrame
    rows: np.ndarray
    loglik_offset: float
    dropped: int
    note: str


def _log_choose(n: pd.Series, k: pd.Series) -> np.ndarray:
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def collapse_partitioned(spec: ModelSpec, data: Any, *, missing: str = "error") -> Collapsed:
    """A logistic model on a Dask DataFrame or Parquet data set as binomial counts (one per
    distinct group and covariate pattern; :class:`Collapsed`). Raises a
    :class:`~multilevel.errors.DataError` (which says how many rows there are) when there are
    more than :data:`MAX_PATTERNS` patterns, and for successes above the trials in any row."""
    ddf, source, parts, prof, _ = profile_partitions(spec, data, missing)
    try:
        counts = partition_compute(parts, _patterns, _merge_patterns)
    except DataError as err:
        raise DataError(f"{err} ({source} has {prof.n:,} rows.)") from None
    resp, rows = spec.response, counts[_COUNT].astype(float)
    if spec.family == "bernoulli":
        success = _bernoulli(counts[resp], resp, spec.level_order.get(resp)) * rows
        trials, original = rows, 0.0
    else:
        s = counts[resp].astype(float)
        n = counts[spec.trials].astype(float) if spec.trials else s + counts[spec.failures]
        bad = int(rows[(s > n) | (s < 0) | (n < 0)].sum())
        if bad:  # checked per row pattern, before counts of different rows are added up
            raise DataError(
                f"Successes {resp!r} exceed the trials {spec.trials or 'successes + failures'!r} "
                f"(or are negative) in {rows_text(bad)}: check that the trials column counts all "
                "trials (cbind(s, n - s) reads n as the trials)."
            )
        success, trials = s * rows, n * rows
        original = float(np.sum(rows * _log_choose(n, s)))
    trials_col = next(f"{resp}_trials{k or ''}" for k in range(len(counts.columns) + 1)
                      if f"{resp}_trials{k or ''}" not in counts.columns)
    keep = [c for c in counts.columns if c not in (resp, spec.trials, spec.failures, _COUNT)]
    frame = counts[keep].assign(**{resp: success, trials_col: trials, _COUNT: rows})
    frame = frame.groupby(keep, observed=True, sort=False, dropna=False)[[resp, trials_col, _COUNT]]
    frame = frame.sum().reset_index()
    binomial = replace(spec, family="binomial", trials=trials_col, failures=None, data=None)
    offset = original - float(np.sum(_log_choose(frame[trials_col], frame[resp])))
    dropped = prof.bad_rows if missing == "drop" else 0
    note = (f"The {prof.n - dropped:,} rows of {source} were collapsed to {len(frame):,} binomial "
            f"counts (one per group and covariate pattern) and fitted as family='binomial' with "
            f"trials {trials_col!r} (for posterior_predict on new rows, give {trials_col}=1 for "
            "a 0/1 outcome). Log-likelihoods, AIC and BIC are those of the original rows; "
            "ICCs, R^2 and the default priors weight each count by its rows.")
    return Collapsed(binomial, frame.drop(columns=_COUNT), frame[_COUNT].to_numpy(float), offset,
                     dropped, note)
