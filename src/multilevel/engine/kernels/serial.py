r"""The marginal Gaussian log-density with AR(1)/CAR(1) residuals, and its gradient in ``phi``.

Per grouping level ``j``, ``y_j ~ N(X_j beta, Z_j Sigma Z_j' + sigma^2 R_j(phi))``. Every
``R^-1``-weighted cross-product of the stacked rows ``v = (z, x, y)`` is ``W_j(phi) = S_j +
sum_cells [f(r) D - g(r) C]`` with ``r = phi^lag``, ``f = r^2/(1 - r^2)``, ``g = r/(1 - r^2)``
(:mod:`multilevel.design.serial`), and ``log|R_j| = sum_cells n log(1 - r^2)``. With ``W_j``
in place of the plain sums, the likelihood is the one of :mod:`multilevel.engine.kernels.marginal`
(the Woodbury identity with ``R^-1`` in place of ``I``) minus ``1/2 sum_j log|R_j|``.

The gradient in ``phi`` is the chain rule through ``W``: the marginal kernel returns each
group's ``dl/dA_j`` and ``dl/dc_j`` (``A = W_zz``, ``c = W_zy - W_zx beta``), which with
``dl/dX'X = -beta beta'/(2 sigma^2)``, ``dl/dX'y = beta / sigma^2``, ``dl/dy'y = -1/(2 sigma^2)``
give ``G_j``, the gradient in ``W_j``; then ``dl/dphi = sum_cells r'(phi) [<G_j, f'(r) D - g'(r)
C> + n r / (1 - r^2)]`` with ``f' = 2r/(1-r^2)^2`` and ``g' = (1+r^2)/(1-r^2)^2``.

``theta = (beta_c, log s, x, log sigma, z)``: the marginal model's parameters, then ``z`` with
``phi = lo + (hi - lo) logistic(z)`` on the prior's support (``(-1, 1)`` for ``ar1``, ``(0, 1)``
for ``car1``, or a narrower ``Uniform``); the log-Jacobian is ``log(hi - lo) + log
logistic(z) + log(1 - logistic(z))``.

Examples
--------
>>> import numpy as np
>>> r, dr = lag_corr(-0.5, 3.0)
>>> float(r), float(dr)  # (-0.5)^3 and 3 (-0.5)^2
(-0.125, 0.75)
"""

from __future__ import annotations

import math

import numba
import numpy as np

from multilevel.engine.kernels.common import prior_logp_grad
from multilevel.engine.kernels.marginal import (
    marginal_loglik_draws,
    marginal_posterior,
    recover_draws,
)

__all__ = [
    "lag_corr",
    "serial_logp_grad",
    "serial_loglik_draws",
    "serial_recover_draws",
    "split_cross",
    "weighted_cross",
]


@numba.njit(cache=True, nogil=True)
def lag_corr(phi, lag):
    """``r = phi^lag`` and ``dr/dphi`` (a negative ``phi`` with an integer ``lag``)."""
    a = abs(phi)
    r = a ** lag
    dr = lag * a ** (lag - 1.0) if lag != 1.0 else 1.0
    if phi < 0.0:
        odd = int(lag) % 2 == 1
        r = -r if odd else r
        dr = dr if odd else -dr
    return r, dr


@numba.njit(cache=True, nogil=True)
def weighted_cross(phi, s0, cell_group, cell_lag, cell_count, cell_d, cell_c, w):
    """Fill ``w`` ``(G, m, m)`` with ``W_j(phi)``; return ``sum_j log|R_j|``."""
    w[:] = s0
    logdet = 0.0
    m = s0.shape[1]
    for k in range(cell_group.shape[0]):
        r, _ = lag_corr(phi, cell_lag[k])
        den = 1.0 - r * r
        f, g = r * r / den, r / den
        j = cell_group[k]
        for a in range(m):
            for b in range(m):
                w[j, a, b] += f * cell_d[k, a, b] - g * cell_c[k, a, b]
        logdet += cell_count[k] * math.log(den)
    return logdet


@numba.njit(cache=True, nogil=True)
def split_cross(w, q, ztz, ztx, zty, xtx, xty):
    """Split ``W`` into the marginal kernel's statistics; returns ``y'R^-1y``."""
    n_groups, m = w.shape[0], w.shape[1]
    p = m - q - 1
    xtx[:, :] = 0.0
    xty[:] = 0.0
    yty = 0.0
    for j in range(n_groups):
        for a in range(q):
            for b in range(q):
                ztz[j, a, b] = w[j, a, b]
            for k in range(p):
                ztx[j, a, k] = w[j, a, q + k]
            zty[j, a] = w[j, a, m - 1]
        for k in range(p):
            for l_ in range(p):
                xtx[k, l_] += w[j, q + k, q + l_]
            xty[k] += w[j, q + k, m - 1]
        yty += w[j, m - 1, m - 1]
    return yty


@numba.njit(cache=True, nogil=True)
def _pairing(g_a, g_c, beta, sigma2, mat, j, q):
    """``<G_j, mat>`` over the blocks of ``W`` (``zz``, ``zx``, ``zy``, ``xx``, ``xy``, ``yy``)."""
    m = mat.shape[0]
    p = m - q - 1
    acc = 0.0
    for a in range(q):
        for b in range(q):
            acc += g_a[j, a, b] * mat[a, b]
        bx = 0.0
        for k in range(p):
            bx += beta[k] * mat[a, q + k]
        acc += g_c[j, a] * (mat[a, m - 1] - bx)
    for k in range(p):
        for l_ in range(p):
            acc -= beta[k] * beta[l_] * mat[q + k, q + l_] / (2 * sigma2)
        acc += beta[k] * mat[q + k, m - 1] / sigma2
    acc -= mat[m - 1, m - 1] / (2 * sigma2)
    return acc


@numba.njit(cache=True, nogil=True)
def serial_logp_grad(theta, shift, s0, cell_group, cell_lag, cell_count, cell_d, cell_c, q,
                     n_total, b_fam, b_par, sd_fam, sd_par, sig_fam, sig_par, eta, correlated,
                     phi_lo, phi_hi, phi_fam, phi_par):
    """Unnormalised log posterior density and gradient at ``theta`` (module docstring)."""
    n_groups, m = s0.shape[0], s0.shape[1]
    p = m - q - 1
    z = theta[-1]
    lg = 1.0 / (1.0 + math.exp(-z))
    phi = phi_lo + (phi_hi - phi_lo) * lg
    w = np.empty_like(s0)
    logdet_r = weighted_cross(phi, s0, cell_group, cell_lag, cell_count, cell_d, cell_c, w)
    ztz, ztx, zty = np.empty((n_groups, q, q)), np.empty((n_groups, q, p)), np.empty((n_groups, q))
    xtx, xty = np.empty((p, p)), np.empty(p)
    yty = split_cross(w, q, ztz, ztx, zty, xtx, xty)
    g_a, g_c = np.zeros((n_groups, q, q)), np.zeros((n_groups, q))
    lp, g_inner, beta, sigma = marginal_posterior(
        theta[:-1], shift, ztz, ztx, zty, xtx, xty, yty, n_total, b_fam, b_par, sd_fam, sd_par,
        sig_fam, sig_par, eta, correlated, g_a, g_c, True)
    sigma2 = sigma * sigma
    g_phi = 0.0
    dmat = np.empty((m, m))
    for k in range(cell_group.shape[0]):
        r, dr = lag_corr(phi, cell_lag[k])
        den = 1.0 - r * r
        df, dg = 2 * r / (den * den), (1 + r * r) / (den * den)
        for a in range(m):
            for b in range(m):
                dmat[a, b] = df * cell_d[k, a, b] - dg * cell_c[k, a, b]
        g_phi += dr * (_pairing(g_a, g_c, beta, sigma2, dmat, cell_group[k], q)
                       + cell_count[k] * r / den)
    plp, pg = prior_logp_grad(phi_fam, phi_par, phi)
    grad = np.empty(theta.shape[0])
    grad[:-1] = g_inner
    lp += -0.5 * logdet_r + plp + math.log(phi_hi - phi_lo) + math.log(lg) + math.log1p(-lg)
    grad[-1] = (g_phi + pg) * (phi_hi - phi_lo) * lg * (1.0 - lg) + 1.0 - 2.0 * lg
    return lp, grad


@numba.njit(cache=True, nogil=True)
def _draw_stats(phi, s0, cells, q):
    """Statistics at one ``phi``: the marginal kernel's arrays and ``log|R|``."""
    cell_group, cell_lag, cell_count, cell_d, cell_c = cells
    n_groups, m = s0.shape[0], s0.shape[1]
    p = m - q - 1
    w = np.empty_like(s0)
    logdet_r = weighted_cross(phi, s0, cell_group, cell_lag, cell_count, cell_d, cell_c, w)
    ztz, ztx, zty = np.empty((n_groups, q, q)), np.empty((n_groups, q, p)), np.empty((n_groups, q))
    xtx, xty = np.empty((p, p)), np.empty(p)
    yty = split_cross(w, q, ztz, ztx, zty, xtx, xty)
    return ztz, ztx, zty, xtx, xty, yty, logdet_r


@numba.njit(cache=True, nogil=True)
def serial_recover_draws(beta, lam, sigma, phi, s0, cell_group, cell_lag, cell_count, cell_d,
                         cell_c, q, eps):
    """``(draws, groups, q)`` exact conditional draws of ``u`` given each draw's ``phi``."""
    n_draws = eps.shape[0]
    out = np.empty(eps.shape)
    cells = (cell_group, cell_lag, cell_count, cell_d, cell_c)
    for s in range(n_draws):
        ztz, ztx, zty, _, _, _, _ = _draw_stats(phi[s], s0, cells, q)
        out[s] = recover_draws(beta[s:s + 1], lam[s:s + 1], sigma[s:s + 1], ztz, ztx, zty,
                               eps[s:s + 1])[0]
    return out


@numba.njit(cache=True, nogil=True)
def serial_loglik_draws(beta, lam, sigma, phi, s0, cell_group, cell_lag, cell_count, cell_d,
                        cell_c, q, n_total):
    """``(draws,)`` marginal log-likelihood ``log p(y | beta, Lambda, sigma, phi)``."""
    n_draws = beta.shape[0]
    out = np.empty(n_draws)
    cells = (cell_group, cell_lag, cell_count, cell_d, cell_c)
    for s in range(n_draws):
        ztz, ztx, zty, xtx, xty, yty, logdet_r = _draw_stats(phi[s], s0, cells, q)
        out[s] = marginal_loglik_draws(beta[s:s + 1], lam[s:s + 1], sigma[s:s + 1], ztz, ztx, zty,
                                       xtx, xty, yty, n_total)[0] - 0.5 * logdet_r
    return out
