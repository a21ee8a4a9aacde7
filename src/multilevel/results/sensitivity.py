"""Prior sensitivity by power-scaling (Kallioinen, Paananen, Buerkner and Vehtari 2024).

Raising the prior to a power ``alpha`` near 1, ``p(theta)^alpha p(y | theta)``, and watching how
much each posterior quantity moves tells how much the prior shapes it; doing the same to the
likelihood tells how much the data do. The moves are estimated without refitting, by
Pareto-smoothed importance sampling of the posterior draws (ArviZ's :func:`arviz_stats.psense`):
the sensitivity of a quantity is the cumulative Jensen-Shannon distance between its posterior
and its power-scaled posterior at ``alpha = 0.99`` and ``1.01``, divided by ``|log alpha|``.

What is power-scaled (priorsense's advice for hierarchical models): the log likelihood is the
conditional log-likelihood of :mod:`multilevel.results.loglik`, summed over the rows (power-scaling
uses only the total, so it is summed a block of draws at a time); the log prior of a draw is
the sum of the log densities of the *top-level* priors only,

.. math::

    \\log p(\\theta) = \\sum_j \\log p(\\beta_j) + \\sum_{k,a} \\log p(s_{ka})
        + \\sum_k (\\eta_k - 1) \\log\\det R_k + \\log p(\\sigma)

(fixed effects, group-level sds, the LKJ(eta) density of each correlation matrix up to its
constant, the residual sd), with the same densities the samplers use
(:func:`multilevel.engine.kernels.common.prior_logp_grad`). The group effects' own
``N(0, Sigma_k)`` prior is the model's second level, not a choice of prior, and is left alone.

Diagnosis, with priorsense's threshold 0.05: prior and likelihood sensitivity both at or above
it is a *prior-data conflict*; prior sensitivity above it with likelihood sensitivity below it
means the prior dominates (*prior-dominated*: the data say little); anything else ``-``.

Examples
--------
>>> from multilevel import datasets, fit_hierarchical
>>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
...                        draws=300, tune=300, chains=2, seed=1, progressbar=False,
...                        frequentist=False)
>>> table = prior_sensitivity(fit)
>>> table["variable"].tolist()[:3]
['b[(Intercept)]', 'b[Days]', 'sd_Subject[(Intercept)]']
>>> table["variable"].tolist()[3:]
['sd_Subject[Days]', 'cor_Subject[(Intercept),Days]', 'sigma']
>>> sorted(set(table["diagnosis"]))
['-']
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats import psense
from scipy.special import gammaln

from multilevel import naming
from multilevel.design import collapse_binomial
from multilevel.design.serial import SerialStats
from multilevel.design.statistics import NestedStats, marginal_statistics, nesting
from multilevel.engine.kernels.common import FAMILY_CODES, FAMILY_PARAMS, prior_logp_grad
from multilevel.engine.kernels.marginal import marginal_loglik_draws
from multilevel.engine.kernels.nested import nested_loglik_draws
from multilevel.engine.kernels.noncentered import rows_loglik_draws
from multilevel.engine.kernels.serial import serial_loglik_draws
from multilevel.engine.noncentered import nc_problem
from multilevel.engine.recovery import lambda_draws, over_draws
from multilevel.results.core import draws_of
from multilevel.results.loglik import pointwise_log_likelihood
from multilevel.spec.terms import Prior

if TYPE_CHECKING:
    from multilevel.results.record import FitRecord

__all__ = [
    "THRESHOLD",
    "log_prior_draws",
    "prior_logpdf",
    "prior_sensitivity",
    "sensitivity_check",
    "summed_log_likelihood",
]

#: priorsense's threshold on the power-scaling sensitivity.
THRESHOLD = 0.05
CONFLICT = "prior-data conflict"
DOMINATED = "prior-dominated"


def prior_logpdf(prior: Prior, x: np.ndarray) -> np.ndarray:
    """Log density of ``prior`` at every element of ``x`` (Flat: 0).

    Examples
    --------
    >>> from scipy import stats
    >>> x = np.array([0.5, 2.0])
    >>> bool(np.allclose(prior_logpdf(Prior("HalfNormal", sigma=2.0), x),
    ...                  stats.halfnorm.logpdf(x, scale=2.0)))
    True
    """
    x = np.asarray(x, dtype=float)
    if prior.dist == "Uniform":  # phi: inside its bounds by construction
        return np.full(x.shape, -np.log(prior.kwargs["upper"] - prior.kwargs["lower"]))
    code = FAMILY_CODES[prior.dist]
    par = np.zeros(3)
    for k, name in enumerate(FAMILY_PARAMS[prior.dist]):
        par[k] = prior.kwargs.get(name, 0.0)  # StudentT's mu defaults to 0
    flat = x.ravel()
    out = np.fromiter((prior_logp_grad(code, par, v)[0] for v in flat), float, flat.size)
    return out.reshape(x.shape)


def log_prior_draws(fit: FitRecord) -> np.ndarray:
    """``(chain, draw)`` sum of the top-level log prior densities (module docstring)."""
    post, design, priors = fit.posterior, fit.design, fit.resolved_priors
    b = draws_of(post, naming.FIXED)
    total = np.zeros(b.shape[:2])
    for j, name in enumerate(design.fixed_names):
        prior = priors.intercept if name == "(Intercept)" else priors.fixed[name]
        total += prior_logpdf(prior, b[..., j])
    for g in design.groups:
        sd = draws_of(post, naming.sd_name(g.factor))
        for k, term in enumerate(g.term_names):
            total += prior_logpdf(priors.sd[g.factor][term], sd[..., k])
        if g.factor in priors.cor:
            eta = priors.cor[g.factor].kwargs["eta"]
            if eta != 1.0:
                logdet = np.linalg.slogdet(draws_of(post, naming.cor_name(g.factor)))[1]
                total += (eta - 1.0) * logdet
    if priors.sigma is not None:
        total += prior_logpdf(priors.sigma, draws_of(post, naming.SIGMA))
    if priors.phi is not None:  # a Normal prior's truncation constant does not depend on phi
        total += prior_logpdf(priors.phi, draws_of(post, naming.PHI))
    return total


def _labelled_draws(fit: FitRecord) -> dict[str, np.ndarray]:
    """Scalar ``(chain, draw)`` draws of the fixed effects, sds, correlations and sigma."""
    post, design = fit.posterior, fit.design
    b = draws_of(post, naming.FIXED)
    out = {f"b[{t}]": b[..., j] for j, t in enumerate(design.fixed_names)}
    for g in design.groups:
        sd_name, cor_name = naming.sd_name(g.factor), naming.cor_name(g.factor)
        sd = draws_of(post, sd_name)
        out.update({f"{sd_name}[{t}]": sd[..., k] for k, t in enumerate(g.term_names)})
        if cor_name in post:
            cor = draws_of(post, cor_name)
            for a in range(g.n_terms):
                for c in range(a + 1, g.n_terms):
                    out[f"{cor_name}[{g.term_names[a]},{g.term_names[c]}]"] = cor[..., a, c]
    for name in (naming.SIGMA, naming.PHI):
        if name in post:
            out[name] = draws_of(post, name)
    return out


def summed_log_likelihood(fit: FitRecord, block: int | None = None) -> np.ndarray:
    """``(chain, draw)`` log-likelihood of all rows at every draw.

    For the marginal parameterization this is the marginal likelihood
    ``log p(y | beta, Sigma, sigma)`` the sampler used, from the sufficient statistics
    (O(groups) per draw); otherwise :func:`multilevel.results.loglik.pointwise_log_likelihood` summed over
    the observations (collapsed binomial rows for logistic models, equal up to a constant), by
    the compiled :func:`~multilevel.engine.kernels.noncentered.rows_loglik_draws` over the
    draws split across the cores, or (``block`` given) by numpy a block of draws at a time
    (about ``block`` values, so that memory stays O(block), not O(draws x rows))."""
    post = fit.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    if fit.parameterization == "marginal":
        return _marginal_log_likelihood(fit).reshape(n_chain, n_draw)
    # Logistic rows with identical covariates and groups collapse into binomial counts: the
    # summed log-likelihood changes only by a constant, which power-scaling ignores.
    collapsed = dataclasses.replace(fit, design=collapse_binomial(fit.design))
    if block is None:
        return _rows_log_likelihood(collapsed).reshape(n_chain, n_draw)
    step = max(1, block // max(1, collapsed.design.n_obs))
    out = np.empty((n_chain, n_draw))
    for c in range(n_chain):
        for start in range(0, n_draw, step):
            part = post.isel(chain=[c], draw=slice(start, start + step))
            sub = dataclasses.replace(collapsed, idata=xr.DataTree.from_dict({"posterior": part}))
            out[c, start:start + step] = pointwise_log_likelihood(sub).sum(axis=-1)[0]
    return out


def _rows_log_likelihood(fit: FitRecord) -> np.ndarray:
    """:func:`summed_log_likelihood` of a non-marginal fit (design collapsed) by the compiled
    kernel, with the binomial constant ``sum log C(n, y)`` added back."""
    design, post = fit.design, fit.posterior
    a = nc_problem(design, fit.resolved_priors).args  # the rows as the non-centered kernel reads them
    beta = np.ascontiguousarray(draws_of(post, naming.FIXED).reshape(-1, design.X.shape[1]))
    n_draws = beta.shape[0]
    u = np.ascontiguousarray(np.concatenate(
        [draws_of(post, naming.effect_name(g.factor)).reshape(n_draws, -1) for g in design.groups],
        axis=1))
    u_start = np.r_[0, np.cumsum(a.levels * a.q)[:-1]].astype(np.int64)
    sigma = (np.ascontiguousarray(draws_of(post, naming.SIGMA).ravel()) if a.family == 0
             else np.ones(n_draws))
    const = 0.0
    if a.family == 1:
        n, y = a.trials, a.y
        const = float(np.sum(gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)))

    def run(s: slice) -> np.ndarray:
        return rows_loglik_draws(beta[s], u[s], sigma[s], a.XT, a.y, a.trials, a.ZT, a.z_start,
                                 a.idx, a.q, u_start, a.family)

    return over_draws(run, n_draws) + const


def _marginal_log_likelihood(fit: FitRecord) -> np.ndarray:
    """The marginal log-likelihood at every draw; the draws are split over the cores (the
    compiled kernels release the GIL), which matters with 10^4 groups and more."""
    design = fit.design
    stats = fit.stats if fit.stats is not None else marginal_statistics(design)
    post = fit.posterior
    beta = np.ascontiguousarray(draws_of(post, naming.FIXED).reshape(-1, design.X.shape[1]))
    sigma = draws_of(post, naming.SIGMA).ravel()
    if isinstance(stats, SerialStats):
        phi = draws_of(post, naming.PHI).ravel()
        lam = lambda_draws(post, design.groups[0])

        def run(s: slice) -> np.ndarray:
            return serial_loglik_draws(beta[s], lam[s], sigma[s], phi[s], *stats.kernel_args(),
                                       stats.n_total)
    elif isinstance(stats, NestedStats):
        outer, inner = (design.groups[k] for k in nesting(design))
        lam1, lam2 = lambda_draws(post, outer), lambda_draws(post, inner)

        def run(s: slice) -> np.ndarray:
            return nested_loglik_draws(beta[s], lam1[s], lam2[s], sigma[s], *stats.kernel_args())
    else:
        lam = lambda_draws(post, design.groups[0])

        def run(s: slice) -> np.ndarray:
            return marginal_loglik_draws(beta[s], lam[s], sigma[s], stats.ztz, stats.ztx, stats.zty,
                                         stats.xtx, stats.xty, stats.yty, stats.n_total)
    return over_draws(run, len(sigma))


def _diagnose(prior: float, likelihood: float, threshold: float) -> str:
    if prior >= threshold and likelihood >= threshold:
        return CONFLICT
    if prior >= threshold:
        return DOMINATED
    return "-"


def prior_sensitivity(fit: FitRecord, *, threshold: float = THRESHOLD) -> pd.DataFrame:
    """Power-scaling prior and likelihood sensitivity of the model's main quantities.

    Parameters
    ----------
    fit : FitRecord
    threshold : float
        Sensitivity from which the prior (or likelihood) counts as influential; priorsense's
        0.05.

    Returns
    -------
    pandas.DataFrame
        One row per fixed effect, group-level sd, correlation and the residual sd: columns
        ``variable`` (``'b[Days]'``, ``'sd_Subject[Days]'``, ``'cor_Subject[(Intercept),Days]'``,
        ``'sigma'``), ``prior`` and ``likelihood`` (sensitivities) and ``diagnosis`` (``'-'``,
        ``'prior-data conflict'`` or ``'prior-dominated'``).
    """
    draws = _labelled_draws(fit)
    dims = ("chain", "draw")
    posterior = xr.Dataset({name: (dims, arr) for name, arr in draws.items()})
    log_prior = xr.Dataset({"log_prior": (dims, log_prior_draws(fit))})
    tree = xr.DataTree.from_dict({
        "posterior": posterior,
        "log_likelihood": xr.Dataset({naming.RESPONSE: (dims, summed_log_likelihood(fit))}),
        "log_prior": log_prior,
    })
    sens = {group: psense(tree, group=group) for group in ("prior", "likelihood")}
    rows = []
    for name in draws:
        p, lik = float(sens["prior"][name]), float(sens["likelihood"][name])
        rows.append((name, p, lik, _diagnose(p, lik, threshold)))
    return pd.DataFrame(rows, columns=["variable", "prior", "likelihood", "diagnosis"])


def sensitivity_check(fit: FitRecord, *, threshold: float = THRESHOLD) -> pd.DataFrame:
    """One row in the format of :meth:`HierarchicalFit.diagnostics`: check, value, threshold,
    ok, remedy; ``value`` is the largest prior sensitivity, ``ok`` False when any quantity is
    flagged (the remedy names them)."""
    table = prior_sensitivity(fit, threshold=threshold)
    flagged = table[table["diagnosis"] != "-"]
    remedy = (
        "The prior shapes the posterior: check that the priors say what you mean (fit.priors(), "
        "multilevel.results.sensitivity.prior_sensitivity(fit)); a prior-data conflict means the data "
        "disagree with the prior, a prior-dominated quantity that the data say little about it."
    )
    if not flagged.empty:
        remedy += " Flagged: " + ", ".join(
            f"{r.variable} ({r.diagnosis})" for r in flagged.itertuples()
        ) + "."
    return pd.DataFrame([{
        "check": "prior_sensitivity", "value": float(table["prior"].max()),
        "threshold": f"< {threshold}", "ok": flagged.empty, "remedy": remedy,
    }])
