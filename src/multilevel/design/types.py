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

import numpy as np
import pandas as pd

from multilevel.spec.model import ModelSpec

__all__ = ["Design", "GroupDesign", "SerialDesign"]


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
