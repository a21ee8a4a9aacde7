"""The sampling stage: a design and its priors in, a posterior (ArviZ data) out.

:func:`sample_posterior` samples the chosen parameterization: the compiled kernels through nutpie
(:mod:`multilevel.engine.nutpie`) when the sampler is nutpie and a kernel covers the model, else
PyMC's own NUTS on the PyMC model (:mod:`multilevel.engine.pymc`); after a marginal fit the group
effects are drawn exactly (:mod:`multilevel.engine.recovery`). A one-factor marginal model whose
fixed effects have normal or flat priors samples its hyperparameters alone
(:func:`multilevel.engine.marginal.hyper_problem`), and the fixed effects are drawn exactly first.
The readable PyMC model (kept on the fit as ``fit.model``) is built only when PyMC samples it;
after a compiled-kernel fit it is built at first access (building its graph costs 0.15-0.3 s
that a fit which never looks at it need not pay), by :attr:`Sampled.model_factory`.

Examples
--------
>>> from multilevel import ModelSpec, SamplerSettings, datasets
>>> from multilevel.design import build_design
>>> from multilevel.model import resolve_priors
>>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                  datasets.load("sleepstudy"))
>>> out = sample_posterior(d, resolve_priors(d), SamplerSettings(draws=50, tune=50, chains=1, seed=1),
...                        "marginal", progressbar=False)
>>> sorted(out.idata["posterior"].data_vars)[:3]
['b', 'cor_Subject', 'corchol_Subject']
>>> sorted(out.model_factory().named_vars)[:2]  # built on call after a compiled fit
['b', 'cor_Subject']
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymc as pm

from multilevel import naming
from multilevel.design import Design, collapse_binomial
from multilevel.design.serial import SerialStats
from multilevel.design.statistics import NestedStats, SufficientStats, marginal_statistics
from multilevel.engine.choice import compiled_noncentered
from multilevel.engine.crossed import crossed_problem
from multilevel.engine.linearized import lin_problem
from multilevel.engine.marginal import hyper_problem, marginal_problem
from multilevel.engine.noncentered import nc_problem
from multilevel.engine.nutpie import run_nutpie
from multilevel.engine.pymc import sample_model
from multilevel.engine.recovery import recover_fixed_effects, recover_group_effects
from multilevel.engine.serial import serial_mode_note, serial_problem
from multilevel.model import ResolvedPriors, build_model, check_parameterization
from multilevel.spec.terms import SamplerSettings

__all__ = ["Sampled", "sample_posterior"]


@dataclass(frozen=True)
class Sampled:
    """The posterior (``idata``) and the PyMC model it defines: the model PyMC sampled, or after
    a compiled-kernel fit a function that builds it (:attr:`FitRecord.model
    <multilevel.results.record.FitRecord.model>` reads either)."""

    idata: Any
    model_factory: Callable[[], pm.Model] | pm.Model
    notes: tuple[str, ...] = ()


def sample_posterior(
    design: Design,
    priors: ResolvedPriors,
    settings: SamplerSettings,
    parameterization: str,
    *,
    stats: SufficientStats | NestedStats | SerialStats | None = None,
    progressbar: bool = True,
    group_draws: str = "auto",
) -> Sampled:
    """NUTS over ``design`` in ``parameterization`` (see
    :func:`multilevel.engine.choice.choose_parameterization`); ``stats`` are the design's
    marginal statistics, computed here when needed and not given."""
    if parameterization == "marginal" and stats is None:
        stats = marginal_statistics(design)
    check_parameterization(design, parameterization)  # the model itself may be built later
    model = functools.partial(build_model, collapse_binomial(design),  # built when needed
                              parameterization=parameterization, priors=priors, stats=stats)
    nutpie = settings.sampler == "nutpie"
    notes: tuple[str, ...] = ()
    if parameterization == "marginal":
        if isinstance(stats, SerialStats):  # phi can have two modes: start at the highest
            problem = serial_problem(design, priors, stats)
            notes = tuple(n for n in (serial_mode_note(problem),) if n)
        else:
            problem = marginal_problem(design, priors, stats)
            problem = (hyper_problem(problem) if nutpie else None) or problem
        if nutpie:
            idata = run_nutpie(problem, settings, progressbar=progressbar)
            if problem.kernel == "hyper":
                idata = recover_fixed_effects(idata, design, problem.args, settings.seed)
        else:
            start = None
            if isinstance(stats, SerialStats):
                start = {naming.PHI: float(problem.phi(problem.modes[0][1]))}
            model = model()
            idata = sample_model(model, settings, progressbar=progressbar, initvals=start)
        idata, note = recover_group_effects(idata, design, settings.seed, stats=stats,
                                            group_draws=group_draws)
        notes = notes + ((note,) if note else ())
    elif parameterization == "linearized":  # nutpie only (choose_parameterization)
        base = nc_problem(design, priors)
        idata = run_nutpie(lin_problem(base) or crossed_problem(base), settings,
                           progressbar=progressbar)
    elif parameterization == "noncentered" and nutpie and compiled_noncentered(design):
        idata = run_nutpie(nc_problem(design, priors), settings, progressbar=progressbar)
    else:
        model = model()
        idata = sample_model(model, settings, progressbar=progressbar)
    return Sampled(idata, model, notes)
