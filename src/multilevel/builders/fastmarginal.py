"""Sample the marginal Gaussian model with nutpie and the cached numba log-density.

:func:`sample_marginal` hands :func:`multilevel.builders.fastlogp.logp_grad` (compiled once per
install) to nutpie's ``from_pyfunc`` interface, so a fit compiles nothing, then maps the draws
back to the same named variables (``b``, ``sd_<g>``, ``corchol_<g>``, ``cor_<g>``, ``sigma``)
as the PyMC model would give.

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
from multilevel.builders.fastlogp import FAMILY_CODES, FAMILY_PARAMS, logp_grad
from multilevel.builders.marginal import SufficientStats, sufficient_stats
from multilevel.design import Design
from multilevel.priors import ResolvedPriors
from multilevel.spec import Prior, SamplerSettings

__all__ = ["MarginalProblem", "encode_prior", "marginal_problem", "run_nutpie", "sample_marginal"]


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
        """Named parameter values at ``theta`` (``b`` on the user's scale)."""
        p, q, n_cor = self.p, self.q, self.n_cor
        shift = self.args[0]
        beta = theta[:p].copy()
        if shift.shape[0] == p:
            beta[0] -= shift @ theta[:p]
        chol = np.eye(q)
        k = p + q
        for i in range(1, q if n_cor else 1):
            x = theta[k:k + i]
            norm = np.sqrt(1 + x @ x)
            chol[i, :i] = x / norm
            chol[i, i] = 1 / norm
            k += i
        g = self.design.groups[0]
        out = {naming.FIXED: beta, naming.sd_name(g.factor): np.exp(theta[p:p + q]),
               naming.SIGMA: np.exp(theta[-1])}
        if n_cor:
            out[f"corchol_{naming.group_key(g.factor)}"] = chol
            out[naming.cor_name(g.factor)] = chol @ chol.T
        return out


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


def run_nutpie(problem, variables, coords, settings: SamplerSettings, *, progressbar: bool = True):
    """NUTS by nutpie over ``problem`` (``ndim``, ``logp_grad``, ``constrained``,
    ``initial_point``); ``variables`` are ``(name, shape, dims)`` of the stored draws."""
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    names = [v[0] for v in variables]

    def make_logp():
        def logp(x, **_):
            return problem.logp_grad(x)
        return logp

    def make_expand(seed1, seed2, chain):
        def expand(x, **_):
            values = problem.constrained(np.asarray(x))
            return {n: np.asarray(values[n], dtype=np.float64) for n in names}
        return expand

    def make_init(seed):
        return problem.initial_point(np.random.default_rng(seed))

    compiled = from_pyfunc(
        problem.ndim, make_logp, make_expand, [np.dtype("float64")] * len(names),
        [v[1] for v in variables], names, coords=coords,
        dims={name: dims for name, _, dims in variables if dims}, make_initial_point_fn=make_init,
    )
    seed = settings.seed if settings.seed is not None else int(np.random.SeedSequence().entropy % 2**32)
    return nutpie.sample(
        compiled, draws=settings.draws, tune=settings.tune, chains=settings.chains, seed=seed,
        target_accept=settings.target_accept, progress_bar=progressbar,
    )


def sample_marginal(design: Design, priors: ResolvedPriors, settings: SamplerSettings,
                    *, progressbar: bool = True):
    """NUTS (nutpie) over the hyperparameters; returns ArviZ data like :func:`pymc.sample`."""
    problem = marginal_problem(design, priors)
    g = design.groups[0]
    coords = {naming.FIXED_DIM: list(design.fixed_names),
              naming.term_dim(g.factor): list(g.term_names),
              naming.term_dim_bis(g.factor): list(g.term_names)}
    return run_nutpie(problem, _variables(problem), coords, settings, progressbar=progressbar)
