"""Results: the plain fit record, posterior and frequentist tables, diagnostics,
log-likelihood, prior sensitivity and persistence.

Examples
--------
>>> from multilevel.results import DEFAULT_PROB
>>> DEFAULT_PROB
0.95
"""

from multilevel.results.core import DEFAULT_PROB, describe, summarize
from multilevel.results.record import FitRecord
from multilevel.results.result import FitResult
from multilevel.results.shrinkage import shrinkage_table
from multilevel.results.tables import fixed_effects_table, icc_table, variance_components_table

__all__ = [
    "DEFAULT_PROB",
    "FitRecord",
    "FitResult",
    "describe",
    "fixed_effects_table",
    "icc_table",
    "shrinkage_table",
    "summarize",
    "variance_components_table",
]
