"""The report of a run: its verdict in words (``verdict``), figures (``plots``, ``mechanism`` for the
mechanism experiments) and the HTML page with its summary (``html``). numpy and matplotlib only: it
runs wherever run folders are copied.

Example:
    >>> summary = icgt.report.summarize(synthetic_run)
    >>> sorted(summary)[:3]
    ['accuracy_renormalized_final', 'alignment_deep', 'blocks_below_null']
"""

from .html import format_summary, report_figures, summarize, write_report, write_seeds_figure

__all__ = ["format_summary", "report_figures", "summarize", "write_report", "write_seeds_figure"]
