r"""Gaussian models with several scalar group terms (crossed random intercepts) in conditional
coordinates: log-density and gradient by numba.

The non-centered coordinates ``u = s zeta`` suit a group whose data say little about its
effect; a factor whose levels each hold many rows (InstEval's 14 departments, ~5,000 ratings
each) wants the centred ones, and one model often has both. Here every level's effect is an
offset from its Gaussian conditional posterior given the fixed effects and the factors before
it. With the factors taken in ``order`` (fewest levels first), residual precision
``tau = sigma^-2``, and ``z_i`` the row's value of the factor's term (1 for an intercept):

* ``beta = beta0 + M w`` (``M`` fixed, from a pilot fit);
* ``S_f = tau (Z_f'y - Z_f'X beta - sum_{g before f} C_fg u_g)``, ``P_fj = tau (Z_f'Z_f)_jj +
  s_f^-2``, with ``C_fg = Z_f'Z_g`` the (sparse) cross-product of two factors' columns;
* ``u_fj = S_fj / P_fj + zeta_fj / sqrt(P_fj)``; ``log|du/dzeta| = -1/2 sum log P_fj``.

For the last factor ``S/P`` and ``1/P`` are the exact conditional mean and variance of its
effects; an earlier factor's leave out the factors after it. That misleads when a later
factor is nested in an earlier one (InstEval's lecturers within departments): the data then
fix a department's effect plus its lecturers' mean, not the split, which the sds decide, so
the offsets would form a funnel with the department sd. Such a factor is not ``conditional``:
it goes first and is sampled non-centered, ``S = 0``, ``P = s^-2`` (``u = s zeta``), and the
factors after it take its effects into their conditional means. The change of variables is exact
(the Jacobian is triangular) whatever ``M``, ``beta0`` or the order, so the density is the
model's own: ``sum_i log N(y_i | eta_i, sigma) + sum_fj log N(u_fj | 0, s_f) - 1/2 sum log P_fj
+ log p(beta) + log p(s) + log p(sigma)``. An sd with a half-normal, -t or -Cauchy prior is
sampled signed (``s = |t|``, :func:`~multilevel.engine.kernels.common.scale_corr_terms`): as
``s -> 0`` the effects go to 0 smoothly (``u ~ s (zeta + s S)``), so a small variance is an
interior point.

The rows enter only through cross-products (``X'X``, ``X'y``, ``y'y``, ``Z_f'y``, ``Z_f'X``,
``diag(Z_f'Z_f)`` and ``C_fg`` in compressed-row form, both orientations), so a gradient costs
a few passes over the non-zeros of ``C`` (InstEval: the 73,421 student-lecturer pairs) with
every sum held in a register, instead of scattered row by row. With ``e = y - X beta - sum_f
Z_f u_f``: ``Z_f'e = Z_f'y - Z_f'X beta - sum_g C_fg u_g`` (``C_ff`` diagonal), ``X'e = X'y -
X'X beta - sum_f (Z_f'X)' u_f`` and ``e'e = y'e - beta'X'e - sum_f u_f'Z_f'e``.

Gradient (reverse mode, by hand), through the factors in reverse order: ``ubar_f = tau Z_f'e
- u_f / s_f^2`` plus what the factors after it passed back, then ``zetabar = ubar / sqrt(P)``,
``Sbar = ubar / P``, ``Pbar = -ubar (S / P^2 + zeta P^-3/2 / 2) - 1 / (2P)``; ``P`` and ``S``
pass ``Pbar`` and ``Sbar`` on to ``tau`` and ``s_f``, and ``S`` on to ``beta``
(``-tau (Z_f'X)' Sbar``) and to the factors before it (``-tau C_gf Sbar``). Finally ``betabar
+= tau X'e`` and ``wbar = M' betabar``.

Parameter layout: the non-centered one (:func:`~multilevel.engine.kernels.noncentered.
factor_layout`): ``w`` (p), then per factor its ``t`` (1) and ``zeta`` (levels), then
``log sigma``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from multilevel.engine.kernels.common import prior_logp_grad, scale_corr_terms, scales

__all__ = ["crossed_effects", "crossed_logp_grad"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@numba.njit(cache=True, nogil=True, inline="always")
def _cross_add(out, f, g, x, scale, layout, cr_start, cr_ptr, cr_col, cr_val):
    """``out_f += scale * C_fg x_g`` (vectors at the ``zeta`` positions; ``cr_col`` holds those
    positions of ``g``'s levels)."""
    base, z0 = cr_start[f, g], layout[f, 2]
    for j in range(layout[f, 3]):
        acc = 0.0
        for k in range(cr_ptr[base + j], cr_ptr[base + j + 1]):
            acc += cr_val[k] * x[cr_col[k]]
        out[z0 + j] += scale * acc


@numba.njit(cache=True, nogil=True)
def _forward(theta, NX, ny, nsq, layout, order, conditional, cr_start, cr_ptr, cr_col, cr_val,
             beta0, M, sd_fam):
    """``beta``, the sds, sigma, tau, ``Z_f'X beta`` and ``u``/``S``/``P`` (at the ``zeta``
    positions)."""
    p = beta0.shape[0]
    n_factors = order.shape[0]
    beta = beta0 + M @ theta[:p]
    t = np.empty(n_factors)
    for k in range(n_factors):
        t[k] = theta[layout[k, 0]]
    s = scales(t, sd_fam, True)
    sigma = math.exp(theta[-1])
    tau = 1.0 / (sigma * sigma)
    nxb = NX @ beta
    u = np.zeros(theta.shape[0])
    S = np.zeros(theta.shape[0])
    P = np.zeros(theta.shape[0])
    for o in range(n_factors):
        k = order[o]
        z0 = layout[k, 2]
        if conditional[k]:
            for j in range(layout[k, 3]):
                S[z0 + j] = ny[z0 + j] - nxb[z0 + j]
            for oo in range(o):
                _cross_add(S, k, order[oo], u, -1.0, layout, cr_start, cr_ptr, cr_col, cr_val)
        inv_s2 = 1.0 / (s[k] * s[k])
        for j in range(layout[k, 3]):
            m = z0 + j
            S[m] *= tau
            P[m] = (tau * nsq[m] if conditional[k] else 0.0) + inv_s2
            u[m] = S[m] / P[m] + theta[m] / math.sqrt(P[m])
    return beta, s, sigma, tau, nxb, u, S, P


@numba.njit(cache=True, nogil=True)
def crossed_effects(theta, NX, ny, nsq, layout, order, conditional, cr_start, cr_ptr, cr_col,
                    cr_val, beta0, M, sd_fam):
    """Fixed effects and group effects (at the ``zeta`` positions of ``theta``) at ``theta``."""
    beta, _, _, _, _, u, _, _ = _forward(theta, NX, ny, nsq, layout, order, conditional,
                                         cr_start, cr_ptr, cr_col, cr_val, beta0, M, sd_fam)
    return beta, u


@numba.njit(cache=True, nogil=True)
def crossed_logp_grad(theta, XtX, Xty, yty, n_total, NX, ny, nsq, layout, order, conditional,
                      cr_start, cr_ptr, cr_col, cr_val, beta0, M, b_fam, b_par, sd_fam, sd_par,
                      sig_fam, sig_par):
    """Unnormalised log posterior and gradient at ``theta`` (module docstring). ``layout`` holds
    per factor the start of its ``t`` and ``zeta`` (columns 0 and 2) and its number of levels
    (column 3); ``NX``, ``ny``, ``nsq`` each level's ``Z'X``, ``Z'y`` and ``Z'Z`` at its
    ``zeta`` position; ``C_fg`` is rows ``cr_ptr[cr_start[f, g] + j]`` to the next of
    ``cr_col``/``cr_val``."""
    n_factors = order.shape[0]
    p = beta0.shape[0]
    beta, s, sigma, tau, nxb, u, S, P = _forward(theta, NX, ny, nsq, layout, order, conditional,
                                                 cr_start, cr_ptr, cr_col, cr_val, beta0, M,
                                                 sd_fam)
    ze = ny - nxb - nsq * u  # Z_f'e at the zeta positions (zero elsewhere)
    for o in range(n_factors):
        k = order[o]
        if conditional[k]:  # S_k / tau already holds the factors before k
            for j in range(layout[k, 2], layout[k, 2] + layout[k, 3]):
                ze[j] = S[j] / tau - nsq[j] * u[j]
        for oo in range(o + 1 if conditional[k] else 0, n_factors):
            if oo != o:
                _cross_add(ze, k, order[oo], u, -1.0, layout, cr_start, cr_ptr, cr_col, cr_val)
    xe = Xty - XtX @ beta - NX.T @ u
    sse = yty - np.dot(Xty, beta) - np.dot(ny, u) - np.dot(beta, xe) - np.dot(u, ze)
    lp = -n_total * (theta[-1] + _HALF_LOG_2PI) - 0.5 * tau * sse
    g_tau = -0.5 * sse
    grad = np.zeros(theta.shape[0])
    g_u = tau * ze  # from here on: ubar, then Sbar
    g_beta = tau * xe
    g_s = np.zeros(n_factors)
    for o in range(n_factors - 1, -1, -1):
        k = order[o]
        z0 = layout[k, 2]
        inv_s2 = 1.0 / (s[k] * s[k])
        sum_u2 = 0.0
        for j in range(layout[k, 3]):
            m = z0 + j
            um = u[m]
            sum_u2 += um * um
            lp += -0.5 * um * um * inv_s2 - 0.5 * math.log(P[m])
            gu = g_u[m] - um * inv_s2
            root = math.sqrt(P[m])
            grad[m] = gu / root
            g_S = gu / P[m]
            g_P = -gu * (S[m] / (P[m] * P[m]) + 0.5 * theta[m] / (P[m] * root)) - 0.5 / P[m]
            if conditional[k]:
                g_tau += g_P * nsq[m] + g_S * S[m] / tau
            g_s[k] += -2.0 * g_P * inv_s2 / s[k]
            g_u[m] = g_S
        levels = layout[k, 3]
        lp -= levels * (math.log(s[k]) + _HALF_LOG_2PI)
        g_s[k] += sum_u2 * inv_s2 / s[k] - levels / s[k]
        if conditional[k]:  # S_f = tau (Z_f'y - Z_f'X beta - sum_{g before f} C_fg u_g)
            for c in range(p):
                acc = 0.0
                for j in range(levels):
                    acc += NX[z0 + j, c] * g_u[z0 + j]
                g_beta[c] -= tau * acc
            for oo in range(o):
                _cross_add(g_u, order[oo], k, g_u, -tau, layout, cr_start, cr_ptr, cr_col, cr_val)
    for c in range(p):
        plp, pg = prior_logp_grad(b_fam[c], b_par[c], beta[c])
        lp += plp
        g_beta[c] += pg
    grad[:p] = M.T @ g_beta
    one = np.ones((1, 1))
    g_lam = np.zeros((1, 1))
    for k in range(n_factors):
        g_lam[0, 0] = g_s[k]
        lp += scale_corr_terms(theta, layout[k, 0], layout[k, 1], 1, s[k:k + 1], one, 0.0, g_lam,
                               False, 1.0, sd_fam[k:k + 1], sd_par[k:k + 1], grad, True)
    plp, pg = prior_logp_grad(sig_fam, sig_par, sigma)
    g_sigma = -n_total / sigma - 2.0 * g_tau * tau / sigma + pg
    lp += plp + theta[-1]
    grad[-1] = g_sigma * sigma + 1.0
    return lp, grad
