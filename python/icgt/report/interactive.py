"""The report's interactive view: a graph run's class means on their principal components with two sliders,
one over layer and one over context length, beside its energy, alignment and accuracy curves; and
:func:`interactive_view`, a run's interactive figure whatever its experiment (a heads run's is in
icgt.report.interactive_heads).

The view is one self-contained piece of HTML: plotly's JavaScript (from the plotly package, never a CDN) and
the run's numbers as JSON, so that the page opens from disk with no network (icgt.report.interactive_page).
``write_report`` puts it in index.html, :meth:`icgt.study.run_folder.Run.explore` shows it in Jupyter. The
numbers are those of the run, at every block it captured; only where a run has more snapshots than
:data:`MAX_PCA_VALUES` and :data:`MAX_CURVE_VALUES` allow are snapshots chosen (log-spaced, first and last
kept), and the view says so.
"""

from __future__ import annotations

import html
import os
from typing import Any

import numpy as np

from ..study.run_folder import Run, load_run
from . import plots
from .interactive_heads import HEADS_VIEW_HEIGHT, heads_view_html
from .interactive_page import (EMBEDDED_DIGITS, SHARED_STYLE, VIEW_HEIGHT, InteractiveView, figure_scripts, rounded,
                               standalone_page)
from .mechanism import experiment_of

#: At most this many numbers of class-mean coordinates (blocks x snapshots x nodes x PCs) are embedded,
#: about 10.5 bytes each as JSON: every block is kept and snapshots are chosen to fit. With
#: MAX_CURVE_VALUES and plotly.js (4.8 MB) a page stays under 9 MB whatever the run: at most 2.6 MB here.
MAX_PCA_VALUES = 250_000
#: At most this many numbers of energy and alignment curves (4 curves x blocks x snapshots): 1.1 MB.
MAX_CURVE_VALUES = 100_000
#: The PCs of the 3-D view, 0-based: PCs 1-3.
PCS_3D = (0, 1, 2)


def interactive_view(run: Run | str | os.PathLike) -> InteractiveView:
    """The interactive figure of a run as an :class:`~icgt.report.interactive_page.InteractiveView` (what
    ``Run.explore()`` returns): for a graph run the class means with sliders over block and context
    (:func:`view_html`), for a heads run accuracy with a slider over the heads ablated
    (icgt.report.interactive_heads).

    Raises ValueError for the other mechanism runs (intervention, subspace, toy mixing), whose pictures
    change with no parameter: their figures are the report's PNGs.

    >>> from icgt.report.interactive import interactive_view
    >>> len(interactive_view(grid_run).page) > 1_000_000   # plotly's JavaScript is inside
    True
    """
    run = run if isinstance(run, Run) else load_run(run)
    body = explore_html(run)
    if body is None:
        raise ValueError(f"run {run.name!r} is a mechanism run ({experiment_of(run)}) without an interactive view: "
                         "graph runs (class means over context and blocks) and heads runs (accuracy by the number "
                         "of heads ablated) have one; its figures are the report's PNGs")
    return standalone_page(run.name, body, HEADS_VIEW_HEIGHT if experiment_of(run) == "heads" else VIEW_HEIGHT)


def explore_html(run: Run) -> str | None:
    """The fragment of a run's interactive figure, for the Explore section of its report: the graph view
    (:func:`view_html`) or the heads view (icgt.report.interactive_heads.heads_view_html); None for a run
    without one.

    >>> from icgt.report.interactive import explore_html
    >>> from icgt.study.run_folder import load_run
    >>> explore_html(load_run(grid_run)).startswith('<div class="icgt-view">'), explore_html(load_run(intervention_run))
    (True, None)
    """
    return {"graph": view_html, "heads": heads_view_html}.get(experiment_of(run), lambda _: None)(run)


def view_data(run: Run) -> dict[str, Any]:
    """What the view draws, JSON-ready (None for NaN): the run's class means at every captured block and the
    chosen PCA snapshots, the sign of each drawn PC (flipped where that matches the previous snapshot better,
    as in the static PCA figure, so that the layout does not mirror as the context slider moves), the curves
    at every block, the words, edges and node colours.

    A drawn coordinate is ``projections[layer][snapshot][node][pc] * signs[layer][snapshot][pc]``, where
    ``projections`` holds ``pca_projections`` at ``snapshot_indices`` (of pca_positions) and PCs ``pcs``.

    Raises ValueError for a mechanism run.

    >>> from icgt.report.interactive import view_data
    >>> from icgt.study.run_folder import load_run
    >>> data = view_data(load_run(grid_run))
    >>> data["layers"], data["positions"], data["pcs"], data["pcs_2d"]
    ([0, 1, 2, 3, 4, 5, 6, 7], [25, 50, 100, 400], [0, 1, 2], [0, 1])
    >>> len(data["projections"]), len(data["projections"][0]), len(data["projections"][0][0])   # L, P, n
    (8, 4, 16)
    """
    if run.info["config"].get("experiment", "graph") != "graph":
        raise ValueError(f"run {run.name!r} is a mechanism run ({run.info['config']['experiment']}); the "
                         "interactive view shows graph runs (class means over context and blocks)")
    arrays = run.arrays
    all_positions = arrays["pca_positions"]
    pcs_2d = [int(pc) for pc in run.info["config"]["pca_components"]]
    num_pcs = arrays["pca_projections"].shape[-1]
    pcs = sorted(set(pcs_2d) | ({*PCS_3D} if num_pcs >= len(PCS_3D) else set()))
    num_layers, _, num_nodes, _ = arrays["pca_projections"].shape
    snapshots = chosen_snapshots(all_positions, MAX_PCA_VALUES // (num_layers * num_nodes * len(pcs)))
    projections = arrays["pca_projections"][:, snapshots][..., pcs].astype(np.float64)
    signs = np.stack([plots.pc_signs(layer_projections) for layer_projections in projections])
    explained = arrays["pca_explained"][:, snapshots][..., pcs]

    energy_positions = arrays["energy_positions"]
    energy_chosen = chosen_snapshots(energy_positions, MAX_CURVE_VALUES // (4 * num_layers))
    alignment_positions = arrays["alignment_positions"]
    alignment_chosen = chosen_snapshots(alignment_positions, MAX_CURVE_VALUES // (4 * num_layers))
    accuracy_positions, accuracy, _ = run.binned_accuracy()
    _, accuracy_renormalized, _ = run.binned_accuracy(renormalized=True)
    colours = plots.node_colours(run)
    return {
        "run": run.name,
        "title": run.title,
        "layers": run.layers.tolist(),
        "block_names": [run.block_name(block) for block in run.layers],
        "default_layer_index": run.layer_index(),
        "positions": all_positions[snapshots].tolist(),
        "snapshot_indices": snapshots.tolist(),
        "num_snapshots": int(all_positions.size),
        "pcs": pcs,
        "pcs_2d": pcs_2d,
        "projections": rounded(projections),
        "signs": signs.astype(int).tolist(),
        "explained": rounded(explained),
        "words": list(run.labels),
        "colours": [f"rgb({r},{g},{b})" for r, g, b in np.round(255 * colours).astype(int)],
        "edges": run.edges.tolist(),
        "pca_window": run.info["config"]["pca_window"],
        "energy_positions": energy_positions[energy_chosen].tolist(),
        "energy": rounded(arrays["energy"][:, energy_chosen]),
        "energy_null_mean": rounded(arrays["energy_null_mean"][:, energy_chosen]),
        "energy_null_sd": rounded(arrays["energy_null_sd"][:, energy_chosen]),
        "alignment_positions": alignment_positions[alignment_chosen].tolist(),
        "spectral_alignment": rounded(arrays["spectral_alignment"][:, alignment_chosen]),
        "accuracy_positions": accuracy_positions.tolist(),
        "accuracy": rounded(accuracy),
        "accuracy_renormalized": rounded(accuracy_renormalized),
        "chance_renormalized": round(run.chance_accuracy_renormalized(), EMBEDDED_DIGITS),
    }


def chosen_snapshots(positions: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the snapshots to embed: all of them when they are ``limit`` or fewer, else about ``limit``
    spread evenly over log context length, the first and the last always among them.

    >>> from icgt.report.interactive import chosen_snapshots
    >>> chosen_snapshots(np.array([10, 20, 40]), 5).tolist()
    [0, 1, 2]
    >>> chosen_snapshots(np.arange(10, 1410, 10), 5).tolist()   # 10, 30, 120, 410, 1400 tokens
    [0, 2, 11, 40, 139]
    """
    positions = np.asarray(positions)
    limit = max(int(limit), 2)
    if positions.size <= limit:
        return np.arange(positions.size)
    targets = np.geomspace(max(positions[0], 1), positions[-1], limit)
    nearest = np.abs(np.log(np.maximum(positions, 1))[None, :] - np.log(targets)[:, None]).argmin(axis=1)
    return np.unique(np.concatenate([[0], nearest, [positions.size - 1]]))


def view_html(run: Run) -> str:
    """The view as a fragment of HTML for a page's body: the sliders, the two plots, plotly's JavaScript and
    the run's numbers (:func:`view_data`) inline. Element ids start with ``icgt-``.

    >>> from icgt.report.interactive import view_html
    >>> from icgt.study.run_folder import load_run
    >>> fragment = view_html(load_run(grid_run))
    >>> 'id="icgt-layer"' in fragment and 'id="icgt-context"' in fragment
    True
    """
    data = view_data(run)
    chosen = ("" if len(data["positions"]) == data["num_snapshots"] else
              f" ({len(data['positions'])} of the {data['num_snapshots']} snapshots of the run, log-spaced, to "
              "keep this page small)")
    layer = data["default_layer_index"]
    return f"""<div class="icgt-view">
<style>
{SHARED_STYLE}#icgt-pca {{ flex: 1 1 480px; min-width: 360px; height: 560px; }}
#icgt-curves {{ flex: 1 1 420px; min-width: 340px; height: 560px; }}
</style>
<div class="icgt-controls">
<label>block <input type="range" id="icgt-layer" min="0" max="{len(data['layers']) - 1}" step="1" value="{layer}">
<output id="icgt-layer-value"></output></label>
<label>context <input type="range" id="icgt-context" min="0" max="{len(data['positions']) - 1}" step="1"
value="{len(data['positions']) - 1}"> <output id="icgt-context-value"></output></label>
<span><label><input type="radio" name="icgt-dimensions" id="icgt-2d" value="2" checked> 2-D
(PCs {data['pcs_2d'][0] + 1}-{data['pcs_2d'][1] + 1})</label>
<label><input type="radio" name="icgt-dimensions" id="icgt-3d" value="3"{'' if len(data['pcs']) >= 3 else ' disabled'}>
3-D (PCs 1-3)</label></span>
<label><input type="checkbox" id="icgt-words"> words</label>
</div>
<div class="icgt-plots"><div id="icgt-pca"></div><div id="icgt-curves"></div></div>
<p class="icgt-note">Class means (mean residual of each word over the {html.escape(str(data['pca_window']))} tokens before the
context length) on their own principal components, at every captured block and every PCA snapshot of the
run{html.escape(chosen)}; lines are the graph's edges, colours each word's place in the graph; hover a point
for its word. A PC's sign is flipped where that matches the previous snapshot, so that the layout does not
mirror. Right: at the chosen block, the normalised Dirichlet energy (dotted: relabelled nodes, mean ± sd) and
the alignment of the drawn PCs with the graph's z2, z3; accuracy over sequences (full vocabulary and
renormalised over the node words, bins of half a doubling), the same at every block. The grey line is the
chosen context length.</p>
{figure_scripts("icgt-data", data, VIEW_JAVASCRIPT)}
</div>"""


#: Draws the view from the embedded data; the sliders and the 2-D / 3-D choice redraw it with Plotly.react.
VIEW_JAVASCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById("icgt-data").textContent);
  const layerInput = document.getElementById("icgt-layer");
  const contextInput = document.getElementById("icgt-context");
  const threeD = document.getElementById("icgt-3d");
  const words = document.getElementById("icgt-words");
  const pcaDiv = document.getElementById("icgt-pca");
  const curvesDiv = document.getElementById("icgt-curves");
  const config = {responsive: true, displaylogo: false};

  // Drawn coordinates of every node on one PC (index into data.pcs): the run's value times the PC's sign.
  function coordinate(layer, snapshot, pcIndex) {
    const sign = data.signs[layer][snapshot][pcIndex];
    return data.projections[layer][snapshot].map(node => node[pcIndex] === null ? null : sign * node[pcIndex]);
  }

  function pcaTraces(layer, snapshot, dimensions) {
    const pcs = dimensions === 3 ? [0, 1, 2] : data.pcs_2d;
    const axes = pcs.map(pc => coordinate(layer, snapshot, data.pcs.indexOf(pc)));
    const edge = axes.map(() => []);
    for (const [a, b] of data.edges) {
      if (axes[0][a] === null || axes[0][b] === null) continue;  // an absent word: no edge to draw
      axes.forEach((values, axis) => edge[axis].push(values[a], values[b], null));
    }
    const kind = dimensions === 3 ? "scatter3d" : "scatter";
    const names = ["x", "y", "z"];
    const edges = {type: kind, mode: "lines", hoverinfo: "skip", showlegend: false, name: "edges",
                   line: {color: "#999", width: 1.5}};
    const nodes = {type: kind, mode: words.checked ? "markers+text" : "markers", name: "class means",
                   text: data.words, textposition: "top right", showlegend: false,
                   marker: {color: data.colours, size: dimensions === 3 ? 5 : 10,
                            line: {color: "white", width: dimensions === 3 ? 0 : 1}},
                   hovertemplate: "<b>%{text}</b><br>" + pcs.map((pc, axis) =>
                       "PC" + (pc + 1) + " %{" + names[axis] + ":.3g}").join("<br>") + "<extra></extra>"};
    axes.forEach((values, axis) => { edges[names[axis]] = edge[axis]; nodes[names[axis]] = values; });
    return [edges, nodes];
  }

  function axisTitle(layer, snapshot, pc) {
    const share = data.explained[layer][snapshot][data.pcs.indexOf(pc)];
    return "PC" + (pc + 1) + (share === null ? "" : " (" + Math.round(100 * share) + "% of variance)");
  }

  function pcaLayout(layer, snapshot, dimensions) {
    const title = {text: data.block_names[layer] + ", context " + data.positions[snapshot] + " tokens",
                   font: {size: 14}, x: 0.02, xanchor: "left"};
    const layout = {title: title, margin: {l: 50, r: 10, t: 40, b: 45}, hovermode: "closest",
                    uirevision: dimensions};
    if (dimensions === 3) {
      const [x, y, z] = [0, 1, 2].map(pc => ({title: {text: axisTitle(layer, snapshot, pc)}}));
      layout.scene = {xaxis: x, yaxis: y, zaxis: z, aspectmode: "data"};
    } else {
      layout.xaxis = {title: {text: axisTitle(layer, snapshot, data.pcs_2d[0])}, zeroline: false};
      layout.yaxis = {title: {text: axisTitle(layer, snapshot, data.pcs_2d[1])}, zeroline: false,
                      scaleanchor: "x"};
    }
    return layout;
  }

  function curveTraces(layer) {
    const line = (x, y, name, style, axis) => ({type: "scatter", mode: "lines", x: x, y: y, name: name,
                                                line: style, xaxis: "x", yaxis: axis, connectgaps: false});
    const mean = data.energy_null_mean[layer], sd = data.energy_null_sd[layer];
    const shifted = (direction) => mean.map((value, i) =>
        value === null || sd[i] === null ? null : value + direction * sd[i]);
    return [
      Object.assign(line(data.energy_positions, shifted(-1), "relabelled − sd", {width: 0}, "y"),
                    {showlegend: false}),
      Object.assign(line(data.energy_positions, shifted(1), "relabelled (± sd)", {width: 0}, "y"),
                    {fill: "tonexty", fillcolor: "rgba(120,120,120,0.15)"}),
      line(data.energy_positions, mean, "relabelled nodes", {color: "#777", dash: "dot"}, "y"),
      line(data.energy_positions, data.energy[layer], "energy", {color: "#c0392b", width: 2}, "y"),
      line(data.alignment_positions, data.spectral_alignment[layer], "alignment with z2, z3",
           {color: "#8e44ad", width: 2}, "y2"),
      line(data.accuracy_positions, data.accuracy, "accuracy", {color: "#2c3e50", width: 2}, "y3"),
      line(data.accuracy_positions, data.accuracy_renormalized, "renormalised accuracy",
           {color: "#2980b9", width: 2}, "y3"),
    ];
  }

  function curvesLayout(layer, snapshot) {
    const position = data.positions[snapshot];
    return {
      title: {text: "at " + data.block_names[layer], font: {size: 14}, x: 0.02, xanchor: "left"},
      margin: {l: 55, r: 10, t: 40, b: 45}, showlegend: true,
      legend: {orientation: "h", y: -0.12, font: {size: 10}},
      xaxis: {type: "log", title: {text: "context length (tokens)"}, anchor: "y3"},
      yaxis: {domain: [0.7, 1], title: {text: "energy"}, exponentformat: "e"},
      yaxis2: {domain: [0.37, 0.63], title: {text: "alignment"}, range: [0, 1]},
      yaxis3: {domain: [0, 0.3], title: {text: "accuracy"}, range: [0, 1]},
      shapes: [{type: "line", xref: "x", yref: "paper", x0: position, x1: position, y0: 0, y1: 1,
                line: {color: "#555", width: 1.5}},
               {type: "line", xref: "paper", yref: "y3", x0: 0, x1: 1, y0: data.chance_renormalized,
                y1: data.chance_renormalized, line: {color: "#2980b9", width: 1, dash: "dot"}}],
    };
  }

  function draw() {
    const layer = Number(layerInput.value), snapshot = Number(contextInput.value);
    const dimensions = threeD.checked ? 3 : 2;
    document.getElementById("icgt-layer-value").textContent = data.block_names[layer];
    document.getElementById("icgt-context-value").textContent = data.positions[snapshot] + " tokens";
    Plotly.react(pcaDiv, pcaTraces(layer, snapshot, dimensions), pcaLayout(layer, snapshot, dimensions), config);
    Plotly.react(curvesDiv, curveTraces(layer), curvesLayout(layer, snapshot), config);
  }

  for (const input of [layerInput, contextInput]) input.addEventListener("input", draw);
  for (const input of document.querySelectorAll("input[name=icgt-dimensions]")) input.addEventListener("change", draw);
  words.addEventListener("change", draw);
  draw();
})();
"""
