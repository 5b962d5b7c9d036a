"""Figures of an icgt run: PCA of class means, energy and accuracy, spectral alignment, days of week.

Each function takes an :class:`icgt.run_folder.Run` (from :func:`icgt.run_folder.load_run`) and returns a
matplotlib Figure on the Agg canvas, made without pyplot so that no global figure state is touched:
the same code serves scripts, servers and notebooks, where a Figure displays inline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from .run_folder import Run, energy_minimum, steepest_rise

if TYPE_CHECKING:
    from matplotlib.axes import Axes

GROUP_COLOURS = {"shallow": "tab:blue", "middle": "tab:orange", "deep": "tab:red"}
WEEKLY_STYLE = {"color": "tab:green", "linestyle": "-", "linewidth": 1.6}
RING_STYLE = {"color": "tab:purple", "linestyle": "--", "linewidth": 1.2}
GRAPH_EDGE_STYLE = {"color": "0.6", "linestyle": "-", "linewidth": 1.0}
DPI = 110


def pc_pair_name(pair: int) -> str:
    """The name of the pair-th consecutive pair of principal components, 0-based.

    >>> from icgt.plots import pc_pair_name
    >>> pc_pair_name(0), pc_pair_name(1)
    ('PC1-2', 'PC3-4')
    """
    return f"PC{2 * pair + 1}-{2 * pair + 2}"


def pca_figure(run: Run, layer: int | None = None, positions: list[int] | None = None) -> Figure:
    """Class means on their own principal components, one panel per PCA snapshot, graph edges drawn.

    ``layer`` defaults to :meth:`Run.default_layer`; ``positions`` picks snapshots among
    ``pca_positions`` (default: all). The components drawn are ``config.pca_components`` (PCs 2-3 for
    rings). Each PC's sign is flipped where that matches the previous panel better, so that the
    layout does not mirror between panels; a last panel shows the graph's spectral layout (z2, z3)
    with its signs matched to the last snapshot.

    >>> from icgt.plots import pca_figure
    >>> from icgt.run_folder import load_run
    >>> figure = pca_figure(load_run(grid_run), layer=7, positions=[50, 400])
    >>> len([axes for axes in figure.axes if axes.get_visible()])   # two snapshots and the spectral layout
    3
    """
    layer_index = run.layer_index(layer)
    all_positions = run.arrays["pca_positions"]
    if positions is None:
        snapshots = np.arange(all_positions.size)
    else:
        unknown = sorted(set(positions) - set(all_positions.tolist()))
        if unknown:
            raise ValueError(f"no PCA snapshot at positions {unknown}; snapshots: {all_positions.tolist()}")
        snapshots = np.array([int(np.flatnonzero(all_positions == p)[0]) for p in positions])
    components = list(run.info["config"]["pca_components"])
    projections = run.arrays["pca_projections"][layer_index][snapshots][:, :, components]
    explained = run.arrays["pca_explained"][layer_index][snapshots][:, components]
    spectral_layout = run.arrays["spectral_embedding"][:, :2]
    panels = _signs_aligned(np.concatenate([projections, spectral_layout[None]]))

    columns = min(len(panels), 4)
    rows = -(-len(panels) // columns)
    figure = _new_figure(3.3 * columns, 3.3 * rows + 0.6)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for panel, ax in enumerate(axes):
        if panel >= len(panels):
            ax.set_visible(False)
            continue
        absent = _draw_graph(ax, panels[panel], run.labels, [(run.edges, GRAPH_EDGE_STYLE)])
        if panel < len(snapshots):
            ax.set_title(f"context {all_positions[snapshots[panel]]} tokens"
                         + (f" ({absent} nodes absent)" if absent else ""), fontsize=10)
            ax.set_xlabel(f"PC{components[0] + 1} ({explained[panel, 0]:.0%} of variance)")
            ax.set_ylabel(f"PC{components[1] + 1} ({explained[panel, 1]:.0%} of variance)")
        else:
            ax.set_title("graph's spectral layout (target)", fontsize=10)
            ax.set_xlabel("Laplacian eigenvector z2")
            ax.set_ylabel("Laplacian eigenvector z3")
    figure.suptitle(f"{run.title}\nclass means at layer {run.layers[layer_index]} "
                    f"(block {run.layers[layer_index] + 1} of {run.num_layers}), "
                    f"window {run.info['config']['pca_window']} tokens")
    return figure


def energy_accuracy_figure(run: Run) -> Figure:
    """Energy (normalised and scale-invariant) and accuracy against log context length.

    Layers are grouped into the shallow, middle and deep thirds of the model (mean over each group's
    captured layers). Bands: one standard deviation of the per-sequence energies; the null baseline
    (random relabelling of the nodes) as a dotted line with a mean ± sd band. Accuracy is the mean over
    sequences with a one-sd band, full-vocabulary and renormalised over the node tokens. Markers: each
    group's energy minimum (vertical lines in its colour) and the context length where accuracy rises
    fastest (black dashed line).

    >>> from icgt.plots import energy_accuracy_figure
    >>> from icgt.run_folder import load_run
    >>> [axes.get_ylabel() for axes in energy_accuracy_figure(load_run(grid_run)).axes]
    ['normalised Dirichlet energy', 'centred energy / total variance', 'probability on valid next nodes']
    """
    figure = _new_figure(9, 10.5)
    energy_ax, invariant_ax, accuracy_ax = figure.subplots(3, 1, sharex=True)
    positions = run.arrays["energy_positions"]
    energy = run.layer_group_means("energy")
    invariant = run.layer_group_means("energy_scale_invariant")
    null_mean = run.layer_group_means("energy_null_mean")
    null_sd = run.layer_group_means("energy_null_sd")
    sequence_sd = run.energy_sd_over_sequences()
    for group, indices in run.layer_groups().items():
        colour = GROUP_COLOURS[group]
        label = _group_label(run, group, indices)
        energy_ax.plot(positions, energy[group], color=colour, label=label)
        energy_ax.fill_between(positions, energy[group] - sequence_sd[group], energy[group] + sequence_sd[group],
                               color=colour, alpha=0.2, linewidth=0)
        energy_ax.plot(positions, null_mean[group], color=colour, linestyle=":", linewidth=1)
        energy_ax.fill_between(positions, null_mean[group] - null_sd[group], null_mean[group] + null_sd[group],
                               color=colour, alpha=0.07, linewidth=0)
        invariant_ax.plot(positions, invariant[group], color=colour, label=label)
        minimum = energy_minimum(positions, energy[group])
        if minimum:
            energy_ax.plot(*minimum, marker="v", color=colour, markersize=9)
            for ax in (energy_ax, invariant_ax, accuracy_ax):
                ax.axvline(minimum[0], color=colour, linewidth=0.8, alpha=0.7)
    energy_ax.set_ylabel("normalised Dirichlet energy")
    energy_ax.set_title(f"normalised energy of the class means (window {run.info['config']['energy_window']} tokens)",
                        fontsize=10)
    handles, labels = energy_ax.get_legend_handles_labels()
    handles += [Patch(color="0.5", alpha=0.3), Line2D([], [], color="0.3", linestyle=":"),
                Line2D([], [], color="0.3", marker="v", linestyle="")]
    labels += ["±1 sd over sequences", "null: nodes relabelled at random (mean ± sd)", "minimum of each group"]
    energy_ax.legend(handles, labels, fontsize=8, loc="best")
    invariant_ax.set_ylabel("centred energy / total variance")
    invariant_ax.set_title("scale-invariant energy (shrinking or collapsing cannot lower it)", fontsize=10)

    for renormalized, colour, name in [(False, "black", "full vocabulary"),
                                       (True, "tab:gray", "renormalised over nodes")]:
        accuracy_positions, mean, sd = run.accuracy_curve(renormalized)
        accuracy_ax.plot(accuracy_positions, mean, color=colour, linewidth=1, label=name)
        accuracy_ax.fill_between(accuracy_positions, mean - sd, mean + sd, color=colour, alpha=0.15, linewidth=0)
    accuracy_ax.axhline(run.chance_accuracy_renormalized(), color="tab:gray", linestyle=":", linewidth=1,
                        label="uniform guessing (renormalised)")
    rise = steepest_rise(*run.accuracy_curve()[:2])
    if rise:
        for ax in (energy_ax, invariant_ax, accuracy_ax):
            ax.axvline(rise[0], color="black", linestyle="--", linewidth=1)
        accuracy_ax.plot([], [], color="black", linestyle="--", label=f"fastest rise (t ≈ {rise[0]})")
    accuracy_ax.set_ylim(0, 1)
    accuracy_ax.set_ylabel("probability on valid next nodes")
    accuracy_ax.set_title("rule-following accuracy (mean ± sd over sequences)", fontsize=10)
    accuracy_ax.legend(fontsize=8, loc="upper left")
    _context_length_axis(accuracy_ax)
    figure.suptitle(run.title)
    return figure


def alignment_figure(run: Run) -> Figure:
    """Spectral alignment and distance correlation against log context length, per layer group.

    Thick lines are the group means; thin lines the group's individual layers.

    >>> from icgt.plots import alignment_figure
    >>> from icgt.run_folder import load_run
    >>> [axes.get_ylabel() for axes in alignment_figure(load_run(grid_run)).axes]
    ['alignment of PCs 1-2 with z2, z3', 'correlation with graph distance']
    """
    figure = _new_figure(11, 4.2)
    axes = figure.subplots(1, 2, sharex=True)
    positions = run.arrays["alignment_positions"]
    for ax, array_name, ylabel, title in [
        (axes[0], "spectral_alignment", "alignment of PCs 1-2 with z2, z3",
         "spectral alignment (mean squared cosine of principal angles)"),
        (axes[1], "distance_correlation", "correlation with graph distance",
         "representation distance vs shortest-path distance"),
    ]:
        values = run.arrays[array_name]
        means = run.layer_group_means(array_name)
        for group, indices in run.layer_groups().items():
            colour = GROUP_COLOURS[group]
            for layer_index in indices:
                ax.plot(positions, values[layer_index], color=colour, linewidth=0.5, alpha=0.35)
            ax.plot(positions, means[group], color=colour, linewidth=2, label=_group_label(run, group, indices))
        _context_length_axis(ax)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    axes[0].set_ylim(0, 1)
    figure.suptitle(run.title)
    return figure


def days_figure(run: Run, layer: int | None = None) -> Figure:
    """Which principal components carry the weekly circle and which the in-context ring.

    Top left: weekly vs in-context-ring alignment of each PC pair at the last snapshot; top right:
    the same against context length; bottom: the days on PCs 1-2 and 3-4 at the last snapshot, with
    the weekly circle's edges solid and the in-context ring's dashed. ValueError for a run that is
    not a days-of-week run.

    >>> from icgt.plots import days_figure
    >>> from icgt.run_folder import load_run
    >>> [axes.get_xlabel() for axes in days_figure(load_run(days_run)).axes][2:]
    ['PC1 (40% of variance)', 'PC3 (15% of variance)']
    """
    if not run.is_days:
        raise ValueError(f"run {run.name!r} has a {run.graph_kind} graph; the days figure needs a "
                         f"days-of-week run (graph.kind 'days')")
    layer_index = run.layer_index(layer)
    weekly = run.arrays["weekly_alignment"][layer_index]
    ring = run.arrays["ring_alignment"][layer_index]
    pair_names = [pc_pair_name(pair) for pair in range(weekly.shape[-1])]
    positions = run.arrays["pca_positions"]

    figure = _new_figure(11, 9.5)
    (bars_ax, curves_ax), (first_pair_ax, second_pair_ax) = figure.subplots(2, 2)
    x = np.arange(len(pair_names))
    bars_ax.bar(x - 0.2, weekly[-1], width=0.4, color=WEEKLY_STYLE["color"], label="weekly circle")
    bars_ax.bar(x + 0.2, ring[-1], width=0.4, color=RING_STYLE["color"], label="in-context ring")
    bars_ax.set_xticks(x, pair_names)
    bars_ax.set_ylim(0, 1)
    bars_ax.set_ylabel("alignment (mean squared cosine)")
    bars_ax.set_title(f"at context {positions[-1]} tokens", fontsize=10)
    bars_ax.legend(fontsize=8)
    pair_colours = [f"C{pair}" for pair in range(len(pair_names))]
    for pair, (name, colour) in enumerate(zip(pair_names, pair_colours)):
        curves_ax.plot(positions, weekly[:, pair], color=colour, linestyle="-", label=f"{name}: weekly circle")
        curves_ax.plot(positions, ring[:, pair], color=colour, linestyle="--", label=f"{name}: in-context ring")
    _context_length_axis(curves_ax)
    curves_ax.set_ylim(0, 1)
    curves_ax.set_ylabel("alignment (mean squared cosine)")
    curves_ax.set_title("alignment against context length", fontsize=10)
    curves_ax.legend(fontsize=7)

    weekly_order = [run.labels.index(day) for day in run.info["weekly_order"]]
    weekly_edges = np.array([(day, weekly_order[(i + 1) % len(weekly_order)]) for i, day in enumerate(weekly_order)])
    edge_sets = [(weekly_edges, WEEKLY_STYLE), (run.edges, RING_STYLE)]
    explained = run.arrays["pca_explained"][layer_index, -1]
    projections = run.arrays["pca_projections"][layer_index, -1]
    for ax, first in [(first_pair_ax, 0), (second_pair_ax, 2)]:
        _draw_graph(ax, projections[:, first:first + 2], run.labels, edge_sets)
        ax.set_xlabel(f"PC{first + 1} ({explained[first]:.0%} of variance)")
        ax.set_ylabel(f"PC{first + 2} ({explained[first + 1]:.0%} of variance)")
        ax.set_title(f"{pc_pair_name(first // 2)} at context {positions[-1]} tokens", fontsize=10)
    first_pair_ax.legend([Line2D([], [], **WEEKLY_STYLE), Line2D([], [], **RING_STYLE)],
                         ["weekly circle", "in-context ring"], fontsize=8)
    figure.suptitle(f"{run.title}\nlayer {run.layers[layer_index]}: in-context ring "
                    f"{' → '.join(run.labels)}")
    return figure


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _context_length_axis(ax: Axes) -> None:
    """Log-scaled context length with plain numbers at 1, 2, 5, 10, 20, ... (readable over any span)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("context length (tokens, log scale)")


def _group_label(run: Run, group: str, indices: np.ndarray) -> str:
    layers = run.layers[indices]
    return f"{group} (layers {layers.min()}–{layers.max()})" if layers.size > 1 else f"{group} (layer {layers[0]})"


def _signs_aligned(panels: np.ndarray) -> np.ndarray:
    """Copies of [panel, node, component] coordinates with each component's sign matched to the previous panel."""
    aligned = panels.copy()
    for panel in range(1, len(aligned)):
        shared = np.isfinite(aligned[panel]).all(axis=1) & np.isfinite(aligned[panel - 1]).all(axis=1)
        agreement = (aligned[panel][shared] * aligned[panel - 1][shared]).sum(axis=0)
        aligned[panel] *= np.where(agreement < 0, -1.0, 1.0)
    return aligned


def _draw_graph(ax: Axes, coordinates: np.ndarray, labels: list[str],
                edge_sets: list[tuple[np.ndarray, dict]]) -> int:
    """Draw edges, nodes (coloured by node index) and their words; return how many nodes are absent (NaN)."""
    present = np.isfinite(coordinates).all(axis=1)
    for edges, style in edge_sets:
        drawn = [edge for edge in edges if present[edge[0]] and present[edge[1]]]
        if drawn:
            ax.add_collection(LineCollection([coordinates[list(edge)] for edge in drawn], zorder=1, **style))
    node_colours = [f"C{node % 10}" for node in range(len(labels))]
    nodes = np.flatnonzero(present)
    ax.scatter(coordinates[nodes, 0], coordinates[nodes, 1], c=[node_colours[node] for node in nodes],
               s=30, zorder=2, edgecolors="white", linewidths=0.5)
    for node in nodes:
        ax.annotate(labels[node], coordinates[node], xytext=(3, 3), textcoords="offset points", fontsize=8, zorder=3)
    ax.set_aspect("equal", adjustable="datalim")
    ax.tick_params(labelsize=7)
    return int((~present).sum())
