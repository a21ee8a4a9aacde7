"""The text summary, the HTML fragment and the self-contained HTML report of a fit.

:func:`write_report` writes ONE self-contained HTML file: a table of contents, the headline
sentences (:mod:`multilevel.report.sentences`), the spec, a data summary, every table with the
frequentist column and each table's figures beside it (embedded as base64 PNG with alt text: no
external file, no script, no network), the diagnostics with their remedies, and the package
versions. :func:`text_summary` (``fit.summary()``) and :func:`html_summary` (Jupyter's display)
show the same headline and tables; every number is in the display form of
:mod:`multilevel.report.formatting`.

Examples
--------
>>> import pandas as pd
>>> format_table(pd.DataFrame({"a": [1.23456], "ess_bulk": [812.4]})).split()
['a', 'ess_bulk', '1.23', '812']
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from multilevel import naming
from multilevel.design.newdata import predictor_columns
from multilevel.report.formatting import DASH, display_table, format_value
from multilevel.report.sentences import headline

if TYPE_CHECKING:
    from multilevel.results.result import FitResult as HierarchicalFit

__all__ = ["data_summary", "figures", "format_table", "frequentist_notes", "html_summary",
           "text_summary", "write_report"]


def format_table(table: pd.DataFrame) -> str:
    """A DataFrame as fixed-width text, every number in its display form."""
    return display_table(table).to_string(index=False)


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


@dataclass
class Section:
    """One part of the summary: an anchor id, a title and its table in display form."""

    id: str
    title: str
    table: pd.DataFrame


def diagnostics_display(table: pd.DataFrame) -> pd.DataFrame:
    """The diagnostics table as text: each value in its own form; the parameterization row shows
    the parameterization as its value."""
    rows = []
    for r in table.itertuples():
        if r.check == "parameterization":
            value, threshold = str(r.threshold), DASH
        else:
            value, threshold = format_value(r.check, r.value), str(r.threshold)
        rows.append({"check": r.check, "value": value, "threshold": threshold,
                     "ok": "yes" if r.ok else "no"})
    return pd.DataFrame(rows, columns=["check", "value", "threshold", "ok"])


def _sections(fit: HierarchicalFit, prob: float, shrink: pd.DataFrame,
              icc: pd.DataFrame) -> list[Section]:
    shown = f"first 20 of {len(shrink)} rows" if len(shrink) > 20 else f"{len(shrink)} rows"
    return [
        Section("data", "Data", display_table(data_summary(fit))),
        Section("fixed-effects", "Fixed effects", display_table(fit.fixed_effects(prob))),
        Section("variance-components", "Variance components",
                display_table(fit.variance_components(prob))),
        Section("icc", "Intraclass correlation", display_table(icc)),
        Section("shrinkage", f"Shrinkage ({shown})", display_table(shrink.head(20))),
        Section("diagnostics", "Sampler diagnostics", diagnostics_display(fit.diagnostics())),
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


def _tables(fit: HierarchicalFit, prob: float) -> tuple[list[str], list[Section]]:
    shrink, icc = fit.shrinkage(prob=prob), fit.icc(prob)
    return headline(fit, prob, icc=icc, shrinkage=shrink), _sections(fit, prob, shrink, icc)


def text_summary(fit: HierarchicalFit, prob: float = 0.95) -> str:
    """The whole fit as plain text: header, headline sentences, every table."""
    lines, sections = _tables(fit, prob)
    out = _header(fit, prob) + ["", "In brief", "--------"] + [f"* {s}" for s in lines]
    for section in sections:
        out += ["", section.title, "-" * len(section.title), section.table.to_string(index=False)]
    out += [f"! {p}" for p in _problems(fit)]
    return "\n".join(out)


def _html_table(table: pd.DataFrame) -> str:
    return table.to_html(index=False, border=0, escape=True, classes="numbers")


def _html_body(fit: HierarchicalFit, prob: float, figures_by_section=None,
               anchors: bool = False) -> tuple[str, list]:
    """The fit as HTML; ``anchors`` gives each section its id (the report's table of contents;
    not in Jupyter, where two fits on one page would repeat the ids)."""
    lines, sections = _tables(fit, prob)
    figures_by_section = figures_by_section or {}

    def open_section(ident: str) -> str:
        return f"<section id='{ident}'>" if anchors else "<section>"

    parts = [f"<p class='meta'>{html.escape(line)}</p>" for line in _header(fit, prob)]
    parts.append(open_section("headline") + "<h3>In brief</h3><ul class='headline'>")
    parts += [f"<li>{html.escape(line)}</li>" for line in lines]
    parts.append("</ul></section>")
    for section in sections:
        figs = figures_by_section.get(section.id, [])
        parts.append(open_section(section.id) + f"<h3>{html.escape(section.title)}</h3>")
        parts.append("<div class='pair'><div class='tbl'>" + _html_table(section.table) + "</div>")
        if figs:
            parts.append("<div class='figs'>" + "".join(
                f"<figure><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
                f"<figcaption>{html.escape(t)}</figcaption></figure>" for t, b in figs) + "</div>")
        parts.append("</div></section>")
    problems = _problems(fit)
    if problems:
        parts.append(open_section("remedies") + "<h3>What to do about the failed checks</h3><ul>")
        parts += [f"<li>{html.escape(p)}</li>" for p in problems]
        parts.append("</ul></section>")
    return "\n".join(parts), sections


def html_summary(fit: HierarchicalFit, prob: float = 0.95) -> str:
    """The whole fit as an HTML fragment (Jupyter's rich display): the text summary's content."""
    body, _ = _html_body(fit, prob)
    return f"<div class='multilevel-fit'>{_STYLE}\n{body}\n</div>"


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def figures(fit: HierarchicalFit) -> list[tuple[str, str, str]]:
    """``(section id, title, base64 PNG)`` for every plot of the fit, by the table it illustrates."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from multilevel import plots

    out = []
    predictors = predictor_columns(fit.design, groups=False)
    if predictors and fit.design.has_rows:  # the conditional effect of the first predictor
        ax = plots.plot_predictions(fit, predictors[0])
        out.append(("fixed-effects", f"Conditional effect of {predictors[0]}", _png(ax.figure)))
    out.append(("variance-components", "Variance components and ICC", _png(plots.plot_variance(fit))))
    out.append(("variance-components", "Group-level sds and correlations", _png(plots.plot_pair(fit))))
    for g in fit.design.groups:
        for title, draw in ((f"Caterpillar: {g.factor}", plots.plot_caterpillar),
                            (f"Shrinkage: {g.factor}", plots.plot_shrinkage)):
            fig, ax = plt.subplots(figsize=(7, max(4, min(12, g.n_levels * 0.12))))
            draw(fit, group=g.factor, ax=ax)
            out.append(("shrinkage", title, _png(fig)))
    out.append(("diagnostics", "Trace and rank plots", _png(plots.plot_trace(fit))))
    # the rows and every draw of every group effect: not there for data larger than memory
    # (the design has no rows) or group_draws='summary'; fit.notes says which
    if fit.design.has_rows and naming.GROUP_SUMMARIES not in fit.idata.children:
        out.append(("diagnostics", "Posterior predictive check",
                    _png(plots.plot_ppc(fit, seed=fit.spec.sampler.seed).figure)))
    return out


_STYLE = """<style>
.multilevel-fit table.numbers{border-collapse:collapse;font-size:0.9em;margin-bottom:0.5em}
.multilevel-fit table.numbers td,.multilevel-fit table.numbers th{padding:2px 8px;text-align:right}
.multilevel-fit table.numbers tr:nth-child(even){background:#f3f3f3}
.multilevel-fit .pair{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.multilevel-fit .tbl{flex:0 1 auto;max-width:100%;overflow-x:auto}
.multilevel-fit .figs{flex:1 1 32em;max-width:50em}
.multilevel-fit figure{margin:0 0 1em}.multilevel-fit img{max-width:100%}
.multilevel-fit figcaption{font-size:0.85em;color:#555}.multilevel-fit .meta{margin:0.2em 0}
.multilevel-fit ul.headline li{margin:0.3em 0}
</style>"""


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:90em;margin:2em auto;padding:0 1em}}
pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}nav.toc{{background:#f6f6f6;padding:0.5em 1em}}
nav.toc ol{{margin:0.3em 0}}</style></head>
<body><h2>{title}</h2>
<nav class="toc" aria-label="Contents"><strong>Contents</strong><ol>{toc}</ol></nav>
<div class="multilevel-fit">{style}
{body}
</div>
<section id="spec"><h3>Spec</h3><pre>{spec}</pre></section>
<section id="versions"><h3>Package versions</h3><p>{versions}</p></section>
</body></html>
"""


def write_report(fit: HierarchicalFit, path: str | Path, prob: float = 0.95) -> Path:
    """Write one self-contained HTML report (and a ``.txt`` twin, :func:`text_summary`) of ``fit``.

    Returns the path of the HTML file.
    """
    from multilevel.versions import package_versions

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = html.escape(fit.spec.name or fit.spec.to_formula())
    versions = html.escape(", ".join(f"{k} {v}" for k, v in package_versions().items()))
    by_section: dict[str, list[tuple[str, str]]] = {}
    for section, fig_title, png in figures(fit):
        by_section.setdefault(section, []).append((fig_title, png))
    body, sections = _html_body(fit, prob, by_section, anchors=True)
    entries = [("headline", "In brief"), *((s.id, s.title.split(" (")[0]) for s in sections)]
    if _problems(fit):
        entries.append(("remedies", "What to do about the failed checks"))
    entries += [("spec", "Spec"), ("versions", "Package versions")]
    toc = "".join(f"<li><a href='#{i}'>{html.escape(t)}</a></li>" for i, t in entries)
    path.write_text(_PAGE.format(title=title, toc=toc, style=_STYLE, body=body,
                                 spec=html.escape(fit.spec.to_toml()), versions=versions),
                    encoding="utf-8")
    path.with_suffix(".txt").write_text(text_summary(fit, prob) + "\n", encoding="utf-8")
    return path
