"""The PyMC driver: NUTS (PyMC's own, or nutpie through PyMC) on a PyMC model.

Used for PyMC's own sampler and for models outside the compiled kernels
(:mod:`multilevel.engine.nutpie` runs those without a PyMC graph).

Examples
--------
>>> from multilevel import SamplerSettings
>>> sampler_kwargs(SamplerSettings(draws=10, tune=10, chains=1, seed=3))["random_seed"]
3
"""

from __future__ import annotations

from typing import Any

import pymc as pm

from multilevel.spec.terms import SamplerSettings

__all__ = ["sample_model", "sampler_kwargs"]


def sampler_kwargs(settings: SamplerSettings, *, progressbar: bool = True) -> dict[str, Any]:
    """Keyword arguments for :func:`pymc.sample`."""
    return {
        "draws": settings.draws,
        "tune": settings.tune,
        "chains": settings.chains,
        "random_seed": settings.seed,
        "target_accept": settings.target_accept,
        "nuts_sampler": settings.sampler,
        "progressbar": progressbar,
        "compute_convergence_checks": False,
    }


def sample_model(model: pm.Model, settings: SamplerSettings, *, progressbar: bool = True,
                 initvals: dict[str, Any] | None = None):
    """Sample ``model`` with NUTS from PyMC's initial point (or ``initvals`` for some of the
    variables); returns ArviZ data (an ``xarray.DataTree``)."""
    kwargs = sampler_kwargs(settings, progressbar=progressbar)
    if initvals:  # a chosen start: no jitter away from it
        kwargs["initvals"] = initvals
        kwargs["init"] = "adapt_diag"
    with model:
        return pm.sample(**kwargs)
