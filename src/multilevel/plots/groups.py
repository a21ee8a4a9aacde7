"""Group-level pictures: a caterpillar plot of every group's coefficient and shrinkage arrows.

Both read :meth:`HierarchicalFit.shrinkage`: per level of a grouping factor, the group's
coefficient ``b_term + u_j,term`` (just ``u_j,term`` when the term is not a fixed effect) under
partial pooling (posterior mean and central interval), its own no-pooling estimate, the
complete-pooling estimate and, with a frequentist fit, the conditional mode (BLUP) with its
conditional sd.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter
from matplotlib.transforms import ScaledTranslation
from scipy.stats import norm

from multilevel import naming
from multilevel.plots._layout import method_label, single_axes
from multilevel.plots.compute import group_sizes, resolve_group
from multilevel.results.core import DEFAULT_PROB, draws_of

if TYPE_CHECKING:
    from multilevel.results.result import FitResult as HierarchicalFit

__all__ = ["plot_caterpillar", "plot_shrinkage"]


def _rows(fit: HierarchicalFit, group: str | None, term: str, prob: float):
    g = resolve_group(fit, group)
    if term not in g.term_names:
        raise KeyError(f"{g.factor!r} has no varying term {term!r}; it has {list(g.term_names)}.")
    table = fit.shrinkage(group=g.factor, prob=prob)
    return g, table[table["term"] == term].reset_index(drop=True)


def _level_ticks(axis, positions: np.ndarray, labels: list[str], max_labels: int) -> None:
    step = int(np.ceil(len(labels) / max_labels)) if len(labels) > max_labels else 1
    axis.set_ticks(positions[::step], [str(v) for v in labels[::step]])


def plot_caterpillar(
    fit: HierarchicalFit,
    *,
    group: str | None = None,
    term: str = "(Intercept)",
    prob: float = DEFAULT_PROB,
    max_labels: int = 60,
    ax: Axes | None = None,
) -> Axes:
    """Every group's coefficient: posterior interval, sorted by posterior mean.

    One horizontal line per group (central ``prob`` interval of ``b_term + u_j``) with a dot at
    the posterior mean; beside it, offset downwards, the frequentist conditional mode (BLUP)
    with ``z_prob`` conditional sds (1.96 for 95%, as lme4's ``dotplot(ranef(...))``). The
    dotted line is the posterior mean of the fixed effect.

    Parameters
    ----------
    fit : HierarchicalFit
    group : str, optional
        Grouping factor; default the first.
    term : str
        Varying term, e.g. ``'(Intercept)'`` or a slope's name.
    prob : float
        Interval probability for both the posterior and the frequentist bars.
    max_labels : int
        Level labels shown on the y axis; beyond it every k-th label only.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from multilevel import datasets, fit_hierarchical
    >>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
    ...                        draws=200, tune=200, chains=2, seed=1, progressbar=False)
    >>> ax = plot_caterpillar(fit, term="Days")
    >>> len(ax.get_yticklabels())
    18
    """
    g, rows = _rows(fit, group, term, prob)
    rows = rows.sort_values("partial_mean", kind="stable").reset_index(drop=True)
    n = len(rows)
    created = ax is None
    ax = single_axes(ax, (6.0, float(np.clip(0.25 * n + 2.0, 4.0, 12.0))))
    y = np.arange(n, dtype=float)
    ax.hlines(y, rows["partial_lower"].to_numpy(), rows["partial_upper"].to_numpy(), color="C0", lw=1.6,
              label=f"posterior {prob:.0%} interval", gid="posterior_interval")
    ax.plot(rows["partial_mean"].to_numpy(), y, "o", color="C0", ms=4, label="posterior mean")
    if "blup" in rows and rows["blup"].notna().any():
        z = float(norm.ppf((1 + prob) / 2))
        blup, half = rows["blup"].to_numpy(float), z * rows["blup_cond_sd"].to_numpy(float)
        ax.errorbar(blup, y - 0.35, xerr=half, fmt="D", ms=3.5,
                    color="C1", elinewidth=1, capsize=0, gid="frequentist",
                    label=f"{method_label(fit)} conditional mode ± {z:.2f} cond. sd")
    if term in fit.design.fixed_names:
        b = draws_of(fit.posterior, naming.FIXED)[..., fit.design.fixed_names.index(term)]
        ax.axvline(float(b.mean()), color="0.3", ls=":", lw=1, label="fixed effect (mean)")
    _level_ticks(ax.yaxis, y, list(rows["level"]), max_labels)
    ax.set_ylim(-1, n)
    ax.set_ylabel(g.factor)
    ax.set_xlabel(f"{term}: group coefficient")
    ax.set_title(f"{term} by {g.factor} (partial pooling)")
    below = ax.transAxes + ScaledTranslation(0, -36 / 72, ax.figure.dpi_scale_trans)
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, 0.0),
              bbox_transform=below, ncols=2)
    if created:
        ax.figure.tight_layout()
    return ax


def _tie_jitter(values: np.ndarray, width: float) -> np.ndarray:
    """Multiplicative offsets spreading tied values over ``exp(+-width/2)``."""
    out = np.ones(len(values))
    for v in np.unique(values):
        tied = np.nonzero(values == v)[0]
        if tied.size > 1:
            out[tied] = np.exp(np.linspace(-width / 2, width / 2, tied.size))
    return out


def _x_positions(rows: pd.DataFrame, size: np.ndarray, x: str, jitter: float):
    if x == "auto":
        x = "n" if np.unique(size).size > 1 else "rank"
    if x == "n":
        return size * _tie_jitter(size, jitter), "n", None
    if x == "rank":
        key = rows["no_pooling"].fillna(rows["partial_mean"]).to_numpy()
        order = np.argsort(key, kind="stable")
        pos = np.empty(len(rows))
        pos[order] = np.arange(len(rows))
        return pos, "rank", order
    raise ValueError(f"x must be 'auto', 'n' or 'rank', got {x!r}.")


def plot_shrinkage(
    fit: HierarchicalFit,
    *,
    group: str | None = None,
    term: str = "(Intercept)",
    x: str = "auto",
    jitter: float = 0.15,
    max_labels: int = 60,
    ax: Axes | None = None,
) -> Axes:
    """Arrows from each group's no-pooling estimate to its partial-pooling estimate.

    The y axis is the group's coefficient of ``term``; the dashed line is complete pooling.
    Points are sized by the group's size (binomial trials, else rows). Groups whose own data
    cannot identify the coefficient (no-pooling estimate NaN) get only a square at their
    partial-pooling estimate, counted in the legend.

    Parameters
    ----------
    fit : HierarchicalFit
    group : str, optional
        Grouping factor; default the first.
    term : str
        Varying term.
    x : {'auto', 'n', 'rank'}
        ``'n'``: group size on a log scale (the classic picture; tied sizes are spread by
        ``jitter``, in log units); ``'rank'``: groups sorted by their no-pooling estimate;
        ``'auto'``: ``'n'`` unless every group has the same size.
    jitter : float
        Total log-scale spread of groups sharing one size.
    max_labels : int
        Level labels shown on the x axis in ``'rank'`` mode.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from multilevel import datasets, fit_hierarchical
    >>> fit = fit_hierarchical("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                        datasets.load("cbpp"), family="binomial", draws=200, tune=200,
    ...                        chains=2, seed=1, progressbar=False)
    >>> ax = plot_shrinkage(fit)
    >>> ax.get_xscale()
    'log'
    """
    g, rows = _rows(fit, group, term, DEFAULT_PROB)
    size, size_label = group_sizes(fit, g.factor)
    xs, mode, order = _x_positions(rows, size, x, jitter)
    created = ax is None
    ax = single_axes(ax, (7.0, 4.5))
    no_pool, partial = rows["no_pooling"].to_numpy(), rows["partial_mean"].to_numpy()
    ok = np.isfinite(no_pool)
    marker_size = 12 + 88 * size / size.max()
    for xi, y0, y1 in zip(xs[ok], no_pool[ok], partial[ok], strict=True):
        ax.add_patch(FancyArrowPatch((xi, y0), (xi, y1), arrowstyle="-|>", mutation_scale=9,
                                     color="0.45", lw=0.9, shrinkA=0, shrinkB=2,
                                     gid="shrinkage_arrow"))
    ax.scatter(xs[ok], no_pool[ok], s=marker_size[ok], facecolors="none", edgecolors="C0",
               label="no pooling (own data)")
    ax.scatter(xs[ok], partial[ok], s=marker_size[ok], color="C1", zorder=3,
               label="partial pooling (posterior mean)")
    if (~ok).any():
        ax.scatter(xs[~ok], partial[~ok], s=marker_size[~ok], marker="s", color="C3", zorder=3,
                   label=f"partial pooling only: no-pooling estimate undefined ({(~ok).sum()})")
    ax.axhline(float(rows["complete_pooling"].iloc[0]), color="k", ls="--", lw=1,
               label="complete pooling")
    if mode == "n":
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"{size_label} in group (log scale)")
    else:
        _level_ticks(ax.xaxis, xs[order], list(rows["level"].iloc[order]), max_labels)
        ax.tick_params(axis="x", labelrotation=90)
        ax.set_xlabel(f"{g.factor} (sorted by no-pooling estimate)")
    ax.set_ylabel(f"{term}: group coefficient")
    ax.set_title(f"Shrinkage of {term} by {g.factor}")
    ax.legend(fontsize="small")
    if created:
        ax.figure.tight_layout()
    return ax
