"""Before the fit: the table of priors a model will use, and prior predictive draws.

Examples
--------
>>> from multilevel import datasets
>>> table = prior_summary("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
>>> table["target"].tolist()
['Intercept', 'Days', 'sigma', 'sd((Intercept) | Subject)', 'sd(Days | Subject)', 'cor(Subject)']
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from multilevel import naming
from multilevel.design import build_design, load_data
from multilevel.design.serial import ar_noise
from multilevel.design.types import require_rows
from multilevel.errors import SpecError
from multilevel.model import build_model, resolve_priors
from multilevel.model.marginal import phi_rv
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
    ``observed_data`` groups) of the non-centered model with the spec's priors; with
    ``ar1``/``car1`` the residuals are correlated within series, with ``phi`` from its prior.

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
    require_rows(design, "The prior predictive distribution of the rows")
    priors = resolve_priors(design)
    model = build_model(replace(design, serial=None), parameterization="noncentered", priors=priors)
    with model:
        if design.serial is not None:
            phi_rv(priors, design.serial.kind)
        idata = pm.sample_prior_predictive(draws=draws, random_seed=seed)
    if design.serial is not None:
        idata = _correlated_residuals(idata, design, seed)
    if design.trials is not None:
        idata["constant_data"] = xr.DataTree(
            xr.Dataset({"trials": (naming.OBS_DIM, design.trials)})
        )
    idata.attrs["multilevel_spec"] = spec.to_toml()
    idata.attrs["multilevel_response"] = naming.RESPONSE
    return idata


def _correlated_residuals(idata, design, seed: int | None):
    """Replace the independent prior predictive residuals of an AR(1)/CAR(1) model by
    residuals correlated within each series (each draw's ``phi`` from its prior)."""
    prior = idata["prior"].to_dataset()
    b = prior[naming.FIXED].transpose("chain", "draw", ...).to_numpy()
    eta = b @ design.X.T
    for g in design.groups:
        u = prior[naming.effect_name(g.factor)].transpose("chain", "draw", ...).to_numpy()
        eta = eta + np.einsum("nq,cdnq->cdn", g.Z, u[:, :, g.index])
    sigma = prior[naming.SIGMA].transpose("chain", "draw").to_numpy()[..., None]
    phi = prior[naming.PHI].transpose("chain", "draw").to_numpy()
    ser = design.serial
    z = np.random.default_rng(seed).standard_normal(eta.shape)
    y = eta + sigma * ar_noise(ser.first, ser.second, ser.lag, phi, z)
    pp = idata["prior_predictive"].to_dataset()
    pp[naming.RESPONSE] = (pp[naming.RESPONSE].dims, y)
    idata["prior_predictive"] = xr.DataTree(pp)
    return idata
