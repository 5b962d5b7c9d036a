"""What the report's interactive figures share (icgt.report.interactive, interactive_heads, interactive_seeds):
plotly's JavaScript from the plotly package (never a CDN), the numbers as JSON at EMBEDDED_DIGITS significant
digits, the standalone page around a figure and :class:`InteractiveView`, which shows it in Jupyter. Everything
a figure needs is inside its page, so that it opens from disk with no network.
"""

from __future__ import annotations

import html
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..files import write_atomically

#: Significant digits of the embedded numbers: float32 results carry about 7, the eye reads 3.
EMBEDDED_DIGITS = 6
#: A figure's height in Jupyter, in pixels, unless it asks for another: the graph view's controls and plots.
VIEW_HEIGHT = 760


class InteractiveView:
    """An interactive figure as a standalone HTML page (``page``); in Jupyter it shows inline, in an iframe whose
    ``srcdoc`` is the page, so that its scripts run apart from the notebook's.

    >>> from icgt.report.interactive import interactive_view
    >>> view = interactive_view(grid_run)
    >>> view.page.startswith("<!DOCTYPE html>"), view._repr_html_().startswith("<iframe srcdoc=")
    (True, True)
    """

    def __init__(self, page: str, height: int = VIEW_HEIGHT) -> None:
        self.page = page
        self.height = height

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.page, quote=True)}" style="width: 100%; '
                f'height: {self.height}px; border: 0" sandbox="allow-scripts"></iframe>')

    def save(self, path: str | os.PathLike) -> str:
        """Write the page to ``path`` (atomically) and return the path, for opening in a browser.

        >>> from icgt.report.interactive import interactive_view
        >>> interactive_view(grid_run).save("view.html")
        'view.html'
        """
        write_atomically(Path(path), lambda target: target.write_text(self.page))
        return str(path)


def standalone_page(title: str, body: str, height: int = VIEW_HEIGHT) -> InteractiveView:
    """A figure's HTML fragment (``body``) as a whole page titled ``title``, in an :class:`InteractiveView` whose
    iframe is ``height`` pixels high in Jupyter.

    >>> view = standalone_page("a <test>", "<p>body</p>")
    >>> "<title>icgt: a &lt;test&gt;</title>" in view.page and "<p>body</p>" in view.page
    True
    """
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>icgt: {html.escape(title)}</title>
<style>body {{ font-family: sans-serif; margin: 0.5em; color: #222; }}</style>
</head><body>
{body}
</body></html>
"""
    return InteractiveView(page, height)


#: The style every figure's fragment shares: its controls in a wrapping row, its plots side by side where they fit,
#: its note; each figure adds its plots' sizes.
SHARED_STYLE = """.icgt-controls { display: flex; flex-wrap: wrap; gap: 0.4em 2em; align-items: center; margin: 0.5em 0; }
.icgt-controls label { white-space: nowrap; }
.icgt-controls input[type=range] { width: 16em; vertical-align: middle; }
.icgt-plots { display: flex; flex-wrap: wrap; }
.icgt-note { color: #555; font-size: 0.9em; }
"""


def figure_scripts(data_id: str, data: Any, javascript: str) -> str:
    """The end of every figure's fragment: plotly.js, ``data`` as JSON in the script element ``data_id``
    (:func:`embedded_json`), and the figure's own ``javascript``, which reads it from there and draws.

    >>> scripts = figure_scripts("icgt-example-data", {"x": [1, 2]}, "draw();").splitlines()
    >>> scripts[-2:]
    ['<script type="application/json" id="icgt-example-data">{"x":[1,2]}</script>', '<script>draw();</script>']
    """
    return (f"<script>{plotly_javascript()}</script>\n"
            f'<script type="application/json" id="{data_id}">{embedded_json(data)}</script>\n'
            f"<script>{javascript}</script>")


def rounded(values: Any) -> Any:
    """Nested lists of floats at EMBEDDED_DIGITS significant digits, None for NaN (JSON has no NaN).

    >>> rounded(np.array([[1 / 3, np.nan]]))
    [[0.333333, None]]
    """
    values = np.asarray(values, dtype=np.float64)
    flat = [float(f"{value:.{EMBEDDED_DIGITS}g}") if np.isfinite(value) else None for value in values.ravel()]
    return np.array(flat, dtype=object).reshape(values.shape).tolist()


def embedded_json(data: Any) -> str:
    """``data`` as compact JSON for a ``<script type="application/json">`` element: without any "<", written
    as JSON's \\u003c, since "</script" would end the element early and "<!--" change how it is parsed
    (words and run names come from the user).

    >>> embedded_json({"word": "</script>"})
    '{"word":"\\\\u003c/script>"}'
    """
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


@lru_cache(maxsize=1)
def plotly_javascript() -> str:
    """plotly.js (minified) as shipped in the plotly Python package: the figures embed it, so that they need no
    network.

    >>> from icgt.report.interactive_page import plotly_javascript
    >>> "Plotly" in plotly_javascript()[:2000]
    True
    """
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
