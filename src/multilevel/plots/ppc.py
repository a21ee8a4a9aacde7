"""Posterior predictive checks.

Replicated data come from :func:`multilevel.plots.compute.posterior_predictive` (the group
effects of each posterior draw, not new groups). Gaussian models: the density of the observed
response over the densities of ``draws`` replicated data sets. Logistic models: per group, the
observed proportion of successes against the replicated one (mean and central 95% interval);
points scatter around the 45 degree line when the model reproduces the groups.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from scipy.stats import gaussian_kde

from multilevel.plots._layout import single_axes
from multilevel.plots.compute import group_proportions, posterior_predictive, resolve_group

if TYPE_CHECKING:
    from multilevel.results.result import FitResult as HierarchicalFit

__all__ = ["plot_ppc"]


def _density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    if np.ptp(values) == 0:
        return np.zeros_like(grid)
    return gaussian_kde(values)(grid)


def _plot_density(ax: Axes, y: np.ndarray, y_rep: np.ndarray, response: str) -> None:
    lo = min(y.min(), np.quantile(y_rep, 0.001))
    hi = max(y.max(), np.quantile(y_rep, 0.999))
    pad = 0.05 * (hi - lo)
    grid = np.linspace(lo - pad, hi + pad, 200)
    for k, row in enumerate(y_rep):
        ax.plot(grid, _density(row, grid), color="C0", alpha=0.15, lw=0.8, gid="replicated",
                label=f"replicated y ({len(y_rep)} draws)" if k == 0 else "_nolegend_")
    ax.plot(grid, _density(y, grid), color="k", lw=2, label="observed y", gid="observed")
    ax.set_xlabel(response)
    ax.set_ylabel("density")
    ax.set_title("Posterior predictive check")


def _plot_proportions(ax: Axes, fit: HierarchicalFit, y_rep: np.ndarray, group: str | None):
    factor = resolve_group(fit, group).factor
    table = group_proportions(fit, y_rep, factor)
    mean = table["mean"].to_numpy()
    err = np.vstack([mean - table["lower"].to_numpy(), table["upper"].to_numpy() - mean])
    ax.errorbar(table["observed"].to_numpy(), mean, yerr=err, fmt="o", ms=4, color="C0",
                elinewidth=1, gid="groups", label=f"{factor} (replicated mean, 95% interval)")
    top = float(max(table["observed"].max(), table["upper"].max(), 0.05)) * 1.05
    ax.plot([0, top], [0, top], color="0.4", ls="--", lw=1, label="observed = replicated")
    ax.set_xlim(-0.02 * top, top)
    ax.set_ylim(-0.02 * top, top)
    ax.set_xlabel(f"observed proportion per {factor}")
    ax.set_ylabel(f"replicated proportion per {factor}")
    ax.set_title(f"Posterior predictive check by {factor}")


def plot_ppc(
    fit: HierarchicalFit,
    *,
    draws: int = 100,
    seed: int | None = None,
    group: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Observed data against data replicated from the posterior.

    Parameters
    ----------
    fit : HierarchicalFit
    draws : int
        Posterior draws to replicate the data from.
    seed : int, optional
        Seed for the choice of draws and the simulated noise.
    group : str, optional
        Logistic models: grouping factor of the proportions (default the first).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from multilevel import datasets, fit_hierarchical
    >>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
    ...                        draws=200, tune=200, chains=2, seed=1, progressbar=False)
    >>> ax = plot_ppc(fit, draws=50, seed=0)
    >>> len(ax.get_lines())
    51
    """
    y_rep = posterior_predictive(fit, draws=draws, seed=seed)
    ax = single_axes(ax)
    if fit.spec.is_logistic:
        _plot_proportions(ax, fit, y_rep, group)
    else:
        _plot_density(ax, np.asarray(fit.design.y, dtype=float), y_rep, fit.spec.response)
    ax.legend(fontsize="small")
    return ax
