r"""The course's statistics of a fitted model, posterior and frequentist side by side.

Each function takes a :class:`~multilevel.fit.HierarchicalFit`. Posterior columns are those of
:func:`multilevel.results.describe` (mean, sd, median, a central ``prob`` interval, r_hat,
ess_bulk) computed per draw; the frequentist estimate of the fit's own method (``reml``,
``ml``, ``laplace``) sits in a column named after it.

* :func:`icc_methods`: one-way ANOVA, REML/ML and posterior ICC of each grouping factor.
* :func:`design_effect_table`: :math:`1 + (\tilde n_w - 1)\rho` and :math:`N / \mathrm{deff}`.
* :func:`contextual_effects`: within, between and contextual (between - within) effects.
* :func:`fixed_effect_levels`: each fixed effect labelled level-1, level-2 or cross-level.
* :func:`group_effect_errors`: comparative and diagnostic standard errors of group effects.

Explained variance is in :mod:`multilevel.course.r2`.

Examples
--------
>>> from multilevel import datasets, fit_hierarchical
>>> fit = fit_hierarchical("mAch ~ 1 + (1 | school)", datasets.load("hsb82"), draws=200,
...                        tune=200, chains=2, seed=1, progressbar=False)
>>> icc_methods(fit)["method"].tolist()
['anova', 'reml', 'posterior']
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from formulae import design_matrices
from scipy import sparse, stats

from multilevel import naming
from multilevel.course.data import (
    ar1_effective_n,
    between_name,
    contextual_variables,
    design_effect,
    icc_anova,
    icc_anova_sums,
    within_name,
)
from multilevel.design import FORMULA_ENV
from multilevel.design.serial import lag_power
from multilevel.design.types import require_rows
from multilevel.errors import SpecError
from multilevel.results.core import DEFAULT_PROB, describe, draws_of, effect_summaries
from multilevel.results.tables import icc_draws

__all__ = [
    "serial_effective_n",
    "contextual_effects",
    "design_effect_table",
    "fixed_effect_levels",
    "group_effect_errors",
    "icc_methods",
]


def _adjusted_icc(fit) -> dict[str, np.ndarray]:
    return {lab["group"]: d for lab, d in icc_draws(fit.posterior, fit.design)
            if lab["type"] == "adjusted"}


def _freq_icc(fit) -> dict[str, float]:
    if fit.frequentist is None:
        return {}
    t = fit.frequentist.icc().query("type == 'adjusted'")
    return dict(zip(t["group"], t["estimate"], strict=True))


def icc_methods(fit, prob: float = DEFAULT_PROB) -> pd.DataFrame:
    """The ICC of each grouping factor by three methods, one row each.

    * ``anova``: :func:`~multilevel.course.data.icc_anova` of the response by the factor
      (always the *empty* model's ICC; Gaussian models only);
    * the frequentist method (``reml``/``ml``): Nakagawa's adjusted ICC
      :math:`\\tau^2 / (\\tau^2 + \\sigma^2)` at the estimates;
    * ``posterior``: the same ratio per posterior draw (mean, median, interval).

    Compare like with like: for the ANOVA estimator fit the empty model ``y ~ 1 + (1 | g)``.
    """
    post, freq, rows = _adjusted_icc(fit), _freq_icc(fit), []
    for g in fit.design.groups:
        if not fit.design.spec.is_logistic:
            if g.y_sums is not None:  # data larger than memory: from per-group sums
                a = float(icc_anova_sums(g.counts, g.y_sums)["icc"].iloc[0])
            else:
                df = pd.DataFrame({"y": fit.design.y, "g": g.index})
                a = float(icc_anova(df, "y", "g")["icc"].iloc[0])
            rows.append({"group": g.factor, "method": "anova", "mean": a, "median": a})
        if g.factor in freq:
            f = freq[g.factor]
            rows.append({"group": g.factor, "method": fit.method, "mean": f, "median": f})
        d = describe(post[g.factor], prob)
        rows.append({"group": g.factor, "method": "posterior", **d})
    return pd.DataFrame(rows)


def design_effect_table(fit, prob: float = DEFAULT_PROB) -> pd.DataFrame:
    r"""ICC, design effect and effective sample size per grouping factor.

    With group sizes :math:`n_j`, :math:`N = \sum n_j`, :math:`\tilde n_w = \sum n_j^2 / N`
    (the average group size when sizes are equal) and the adjusted ICC :math:`\rho` of the
    factor: :math:`\mathrm{deff} = 1 + (\tilde n_w - 1)\rho` and :math:`N_\mathrm{eff} = N /
    \mathrm{deff}`, per posterior draw and at the frequentist estimate.

    Columns: group, n_groups, n_mean, n_weighted, stat (icc, design_effect, effective_n), the
    posterior summary and the frequentist estimate.
    """
    post, freq, rows = _adjusted_icc(fit), _freq_icc(fit), []
    for g in fit.design.groups:
        n = g.counts
        base = {"group": g.factor, "n_groups": g.n_levels, "n_mean": float(n.mean()),
                "n_weighted": float(np.sum(n**2) / n.sum())}
        deff = design_effect(post[g.factor], n)
        for stat, draws, fn in (
            ("icc", post[g.factor], lambda r: r),
            ("design_effect", deff, lambda r, n=n: design_effect(r, n)),
            ("effective_n", n.sum() / deff, lambda r, n=n: n.sum() / design_effect(r, n)),
        ):
            row = {**base, "stat": stat, **describe(draws, prob)}
            if g.factor in freq:
                row[fit.method] = float(fn(freq[g.factor]))
            rows.append(row)
    return pd.DataFrame(rows)


def _is_centred(design, j: int) -> bool:
    """Whether fixed-effect column ``j`` has mean zero within every group (a deviation)."""
    require_rows(design, "Checking that a within-group column is centred")
    g = design.groups[0]
    col = design.X[:, j]
    means = np.bincount(g.index, weights=col, minlength=g.n_levels) / np.maximum(g.counts, 1)
    return bool(np.all(np.abs(means) <= 1e-8 * max(float(np.abs(col).max()), 1.0)))


def contextual_effects(
    fit,
    x: str | None = None,
    *,
    within: str | None = None,
    between: str | None = None,
    prob: float = DEFAULT_PROB,
) -> pd.DataFrame:
    r"""Within, between and contextual effects of a level-1 variable and its group mean.

    In :math:`y_{ij} = \gamma_0 + \gamma_B \bar x_{.j} + \gamma_W (x_{ij} - \bar x_{.j}) +
    \dots` (columns ``x_between`` and ``x_within``, e.g. from ``contextual=["x"]``) the within
    effect is :math:`\gamma_W`, the between effect :math:`\gamma_B` and the contextual effect
    :math:`\gamma_B - \gamma_W`: the difference the group mean makes for two individuals with
    the same :math:`x` (Snijders and Bosker 2012, sec. 4.6). With the raw ``x`` beside the
    group mean instead, :math:`y = \gamma_0 + \gamma_C \bar x_{.j} + \gamma_W x_{ij}`, the
    group-mean coefficient is the contextual effect and between = :math:`\gamma_C + \gamma_W`.

    ``x`` picks the variable (default: every ``x`` with ``x_between`` in the model);
    ``within``/``between`` name the two fixed-effect columns directly (e.g.
    ``within="cses", between="meanses"``; whether ``within`` is a deviation or the raw variable
    is read from the data: a deviation averages to 0 in every group). Frequentist columns:
    estimate, std_error (from the covariance of the estimates,
    :math:`\mathrm{var}(\hat\gamma_B) + \mathrm{var}(\hat\gamma_W) - 2\mathrm{cov}`) and a
    normal ``prob`` interval.
    """
    names = list(fit.design.fixed_names)
    if within is not None or between is not None:
        if within not in names or between not in names:
            raise SpecError(f"within={within!r} and between={between!r} must both be fixed "
                            f"effects of the model: {names}.")
        pairs = [(within, within, between, not _is_centred(fit.design, names.index(within)))]
    else:
        xs = [x] if x is not None else list(contextual_variables(names))
        if not xs or any(between_name(v) not in names for v in xs):
            raise SpecError(
                f"No contextual pair found among the fixed effects {names}: fit a model with "
                "contextual=['x'] (columns x_between, x_within) or pass within= and between=."
            )
        pairs = [(v, within_name(v) if within_name(v) in names else v, between_name(v),
                  within_name(v) not in names) for v in xs]
    b = draws_of(fit.posterior, naming.FIXED)
    freq = fit.frequentist
    rows = []
    for var, w, bt, raw in pairs:
        iw, ib = names.index(w), names.index(bt)
        A = np.zeros((3, len(names)))  # rows: within, between, contextual as contrasts of b
        A[0, iw] = 1.0
        A[1, ib], A[1, iw] = 1.0, float(raw)
        A[2, ib], A[2, iw] = 1.0, float(raw) - 1.0
        draws = np.einsum("kp,cdp->kcd", A, b)
        for k, effect in enumerate(("within", "between", "contextual")):
            row = {"variable": var, "effect": effect, **describe(draws[k], prob)}
            if freq is not None:
                est = float(A[k] @ freq.beta.to_numpy())
                se = float(np.sqrt(A[k] @ freq.cov_fixed.to_numpy() @ A[k]))
                z = stats.norm.ppf((1 + prob) / 2)
                row.update({fit.method: est, f"{fit.method}_se": se,
                            f"{fit.method}_lower": est - z * se,
                            f"{fit.method}_upper": est + z * se})
            rows.append(row)
    return pd.DataFrame(rows)


def _column_variables(design) -> list[set[str]]:
    """The data columns behind each fixed-effect column, in ``design.fixed_names`` order."""
    require_rows(design, "Labelling fixed effects as level-1 or level-2")
    rhs = " + ".join(["1" if design.spec.intercept else "0", *design.spec.fixed])
    common = design_matrices(rhs, design.frame, na_action="error", env=FORMULA_ENV).common
    out: list[set[str]] = []
    for name, sl in common.slices.items():
        term = common.terms[name]
        out += [{v for v in getattr(term, "var_names", set()) if v}] * (sl.stop - sl.start)
    if len(out) != len(design.fixed_names):  # pragma: no cover - formulae changed its layout
        raise RuntimeError("Fixed-effect columns could not be matched to their terms.")
    return out


def fixed_effect_levels(fit, group: str | None = None, prob: float = DEFAULT_PROB) -> pd.DataFrame:
    """The fixed effects (:meth:`HierarchicalFit.fixed_effects`) with the level of each term.

    A data column is *level-2* for the grouping factor ``group`` (default: the first) when it is
    constant within every group, *level-1* otherwise. A term is ``intercept``, ``level-1``,
    ``level-2`` or, when it multiplies a level-1 and a level-2 variable, a ``cross-level``
    interaction: it models how the level-1 slope varies with the group's characteristics
    (and, with a varying slope, explains part of the slope variance). ``role`` marks the
    ``x_between`` (group mean) and ``x_within`` (deviation) columns of contextual models and
    ``varies`` whether the term also has a group-level variance.
    """
    d = fit.design
    g = d.group(group) if group is not None else d.groups[0]
    frame = d.frame.assign(_g=g.index)
    level2 = {c: bool((frame.groupby("_g", observed=True)[c].nunique(dropna=False) <= 1).all())
              for c in d.frame.columns}
    ctx = contextual_variables(d.fixed_names)
    roles = {between_name(x): "group mean" for x in ctx} | {
        within_name(x): "within-group deviation" for x in ctx}
    levels, kinds = [], []
    for cols in _column_variables(d):
        lv = {level2[c] for c in cols}
        if not cols:
            kinds.append("intercept")
            levels.append("")
        elif lv == {True}:
            kinds.append("level-2" if len(cols) == 1 else "level-2 interaction")
            levels.append("2")
        elif lv == {False}:
            kinds.append("level-1" if len(cols) == 1 else "level-1 interaction")
            levels.append("1")
        else:
            kinds.append("cross-level interaction")
            levels.append("1x2")
    table = fit.fixed_effects(prob)
    table.insert(1, "level", levels)
    table.insert(2, "kind", kinds)
    table.insert(3, "role", [roles.get(n, "") for n in d.fixed_names])
    table.insert(4, "varies", [n in g.term_names for n in d.fixed_names])
    return table


def group_effect_errors(fit, group: str | None = None) -> pd.DataFrame:
    r"""Comparative and diagnostic standard errors of every group effect :math:`u_{ja}`.

    Snijders and Bosker (2012, sec. 4.8): the *comparative* standard error
    :math:`\mathrm{sd}(\hat u_j - u_j)` is for comparing groups (which schools differ); the
    *diagnostic* one, :math:`\mathrm{sd}(\hat u_j) = \sqrt{\tau_a^2 - \mathrm{var}(\hat u_j -
    u_j)}`, is for checking the model (standardised level-2 residuals).

    * frequentist: ``blup`` (conditional mode), ``comparative_sd`` (lme4's conditional sd) and
      ``diagnostic_sd`` :math:`= \sqrt{\max(\hat\tau_a^2 - \mathrm{condVar}, 0)}`;
    * posterior: ``posterior_mean``, ``posterior_sd`` (the comparative sd) and
      ``posterior_diagnostic_sd`` :math:`= \sqrt{\max(E[\tau_a^2 \mid y] - \mathrm{var}(u_{ja}
      \mid y), 0)}` (law of total variance: :math:`\mathrm{var}(u) = E\,\mathrm{var}(u \mid y)
      + \mathrm{var}\,E(u \mid y)`).

    Columns: group, level, term, n and the above.
    """
    d, frames, summaries = fit.design, [], effect_summaries(fit.idata)
    for g in d.groups:
        if group is not None and g.factor != group:
            continue
        tau2 = (draws_of(fit.posterior, naming.sd_name(g.factor)) ** 2).reshape(-1, g.n_terms)
        if summaries is not None:  # group_draws='summary': per-level mean and sd
            s = summaries[naming.effect_name(g.factor)]
            mean_u, var_u = s.sel(summary="mean").to_numpy(), s.sel(summary="sd").to_numpy() ** 2
        else:
            u = draws_of(fit.posterior, naming.effect_name(g.factor)).reshape(-1, g.n_levels,
                                                                                g.n_terms)
            mean_u, var_u = u.mean(axis=0), u.var(axis=0, ddof=1)
        diag = np.sqrt(np.clip(tau2.mean(axis=0)[None, :] - var_u, 0.0, None))
        table = pd.DataFrame({
            "group": g.factor,
            "level": np.repeat(np.asarray(g.levels, dtype=object), g.n_terms),
            "term": np.tile(np.asarray(g.term_names, dtype=object), g.n_levels),
            "n": np.repeat(g.counts, g.n_terms),
            "posterior_mean": mean_u.ravel(),
            "posterior_sd": np.sqrt(var_u).ravel(),
            "posterior_diagnostic_sd": diag.ravel(),
        })
        if fit.frequentist is not None:
            ranef = fit.frequentist.ranef().rename(columns={"estimate": "blup",
                                                            "cond_sd": "comparative_sd"})
            table = table.merge(ranef, on=["group", "level", "term"], how="left")
            cov = next(c for c in fit.frequentist.groups if c.factor == g.factor).cov
            tau2_hat = table["term"].map(dict(zip(g.term_names, np.diag(cov), strict=True)))
            table["diagnostic_sd"] = np.sqrt(np.clip(tau2_hat - table["comparative_sd"] ** 2,
                                                     0.0, None))
        frames.append(table)
    if not frames:
        raise KeyError(f"No grouping factor {group!r}; the model has "
                       f"{[g.factor for g in d.groups]}.")
    return pd.concat(frames, ignore_index=True)


def serial_effective_n(fit, prob: float = DEFAULT_PROB) -> pd.DataFrame:
    r"""Effective sample size of every series of an AR(1)/CAR(1) model, and in total.

    Two rows per series:

    * ``exact``: :math:`\mathbf 1' R_j(\phi)^{-1} \mathbf 1`, the number of independent
      measurements that would estimate the series' mean as precisely (the generalised least
      squares mean has variance :math:`\sigma^2 / \mathbf 1'R_j^{-1}\mathbf 1`), for the
      series' actual time gaps;
    * ``formula``: the course's :math:`n (1 - \rho)/(1 + \rho)`
      (:func:`~multilevel.course.ar1_effective_n`, from :math:`\operatorname{Var}(\bar Y) =
      \sigma^2/n \cdot (1+\rho)/(1-\rho)` for equally spaced measurements), with
      :math:`\rho` the correlation of consecutive measurements, :math:`\phi^{d}` averaged
      over the series' time steps :math:`d` (``phi`` is per time unit: Blackmore's ages are
      mostly two years apart, so :math:`\rho \approx \phi^2`). Both agree for long, equally
      spaced series.

    Per posterior draw of ``phi`` (and at the REML/ML estimate). Columns: series (the level,
    and ``'total'``), n, stat, the posterior summary and the frequentist value.
    """
    ser = fit.design.serial
    if ser is None:
        raise SpecError(
            "effective_n() needs a model with correlated residuals, such as '+ ar1(time | "
            "subject)'; for clustering use fit.design_effect()."
        )
    phi = draws_of(fit.posterior, naming.PHI)
    freq = getattr(fit.frequentist, "phi", None)
    sizes = ser.series_sizes()
    n_series = len(sizes)
    pair_series = ser.series[ser.first]
    pairs_per = np.bincount(pair_series, minlength=n_series)
    onehot = sparse.csr_matrix((np.ones(len(pair_series)), (np.arange(len(pair_series)),
                                pair_series)), shape=(len(pair_series), n_series))

    def per_series(values: np.ndarray, fn) -> np.ndarray:  # sum of fn(r) over each series' pairs
        r = lag_power(np.asarray(values, dtype=float).reshape(-1), ser.lag)
        return np.asarray(onehot.T @ fn(r).T).T.reshape(np.shape(values) + (n_series,))

    def exact(values: np.ndarray) -> np.ndarray:  # 1'R^-1 1 = n - 2 sum r / (1 + r)
        return sizes - 2.0 * per_series(values, lambda r: r / (1.0 + r))

    def formula(values: np.ndarray) -> np.ndarray:
        rho = per_series(values, lambda r: r) / np.maximum(pairs_per, 1)  # one row: rho = 0
        return ar1_effective_n(rho, sizes)

    labels = [*ser.series_levels, "total"]
    rows = []
    for stat, fn in (("exact", exact), ("formula", formula)):
        draws = fn(phi)
        draws = np.concatenate([draws, draws.sum(axis=-1, keepdims=True)], axis=-1)
        at = None
        if freq is not None:
            at = fn(np.array(freq))
            at = np.append(at, at.sum())
        for k, label in enumerate(labels):
            row = {"series": label, "n": int(sizes[k] if k < n_series else sizes.sum()),
                   "stat": stat, **describe(draws[..., k], prob)}
            if at is not None:
                row[fit.method] = float(at[k])
            rows.append(row)
    return pd.DataFrame(rows)
