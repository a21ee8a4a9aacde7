"""Convergence diagnostics of a posterior, each with its threshold and a plain remedy.

Thresholds (Vehtari et al. 2021; Stan's defaults): R-hat > 1.01, bulk or tail ESS < 400, any
divergent transition, any draw that hit the maximum tree depth, and an E-BFMI below 0.3 in any
chain.

Examples
--------
>>> import numpy as np, xarray as xr
>>> rng = np.random.default_rng(0)
>>> tree = xr.DataTree.from_dict({
...     "posterior": xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(4, 500)))}),
...     "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 500), bool))})})
>>> diagnostics_table(tree, ["mu"]).set_index("check").loc["divergences", "ok"]
np.True_
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

__all__ = ["BFMI_MIN", "ESS_MIN", "RHAT_MAX", "diagnostics_table"]

RHAT_MAX = 1.01
ESS_MIN = 400
BFMI_MIN = 0.3


def _stat(sample_stats, *names: str) -> np.ndarray | None:
    for name in names:
        if name in sample_stats:
            return sample_stats[name].to_numpy()
    return None


def _varying_columns(post, var_names: list[str]) -> list[np.ndarray]:
    """Every non-constant scalar column ``(chain, draw)`` of the named variables."""
    out = []
    for name in var_names:
        if name not in post:
            continue
        arr = post[name].transpose("chain", "draw", ...).to_numpy()
        flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
        out += [flat[..., k] for k in range(flat.shape[-1]) if np.ptp(flat[..., k]) > 0]
    return out


def diagnostics_table(idata, var_names: list[str]) -> pd.DataFrame:
    """One row per check: check, value, threshold, ok, remedy.

    ``var_names`` are the hyperparameters whose R-hat and ESS are checked.
    """
    post = idata["posterior"].to_dataset()
    stats = idata["sample_stats"].to_dataset()
    columns = _varying_columns(post, var_names)
    if columns:
        rhat = max(float(az.rhat(c)) for c in columns)
        ess_b = min(float(az.ess(c)) for c in columns)
        ess_t = min(float(az.ess(c, method="tail", prob=0.9)) for c in columns)
    else:
        rhat = ess_b = ess_t = np.nan
    diverging = _stat(stats, "diverging")
    n_div = int(diverging.sum()) if diverging is not None else 0
    depth = _stat(stats, "reached_max_treedepth", "maxdepth_reached")
    n_depth = int(depth.sum()) if depth is not None else 0
    energy = _stat(stats, "energy")
    if energy is not None and energy.shape[1] > 2:
        bfmi = np.square(np.diff(energy, axis=1)).mean(axis=1) / energy.var(axis=1)
        min_bfmi = float(bfmi.min())
    else:
        min_bfmi = np.nan
    rows = [
        ("r_hat", rhat, f"<= {RHAT_MAX}", not rhat > RHAT_MAX,
         "Chains disagree: run more tune and draws, check for multimodality, or simplify the "
         "group terms."),
        ("ess_bulk", ess_b, f">= {ESS_MIN}", not ess_b < ESS_MIN,
         "Too few effective draws for stable means: raise draws (or chains)."),
        ("ess_tail", ess_t, f">= {ESS_MIN}", not ess_t < ESS_MIN,
         "Too few effective draws in the tails: raise draws before trusting the intervals."),
        ("divergences", n_div, "0", n_div == 0,
         "Divergent transitions bias the posterior: raise target_accept (e.g. 0.95-0.99), use "
         "parameterization='marginal' for Gaussian models, or tighten the group sd priors."),
        ("max_treedepth", n_depth, "0", n_depth == 0,
         "Trajectories hit the maximum tree depth: the posterior is strongly correlated; "
         "centre or scale the predictors, or reparameterize."),
        ("e_bfmi", min_bfmi, f">= {BFMI_MIN}", not min_bfmi < BFMI_MIN,
         "Low energy BFMI: the sampler explores the variance parameters poorly; try the "
         "non-centered/marginal parameterization or more informative sd priors."),
    ]
    return pd.DataFrame(rows, columns=["check", "value", "threshold", "ok", "remedy"])
