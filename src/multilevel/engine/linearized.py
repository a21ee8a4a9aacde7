"""Sample a one-factor logistic model in linearized coordinates with nutpie.

The group effects are sampled as offsets from a Gaussian approximation of their conditional
posterior, and the fixed effects through a fixed decorrelating map
(:mod:`multilevel.engine.kernels.linearized`). The approximation comes from a pilot fit made
here, before sampling: a few penalised IRLS sweeps of the binomial likelihood, whose working
weights define, per group, the Gaussian likelihood the coordinates are built from. Any pilot
gives the same posterior (the change of variables is exact); a good one makes it close to
``N(0, I)`` for NUTS. The draws carry the non-centered model's names (``z_<g>`` holds
``Lambda^-1 u``, as in that model), so a fit reads the same whichever coordinates sampled it.

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> from multilevel.model import resolve_priors
>>> from multilevel.engine.noncentered import nc_problem
>>> d = build_design(ModelSpec.from_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
...                  datasets.load("cbpp"))
>>> lin_problem(nc_problem(d, resolve_priors(d))).ndim  # 4 fixed effects, 1 sd, 15 herd offsets
20
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy.special import expit

from multilevel import naming
from multilevel.design.statistics import group_cross, group_logistic
from multilevel.engine.args import LinearizedArgs
from multilevel.engine.kernels.linearized import lin_effects, lin_logp_grad
from multilevel.engine.noncentered import NCProblem
from multilevel.engine.problem import OnBase, factor_values

__all__ = ["LinProblem", "Pilot", "decorrelating_map", "lin_problem", "pilot"]

#: Penalised IRLS sweeps of the pilot (it need not converge: any pilot is exact).
PILOT_SWEEPS = 10


@dataclass(frozen=True)
class Pilot:
    """A pilot fit: fixed effects, group effects (``levels x q``), and at them the (clipped)
    linear predictor, working weights ``n p (1 - p)`` and score ``y - n p`` of every row."""

    beta: np.ndarray
    b: np.ndarray
    eta: np.ndarray
    weights: np.ndarray
    score: np.ndarray


def pilot(X: np.ndarray, y: np.ndarray, trials: np.ndarray, Z: np.ndarray, idx: np.ndarray,
          levels: int, sweeps: int = PILOT_SWEEPS) -> Pilot:
    """Penalised IRLS for the binomial model: the fixed effects of the model without groups
    (:func:`~multilevel.design.statistics.group_logistic`, 0 where it diverges), then
    alternating Newton steps for every group's effects (a ``N(0, I)`` penalty on the logit
    scale) and for the fixed effects (a tiny ridge).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> idx = np.repeat(np.arange(20), 30)
    >>> X, Z = np.ones((600, 1)), np.ones((600, 1))
    >>> y = rng.binomial(1, 0.3, 600).astype(float)
    >>> fit = pilot(X, y, np.ones(600), Z, idx, 20)
    >>> bool(abs(fit.beta[0] - np.log(0.3 / 0.7)) < 0.3)
    True
    """
    n, p, q = X.shape[0], X.shape[1], Z.shape[1]
    ridge = 1e-6 * np.eye(p)
    one = np.zeros(n, dtype=np.int64)
    beta = np.nan_to_num(group_logistic(X, one, y, trials, np.zeros(n), 1)[0])
    b = np.zeros((levels, q))

    def state() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        eta = np.clip(X @ beta + np.einsum("ia,ia->i", Z, b[idx]), -30.0, 30.0)
        prob = expit(eta)
        return eta, trials * prob * (1 - prob), y - trials * prob

    for _ in range(sweeps):
        _, w, score = state()
        hess = group_cross(idx, levels, Z * w[:, None], Z) + np.eye(q)
        grad = group_cross(idx, levels, Z, score[:, None])[..., 0] - b
        b = b + np.linalg.solve(hess, grad[..., None])[..., 0]
        _, w, score = state()
        beta = beta + np.linalg.solve(X.T @ (w[:, None] * X) + ridge, X.T @ score)
    return Pilot(beta, b, *state())


def decorrelating_map(info: np.ndarray) -> np.ndarray:
    """``M`` with ``M M' = info^-1`` (upper triangular, from the Cholesky factor of ``info``);
    when rounding has left a nearly singular ``info`` indefinite, the eigenvectors scaled by
    the eigenvalues clipped at ``1e-8`` of the largest (any invertible ``M`` keeps the
    posterior; this one keeps the sampler's scales sane).

    Examples
    --------
    >>> import numpy as np
    >>> m = decorrelating_map(np.array([[4.0, 0.0], [0.0, 1.0]]))
    >>> np.round(m @ m.T, 6).tolist()
    [[0.25, 0.0], [0.0, 1.0]]
    >>> m = decorrelating_map(np.array([[1.0, 1.0], [1.0, 1.0 - 1e-12]]))  # indefinite
    >>> bool(np.all(np.isfinite(m)) and abs(np.linalg.det(m)) > 0)
    True
    """
    try:
        return np.linalg.inv(np.linalg.cholesky(info)).T
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(0.5 * (info + info.T))
        vals = np.maximum(vals, 1e-8 * max(float(vals.max()), 1e-300))
        return vecs / np.sqrt(vals)


@dataclass(frozen=True)
class LinProblem(OnBase):
    """The linearized model (``kernel='linearized'``) of a one-factor binomial non-centered
    problem (``base``): the arguments of :func:`lin_logp_grad` besides ``theta``. Its ``theta``
    has the base's layout (fixed effects, sds, correlations, one offset per level and term);
    the fixed effects and offsets mean other things (module docstring) and an sd with a prior
    of :data:`~multilevel.engine.kernels.common.SIGNED_FAMILIES` is a signed ``t``."""

    base: NCProblem
    args: LinearizedArgs
    kernel: str = "linearized"

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density (up to a constant) and gradient at ``theta``."""
        return lin_logp_grad(np.asarray(theta, dtype=float), *self.args.values())

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        """The pilot's fixed effects (``w = 0``), sds of 0.5, no correlation, small offsets;
        jittered (a signed sd by the factor ``exp(+-0.5)``, so every chain starts positive)."""
        p, q = self.base.p, self.args.q
        theta = rng.uniform(-0.3, 0.3, size=self.ndim)
        theta[:p] *= 0.1
        jitter = theta[p:p + q].copy()
        theta[p:p + q] = np.where(self.signed, 0.5 * np.exp(jitter), np.log(0.5) + jitter)
        z0 = self.base.layout[0, 2]
        theta[z0:] = rng.normal(0, 0.1, self.ndim - z0)
        return theta

    def constrained(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named values at ``theta`` (``(..., ndim)``): fixed effects, sds, correlations, group
        effects ``u`` and the non-centered offsets ``z = Lambda^-1 u``."""
        a, g = self.args, self.design.groups[0]
        lead = theta.shape[:-1]
        flat = np.ascontiguousarray(theta.reshape(-1, self.ndim), dtype=float)
        beta, u = _effects(flat, a.A, a.c, a.D, a.beta0, a.M, a.q, a.correlated, a.sd_fam)
        p, q = self.base.p, a.q
        s0, x0, _ = self.base.layout[0]
        t = theta[..., s0:s0 + q]
        with np.errstate(divide="ignore"):  # an sd of exactly 0: log 0 = -inf, exp gives 0 back
            log_sd = np.where(self.signed, np.log(np.abs(t)), t)
        x = theta[..., x0:x0 + q * (q - 1) // 2] if a.correlated else None
        out = {naming.FIXED: beta.reshape(lead + (p,)), **factor_values(g, log_sd, x)}
        sd = out[naming.sd_name(g.factor)]
        chol = (out[naming.corchol_name(g.factor)] if x is not None
                else np.broadcast_to(np.eye(q), lead + (q, q)))
        lam = sd[..., :, None] * chol
        u = u.reshape(lead + (g.n_levels, q))
        out[naming.effect_name(g.factor)] = u
        with np.errstate(divide="ignore", invalid="ignore"):
            out[naming.offset_name(g.factor)] = np.linalg.solve(lam[..., None, :, :], u[..., None])[..., 0]
        return out



@numba.njit(cache=True)
def _effects(thetas, A, c, D, beta0, M, q, correlated, sd_fam):
    """:func:`lin_effects` over the rows of ``thetas``."""
    n = thetas.shape[0]
    beta = np.empty((n, beta0.shape[0]))
    u = np.empty((n, A.shape[0], q))
    for k in range(n):
        beta[k], u[k] = lin_effects(thetas[k], A, c, D, beta0, M, q, correlated, sd_fam)
    return beta, u


def lin_problem(base: NCProblem) -> LinProblem | None:
    """The linearized problem of a non-centered one: a binomial (or Bernoulli) model with one
    grouping factor, its rows and priors shared; None for anything else."""
    d, a = base.design, base.args
    if a.family != 1 or len(d.groups) != 1:
        return None
    g = d.groups[0]
    X, Z, idx = d.X, g.Z, g.index.astype(np.int64)
    fit = pilot(X, a.y, a.trials, Z, idx, g.n_levels)
    w, q = fit.weights, g.n_terms
    work = w * fit.eta + fit.score  # W times the working response, without dividing by W
    wz = Z * w[:, None]
    A = group_cross(idx, g.n_levels, wz, Z)
    c = group_cross(idx, g.n_levels, Z, work[:, None])[..., 0]
    D = group_cross(idx, g.n_levels, wz, X)
    info = X.T @ (w[:, None] * X)
    info -= np.einsum("jap,jab,jbr->pr", D, np.linalg.inv(A + np.eye(q)), D)
    info += 1e-8 * np.mean(np.diag(info)) * np.eye(len(info)) + 1e-12 * np.eye(len(info))
    M = decorrelating_map(info)  # cov(M w) = info^-1 for w ~ N(0, I)
    args = LinearizedArgs(
        XT=np.ascontiguousarray(X.T), y=a.y, trials=a.trials, ZT=np.ascontiguousarray(Z.T),
        idx=idx, q=q, correlated=bool(a.correlated[0]), A=A, c=c, D=D, beta0=fit.beta, M=M,
        b_fam=a.b_fam, b_par=a.b_par, sd_fam=a.sd_fam, sd_par=a.sd_par, eta=float(a.eta_lkj[0]),
    )
    return LinProblem(base, args)
