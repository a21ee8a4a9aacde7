"""The marginal Gaussian log-density and its gradient, compiled once per install by numba.

This is the same posterior as :func:`multilevel.model.marginal.build_marginal_model` (the
readable PyMC definition; the tests check that both give the same log-density at random
points), written as one generic function of the sufficient statistics so that no graph is
compiled per fit: numba caches the machine code on disk (``cache=True``), and a new dataset
only changes the arrays passed in.

Unconstrained parameters ``theta = (beta_c, log s, x, log sigma)``:

* ``beta = T beta_c``: the fixed effects on the user's scale. With an intercept, ``T`` shifts it
  by ``-xbar' beta_c`` (the sampler sees centred predictors, which decorrelates intercept and
  slopes); the map is linear with unit Jacobian, so the user's priors on ``beta`` apply exactly.
* ``s = exp(log s)``: group-level sds (log-Jacobian ``sum log s``).
* ``x``: for a correlated factor, row ``i`` of the correlation Cholesky factor is
  ``L_i = (x_i, 1) / sqrt(1 + |x_i|^2)`` (``x_i`` has ``i`` entries). With the LKJ(eta) density
  on ``R = L L'`` and this map's Jacobian, the log-density of ``x`` is
  ``-(q - 1 + 2 eta) / 2 * sum_i log(1 + |x_i|^2)`` up to a constant.
* ``sigma = exp(log sigma)``.

Gradient of the marginal log-likelihood (notation of :mod:`multilevel.model.marginal`;
``P = Lambda / sigma``, ``A_j = Z_j'Z_j``, ``c_j = Z_j'r_j``, ``M_j = I + P'A_jP``,
``e_j = M_j^{-1} P'c_j``, ``Q = sum_j c_j'P e_j``)::

    l      = -N/2 log(2 pi sigma^2) - 1/2 sum_j log|M_j| - (RSS - Q) / (2 sigma^2)
    dl/dbeta = (X'y - X'X beta - sum_j (Z_j'X_j)' P e_j) / sigma^2
    G_P    = -sum_j A_j P M_j^{-1} + sum_j (c_j - A_j P e_j) e_j' / sigma^2
    dl/dLambda = G_P / sigma
    dl/dsigma  = -N / sigma + (RSS - Q) / sigma^3 - tr(G_P' P) / sigma

:func:`recover_draws` draws the group effects exactly from their conditional posterior at every
posterior draw of the hyperparameters (``v_j | y ~ N(M_j^-1 Lambda'c_j / sigma^2, M_j^-1)``,
``u_j = Lambda v_j``), and :func:`marginal_loglik_draws` evaluates the marginal log-likelihood
at every draw; both loop over draws and groups with q x q scalar code, so 4,000 draws of 2,000
groups take about a second.

Small matrices (q x q) are factorized with scalar loops, so the cost is O(groups q^3) with no
LAPACK call per group.

Examples
--------
>>> import numpy as np
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> from multilevel.model import resolve_priors
>>> from multilevel.engine.marginal import marginal_problem
>>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                  datasets.load("sleepstudy"))
>>> problem = marginal_problem(d, resolve_priors(d))
>>> lp, grad = logp_grad(problem.initial_point(np.random.default_rng(1)), *problem.args.values())
>>> grad.shape
(6,)
"""

from __future__ import annotations

import math

import numba
import numpy as np

from multilevel.engine.kernels.common import (
    chol_inplace,
    chol_inverse,
    corr_chol,
    cross_residual,
    fixed_terms,
    matvec,
    penalized_cross,
    prior_logp_grad,
    scale_corr_terms,
    solve_lower,
    solve_upper_t,
)

__all__ = ["logp_grad", "marginal_lik", "marginal_loglik_draws", "marginal_posterior",
           "recover_draws"]


@numba.njit(cache=True, nogil=True)
def marginal_lik(beta, pmat, sigma, ztz, ztx, zty, xtx, xty, yty, n_total, g_a, g_c, want):
    """The marginal log-likelihood and its gradient in ``beta``, ``P = Lambda / sigma`` and
    ``sigma`` (module docstring); with ``want``, also each group's ``g_a[j] = dl/dA_j`` and
    ``g_c[j] = dl/dc_j`` (``A_j = Z_j'Z_j``, ``c_j = Z_j'r_j``), which the AR(1) kernel
    (:mod:`multilevel.engine.kernels.serial`) chains to ``phi``."""
    n_groups, q, p = ztx.shape
    sigma2 = sigma * sigma
    rss = yty - 2 * np.dot(beta, xty) + np.dot(beta, xtx @ beta)
    g_beta_acc = np.zeros(p)
    g_p = np.zeros((q, q))
    logdet = 0.0
    quad = 0.0
    m = np.empty((q, q))
    minv = np.empty((q, q))
    work = np.empty((q, q))
    ap = np.empty((q, q))
    c = np.empty(q)
    d = np.empty(q)
    e = np.empty(q)
    pe = np.empty(q)
    for j in range(n_groups):
        cross_residual(j, beta, zty, ztx, c)
        penalized_cross(ztz[j], pmat, ap, m, q)
        chol_inplace(m, q)
        for a in range(q):
            logdet += 2 * math.log(m[a, a])
        chol_inverse(m, q, minv, work)
        matvec(pmat, c, d, True)  # d = P'c
        matvec(minv, d, e, False)  # e = M^-1 d
        matvec(pmat, e, pe, False)  # P e
        for a in range(q):
            quad += d[a] * e[a]
        for k in range(p):
            acc = 0.0
            for a in range(q):
                acc += ztx[j, a, k] * pe[a]
            g_beta_acc[k] += acc
        for a in range(q):
            resid = c[a]
            for k in range(q):
                resid -= ap[a, k] * e[k]
            for b in range(q):
                acc = 0.0
                for k in range(q):
                    acc += ap[a, k] * minv[k, b]
                g_p[a, b] += resid * e[b] / sigma2 - acc
        if want:
            for a in range(q):
                g_c[j, a] = pe[a] / sigma2
                for b in range(q):
                    acc = 0.0
                    for k in range(q):
                        for l_ in range(q):
                            acc += pmat[a, k] * minv[k, l_] * pmat[b, l_]
                    g_a[j, a, b] = -0.5 * (acc + pe[a] * pe[b] / sigma2)
    lp = -0.5 * n_total * math.log(2 * math.pi * sigma2) - 0.5 * logdet - (rss - quad) / (2 * sigma2)
    g_beta = (xty - xtx @ beta - g_beta_acc) / sigma2
    g_sigma = -n_total / sigma + (rss - quad) / (sigma2 * sigma) - np.sum(g_p * pmat) / sigma
    return lp, g_beta, g_p, g_sigma


@numba.njit(cache=True, nogil=True)
def marginal_posterior(theta, shift, ztz, ztx, zty, xtx, xty, yty, n_total, b_fam, b_par, sd_fam,
                       sd_par, sig_fam, sig_par, eta, correlated, g_a, g_c, want):
    """:func:`logp_grad` at ``theta`` given the statistics, plus ``beta`` and ``sigma`` (and the
    per-group gradients of :func:`marginal_lik` with ``want``)."""
    p, q = ztx.shape[2], ztx.shape[1]
    n_cor = q * (q - 1) // 2 if correlated else 0
    grad = np.zeros(theta.shape[0])
    beta = theta[:p].copy()
    beta[0] -= np.dot(shift, theta[:p]) if shift.shape[0] == p else 0.0
    s = np.exp(theta[p:p + q])
    chol, logsum = corr_chol(theta[p + q:p + q + n_cor], q, correlated)
    sigma = math.exp(theta[p + q + n_cor])
    pmat = np.empty((q, q))
    for a in range(q):
        for b in range(q):
            pmat[a, b] = s[a] * chol[a, b] / sigma
    lp, g_beta, g_p, g_sigma = marginal_lik(beta, pmat, sigma, ztz, ztx, zty, xtx, xty, yty,
                                            n_total, g_a, g_c, want)
    lp += fixed_terms(beta, g_beta, b_fam, b_par, shift, grad)
    lp += scale_corr_terms(theta, p, p + q, q, s, chol, logsum, g_p / sigma, correlated, eta,
                           sd_fam, sd_par, grad, False)
    plp, pg = prior_logp_grad(sig_fam, sig_par, sigma)
    lp += plp + theta[-1]
    grad[-1] = (g_sigma + pg) * sigma + 1.0
    return lp, grad, beta, sigma


@numba.njit(cache=True, nogil=True)
def logp_grad(theta, shift, ztz, ztx, zty, xtx, xty, yty, n_total, b_fam, b_par, sd_fam, sd_par,
              sig_fam, sig_par, eta, correlated):
    """Unnormalised log posterior density and its gradient at ``theta`` (module docstring)."""
    none3, none2 = np.empty((0, 0, 0)), np.empty((0, 0))
    lp, grad, _, _ = marginal_posterior(theta, shift, ztz, ztx, zty, xtx, xty, yty, n_total, b_fam,
                                        b_par, sd_fam, sd_par, sig_fam, sig_par, eta, correlated,
                                        none3, none2, False)
    return lp, grad


@numba.njit(cache=True, nogil=True)
def _group_system(j, beta, lam, sigma2, ztz, ztx, zty, m, w, c):
    """Fill ``c = Z_j'r_j``, ``w = Lambda'c`` and ``m``, the Cholesky factor of
    ``I + Lambda'A_jLambda / sigma^2``."""
    q = ztx.shape[1]
    cross_residual(j, beta, zty, ztx, c)
    matvec(lam, c, w, True)  # w = Lambda'c
    for a in range(q):
        for b in range(q):
            acc = 1.0 if a == b else 0.0
            for k in range(q):
                for m_ in range(q):
                    acc += lam[k, a] * ztz[j, k, m_] * lam[m_, b] / sigma2
            m[a, b] = acc
    chol_inplace(m, q)


@numba.njit(cache=True, nogil=True)
def recover_draws(beta, lam, sigma, ztz, ztx, zty, eps):
    """``(draws, groups, q)`` exact conditional draws of ``u`` (``eps`` standard normal)."""
    n_draws, n_groups, q = eps.shape
    out = np.empty((n_draws, n_groups, q))
    m = np.empty((q, q))
    w = np.empty(q)
    c = np.empty(q)
    half = np.empty(q)
    v = np.empty(q)
    for s in range(n_draws):
        sigma2 = sigma[s] * sigma[s]
        for j in range(n_groups):
            _group_system(j, beta[s], lam[s], sigma2, ztz, ztx, zty, m, w, c)
            solve_lower(m, w, half, q)
            for a in range(q):
                half[a] = half[a] / sigma2 + eps[s, j, a]
            solve_upper_t(m, half, v, q)  # M^-1 w / sigma^2 + L^-T eps
            for a in range(q):
                acc = 0.0
                for k in range(q):
                    acc += lam[s, a, k] * v[k]
                out[s, j, a] = acc
    return out


@numba.njit(cache=True, nogil=True)
def marginal_loglik_draws(beta, lam, sigma, ztz, ztx, zty, xtx, xty, yty, n_total):
    """``(draws,)`` marginal log-likelihood ``log p(y | beta, Lambda, sigma)`` at every draw."""
    n_draws = beta.shape[0]
    n_groups, q, p = ztx.shape
    out = np.empty(n_draws)
    m = np.empty((q, q))
    w = np.empty(q)
    c = np.empty(q)
    half = np.empty(q)
    for s in range(n_draws):
        sigma2 = sigma[s] * sigma[s]
        b = beta[s]
        rss = yty - 2 * np.dot(b, xty) + np.dot(b, xtx @ b)
        logdet = 0.0
        quad = 0.0
        for j in range(n_groups):
            _group_system(j, b, lam[s], sigma2, ztz, ztx, zty, m, w, c)
            solve_lower(m, w, half, q)
            for a in range(q):
                logdet += 2 * math.log(m[a, a])
                quad += half[a] * half[a]
        out[s] = (-0.5 * n_total * math.log(2 * math.pi * sigma2) - 0.5 * logdet
                  - 0.5 * (rss - quad / sigma2) / sigma2)
    return out
