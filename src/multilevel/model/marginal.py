"""Gaussian models with the group effects integrated out analytically.

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
computes them (:func:`multilevel.design.statistics.sufficient_stats`, a sum over rows, so chunks
of data can be merged); each log-density evaluation then costs O(groups q^3) with batched
Cholesky factorizations. Sampling only (beta, s, L, sigma) removes the funnel between group
effects and their sd (Lai, Domke and Sheldon 2024).

Two nested factors (``(1 | school/class)``; :func:`nested_marginal_loglik`): per cell
``M_k = I + P2'A_kP2``, per outer group ``N_j = I + P1'B_jP1`` with ``B_j = G1_j - sum_k
F_k'F_k``, ``F_k = chol(M_k)^-1 P2'C12_k'`` (``P = Lambda / sigma``; the derivation is in
:mod:`multilevel.engine.kernels.nested`).

AR(1)/CAR(1) residuals (:func:`serial_marginal_loglik`): the same likelihood with every
cross-product weighted by ``R_j(phi)^-1``, a fixed combination of the sums of
:class:`~multilevel.design.serial.SerialStats` (:mod:`multilevel.design.serial`), minus
``1/2 sum_j log|R_j|``.

The group effects are recovered exactly afterwards: given each posterior draw of the
hyperparameters, ``v_j | y ~ N(M_j^{-1} w_j / sigma^2, M_j^{-1})`` and ``u_j = Lambda v_j``
(:mod:`multilevel.engine.recovery`), so shrinkage tables and plots see the same ``u`` variable as
for the non-centered model.

Examples
--------
>>> import numpy as np
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> design = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                       datasets.load("sleepstudy"))
>>> from multilevel.design.statistics import sufficient_stats
>>> stats = sufficient_stats(design)
>>> stats.ztz.shape, stats.ztx.shape, float(stats.n.sum())
((18, 2, 2), (18, 2, 2), 180.0)
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from multilevel import naming
from multilevel.design import Design
from multilevel.design.serial import SerialStats
from multilevel.design.statistics import (
    NestedStats,
    SufficientStats,
    marginal_statistics,
    nesting,
)
from multilevel.model.components import corr_chol, fixed_effects, group_sd, prior_rv
from multilevel.model.priors import ResolvedPriors, phi_support

__all__ = [
    "build_marginal_model",
    "marginal_loglik",
    "marginal_loglik_numpy",
    "nested_marginal_loglik",
    "phi_rv",
    "serial_marginal_loglik",
]


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


def nested_marginal_loglik(stats: NestedStats, b, lam1, lam2, sigma):
    """PyTensor expression of ``log p(y | b, Lambda1, Lambda2, sigma)`` (module docstring)."""
    q1, q2 = stats.g1.shape[1], stats.a2.shape[1]
    n_outer = stats.g1.shape[0]
    cell_outer = np.repeat(np.arange(n_outer), np.diff(stats.cell_start))
    sigma2 = sigma**2
    p1, p2 = lam1 / sigma, lam2 / sigma
    rss = stats.yty - 2 * pt.dot(b, stats.xty) + pt.dot(b, pt.dot(stats.xtx, b))
    t1 = stats.z1y - pt.tensordot(stats.z1x, b, axes=[[2], [0]])  # (J, q1)
    t2 = stats.z2y - pt.tensordot(stats.z2x, b, axes=[[2], [0]])  # (K, q2)
    m = pt.eye(q2) + pt.matmul(pt.matmul(p2.T, stats.a2), p2)
    chol_m = pt.linalg.cholesky(m)
    h = pt.linalg.solve_triangular(chol_m, pt.dot(t2, p2)[:, :, None], lower=True)  # (K, q2, 1)
    f = pt.linalg.solve_triangular(
        chol_m, pt.matmul(p2.T, stats.c12.transpose(0, 2, 1)), lower=True)  # (K, q2, q1)
    ftf = pt.matmul(f.transpose(0, 2, 1), f)
    fth = pt.matmul(f.transpose(0, 2, 1), h)[:, :, 0]
    big_b = pt.inc_subtensor(pt.zeros((n_outer, q1, q1))[cell_outer], ftf)
    c = pt.inc_subtensor(pt.zeros((n_outer, q1))[cell_outer], fth)
    n_mat = pt.eye(q1) + pt.matmul(pt.matmul(p1.T, stats.g1 - big_b), p1)
    chol_n = pt.linalg.cholesky(n_mat)
    g = pt.linalg.solve_triangular(chol_n, pt.dot(t1 - c, p1)[:, :, None], lower=True)
    logdet = (2 * pt.log(pt.diagonal(chol_m, axis1=1, axis2=2)).sum()
              + 2 * pt.log(pt.diagonal(chol_n, axis1=1, axis2=2)).sum())
    quad = (rss - (h**2).sum() - (g**2).sum()) / sigma2
    return -0.5 * stats.n_total * pt.log(2 * np.pi * sigma2) - 0.5 * logdet - 0.5 * quad


def serial_marginal_loglik(stats: SerialStats, b, lam, sigma, phi):
    """PyTensor expression of ``log p(y | b, Lambda, sigma, phi)`` with AR(1)/CAR(1)
    residuals (module docstring)."""
    q, p = stats.q, stats.p

    def weights(lag):  # r^2 / (1 - r^2), r / (1 - r^2) with r = phi^lag (an integer lag for a
        r = pt.power(phi, lag)  # negative phi)
        return r**2 / (1 - r**2), r / (1 - r**2), pt.log(1 - r**2)

    f, g, _ = weights(stats.lags[stats.cell_lag_index])
    cells = f[:, None, None] * stats.cell_dz - g[:, None, None] * stats.cell_cz
    wz = pt.inc_subtensor(pt.as_tensor(stats.s0z)[stats.cell_group], cells)
    f, g, log_den = weights(stats.lags)
    wx = stats.s0x + (f[:, None, None] * stats.lag_dx - g[:, None, None] * stats.lag_cx).sum(axis=0)
    weighted = SufficientStats(
        n=np.array([stats.n_total]), ztz=wz[:, :, :q], ztx=wz[:, :, q:q + p], zty=wz[:, :, -1],
        xtx=wx[:p, :p], xty=wx[:p, p], yty=wx[p, p],
    )
    logdet_r = (stats.lag_count * log_den).sum()
    return marginal_loglik(weighted, b, lam, sigma) - 0.5 * logdet_r


def phi_rv(priors: ResolvedPriors, kind: str):
    """``phi`` with its prior: Uniform, or Normal truncated to the model's range."""
    prior = priors.phi
    if prior.dist == "Uniform":
        return pm.Uniform(naming.PHI, **prior.kwargs)
    lo, hi = phi_support(kind)
    return pm.TruncatedNormal(naming.PHI, mu=prior.kwargs.get("mu", 0.0),
                              sigma=prior.kwargs["sigma"], lower=lo, upper=hi)


def build_marginal_model(design: Design, priors: ResolvedPriors, coords: dict,
                         stats: SufficientStats | NestedStats | SerialStats | None = None) -> pm.Model:
    """PyMC model over (beta, sd, correlations, sigma[, phi]) with the marginal likelihood (one
    factor, two nested ones, or one with AR(1)/CAR(1) residuals); ``stats`` are the design's
    statistics when already computed."""
    stats = marginal_statistics(design) if stats is None else stats
    coords = {k: v for k, v in coords.items() if k != naming.OBS_DIM}
    with pm.Model(coords=coords) as model:
        b = fixed_effects(design, priors)
        lams = [_lambda(group_sd(g, priors), corr_chol(g, priors), g.n_terms) for g in design.groups]
        sigma = prior_rv(naming.SIGMA, priors.sigma)
        if isinstance(stats, SerialStats):
            phi = phi_rv(priors, stats.kind)
            loglik = serial_marginal_loglik(stats, b, lams[0], sigma, phi)
        elif isinstance(stats, SufficientStats):
            loglik = marginal_loglik(stats, b, lams[0], sigma)
        else:
            outer, inner = nesting(design)
            loglik = nested_marginal_loglik(stats, b, lams[outer], lams[inner], sigma)
        pm.Potential("marginal_loglik", loglik)
    return model
