"""The marginal Gaussian model as a sampler :class:`~multilevel.engine.problem.Problem`.

:func:`hyper_problem` encodes a one-factor model whose fixed effects have normal or flat priors
for :func:`~multilevel.engine.kernels.hyper.hyper_logp_grad` (:class:`~multilevel.engine.args.
HyperArgs`): the fixed effects are integrated out too and NUTS samples the sds, correlations and
sigma alone. Otherwise :func:`marginal_problem` encodes a design's sufficient statistics (one
grouping factor: :class:`~multilevel.engine.args.MarginalArgs` for :func:`~multilevel.engine.kernels.marginal.
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
from multilevel.engine.args import HyperArgs, MarginalArgs, NestedArgs, encode_priors
from multilevel.engine.kernels.common import FAMILY_CODES, SIGNED_FAMILIES
from multilevel.engine.kernels.hyper import hyper_logp_grad
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

__all__ = ["Factor", "HyperProblem", "MarginalProblem", "hyper_problem", "marginal_problem",
           "normal_fixed_prior"]


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


@dataclass(frozen=True)
class HyperProblem:
    """The hyperparameters of a one-factor marginal model alone (``kernel='hyper'``): the fixed
    effects are integrated out as well (:mod:`multilevel.engine.kernels.hyper`) and drawn after
    sampling (:func:`multilevel.engine.recovery.recover_fixed_effects`). ``theta = (t, x,
    log sigma)``: the marginal problem's ``theta`` without its first ``p`` entries, an sd with a
    prior of :data:`~multilevel.engine.kernels.common.SIGNED_FAMILIES` as a signed ``t`` (``s =
    |t|``) instead of ``log s``."""

    base: MarginalProblem
    args: HyperArgs
    kernel: str = "hyper"

    @property
    def design(self) -> Design:
        """The design."""
        return self.base.design

    @property
    def ndim(self) -> int:
        """Number of unconstrained parameters (sds, correlations, sigma)."""
        return self.base.n_marginal - self.base.p

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density of the hyperparameters (up to a constant) and its gradient."""
        return hyper_logp_grad(np.asarray(theta, dtype=float), *self.args.values())

    @property
    def signed(self) -> np.ndarray:
        """Which sds are sampled signed (``s = |t|``) rather than as ``log s``."""
        return np.isin(self.args.sd_fam, SIGNED_FAMILIES)

    def start_point(self) -> np.ndarray:
        """The marginal problem's start without the fixed effects (signed sds at ``s``)."""
        theta = self.base.start_point()[self.base.p:]
        q = self.signed.shape[0]
        theta[:q] = np.where(self.signed, np.exp(theta[:q]), theta[:q])
        return theta

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        """:meth:`start_point`, jittered (a signed sd by the factor ``exp(+-0.5)``, as ``log s``
        is, so that every chain starts at a positive sd)."""
        theta = self.start_point()
        jitter = rng.uniform(-0.5, 0.5, size=theta.shape)
        q = self.signed.shape[0]
        theta[:q] = np.where(self.signed, theta[:q] * np.exp(jitter[:q]), theta[:q] + jitter[:q])
        theta[q:] += jitter[q:]
        return theta

    def constrained(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named hyperparameter values at ``theta`` (``(..., ndim)``)."""
        f = self.base.factors[0]
        q = f.group.n_terms
        t = theta[..., :q]
        with np.errstate(divide="ignore"):  # an sd of exactly 0: log 0 = -inf, exp gives 0 back
            log_sd = np.where(self.signed, np.log(np.abs(t)), t)
        x = theta[..., q:q + f.n_cor] if f.n_cor else None
        return {naming.SIGMA: np.exp(theta[..., -1]), **factor_values(f.group, log_sd, x)}

    def variables(self) -> list[Variable]:
        """``(name, shape, dims)`` of the stored draws (the fixed effects come later)."""
        return [v for v in self.base.variables() if v[0] != naming.FIXED]

    def coords(self) -> dict[str, list[str]]:
        """Fixed-effect names and the factor's term names."""
        return self.base.coords()


def normal_fixed_prior(b_fam: np.ndarray, b_par: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Means and precisions of the fixed effects' priors (encoded as in
    :func:`~multilevel.engine.args.encode_priors`) when each is normal or flat (precision 0),
    else None (a Student-t or Cauchy prior does not integrate out in closed form).

    Examples
    --------
    >>> import numpy as np
    >>> [a.tolist() for a in normal_fixed_prior(np.array([0, 3]), np.array([[1.0, 2.0, 0.0], [0.0] * 3]))]
    [[1.0, 0.0], [0.25, 0.0]]
    >>> normal_fixed_prior(np.array([1]), np.array([[3.0, 0.0, 1.0]])) is None  # Student-t
    True
    """
    normal, flat = FAMILY_CODES["Normal"], FAMILY_CODES["Flat"]
    if not all(c in (normal, flat) for c in b_fam):
        return None
    is_normal = b_fam == normal
    mean = np.where(is_normal, b_par[:, 0], 0.0)
    prec = np.where(is_normal, 1.0 / np.where(is_normal, b_par[:, 1], 1.0) ** 2, 0.0)
    return mean, prec


def hyper_problem(base: MarginalProblem) -> HyperProblem | None:
    """The hyperparameter-only problem of a one-factor marginal problem (``base``) whose fixed
    effects have normal or flat priors, sharing its statistics and prior codes; None for two
    nested factors or a Student-t or Cauchy fixed-effect prior."""
    if base.kernel != "marginal":
        return None
    a = base.args
    normal = normal_fixed_prior(a.b_fam, a.b_par)
    if normal is None:
        return None
    args = HyperArgs(ztz=a.ztz, ztx=a.ztx, zty=a.zty, xtx=a.xtx, xty=a.xty, yty=a.yty,
                     n_total=a.n_total, b_mean=normal[0], b_prec=normal[1], sd_fam=a.sd_fam,
                     sd_par=a.sd_par, sig_fam=a.sig_fam, sig_par=a.sig_par, eta=a.eta,
                     correlated=a.correlated)
    return HyperProblem(base, args)
