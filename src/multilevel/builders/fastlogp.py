"""The marginal Gaussian log-density and its gradient, compiled once per install by numba.

This is the same posterior as :func:`multilevel.builders.marginal.build_marginal_model` (the
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

Gradient of the marginal log-likelihood (notation of :mod:`multilevel.builders.marginal`;
``P = Lambda / sigma``, ``A_j = Z_j'Z_j``, ``c_j = Z_j'r_j``, ``M_j = I + P'A_jP``,
``e_j = M_j^{-1} P'c_j``, ``Q = sum_j c_j'P e_j``)::

    l      = -N/2 log(2 pi sigma^2) - 1/2 sum_j log|M_j| - (RSS - Q) / (2 sigma^2)
    dl/dbeta = (X'y - X'X beta - sum_j (Z_j'X_j)' P e_j) / sigma^2
    G_P    = -sum_j A_j P M_j^{-1} + sum_j (c_j - A_j P e_j) e_j' / sigma^2
    dl/dLambda = G_P / sigma
    dl/dsigma  = -N / sigma + (RSS - Q) / sigma^3 - tr(G_P' P) / sigma

Small matrices (q x q) are factorized with scalar loops, so the cost is O(groups q^3) with no
LAPACK call per group.

Examples
--------
>>> import numpy as np
>>> lp, grad = prior_logp_grad(0, np.array([0.0, 1.0, 0.0]), 0.0)  # standard normal at 0
>>> round(lp, 6), abs(grad)
(-0.918939, 0.0)
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["FAMILY_CODES", "logp_grad", "fixed_terms", "prior_logp_grad",
           "scale_corr_terms"]

#: Prior family codes: locations below 10, scales (positive support) from 10.
FAMILY_CODES = {
    "Normal": 0, "StudentT": 1, "Cauchy": 2, "Flat": 3,
    "HalfNormal": 10, "HalfStudentT": 11, "HalfCauchy": 12, "Exponential": 13, "Gamma": 14,
    "InverseGamma": 15,
}
#: Parameter order in the ``(3,)`` parameter rows, per family.
FAMILY_PARAMS = {
    "Flat": (),
    "Normal": ("mu", "sigma"), "StudentT": ("nu", "mu", "sigma"), "Cauchy": ("alpha", "beta"),
    "HalfNormal": ("sigma",), "HalfStudentT": ("nu", "sigma"), "HalfCauchy": ("beta",),
    "Exponential": ("lam",), "Gamma": ("alpha", "beta"), "InverseGamma": ("alpha", "beta"),
}
_LOG_PI = math.log(math.pi)


@numba.njit(cache=True, nogil=True)
def _student(nu, mu, sigma, x):
    z = (x - mu) / sigma
    lp = (math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
          - math.log(sigma) - (nu + 1) / 2 * math.log1p(z * z / nu))
    return lp, -(nu + 1) * z / (sigma * (nu + z * z))


@numba.njit(cache=True, nogil=True)
def prior_logp_grad(family, par, x):
    """Log-density and its derivative of one prior at ``x`` (see :data:`FAMILY_CODES`)."""
    if family == 0:
        z = (x - par[0]) / par[1]
        return -0.5 * z * z - math.log(par[1]) - 0.5 * math.log(2 * math.pi), -z / par[1]
    if family == 1:
        return _student(par[0], par[1], par[2], x)
    if family == 3:
        return 0.0, 0.0
    if family == 2:
        z = (x - par[0]) / par[1]
        return -math.log(math.pi * par[1]) - math.log1p(z * z), -2 * z / (par[1] * (1 + z * z))
    if family == 10:
        z = x / par[0]
        return 0.5 * math.log(2 / math.pi) - math.log(par[0]) - 0.5 * z * z, -z / par[0]
    if family == 11:
        lp, g = _student(par[0], 0.0, par[1], x)
        return lp + math.log(2.0), g
    if family == 12:
        z = x / par[0]
        return math.log(2 / (math.pi * par[0])) - math.log1p(z * z), -2 * z / (par[0] * (1 + z * z))
    if family == 13:
        return math.log(par[0]) - par[0] * x, -par[0]
    if family == 14:
        a, b = par[0], par[1]
        return a * math.log(b) - math.lgamma(a) + (a - 1) * math.log(x) - b * x, (a - 1) / x - b
    a, b = par[0], par[1]
    return a * math.log(b) - math.lgamma(a) - (a + 1) * math.log(x) - b / x, -(a + 1) / x + b / (x * x)


@numba.njit(cache=True, nogil=True)
def _chol_inplace(m, q):
    """Lower Cholesky factor of the small SPD matrix ``m`` (overwritten)."""
    for j in range(q):
        s = m[j, j]
        for k in range(j):
            s -= m[j, k] * m[j, k]
        m[j, j] = math.sqrt(s)
        for i in range(j + 1, q):
            s = m[i, j]
            for k in range(j):
                s -= m[i, k] * m[j, k]
            m[i, j] = s / m[j, j]
        for i in range(j):
            m[i, j] = 0.0


@numba.njit(cache=True, nogil=True)
def _chol_inverse(c, q, out, inv_c):
    """``(C C')^{-1}`` from the lower factor ``c`` (``inv_c``: a q x q work array)."""
    inv_c[:, :] = 0.0
    for i in range(q):
        inv_c[i, i] = 1.0 / c[i, i]
        for j in range(i):
            s = 0.0
            for k in range(j, i):
                s -= c[i, k] * inv_c[k, j]
            inv_c[i, j] = s / c[i, i]
    for i in range(q):
        for j in range(q):
            s = 0.0
            for k in range(max(i, j), q):
                s += inv_c[k, i] * inv_c[k, j]
            out[i, j] = s


@numba.njit(cache=True, nogil=True)
def _matvec(mat, vec, out, transpose):
    """``out = mat @ vec`` (or ``mat.T @ vec``) for a small square matrix, no allocation."""
    q = out.shape[0]
    for a in range(q):
        acc = 0.0
        for k in range(q):
            acc += (mat[k, a] if transpose else mat[a, k]) * vec[k]
        out[a] = acc


@numba.njit(cache=True, nogil=True)
def _cross_residual(j, beta, zty, ztx, out):
    """``out = Z_j'y_j - Z_j'X_j beta`` (``Z_j' r_j``) for group ``j``."""
    q, p = ztx.shape[1], ztx.shape[2]
    for a in range(q):
        acc = zty[j, a]
        for k in range(p):
            acc -= ztx[j, a, k] * beta[k]
        out[a] = acc


@numba.njit(cache=True, nogil=True)
def _corr_chol(x, q, correlated):
    """Correlation Cholesky factor from ``x``, and ``sum_i log(1 + |x_i|^2)``."""
    chol = np.eye(q)
    total = 0.0
    if not correlated:
        return chol, total
    k = 0
    for i in range(1, q):
        r = 0.0
        for m in range(i):
            r += x[k + m] * x[k + m]
        norm = math.sqrt(1.0 + r)
        for m in range(i):
            chol[i, m] = x[k + m] / norm
        chol[i, i] = 1.0 / norm
        total += math.log1p(r)
        k += i
    return chol, total


@numba.njit(cache=True, nogil=True)
def fixed_terms(beta, g_beta, b_fam, b_par, shift, grad):
    """Priors of the fixed effects (user scale) and the chain rule through the intercept shift:
    fills ``grad[:p]`` from ``g_beta = dl/dbeta`` and returns the prior log-density."""
    p = beta.shape[0]
    lp = 0.0
    for k in range(p):
        plp, pg = prior_logp_grad(b_fam[k], b_par[k], beta[k])
        lp += plp
        g_beta[k] += pg
    grad[:p] = g_beta
    if shift.shape[0] == p:
        for k in range(p):
            grad[k] -= shift[k] * g_beta[0]
    return lp


@numba.njit(cache=True, nogil=True)
def scale_corr_terms(theta, ks, kx, q, s, chol, logsum, g_lam, correlated, eta, sd_fam, sd_par, grad):
    """Priors, log-Jacobians and chain rule of one factor's ``Lambda = diag(s) L``: fills
    ``grad`` at the ``log s`` (from ``ks``) and ``x`` (from ``kx``) positions from
    ``g_lam = dl/dLambda`` and returns the log-density terms."""
    lp = 0.0
    for a in range(q):
        g_s = 0.0
        for b in range(a + 1):
            g_s += g_lam[a, b] * chol[a, b]
        plp, pg = prior_logp_grad(sd_fam[a], sd_par[a], s[a])
        lp += plp + theta[ks + a]
        grad[ks + a] = (g_s + pg) * s[a] + 1.0
    if correlated:
        lp += -0.5 * (q - 1 + 2 * eta) * logsum
        k = kx
        for i in range(1, q):
            x = theta[k:k + i]
            r = np.dot(x, x)
            norm = math.sqrt(1.0 + r)
            gl = np.empty(i)
            for m_ in range(i):
                gl[m_] = s[i] * g_lam[i, m_]
            g_diag = s[i] * g_lam[i, i]
            dot = np.dot(gl, x) + g_diag
            for m_ in range(i):
                grad[k + m_] = gl[m_] / norm - x[m_] * dot / norm**3
                grad[k + m_] -= (q - 1 + 2 * eta) * x[m_] / (1.0 + r)
            k += i
    return lp


@numba.njit(cache=True, nogil=True)
def logp_grad(theta, shift, ztz, ztx, zty, xtx, xty, yty, n_total, b_fam, b_par, sd_fam, sd_par,
              sig_fam, sig_par, eta, correlated):
    """Unnormalised log posterior density and its gradient at ``theta`` (module docstring)."""
    n_groups, q, p = ztx.shape
    n_cor = q * (q - 1) // 2 if correlated else 0
    grad = np.zeros(theta.shape[0])
    beta = theta[:p].copy()
    beta[0] -= np.dot(shift, theta[:p]) if shift.shape[0] == p else 0.0
    s = np.exp(theta[p:p + q])
    chol, logsum = _corr_chol(theta[p + q:p + q + n_cor], q, correlated)
    sigma = math.exp(theta[p + q + n_cor])
    sigma2 = sigma * sigma
    pmat = np.empty((q, q))
    for a in range(q):
        for b in range(q):
            pmat[a, b] = s[a] * chol[a, b] / sigma
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
        _cross_residual(j, beta, zty, ztx, c)
        for a in range(q):
            for b in range(q):
                acc = 0.0
                for k in range(q):
                    acc += ztz[j, a, k] * pmat[k, b]
                ap[a, b] = acc
        for a in range(q):
            for b in range(q):
                acc = 1.0 if a == b else 0.0
                for k in range(q):
                    acc += pmat[k, a] * ap[k, b]
                m[a, b] = acc
        _chol_inplace(m, q)
        for a in range(q):
            logdet += 2 * math.log(m[a, a])
        _chol_inverse(m, q, minv, work)
        _matvec(pmat, c, d, True)  # d = P'c
        _matvec(minv, d, e, False)  # e = M^-1 d
        _matvec(pmat, e, pe, False)  # P e
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
    lp = -0.5 * n_total * math.log(2 * math.pi * sigma2) - 0.5 * logdet - (rss - quad) / (2 * sigma2)
    g_beta = (xty - xtx @ beta - g_beta_acc) / sigma2
    lp += fixed_terms(beta, g_beta, b_fam, b_par, shift, grad)
    g_lam = g_p / sigma
    g_sigma = -n_total / sigma + (rss - quad) / (sigma2 * sigma) - np.sum(g_p * pmat) / sigma
    lp += scale_corr_terms(theta, p, p + q, q, s, chol, logsum, g_lam, correlated, eta, sd_fam,
                           sd_par, grad)
    plp, pg = prior_logp_grad(sig_fam, sig_par, sigma)
    lp += plp + theta[-1]
    grad[-1] = (g_sigma + pg) * sigma + 1.0
    return lp, grad
