"""A fit record with its tables: posterior next to the frequentist estimates.

:class:`FitResult` computes every table on request from the posterior draws
(:mod:`multilevel.results.tables`, :mod:`multilevel.results.shrinkage`), with the frequentist
value beside it, and the diagnostics (:mod:`multilevel.results.diagnostics`, prior sensitivity
from :mod:`multilevel.results.sensitivity`). :class:`multilevel.fit.HierarchicalFit` adds the
course statistics, plots, reports and saving.

Examples
--------
>>> from multilevel import datasets, fit_hierarchical
>>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
...                        draws=100, tune=100, chains=2, seed=1, progressbar=False)
>>> isinstance(fit, FitResult), list(fit.fixed_effects()["term"])
(True, ['(Intercept)', 'Days'])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr

from multilevel import naming
from multilevel.errors import SpecError
from multilevel.results.core import DEFAULT_PROB, effect_summaries
from multilevel.results.diagnostics import diagnostics_table
from multilevel.results.predictions import (
    posterior_predict,
    predict_draws,
    prediction_table,
    predictions_idata,
)
from multilevel.results.record import FitRecord
from multilevel.results.sensitivity import sensitivity_check
from multilevel.results.shrinkage import shrinkage_table
from multilevel.results.tables import fixed_effects_table, icc_table, variance_components_table

__all__ = ["FitResult"]


@dataclass(frozen=True, repr=False)
class FitResult(FitRecord):
    """A :class:`~multilevel.results.record.FitRecord` with its tables."""

    def priors(self) -> pd.DataFrame:
        """Every prior used: target, prior, source ('default' or the override key)."""
        return self.resolved_priors.table()

    def fixed_effects(
        self, prob: float = DEFAULT_PROB, *, interval: str | None = "profile"
    ) -> pd.DataFrame:
        """term, mean, sd, median, lower, upper, r_hat, ess_bulk (+ the frequentist estimate,
        its standard error and its ``prob`` confidence interval ``<method>_lower`` /
        ``<method>_upper`` by ``interval``: 'profile', 'Wald', 'boot', or None for none; see
        :meth:`multilevel.frequentist.FrequentistFit.confint`)."""
        table = fixed_effects_table(self.posterior, self.design, prob)
        if self.frequentist is not None:
            freq = self.frequentist.fixed_effects().set_index("term")
            table[self.method] = table["term"].map(freq["estimate"])
            table[f"{self.method}_se"] = table["term"].map(freq["std_error"])
            table = self._with_interval(table, interval, prob, ["term"])
        return table

    def variance_components(
        self, prob: float = DEFAULT_PROB, *, interval: str | None = "profile"
    ) -> pd.DataFrame:
        """group, term, stat (sd/var/cor), posterior summary (+ the frequentist estimate and
        its confidence interval by ``interval``, as :meth:`fixed_effects`; a variance's interval
        is the square of its sd's)."""
        table = variance_components_table(self.posterior, self.design, prob)
        if self.frequentist is not None:
            freq = self.frequentist.variance_components()
            table = table.merge(
                freq.rename(columns={"estimate": self.method}), on=["group", "term", "stat"],
                how="left",
            )
            table = self._with_interval(table, interval, prob, ["group", "term", "stat"])
        return table

    def frequentist_intervals(self, interval: str = "profile", prob: float = DEFAULT_PROB):
        """The frequentist fit's confidence intervals (``confint(interval, level=prob)``), or
        None, with a warning saying why, when they cannot be computed for this model."""
        try:
            return self.frequentist.confint(interval, level=prob)
        except (SpecError, RuntimeError, ValueError, np.linalg.LinAlgError) as err:
            warnings.warn(f"No {interval} intervals for the {self.frequentist.method} fit: {err}",
                          stacklevel=3)
            return None

    def _with_interval(self, table: pd.DataFrame, interval: str | None, prob: float,
                       keys: list[str]) -> pd.DataFrame:
        if interval is None:
            return table
        if interval == "profile" and not self.design.has_rows:  # no rows to profile over
            interval = "Wald"
        lo, hi = f"{self.method}_lower", f"{self.method}_upper"
        ci = self.frequentist_intervals(interval, prob)
        if ci is None:
            return table.assign(**{lo: np.nan, hi: np.nan})
        ci = ci[~ci["stat"].isin(["coef", "var"])] if "group" in keys else ci[ci["stat"] == "coef"]
        var = ci[ci["stat"] == "sd"].assign(stat="var", lower=lambda d: d["lower"] ** 2,
                                            upper=lambda d: d["upper"] ** 2)
        ci = pd.concat([ci, var], ignore_index=True)[[*keys, "lower", "upper"]]
        return table.merge(ci.rename(columns={"lower": lo, "upper": hi}), on=keys, how="left")

    def icc(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """ICC per grouping factor (adjusted, conditional, at_x0), with the frequentist value."""
        table = icc_table(self.posterior, self.design, prob)
        if self.frequentist is not None:
            freq = self.frequentist.icc()
            table = table.merge(
                freq.rename(columns={"estimate": self.method}), on=["group", "type"], how="left"
            )
        return table

    def shrinkage(self, group: str | None = None, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Per group: n, no/complete/partial pooling, pooling factor (+ BLUP and its cond. sd)."""
        table = shrinkage_table(self.posterior, self.design, group, prob,
                                effect_summaries(self.idata))
        if self.frequentist is not None:
            ranef = self.frequentist.ranef()
            table = table.merge(
                ranef.rename(columns={"estimate": "blup", "cond_sd": "blup_cond_sd"}),
                on=["group", "level", "term"], how="left",
            )
            fixed = self.frequentist.fixed_effects().set_index("term")["estimate"]
            table["blup"] = table["blup"] + table["term"].map(fixed).fillna(0.0)
        return table

    def diagnostics(self) -> pd.DataFrame:
        """Convergence checks with thresholds and remedies (see
        :mod:`multilevel.results.diagnostics`), prior sensitivity
        (:mod:`multilevel.results.sensitivity`) and the parameterization used."""
        return self._diagnostics.copy()

    @cached_property
    def _diagnostics(self) -> pd.DataFrame:
        names = [naming.FIXED, naming.SIGMA, naming.PHI]
        for g in self.design.groups:
            names += [naming.sd_name(g.factor), naming.cor_name(g.factor)]
        table = diagnostics_table(self.idata, names)
        why = "; ".join(self.notes) or {
            "marginal": "group effects integrated out analytically and drawn exactly afterwards",
            "linearized": "group effects sampled as offsets from a Gaussian approximation of "
                          "their conditional posterior (an exact change of variables)",
        }.get(self.parameterization, "as requested")
        row = pd.DataFrame([{"check": "parameterization", "value": float("nan"),
                             "threshold": self.parameterization, "ok": True, "remedy": why}])
        return pd.concat([table, sensitivity_check(self), row], ignore_index=True)

    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        *,
        scale: str = "response",
        groups: bool = True,
        new_levels: str = "sample",
        prob: float = DEFAULT_PROB,
        seed: int | np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """Predicted expected values per row: the newdata columns, then mean, sd, median,
        lower, upper, and the frequentist prediction (``reml``, ``laplace``).

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            Rows to predict (the response column is not needed); None predicts the fitted rows.
        scale : {'response', 'link'}
            Probabilities (logistic) or the response mean; or the linear predictor.
        groups : bool
            False gives the population-level prediction (all group effects zero).
        new_levels : {'sample', 'population', 'error'}
            A level not seen in fitting: its effect drawn from N(0, Sigma) at every draw, set
            to zero, or an error naming it (:mod:`multilevel.results.predictions`).
        prob : float
            Probability of the central interval.
        seed : int or numpy.random.Generator, optional
            For the new-level draws.

        Examples
        --------
        >>> import pandas as pd
        >>> from multilevel import datasets, fit_hierarchical
        >>> fit = fit_hierarchical("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"),
        ...                        draws=200, tune=200, chains=2, seed=1, progressbar=False)
        >>> new = pd.DataFrame({"Days": [3.0, 3.0], "Subject": ["308", "a new subject"]})
        >>> t = fit.predict(new, seed=1)
        >>> bool(t.loc[1, "sd"] > 2 * t.loc[0, "sd"])  # a new subject is far less certain
        True
        """
        return prediction_table(self, newdata, scale=scale, groups=groups,
                                new_levels=new_levels, prob=prob, seed=seed)

    def predict_draws(
        self,
        newdata: pd.DataFrame | None = None,
        *,
        scale: str = "response",
        groups: bool = True,
        new_levels: str = "sample",
        seed: int | np.random.Generator | None = None,
    ) -> xr.DataArray:
        """``(chain, draw, obs)`` draws of the expected value per row, for custom summaries
        (arguments as :meth:`predict`)."""
        return predict_draws(self, newdata, scale=scale, groups=groups, new_levels=new_levels,
                             seed=seed)

    def posterior_predict(
        self,
        newdata: pd.DataFrame | None = None,
        *,
        groups: bool = True,
        new_levels: str = "sample",
        seed: int | np.random.Generator | None = None,
    ) -> xr.DataArray:
        """``(chain, draw, obs)`` draws of new observations: residual noise added (Gaussian),
        or Bernoulli / binomial draws with the newdata's trials column."""
        return posterior_predict(self, newdata, groups=groups, new_levels=new_levels,
                                 seed=seed)

    def predictions_idata(
        self,
        newdata: pd.DataFrame | None = None,
        *,
        groups: bool = True,
        new_levels: str = "sample",
        seed: int | np.random.Generator | None = None,
    ):
        """A copy of the InferenceData (DataTree) with ArviZ's ``predictions`` and
        ``predictions_constant_data`` groups for ``newdata``."""
        return predictions_idata(self, newdata, groups=groups, new_levels=new_levels,
                                 seed=seed)

    def compare(
        self, prob: float = DEFAULT_PROB, *, interval: str | None = "profile"
    ) -> pd.DataFrame:
        """Every parameter side by side: posterior mean, median, interval, the frequentist
        estimate and its confidence interval (``interval``: 'profile', 'Wald', 'boot' or None).
        ``outside`` flags a frequentist estimate outside the posterior interval; ``disagree``
        also flags a posterior median outside the frequentist interval (ICC rows have no
        frequentist interval)."""
        if self.frequentist is None:
            raise ValueError("This fit has no frequentist comparison: refit with frequentist=True.")
        m = self.method
        fe = self.fixed_effects(prob, interval=interval).assign(kind="fixed", group="",
                                                                stat="coef")
        vc = self.variance_components(prob, interval=interval).assign(kind="variance")
        ic = self.icc(prob).rename(columns={"type": "stat"}).assign(kind="icc", term="")
        cols = ["kind", "group", "term", "stat", "mean", "median", "lower", "upper", m]
        if interval is not None:
            cols += [f"{m}_lower", f"{m}_upper"]
        table = pd.concat([fe[cols], vc[cols], ic.reindex(columns=cols)], ignore_index=True)
        est = table[m]
        table["outside"] = (est < table["lower"]) | (est > table["upper"])
        if interval is not None:  # the posterior median outside the frequentist interval too
            median = table["median"]
            table["disagree"] = table["outside"] | (median < table[f"{m}_lower"]) | (
                median > table[f"{m}_upper"])
        return table
