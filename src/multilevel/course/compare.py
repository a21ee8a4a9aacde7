r"""Model comparison: deviance, AIC, BIC and likelihood-ratio tests (as lme4's ``anova()``),
with PSIS-LOO beside them.

Frequentist part, per model, from its **ML** fit (a REML fit is refitted by ML first, as
lme4's ``anova()`` does: REML likelihoods of models with different fixed effects are not
comparable; logistic models use their Laplace/AGQ fit): ``n_params`` (fixed effects, variance
parameters and :math:`\sigma`), ``loglik``, ``deviance`` :math:`= -2\ell`, ``aic`` :math:`=
-2\ell + 2p`, ``bic`` :math:`= -2\ell + p\log N`. Models are ordered by ``n_params`` and each
is tested against the one before: :math:`\chi^2 = 2(\ell_k - \ell_{k-1})` (0 if negative) on
:math:`p_k - p_{k-1}` degrees of freedom (``p_value``).

REML comparisons (nlme's ``anova.lme``; lme4's ``anova(..., refit = FALSE)``): models with
the *same* fixed effects fitted by REML can be compared on their REML likelihoods, which is
what nlme does and what the course's AR(1) table shows; BIC then uses :math:`\log(N - p)` as
nlme. ``refit=None`` (default) does this when a model has correlated residuals (``ar1()``,
``car1()``: nlme's models) and all are REML fits with the same fixed effects; otherwise models
are refitted by ML as lme4 does. ``refit=True`` / ``False`` force either.

Variance on the boundary: when the larger model adds exactly one varying term (one variance,
with its ``df - 1`` covariances) and the same fixed effects, :math:`H_0` puts a variance at 0,
the edge of its range, and the reference distribution is the 50:50 mixture of
:math:`\chi^2_{df-1}` and :math:`\chi^2_{df}` (Self and Liang 1987; Stram and Lee 1994):
``p_boundary`` :math:`= \tfrac12 P(\chi^2_{df-1} > \chi^2) + \tfrac12 P(\chi^2_{df} >
\chi^2)`; for a single variance this halves the naive p-value.

Bayesian part: PSIS-LOO (``arviz.loo``) of the pointwise *conditional* log-likelihood
:math:`\log p(y_i \mid \beta, u, \theta)` computed per draw from the posterior
(:mod:`multilevel.results.loglik`): :math:`N(y_i \mid x_i\beta + z_i u_{j[i]}, \sigma)` (Gaussian;
known standard errors use :math:`s_i`), Bernoulli/binomial with the logit link. It leaves out
one *observation* given the group effects; Pareto :math:`\hat k` above the threshold flags observations whose
estimate is unreliable (a warning names how many).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd
from scipy import stats

from multilevel import naming
from multilevel.errors import DataError
from multilevel.frequentist import fit_design, fit_frequentist
from multilevel.results.loglik import with_log_likelihood

__all__ = ["compare_models", "ml_fit", "psis_loo"]


def psis_loo(fit, label: str | None = None, **kwargs):
    """``arviz.loo`` of the fit, from :func:`multilevel.results.loglik.pointwise_log_likelihood`.

    The log-likelihood is added to a copy of the fit's ``idata`` as group ``log_likelihood``
    (:func:`multilevel.results.loglik.with_log_likelihood`); the fit itself is not changed. Extra
    keywords go to ``arviz.loo``. When some Pareto k exceed ArviZ's threshold one warning says
    how many (``label`` names the model in it).
    """
    if fit.design.row_weights is not None:
        raise DataError(
            "PSIS-LOO of rows collapsed to binomial counts (a logistic model on Dask data) would "
            "leave out whole (group, covariate) patterns, not single rows: fit the rows in memory "
            "(a pandas DataFrame) for PSIS-LOO."
        )
    tree = with_log_likelihood(fit)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        result = az.loo(tree, var_name=naming.RESPONSE, pointwise=True, **kwargs)
    k = np.asarray(result.pareto_k).ravel()
    bad = int(np.sum(k > result.good_k))
    if bad:
        name = label or fit.spec.to_formula()
        warnings.warn(
            f"Model {name!r}: {bad} of {k.size} observations have Pareto k > "
            f"{result.good_k:.2f} (max {k.max():.2f}), so PSIS-LOO is unreliable for them. "
            "Each left-out row informs its own group effect; treat elpd_loo as approximate or "
            "use K-fold cross-validation by group.",
            UserWarning,
            stacklevel=2,
        )
    return result


def ml_fit(fit, data: pd.DataFrame | None = None):
    """The maximum-likelihood frequentist fit of ``fit`` (refitted when it is REML).

    ``fit`` is a :class:`~multilevel.results.record.FitRecord` (its design's data are reused) or a
    :class:`~multilevel.frequentist.FrequentistFit` (then ``data`` is needed to refit REML).
    """
    freq = getattr(fit, "frequentist", fit) if hasattr(fit, "design") else fit
    spec = fit.spec
    if freq is not None and freq.method != "REML":
        return freq
    if getattr(spec, "se", None) is not None:
        raise DataError("Models with known standard errors are fitted by REML only; they "
                        "cannot enter a likelihood-ratio comparison.")
    method = "ML" if spec.family == "gaussian" else None
    if hasattr(fit, "design"):
        return fit_design(fit.design, method)
    if data is None:
        raise DataError("A REML FrequentistFit needs data= to be refitted by ML.")
    return fit_frequentist(spec, data, method=method)


def _reml_comparable(fits: list, refit: bool | None) -> bool:
    """Whether to compare the REML fits themselves (module docstring)."""
    if refit:
        return False
    freqs = [getattr(f, "frequentist", f) for f in fits]
    if refit is False and any(fr is None for fr in freqs):
        raise DataError("refit=False compares the fits' REML likelihoods, but a fit has no "
                        "frequentist part: fit it with frequentist=True.")
    same = (all(fr is not None and fr.method == "REML" for fr in freqs)
            and len({tuple(fr.beta.index) for fr in freqs}) == 1
            and all(fr.spec.se is None for fr in freqs))
    if refit is False and not same:
        raise DataError(
            "refit=False compares REML likelihoods, which is only valid for REML fits with the "
            "same fixed effects: refit by ML (refit=True) to compare different fixed effects."
        )
    nlme_models = any(f.spec.correlation is not None for f in fits)
    return same and (refit is False or nlme_models)


def _variance_terms(spec) -> int:
    return sum(len(g.terms) for g in spec.groups)


def _boundary_p(chisq: float, df: int, small, large) -> float:
    if df < 1 or set(small.fixed_names) != set(large.fixed_names):
        return math.nan
    if _variance_terms(large.spec) - _variance_terms(small.spec) != 1:
        return math.nan
    lower = 0.0 if df == 1 else float(stats.chi2.sf(chisq, df - 1))
    if df == 1 and chisq <= 0:
        lower = 1.0
    return 0.5 * lower + 0.5 * float(stats.chi2.sf(chisq, df))


class _Fixed:
    """What the LRT needs of one model: the spec and its fixed-effect names."""

    def __init__(self, spec, fixed_names):
        self.spec, self.fixed_names = spec, tuple(fixed_names)


def _lrt_columns(table: pd.DataFrame, info: list[_Fixed]) -> pd.DataFrame:
    ll, p = table["loglik"].to_numpy(), table["n_params"].to_numpy()
    chisq, dfs, pv, pb = [math.nan], [math.nan], [math.nan], [math.nan]
    for k in range(1, len(table)):
        c = 2.0 * max(0.0, ll[k] - ll[k - 1])
        df = int(p[k] - p[k - 1])
        chisq.append(c)
        dfs.append(df)
        pv.append(float(stats.chi2.sf(c, df)) if df > 0 else math.nan)
        pb.append(_boundary_p(c, df, info[k - 1], info[k]))
    return table.assign(chisq=chisq, df=dfs, p_value=pv, p_boundary=pb)


def _loo_columns(table: pd.DataFrame, fits: list) -> pd.DataFrame:
    results = [psis_loo(f, name) if hasattr(f, "idata") else None
               for f, name in zip(fits, table["model"], strict=True)]
    cols: dict[str, list[float]] = {k: [] for k in ("elpd_loo", "se", "p_loo", "n_bad_k",
                                                    "max_k", "elpd_diff", "se_diff")}
    done = [r for r in results if r is not None]
    best = max(done, key=lambda r: r.elpd) if done else None
    for r in results:
        if r is None:
            for v in cols.values():
                v.append(math.nan)
            continue
        k = np.asarray(r.pareto_k).ravel()
        bad = int(np.sum(k > r.good_k))
        diff = np.asarray(r.elpd_i).ravel() - np.asarray(best.elpd_i).ravel()
        for key, value in (("elpd_loo", r.elpd), ("se", r.se), ("p_loo", r.p),
                           ("n_bad_k", bad), ("max_k", float(k.max())),
                           ("elpd_diff", float(diff.sum())),
                           ("se_diff", float(np.sqrt(diff.size * diff.var(ddof=1))))):
            cols[key].append(float(value))
    return table.assign(**cols)


def compare_models(
    fits: Sequence,
    *,
    names: Sequence[str] | None = None,
    loo: bool = True,
    data: pd.DataFrame | None = None,
    refit: bool | None = None,
) -> pd.DataFrame:
    """One table comparing nested or non-nested models of the same data (module docstring).

    Parameters
    ----------
    fits : sequence of HierarchicalFit or FrequentistFit
        Models of the same rows and response. Frequentist fits get no LOO columns.
    names : sequence of str, optional
        Labels (default: each spec's lme4 formula).
    loo : bool
        Add the PSIS-LOO columns (elpd_loo, se, p_loo, n_bad_k, max_k, and elpd_diff/se_diff
        against the model with the highest elpd).
    data : DataFrame, optional
        Only for REML FrequentistFits, which must be refitted by ML.
    refit : bool, optional
        Refit REML fits by ML (True, lme4's ``anova()``), compare the REML fits themselves
        (False; same fixed effects only), or (None) the nlme rule of the module docstring.

    Returns
    -------
    pandas.DataFrame
        model, n_params, loglik, deviance, aic, bic, chisq, df, p_value, p_boundary, (LOO),
        ordered by n_params as lme4's ``anova()``.
    """
    fits = list(fits)
    if len(fits) < 2:
        raise ValueError("compare_models needs at least two fits.")
    names = list(names) if names is not None else [f.spec.to_formula() for f in fits]
    if len(names) != len(fits) or len(set(names)) != len(names):
        raise ValueError("names must give one distinct label per fit.")
    reml = _reml_comparable(fits, refit)
    mls = [getattr(f, "frequentist", f) if reml else ml_fit(f, data) for f in fits]
    nobs = {m.nobs for m in mls}
    if len(nobs) != 1:
        raise DataError(f"The models were fitted to different numbers of rows {sorted(nobs)}: "
                        "likelihoods of different data cannot be compared.")
    responses = {f.spec.response_formula() for f in fits}
    if len(responses) != 1:
        raise DataError(f"The models have different responses {sorted(responses)}.")
    table = pd.DataFrame({
        "model": names, "n_params": [m.n_params for m in mls],
        "loglik": [m.loglik for m in mls], "deviance": [m.deviance for m in mls],
        "aic": [m.aic for m in mls],
        "bic": [m.deviance + math.log(m.nobs - len(m.beta)) * m.n_params if reml else m.bic
                for m in mls],
        "method": [m.method for m in mls],
    })
    order = np.argsort(table["n_params"].to_numpy(), kind="stable")
    table = table.iloc[order].reset_index(drop=True)
    fits = [fits[i] for i in order]
    info = [_Fixed(m.spec, m.beta.index) for m in (mls[i] for i in order)]
    table = _lrt_columns(table, info)
    if loo:
        table = _loo_columns(table, fits)
    return table
