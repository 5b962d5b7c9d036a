"""The report of a run: its verdict in words (``verdict``), figures (``plots``, ``mechanism`` for the
mechanism experiments) and the HTML page with its summary (``html``). numpy and matplotlib only: it
runs wherever run folders are copied.

Example:
    >>> icgt.report.summarize(grid_run)["follows_graph"]
    'yes'
"""

from .._lazy import lazy_attributes
from .html import format_summary, report_figures, run_card, summarize, timing_line, write_report, write_seeds_figure
from .interactive import interactive_view

__all__ = ["format_summary", "interactive_view", "report_figures", "run_card", "summarize", "timing_line",
           "write_report", "write_seeds_figure"]

__getattr__ = lazy_attributes(__name__)  # icgt.report.plots, icgt.report.verdict, ... on first use
