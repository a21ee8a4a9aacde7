"""Posterior summaries: numpy cores with thin DataFrame wrappers."""
from multilevel.summaries.core import DEFAULT_PROB, describe, summarize
from multilevel.summaries.shrinkage import shrinkage_table
from multilevel.summaries.tables import (
    fixed_effects_table,
    icc_table,
    variance_components_table,
)

__all__ = [
    "DEFAULT_PROB",
    "describe",
    "fixed_effects_table",
    "icc_table",
    "shrinkage_table",
    "summarize",
    "variance_components_table",
]
