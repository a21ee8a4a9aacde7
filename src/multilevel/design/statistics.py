r"""Statistics of the design computed once and shared by every later stage.

* :func:`group_cross`: per-group cross-products ``sum_{i in j} a_i b_i'``, the one O(rows) kernel
  behind everything here;
* :class:`SufficientStats` (one grouping factor) and :class:`NestedStats` (two nested ones):
  what the marginal Gaussian likelihood needs (per group ``Z'Z``, ``Z'X``, ``Z'y`` and the
  global ``X'X``, ``X'y``, ``y'y``); sums over rows, so chunks merge with :func:`merge_stats`;
  :func:`marginal_statistics` picks the right one for a design;
* :func:`nesting`: which of two grouping factors is nested in the other;
* :func:`complete_pooling`, :func:`group_ols`, :func:`group_logistic`: the regressions that
  ignore the groups, or fit each group alone;
* :func:`typical_within_variance`: the typical within-study variance of a meta-analysis.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from multilevel import ModelSpec
>>> from multilevel.design import build_design
>>> df = pd.DataFrame({"y": np.arange(12.0) % 5, "school": list("aaaabbbbcccc"),
...                    "klass": list("xxyyxxyyxxyy")})
>>> d = build_design(ModelSpec.from_formula("y ~ 1 + (1 | school/klass)"), df)
>>> outer, inner = nesting(d)
>>> d.groups[outer].factor, d.groups[inner].factor
('school', 'school:klass')
>>> nested_stats(d).cell_start.tolist()  # two classes in each of three schools
[0, 2, 4, 6]
>>> group_ols(np.ones((4, 1)), np.array([0, 0, 1, 1]), np.array([1.0, 3.0, 5.0, 7.0]), 2).ravel().tolist()
[2.0, 6.0]
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numba
import numpy as np
from scipy.special import expit

from multilevel.design.serial import SerialStats, serial_stats
from multilevel.design.types import Design, GroupDesign

__all__ = [
    "Moments",
    "NestedStats",
    "SufficientStats",
    "complete_pooling",
    "group_cross",
    "group_logistic",
    "group_range",
    "group_ols",
    "marginal_statistics",
    "fitted_variance",
    "merge_stats",
    "moments",
    "cell_layout",
    "nested_stats",
    "nested_stats_of_rows",
    "nesting",
    "nesting_of",
    "parent_levels",
    "solve_groups",
    "stats_of_rows",
    "sufficient_stats",
    "typical_within_variance",
]


def group_cross(index: np.ndarray, n_groups: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n_groups, a_cols, b_cols)``: ``out[j] = sum over rows i of group j of a_i b_i'``.

    Examples
    --------
    >>> group_cross(np.array([0, 0, 1]), 2, np.ones((3, 1)), np.array([[1.0], [2.0], [5.0]])).ravel().tolist()
    [3.0, 5.0]
    """
    out = np.zeros((n_groups, a.shape[1], b.shape[1]))
    _add_cross(np.asarray(index, dtype=np.int64), np.asarray(a, dtype=float),
               np.asarray(b, dtype=float), out)
    return out


@numba.njit(cache=True, nogil=True)
def _add_cross(index: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out[index[i]] += a[i] b[i]'`` row by row, in row order (as ``np.add.at``); releases
    the GIL, so Dask's threads run partitions in parallel."""
    for i in range(index.shape[0]):
        j = index[i]
        for r in range(a.shape[1]):
            ar = a[i, r]
            for c in range(b.shape[1]):
                out[j, r, c] += ar * b[i, c]


@numba.njit(cache=True, nogil=True)
def group_range(index: np.ndarray, n_groups: int, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group the smallest and largest value of each column of ``a`` (``inf``/``-inf`` for
    a group without rows).

    Examples
    --------
    >>> lo, hi = group_range(np.array([0, 0, 1]), 2, np.array([[1.0], [3.0], [2.0]]))
    >>> lo.ravel().tolist(), hi.ravel().tolist()
    ([1.0, 2.0], [3.0, 2.0])
    """
    lo = np.full((n_groups, a.shape[1]), np.inf)
    hi = np.full((n_groups, a.shape[1]), -np.inf)
    for i in range(index.shape[0]):
        j = index[i]
        for r in range(a.shape[1]):
            v = a[i, r]
            if v < lo[j, r]:
                lo[j, r] = v
            if v > hi[j, r]:
                hi[j, r] = v
    return lo, hi


@dataclass(frozen=True)
class SufficientStats:
    """Per-group and global sums that determine the marginal Gaussian likelihood."""

    n: np.ndarray  # (G,)
    ztz: np.ndarray  # (G, q, q)
    ztx: np.ndarray  # (G, q, p)
    zty: np.ndarray  # (G, q)
    xtx: np.ndarray  # (p, p)
    xty: np.ndarray  # (p,)
    yty: float

    @property
    def n_total(self) -> float:
        """Number of rows."""
        return float(self.n.sum())


def sufficient_stats(design: Design) -> SufficientStats:
    """One pass over the rows: the sums the marginal likelihood of one factor needs."""
    g = design.groups[0]
    return stats_of_rows(g.index, g.n_levels, g.Z, design.X, design.y)


def stats_of_rows(index: np.ndarray, n_groups: int, Z: np.ndarray, X: np.ndarray,
                  y: np.ndarray) -> SufficientStats:
    """:class:`SufficientStats` of rows given as arrays (one chunk of a larger data set, or all
    of it); ``index`` holds each row's group in ``range(n_groups)``."""
    return SufficientStats(
        n=np.bincount(index, minlength=n_groups).astype(float),
        ztz=group_cross(index, n_groups, Z, Z),
        ztx=group_cross(index, n_groups, Z, X),
        zty=group_cross(index, n_groups, Z, y[:, None])[:, :, 0],
        xtx=X.T @ X, xty=X.T @ y, yty=float(y @ y),
    )


def merge_stats(a: SufficientStats | NestedStats, b: SufficientStats | NestedStats):
    """Statistics of two chunks of rows with the same groups (an associative sum; the cell
    layout of :class:`NestedStats` is the same in both)."""
    if isinstance(a, NestedStats):
        return NestedStats(*(
            getattr(a, f.name) if f.name in _LAYOUT else getattr(a, f.name) + getattr(b, f.name)
            for f in fields(NestedStats)
        ))
    return SufficientStats(*(getattr(a, f.name) + getattr(b, f.name) for f in fields(SufficientStats)))


@dataclass(frozen=True)
class NestedStats:
    """Sufficient statistics of two nested factors; cells (inner levels) sorted by outer group,
    ``cell_start[j]:cell_start[j+1]`` the cells of outer group ``j``, ``cell_level[k]`` the
    inner level of cell ``k``."""

    g1: np.ndarray  # (J, q1, q1)  Z1'Z1
    z1x: np.ndarray  # (J, q1, p)
    z1y: np.ndarray  # (J, q1)
    a2: np.ndarray  # (K, q2, q2)  Z2'Z2
    c12: np.ndarray  # (K, q1, q2)  Z1'Z2
    z2x: np.ndarray  # (K, q2, p)
    z2y: np.ndarray  # (K, q2)
    cell_start: np.ndarray  # (J + 1,)
    cell_level: np.ndarray  # (K,)
    xtx: np.ndarray
    xty: np.ndarray
    yty: float
    n_total: float

    @property
    def cell_parent(self) -> np.ndarray:
        """The outer group of every cell."""
        return np.repeat(np.arange(len(self.cell_start) - 1), np.diff(self.cell_start))

    @property
    def level_cell(self) -> np.ndarray:
        """The cell of every inner level (the inverse of ``cell_level``)."""
        out = np.empty_like(self.cell_level)
        out[self.cell_level] = np.arange(len(self.cell_level))
        return out

    def kernel_args(self) -> tuple:
        """The statistics in the order of :func:`multilevel.engine.kernels.nested.nested_loglik_grad`."""
        return (self.g1, self.z1x, self.z1y, self.a2, self.c12, self.z2x, self.z2y,
                self.cell_start, self.xtx, self.xty, self.yty, self.n_total)


#: Fields of :class:`NestedStats` that describe the cells rather than sum over rows.
_LAYOUT = ("cell_start", "cell_level")


def parent_levels(inner: GroupDesign, outer: GroupDesign) -> np.ndarray | None:
    """Outer level of every inner level when ``inner`` is nested in ``outer``, else None."""
    parent = np.full(inner.n_levels, -1)
    parent[inner.index] = outer.index
    if np.any(parent < 0) or np.any(parent[inner.index] != outer.index):
        return None
    return parent


def nesting(design: Design) -> tuple[int, int] | None:
    """Positions ``(outer, inner)`` in ``design.groups`` when there are exactly two grouping
    factors and one is nested in the other (each of its levels inside one level of the other,
    with more levels); None otherwise."""
    if design.summary is not None:  # settled from the distinct factor combinations
        return design.summary.nest
    return nesting_of(design.groups)


def nesting_of(groups: tuple[GroupDesign, ...]) -> tuple[int, int] | None:
    """:func:`nesting` of the index arrays of ``groups`` (rows, or distinct combinations of the
    factor columns: nesting depends only on which combinations occur)."""
    if len(groups) != 2:
        return None
    a, b = groups
    for outer, inner, pos in ((a, b, (0, 1)), (b, a, (1, 0))):
        if inner.n_levels > outer.n_levels and parent_levels(inner, outer) is not None:
            return pos
    return None


def cell_layout(parent: np.ndarray, n_outer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells sorted by outer group: ``(cell of each inner level, cell_start, cell_level)``."""
    order = np.argsort(parent, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    start = np.r_[0, np.cumsum(np.bincount(parent, minlength=n_outer))].astype(np.int64)
    return rank, start, order.astype(np.int64)


def nested_stats(design: Design) -> NestedStats:
    """One pass over the rows: per outer group and per cell sums (see :class:`NestedStats`)."""
    pos = nesting(design)
    if pos is None:
        raise ValueError("the design has no two nested grouping factors")
    outer, inner = design.groups[pos[0]], design.groups[pos[1]]
    parent = parent_levels(inner, outer)
    return nested_stats_of_rows(design.X, design.y, outer.index, outer.Z, inner.index, inner.Z,
                                parent, outer.n_levels)


def nested_stats_of_rows(X: np.ndarray, y: np.ndarray, outer_index: np.ndarray, z1: np.ndarray,
                         inner_index: np.ndarray, z2: np.ndarray, parent: np.ndarray,
                         n_outer: int) -> NestedStats:
    """:class:`NestedStats` of rows given as arrays; ``parent[k]`` is the outer level of inner
    level ``k`` (the same for every chunk of a larger data set)."""
    rank, start, level = cell_layout(parent, n_outer)
    cell, n_cells = rank[inner_index], parent.size
    return NestedStats(
        g1=group_cross(outer_index, n_outer, z1, z1),
        z1x=group_cross(outer_index, n_outer, z1, X),
        z1y=group_cross(outer_index, n_outer, z1, y[:, None])[:, :, 0],
        a2=group_cross(cell, n_cells, z2, z2), c12=group_cross(cell, n_cells, z1, z2),
        z2x=group_cross(cell, n_cells, z2, X),
        z2y=group_cross(cell, n_cells, z2, y[:, None])[:, :, 0],
        cell_start=start, cell_level=level, xtx=X.T @ X, xty=X.T @ y, yty=float(y @ y),
        n_total=float(y.shape[0]),
    )


@dataclass(frozen=True)
class Moments:
    """Means and sds (ddof 1) of ``y``, of each column of ``X`` and of each factor's ``Z``, the
    least-squares coefficients of ``y`` on ``X`` and their residual sd (ddof 0)."""

    y_mean: float
    y_sd: float
    x_mean: np.ndarray
    x_sd: np.ndarray
    z_mean: tuple[np.ndarray, ...]
    z_sd: tuple[np.ndarray, ...]
    ols: np.ndarray
    resid_sd: float


def _mean_sd(total: np.ndarray | float, cross: np.ndarray | float, n: float):
    mean = np.asarray(total, dtype=float) / n
    var = (np.asarray(cross, dtype=float) - n * mean**2) / (n - 1)
    return mean, np.sqrt(np.clip(var, 0.0, None))


def moments(design: Design) -> Moments:
    """:class:`Moments` of a design, from its rows or, for data larger than memory, from its
    statistics (the same values up to rounding).

    Examples
    --------
    >>> from multilevel import ModelSpec, datasets
    >>> from multilevel.design import build_design
    >>> df = datasets.load("sleepstudy")
    >>> m = moments(build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"), df))
    >>> bool(np.isclose(m.y_mean, df.Reaction.mean()) and np.isclose(m.z_sd[0][1], df.Days.std()))
    True
    """
    s = design.summary
    if design.row_weights is not None:  # binomial counts standing for weighted rows
        return _weighted_moments(design)
    if s is None:
        X, y = design.X, design.y
        coef = np.linalg.lstsq(X, y, rcond=None)[0]
        return Moments(
            float(np.mean(y)), float(np.std(y, ddof=1)), X.mean(axis=0), X.std(axis=0, ddof=1),
            tuple(g.Z.mean(axis=0) for g in design.groups),
            tuple(g.Z.std(axis=0, ddof=1) for g in design.groups),
            coef, float(np.std(y - X @ coef)),
        )
    n, st = float(s.n_rows), s.stats
    y_mean, y_sd = _mean_sd(s.y_sum, st.yty, n)
    x_mean, x_sd = _mean_sd(s.x_sum, np.diag(st.xtx), n)
    z = [_mean_sd(g.z_sum, np.diag(g.z_cross), n) for g in design.groups]
    coef = np.linalg.lstsq(st.xtx, st.xty, rcond=None)[0]
    rss = max(float(st.yty - coef @ st.xty), 0.0)
    return Moments(float(y_mean), float(y_sd), x_mean, x_sd, tuple(m for m, _ in z),
                   tuple(sd for _, sd in z), coef, float(np.sqrt(rss / n)))


def _weighted_moments(design: Design) -> Moments:
    w, X, y = design.row_weights, design.X, design.y
    n = float(w.sum())
    x_mean, x_sd = _mean_sd(w @ X, w @ X**2, n)
    y_mean, y_sd = _mean_sd(w @ y, w @ y**2, n)
    z = [_mean_sd(g.z_sum, np.diag(g.z_cross), n) for g in design.groups]
    sw = np.sqrt(w)
    coef = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
    resid = y - X @ coef
    return Moments(float(y_mean), float(y_sd), x_mean, x_sd, tuple(m for m, _ in z),
                   tuple(sd for _, sd in z), coef, float(np.sqrt(w @ resid**2 / n)))


def fitted_variance(design: Design, b: np.ndarray) -> np.ndarray:
    """``var(X b)`` over the rows (ddof 1) for coefficients ``b`` (``(..., p)``); from ``X'X``
    and ``X'1`` for a design without rows, weighted by the rows each binomial count stands for
    when it has :attr:`~multilevel.design.Design.row_weights`."""
    if design.row_weights is not None:
        w = design.row_weights
        f = np.einsum("...p,np->...n", b, design.X)
        mean = (f @ w) / w.sum()
        return ((f - mean[..., None]) ** 2 @ w) / (w.sum() - 1)
    if design.summary is None:
        return np.einsum("...p,np->...n", b, design.X).var(axis=-1, ddof=1)
    n, s = design.n_obs, design.summary
    return (np.einsum("...p,pq,...q->...", b, s.stats.xtx, b) - (b @ s.x_sum) ** 2 / n) / (n - 1)


def marginal_statistics(design: Design) -> SufficientStats | NestedStats | SerialStats:
    """The statistics of the marginal likelihood: :class:`~multilevel.design.serial.SerialStats`
    with AR(1)/CAR(1) residuals, :class:`NestedStats` for two nested factors, else
    :class:`SufficientStats` of the one factor."""
    if design.summary is not None:  # built from data larger than memory
        return design.summary.stats
    if design.serial is not None:
        return serial_stats(design)
    return sufficient_stats(design) if nesting(design) is None else nested_stats(design)


def _group_sums(Z: np.ndarray, idx: np.ndarray, w: np.ndarray, r: np.ndarray, n_groups: int):
    return group_cross(idx, n_groups, Z * w[:, None], Z), group_cross(idx, n_groups, Z, r[:, None])[:, :, 0]


def solve_groups(ztz: np.ndarray, ztr: np.ndarray) -> np.ndarray:
    """Per group ``ztz[j]^-1 ztr[j]``; NaN where ``ztz[j]`` is singular (condition >= 1e10)."""
    out = np.full(ztr.shape, np.nan)
    cond = np.linalg.cond(ztz)
    ok = np.isfinite(cond) & (cond < 1e10)
    if ok.any():
        out[ok] = np.linalg.solve(ztz[ok], ztr[ok][..., None])[..., 0]
    return out


def group_ols(Z: np.ndarray, idx: np.ndarray, r: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-group least squares of ``r`` on ``Z``: ``(n_groups, q)``, NaN where singular."""
    ztz, ztr = _group_sums(Z, idx, np.ones(len(r)), r, n_groups)
    return solve_groups(ztz, ztr)


def group_logistic(
    Z: np.ndarray, idx: np.ndarray, y: np.ndarray, n: np.ndarray, offset: np.ndarray,
    n_groups: int, iterations: int = 30,
) -> np.ndarray:
    """Per-group logistic MLE (Newton), NaN where it diverges (separation) or is singular."""
    coef = np.zeros((n_groups, Z.shape[1]))
    for _ in range(iterations):
        eta = offset + np.einsum("nq,nq->n", Z, coef[idx])
        p = expit(eta)
        w = n * p * (1 - p)
        info, score = _group_sums(Z, idx, w, y - n * p, n_groups)
        step = solve_groups(info, score)
        coef = coef + np.nan_to_num(step)
    coef[np.abs(coef) > 15] = np.nan
    coef[np.isnan(step).any(axis=1)] = np.nan
    return coef


def complete_pooling(design: Design) -> np.ndarray:
    """Coefficients of the fixed-effects regression that ignores the groups."""
    if design.summary is not None:  # Gaussian, from X'X and X'y
        return moments(design).ols
    if design.se is not None:  # inverse-variance weighted: the fixed-effect meta-analysis
        w = 1.0 / design.se
        return np.linalg.lstsq(design.X * w[:, None], design.y * w, rcond=None)[0]
    if not design.spec.is_logistic:
        return np.linalg.lstsq(design.X, design.y, rcond=None)[0]
    n = design.trials if design.trials is not None else np.ones_like(design.y)
    one = np.zeros(len(design.y), dtype=int)
    return group_logistic(design.X, one, design.y, n, np.zeros(len(design.y)), 1)[0]


def typical_within_variance(se: np.ndarray, X: np.ndarray | None = None) -> float:
    """Typical within-study variance ``s^2 = (k - p) / tr(P)``, ``P = W - W X (X'WX)^-1 X'W``,
    ``W = diag(1 / se^2)`` (metafor's ``I^2`` for meta-regression); with an intercept only this
    is Higgins and Thompson's (2002) ``(k - 1) sum w / ((sum w)^2 - sum w^2)``.

    Examples
    --------
    >>> typical_within_variance(np.array([2.0, 2.0, 2.0]))
    4.0
    """
    w = 1.0 / np.asarray(se, dtype=float) ** 2
    X = np.ones((len(w), 1)) if X is None else np.asarray(X, dtype=float)
    wx = X * w[:, None]
    trace_p = w.sum() - np.trace(np.linalg.solve(X.T @ wx, wx.T @ wx))
    return float((len(w) - X.shape[1]) / trace_p)
