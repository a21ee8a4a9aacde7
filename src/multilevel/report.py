"""Text and HTML renderings of a fit: the tables of :class:`HierarchicalFit` in one place.

Examples
--------
>>> import pandas as pd
>>> print(format_table(pd.DataFrame({"a": [1.23456]})))
      a
 1.2346
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from multilevel.fit import HierarchicalFit

__all__ = ["format_table", "html_summary", "text_summary", "write_report"]


def format_table(table: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as fixed-width text with ``digits`` decimals."""
    return table.to_string(index=False, float_format=lambda v: f"{v:.{digits}f}")


def _sections(fit: HierarchicalFit, prob: float) -> list[tuple[str, pd.DataFrame]]:
    shrink = fit.shrinkage(prob=prob)
    sections = [
        ("Fixed effects", fit.fixed_effects(prob)),
        ("Variance components", fit.variance_components(prob)),
        ("Intraclass correlation", fit.icc(prob)),
        (f"Shrinkage (first 10 of {len(shrink)} rows)", shrink.head(10)),
        ("Sampler diagnostics", fit.diagnostics()[["check", "value", "threshold", "ok"]]),
    ]
    return sections


def _header(fit: HierarchicalFit, prob: float) -> list[str]:
    d = fit.design
    groups = ", ".join(f"{g.factor}: {g.n_levels} groups" for g in d.groups)
    s = fit.spec.sampler
    lines = [
        f"Model: {fit.spec.to_formula()}   family: {fit.spec.family}",
        f"Data: {d.n_obs} rows; {groups}" + (f"; {d.dropped_rows} rows dropped" if d.dropped_rows else ""),
        f"NUTS ({s.sampler}): {s.chains} chains x {s.draws} draws after {s.tune} tuning; "
        f"parameterization: {fit.parameterization}",
        f"Intervals: central {prob:.0%} posterior intervals (equal-tailed)",
    ]
    if fit.frequentist is not None:
        lines.append(f"Frequentist column: {fit.frequentist.method} fit of the same model")
    lines += [f"Note: {n}" for n in fit.notes]
    return lines


def text_summary(fit: HierarchicalFit, prob: float = 0.95) -> str:
    """The whole fit as plain text."""
    out = _header(fit, prob)
    for title, table in _sections(fit, prob):
        out += ["", title, "-" * len(title), format_table(table)]
    bad = fit.diagnostics().query("not ok")
    for row in bad.itertuples():
        out.append(f"! {row.check}: {row.remedy}")
    return "\n".join(out)


def html_summary(fit: HierarchicalFit, prob: float = 0.95) -> str:
    """The whole fit as an HTML fragment (Jupyter's rich display)."""
    parts = ["<div class='multilevel-fit'>"]
    parts += [f"<p>{html.escape(line)}</p>" for line in _header(fit, prob)]
    for title, table in _sections(fit, prob):
        parts.append(f"<h4>{html.escape(title)}</h4>")
        parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0))
    parts.append("</div>")
    return "\n".join(parts)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto;}}
table{{border-collapse:collapse;font-size:0.9em}}td,th{{padding:2px 8px;text-align:right}}
tr:nth-child(even){{background:#f3f3f3}}</style></head>
<body><h2>{title}</h2>
{body}
<h4>Package versions</h4><p>{versions}</p>
</body></html>
"""


def write_report(fit: HierarchicalFit, path: str | Path, prob: float = 0.95) -> Path:
    """Write one self-contained HTML report (and a ``.txt`` twin) of ``fit``."""
    from multilevel.fit import package_versions

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = html.escape(fit.spec.name or fit.spec.to_formula())
    versions = html.escape(", ".join(f"{k} {v}" for k, v in package_versions().items()))
    path.write_text(_PAGE.format(title=title, body=html_summary(fit, prob), versions=versions))
    path.with_suffix(".txt").write_text(text_summary(fit, prob) + "\n")
    return path
