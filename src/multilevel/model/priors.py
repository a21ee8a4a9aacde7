"""Default priors scaled to the data, and user overrides by target name.

Defaults (weakly informative, in the spirit of rstanarm's autoscaled priors). ``s_y`` is the
sample sd of the response (Gaussian) or 1 on the logit scale (logistic: the scale ``2.5``
then matches rstanarm/brms); ``s_x`` the sample sd of a fixed-effect column; ``s_z`` that of
a varying term's column (1 for the intercept); ``ybar`` the response mean (0 on the logit
scale). The intercept is the value at x = 0 on the user's scale; its scale includes the spread
implied by the slope priors at the predictor means ``xbar``, so the prior stays honest when the
predictors are not centred.

===================  ===========================  ==========================================
target               parameter                    default
===================  ===========================  ==========================================
``Intercept``        intercept at x = 0           Normal(ybar, 2.5 s_y sqrt(1 + sum (xbar/s_x)^2))
``b``, ``<term>``    fixed effect of a column     Normal(0, 2.5 s_y / s_x)
``sigma``            residual sd (Gaussian)       HalfStudentT(nu=3, sigma=s_y)
``sd``, ``sd(g)``,   group-level sd of a term     HalfStudentT(nu=3, sigma=s_y / s_z)
``sd(term | g)``
``cor``, ``cor(g)``  correlations of a factor     LKJ(eta=1): uniform over correlation matrices
``phi``              residual autocorrelation     Uniform(-1, 1) for ``ar1``, Uniform(0, 1) for
                     (``ar1``/``car1`` models)    ``car1``: flat over the valid range
===================  ===========================  ==========================================

A ``phi`` prior may be ``Uniform(lower, upper)`` inside that range or ``Normal(mu, sigma)``,
truncated to it (PyMC's ``TruncatedNormal``).

``Flat()`` (improper, uniform on the real line) is allowed for fixed effects and the intercept
only: the posterior is then proper because the fixed-effect matrix has full column rank (the
design step checks it) and the other parameters have proper priors. Scales and correlations
need proper priors.

Overrides are looked up from the most specific target to the least: ``sd(x | g)`` before
``sd(g)`` before ``sd``; a fixed-effect column name (``floor``, ``sectorCatholic``) before ``b``.
Term names are lme4's: the intercept of a group term is ``(Intercept)`` (``sd(1 | g)`` is
accepted too).

Examples
--------
>>> from multilevel import ModelSpec, Prior, datasets
>>> from multilevel.design import build_design
>>> spec = ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)",
...                               priors={"sigma": Prior("HalfNormal", sigma=100.0)})
>>> table = resolve_priors(build_design(spec, datasets.load("sleepstudy"))).table()
>>> table.loc[table.target == "sigma", "prior"].item()
'HalfNormal(sigma=100)'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from multilevel.design import Design
from multilevel.design.statistics import moments
from multilevel.errors import SpecError
from multilevel.spec.terms import DISTRIBUTIONS, Prior

__all__ = ["ResolvedPriors", "phi_support", "resolve_priors", "valid_targets"]

_POSITIVE = {"sigma", "nu", "beta", "lam", "alpha", "eta"}


@dataclass(frozen=True)
class ResolvedPriors:
    """Priors for every parameter of a model, in model order."""

    intercept: Prior | None
    fixed: dict[str, Prior]
    sigma: Prior | None
    sd: dict[str, dict[str, Prior]]
    cor: dict[str, Prior]
    source: dict[str, str]
    phi: Prior | None = None

    def table(self) -> pd.DataFrame:
        """One row per parameter: target, prior, source ('default' or the override key)."""
        rows = []
        if self.intercept is not None:
            rows.append(("Intercept", str(self.intercept)))
        rows += [(name, str(p)) for name, p in self.fixed.items()]
        if self.sigma is not None:
            rows.append(("sigma", str(self.sigma)))
        for factor, terms in self.sd.items():
            rows += [(f"sd({t} | {factor})", str(p)) for t, p in terms.items()]
        rows += [(f"cor({factor})", str(p)) for factor, p in self.cor.items()]
        if self.phi is not None:
            rows.append(("phi", str(self.phi)))
        return pd.DataFrame(
            [(t, p, self.source[t]) for t, p in rows], columns=["target", "prior", "source"]
        )


def valid_targets(design: Design) -> list[str]:
    """Every name a prior override may use for this model."""
    names = ["b", "sd", "cor"] + list(design.fixed_names)
    if "(Intercept)" in design.fixed_names:
        names.append("Intercept")
    if design.spec.family == "gaussian" and design.se is None:
        names.append("sigma")
    for g in design.groups:
        names.append(f"sd({g.factor})")
        names += [f"sd({t} | {g.factor})" for t in g.term_names]
        if g.intercept:
            names.append(f"sd(1 | {g.factor})")
        if g.correlated and g.n_terms > 1:
            names.append(f"cor({g.factor})")
    if design.serial is not None:
        names.append("phi")
    return names


def phi_support(kind: str) -> tuple[float, float]:
    """The range of ``phi``: ``(-1, 1)`` for ``ar1``, ``(0, 1)`` for ``car1``."""
    return (-1.0, 1.0) if kind == "ar1" else (0.0, 1.0)


def _check_phi(prior: Prior, kind: str) -> None:
    lo, hi = phi_support(kind)
    ok = prior.dist in ("Uniform", "Normal")
    if ok and prior.dist == "Uniform":
        a, b = prior.kwargs.get("lower"), prior.kwargs.get("upper")
        ok = a is not None and b is not None and lo <= a < b <= hi
    elif ok:
        ok = "sigma" in prior.kwargs and prior.kwargs["sigma"] > 0 and set(prior.kwargs) <= {"mu", "sigma"}
    if not ok:
        raise SpecError(
            f"The prior for 'phi' ({kind}) must be Uniform(lower, upper) with {lo:g} <= lower < "
            f"upper <= {hi:g}, or Normal(mu, sigma) (truncated to ({lo:g}, {hi:g})); got {prior}."
        )


def _check_prior(target: str, prior: Prior, *, scale: bool, lkj: bool = False) -> None:
    if prior.dist == "Uniform":
        raise SpecError(f"A Uniform prior is only allowed on 'phi', not on {target!r}.")
    if prior.dist not in DISTRIBUTIONS:
        raise SpecError(
            f"Unknown prior distribution {prior.dist!r} for {target!r}: choose one of "
            f"{', '.join(DISTRIBUTIONS)}."
        )
    params, is_scale = DISTRIBUTIONS[prior.dist]
    if lkj != (prior.dist == "LKJ"):
        want = "LKJ(eta=...)" if lkj else "a distribution other than LKJ"
        raise SpecError(f"The prior for {target!r} must be {want}, got {prior}.")
    if prior.dist == "Flat" and (scale or lkj):
        raise SpecError(
            f"A Flat prior is only allowed on fixed effects, not on {target!r}: use a proper "
            + ("LKJ(eta=...)" if lkj else "scale prior: " + ", ".join(
                d for d, (_, is_scale) in DISTRIBUTIONS.items() if is_scale)) + "."
        )
    if scale and not is_scale:
        raise SpecError(
            f"{target!r} is a standard deviation, so its prior must be positive: use one of "
            f"{', '.join(d for d, (_, s) in DISTRIBUTIONS.items() if s)}, not {prior.dist}."
        )
    unknown = set(prior.kwargs) - set(params)
    missing = set(params) - set(prior.kwargs) - ({"mu"} if "mu" in params else set())
    if unknown or missing:
        raise SpecError(
            f"Prior {prior} for {target!r}: {prior.dist} takes parameters {', '.join(params)}"
            f" (unknown: {sorted(unknown)}, missing: {sorted(missing)})."
        )
    for key, value in prior.kwargs.items():
        if key in _POSITIVE and not value > 0:
            raise SpecError(f"Prior {prior} for {target!r}: {key} must be positive, got {value}.")
        if not np.isfinite(value):
            raise SpecError(f"Prior {prior} for {target!r}: {key} must be finite.")


def resolve_priors(design: Design) -> ResolvedPriors:
    """Combine the data-scaled defaults with the spec's overrides.

    Raises
    ------
    SpecError
        For an unknown target (the message lists the valid ones), an unknown distribution, a
        non-positive scale, or a non-positive prior on a standard deviation.
    """
    spec = design.spec
    overrides = spec.prior_overrides
    valid = valid_targets(design)
    for target in overrides:
        if target not in valid:
            raise SpecError(
                f"No parameter {target!r} in this model to put a prior on. Valid targets: "
                f"{', '.join(valid)}."
            )
    logistic = spec.is_logistic
    mom = moments(design)
    s_y = 1.0 if logistic else mom.y_sd
    ybar = 0.0 if logistic else mom.y_mean
    source: dict[str, str] = {}

    def pick(name: str, keys: list[str], default: Prior, **check: bool) -> Prior:
        for key in keys:
            if key in overrides:
                _check_prior(name, overrides[key], **check)
                source[name] = key
                return overrides[key]
        source[name] = "default"
        return default

    slopes = [j for j, n in enumerate(design.fixed_names) if n != "(Intercept)"]
    sx = {j: float(mom.x_sd[j]) for j in slopes}
    fixed: dict[str, Prior] = {}
    for j in slopes:
        name = design.fixed_names[j]
        fixed[name] = pick(name, [name, "b"], Prior("Normal", mu=0.0, sigma=2.5 * s_y / sx[j]),
                           scale=False)
    intercept = None
    if "(Intercept)" in design.fixed_names:
        spread = np.sqrt(1.0 + sum((float(mom.x_mean[j]) / sx[j]) ** 2 for j in slopes))
        intercept = pick(
            "Intercept", ["Intercept"], Prior("Normal", mu=ybar, sigma=2.5 * s_y * spread),
            scale=False,
        )
    sigma = None
    if spec.family == "gaussian" and design.se is None:
        sigma = pick("sigma", ["sigma"], Prior("HalfStudentT", nu=3.0, sigma=s_y), scale=True)
    sd: dict[str, dict[str, Prior]] = {}
    cor: dict[str, Prior] = {}
    for g, z_sd in zip(design.groups, mom.z_sd, strict=True):
        sd[g.factor] = {}
        for k, term in enumerate(g.term_names):
            s_z = 1.0 if term == "(Intercept)" else float(z_sd[k]) or 1.0
            keys = [f"sd({term} | {g.factor})"]
            if term == "(Intercept)":
                keys.append(f"sd(1 | {g.factor})")
            keys += [f"sd({g.factor})", "sd"]
            default = Prior("HalfStudentT", nu=3.0, sigma=(2.5 if logistic else s_y) / s_z)
            sd[g.factor][term] = pick(f"sd({term} | {g.factor})", keys, default, scale=True)
        if g.correlated and g.n_terms > 1:
            cor[g.factor] = pick(
                f"cor({g.factor})", [f"cor({g.factor})", "cor"], Prior("LKJ", eta=1.0),
                scale=False, lkj=True,
            )
    phi = None
    if design.serial is not None:
        lo, hi = phi_support(design.serial.kind)
        phi = overrides.get("phi", Prior("Uniform", lower=lo, upper=hi))
        _check_phi(phi, design.serial.kind)
        source["phi"] = "phi" if "phi" in overrides else "default"
    return ResolvedPriors(intercept, fixed, sigma, sd, cor, source, phi)
