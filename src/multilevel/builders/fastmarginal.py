"""Sample the marginal Gaussian model with nutpie and the cached numba log-density.

:func:`sample_marginal` hands :func:`multilevel.builders.fastlogp.logp_grad` (compiled once per
install) to nutpie as a C callback (:mod:`multilevel.builders.cnutpie`), so a fit compiles
nothing, then maps the draws back to the same named variables (``b``, ``sd_<g>``,
``corchol_<g>``, ``cor_<g>``, ``sigma``) as the PyMC model would give.

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> from multilevel.priors import resolve_priors
>>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                  datasets.load("sleepstudy"))
>>> problem = marginal_problem(d, resolve_priors(d))
>>> problem.ndim  # 2 fixed effects, 2 sds, 1 correlation, sigma
6
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multilevel import naming
from multilevel.builders.cnutpie import run_nutpie
from multilevel.builders.fastlogp import FAMILY_CODES, FAMILY_PARAMS, logp_grad
from multilevel.builders.marginal import SufficientStats, sufficient_stats
from multilevel.design import Design
from multilevel.priors import ResolvedPriors
from multilevel.spec import Prior, SamplerSettings

__all__ = ["MarginalProblem", "corr_cholesky", "encode_prior", "marginal_problem", "sample_marginal",
           "shifted_beta"]


def encode_prior(prior: Prior) -> tuple[int, np.ndarray]:
    params = np.zeros(3)
    names = FAMILY_PARAMS[prior.dist]
    defaults = {"mu": 0.0, "alpha": 0.0} if prior.dist in ("Normal", "StudentT", "Cauchy") else {}
    for k, name in enumerate(names):
        params[k] = prior.kwargs.get(name, defaults.get(name, np.nan))
    return FAMILY_CODES[prior.dist], params


@dataclass(frozen=True)
class MarginalProblem:
    """Everything :func:`logp_grad` takes besides ``theta``."""

    design: Design
    stats: SufficientStats
    args: tuple
    p: int
    q: int
    n_cor: int

    @property
    def ndim(self) -> int:
        """Number of unconstrained parameters."""
        return self.p + self.q + self.n_cor + 1

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density (up to a constant) and gradient at ``theta``."""
        return logp_grad(np.asarray(theta, dtype=float), *self.args)

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        """A jittered starting point."""
        return initial_point(self, rng)

    def constrained(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named parameter values at ``theta`` (``(..., ndim)``; ``b`` on the user's scale)."""
        p, q, n_cor = self.p, self.q, self.n_cor
        g = self.design.groups[0]
        out = {naming.FIXED: shifted_beta(theta, p, self.args[0]),
               naming.sd_name(g.factor): np.exp(theta[..., p:p + q]),
               naming.SIGMA: np.exp(theta[..., -1])}
        if n_cor:
            chol = corr_cholesky(theta[..., p + q:p + q + n_cor], q)
            out[f"corchol_{naming.group_key(g.factor)}"] = chol
            out[naming.cor_name(g.factor)] = chol @ np.swapaxes(chol, -1, -2)
        return out


def shifted_beta(theta: np.ndarray, p: int, shift: np.ndarray) -> np.ndarray:
    """Fixed effects on the user's scale from the sampler's (centred-intercept) ones."""
    beta = np.array(theta[..., :p], dtype=float)
    if shift.shape[0] == p:
        beta[..., 0] -= theta[..., :p] @ shift
    return beta


def corr_cholesky(x: np.ndarray, q: int) -> np.ndarray:
    """Cholesky factors ``(..., q, q)`` of correlation matrices from the unconstrained ``x``
    (``(..., q(q-1)/2)``; row ``i`` is ``(x_i, 1) / sqrt(1 + |x_i|^2)``, module
    :mod:`multilevel.builders.fastlogp`).

    Examples
    --------
    >>> corr_cholesky(np.array([0.0]), 2).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    chol = np.zeros(x.shape[:-1] + (q, q))
    chol[..., 0, 0] = 1.0
    k = 0
    for i in range(1, q):
        xi = x[..., k:k + i]
        norm = np.sqrt(1 + np.sum(xi * xi, axis=-1))
        chol[..., i, :i] = xi / norm[..., None]
        chol[..., i, i] = 1 / norm
        k += i
    return chol


def marginal_problem(design: Design, priors: ResolvedPriors) -> MarginalProblem:
    """Encode the design's sufficient statistics and priors for :func:`logp_grad`."""
    g = design.groups[0]
    stats = sufficient_stats(design)
    p, q = design.X.shape[1], g.n_terms
    correlated = g.correlated and q > 1
    fixed = [priors.intercept if n == "(Intercept)" else priors.fixed[n] for n in design.fixed_names]
    b_codes = [encode_prior(pr) for pr in fixed]
    sd_codes = [encode_prior(pr) for pr in priors.sd[g.factor].values()]
    sig_fam, sig_par = encode_prior(priors.sigma)
    has_intercept = design.fixed_names[0] == "(Intercept)"
    shift = design.X.mean(axis=0) if has_intercept else np.zeros(0)
    if has_intercept:
        shift[0] = 0.0
    eta = priors.cor[g.factor].kwargs["eta"] if correlated else 1.0
    args = (
        shift, stats.ztz, stats.ztx, stats.zty, stats.xtx, stats.xty, stats.yty,
        float(stats.n.sum()),
        np.array([c for c, _ in b_codes], dtype=np.int64), np.array([v for _, v in b_codes]),
        np.array([c for c, _ in sd_codes], dtype=np.int64), np.array([v for _, v in sd_codes]),
        sig_fam, sig_par, float(eta), correlated,
    )
    return MarginalProblem(design, stats, args, p, q, q * (q - 1) // 2 if correlated else 0)


def initial_point(problem, rng: np.random.Generator) -> np.ndarray:
    """OLS fixed effects, sds at half the residual sd, jittered (shared by the fast samplers)."""
    d = problem.design
    coef, *_ = np.linalg.lstsq(d.X, d.y, rcond=None)
    shift = problem.args[0]
    theta = np.zeros(problem.ndim)
    theta[:problem.p] = coef
    if shift.shape[0] == problem.p:
        theta[0] = coef[0] + shift @ coef
    resid_sd = float(np.std(d.y - d.X @ coef))
    z_sd = d.groups[0].Z.std(axis=0)
    z_sd[z_sd == 0] = 1.0
    theta[problem.p:problem.p + problem.q] = np.log(0.5 * resid_sd / z_sd)
    theta[-1] = np.log(resid_sd)
    return theta + rng.uniform(-0.5, 0.5, size=theta.shape) * np.r_[
        np.full(problem.p, 0.1), np.ones(problem.ndim - problem.p)
    ]


def _variables(problem: MarginalProblem) -> list[tuple[str, tuple[int, ...], tuple[str, ...]]]:
    g = problem.design.groups[0]
    out = [
        (naming.FIXED, (problem.p,), (naming.FIXED_DIM,)),
        (naming.sd_name(g.factor), (problem.q,), (naming.term_dim(g.factor),)),
        (naming.SIGMA, (), ()),
    ]
    if problem.n_cor:
        square = (problem.q, problem.q)
        out.append((f"corchol_{naming.group_key(g.factor)}", square, ()))
        out.append((naming.cor_name(g.factor), square,
                    (naming.term_dim(g.factor), naming.term_dim_bis(g.factor))))
    return out


def sample_marginal(design: Design, priors: ResolvedPriors, settings: SamplerSettings,
                    *, progressbar: bool = True):
    """NUTS (nutpie) over the hyperparameters; returns ArviZ data like :func:`pymc.sample`."""
    problem = marginal_problem(design, priors)
    g = design.groups[0]
    coords = {naming.FIXED_DIM: list(design.fixed_names),
              naming.term_dim(g.factor): list(g.term_names),
              naming.term_dim_bis(g.factor): list(g.term_names)}
    return run_nutpie(problem, "marginal", _variables(problem), coords, settings, progressbar=progressbar)
