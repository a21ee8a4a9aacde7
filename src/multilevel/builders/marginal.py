"""Gaussian models with the group effects integrated out analytically.

(Two nested grouping factors: :mod:`multilevel.builders.nested`.)
For one grouping factor with ``q`` varying terms, group ``j`` with ``n_j`` rows has
``y_j ~ N(X_j beta, Z_j Sigma Z_j' + sigma^2 I)``. Writing ``Sigma = Lambda Lambda'`` with
``Lambda = diag(s) L`` (``L`` the Cholesky factor of the correlation matrix) and
``r_j = y_j - X_j beta``, the Woodbury identity and the matrix determinant lemma give

.. math::

    M_j = I_q + \\Lambda' Z_j'Z_j \\Lambda / \\sigma^2, \\qquad
    w_j = \\Lambda' Z_j' r_j,

    \\log p(y) = -\\tfrac{N}{2}\\log(2\\pi\\sigma^2) - \\tfrac12 \\sum_j \\log|M_j|
                 - \\tfrac{1}{2\\sigma^2}\\Big(\\sum_j r_j'r_j
                 - \\tfrac{1}{\\sigma^2}\\sum_j w_j' M_j^{-1} w_j\\Big).

Everything depends on the data only through sufficient statistics: per group ``Z_j'Z_j``,
``Z_j'X_j``, ``Z_j'y_j`` and globally ``X'X``, ``X'y``, ``y'y`` (``Z_j'r_j = Z_j'y_j -
Z_j'X_j beta``, ``sum_j r_j'r_j = y'y - 2 beta'X'y + beta'X'X beta``). One O(rows) pass
computes them (:func:`sufficient_stats`, a sum over rows, so chunks of data can be merged with
:func:`merge_stats`); each log-density evaluation then costs O(groups q^3) with batched
Cholesky factorizations. Sampling only (beta, s, L, sigma) removes the funnel between group
effects and their sd (Lai, Domke and Sheldon 2024).

The group effects are recovered exactly afterwards: given each posterior draw of the
hyperparameters, ``v_j | y ~ N(M_j^{-1} w_j / sigma^2, M_j^{-1})`` and ``u_j = Lambda v_j``
(:func:`recover_group_effects`), so shrinkage tables and plots see the same ``u`` variable as
for the non-centered model.

Examples
--------
>>> import numpy as np
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> design = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                       datasets.load("sleepstudy"))
>>> stats = sufficient_stats(design)
>>> stats.ztz.shape, stats.ztx.shape, float(stats.n.sum())
((18, 2, 2), (18, 2, 2), 180.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from multilevel import naming
from multilevel.builders.model import _corr_chol, _fixed_effects, group_sd, prior_rv
from multilevel.design import Design
from multilevel.priors import ResolvedPriors

__all__ = [
    "SufficientStats",
    "build_marginal_model",
    "marginal_loglik_numpy",
    "marginal_supported",
    "merge_stats",
    "recover_group_effects",
    "sufficient_stats",
]


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


def marginal_supported(design: Design) -> tuple[bool, str | None]:
    """Whether the marginal likelihood applies, and why not when it does not."""
    if design.spec.family != "gaussian":
        return False, "the group effects are integrated out only for Gaussian responses."
    if design.se is not None:
        return False, "known standard errors use the non-centered parameterization."
    if len(design.groups) == 2:
        from multilevel.builders.nested import nesting

        if nesting(design) is not None:
            return True, None
    if len(design.groups) != 1:
        return False, (
            "crossed grouping factors (or more than two nested ones) use the non-centered "
            "parameterization; the marginal likelihood covers one grouping factor or two "
            "nested ones."
        )
    return True, None


def sufficient_stats(design: Design) -> SufficientStats:
    """One pass over the rows: the sums the marginal likelihood needs."""
    g = design.groups[0]
    return _stats(g.Z, design.X, design.y, g.index, g.n_levels)


def _stats(Z, X, y, idx, n_groups) -> SufficientStats:
    q, p = Z.shape[1], X.shape[1]
    ztz = np.zeros((n_groups, q, q))
    ztx = np.zeros((n_groups, q, p))
    zty = np.zeros((n_groups, q))
    np.add.at(ztz, idx, Z[:, :, None] * Z[:, None, :])
    np.add.at(ztx, idx, Z[:, :, None] * X[:, None, :])
    np.add.at(zty, idx, Z * y[:, None])
    n = np.bincount(idx, minlength=n_groups).astype(float)
    return SufficientStats(n, ztz, ztx, zty, X.T @ X, X.T @ y, float(y @ y))


def merge_stats(a: SufficientStats, b: SufficientStats) -> SufficientStats:
    """Sufficient statistics of two chunks of rows with the same groups (an associative sum)."""
    return SufficientStats(*(getattr(a, f) + getattr(b, f) for f in SufficientStats.__dataclass_fields__))


def _lambda(sd, chol, q: int):
    return sd[:, None] * (chol if chol is not None else pt.eye(q))


def marginal_loglik(stats: SufficientStats, b, lam, sigma):
    """PyTensor expression of the marginal log-likelihood (module docstring)."""
    q = stats.ztz.shape[1]
    sigma2 = sigma**2
    n_total = stats.n.sum()
    rss = stats.yty - 2 * pt.dot(b, stats.xty) + pt.dot(b, pt.dot(stats.xtx, b))
    ztr = stats.zty - pt.tensordot(stats.ztx, b, axes=[[2], [0]])  # (G, q)
    w = pt.dot(ztr, lam)  # rows: Lambda' Z'r
    m = pt.eye(q) + pt.matmul(pt.matmul(lam.T, stats.ztz), lam) / sigma2
    chol_m = pt.linalg.cholesky(m)
    half = pt.linalg.solve_triangular(chol_m, w[:, :, None], lower=True)[:, :, 0]
    logdet = 2 * pt.log(pt.diagonal(chol_m, axis1=1, axis2=2)).sum()
    quad = (rss - (half**2).sum() / sigma2) / sigma2
    return -0.5 * n_total * pt.log(2 * np.pi * sigma2) - 0.5 * logdet - 0.5 * quad


def marginal_loglik_numpy(stats: SufficientStats, b, lam, sigma) -> float:
    """The same log-likelihood in numpy (for tests and checks)."""
    q = stats.ztz.shape[1]
    rss = stats.yty - 2 * b @ stats.xty + b @ stats.xtx @ b
    w = (stats.zty - stats.ztx @ b) @ lam
    m = np.eye(q) + np.einsum("ab,gbc,cd->gad", lam.T, stats.ztz, lam) / sigma**2
    chol = np.linalg.cholesky(m)
    half = np.linalg.solve(chol, w[:, :, None])[:, :, 0]
    logdet = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum()
    quad = (rss - (half**2).sum() / sigma**2) / sigma**2
    return float(-0.5 * stats.n.sum() * np.log(2 * np.pi * sigma**2) - 0.5 * logdet - 0.5 * quad)


def build_marginal_model(design: Design, priors: ResolvedPriors, coords: dict) -> pm.Model:
    """PyMC model over (beta, sd, correlations, sigma) with the marginal likelihood (one
    factor, or two nested ones: :mod:`multilevel.builders.nested`)."""
    from multilevel.builders.nested import nested_marginal_loglik, nested_stats, nesting

    coords = {k: v for k, v in coords.items() if k != naming.OBS_DIM}
    with pm.Model(coords=coords) as model:
        b = _fixed_effects(design, priors)
        lams = [_lambda(group_sd(g, priors), _corr_chol(g, priors), g.n_terms) for g in design.groups]
        sigma = prior_rv(naming.SIGMA, priors.sigma)
        pos = nesting(design)
        if pos is None:
            loglik = marginal_loglik(sufficient_stats(design), b, lams[0], sigma)
        else:
            loglik = nested_marginal_loglik(nested_stats(design), b, lams[pos[0]], lams[pos[1]], sigma)
        pm.Potential("marginal_loglik", loglik)
    return model


def recover_group_effects(idata, design: Design, seed: int | None = None):
    """Add exact draws of the group effects ``u`` to the posterior (module docstring)."""
    from multilevel.builders.fastrecover import recover_draws
    from multilevel.builders.nested import lambda_draws, nesting, recover_nested_effects

    if nesting(design) is not None:
        return recover_nested_effects(idata, design, seed)
    g = design.groups[0]
    stats = sufficient_stats(design)
    post = idata["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    b = post[naming.FIXED].transpose("chain", "draw", ...).to_numpy().reshape(n_chain * n_draw, -1)
    sigma = post[naming.SIGMA].transpose("chain", "draw").to_numpy().ravel()
    lam = lambda_draws(post, g)
    eps = np.random.default_rng(seed).standard_normal((n_chain * n_draw, g.n_levels, g.n_terms))
    u = recover_draws(np.ascontiguousarray(b), lam, sigma, stats.ztz,
                      stats.ztx, stats.zty, eps)
    u = u.reshape(n_chain, n_draw, g.n_levels, g.n_terms)
    dims = ("chain", "draw", naming.level_dim(g.factor), naming.term_dim(g.factor))
    coords = {
        "chain": post["chain"], "draw": post["draw"],
        naming.level_dim(g.factor): list(g.levels), naming.term_dim(g.factor): list(g.term_names),
    }
    effect = xr.DataArray(u, dims=dims, coords=coords)
    idata["posterior"] = xr.DataTree(post.assign({naming.effect_name(g.factor): effect}))
    return idata
