"""The numbers behind the plots, as numpy arrays and DataFrames; nothing here draws.

Every function takes a fitted :class:`~multilevel.HierarchicalFit` and reads the posterior
through :mod:`multilevel.naming`, so the drawing modules never touch a PyMC variable name.

* :func:`hyperparameter_draws`: ``(chain, draw)`` arrays of the fixed effects, the group sds, the
  off-diagonal correlations and the residual sd, labelled ArviZ-style (``sd_Subject[Days]``).
* :func:`variance_draws`: every sd and correlation, the residual sd and the adjusted ICC of
  each grouping factor, each with its frequentist estimate and profile interval (NaN without a
  frequentist fit; the ICCs have no interval).
* :func:`posterior_predictive`: replicated responses ``y_rep`` from posterior draws,
  ``eta = X b + sum_k (Z_k * u_k[idx_k]).sum(1)``; ``y_rep ~ Normal(eta, sigma)``, or
  ``Binomial(trials, expit(eta))`` / ``Bernoulli(expit(eta))`` for logistic models.
* :func:`group_proportions`: observed and replicated proportion of successes per group.

Examples
--------
>>> import numpy as np
>>> counts, edges = rank_histograms(np.arange(8.0).reshape(2, 4), bins=2)
>>> counts.tolist()
[[4, 0], [0, 4]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import rankdata

from multilevel import naming
from multilevel.design import GroupDesign
from multilevel.design.serial import ar_noise, serial_pairs_of
from multilevel.design.types import require_rows
from multilevel.results.core import draws_of
from multilevel.results.tables import (
    icc_draws,
)

if TYPE_CHECKING:
    from multilevel.results.result import FitResult as HierarchicalFit

__all__ = [
    "VarianceDraws",
    "divergent_draws",
    "group_proportions",
    "group_sizes",
    "hyperparameter_names",
    "hyperparameter_draws",
    "posterior_predictive",
    "rank_histograms",
    "resolve_group",
    "variance_draws",
]


def resolve_group(fit: HierarchicalFit, group: str | None) -> GroupDesign:
    """The named grouping factor's design (the first factor when ``group`` is None)."""
    factors = [g.factor for g in fit.design.groups]
    if group is None:
        return fit.design.groups[0]
    if group not in factors:
        raise KeyError(f"No grouping factor {group!r}; the model has {factors}.")
    return fit.design.group(group)


def hyperparameter_names(fit: HierarchicalFit) -> list[str]:
    """PyMC names of the hyperparameters present in the posterior: b, sd_*, cor_*, sigma,
    phi."""
    names = [naming.FIXED]
    for g in fit.design.groups:
        names += [naming.sd_name(g.factor), naming.cor_name(g.factor)]
    names += [naming.SIGMA, naming.PHI]
    return [name for name in names if name in fit.posterior]


def hyperparameter_draws(
    fit: HierarchicalFit, var_names: str | list[str] | None = None
) -> dict[str, np.ndarray]:
    """Scalar ``(chain, draw)`` arrays, one per fixed effect, sd, correlation pair and sigma.

    ``var_names`` selects PyMC variables (``'b'``, ``'sd_Subject'``, ``'cor_Subject'``,
    ``'sigma'``); default all of them. Correlations are the pairs above the diagonal only.
    """
    available = hyperparameter_names(fit)
    if var_names is None:
        wanted = available
    else:
        wanted = [var_names] if isinstance(var_names, str) else list(var_names)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise KeyError(f"Unknown hyperparameters {unknown}; choose from {available}.")
    post = fit.posterior
    out: dict[str, np.ndarray] = {}
    for name in wanted:
        arr = draws_of(post, name)
        if name == naming.FIXED:
            out.update({f"b[{t}]": arr[..., j] for j, t in enumerate(fit.design.fixed_names)})
        elif name in (naming.SIGMA, naming.PHI):
            out[name] = arr
        else:
            g = next(g for g in fit.design.groups if name in (naming.sd_name(g.factor),
                                                           naming.cor_name(g.factor)))
            terms = g.term_names
            if arr.ndim == 3:
                out.update({f"{name}[{t}]": arr[..., k] for k, t in enumerate(terms)})
            else:
                for a in range(len(terms)):
                    for c in range(a + 1, len(terms)):
                        out[f"{name}[{terms[a]},{terms[c]}]"] = arr[..., a, c]
    return out


def divergent_draws(fit: HierarchicalFit) -> np.ndarray:
    """``(chain, draw)`` booleans: True at divergent transitions (all False if not recorded)."""
    post = fit.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    stats = fit.idata["sample_stats"] if "sample_stats" in fit.idata.children else None
    if stats is None or "diverging" not in stats:
        return np.zeros(shape, dtype=bool)
    return stats["diverging"].transpose("chain", "draw").to_numpy().astype(bool)


def rank_histograms(draws: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-chain histogram of the ranks of ``(chain, draw)`` draws pooled over chains."""
    ranks = rankdata(draws, axis=None).reshape(draws.shape)
    edges = np.linspace(0.5, draws.size + 0.5, bins + 1)
    counts = np.stack([np.histogram(chain, bins=edges)[0] for chain in ranks])
    return counts, edges


@dataclass(frozen=True, eq=False)
class VarianceDraws:
    """Posterior draws of one variance parameter and its frequentist estimate."""

    group: str
    term: str
    stat: str  # 'sd', 'cor' or 'icc'
    draws: np.ndarray  # (chain, draw)
    estimate: float = float("nan")
    interval: tuple[float, float] = (float("nan"), float("nan"))  # frequentist (profile)

    @property
    def title(self) -> str:
        """Panel title, e.g. ``'sd Subject: Days'`` or ``'ICC (adjusted) Subject'``."""
        if self.stat == "icc":
            return f"ICC ({self.term}) {self.group}"
        return f"{self.stat} {self.group}: {self.term}" if self.term else f"{self.stat} {self.group}"


def _frequentist_lookup(fit: HierarchicalFit) -> tuple[dict, dict, dict]:
    if fit.frequentist is None:
        return {}, {}, {}
    vc = fit.frequentist.variance_components()
    icc = fit.frequentist.icc()
    # a design without rows (Dask/Parquet) has no profile: Wald intervals of the fixed effects
    ci = fit.frequentist_intervals("profile" if fit.design.has_rows else "Wald")
    intervals = {} if ci is None else {
        (r.group, r.term, r.stat): (float(r.lower), float(r.upper)) for r in ci.itertuples()}
    return (
        {(r.group, r.term, r.stat): float(r.estimate) for r in vc.itertuples()},
        {(r.group, r.type): float(r.estimate) for r in icc.itertuples()},
        intervals,
    )


def variance_draws(fit: HierarchicalFit, *, icc: bool = True) -> list[VarianceDraws]:
    """Every group sd and correlation, the residual sd (and ``phi``), and every ICC.

    Labels (group, term, stat) match :meth:`HierarchicalFit.variance_components`; the ICC rows
    are ``(group, type, 'icc')`` for every ICC of :meth:`HierarchicalFit.icc` (adjusted,
    conditional, at_x0), from :func:`~multilevel.results.tables.icc_draws`.
    """
    vc, icc_freq, intervals = _frequentist_lookup(fit)
    nan = float("nan")
    none = (nan, nan)
    post = fit.posterior
    out: list[VarianceDraws] = []
    for g in fit.design.groups:
        sd = draws_of(post, naming.sd_name(g.factor))
        for k, term in enumerate(g.term_names):
            key = (g.factor, term, "sd")
            out.append(VarianceDraws(g.factor, term, "sd", sd[..., k], vc.get(key, nan),
                                     intervals.get(key, none)))
        if naming.cor_name(g.factor) in post:
            cor = draws_of(post, naming.cor_name(g.factor))
            for a in range(g.n_terms):
                for c in range(a + 1, g.n_terms):
                    term = f"{g.term_names[a]},{g.term_names[c]}"
                    key = (g.factor, term, "cor")
                    out.append(VarianceDraws(g.factor, term, "cor", cor[..., a, c],
                                             vc.get(key, nan), intervals.get(key, none)))
    for name, stat in ((naming.SIGMA, "sd"), (naming.PHI, "phi")):
        if name in post:
            key = ("Residual", "", stat)
            out.append(VarianceDraws("Residual", "", stat, draws_of(post, name),
                                     vc.get(key, nan), intervals.get(key, none)))
    if icc:
        for labels, draws in icc_draws(post, fit.design):
            factor, kind = str(labels["group"]), str(labels["type"])
            out.append(VarianceDraws(factor, kind, "icc", draws, icc_freq.get((factor, kind), nan)))
    return out


def _linear_predictor(fit: HierarchicalFit, keep: np.ndarray) -> np.ndarray:
    """``(len(keep), n_obs)`` linear predictor at the flattened posterior draws ``keep``."""
    post, design = fit.posterior, fit.design

    def flat(name: str) -> np.ndarray:
        arr = draws_of(post, name)
        return arr.reshape((-1,) + arr.shape[2:])[keep]

    eta = flat(naming.FIXED) @ design.X.T
    for g in design.groups:
        u = flat(naming.effect_name(g.factor))  # (draws, levels, terms)
        eta = eta + np.einsum("nq,snq->sn", g.Z, u[:, g.index])
    return eta


def posterior_predictive(
    fit: HierarchicalFit, draws: int = 100, seed: int | np.random.Generator | None = None
) -> np.ndarray:
    """Replicated responses ``(draws, n_obs)`` at randomly chosen posterior draws.

    Gaussian: ``Normal(eta, sigma)`` (AR(1)/CAR(1)-correlated within series for ``ar1`` /
    ``car1`` models); binomial: success counts out of the design's trials;
    Bernoulli: 0/1. ``draws`` larger than the posterior takes every draw once.

    Examples
    --------
    >>> from multilevel import datasets, fit_hierarchical
    >>> fit = fit_hierarchical("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"),
    ...                        draws=100, tune=100, chains=1, seed=1, progressbar=False,
    ...                        frequentist=False)
    >>> posterior_predictive(fit, draws=20, seed=0).shape
    (20, 180)
    """
    require_rows(fit.design, "The posterior predictive check")
    rng = np.random.default_rng(seed)
    post = fit.posterior
    total = post.sizes["chain"] * post.sizes["draw"]
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}.")
    keep = np.sort(rng.choice(total, size=min(draws, total), replace=False))
    eta = _linear_predictor(fit, keep)
    if fit.design.se is not None:  # known standard errors
        return rng.normal(eta, fit.design.se[None, :])
    if not fit.spec.is_logistic:
        sigma = draws_of(post, naming.SIGMA).reshape(-1)[keep]
        noise = rng.standard_normal(eta.shape)
        pairs = serial_pairs_of(fit.design, None)
        if pairs is not None:  # AR(1)/CAR(1) residuals: correlated within each series
            noise = ar_noise(*pairs, draws_of(post, naming.PHI).reshape(-1)[keep], noise)
        return eta + sigma[:, None] * noise
    trials = fit.design.trials if fit.design.trials is not None else np.ones(fit.design.n_obs)
    return rng.binomial(trials.astype(np.int64), expit(eta)).astype(float)


def group_sizes(fit: HierarchicalFit, group: str | None = None) -> tuple[np.ndarray, str]:
    """Per level of ``group``: the number of binomial trials (binomial) or of rows, and a label."""
    g = resolve_group(fit, group)
    if fit.design.trials is not None:
        return np.bincount(g.index, weights=fit.design.trials, minlength=g.n_levels), "trials"
    return g.counts.astype(float), "observations"


def group_proportions(
    fit: HierarchicalFit, y_rep: np.ndarray, group: str | None = None, prob: float = 0.95
) -> pd.DataFrame:
    """Observed and replicated proportion of successes per level of ``group``.

    Columns level, n (trials or rows), observed, mean, lower, upper: the replicated
    proportions' mean and central ``prob`` interval over the rows of ``y_rep``.
    """
    g = resolve_group(fit, group)
    n, _ = group_sizes(fit, g.factor)
    observed = np.bincount(g.index, weights=fit.design.y, minlength=g.n_levels) / n
    rep = np.stack([np.bincount(g.index, weights=row, minlength=g.n_levels) for row in y_rep]) / n
    lower, upper = np.quantile(rep, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return pd.DataFrame({
        "level": list(g.levels), "n": n, "observed": observed, "mean": rep.mean(axis=0),
        "lower": lower, "upper": upper,
    })
