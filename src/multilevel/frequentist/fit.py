"""The frequentist stage: the REML/ML/Laplace/AGQ fit of a design, or of a spec and its data.

:func:`fit_design` takes the :class:`~multilevel.design.Design` the Bayesian fit already built
(the design is built once per :func:`multilevel.fit_hierarchical` call);
:func:`fit_frequentist` is the (spec, data) entry point. Models with known standard errors get
the REML random-effects meta-analysis (:mod:`multilevel.frequentist.meta`); Gaussian models
with one grouping factor or two nested ones are fitted from their sufficient statistics
(:mod:`multilevel.frequentist.profiled`) when the design has no rows (data larger than memory)
or at least :data:`~multilevel.frequentist.profiled.STATS_FIT_ROWS` rows; every other model
gets mixedlm's lme4-equal fit (:mod:`multilevel.frequentist.mixed`).

Examples
--------
>>> from multilevel import datasets
>>> fit = fit_frequentist(
...     "cbind(incidence, size - incidence) ~ period + (1 | herd)", datasets.load("cbpp")
... )
>>> fit.method, round(float(fit.beta["period2"]), 3)
('Laplace', -0.992)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from multilevel.design import Design, build_design
from multilevel.engine.choice import marginal_supported
from multilevel.frequentist.meta import MetaAnalysisFit, check_meta_spec, fit_meta
from multilevel.frequentist.mixed import check_method, fit_mixed
from multilevel.frequentist.profiled import STATS_FIT_ROWS, fit_from_stats
from multilevel.frequentist.result import FrequentistFit
from multilevel.frequentist.serial import fit_serial
from multilevel.spec.io import as_spec
from multilevel.spec.model import ModelSpec

__all__ = ["check_frequentist", "fit_design", "fit_frequentist"]


def check_frequentist(spec: ModelSpec, method: str | None = None, n_agq: int = 1) -> None:
    """Everything about the frequentist fit of ``spec`` that can be checked before any data:
    the method for the family (:func:`~multilevel.frequentist.mixed.check_method`) and, with
    known standard errors, the structure the meta-analysis supports."""
    check_method(spec, method, n_agq)
    if spec.se is not None:
        check_meta_spec(spec)


def fit_design(design: Design, method: str | None = None, n_agq: int = 1) -> FrequentistFit | MetaAnalysisFit:
    """The frequentist fit of an already built design (see :func:`fit_frequentist`)."""
    if design.spec.se is not None:  # known standard errors: REML random-effects meta-analysis
        check_frequentist(design.spec, method)
        return fit_meta(design)
    if design.serial is not None:  # AR(1)/CAR(1) residuals: nlme's criterion, not mixedlm
        check_frequentist(design.spec, method, n_agq)
        return fit_serial(design, method, n_agq)
    if design.summary is not None or (
        design.n_obs >= STATS_FIT_ROWS and marginal_supported(design)[0]
    ):  # from sufficient statistics: data larger than memory, or many rows
        check_frequentist(design.spec, method, n_agq)
        return fit_from_stats(design, method, n_agq)
    return fit_mixed(design, method, n_agq)


def fit_frequentist(
    spec: ModelSpec | str | Path,
    df: pd.DataFrame,
    *,
    method: str | None = None,
    n_agq: int = 1,
    missing: str = "error",
    family: str | None = None,
) -> FrequentistFit | MetaAnalysisFit:
    """Fit the model by REML/ML (Gaussian) or Laplace/AGQ (logistic) as lme4 would.

    Parameters
    ----------
    spec : ModelSpec, str or pathlib.Path
        The model, an lme4 formula (then ``family`` applies) or a TOML spec file.
    df : pandas.DataFrame, dask.dataframe.DataFrame, str or Path
        The data; never modified. A Dask DataFrame or Parquet path is reduced to statistics
        without collecting its rows (:func:`~multilevel.design.build_design`).
    method : {'REML', 'ML', 'Laplace', 'AGQ'}, optional
        Defaults to 'REML' for Gaussian models, 'Laplace' for logistic ones, 'AGQ' when
        ``n_agq > 1``.
    n_agq : int
        Adaptive Gauss-Hermite points for 'AGQ' (> 1; one scalar group term only, as lme4).
    missing : {'error', 'drop'}
        Rows with NaN/inf in used columns: see :func:`~multilevel.design.build_design`.
    family : str, optional
        Family for a formula string ('gaussian', 'bernoulli', 'binomial'); with a spec it
        must agree with the spec's family.

    Returns
    -------
    FrequentistFit
        or, for known standard errors, a :class:`~multilevel.frequentist.meta.MetaAnalysisFit`
        with the same interface.

    Raises
    ------
    SpecError
        On a method that does not suit the family or the random-effects structure.
    DataError
        On data that do not fit the model (see :func:`~multilevel.design.build_design`).
    """
    spec = as_spec(spec, family)
    check_frequentist(spec, method, n_agq)  # before the design: a wrong method fails fast
    return fit_design(build_design(spec, df, missing=missing), method, n_agq)
