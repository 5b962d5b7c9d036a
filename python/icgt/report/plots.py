"""Figures of an icgt run: PCA of class means, energy and accuracy, spectral alignment, days of week.

Each function takes an :class:`icgt.study.run_folder.Run` (from :func:`icgt.study.run_folder.load_run`) and returns a
matplotlib Figure on the Agg canvas, made without pyplot so that no global figure state is touched:
the same code serves scripts, servers and notebooks, where a Figure displays inline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import colorsys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from ..study.curves import energy_minimum, steepest_rise
from ..study.run_folder import Run

if TYPE_CHECKING:
    from matplotlib.axes import Axes

GROUP_COLOURS = {"shallow": "tab:blue", "middle": "tab:orange", "deep": "tab:red"}
WEEKLY_STYLE = {"color": "tab:green", "linestyle": "-", "linewidth": 1.6}
RING_STYLE = {"color": "tab:purple", "linestyle": "--", "linewidth": 1.2}
GRAPH_EDGE_STYLE = {"color": "0.6", "linestyle": "-", "linewidth": 1.0}
DPI = 110
#: PCA panels per row and the size of one panel (inches): three of them fill the report page (1100
#: pixels) with words at about 9 points.
PCA_COLUMNS = 3
PCA_PANEL_INCHES = 3.9
WORD_FONT_SIZE = 9
#: Corners of the two-dimensional colour map (RGB at (0, 0), (1, 0), (0, 1), (1, 1)): blue, red, green,
#: gold, far apart in hue, so that bilinear mixing gives every grid node a colour of its own.
CORNER_COLOURS = np.array([[0.12, 0.35, 0.85], [0.85, 0.15, 0.15], [0.10, 0.62, 0.30], [0.95, 0.68, 0.05]])
#: Label offsets tried in turn (points from the node: right-above, right-below, left-above, left-below,
#: above, below); a word that fits nowhere without covering another word or node is left out.
LABEL_OFFSETS = [((4, 2), "left", "bottom"), ((4, -2), "left", "top"), ((-4, 2), "right", "bottom"),
                 ((-4, -2), "right", "top"), ((0, 5), "center", "bottom"), ((0, -5), "center", "top")]


def pc_pair_name(pair: int) -> str:
    """The name of the pair-th consecutive pair of principal components, 0-based.

    >>> from icgt.report.plots import pc_pair_name
    >>> pc_pair_name(0), pc_pair_name(1)
    ('PC1-2', 'PC3-4')
    """
    return f"PC{2 * pair + 1}-{2 * pair + 2}"


def colour_map_2d(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """RGB colours [len(u), 3] of points (u, v) in [0, 1]^2: bilinear mixing of CORNER_COLOURS.

    >>> from icgt.report.plots import colour_map_2d
    >>> colour_map_2d(np.array([0.0, 1.0]), np.array([0.0, 1.0])).round(2).tolist()
    [[0.12, 0.35, 0.85], [0.95, 0.68, 0.05]]
    """
    u, v = np.clip(np.asarray(u, float), 0, 1)[:, None], np.clip(np.asarray(v, float), 0, 1)[:, None]
    low, high, left, right = CORNER_COLOURS
    return (1 - u) * (1 - v) * low + u * (1 - v) * high + (1 - u) * v * left + u * v * right


def node_colours(run: Run) -> np.ndarray:
    """An RGB colour per node [n, 3] from the node's place in the graph, the same in every panel.

    Grid: a two-dimensional colour map over (column, row). Ring: a colour wheel over the ring order.
    Other graphs (hexagon, days, custom): the two-dimensional colour map over the graph's spectral
    coordinates (z2, z3), so that nodes close in the graph get close colours. The spectral-layout
    panel of the PCA figure shows the mapping.

    >>> from icgt.report.plots import node_colours
    >>> from icgt.study.run_folder import load_run
    >>> colours = node_colours(load_run(grid_run))
    >>> colours.shape, len({tuple(colour) for colour in colours.round(3)})   # 16 nodes, 16 colours
    ((16, 3), 16)
    """
    n = len(run.labels)
    if run.graph_kind == "grid" and (shape := grid_shape(run.edges, n)) is not None:
        rows, cols = shape
        node = np.arange(n)
        return colour_map_2d((node % cols) / max(cols - 1, 1), (node // cols) / max(rows - 1, 1))
    if run.graph_kind == "ring" and (order := cycle_order(run.edges, n)) is not None:
        place = np.empty(n)
        place[order] = np.arange(n) / n
        return np.array([colorsys.hsv_to_rgb(hue, 0.8, 0.85) for hue in place])
    embedding = run.arrays["spectral_embedding"][:, :2]
    low, high = embedding.min(axis=0), embedding.max(axis=0)
    scaled = (embedding - low) / np.where(high > low, high - low, 1)
    return colour_map_2d(scaled[:, 0], scaled[:, 1])


def grid_shape(edges: np.ndarray, num_nodes: int) -> tuple[int, int] | None:
    """(rows, columns) of a row-major 4-neighbourhood grid with these edges, or None if it is not one.

    >>> from icgt.report.plots import grid_shape
    >>> grid_shape(np.array([[0, 1], [0, 2], [1, 3], [2, 3]]), 4)
    (2, 2)
    """
    steps = {int(abs(b - a)) for a, b in edges}
    cols = max(steps - {1}, default=num_nodes)
    if num_nodes % cols:
        return None
    rows = num_nodes // cols
    expected = {(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)}
    expected |= {(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)}
    found = {(int(min(a, b)), int(max(a, b))) for a, b in edges}
    return (rows, cols) if found == expected else None


def cycle_order(edges: np.ndarray, num_nodes: int) -> np.ndarray | None:
    """The nodes in the order of a cycle through all of them, from node 0, or None if the graph is not one cycle.

    >>> from icgt.report.plots import cycle_order
    >>> cycle_order(np.array([[0, 2], [2, 1], [1, 3], [3, 0]]), 4).tolist()
    [0, 2, 1, 3]
    """
    neighbours: list[list[int]] = [[] for _ in range(num_nodes)]
    for a, b in edges:
        neighbours[a].append(int(b))
        neighbours[b].append(int(a))
    if num_nodes < 3 or any(len(adjacent) != 2 for adjacent in neighbours):
        return None
    order = [0, min(neighbours[0])]
    while len(order) < num_nodes:
        previous, current = order[-2], order[-1]
        following = [node for node in neighbours[current] if node != previous]
        if following[0] == 0:
            return None  # a shorter cycle: the graph is several
        order.append(following[0])
    return np.array(order)


def pca_figure(run: Run, layer: int | None = None, positions: list[int] | None = None) -> Figure:
    """Class means on their own principal components, one panel per PCA snapshot, graph edges drawn.

    ``layer`` defaults to :meth:`Run.default_layer`; ``positions`` picks snapshots among
    ``pca_positions`` (default: all). The components drawn are ``config.pca_components`` (PCs 2-3 for
    rings). Each PC's sign is flipped where that matches the previous panel better, so that the
    layout does not mirror between panels; a last panel shows the graph's spectral layout (z2, z3)
    with its signs matched to the last snapshot.

    >>> from icgt.report.plots import pca_figure
    >>> from icgt.study.run_folder import load_run
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

    columns = min(len(panels), PCA_COLUMNS)
    rows = -(-len(panels) // columns)
    figure = new_figure(PCA_PANEL_INCHES * columns, PCA_PANEL_INCHES * rows + 0.7)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    colours = node_colours(run)
    labelled = []
    for panel, ax in enumerate(axes):
        if panel >= len(panels):
            ax.set_visible(False)
            continue
        absent, words = _draw_graph(ax, panels[panel], run.labels, [(run.edges, GRAPH_EDGE_STYLE)], colours)
        labelled.append((ax, panels[panel], words))
        if panel < len(snapshots):
            ax.set_title(f"context {all_positions[snapshots[panel]]} tokens"
                         + (f" ({absent} nodes absent)" if absent else ""), fontsize=11)
            ax.set_xlabel(f"PC{components[0] + 1} ({explained[panel, 0]:.0%} of variance)")
            ax.set_ylabel(f"PC{components[1] + 1} ({explained[panel, 1]:.0%} of variance)")
        else:
            ax.set_title("graph's spectral layout (target)", fontsize=11)
            ax.set_xlabel("Laplacian eigenvector z2")
            ax.set_ylabel("Laplacian eigenvector z3")
    figure.suptitle(f"{run.title}\nclass means at {run.block_name(run.layers[layer_index])}, "
                    f"window {run.info['config']['pca_window']} tokens; colours: place in the graph "
                    f"(last panel); words left out where they would overlap")
    _place_words(figure, labelled)
    return figure


def energy_accuracy_figure(run: Run) -> Figure:
    """Energy (normalised and scale-invariant) and accuracy against log context length.

    Blocks are grouped into the shallow, middle and deep thirds of the model (mean over each group's
    captured blocks). Bands: one standard deviation of the per-sequence energies; the null baseline
    (random relabelling of the nodes) as a dotted line with a mean ± sd band. Accuracy, full-vocabulary
    and renormalised over the node tokens, is averaged in bins of half a doubling of context
    (:meth:`Run.binned_accuracy`), with a band of one sd over sequences; a faint line gives every
    position. Markers: each group's energy minimum (vertical lines in its colour; none where a curve is
    lowest at its first snapshot, see :func:`icgt.study.curves.energy_minimum`) and the context length
    where accuracy rises fastest (black dashed line).

    >>> from icgt.report.plots import energy_accuracy_figure
    >>> from icgt.study.run_folder import load_run
    >>> [axes.get_ylabel() for axes in energy_accuracy_figure(load_run(grid_run)).axes]
    ['normalised Dirichlet energy', 'centred energy / total variance', 'probability on valid next nodes']
    """
    figure = new_figure(9, 10.5)
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
        accuracy_positions, mean, _ = run.accuracy_curve(renormalized)
        accuracy_ax.plot(accuracy_positions, mean, color=colour, linewidth=0.5, alpha=0.3)
        bin_positions, binned, sd = run.binned_accuracy(renormalized)
        accuracy_ax.plot(bin_positions, binned, color=colour, linewidth=1.6, marker="o", markersize=3, label=name)
        accuracy_ax.fill_between(bin_positions, binned - sd, binned + sd, color=colour, alpha=0.2, linewidth=0)
    accuracy_ax.axhline(run.chance_accuracy_renormalized(), color="tab:gray", linestyle=":", linewidth=1,
                        label="uniform guessing (renormalised)")
    rise = steepest_rise(*run.accuracy_curve()[:2])
    if rise:
        for ax in (energy_ax, invariant_ax, accuracy_ax):
            ax.axvline(rise[0], color="black", linestyle="--", linewidth=1)
        accuracy_ax.plot([], [], color="black", linestyle="--", label=f"fastest rise (t ≈ {rise[0]})")
    accuracy_ax.set_ylim(0, 1)
    accuracy_ax.set_ylabel("probability on valid next nodes")
    accuracy_ax.set_title("rule-following accuracy in bins of half a doubling of context (mean ± sd over "
                          "sequences; faint: every position)", fontsize=10)
    accuracy_ax.legend(fontsize=8, loc="upper left")
    context_length_axis(accuracy_ax)
    figure.suptitle(run.title)
    return figure


def seeds_figure(runs: list[Run]) -> Figure:
    """Runs that differ only in their seed, as curves with bands: accuracy (full vocabulary and
    renormalised, in the bins of :meth:`Run.binned_accuracy`) and the deep third's spectral alignment
    and scale-invariant energy, each the mean over seeds with its 95% t interval
    (:func:`icgt.study.aggregate.t_band`); faint lines give every seed.

    >>> from icgt.report.plots import seeds_figure
    >>> from icgt.study.run_folder import load_run
    >>> [axes.get_ylabel() for axes in seeds_figure([load_run(grid_run), load_run(grid_run_seed1)]).axes]
    ['probability on valid next nodes', 'deep third of the blocks']
    """
    from ..study.aggregate import t_band

    figure = new_figure(9, 7)
    accuracy_ax, geometry_ax = figure.subplots(2, 1, sharex=True)
    curves = []
    for renormalized, colour, name in [(False, "black", "accuracy, full vocabulary"),
                                       (True, "tab:gray", "accuracy, renormalised over nodes")]:
        binned = [run.binned_accuracy(renormalized) for run in runs]
        length = min(positions.size for positions, _, _ in binned)
        curves.append((accuracy_ax, binned[0][0][:length], np.stack([b[1][:length] for b in binned]), colour, name))
    accuracy_ax.axhline(runs[0].chance_accuracy_renormalized(), color="tab:gray", linestyle=":", linewidth=1,
                        label="uniform guessing (renormalised)")
    for array, positions_key, colour, name in [("spectral_alignment", "alignment_positions", "tab:blue",
                                                "alignment of the drawn PCs with z2, z3"),
                                               ("energy_scale_invariant", "energy_positions", "tab:red",
                                                "scale-invariant energy (1: relabelled nodes)")]:
        per_seed = np.stack([run.layer_group_means(array)["deep"] for run in runs])
        curves.append((geometry_ax, runs[0].arrays[positions_key], per_seed, colour, name))
    for ax, positions, per_seed, colour, name in curves:
        mean, half = t_band(per_seed)
        for seed_curve in per_seed:
            ax.plot(positions, seed_curve, color=colour, linewidth=0.5, alpha=0.35)
        ax.plot(positions, mean, color=colour, linewidth=1.6, label=name)
        ax.fill_between(positions, mean - half, mean + half, color=colour, alpha=0.2, linewidth=0)
    accuracy_ax.set_ylim(0, 1)
    accuracy_ax.set_ylabel("probability on valid next nodes")
    geometry_ax.set_ylabel("deep third of the blocks")
    for ax in (accuracy_ax, geometry_ax):
        ax.legend(fontsize=8, loc="best")
    context_length_axis(geometry_ax)
    seeds = ", ".join(str(run.info["config"]["seed"]) for run in runs)
    figure.suptitle(f"{runs[0].title}\nseeds {seeds}: mean and 95% interval over seeds; faint: each seed")
    return figure


def alignment_figure(run: Run) -> Figure:
    """Spectral alignment and distance correlation against log context length, per layer group.

    Thick lines are the group means; thin lines the group's individual layers.

    >>> from icgt.report.plots import alignment_figure
    >>> from icgt.study.run_folder import load_run
    >>> [axes.get_ylabel() for axes in alignment_figure(load_run(grid_run)).axes]
    ['alignment of PCs 1-2 with z2, z3', 'correlation with graph distance']
    """
    figure = new_figure(11, 4.2)
    axes = figure.subplots(1, 2, sharex=True)
    positions = run.arrays["alignment_positions"]
    for ax, array_name, ylabel, title in [
        (axes[0], "spectral_alignment", f"alignment of {run.drawn_pcs} with z2, z3",
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
        context_length_axis(ax)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    axes[0].set_ylim(0, 1)
    figure.suptitle(run.title)
    return figure


def heldout_figure(run: Run) -> Figure:
    """A held-out run's probabilities per kind of word against context, and its class means' distances per block.

    The right panel measures the class means in the PCA figure's plane, beside where the spectral layouts
    (z2, z3) of the shown graph and of the full graph put a held-out pair.

    >>> from icgt.report.plots import heldout_figure
    >>> from icgt.study.run_folder import load_run
    >>> [axes.get_ylabel() for axes in heldout_figure(load_run(heldout_run)).axes]
    ['probability per word', 'distance between class means / mean over all pairs']
    """
    from matplotlib.ticker import MaxNLocator

    from ..study.heldout import HELDOUT_CLASSES, HELD_OUT, plane_distances

    figure = new_figure(11, 4.2)
    axes = figure.subplots(1, 2)
    names = {"held_out": "held-out neighbour", "shown_neighbour": "shown neighbour",
             "distance_two": "two steps away (full graph)", "same_shown_distance": "as far in the shown graph"}
    colours = {"held_out": "#c0392b", "shown_neighbour": "#2c7fb8", "distance_two": "#7f7f7f",
               "same_shown_distance": "#b8860b"}
    positions = run.arrays["timing_positions"]
    snapshot = run.arrays["pca_positions"][-1]
    planes = plane_distances(run)
    for kind, curve, distances in zip(HELDOUT_CLASSES, run.arrays["heldout_probability"], planes["model"].T):
        axes[0].plot(positions, curve, color=colours[kind], label=names[kind], linewidth=2)
        axes[1].plot(run.layers, distances, color=colours[kind], label=names[kind], marker="o", markersize=3)
    context_length_axis(axes[0])
    axes[0].set_yscale("log")
    axes[0].set_ylabel("probability per word")
    axes[0].set_title("after a word with a held-out neighbour", fontsize=10)
    for name, style in (("shown_layout", "--"), ("full_layout", ":")):
        axes[1].axhline(planes[name][HELD_OUT], color=colours["held_out"], linestyle=style, linewidth=1,
                        label=f"held-out pair in the {name.split('_')[0]} graph's layout")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_xlabel("block (0-based)")
    axes[1].set_ylabel("distance between class means / mean over all pairs")
    axes[1].set_title(f"class means on their drawn PCs, last {run.info['config']['pca_window']} tokens before "
                      f"{snapshot}", fontsize=10)
    for ax in axes:
        ax.legend(fontsize=8)
    figure.suptitle(run.title)
    return figure


def days_figure(run: Run, layer: int | None = None) -> Figure:
    """Which principal components carry the weekly circle and which the in-context ring.

    Top left: weekly vs in-context-ring alignment of each PC pair at the last snapshot; top right:
    the same against context length; bottom: the days on PCs 1-2 and 3-4 at the last snapshot, with
    the weekly circle's edges solid and the in-context ring's dashed. ValueError for a run that is
    not a days-of-week run.

    >>> from icgt.report.plots import days_figure
    >>> from icgt.study.run_folder import load_run
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

    figure = new_figure(11, 9.5)
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
    context_length_axis(curves_ax)
    curves_ax.set_ylim(0, 1)
    curves_ax.set_ylabel("alignment (mean squared cosine)")
    curves_ax.set_title("alignment against context length", fontsize=10)
    curves_ax.legend(fontsize=7)

    weekly_order = [run.labels.index(day) for day in run.info["weekly_order"]]
    weekly_edges = np.array([(day, weekly_order[(i + 1) % len(weekly_order)]) for i, day in enumerate(weekly_order)])
    edge_sets = [(weekly_edges, WEEKLY_STYLE), (run.edges, RING_STYLE)]
    explained = run.arrays["pca_explained"][layer_index, -1]
    projections = run.arrays["pca_projections"][layer_index, -1]
    colours = node_colours(run)
    labelled = []
    for ax, first in [(first_pair_ax, 0), (second_pair_ax, 2)]:
        _, words = _draw_graph(ax, projections[:, first:first + 2], run.labels, edge_sets, colours)
        labelled.append((ax, projections[:, first:first + 2], words))
        ax.set_xlabel(f"PC{first + 1} ({explained[first]:.0%} of variance)")
        ax.set_ylabel(f"PC{first + 2} ({explained[first + 1]:.0%} of variance)")
        ax.set_title(f"{pc_pair_name(first // 2)} at context {positions[-1]} tokens", fontsize=10)
    first_pair_ax.legend([Line2D([], [], **WEEKLY_STYLE), Line2D([], [], **RING_STYLE)],
                         ["weekly circle", "in-context ring"], fontsize=8)
    figure.suptitle(f"{run.title}\n{run.block_name(run.layers[layer_index])}: in-context ring "
                    f"{' → '.join(run.labels)}")
    _place_words(figure, labelled)
    return figure


def new_figure(width: float, height: float) -> Figure:
    """A figure of every report's style (size in inches, DPI, constrained layout), drawn without a screen.

    >>> from icgt.report.plots import new_figure
    >>> new_figure(6.5, 4).get_size_inches().tolist()
    [6.5, 4.0]
    """
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def context_length_axis(ax: Axes) -> None:
    """Log-scaled context length with plain numbers at 1, 2, 5, 10, 20, ... (readable over any span).

    >>> from icgt.report.plots import context_length_axis, new_figure
    >>> ax = new_figure(4, 3).add_subplot()
    >>> context_length_axis(ax)
    >>> ax.get_xscale(), ax.get_xlabel()
    ('log', 'context length (tokens, log scale)')
    """
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("context length (tokens, log scale)")


def _group_label(run: Run, group: str, indices: np.ndarray) -> str:
    blocks = run.layers[indices]
    return f"{group} (blocks {blocks.min()}–{blocks.max()})" if blocks.size > 1 else f"{group} (block {blocks[0]})"


def pc_signs(projections: np.ndarray) -> np.ndarray:
    """Signs [snapshot, pc] (+1 or -1) for one block's class means [snapshot, node, pc]: each PC flipped where
    that agrees better with the previous snapshot (as drawn), so that the layout does not mirror between
    context lengths. A PC's sign is arbitrary; the layout is not.

    >>> from icgt.report.plots import pc_signs
    >>> first = np.array([[1.0, 2.0], [-1.0, 0.5]])
    >>> pc_signs(np.stack([first, -first, first])).tolist()
    [[1, 1], [-1, -1], [1, 1]]
    """
    drawn = projections.copy()
    signs = np.ones((projections.shape[0], projections.shape[2]), dtype=int)
    for snapshot in range(1, len(drawn)):
        shared = np.isfinite(drawn[snapshot]).all(axis=1) & np.isfinite(drawn[snapshot - 1]).all(axis=1)
        agreement = (drawn[snapshot][shared] * drawn[snapshot - 1][shared]).sum(axis=0)
        signs[snapshot] = np.where(agreement < 0, -1, 1)
        drawn[snapshot] *= signs[snapshot]
    return signs


def _signs_aligned(panels: np.ndarray) -> np.ndarray:
    """Copies of [panel, node, component] coordinates with each component's sign matched to the previous panel."""
    return panels * pc_signs(panels)[:, None, :]


def _draw_graph(ax: Axes, coordinates: np.ndarray, labels: list[str], edge_sets: list[tuple[np.ndarray, dict]],
                colours: np.ndarray) -> tuple[int, dict[int, Any]]:
    """Draw edges, nodes (in their colours) and their words; return how many nodes are absent (NaN) and
    the word of each present node (placed later by _place_words)."""
    present = np.isfinite(coordinates).all(axis=1)
    for edges, style in edge_sets:
        drawn = [edge for edge in edges if present[edge[0]] and present[edge[1]]]
        if drawn:
            ax.add_collection(LineCollection([coordinates[list(edge)] for edge in drawn], zorder=1, **style))
    nodes = np.flatnonzero(present)
    ax.scatter(coordinates[nodes, 0], coordinates[nodes, 1], c=colours[nodes], s=36, zorder=2,
               edgecolors="white", linewidths=0.5)
    words = {}
    for node in nodes:
        offset, horizontal, vertical = LABEL_OFFSETS[0]
        words[int(node)] = ax.annotate(labels[node], coordinates[node], xytext=offset, textcoords="offset points",
                                       ha=horizontal, va=vertical, fontsize=WORD_FONT_SIZE, zorder=3,
                                       color=0.55 * colours[node], annotation_clip=False)
        words[int(node)].set_in_layout(False)  # the layout must not move when words are left out
    ax.set_aspect("equal", adjustable="datalim")
    ax.tick_params(labelsize=8)
    return int((~present).sum()), words


def _place_words(figure: Figure, panels: list[tuple[Axes, np.ndarray, dict[int, Any]]]) -> None:
    """Give each word the first offset of LABEL_OFFSETS where it covers no other word or node and stays
    inside its panel; hide it where there is none. Measured on the drawn figure, in pixels."""
    renderer = figure.canvas.get_renderer()
    figure.canvas.draw()
    marker = 0.5 * np.sqrt(36) * figure.dpi / 72 + 1  # node radius in pixels, and a pixel to spare
    for ax, coordinates, words in panels:
        frame = ax.get_window_extent(renderer)
        points = ax.transData.transform(np.nan_to_num(coordinates[list(words)])) if words else np.zeros((0, 2))
        taken: list[np.ndarray] = []
        for index, (node, word) in enumerate(words.items()):
            others = np.delete(points, index, axis=0)
            for offset, horizontal, vertical in LABEL_OFFSETS:
                word.xyann = offset
                word.set_horizontalalignment(horizontal)
                word.set_verticalalignment(vertical)
                box = word.get_window_extent(renderer).extents  # x0, y0, x1, y1
                inside = (box[0] >= frame.x0 and box[2] <= frame.x1 and box[1] >= frame.y0 and box[3] <= frame.y1)
                covers_node = bool(((others[:, 0] > box[0] - marker) & (others[:, 0] < box[2] + marker)
                                    & (others[:, 1] > box[1] - marker) & (others[:, 1] < box[3] + marker)).any())
                if inside and not covers_node and not any(_overlap(box, other) for other in taken):
                    taken.append(box)
                    break
            else:
                word.set_visible(False)


def _overlap(first: np.ndarray, second: np.ndarray) -> bool:
    return bool(first[0] < second[2] and second[0] < first[2] and first[1] < second[3] and second[1] < first[3])
