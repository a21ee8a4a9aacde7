"""Before the fit: the table of priors a model will use, and prior predictive draws.

Examples
--------
>>> from multilevel import datasets
>>> table = prior_summary("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
>>> table["target"].tolist()
['Intercept', 'Days', 'sigma', 'sd((Intercept) | Subject)', 'sd(Days | Subject)', 'cor(Subject)']
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pymc as pm
import xarray as xr

from multilevel import naming
from multilevel.design import build_design, load_data
from multilevel.errors import SpecError
from multilevel.model import build_model, resolve_priors
from multilevel.spec.io import as_spec
from multilevel.spec.model import ModelSpec

__all__ = ["prior_predictive", "prior_summary"]


def prior_summary(
    spec: ModelSpec | str | Path, df: pd.DataFrame | None = None, *, family: str | None = None,
    missing: str = "error",
) -> pd.DataFrame:
    """Every prior the model would use (target, prior, source), like brms's ``prior_summary``.

    The defaults are scaled to the data, so the data are needed; see ``docs/priors.md``.
    """
    spec = as_spec(spec, family)
    design = build_design(spec, df if df is not None else load_data(spec), missing=missing)
    return resolve_priors(design).table()


def prior_predictive(
    spec: ModelSpec | str | Path, df: pd.DataFrame | None = None, *, draws: int = 500,
    seed: int | None = None, family: str | None = None, missing: str = "error",
):
    """Prior and prior predictive draws (ArviZ data with ``prior``, ``prior_predictive`` and
    ``observed_data`` groups) of the non-centered model with the spec's priors.

    Plot them against the data with :func:`multilevel.plots.plot_prior_predictive`.

    Examples
    --------
    >>> from multilevel import datasets
    >>> idata = prior_predictive("log_radon ~ floor + (1 | county)", datasets.load("radon"),
    ...                          draws=50, seed=1)
    >>> idata["prior_predictive"]["y"].shape
    (1, 50, 919)
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise SpecError(f"draws must be a positive integer, got {draws!r}.")
    spec = as_spec(spec, family)
    design = build_design(spec, df if df is not None else load_data(spec), missing=missing)
    model = build_model(design, parameterization="noncentered", priors=resolve_priors(design))
    with model:
        idata = pm.sample_prior_predictive(draws=draws, random_seed=seed)
    if design.trials is not None:
        idata["constant_data"] = xr.DataTree(
            xr.Dataset({"trials": (naming.OBS_DIM, design.trials)})
        )
    idata.attrs["multilevel_spec"] = spec.to_toml()
    idata.attrs["multilevel_response"] = naming.RESPONSE
    return idata
