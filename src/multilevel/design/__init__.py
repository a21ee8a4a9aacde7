"""DataFrame -> :class:`Design`: the arrays every later stage uses, checked and built once.

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                  datasets.load("sleepstudy"))
>>> d.n_obs, d.fixed_names
(180, ('(Intercept)', 'Days'))
"""

from multilevel.design.build import EXACT_FIT_CHECK_ROWS, build_design, collapse_binomial
from multilevel.design.checks import used_columns
from multilevel.design.frame import load_data
from multilevel.design.matrices import FORMULA_ENV, lme4_name
from multilevel.design.types import Design, GroupDesign

__all__ = [
    "EXACT_FIT_CHECK_ROWS",
    "FORMULA_ENV",
    "Design",
    "GroupDesign",
    "build_design",
    "collapse_binomial",
    "lme4_name",
    "load_data",
    "used_columns",
]
