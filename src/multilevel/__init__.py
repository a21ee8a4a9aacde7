"""multilevel: Bayesian hierarchical models with an lme4-equal frequentist comparison."""
from multilevel.errors import DataError, SpecError
from multilevel.spec import GroupTerm, ModelSpec, Prior, SamplerSettings

__all__ = ["DataError", "GroupTerm", "ModelSpec", "Prior", "SamplerSettings", "SpecError"]
__version__ = "0.1.0"
