"""Log-density and gradient of a one-factor binomial model in linearized coordinates (numba).

The non-centered coordinates ``u_j = Lambda zeta_j`` suit groups with little data; groups with
much data want the centred ones; a logistic model usually has both. Here every group gets the
coordinates of a Gaussian approximation of its own conditional posterior, and the fixed
effects are decorrelated, so that NUTS sees a posterior close to ``N(0, I)`` in everything but
the few hyperparameters. The transformation is exact (a bijection with its Jacobian): only
the sampler's efficiency depends on how good the approximation is, never the posterior.

**The approximation.** A pilot fit (:func:`multilevel.engine.linearized.pilot`) gives working
weights ``w_i`` and a working response ``y~_i`` (one IRLS step of the binomial likelihood at
the pilot's linear predictor), fixed before sampling. Under that Gaussian likelihood the group
effect ``b_j`` given ``(beta, Sigma)`` is ``N(m_j, P_j^-1)`` with

``P_j = A_j + Sigma^-1``, ``m_j = P_j^-1 (c_j - D_j beta)``,
``A_j = Z_j'WZ_j``, ``c_j = Z_j'W y~_j``, ``D_j = Z_j'WX_j``.

**The coordinates.** ``theta = (w, t, x, zeta)``:

* ``beta = beta0 + M w`` with ``M = H^-T/2`` fixed (``H``: the pilot's information for
  ``beta`` with the group effects integrated out), a linear map with a constant Jacobian;
* ``t``: the sds, signed (``s = |t|``) for half-normal/-t/-Cauchy priors, else ``log s``;
  ``x``: the correlation parameters (:func:`~multilevel.engine.kernels.common.corr_chol`);
* ``b_j = m_j + C_j^-T zeta_j`` with ``P_j = C_j C_j'``; ``log|db/dzeta| = -log|C_j|``.

The density is the exact one: ``sum_i log Bin(y_i | n_i, logit^-1 eta_i) + sum_j log
N(b_j | 0, Sigma) - sum_j log|C_j| + log p(beta) + log p(s, x)``.

**The gradient** (reverse mode by hand). With ``g_j = dl/db_j`` (likelihood plus the
``N(0, Sigma)`` prior), ``a_j = C_j^-1 g_j`` is the gradient in ``zeta_j`` and ``e_j = C_j^-T a_j
= P_j^-1 g_j``; ``beta`` receives ``-D_j' e_j``; and ``P_j`` (so ``Sigma^-1``) receives

``-e_j m_j' - C_j^-T Phi(zeta_j a_j') C_j^-1 - P_j^-1 / 2``

(mean, offset and Jacobian; ``Phi`` keeps the lower triangle and halves the diagonal, from
``dC = C Phi(C^-1 dP C^-T)``). A symmetric ``dl/dSigma^-1 = K`` gives
``dl/dLambda = -2 Sigma^-1 K Sigma^-1 Lambda``, and the sds and correlations follow as in every
kernel (:func:`~multilevel.engine.kernels.common.scale_corr_terms`).

Examples
--------
>>> import numpy as np
>>> theta = np.array([0.0, 2.0, 1.0])  # w, t (sd 2), zeta of the one group
>>> beta, b = lin_effects(theta, np.ones((1, 1, 1)), np.zeros((1, 1)), np.zeros((1, 1, 1)),
...                       np.zeros(1), np.eye(1), 1, False, np.array([10]))
>>> round(float(b[0, 0]), 6)  # m = 0, P = 1 + 1/4: b = zeta / sqrt(1.25)
0.894427
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
    lower_inverse,
    prior_logp_grad,
    scale_corr_terms,
    scales,
    solve_lower,
    solve_upper_t,
)
from multilevel.engine.kernels.rows import columns_dot, columns_times, logistic_rows

__all__ = ["lin_effects", "lin_logp_grad"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@numba.njit(cache=True, nogil=True)
def _lambda(theta, p, q, correlated, sd_fam):
    """``Lambda = diag(s) L``, ``s``, ``L`` and ``sum log(1 + |x|^2)`` at ``theta``."""
    n_cor = q * (q - 1) // 2 if correlated else 0
    s = scales(theta[p:p + q], sd_fam, True)
    chol, logsum = corr_chol(theta[p + q:p + q + n_cor], q, correlated)
    lam = np.zeros((q, q))
    for a in range(q):
        for b in range(a + 1):
            lam[a, b] = s[a] * chol[a, b]
    return lam, s, chol, logsum, p + q + n_cor


@numba.njit(cache=True, nogil=True)
def _precision(lam, q):
    """``Sigma^-1 = Lambda^-T Lambda^-1``."""
    prec = np.empty((q, q))
    chol_inverse(lam, q, prec, np.empty((q, q)))
    return prec


@numba.njit(cache=True, nogil=True, inline="always")
def _group(j, beta, prec, A, c, D, zeta, cp, m, b, r, tmp):
    """Group ``j``'s factor ``C_j`` (into ``cp``), mean ``m_j`` and effect ``b_j`` (``r``,
    ``tmp``: work vectors); returns ``log|C_j|`` (NaN when ``P_j`` is not positive definite)."""
    q = D.shape[1]
    for a in range(q):
        for k in range(q):
            cp[a, k] = A[j, a, k] + prec[a, k]
    if not chol_inplace(cp, q):
        return math.nan
    cross_residual(j, beta, c, D, r)
    solve_lower(cp, r, tmp, q)
    solve_upper_t(cp, tmp, m, q)
    solve_upper_t(cp, zeta, tmp, q)
    logdet = 0.0
    for a in range(q):
        b[a] = m[a] + tmp[a]
        logdet += math.log(cp[a, a])
    return logdet


@numba.njit(cache=True, nogil=True)
def lin_effects(theta, A, c, D, beta0, M, q, correlated, sd_fam):
    """``beta`` and the group effects ``b`` (``levels x q``) at ``theta`` (one draw)."""
    p = beta0.shape[0]
    beta = beta0 + M @ theta[:p]
    lam, _, _, _, z0 = _lambda(theta, p, q, correlated, sd_fam)
    prec = _precision(lam, q)
    levels = A.shape[0]
    b = np.empty((levels, q))
    cp = np.empty((q, q))
    m, r, tmp = np.empty(q), np.empty(q), np.empty(q)
    for j in range(levels):
        _group(j, beta, prec, A, c, D, theta[z0 + j * q:z0 + (j + 1) * q], cp, m, b[j], r, tmp)
    return beta, b


@numba.njit(cache=True, nogil=True)
def lin_logp_grad(theta, XT, y, trials, ZT, idx, q, correlated, A, c, D, beta0, M, b_fam, b_par,
                  sd_fam, sd_par, eta_lkj):
    """Unnormalised log posterior and gradient at ``theta`` (module docstring); ``XT`` and
    ``ZT`` are the transposed design matrices (:mod:`~multilevel.engine.kernels.rows`)."""
    p, n = XT.shape
    levels = A.shape[0]
    grad = np.zeros(theta.shape[0])
    beta = beta0 + M @ theta[:p]
    lam, s, chol, logsum, z0 = _lambda(theta, p, q, correlated, sd_fam)
    prec = _precision(lam, q)
    cps = np.empty((levels, q, q))
    ms = np.empty((levels, q))
    bs = np.empty((levels, q))
    lp = 0.0
    log_lam = 0.0
    for a in range(q):
        log_lam += math.log(lam[a, a])
    e, r_work, tmp = np.empty(q), np.empty(q), np.empty(q)
    for j in range(levels):
        logdet = _group(j, beta, prec, A, c, D, theta[z0 + j * q:z0 + (j + 1) * q], cps[j],
                        ms[j], bs[j], r_work, tmp)
        solve_lower(lam, bs[j], e, q)
        ee = 0.0
        for a in range(q):  # not np.dot: a BLAS call per group costs more than the group
            ee += e[a] * e[a]
        lp += -logdet - 0.5 * ee - log_lam - q * _HALF_LOG_2PI
    eta = np.empty(n)
    columns_times(XT, beta, eta)
    for a in range(q):
        for i in range(n):
            eta[i] += ZT[a, i] * bs[idx[i], a]
    resid = np.empty(n)
    lp += logistic_rows(eta, y, trials, resid)
    g_beta = np.empty(p)
    columns_dot(XT, resid, g_beta)
    g_b = np.zeros((levels, q))
    for a in range(q):
        for i in range(n):
            g_b[idx[i], a] += ZT[a, i] * resid[i]
    g_prec = np.zeros((q, q))  # dl/dSigma^-1, general (symmetrised below)
    cinv = np.zeros((q, q))
    gb = np.empty(q)
    av = np.empty(q)
    for j in range(levels):
        cp = cps[j]
        zeta = theta[z0 + j * q:z0 + (j + 1) * q]
        for a in range(q):
            acc = g_b[j, a]
            for k in range(q):
                acc -= prec[a, k] * bs[j, k]
            gb[a] = acc
        solve_lower(cp, gb, av, q)
        solve_upper_t(cp, av, e, q)
        for a in range(q):
            grad[z0 + j * q + a] = av[a]
        for k in range(p):
            acc = 0.0
            for a in range(q):
                acc += D[j, a, k] * e[a]
            g_beta[k] -= acc
        lower_inverse(cp, q, cinv)
        for k in range(q):
            for l_ in range(q):
                # -C^-T Phi(zeta a') C^-1 - P^-1 / 2, entry (k, l_)
                acc = 0.0
                pinv = 0.0
                for u in range(q):
                    pinv += cinv[u, k] * cinv[u, l_]
                    for v in range(u + 1):
                        t = zeta[u] * av[v] * (0.5 if u == v else 1.0)
                        acc += cinv[u, k] * t * cinv[v, l_]
                g_prec[k, l_] += -e[k] * ms[j, l_] - acc - 0.5 * pinv - 0.5 * bs[j, k] * bs[j, l_]
    sym = 0.5 * (g_prec + g_prec.T)
    g_lam = -2.0 * (prec @ sym @ prec @ lam)
    for a in range(q):
        g_lam[a, a] -= levels / lam[a, a]
    lp += scale_corr_terms(theta, p, p + q, q, s, chol, logsum, g_lam, correlated, eta_lkj,
                           sd_fam, sd_par, grad, True)
    for k in range(p):
        plp, pg = prior_logp_grad(b_fam[k], b_par[k], beta[k])
        lp += plp
        g_beta[k] += pg
    for k in range(p):
        acc = 0.0
        for m_ in range(p):
            acc += M[m_, k] * g_beta[m_]
        grad[k] = acc
    return lp, grad
