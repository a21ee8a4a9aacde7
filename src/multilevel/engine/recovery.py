"""Exact draws of the group effects after a marginal fit.

Given each posterior draw of the hyperparameters, the group effects of a marginal Gaussian
model are conditionally normal (with AR(1)/CAR(1) residuals, from the ``R(phi)^-1``-weighted
statistics of that draw's ``phi``) (:mod:`multilevel.model.marginal`): ``v_j | y ~ N(M_j^-1 w_j /
sigma^2, M_j^-1)`` and ``u_j = Lambda v_j`` for one factor, and a two-stage draw (outer, then
cells given outer) for two nested ones (:mod:`multilevel.engine.kernels.nested`). The draws are
added to the posterior as ``u_<g>``, so every table and plot sees the same variables as after a
non-centered fit.

Examples
--------
>>> from multilevel import datasets, fit_hierarchical
>>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
...                        draws=50, tune=50, chains=1, seed=1, progressbar=False, frequentist=False)
>>> fit.posterior["u_Subject"].shape
(1, 50, 18, 2)
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from multilevel import naming
from multilevel.design import Design, GroupDesign
from multilevel.design.serial import SerialStats
from multilevel.design.statistics import NestedStats, SufficientStats, marginal_statistics, nesting
from multilevel.engine.kernels.marginal import recover_draws
from multilevel.engine.kernels.nested import nested_recover_draws
from multilevel.engine.kernels.serial import serial_recover_draws

__all__ = ["lambda_draws", "recover_group_effects"]


def recover_group_effects(idata, design: Design, seed: int | None = None, *,
                          stats: SufficientStats | NestedStats | SerialStats | None = None):
    """Add exact draws of the group effects ``u`` to the posterior (module docstring);
    ``stats`` are the design's statistics when already computed."""
    stats = marginal_statistics(design) if stats is None else stats
    if isinstance(stats, NestedStats):
        return _recover_nested(idata, design, stats, seed)
    g = design.groups[0]
    post = idata["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    b = post[naming.FIXED].transpose("chain", "draw", ...).to_numpy().reshape(n_chain * n_draw, -1)
    sigma = post[naming.SIGMA].transpose("chain", "draw").to_numpy().ravel()
    lam = lambda_draws(post, g)
    eps = np.random.default_rng(seed).standard_normal((n_chain * n_draw, g.n_levels, g.n_terms))
    if isinstance(stats, SerialStats):  # the statistics depend on each draw's phi
        phi = post[naming.PHI].transpose("chain", "draw").to_numpy().ravel()
        u = serial_recover_draws(np.ascontiguousarray(b), lam, sigma, phi, *stats.kernel_args(),
                                 eps)
    else:
        u = recover_draws(np.ascontiguousarray(b), lam, sigma, stats.ztz, stats.ztx, stats.zty, eps)
    u = u.reshape(n_chain, n_draw, g.n_levels, g.n_terms)
    dims = ("chain", "draw", naming.level_dim(g.factor), naming.term_dim(g.factor))
    coords = {
        "chain": post["chain"], "draw": post["draw"],
        naming.level_dim(g.factor): list(g.levels), naming.term_dim(g.factor): list(g.term_names),
    }
    effect = xr.DataArray(u, dims=dims, coords=coords)
    idata["posterior"] = xr.DataTree(post.assign({naming.effect_name(g.factor): effect}))
    return idata


def lambda_draws(posterior: xr.Dataset, group: GroupDesign) -> np.ndarray:
    """``(chain * draw, q, q)`` draws of ``Lambda = diag(sd) L`` of one factor."""
    q = group.n_terms
    sd = posterior[naming.sd_name(group.factor)].transpose("chain", "draw", ...).to_numpy()
    cor_key = naming.corchol_name(group.factor)
    if cor_key in posterior:
        chol = posterior[cor_key].transpose("chain", "draw", ...).to_numpy()
    else:
        chol = np.broadcast_to(np.eye(q), sd.shape + (q,))
    return np.ascontiguousarray((sd[..., :, None] * chol).reshape(-1, q, q))


def _recover_nested(idata, design: Design, stats: NestedStats, seed: int | None):
    """Add exact draws of both factors' effects ``u`` to the posterior."""
    outer, inner = (design.groups[k] for k in nesting(design))
    post = idata["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    n = n_chain * n_draw
    b = post[naming.FIXED].transpose("chain", "draw", ...).to_numpy().reshape(n, -1)
    sigma = post[naming.SIGMA].transpose("chain", "draw").to_numpy().ravel()
    rng = np.random.default_rng(seed)
    eps1 = rng.standard_normal((n, outer.n_levels, outer.n_terms))
    eps2 = rng.standard_normal((n, inner.n_levels, inner.n_terms))
    u1, u2_cells = nested_recover_draws(
        np.ascontiguousarray(b), lambda_draws(post, outer), lambda_draws(post, inner), sigma,
        *stats.kernel_args()[:8], eps1, eps2)
    u2 = np.empty_like(u2_cells)
    u2[:, stats.cell_level] = u2_cells
    new = {}
    for g, u in ((outer, u1), (inner, u2)):
        level, term = naming.level_dim(g.factor), naming.term_dim(g.factor)
        new[naming.effect_name(g.factor)] = xr.DataArray(
            u.reshape(n_chain, n_draw, g.n_levels, g.n_terms), dims=("chain", "draw", level, term),
            coords={"chain": post["chain"], "draw": post["draw"], level: list(g.levels),
                    term: list(g.term_names)})
    idata["posterior"] = xr.DataTree(post.assign(new))
    return idata
