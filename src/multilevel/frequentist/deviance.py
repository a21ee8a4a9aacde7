r"""Deviance functions on lme4's profiling scale: standard deviations, correlations, sigma, beta.

lme4's ``profile.merMod`` (``devfun2``) profiles the *ML* deviance, also for REML fits (it calls
``refitML`` first), over the parameters ``(sd, cor)`` of each grouping factor, the residual
``sigma`` (Gaussian) and the fixed effects. Two deviances are given here as functions of that
vector:

* Gaussian (:class:`GaussianDeviance`): with :math:`\Lambda` the relative Cholesky factor
  (``diag(sd) chol(R) / sigma`` per factor) and the penalised least squares quantities of lme4
  (:math:`L L^\top = \Lambda^\top Z^\top Z \Lambda + I`, :math:`R_X`, the minimum penalised
  residual sum of squares :math:`r^2` at :math:`\hat\beta(\theta)`),

  .. math::

      d(\theta, \sigma, \beta) = \log|L|^2 + \frac{r^2 + \lVert R_X(\beta - \hat\beta)\rVert^2}
      {\sigma^2} + n \log(2\pi\sigma^2).

  One grouping factor uses its block-diagonal structure (one small Cholesky per level);
  several factors use one dense system (up to :data:`MAX_DENSE` random effects).
* Logistic (:func:`glmm_deviance`): the Laplace deviance of mixedlm's ``mkGlmerDevfun`` at
  ``(theta, beta)``, ``theta`` from the sds and correlations (``sigma = 1``).

Examples
--------
>>> from multilevel import ModelSpec, datasets
>>> from multilevel.design import build_design
>>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                  datasets.load("sleepstudy"))
>>> dev = GaussianDeviance(d)
>>> dev.layout.names[0], dev.layout.size
(('Subject', '(Intercept)', 'sd'), 4)
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy import linalg

from multilevel.design import Design
from multilevel.engine.kernels.common import (
    chol_inplace,
    penalized_cross,
    solve_lower,
    solve_upper_t,
)
from multilevel.errors import SpecError

__all__ = ["MAX_DENSE", "GaussianDeviance", "VarLayout", "block_factors", "glmm_deviance", "hessian"]

#: Most random effects (all factors together) the dense multi-factor deviance handles.
MAX_DENSE = 400


@dataclass(frozen=True)
class VarLayout:
    """Where each factor's sds and correlations sit in the variance-parameter vector.

    ``names`` are ``(group, term, stat)`` in lme4's ``Cv_to_Sv`` order: per factor its sds, then
    its correlations (column-major lower triangle), and last ``('Residual', '', 'sd')`` when
    ``sigma`` is a parameter."""

    blocks: tuple[tuple[int, int, bool], ...]  # (start, q, correlated)
    names: tuple[tuple[str, str, str], ...]
    sigma: bool

    @property
    def size(self) -> int:
        """Number of variance parameters."""
        return len(self.names)

    @classmethod
    def of(cls, design: Design, sigma: bool, phi: bool = False) -> VarLayout:
        blocks, names, start = [], [], 0
        for g in design.groups:
            q, cor = g.n_terms, g.correlated and g.n_terms > 1
            blocks.append((start, q, cor))
            names += [(g.factor, t, "sd") for t in g.term_names]
            if cor:
                names += [(g.factor, f"{g.term_names[j]},{g.term_names[i]}", "cor")
                          for j in range(q) for i in range(j + 1, q)]
            start += q + (q * (q - 1) // 2 if cor else 0)
        if phi:  # AR(1)/CAR(1): phi just before sigma, which stays last
            names.append(("Residual", "", "phi"))
        if sigma:
            names.append(("Residual", "", "sd"))
        return cls(tuple(blocks), tuple(names), sigma)


def block_factors(layout: VarLayout, params: np.ndarray) -> list[np.ndarray] | None:
    """``diag(sd) chol(R)`` per factor (absolute scale), or None when a correlation matrix is
    not positive definite."""
    out = []
    for start, q, cor in layout.blocks:
        sd = params[start : start + q]
        chol = np.eye(q)
        if cor:
            R, pos = np.eye(q), start + q
            for j in range(q):  # column-major lower triangle, as the names
                for i in range(j + 1, q):
                    R[i, j] = R[j, i] = params[pos]
                    pos += 1
            if not chol_inplace(R, q):
                return None
            chol = R
        out.append(sd[:, None] * chol)
    return out


class GaussianDeviance:
    """The ML deviance of a Gaussian model in lme4's profiling parameters (module docstring).

    Call with the full vector ``(variance parameters..., beta...)``."""

    def __init__(self, design: Design) -> None:
        if design.spec.family != "gaussian" or design.se is not None:
            raise SpecError("GaussianDeviance needs a Gaussian model without known errors.")
        self.layout = VarLayout.of(design, sigma=True)
        self.n, self.p = design.X.shape
        X, y = design.X, design.y
        self.XtX, self.Xty, self.yty = X.T @ X, X.T @ y, float(y @ y)
        self.single = len(design.groups) == 1
        if self.single:
            g = design.groups[0]
            L, q = g.n_levels, g.n_terms
            self.ZtZ = np.zeros((L, q, q))
            np.add.at(self.ZtZ, g.index, g.Z[:, :, None] * g.Z[:, None, :])
            self.ZtX = np.zeros((L, q, self.p))
            np.add.at(self.ZtX, g.index, g.Z[:, :, None] * X[:, None, :])
            self.Zty = np.zeros((L, q))
            np.add.at(self.Zty, g.index, g.Z * y[:, None])
            self.levels = [L]
        else:
            total = sum(g.n_levels * g.n_terms for g in design.groups)
            if total > MAX_DENSE:
                raise SpecError(
                    f"Profiling this model needs a dense system of {total} random effects "
                    f"(limit {MAX_DENSE}): use method='Wald' or method='boot'."
                )
            cols = []
            for g in design.groups:
                Z = np.zeros((self.n, g.n_levels * g.n_terms))
                for t in range(g.n_terms):
                    Z[np.arange(self.n), g.index * g.n_terms + t] = g.Z[:, t]
                cols.append(Z)
            Z = np.hstack(cols)
            self.ZtZ, self.ZtX, self.Zty = (Z.T @ Z)[None], (Z.T @ X)[None], (Z.T @ y)[None]
            self.levels = [g.n_levels for g in design.groups]

    def _lambda(self, factors: list[np.ndarray], sigma: float) -> np.ndarray:
        if self.single:
            return factors[0] / sigma
        return linalg.block_diag(*[np.kron(np.eye(L), f) for L, f in
                                   zip(self.levels, factors, strict=True)]) / sigma

    def pls(self, factors: list[np.ndarray], sigma: float):
        """``log|L|^2``, the minimum penalised RSS, ``beta_hat`` and ``R_X`` at this Lambda."""
        lam = self._lambda(factors, sigma)
        # compiled: one factor loops over its levels' small blocks, several factors solve one
        # dense block (``ZtZ`` holds a single level then)
        ok, ldl2, rss, beta, rx = _block_pls(np.ascontiguousarray(lam), self.ZtZ, self.ZtX,
                                             self.Zty, self.XtX, self.Xty, self.yty)
        if not ok:
            raise np.linalg.LinAlgError("not positive definite")
        return ldl2, rss, beta, rx

    def _pls_at(self, x: np.ndarray, sigma: float):
        """:meth:`pls` at the variance parameters ``x``, or None where they are invalid (a
        correlation matrix not positive definite, ``sigma <= 0``)."""
        factors = block_factors(self.layout, x)
        if factors is None or sigma <= 0:
            return None
        try:
            return self.pls(factors, sigma)
        except np.linalg.LinAlgError:
            return None

    def profiled(self, x: np.ndarray, j: int | None = None, value: float = 0.0) -> float:
        """The deviance at the variance parameters ``x`` with ``beta`` at its optimum given
        them; with ``j``, ``beta_j`` held at ``value`` and ``sigma`` at its optimum too (``x``
        then holds relative sds, ``sd / sigma``, and its sigma entry is ignored)."""
        sigma = 1.0 if j is not None else x[self.layout.size - 1]
        parts = self._pls_at(x, sigma)
        if parts is None:
            return np.inf
        ldl2, rss, beta, rx = parts
        if j is None:
            return ldl2 + rss / sigma**2 + self.n * np.log(2 * np.pi * sigma**2)
        rinv = linalg.solve_triangular(rx, np.eye(self.p))
        rss += (value - beta[j]) ** 2 / float(rinv[j] @ rinv[j])  # the other betas re-fitted
        return ldl2 + self.n * (1.0 + np.log(2 * np.pi * rss / self.n))

    def __call__(self, x: np.ndarray) -> float:
        k = self.layout.size
        sigma = x[k - 1]
        parts = self._pls_at(x, sigma)
        if parts is None:
            return np.inf
        ldl2, rss, beta, rx = parts
        extra = rx @ (x[k:] - beta)
        return ldl2 + (rss + float(extra @ extra)) / sigma**2 + self.n * np.log(
            2 * np.pi * sigma**2)


def hessian(fun, x: np.ndarray, step: float) -> np.ndarray:
    """lme4's ``deriv12`` Hessian: central differences, cross terms from four corners."""
    n = len(x)
    fx = fun(x)
    eye = np.eye(n) * step
    plus = [fun(x + eye[i]) for i in range(n)]
    minus = [fun(x - eye[i]) for i in range(n)]
    H = np.empty((n, n))
    for i in range(n):
        H[i, i] = (plus[i] - 2.0 * fx + minus[i]) / step**2
        for j in range(i):
            corners = (
                fun(x + eye[i] + eye[j])
                - fun(x + eye[i] - eye[j])
                - fun(x - eye[i] + eye[j])
                + fun(x - eye[i] - eye[j])
            )
            H[i, j] = H[j, i] = corners / (4.0 * step**2)
    return H


@numba.njit(cache=True, nogil=True)
def _block_pls(lam, ZtZ, ZtX, Zty, XtX, Xty, yty):
    """lme4's penalised least squares for one factor, level by level (see :meth:`pls`)."""
    L, q, p = ZtX.shape
    ldl2, cu2 = 0.0, 0.0
    S = XtX.copy()  # X'X - RZX'RZX
    r = Xty.copy()  # X'y - RZX'cu
    A = np.empty((q, q))
    T = np.empty((q, q))
    B = np.empty((q, p + 1))
    for lv in range(L):
        penalized_cross(ZtZ[lv], lam, T, A, q)  # A = I + lam' ZtZ lam
        for a in range(q):  # B = lam' [ZtX, Zty]
            for b in range(p):
                v = 0.0
                for c in range(q):
                    v += lam[c, a] * ZtX[lv, c, b]
                B[a, b] = v
            v = 0.0
            for c in range(q):
                v += lam[c, a] * Zty[lv, c]
            B[a, p] = v
        if not chol_inplace(A, q):
            return False, 0.0, 0.0, np.zeros(p), np.zeros((p, p))
        for i in range(q):
            ldl2 += 2.0 * np.log(A[i, i])
        for c in range(p + 1):  # B = L^-1 B, in place
            solve_lower(A, B[:, c], B[:, c], q)
        for i in range(q):
            cu2 += B[i, p] ** 2
            for a in range(p):
                r[a] -= B[i, a] * B[i, p]
                for b in range(p):
                    S[a, b] -= B[i, a] * B[i, b]
    if not chol_inplace(S, p):
        return False, 0.0, 0.0, np.zeros(p), np.zeros((p, p))
    cb = np.empty(p)
    solve_lower(S, r, cb, p)
    beta = np.empty(p)
    solve_upper_t(S, cb, beta, p)  # R_X = S'
    return True, ldl2, yty - cu2 - float((cb**2).sum()), beta, S.T.copy()


def glmm_deviance(devfun, layout: VarLayout, offsets: list[int]):
    """The Laplace deviance of mixedlm's ``devfun`` as a function of ``(sds, cors, beta)``.

    ``offsets`` are each factor's start in mixedlm's theta (row-major lower triangle)."""
    k = layout.size
    size = sum(q * (q + 1) // 2 if cor else q for _, q, cor in layout.blocks)

    def dev(x: np.ndarray) -> float:
        factors = block_factors(layout, x)
        if factors is None:
            return np.inf
        theta = np.zeros(size)
        for f, (_, q, cor), start in zip(factors, layout.blocks, offsets, strict=True):
            if cor:
                theta[start : start + q * (q + 1) // 2] = f[np.tril_indices(q)]
            else:
                theta[start : start + q] = np.diag(f)
        value = float(devfun(np.r_[theta, x[k:]]))
        return value if np.isfinite(value) else np.inf

    return dev
