"""Posterior diagnostic plots for a :class:`~multilevel.HierarchicalFit` (matplotlib).

Every function takes the fit first (``plot_prior_predictive``: the draws of
:func:`multilevel.prior_predictive.prior_predictive`) and only keyword options after it.
Single-panel plots take ``ax=`` and return the Axes they drew on; multi-panel plots take
``axes=`` and return the Figure. The numbers behind each picture come from
:mod:`multilevel.plots.compute` (numpy and pandas, nothing drawn), so they can be checked, or
plotted another way, on their own.

=========================  ============================================================  =======
function                   shows                                                         returns
=========================  ============================================================  =======
``plot_trace``             trace and rank plots of b, sd_*, cor_*, sigma; divergences     Figure
``plot_pair``              pair plot of the group sds and correlations                     Figure
``plot_caterpillar``       each group's coefficient interval, frequentist BLUP beside     Axes
``plot_shrinkage``         arrows from no pooling to partial pooling, by group size        Axes
``plot_variance``          sd, cor and ICC posteriors with the REML/ML/Laplace value      Figure
``plot_ppc``               observed vs replicated data (density, or proportion by group)  Axes
``plot_prior_predictive``  data simulated from the priors vs the observed data           Axes
``plot_predictions``       conditional effects: population curve, groups, data            Axes
=========================  ============================================================  =======

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from multilevel import datasets, fit_hierarchical
>>> from multilevel.plots import plot_caterpillar
>>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
...                        draws=200, tune=200, chains=2, seed=1, progressbar=False)
>>> ax = plot_caterpillar(fit, term="Days")
>>> ax.get_ylabel()
'Subject'
"""

from multilevel.plots.compute import posterior_predictive
from multilevel.plots.diagnostics import plot_pair, plot_trace
from multilevel.plots.groups import plot_caterpillar, plot_shrinkage
from multilevel.plots.ppc import plot_ppc
from multilevel.plots.predictions import plot_predictions
from multilevel.plots.prior import plot_prior_predictive
from multilevel.plots.variance import plot_variance

__all__ = [
    "plot_caterpillar",
    "plot_pair",
    "plot_ppc",
    "plot_predictions",
    "plot_prior_predictive",
    "plot_shrinkage",
    "plot_trace",
    "plot_variance",
    "posterior_predictive",
]
