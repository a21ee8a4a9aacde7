"""One plain sentence per key statistic of a fit, as the top of ``summary()`` and the report.

* the ICC of each grouping factor (the adjusted ICC of :func:`multilevel.results.tables.icc_table`;
  Higgins' I^2 for known standard errors), with the frequentist value;
* the design effect ``1 + (n - 1) ICC`` of each factor of a Gaussian model and the effective
  number of rows (:func:`multilevel.course.design_effect_table`);
* the average shrinkage of each varying term: ``1 -`` the mean pooling factor over groups
  (:func:`multilevel.results.shrinkage.shrinkage_table`);
* whether every sampler check passed.

Point values are posterior means; brackets hold the central ``prob`` interval.

Examples
--------
>>> import pandas as pd
>>> icc = pd.DataFrame({"group": ["Subject"], "type": ["adjusted"], "mean": [0.7428],
...                     "lower": [0.5936], "upper": [0.8719], "reml": [0.7217]})
>>> icc_sentences(icc, "Reaction", {"Subject": 18}, "reml", latent=False)
['ICC 0.74 [0.59, 0.87]: 74% of the variance in Reaction lies between the 18 Subject groups (REML 0.72).']
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

__all__ = ["design_effect_sentences", "headline", "icc_sentences", "shrinkage_sentences"]


def _interval(row) -> str:
    return f"[{row['lower']:.2f}, {row['upper']:.2f}]"


def _freq(row, method: str | None, fmt=lambda v: f"{v:.2f}") -> str:
    if method is None or method not in row or pd.isna(row[method]):
        return ""
    return f" ({method.upper() if method != 'laplace' else 'Laplace'} {fmt(row[method])})"


def icc_sentences(icc: pd.DataFrame, response: str, n_levels: dict[str, int], method: str | None,
                  *, latent: bool, slopes: dict[str, list[str]] | None = None) -> list[str]:
    """One sentence per grouping factor from an ICC table (columns group, type, mean, lower,
    upper and the frequentist column ``method``); ``slopes`` maps a factor to its varying
    slopes, over whose observed values its variance is averaged."""
    slopes = slopes or {}
    out = []
    for _, row in icc.iterrows():
        group, kind = row["group"], row["type"]
        if kind == "I2":
            out.append(f"I² {row['mean']:.2f} {_interval(row)}: {row['mean']:.0%} of the variation "
                       f"of {response} across the {n_levels.get(group, '')} {group} groups is "
                       f"heterogeneity rather than sampling error{_freq(row, method)}.")
            continue
        if kind != "adjusted" or group not in n_levels:
            continue
        scale = "latent (logit-scale) variance" if latent else "variance"
        freq = _freq(row, method)
        if slopes.get(group):
            over = ", ".join(slopes[group])
            freq = f" (averaged over the observed {over}" + (f"; {freq[2:]}" if freq else ")")
        out.append(f"ICC {row['mean']:.2f} {_interval(row)}: {row['mean']:.0%} of the {scale} in "
                   f"{response} lies between the {n_levels[group]} {group} groups{freq}.")
    return out


def design_effect_sentences(deff: pd.DataFrame, n_rows: dict[str, int],
                            method: str | None) -> list[str]:
    """One sentence per grouping factor from :func:`multilevel.course.design_effect_table`;
    ``n_rows`` maps each factor to its number of rows."""
    out = []
    for group, rows in deff.groupby("group", sort=False):
        by = rows.set_index("stat")
        d, icc, n_eff = by.loc["design_effect"], by.loc["icc"], by.loc["effective_n"]
        out.append(
            f"Design effect of {group}: 1 + (n - 1) ICC = 1 + ({_size(by['n_weighted'].iloc[0])} - 1)"
            f" x {icc['mean']:.2f} = {sig3(d['mean'])} {_interval_sig(d)}"
            f"{_freq(d, method, sig3)}: for a mean, the {n_rows[group]:,} rows carry about as much "
            f"information as {whole(n_eff['mean'])} independent ones."
        )
    return out


def _size(n: float) -> str:
    return whole(n) if float(n).is_integer() else sig3(n)


def _interval_sig(row) -> str:
    return f"[{sig3(row['lower'])}, {sig3(row['upper'])}]"


def shrinkage_sentences(shrink: pd.DataFrame) -> list[str]:
    """One sentence per grouping factor: the average shrinkage of each varying term."""
    out = []
    for group, rows in shrink.groupby("group", sort=False):
        parts = []
        for term, t in rows.groupby("term", sort=False):
            pooled = 1.0 - float(t["pooling_factor"].mean())
            what = "group intercepts" if term == "(Intercept)" else f"{term} slopes"
            parts.append(f"{what} shrink {pooled:.0%}")
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
    if spec.family == "gaussian" and design.se is None:
        n_rows = {g.factor: int(round(float(g.counts.sum()))) for g in design.groups}
        lines += design_effect_sentences(design_effect_table(fit, prob), n_rows, method)
    lines += shrinkage_sentences(shrinkage.dropna(subset=["pooling_factor"]))
    failed = fit.diagnostics().query("not ok")["check"].tolist()
    lines.append("Every sampler check passed." if not failed else
                 f"{len(failed)} sampler check(s) failed ({', '.join(failed)}): see the diagnostics "
                 "below before reading the estimates.")
    return lines
