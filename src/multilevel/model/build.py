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

__all__ = ["build_model", "check_parameterization"]


def check_parameterization(design: Design, parameterization: str) -> None:
    """Raise :class:`~multilevel.errors.SpecError` unless ``design`` can be modelled in
    ``parameterization``: AR(1)/CAR(1) residuals and designs built from summary statistics
    exist in the marginal model only.

    Examples
    --------
    >>> from multilevel import ModelSpec, datasets
    >>> from multilevel.design import build_design
    >>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (1 | Subject)"),
    ...                  datasets.load("sleepstudy"))
    >>> check_parameterization(d, "noncentered")
    >>> try:
    ...     check_parameterization(d, "centred")
    ... except SpecError as err:
    ...     print(str(err).split(":")[0])
    Unknown parameterization 'centred'
    """
    if parameterization == "marginal":
        return
    if parameterization not in ("noncentered", "centered", "linearized"):
        raise SpecError(
            f"Unknown parameterization {parameterization!r}: use 'noncentered', 'centered', "
            "'linearized' or 'marginal' (or 'auto' in fit_hierarchical)."
        )
    if design.serial is not None:
        raise SpecError(
            f"{design.spec.correlation.to_formula()} is defined for the marginal model only "
            "(parameterization='marginal'): the group effects are integrated out."
        )
    if not design.has_rows:
        raise SpecError(
            f"A design built from summary statistics has no rows to model {parameterization}: "
            "use parameterization='marginal' (Gaussian models), or pass the rows."
        )


def build_model(
    design: Design, *, parameterization: str = "noncentered", priors: ResolvedPriors | None = None,
    stats: SufficientStats | NestedStats | None = None,
) -> pm.Model:
    """Build the PyMC model of a :class:`Design`.

    Parameters
    ----------
    design : Design
        Arrays from :func:`multilevel.design.build_design`.
    parameterization : {'noncentered', 'centered', 'marginal', 'linearized'}
        How group effects enter; ``marginal`` integrates them out (Gaussian models only, see
        :mod:`multilevel.model.marginal`). ``linearized`` builds the non-centered model: the
        same posterior, which the compiled kernel samples in other coordinates
        (:mod:`multilevel.engine.linearized`).
    priors : ResolvedPriors, optional
        Defaults to :func:`multilevel.model.priors.resolve_priors` of the design.
    stats : SufficientStats or NestedStats, optional
        The design's statistics for the marginal likelihood, when already computed
        (:func:`multilevel.design.statistics.marginal_statistics`).
    """
    check_parameterization(design, parameterization)
    priors = priors or resolve_priors(design)
    coords = coords_for(design)
    if design.has_rows:  # no per-row dimension for a design built from statistics
        coords[naming.OBS_DIM] = list(range(design.n_obs))
    if parameterization == "marginal":
        return build_marginal_model(design, priors, coords, stats)
    with pm.Model(coords=coords) as model:
        b = fixed_effects(design, priors)
        effects = {
            g.factor: group_effects(g, priors, parameterization == "centered")
            for g in design.groups
        }
        likelihood(design, linear_predictor(design, b, effects), priors)
    return model
