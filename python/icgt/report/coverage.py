"""The coverage study's figure and files (icgt.study.coverage): accuracy's skill and the deep energy against
context length and against edge coverage, one line per graph size.

    python -m icgt.report.coverage SWEEP [--output FOLDER]

writes, for every family of runs in SWEEP that differ only in the graph's size, FOLDER/coverage-<model>-<graph>
[-<control>].png and one coverage.json with every family's collapse (default FOLDER: SWEEP/coverage), and
prints where they are. numpy and matplotlib only, like the rest of icgt.report.
"""

from __future__ import annotations

import argparse
import json
import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..files import write_atomically
from ..study.coverage import AXES, QUANTITIES, READINGS, coverage_study
from .plots import context_length_axis, new_figure

AXIS_LABELS = {"context": None, "coverage": "edge coverage (share of the graph's edges the walk has traversed)"}
QUANTITY_LABELS = {"skill": "accuracy's skill over chance", "energy": "deep energy / relabelling null"}


def _centres(edges: np.ndarray, axis: str) -> np.ndarray:
    return np.sqrt(edges[:-1] * edges[1:]) if axis == "context" else (edges[:-1] + edges[1:]) / 2


def coverage_figure(family: dict[str, Any]) -> Figure:
    """Skill (top) and deep energy over its null (bottom) against context length (left) and edge coverage
    (right), one line per graph size (the mean over seeds), each panel titled with its relative spread
    between sizes (icgt.study.coverage.collapse gives ``family``).

    >>> import copy, dataclasses
    >>> from icgt.report.coverage import coverage_figure
    >>> from icgt.study.coverage import collapse, families
    >>> from icgt.study.run_folder import load_run
    >>> grid = load_run(grid_run)
    >>> info = copy.deepcopy(grid.info); info["config"]["graph_size"] = [3, 3]   # the same walks as a second size
    >>> family = families([grid, dataclasses.replace(grid, info=info)])[0]
    >>> [ax.get_title() for ax in coverage_figure(collapse(family)).axes][1]
    'skill against coverage: relative spread 0.00'
    """
    figure = new_figure(11, 7.5)
    axes = figure.subplots(2, 2)
    colours = [f"C{i}" for i in range(len(family["sizes"]))]
    for row, quantity in enumerate(QUANTITIES):
        for column, axis in enumerate(AXES):
            ax = axes[row, column]
            centres = _centres(np.asarray(family[f"{axis}_bin_edges"], dtype=float), axis)
            for size, colour in zip(family["sizes"], colours):
                curve = family["curves"][size][quantity][axis]
                ax.plot(centres, curve, marker="o", markersize=3, color=colour, label=size)
            if axis == "context":
                context_length_axis(ax)
            else:
                ax.set_xlabel(AXIS_LABELS[axis])
            ax.set_ylabel(QUANTITY_LABELS[quantity])
            spread = family[quantity][axis]["mean"]
            ax.set_title(f"{quantity} against {axis}: relative spread "
                         f"{'n/a' if spread is None else f'{spread:.2f}'}", fontsize=10)
            ax.legend(fontsize=8, title="graph size", title_fontsize=8)
    control = "" if family["control"] == "none" else f", control {family['control']}"
    figure.suptitle(f"{family['model']} · {family['graph']} of sizes {', '.join(family['sizes'])}{control} · "
                    f"{len(family['seeds'])} seed(s): {READINGS[family['skill']['reading']]}", fontsize=10)
    return figure


def family_name(family: dict[str, Any]) -> str:
    """The file stem of a family's figure, e.g. "coverage-smollm2-135m-grid".

    >>> family_name({"model": "runs/toy.pt", "graph": "ring", "control": "shuffled"})
    'coverage-toy-ring-shuffled'
    """
    control = "" if family["control"] == "none" else f"-{family['control'].replace('_', '-')}"
    return f"coverage-{Path(family['model']).stem}-{family['graph']}{control}"


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_ready(entry) for key, entry in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(entry) for entry in value]
    if isinstance(value, np.ndarray):
        return [None if not np.isfinite(entry) else round(float(entry), 6) for entry in value.ravel()]
    return value


def write_coverage_report(sweep: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Write every family's figure (PNG) and coverage.json into ``output`` (default SWEEP/coverage), each
    atomically; returns the folder. ValueError (from icgt.study.coverage.coverage_study) where the sweep has
    no family of two sizes or more."""
    study = coverage_study(sweep)
    folder = Path(output) if output is not None else Path(sweep) / "coverage"
    folder.mkdir(parents=True, exist_ok=True)
    for family in study:
        figure = coverage_figure(family)
        write_atomically(folder / f"{family_name(family)}.png", partial(figure.savefig, format="png"))
    text = json.dumps(_json_ready(study), indent=2) + "\n"
    write_atomically(folder / "coverage.json", lambda path: path.write_text(text))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m icgt.report.coverage", description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="the output folder of `icgt run` holding the runs of several sizes")
    parser.add_argument("--output", type=Path, help="where the figures and coverage.json go (default SWEEP/coverage)")
    args = parser.parse_args(argv)
    try:
        folder = write_coverage_report(args.sweep, args.output)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(1, f"icgt coverage: error: {error}\n")
    print(f"coverage figures and coverage.json in {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
