"""Posterior distributions of the variance components and ICCs, frequentist value marked.

One panel per group sd, per correlation, for the residual sd (Gaussian models) and for the
adjusted ICC of each grouping factor (Nakagawa; with several factors also their total, group
``all``). Histograms rather than KDEs: an sd piled up against zero or a correlation near +-1
would be smeared past its bound by a plain KDE. The ICC draws come from
:mod:`multilevel.results.tables`; the conditional and covariate-zero ICCs are in
:meth:`HierarchicalFit.icc`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from multilevel.plots._layout import grid, method_label
from multilevel.plots.compute import variance_draws

if TYPE_CHECKING:
    from multilevel.results.result import FitResult as HierarchicalFit

__all__ = ["plot_variance"]


def plot_variance(
    fit: HierarchicalFit,
    *,
    bins: int = 30,
    ncols: int = 3,
    axes: Sequence[Axes] | np.ndarray | None = None,
) -> Figure:
    """Histograms of every sd, correlation and ICC with the REML/ML/Laplace estimate.

    The frequentist estimate (when the fit has one) is a black vertical line labelled with
    its method, its 95% profile interval a grey band; the posterior mean is a dotted line.

    Parameters
    ----------
    fit : HierarchicalFit
    bins : int
        Histogram bins.
    ncols : int
        Panels per row of a new figure.
    axes : sequence of Axes, optional
        At least as many axes as panels; extra ones are hidden.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from multilevel import datasets, fit_hierarchical
    >>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
    ...                        draws=200, tune=200, chains=2, seed=1, progressbar=False)
    >>> fig = plot_variance(fit)
    >>> [ax.get_title() for ax in fig.axes if ax.get_visible()][:2]
    ['sd Subject: (Intercept)', 'sd Subject: Days']
    """
    params = variance_draws(fit)
    n = len(params)
    if axes is None:
        ncols = max(1, min(ncols, n))
        shape = (int(np.ceil(n / ncols)), ncols)
    else:
        shape = (1, max(n, int(np.asarray(axes, dtype=object).size)))
    fig, arr = grid(axes, shape, (3.6, 2.8))
    flat = arr.ravel()
    label = method_label(fit)
    for ax, p in zip(flat, params, strict=False):
        draws = p.draws.ravel()
        ax.hist(draws, bins=bins, density=True, color="C0", alpha=0.6, label="posterior")
        ax.axvline(float(draws.mean()), color="C0", ls=":", lw=1.2, label="posterior mean")
        if np.isfinite(p.estimate):
            ax.axvline(p.estimate, color="k", lw=1.5, label=f"{label} {p.estimate:.3g}",
                       gid="frequentist")
        if np.isfinite(p.interval).all():  # the frequentist (profile) interval
            ax.axvspan(*p.interval, color="0.5", alpha=0.15, lw=0, gid="frequentist_interval",
                       label=f"{label} 95% profile CI")
        ax.set_title(p.title)
        ax.set_xlabel({"cor": "correlation", "icc": "ICC", "phi": "autocorrelation phi"}.get(
            p.stat, "sd"))
        ax.set_yticks([])
        ax.legend(fontsize="x-small")
    for ax in flat[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
