"""multilevel: Bayesian hierarchical models with an lme4-equal frequentist comparison.

Examples
--------
>>> import multilevel as ml
>>> spec = ml.varying_intercept("log_radon", "county", predictors=["floor"])
>>> spec.to_formula()
'log_radon ~ 1 + floor + (1 | county)'
"""

# compiled_cache first: it stamps numba's disk cache before any compiled function is defined
from multilevel import (
    compiled_cache,  # noqa: F401
    course,
    datasets,
    plots,
)
from multilevel.course import compare_models
from multilevel.errors import DataError, SpecError
from multilevel.fit import HierarchicalFit, fit_hierarchical, load_fit
from multilevel.frequentist import FrequentistFit, fit_frequentist
from multilevel.prior_predictive import prior_predictive, prior_summary
from multilevel.spec import (
    GroupTerm,
    ModelSpec,
    Prior,
    ResidualCorrelation,
    SamplerSettings,
    load_spec,
    meta_analysis,
    multilevel_logistic,
    varying_intercept,
    varying_slope,
)

__all__ = [
    "DataError",
    "FrequentistFit",
    "GroupTerm",
    "ResidualCorrelation",
    "HierarchicalFit",
    "ModelSpec",
    "Prior",
    "SamplerSettings",
    "SpecError",
    "compare_models",
    "course",
    "datasets",
    "fit_frequentist",
    "fit_hierarchical",
    "load_fit",
    "load_spec",
    "meta_analysis",
    "plots",
    "prior_predictive",
    "prior_summary",
    "multilevel_logistic",
    "varying_intercept",
    "varying_slope",
]
__version__ = "0.1.0"
