"""The plain record of a fit: what it is, as data.

:class:`FitRecord` holds the spec, design, PyMC model (built at first access), posterior, priors,
parameterization, frequentist fit, notes and marginal statistics. Modules that need a fit's type import this
record (or :class:`multilevel.results.result.FitResult`, the record with its tables), never the
facade :class:`multilevel.fit.HierarchicalFit`.

Examples
--------
>>> from multilevel import datasets, fit_hierarchical
>>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
...                        draws=100, tune=100, chains=2, seed=1, progressbar=False)
>>> isinstance(fit, FitRecord), fit.method
(True, 'reml')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pymc as pm

from multilevel.design import Design
from multilevel.design.statistics import NestedStats, SufficientStats
from multilevel.model.priors import ResolvedPriors
from multilevel.spec.model import ModelSpec

__all__ = ["FitRecord"]


@dataclass(frozen=True)
class FitRecord:
    """A fitted multilevel model as plain data.

    ``stats`` are the design's marginal statistics
    (:func:`multilevel.design.statistics.marginal_statistics`) for a marginal fit, computed
    once by the fit and reused by every later stage; None otherwise. ``model_factory`` returns
    the PyMC model (:attr:`model`), or is that model; None on a loaded fit."""

    spec: ModelSpec
    design: Design
    model_factory: Callable[[], pm.Model] | pm.Model | None
    idata: Any
    resolved_priors: ResolvedPriors
    parameterization: str
    frequentist: Any = None
    notes: tuple[str, ...] = ()
    stats: SufficientStats | NestedStats | None = None

    @cached_property
    def model(self) -> pm.Model | None:
        """The readable PyMC model of the fit (None on a loaded fit). After a compiled-kernel fit
        it is built here, at first access: the kernels sample the same density (the tests check
        both give the same log-density), so a fit that never looks at the graph does not pay for
        building it."""
        if self.model_factory is None or isinstance(self.model_factory, pm.Model):
            return self.model_factory  # the model PyMC sampled
        return self.model_factory()

    @property
    def posterior(self):
        """The posterior as an ``xarray.Dataset`` (chain, draw, ...)."""
        return self.idata["posterior"].to_dataset()

    @property
    def method(self) -> str | None:
        """Column name of the frequentist estimate (``reml``, ``ml``, ``laplace``, ``agq``)."""
        return None if self.frequentist is None else self.frequentist.method.lower()

    def __repr__(self) -> str:
        d = self.design
        return (
            f"<{type(self).__name__} {self.spec.to_formula()!r} family={self.spec.family} "
            f"n={d.n_obs} groups={{{', '.join(f'{g.factor}: {g.n_levels}' for g in d.groups)}}} "
            f"parameterization={self.parameterization}>"
        )
