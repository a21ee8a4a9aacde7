"""Pointwise log-likelihood of the observations at every posterior draw.

The conditional log-likelihood given the group effects, ``log p(y_i | beta, u, sigma)``:
``N(y_i | eta_i, sigma)`` (or ``se_i`` when standard errors are known), ``Bin(y_i | n_i,
logit^-1 eta_i)`` with ``eta_i = x_i' beta + sum_k z_ik' u_{k, j_k(i)}``. For the marginal
parameterization the ``u`` draws are the exact conditional draws, so this is the same quantity
for every parameterization. With AR(1)/CAR(1) residuals the rows of a series are not
independent given ``u``, so each row's term is its density given *all the other rows of its
series* (Buerkner, Gabry and Vehtari 2020, leave-one-out for non-factorized models): with the
tridiagonal precision ``R^-1 / sigma^2`` (:mod:`multilevel.design.serial`), ``e_k | e_-k ~
N((g_p e_p + g_n e_n) / c, sigma^2 / c)``, ``c = 1 + f_p + f_n``, from the pairs with the
previous (``p``) and next (``n``) row, ``f = r^2/(1 - r^2)``, ``g = r/(1 - r^2)``, ``r =
phi^lag``. PSIS-LOO of these terms is leave-one-observation-out; their sum is not the joint
log-likelihood (power-scaling uses the marginal one, :mod:`multilevel.results.sensitivity`).
The terms feed PSIS-LOO (:func:`arviz.loo`) and, for non-marginal fits, power-scaling
sensitivity (:func:`arviz.psense`).

Examples
--------
>>> import numpy as np
>>> from scipy import stats
>>> bool(np.isclose(_gaussian(np.array([1.0]), np.array([0.0]), 1.0)[0], stats.norm.logpdf(1.0)))
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from scipy.special import gammaln

from multilevel import naming
from multilevel.design.serial import lag_power
from multilevel.design.types import require_rows
from multilevel.results.core import draws_of

if TYPE_CHECKING:
    from multilevel.results.record import FitRecord

__all__ = ["linear_predictor_draws", "pointwise_log_likelihood", "with_log_likelihood"]


def _gaussian(y: np.ndarray, eta: np.ndarray, sd) -> np.ndarray:
    return -0.5 * ((y - eta) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def linear_predictor_draws(fit: FitRecord) -> np.ndarray:
    """``(chain, draw, obs)`` linear predictor at every draw."""
    post, design = fit.posterior, fit.design
    eta = np.einsum("cdp,np->cdn", draws_of(post, naming.FIXED), design.X)
    for g in design.groups:
        u = draws_of(post, naming.effect_name(g.factor))  # (chain, draw, level, term)
        eta += np.einsum("nq,cdnq->cdn", g.Z, u[:, :, g.index])
    return eta


def pointwise_log_likelihood(fit: FitRecord) -> np.ndarray:
    """``(chain, draw, obs)`` conditional log-likelihood of every row (module docstring)."""
    design = fit.design
    require_rows(design, "The pointwise log-likelihood (PSIS-LOO, WAIC)")
    eta = linear_predictor_draws(fit)
    y = design.y
    if design.spec.is_logistic:
        n = design.trials if design.trials is not None else np.ones_like(y)
        log_choose = gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)
        return log_choose + y * eta - n * np.logaddexp(0.0, eta)
    if design.se is not None:
        return _gaussian(y, eta, design.se)
    sigma = draws_of(fit.posterior, naming.SIGMA)[..., None]
    if design.serial is not None:
        return _innovations(design, y - eta, sigma, draws_of(fit.posterior, naming.PHI))
    return _gaussian(y, eta, sigma)


def _innovations(design, resid: np.ndarray, sigma: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``(chain, draw, obs)`` log density of each AR(1)/CAR(1) residual given the other rows
    of its series (module docstring)."""
    ser = design.serial
    r = lag_power(phi, ser.lag)
    f, g = r**2 / (1 - r**2), r / (1 - r**2)
    i, k = ser.first, ser.second
    c = np.ones(resid.shape)
    num = np.zeros(resid.shape)
    c[..., k] += f  # the pair (i, k): k's previous row is i, i's next row is k
    c[..., i] += f
    num[..., k] += g * resid[..., i]
    num[..., i] += g * resid[..., k]
    return _gaussian(resid, num / c, sigma / np.sqrt(c))


def with_log_likelihood(fit: FitRecord):
    """A copy of ``fit.idata`` with a ``log_likelihood`` group (variable ``y``)."""
    values = pointwise_log_likelihood(fit)
    post = fit.posterior
    da = xr.DataArray(values, dims=("chain", "draw", naming.OBS_DIM),
                      coords={"chain": post["chain"], "draw": post["draw"]})
    tree = fit.idata.copy()
    tree["log_likelihood"] = xr.DataTree(xr.Dataset({naming.RESPONSE: da}))
    return tree
