"""Text and HTML renderings of a fit: ``summary()``, Jupyter's display and the HTML report.

* :mod:`multilevel.report.formatting`: numbers as a paper prints them;
* :mod:`multilevel.report.sentences`: one plain sentence per key statistic;
* :mod:`multilevel.report.render`: the text summary, the HTML fragment and the self-contained
  HTML page with its figures.

Examples
--------
>>> from multilevel.report import sig3
>>> sig3(0.74281)
'0.743'
"""

from multilevel.report.formatting import DASH, display_table, format_value, p_value, rhat, sig3, whole
from multilevel.report.render import (
    data_summary,
    figures,
    format_table,
    frequentist_notes,
    html_summary,
    text_summary,
    write_report,
)
from multilevel.report.sentences import headline

__all__ = ["DASH", "data_summary", "display_table", "figures", "format_value", "format_table",
           "frequentist_notes", "headline", "html_summary", "p_value", "rhat", "sig3", "text_summary",
           "whole", "write_report"]
