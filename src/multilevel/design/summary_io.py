"""Saving and loading a design without rows (data larger than memory).

:func:`summary_arrays` gives the arrays and facts :mod:`multilevel.results.persistence` stores
for a design built by :func:`~multilevel.design.partitioned.build_partitioned_design`;
:func:`design_from_summary` rebuilds it.

Examples
--------
>>> import numpy as np, pandas as pd, dask.dataframe as dd
>>> from multilevel import ModelSpec
>>> from multilevel.design import build_design
>>> df = pd.DataFrame({"y": np.arange(12.0) % 5, "g": list("aaabbbcccddd")})
>>> spec = ModelSpec.from_formula("y ~ 1 + (1 | g)")
>>> d = build_design(spec, dd.from_pandas(df, npartitions=2))
>>> again = design_from_summary(spec, d.encoding, *summary_arrays(d))
>>> again.groups[0].levels, again.n_obs, bool(np.array_equal(again.summary.stats.ztz, d.summary.stats.ztz))
(('a', 'b', 'c', 'd'), 12, True)
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd

from multilevel.design.matrices import model_matrix
from multilevel.design.statistics import NestedStats, SufficientStats
from multilevel.design.types import Design, GroupDesign, RowSummary
from multilevel.spec.model import ModelSpec

__all__ = ["design_from_summary", "summary_arrays"]


def summary_arrays(design: Design) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the plain (JSON-able) facts a design without rows is rebuilt from by
    :func:`design_from_summary` (used by :mod:`multilevel.results.persistence`)."""
    s = design.summary
    arrays = {f"stats_{f.name}": np.asarray(getattr(s.stats, f.name)) for f in fields(s.stats)}
    arrays["x_sum"] = s.x_sum
    for k, g in enumerate(design.groups):
        arrays |= {f"counts_{k}": g.level_counts, f"z_sum_{k}": g.z_sum,
                   f"z_cross_{k}": g.z_cross, f"y_sums_{k}": g.y_sums}
    info = {"kind": type(s.stats).__name__, "n_rows": s.n_rows, "y_sum": s.y_sum,
            "nest": s.nest, "source": s.source, "n_partitions": s.n_partitions,
            "levels": [list(g.levels) for g in design.groups]}
    return arrays, info


def design_from_summary(spec: ModelSpec, encoding: pd.DataFrame, arrays: dict[str, np.ndarray],
                        info: dict[str, Any], dropped: int = 0) -> Design:
    """The design :func:`summary_arrays` describes, with ``encoding`` its
    :attr:`~multilevel.design.Design.encoding` frame."""
    cls = SufficientStats if info["kind"] == "SufficientStats" else NestedStats
    stats = cls(**{f.name: (float(arrays[f"stats_{f.name}"]) if arrays[f"stats_{f.name}"].ndim == 0
                            else arrays[f"stats_{f.name}"]) for f in fields(cls)})
    rhs = " + ".join(["1" if spec.intercept else "0", *spec.fixed])
    _, names, _ = model_matrix(rhs, encoding, "fixed-effect matrix")
    groups = []
    for k, (term, levels) in enumerate(zip(spec.groups, info["levels"], strict=True)):
        z_rhs = " + ".join(["1" if term.intercept else "0", *term.slopes])
        _, zn, _ = model_matrix(z_rhs, encoding, f"varying terms of {term.factor!r}")
        groups.append(GroupDesign(
            term.factor, np.empty(0, np.int64), tuple(levels), np.empty((0, len(zn))), zn,
            term.correlated, term.intercept, level_counts=arrays[f"counts_{k}"],
            z_sum=arrays[f"z_sum_{k}"], z_cross=arrays[f"z_cross_{k}"], y_sums=arrays[f"y_sums_{k}"]))
    nest = None if info["nest"] is None else tuple(info["nest"])
    summary = RowSummary(int(info["n_rows"]), stats, arrays["x_sum"], float(info["y_sum"]), nest,
                         info["source"], int(info["n_partitions"]))
    return Design(spec, np.empty(0), np.empty((0, len(names))), names, tuple(groups),
                  encoding.iloc[:0], None, dropped, None, None, summary, encoding=encoding)
