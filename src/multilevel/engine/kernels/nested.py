"""Marginal Gaussian likelihood of two nested grouping factors, compiled once by numba.

Students in classes in schools: an outer factor (``school``, ``q1`` varying terms, effects
``u1_j = Lambda1 v1_j``) and an inner factor nested in it (``school:class``, ``q2`` terms,
``u2_k = Lambda2 v2_k``, every cell ``k`` inside one outer group ``j``). With ``P = Lambda /
sigma`` and ``v ~ N(0, I)``, the precision of ``v`` given ``y`` is ``H = I + P'Z'ZP`` and, for
outer group ``j`` with cells ``k``, it is an arrow matrix::

    H11 = I + P1'(Z1'Z1)_j P1,   H1k = P1'(Z1'Z2)_k P2,   Hkk = M_k = I + P2'(Z2'Z2)_k P2.

Eliminating the cells first (Schur complement ``S_j = H11 - sum_k H1k M_k^-1 H1k'``) gives,
with ``b = P'Z'r / sigma`` and ``v_hat = H^-1 b``::

    log p(y) = -N/2 log(2 pi sigma^2) - 1/2 (sum_k log|M_k| + sum_j log|S_j|)
               - 1/2 (r'r / sigma^2 - b'v_hat)

so one evaluation costs O(cells q^3) from per-cell sufficient statistics, with no Python loop.
The gradient is Fisher's identity, ``d log p(y) = E[d log p(y | v) | y]`` (``v``'s distribution
does not depend on the parameters), with the conditional moments of ``v``::

    dl/dbeta    = X'(r - Z Lambda v_hat) / sigma^2
    dl/dLambda1 = sum_j Z1_j' E[(r - Z Lambda v) v1_j'] / sigma^2     (same for Lambda2, cells)
    dl/dsigma   = -N / sigma + (r'r - sigma^2 (b'v_hat + |v_hat|^2 + tr C - dim v)) / sigma^3

where ``C = H^-1`` (``C11 = S^-1``, ``Ck1 = -M_k^-1 H1k' C11``, ``Ckk = M_k^-1 - Ck1 H1k M_k^-1``).
The same conditional moments give exact draws of the effects after sampling
(:func:`nested_recover_draws`: ``v1 | y``, then ``v2_k | v1, y``).

Examples
--------
>>> import math
>>> import numpy as np
>>> # one school, one class, one row y = 1: var(y) = 1 + 1 + 1, so log p = log N(1 | 0, 3)
>>> one = np.ones((1, 1, 1))
>>> ll = nested_loglik_grad(np.zeros(1), np.eye(1), np.eye(1), 1.0, one, one, np.ones((1, 1)),
...                         one, one, one, np.ones((1, 1)), np.array([0, 1]), one[0], np.ones(1),
...                         1.0, 1.0)[0]
>>> round(ll, 10), round(-0.5 * math.log(2 * math.pi * 3) - 1 / 6, 10)
(-1.6349113442, -1.6349113442)
"""

from __future__ import annotations

import math

import numba
import numpy as np

from multilevel.engine.kernels.common import (
    chol_inplace,
    chol_inverse,
    corr_chol,
    fixed_terms,
    prior_logp_grad,
    scale_corr_terms,
    solve_upper_t,
)

__all__ = ["nested_logp_grad", "nested_loglik_grad", "nested_loglik_draws", "nested_recover_draws"]


@numba.njit(cache=True, nogil=True)
def _outer_system(j, beta, p1, p2, sigma, g1, z1x, z1y, a2, c12, z2x, z2y, cell_start,
                  minv, m_chol, hm, h1, bk, t2, s_chol, c11, v1, vk, work):
    """Conditional moments of ``v`` for outer group ``j`` (module docstring).

    Fills, per cell ``c`` of the group: ``m_chol[c]`` (Cholesky of ``M_k``),
    ``minv[c] = M_k^-1``, ``h1[c] = H1k``, ``hm[c] = H1k M_k^-1``, ``bk[c]``,
    ``t2[c] = Z2_k'r_k``, ``vk[c] = v_hat_k``; and ``s_chol`` (Cholesky of ``S_j``),
    ``c11 = S_j^-1``, ``v1 = v_hat_1``. Returns ``(log|H_j|, t1 = Z1_j'r_j)``."""
    q1, q2, p = p1.shape[0], p2.shape[0], beta.shape[0]
    t1 = np.empty(q1)
    for a in range(q1):
        acc = z1y[j, a]
        for m in range(p):
            acc -= z1x[j, a, m] * beta[m]
        t1[a] = acc
    # S starts as H11, rhs as b1
    rhs = np.empty(q1)
    for a in range(q1):
        acc = 0.0
        for m in range(q1):
            acc += p1[m, a] * t1[m]
        rhs[a] = acc / sigma
        for b in range(q1):
            acc = 1.0 if a == b else 0.0
            for m in range(q1):
                for n in range(q1):
                    acc += p1[m, a] * g1[j, m, n] * p1[n, b]
            s_chol[a, b] = acc
    logdet = 0.0
    start, stop = cell_start[j], cell_start[j + 1]
    for c in range(stop - start):
        k = start + c
        for a in range(q2):
            acc = z2y[k, a]
            for m in range(p):
                acc -= z2x[k, a, m] * beta[m]
            t2[c, a] = acc
        for a in range(q2):
            acc = 0.0
            for m in range(q2):
                acc += p2[m, a] * t2[c, m]
            bk[c, a] = acc / sigma
            for b in range(q2):
                acc = 1.0 if a == b else 0.0
                for m in range(q2):
                    for n in range(q2):
                        acc += p2[m, a] * a2[k, m, n] * p2[n, b]
                m_chol[c, a, b] = acc
        chol_inplace(m_chol[c], q2)
        for a in range(q2):
            logdet += 2 * math.log(m_chol[c, a, a])
        chol_inverse(m_chol[c], q2, minv[c], work[q2:2 * q2])
        for a in range(q1):
            for b in range(q2):
                acc = 0.0
                for m in range(q1):
                    for n in range(q2):
                        acc += p1[m, a] * c12[k, m, n] * p2[n, b]
                h1[c, a, b] = acc
        for a in range(q1):
            for b in range(q2):
                acc = 0.0
                for m in range(q2):
                    acc += h1[c, a, m] * minv[c, m, b]
                hm[c, a, b] = acc
        for a in range(q1):
            acc = 0.0
            for b in range(q2):
                acc += hm[c, a, b] * bk[c, b]
            rhs[a] -= acc
            for b in range(q1):
                acc = 0.0
                for m in range(q2):
                    acc += hm[c, a, m] * h1[c, b, m]
                s_chol[a, b] -= acc
    chol_inplace(s_chol, q1)
    for a in range(q1):
        logdet += 2 * math.log(s_chol[a, a])
    chol_inverse(s_chol, q1, c11, work[2 * q2:2 * q2 + q1, :q1])
    for a in range(q1):
        acc = 0.0
        for b in range(q1):
            acc += c11[a, b] * rhs[b]
        v1[a] = acc
    for c in range(stop - start):
        for a in range(q2):
            acc = 0.0
            for b in range(q2):
                r = bk[c, b]
                for m in range(q1):
                    r -= h1[c, m, b] * v1[m]
                acc += minv[c, a, b] * r
            vk[c, a] = acc
    return logdet, t1


@numba.njit(cache=True, nogil=True)
def _work_arrays(max_cells, q1, q2):
    qq = max(q1, q2)
    return (np.empty((max_cells, q2, q2)), np.empty((max_cells, q2, q2)), np.empty((max_cells, q1, q2)),
            np.empty((max_cells, q1, q2)), np.empty((max_cells, q2)), np.empty((max_cells, q2)),
            np.empty((q1, q1)), np.empty((q1, q1)), np.empty(q1), np.empty((max_cells, q2)),
            np.empty((2 * q2 + q1, qq)))


@numba.njit(cache=True, nogil=True)
def _sub_cross(zx, lam, v, out):
    """``out -= zx' (lam v)`` (``zx``: ``(q, p)`` cross-products of one group or cell)."""
    q, p = zx.shape
    for m in range(p):
        acc = 0.0
        for a in range(q):
            acc += zx[a, m] * np.dot(lam[a], v)
        out[m] -= acc


@numba.njit(cache=True, nogil=True)
def nested_loglik_grad(beta, lam1, lam2, sigma, g1, z1x, z1y, a2, c12, z2x, z2y, cell_start, xtx,
                       xty, yty, n_total):
    """``log p(y | beta, Lambda1, Lambda2, sigma)`` and its gradients (module docstring)."""
    q1, q2, p = lam1.shape[0], lam2.shape[0], beta.shape[0]
    n_outer = g1.shape[0]
    sigma2 = sigma * sigma
    p1 = lam1 / sigma
    p2 = lam2 / sigma
    max_cells = 1
    for j in range(n_outer):
        max_cells = max(max_cells, cell_start[j + 1] - cell_start[j])
    minv, m_chol, hm, h1, bk, t2, s_chol, c11, v1, vk, work = _work_arrays(max_cells, q1, q2)
    rss = yty - 2 * np.dot(beta, xty) + np.dot(beta, xtx @ beta)
    logdet = 0.0
    bv = 0.0
    vv = 0.0
    tr_c = 0.0
    n_v = 0.0
    g_beta = np.zeros(p)
    g1_lam = np.zeros((q1, q1))
    g2_lam = np.zeros((q2, q2))
    e11 = np.empty((q1, q1))
    ek1 = np.empty((q2, q1))
    ekk = np.empty((q2, q2))
    for j in range(n_outer):
        ld, t1 = _outer_system(j, beta, p1, p2, sigma, g1, z1x, z1y, a2, c12, z2x, z2y, cell_start,
                               minv, m_chol, hm, h1, bk, t2, s_chol, c11, v1, vk, work)
        logdet += ld
        n_v += q1
        for a in range(q1):
            b1 = 0.0
            for m in range(q1):
                b1 += p1[m, a] * t1[m]
            bv += b1 / sigma * v1[a]
            vv += v1[a] * v1[a]
            tr_c += c11[a, a]
            for b in range(q1):
                e11[a, b] = v1[a] * v1[b] + c11[a, b]
        _sub_cross(z1x[j], lam1, v1, g_beta)
        # dLambda1 += t1 v1' - G1 Lambda1 E11
        for a in range(q1):
            for b in range(q1):
                acc = t1[a] * v1[b]
                for m in range(q1):
                    for n in range(q1):
                        acc -= g1[j, a, m] * lam1[m, n] * e11[n, b]
                g1_lam[a, b] += acc
        start = cell_start[j]
        for c in range(cell_start[j + 1] - start):
            k = start + c
            n_v += q2
            for a in range(q2):
                bv += bk[c, a] * vk[c, a]
                vv += vk[c, a] * vk[c, a]
            # Ck1 = -hm' C11; Ckk = Minv - Ck1 hm
            for a in range(q2):
                for b in range(q1):
                    acc = 0.0
                    for m in range(q1):
                        acc -= hm[c, m, a] * c11[m, b]
                    ek1[a, b] = acc
            for a in range(q2):
                for b in range(q2):
                    acc = minv[c, a, b]
                    for m in range(q1):
                        acc -= ek1[a, m] * hm[c, m, b]
                    ekk[a, b] = acc + vk[c, a] * vk[c, b]
                tr_c += ekk[a, a] - vk[c, a] * vk[c, a]
            for a in range(q2):
                for b in range(q1):
                    ek1[a, b] += vk[c, a] * v1[b]
            _sub_cross(z2x[k], lam2, vk[c], g_beta)
            # dLambda1 -= C12 Lambda2 Ek1 ; dLambda2 += t2 vk' - C12' Lambda1 Ek1' - A Lambda2 Ekk
            for a in range(q1):
                for b in range(q1):
                    acc = 0.0
                    for m in range(q2):
                        for n in range(q2):
                            acc += c12[k, a, m] * lam2[m, n] * ek1[n, b]
                    g1_lam[a, b] -= acc
            for a in range(q2):
                for b in range(q2):
                    acc = t2[c, a] * vk[c, b]
                    for m in range(q1):
                        for n in range(q1):
                            acc -= c12[k, m, a] * lam1[m, n] * ek1[b, n]
                    for m in range(q2):
                        for n in range(q2):
                            acc -= a2[k, a, m] * lam2[m, n] * ekk[n, b]
                    g2_lam[a, b] += acc
    ll = -0.5 * n_total * math.log(2 * math.pi * sigma2) - 0.5 * logdet - 0.5 * (rss / sigma2 - bv)
    g_beta = (xty - xtx @ beta + g_beta) / sigma2
    g_sigma = -n_total / sigma + (rss - sigma2 * (bv + vv + tr_c - n_v)) / (sigma2 * sigma)
    return ll, g_beta, g1_lam / sigma2, g2_lam / sigma2, g_sigma


@numba.njit(cache=True, nogil=True)
def nested_logp_grad(theta, shift, g1, z1x, z1y, a2, c12, z2x, z2y, cell_start, xtx, xty, yty,
                     n_total, b_fam, b_par, sd_fam, sd_par, sig_fam, sig_par, eta, correlated):
    """Unnormalised log posterior and gradient; ``theta = (beta_c, log s1, x1, log s2, x2,
    log sigma)`` with the transforms of :mod:`multilevel.engine.kernels.marginal`."""
    q1, q2, p = g1.shape[1], a2.shape[1], z1x.shape[2]
    n_cor1 = q1 * (q1 - 1) // 2 if correlated[0] else 0
    n_cor2 = q2 * (q2 - 1) // 2 if correlated[1] else 0
    ks1, kx1 = p, p + q1
    ks2 = kx1 + n_cor1
    kx2 = ks2 + q2
    grad = np.zeros(theta.shape[0])
    beta = theta[:p].copy()
    beta[0] -= np.dot(shift, theta[:p]) if shift.shape[0] == p else 0.0
    s1 = np.exp(theta[ks1:ks1 + q1])
    s2 = np.exp(theta[ks2:ks2 + q2])
    chol1, logsum1 = corr_chol(theta[kx1:kx1 + n_cor1], q1, correlated[0])
    chol2, logsum2 = corr_chol(theta[kx2:kx2 + n_cor2], q2, correlated[1])
    lam1 = np.empty((q1, q1))
    lam2 = np.empty((q2, q2))
    for a in range(q1):
        lam1[a] = s1[a] * chol1[a]
    for a in range(q2):
        lam2[a] = s2[a] * chol2[a]
    sigma = math.exp(theta[-1])
    lp, g_beta, g1_lam, g2_lam, g_sigma = nested_loglik_grad(
        beta, lam1, lam2, sigma, g1, z1x, z1y, a2, c12, z2x, z2y, cell_start, xtx, xty, yty, n_total)
    lp += fixed_terms(beta, g_beta, b_fam, b_par, shift, grad)
    lp += scale_corr_terms(theta, ks1, kx1, q1, s1, chol1, logsum1, g1_lam, correlated[0], eta[0],
                           sd_fam[:q1], sd_par[:q1], grad, False)
    lp += scale_corr_terms(theta, ks2, kx2, q2, s2, chol2, logsum2, g2_lam, correlated[1], eta[1],
                           sd_fam[q1:], sd_par[q1:], grad, False)
    plp, pg = prior_logp_grad(sig_fam, sig_par, sigma)
    lp += plp + theta[-1]
    grad[-1] = (g_sigma + pg) * sigma + 1.0
    return lp, grad


@numba.njit(cache=True, nogil=True)
def nested_loglik_draws(beta, lam1, lam2, sigma, g1, z1x, z1y, a2, c12, z2x, z2y, cell_start, xtx,
                        xty, yty, n_total):
    """``(draws,)`` marginal log-likelihood at every posterior draw."""
    out = np.empty(beta.shape[0])
    for s in range(beta.shape[0]):
        out[s] = nested_loglik_grad(beta[s], lam1[s], lam2[s], sigma[s], g1, z1x, z1y, a2, c12,
                                    z2x, z2y, cell_start, xtx, xty, yty, n_total)[0]
    return out


@numba.njit(cache=True, nogil=True)
def nested_recover_draws(beta, lam1, lam2, sigma, g1, z1x, z1y, a2, c12, z2x, z2y, cell_start,
                         eps1, eps2):
    """Exact conditional draws ``(u1 (draws, outer, q1), u2 (draws, cells, q2))``: ``v1 | y``
    then ``v2_k | v1, y``; ``eps1``/``eps2`` are standard normal of those shapes."""
    n_draws, n_outer, q1 = eps1.shape
    q2 = eps2.shape[2]
    u1 = np.empty(eps1.shape)
    u2 = np.empty(eps2.shape)
    max_cells = 1
    for j in range(n_outer):
        max_cells = max(max_cells, cell_start[j + 1] - cell_start[j])
    minv, m_chol, hm, h1, bk, t2, s_chol, c11, v1, vk, work = _work_arrays(max_cells, q1, q2)
    v1_draw = np.empty(q1)
    noise2 = np.empty(q2)
    v2_draw = np.empty(q2)
    for s in range(n_draws):
        p1 = lam1[s] / sigma[s]
        p2 = lam2[s] / sigma[s]
        for j in range(n_outer):
            _outer_system(j, beta[s], p1, p2, sigma[s], g1, z1x, z1y, a2, c12, z2x, z2y, cell_start,
                          minv, m_chol, hm, h1, bk, t2, s_chol, c11, v1, vk, work)
            solve_upper_t(s_chol, eps1[s, j], v1_draw, q1)  # S^-1/2 eps: covariance S^-1
            for a in range(q1):
                v1_draw[a] += v1[a]
            for a in range(q1):
                u1[s, j, a] = np.dot(lam1[s, a], v1_draw)
            start = cell_start[j]
            for c in range(cell_start[j + 1] - start):
                k = start + c
                # v2 | v1 ~ N(M^-1 (b_k - H1k' v1), M^-1); M = chol(M) chol(M)'
                solve_upper_t(m_chol[c], eps2[s, k], noise2, q2)
                for a in range(q2):
                    acc = 0.0
                    for b in range(q2):
                        r = bk[c, b]
                        for m in range(q1):
                            r -= h1[c, m, b] * v1_draw[m]
                        acc += minv[c, a, b] * r
                    v2_draw[a] = acc + noise2[a]
                for a in range(q2):
                    u2[s, k, a] = np.dot(lam2[s, a], v2_draw)
    return u1, u2
