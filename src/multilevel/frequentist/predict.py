"""Predictions of a frequentist fit, as lme4's ``predict(m, newdata, allow.new.levels = TRUE)``.

The conditional prediction of a row is ``x' beta_hat + sum_k z_k' b_k[level]`` with the
conditional modes ``b`` (BLUPs); a level not seen in fitting gets the population value (its
``b`` is 0), as lme4 with ``allow.new.levels = TRUE``; ``groups=False`` leaves every group
effect out (lme4's ``re.form = NA``). ``scale='response'`` applies the inverse link (logit for
the logistic families), ``'link'`` returns the linear predictor. New rows go through
:func:`multilevel.design.newdata.new_design` (training transforms, levels and group means).

Examples
--------
>>> import pandas as pd
>>> from multilevel import datasets
>>> from multilevel.frequentist import fit_frequentist
>>> fit = fit_frequentist("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
>>> new = pd.DataFrame({"Days": [0.0, 2.0], "Subject": ["308", "new"]})
>>> fit.predict(new).round(3).tolist()
[253.664, 272.34]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from multilevel.design import Design
from multilevel.design.newdata import check_scale, new_design
from multilevel.errors import SpecError

__all__ = ["linear_predictor", "meta_prediction", "predict_values"]


def _modes(ranef: pd.DataFrame, design: Design) -> list[np.ndarray]:
    """``(levels, terms)`` conditional modes per factor, in the design's level order."""
    out = []
    for g in design.groups:
        rows = ranef[ranef["group"] == g.factor]
        out.append(rows["estimate"].to_numpy(float).reshape(g.n_levels, g.n_terms))
    return out


def linear_predictor(
    design: Design | None,
    beta: pd.Series,
    ranef: pd.DataFrame,
    newdata: pd.DataFrame | None,
    *,
    groups: bool = True,
) -> np.ndarray:
    """``X beta + sum_k Z_k b_k`` on the new rows; unseen levels contribute 0."""
    if design is None:
        raise SpecError("This fit does not hold its design: refit it to predict.")
    if not isinstance(groups, bool):
        raise SpecError(f"groups must be True or False, got {groups!r}.")
    nd = new_design(design, newdata, groups=groups)
    eta = nd.X @ beta.to_numpy(float)
    for ng, modes in zip(nd.groups or (), _modes(ranef, design), strict=False):
        seen = ng.index >= 0
        eta[seen] += np.einsum("nq,nq->n", ng.Z[seen], modes[ng.index[seen]])
    return eta


def predict_values(
    design: Design | None,
    beta: pd.Series,
    ranef: pd.DataFrame,
    newdata: pd.DataFrame | None,
    *,
    scale: str = "response",
    groups: bool = True,
) -> np.ndarray:
    """:func:`linear_predictor`, on the response scale unless ``scale='link'``."""
    check_scale(scale)
    eta = linear_predictor(design, beta, ranef, newdata, groups=groups)
    logistic = design is not None and design.spec.is_logistic
    return expit(eta) if logistic and scale == "response" else eta


def meta_prediction(
    design: Design | None,
    beta: pd.Series,
    cov_fixed: pd.DataFrame,
    tau2: float,
    newdata: pd.DataFrame | None,
    level: float = 0.95,
) -> pd.DataFrame:
    """metafor's ``predict(rma)``: ``pred``, ``se``, confidence and prediction intervals.

    ``ci`` is ``pred -/+ z se``; ``pi`` is ``pred -/+ z sqrt(se^2 + tau^2)``, the range of the
    true effect of a new study. ``newdata=None`` predicts one row for an intercept-only model
    (as metafor), else the fitted rows.
    """
    if not 0 < level < 1:
        raise SpecError(f"level must lie in (0, 1), got {level!r}.")
    if design is None:
        raise SpecError("This fit does not hold its design: refit it to predict.")
    if newdata is None and not design.spec.fixed:
        X = np.ones((1, 1)) if design.spec.intercept else np.zeros((1, 0))
    else:
        X = new_design(design, newdata, groups=False).X
    pred = X @ beta.to_numpy(float)
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, cov_fixed.to_numpy(float), X))
    z = stats.norm.ppf(0.5 + level / 2)
    half_pi = z * np.sqrt(se**2 + tau2)
    return pd.DataFrame({"pred": pred, "se": se, "ci_lower": pred - z * se,
                         "ci_upper": pred + z * se, "pi_lower": pred - half_pi,
                         "pi_upper": pred + half_pi})
