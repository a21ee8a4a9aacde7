"""Numpy core for posterior summaries: point estimates, intervals and convergence diagnostics.

Intervals are central (equal-tailed) with probability ``prob`` (default 0.95). ETIs are
invariant under monotone transforms, so the interval of a variance is exactly the square of
the interval of the standard deviation, which keeps the sd and var rows of a table coherent
(an HDI would not be).

Examples
--------
>>> import numpy as np
>>> draws = np.random.default_rng(0).normal(size=(4, 1000))
>>> row = describe(draws)
>>> sorted(row)
['ess_bulk', 'lower', 'mean', 'median', 'r_hat', 'sd', 'upper']
>>> abs(row["mean"]) < 0.1
True
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from multilevel import naming
from multilevel.errors import DataError

__all__ = [
    "DEFAULT_PROB", "describe", "draws_of", "effect_summaries", "summarize", "summary_quantile",
]

DEFAULT_PROB = 0.95


def describe(draws: np.ndarray, prob: float = DEFAULT_PROB) -> dict[str, float]:
    """Mean, sd, median, ETI bounds, R-hat and bulk ESS of one ``(chain, draw)`` array."""
    if not 0 < prob < 1:
        raise ValueError(f"prob must lie in (0, 1), got {prob}.")
    draws = np.asarray(draws, dtype=float)
    flat = draws.ravel()
    lo, med, hi = np.quantile(flat, [(1 - prob) / 2, 0.5, (1 + prob) / 2])
    out = {
        "mean": float(flat.mean()),
        "sd": float(flat.std(ddof=1)) if flat.size > 1 else float("nan"),
        "median": float(med),
        "lower": float(lo),
        "upper": float(hi),
    }
    constant = np.ptp(flat) == 0 or draws.shape[-1] < 4
    out["r_hat"] = float("nan") if constant else float(az.rhat(draws))
    out["ess_bulk"] = float("nan") if constant else float(az.ess(draws))
    return out


def summarize(
    labelled: list[tuple[dict[str, object], np.ndarray]], prob: float = DEFAULT_PROB
) -> pd.DataFrame:
    """One row per ``(labels, draws)`` pair: the labels' columns, then :func:`describe`'s."""
    rows = [{**labels, **describe(draws, prob)} for labels, draws in labelled]
    return pd.DataFrame(rows)


def draws_of(posterior: xr.Dataset, name: str) -> np.ndarray:
    """A posterior variable as a numpy array with ``chain`` and ``draw`` first."""
    if name not in posterior and name.startswith("u_"):
        raise DataError(
            f"The posterior has no draws of the group effects {name!r}: they are not kept with "
            "group_draws='summary' (the default when they exceed 500 MB), and this needs every "
            "draw of every group. Refit with group_draws='full' (it needs the memory), or use "
            "the tables, which read the per-level summaries."
        )
    da = posterior[name]
    rest = [d for d in da.dims if d not in ("chain", "draw")]
    return da.transpose("chain", "draw", *rest).to_numpy()


def effect_summaries(idata) -> xr.Dataset | None:
    """The per-level summaries of the group effects when their draws were not kept
    (``group_draws='summary'``, :func:`multilevel.engine.recovery.summarise_group_effects`)."""
    group = naming.GROUP_SUMMARIES
    return idata[group].to_dataset() if group in idata.children else None


def summary_quantile(summary: xr.DataArray, q: float) -> np.ndarray:
    """The stored quantile ``q`` of a summary variable; a clear error for one not stored."""
    label = f"q{round(q, 6):g}"
    stored = [s for s in summary["summary"].to_numpy() if s.startswith("q")]
    if label not in stored:
        probs = sorted({round(abs(1 - 2 * float(s[1:])), 6) for s in stored} - {0.0})
        raise DataError(
            f"The group effects were summarised (group_draws='summary'), with the central "
            f"intervals {probs} only: use one of those for prob, or refit with group_draws='full'."
        )
    return summary.sel(summary=label).to_numpy()
