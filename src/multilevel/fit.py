"""``fit_hierarchical``: spec -> design -> PyMC model -> NUTS -> :class:`HierarchicalFit`.

The fit is a thin, immutable holder: every table is computed on request from the posterior
draws (and, when fitted alongside, the REML/ML/Laplace fit of the same model).

Examples
--------
>>> from multilevel import datasets, fit_hierarchical
>>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
...                        draws=200, tune=200, chains=2, seed=1, progressbar=False)
>>> fit.variance_components()[["group", "term", "stat"]].head(3).values.tolist()
[['Subject', '(Intercept)', 'sd'], ['Subject', '(Intercept)', 'var'], ['Subject', 'Days', 'sd']]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
import pymc as pm

from multilevel import naming
from multilevel.builders.model import build_model
from multilevel.builders.ncproblem import MAX_TERMS, sample_noncentered
from multilevel.design import Design, build_design, collapse_binomial
from multilevel.persistence import load_fit
from multilevel.priors import ResolvedPriors, resolve_priors
from multilevel.sampling import diagnostics_table, sample_model
from multilevel.sensitivity import sensitivity_check
from multilevel.spec import ModelSpec
from multilevel.spec_io import as_spec, load_data
from multilevel.summaries import (
    DEFAULT_PROB,
    fixed_effects_table,
    icc_table,
    shrinkage_table,
    variance_components_table,
)

__all__ = ["HierarchicalFit", "choose_parameterization", "fit_hierarchical", "load_fit"]

PACKAGES = ("multilevel", "pymc", "pytensor", "arviz", "nutpie", "mixedlm", "numpy", "pandas")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a fit depends on."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except Exception:  # not installed
            out[name] = "not installed"
    return out


def choose_parameterization(design: Design, requested: str) -> tuple[str, str | None]:
    """Resolve ``'auto'``; returns the parameterization and a note explaining a fallback."""
    from multilevel.builders.marginal import marginal_supported

    ok, why = marginal_supported(design)
    if requested == "auto":
        return ("marginal", None) if ok else ("noncentered", why)
    if requested == "marginal" and not ok:
        from multilevel.errors import SpecError

        raise SpecError(f"parameterization='marginal' is not available here: {why}")
    return requested, None


@dataclass(frozen=True)
class HierarchicalFit:
    """Posterior of a multilevel model, with the frequentist fit of the same model beside it."""

    spec: ModelSpec
    design: Design
    model: pm.Model | None
    idata: Any
    resolved_priors: ResolvedPriors
    parameterization: str
    frequentist: Any = None
    notes: tuple[str, ...] = ()

    @property
    def posterior(self):
        """The posterior as an ``xarray.Dataset`` (chain, draw, ...)."""
        return self.idata["posterior"].to_dataset()

    @property
    def method(self) -> str | None:
        """Column name of the frequentist estimate (``reml``, ``ml``, ``laplace``, ``agq``)."""
        return None if self.frequentist is None else self.frequentist.method.lower()

    def priors(self) -> pd.DataFrame:
        """Every prior used: target, prior, source ('default' or the override key)."""
        return self.resolved_priors.table()

    def fixed_effects(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """term, mean, sd, median, lower, upper, r_hat, ess_bulk (+ the frequentist estimate)."""
        table = fixed_effects_table(self.posterior, self.design, prob)
        if self.frequentist is not None:
            freq = self.frequentist.fixed_effects().set_index("term")
            table[self.method] = table["term"].map(freq["estimate"])
            table[f"{self.method}_se"] = table["term"].map(freq["std_error"])
        return table

    def variance_components(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """group, term, stat (sd/var/cor), posterior summary (+ the frequentist estimate)."""
        table = variance_components_table(self.posterior, self.design, prob)
        if self.frequentist is not None:
            freq = self.frequentist.variance_components()
            table = table.merge(
                freq.rename(columns={"estimate": self.method}), on=["group", "term", "stat"],
                how="left",
            )
        return table

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
        table = shrinkage_table(self.posterior, self.design, group, prob)
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
        """Convergence checks with thresholds and remedies (see :mod:`multilevel.sampling`),
        prior sensitivity (:mod:`multilevel.sensitivity`) and the parameterization used."""
        return self._diagnostics.copy()

    @cached_property
    def _diagnostics(self) -> pd.DataFrame:
        names = [naming.FIXED, naming.SIGMA]
        for g in self.design.groups:
            names += [naming.sd_name(g.factor), naming.cor_name(g.factor)]
        table = diagnostics_table(self.idata, names)
        why = "; ".join(self.notes) or (
            "group effects integrated out analytically and drawn exactly afterwards"
            if self.parameterization == "marginal" else "as requested"
        )
        row = pd.DataFrame([{"check": "parameterization", "value": float("nan"),
                             "threshold": self.parameterization, "ok": True, "remedy": why}])
        return pd.concat([table, sensitivity_check(self), row], ignore_index=True)

    def compare(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Every parameter side by side: posterior mean, median, interval and the frequentist
        estimate, with ``outside`` flagging an estimate outside the posterior interval."""
        if self.frequentist is None:
            raise ValueError("This fit has no frequentist comparison: refit with frequentist=True.")
        fe = self.fixed_effects(prob).assign(kind="fixed", group="", stat="coef")
        vc = self.variance_components(prob).assign(kind="variance")
        ic = self.icc(prob).rename(columns={"type": "stat"}).assign(kind="icc", term="")
        cols = ["kind", "group", "term", "stat", "mean", "median", "lower", "upper", self.method]
        table = pd.concat([fe[cols], vc[cols], ic[cols]], ignore_index=True)
        est = table[self.method]
        table["outside"] = (est < table["lower"]) | (est > table["upper"])
        return table

    def icc_methods(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """ANOVA, frequentist and posterior ICC side by side (:mod:`multilevel.course`)."""
        from multilevel.course import icc_methods

        return icc_methods(self, prob)

    def design_effect(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Design effect ``1 + (n - 1) rho`` and effective N, with posterior intervals."""
        from multilevel.course import design_effect_table

        return design_effect_table(self, prob)

    def contextual_effects(self, x: str | None = None, *, prob: float = DEFAULT_PROB,
                           **kwargs: Any) -> pd.DataFrame:
        """Within, between and contextual (between - within) effects of ``x``."""
        from multilevel.course import contextual_effects

        return contextual_effects(self, x, prob=prob, **kwargs)

    def fixed_effect_levels(self, group: str | None = None, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Fixed effects labelled level-1, level-2 or cross-level interaction."""
        from multilevel.course import fixed_effect_levels

        return fixed_effect_levels(self, group, prob)

    def group_effect_errors(self, group: str | None = None) -> pd.DataFrame:
        """Comparative (posterior sd / conditional sd) and diagnostic standard errors."""
        from multilevel.course import group_effect_errors

        return group_effect_errors(self, group)

    def r2(self, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Nakagawa's marginal and conditional R^2, posterior and frequentist."""
        from multilevel.course import r2_nakagawa

        return r2_nakagawa(self, prob)

    def r2_levels(self, null_fit: HierarchicalFit, n: float | None = None,
                  prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Snijders-Bosker R1^2 and R2^2 against the empty model ``null_fit``."""
        from multilevel.course import r2_snijders_bosker

        return r2_snijders_bosker(self, null_fit, n, prob)

    def variance_reduction(self, null_fit: HierarchicalFit, prob: float = DEFAULT_PROB) -> pd.DataFrame:
        """Proportional reduction of each variance component from ``null_fit`` to this fit."""
        from multilevel.course import variance_reduction

        return variance_reduction(null_fit, self, prob)

    def loo(self, **kwargs: Any):
        """PSIS-LOO (ArviZ) from the pointwise log-likelihood."""
        from multilevel.course import psis_loo

        return psis_loo(self, **kwargs)

    def plot_trace(self, **kwargs: Any):
        """Trace and rank plots of the hyperparameters (:func:`multilevel.plots.plot_trace`)."""
        from multilevel.plots import plot_trace

        return plot_trace(self, **kwargs)

    def plot_caterpillar(self, **kwargs: Any):
        """Group effects with the frequentist conditional modes beside them."""
        from multilevel.plots import plot_caterpillar

        return plot_caterpillar(self, **kwargs)

    def plot_shrinkage(self, **kwargs: Any):
        """Arrows from no pooling to partial pooling (:func:`multilevel.plots.plot_shrinkage`)."""
        from multilevel.plots import plot_shrinkage

        return plot_shrinkage(self, **kwargs)

    def plot_variance(self, **kwargs: Any):
        """Posterior densities of sds, correlations and ICCs with the frequentist values."""
        from multilevel.plots import plot_variance

        return plot_variance(self, **kwargs)

    def plot_ppc(self, **kwargs: Any):
        """Posterior predictive check (:func:`multilevel.plots.plot_ppc`)."""
        from multilevel.plots import plot_ppc

        return plot_ppc(self, **kwargs)

    def plot_pair(self, **kwargs: Any):
        """Pair plot of the group-level sds and correlations."""
        from multilevel.plots import plot_pair

        return plot_pair(self, **kwargs)

    def summary(self, prob: float = DEFAULT_PROB) -> str:
        """All tables as one readable text report."""
        from multilevel.report import text_summary

        return text_summary(self, prob)

    def save(self, path: str | Path) -> Path:
        """Write the fit to one file that :func:`multilevel.fit.load_fit` reads back
        (format: :mod:`multilevel.persistence`)."""
        from multilevel.persistence import save_fit

        return save_fit(self, path)

    def _repr_html_(self) -> str:
        from multilevel.report import html_summary

        return html_summary(self)

    def __repr__(self) -> str:
        d = self.design
        return (
            f"<HierarchicalFit {self.spec.to_formula()!r} family={self.spec.family} "
            f"n={d.n_obs} groups={{{', '.join(f'{g.factor}: {g.n_levels}' for g in d.groups)}}} "
            f"parameterization={self.parameterization}>"
        )


def _settings(spec: ModelSpec, **overrides: Any) -> ModelSpec:
    changes = {k: v for k, v in overrides.items() if v is not None}
    return spec.with_sampler(**changes) if changes else spec


def fit_hierarchical(
    spec: ModelSpec | str | Path,
    df: pd.DataFrame | None = None,
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
) -> HierarchicalFit:
    """Fit a multilevel model by NUTS, with the REML/ML/Laplace fit beside it.

    Parameters
    ----------
    spec : ModelSpec, str or Path
        A spec, an lme4 formula, or a path to a TOML spec.
    df : pandas.DataFrame, optional
        The data (never modified); defaults to the data the spec names.
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

    Returns
    -------
    HierarchicalFit
    """
    spec = _settings(
        as_spec(spec, family), draws=draws, tune=tune, chains=chains, seed=seed,
        sampler=sampler, target_accept=target_accept, parameterization=parameterization,
    )
    data = df if df is not None else load_data(spec)
    if isinstance(frequentist, str):  # an unknown method fails now, not after sampling
        from multilevel.frequentist import check_method

        check_method(spec, frequentist)
    design = build_design(spec, data, missing=missing)
    priors = resolve_priors(design)
    param, note = choose_parameterization(design, spec.sampler.parameterization)
    notes = (note,) if note else ()
    model = build_model(collapse_binomial(design), parameterization=param, priors=priors)
    if param == "marginal":
        from multilevel.builders.fastmarginal import sample_marginal
        from multilevel.builders.marginal import recover_group_effects

        if spec.sampler.sampler == "nutpie":
            idata = sample_marginal(design, priors, spec.sampler, progressbar=progressbar)
        else:
            idata = sample_model(model, spec.sampler, progressbar=progressbar)
        idata = recover_group_effects(idata, design, seed=spec.sampler.seed)
    elif param == "noncentered" and spec.sampler.sampler == "nutpie" and all(
        g.n_terms <= MAX_TERMS for g in design.groups
    ):
        idata = sample_noncentered(design, priors, spec.sampler, progressbar=progressbar)
    else:
        idata = sample_model(model, spec.sampler, progressbar=progressbar)
    idata.attrs["multilevel_spec"] = spec.to_toml()
    idata.attrs["multilevel_versions"] = str(package_versions())
    freq = None
    if frequentist:
        from multilevel.frequentist import fit_frequentist

        method = frequentist if isinstance(frequentist, str) else None
        freq = fit_frequentist(spec, data, method=method, missing=missing)
    fit = HierarchicalFit(spec, design, model, idata, priors, param, freq, notes)
    checks = fit.diagnostics()
    prior = checks["check"] == "prior_sensitivity"
    bad = checks[~prior].query("not ok")
    if not checks[prior].query("not ok").empty:
        warnings.warn("Prior sensitivity: " + checks[prior]["remedy"].item(), UserWarning, stacklevel=2)
    if not bad.empty:
        warnings.warn(
            "Sampler checks failed: " + "; ".join(
                f"{r.check}={r.value:.4g} ({r.remedy})" for r in bad.itertuples()
            ),
            UserWarning,
            stacklevel=2,
        )
    return fit
