"""REML random-effects meta-analysis: the frequentist side of models with known standard errors.

For ``y | se(s) ~ x + (1 | study)``, row ``i`` of group ``j`` has
``y_i = x_i' beta + u_j + e_i`` with ``u_j ~ N(0, tau^2)`` and ``e_i ~ N(0, se_i^2)`` known, so
``y ~ N(X beta, V)``, ``V = tau^2 Z Z' + diag(se^2)``. As R's ``metafor::rma(method="REML")``
(Viechtbauer 2005): ``tau^2`` maximises the restricted log-likelihood

.. math::

    l_R(\\tau^2) = -\\tfrac{n-p}{2}\\log 2\\pi + \\tfrac12\\log|X'X| - \\tfrac12\\log|V|
                   - \\tfrac12\\log|X'V^{-1}X| - \\tfrac12 r'V^{-1}r

over ``tau^2 >= 0`` with ``beta`` the GLS estimate (``r = y - X beta``); standard errors are
``sqrt(diag((X'V^{-1}X)^{-1}))`` with z tests; the conditional modes (BLUPs) are
``tau^2 Z'V^{-1} r`` with conditional sds from ``tau^2 - tau^4 Z'V^{-1}Z`` (given beta). The
heterogeneity share is Higgins and Thompson's ``I^2 = tau^2 / (tau^2 + s^2)``.

Examples
--------
>>> from multilevel import datasets
>>> from multilevel.frequentist import fit_frequentist
>>> fit = fit_frequentist("effect | se(se) ~ 1 + (1 | school)", datasets.load("eight_schools"))
>>> round(fit.tau2, 6), round(float(fit.beta.iloc[0]), 3)
(0.0, 7.686)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from multilevel.design import Design
from multilevel.design.statistics import typical_within_variance
from multilevel.errors import SpecError
from multilevel.frequentist.criteria import LikelihoodCriteria
from multilevel.frequentist.predict import meta_prediction, predict_values
from multilevel.spec.model import ModelSpec

__all__ = ["MetaAnalysisFit", "check_meta_spec", "fit_meta", "generalized_q", "q_profile"]


@dataclass(frozen=True, eq=False)
class MetaAnalysisFit(LikelihoodCriteria):
    """REML random-effects meta-analysis, with the interface of ``FrequentistFit``."""

    spec: ModelSpec
    method: str
    beta: pd.Series
    cov_fixed: pd.DataFrame
    tau2: float
    loglik: float
    nobs: int
    ranef_table: pd.DataFrame
    i2: float
    converged: bool = True
    messages: tuple[str, ...] = ()
    design: Design | None = field(default=None, repr=False)

    @property
    def singular(self) -> bool:
        """True when tau^2 is estimated at its boundary 0."""
        return self.tau2 < 1e-10

    @property
    def n_params(self) -> int:
        """Fixed effects plus tau^2."""
        return len(self.beta) + 1

    @property
    def bic_nobs(self) -> float:
        """BIC counts ``n - p`` observations, as metafor does for REML fits."""
        return self.nobs - len(self.beta)

    def fixed_effects(self) -> pd.DataFrame:
        """term, estimate, std_error, statistic (z), p_value."""
        se = np.sqrt(np.diag(self.cov_fixed.to_numpy()))
        z = self.beta.to_numpy() / se
        return pd.DataFrame({"term": self.beta.index, "estimate": self.beta.to_numpy(),
                             "std_error": se, "statistic": z, "p_value": 2 * stats.norm.sf(np.abs(z))})

    def predict(
        self, newdata: pd.DataFrame | None = None, *, scale: str = "response", groups: bool = True
    ) -> np.ndarray:
        """Predicted effects: fixed part plus a known study's BLUP (0 for a new study), or the
        fixed part alone with ``groups=False`` (as :meth:`FrequentistFit.predict`)."""
        return predict_values(self.design, self.beta, self.ranef_table, newdata, scale=scale,
                              groups=groups)

    def prediction_interval(
        self, newdata: pd.DataFrame | None = None, level: float = 0.95
    ) -> pd.DataFrame:
        """metafor's ``predict(rma)``: pred, se, ci_lower/upper and the prediction interval
        pi_lower/upper for the true effect of a new study (``pred -/+ z sqrt(se^2 + tau^2)``).

        Examples
        --------
        >>> from multilevel import datasets
        >>> from multilevel.frequentist import fit_frequentist
        >>> fit = fit_frequentist("effect | se(se) ~ 1 + (1 | school)", datasets.load("eight_schools"))
        >>> fit.prediction_interval().round(2).values.tolist()
        [[7.69, 4.07, -0.3, 15.67, -0.3, 15.67]]
        """
        return meta_prediction(self.design, self.beta, self.cov_fixed, self.tau2, newdata, level)

    def confint(self, method: str = "profile", level: float = 0.95, **_: object) -> pd.DataFrame:
        """Fixed effects: Wald z intervals (metafor's ``ci.lb``/``ci.ub``); tau^2 and tau: the
        Q-profile interval (metafor's ``confint(rma)``, Viechtbauer 2007) with
        ``method='profile'``, none (NaN) with ``method='Wald'``. Columns as
        :meth:`FrequentistFit.confint`.

        Examples
        --------
        >>> from multilevel import datasets
        >>> from multilevel.frequentist import fit_frequentist
        >>> fit = fit_frequentist("effect | se(se) ~ 1 + (1 | school)", datasets.load("eight_schools"))
        >>> fit.confint().round(2).values.tolist()[1]
        ['school', '(Intercept)', 'var', 0.0, 0.0, 270.37]
        """
        if method not in ("profile", "Wald"):
            raise SpecError(f"method={method!r} is not an option for a meta-analysis: use "
                            "'profile' (Q-profile for tau^2) or 'Wald'.")
        if not 0 < level < 1:
            raise SpecError(f"level must lie in (0, 1), got {level!r}.")
        z = stats.norm.ppf(0.5 + level / 2)
        se = np.sqrt(np.diag(self.cov_fixed.to_numpy()))
        beta = self.beta.to_numpy()
        lo, hi = (q_profile(self.design, level) if method == "profile" and self.design is not None
                  else (np.nan, np.nan))
        factor = self.spec.groups[0].factor
        rows = [(factor, "(Intercept)", "sd", math.sqrt(self.tau2), math.sqrt(lo), math.sqrt(hi)),
                (factor, "(Intercept)", "var", self.tau2, lo, hi)]
        rows += [("", t, "coef", b, b - z * s, b + z * s)
                 for t, b, s in zip(self.beta.index, beta, se, strict=True)]
        return pd.DataFrame(rows, columns=["group", "term", "stat", "estimate", "lower", "upper"])

    def variance_components(self) -> pd.DataFrame:
        """tau as sd and tau^2 as var of the grouping factor."""
        factor = self.spec.groups[0].factor
        return pd.DataFrame({"group": factor, "term": "(Intercept)", "stat": ["sd", "var"],
                             "estimate": [math.sqrt(self.tau2), self.tau2]})

    def ranef(self) -> pd.DataFrame:
        """BLUPs of the study effects and their conditional sds."""
        return self.ranef_table.copy()

    def icc(self) -> pd.DataFrame:
        """Higgins' I^2 (type ``I2``)."""
        return pd.DataFrame({"group": [self.spec.groups[0].factor], "type": ["I2"],
                             "estimate": [self.i2]})


def _pieces(design: Design, tau2: float):
    Z = np.zeros((design.n_obs, design.groups[0].n_levels))
    Z[np.arange(design.n_obs), design.groups[0].index] = 1.0
    V = tau2 * Z @ Z.T + np.diag(design.se**2)
    vinv = np.linalg.inv(V)
    X = design.X
    xvx = X.T @ vinv @ X
    beta = np.linalg.solve(xvx, X.T @ vinv @ design.y)
    r = design.y - X @ beta
    return Z, vinv, xvx, beta, r, V


def _restricted_loglik(design: Design, tau2: float) -> float:
    _, vinv, xvx, _, r, V = _pieces(design, tau2)
    n, p = design.X.shape
    return float(-0.5 * (n - p) * math.log(2 * math.pi) + 0.5 * np.linalg.slogdet(design.X.T @ design.X)[1]
                 - 0.5 * np.linalg.slogdet(V)[1] - 0.5 * np.linalg.slogdet(xvx)[1] - 0.5 * r @ vinv @ r)


def generalized_q(design: Design, tau2: float) -> float:
    """Cochran's generalised Q at ``tau2``: ``r' V^-1 r`` with ``beta`` the GLS estimate."""
    _, vinv, _, _, r, _ = _pieces(design, tau2)
    return float(r @ vinv @ r)


def q_profile(design: Design, level: float = 0.95) -> tuple[float, float]:
    """The Q-profile interval for tau^2: where the generalised Q crosses the chi-square
    quantiles on ``n - p`` degrees of freedom (an end is 0 when Q at 0 is already below its
    quantile), as metafor's ``confint(rma)``."""
    df = design.n_obs - design.X.shape[1]
    scale = float(np.var(design.y)) + float(np.max(design.se**2))
    out = []
    for q in (stats.chi2.ppf(0.5 + level / 2, df), stats.chi2.ppf(0.5 - level / 2, df)):
        if generalized_q(design, 0.0) <= q:
            out.append(0.0)
            continue
        hi = scale
        while generalized_q(design, hi) > q:
            hi *= 2.0
        out.append(optimize.brentq(lambda t, q=q: generalized_q(design, t) - q, 0.0, hi,
                                   xtol=1e-12 * scale))
    return out[0], out[1]


def check_meta_spec(spec: ModelSpec) -> None:
    """Raise :class:`SpecError` unless ``spec`` is a model the REML meta-analysis fits: known
    standard errors and one varying intercept."""
    if spec.se is None:
        raise SpecError("The frequentist meta-analysis needs known standard errors: "
                        "'y | se(s) ~ 1 + (1 | study)'.")
    if len(spec.groups) != 1 or spec.groups[0].slopes or not spec.groups[0].intercept:
        raise SpecError(
            "The frequentist meta-analysis supports one varying intercept, (1 | study); fit other "
            "known-SE models with frequentist=False."
        )


def fit_meta(design: Design) -> MetaAnalysisFit:
    """REML random-effects meta-analysis of a design with known standard errors."""
    check_meta_spec(design.spec)
    scale = float(np.var(design.y)) + float(np.mean(design.se**2))
    res = optimize.minimize_scalar(lambda t: -_restricted_loglik(design, t), bounds=(0.0, 10 * scale),
                                   method="bounded", options={"xatol": 1e-12 * scale + 1e-14})
    tau2 = float(res.x)
    if -_restricted_loglik(design, 0.0) <= res.fun:  # the boundary is the maximum
        tau2 = 0.0
    Z, vinv, xvx, beta, r, _ = _pieces(design, tau2)
    names = list(design.fixed_names)
    modes = tau2 * Z.T @ vinv @ r
    cond_var = np.clip(tau2 - tau2**2 * np.einsum("ij,jk,ki->i", Z.T, vinv, Z), 0.0, None)
    g = design.groups[0]
    ranef = pd.DataFrame({"group": g.factor, "level": list(g.levels), "term": "(Intercept)",
                          "estimate": modes, "cond_sd": np.sqrt(cond_var)})
    s2 = typical_within_variance(design.se, design.X)
    messages = ("boundary (singular) fit: tau^2 = 0",) if tau2 == 0.0 else ()
    return MetaAnalysisFit(
        spec=design.spec, method="REML", beta=pd.Series(beta, index=names, name="estimate"),
        cov_fixed=pd.DataFrame(np.linalg.inv(xvx), index=names, columns=names), tau2=tau2,
        loglik=_restricted_loglik(design, tau2), nobs=design.n_obs, ranef_table=ranef,
        i2=tau2 / (tau2 + s2), converged=bool(res.success), messages=messages, design=design,
    )
