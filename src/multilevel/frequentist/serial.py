r"""REML and ML fits with AR(1)/CAR(1) residuals, equal to nlme's ``lme(..., correlation =)``.

mixedlm (like lme4) has no residual correlation, so the profiled criterion is written here.
Per grouping level :math:`V_j = \sigma^2 (Z_j \Lambda\Lambda' Z_j' + R_j(\phi))` with
:math:`\Lambda` the relative Cholesky factor. With the :math:`R^{-1}`-weighted cross-products
:math:`W_j(\phi)` of :math:`(z, x, y)` (:mod:`multilevel.design.serial`), :math:`M_j = I +
\Lambda' W_{j,zz}\Lambda = L_jL_j'` and :math:`H_j = L_j^{-1}\Lambda' W_{j,z(xy)}`, the matrix
:math:`T = \sum_j (W_{j,(xy)(xy)} - H_j'H_j)` holds :math:`X'\tilde V^{-1}X`, :math:`X'\tilde
V^{-1}y`, :math:`y'\tilde V^{-1}y` (:math:`\tilde V = V/\sigma^2`); its Cholesky factor gives
:math:`\hat\beta`, :math:`\log|X'\tilde V^{-1}X|` and the residual sum of squares :math:`r^2`.
Then, with :math:`\log|R| = \sum_j \log|R_j|`,

.. math::

    -2\ell_{ML} = n\,(1 + \log(2\pi r^2 / n)) + \sum_j \log|M_j| + \log|R|,

    -2\ell_{REML} = (n - p)(1 + \log(2\pi r^2/(n - p))) + \sum_j \log|M_j| + \log|R| +
    \log|X'\tilde V^{-1}X|,

the same log-likelihoods as nlme (and lme4 without :math:`R`). :math:`(\theta, \phi)` are
found by L-BFGS-B (diagonal of :math:`\Lambda \ge 0`; :math:`-1 < \phi < 1` for ``ar1``,
:math:`0 \le \phi < 1` for ``car1``) from a few starting values of :math:`\phi`;
:math:`\operatorname{Var}(\hat\beta) = \hat\sigma^2 (X'\tilde V^{-1}X)^{-1}` and the conditional
modes are :math:`\hat u_j = \Lambda M_j^{-1}\Lambda' c_j`, :math:`c_j = W_{j,zy} - W_{j,zx}
\hat\beta`, with conditional covariance :math:`\hat\sigma^2 \Lambda M_j^{-1}\Lambda'`.

As nlme, BIC of a REML fit uses :math:`\log(n - p)` (:attr:`FrequentistFit.bic_nobs`).

Examples
--------
>>> import warnings
>>> from multilevel import datasets
>>> from multilevel.design import build_design
>>> from multilevel.spec import ModelSpec
>>> spec = ModelSpec.from_formula(
...     "log_exercise ~ age * group + (age | subject) + ar1(age | subject)")
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     fit = fit_serial(build_design(spec, datasets.load("blackmore")))
>>> round(fit.loglik, 2), round(fit.phi, 3)
(-759.18, -0.601)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize

from multilevel.design import Design
from multilevel.engine.kernels.serial import weighted_cross
from multilevel.errors import SpecError
from multilevel.frequentist.mixed import SINGULAR_TOL, random_variances
from multilevel.frequentist.result import FrequentistFit, GroupCovariance
from multilevel.frequentist.serial_deviance import SerialDeviance

__all__ = ["fit_serial"]

_PHI_MAX = 1.0 - 1e-8


def _optimize(dev: SerialDeviance, reml: bool, kind: str) -> tuple[np.ndarray, optimize.OptimizeResult]:
    bounds = [(0.0, None) if r == c else (None, None) for r, c in zip(dev.rows, dev.cols, strict=True)]
    bounds.append((-_PHI_MAX, _PHI_MAX) if kind == "ar1" else (0.0, _PHI_MAX))
    theta0 = np.where(dev.rows == dev.cols, 1.0, 0.0)
    starts = (-0.5, 0.0, 0.5) if kind == "ar1" else (0.2, 0.5, 0.8)
    def run(x0: np.ndarray, ftol: float) -> optimize.OptimizeResult:
        return optimize.minimize(lambda x: dev(x, reml), x0, method="L-BFGS-B", bounds=bounds,
                                 options={"maxiter": 5000, "ftol": ftol, "gtol": 1e-10})

    # The criterion can have a second local optimum in phi (Blackmore: phi = 0.61 at a
    # log-likelihood 4.5 lower than at -0.60), so start from several values of phi, and a
    # variance on its bound from inside again.
    best = min((run(np.r_[theta0, phi0], 1e-10) for phi0 in starts), key=lambda r: r.fun)
    diag = np.flatnonzero(dev.rows == dev.cols)
    stuck = diag[best.x[diag] < SINGULAR_TOL]
    if stuck.size:  # a variance at 0 can be a local optimum (Blackmore car1): restart inside
        for scale in (0.1, 0.5):
            x0 = best.x.copy()
            x0[stuck] = scale * max(1e-2, float(np.max(best.x[diag])))
            best = min(best, run(x0, 1e-10), key=lambda r: r.fun)
    final = run(best.x, 1e-15)
    best = final if final.fun <= best.fun else best
    return best.x, best


def _ranef(dev: SerialDeviance, lam: np.ndarray, phi: float, beta: np.ndarray, sigma2: float) -> pd.DataFrame:
    st, g, q = dev.stats, dev.design.groups[0], dev.q
    w, wx = np.empty_like(st.s0z), np.empty_like(st.s0x)
    weighted_cross(phi, *st.kernel_args(), w, wx)  # the z rows of W_j per group
    m = np.eye(q) + np.einsum("ca,jcd,db->jab", lam, w[:, :q, :q], lam)
    c = w[:, :q, -1] - w[:, :q, q:-1] @ beta
    minv = np.linalg.inv(m)
    cov = np.einsum("ab,jbc,dc->jad", lam, minv, lam)  # Lambda M^-1 Lambda'
    modes = np.einsum("jab,jb->ja", cov, c)
    sd = np.sqrt(sigma2 * np.diagonal(cov, axis1=1, axis2=2))
    return pd.DataFrame({
        "group": g.factor,
        "level": np.repeat(np.asarray(g.levels, dtype=object), q),
        "term": np.tile(np.asarray(g.term_names, dtype=object), g.n_levels),
        "estimate": modes.ravel(), "cond_sd": sd.ravel(),
    })


def fit_serial(design: Design, method: str | None = None, n_agq: int = 1) -> FrequentistFit:
    """REML (default) or ML fit of a Gaussian design with an ``ar1``/``car1`` term (module
    docstring); the :class:`FrequentistFit` has ``phi`` and ``correlation`` set."""
    spec = design.spec
    method = method or "REML"
    if method not in ("REML", "ML") or n_agq != 1:
        raise SpecError(f"Models with {spec.correlation.to_formula()} are fitted by REML or ML, "
                        f"not {method!r}.")
    reml = method == "REML"
    dev = SerialDeviance(design)
    x, res = _optimize(dev, reml, spec.correlation.kind)
    value, t = dev.parts(x, reml)
    p = dev.p
    r_x, qty = t[:p, :p], t[p, :p]
    beta = np.linalg.solve(r_x.T, qty)  # T's factor: [[R_X', 0], [qty, r]]
    df = dev.n - p if reml else dev.n
    sigma2 = t[p, p] ** 2 / df
    rxinv = np.linalg.inv(r_x)
    cov_fixed = sigma2 * rxinv.T @ rxinv
    lam = dev.lam(x[:-1])
    g = design.groups[0]
    cov = sigma2 * lam @ lam.T
    names = list(design.fixed_names)
    t = g.term_names
    theta_names = [f"{g.factor}.{t[r]}" if r == c else f"{g.factor}.{t[r]}.{t[c]}"
                   for r, c in zip(dev.rows, dev.cols, strict=True)]
    singular = bool(np.any(np.diag(lam) < SINGULAR_TOL))
    groups = (GroupCovariance(g.factor, g.term_names, g.correlated and g.n_terms > 1, cov),)
    messages = [f"The optimizer did not converge: {res.message}"] * (not res.success)
    messages += ["boundary (singular) fit: see help('isSingular')"] * singular
    messages += [f"{design.dropped_rows} rows with missing values were dropped."] * bool(design.dropped_rows)
    return FrequentistFit(
        spec=spec, method=method, n_agq=1,
        beta=pd.Series(beta, index=names, name="estimate"),
        cov_fixed=pd.DataFrame(cov_fixed, index=names, columns=names),
        theta=pd.Series(x[:-1], index=theta_names, name="theta"),
        sigma=math.sqrt(sigma2), groups=groups,
        ranef_table=_ranef(dev, lam, float(x[-1]), beta, sigma2),
        loglik=-0.5 * value, nobs=design.n_obs, converged=bool(res.success), singular=singular,
        messages=tuple(messages), var_fixed=float(np.var(design.X @ beta, ddof=1)),
        var_random=random_variances(design, groups), var_residual=sigma2, design=design,
        refit=fit_serial, phi=float(x[-1]), correlation=spec.correlation.kind,
    )
