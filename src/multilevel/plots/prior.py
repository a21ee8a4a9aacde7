"""Prior predictive check: data simulated from the priors against the observed data.

The draws come from :func:`multilevel.prior_predictive.prior_predictive` (groups
``prior_predictive`` and ``observed_data``, variable ``y``; the spec in the attributes says the
family). Gaussian models: the densities of a few replicated data sets with the observed one
over them. Logistic models: a histogram of the overall proportion of successes of each
replicated data set, the observed proportion marked. Priors that put most replicated data far
from anything plausible show up at once (a proportion piled at 0 and 1 says the logit-scale
priors are too wide).

:func:`prior_predictive_values` computes the numbers; :func:`plot_prior_predictive` draws them.

Examples
--------
>>> import numpy as np
>>> rep = np.array([[1.0, 0.0], [1.0, 1.0]])
>>> success_proportions(rep, np.array([1.0, 0.0]), np.array([2.0, 2.0]))
(array([0.25, 0.5 ]), 0.25)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from scipy.stats import gaussian_kde

from multilevel import naming
from multilevel.plots._layout import single_axes

__all__ = [
    "PriorPredictiveValues",
    "plot_prior_predictive",
    "prior_predictive_values",
    "success_proportions",
]


@dataclass(frozen=True, eq=False)
class PriorPredictiveValues:
    """Observed response and replicated data sets (``(draws, n_obs)``) of one model."""

    y: np.ndarray
    y_rep: np.ndarray
    logistic: bool
    trials: np.ndarray | None
    response: str


def success_proportions(
    y_rep: np.ndarray, y: np.ndarray, trials: np.ndarray
) -> tuple[np.ndarray, float]:
    """Overall proportion of successes of each replicated data set, and of the observed one."""
    total = float(np.sum(trials))
    return np.asarray(y_rep, dtype=float).sum(axis=1) / total, float(np.sum(y)) / total


def _spec(idata):
    from multilevel.spec.io import spec_from_toml

    text = idata.attrs.get("multilevel_spec")
    if text is None:
        raise ValueError(
            "These draws carry no model spec: make them with "
            "multilevel.prior_predictive.prior_predictive(spec, df)."
        )
    return spec_from_toml(text)


def _trials(idata, spec, n_obs: int, trials) -> np.ndarray | None:
    if not spec.is_logistic:
        return None
    if trials is None and "constant_data" in idata.children:
        const = idata["constant_data"]
        trials = const["trials"].to_numpy() if "trials" in const else None
    if trials is None and spec.family == "bernoulli":
        trials = np.ones(n_obs)
    if trials is None:
        raise ValueError(
            "A binomial prior predictive check needs the number of trials of each row: pass "
            f"trials=df[{spec.trials or spec.failures!r}] (trials = successes + failures for "
            "cbind(s, f))."
        )
    trials = np.asarray(trials, dtype=float).ravel()
    if trials.shape != (n_obs,):
        raise ValueError(f"trials has {trials.size} values for {n_obs} observations.")
    return trials


def prior_predictive_values(idata, *, draws: int = 50, trials=None) -> PriorPredictiveValues:
    """The observed response and the first ``draws`` replicated data sets (over chains)."""
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}.")
    spec = _spec(idata)
    name = idata.attrs.get("multilevel_response", naming.RESPONSE)
    rep = idata["prior_predictive"][name]
    rest = [d for d in rep.dims if d not in ("chain", "draw")]
    y_rep = rep.transpose("chain", "draw", *rest).to_numpy().reshape(-1, *rep.shape[2:])
    y = np.asarray(idata["observed_data"][name].to_numpy(), dtype=float)
    y_rep = np.asarray(y_rep[:draws], dtype=float)
    return PriorPredictiveValues(
        y=y, y_rep=y_rep, logistic=spec.is_logistic,
        trials=_trials(idata, spec, y.size, trials), response=spec.response,
    )


def _density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    if np.ptp(values) == 0:
        return np.zeros_like(grid)
    return gaussian_kde(values)(grid)


def _plot_densities(ax: Axes, vals: PriorPredictiveValues) -> None:
    pooled = np.concatenate([vals.y, vals.y_rep.ravel()])
    lo, hi = np.quantile(pooled, [0.005, 0.995])
    lo, hi = min(lo, vals.y.min()), max(hi, vals.y.max())
    pad = 0.05 * (hi - lo)
    grid = np.linspace(lo - pad, hi + pad, 200)
    for k, row in enumerate(vals.y_rep):
        ax.plot(grid, _density(row, grid), color="C0", alpha=0.3, lw=0.8, gid="replicated",
                label=f"prior predictive ({len(vals.y_rep)} data sets)" if k == 0 else "_nolegend_")
    ax.plot(grid, _density(vals.y, grid), color="k", lw=2, gid="observed", label="observed")
    ax.set_xlim(grid[0], grid[-1])
    ax.set_xlabel(vals.response)
    ax.set_ylabel("density")


def _plot_proportions(ax: Axes, vals: PriorPredictiveValues) -> None:
    props, observed = success_proportions(vals.y_rep, vals.y, vals.trials)
    ax.hist(props, bins=np.linspace(0.0, 1.0, 21), color="C0", alpha=0.6, gid="replicated",
            label=f"prior predictive ({len(props)} data sets)")
    ax.axvline(observed, color="k", lw=2, gid="observed", label=f"observed ({observed:.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel(f"proportion of successes ({vals.response})")
    ax.set_ylabel("replicated data sets")


def plot_prior_predictive(idata, *, ax: Axes | None = None, draws: int = 50,
                          trials=None) -> Axes:
    """Data simulated from the priors against the observed data.

    Parameters
    ----------
    idata : DataTree
        Output of :func:`multilevel.prior_predictive.prior_predictive`.
    ax : matplotlib Axes, optional
    draws : int
        Replicated data sets to show (the first ``draws`` prior draws).
    trials : array, optional
        Binomial models: trials per row, when ``idata`` has no ``constant_data`` group
        holding them (Bernoulli: 1).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from multilevel import datasets
    >>> from multilevel.prior_predictive import prior_predictive
    >>> idata = prior_predictive("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"),
    ...                          draws=20, seed=1)
    >>> ax = plot_prior_predictive(idata, draws=10)
    >>> len(ax.get_lines())
    11
    """
    vals = prior_predictive_values(idata, draws=draws, trials=trials)
    ax = single_axes(ax)
    if vals.logistic:
        _plot_proportions(ax, vals)
    else:
        _plot_densities(ax, vals)
    ax.set_title("Prior predictive check")
    ax.legend(fontsize="small")
    return ax
