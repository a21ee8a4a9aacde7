"""The marginal Gaussian model as a sampler :class:`~multilevel.engine.problem.Problem`.

:func:`marginal_problem` encodes a design's sufficient statistics (one grouping factor:
:class:`~multilevel.engine.args.MarginalArgs` for :func:`~multilevel.engine.kernels.marginal.
logp_grad`; two nested ones: :class:`~multilevel.engine.args.NestedArgs` for
:func:`~multilevel.engine.kernels.nested.nested_logp_grad`) and priors; nutpie samples
``theta = (beta_c, log s, x [per factor], log sigma)`` and :meth:`MarginalProblem.constrained`
maps the draws back to the same named variables (``b``, ``sd_<g>``, ``corchol_<g>``,
``cor_<g>``, ``sigma``) as the PyMC model would give.

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> from multilevel.model import resolve_priors
>>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                  datasets.load("sleepstudy"))
>>> problem = marginal_problem(d, resolve_priors(d))
>>> problem.ndim, problem.kernel  # 2 fixed effects, 2 sds, 1 correlation, sigma
(6, 'marginal')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multilevel import naming
from multilevel.design import Design, GroupDesign
from multilevel.design.statistics import (
    NestedStats,
    SufficientStats,
    marginal_statistics,
    moments,
    nesting,
)
from multilevel.engine.args import MarginalArgs, NestedArgs, encode_priors
from multilevel.engine.kernels.marginal import logp_grad
from multilevel.engine.kernels.nested import nested_logp_grad
from multilevel.engine.problem import (
    Variable,
    factor_coords,
    factor_values,
    factor_variables,
    shifted_beta,
)
from multilevel.errors import SpecError
from multilevel.model.priors import ResolvedPriors

__all__ = ["Factor", "MarginalProblem", "marginal_problem"]


@dataclass(frozen=True)
class Factor:
    """One grouping factor's place in ``theta``: ``log s`` from ``ks``, ``x`` from ``kx``."""

    group: GroupDesign
    ks: int
    kx: int
    n_cor: int


@dataclass(frozen=True)
class MarginalProblem:
    """The marginal model of one factor (``kernel='marginal'``) or two nested ones
    (``'nested'``, outer first)."""

    design: Design
    kernel: str
    args: MarginalArgs | NestedArgs
    p: int
    factors: tuple[Factor, ...]

    @property
    def n_marginal(self) -> int:
        """Number of unconstrained parameters of the marginal model (beta, sds, correlations,
        sigma)."""
        last = self.factors[-1]
        return last.kx + last.n_cor + 1

    @property
    def ndim(self) -> int:
        """Number of unconstrained parameters."""
        return self.n_marginal

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density (up to a constant) and gradient at ``theta``."""
        kernel = logp_grad if self.kernel == "marginal" else nested_logp_grad
        return kernel(np.asarray(theta, dtype=float), *self.args.values())

    def start_point(self) -> np.ndarray:
        """OLS fixed effects, sds at half the residual sd, no correlation."""
        mom = moments(self.design)
        coef = mom.ols
        shift = self.args.shift
        theta = np.zeros(self.n_marginal)
        theta[:self.p] = coef
        if shift.shape[0] == self.p:
            theta[0] = coef[0] + shift @ coef
        resid_sd = mom.resid_sd
        z_sds = dict(zip((g.factor for g in self.design.groups), mom.z_sd, strict=True))
        for f in self.factors:
            z_sd = f.group.Z.std(axis=0) if self.design.has_rows else (  # ddof 0
                z_sds[f.group.factor] * np.sqrt((self.design.n_obs - 1) / self.design.n_obs))
            z_sd[z_sd == 0] = 1.0
            theta[f.ks:f.kx] = np.log(0.5 * resid_sd / z_sd)
        theta[-1] = np.log(resid_sd)
        return theta

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        """:meth:`start_point`, jittered."""
        theta = self.start_point()
        return theta + rng.uniform(-0.5, 0.5, size=theta.shape) * np.r_[
            np.full(self.p, 0.1), np.ones(self.n_marginal - self.p)
        ]

    def constrained(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named parameter values at ``theta`` (``(..., ndim)``; ``b`` on the user's scale)."""
        out = {naming.FIXED: shifted_beta(theta, self.p, self.args.shift),
               naming.SIGMA: np.exp(theta[..., -1])}
        for f in self.factors:
            x = theta[..., f.kx:f.kx + f.n_cor] if f.n_cor else None
            out |= factor_values(f.group, theta[..., f.ks:f.kx], x)
        return out

    def variables(self) -> list[Variable]:
        """``(name, shape, dims)`` of the stored draws."""
        out: list[Variable] = [(naming.FIXED, (self.p,), (naming.FIXED_DIM,)), (naming.SIGMA, (), ())]
        for f in self.factors:
            out += factor_variables(f.group, bool(f.n_cor))
        return out

    def coords(self) -> dict[str, list[str]]:
        """Fixed-effect names and the factors' term names."""
        return factor_coords(self.design, [f.group for f in self.factors], levels=False)


def marginal_problem(design: Design, priors: ResolvedPriors,
                     stats: SufficientStats | NestedStats | None = None) -> MarginalProblem:
    """Encode the design's sufficient statistics (computed here unless given; see
    :func:`multilevel.design.statistics.marginal_statistics`) and priors for the kernel."""
    if design.serial is not None:
        raise SpecError("A design with correlated residuals is encoded by "
                        "multilevel.engine.serial.serial_problem, not marginal_problem.")
    stats = marginal_statistics(design) if stats is None else stats
    pos = nesting(design)
    groups = [design.groups[0]] if pos is None else [design.groups[k] for k in pos]
    p = design.X.shape[1]
    factors, k = [], p
    for g in groups:
        q = g.n_terms
        n_cor = q * (q - 1) // 2 if g.correlated and q > 1 else 0
        factors.append(Factor(g, k, k + q, n_cor))
        k += q + n_cor
    codes = encode_priors(design, priors, groups).priors()
    etas = [priors.cor[f.group.factor].kwargs["eta"] if f.n_cor else 1.0 for f in factors]
    if isinstance(stats, SufficientStats):
        args = MarginalArgs(
            ztz=stats.ztz, ztx=stats.ztx, zty=stats.zty, xtx=stats.xtx, xty=stats.xty,
            yty=stats.yty, n_total=stats.n_total, eta=float(etas[0]),
            correlated=bool(factors[0].n_cor), **codes,
        )
        return MarginalProblem(design, "marginal", args, p, tuple(factors))
    args = NestedArgs(
        g1=stats.g1, z1x=stats.z1x, z1y=stats.z1y, a2=stats.a2, c12=stats.c12, z2x=stats.z2x,
        z2y=stats.z2y, cell_start=stats.cell_start, xtx=stats.xtx, xty=stats.xty, yty=stats.yty,
        n_total=stats.n_total, eta=np.array(etas, dtype=float),
        correlated=np.array([bool(f.n_cor) for f in factors]), **codes,
    )
    return MarginalProblem(design, "nested", args, p, tuple(factors))
