"""``fit_hierarchical``: the data path as a few named stage calls, and the fit's facade.

As lme4's ``lmer()`` is ``lFormula -> mkLmerDevfun -> optimizeLmer -> mkMerMod``,
:func:`fit_hierarchical` is

1. spec (:func:`multilevel.spec.as_spec`) and data (:func:`multilevel.design.load_data`);
2. design, built once (:func:`multilevel.design.build_design`), and its priors
   (:func:`multilevel.model.resolve_priors`);
3. parameterization (:func:`multilevel.engine.choose_parameterization`) and, for a marginal
   fit, the sufficient statistics, computed once
   (:func:`multilevel.design.statistics.marginal_statistics`);
4. posterior (:func:`multilevel.engine.sample_posterior`);
5. the frequentist fit of the same design (:func:`multilevel.frequentist.fit_design`);
6. the record (:class:`multilevel.results.FitRecord`), wrapped in :class:`HierarchicalFit`,
   whose diagnostics are checked once.

:class:`HierarchicalFit` is the record plus the course statistics, plots, reports and saving,
each a one-line call into its own package. It is immutable: every table is computed on request
from the posterior draws (and the frequentist fit beside them).

Examples
--------
>>> from multilevel import datasets, fit_hierarchical
>>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
...                        draws=200, tune=200, chains=2, seed=1, progressbar=False)
>>> fit.variance_components()[["group", "term", "stat"]].head(3).values.tolist()
[['Subject', '(Intercept)', 'sd'], ['Subject', '(Intercept)', 'var'], ['Subject', 'Days', 'sd']]
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from multilevel import course, plots, report
from multilevel.design import build_design, load_data
from multilevel.design.statistics import marginal_statistics
from multilevel.engine import choose_parameterization, sample_posterior
from multilevel.errors import SpecError
from multilevel.frequentist import check_frequentist, fit_design
from multilevel.model import resolve_priors
from multilevel.results import DEFAULT_PROB, FitResult
from multilevel.results.persistence import read_fit, save_fit
from multilevel.spec.io import as_spec
from multilevel.spec.model import ModelSpec
from multilevel.versions import package_versions

__all__ = ["HierarchicalFit", "fit_hierarchical", "load_fit"]


@dataclass(frozen=True, repr=False)
class HierarchicalFit(FitResult):
    """Posterior of a multilevel model, with the frequentist fit of the same model beside it:
    the tables of :class:`~multilevel.results.FitResult`, and the course statistics, plots,
    reports and saving."""

    def icc_methods(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """ANOVA, frequentist and posterior ICC side by side (:mod:`multilevel.course`)."""
        return course.icc_methods(self, prob)

    def design_effect(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Design effect ``1 + (n - 1) rho`` and effective N, with posterior intervals."""
        return course.design_effect_table(self, prob)

    def effective_n(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Effective sample size ``n (1 - phi) / (1 + phi)`` per series and in total, for
        AR(1)/CAR(1) models (:func:`multilevel.course.serial_effective_n`)."""
        return course.serial_effective_n(self, prob)

    def contextual_effects(self, x: str | None = None, *, prob: float = DEFAULT_PROB,
                           **kwargs: Any) -> pd.DataFrame:
        """Within, between and contextual (between - within) effects of ``x``."""
        return course.contextual_effects(self, x, prob=prob, **kwargs)

    def fixed_effect_levels(self, group: str | None = None, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Fixed effects labelled level-1, level-2 or cross-level interaction."""
        return course.fixed_effect_levels(self, group, prob)

    def group_effect_errors(self, group: str | None = None) -> pd.DataFrame:
        """Comparative (posterior sd / conditional sd) and diagnostic standard errors."""
        return course.group_effect_errors(self, group)

    def r2(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Nakagawa's marginal and conditional R^2, posterior and frequentist."""
        return course.r2_nakagawa(self, prob)

    def r2_levels(self, null_fit: HierarchicalFit, n: float | None = None,
                  prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Snijders-Bosker R1^2 and R2^2 against the empty model ``null_fit``."""
        return course.r2_snijders_bosker(self, null_fit, n, prob)

    def variance_reduction(self, null_fit: HierarchicalFit, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Proportional reduction of each variance component from ``null_fit`` to this fit."""
        return course.variance_reduction(null_fit, self, prob)

    def loo(self, **kwargs: Any):
        """PSIS-LOO (ArviZ) from the pointwise log-likelihood."""
        return course.psis_loo(self, **kwargs)

    def plot_trace(self, **kwargs: Any):
        """Trace and rank plots of the hyperparameters (:func:`multilevel.plots.plot_trace`)."""
        return plots.plot_trace(self, **kwargs)

    def plot_caterpillar(self, **kwargs: Any):
        """Group effects with the frequentist conditional modes beside them."""
        return plots.plot_caterpillar(self, **kwargs)

    def plot_shrinkage(self, **kwargs: Any):
        """Arrows from no pooling to partial pooling (:func:`multilevel.plots.plot_shrinkage`)."""
        return plots.plot_shrinkage(self, **kwargs)

    def plot_variance(self, **kwargs: Any):
        """Posterior densities of sds, correlations and ICCs with the frequentist values."""
        return plots.plot_variance(self, **kwargs)

    def plot_ppc(self, **kwargs: Any):
        """Posterior predictive check (:func:`multilevel.plots.plot_ppc`)."""
        return plots.plot_ppc(self, **kwargs)

    def plot_predictions(self, x: str, **kwargs: Any):
        """Conditional effects of ``x`` (:func:`multilevel.plots.plot_predictions`)."""
        return plots.plot_predictions(self, x, **kwargs)

    def plot_pair(self, **kwargs: Any):
        """Pair plot of the group-level sds and correlations."""
        return plots.plot_pair(self, **kwargs)

    def summary(self, prob: float = DEFAULT_PROB) -> str:
        """All tables as one readable text report."""
        return report.text_summary(self, prob)

    def save(self, path: str | Path) -> Path:
        """Write the fit to one file that :func:`multilevel.load_fit` reads back
        (format: :mod:`multilevel.results.persistence`)."""
        return save_fit(self, path)

    def _repr_html_(self) -> str:
        return report.html_summary(self)


def load_fit(path: str | os.PathLike) -> HierarchicalFit:
    """Read a fit written by :meth:`HierarchicalFit.save`
    (:func:`multilevel.results.persistence.read_fit`)."""
    record = read_fit(path)
    return HierarchicalFit(**{f.name: getattr(record, f.name) for f in dataclasses.fields(record)})


def _settings(spec: ModelSpec, **overrides: Any) -> ModelSpec:
    changes = {k: v for k, v in overrides.items() if v is not None}
    return spec.with_sampler(**changes) if changes else spec


def fit_hierarchical(
    spec: ModelSpec | str | Path,
    df: pd.DataFrame | Any | None = None,
    *,
    family: str | None = None,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    seed: int | None = None,
    sampler: str | None = None,
    target_accept: float | None = None,
    parameterization: str | None = None,
    frequentist: bool | str = True,
    missing: str = "error",
    progressbar: bool = True,
    group_draws: str = "auto",
) -> HierarchicalFit:
    """Fit a multilevel model by NUTS, with the REML/ML/Laplace fit beside it.

    Parameters
    ----------
    spec : ModelSpec, str or Path
        A spec, an lme4 formula, or a path to a TOML spec.
    df : pandas.DataFrame, dask.dataframe.DataFrame, str or Path, optional
        The data (never modified); defaults to the data the spec names. A Dask DataFrame or a
        Parquet file, directory or glob is reduced to sufficient statistics without collecting
        its rows (Gaussian models with one grouping factor or two nested ones; logistic models
        are collapsed to binomial counts): see :mod:`multilevel.design.partitioned`.
    family : str, optional
        For a formula string: ``'gaussian'``, ``'bernoulli'`` or ``'binomial'``.
    draws, tune, chains, seed, sampler, target_accept, parameterization
        Sampler settings; ``None`` keeps the spec's (:class:`SamplerSettings`).
    frequentist : bool or str
        Fit the frequentist model too (default method: REML for Gaussian, Laplace for
        logistic); a string names the method (``'ML'``, ``'REML'``, ``'Laplace'``).
    missing : {'error', 'drop'}
        Rows with NaN/inf in used columns: raise, or drop them with a warning.
    progressbar : bool
        Show the sampler's progress bar.
    group_draws : {'auto', 'full', 'summary'}
        For fits with the group effects integrated out: keep every draw of every group effect
        (``'full'``), or only per-level summaries computed chunk by chunk (``'summary'``: mean,
        sd and quantiles; for 10^4-10^6 groups); ``'auto'`` keeps the draws up to 500 MB.
        ``fit.notes`` says which. Tables work either way; what needs every draw (PSIS-LOO, the
        PPC) asks for ``'full'``.

    Returns
    -------
    HierarchicalFit
    """
    spec = _settings(
        as_spec(spec, family), draws=draws, tune=tune, chains=chains, seed=seed,
        sampler=sampler, target_accept=target_accept, parameterization=parameterization,
    )
    data = df if df is not None else load_data(spec)
    method = frequentist if isinstance(frequentist, str) else None
    if frequentist or method is not None:  # an unknown method fails now, not after sampling
        check_frequentist(spec, method)
    design = build_design(spec, data, missing=missing)
    if design.row_weights is not None:  # a logistic model on Dask, fitted as binomial counts
        spec = design.spec
    if group_draws == "summary" and design.serial is not None:
        raise SpecError("group_draws='summary' is not available with ar1()/car1() residuals: "
                        "use 'full' (or 'auto').")
    priors = resolve_priors(design)
    param, note = choose_parameterization(design, spec.sampler.parameterization,
                                          spec.sampler.sampler)
    stats = marginal_statistics(design) if param == "marginal" else None
    if group_draws not in ("auto", "full", "summary"):
        raise SpecError(f"group_draws={group_draws!r} is not an option: use 'auto', 'full' or "
                        "'summary'.")
    if group_draws == "summary" and param != "marginal":
        raise SpecError(f"group_draws='summary' applies to fits with the group effects integrated "
                        f"out; this one is sampled {param!r}, so its effects are parameters.")
    sampled = sample_posterior(design, priors, spec.sampler, param, stats=stats,
                               progressbar=progressbar, group_draws=group_draws)
    sampled.idata.attrs["multilevel_spec"] = spec.to_toml()
    sampled.idata.attrs["multilevel_versions"] = str(package_versions())
    freq = fit_design(design, method) if frequentist else None
    notes = design.notes + ((note,) if note else ()) + sampled.notes
    fit = HierarchicalFit(spec, design, sampled.model_factory, sampled.idata, priors, param, freq, notes,
                          stats)
    _warn_on_checks(fit)
    return fit


def _warn_on_checks(fit: HierarchicalFit) -> None:
    """Warn once about failed sampler checks and an influential prior."""
    checks = fit.diagnostics()
    prior = checks["check"] == "prior_sensitivity"
    bad = checks[~prior].query("not ok")
    if not checks[prior].query("not ok").empty:
        warnings.warn("Prior sensitivity: " + checks[prior]["remedy"].item(), UserWarning, stacklevel=3)
    if not bad.empty:
        warnings.warn(
            "Sampler checks failed: " + "; ".join(
                f"{r.check}={r.value:.4g} ({r.remedy})" for r in bad.itertuples()
            ),
            UserWarning,
            stacklevel=3,
        )
