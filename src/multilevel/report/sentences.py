"""One plain sentence per key statistic of a fit, as the top of ``summary()`` and the report.

* the ICC of each grouping factor (the adjusted ICC of :func:`multilevel.results.tables.icc_table`;
  Higgins' I^2 for known standard errors), with the frequentist value; a nested factor ``a:b``
  is described as the variance between its groups *within* ``a``;
* the design effect ``1 + (n - 1) ICC`` and the effective number of rows
  (:func:`multilevel.course.design_effect_table`), only where it means what it says: one grouping
  factor with a varying intercept alone, Gaussian, no known standard errors and no serially
  correlated residuals (with predictors it uses the residual ICC, and says so);
* the average shrinkage of each varying term: ``1 -`` the mean pooling factor over groups
  (:func:`multilevel.results.shrinkage.shrinkage_table`);
* whether every sampler check passed, and, separately, whether the prior matters (power-scaling
  sensitivity).

Point values are posterior means; brackets hold the central ``prob`` interval. Numbers use the
display forms of :mod:`multilevel.report.formatting`.

Examples
--------
>>> import pandas as pd
>>> icc = pd.DataFrame({"group": ["Subject"], "type": ["adjusted"], "mean": [0.7428],
...                     "lower": [0.5936], "upper": [0.8719], "reml": [0.7217]})
>>> icc_sentences(icc, "Reaction", {"Subject": 18}, "reml", latent=False)
['ICC 0.743 [0.594, 0.872]: 74% of the variance in Reaction lies between the 18 Subject groups (REML 0.722).']
>>> shrinkage_sentences(pd.DataFrame({"group": ["g"] * 2, "term": ["(Intercept)"] * 2,
...                                   "pooling_factor": [0.7, 0.78]}))
['g: group intercepts shrink 26% towards the population value on average.']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from multilevel.course import design_effect_table
from multilevel.report.formatting import sig3, whole

if TYPE_CHECKING:
    from multilevel.results.result import FitResult

__all__ = ["design_effect_sentences", "headline", "icc_sentences", "percent",
           "shrinkage_sentences"]

#: The diagnostics rows that judge the sampler (prior_sensitivity judges the prior).
SAMPLER_CHECKS = ("r_hat", "ess_bulk", "ess_tail", "divergences", "max_treedepth", "e_bfmi")


def percent(share: float) -> str:
    """A share as a percentage with at least one significant digit.

    Examples
    --------
    >>> percent(0.7428), percent(0.0036), percent(0.0)
    ('74%', '0.4%', '0%')
    """
    value = 100 * float(share)
    if value == 0 or abs(value) >= 1:
        return f"{value:.0f}%"
    return f"{float(f'{value:.1g}'):g}%"


def _interval(row) -> str:
    return f"[{sig3(row['lower'])}, {sig3(row['upper'])}]"


def _freq(row, method: str | None) -> str:
    if method is None or method not in row or pd.isna(row[method]):
        return ""
    return f"{'Laplace' if method == 'laplace' else method.upper()} {sig3(row[method])}"


def _between(group: str, n_levels: dict[str, int]) -> str:
    parents = [p for p in n_levels if p != group and group.startswith(p + ":")]
    within = f" within {max(parents, key=len)}" if parents else ""
    return f"the {n_levels[group]} {group} groups{within}"


def icc_sentences(icc: pd.DataFrame, response: str, n_levels: dict[str, int], method: str | None,
                  *, latent: bool, slopes: dict[str, list[str]] | None = None) -> list[str]:
    """One sentence per grouping factor from an ICC table (columns group, type, mean, lower,
    upper and the frequentist column ``method``); ``slopes`` maps a factor to its varying
    slopes, over whose observed values its variance is averaged."""
    slopes = slopes or {}
    out = []
    for _, row in icc.iterrows():
        group, kind = row["group"], row["type"]
        freq = _freq(row, method)
        if kind == "I2":
            out.append(f"I² {sig3(row['mean'])} {_interval(row)}: {percent(row['mean'])} of the "
                       f"variation of {response} across {_between(group, n_levels)} is "
                       f"heterogeneity rather than sampling error" + (f" ({freq})." if freq else "."))
            continue
        if kind != "adjusted" or group not in n_levels:
            continue
        notes = [f"averaged over the observed {', '.join(slopes[group])}"] if slopes.get(group) else []
        notes += [freq] if freq else []
        scale = "latent (logit-scale) variance" if latent else "variance"
        out.append(f"ICC {sig3(row['mean'])} {_interval(row)}: {percent(row['mean'])} of the {scale} "
                   f"in {response} lies between {_between(group, n_levels)}"
                   + (f" ({'; '.join(notes)})." if notes else "."))
    return out


def design_effect_sentences(deff: pd.DataFrame, n_rows: dict[str, int], method: str | None,
                            *, residual: bool = False) -> list[str]:
    """One sentence per grouping factor from :func:`multilevel.course.design_effect_table`;
    ``n_rows`` maps each factor to its number of rows; ``residual`` says the ICC is conditional
    on predictors."""
    out = []
    for group, rows in deff.groupby("group", sort=False):
        by = rows.set_index("stat")
        d, icc, n_eff = by.loc["design_effect"], by.loc["icc"], by.loc["effective_n"]
        n = float(rows["n_weighted"].iloc[0])
        size = whole(n) if n.is_integer() else sig3(n)
        freq = _freq(d, method)
        which = "residual ICC (given the predictors)" if residual else "ICC"
        out.append(
            f"Design effect of {group}: 1 + (n - 1) x {which} = 1 + ({size} - 1) x "
            f"{sig3(icc['mean'])} = {sig3(d['mean'])} {_interval(d)}" + (f" ({freq})" if freq else "")
            + f": for a mean, the {n_rows[group]:,} rows carry about as much information as "
            f"{whole(n_eff['mean'])} independent ones."
        )
    return out


def shrinkage_sentences(shrink: pd.DataFrame) -> list[str]:
    """One sentence per grouping factor: the average shrinkage of each varying term."""
    out = []
    for group, rows in shrink.groupby("group", sort=False):
        parts = []
        for term, t in rows.groupby("term", sort=False):
            pooled = 1.0 - float(t["pooling_factor"].mean())
            what = "group intercepts" if term == "(Intercept)" else f"{term} slopes"
            parts.append(f"{what} shrink {percent(pooled)}")
        if parts:
            out.append(f"{group}: {', '.join(parts)} towards the population value on average.")
    return out


def headline(fit: FitResult, prob: float = 0.95, *, icc: pd.DataFrame | None = None,
             shrinkage: pd.DataFrame | None = None) -> list[str]:
    """The headline sentences of ``fit`` (module docstring); pass the tables if already made."""
    design, spec = fit.design, fit.spec
    method = fit.method.lower() if fit.frequentist is not None else None
    icc = fit.icc(prob) if icc is None else icc
    shrinkage = fit.shrinkage(prob=prob) if shrinkage is None else shrinkage
    n_levels = {g.factor: g.n_levels for g in design.groups}
    slopes = {g.factor: [t for t in g.term_names if t != "(Intercept)"] for g in design.groups}
    lines = icc_sentences(icc, spec.response, n_levels, method, latent=spec.is_logistic,
                          slopes=slopes)
    only = design.groups[0] if len(design.groups) == 1 else None
    if (spec.family == "gaussian" and design.se is None and design.serial is None
            and only is not None and tuple(only.term_names) == ("(Intercept)",)):
        n_rows = {only.factor: int(round(float(only.counts.sum())))}
        lines += design_effect_sentences(design_effect_table(fit, prob), n_rows, method,
                                         residual=len(design.fixed_names) > 1)
    lines += shrinkage_sentences(shrinkage.dropna(subset=["pooling_factor"]))
    checks = fit.diagnostics().set_index("check")
    failed = [c for c in SAMPLER_CHECKS if c in checks.index and not checks.loc[c, "ok"]]
    lines.append("Every sampler check passed." if not failed else
                 f"{len(failed)} sampler check(s) failed ({', '.join(failed)}): see the diagnostics "
                 "before reading the estimates.")
    if "prior_sensitivity" in checks.index and not checks.loc["prior_sensitivity", "ok"]:
        row = checks.loc["prior_sensitivity"]
        lines.append(f"The prior matters: power-scaling it moves the posterior ({sig3(row['value'])}"
                     f"; passes {row['threshold']}): see the diagnostics and the priors table.")
    return lines
