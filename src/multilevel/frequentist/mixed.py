r"""REML, ML, Laplace and adaptive Gauss-Hermite fits that agree with lme4, via mixedlm.

The model is the one of :class:`~multilevel.spec.ModelSpec`,

.. math::

    g(E[y \mid u]) = X\beta + Z u,\qquad u = \Lambda_\theta v,\quad v \sim N(0, \sigma^2 I),

with :math:`\Lambda_\theta` block diagonal (one lower-triangular relative Cholesky factor per
grouping factor, diagonal for ``(x || g)``) and :math:`\sigma = 1` for the logistic families.

* Gaussian: :math:`\theta` maximises the profiled REML (default) or ML log-likelihood;
  :math:`\operatorname{Var}(\hat\beta) = \sigma^2 (X^\top V^{-1} X)^{-1}` as lme4's ``vcov``.
* Logistic (logit link): :math:`(\theta, \beta)` maximise the Laplace approximation (default)
  or, with one scalar group term, the ``n_agq``-point adaptive Gauss-Hermite approximation of
  :math:`\log\int p(y \mid u)\,p(u)\,du`. As lme4's default, :math:`\operatorname{Var}(\hat
  \beta)` is the :math:`\beta` block of :math:`2H^{-1}`, :math:`H` the central finite-difference
  Hessian (step :data:`HESSIAN_STEP`) of the deviance jointly over :math:`(\theta, \beta)`.

Only this module imports mixedlm; :func:`multilevel.frequentist.fit_frequentist` is the
(spec, data) entry point. It is handed numeric columns built from the
:class:`~multilevel.design.Design` (``x<j>``, ``z<k>_<j>``, group codes ``g<k>``), and results
are mapped back to lme4 names (``(Intercept)``, ``I(age^2)``) and the design's level labels.

Conventions (lme4 1.1 / performance 0.10 with insight 0.19):

* ``loglik`` is what lme4's ``logLik()`` returns: the REML log-likelihood for REML fits, the
  Laplace value with the binomial constant, and for ``n_agq > 1`` the value *relative to the
  saturated model* (lme4 leaves that constant out there). ``deviance`` is ``-2 * loglik`` (the
  REML criterion for REML fits).
* Gaussian p-values use the normal approximation to the t statistic (lme4 prints none); for the
  logistic families they are lme4's Wald z-tests.
* ICC (Nakagawa, as ``performance::icc``): random variance
  :math:`\sum_k \overline{\operatorname{diag}(Z_k \Sigma_k Z_k^\top)}` over the observed rows,
  :math:`Z_k` the columns of the group's varying terms; residual variance :math:`\sigma^2`, or
  :math:`\pi^2/3` (logit). Adjusted = random / (random + residual); conditional adds
  :math:`\operatorname{var}(X\hat\beta)` to the denominator. This is the same definition as the
  posterior ICC (:mod:`multilevel.results.tables`). It equals ``performance::icc`` except for
  uncorrelated slopes ``(x || g)``: insight 0.19 then counts only the block named after the
  factor (the intercept) and drops lme4's split block ``g.1``, under-stating the random variance;
  we count every term.
"""

from __future__ import annotations

import math
import warnings
from functools import partial
from typing import Any

import mixedlm
import numpy as np
import pandas as pd
from scipy import sparse

from multilevel.design import Design
from multilevel.design.statistics import fitted_variance
from multilevel.errors import DataError, SpecError
from multilevel.frequentist.condvar import MAX_DENSE, Block, inverse_diagonal_blocks
from multilevel.frequentist.deviance import hessian
from multilevel.frequentist.result import FrequentistFit, GroupCovariance
from multilevel.spec.model import ModelSpec

__all__ = ["HESSIAN_STEP", "METHODS", "SINGULAR_TOL", "check_method", "fit_mixed", "glmer_devfun",
           "random_variances"]

METHODS = ("REML", "ML", "Laplace", "AGQ")
HESSIAN_STEP = 1e-4
SINGULAR_TOL = 1e-4


def fit_mixed(design: Design, method: str | None = None, n_agq: int = 1) -> FrequentistFit:
    """Fit the model of ``design`` by REML/ML (Gaussian) or Laplace/AGQ (logistic) with
    mixedlm, as lme4 would (:func:`check_method` validates ``method`` and ``n_agq``)."""
    spec = design.spec
    method, n_agq = check_method(spec, method, n_agq)
    frame, formula, weights = _mixedlm_data(design)
    res, messages = _run_mixedlm(spec, method, n_agq, frame, formula, weights)
    theta, lambdas, singular = _theta_blocks(res, design)
    sigma = float(res.sigma) if spec.family == "gaussian" else None
    scale = 1.0 if sigma is None else sigma**2
    groups = tuple(
        GroupCovariance(g.factor, g.term_names, g.correlated, scale * lam @ lam.T)
        for g, lam in zip(design.groups, lambdas, strict=True)
    )
    if sigma is not None:
        cov, loglik = np.asarray(res.vcov(), dtype=float), float(res.logLik())
    else:
        cov = _glmm_vcov(res, frame, formula, weights, n_agq, messages)
        loglik = float(res.logLik()) if n_agq == 1 else -0.5 * float(res.deviance)
    messages += [f"The optimizer did not converge: {res.message}"] * (not res.converged)
    if singular:  # lme4's wording and rule, in place of mixedlm's own note
        messages = [m for m in messages if "singular" not in m.lower()]
        messages.append("boundary (singular) fit: see help('isSingular')")
    messages += [f"{design.dropped_rows} rows with missing values were dropped."] * bool(
        design.dropped_rows
    )
    names, beta = list(design.fixed_names), np.asarray(res.beta, dtype=float)
    return FrequentistFit(
        spec=spec,
        method=method,
        n_agq=n_agq,
        beta=pd.Series(beta, index=names, name="estimate"),
        cov_fixed=pd.DataFrame(cov, index=names, columns=names),
        theta=theta,
        sigma=sigma,
        groups=groups,
        ranef_table=_ranef_table(res, design),
        loglik=loglik + design.loglik_offset,  # counts from Dask: the original rows' value
        nobs=design.n_rows,
        converged=bool(res.converged),
        singular=singular,
        messages=tuple(messages),
        var_fixed=float(np.var(design.X @ beta, ddof=1)) if design.row_weights is None
        else float(fitted_variance(design, beta)),
        var_random=random_variances(design, groups),
        var_residual=scale if sigma is not None else math.pi**2 / 3.0,
        design=design,
        refit=fit_mixed,
        laplace=None if sigma is not None else partial(glmer_devfun, design, n_agq),
    )


def _run_mixedlm(
    spec: ModelSpec,
    method: str,
    n_agq: int,
    frame: pd.DataFrame,
    formula: str,
    weights: np.ndarray | None,
) -> tuple[Any, list[str]]:
    """Fit with mixedlm, collecting its warnings as messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if spec.family == "gaussian":
            res = mixedlm.lmer(formula, frame, REML=method == "REML")
        else:
            binomial = mixedlm.families.Binomial()
            res = mixedlm.glmer(formula, frame, family=binomial, nAGQ=n_agq, weights=weights)
    return res, [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]


def check_method(spec: ModelSpec, method: str | None, n_agq: int = 1) -> tuple[str, int]:
    """Validate the method for the family and structure; return (method, n_agq).

    Examples
    --------
    >>> check_method(ModelSpec.from_formula("y ~ x + (1 | g)"), "ML")
    ('ML', 1)
    """
    if spec.se is not None:
        if method not in (None, "REML"):
            raise SpecError(f"Models with known standard errors are fitted by REML, not {method!r}.")
        return "REML", 1
    if isinstance(n_agq, bool) or not isinstance(n_agq, int) or n_agq < 1:
        raise SpecError(f"n_agq must be a whole number >= 1, got {n_agq!r}.")
    if method is None:
        method = "REML" if spec.family == "gaussian" else ("AGQ" if n_agq > 1 else "Laplace")
    if method not in METHODS:
        raise SpecError(f"Unknown method {method!r}: choose one of {', '.join(METHODS)}.")
    allowed = ("REML", "ML") if spec.family == "gaussian" else ("Laplace", "AGQ")
    if method not in allowed:
        raise SpecError(
            f"method={method!r} does not suit family={spec.family!r}: use {allowed[0]!r} "
            f"(default) or {allowed[1]!r}" + (" with n_agq > 1." if spec.is_logistic else ".")
        )
    if method == "AGQ":
        if n_agq < 2:
            raise SpecError("method='AGQ' needs n_agq > 1 (n_agq=1 is the Laplace fit).")
        if len(spec.groups) != 1 or len(spec.groups[0].terms) != 1:
            raise SpecError(
                "Adaptive Gauss-Hermite quadrature (n_agq > 1) needs a single scalar group term "
                f"such as (1 | g), as in lme4; this model has {spec.to_formula()!r}. Use "
                "method='Laplace'."
            )
    elif n_agq != 1:
        raise SpecError(f"n_agq={n_agq} is only used with method='AGQ'.")
    return method, n_agq


def _mixedlm_data(design: Design) -> tuple[pd.DataFrame, str, np.ndarray | None]:
    """Numeric columns and a formula for mixedlm, so none of its naming reaches users."""
    n = design.trials
    if n is not None and np.any(n == 0):
        raise DataError(
            f"{int(np.sum(n == 0))} rows have zero trials and carry no information: drop them."
        )
    y = design.y if n is None else np.divide(design.y, n, out=np.zeros_like(n), where=n > 0)
    cols: dict[str, np.ndarray | list[str]] = {"y": y}
    xs = [f"x{j}" for j in range(design.X.shape[1])]
    cols.update({name: design.X[:, j] for j, name in enumerate(xs)})
    bars = []
    for k, g in enumerate(design.groups):
        zs = [f"z{k}_{j}" for j in range(g.n_terms)]
        cols.update({name: g.Z[:, j] for j, name in enumerate(zs)})
        labels = [f"L{c:07d}" for c in range(g.n_levels)]
        cols[f"g{k}"] = pd.Categorical.from_codes(g.index, categories=labels)
        bar = "|" if g.correlated or g.n_terms == 1 else "||"
        bars.append(f"(0 + {' + '.join(zs)} {bar} g{k})")
    formula = "y ~ 0 + " + " + ".join(xs + bars)
    return pd.DataFrame(cols), formula, None if n is None else n.astype(float)


def glmer_devfun(design: Design, n_agq: int = 1) -> tuple[Any, list[int]]:
    """mixedlm's Laplace (or AGQ) deviance of ``(theta, beta)`` for a logistic design, and each
    group's offset in ``theta`` (row-major lower triangle per correlated block)."""
    frame, formula, weights = _mixedlm_data(design)
    parsed = mixedlm.glFormula(formula, frame, family=mixedlm.families.Binomial(),
                               weights=weights)
    devfun = mixedlm.mkGlmerDevfun(parsed, nAGQ=n_agq)
    return devfun, [start for start, _ in _structures(parsed, design)]


def _structures(res: Any, design: Design) -> list[tuple[int, Any]]:
    """(theta offset, mixedlm structure) for each of our groups, in design order."""
    offsets, start = {}, 0
    for s in res.matrices.random_structures:
        q = s.n_terms
        offsets[s.grouping_factor] = (start, s)
        start += q * (q + 1) // 2 if s.correlated and q > 1 else q
    return [offsets[f"g{k}"] for k in range(len(design.groups))]


def _theta_blocks(res: Any, design: Design) -> tuple[pd.Series, list[np.ndarray], bool]:
    """lme4-named theta (column-major per block), Lambda blocks and lme4's isSingular."""
    theta = np.asarray(res.theta, dtype=float)
    names, values, lambdas, diag = [], [], [], []
    for g, (start, s) in zip(design.groups, _structures(res, design), strict=True):
        q = g.n_terms
        lam = np.zeros((q, q))
        if s.correlated and q > 1:
            lam[np.tril_indices(q)] = theta[start : start + q * (q + 1) // 2]  # row-major
        else:
            lam[np.diag_indices(q)] = theta[start : start + q]
        lambdas.append(lam)
        for j in range(q):
            rows = range(j, q) if s.correlated else (j,)
            for i in rows:
                t = g.term_names
                names.append(f"{g.factor}.{t[i]}" if i == j else f"{g.factor}.{t[i]}.{t[j]}")
                values.append(lam[i, j])
            diag.append(lam[j, j])
    singular = bool(np.any(np.asarray(diag) < SINGULAR_TOL))
    return pd.Series(values, index=names, name="theta", dtype=float), lambdas, singular


def _glmm_vcov(
    res: Any,
    frame: pd.DataFrame,
    formula: str,
    weights: np.ndarray | None,
    n_agq: int,
    messages: list[str],
) -> np.ndarray:
    """Fixed-effect covariance from the joint (theta, beta) deviance Hessian, as lme4."""
    family = mixedlm.families.Binomial()
    parsed = mixedlm.glFormula(formula, frame, family=family, weights=weights)
    devfun = mixedlm.mkGlmerDevfun(parsed, nAGQ=n_agq)
    theta, beta = np.asarray(res.theta, float), np.asarray(res.beta, float)
    H = hessian(devfun, np.r_[theta, beta], HESSIAN_STEP)
    p, nt = len(beta), len(theta)
    try:
        V = 2.0 * np.linalg.inv(H)[nt:, nt:]
        V = (V + V.T) / 2.0
        np.linalg.cholesky(V)
        return V
    except np.linalg.LinAlgError:
        messages.append(
            "The finite-difference Hessian is not positive definite; standard errors use the "
            "covariance at fixed theta (lme4's use.hessian=FALSE)."
        )
        return np.asarray(res.vcov(), dtype=float).reshape(p, p)


def _ranef_table(res: Any, design: Design) -> pd.DataFrame:
    """Conditional modes and sds in the design's level order and names."""
    variances = _conditional_variances(res)
    out = res.ranef(condVar=variances is None)
    values = out if variances is not None else out.values
    frames = []
    for k, (g, (_, s)) in enumerate(zip(design.groups, _structures(res, design), strict=True)):
        pos = np.array([s.level_map[f"L{c:07d}"] for c in range(g.n_levels)])
        zs = [f"z{k}_{j}" for j in range(g.n_terms)]
        modes = np.column_stack([np.asarray(values[f"g{k}"][z], float)[pos] for z in zs])
        var = (np.column_stack([np.asarray(out.condVar[f"g{k}"][z], float)[pos] for z in zs])
               if variances is None else variances[f"g{k}"][pos])
        frames.append(
            pd.DataFrame(
                {
                    "group": g.factor,
                    "level": np.repeat(np.asarray(g.levels, dtype=object), g.n_terms),
                    "term": np.tile(np.asarray(g.term_names, dtype=object), g.n_levels),
                    "estimate": modes.ravel(),
                    "cond_sd": np.sqrt(var.ravel()),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _conditional_variances(res: Any, max_dense: int = MAX_DENSE) -> dict[str, np.ndarray] | None:
    """Conditional variances of the random effects, ``(n_levels, q)`` per mixedlm factor, in
    mixedlm's level order: the same quantity as ``res.ranef(condVar=True)`` (lme4's
    ``condVar``, scaled by sigma^2 for Gaussian fits), computed from the level blocks of the
    inverse precision (:mod:`multilevel.frequentist.condvar`). None when the factors other
    than the largest have more than ``max_dense`` effects (mixedlm's column solves then)."""
    if hasattr(res, "_weighted_projection"):  # lmer: the factor cached for vcov
        proj = res._weighted_projection
        precision, lam, scale = proj.random_factor.precision, proj.lambda_matrix, res.sigma**2
    else:  # glmer: the working system at the mode
        system = res._working_random_system
        precision, lam, scale = system.precision, system.Lambda, 1.0
    structs, blocks, offset = res.matrices.random_structures, [], 0
    if len({s.grouping_factor for s in structs}) < len(structs):
        return None  # a factor split over several terms: mixedlm sums them
    for s in structs:
        blocks.append(Block(offset, s.n_levels, s.n_terms))
        offset += s.n_levels * s.n_terms
    inverse = inverse_diagonal_blocks(precision, blocks, max_dense)
    if inverse is None:
        return None
    lam = sparse.csr_matrix(lam)
    out = {}
    for s, blk, inv in zip(structs, blocks, inverse, strict=True):
        cols = slice(blk.offset, blk.offset + blk.n_terms)
        L = lam[cols, cols].toarray()  # the same relative factor for every level
        cov = np.einsum("ab,lbc,dc->lad", L, inv, L) * scale
        out[s.grouping_factor] = np.diagonal(cov, axis1=1, axis2=2).copy()
    return out


def random_variances(design: Design, groups: tuple[GroupCovariance, ...]) -> tuple[float, ...]:
    """Random-effect variance per factor: ``mean_i z_i' Sigma z_i`` over the observed rows
    (``tr(Sigma Z'Z) / n`` for a design built from statistics)."""
    out = []
    if design.summary is not None or design.row_weights is not None:  # stored Z'Z
        return tuple(float(np.sum(g.cov * design.group(g.factor).z_moment())) for g in groups)
    for g in groups:
        Z = design.group(g.factor).Z
        out.append(float(np.mean(np.einsum("ij,jk,ik->i", Z, g.cov, Z))))
    return tuple(out)
