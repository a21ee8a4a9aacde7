"""Conditional-effects plot (brms ``conditional_effects``, ggeffects): predictions over one
predictor with the others held at typical values.

:func:`conditional_grid` makes the rows: ``x`` over its observed range (50 points) or over its
levels, ``by`` over its levels (or mean - sd, mean, mean + sd when numeric), every other
predictor at its training mean (numeric) or reference level (factor), as brms does.
:func:`plot_predictions` draws the population curve (all group effects zero) with its central
interval, the frequentist (REML/ML/Laplace) population prediction dashed beside it, optionally
one line per chosen group (the posterior mean of that group's prediction) and the data.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from multilevel import datasets, fit_hierarchical
>>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
...                        draws=200, tune=200, chains=2, seed=1, progressbar=False)
>>> conditional_grid(fit, "Days", points=3)["Days"].tolist()
[0.0, 4.5, 9.0]
>>> ax = plot_predictions(fit, "Days", groups=["308", "309"])
>>> ax.get_xlabel(), ax.get_ylabel()
('Days', 'Reaction')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from multilevel.design.newdata import check_scale, predictor_columns
from multilevel.design.types import require_rows
from multilevel.errors import SpecError
from multilevel.plots._layout import method_label, single_axes
from multilevel.results.predictions import prediction_table

if TYPE_CHECKING:
    from multilevel.results.result import FitResult as HierarchicalFit

__all__ = ["conditional_grid", "plot_predictions"]

#: Placeholder level for the grouping factors a spaghetti line does not vary.
_OTHER = "__population__"


def _typical(s: pd.Series):
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.categories[0]
    return float(s.mean())


def _values(s: pd.Series, points: int, numeric_by: bool = False) -> list:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return list(s.cat.categories)
    if numeric_by:
        m, sd = float(s.mean()), float(s.std())
        return [m - sd, m, m + sd]
    return list(np.linspace(float(s.min()), float(s.max()), points))


def conditional_grid(
    fit: HierarchicalFit, x: str, *, by: str | None = None, points: int = 50
) -> pd.DataFrame:
    """Rows for a conditional-effects plot (module docstring); no grouping columns."""
    require_rows(fit.design, "The conditional-effects grid (typical values of the other "
                 "predictors)")
    frame = fit.design.frame
    cols = predictor_columns(fit.design, groups=False)
    for name, value in (("x", x), ("by", by)):
        if value is not None and value not in cols:
            raise SpecError(
                f"{name}={value!r} is not a predictor of this model: choose one of {cols}."
            )
    if by is not None and by == x:
        raise SpecError(f"by={by!r} must differ from x.")
    if points < 2:
        raise SpecError(f"points must be at least 2, got {points}.")
    axes = {x: _values(frame[x], points)}
    if by is not None:
        axes[by] = _values(frame[by], points, numeric_by=True)
    mesh = pd.MultiIndex.from_product(list(axes.values()), names=list(axes)).to_frame(index=False)
    for col in cols:
        if col not in axes:
            mesh[col] = _typical(frame[col])
    for col in cols:  # keep the training categories so the factors read back in order
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            mesh[col] = pd.Categorical(mesh[col], categories=frame[col].cat.categories)
    return mesh[cols]


def _observed(fit: HierarchicalFit) -> np.ndarray:
    d = fit.design
    return d.y / d.trials if d.trials is not None else d.y


def _position(values: pd.Series) -> np.ndarray:
    if isinstance(values.dtype, pd.CategoricalDtype):
        return np.asarray(values.cat.codes, dtype=float)
    return values.to_numpy(dtype=float)


def plot_predictions(
    fit: HierarchicalFit,
    x: str,
    *,
    by: str | None = None,
    groups: Sequence[str] | None = None,
    scale: str = "response",
    prob: float = 0.95,
    data: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """Conditional-effects plot of ``x`` (module docstring).

    ``groups`` lists levels of the first grouping factor to draw as thin lines (their posterior
    mean predictions); ``scale='response'`` draws probabilities for logistic models; ``data``
    adds the observed points (proportions for binomial counts; none for 0/1 outcomes) when
    ``scale='response'``.
    """
    check_scale(scale)
    grid = conditional_grid(fit, x, by=by)
    table = prediction_table(fit, grid, scale=scale, groups=False, prob=prob)
    ax = single_axes(ax)
    pos = _position(grid[x])
    series = [(None, np.ones(len(grid), dtype=bool))]
    if by is not None:
        series = [(level, (grid[by] == level).to_numpy()) for level in pd.unique(grid[by])]
    factor = isinstance(grid[x].dtype, pd.CategoricalDtype)
    for k, (level, rows) in enumerate(series):
        label = "population" if level is None else f"{by} = {_label(level)}"
        mean, lo, hi = (table[c].to_numpy()[rows] for c in ("mean", "lower", "upper"))
        freq = None if fit.method is None else table[fit.method].to_numpy()[rows]
        if factor:  # points with interval bars, side by side per by-level
            at = pos[rows] + 0.1 * (k - (len(series) - 1) / 2)
            bars = ax.errorbar(at, mean, yerr=[mean - lo, hi - mean], fmt="o", capsize=3,
                               label=label)
            if freq is not None:
                ax.plot(at, freq, "x", color=bars.lines[0].get_color(),
                        label=method_label(fit) if k == 0 else None)
            continue
        line = ax.plot(pos[rows], mean, lw=2, label=label)[0]
        ax.fill_between(pos[rows], lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        if freq is not None:
            ax.plot(pos[rows], freq, ls="--", color=line.get_color(), lw=1,
                    label=method_label(fit) if k == 0 else None)
    if groups:
        _group_lines(fit, ax, grid, x, pos, list(groups), scale)
    if data and scale == "response" and fit.spec.family != "bernoulli":  # 0/1 points say little
        ax.scatter(_position(fit.design.frame[x]), _observed(fit), s=6, color="0.4", alpha=0.3,
                   zorder=0, label="data")
    if factor:
        ax.set_xticks(range(len(grid[x].cat.categories)), list(grid[x].cat.categories))
    ax.set_xlabel(x)
    ylabel = fit.spec.response
    ax.set_ylabel(ylabel if scale == "response" and not fit.spec.is_logistic else
                  (f"P({ylabel})" if scale == "response" else f"linear predictor of {ylabel}"))
    ax.legend(fontsize="small", frameon=False)
    return ax


def _label(level) -> str:
    return f"{level:.3g}" if isinstance(level, float) else str(level)


def _group_lines(fit, ax, grid, x, pos, levels, scale) -> None:
    g = fit.design.groups[0]
    term = fit.spec.groups[0]
    if len(term.columns) != 1:
        raise SpecError(f"groups= needs a single-column grouping factor; {g.factor!r} is not.")
    unknown = [lv for lv in levels if str(lv) not in set(g.levels)]
    if unknown:
        raise SpecError(f"groups= names level(s) {unknown[:5]} that {g.factor!r} does not have.")
    for lv in levels:
        rows = grid.assign(**{term.columns[0]: str(lv)})
        for other in fit.spec.groups[1:]:  # other factors at a new level, effect 0
            rows = rows.assign(**{c: _OTHER for c in other.columns if c not in term.columns})
        pred = prediction_table(fit, rows, scale=scale, new_levels="population")
        ax.plot(pos, pred["mean"], lw=0.8, alpha=0.7, color="0.3")
    ax.plot([], [], lw=0.8, color="0.3", label=f"{g.factor} (posterior mean)")
