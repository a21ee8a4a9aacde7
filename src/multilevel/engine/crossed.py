"""Sample a Gaussian model with crossed scalar group terms in conditional coordinates.

Every level's effect is sampled as an offset from its Gaussian conditional posterior given the
fixed effects and the factors conditioned before it, and the fixed effects through a fixed
decorrelating map (:mod:`multilevel.engine.kernels.crossed`). Both come from a pilot fit made
here, before sampling: a few backfitting sweeps with EM updates of the variances. Any pilot
gives the same posterior (the change of variables is exact); a good one makes it close to
``N(0, I)`` for NUTS. This is ``parameterization='linearized'`` for Gaussian models (the
logistic one is :mod:`multilevel.engine.linearized`); the draws carry the non-centered
model's names (``z_<g>`` holds ``u / sd``).

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> from multilevel.model import resolve_priors
>>> from multilevel.engine.noncentered import nc_problem
>>> df = datasets.load("hsb82")
>>> d = build_design(ModelSpec.from_formula("mAch ~ ses + (1 | school) + (1 | minrty)"), df)
>>> crossed_problem(nc_problem(d, resolve_priors(d))).ndim  # 2 fixed, 2 sds, 160 + 2 levels, sigma
167
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy import sparse

from multilevel import naming
from multilevel.design.statistics import group_cross
from multilevel.engine.args import CrossedArgs
from multilevel.engine.kernels.crossed import crossed_effects, crossed_logp_grad
from multilevel.engine.linearized import decorrelating_map
from multilevel.engine.noncentered import NCProblem
from multilevel.engine.problem import OnBase, factor_values

__all__ = ["CrossedPilot", "CrossedProblem", "cross_products", "crossed_pilot", "crossed_problem",
           "holds_nested"]

#: Backfitting sweeps of the pilot (it need not converge: any pilot is exact).
PILOT_SWEEPS = 20


@dataclass(frozen=True)
class CrossedPilot:
    """A pilot fit: fixed effects, each factor's sd, the residual sd, and the covariance of the
    fixed effects it implies (each factor's contribution added up)."""

    beta: np.ndarray
    sd: np.ndarray
    sigma: float
    cov_beta: np.ndarray


def crossed_pilot(X: np.ndarray, y: np.ndarray, Zv: np.ndarray, idx: np.ndarray,
                  levels: np.ndarray, sweeps: int = PILOT_SWEEPS) -> CrossedPilot:
    """Backfitting for ``y = X beta + sum_k z_k u_k + e``: each factor's conditional modes given
    the others, then the fixed effects by least squares, with EM updates of the variances
    (``s_k^2 = mean(u^2 + 1/P)``, ``sigma^2 = (|e|^2 + sum sum_i z^2 / P) / n``; the
    cross-factor covariances left out). The covariance of ``beta`` adds to the least-squares one
    what integrating out each factor alone adds.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> idx = np.c_[rng.integers(0, 40, 4000), rng.integers(0, 30, 4000)]
    >>> u = [rng.normal(0, 1.0, 40), rng.normal(0, 0.5, 30)]
    >>> y = 2.0 + u[0][idx[:, 0]] + u[1][idx[:, 1]] + rng.normal(0, 1.0, 4000)
    >>> fit = crossed_pilot(np.ones((4000, 1)), y, np.ones((4000, 2)), idx, np.array([40, 30]))
    >>> bool(np.all(np.abs(fit.sd - [1.0, 0.5]) < 0.25)), round(fit.sigma, 1)
    (True, 1.0)
    """
    n, K = Zv.shape
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    sigma2 = float(np.var(y - X @ beta)) or 1.0
    s2 = np.full(K, sigma2 / 4)
    nsq = [np.bincount(idx[:, k], Zv[:, k] ** 2, minlength=levels[k]) for k in range(K)]
    u = [np.zeros(levels[k]) for k in range(K)]
    prec = [np.ones(levels[k]) for k in range(K)]
    fitted = X @ beta
    for _ in range(sweeps):
        for k in range(K):
            own = Zv[:, k] * u[k][idx[:, k]]
            raw = np.bincount(idx[:, k], Zv[:, k] * (y - fitted + own), minlength=levels[k])
            prec[k] = nsq[k] / sigma2 + 1.0 / s2[k]
            new = raw / sigma2 / prec[k]
            fitted += Zv[:, k] * (new - u[k])[idx[:, k]]
            u[k] = new
            s2[k] = max(float(np.mean(new**2 + 1.0 / prec[k])), 1e-8 * sigma2)
        step = np.linalg.lstsq(X, y - fitted, rcond=None)[0]
        beta, fitted = beta + step, fitted + X @ step
        resid = y - fitted
        sigma2 = float(resid @ resid + sum(np.sum(nsq[k] / prec[k]) for k in range(K))) / n
    info = X.T @ X / sigma2
    base = np.linalg.inv(info)
    cov = base.copy()
    for k in range(K):
        D = group_cross(idx[:, k], int(levels[k]), Zv[:, k:k + 1], X)[:, 0, :] / sigma2
        cov += np.linalg.inv(info - D.T @ (D / prec[k][:, None])) - base
    return CrossedPilot(beta, np.sqrt(s2), float(np.sqrt(sigma2)), 0.5 * (cov + cov.T))


@dataclass(frozen=True)
class CrossedProblem(OnBase):
    """The conditional-coordinate model (``kernel='crossed'``) of a Gaussian non-centered
    problem with one scalar term per factor (``base``): the arguments of
    :func:`crossed_logp_grad` besides ``theta``. Its ``theta`` has the base's layout; the fixed
    effects and offsets mean other things (module docstring) and an sd with a prior of
    :data:`~multilevel.engine.kernels.common.SIGNED_FAMILIES` is a signed ``t``."""

    base: NCProblem
    args: CrossedArgs
    pilot: CrossedPilot
    kernel: str = "crossed"

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density (up to a constant) and gradient at ``theta``."""
        return crossed_logp_grad(np.asarray(theta, dtype=float), *self.args.values())

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        """The pilot's fixed effects (``w = 0``) and sds, small offsets; jittered (a signed sd
        by the factor ``exp(+-0.3)``, so every chain starts positive)."""
        p, layout = self.base.p, self.args.layout
        theta = rng.uniform(-0.3, 0.3, size=self.ndim)
        theta[:p] *= 0.1
        for k in range(layout.shape[0]):
            s0, z0, levels = layout[k, 0], layout[k, 2], layout[k, 3]
            sd = self.pilot.sd[k]
            theta[s0] = sd * np.exp(theta[s0]) if self.signed[k] else np.log(sd) + theta[s0]
            theta[z0:z0 + levels] = rng.normal(0, 0.1, levels)
        theta[-1] = np.log(self.pilot.sigma) + 0.1 * theta[-1]
        return theta

    def constrained(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named values at ``theta`` (``(..., ndim)``): fixed effects, sds, group effects ``u``,
        offsets ``z = u / sd`` and sigma."""
        a, p = self.args, self.base.p
        lead = theta.shape[:-1]
        flat = np.ascontiguousarray(theta.reshape(-1, self.ndim), dtype=float)
        beta, u = _effects(flat, a.NX, a.ny, a.nsq, a.layout, a.order, a.conditional, a.cr_start,
                           a.cr_ptr, a.cr_col, a.cr_val, a.beta0, a.M, a.sd_fam)
        out = {naming.FIXED: beta.reshape(lead + (p,))}
        start = 0
        for k, g in enumerate(self.design.groups):
            s0, levels = a.layout[k, 0], a.layout[k, 3]
            t = theta[..., s0:s0 + 1]
            with np.errstate(divide="ignore"):  # an sd of exactly 0: log 0 = -inf, exp gives 0
                log_sd = np.log(np.abs(t)) if self.signed[k] else t
            out |= factor_values(g, log_sd, None)
            sd = out[naming.sd_name(g.factor)]
            uk = u[:, start:start + levels].reshape(lead + (levels, 1))
            start += levels
            out[naming.effect_name(g.factor)] = uk
            with np.errstate(divide="ignore", invalid="ignore"):
                out[naming.offset_name(g.factor)] = uk / sd[..., None, :]
        out[naming.SIGMA] = np.exp(theta[..., -1])
        return out



@numba.njit(cache=True)
def _effects(thetas, NX, ny, nsq, layout, order, conditional, cr_start, cr_ptr, cr_col, cr_val,
             beta0, M, sd_fam):
    """:func:`crossed_effects` over the rows of ``thetas``; the effects of every factor in
    layout order, concatenated."""
    n_draws = thetas.shape[0]
    total = 0
    for k in range(layout.shape[0]):
        total += layout[k, 3]
    beta = np.empty((n_draws, beta0.shape[0]))
    u = np.empty((n_draws, total))
    for d in range(n_draws):
        b, full = crossed_effects(thetas[d], NX, ny, nsq, layout, order, conditional, cr_start,
                                  cr_ptr, cr_col, cr_val, beta0, M, sd_fam)
        beta[d] = b
        pos = 0
        for k in range(layout.shape[0]):
            for j in range(layout[k, 3]):
                u[d, pos] = full[layout[k, 2] + j]
                pos += 1
    return beta, u


def cross_products(Zv: np.ndarray, idx: np.ndarray, layout: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every ordered pair of factors' ``C_fg = Z_f'Z_g`` in compressed rows, ``cr_col`` holding
    the ``zeta`` positions of ``g``'s levels: ``(cr_start, cr_ptr, cr_col, cr_val)`` as
    :func:`~multilevel.engine.kernels.crossed.crossed_logp_grad` reads them.

    Examples
    --------
    >>> idx = np.array([[0, 0], [0, 1], [1, 1]])
    >>> layout = np.array([[0, 1, 1, 2], [3, 4, 4, 2]])
    >>> start, ptr, col, val = cross_products(np.ones((3, 2)), idx, layout)
    >>> ptr[start[0, 1]:start[0, 1] + 3].tolist(), col.tolist()[:3], val.tolist()[:3]
    ([0, 2, 3], [4, 5, 5], [1.0, 1.0, 1.0])
    """
    K, n = idx.shape[1], idx.shape[0]
    cols = [sparse.csr_matrix((Zv[:, k], (np.arange(n), idx[:, k])), shape=(n, layout[k, 3]))
            for k in range(K)]
    start = np.zeros((K, K), dtype=np.int64)
    ptrs, col, val, used, nnz = [], [], [], 0, 0
    for f in range(K):
        for g in range(K):
            if f == g:
                continue
            c = (cols[f].T @ cols[g]).tocsr()
            c.sort_indices()
            start[f, g] = used
            ptrs.append(c.indptr.astype(np.int64) + nnz)
            col.append(c.indices.astype(np.int64) + layout[g, 2])
            val.append(c.data.astype(float))
            used += len(c.indptr)
            nnz += c.nnz
    return start, np.concatenate(ptrs), np.concatenate(col), np.concatenate(val)


def holds_nested(idx: np.ndarray) -> np.ndarray:
    """Per factor (column of ``idx``): whether another factor is nested in it, every level of
    the other one falling within a single level of this one.

    Examples
    --------
    >>> holds_nested(np.array([[0, 0, 0], [0, 1, 1], [1, 2, 0], [1, 3, 1], [0, 0, 1]]))
    array([ True, False, False])
    """
    K = idx.shape[1]
    out = np.zeros(K, dtype=bool)
    for f in range(K):
        for g in range(K):
            if g != f:
                pairs = np.unique(idx[:, [g, f]], axis=0)
                out[f] |= len(pairs) == len(np.unique(idx[:, g]))
    return out


def crossed_problem(base: NCProblem) -> CrossedProblem | None:
    """The conditional-coordinate problem of a non-centered one: a Gaussian model (no known
    SEs) with two or more grouping factors of one term each, its rows and priors shared; None
    for anything else. Factors with another one nested in them (:func:`holds_nested`) are
    sampled non-centered and go first; the others are conditioned fewest levels first."""
    d, a = base.design, base.args
    if a.family != 0 or len(d.groups) < 2 or any(g.n_terms != 1 for g in d.groups):
        return None
    Zv = np.column_stack([g.Z[:, 0] for g in d.groups])
    idx = np.ascontiguousarray(a.idx, dtype=np.int64)
    levels = np.array([g.n_levels for g in d.groups], dtype=np.int64)
    fit = crossed_pilot(d.X, a.y, Zv, idx, levels)
    layout = np.c_[base.layout, levels].astype(np.int64)
    nsq, ny = np.zeros(base.ndim), np.zeros(base.ndim)
    NX = np.zeros((base.ndim, d.X.shape[1]))
    for k in range(len(levels)):
        at = slice(layout[k, 2], layout[k, 2] + levels[k])
        nsq[at] = np.bincount(idx[:, k], Zv[:, k] ** 2, minlength=levels[k])
        ny[at] = np.bincount(idx[:, k], Zv[:, k] * a.y, minlength=levels[k])
        NX[at] = group_cross(idx[:, k], int(levels[k]), Zv[:, k:k + 1], d.X)[:, 0, :]
    cr_start, cr_ptr, cr_col, cr_val = cross_products(Zv, idx, layout)
    conditional = ~holds_nested(idx)
    order = np.lexsort((levels, conditional)).astype(np.int64)  # non-centered first
    args = CrossedArgs(
        XtX=d.X.T @ d.X, Xty=d.X.T @ a.y, yty=float(a.y @ a.y), n_total=float(len(a.y)), NX=NX,
        ny=ny, nsq=nsq, layout=layout, order=order, conditional=conditional, cr_start=cr_start,
        cr_ptr=cr_ptr, cr_col=cr_col, cr_val=cr_val, beta0=fit.beta,
        M=decorrelating_map(np.linalg.inv(fit.cov_beta)), b_fam=a.b_fam, b_par=a.b_par,
        sd_fam=a.sd_fam, sd_par=a.sd_par, sig_fam=a.sig_fam, sig_par=a.sig_par,
    )
    return CrossedProblem(base, args, fit)
