"""The interactive figure of runs that differ only in their seed (``icgt run --seeds N`` writes it beside
seeds.png, as seeds.html): a slider over the seeds, one over the captured blocks and one over the PCA snapshots of
context. Left, the chosen seed's class means at that block and context length on the run's drawn PCs, with the
graph's edges; right, against log context length, accuracy (full vocabulary), the alignment of the drawn PCs with
z2, z3 and the scale-invariant energy at that block, every seed faint, the chosen seed bold, and the mean over
seeds with its 95% t interval (icgt.study.intervals.t_band, as seeds.png), with a cursor at the context length.

Seeds draw other walks, so their principal components may come out mirrored: each seed's PCs are flipped as a
whole where that agrees better with the first seed (:func:`seed_signs`), after the flips that keep one seed's
snapshots from mirroring (icgt.report.plots.pc_signs). One self-contained page, as icgt.report.interactive's
view, with the same limits on what is embedded (MAX_PCA_VALUES, MAX_CURVE_VALUES over all seeds).
"""

from __future__ import annotations

import html
import os
from typing import Any

import numpy as np

from ..study.aggregate import check_seed_group
from ..study.intervals import t_band
from ..study.run_folder import Run, load_run
from . import plots
from .interactive import MAX_CURVE_VALUES, MAX_PCA_VALUES, chosen_snapshots
from .interactive_page import SHARED_STYLE, InteractiveView, figure_scripts, rounded, standalone_page
from .mechanism import experiment_of

#: The curves beside the class means, array name → axis title: each per seed with the mean over seeds.
SEED_CURVES = {"spectral_alignment": "alignment with z2, z3", "energy_scale_invariant": "scale-invariant energy"}


def seed_signs(projections: np.ndarray) -> np.ndarray:
    """Signs [seed, snapshot, pc] (+1 or -1) for one block's class means of every seed [seed, snapshot, node, pc]:
    within a seed, each PC flipped where that agrees better with the previous snapshot (plots.pc_signs); then
    each seed's PC flipped as a whole where that agrees better with the first seed over all snapshots.

    >>> first = np.array([[[1.0, 2.0], [-1.0, 0.5]]])       # one snapshot of two nodes on two PCs
    >>> seed_signs(np.stack([first, first * [[[-1.0, 1.0]]]])).tolist()   # the second seed's PC1 mirrored
    [[[1, 1]], [[-1, 1]]]
    """
    signs = np.stack([plots.pc_signs(seed) for seed in projections])
    drawn = np.nan_to_num(projections * signs[:, :, None, :])
    agreement = (drawn * drawn[:1]).sum(axis=(1, 2))          # [seed, pc]
    return signs * np.where(agreement < 0, -1, 1)[:, None, :]


def seeds_view_data(runs: list[Run]) -> dict[str, Any]:
    """What the seeds view draws, JSON-ready (None for NaN): for each seed (in the order given) the class means at
    every captured block and the chosen PCA snapshots on the drawn PCs with their signs (a drawn coordinate is
    ``projections[seed][layer][snapshot][node][pc] * signs[seed][layer][snapshot][pc]``; pc indexes ``pcs``),
    and the curves: ``accuracy`` [seed][bin] (Run.binned_accuracy) and each of SEED_CURVES [seed][layer][position],
    each with ``<name>_mean`` and ``<name>_half`` (the mean over seeds and its 95% t interval's half-width).

    Raises ValueError unless the runs are graph runs of one setting over different seeds (check_seed_group).

    >>> from icgt.report.interactive_seeds import seeds_view_data
    >>> from icgt.study.run_folder import load_run
    >>> data = seeds_view_data([load_run(folder) for folder in (grid_run, grid_run_seed1, grid_run_seed2)])
    >>> data["seeds"], data["positions"], len(data["projections"][2][6][3])   # seeds, snapshots, nodes
    ([0, 1, 2], [25, 50, 100, 400], 16)
    """
    check_seed_group(runs)
    mechanism = [run.name for run in runs if experiment_of(run) != "graph"]
    if mechanism:
        raise ValueError(f"the seeds view shows graph runs, and these are mechanism runs: {', '.join(mechanism)}")
    first = runs[0]
    pcs = [int(pc) for pc in first.info["config"]["pca_components"]]
    all_positions = first.arrays["pca_positions"]
    num_layers, _, num_nodes, _ = first.arrays["pca_projections"].shape
    snapshots = chosen_snapshots(all_positions, MAX_PCA_VALUES // (len(runs) * num_layers * num_nodes * len(pcs)))
    projections = np.stack([run.arrays["pca_projections"][:, snapshots][..., pcs] for run in runs]).astype(float)
    signs = np.stack([seed_signs(projections[:, layer]) for layer in range(num_layers)], axis=1)
    explained = np.stack([run.arrays["pca_explained"][:, snapshots][..., pcs] for run in runs])

    binned = [run.binned_accuracy() for run in runs]
    length = min(positions.size for positions, _, _ in binned)   # as seeds.png: the positions every seed has
    accuracy = np.stack([mean[:length] for _, mean, _ in binned])
    curves: dict[str, Any] = {}
    for name, positions_name in (("spectral_alignment", "alignment_positions"),
                                 ("energy_scale_invariant", "energy_positions")):
        positions = first.arrays[positions_name]
        chosen = chosen_snapshots(positions, MAX_CURVE_VALUES // (len(SEED_CURVES) * (len(runs) + 2) * num_layers))
        values = np.stack([run.arrays[name][:, chosen] for run in runs])
        mean, half = t_band(values)
        curves.update({f"{name}_positions": positions[chosen].tolist(), name: rounded(values),
                       f"{name}_mean": rounded(mean), f"{name}_half": rounded(half)})
    accuracy_mean, accuracy_half = t_band(accuracy)
    colours = plots.node_colours(first)
    return {
        "runs": [run.name for run in runs],
        "title": first.title,
        "seeds": [int(run.info["config"]["seed"]) for run in runs],
        "layers": first.layers.tolist(),
        "block_names": [first.block_name(block) for block in first.layers],
        "default_layer_index": first.layer_index(),
        "positions": all_positions[snapshots].tolist(),
        "num_snapshots": int(all_positions.size),
        "pcs": pcs,
        "projections": rounded(projections),
        "signs": signs.astype(int).tolist(),
        "explained": rounded(explained),
        "words": list(first.labels),
        "colours": [f"rgb({r},{g},{b})" for r, g, b in np.round(255 * colours).astype(int)],
        "edges": first.edges.tolist(),
        "accuracy_positions": binned[0][0][:length].tolist(),
        "accuracy": rounded(accuracy),
        "accuracy_mean": rounded(accuracy_mean),
        "accuracy_half": rounded(accuracy_half),
        **curves,
    }


def seeds_view_html(runs: list[Run]) -> str:
    """The seeds view as a fragment of HTML for a page's body (ids start with ``icgt-seeds-``): the sliders, the
    two plots, plotly's JavaScript and :func:`seeds_view_data` inline.

    >>> from icgt.report.interactive_seeds import seeds_view_html
    >>> from icgt.study.run_folder import load_run
    >>> fragment = seeds_view_html([load_run(grid_run), load_run(grid_run_seed1)])
    >>> 'id="icgt-seeds-seed"' in fragment and 'id="icgt-seeds-pca"' in fragment
    True
    """
    data = seeds_view_data(runs)
    chosen = ("" if len(data["positions"]) == data["num_snapshots"] else
              f" ({len(data['positions'])} of the {data['num_snapshots']} snapshots of the runs, log-spaced, to keep "
              "this page small)")
    last = len(data["positions"]) - 1
    return f"""<div class="icgt-view icgt-seeds-view">
<style>
{SHARED_STYLE}.icgt-seeds-view .icgt-controls input[type=range] {{ width: 12em; }}
#icgt-seeds-pca {{ flex: 1 1 480px; min-width: 360px; height: 560px; }}
#icgt-seeds-curves {{ flex: 1 1 420px; min-width: 340px; height: 560px; }}
</style>
<h2>{html.escape(data['title'])}: seeds {', '.join(map(str, data['seeds']))}</h2>
<div class="icgt-controls">
<label>seed <input type="range" id="icgt-seeds-seed" min="0" max="{len(data['seeds']) - 1}" step="1" value="0">
<output id="icgt-seeds-seed-value"></output></label>
<label>block <input type="range" id="icgt-seeds-layer" min="0" max="{len(data['layers']) - 1}" step="1"
value="{data['default_layer_index']}"> <output id="icgt-seeds-layer-value"></output></label>
<label>context <input type="range" id="icgt-seeds-context" min="0" max="{last}" step="1" value="{last}">
<output id="icgt-seeds-context-value"></output></label>
<label><input type="checkbox" id="icgt-seeds-words"> words</label>
</div>
<div class="icgt-plots"><div id="icgt-seeds-pca"></div><div id="icgt-seeds-curves"></div></div>
<p class="icgt-note">Left: the chosen seed's class means on PCs {data['pcs'][0] + 1}-{data['pcs'][1] + 1} at the
chosen block and context length{html.escape(chosen)}, lines the graph's edges; a PC's sign is flipped where that
matches the previous snapshot, and each seed's where that matches the first seed, so that layouts do not mirror.
Right, at the chosen block: accuracy (full vocabulary, bins of half a doubling; the same at every block), the
alignment of the drawn PCs with z2, z3 and the scale-invariant energy (1: relabelled nodes); faint:
every seed, bold: the chosen one, black with a band: the mean over seeds and its 95% t interval. The grey line
is the chosen context length.</p>
{figure_scripts("icgt-seeds-data", data, SEEDS_JAVASCRIPT)}
</div>"""


def seeds_view(runs: list[Run | str | os.PathLike]) -> InteractiveView:
    """The seeds view of runs that differ only in their seed (run folders or Runs) as a standalone page;
    ``icgt run --seeds N`` saves it as seeds.html beside seeds.png and aggregate.json.

    >>> from icgt.report.interactive_seeds import seeds_view
    >>> seeds_view([grid_run, grid_run_seed1, grid_run_seed2]).save("seeds.html")
    'seeds.html'
    """
    loaded = [run if isinstance(run, Run) else load_run(run) for run in runs]
    body = seeds_view_html(loaded)
    return standalone_page(f"{loaded[0].name}, seeds", body)


#: Draws the seeds view from the embedded data; the sliders and the words box redraw it with Plotly.react.
SEEDS_JAVASCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById("icgt-seeds-data").textContent);
  const seedInput = document.getElementById("icgt-seeds-seed");
  const layerInput = document.getElementById("icgt-seeds-layer");
  const contextInput = document.getElementById("icgt-seeds-context");
  const words = document.getElementById("icgt-seeds-words");
  const pcaDiv = document.getElementById("icgt-seeds-pca");
  const curvesDiv = document.getElementById("icgt-seeds-curves");
  const config = {responsive: true, displaylogo: false};
  // Each row of the curves: its x values, per-seed values at a block, mean and half-width at a block, axis.
  const ROWS = [
    {name: "accuracy", x: data.accuracy_positions, seed: (seed, layer) => data.accuracy[seed],
     mean: () => data.accuracy_mean, half: () => data.accuracy_half, axis: "y3"},
    {name: "alignment", x: data.spectral_alignment_positions,
     seed: (seed, layer) => data.spectral_alignment[seed][layer],
     mean: layer => data.spectral_alignment_mean[layer], half: layer => data.spectral_alignment_half[layer],
     axis: "y2"},
    {name: "energy", x: data.energy_scale_invariant_positions,
     seed: (seed, layer) => data.energy_scale_invariant[seed][layer],
     mean: layer => data.energy_scale_invariant_mean[layer], half: layer => data.energy_scale_invariant_half[layer],
     axis: "y"},
  ];

  function coordinate(seed, layer, snapshot, pc) {
    const sign = data.signs[seed][layer][snapshot][pc];
    return data.projections[seed][layer][snapshot].map(node => node[pc] === null ? null : sign * node[pc]);
  }

  function pcaTraces(seed, layer, snapshot) {
    const x = coordinate(seed, layer, snapshot, 0), y = coordinate(seed, layer, snapshot, 1);
    const edges = {x: [], y: []};
    for (const [a, b] of data.edges) {
      if (x[a] === null || x[b] === null) continue;  // an absent word: no edge to draw
      edges.x.push(x[a], x[b], null);
      edges.y.push(y[a], y[b], null);
    }
    return [
      {type: "scatter", mode: "lines", x: edges.x, y: edges.y, hoverinfo: "skip", showlegend: false, name: "edges",
       line: {color: "#999", width: 1.5}},
      {type: "scatter", mode: words.checked ? "markers+text" : "markers", x: x, y: y, text: data.words,
       textposition: "top right", name: "class means", showlegend: false,
       marker: {color: data.colours, size: 10, line: {color: "white", width: 1}},
       hovertemplate: "<b>%{text}</b><br>PC" + (data.pcs[0] + 1) + " %{x:.3g}<br>PC" + (data.pcs[1] + 1) +
                      " %{y:.3g}<extra></extra>"},
    ];
  }

  function axisTitle(seed, layer, snapshot, pc) {
    const share = data.explained[seed][layer][snapshot][pc];
    return "PC" + (data.pcs[pc] + 1) + (share === null ? "" : " (" + Math.round(100 * share) + "% of variance)");
  }

  function pcaLayout(seed, layer, snapshot) {
    return {
      title: {text: "seed " + data.seeds[seed] + ", " + data.block_names[layer] + ", context " +
                    data.positions[snapshot] + " tokens", font: {size: 14}, x: 0.02, xanchor: "left"},
      margin: {l: 50, r: 10, t: 40, b: 45}, hovermode: "closest",
      xaxis: {title: {text: axisTitle(seed, layer, snapshot, 0)}, zeroline: false},
      yaxis: {title: {text: axisTitle(seed, layer, snapshot, 1)}, zeroline: false, scaleanchor: "x"},
    };
  }

  function curveTraces(seed, layer) {
    const traces = [];
    for (const row of ROWS) {
      const line = (y, name, style, extra) => Object.assign({type: "scatter", mode: "lines", x: row.x, y: y,
          name: name, line: style, xaxis: "x", yaxis: row.axis, connectgaps: false, showlegend: false}, extra);
      const mean = row.mean(layer), half = row.half(layer);
      const shifted = direction => mean.map((value, i) =>
          value === null || half[i] === null ? null : value + direction * half[i]);
      traces.push(line(shifted(-1), "mean - 95% interval", {width: 0}, {legendgroup: "band"}));
      traces.push(line(shifted(1), "95% interval over seeds", {width: 0},
                       {legendgroup: "band", fill: "tonexty", fillcolor: "rgba(0,0,0,0.12)",
                        showlegend: row.axis === "y3"}));
      data.seeds.forEach((other, index) => {
        if (index !== seed) traces.push(line(row.seed(index, layer), "seed " + other, {color: "#aaa", width: 1},
                                             {legendgroup: "others"}));
      });
      traces.push(line(mean, "mean over seeds", {color: "black", width: 2},
                       {legendgroup: "mean", showlegend: row.axis === "y3"}));
      traces.push(line(row.seed(seed, layer), "seed " + data.seeds[seed], {color: "#d35400", width: 3},
                       {legendgroup: "chosen", showlegend: row.axis === "y3"}));
    }
    return traces;
  }

  function curvesLayout(layer, snapshot) {
    const position = data.positions[snapshot];
    return {
      title: {text: "at " + data.block_names[layer], font: {size: 14}, x: 0.02, xanchor: "left"},
      margin: {l: 70, r: 10, t: 40, b: 45}, showlegend: true, legend: {orientation: "h", y: -0.12, font: {size: 10}},
      xaxis: {type: "log", title: {text: "context length (tokens)"}, anchor: "y3"},
      yaxis: {domain: [0.7, 1], title: {text: "scale-invariant<br>energy"}},
      yaxis2: {domain: [0.37, 0.63], title: {text: "alignment"}, range: [0, 1]},
      yaxis3: {domain: [0, 0.3], title: {text: "accuracy"}, range: [0, 1]},
      shapes: [{type: "line", xref: "x", yref: "paper", x0: position, x1: position, y0: 0, y1: 1,
                line: {color: "#555", width: 1.5}}],
    };
  }

  function draw() {
    const seed = Number(seedInput.value), layer = Number(layerInput.value), snapshot = Number(contextInput.value);
    document.getElementById("icgt-seeds-seed-value").textContent = "seed " + data.seeds[seed];
    document.getElementById("icgt-seeds-layer-value").textContent = data.block_names[layer];
    document.getElementById("icgt-seeds-context-value").textContent = data.positions[snapshot] + " tokens";
    Plotly.react(pcaDiv, pcaTraces(seed, layer, snapshot), pcaLayout(seed, layer, snapshot), config);
    Plotly.react(curvesDiv, curveTraces(seed, layer), curvesLayout(layer, snapshot), config);
  }

  for (const input of [seedInput, layerInput, contextInput]) input.addEventListener("input", draw);
  words.addEventListener("change", draw);
  draw();
})();
"""
