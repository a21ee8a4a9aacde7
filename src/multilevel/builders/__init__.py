"""Model builders: the general PyMC builder and the named builders that fill in a spec."""
from multilevel.builders.model import build_model
from multilevel.builders.named import (
    meta_analysis,
    multilevel_logistic,
    varying_intercept,
    varying_slope,
)

__all__ = ["build_model", "meta_analysis", "multilevel_logistic", "varying_intercept", "varying_slope"]
