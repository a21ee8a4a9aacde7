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
>>> from multilevel.model import resolve_priors
>>> d = build_design(ModelSpec.from_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
...                  datasets.load("cbpp"))
>>> nc_problem(d, resolve_priors(d)).ndim  # 4 fixed effects, 1 sd, 15 herd offsets
20
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multilevel import naming
from multilevel.design import Design, collapse_binomial
from multilevel.design.statistics import complete_pooling
from multilevel.engine.args import NoncenteredArgs, encode_priors
from multilevel.engine.kernels.noncentered import factor_layout, nc_logp_grad
from multilevel.engine.problem import (
    Variable,
    factor_coords,
    factor_values,
    factor_variables,
    shifted_beta,
)
from multilevel.model.priors import ResolvedPriors

__all__ = ["NCProblem", "nc_problem"]


@dataclass(frozen=True)
class NCProblem:
    """The non-centered model (``kernel='noncentered'``): the arguments of
    :func:`nc_logp_grad` besides ``theta``, and the parameter layout."""

    design: Design
    args: NoncenteredArgs
    layout: np.ndarray
    p: int
    ndim: int
    kernel: str = "noncentered"

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density (up to a constant) and gradient at ``theta``."""
        return nc_logp_grad(np.asarray(theta, dtype=float), *self.args.values())

    def constrained(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named values at ``theta`` (``(..., ndim)``): fixed effects on the user's scale, sds,
        correlations, offsets ``z`` and group effects ``u``."""
        out = {naming.FIXED: shifted_beta(theta, self.p, self.args.shift)}
        lead = theta.shape[:-1]
        for k, g in enumerate(self.design.groups):
            s0, x0, z0 = self.layout[k]
            q = g.n_terms
            x = theta[..., x0:x0 + q * (q - 1) // 2] if g.correlated and q > 1 else None
            out |= factor_values(g, theta[..., s0:s0 + q], x)
            sd = out[naming.sd_name(g.factor)]
            chol = (out[naming.corchol_name(g.factor)] if x is not None
                    else np.broadcast_to(np.eye(q), lead + (q, q)))
            z = theta[..., z0:z0 + g.n_levels * q].reshape(lead + (g.n_levels, q))
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
        shift = self.args.shift
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

    def variables(self) -> list[Variable]:
        """``(name, shape, dims)`` of the stored draws."""
        out: list[Variable] = [(naming.FIXED, (self.p,), (naming.FIXED_DIM,))]
        for g in self.design.groups:
            level, term = naming.level_dim(g.factor), naming.term_dim(g.factor)
            shape = (g.n_levels, g.n_terms)
            out += factor_variables(g, g.correlated and g.n_terms > 1)
            out.append((naming.offset_name(g.factor), shape, (level, term)))
            out.append((naming.effect_name(g.factor), shape, (level, term)))
        if self.design.spec.family == "gaussian" and self.design.se is None:
            out.append((naming.SIGMA, (), ()))
        return out

    def coords(self) -> dict[str, list[str]]:
        """Fixed-effect names and every factor's levels and term names."""
        return factor_coords(self.design, self.design.groups, levels=True)


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
    trials = d.trials if d.trials is not None else d.se if d.se is not None else np.ones(d.n_obs)
    starts = np.r_[0, np.cumsum(q)[:-1]].astype(np.int64)
    args = NoncenteredArgs(
        XT=np.ascontiguousarray(d.X.T), y=d.y, trials=trials,
        ZT=np.ascontiguousarray(np.column_stack([g.Z for g in groups]).T), z_start=starts,
        idx=np.column_stack([g.index for g in groups]).astype(np.int64), q=q, levels=levels,
        correlated=correlated, layout=layout, sd_start=starts,
        eta_lkj=np.array([priors.cor[g.factor].kwargs["eta"] if c else 1.0
                          for g, c in zip(groups, correlated, strict=True)]),
        family=0 if gaussian else 2 if d.se is not None else 1,
        **encode_priors(d, priors, groups, sigma=gaussian).priors(),
    )
    return NCProblem(d, args, layout, p, ndim)
