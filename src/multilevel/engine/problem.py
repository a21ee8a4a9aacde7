"""What the samplers need of a model, and the pieces the problems share.

A :class:`Problem` is everything the drivers need: the compiled ``kernel`` (a key of
:data:`multilevel.engine.callbacks.RECORDS`), its typed argument record ``args``
(:mod:`multilevel.engine.args`), the number of unconstrained parameters ``ndim``, a jittered
``initial_point``, the map ``constrained`` from unconstrained draws to the named variables, and
the ``variables`` and ``coords`` under which the draws are stored. nutpie's C callback is
derived from the record (:func:`multilevel.engine.args.pack`); :meth:`Problem.logp_grad` calls
the same kernel from Python (tests, checks).

Examples
--------
>>> corr_cholesky(np.array([0.0]), 2).tolist()
[[1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from multilevel import naming
from multilevel.design import Design, GroupDesign
from multilevel.engine.args import KernelArgs
from multilevel.engine.kernels.common import SIGNED_FAMILIES

__all__ = ["OnBase", "Problem", "Variable", "corr_cholesky", "factor_coords", "factor_values",
           "factor_variables", "shifted_beta"]

#: ``(name, shape, dims)`` of one stored variable (draw dimensions excluded).
Variable = tuple[str, tuple[int, ...], tuple[str, ...]]


class Problem(Protocol):
    """The sampler-facing description of a model (module docstring)."""

    kernel: str
    args: KernelArgs
    design: Design

    @property
    def ndim(self) -> int:
        """Number of unconstrained parameters."""

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        """A jittered starting point."""

    def constrained(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named values at ``theta`` (``(..., ndim)``)."""

    def variables(self) -> list[Variable]:
        """``(name, shape, dims)`` of the stored draws."""

    def coords(self) -> dict[str, list[str]]:
        """Coordinates of the stored draws' dimensions."""

    def logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density (up to a constant) and its gradient at ``theta``."""


def shifted_beta(theta: np.ndarray, p: int, shift: np.ndarray) -> np.ndarray:
    """Fixed effects on the user's scale from the sampler's (centred-intercept) ones."""
    beta = np.array(theta[..., :p], dtype=float)
    if shift.shape[0] == p:
        beta[..., 0] -= theta[..., :p] @ shift
    return beta


def corr_cholesky(x: np.ndarray, q: int) -> np.ndarray:
    """Cholesky factors ``(..., q, q)`` of correlation matrices from the unconstrained ``x``
    (``(..., q(q-1)/2)``; row ``i`` is ``(x_i, 1) / sqrt(1 + |x_i|^2)``, module
    :mod:`multilevel.engine.kernels.marginal`)."""
    chol = np.zeros(x.shape[:-1] + (q, q))
    chol[..., 0, 0] = 1.0
    k = 0
    for i in range(1, q):
        xi = x[..., k:k + i]
        norm = np.sqrt(1 + np.sum(xi * xi, axis=-1))
        chol[..., i, :i] = xi / norm[..., None]
        chol[..., i, i] = 1 / norm
        k += i
    return chol


def factor_values(g: GroupDesign, log_sd: np.ndarray, x: np.ndarray | None) -> dict[str, np.ndarray]:
    """A factor's sds and, when correlated (``x`` given), the correlation Cholesky factor and
    matrix, named as the PyMC model names them."""
    out = {naming.sd_name(g.factor): np.exp(log_sd)}
    if x is not None:
        chol = corr_cholesky(x, g.n_terms)
        out[naming.corchol_name(g.factor)] = chol
        out[naming.cor_name(g.factor)] = chol @ np.swapaxes(chol, -1, -2)
    return out


def factor_variables(g: GroupDesign, correlated: bool) -> list[Variable]:
    """The stored sds and (when correlated) correlation variables of one factor."""
    q, term = g.n_terms, naming.term_dim(g.factor)
    out: list[Variable] = [(naming.sd_name(g.factor), (q,), (term,))]
    if correlated:
        out.append((naming.corchol_name(g.factor), (q, q), ()))
        out.append((naming.cor_name(g.factor), (q, q), (term, naming.term_dim_bis(g.factor))))
    return out


def factor_coords(design: Design, groups: list[GroupDesign] | tuple, *, levels: bool) -> dict[str, list[str]]:
    """Coordinates of the fixed effects and of ``groups``' terms (and levels)."""
    coords: dict[str, list[str]] = {naming.FIXED_DIM: list(design.fixed_names)}
    for g in groups:
        if levels:
            coords[naming.level_dim(g.factor)] = list(g.levels)
        coords[naming.term_dim(g.factor)] = list(g.term_names)
        coords[naming.term_dim_bis(g.factor)] = list(g.term_names)
    return coords


class OnBase:
    """What a problem sampled in other coordinates takes from the non-centered problem
    ``base`` it is built on (the design, the layout, the stored variables), for subclasses with
    ``base`` and ``args`` (whose ``sd_fam`` codes the sd priors)."""

    base: Any
    args: Any

    @property
    def design(self) -> Design:
        """The (collapsed) design."""
        return self.base.design

    @property
    def ndim(self) -> int:
        """Number of unconstrained parameters."""
        return self.base.ndim

    @property
    def signed(self) -> np.ndarray:
        """Which sds are sampled signed (``s = |t|``) rather than as ``log s``."""
        return np.isin(self.args.sd_fam, SIGNED_FAMILIES)

    def variables(self) -> list[Variable]:
        """``(name, shape, dims)`` of the stored draws: the non-centered model's."""
        return self.base.variables()

    def coords(self) -> dict[str, list[str]]:
        """Fixed-effect names, every factor's levels and term names."""
        return self.base.coords()
