r"""REML and ML from sufficient statistics: one grouping factor, or two nested ones.

The Gaussian model of :mod:`multilevel.frequentist.mixed` needs the rows only through
per-group cross-products (:class:`~multilevel.design.statistics.SufficientStats`,
:class:`~multilevel.design.statistics.NestedStats`), so its profiled criterion can be evaluated
in O(groups) whatever the number of rows. This is the fit for data larger than memory
(:mod:`multilevel.design.partitioned`), and for large in-memory data
(:data:`STATS_FIT_ROWS` rows or more), where it avoids mixedlm's row-sized sparse matrices.

With :math:`\Lambda` the relative Cholesky factor(s) and :math:`W_{(xy)(xy)}` the global
cross-products of :math:`(X, y)`, per group :math:`M_j = I + \Lambda' Z_j'Z_j\Lambda = L_jL_j'`
and :math:`H_j = L_j^{-1}\Lambda' Z_j'[X\ y]`. For two nested factors the cells (inner
levels) are eliminated first: per cell :math:`M_{2k} = I + \Lambda_2'A_k\Lambda_2`, :math:`H_{2k}
= L_{2k}^{-1}\Lambda_2'[C_k'\Lambda_1\ \ Z_{2k}'X\ \ Z_{2k}'y]`, and per outer group
:math:`B_j = \sum_{k \in j} H_{2k}'H_{2k}` is taken off its block before :math:`M_{1j} = I +
\Lambda_1'G_j\Lambda_1 - B_{j,11}`. Then :math:`T = W_{(xy)(xy)} - \sum H'H = \mathcal{L}
\mathcal{L}'` holds :math:`X'\tilde V^{-1}X = L_XL_X'`, :math:`\hat\beta` and :math:`r^2`, and

.. math::

    -2\ell_{ML} = n\,(1 + \log(2\pi r^2 / n)) + \log|M|,\qquad
    -2\ell_{REML} = (n - p)(1 + \log(2\pi r^2/(n - p))) + \log|M| + \log|L_XL_X'|,

lme4's criteria (Bates et al. 2015, eqs. 34 and 41). :math:`\theta` (lme4's order and names)
is found by L-BFGS-B with the diagonal of :math:`\Lambda` bounded below by 0, then polished by
Powell's method. Conditional modes and variances solve the same block system at :math:`\hat\beta`.

Examples
--------
>>> from multilevel import datasets
>>> from multilevel.design import build_design
>>> from multilevel.spec import ModelSpec
>>> d = build_design(ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
...                  datasets.load("sleepstudy"))
>>> fit = fit_from_stats(d)
>>> round(fit.loglik, 4), round(fit.sigma, 4)  # lme4: -871.8141, 25.5918
(-871.8141, 25.5918)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize

from multilevel.design import Design
from multilevel.design.statistics import (
    NestedStats,
    SufficientStats,
    fitted_variance,
    marginal_statistics,
    nesting,
)
from multilevel.errors import SpecError
from multilevel.frequentist.mixed import SINGULAR_TOL, random_variances
from multilevel.frequentist.result import FrequentistFit, GroupCovariance
from multilevel.frequentist.serial_deviance import profiled_parts

__all__ = ["STATS_FIT_ROWS", "StatsCriterion", "fit_from_stats"]

#: In-memory Gaussian designs with this many rows or more are fitted from their statistics.
STATS_FIT_ROWS = 200_000


def _chol_solve_parts(m: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched Cholesky of ``m`` and ``L^-1 r``; returns (L, H)."""
    chol = np.linalg.cholesky(m)
    return chol, np.linalg.solve(chol, r)


def _logdet(chol: np.ndarray) -> float:
    return 2.0 * float(np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1))))


class StatsCriterion:
    """The profiled REML/ML deviance of a Gaussian design from its statistics, as a function
    of lme4's ``theta`` (module docstring); ``parts(theta)`` gives the pieces the fit needs."""

    def __init__(self, design: Design, stats: SufficientStats | NestedStats | None = None):
        self.design = design
        self.stats = marginal_statistics(design) if stats is None else stats
        self.nest = nesting(design) if isinstance(self.stats, NestedStats) else None
        self.layout = []  # per factor in design order: (rows, cols) of theta in Lambda
        for g in design.groups:
            q = g.n_terms
            if g.correlated and q > 1:
                cols, rows = np.triu_indices(q)  # column-major lower triangle, as lme4
                self.layout.append((rows, cols))
            else:
                self.layout.append((np.arange(q), np.arange(q)))
        self.n_theta = sum(len(r) for r, _ in self.layout)
        st = self.stats
        p = design.X.shape[1]
        self.p = p
        self.n = float(st.n_total)
        w = np.zeros((p + 1, p + 1))
        w[:p, :p], w[:p, p], w[p, :p], w[p, p] = st.xtx, st.xty, st.xty, st.yty
        self.wxy = w
        self._compiled = None
        if self.nest is None:  # the compiled AR(1) criterion with no lags is this one, faster
            q = design.groups[0].n_terms
            s0z = np.ascontiguousarray(np.concatenate([st.ztz, st.ztx, st.zty[..., None]], axis=2))
            none = np.zeros(0, dtype=np.int64)
            self._compiled = (s0z, np.ascontiguousarray(w), none, none, np.zeros((0, q, q + p + 1)),
                              np.zeros((0, q, q + p + 1)), np.zeros(0), np.zeros(0),
                              np.zeros((0, p + 1, p + 1)), np.zeros((0, p + 1, p + 1)))

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        """The relative Cholesky factor of every factor, in design order."""
        out, start = [], 0
        for g, (rows, cols) in zip(self.design.groups, self.layout, strict=True):
            lam = np.zeros((g.n_terms, g.n_terms))
            lam[rows, cols] = theta[start:start + len(rows)]
            out.append(lam)
            start += len(rows)
        return out

    def lower_bounds(self) -> list[tuple[float | None, None]]:
        return [(0.0, None) if r == c else (None, None)
                for rows, cols in self.layout for r, c in zip(rows, cols, strict=True)]

    def parts(self, theta: np.ndarray):
        """``(log|M|, Cholesky factor of T, (Cholesky factors of M_1j, of M_2k or None))``."""
        lams = self.lambdas(theta)
        st = self.stats
        if self.nest is None:
            lam = lams[0]
            m = np.eye(lam.shape[0]) + np.einsum("ca,jcd,db->jab", lam, st.ztz, lam)
            r = np.einsum("ca,jcx->jax", lam, np.concatenate([st.ztx, st.zty[..., None]], axis=2))
            chol, h = _chol_solve_parts(m, r)
            t = self.wxy - np.einsum("jax,jay->xy", h, h)
            return _logdet(chol), np.linalg.cholesky(t), (chol, None)
        lam1, lam2 = lams[self.nest[0]], lams[self.nest[1]]
        q1 = lam1.shape[0]
        m2 = np.eye(lam2.shape[0]) + np.einsum("ca,kcd,db->kab", lam2, st.a2, lam2)
        cross = np.concatenate([np.einsum("kcd,ce->kde", st.c12, lam1),  # C_k' Lambda1
                                st.z2x, st.z2y[..., None]], axis=2)
        r2 = np.einsum("ca,kcx->kax", lam2, cross)
        chol2, h2 = _chol_solve_parts(m2, r2)
        b = np.add.reduceat(np.einsum("kax,kay->kxy", h2, h2), st.cell_start[:-1], axis=0)
        m1 = np.eye(q1) + np.einsum("ca,jcd,db->jab", lam1, st.g1, lam1) - b[:, :q1, :q1]
        r1 = np.einsum("ca,jcx->jax", lam1, np.concatenate([st.z1x, st.z1y[..., None]], axis=2))
        r1 = r1 - b[:, :q1, q1:]
        chol1, h1 = _chol_solve_parts(m1, r1)
        t = self.wxy - b[:, q1:, q1:].sum(axis=0) - np.einsum("jax,jay->xy", h1, h1)
        return _logdet(chol1) + _logdet(chol2), np.linalg.cholesky(t), (chol1, chol2)

    def __call__(self, theta: np.ndarray, reml: bool = True) -> float:
        try:
            if self._compiled is not None:
                lam = np.ascontiguousarray(self.lambdas(np.asarray(theta, dtype=float))[0])
                logdet, _, t = profiled_parts(lam, 0.0, *self._compiled)
                if not np.all(np.isfinite(t)):
                    return np.inf
            else:
                logdet, t, _ = self.parts(np.asarray(theta, dtype=float))
        except np.linalg.LinAlgError:
            return np.inf
        p, n = self.p, self.n
        rss = t[p, p] ** 2
        if reml:
            df = n - p
            return df * (1 + math.log(2 * math.pi * rss / df)) + logdet + _logdet(t[:p, :p])
        return n * (1 + math.log(2 * math.pi * rss / n)) + logdet


def _optimize(crit: StatsCriterion, reml: bool) -> optimize.OptimizeResult:
    bounds = crit.lower_bounds()
    x0 = np.array([1.0 if lo == 0.0 else 0.0 for lo, _ in bounds])
    best = optimize.minimize(crit, x0, args=(reml,), method="L-BFGS-B", bounds=bounds,
                             options={"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-9})
    # L-BFGS-B on finite differences can stop early in a curved valley (Hsb82's slope: 4.6
    # below the optimum); Powell's derivative-free search, repeated until it stops gaining,
    # polishes to mixedlm's optimum.
    for _ in range(4):
        polish = optimize.minimize(crit, best.x, args=(reml,), method="Powell", bounds=bounds,
                                   options={"xtol": 1e-10, "ftol": 1e-15, "maxfev": 20000})
        gain = best.fun - polish.fun
        if gain > 0:
            best = polish
        if gain < 1e-10:
            break
    return best


def _modes(crit: StatsCriterion, theta: np.ndarray, beta: np.ndarray, sigma2: float) -> pd.DataFrame:
    st, lams = crit.stats, crit.lambdas(theta)
    _, _, (chol1, chol2) = crit.parts(theta)
    if crit.nest is None:
        lam, g = lams[0], crit.design.groups[0]
        c = np.einsum("ca,jc->ja", lam, st.zty - st.ztx @ beta)
        minv = np.linalg.inv(chol1 @ np.swapaxes(chol1, 1, 2))
        u = np.einsum("ab,jb->ja", lam, np.einsum("jab,jb->ja", minv, c))
        cov = sigma2 * np.einsum("ab,jbc,dc->jad", lam, minv, lam)
        return _table(g, u, cov)
    o, i = crit.nest
    lam1, lam2 = lams[o], lams[i]
    parent = st.cell_parent
    ck = np.einsum("ca,kcd,db->kab", lam1, st.c12, lam2)  # (K, q1, q2): Lambda1' C_k Lambda2
    m2inv = np.linalg.inv(chol2 @ np.swapaxes(chol2, 1, 2))
    r2 = np.einsum("ca,kc->ka", lam2, st.z2y - st.z2x @ beta)
    r1 = np.einsum("ca,jc->ja", lam1, st.z1y - st.z1x @ beta)
    cm = np.einsum("kab,kbc->kac", ck, m2inv)  # C M2^-1
    r1 = r1 - np.add.reduceat(np.einsum("kab,kb->ka", cm, r2), st.cell_start[:-1], axis=0)
    sinv = np.linalg.inv(chol1 @ np.swapaxes(chol1, 1, 2))
    v1 = np.einsum("jab,jb->ja", sinv, r1)
    v2 = np.einsum("kab,kb->ka", m2inv, r2 - np.einsum("kba,kb->ka", ck, v1[parent]))
    cov_v2 = m2inv + np.einsum("kba,kbc,kcd->kad", cm, sinv[parent], cm)
    u1, cov1 = v1 @ lam1.T, sigma2 * np.einsum("ab,jbc,dc->jad", lam1, sinv, lam1)
    u2, cov2 = v2 @ lam2.T, sigma2 * np.einsum("ab,kbc,dc->kad", lam2, cov_v2, lam2)
    back = st.level_cell
    tables = {o: _table(crit.design.groups[o], u1, cov1),
              i: _table(crit.design.groups[i], u2[back], cov2[back])}
    return pd.concat([tables[k] for k in range(2)], ignore_index=True)


def _table(g, u: np.ndarray, cov: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "group": g.factor,
        "level": np.repeat(np.asarray(g.levels, dtype=object), g.n_terms),
        "term": np.tile(np.asarray(g.term_names, dtype=object), g.n_levels),
        "estimate": u.ravel(), "cond_sd": np.sqrt(np.diagonal(cov, axis1=1, axis2=2)).ravel(),
    })


def fit_from_stats(design: Design, method: str | None = None, n_agq: int = 1) -> FrequentistFit:
    """REML (default) or ML fit of a Gaussian design with one grouping factor or two nested
    ones from its sufficient statistics (module docstring)."""
    spec = design.spec
    method = method or "REML"
    if spec.family != "gaussian" or method not in ("REML", "ML") or n_agq != 1:
        raise SpecError(f"Fits from sufficient statistics are Gaussian REML or ML, not {method!r}.")
    reml = method == "REML"
    crit = StatsCriterion(design)
    res = _optimize(crit, reml)
    theta = res.x
    _, t, _ = crit.parts(theta)
    p = crit.p
    lx, qty = t[:p, :p], t[p, :p]
    beta = np.linalg.solve(lx.T, qty)
    sigma2 = t[p, p] ** 2 / (crit.n - p if reml else crit.n)
    lxinv = np.linalg.inv(lx)
    cov_fixed = sigma2 * lxinv.T @ lxinv
    lams = crit.lambdas(theta)
    groups = tuple(GroupCovariance(g.factor, g.term_names, g.correlated and g.n_terms > 1,
                                   sigma2 * lam @ lam.T) for g, lam in zip(design.groups, lams, strict=True))
    names, values, diag = [], [], []
    for g, lam, (rows, cols) in zip(design.groups, lams, crit.layout, strict=True):
        tn = g.term_names
        for r, c in zip(rows, cols, strict=True):
            names.append(f"{g.factor}.{tn[r]}" if r == c else f"{g.factor}.{tn[r]}.{tn[c]}")
            values.append(lam[r, c])
            if r == c:
                diag.append(lam[r, c])
    singular = bool(np.any(np.asarray(diag) < SINGULAR_TOL))
    messages = [f"The optimizer did not converge: {res.message}"] * (not res.success)
    messages += ["boundary (singular) fit: see help('isSingular')"] * singular
    messages += [f"{design.dropped_rows} rows with missing values were dropped."] * bool(design.dropped_rows)
    fixed = list(design.fixed_names)
    return FrequentistFit(
        spec=spec, method=method, n_agq=1,
        beta=pd.Series(beta, index=fixed, name="estimate"),
        cov_fixed=pd.DataFrame(cov_fixed, index=fixed, columns=fixed),
        theta=pd.Series(values, index=names, name="theta", dtype=float),
        sigma=math.sqrt(sigma2), groups=groups,
        ranef_table=_modes(crit, theta, beta, sigma2),
        loglik=-0.5 * float(res.fun), nobs=design.n_obs, converged=bool(res.success),
        singular=singular, messages=tuple(messages), var_fixed=float(fitted_variance(design, beta)),
        var_random=random_variances(design, groups), var_residual=sigma2, design=design,
        refit=fit_from_stats,
    )
