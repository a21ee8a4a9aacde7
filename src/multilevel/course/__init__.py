"""The multilevel course's statistics, each one call, posterior and frequentist side by side.

Users learning from Snijders and Bosker (2012, *Multilevel Analysis*) compute these by hand;
here each is a function with its formula in the docstring:

============================  ==========================================================
data alone                    :func:`center`, :func:`add_contextual_columns`,
                              :func:`within_between`, :func:`icc_anova`,
                              :func:`design_effect`, :func:`effective_n`,
                              :func:`ar1_effective_n`,
                              :func:`check_level1_variance`
a fit                         :func:`icc_methods`, :func:`design_effect_table`,
                              :func:`contextual_effects`, :func:`fixed_effect_levels`,
                              :func:`serial_effective_n`,
                              :func:`group_effect_errors`, :func:`r2_nakagawa`
two or more fits              :func:`r2_snijders_bosker`, :func:`variance_reduction`,
                              :func:`compare_models`
============================  ==========================================================

The builders take ``contextual=["x"]`` (group mean ``x_between`` and deviation ``x_within``
as predictors) and ``cross_level={"x": ["z"]}`` (the interaction ``x:z``).

Examples
--------
>>> from multilevel import course, datasets
>>> df = datasets.load("course_example")
>>> float(course.design_effect(0.1, 11)), course.icc_anova(df, "y", "group")["n_tilde"].item()
(2.0, 2.0)
"""

from multilevel.course.compare import compare_models, ml_fit, psis_loo
from multilevel.course.data import (
    add_contextual_columns,
    ar1_effective_n,
    between_name,
    center,
    check_level1_variance,
    contextual_variables,
    design_effect,
    effective_n,
    icc_anova,
    within_between,
    within_name,
)
from multilevel.course.fit import (
    contextual_effects,
    design_effect_table,
    fixed_effect_levels,
    group_effect_errors,
    icc_methods,
    serial_effective_n,
)
from multilevel.course.r2 import r2_nakagawa, r2_snijders_bosker, variance_reduction

__all__ = [
    "add_contextual_columns",
    "ar1_effective_n",
    "between_name",
    "center",
    "check_level1_variance",
    "compare_models",
    "contextual_effects",
    "contextual_variables",
    "design_effect",
    "design_effect_table",
    "effective_n",
    "fixed_effect_levels",
    "group_effect_errors",
    "icc_anova",
    "icc_methods",
    "ml_fit",
    "psis_loo",
    "r2_nakagawa",
    "r2_snijders_bosker",
    "serial_effective_n",
    "variance_reduction",
    "within_between",
    "within_name",
]
