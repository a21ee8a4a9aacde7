"""The pieces every PyMC model of the toolkit is made of (one place for each).

For observation ``i`` in group ``j_k(i)`` of each grouping factor ``k``

.. math::

    \\eta_i = x_i^\\top \\beta + \\sum_k z_{ik}^\\top u_{k, j_k(i)}, \\qquad
    u_{k,j} = \\operatorname{diag}(s_k)\\, L_k\\, \\zeta_{k,j}, \\quad \\zeta_{k,j} \\sim N(0, I)

(non-centered; ``L_k`` is the Cholesky factor of the LKJ-distributed correlation matrix for a
correlated term, the identity for ``||`` terms). The likelihood is ``Normal(eta, sigma)``,
``Bernoulli(logit^-1 eta)`` or ``Binomial(n, logit^-1 eta)``. ``centered`` draws ``u`` directly
from ``N(0, diag(s) R diag(s))``. Group effects are indexed by integer codes (``u[idx]``), never
through a dense ``Z`` over groups. Every variable name comes from :mod:`multilevel.naming`.
The models are assembled in :mod:`multilevel.model.build`.

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> coords_for(build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                         datasets.load("sleepstudy")))["Subject_term"]
['(Intercept)', 'Days']
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from multilevel import naming
from multilevel.design import Design, GroupDesign
from multilevel.model.priors import ResolvedPriors
from multilevel.spec.terms import Prior

__all__ = [
    "coords_for", "corr_chol", "fixed_effects", "group_effects", "group_sd", "likelihood",
    "linear_predictor", "prior_rv",
]


def coords_for(design: Design) -> dict[str, list[str]]:
    """Named coordinates: fixed terms, and levels and terms of every grouping factor."""
    coords: dict[str, list[str]] = {naming.FIXED_DIM: list(design.fixed_names)}
    for g in design.groups:
        coords[naming.level_dim(g.factor)] = list(g.levels)
        coords[naming.term_dim(g.factor)] = list(g.term_names)
        coords[naming.term_dim_bis(g.factor)] = list(g.term_names)
    return coords


def prior_rv(name: str, prior: Prior, **kwargs):
    """A PyMC random variable for a :class:`Prior` (``LKJ`` excluded)."""
    dist = getattr(pm, prior.dist)
    return dist(name, **prior.kwargs, **kwargs)


def _stacked(name: str, priors: list[Prior], dims: str | tuple[str, ...]):
    """One vector RV when all priors share a family, else a Deterministic of scalars."""
    if len({(p.dist, tuple(k for k, _ in p.params)) for p in priors}) == 1:
        first = priors[0]
        params = {k: np.array([p.kwargs[k] for p in priors]) for k in first.kwargs}
        return getattr(pm, first.dist)(name, **params, dims=dims)
    parts = [prior_rv(f"{name}__{k}", p) for k, p in enumerate(priors)]
    return pm.Deterministic(name, pt.stack(parts), dims=dims)


def group_sd(g: GroupDesign, priors: ResolvedPriors):
    """The vector of group-level standard deviations of one factor."""
    return _stacked(
        naming.sd_name(g.factor), list(priors.sd[g.factor].values()), naming.term_dim(g.factor)
    )


def corr_chol(g: GroupDesign, priors: ResolvedPriors):
    """Cholesky factor of the correlation matrix (identity for uncorrelated terms)."""
    if not (g.correlated and g.n_terms > 1):
        return None
    eta = priors.cor[g.factor].kwargs["eta"]
    chol = pm.LKJCorr(naming.corchol_name(g.factor), n=g.n_terms, eta=eta)
    pm.Deterministic(
        naming.cor_name(g.factor),
        chol @ chol.T,
        dims=(naming.term_dim(g.factor), naming.term_dim_bis(g.factor)),
    )
    return chol


def group_effects(g: GroupDesign, priors: ResolvedPriors, centered: bool):
    sd = group_sd(g, priors)
    chol = corr_chol(g, priors)
    dims = (naming.level_dim(g.factor), naming.term_dim(g.factor))
    if centered:
        if chol is None:
            return pm.Normal(naming.effect_name(g.factor), 0.0, sd, dims=dims)
        return pm.MvNormal(
            naming.effect_name(g.factor), mu=np.zeros(g.n_terms), chol=sd[:, None] * chol,
            dims=dims,
        )
    z = pm.Normal(naming.offset_name(g.factor), 0.0, 1.0, dims=dims)
    scaled = z if chol is None else z @ chol.T
    return pm.Deterministic(naming.effect_name(g.factor), scaled * sd, dims=dims)


def linear_predictor(design: Design, b, effects: dict[str, object]):
    """``X b + sum_k rowsum(Z_k * u_k[idx_k])`` as a PyTensor expression."""
    eta = pt.dot(design.X, b)
    for g in design.groups:
        u = effects[g.factor]
        if g.n_terms == 1 and g.intercept:
            eta = eta + u[g.index, 0]
        else:
            eta = eta + (u[g.index] * g.Z).sum(axis=1)
    return eta


def fixed_effects(design: Design, priors: ResolvedPriors):
    ordered = [
        priors.intercept if name == "(Intercept)" else priors.fixed[name]
        for name in design.fixed_names
    ]
    return _stacked(naming.FIXED, ordered, naming.FIXED_DIM)


def likelihood(design: Design, eta, priors: ResolvedPriors) -> None:
    """Attach the observation model for the spec's family."""
    family = design.spec.family
    if design.se is not None:
        pm.Normal(naming.RESPONSE, mu=eta, sigma=design.se, observed=design.y, dims=naming.OBS_DIM)
    elif family == "gaussian":
        sigma = prior_rv(naming.SIGMA, priors.sigma)
        pm.Normal(naming.RESPONSE, mu=eta, sigma=sigma, observed=design.y, dims=naming.OBS_DIM)
    elif family == "bernoulli" and design.trials is None:
        pm.Bernoulli(naming.RESPONSE, logit_p=eta, observed=design.y, dims=naming.OBS_DIM)
    else:  # binomial, or bernoulli rows collapsed into counts
        pm.Binomial(
            naming.RESPONSE, n=design.trials, logit_p=eta, observed=design.y, dims=naming.OBS_DIM
        )
