"""Shrinkage (partial pooling) of every group, next to no pooling and complete pooling.

For each grouping factor ``k``, level ``j`` and varying term ``a`` (the group's coefficient
``beta_a + u_kja``; just ``u_kja`` when ``a`` is not also a fixed effect):

* ``no_pooling``: the group's own estimate. The other fixed effects and the other factors'
  group effects are held at their posterior means as an offset, and the group's varying terms
  are fitted to its rows alone (least squares, or a logistic regression by Newton's method;
  with AR(1)/CAR(1) residuals generalised least squares with ``R_j(phi)``, at the posterior
  mean of ``phi``).
  NaN when the group's rows cannot identify it (a slope with one distinct x, all successes).
* ``complete_pooling``: the regression that ignores the groups (OLS, a logistic GLM, or with
  known standard errors the inverse-variance weighted fixed-effect meta-analysis).
* ``partial_mean`` and ``partial_lower``/``partial_upper``: the posterior of the coefficient.
* ``pooling_factor``: the weight of the group's own data (1 = no pooling, 0 = complete
  pooling), averaged over the posterior. The conditional mean of ``u_j`` is
  ``A_j`` times the group's own estimate with ``A_j = (Sigma^-1 + Z_j'W_jZ_j)^-1 Z_j'W_jZ_j
  = Lambda M_j^-1 Lambda' Z_j'W_jZ_j`` (``Sigma = Lambda Lambda'``, ``M_j = I + Lambda'Z_j'W_jZ_j
  Lambda``), and the factor of term ``a`` is ``A_j[a, a]``. ``W = I / sigma^2`` for Gaussian
  models, so a random intercept alone gives ``lambda_j = tau^2 / (tau^2 + sigma^2 / n_j)``; for
  known standard errors ``W = diag(1 / se^2)``; for
  logistic models ``W`` holds the binomial weights ``n_i p_i (1 - p_i)`` at each draw (the
  Laplace approximation; at most 200 evenly thinned draws there); with AR(1)/CAR(1) residuals
  ``Z_j'W_jZ_j = Z_j'R_j(phi)^-1 Z_j / sigma^2`` at each (of at most 200 thinned) draws.

Examples
--------
>>> import numpy as np
>>> Z = np.ones((4, 1)); idx = np.array([0, 0, 1, 1]); r = np.array([1.0, 3.0, 5.0, 7.0])
>>> group_ols(Z, idx, r, 2).ravel().tolist()
[2.0, 6.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import expit

from multilevel import naming
from multilevel.design import Design, GroupDesign
from multilevel.design.serial import inverse_weighted_cross
from multilevel.design.statistics import complete_pooling, group_logistic, group_ols, solve_groups
from multilevel.results.core import DEFAULT_PROB, draws_of, summary_quantile
from multilevel.results.tables import covariance_draws

__all__ = ["pooling_factors", "shrinkage_table"]

#: Largest (draws x groups x terms^2) block of pooling matrices formed at once.
_CHUNK = 4_000_000


def _offset(posterior: xr.Dataset, design: Design, g: GroupDesign,
            summaries: xr.Dataset | None = None) -> np.ndarray:
    """Posterior-mean linear predictor without ``g``'s varying terms and their fixed parts."""
    b = draws_of(posterior, naming.FIXED).mean(axis=(0, 1))
    keep = np.array([name not in g.term_names for name in design.fixed_names])
    offset = design.X[:, keep] @ b[keep]
    for other in design.groups:
        if other.factor != g.factor:
            u = _effect_mean(posterior, other.factor, summaries)
            offset = offset + np.einsum("nq,nq->n", other.Z, u[other.index])
    return offset


def _stats_cross(design: Design, g: GroupDesign):
    """Per level of ``g``: ``Z'Z``, ``Z'X``, ``Z'y`` and the cross-products with the other
    factor's ``Z`` (``(C, other level of each cross)`` for two nested factors, else None)."""
    st, nest = design.summary.stats, design.summary.nest
    if nest is None:
        return st.ztz, st.ztx, st.zty, None
    parent = st.cell_parent
    if design.groups[nest[0]].factor == g.factor:  # outer: cells' Z1'Z2, summed per outer level
        return st.g1, st.z1x, st.z1y, (st.c12, parent)
    back = st.level_cell
    return (st.a2[back], st.z2x[back], st.z2y[back],
            (np.swapaxes(st.c12, 1, 2)[back], parent[back]))


def _own_from_stats(posterior: xr.Dataset, design: Design, g: GroupDesign,
                    summaries: xr.Dataset | None = None) -> np.ndarray:
    """No-pooling estimates from the statistics: ``(Z_j'Z_j)^-1 Z_j'(y - X b - Z_o u_o)``."""
    b = draws_of(posterior, naming.FIXED).mean(axis=(0, 1))
    keep = np.array([name not in g.term_names for name in design.fixed_names])
    ztz, ztx, zty, other = _stats_cross(design, g)
    rhs = zty - ztx[:, :, keep] @ b[keep]
    if other is not None:
        cross, parent = other
        o = design.groups[1 - design.groups.index(g)]
        u = _effect_mean(posterior, o.factor, summaries)
        if cross.shape[0] == g.n_levels:  # inner level: its outer level's effect
            rhs = rhs - np.einsum("kab,kb->ka", cross, u[parent])
        else:  # outer level: the effects of its cells, in cell order
            st = design.summary.stats
            contrib = np.einsum("kab,kb->ka", cross, u[st.cell_level])
            rhs = rhs - np.add.reduceat(contrib, st.cell_start[:-1], axis=0)
    return solve_groups(ztz, rhs)


def _partial(posterior: xr.Dataset, design: Design, g: GroupDesign, k: int, prob: float,
             summaries: xr.Dataset | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior mean and central ``prob`` interval of level ``j``'s coefficient of term ``k``
    (``b + u`` for a term that is also a fixed effect, else ``u``), per level."""
    term = g.term_names[k]
    if summaries is not None:
        name = naming.coef_name(g.factor) if term in design.fixed_names else naming.effect_name(g.factor)
        s = summaries[name].isel({naming.term_dim(g.factor): k})
        return (s.sel(summary="mean").to_numpy(), summary_quantile(s, (1 - prob) / 2),
                summary_quantile(s, (1 + prob) / 2))
    coef = draws_of(posterior, naming.effect_name(g.factor))[..., k]
    if term in design.fixed_names:
        coef = coef + draws_of(posterior, naming.FIXED)[..., design.fixed_names.index(term), None]
    flat = coef.reshape(-1, g.n_levels)
    lo, hi = np.quantile(flat, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return flat.mean(axis=0), lo, hi


def _effect_mean(posterior: xr.Dataset, factor: str, summaries: xr.Dataset | None) -> np.ndarray:
    if summaries is not None:
        return summaries[naming.effect_name(factor)].sel(summary="mean").to_numpy()
    return draws_of(posterior, naming.effect_name(factor)).mean(axis=(0, 1))


def _thinned(arr: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return arr.reshape((-1,) + arr.shape[2:])[keep]


def _weighted_crossprod(g: GroupDesign, w: np.ndarray) -> np.ndarray:
    """``(draws, levels, q, q)`` sums of ``w_si z_i z_i'`` per group, for weights ``(draws, n)``."""
    n_draws = w.shape[0]
    out = np.zeros((n_draws, g.n_levels, g.n_terms, g.n_terms))
    cell = (np.arange(n_draws)[:, None] * g.n_levels + g.index[None, :]).ravel()
    for a in range(g.n_terms):
        for c in range(a, g.n_terms):
            sums = np.bincount(cell, weights=(w * (g.Z[:, a] * g.Z[:, c])).ravel(),
                               minlength=n_draws * g.n_levels)
            out[:, :, a, c] = out[:, :, c, a] = sums.reshape(n_draws, g.n_levels)
    return out


def pooling_factors(
    posterior: xr.Dataset, design: Design, g: GroupDesign, max_draws: int = 200
) -> np.ndarray:
    """``(levels, terms)`` posterior-mean diagonal of the pooling matrix ``A_j`` (docstring).

    Gaussian models use every draw (``Z_j'WZ_j = Z_j'Z_j / sigma^2``); logistic models, whose
    weights change with each draw's linear predictor, AR(1) models and designs built from data
    larger than memory (often with very many groups) use ``max_draws`` evenly thinned draws.
    """
    n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]
    keep = np.arange(n_draws)
    if design.spec.is_logistic or design.serial is not None or design.summary is not None:
        keep = np.unique(np.linspace(0, n_draws - 1, min(max_draws, n_draws)).astype(int))
    cov = covariance_draws(posterior, g).reshape((-1, g.n_terms, g.n_terms))[keep]
    lam = np.linalg.cholesky(cov + 1e-12 * np.eye(g.n_terms))
    if design.spec.is_logistic:
        b = _thinned(draws_of(posterior, naming.FIXED), keep)
        eta = b @ design.X.T
        for other in design.groups:
            u = _thinned(draws_of(posterior, naming.effect_name(other.factor)), keep)
            eta = eta + np.einsum("nq,snq->sn", other.Z, u[:, other.index])
        p = expit(eta)
        n = design.trials if design.trials is not None else np.ones_like(design.y)
        ztwz = _weighted_crossprod(g, n * p * (1 - p))
    elif design.se is not None:  # known standard errors
        ztwz = np.broadcast_to(_weighted_crossprod(g, 1.0 / design.se[None, :] ** 2),
                               (len(keep), g.n_levels, g.n_terms, g.n_terms))
    else:
        sigma = _thinned(draws_of(posterior, naming.SIGMA), keep)
        if design.serial is not None:
            phi = _thinned(draws_of(posterior, naming.PHI), keep)
            ztz = inverse_weighted_cross(design.serial, g.index, g.n_levels, g.Z, g.Z, phi)
        elif design.summary is not None:  # data larger than memory: Z_j'Z_j from the statistics
            ztz = _stats_cross(design, g)[0][None]
        else:
            ztz = _weighted_crossprod(g, np.ones((1, design.n_obs)))
        ztwz = ztz / sigma[:, None, None, None] ** 2
    out = np.empty((g.n_levels, g.n_terms))
    step = max(1, _CHUNK // (len(keep) * g.n_terms**2))  # bounded memory for many groups
    for start in range(0, g.n_levels, step):
        w = ztwz[:, start:start + step]
        m = np.eye(g.n_terms) + np.einsum("sba,sgbc,scd->sgad", lam, w, lam)
        inner = np.linalg.solve(m, np.einsum("sba,sgbc->sgac", lam, w))
        pool = np.einsum("sab,sgbc->sgac", lam, inner)
        out[start:start + step] = np.diagonal(pool, axis1=2, axis2=3).mean(axis=0)
    return out


def shrinkage_table(
    posterior: xr.Dataset, design: Design, group: str | None = None, prob: float = DEFAULT_PROB,
    summaries: xr.Dataset | None = None,
) -> pd.DataFrame:
    """Columns group, level, term, n, no_pooling, complete_pooling, partial_mean,
    partial_lower, partial_upper, pooling_factor; ``summaries`` are the per-level summaries
    when the group effects' draws were not kept (``group_draws='summary'``)."""
    pooled = dict(zip(design.fixed_names, complete_pooling(design), strict=True))
    frames = []
    for g in design.groups:
        if group is not None and g.factor != group:
            continue
        if design.summary is not None:  # data larger than memory: from the statistics
            own = _own_from_stats(posterior, design, g, summaries)
        elif design.spec.is_logistic:
            offset = _offset(posterior, design, g, summaries)
            n = design.trials if design.trials is not None else np.ones_like(design.y)
            own = group_logistic(g.Z, g.index, design.y, n, offset, g.n_levels)
        elif design.serial is not None:  # GLS with the posterior-mean R_j(phi)
            offset = _offset(posterior, design, g, summaries)
            phi = float(draws_of(posterior, naming.PHI).mean())
            r = (design.y - offset)[:, None]
            zrz = inverse_weighted_cross(design.serial, g.index, g.n_levels, g.Z, g.Z, phi)
            zrr = inverse_weighted_cross(design.serial, g.index, g.n_levels, g.Z, r, phi)
            own = solve_groups(zrz, zrr[..., 0])
        else:
            own = group_ols(g.Z, g.index, design.y - _offset(posterior, design, g, summaries), g.n_levels)
        weights = pooling_factors(posterior, design, g)
        for k, term in enumerate(g.term_names):
            mean, lo, hi = _partial(posterior, design, g, k, prob, summaries)
            cp = pooled.get(term, 0.0)
            factor = weights[:, k]
            frames.append(pd.DataFrame({
                "group": g.factor, "level": list(g.levels), "term": term, "n": g.counts,
                "no_pooling": own[:, k], "complete_pooling": cp, "partial_mean": mean,
                "partial_lower": lo, "partial_upper": hi, "pooling_factor": factor,
            }))
    if not frames:
        raise KeyError(f"No grouping factor {group!r}; the model has "
                       f"{[g.factor for g in design.groups]}.")
    return pd.concat(frames, ignore_index=True)
