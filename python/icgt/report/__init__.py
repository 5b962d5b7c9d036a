"""The report of a run: its verdict in words (``verdict``), figures (``plots``, ``mechanism`` for the
mechanism experiments) and the HTML page with its summary (``html``). numpy and matplotlib only: it
runs wherever run folders are copied.

Example:
    >>> icgt.report.summarize(grid_run)["follows_graph"]
    'yes'
"""

from .html import format_summary, report_figures, summarize, timing_line, write_report, write_seeds_figure

__all__ = ["format_summary", "report_figures", "summarize", "timing_line", "write_report", "write_seeds_figure"]
