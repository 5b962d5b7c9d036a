"""The figure of a two-graph run (icgt.study.two_graphs): accuracy against each graph over context, and per
block where the class means keep each graph (alignment of PCs 1-2 and 3-4 with each graph's z2, z3, each
graph's variance share against its relabelling null, and how far apart the two graphs' subspaces lie). numpy
and matplotlib only."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..study.coverage import binned, context_bin_edges
from ..study.run_folder import Run
from ..study.two_graphs import GRAPH_NAMES, SIGNIFICANCE
from .plots import context_length_axis, new_figure

GRAPH_COLOURS = {"first": "#2c7fb8", "second": "#c0392b"}


def two_graphs_figure(run: Run) -> Figure:
    """Left: accuracy (full vocabulary) against each graph over context length, in bins of half a doubling;
    middle: per block, the alignment of PCs 1-2 (solid) and 3-4 (dashed) with each graph's z2, z3; right:
    per block, each graph's share of the class means' variance and the mean squared cosine of the principal
    angles between the two graphs' subspaces, each with its mean over relabelled nodes (dotted: the chance
    level), the blocks whose share is above that null at p < SIGNIFICANCE ringed; the middle and right at the
    last PCA snapshot where every block has every node. ValueError for a run without a second graph.

    >>> from icgt.report.two_graphs import two_graphs_figure
    >>> from icgt.study.run_folder import load_run
    >>> [ax.get_ylabel() for ax in two_graphs_figure(load_run(two_graphs_run)).axes]
    ['accuracy (full vocabulary)', "alignment with the graph's z2, z3", 'share or squared cosine']
    """
    if not run.has_second_graph:
        raise ValueError(f"run {run.name!r} has no second graph (config.second_graph); the two-graph figure needs one")
    figure = new_figure(13, 4.2)
    axes = figure.subplots(1, 3)
    nodes = run.arrays["nodes"]
    edges = context_bin_edges(nodes.shape[1] - 1)
    centres = np.sqrt(edges[:-1] * edges[1:])
    positions = np.broadcast_to(np.arange(nodes.shape[1], dtype=float), nodes.shape)
    names = {"first": f"the {run.graph_kind}", "second": f"the second graph ({run.info['config']['second_graph']})"}
    for name, array in zip(GRAPH_NAMES, ("accuracy", "second_accuracy")):
        values = np.where(run.arrays["scored"], run.arrays[array], np.nan)
        axes[0].plot(centres, binned(positions, values, edges), color=GRAPH_COLOURS[name], marker="o", markersize=3,
                     label=f"against {names[name]}")
    context_length_axis(axes[0])
    axes[0].set_ylabel("accuracy (full vocabulary)")
    axes[0].set_title(f"p = {run.info['config']['mixture']:g} of the steps on the second graph", fontsize=10)
    variance = run.arrays["two_graph_variance"]
    complete = np.flatnonzero(np.isfinite(variance).all(axis=(0, 2)))
    snapshot = complete[-1] if complete.size else variance.shape[1] - 1
    alignment = run.arrays["two_graph_alignment"][:, snapshot]  # [L, G, K2]
    for g, name in enumerate(GRAPH_NAMES):
        for pair, style in zip(range(alignment.shape[-1]), ("-", "--")):
            axes[1].plot(run.layers, alignment[:, g, pair], color=GRAPH_COLOURS[name], linestyle=style, marker="o",
                         markersize=3, label=f"PCs {2 * pair + 1}-{2 * pair + 2}, {names[name]}")
        axes[2].plot(run.layers, variance[:, snapshot, g], color=GRAPH_COLOURS[name], marker="o", markersize=3,
                     label=f"variance on {names[name]}'s layout")
        axes[2].plot(run.layers, run.arrays["two_graph_null_share"][:, snapshot, g], color=GRAPH_COLOURS[name],
                     linestyle=":", label="its mean over relabelled nodes")
        above = run.arrays["two_graph_p_value"][:, snapshot, g] < SIGNIFICANCE
        axes[2].scatter(run.layers[above], variance[above, snapshot, g], s=60, facecolors="none",
                        edgecolors=GRAPH_COLOURS[name], label=f"above that null, p < {SIGNIFICANCE:g}")
    axes[2].plot(run.layers, (run.arrays["two_graph_cosines"][:, snapshot] ** 2).mean(-1), color="0.3", marker="s",
                 markersize=3, label="squared cosine between the subspaces")
    axes[2].plot(run.layers, run.arrays["two_graph_null_cosine_squared"][:, snapshot], color="0.3", linestyle=":",
                 label="its mean over relabelled nodes")
    axes[1].set_ylabel("alignment with the graph's z2, z3")
    axes[2].set_ylabel("share or squared cosine")
    position = run.arrays["pca_positions"][snapshot]
    for ax in axes[1:]:
        ax.set_xlabel("block (0-based)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"class means over the {run.info['config']['pca_window']} tokens before {position}", fontsize=10)
    for ax in axes:
        ax.legend(fontsize=8)
    figure.suptitle(run.title)
    return figure
