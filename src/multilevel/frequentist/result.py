"""The result of a REML/ML/Laplace/AGQ fit: lme4's numbers under lme4's names.

Examples
--------
>>> from multilevel import datasets
>>> from multilevel.frequentist import fit_frequentist
>>> fit = fit_frequentist("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
>>> isinstance(fit, FrequentistFit), round(fit.deviance, 2)
(True, 1743.63)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from multilevel.design import Design
from multilevel.frequentist.criteria import LikelihoodCriteria
from multilevel.frequentist.intervals import check_level, confint_table
from multilevel.frequentist.predict import predict_values
from multilevel.spec.model import ModelSpec

__all__ = ["FrequentistFit", "GroupCovariance"]


@dataclass(frozen=True, eq=False)  # array fields: identity equality
class GroupCovariance:
    """Estimated covariance of one grouping factor's varying terms (lme4 names)."""

    factor: str
    terms: tuple[str, ...]
    correlated: bool
    cov: np.ndarray


@dataclass(frozen=True, eq=False)  # array fields: identity equality
class FrequentistFit(LikelihoodCriteria):
    """A fitted lme4-equivalent model; every attribute is set by :func:`fit_frequentist`.

    ``beta`` and ``cov_fixed`` (lme4's ``vcov``) are labelled by lme4 names; ``theta`` holds
    the relative Cholesky entries, lme4-named, column-major within each group; ``sigma`` is
    None for logistic fits; ``loglik`` is lme4's ``logLik()`` (module notes: REML, AGQ);
    ``singular`` is lme4's ``isSingular`` (a diagonal theta below
    :data:`multilevel.frequentist.mixed.SINGULAR_TOL`);
    ``var_fixed``, ``var_random`` (per group) and ``var_residual`` are the ICC's parts.
    """

    spec: ModelSpec
    method: str
    n_agq: int
    beta: pd.Series
    cov_fixed: pd.DataFrame
    theta: pd.Series
    sigma: float | None
    groups: tuple[GroupCovariance, ...]
    ranef_table: pd.DataFrame
    loglik: float
    nobs: int
    converged: bool
    singular: bool
    messages: tuple[str, ...]
    var_fixed: float
    var_random: tuple[float, ...]
    var_residual: float
    design: Design | None = field(default=None, repr=False)
    #: How to refit this model (``refit(design, method, n_agq)``; set by the fitting module,
    #: used by the ML refit of profiles and by the bootstrap) and, for logistic fits, how to get
    #: the Laplace deviance of ``(theta, beta)`` (``laplace() -> (devfun, theta offsets)``).
    refit: Callable[..., FrequentistFit] | None = field(default=None, repr=False)
    laplace: Callable[[], tuple[Any, list[int]]] | None = field(default=None, repr=False)
    #: The residual correlation of an ``ar1``/``car1`` model (nlme's ``Phi``) and its kind.
    phi: float | None = None
    correlation: str | None = None
    _intervals: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n_params(self) -> int:
        """Estimated parameters: beta, theta, sigma and phi (lme4's and nlme's ``df`` of
        ``logLik``)."""
        return len(self.beta) + len(self.theta) + (self.sigma is not None) + (self.phi is not None)

    @property
    def bic_nobs(self) -> float:
        """Observations in BIC's penalty: the rows (lme4), or for REML fits with correlated
        residuals the rows minus the fixed effects (nlme, the reference for those models)."""
        if self.correlation is not None and self.method == "REML":
            return self.nobs - len(self.beta)
        return self.nobs

    def fixed_effects(self) -> pd.DataFrame:
        """Estimates, standard errors, z (logistic) or t (Gaussian) statistics and p-values.

        Examples
        --------
        >>> from multilevel import datasets
        >>> from multilevel.frequentist import fit_frequentist
        >>> fit = fit_frequentist("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
        >>> fit.fixed_effects().round(2).iloc[1].to_dict()
        {'term': 'Days', 'estimate': 10.47, 'std_error': 1.55, 'statistic': 6.77, 'p_value': 0.0}
        """
        se = np.sqrt(np.diag(self.cov_fixed.to_numpy()))
        stat = self.beta.to_numpy() / se
        return pd.DataFrame(
            {
                "term": list(self.beta.index),
                "estimate": self.beta.to_numpy(),
                "std_error": se,
                "statistic": stat,
                "p_value": 2.0 * stats.norm.sf(np.abs(stat)),
            }
        )

    def predict(
        self, newdata: pd.DataFrame | None = None, *, scale: str = "response", groups: bool = True
    ) -> np.ndarray:
        """Predictions as lme4's ``predict(m, newdata, allow.new.levels = TRUE, type = scale)``.

        ``groups=True`` adds each row's conditional modes (a level not seen in fitting gets the
        population value); ``groups=False`` is lme4's ``re.form = NA``. ``scale='response'``
        gives probabilities for logistic fits, ``'link'`` the linear predictor. ``newdata=None``
        predicts the fitted rows; see :mod:`multilevel.frequentist.predict`.

        Examples
        --------
        >>> import pandas as pd
        >>> from multilevel import datasets
        >>> from multilevel.frequentist import fit_frequentist
        >>> fit = fit_frequentist("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
        >>> fit.predict(pd.DataFrame({"Days": [9.0]}), groups=False).round(2).tolist()
        [345.61]
        """
        return predict_values(self.design, self.beta, self.ranef_table, newdata, scale=scale,
                              groups=groups)

    def confint(
        self,
        method: str = "profile",
        level: float = 0.95,
        *,
        n_boot: int = 500,
        seed: int | None = None,
        progress: bool = True,
    ) -> pd.DataFrame:
        """Confidence intervals as lme4's ``confint(m, method, oldNames = FALSE)``.

        ``method`` is ``'profile'`` (lme4's default; Gaussian fits profile the ML deviance, as
        lme4), ``'Wald'`` (fixed effects only) or ``'boot'`` (parametric bootstrap,
        ``n_boot`` refits, percentile intervals, reproducible with ``seed``). Returns group,
        term, stat (coef, sd, cor), estimate, lower, upper; see
        :mod:`multilevel.frequentist.intervals`. Computed once per method and level, then
        reused.

        Examples
        --------
        >>> from multilevel import datasets
        >>> from multilevel.frequentist import fit_frequentist
        >>> fit = fit_frequentist("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
        >>> ci = fit.confint()
        >>> ci.loc[ci["stat"] == "sd", ["lower", "upper"]].round(2).values.tolist()
        [[14.38, 37.72], [3.8, 8.75], [22.9, 28.86]]
        """
        key = (method, check_level(level), n_boot if method == "boot" else None, seed)
        if key not in self._intervals or method == "boot" and seed is None:
            self._intervals[key] = confint_table(self, method, level, n_boot=n_boot, seed=seed,
                                                 progress=progress)
        return self._intervals[key].copy()

    def variance_components(self) -> pd.DataFrame:
        """Long table of variances, sds and correlations (``stat`` in var/sd/cor).

        Examples
        --------
        >>> from multilevel import datasets
        >>> from multilevel.frequentist import fit_frequentist
        >>> fit = fit_frequentist("mAch ~ 1 + (1 | school)", datasets.load("hsb82"))
        >>> fit.variance_components().round(3).values.tolist()[1]
        ['school', '(Intercept)', 'sd', 2.935]
        """
        rows: list[tuple[str, str, str, float]] = []
        for g in self.groups:
            sd = np.sqrt(np.diag(g.cov))
            for j, term in enumerate(g.terms):
                rows += [(g.factor, term, "var", g.cov[j, j]), (g.factor, term, "sd", sd[j])]
            if g.correlated:
                for j in range(len(g.terms)):
                    for i in range(j + 1, len(g.terms)):
                        cor = g.cov[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                        rows.append((g.factor, f"{g.terms[j]},{g.terms[i]}", "cor", cor))
        if self.sigma is not None:
            rows += [("Residual", "", "var", self.sigma**2), ("Residual", "", "sd", self.sigma)]
        if self.phi is not None:
            rows.append(("Residual", "", "phi", self.phi))
        return pd.DataFrame(rows, columns=["group", "term", "stat", "estimate"])

    def ranef(self) -> pd.DataFrame:
        """Conditional modes and conditional sds per group, level and term (lme4's ``ranef``)."""
        return self.ranef_table.copy()

    def icc(self) -> pd.DataFrame:
        """Nakagawa's ICCs in long form: columns group, type, estimate.

        ``type`` is 'adjusted' (one row per grouping factor, and a group 'all' row when there
        are several), 'conditional' (group 'all') and, with random slopes, 'at_x0' (each
        factor's intercept variance over all intercept variances plus the residual variance:
        the ICC at covariates 0). The total adjusted row and the conditional row are
        ``performance::icc``'s ``ICC_adjusted`` and ``ICC_conditional``.

        Examples
        --------
        >>> from multilevel import datasets
        >>> from multilevel.frequentist import fit_frequentist
        >>> fit = fit_frequentist("mAch ~ 1 + (1 | school)", datasets.load("hsb82"))
        >>> fit.icc().round(4).values.tolist()
        [['school', 'adjusted', 0.1804], ['all', 'conditional', 0.1804]]
        """
        total, resid = sum(self.var_random), self.var_residual
        pairs = zip(self.groups, self.var_random, strict=True)
        rows = [(g.factor, "adjusted", v / (total + resid)) for g, v in pairs]
        if len(self.groups) > 1:
            rows.append(("all", "adjusted", total / (total + resid)))
        rows.append(("all", "conditional", total / (total + resid + self.var_fixed)))
        if any(len(g.terms) > 1 or g.terms[0] != "(Intercept)" for g in self.groups):
            tau0 = {g.factor: g.cov[0, 0] for g in self.groups if g.terms[0] == "(Intercept)"}
            total0 = sum(tau0.values())
            rows += [(k, "at_x0", t / (total0 + resid)) for k, t in tau0.items()]
        return pd.DataFrame(rows, columns=["group", "type", "estimate"])
