"""Posterior tables: fixed effects, variance components and intraclass correlations.

Variance components: for each grouping factor ``k`` and varying term ``a`` the sd ``s_ka``
and variance ``s_ka^2``; for correlated terms every correlation ``R_k[a, b]``; and the
residual sd ``sigma`` (Gaussian) as group ``Residual``.

ICC (Nakagawa, Johnson and Schielzeth 2017; R's ``performance::icc``), per posterior draw:

* random-effect variance of factor ``k`` averaged over the observed rows,
  ``v_k = mean_i z_ik' Sigma_k z_ik = trace(Sigma_k Z_k'Z_k / n)``; for a random intercept
  alone this is ``tau_k^2``;
* level-1 variance ``sigma_e^2``: ``sigma^2`` (Gaussian) or ``pi^2 / 3`` (logit link, latent
  scale);
* ``adjusted`` ICC of factor ``k``: ``v_k / (sum_l v_l + sigma_e^2)``; with several factors a
  row ``all`` gives ``sum_k v_k / (sum_k v_k + sigma_e^2)``;
* ``conditional``: ``sum_k v_k / (var(X beta) + sum_k v_k + sigma_e^2)``, the share of the total
  variance including that explained by the fixed effects;
* ``I2``, instead of the above for known standard errors (meta-analysis): Higgins and
  Thompson's heterogeneity share ``tau^2 / (tau^2 + s^2)`` with the typical within-study
  variance ``s^2`` (:func:`typical_within_variance`; residual after the moderators, as metafor)
  as the level-1 variance;
* ``at_x0``, only with random slopes: ``tau_k0^2 / (sum_l tau_l0^2 + sigma_e^2)`` using only the
  intercept variances, i.e. the ICC of two observations with all varying covariates at 0.

Examples
--------
>>> import numpy as np
>>> sigma_e2 = np.array([[1.0]]); v = np.array([[3.0]])
>>> float(icc_ratio(v, v, sigma_e2)[0, 0])
0.75
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from multilevel import naming
from multilevel.design import Design, GroupDesign
from multilevel.design.statistics import fitted_variance, typical_within_variance
from multilevel.results.core import DEFAULT_PROB, draws_of, summarize

__all__ = [
    "covariance_draws",
    "fixed_effects_table",
    "icc_draws",
    "icc_ratio",
    "icc_table",
    "random_variance_draws",
    "residual_variance_draws",
    "variance_components_table",
]


def fixed_effects_table(posterior: xr.Dataset, design: Design, prob: float = DEFAULT_PROB):
    """Columns term, mean, sd, median, lower, upper, r_hat, ess_bulk."""
    b = draws_of(posterior, naming.FIXED)
    labelled = [({"term": name}, b[..., j]) for j, name in enumerate(design.fixed_names)]
    return summarize(labelled, prob)


def _cor_draws(posterior: xr.Dataset, g: GroupDesign) -> np.ndarray | None:
    name = naming.cor_name(g.factor)
    return draws_of(posterior, name) if name in posterior else None


def covariance_draws(posterior: xr.Dataset, g: GroupDesign) -> np.ndarray:
    """``(chain, draw, q, q)`` covariance matrices of one factor's group effects."""
    sd = draws_of(posterior, naming.sd_name(g.factor))
    cor = _cor_draws(posterior, g)
    if cor is None:
        cor = np.broadcast_to(np.eye(g.n_terms), sd.shape + (g.n_terms,))
    return sd[..., :, None] * cor * sd[..., None, :]


def variance_components_table(posterior: xr.Dataset, design: Design, prob: float = DEFAULT_PROB):
    """Columns group, term, stat (sd | var | cor), then the posterior summary."""
    labelled: list[tuple[dict[str, object], np.ndarray]] = []
    for g in design.groups:
        sd = draws_of(posterior, naming.sd_name(g.factor))
        for k, term in enumerate(g.term_names):
            labelled.append(({"group": g.factor, "term": term, "stat": "sd"}, sd[..., k]))
            labelled.append(({"group": g.factor, "term": term, "stat": "var"}, sd[..., k] ** 2))
        cor = _cor_draws(posterior, g)
        if cor is not None:
            for a in range(g.n_terms):
                for b in range(a + 1, g.n_terms):
                    label = f"{g.term_names[a]},{g.term_names[b]}"
                    labelled.append(({"group": g.factor, "term": label, "stat": "cor"},
                                     cor[..., a, b]))
    if naming.SIGMA in posterior:
        sigma = draws_of(posterior, naming.SIGMA)
        labelled.append(({"group": "Residual", "term": "", "stat": "sd"}, sigma))
        labelled.append(({"group": "Residual", "term": "", "stat": "var"}, sigma**2))
    if naming.PHI in posterior:
        labelled.append(({"group": "Residual", "term": "", "stat": "phi"},
                         draws_of(posterior, naming.PHI)))
    return summarize(labelled, prob)


def residual_variance_draws(posterior: xr.Dataset, design: Design) -> np.ndarray:
    """Level-1 variance per draw: sigma^2, pi^2/3 on the latent logit scale, or with known
    standard errors the typical within-study variance (so the ICC is Higgins' I^2)."""
    shape = posterior.sizes["chain"], posterior.sizes["draw"]
    if design.spec.is_logistic:
        return np.full(shape, np.pi**2 / 3)
    if design.se is not None:
        return np.full(shape, typical_within_variance(design.se, design.X))
    return draws_of(posterior, naming.SIGMA) ** 2


def random_variance_draws(posterior: xr.Dataset, g: GroupDesign) -> np.ndarray:
    """``trace(Sigma_k Z_k'Z_k / n)`` per draw: the mean random-effect variance over rows."""
    return np.einsum("cdab,ba->cd", covariance_draws(posterior, g), g.z_moment())


def icc_ratio(part: np.ndarray, random_total: np.ndarray, residual: np.ndarray, fixed=0.0):
    """``part / (fixed + random_total + residual)``, elementwise over draws."""
    return part / (fixed + random_total + residual)


def icc_table(posterior: xr.Dataset, design: Design, prob: float = DEFAULT_PROB):
    """Columns group, type (adjusted | conditional | at_x0), then the posterior summary."""
    return summarize(icc_draws(posterior, design), prob)


def icc_draws(posterior: xr.Dataset, design: Design) -> list[tuple[dict[str, object], np.ndarray]]:
    """Every ICC of the module docstring as ``({'group', 'type'}, (chain, draw) draws)``."""
    resid = residual_variance_draws(posterior, design)
    v = {g.factor: random_variance_draws(posterior, g) for g in design.groups}
    total = sum(v.values())
    labelled: list[tuple[dict[str, object], np.ndarray]] = []
    if design.se is not None:  # meta-analysis: heterogeneity share I^2 = tau^2 / (tau^2 + s^2)
        return [({"group": factor, "type": "I2"}, icc_ratio(vk, total, resid)) for factor, vk in v.items()]
    for factor, vk in v.items():
        labelled.append(({"group": factor, "type": "adjusted"}, icc_ratio(vk, total, resid)))
    if len(v) > 1:
        labelled.append(({"group": "all", "type": "adjusted"}, icc_ratio(total, total, resid)))
    b = draws_of(posterior, naming.FIXED)
    var_fixed = fitted_variance(design, b)
    labelled.append(
        ({"group": "all", "type": "conditional"}, icc_ratio(total, total, resid, var_fixed))
    )
    if any(g.n_terms > 1 or not g.intercept for g in design.groups):
        tau0 = {
            g.factor: draws_of(posterior, naming.sd_name(g.factor))[..., 0] ** 2
            for g in design.groups
            if g.intercept
        }
        total0 = sum(tau0.values())
        for factor, t0 in tau0.items():
            labelled.append(({"group": factor, "type": "at_x0"}, icc_ratio(t0, total0, resid)))
    return labelled
