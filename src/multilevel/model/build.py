"""Build the PyMC model of a :class:`~multilevel.design.Design`: the readable definition.

``noncentered`` and ``centered`` models draw the group effects
(:mod:`multilevel.model.components`); ``marginal`` integrates them out
(:mod:`multilevel.model.marginal`). The compiled engine samples the same densities
(:mod:`multilevel.engine`), and the tests check that both agree.

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> spec = ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)")
>>> model = build_model(build_design(spec, datasets.load("sleepstudy")))
>>> sorted(model.named_vars)[:4]
['b', 'cor_Subject', 'corchol_Subject', 'sd_Subject']
"""

from __future__ import annotations

import pymc as pm

from multilevel import naming
from multilevel.design import Design
from multilevel.design.statistics import NestedStats, SufficientStats
from multilevel.errors import SpecError
from multilevel.model.components import (
    coords_for,
    fixed_effects,
    group_effects,
    likelihood,
    linear_predictor,
)
from multilevel.model.marginal import build_marginal_model
from multilevel.model.priors import ResolvedPriors, resolve_priors

__all__ = ["build_model"]


def build_model(
    design: Design, *, parameterization: str = "noncentered", priors: ResolvedPriors | None = None,
    stats: SufficientStats | NestedStats | None = None,
) -> pm.Model:
    """Build the PyMC model of a :class:`Design`.

    Parameters
    ----------
    design : Design
        Arrays from :func:`multilevel.design.build_design`.
    parameterization : {'noncentered', 'centered', 'marginal'}
        How group effects enter; ``marginal`` integrates them out (Gaussian models only, see
        :mod:`multilevel.model.marginal`).
    priors : ResolvedPriors, optional
        Defaults to :func:`multilevel.model.priors.resolve_priors` of the design.
    stats : SufficientStats or NestedStats, optional
        The design's statistics for the marginal likelihood, when already computed
        (:func:`multilevel.design.statistics.marginal_statistics`).
    """
    priors = priors or resolve_priors(design)
    coords = coords_for(design)
    if design.has_rows:  # no per-row dimension for a design built from statistics
        coords[naming.OBS_DIM] = list(range(design.n_obs))
    if parameterization == "marginal":
        return build_marginal_model(design, priors, coords, stats)
    if design.serial is not None:
        raise SpecError(
            f"{design.spec.correlation.to_formula()} is defined for the marginal model only "
            "(parameterization='marginal'): the group effects are integrated out."
        )
    if parameterization not in ("noncentered", "centered"):
        raise SpecError(
            f"Unknown parameterization {parameterization!r}: use 'noncentered', 'centered' or "
            "'marginal' (or 'auto' in fit_hierarchical)."
        )
    with pm.Model(coords=coords) as model:
        b = fixed_effects(design, priors)
        effects = {
            g.factor: group_effects(g, priors, parameterization == "centered")
            for g in design.groups
        }
        likelihood(design, linear_predictor(design, b, effects), priors)
    return model
