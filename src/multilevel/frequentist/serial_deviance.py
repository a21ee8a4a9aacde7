r"""The profiled REML/ML criterion with AR(1)/CAR(1) residuals, and its ML deviance on lme4's
profiling scale (the formulas are in :mod:`multilevel.frequentist.serial`).

Examples
--------
>>> import warnings
>>> import numpy as np
>>> from multilevel import datasets
>>> from multilevel.design import build_design
>>> from multilevel.spec import ModelSpec
>>> spec = ModelSpec.from_formula("log_exercise ~ age + (1 | subject) + ar1(age | subject)")
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     dev = SerialDeviance(build_design(spec, datasets.load("blackmore")))
>>> from scipy import optimize
>>> best = optimize.minimize(dev, np.array([0.5, 0.0]), method="L-BFGS-B",
...                          bounds=[(0.0, None), (-0.99, 0.99)])
>>> round(-best.fun / 2, 1), round(float(best.x[1]), 2)  # REML log-likelihood and phi
(-800.2, 0.69)
"""

from __future__ import annotations

import math

import numba
import numpy as np

from multilevel.design import Design
from multilevel.design.serial import SerialStats, serial_stats
from multilevel.engine.kernels.common import chol_inplace, penalized_cross, solve_lower
from multilevel.engine.kernels.serial import weighted_cross
from multilevel.frequentist.deviance import GaussianDeviance, VarLayout

__all__ = ["SerialDeviance", "SerialGaussianDeviance", "profiled_parts"]


@numba.njit(cache=True, nogil=True)
def profiled_parts(lam, phi, s0z, s0x, cell_group, cell_lag_index, cell_dz, cell_cz, lags, lag_count,
                   lag_dx, lag_cx):
    """``(log|R| + sum_j log|M_j|, r^2, Cholesky factor of T)`` at ``(Lambda, phi)``."""
    n_groups, q, m = s0z.shape
    k = m - q
    w, t = np.empty_like(s0z), np.empty_like(s0x)
    logdet = weighted_cross(phi, s0z, s0x, cell_group, cell_lag_index, cell_dz, cell_cz, lags, lag_count,
                            lag_dx, lag_cx, w, t)  # t starts as sum_j W_j[(xy), (xy)]
    mat, ap = np.empty((q, q)), np.empty((q, q))
    rhs = np.empty(q)
    h = np.empty((q, k))
    col = np.empty(q)
    for j in range(n_groups):
        penalized_cross(w[j, :, :q], lam, ap, mat, q)  # M_j = I + Lambda' W_zz Lambda
        chol_inplace(mat, q)
        for a in range(q):
            logdet += 2.0 * math.log(mat[a, a])
        for c in range(k):
            for a in range(q):
                acc = 0.0
                for d in range(q):
                    acc += lam[d, a] * w[j, d, q + c]
                rhs[a] = acc
            solve_lower(mat, rhs, col, q)
            h[:, c] = col
        for a in range(k):
            for b in range(k):
                acc = 0.0
                for c in range(q):
                    acc += h[c, a] * h[c, b]
                t[a, b] -= acc
    chol_inplace(t, k)
    p = k - 1
    rss = t[p, p] * t[p, p]
    return logdet, rss, t


class SerialDeviance:
    """The profiled ML/REML deviance of a design with correlated residuals, as a function of
    ``x = (theta, phi)`` (``theta``: the lower triangle of the relative Cholesky factor,
    column-major, or its diagonal for ``(x || g)``)."""

    def __init__(self, design: Design, stats: SerialStats | None = None) -> None:
        self.design = design
        self.stats = serial_stats(design) if stats is None else stats
        g = design.groups[0]
        self.q, self.p, self.n = g.n_terms, design.X.shape[1], float(design.n_obs)
        self.correlated = g.correlated and self.q > 1
        rows, cols = (np.tril_indices(self.q) if self.correlated
                      else (np.arange(self.q), np.arange(self.q)))
        order = np.lexsort((rows, cols))  # column-major, as lme4's theta
        self.rows, self.cols = rows[order], cols[order]

    def lam(self, theta: np.ndarray) -> np.ndarray:
        """The relative Cholesky factor from ``theta``."""
        out = np.zeros((self.q, self.q))
        out[self.rows, self.cols] = theta
        return out

    def parts(self, x: np.ndarray, reml: bool) -> tuple[float, np.ndarray]:
        """``(-2 log-likelihood, Cholesky factor of T)`` at ``x``."""
        st = self.stats
        logdet, rss, t = profiled_parts(self.lam(x[:-1]), float(x[-1]), *st.kernel_args())
        df = self.n - self.p if reml else self.n
        dev = df * (1.0 + math.log(2.0 * math.pi * rss / df)) + logdet
        if reml:
            dev += 2.0 * float(np.sum(np.log(np.diag(t)[:-1])))
        return dev, t

    def __call__(self, x: np.ndarray, reml: bool = True) -> float:
        dev, _ = self.parts(x, reml)
        return dev if np.isfinite(dev) else math.inf


class SerialGaussianDeviance(GaussianDeviance):
    """The ML deviance of :class:`~multilevel.frequentist.deviance.GaussianDeviance` (lme4's
    profiling scale) with ``phi`` as one more variance parameter, just before ``sigma``: the
    profile intervals of :mod:`multilevel.frequentist.intervals` then cover AR(1)/CAR(1) fits.
    ``log|L|^2`` becomes ``log|R| + sum_j log|M_j|`` and the cross-products are
    ``R^-1``-weighted."""

    def __init__(self, design: Design) -> None:  # the statistics replace the plain sums
        self.layout = VarLayout.of(design, sigma=True, phi=True)
        self.n, self.p = design.X.shape
        self.serial = SerialDeviance(design)
        self._phi = 0.0

    def _with_phi(self, x: np.ndarray) -> bool:
        self._phi = float(x[self.layout.size - 2])
        return abs(self._phi) < 1.0

    def pls(self, factors: list[np.ndarray], sigma: float):
        """``log|R| + sum_j log|M_j|``, ``r^2``, ``beta_hat`` and ``R_X`` at ``(Lambda, phi)``."""
        st = self.serial.stats
        try:
            logdet, rss, t = profiled_parts(factors[0] / sigma, self._phi, *st.kernel_args())
        except (ZeroDivisionError, ValueError):  # a zero pivot (compiled Python semantics)
            raise np.linalg.LinAlgError("not positive definite") from None
        if not np.all(np.isfinite(t)):
            raise np.linalg.LinAlgError("not positive definite")
        p = self.p
        rx = t[:p, :p].T
        return logdet, rss, np.linalg.solve(rx, t[p, :p]), rx

    def profiled(self, x: np.ndarray, j: int | None = None, value: float = 0.0) -> float:
        """As :meth:`GaussianDeviance.profiled`, at ``x``'s ``phi``."""
        return super().profiled(x, j, value) if self._with_phi(x) else math.inf

    def __call__(self, x: np.ndarray) -> float:
        return super().__call__(x) if self._with_phi(x) else math.inf
