"""What to fit, independent of PyMC and of any data: :class:`ModelSpec` and its parts.

The stage of the data path before any data is seen: a spec is made from an lme4 formula
(:mod:`multilevel.spec.formula`), a named builder (:mod:`multilevel.spec.named`) or a TOML file
(:mod:`multilevel.spec.io`); every piece of user text passes :mod:`multilevel.spec.safety`.

Examples
--------
>>> from multilevel.spec import ModelSpec
>>> ModelSpec.from_formula("y ~ x + (1 | g)").groups[0].factor
'g'
"""

from multilevel.spec.io import as_spec, load_spec, spec_from_toml
from multilevel.spec.model import ModelSpec
from multilevel.spec.named import meta_analysis, multilevel_logistic, varying_intercept, varying_slope
from multilevel.spec.safety import check_column_name
from multilevel.spec.terms import (
    DISTRIBUTIONS,
    FAMILIES,
    PARAMETERIZATIONS,
    SAMPLERS,
    GroupTerm,
    Prior,
    ResidualCorrelation,
    SamplerSettings,
    check_term,
)

__all__ = [
    "DISTRIBUTIONS",
    "FAMILIES",
    "PARAMETERIZATIONS",
    "SAMPLERS",
    "GroupTerm",
    "ResidualCorrelation",
    "ModelSpec",
    "Prior",
    "SamplerSettings",
    "as_spec",
    "check_column_name",
    "check_term",
    "load_spec",
    "meta_analysis",
    "multilevel_logistic",
    "spec_from_toml",
    "varying_intercept",
    "varying_slope",
]
