"""The design: everything the model stages need from the data, as numpy arrays.

The :class:`Design` holds the response ``y`` (and binomial ``trials``), the fixed-effect matrix
``X`` with lme4-style column names, and per grouping factor a :class:`GroupDesign`: an integer
index, the level labels and the matrix ``Z`` of its varying terms (one row per observation, one
column per term: the group effect of row ``i`` is ``Z[i] @ u[index[i]]``). Nothing in here
knows about PyMC. Made by :func:`multilevel.design.build_design`.

Examples
--------
>>> import numpy as np
>>> g = GroupDesign("g", np.array([0, 0, 1]), ("a", "b"), np.ones((3, 1)), ("(Intercept)",),
...                 True, True)
>>> g.n_levels, g.counts.tolist()
(2, [2, 1])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from multilevel.errors import DataError
from multilevel.spec.model import ModelSpec

__all__ = ["Design", "GroupDesign", "RowSummary", "SerialDesign", "require_rows"]


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
    #: Set when the design holds no rows (data larger than memory; ``level_counts``, ``z_sum``
    #: and ``z_cross`` also for rows that are weighted binomial counts), else None: the rows per
    #: level, ``Z'1`` and ``Z'Z`` over all rows, and per level the sum and the sum of squares of
    #: ``y`` (``(levels, 2)``).
    level_counts: np.ndarray | None = None
    z_sum: np.ndarray | None = None
    z_cross: np.ndarray | None = None
    y_sums: np.ndarray | None = None

    @property
    def n_levels(self) -> int:
        """Number of groups."""
        return len(self.levels)

    @property
    def n_terms(self) -> int:
        """Number of varying terms."""
        return len(self.term_names)

    def z_moment(self) -> np.ndarray:
        """``Z'Z / n`` over the rows (from the stored cross-product when there are none)."""
        if self.z_cross is not None:
            return self.z_cross / float(self.level_counts.sum())
        return self.Z.T @ self.Z / self.Z.shape[0]

    @property
    def counts(self) -> np.ndarray:
        """Observations per group, in level order."""
        if self.level_counts is not None:
            return self.level_counts
        return np.bincount(self.index, minlength=self.n_levels)


@dataclass(frozen=True, eq=False)
class SerialDesign:
    """The series of a model with correlated residuals.

    ``time`` is each row's time as used for the lags (truncated to integers for ``ar1``),
    ``series`` its series index (levels ``series_levels``); ``first``/``second`` are the rows
    of each consecutive pair in time order, ``lag`` its time step and ``pair_group`` the
    grouping level both rows belong to.
    """

    kind: str
    time_column: str
    time: np.ndarray
    series: np.ndarray
    series_levels: tuple[str, ...]
    first: np.ndarray
    second: np.ndarray
    lag: np.ndarray
    pair_group: np.ndarray

    def series_sizes(self) -> np.ndarray:
        """Rows per series."""
        return np.bincount(self.series, minlength=len(self.series_levels))


@dataclass(frozen=True, eq=False)
class RowSummary:
    """What stands in for the rows of a design built from data larger than memory
    (:mod:`multilevel.design.partitioned`): the number of rows, the marginal statistics
    (:class:`~multilevel.design.statistics.SufficientStats` or
    :class:`~multilevel.design.statistics.NestedStats`), the sums ``X'1`` and ``1'y``, the
    positions ``(outer, inner)`` of two nested factors, and where the data came from (the
    per-factor sums are on each :class:`GroupDesign`)."""

    n_rows: int
    stats: Any
    x_sum: np.ndarray
    y_sum: float
    nest: tuple[int, int] | None
    source: str
    n_partitions: int


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
    #: The series, time order and lags of a residual correlation term (None without one).
    serial: SerialDesign | None = None
    #: Set when the design was built from statistics of data larger than memory: ``y``, ``X``,
    #: ``frame`` and each ``Z`` then have no rows (see :func:`require_rows`).
    summary: RowSummary | None = None
    #: What the fit should report about how the data were read (e.g. collapsed to counts).
    notes: tuple[str, ...] = ()
    #: For a design without rows: a small frame with every level of every factor and the range
    #: of every numeric column, on which new data are encoded (never a sample of the rows).
    encoding: pd.DataFrame | None = None
    #: For rows collapsed to binomial counts from data larger than memory: how many original
    #: rows each row stands for (frequency weights for moments, ICC and R^2), and the constant
    #: that turns the counts' log-likelihood into that of the original rows.
    row_weights: np.ndarray | None = None
    loglik_offset: float = 0.0

    @property
    def n_rows(self) -> int:
        """Original rows behind the design (``n_obs``, or the rows the counts stand for)."""
        return int(round(self.row_weights.sum())) if self.row_weights is not None else self.n_obs

    @property
    def n_obs(self) -> int:
        """Number of rows used."""
        if self.summary is not None:
            return self.summary.n_rows
        return int(self.y.shape[0])

    @property
    def has_rows(self) -> bool:
        """Whether the rows are in memory (False for a design from Dask/Parquet statistics)."""
        return self.summary is None

    def group(self, factor: str) -> GroupDesign:
        """The :class:`GroupDesign` of one factor."""
        for g in self.groups:
            if g.factor == factor:
                return g
        raise KeyError(factor)


def require_rows(design: Design, what: str) -> None:
    """Raise a :class:`~multilevel.errors.DataError` when ``what`` needs the rows of a design
    that was built from statistics only (data larger than memory).

    Examples
    --------
    >>> import numpy as np
    >>> from multilevel import ModelSpec
    >>> spec = ModelSpec.from_formula("y ~ 1 + (1 | g)")
    >>> d = Design(spec, np.empty(0), np.empty((0, 1)), ("(Intercept)",), (), pd.DataFrame(),
    ...            summary=RowSummary(10**8, None, np.zeros(1), 0.0, None, "'data.parquet'", 100))
    >>> require_rows(d, "PSIS-LOO")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    multilevel.errors.DataError: PSIS-LOO needs the rows in memory, but this fit was made from ...
    """
    if design.summary is None:
        return
    s = design.summary
    raise DataError(
        f"{what} needs the rows in memory, but this fit was made from the statistics of "
        f"{s.n_rows:,} rows of {s.source} ({s.n_partitions} partitions), which were never "
        "collected. Fit a sample that fits in memory as a pandas DataFrame (e.g. "
        "ddf.sample(frac=0.01).compute()) for it."
    )
