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
>>> spec, counts, note = collapse_partitioned(
...     ModelSpec.from_formula("y ~ x + (1 | g)", family="bernoulli"), dd.from_pandas(df, 2))
>>> spec.family, int(counts["y_trials"].sum()), int(counts["y"].sum()) == int(df.y.sum())
('binomial', 8, True)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from multilevel.design.checks import missing_mask
from multilevel.design.matrices import _bernoulli
from multilevel.design.partitioned import partition_compute, profile_partitions
from multilevel.errors import DataError
from multilevel.spec.model import ModelSpec

__all__ = ["MAX_PATTERNS", "collapse_partitioned"]

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


def collapse_partitioned(spec: ModelSpec, data: Any, *,
                         missing: str = "error") -> tuple[ModelSpec, pd.DataFrame, str]:
    """A logistic model on a Dask DataFrame or Parquet data set as binomial counts: the
    binomial spec, the in-memory frame of counts (one row per distinct group and covariate
    pattern) and a note for the fit. Raises a :class:`~multilevel.errors.DataError` (which says
    how many rows there are) when there are more than :data:`MAX_PATTERNS` patterns."""
    ddf, source, parts, prof, _ = profile_partitions(spec, data, missing)
    try:
        counts = partition_compute(parts, _patterns, _merge_patterns)
    except DataError as err:
        raise DataError(f"{err} ({source} has {prof.n:,} rows.)") from None
    resp = spec.response
    if spec.family == "bernoulli":
        success = _bernoulli(counts[resp], resp, spec.level_order.get(resp)) * counts[_COUNT]
        trials = counts[_COUNT].astype(float)
    else:
        s = counts[resp].astype(float)
        n = counts[spec.trials].astype(float) if spec.trials else s + counts[spec.failures]
        success, trials = s * counts[_COUNT], n * counts[_COUNT]
    trials_col = next(f"{resp}_trials{k or ''}" for k in range(len(counts.columns) + 1)
                      if f"{resp}_trials{k or ''}" not in counts.columns)
    keep = [c for c in counts.columns if c not in (resp, spec.trials, spec.failures, _COUNT)]
    frame = counts[keep].assign(**{resp: success, trials_col: trials})
    frame = frame.groupby(keep, observed=True, sort=False, dropna=False)[[resp, trials_col]].sum()
    frame = frame.reset_index()
    binomial = replace(spec, family="binomial", trials=trials_col, failures=None, data=None)
    note = (f"The {prof.n - (prof.bad_rows if missing == 'drop' else 0):,} rows of {source} were "
            f"collapsed to {len(frame):,} binomial counts (one per group and covariate pattern): "
            "the same likelihood up to a constant; lme4 on the 0/1 rows reports a log-likelihood "
            "that differs by the sum of log binomial coefficients.")
    return binomial, frame, note
