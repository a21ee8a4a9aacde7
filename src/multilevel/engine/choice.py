"""Which parameterization a design is sampled in, and why.

Gaussian models with one grouping factor or two nested ones integrate the group effects out
(``marginal``); everything else is sampled ``noncentered`` (``centered`` on request). The
compiled non-centered kernel handles up to :data:`MAX_TERMS` varying terms per factor; beyond
that PyMC's own graph is used.

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                  datasets.load("sleepstudy"))
>>> choose_parameterization(d, "auto")
('marginal', None)
"""

from __future__ import annotations

from multilevel.design import Design
from multilevel.design.statistics import nesting
from multilevel.errors import SpecError

__all__ = ["MAX_TERMS", "choose_parameterization", "compiled_noncentered", "marginal_supported"]

#: Most varying terms per factor the compiled non-centered kernel handles.
MAX_TERMS = 8


def marginal_supported(design: Design) -> tuple[bool, str | None]:
    """Whether the marginal likelihood applies, and why not when it does not."""
    if design.spec.family != "gaussian":
        return False, "the group effects are integrated out only for Gaussian responses."
    if design.se is not None:
        return False, "known standard errors use the non-centered parameterization."
    if len(design.groups) == 2 and nesting(design) is not None:
        return True, None
    if len(design.groups) != 1:
        return False, (
            "crossed grouping factors (or more than two nested ones) use the non-centered "
            "parameterization; the marginal likelihood covers one grouping factor or two "
            "nested ones."
        )
    return True, None


def choose_parameterization(design: Design, requested: str) -> tuple[str, str | None]:
    """Resolve ``'auto'``; returns the parameterization and a note explaining a fallback."""
    if design.serial is not None and requested not in ("auto", "marginal"):
        raise SpecError(
            f"parameterization={requested!r} is not available with "
            f"{design.spec.correlation.to_formula()}: correlated residuals are sampled with the "
            "group effects integrated out; use parameterization='marginal' (or 'auto')."
        )
    if design.summary is not None and requested not in ("auto", "marginal"):
        raise SpecError(
            f"parameterization={requested!r} needs the rows in memory; a model fitted from the "
            "statistics of a Dask/Parquet data set is sampled with the group effects integrated "
            "out: use parameterization='marginal' (or 'auto')."
        )
    ok, why = marginal_supported(design)
    if requested == "auto":
        return ("marginal", None) if ok else ("noncentered", why)
    if requested == "marginal" and not ok:
        raise SpecError(f"parameterization='marginal' is not available here: {why}")
    return requested, None


def compiled_noncentered(design: Design) -> bool:
    """Whether the compiled non-centered kernel covers the design (:data:`MAX_TERMS`)."""
    return all(g.n_terms <= MAX_TERMS for g in design.groups)
