"""Priors and the readable PyMC definitions of every model (non-centered, centered, marginal).

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> from multilevel.model import build_model
>>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                  datasets.load("sleepstudy"))
>>> "marginal_loglik" in build_model(d, parameterization="marginal").named_vars
True
"""

from multilevel.model.build import build_model, check_parameterization
from multilevel.model.priors import ResolvedPriors, resolve_priors, valid_targets

__all__ = ["ResolvedPriors", "build_model", "check_parameterization", "resolve_priors",
           "valid_targets"]
