r"""Serially correlated residuals: the series, their time order, lags and statistics.

With ``ar1(time | group)`` (nlme's ``corAR1``) or ``car1(time | group)`` (``corCAR1``) the
residuals :math:`\epsilon` of one series (a level of ``group``) are correlated,
:math:`\mathrm{cor}(\epsilon_i, \epsilon_k) = \phi^{|t_i - t_k|}`, where for ``ar1`` the times are
first converted to integers as nlme does (truncation: ages 14 and 15.92 are one step apart, 8
and 15.92 seven). Rows are ordered by time within each series here (the user's frame is
untouched); consecutive rows form *pairs* with lag :math:`d`.

The observed part of such a process is Markov, whatever the gaps: with :math:`r = \phi^{d}` for
each consecutive pair, the correlation matrix :math:`R` of one series has a tridiagonal inverse
and

.. math::

    a'R^{-1}b = \sum_i a_i b_i + \sum_{\text{pairs } (i, k)} \Big[\tfrac{r^2}{1 - r^2}
    (a_i b_i + a_k b_k) - \tfrac{r}{1 - r^2}(a_i b_k + a_k b_i)\Big], \qquad
    \log|R| = \sum_{\text{pairs}} \log(1 - r^2).

So every cross-product the marginal likelihood needs (:mod:`multilevel.model.marginal`), of
the stacked rows :math:`v_i = (z_i, x_i, y_i)`, is a fixed combination of sums that do not
depend on :math:`\phi`: per grouping level :math:`S_j = \sum_i v_i v_i'`, and per (level, lag)
*cell* the sums :math:`D = \sum (v_i v_i' + v_k v_k')` and :math:`C = \sum (v_i v_k' + v_k v_i')`
over its pairs (:class:`SerialStats`; only the rows of :math:`z` per level, the :math:`(x, y)`
block per lag). Evaluating the likelihood at a new :math:`\phi` costs O(cells q m), not
O(rows).

Examples
--------
>>> import pandas as pd
>>> from multilevel import ModelSpec
>>> from multilevel.design import build_design
>>> df = pd.DataFrame({"y": [1.0, 2.0, 0.5, 3.0, 2.5, 1.0], "t": [3, 1, 2, 1, 2.5, 4],
...                    "g": list("aaabbb")})
>>> d = build_design(ModelSpec.from_formula("y ~ 1 + (1 | g) + ar1(t | g)"), df)
>>> d.serial.lag.tolist()  # a: 1->2->3; b: 1->2.5->4, i.e. 1->2->4 in integers
[1.0, 1.0, 1.0, 2.0]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from multilevel.design.types import Design, SerialDesign
from multilevel.errors import DataError
from multilevel.spec.model import ModelSpec

__all__ = [
    "SerialDesign",
    "SerialStats",
    "ar_noise",
    "inverse_weighted_cross",
    "lag_power",
    "serial_design",
    "serial_pairs_of",
    "serial_stats",
    "series_pairs",
    "series_times",
]


def serial_design(spec: ModelSpec, frame: pd.DataFrame, series: tuple[np.ndarray, tuple[str, ...]],
                  groups: tuple[np.ndarray, tuple[str, ...]]) -> SerialDesign:
    """The :class:`SerialDesign` of ``spec``'s correlation term over the design's ``frame``;
    ``series`` and ``groups`` are the (index, levels) of the series column(s) and of the
    grouping factor.

    Raises
    ------
    DataError
        A non-numeric time column, two rows of a series at the same (integer, for ``ar1``)
        time, or a series that spans two levels of the grouping factor.

    Warns
    -----
    UserWarning
        ``ar1`` with non-integer times (nlme truncates them; ``car1`` uses real times).
    """
    corr = spec.correlation
    term = corr.to_formula()
    series, levels = series
    group_index_, group_levels = groups
    t = series_times(frame[corr.time], corr.kind, term, warn=True)
    first, second = series_pairs(t, series, levels, corr.kind, term)
    owner = np.full(len(levels), -1)
    owner[series] = group_index_
    if np.any(owner[series] != group_index_):
        bad = int(np.flatnonzero(owner[series] != group_index_)[0])
        raise DataError(
            f"Series {levels[series[bad]]!r} of {term} spans more than one level of the "
            f"grouping factor (e.g. {group_levels[group_index_[bad]]!r}): a series must lie "
            f"within one group. Group the series by the model's grouping factor or by a "
            f"factor nested in it."
        )
    if len(first) == 0:
        raise DataError(
            f"No series of {term} has two rows: the autocorrelation phi has nothing to be "
            "estimated from. Check the grouping column of the term, or drop it."
        )
    return SerialDesign(
        kind=corr.kind, time_column=corr.time, time=t, series=series, series_levels=levels,
        first=first, second=second, lag=t[second] - t[first], pair_group=group_index_[first],
    )


def series_times(raw: pd.Series, kind: str, term: str, *, warn: bool) -> np.ndarray:
    """The times of a correlation term as floats, truncated to integers for ``ar1`` (with a
    warning when that changes a value and ``warn``); a clear error for non-numeric times."""
    if pd.api.types.is_datetime64_any_dtype(raw) or pd.api.types.is_timedelta64_dtype(raw):
        raise DataError(
            f"The time column {raw.name!r} of {term} holds dates or durations: convert them to "
            "a number in the unit of one lag, e.g. days since the first visit, "
            "(df[col] - df[col].min()).dt.days (nanoseconds would make every lag huge)."
        )
    if not pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        raise DataError(
            f"The time column {raw.name!r} of {term} must be numeric, got dtype {raw.dtype}: "
            "convert it, e.g. df[col] = pd.to_numeric(df[col])."
        )
    t = raw.to_numpy(dtype=float)
    if kind != "ar1":
        return t
    frac = t != np.trunc(t)
    if frac.any() and warn:
        warnings.warn(
            f"{term}: {int(frac.sum())} of {len(t)} times in {raw.name!r} are not whole "
            f"numbers (e.g. {t[frac][0]:g}); as nlme's corAR1 does, they are truncated to "
            f"integers ({t[frac][0]:g} -> {np.trunc(t[frac][0]):g}) and the lag is their "
            f"difference. For correlation phi^|t - t'| in real time use "
            f"{term.replace('ar1(', 'car1(', 1)}.",
            UserWarning, stacklevel=5,
        )
    return np.trunc(t)


def series_pairs(t: np.ndarray, series: np.ndarray, levels, kind: str,
                 term: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``(first, second)`` of every consecutive pair in time order within each series;
    an error naming the series when a time repeats."""
    order = np.lexsort((t, series))
    s_sorted, t_sorted = series[order], t[order]
    same = s_sorted[1:] == s_sorted[:-1]
    dup = same & (t_sorted[1:] == t_sorted[:-1])
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        what = "integer time" if kind == "ar1" else "time"
        raise DataError(
            f"Series {levels[s_sorted[k]]!r} of {term} has two rows at {what} "
            f"{t_sorted[k]:g} (rows {int(order[k])} and {int(order[k + 1])} of the data used): "
            "each time may occur once per series. Aggregate the repeats, or give each series "
            "its own level." + (" nlme's corAR1 truncates times to integers; car1() keeps "
                                "them." if kind == "ar1" else "")
        )
    return order[:-1][same], order[1:][same]


def lag_power(phi, lag: np.ndarray) -> np.ndarray:
    """``phi^lag`` for a scalar or array ``phi`` (``(...)``) and lags ``(pairs,)``: ``(...,
    pairs)``; a negative ``phi`` with integer lags keeps its sign for odd lags (numpy's
    compiled twin is :func:`multilevel.engine.kernels.serial.lag_corr`).

    Examples
    --------
    >>> lag_power(np.array([-0.5, 0.5]), np.array([1.0, 2.0])).tolist()
    [[-0.5, 0.25], [0.5, 0.25]]
    """
    phi = np.asarray(phi, dtype=float)[..., None]
    return np.sign(phi) ** lag * np.abs(phi) ** lag


def ar_noise(first: np.ndarray, second: np.ndarray, lag: np.ndarray, phi, z: np.ndarray) -> np.ndarray:
    """Unit-variance AR(1)/CAR(1) noise from standard normal ``z`` ``(..., n)``: along each
    consecutive pair in time order ``e_k = r e_i + sqrt(1 - r^2) z_k``, ``r = phi^lag``
    (``phi`` a scalar or ``(...)``, one per row of ``z``).

    Examples
    --------
    >>> e = ar_noise(np.array([0]), np.array([1]), np.array([2.0]), -0.5,
    ...              np.random.default_rng(0).standard_normal((20000, 2)))
    >>> bool(abs(np.corrcoef(e.T)[0, 1] - 0.25) < 0.03)  # (-0.5)^2, two lags apart
    True
    """
    e = np.array(z, dtype=float, copy=True)
    r = lag_power(phi, lag)  # (..., pairs)
    scale = np.sqrt(1.0 - r**2)
    for p, (i, k) in enumerate(zip(first, second, strict=True)):  # in time order
        e[..., k] = r[..., p] * e[..., i] + scale[..., p] * e[..., k]
    return e


@dataclass(frozen=True, eq=False)
class SerialStats:
    """Sums of the stacked rows ``v = (z, x, y)`` that give every ``R^-1``-weighted
    cross-product at any ``phi`` (module docstring). The marginal likelihood needs the rows of
    ``z`` per grouping level but the ``(x, y)`` block only summed over all levels, so:

    * ``s0z`` ``(G, q, m)``: per level the plain sums ``sum z v'``; ``s0x`` ``(p+1, p+1)``: the
      plain ``(x, y)`` block over all rows;
    * per (level, lag) cell its level, the index of its lag in ``lags`` and the pair sums
      ``dz``, ``cz`` ``(K, q, m)`` (the ``z`` rows of ``D`` and ``C``);
    * per distinct lag its value, number of pairs and the ``(x, y)`` blocks of ``D`` and ``C``
      summed over levels ``(L, p+1, p+1)``.
    """

    kind: str
    s0z: np.ndarray
    s0x: np.ndarray
    cell_group: np.ndarray
    cell_lag_index: np.ndarray
    cell_dz: np.ndarray
    cell_cz: np.ndarray
    lags: np.ndarray
    lag_count: np.ndarray
    lag_dx: np.ndarray
    lag_cx: np.ndarray
    q: int
    p: int
    n_total: float

    def kernel_args(self) -> tuple:
        """The arrays in the compiled kernels' order."""
        return (self.s0z, self.s0x, self.cell_group, self.cell_lag_index, self.cell_dz, self.cell_cz,
                self.lags, self.lag_count, self.lag_dx, self.lag_cx)


def serial_stats(design: Design) -> SerialStats:
    """One pass over the rows and pairs: the :class:`SerialStats` of a design with one grouping
    factor and a correlation term."""
    g, ser = design.groups[0], design.serial
    q = g.n_terms
    v = np.column_stack([g.Z, design.X, design.y])
    z, xy = v[:, :q], v[:, q:]
    s0z = np.zeros((g.n_levels, q, v.shape[1]))
    np.add.at(s0z, g.index, z[:, :, None] * v[:, None, :])
    a, b = v[ser.first], v[ser.second]
    key = np.column_stack([ser.pair_group.astype(float), ser.lag])
    uniq, cell = np.unique(key, axis=0, return_inverse=True)
    cell = cell.ravel()
    dz = np.zeros((uniq.shape[0], q, v.shape[1]))
    cz = np.zeros_like(dz)
    np.add.at(dz, cell, a[:, :q, None] * a[:, None, :] + b[:, :q, None] * b[:, None, :])
    np.add.at(cz, cell, a[:, :q, None] * b[:, None, :] + b[:, :q, None] * a[:, None, :])
    lags, lag_of = np.unique(ser.lag, return_inverse=True)
    ax, bx = a[:, q:], b[:, q:]
    dx = np.zeros((len(lags), xy.shape[1], xy.shape[1]))
    cx = np.zeros_like(dx)
    np.add.at(dx, lag_of, ax[:, :, None] * ax[:, None, :] + bx[:, :, None] * bx[:, None, :])
    np.add.at(cx, lag_of, ax[:, :, None] * bx[:, None, :] + bx[:, :, None] * ax[:, None, :])
    return SerialStats(
        kind=ser.kind, s0z=s0z, s0x=xy.T @ xy, cell_group=uniq[:, 0].astype(np.int64),
        cell_lag_index=np.searchsorted(lags, uniq[:, 1]).astype(np.int64), cell_dz=dz, cell_cz=cz,
        lags=lags.astype(float),
        lag_count=np.bincount(lag_of, minlength=len(lags)).astype(float), lag_dx=dx, lag_cx=cx,
        q=q, p=design.X.shape[1], n_total=float(design.n_obs),
    )


def inverse_weighted_cross(ser: SerialDesign, index: np.ndarray, n_groups: int, a: np.ndarray,
                           b: np.ndarray, phi: np.ndarray | float,
                           pair_index: np.ndarray | None = None) -> np.ndarray:
    """Per group ``a_j' R_j(phi)^-1 b_j`` (module docstring) for one ``phi`` or a vector of
    them: ``(n_groups, a_cols, b_cols)``, or ``(len(phi), n_groups, ...)``. ``index`` gives
    each row's group and ``pair_index`` each pair's (default: the grouping level,
    ``ser.pair_group``; ``ser.series[ser.first]`` with ``index=ser.series`` for series).

    Examples
    --------
    >>> import pandas as pd
    >>> from multilevel import ModelSpec
    >>> from multilevel.design import build_design
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 4.0, 3.0, 1.0, 0.0], "t": [1, 2, 3, 1, 2, 3],
    ...                    "g": list("aaabbb")})
    >>> d = build_design(ModelSpec.from_formula("y ~ 1 + (1 | g) + ar1(t | g)"), df)
    >>> R = 0.5 ** abs(np.subtract.outer([1, 2, 3], [1, 2, 3]))
    >>> one = np.ones((6, 1))
    >>> out = inverse_weighted_cross(d.serial, d.groups[0].index, 2, one, one, 0.5)
    >>> bool(np.allclose(out[:, 0, 0], np.ones(3) @ np.linalg.solve(R, np.ones(3))))
    True
    """
    phis = np.atleast_1d(np.asarray(phi, dtype=float))
    r = lag_power(phis, ser.lag)  # (draws, pairs)
    f, g = r**2 / (1 - r**2), r / (1 - r**2)
    i, k = ser.first, ser.second
    plain = np.zeros((n_groups, a.shape[1], b.shape[1]))
    np.add.at(plain, index, a[:, :, None] * b[:, None, :])
    diag = a[i, :, None] * b[i, None, :] + a[k, :, None] * b[k, None, :]
    cross = a[i, :, None] * b[k, None, :] + a[k, :, None] * b[i, None, :]
    out = np.broadcast_to(plain, (len(phis),) + plain.shape).copy()
    for s in range(len(phis)):
        np.add.at(out[s], ser.pair_group if pair_index is None else pair_index,
                  f[s, :, None, None] * diag - g[s, :, None, None] * cross)
    return out if np.ndim(phi) else out[0]


def serial_pairs_of(design: Design, frame: pd.DataFrame | None) -> tuple[np.ndarray, ...] | None:
    """``(first, second, lag)`` of the rows of ``frame`` (the fitted rows when None) for
    simulating correlated residuals; None when the model has no correlation term or ``frame``
    lacks its time or series columns (its rows are then separate series)."""
    ser = design.serial
    if ser is None:
        return None
    if frame is None:
        return ser.first, ser.second, ser.lag
    corr = design.spec.correlation
    cols = [corr.time, *corr.columns]
    if not set(cols) <= set(frame.columns):
        return None
    t = series_times(frame[corr.time], ser.kind, corr.to_formula(), warn=False)
    if not np.isfinite(t).all():
        raise DataError(f"Column {corr.time!r} of newdata has missing or infinite times: the "
                        "residuals of a series follow its times, so give every row one.")
    keys = frame[list(corr.columns)].astype(str).agg(":".join, axis=1)
    series, levels = pd.factorize(keys)
    first, second = series_pairs(t, series, tuple(levels), ser.kind, corr.to_formula())
    return first, second, t[second] - t[first]
