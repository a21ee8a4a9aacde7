"""Text and HTML renderings of a fit: the tables of :class:`HierarchicalFit` in one place.

:func:`write_report` writes ONE self-contained HTML file: the spec, a data summary, every table
with the frequentist column, the diagnostics with their remedies, the figures embedded as
base64 PNG (no external file, no network), and the package versions.

Examples
--------
>>> import pandas as pd
>>> format_table(pd.DataFrame({"a": [1.23456]})).split()
['a', '1.2346']
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from multilevel import naming
from multilevel.design.newdata import predictor_columns

if TYPE_CHECKING:
    from multilevel.results.result import FitResult as HierarchicalFit

__all__ = ["data_summary", "format_table", "frequentist_notes", "html_summary", "text_summary",
           "write_report"]


def format_table(table: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as fixed-width text with ``digits`` decimals."""
    return table.to_string(index=False, float_format=lambda v: f"{v:.{digits}f}")


def data_summary(fit: HierarchicalFit) -> pd.DataFrame:
    """Rows and group sizes per grouping factor: factor, groups, rows, min, median, max size."""
    rows = []
    for g in fit.design.groups:
        n = g.counts
        rows.append((g.factor, g.n_levels, fit.design.n_obs, int(n.min()), float(np.median(n)),
                     int(n.max())))
    return pd.DataFrame(rows, columns=["group", "groups", "rows", "min_size", "median_size",
                                       "max_size"])


def frequentist_notes(fit: HierarchicalFit) -> list[str]:
    """lme4-style warnings of the frequentist fit, each with what it means for the posterior."""
    freq = fit.frequentist
    if freq is None:
        return []
    notes = []
    if freq.singular:
        notes.append(
            f"The {freq.method} fit is singular (boundary (singular) fit: a variance estimated at 0 or "
            "a correlation at +/-1, lme4's isSingular). The data cannot tell that component from "
            "zero; the posterior keeps it positive and shows how uncertain it is, so read the "
            "posterior interval rather than the point estimate, and consider a simpler random part."
        )
    if not freq.converged:
        notes.append(
            f"The {freq.method} optimizer did not converge: its estimates may be off. Compare with "
            "the posterior; rescale predictors or simplify the random part."
        )
    notes += [m for m in freq.messages if "singular" not in m.lower()]
    return notes


def _sections(fit: HierarchicalFit, prob: float) -> list[tuple[str, pd.DataFrame]]:
    shrink = fit.shrinkage(prob=prob)
    return [
        ("Data", data_summary(fit)),
        ("Fixed effects", fit.fixed_effects(prob)),
        ("Variance components", fit.variance_components(prob)),
        ("Intraclass correlation", fit.icc(prob)),
        (f"Shrinkage (first 20 of {len(shrink)} rows)", shrink.head(20)),
        ("Sampler diagnostics", fit.diagnostics()[["check", "value", "threshold", "ok"]]),
    ]


def _header(fit: HierarchicalFit, prob: float) -> list[str]:
    d = fit.design
    groups = ", ".join(f"{g.factor}: {g.n_levels} groups" for g in d.groups)
    s = fit.spec.sampler
    dropped = f"; {d.dropped_rows} rows with missing values dropped" if d.dropped_rows else ""
    lines = [
        f"Model: {fit.spec.to_formula()}   family: {fit.spec.family}",
        f"Data: {d.n_obs} rows; {groups}{dropped}",
        f"NUTS ({s.sampler}): {s.chains} chains x {s.draws} draws after {s.tune} tuning; "
        f"parameterization: {fit.parameterization}; seed: {s.seed}",
        f"Intervals: central {prob:.0%} posterior intervals (equal-tailed)",
    ]
    if fit.frequentist is not None:
        f = fit.frequentist
        lines.append(
            f"Frequentist column: {f.method} fit of the same model (logLik {f.loglik:.3f}, "
            f"AIC {f.aic:.2f}, BIC {f.bic:.2f})"
        )
    lines += [f"Note: {n}" for n in (*fit.notes, *frequentist_notes(fit))]
    return lines


def _problems(fit: HierarchicalFit) -> list[str]:
    return [f"{r.check}: {r.remedy}" for r in fit.diagnostics().query("not ok").itertuples()]


def text_summary(fit: HierarchicalFit, prob: float = 0.95) -> str:
    """The whole fit as plain text."""
    out = _header(fit, prob)
    for title, table in _sections(fit, prob):
        out += ["", title, "-" * len(title), format_table(table)]
    out += [f"! {p}" for p in _problems(fit)]
    return "\n".join(out)


def html_summary(fit: HierarchicalFit, prob: float = 0.95) -> str:
    """The whole fit as an HTML fragment (Jupyter's rich display)."""
    parts = ["<div class='multilevel-fit'>"]
    parts += [f"<p>{html.escape(line)}</p>" for line in _header(fit, prob)]
    for title, table in _sections(fit, prob):
        parts.append(f"<h4>{html.escape(title)}</h4>")
        parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0))
    problems = _problems(fit)
    if problems:
        parts.append("<h4>What to do about the failed checks</h4><ul>")
        parts += [f"<li>{html.escape(p)}</li>" for p in problems]
        parts.append("</ul>")
    parts.append("</div>")
    return "\n".join(parts)


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def figures(fit: HierarchicalFit) -> list[tuple[str, str]]:
    """``(title, base64 PNG)`` for every plot of the fit."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from multilevel import plots

    out = []
    for g in fit.design.groups:
        for title, draw in ((f"Caterpillar: {g.factor}", plots.plot_caterpillar),
                            (f"Shrinkage: {g.factor}", plots.plot_shrinkage)):
            fig, ax = plt.subplots(figsize=(7, max(4, min(12, g.n_levels * 0.12))))
            draw(fit, group=g.factor, ax=ax)
            out.append((title, _png(fig)))
    # the rows and every draw of every group effect: not there for data larger than memory
    # (the design has no rows) or group_draws='summary'; fit.notes says which
    every_draw = fit.design.has_rows and naming.GROUP_SUMMARIES not in fit.idata.children
    figures = [("Variance components and ICC", lambda: plots.plot_variance(fit)),
               ("Posterior predictive check",
                lambda: plots.plot_ppc(fit, seed=fit.spec.sampler.seed).figure),
               ("Trace and rank plots", lambda: plots.plot_trace(fit)),
               ("Group-level sds and correlations", lambda: plots.plot_pair(fit))]
    for title, make in figures:
        if every_draw or title != "Posterior predictive check":
            out.append((title, _png(make())))
    predictors = predictor_columns(fit.design, groups=False)
    if predictors and fit.design.has_rows:  # the conditional effect of the first predictor
        ax = plots.plot_predictions(fit, predictors[0])
        out.append((f"Conditional effect of {predictors[0]}", _png(ax.figure)))
    return out


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:75em;margin:2em auto;}}
table{{border-collapse:collapse;font-size:0.9em}}td,th{{padding:2px 8px;text-align:right}}
tr:nth-child(even){{background:#f3f3f3}}img{{max-width:100%}}pre{{background:#f6f6f6;padding:1em}}
</style></head>
<body><h2>{title}</h2>
<h3>Spec</h3><pre>{spec}</pre>
{body}
<h3>Figures</h3>
{figures}
<h4>Package versions</h4><p>{versions}</p>
</body></html>
"""


def write_report(fit: HierarchicalFit, path: str | Path, prob: float = 0.95) -> Path:
    """Write one self-contained HTML report (and a ``.txt`` twin) of ``fit``."""
    from multilevel.versions import package_versions

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = html.escape(fit.spec.name or fit.spec.to_formula())
    versions = html.escape(", ".join(f"{k} {v}" for k, v in package_versions().items()))
    figs = "\n".join(
        f"<h4>{html.escape(t)}</h4><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
        for t, b in figures(fit)
    )
    path.write_text(_PAGE.format(title=title, spec=html.escape(fit.spec.to_toml()),
                                 body=html_summary(fit, prob), figures=figs, versions=versions))
    path.with_suffix(".txt").write_text(text_summary(fit, prob) + "\n")
    return path
