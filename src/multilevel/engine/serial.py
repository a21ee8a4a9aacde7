"""The marginal model with AR(1)/CAR(1) residuals as a sampler
:class:`~multilevel.engine.problem.Problem`.

:func:`serial_problem` encodes a design's :class:`~multilevel.design.serial.SerialStats` and
priors for :func:`~multilevel.engine.kernels.serial.serial_logp_grad`; ``theta`` is the
marginal model's vector (:mod:`multilevel.engine.marginal`) followed by ``z``, with ``phi = lo +
(hi - lo) logistic(z)`` on the prior's range, stored as the variable ``phi``.

Examples
--------
>>> import warnings
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> from multilevel.model import resolve_priors
>>> spec = ModelSpec.from_formula("log_exercise ~ age * group + (age | subject) + ar1(age | subject)")
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     d = build_design(spec, datasets.load("blackmore"))
>>> problem = serial_problem(d, resolve_priors(d))
>>> problem.ndim, problem.kernel  # 4 fixed effects, 2 sds, 1 correlation, sigma, phi
(9, 'serial')
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.special import expit

from multilevel import naming
from multilevel.design import Design
from multilevel.design.serial import SerialStats, serial_stats
from multilevel.engine.args import SerialArgs, encode_prior, encode_priors
from multilevel.engine.kernels.serial import serial_logp_grad
from multilevel.engine.marginal import Factor, MarginalProblem
from multilevel.engine.problem import Variable
from multilevel.model.priors import ResolvedPriors, phi_support

__all__ = ["SerialProblem", "phi_range", "serial_mode_note", "serial_problem"]


def phi_range(priors: ResolvedPriors, kind: str) -> tuple[float, float]:
    """The interval ``phi`` is sampled on: the Uniform prior's bounds, else the model's range
    (:func:`~multilevel.model.priors.phi_support`; the Normal prior is truncated to it)."""
    prior = priors.phi
    if prior.dist == "Uniform":
        return prior.kwargs["lower"], prior.kwargs["upper"]
    return phi_support(kind)


@dataclass(frozen=True)
class SerialProblem(MarginalProblem):
    """One factor's marginal model with correlated residuals (``kernel='serial'``)."""

    @property
    def ndim(self) -> int:
        """Number of unconstrained parameters (the marginal model's and ``z``)."""
        return super().ndim + 1

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density (up to a constant) and gradient at ``theta``."""
        return serial_logp_grad(np.asarray(theta, dtype=float), *self.args.values())

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        """The posterior mode (:attr:`modes`), jittered."""
        theta = self.modes[0][1]
        return theta + rng.uniform(-0.1, 0.1, size=theta.shape)

    @functools.cached_property
    def modes(self) -> list[tuple[float, np.ndarray]]:
        """Local maxima of the log posterior found from ``phi`` at a quarter, half and three
        quarters of its range, best first, as ``(log density, theta)``.

        The likelihood in ``phi`` can have two modes (Blackmore: ``phi`` = -0.60 and 0.61, 4.5
        apart in log-likelihood); NUTS does not cross between them, so every chain starts at
        the highest mode found, and a second one is reported (:func:`serial_mode_note`).
        """
        base = self.start_point()
        found: list[tuple[float, np.ndarray]] = []
        for share in (0.25, 0.5, 0.75):
            x0 = np.r_[base, np.log(share / (1.0 - share))]
            res = optimize.minimize(lambda t: tuple(-v for v in self.logp_grad(t)), x0,
                                    jac=True, method="L-BFGS-B")
            if np.isfinite(res.fun):
                found.append((-float(res.fun), res.x))
        found.sort(key=lambda m: -m[0])
        distinct: list[tuple[float, np.ndarray]] = []
        for lp, x in found:
            if all(abs(self.phi(x) - self.phi(y)) > 0.05 for _, y in distinct):
                distinct.append((lp, x))
        return distinct or [(np.nan, np.r_[base, 0.0])]

    def phi(self, theta: np.ndarray) -> np.ndarray:
        """``phi`` at ``theta`` (``(..., ndim)``)."""
        lo, hi = self.args.phi_lo, self.args.phi_hi
        return lo + (hi - lo) * expit(theta[..., -1])

    def constrained(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named parameter values at ``theta``: the marginal model's and ``phi``."""
        return super().constrained(theta[..., :-1]) | {naming.PHI: self.phi(theta)}

    def variables(self) -> list[Variable]:
        """``(name, shape, dims)`` of the stored draws."""
        return super().variables() + [(naming.PHI, (), ())]


def serial_problem(design: Design, priors: ResolvedPriors,
                   stats: SerialStats | None = None) -> SerialProblem:
    """Encode the design's AR(1)/CAR(1) statistics (computed here unless given) and priors."""
    stats = serial_stats(design) if stats is None else stats
    g = design.groups[0]
    p, q = design.X.shape[1], g.n_terms
    n_cor = q * (q - 1) // 2 if g.correlated and q > 1 else 0
    factor = Factor(g, p, p + q, n_cor)
    codes = encode_priors(design, priors, [g]).priors()
    eta = priors.cor[g.factor].kwargs["eta"] if n_cor else 1.0
    lo, hi = phi_range(priors, design.serial.kind)
    phi_fam, phi_par = encode_prior(priors.phi)
    args = SerialArgs(
        s0z=stats.s0z, s0x=stats.s0x, cell_group=stats.cell_group, cell_lag_index=stats.cell_lag_index,
        cell_dz=stats.cell_dz, cell_cz=stats.cell_cz, lags=stats.lags, lag_count=stats.lag_count,
        lag_dx=stats.lag_dx, lag_cx=stats.lag_cx,
        n_total=stats.n_total, eta=float(eta), correlated=bool(n_cor), phi_lo=float(lo),
        phi_hi=float(hi), phi_fam=int(phi_fam), phi_par=phi_par, **codes,
    )
    return SerialProblem(design, "serial", args, p, (factor,))


def serial_mode_note(problem: SerialProblem, within: float = 10.0) -> str | None:
    """A note when the log posterior has a second mode in ``phi`` within ``within`` of the
    highest one (the chains start at the highest; module :class:`SerialProblem`)."""
    modes = problem.modes
    if len(modes) < 2 or modes[0][0] - modes[1][0] > within:
        return None
    (lp0, x0), (lp1, x1) = modes[:2]
    return (
        f"The posterior of phi has a second mode at phi = {float(problem.phi(x1)):.2f} (log "
        f"density {lp0 - lp1:.1f} below the mode at phi = {float(problem.phi(x0)):.2f}); the "
        "chains start at the highest mode and NUTS does not cross between modes, so the draws "
        "describe that mode. Compare the two with the REML/ML profile of phi (fit.frequentist"
        ".confint()) or an informative prior on phi."
    )
