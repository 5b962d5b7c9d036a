"""The interactive figure of a heads run (icgt.study.mechanism.heads): a slider over k, the number of heads
ablated, with the ablation kind, the BOS variant and the accuracy's form (full vocabulary or renormalised over
the node words) to choose. At each setting it draws accuracy over context with the top-k previous-token and the
top-k induction heads ablated, beside no ablation and, where they were drawn (the first kind, at the k nearest
5% of the heads), k random heads as the mean and the 2.5-97.5 percentiles of their draws; late accuracy and
the analysis block's alignment against k with a cursor at k; and the heads' scores with the ablated heads
marked. The static head_ablations.png shows the late numbers at every k at once; the slider shows what lies
behind each of them.

Like icgt.report.interactive it is one self-contained piece of HTML (icgt.report.interactive_page): plotly's
JavaScript and the run's numbers, a few tens of kilobytes (accuracy in CONTEXT_BINS bins of context).
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from ..study.intervals import spread
from ..study.run_folder import Run
from .interactive_page import SHARED_STYLE, figure_scripts, rounded
from .mechanism import BOS_WORDS, binned, compared_count, context_bins, experiment_of, late_accuracy

#: The top sets of head_accuracy's condition axis (C), in its order.
HEAD_SETS = ("previous_token", "induction")
#: The heads view's height in Jupyter, in pixels: its controls, two plots side by side and the scores below.
HEADS_VIEW_HEIGHT = 1060


def top_heads(scores: np.ndarray, count: int) -> list[int]:
    """The ``count`` highest-scoring heads of scores [blocks, heads] as flat indices (block x heads + head),
    highest first: the top sets that icgt.study.mechanism.heads ablates (its np.argsort(-scores, axis=None);
    not imported from there, since the report needs no torch).

    >>> top_heads(np.array([[0.1, 0.9], [0.5, 0.2]]), 2)   # block 0 head 1, then block 1 head 0
    [1, 2]
    """
    return np.argsort(-scores, axis=None)[:count].tolist()


def heads_view_data(run: Run) -> dict[str, Any]:
    """What the heads view draws, JSON-ready (None for NaN), from the run's arrays (docs/run-format.md):

    - ``accuracy[form]`` (form ``full`` or ``renormalized``): ``clean`` [bins], ``top`` [A][VB][C][K][bins]
      (head_accuracy binned over context: icgt.report.mechanism.binned at ``context_bins``' edges, drawn at
      ``context``), and ``random`` {mean, low, high} [VB][KR][bins], the spread of the random draws' binned
      curves in each bin (icgt.study.intervals.spread);
    - ``late[form]``: the same as numbers of the last tenth of the context (icgt.report.mechanism.late_accuracy),
      ``top`` [A][VB][C][K], ``random`` {mean, low, high} [VB][KR]; ``alignment`` likewise, from head_alignment;
    - ``scores`` (head_previous_token, head_induction [blocks][heads]) and ``top_heads``, each set's heads from
      the highest score down (:func:`top_heads`), of which the first k are ablated at k.

    Raises ValueError for a run that is not a heads run.

    >>> from icgt.report.interactive_heads import heads_view_data
    >>> from icgt.study.run_folder import load_run
    >>> data = heads_view_data(load_run(heads_run))
    >>> data["counts"], data["random_counts"], data["kinds"], data["default_count_index"]
    ([1, 2, 4, 6], [2], ['mean', 'zero'], 1)
    >>> len(data["accuracy"]["full"]["top"][0][0][1][2]) == len(data["context"])   # mean, BOS spared, induction, k = 4
    True
    """
    if experiment_of(run) != "heads":
        raise ValueError(f"run {run.name!r} ({experiment_of(run)}) is not a heads run; the heads view shows the "
                         "heads experiment (icgt.study.mechanism.heads)")
    arrays = run.arrays
    counts = [int(k) for k in arrays["head_counts"]]
    random_counts = [int(k) for k in arrays["head_random_counts"]]
    total = int(arrays["head_previous_token"].size)
    edges, centres = context_bins(arrays["head_clean_accuracy"].shape[-1])

    def binned_curves(curves: np.ndarray) -> np.ndarray:
        return np.apply_along_axis(binned, -1, curves, edges)

    def spread_over_draws(values: np.ndarray) -> dict[str, Any]:
        """{mean, low, high}, each values' shape without its draw axis (the second: [VB, D, ...])."""
        moved = np.moveaxis(values, 1, -1)
        spreads = [spread(draws) for draws in moved.reshape(-1, moved.shape[-1])]
        return {name: rounded(np.array([s[name] for s in spreads]).reshape(moved.shape[:-1]))
                for name in ("mean", "low", "high")}

    accuracy, late = {}, {}
    for form, suffix in (("full", ""), ("renormalized", "_renormalized")):
        clean, top, random_ = (arrays[f"head_{part}accuracy{suffix}"] for part in ("clean_", "", "random_"))
        accuracy[form] = {"clean": rounded(binned_curves(clean)), "top": rounded(binned_curves(top)),
                          "random": spread_over_draws(binned_curves(random_))}
        late[form] = {"clean": rounded(late_accuracy(clean)), "top": rounded(late_accuracy(top)),
                      "random": spread_over_draws(late_accuracy(random_))}
    scores = {name: arrays[f"head_{name}"] for name in HEAD_SETS}
    return {
        "run": run.name,
        "title": f"{run.model_description} · {run.graph_kind} graph ({len(run.labels)} nodes) · heads",
        "counts": counts,
        "random_counts": random_counts,
        "default_count_index": compared_count(counts, random_counts, total)[0],
        "total_heads": total,
        "num_heads": int(arrays["head_previous_token"].shape[1]),
        "kinds": [str(kind) for kind in arrays["head_ablation_kinds"]],
        "bos_variants": [BOS_WORDS[bool(included)] for included in arrays["head_bos_included"]],
        "draws": int(arrays["head_random_accuracy"].shape[1]),
        "analysis_block": int(arrays["head_analysis_block"]),
        "context": rounded(centres),
        "accuracy": accuracy,
        "late": late,
        "alignment": {"clean": rounded(arrays["head_clean_alignment"]), "top": rounded(arrays["head_alignment"]),
                      "random": spread_over_draws(arrays["head_random_alignment"])},
        "scores": {name: rounded(values) for name, values in scores.items()},
        "top_heads": {name: top_heads(values, max(counts)) for name, values in scores.items()},
    }


def heads_view_html(run: Run) -> str:
    """The heads view as a fragment of HTML for a page's body (ids start with ``icgt-heads-``): the controls,
    three plots, plotly's JavaScript and :func:`heads_view_data` inline.

    >>> from icgt.report.interactive_heads import heads_view_html
    >>> from icgt.study.run_folder import load_run
    >>> fragment = heads_view_html(load_run(heads_run))
    >>> 'id="icgt-heads-k"' in fragment and 'id="icgt-heads-map"' in fragment
    True
    """
    data = heads_view_data(run)

    def radios(name: str, labels: list[str]) -> str:
        return "".join(f'<label><input type="radio" name="{name}" id="{name}-{index}" value="{index}"'
                       f'{" checked" if index == 0 else ""}> {html.escape(label)}</label> '
                       for index, label in enumerate(labels))

    kinds = [f"{kind} ablation" + ("" if index == 0 else " (no random draws)")
             for index, kind in enumerate(data["kinds"])]
    return f"""<div class="icgt-view icgt-heads-view">
<style>
{SHARED_STYLE}#icgt-heads-curves {{ flex: 1 1 480px; min-width: 360px; height: 480px; }}
#icgt-heads-sizes {{ flex: 1 1 380px; min-width: 320px; height: 480px; }}
#icgt-heads-map {{ flex: 1 1 100%; height: 340px; }}
</style>
<div class="icgt-controls">
<label>heads ablated <input type="range" id="icgt-heads-k" min="0" max="{len(data['counts']) - 1}" step="1"
value="{data['default_count_index']}"> <output id="icgt-heads-k-value"></output></label>
<span>{radios("icgt-heads-kind", kinds)}</span>
<span>{radios("icgt-heads-bos", data["bos_variants"])}</span>
<label><input type="checkbox" id="icgt-heads-renormalized"> renormalised over the node words</label>
</div>
<div class="icgt-plots"><div id="icgt-heads-curves"></div><div id="icgt-heads-sizes"></div>
<div id="icgt-heads-map"></div></div>
<p class="icgt-note">Left: accuracy over context (mean over the walks, in bins of equal width in log context length)
with the top k previous-token heads and the top k induction heads ablated, without ablation (dotted) and with k
random heads ablated (dashed: the mean of {data['draws']} draws; band: their 2.5-97.5 percentiles), which are drawn
for the first ablation kind only and at k = {', '.join(map(str, data['random_counts']))} only. Right: late accuracy
(the last tenth of the context) and the alignment of block {data['analysis_block']}'s class means with z2, z3
against k; the grey line is the chosen k. Below: every head's previous-token and induction score, the heads
ablated at k circled (previous-token) and squared (induction).</p>
{figure_scripts("icgt-heads-data", data, HEADS_JAVASCRIPT)}
</div>"""


#: Draws the heads view from the embedded data; every control redraws it with Plotly.react.
HEADS_JAVASCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById("icgt-heads-data").textContent);
  const countInput = document.getElementById("icgt-heads-k");
  const renormalized = document.getElementById("icgt-heads-renormalized");
  const curvesDiv = document.getElementById("icgt-heads-curves");
  const sizesDiv = document.getElementById("icgt-heads-sizes");
  const mapDiv = document.getElementById("icgt-heads-map");
  const config = {responsive: true, displaylogo: false};
  const SETS = ["previous_token", "induction"];
  const NAMES = {previous_token: "previous-token", induction: "induction"};
  const COLOURS = {previous_token: "#1f77b4", induction: "#d62728"};
  const SYMBOLS = {previous_token: "circle", induction: "square"};

  function checked(name) { return Number(document.querySelector("input[name=" + name + "]:checked").value); }

  function setting() {
    return {count: Number(countInput.value), kind: checked("icgt-heads-kind"), variant: checked("icgt-heads-bos"),
            form: renormalized.checked ? "renormalized" : "full"};
  }

  // Random heads exist for the first ablation kind at data.random_counts only: their index there, else -1.
  function randomIndex(s) {
    return s.kind === 0 ? data.random_counts.indexOf(data.counts[s.count]) : -1;
  }

  function described(s) {
    const k = data.counts[s.count];
    return k + " of " + data.total_heads + " heads (" + (100 * k / data.total_heads).toFixed(1) + "%)";
  }

  function accuracyLabel(s) {
    return s.form === "full" ? "accuracy (full vocabulary)" : "accuracy (renormalised over the node words)";
  }

  function curveTraces(s) {
    const accuracy = data.accuracy[s.form], k = data.counts[s.count], r = randomIndex(s);
    const line = (y, name, style) => ({type: "scatter", mode: "lines", x: data.context, y: y, name: name,
                                       line: style, connectgaps: false});
    const drawn = r >= 0;
    const random = (part) => drawn ? accuracy.random[part][s.variant][r] : [];
    return [
      line(accuracy.clean, "no ablation", {color: "black", dash: "dot", width: 2}),
      ...SETS.map((set, c) => line(accuracy.top[s.kind][s.variant][c][s.count],
                                   "top " + k + " " + NAMES[set] + " heads", {color: COLOURS[set], width: 2})),
      Object.assign(line(random("low"), "random heads, 2.5th percentile", {width: 0}),
                    {showlegend: false, visible: drawn}),
      Object.assign(line(random("high"), "random heads, 2.5-97.5 percentiles", {width: 0}),
                    {fill: "tonexty", fillcolor: "rgba(120,120,120,0.2)", visible: drawn}),
      Object.assign(line(random("mean"), k + " random heads (mean of " + data.draws + " draws)",
                         {color: "#777", dash: "dash", width: 2}), {visible: drawn}),
    ];
  }

  function curvesLayout(s) {
    const note = randomIndex(s) >= 0 ? "" : " · no random draws here";
    return {
      title: {text: described(s) + " · " + data.kinds[s.kind] + " ablation · " + data.bos_variants[s.variant] + note,
              font: {size: 13}, x: 0.02, xanchor: "left"},
      margin: {l: 55, r: 10, t: 40, b: 45}, showlegend: true, legend: {orientation: "h", y: -0.15, font: {size: 10}},
      xaxis: {type: "log", title: {text: "context length (tokens)"}},
      yaxis: {title: {text: accuracyLabel(s)}, range: [0, 1]},
    };
  }

  // The random draws' mean as markers with the 2.5-97.5 percentiles as error bars, on one axis.
  function randomMarkers(spread, variant, axis, showlegend) {
    const mean = spread.mean[variant], low = spread.low[variant], high = spread.high[variant];
    const gap = (a, b) => (a === null || b === null ? 0 : a - b);
    return {type: "scatter", mode: "markers", x: data.random_counts, y: mean, xaxis: "x", yaxis: axis,
            name: "random heads (" + data.draws + " draws)", showlegend: showlegend,
            marker: {symbol: "triangle-up", color: "#777", size: 9},
            error_y: {type: "data", symmetric: false, color: "#777",
                      array: mean.map((m, r) => gap(high[r], m)), arrayminus: mean.map((m, r) => gap(m, low[r]))}};
  }

  function sizeTraces(s) {
    const late = data.late[s.form];
    const traces = [];
    for (const [values, axis] of [[late.top, "y"], [data.alignment.top, "y2"]]) {
      SETS.forEach((set, c) => traces.push({
        type: "scatter", mode: "lines+markers", x: data.counts, y: values[s.kind][s.variant][c], xaxis: "x",
        yaxis: axis, name: "top " + NAMES[set] + " heads", showlegend: axis === "y",
        line: {color: COLOURS[set]}, marker: {symbol: SYMBOLS[set], size: 7}}));
    }
    if (s.kind === 0) {
      traces.push(randomMarkers(late.random, s.variant, "y", true));
      traces.push(randomMarkers(data.alignment.random, s.variant, "y2", false));
    }
    return traces;
  }

  function sizesLayout(s) {
    const k = data.counts[s.count];
    const level = (value, axis) => ({type: "line", xref: "paper", yref: axis, x0: 0, x1: 1, y0: value, y1: value,
                                     line: {color: "black", width: 1, dash: "dot"}});
    return {
      title: {text: "against k (" + data.kinds[s.kind] + " ablation)", font: {size: 13}, x: 0.02, xanchor: "left"},
      margin: {l: 55, r: 10, t: 40, b: 45}, showlegend: true, legend: {orientation: "h", y: -0.15, font: {size: 10}},
      xaxis: {type: "log", title: {text: "heads ablated (k)"}, tickvals: data.counts, anchor: "y2"},
      yaxis: {domain: [0.55, 1], title: {text: "late " + accuracyLabel(s).replace(" (", "<br>(")}, range: [0, 1]},
      yaxis2: {domain: [0, 0.45], title: {text: "alignment, block " + data.analysis_block}, range: [0, 1]},
      shapes: [{type: "line", xref: "x", yref: "paper", x0: k, x1: k, y0: 0, y1: 1, line: {color: "#555", width: 1.5}},
               level(data.late[s.form].clean, "y"), level(data.alignment.clean, "y2")],
    };
  }

  function mapTraces(s) {
    const k = data.counts[s.count];
    const blocks = data.scores.previous_token.map((_, block) => block);
    const heads = data.scores.previous_token[0].map((_, head) => head);
    const traces = SETS.map((set, c) => ({
      type: "heatmap", x: blocks, y: heads, z: heads.map(head => data.scores[set].map(row => row[head])),
      zmin: 0, zmax: 1, colorscale: "Viridis", showscale: c === 1, xaxis: c ? "x2" : "x", yaxis: c ? "y2" : "y",
      hovertemplate: "block %{x}, head %{y}<br>" + NAMES[set] + " score %{z:.2f}<extra></extra>"}));
    SETS.forEach((set, c) => {
      const chosen = data.top_heads[set].slice(0, k);
      traces.push({type: "scatter", mode: "markers", x: chosen.map(flat => Math.floor(flat / data.num_heads)),
                   y: chosen.map(flat => flat % data.num_heads), xaxis: c ? "x2" : "x", yaxis: c ? "y2" : "y",
                   name: "top " + k + " " + NAMES[set] + " heads", showlegend: false, hoverinfo: "skip",
                   marker: {symbol: SYMBOLS[set] + "-open", size: 12, color: "white", line: {width: 2}}});
    });
    return traces;
  }

  function mapLayout(s) {
    const axis = (title, domain, anchor) => ({title: {text: title}, domain: domain, anchor: anchor});
    return {
      margin: {l: 55, r: 10, t: 30, b: 45},
      xaxis: axis("block", [0, 0.45], "y"), yaxis: axis("head", [0, 1], "x"),
      xaxis2: axis("block", [0.52, 0.97], "y2"), yaxis2: axis("head", [0, 1], "x2"),
      annotations: SETS.map((set, c) => ({
        text: NAMES[set] + " score · the " + data.counts[s.count] + " ablated marked", xref: "paper", yref: "paper",
        x: c ? 0.52 : 0, y: 1.08, xanchor: "left", showarrow: false, font: {size: 13}})),
    };
  }

  function draw() {
    const s = setting();
    document.getElementById("icgt-heads-k-value").textContent = described(s);
    Plotly.react(curvesDiv, curveTraces(s), curvesLayout(s), config);
    Plotly.react(sizesDiv, sizeTraces(s), sizesLayout(s), config);
    Plotly.react(mapDiv, mapTraces(s), mapLayout(s), config);
  }

  countInput.addEventListener("input", draw);
  renormalized.addEventListener("change", draw);
  for (const input of document.querySelectorAll("input[name=icgt-heads-kind], input[name=icgt-heads-bos]")) {
    input.addEventListener("change", draw);
  }
  draw();
})();
"""
