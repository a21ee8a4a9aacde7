"""Which parameterization a design is sampled in, and why.

Gaussian models with one grouping factor or two nested ones integrate the group effects out
(``marginal``); sampled by nutpie, logistic models with one grouping factor and Gaussian ones
with crossed scalar terms such as ``(1 | a) + (1 | b)`` are sampled ``linearized``
(:mod:`multilevel.engine.linearized`, :mod:`multilevel.engine.crossed`); everything else is
sampled ``noncentered`` (``centered`` on request). The compiled kernels handle up to
:data:`MAX_TERMS` varying terms per factor; beyond that PyMC's own graph is used.

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                  datasets.load("sleepstudy"))
>>> choose_parameterization(d, "auto")
('marginal', None)
>>> d = build_design(ModelSpec.from_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)"),
...                  datasets.load("cbpp"))
>>> choose_parameterization(d, "auto")
('linearized', None)
>>> choose_parameterization(d, "auto", sampler="pymc")[0]
'noncentered'
"""

from __future__ import annotations

from multilevel.design import Design
from multilevel.design.statistics import nesting
from multilevel.errors import SpecError

__all__ = ["MAX_TERMS", "choose_parameterization", "compiled_noncentered", "linearized_supported",
           "marginal_supported"]

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


def linearized_supported(design: Design, sampler: str = "nutpie") -> tuple[bool, str | None]:
    """Whether the linearized coordinates apply, and why not when they do not: logistic models
    with one grouping factor, and Gaussian ones with two or more factors of one term each
    (crossed random intercepts; :mod:`multilevel.engine.crossed`)."""
    if design.spec.family == "gaussian":
        if design.se is not None:
            return False, "models with known standard errors are sampled non-centered."
        if len(design.groups) < 2:
            return False, ("a Gaussian model with one grouping factor integrates the group "
                           "effects out (parameterization='marginal').")
        if any(g.n_terms != 1 for g in design.groups):
            return False, ("for Gaussian models the linearized coordinates cover one term per "
                           "grouping factor, such as (1 | a) + (1 | b).")
    elif len(design.groups) != 1:
        return False, "for logistic models the linearized coordinates cover one grouping factor."
    if not compiled_noncentered(design):
        return False, f"the linearized kernel handles up to {MAX_TERMS} varying terms."
    if sampler != "nutpie":
        return False, "the linearized coordinates are sampled by nutpie's compiled kernel only."
    return True, None


def choose_parameterization(design: Design, requested: str,
                            sampler: str = "nutpie") -> tuple[str, str | None]:
    """Resolve ``'auto'`` for ``sampler``; returns the parameterization and a note explaining a
    fallback."""
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
    lin_ok, lin_why = linearized_supported(design, sampler)
    if requested == "auto":
        return ("marginal", None) if ok else ("linearized", None) if lin_ok else ("noncentered", why)
    if requested == "marginal" and not ok:
        raise SpecError(f"parameterization='marginal' is not available here: {why}")
    if requested == "linearized" and not lin_ok:
        raise SpecError(f"parameterization='linearized' is not available here: {lin_why} Use "
                        "'noncentered' (or 'auto').")
    return requested, None


def compiled_noncentered(design: Design) -> bool:
    """Whether the compiled non-centered kernel covers the design (:data:`MAX_TERMS`)."""
    return all(g.n_terms <= MAX_TERMS for g in design.groups)
