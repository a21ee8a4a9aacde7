"""Model builders: the general PyMC builder and the named builders that fill in a spec."""
from multilevel.builders.model import build_model
from multilevel.builders.named import multilevel_logistic, varying_intercept, varying_slope

__all__ = ["build_model", "multilevel_logistic", "varying_intercept", "varying_slope"]
