"""Sample the non-centered model with nutpie and the cached numba log-density.

:func:`sample_noncentered` is the compile-free path for models the marginal likelihood does not
cover: logistic models (rows with identical covariates and groups collapsed into binomial
counts first, :func:`multilevel.design.collapse_binomial`) and Gaussian models with several
grouping factors. The draws carry the same names as the PyMC model's (``b``, ``sd_<g>``,
``cor_<g>``, ``corchol_<g>``, ``z_<g>``, ``u_<g>``, ``sigma``).

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> from multilevel.priors import resolve_priors
>>> d = build_design(ModelSpec.from_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
...                  datasets.load("cbpp"))
>>> nc_problem(d, resolve_priors(d)).ndim  # 4 fixed effects, 1 sd, 15 herd offsets
20
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multilevel import naming
from multilevel.builders.cnutpie import run_nutpie
from multilevel.builders.fastmarginal import corr_cholesky, encode_prior, shifted_beta
from multilevel.builders.fastnc import factor_layout, nc_logp_grad
from multilevel.design import Design, collapse_binomial
from multilevel.priors import ResolvedPriors
from multilevel.spec import SamplerSettings
from multilevel.summaries.shrinkage import complete_pooling

__all__ = ["MAX_TERMS", "NCProblem", "nc_problem", "sample_noncentered"]

#: Most varying terms per factor the compiled path handles (else PyMC's own graph is used).
MAX_TERMS = 8


@dataclass(frozen=True)
class NCProblem:
    """Arguments of :func:`nc_logp_grad` besides ``theta``, and the parameter layout."""

    design: Design
    args: tuple
    layout: np.ndarray
    p: int
    ndim: int

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density (up to a constant) and gradient at ``theta``."""
        return nc_logp_grad(np.asarray(theta, dtype=float), *self.args)

    def constrained(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named values at ``theta`` (``(..., ndim)``): fixed effects on the user's scale, sds,
        correlations, offsets ``z`` and group effects ``u``."""
        out = {naming.FIXED: shifted_beta(theta, self.p, self.args[0])}
        lead = theta.shape[:-1]
        for k, g in enumerate(self.design.groups):
            s0, x0, z0 = self.layout[k]
            q = g.n_terms
            if g.correlated and q > 1:
                chol = corr_cholesky(theta[..., x0:x0 + q * (q - 1) // 2], q)
                out[f"corchol_{naming.group_key(g.factor)}"] = chol
                out[naming.cor_name(g.factor)] = chol @ np.swapaxes(chol, -1, -2)
            else:
                chol = np.broadcast_to(np.eye(q), lead + (q, q))
            sd = np.exp(theta[..., s0:s0 + q])
            z = theta[..., z0:z0 + g.n_levels * q].reshape(lead + (g.n_levels, q))
            out[naming.sd_name(g.factor)] = sd
            out[naming.offset_name(g.factor)] = z
            out[naming.effect_name(g.factor)] = np.einsum("...jb,...ab->...ja", z, sd[..., :, None] * chol)
        if self.design.spec.family == "gaussian" and self.design.se is None:
            out[naming.SIGMA] = np.exp(theta[..., -1])
        return out

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        """Complete-pooling fixed effects, sds of 0.5 (logit) or half the residual sd, small
        offsets; jittered."""
        d = self.design
        theta = np.zeros(self.ndim)
        coef = complete_pooling(d)
        coef = np.where(np.isfinite(coef), coef, 0.0)
        theta[:self.p] = coef
        shift = self.args[0]
        if shift.shape[0] == self.p:
            theta[0] = coef[0] + shift @ coef
        scale = 0.5 if d.spec.is_logistic else 0.5 * float(np.std(d.y - d.X @ coef))
        for k, g in enumerate(d.groups):
            s0, _, z0 = self.layout[k]
            theta[s0:s0 + g.n_terms] = np.log(scale)
            theta[z0:z0 + g.n_levels * g.n_terms] = rng.normal(0, 0.1, g.n_levels * g.n_terms)
        if d.spec.family == "gaussian" and d.se is None:
            theta[-1] = np.log(2 * scale)
        jitter = rng.uniform(-0.3, 0.3, size=self.ndim)
        jitter[:self.p] *= 0.1
        return theta + jitter


def nc_problem(design: Design, priors: ResolvedPriors) -> NCProblem:
    """Encode a (collapsed) design and its priors for :func:`nc_logp_grad`."""
    d = collapse_binomial(design)
    groups = d.groups
    q = np.array([g.n_terms for g in groups], dtype=np.int64)
    levels = np.array([g.n_levels for g in groups], dtype=np.int64)
    correlated = np.array([g.correlated and g.n_terms > 1 for g in groups])
    p = d.X.shape[1]
    layout = factor_layout(q, levels, correlated, p)
    gaussian = d.spec.family == "gaussian" and d.se is None
    ndim = int(layout[-1, 2] + levels[-1] * q[-1]) + int(gaussian)
    fixed = [priors.intercept if n == "(Intercept)" else priors.fixed[n] for n in d.fixed_names]
    b_codes = [encode_prior(pr) for pr in fixed]
    sd_codes = [encode_prior(pr) for g in groups for pr in priors.sd[g.factor].values()]
    sig_fam, sig_par = encode_prior(priors.sigma) if gaussian else (0, np.zeros(3))
    has_intercept = d.fixed_names[0] == "(Intercept)"
    shift = d.X.mean(axis=0) if has_intercept else np.zeros(0)
    if has_intercept:
        shift[0] = 0.0
    trials = d.trials if d.trials is not None else d.se if d.se is not None else np.ones(d.n_obs)
    args = (
        shift, d.X, d.y, trials, np.column_stack([g.Z for g in groups]),
        np.r_[0, np.cumsum(q)[:-1]].astype(np.int64),
        np.column_stack([g.index for g in groups]).astype(np.int64), q, levels, correlated, layout,
        np.array([c for c, _ in b_codes], dtype=np.int64), np.array([v for _, v in b_codes]),
        np.array([c for c, _ in sd_codes], dtype=np.int64), np.array([v for _, v in sd_codes]),
        np.r_[0, np.cumsum(q)[:-1]].astype(np.int64),
        np.array([priors.cor[g.factor].kwargs["eta"] if c else 1.0
                  for g, c in zip(groups, correlated, strict=True)]),
        0 if gaussian else 2 if d.se is not None else 1, sig_fam, sig_par,
    )
    return NCProblem(d, args, layout, p, ndim)


def sample_noncentered(design: Design, priors: ResolvedPriors, settings: SamplerSettings,
                       *, progressbar: bool = True):
    """NUTS (nutpie) over all parameters of the non-centered model."""
    problem = nc_problem(design, priors)
    coords: dict[str, list[str]] = {naming.FIXED_DIM: list(design.fixed_names)}
    variables = [(naming.FIXED, (problem.p,), (naming.FIXED_DIM,))]
    for g in design.groups:
        level, term = naming.level_dim(g.factor), naming.term_dim(g.factor)
        bis = naming.term_dim_bis(g.factor)
        coords.update({level: list(g.levels), term: list(g.term_names), bis: list(g.term_names)})
        q = g.n_terms
        variables.append((naming.sd_name(g.factor), (q,), (term,)))
        if g.correlated and q > 1:
            variables.append((f"corchol_{naming.group_key(g.factor)}", (q, q), ()))
            variables.append((naming.cor_name(g.factor), (q, q), (term, bis)))
        variables.append((naming.offset_name(g.factor), (g.n_levels, q), (level, term)))
        variables.append((naming.effect_name(g.factor), (g.n_levels, q), (level, term)))
    if design.spec.family == "gaussian" and design.se is None:
        variables.append((naming.SIGMA, (), ()))
    return run_nutpie(problem, "noncentered", variables, coords, settings, progressbar=progressbar)
