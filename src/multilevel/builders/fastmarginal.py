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
from multilevel.builders.fastnested import nested_logp_grad
from multilevel.builders.marginal import sufficient_stats
from multilevel.design import Design, GroupDesign
from multilevel.priors import ResolvedPriors
from multilevel.spec import Prior, SamplerSettings

__all__ = ["Factor", "MarginalProblem", "corr_cholesky", "encode_prior", "marginal_problem",
           "sample_marginal", "shifted_beta"]


def encode_prior(prior: Prior) -> tuple[int, np.ndarray]:
    params = np.zeros(3)
    names = FAMILY_PARAMS[prior.dist]
    defaults = {"mu": 0.0, "alpha": 0.0} if prior.dist in ("Normal", "StudentT", "Cauchy") else {}
    for k, name in enumerate(names):
        params[k] = prior.kwargs.get(name, defaults.get(name, np.nan))
    return FAMILY_CODES[prior.dist], params


@dataclass(frozen=True)
class Factor:
    """One grouping factor's place in ``theta``: ``log s`` from ``ks``, ``x`` from ``kx``."""

    group: GroupDesign
    ks: int
    kx: int
    n_cor: int


@dataclass(frozen=True)
class MarginalProblem:
    """Everything the compiled ``kernel`` (``'marginal'``: :func:`fastlogp.logp_grad`, one
    factor; ``'nested'``: :func:`fastnested.nested_logp_grad`, two nested factors, outer first)
    takes besides ``theta = (beta_c, log s, x [per factor], log sigma)``."""

    design: Design
    kernel: str
    args: tuple
    p: int
    factors: tuple[Factor, ...]

    @property
    def ndim(self) -> int:
        """Number of unconstrained parameters."""
        last = self.factors[-1]
        return last.kx + last.n_cor + 1

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density (up to a constant) and gradient at ``theta``."""
        kernel = logp_grad if self.kernel == "marginal" else nested_logp_grad
        return kernel(np.asarray(theta, dtype=float), *self.args)

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        """OLS fixed effects, sds at half the residual sd, jittered."""
        d = self.design
        coef, *_ = np.linalg.lstsq(d.X, d.y, rcond=None)
        shift = self.args[0]
        theta = np.zeros(self.ndim)
        theta[:self.p] = coef
        if shift.shape[0] == self.p:
            theta[0] = coef[0] + shift @ coef
        resid_sd = float(np.std(d.y - d.X @ coef))
        for f in self.factors:
            z_sd = f.group.Z.std(axis=0)
            z_sd[z_sd == 0] = 1.0
            theta[f.ks:f.kx] = np.log(0.5 * resid_sd / z_sd)
        theta[-1] = np.log(resid_sd)
        return theta + rng.uniform(-0.5, 0.5, size=theta.shape) * np.r_[
            np.full(self.p, 0.1), np.ones(self.ndim - self.p)
        ]

    def constrained(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named parameter values at ``theta`` (``(..., ndim)``; ``b`` on the user's scale)."""
        out = {naming.FIXED: shifted_beta(theta, self.p, self.args[0]),
               naming.SIGMA: np.exp(theta[..., -1])}
        for f in self.factors:
            g = f.group
            out[naming.sd_name(g.factor)] = np.exp(theta[..., f.ks:f.kx])
            if f.n_cor:
                chol = corr_cholesky(theta[..., f.kx:f.kx + f.n_cor], g.n_terms)
                out[f"corchol_{naming.group_key(g.factor)}"] = chol
                out[naming.cor_name(g.factor)] = chol @ np.swapaxes(chol, -1, -2)
        return out

    def variables(self) -> list[tuple[str, tuple[int, ...], tuple[str, ...]]]:
        """``(name, shape, dims)`` of the stored draws."""
        out = [(naming.FIXED, (self.p,), (naming.FIXED_DIM,)), (naming.SIGMA, (), ())]
        for f in self.factors:
            g, q = f.group, f.group.n_terms
            out.append((naming.sd_name(g.factor), (q,), (naming.term_dim(g.factor),)))
            if f.n_cor:
                out.append((f"corchol_{naming.group_key(g.factor)}", (q, q), ()))
                out.append((naming.cor_name(g.factor), (q, q),
                            (naming.term_dim(g.factor), naming.term_dim_bis(g.factor))))
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
    """Encode the design's sufficient statistics and priors for the compiled kernel."""
    from multilevel.builders.nested import nested_stats, nesting

    pos = nesting(design)
    groups = [design.groups[0]] if pos is None else [design.groups[k] for k in pos]
    p = design.X.shape[1]
    factors, k = [], p
    for g in groups:
        q = g.n_terms
        n_cor = q * (q - 1) // 2 if g.correlated and q > 1 else 0
        factors.append(Factor(g, k, k + q, n_cor))
        k += q + n_cor
    fixed = [priors.intercept if n == "(Intercept)" else priors.fixed[n] for n in design.fixed_names]
    b_codes = [encode_prior(pr) for pr in fixed]
    sd_codes = [encode_prior(pr) for g in groups for pr in priors.sd[g.factor].values()]
    sig_fam, sig_par = encode_prior(priors.sigma)
    has_intercept = design.fixed_names[0] == "(Intercept)"
    shift = design.X.mean(axis=0) if has_intercept else np.zeros(0)
    if has_intercept:
        shift[0] = 0.0
    etas = [priors.cor[f.group.factor].kwargs["eta"] if f.n_cor else 1.0 for f in factors]
    codes = (np.array([c for c, _ in b_codes], dtype=np.int64), np.array([v for _, v in b_codes]),
             np.array([c for c, _ in sd_codes], dtype=np.int64), np.array([v for _, v in sd_codes]),
             sig_fam, sig_par)
    if pos is None:
        st = sufficient_stats(design)
        args = (shift, st.ztz, st.ztx, st.zty, st.xtx, st.xty, st.yty, float(st.n.sum()), *codes,
                float(etas[0]), bool(factors[0].n_cor))
        return MarginalProblem(design, "marginal", args, p, tuple(factors))
    args = (shift, *nested_stats(design).kernel_args(), *codes, np.array(etas, dtype=float),
            np.array([bool(f.n_cor) for f in factors]))
    return MarginalProblem(design, "nested", args, p, tuple(factors))


def sample_marginal(design: Design, priors: ResolvedPriors, settings: SamplerSettings,
                    *, progressbar: bool = True):
    """NUTS (nutpie) over the hyperparameters; returns ArviZ data like :func:`pymc.sample`."""
    problem = marginal_problem(design, priors)
    coords = {naming.FIXED_DIM: list(design.fixed_names)}
    for f in problem.factors:
        g = f.group
        coords[naming.term_dim(g.factor)] = list(g.term_names)
        coords[naming.term_dim_bis(g.factor)] = list(g.term_names)
    return run_nutpie(problem, problem.kernel, problem.variables(), coords, settings,
                      progressbar=progressbar)
