"""Efficiency of a fit: minimum bulk ESS over the hyperparameters, and divergences.

The hyperparameters are the fixed effects, the group standard deviations, the correlations
between varying terms (off-diagonal, each pair once) and the residual sd. Their names differ:

========================  ===========================  ===============================
quantity                  multilevel                   bambi 0.21
========================  ===========================  ===============================
fixed effects             ``b[term]``                  ``Intercept``, ``cses``,
                                                       ``sector[Catholic]``, ...
group sds                 ``sd_<g>[term]``             ``1|school_sigma``,
                                                       ``cses|school_sigma``
correlations              ``cor_<g>[i, j]``, i < j     none: bambi's varying terms are
                                                       independent
residual sd               ``sigma``                    ``sigma``
========================  ===========================  ===============================

For bambi every posterior variable without a ``*__factor_dim`` dimension (the group effects)
is a hyperparameter; bambi drops its ``*_offset`` variables itself.

Examples
--------
>>> import numpy as np, xarray as xr
>>> da = xr.DataArray(np.zeros((2, 5, 2, 2)), dims=("chain", "draw", "i", "j"), name="cor_g")
>>> sorted(dict(_columns(da, cor=True)))
['cor_g[0,1]']
"""

from __future__ import annotations

from collections.abc import Iterator

import arviz as az
import numpy as np

__all__ = ["divergences", "min_bulk_ess", "bambi_hyper", "ours_hyper"]


def _columns(da, *, cor: bool = False) -> Iterator[tuple[str, np.ndarray]]:
    """Scalar (chain, draw) columns of one variable, labelled by its coordinates.

    For a correlation matrix (``cor``) only the pairs i < j.
    """
    da = da.transpose("chain", "draw", ...)
    arr, extra = da.to_numpy(), [d for d in da.dims if d not in ("chain", "draw")]
    if not extra:
        yield str(da.name), arr
        return
    labels = [
        [str(v) for v in da[d].to_numpy()] if d in da.coords else [str(k) for k in range(da.sizes[d])]
        for d in extra
    ]
    for index in np.ndindex(*arr.shape[2:]):
        if cor and index[0] >= index[1]:
            continue
        label = ",".join(lab[i] for lab, i in zip(labels, index, strict=True))
        yield f"{da.name}[{label}]", arr[(slice(None), slice(None), *index)]


def ours_hyper(idata) -> dict[str, np.ndarray]:
    """Hyperparameter columns of a :class:`multilevel.HierarchicalFit`'s ``idata``."""
    post = idata["posterior"].to_dataset()
    out: dict[str, np.ndarray] = {}
    for name in post.data_vars:
        if name in ("b", "sigma") or name.startswith(("sd_", "cor_")):
            out.update(_columns(post[name], cor=name.startswith("cor_")))
    return out


def bambi_hyper(idata) -> dict[str, np.ndarray]:
    """Hyperparameter columns of a bambi fit (everything but the group effects)."""
    post = idata["posterior"].to_dataset()
    out: dict[str, np.ndarray] = {}
    for name in post.data_vars:
        if any(str(d).endswith("__factor_dim") for d in post[name].dims):
            continue
        out.update(_columns(post[name]))
    return out


def min_bulk_ess(columns: dict[str, np.ndarray]) -> tuple[float, str, dict[str, float]]:
    """Smallest bulk ESS over the columns, its column name, and every column's ESS."""
    ess = {}
    for name, col in columns.items():
        ess[name] = float(az.ess(col)) if np.ptp(col) > 0 else float("nan")
    finite = {k: v for k, v in ess.items() if np.isfinite(v)}
    if not finite:
        return float("nan"), "", ess
    worst = min(finite, key=finite.get)
    return finite[worst], worst, ess


def divergences(idata) -> int:
    """Number of divergent transitions after warm-up."""
    stats = idata["sample_stats"].to_dataset()
    return int(stats["diverging"].to_numpy().sum()) if "diverging" in stats else 0
