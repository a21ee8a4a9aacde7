r"""Designs from data larger than memory: a Dask DataFrame, or a Parquet file, directory or glob.

The marginal Gaussian models need only per-group sufficient statistics, and those are sums over
rows: a map-reduce, which Dask runs (on its local scheduler, or on the cluster of an active
``distributed.Client``, since :func:`dask.compute` uses it). :func:`build_partitioned_design`
makes two passes over the partitions, each a plain pandas DataFrame inside a Dask task:

1. **profile**: rows, NaN/inf counts per used column, the distinct values of every
   non-numeric predictor, the range of every numeric column and the distinct combinations of
   the grouping columns. From it come the checks of :func:`~multilevel.design.build_design`
   with the same messages, the factor levels and their order, and the nesting of two factors;
2. **statistics**: each partition's model matrices (formulae, with the settled levels, so
   every partition has the same columns) and its
   :class:`~multilevel.design.statistics.SufficientStats` or
   :class:`~multilevel.design.statistics.NestedStats`, dense over all groups (a group may span
   many partitions), plus the column sums and ranges the checks need.

Both are combined by a tree of :data:`FAN_IN`-way merges; nothing but these summaries reaches
the client. The :class:`~multilevel.design.Design` that results holds no rows
(:attr:`~multilevel.design.Design.summary`); whatever needs rows says so
(:func:`~multilevel.design.types.require_rows`).

Logistic models are collapsed instead
(:func:`multilevel.design.collapse.collapse_partitioned`): the rows become binomial counts per
distinct (group, covariate) pattern, counted per partition and merged by the same tree.

Examples
--------
>>> import numpy as np, pandas as pd, dask.dataframe as dd
>>> from multilevel import ModelSpec
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"g": np.repeat(np.arange(20), 10), "x": rng.normal(size=200)})
>>> df["y"] = df.x + rng.normal(size=20)[df.g] + rng.normal(size=200)
>>> d = build_partitioned_design(ModelSpec.from_formula("y ~ x + (1 | g)"),
...                              dd.from_pandas(df, npartitions=4))
>>> d.n_obs, d.has_rows, d.groups[0].n_levels, d.summary.n_partitions
(200, False, 20, 4)
>>> from multilevel.design import build_design
>>> full = build_design(ModelSpec.from_formula("y ~ x + (1 | g)"), df)
>>> from multilevel.design.statistics import sufficient_stats
>>> bool(np.allclose(d.summary.stats.ztx, sufficient_stats(full).ztx))
True
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multilevel.design.checks import (
    check_columns,
    check_fixed_cross,
    check_groups,
    check_transforms,
    missing_mask,
    missing_verdict,
    used_columns,
    warn_flat_slopes,
)
from multilevel.design.frame import group_index, order_levels
from multilevel.design.matrices import model_matrix, response_arrays
from multilevel.design.statistics import (
    group_range,
    merge_stats,
    nested_stats_of_rows,
    nesting_of,
    parent_levels,
    stats_of_rows,
)
from multilevel.design.types import Design, GroupDesign, RowSummary
from multilevel.errors import DataError, SpecError
from multilevel.spec.contextual import BETWEEN_SUFFIX, WITHIN_SUFFIX
from multilevel.spec.model import ModelSpec

__all__ = [
    "FAN_IN",
    "build_partitioned_design",

    "open_partitioned",
    "partition_compute",
    "profile_partitions",
]

#: Partial results merged per node of the reduction tree.
FAN_IN = 8
_STATEFUL = re.compile(r"\b(scale|center)\s*\(")


def open_partitioned(data: Any, spec: ModelSpec) -> tuple[Any, str]:
    """The Dask DataFrame of the columns ``spec`` uses, and a name for messages. Columns are
    checked (:func:`~multilevel.design.checks.check_columns`) before anything is read."""
    import dask.dataframe as dd

    if not isinstance(data, (str, os.PathLike)):
        _check_contextual(spec, data.columns)
        return data[check_columns(spec, data)], "a Dask DataFrame"
    path = str(data)
    if not any(c in path for c in "*?[") and not Path(path).exists():
        raise DataError(f"Parquet data set {path!r} does not exist: give a .parquet file, a "
                        "directory of them, or a glob such as 'data/*.parquet'.")
    try:
        ddf = dd.read_parquet(path)
    except Exception as err:  # pyarrow's errors for a file that is not Parquet, an empty glob
        raise DataError(f"Cannot read {path!r} as a Parquet data set: {err}") from None
    _check_contextual(spec, ddf.columns)
    return dd.read_parquet(path, columns=check_columns(spec, ddf)), repr(path)


def _check_contextual(spec: ModelSpec, columns: pd.Index) -> None:
    """Group-mean columns (``contextual=``) are not computed on Dask data: say how to add them."""
    for col in used_columns(spec):
        if col in columns:
            continue
        for suffix in (BETWEEN_SUFFIX, WITHIN_SUFFIX):
            if col.endswith(suffix) and col[: -len(suffix)] in columns:
                g = spec.groups[0].columns[0]
                raise DataError(
                    f"Column {col!r} (a contextual group-mean column) is not in the Dask data, and "
                    "it is not computed from partitions. Add it first, e.g. means = "
                    f"ddf.groupby({g!r})[{col[: -len(suffix)]!r}].mean(), merged back on {g!r}."
                )


def _tree(items: list, merge) -> Any:
    """Merge delayed partial results ``FAN_IN`` at a time, up to one."""
    import dask

    if not items:
        raise DataError("The Dask DataFrame has no partitions: there is nothing to fit.")
    while len(items) > 1:
        items = [dask.delayed(merge)(*items[i:i + FAN_IN]) for i in range(0, len(items), FAN_IN)]
    return items[0]


def partition_compute(items: list, per_part, merge, *args: Any) -> Any:
    """Run ``per_part(partition, *args)`` on every delayed partition and merge the results by
    a tree; only the merged result reaches the client."""
    import dask

    return dask.compute(_tree([dask.delayed(per_part)(p, *args) for p in items], merge))[0]


# -- pass 1: the profile ---------------------------------------------------------------------

@dataclass
class _Profile:
    n: int
    bad: pd.Series
    bad_rows: int
    values: dict[str, pd.Series]
    lo: dict[str, Any]
    hi: dict[str, Any]
    combos: pd.DataFrame


def _is_number(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not isinstance(s.dtype, pd.CategoricalDtype)


def _profile(part: pd.DataFrame, factor_cols: list[str]) -> _Profile:
    bad = missing_mask(part)
    rows = bad.any(axis=1)
    kept = part.loc[~rows]
    numeric = [c for c in part.columns if _is_number(part[c]) and c not in factor_cols]
    return _Profile(
        n=len(part), bad=bad.sum(), bad_rows=int(rows.sum()),
        values={c: kept[c].drop_duplicates() for c in part.columns
                if c not in numeric and c not in factor_cols},
        lo={c: kept[c].min() for c in numeric if len(kept)},
        hi={c: kept[c].max() for c in numeric if len(kept)},
        combos=kept[factor_cols].drop_duplicates(),
    )


def _merge_profiles(*ps: _Profile) -> _Profile:
    first = ps[0]
    return _Profile(
        n=sum(p.n for p in ps), bad=sum((p.bad for p in ps[1:]), first.bad),
        bad_rows=sum(p.bad_rows for p in ps),
        values={c: pd.concat([p.values[c] for p in ps]).drop_duplicates() for c in first.values},
        lo={c: min(p.lo[c] for p in ps if c in p.lo) for c in set().union(*(p.lo for p in ps))},
        hi={c: max(p.hi[c] for p in ps if c in p.hi) for c in set().union(*(p.hi for p in ps))},
        combos=pd.concat([p.combos for p in ps]).drop_duplicates(),
    )


def _skeleton(meta: pd.DataFrame, prof: _Profile, factor_cols: list[str]) -> pd.DataFrame:
    """A small frame with every distinct value of the non-numeric columns, the range of the
    numeric ones and the factor combinations: the frame the level order is settled on."""
    cols: dict[str, pd.Series] = {}
    for c in meta.columns:
        if c in prof.values:
            cols[c] = prof.values[c].reset_index(drop=True)
        elif c in factor_cols:
            cols[c] = prof.combos[c].reset_index(drop=True)
        else:
            cols[c] = pd.Series([prof.lo.get(c), prof.hi.get(c)], dtype=meta[c].dtype)
    size = max(len(s) for s in cols.values())
    return pd.DataFrame({c: s.iloc[np.resize(np.arange(len(s)), size)].to_numpy() if len(s) else
                         s.reindex(range(size)).to_numpy() for c, s in cols.items()})


# -- pass 2: the statistics ------------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    """What every partition needs to build its arrays the same way."""

    spec: ModelSpec
    missing: str
    dtypes: dict[str, Any]
    rhs: str
    z_rhs: tuple[str, ...]
    names: tuple[str, ...]
    keys: tuple[tuple[list[str], pd.Index, np.ndarray], ...]
    n_levels: tuple[int, ...]
    nest: tuple[int, int] | None
    parent: np.ndarray | None


@dataclass
class _Chunk:
    stats: Any
    n: int
    x_sum: np.ndarray
    x_lo: np.ndarray
    x_hi: np.ndarray
    z_lo: tuple[np.ndarray, ...]
    z_hi: tuple[np.ndarray, ...]
    ztz: tuple[np.ndarray, ...]
    counts: tuple[np.ndarray, ...]
    y_sum: float
    z_sum: tuple[np.ndarray, ...]
    y_sums: tuple[np.ndarray, ...]


def _encode(frame: pd.DataFrame, dtypes: dict[str, Any]) -> pd.DataFrame:
    frame = frame.copy()
    for col, dtype in dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            values = frame[col].astype(str) if isinstance(dtype.categories[0], str) else frame[col]
            frame[col] = pd.Categorical(values, dtype=dtype)
        else:
            frame[col] = frame[col].astype(dtype)
    return frame


def _level_index(frame: pd.DataFrame, cols: list[str], keys: pd.Index, level: np.ndarray) -> np.ndarray:
    found = keys.get_indexer(pd.MultiIndex.from_frame(frame[cols]) if len(cols) > 1 else frame[cols[0]])
    if np.any(found < 0):  # cannot happen with the levels of pass 1; never map it to a level
        raise DataError(f"A partition has values of {cols} that the first pass did not see: the "
                        "data changed between the passes (re-run the fit on fixed data).")
    return level[found]


def _partition_stats(part: pd.DataFrame, plan: _Plan) -> _Chunk | None:
    frame = part.loc[~missing_mask(part).any(axis=1)] if plan.missing == "drop" else part
    if frame.empty:
        return None
    frame = _encode(frame.reset_index(drop=True), plan.dtypes)
    y = frame[plan.spec.response].to_numpy(dtype=float)
    X, names, _ = model_matrix(plan.rhs, frame, "fixed-effect matrix")
    if names != plan.names:  # cannot happen with settled levels; guards against a silent mix-up
        raise DataError(f"A partition gave fixed-effect columns {names}, not {plan.names}.")
    idx = [_level_index(frame, *k) for k in plan.keys]
    Z = [model_matrix(r, frame, "varying terms")[0] for r in plan.z_rhs]
    if plan.nest is None:
        stats = stats_of_rows(idx[0], plan.n_levels[0], Z[0], X, y)
    else:
        o, i = plan.nest
        stats = nested_stats_of_rows(X, y, idx[o], Z[o], idx[i], Z[i], plan.parent, plan.n_levels[o])
    z_lo, z_hi = [], []
    for k, z, n in zip(idx, Z, plan.n_levels, strict=True):
        lo, hi = group_range(k, n, z)
        z_lo.append(lo)
        z_hi.append(hi)
    return _Chunk(stats, len(y), X.sum(axis=0), X.min(axis=0), X.max(axis=0), tuple(z_lo),
                  tuple(z_hi), tuple(z.T @ z for z in Z),
                  tuple(np.bincount(k, minlength=n) for k, n in zip(idx, plan.n_levels, strict=True)),
                  float(y.sum()), tuple(z.sum(axis=0) for z in Z),
                  tuple(np.column_stack([np.bincount(k, y, n), np.bincount(k, y * y, n)])
                        for k, n in zip(idx, plan.n_levels, strict=True)))


def _merge_chunks(*cs: _Chunk | None) -> _Chunk | None:
    cs = [c for c in cs if c is not None]
    if not cs:
        return None
    out = cs[0]
    for c in cs[1:]:
        out = _Chunk(
            merge_stats(out.stats, c.stats), out.n + c.n, out.x_sum + c.x_sum,
            np.minimum(out.x_lo, c.x_lo), np.maximum(out.x_hi, c.x_hi),
            tuple(np.minimum(a, b) for a, b in zip(out.z_lo, c.z_lo, strict=True)),
            tuple(np.maximum(a, b) for a, b in zip(out.z_hi, c.z_hi, strict=True)),
            tuple(a + b for a, b in zip(out.ztz, c.ztz, strict=True)),
            tuple(a + b for a, b in zip(out.counts, c.counts, strict=True)),
            out.y_sum + c.y_sum, tuple(a + b for a, b in zip(out.z_sum, c.z_sum, strict=True)),
            tuple(a + b for a, b in zip(out.y_sums, c.y_sums, strict=True)),
        )
    return out


# -- the design --------------------------------------------------------------------------------

def _check_spec(spec: ModelSpec) -> None:
    why = None
    if spec.correlation is not None:
        why = (f"{spec.correlation.to_formula()} needs each series' rows in time order, which "
               "the statistics of a partitioned data set do not keep")
    elif spec.se is not None:
        why = "a meta-analysis with known standard errors has one row per study"
    if why:
        raise SpecError(f"This model cannot be fitted from a Dask DataFrame or Parquet data: {why}. "
                        "Load the data as a pandas DataFrame (ddf.compute()).")
    terms = list(spec.fixed) + [t for g in spec.groups for t in g.slopes]
    for term in terms:
        if _STATEFUL.search(term):
            raise SpecError(
                f"The term {term!r} scales or centers a column by its own mean and sd, which each "
                "partition of a Dask DataFrame would compute differently. Compute the column "
                "first, e.g. ddf['x_c'] = ddf.x - ddf.x.mean(), and use it in the formula."
            )


def profile_partitions(spec: ModelSpec, data: Any, missing: str):
    """Checks, then pass 1 (the profile): ``(ddf, source, delayed partitions, profile, factor
    columns)``."""
    if missing not in ("error", "drop"):
        raise SpecError(f"missing={missing!r} is not an option: use 'error' or 'drop'.")
    _check_spec(spec)
    ddf, source = open_partitioned(data, spec)
    factor_cols = list(dict.fromkeys(c for g in spec.groups for c in g.columns))
    parts = ddf.to_delayed()
    prof = partition_compute(parts, _profile, _merge_profiles, factor_cols)
    if prof.n == 0:
        raise DataError(f"{source} has no rows: there is nothing to fit.")
    missing_verdict(prof.bad, prof.n, prof.bad_rows, missing, spec)
    return ddf, source, parts, prof, factor_cols


def build_partitioned_design(spec: ModelSpec, data: Any, *, missing: str = "error") -> Design:
    """The :class:`~multilevel.design.Design` of a Gaussian model (one grouping factor or two
    nested ones) from a Dask DataFrame or a Parquet data set, without collecting its rows
    (module docstring). ``missing`` is as for :func:`~multilevel.design.build_design`."""
    if spec.is_logistic:
        raise SpecError("Logistic models on Dask data are collapsed to binomial counts first: "
                        "use multilevel.design.collapse.collapse_partitioned (build_design does).")
    ddf, source, parts, prof, factor_cols = profile_partitions(spec, data, missing)
    meta = ddf._meta
    skel = _skeleton(meta, prof, factor_cols)
    skip = {spec.response} | set(factor_cols)
    enc = order_levels(skel.copy(), spec, skip)
    check_transforms(enc, spec)
    response_arrays(enc, spec)  # numeric, not constant: the same messages as in memory
    dtypes = {c: enc[c].dtype for c in enc.columns if c not in skip and enc[c].dtype != skel[c].dtype}
    rhs = " + ".join(["1" if spec.intercept else "0", *spec.fixed])
    _, names, x_terms = model_matrix(rhs, enc, "fixed-effect matrix")
    n_rows = prof.n - (prof.bad_rows if missing == "drop" else 0)
    keys, groups, z_rhs, z_names = [], [], [], []
    combos = prof.combos.reset_index(drop=True)
    for term in spec.groups:
        cols = list(term.columns)
        distinct = combos[cols].drop_duplicates().reset_index(drop=True)
        level, levels = group_index(distinct, term, spec.level_order)
        check_groups(term, levels, n_rows, spec, None)
        index = pd.MultiIndex.from_frame(distinct) if len(cols) > 1 else pd.Index(distinct[cols[0]])
        keys.append((cols, index, level))
        z_rhs.append(" + ".join(["1" if term.intercept else "0", *term.slopes]))
        _, zn, zt = model_matrix(z_rhs[-1], enc, f"varying terms of {term.factor!r}")
        z_names.append((zn, zt))
        # each distinct combination as a "row": nesting depends only on which occur
        groups.append(GroupDesign(term.factor, _level_index(combos, *keys[-1]), levels,
                                  np.empty((0, len(zn))), zn, term.correlated, term.intercept))
    nest = nesting_of(tuple(groups)) if len(groups) == 2 else None
    if len(groups) > 1 and nest is None:
        raise SpecError("Crossed grouping factors (or more than two) need the rows in memory: "
                        f"{source} has {n_rows:,} rows. Fit a pandas DataFrame, or a model with "
                        "one grouping factor or two nested ones.")
    parent = None if nest is None else parent_levels(groups[nest[1]], groups[nest[0]])
    plan = _Plan(spec, missing, dtypes, rhs, tuple(z_rhs), names, tuple(keys),
                 tuple(g.n_levels for g in groups), nest, parent)
    chunk = partition_compute(parts, _partition_stats, _merge_chunks, plan)
    n_params = len(names) + sum(len(zn) for zn, _ in z_names) + 1
    check_fixed_cross(chunk.stats.xtx, chunk.x_lo, chunk.x_hi, names, chunk.n, n_params)
    groups = [replace(g, index=np.empty(0, np.int64), level_counts=c, z_sum=zs, z_cross=zz, y_sums=ys)
              for g, c, zs, zz, ys in zip(groups, chunk.counts, chunk.z_sum, chunk.ztz, chunk.y_sums,
                                          strict=True)]
    for g, term, (_, zt), lo, hi in zip(groups, spec.groups, z_names, chunk.z_lo, chunk.z_hi, strict=True):
        warn_flat_slopes(lo, hi, g, term, zt)
    summary = RowSummary(chunk.n, chunk.stats, chunk.x_sum, chunk.y_sum, nest, source, len(parts))
    encoding = _encode(skel, dtypes)
    note = (f"Fitted from the sufficient statistics of {chunk.n:,} rows of {source} "
            f"({len(parts)} partitions), never collected: PSIS-LOO, the posterior predictive "
            "check, predictions for the fitted rows and profile/bootstrap intervals need the rows "
            "(the tables show Wald intervals).")
    return Design(spec, np.empty(0), np.empty((0, len(names))), names, tuple(groups),
                  encoding.iloc[:0], None, prof.n - chunk.n, None, None, summary,
                  notes=(note,), encoding=encoding)
