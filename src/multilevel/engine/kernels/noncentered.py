"""Non-centered log-density and gradient for any family and grouping factors, by numba.

The compile-free counterpart of :func:`multilevel.model.build_model` with
``parameterization='noncentered'`` (the tests check both give the same log-density
differences at random points): for every factor ``k``, ``u_kj = Lambda_k zeta_kj`` with
``Lambda_k = diag(s_k) L_k`` and ``zeta_kj ~ N(0, I)``, and

``eta_i = x_i' beta + sum_k z_ik' u_{k, j_k(i)}``.

Likelihood codes: ``0`` Gaussian ``N(eta, sigma)``, ``1`` binomial ``Bin(n_i, logit^-1 eta_i)``
(bernoulli rows are binomial rows with ``n_i = 1``; identical rows may be collapsed first),
``2`` Gaussian with known per-row sds ``N(eta_i, se_i)`` (``se`` passed in ``trials``). With
``r_i = dl/deta_i`` (``(y_i - eta_i)/sigma^2`` or ``y_i - n_i p_i``) the gradient is
``dl/dbeta = X'r``, ``dl/du_kj = sum_{i in j} z_ik r_i``, ``dl/dzeta_kj = Lambda_k' dl/du_kj``
and ``dl/dLambda_k = sum_j (dl/du_kj) zeta_kj'``; the transforms of ``s``, the correlation
parameters ``x`` and ``sigma`` are those of :mod:`multilevel.engine.kernels.marginal`.

Parameter layout: ``beta_c`` (p), then per factor ``log s`` (q_k), ``x`` (q_k(q_k-1)/2 when
correlated), ``zeta`` (levels_k x q_k, row-major), then ``log sigma`` (Gaussian only).

Examples
--------
>>> import numpy as np
>>> layout = factor_layout(np.array([2, 1]), np.array([10, 5]), np.array([True, False]), p=3)
>>> layout.tolist()  # per factor: start of log s, of x, of zeta
[[3, 5, 6], [26, 27, 27]]
"""

from __future__ import annotations

import math

import numba
import numpy as np

from multilevel.engine.kernels.common import corr_chol, prior_logp_grad
from multilevel.engine.kernels.rows import columns_dot, columns_times, logistic_rows

__all__ = ["factor_layout", "nc_logp_grad", "rows_loglik_draws"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def factor_layout(q: np.ndarray, levels: np.ndarray, correlated: np.ndarray, p: int) -> np.ndarray:
    """``(K, 3)`` start offsets of each factor's ``log s``, ``x`` and ``zeta`` in ``theta``."""
    out = np.zeros((len(q), 3), dtype=np.int64)
    pos = p
    for k in range(len(q)):
        n_cor = q[k] * (q[k] - 1) // 2 if correlated[k] else 0
        out[k] = (pos, pos + q[k], pos + q[k] + n_cor)
        pos += q[k] + n_cor + levels[k] * q[k]
    return out


@numba.njit(cache=True, nogil=True)
def nc_logp_grad(theta, shift, XT, y, trials, ZT, z_start, idx, q, levels, correlated, layout,
                 b_fam, b_par, sd_fam, sd_par, sd_start, eta_lkj, family, sig_fam, sig_par):
    """Unnormalised log posterior and gradient at ``theta`` (module docstring); ``XT`` and
    ``ZT`` are the transposed design matrices (:mod:`~multilevel.engine.kernels.rows`)."""
    p, n = XT.shape
    n_factors = q.shape[0]
    grad = np.zeros(theta.shape[0])
    beta = theta[:p].copy()
    if shift.shape[0] == p:
        beta[0] -= np.dot(shift, theta[:p])
    lams = np.zeros((n_factors, 8, 8))
    chols = np.zeros((n_factors, 8, 8))
    lp = 0.0
    for k in range(n_factors):
        qk = q[k]
        n_cor = qk * (qk - 1) // 2 if correlated[k] else 0
        s0, x0, z0 = layout[k, 0], layout[k, 1], layout[k, 2]
        chol, logsum = corr_chol(theta[x0:x0 + n_cor], qk, correlated[k])
        for a in range(qk):
            s_a = math.exp(theta[s0 + a])
            for b in range(qk):
                chols[k, a, b] = chol[a, b]
                lams[k, a, b] = s_a * chol[a, b]
        if correlated[k]:
            lp += -0.5 * (qk - 1 + 2 * eta_lkj[k]) * logsum
        for m in range(levels[k] * qk):
            zv = theta[z0 + m]
            lp -= 0.5 * zv * zv + _HALF_LOG_2PI
            grad[z0 + m] = -zv
    sigma = math.exp(theta[-1]) if family == 0 else 1.0
    g_sigma = 0.0
    g_beta = np.empty(p)
    g_u = np.zeros(theta.shape[0])  # dl/du stored at the zeta positions
    u = np.empty(theta.shape[0])  # u_kj = Lambda_k zeta_kj, stored at the zeta positions
    for k in range(n_factors):
        qk = q[k]
        for j in range(levels[k]):
            base = layout[k, 2] + j * qk
            for a in range(qk):
                u_a = 0.0
                for b in range(a + 1):
                    u_a += lams[k, a, b] * theta[base + b]
                u[base + a] = u_a
    eta = np.empty(n)
    _linear_predictor(XT, ZT, beta, u, z_start, idx, q, layout[:, 2], eta)
    resid = np.empty(n)  # dl/deta per row
    if family == 1:
        lp += logistic_rows(eta, y, trials, resid)
    else:
        for i in range(n):
            sd_i = sigma if family == 0 else trials[i]
            r = y[i] - eta[i]
            lp += -0.5 * (r / sd_i) ** 2 - math.log(sd_i) - _HALF_LOG_2PI
            resid[i] = r / (sd_i * sd_i)
            g_sigma += r * r / sd_i**3 - 1.0 / sd_i
    columns_dot(XT, resid, g_beta)
    for k in range(n_factors):
        qk, z0, zs = q[k], layout[k, 2], z_start[k]
        for a in range(qk):
            for i in range(n):
                g_u[z0 + idx[i, k] * qk + a] += ZT[zs + a, i] * resid[i]
    for c in range(p):
        plp, pg = prior_logp_grad(b_fam[c], b_par[c], beta[c])
        lp += plp
        g_beta[c] += pg
    for c in range(p):
        grad[c] = g_beta[c]
        if shift.shape[0] == p:
            grad[c] -= shift[c] * g_beta[0]
    for k in range(n_factors):
        qk = q[k]
        s0, x0, z0 = layout[k, 0], layout[k, 1], layout[k, 2]
        g_lam = np.zeros((qk, qk))
        for j in range(levels[k]):
            base = z0 + j * qk
            for a in range(qk):
                gu = g_u[base + a]
                for b in range(a + 1):
                    g_lam[a, b] += gu * theta[base + b]
                    grad[base + b] += lams[k, a, b] * gu
        for a in range(qk):
            s_a = math.exp(theta[s0 + a])
            g_s = 0.0
            for b in range(a + 1):
                g_s += g_lam[a, b] * chols[k, a, b]
            plp, pg = prior_logp_grad(sd_fam[sd_start[k] + a], sd_par[sd_start[k] + a], s_a)
            lp += plp + theta[s0 + a]
            grad[s0 + a] = (g_s + pg) * s_a + 1.0
        if correlated[k]:
            pos = x0
            for i in range(1, qk):
                x = theta[pos:pos + i]
                r2 = np.dot(x, x)
                norm = math.sqrt(1.0 + r2)
                s_i = math.exp(theta[s0 + i])
                dot = s_i * g_lam[i, i]
                for m in range(i):
                    dot += s_i * g_lam[i, m] * x[m]
                for m in range(i):
                    grad[pos + m] = s_i * g_lam[i, m] / norm - x[m] * dot / norm**3
                    grad[pos + m] -= (qk - 1 + 2 * eta_lkj[k]) * x[m] / (1.0 + r2)
                pos += i
    if family == 0:
        plp, pg = prior_logp_grad(sig_fam, sig_par, sigma)
        lp += plp + theta[-1]
        grad[-1] = (g_sigma + pg) * sigma + 1.0
    return lp, grad


@numba.njit(cache=True, nogil=True, inline="always")
def _linear_predictor(XT, ZT, beta, u, z_start, idx, q, u_start, eta):
    """``eta = X beta + sum_k Z_k u_k[idx_k]`` (``u``: factor ``k``'s ``levels x q`` effects
    row-major from ``u_start[k]``), a column at a time."""
    columns_times(XT, beta, eta)
    for k in range(q.shape[0]):
        qk, u0, zs = q[k], u_start[k], z_start[k]
        for a in range(qk):
            for i in range(eta.shape[0]):
                eta[i] += ZT[zs + a, i] * u[u0 + idx[i, k] * qk + a]


@numba.njit(cache=True, nogil=True)
def rows_loglik_draws(beta, u, sigma, XT, y, trials, ZT, z_start, idx, q, u_start, family):
    """Summed log-likelihood of the rows at every draw, given the group effects: ``beta``
    ``(draws, p)``, ``u`` ``(draws, sum_k levels_k q_k)`` (every factor's ``levels x q`` effects
    row-major from ``u_start[k]``), ``sigma`` ``(draws,)``; the family codes of
    :func:`nc_logp_grad`, binomial without its ``log C(n, y)`` constant."""
    n = XT.shape[1]
    out = np.zeros(beta.shape[0])
    eta, resid = np.empty(n), np.empty(n)
    for d in range(beta.shape[0]):
        _linear_predictor(XT, ZT, beta[d], u[d], z_start, idx, q, u_start, eta)
        if family == 1:
            out[d] = logistic_rows(eta, y, trials, resid)
            continue
        total = 0.0
        for i in range(n):
            sd_i = sigma[d] if family == 0 else trials[i]
            total += -0.5 * ((y[i] - eta[i]) / sd_i) ** 2 - math.log(sd_i) - _HALF_LOG_2PI
        out[d] = total
    return out
