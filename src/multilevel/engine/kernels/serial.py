r"""The marginal Gaussian log-density with AR(1)/CAR(1) residuals, and its gradient in ``phi``.

Per grouping level ``j``, ``y_j ~ N(X_j beta, Z_j Sigma Z_j' + sigma^2 R_j(phi))``. Every
``R^-1``-weighted cross-product of the stacked rows ``v = (z, x, y)`` is ``W_j(phi) = S_j +
sum_cells [f(r) D - g(r) C]`` with ``r = phi^lag``, ``f = r^2/(1 - r^2)``, ``g = r/(1 - r^2)``
(:mod:`multilevel.design.serial`), and ``log|R_j| = sum_cells n log(1 - r^2)``. With ``W_j``
in place of the plain sums, the likelihood is the one of :mod:`multilevel.engine.kernels.marginal`
(the Woodbury identity with ``R^-1`` in place of ``I``) minus ``1/2 sum_j log|R_j|``.

Only the ``z`` rows of ``W_j`` are needed per group; the ``(x, y)`` block enters summed over
groups, so it is kept per distinct lag (:class:`~multilevel.design.serial.SerialStats`). The
gradient in ``phi`` is the chain rule through ``W``: the marginal kernel returns each
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
def lag_weights(phi, lags):
    """Per distinct lag ``f = r^2/(1-r^2)``, ``g = r/(1-r^2)``, ``log(1 - r^2)``, their
    derivatives ``df/dr``, ``dg/dr`` and ``dr/dphi`` (``r = phi^lag``): ``(6, L)``."""
    out = np.empty((6, lags.shape[0]))
    for l_ in range(lags.shape[0]):
        r, dr = lag_corr(phi, lags[l_])
        den = 1.0 - r * r
        out[0, l_], out[1, l_], out[2, l_] = r * r / den, r / den, math.log(den)
        out[3, l_], out[4, l_] = 2 * r / (den * den), (1 + r * r) / (den * den)
        out[5, l_] = dr
    return out


@numba.njit(cache=True, nogil=True)
def weighted_cross(phi, s0z, s0x, cell_group, cell_lag_index, cell_dz, cell_cz, lags, lag_count,
                   lag_dx, lag_cx, wz, wx):
    """Fill ``wz`` ``(G, q, m)`` with the ``z`` rows of ``W_j(phi)`` and ``wx`` with the
    ``(x, y)`` block of ``sum_j W_j(phi)``; return ``sum_j log|R_j|``."""
    wz[:] = s0z
    wx[:] = s0x
    q, m = s0z.shape[1], s0z.shape[2]
    w = lag_weights(phi, lags)
    for k in range(cell_group.shape[0]):
        f, g = w[0, cell_lag_index[k]], w[1, cell_lag_index[k]]
        j = cell_group[k]
        for a in range(q):
            for b in range(m):
                wz[j, a, b] += f * cell_dz[k, a, b] - g * cell_cz[k, a, b]
    logdet = 0.0
    n = s0x.shape[0]
    for l_ in range(lags.shape[0]):
        for a in range(n):
            for b in range(n):
                wx[a, b] += w[0, l_] * lag_dx[l_, a, b] - w[1, l_] * lag_cx[l_, a, b]
        logdet += lag_count[l_] * w[2, l_]
    return logdet


@numba.njit(cache=True, nogil=True)
def split_cross(wz, wx, ztz, ztx, zty, xtx, xty):
    """Split ``W`` into the marginal kernel's statistics; returns ``y'R^-1y``."""
    n_groups, q, m = wz.shape
    p = m - q - 1
    for j in range(n_groups):
        for a in range(q):
            for b in range(q):
                ztz[j, a, b] = wz[j, a, b]
            for k in range(p):
                ztx[j, a, k] = wz[j, a, q + k]
            zty[j, a] = wz[j, a, m - 1]
    for k in range(p):
        for l_ in range(p):
            xtx[k, l_] = wx[k, l_]
        xty[k] = wx[k, p]
    return wx[p, p]


@numba.njit(cache=True, nogil=True)
def _dphi(phi, beta, sigma, g_a, g_c, cell_group, cell_lag_index, cell_dz, cell_cz, lags,
          lag_count, lag_dx, lag_cx):
    """``dl/dphi`` through ``W`` (module docstring): the ``z`` rows pair with each group's
    gradient (``dl/dA_j``, ``dl/dc_j``), the ``(x, y)`` block with the global one."""
    q, m = cell_dz.shape[1], cell_dz.shape[2]
    p = m - q - 1
    sigma2 = sigma * sigma
    w = lag_weights(phi, lags)
    out = 0.0
    for k in range(cell_group.shape[0]):
        li = cell_lag_index[k]
        df, dg = w[3, li] * w[5, li], w[4, li] * w[5, li]  # d/dphi of f and g
        j = cell_group[k]
        acc = 0.0
        for a in range(q):
            for b in range(q):
                acc += g_a[j, a, b] * (df * cell_dz[k, a, b] - dg * cell_cz[k, a, b])
            bx = 0.0
            for c in range(p):
                bx += beta[c] * (df * cell_dz[k, a, q + c] - dg * cell_cz[k, a, q + c])
            acc += g_c[j, a] * (df * cell_dz[k, a, m - 1] - dg * cell_cz[k, a, m - 1] - bx)
        out += acc
    for l_ in range(lags.shape[0]):
        df, dg, dr = w[3, l_], w[4, l_], w[5, l_]
        acc = 0.0
        for a in range(p):
            for b in range(p):
                acc -= beta[a] * beta[b] * (df * lag_dx[l_, a, b] - dg * lag_cx[l_, a, b])
            acc += 2.0 * beta[a] * (df * lag_dx[l_, a, p] - dg * lag_cx[l_, a, p])
        acc -= df * lag_dx[l_, p, p] - dg * lag_cx[l_, p, p]
        out += dr * (acc / (2.0 * sigma2) + lag_count[l_] * w[1, l_])  # d log|R| / dr: n r/(1-r^2)
    return out


@numba.njit(cache=True, nogil=True)
def _draw_stats(phi, s0z, s0x, cells):
    """The marginal kernel's statistics at one ``phi``, and ``log|R|``."""
    cell_group, cell_lag_index, cell_dz, cell_cz, lags, lag_count, lag_dx, lag_cx = cells
    n_groups, q, m = s0z.shape
    p = m - q - 1
    wz, wx = np.empty_like(s0z), np.empty_like(s0x)
    logdet_r = weighted_cross(phi, s0z, s0x, cell_group, cell_lag_index, cell_dz, cell_cz, lags,
                              lag_count, lag_dx, lag_cx, wz, wx)
    ztz, ztx, zty = np.empty((n_groups, q, q)), np.empty((n_groups, q, p)), np.empty((n_groups, q))
    xtx, xty = np.empty((p, p)), np.empty(p)
    yty = split_cross(wz, wx, ztz, ztx, zty, xtx, xty)
    return ztz, ztx, zty, xtx, xty, yty, logdet_r


@numba.njit(cache=True, nogil=True)
def serial_logp_grad(theta, shift, s0z, s0x, cell_group, cell_lag_index, cell_dz, cell_cz, lags,
                     lag_count, lag_dx, lag_cx, n_total, b_fam, b_par, sd_fam, sd_par, sig_fam,
                     sig_par, eta, correlated, phi_lo, phi_hi, phi_fam, phi_par):
    """Unnormalised log posterior density and gradient at ``theta`` (module docstring)."""
    n_groups, q = s0z.shape[0], s0z.shape[1]
    z = theta[-1]
    lg = 1.0 / (1.0 + math.exp(-z))
    phi = phi_lo + (phi_hi - phi_lo) * lg
    if lg <= 0.0 or lg >= 1.0 or abs(phi) >= 1.0:
        # z so far out that phi rounds onto the edge of its range: R(phi) is singular there
        # (an optimizer's or a divergent trajectory's step, never a typical draw)
        return -np.inf, np.zeros(theta.shape[0])
    cells = (cell_group, cell_lag_index, cell_dz, cell_cz, lags, lag_count, lag_dx, lag_cx)
    ztz, ztx, zty, xtx, xty, yty, logdet_r = _draw_stats(phi, s0z, s0x, cells)
    g_a, g_c = np.zeros((n_groups, q, q)), np.zeros((n_groups, q))
    lp, g_inner, beta, sigma = marginal_posterior(
        theta[:-1], shift, ztz, ztx, zty, xtx, xty, yty, n_total, b_fam, b_par, sd_fam, sd_par,
        sig_fam, sig_par, eta, correlated, g_a, g_c, True)
    g_phi = _dphi(phi, beta, sigma, g_a, g_c, cell_group, cell_lag_index, cell_dz, cell_cz, lags,
                  lag_count, lag_dx, lag_cx)
    plp, pg = prior_logp_grad(phi_fam, phi_par, phi)
    grad = np.empty(theta.shape[0])
    grad[:-1] = g_inner
    lp += -0.5 * logdet_r + plp + math.log(phi_hi - phi_lo) + math.log(lg) + math.log1p(-lg)
    grad[-1] = (g_phi + pg) * (phi_hi - phi_lo) * lg * (1.0 - lg) + 1.0 - 2.0 * lg
    return lp, grad


@numba.njit(cache=True, nogil=True)
def serial_recover_draws(beta, lam, sigma, phi, s0z, s0x, cell_group, cell_lag_index, cell_dz, cell_cz,
                         lags, lag_count, lag_dx, lag_cx, eps):
    """``(draws, groups, q)`` exact conditional draws of ``u`` given each draw's ``phi``."""
    n_draws = eps.shape[0]
    out = np.empty(eps.shape)
    cells = (cell_group, cell_lag_index, cell_dz, cell_cz, lags, lag_count, lag_dx, lag_cx)
    for s in range(n_draws):
        ztz, ztx, zty, _, _, _, _ = _draw_stats(phi[s], s0z, s0x, cells)
        out[s] = recover_draws(beta[s:s + 1], lam[s:s + 1], sigma[s:s + 1], ztz, ztx, zty,
                               eps[s:s + 1])[0]
    return out


@numba.njit(cache=True, nogil=True)
def serial_loglik_draws(beta, lam, sigma, phi, s0z, s0x, cell_group, cell_lag_index, cell_dz, cell_cz,
                        lags, lag_count, lag_dx, lag_cx, n_total):
    """``(draws,)`` marginal log-likelihood ``log p(y | beta, Lambda, sigma, phi)``."""
    n_draws = beta.shape[0]
    out = np.empty(n_draws)
    cells = (cell_group, cell_lag_index, cell_dz, cell_cz, lags, lag_count, lag_dx, lag_cx)
    for s in range(n_draws):
        ztz, ztx, zty, xtx, xty, yty, logdet_r = _draw_stats(phi[s], s0z, s0x, cells)
        out[s] = marginal_loglik_draws(beta[s:s + 1], lam[s:s + 1], sigma[s:s + 1], ztz, ztx, zty,
                                       xtx, xty, yty, n_total)[0] - 0.5 * logdet_r
    return out
