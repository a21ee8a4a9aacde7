"""Sampler diagnostics: trace and rank plots, and a pair plot of the variance parameters.

Plain matplotlib rather than ``arviz_plots``: ArviZ's ``plot_trace_dist`` fails on our
``cor_*`` matrices (their constant diagonal of ones breaks its KDE), ``plot_rank`` takes one
variable at a time, and both draw into a ``PlotCollection`` of their own instead of given axes.

Rank plots (Vehtari et al. 2021, "Rank-normalization, folding, and localization"): the draws of
all chains are ranked together and each chain's ranks are histogrammed; chains that sample the
same distribution give flat histograms around the dashed line ``draws per chain / bins``.
Divergent transitions are marked by red ticks along the bottom of the trace panels and in red
in the pair plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from multilevel.plots._layout import grid, method_label
from multilevel.plots.compute import (
    divergent_draws,
    hyperparameter_draws,
    rank_histograms,
    resolve_group,
    variance_draws,
)

if TYPE_CHECKING:
    from multilevel.results.result import FitResult as HierarchicalFit

__all__ = ["plot_pair", "plot_trace"]

DIVERGENT = "tab:red"


def _trace_panel(ax: Axes, draws: np.ndarray, label: str, divergent: np.ndarray) -> None:
    for c, chain in enumerate(draws):
        ax.plot(chain, lw=0.7, alpha=0.8, color=f"C{c}", label=f"chain {c}")
    ax.set_ylabel(label)
    div_x = np.nonzero(divergent)[1]
    if div_x.size:
        ax.plot(div_x, np.zeros(div_x.size), "|", color=DIVERGENT, markersize=12, mew=1.5,
                transform=ax.get_xaxis_transform(), label=f"divergent ({div_x.size})",
                gid="divergences")


def _rank_panel(ax: Axes, draws: np.ndarray, bins: int) -> None:
    counts, edges = rank_histograms(draws, bins)
    for c, row in enumerate(counts):
        ax.stairs(row, edges, baseline=None, color=f"C{c}", lw=1.2)
    ax.axhline(draws.shape[1] / bins, color="0.4", ls="--", lw=1)
    ax.set_yticks([])


def plot_trace(
    fit: HierarchicalFit,
    *,
    var_names: str | list[str] | None = None,
    bins: int | None = None,
    axes: Sequence[Axes] | np.ndarray | None = None,
) -> Figure:
    """Trace and rank plots of the hyperparameters, with divergent transitions marked.

    One row per scalar hyperparameter (each fixed effect, group sd, correlation above the
    diagonal, and the residual sd): the left panel shows each chain's draws in order with red
    ticks at divergent draws, the right panel each chain's rank histogram.

    Parameters
    ----------
    fit : HierarchicalFit
    var_names : str or list of str, optional
        PyMC variables to show (``'b'``, ``'sd_<group>'``, ``'cor_<group>'``, ``'sigma'``);
        default all of them.
    bins : int, optional
        Rank histogram bins; default about one per 10 draws per chain, between 5 and 20.
    axes : array of Axes, optional
        ``(rows, 2)`` axes to draw into (flattened row-major is fine).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from multilevel import datasets, fit_hierarchical
    >>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
    ...                        draws=200, tune=200, chains=2, seed=1, progressbar=False)
    >>> fig = plot_trace(fit, var_names=["sd_Subject", "sigma"])
    >>> [ax.get_ylabel() for ax in fig.axes[::2]]
    ['sd_Subject[(Intercept)]', 'sd_Subject[Days]', 'sigma']
    """
    params = hyperparameter_draws(fit, var_names)
    divergent = divergent_draws(fit)
    n_draws = divergent.shape[1]
    bins = bins or int(np.clip(n_draws // 10, 5, 20))
    fig, arr = grid(axes, (len(params), 2), (5.0, 1.8))
    for row, (label, draws) in zip(arr, params.items(), strict=True):
        _trace_panel(row[0], draws, label, divergent)
        _rank_panel(row[1], draws, bins)
    arr[0, 0].set_title("trace")
    arr[0, 1].set_title("rank (all chains pooled)")
    arr[-1, 0].set_xlabel("draw")
    arr[-1, 1].set_xlabel("rank")
    arr[0, 0].legend(loc="upper right", fontsize="small", ncols=2)
    fig.tight_layout()
    return fig


def plot_pair(
    fit: HierarchicalFit,
    *,
    group: str | None = None,
    axes: Sequence[Axes] | np.ndarray | None = None,
) -> Figure:
    """Pair plot of the group-level sds and correlations: histograms and pairwise scatter.

    Divergent draws are red; the frequentist estimate, when fitted, is a black cross in the
    scatter panels and a vertical line on the diagonal.

    Parameters
    ----------
    fit : HierarchicalFit
    group : str, optional
        One grouping factor; default every factor's sds and correlations.
    axes : array of Axes, optional
        ``(k, k)`` axes for ``k`` parameters.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from multilevel import datasets, fit_hierarchical
    >>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
    ...                        draws=200, tune=200, chains=2, seed=1, progressbar=False)
    >>> fig = plot_pair(fit)
    >>> len(fig.axes)
    9
    """
    factor = None if group is None else resolve_group(fit, group).factor
    params = [
        p for p in variance_draws(fit, icc=False)
        if p.group != "Residual" and (factor is None or p.group == factor)
    ]
    k = len(params)
    fig, arr = grid(axes, (k, k), (2.4, 2.4))
    div = divergent_draws(fit).ravel()
    label = method_label(fit)
    for i, pi in enumerate(params):
        for j, pj in enumerate(params):
            ax = arr[i, j]
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                ax.hist(pi.draws.ravel(), bins=30, color="C0", alpha=0.7)
                if np.isfinite(pi.estimate):
                    ax.axvline(pi.estimate, color="k", lw=1.2, label=label, gid="frequentist")
                ax.set_yticks([])
            else:
                x, y = pj.draws.ravel(), pi.draws.ravel()
                ax.scatter(x[~div], y[~div], s=4, alpha=0.4, color="C0", label="draws")
                if div.any():
                    ax.scatter(x[div], y[div], s=8, color=DIVERGENT, label="divergent")
                if np.isfinite(pi.estimate) and np.isfinite(pj.estimate):
                    ax.plot(pj.estimate, pi.estimate, "kx", ms=8, mew=2, label=label)
            if i == k - 1:
                ax.set_xlabel(pj.title)
            if j == 0 and i > 0:
                ax.set_ylabel(pi.title)
    if label:
        arr[0, 0].legend(fontsize="small")
    fig.tight_layout()
    return fig
