"""Reading an icgt run folder: run.json and results.npz, checked against docs/run-format.md.

A :class:`Run` holds the arrays and the derived curves that figures and summaries share (layer groups,
accuracy over sequences, energy minimum, fastest rise). Only numpy and json are used, never the
compiled core, so runs can be read wherever their folders are copied; :meth:`Run.to_xarray` imports
xarray when it is called.
"""

from __future__ import annotations

import copy
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..models.catalog import describe_model, short_model_name
from .curves import ACCURACY_BINS_PER_DOUBLING, log_bins, nanmean, nanstd

if TYPE_CHECKING:
    import xarray

    from .. import report

RUN_FORMAT_VERSION = 3

#: Each array of results.npz with its dimensions, named as in docs/run-format.md.
RESULT_ARRAYS = {
    "layers": ("L",),
    "nodes": ("B", "T"),
    "scored": ("B", "T"),
    "accuracy": ("B", "T"),
    "accuracy_renormalized": ("B", "T"),
    "energy_positions": ("S",),
    "energy": ("L", "S"),
    "energy_per_sequence": ("L", "B", "S"),
    "energy_scale_invariant": ("L", "S"),
    "energy_null_mean": ("L", "S"),
    "energy_null_sd": ("L", "S"),
    "energy_p_value": ("L", "S"),
    "timing_positions": ("S3",),
    "timing_energy": ("L", "S3"),
    "timing_accuracy": ("V", "S3"),
    "energy_change_points": ("R",),
    "accuracy_change_points": ("R", "V"),
    "energy_minimum_points": ("R",),
    "accuracy_rise_points": ("R", "V"),
    "lag_layer": (),
    "pca_positions": ("P",),
    "pca_projections": ("L", "P", "n", "k"),
    "pca_explained": ("L", "P", "k"),
    "alignment_positions": ("S2",),
    "spectral_alignment": ("L", "S2"),
    "distance_correlation": ("L", "S2"),
    "spectral_embedding": ("n", "k"),
}
#: The arrays of the mechanism experiments (icgt.study.mechanism), by experiment; every run also has
#: nodes, scored and token_ids. C conditions, K counts, Bl blocks, NL blocks of the model, H heads, A head
#: ablation kinds, VB BOS variants, PL planes (the PC plane, then the random ones), D random draws of
#: heads, KR the ks they are drawn at, NH all heads (NL * H).
TOY_ARRAYS = {f"toy_{name}": dims for name, dims in RESULT_ARRAYS.items()
              if name not in ("layers", "nodes", "scored", "accuracy", "accuracy_renormalized", "timing_accuracy",
                              "energy_change_points", "accuracy_change_points", "energy_minimum_points",
                              "accuracy_rise_points", "lag_layer")}
MECHANISM_ARRAYS = {
    "intervention": {"intervention_targets": ("B", "K3"), "intervention_current": ("B",), "intervention_blocks": ("Bl",),
                     **{f"intervention_{name}": ("C5", "B", "K3") for name in ("mass", "mass_renormalized", "top1",
                                                                               "top3")}},
    "heads": {"head_previous_token": ("NL", "H"), "head_induction": ("NL", "H"), "head_counts": ("K",),
              "head_top_overlap": ("K",), "head_ablation_kinds": ("A",), "head_bos_included": ("VB",),
              "head_analysis_block": (), "head_clean_accuracy": ("T",), "head_clean_accuracy_renormalized": ("T",),
              "head_clean_alignment": (), "head_clean_energy_z": (), "head_accuracy": ("A", "VB", "C", "K", "T"),
              "head_accuracy_renormalized": ("A", "VB", "C", "K", "T"), "head_alignment": ("A", "VB", "C", "K"),
              "head_energy_z": ("A", "VB", "C", "K"), "head_random_counts": ("KR",), "head_random_order": ("D", "NH"),
              "head_random_accuracy": ("VB", "D", "KR", "T"),
              "head_random_accuracy_renormalized": ("VB", "D", "KR", "T"),
              "head_random_alignment": ("VB", "D", "KR"), "head_random_energy_z": ("VB", "D", "KR")},
    "subspace": {"subspace_blocks": ("Bl",), "subspace_measured_sequences": ("M",), "subspace_bos_included": ("VB",),
                 "subspace_plain_accuracy": ("T",), "subspace_plain_accuracy_renormalized": ("T",),
                 "subspace_accuracy": ("VB", "PL", "T"), "subspace_accuracy_renormalized": ("VB", "PL", "T"),
                 "subspace_removed_variance": ("VB", "PL", "Bl")},
    "toy_mixing": TOY_ARRAYS,
}
#: Arrays that the runs icgt writes carry beside their experiment's, not required of a run folder: the
#: token id at each position (the BOS, the words, separators).
OPTIONAL_ARRAYS = {"token_ids": ("B", "T")}
#: The intervention's conditions, in the order of its arrays' first axis (C5).
INTERVENTION_CONDITIONS = ("clean", "moved", "random", "self", "in_plane")


class Dimension(NamedTuple):
    """How :meth:`Run.to_xarray` names one dimension of the format, and what labels its entries: the
    values of the first array of ``labelled_by`` that the run holds, else ``labels`` where the format
    fixes them, else 0, 1, 2, ..."""

    name: str
    labelled_by: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


#: The name in :meth:`Run.to_xarray` of each dimension of the arrays above (the letters of
#: docs/run-format.md), with what labels its entries; the one table of these names.
DIMENSIONS = {
    "L": Dimension("layer", ("layers",)),
    "B": Dimension("sequence"),
    "T": Dimension("position"),
    "S": Dimension("energy_position", ("energy_positions", "toy_energy_positions")),
    "S2": Dimension("alignment_position", ("alignment_positions", "toy_alignment_positions")),
    "S3": Dimension("timing_position", ("timing_positions", "toy_timing_positions")),
    "P": Dimension("pca_position", ("pca_positions", "toy_pca_positions")),
    "n": Dimension("node"),
    "k": Dimension("pc"),
    "K2": Dimension("pc_pair"),
    "R": Dimension("resample"),
    "V": Dimension("accuracy_variant", labels=("full_vocabulary", "renormalized")),
    "K3": Dimension("target"),
    "C5": Dimension("intervention_condition", labels=INTERVENTION_CONDITIONS),
    "Bl": Dimension("late_block", ("intervention_blocks", "subspace_blocks")),
    "NL": Dimension("block"),
    "H": Dimension("head"),
    "K": Dimension("head_count", ("head_counts",)),
    "A": Dimension("ablation_kind", ("head_ablation_kinds",)),
    "VB": Dimension("bos_included", ("head_bos_included", "subspace_bos_included")),
    "C": Dimension("head_set", labels=("previous_token", "induction")),
    "KR": Dimension("random_head_count", ("head_random_counts",)),
    "D": Dimension("draw"),
    "NH": Dimension("flat_head"),
    "M": Dimension("measured_sequence", ("subspace_measured_sequences",)),
    "PL": Dimension("plane"),
    "PM": Dimension("matched_plane"),
    "E": Dimension("heldout_edge"),
    "ends": Dimension("end"),
    "C4": Dimension("word_kind"),
    "EV": Dimension("eigenvalue", ("spectral_eigenvalues", "toy_spectral_eigenvalues")),
    "G": Dimension("graph", labels=("first", "second")),
    "E2": Dimension("second_graph_edge"),
    "PA": Dimension("principal_angle"),
}


def dimension(letter: str) -> Dimension:
    """DIMENSIONS' entry for a letter of the format, or a dimension named by the letter itself where
    DIMENSIONS names none (an array added to the format before its dimensions were named there).

    >>> dimension("L").name, dimension("Q").name
    ('layer', 'Q')
    """
    return DIMENSIONS.get(letter, Dimension(letter))


#: Arrays used as indices or masks: a float or 0/1 array there would index silently wrong.
INTEGER_ARRAYS = ("layers", "nodes", "energy_positions", "pca_positions", "alignment_positions", "timing_positions",
                  "lag_layer")
BOOLEAN_ARRAYS = ("scored",)
#: Arrays added to the format after its version's first runs, checked where a run has them, so that the
#: runs written before still load (docs/run-format.md); their toy_ copies likewise. EV: the graph's
#: distinct Laplacian eigenvalues. debiased_spectral_profile is at alignment_positions (S2), from the
#: pca_window's class means; the spectral_profile some runs hold (the energy window's, at S) is read by
#: nothing: 20 tokens per class left too much sampling noise (tests/python/test_spectrum_validation.py).
LATER_ARRAYS = {"spectral_eigenvalues": ("EV",), "debiased_spectral_profile": ("L", "S2", "EV")}
LATER_ARRAYS.update({f"toy_{name}": dims for name, dims in LATER_ARRAYS.items()})
#: The intervention's authors' option (intervention_unembedding > 0), and the subspace ablation's
#: variance-matched planes (PM), came later too.
LATER_ARRAYS.update({f"intervention_unembedding_{name}": ("B", "K3")
                     for name in ("mass", "mass_renormalized", "top1", "top3")})
LATER_ARRAYS.update({"subspace_matched_accuracy": ("VB", "PM", "T"),
                     "subspace_matched_accuracy_renormalized": ("VB", "PM", "T"),
                     "subspace_matched_removed_variance": ("VB", "PM", "Bl"), "subspace_matched_dimension": ("VB", "Bl")})
#: Arrays that only days-of-week runs carry; K2 is one per consecutive PC pair (k // 2).
DAYS_ARRAYS = {
    "weekly_alignment": ("L", "P", "K2"),
    "ring_alignment": ("L", "P", "K2"),
}
#: Arrays that only held-out runs carry (icgt.study.heldout): E held-out edges, C4 the kinds of word compared
#: (heldout.HELDOUT_CLASSES), R the run and its resamples as in energy_change_points.
HELDOUT_ARRAYS = {
    "heldout_edges": ("E", "ends"),
    "heldout_probability": ("C4", "S3"),
    "heldout_final": ("R", "C4"),
    "heldout_distances": ("L", "P", "C4"),
}
#: Arrays that only runs with a second graph carry (icgt.study.two_graphs): E2 its edges, G the two graphs
#: (the run's graph, then the second), K2 the PC pairs (1-2, 3-4), PA the principal angles between the two
#: graphs' subspaces of the class means; the p-value and null_ arrays are their relabelling null.
TWO_GRAPH_ARRAYS = {
    "second_graph_edges": ("E2", "ends"),
    "second_accuracy": ("B", "T"),
    "second_accuracy_renormalized": ("B", "T"),
    "two_graph_alignment": ("L", "P", "G", "K2"),
    "two_graph_variance": ("L", "P", "G"),
    "two_graph_cosines": ("L", "P", "PA"),
    "two_graph_p_value": ("L", "P", "G"),
    "two_graph_null_share": ("L", "P", "G"),
    "two_graph_null_cosine_squared": ("L", "P"),
}
#: run.json entries the report reads, as (section, key); section None is the top level.
RUN_JSON_KEYS = [
    (None, "name"),
    ("config", "model"), ("config", "mode"), ("config", "energy_window"), ("config", "pca_window"),
    ("config", "pca_components"),
    ("model", "num_layers"),
    ("graph", "kind"), ("graph", "num_nodes"), ("graph", "edges"), ("graph", "labels"),
]
#: The paper's headline layer is block 26 of 32 in Llama-3.1-8B, about 80% of the depth.
DEFAULT_LAYER_DEPTH = 0.8


@dataclass(frozen=True)
class Run:
    """A loaded run folder: ``info`` is run.json, ``arrays`` the arrays of results.npz.

    Make one with :func:`load_run`; it checks the folder against docs/run-format.md.

    >>> from icgt.study.run_folder import load_run
    >>> run = load_run(grid_run)
    >>> run.graph_kind, run.layers.tolist(), run.arrays["pca_projections"].shape
    ('grid', [0, 1, 2, 3, 4, 5, 6, 7], (8, 4, 16, 4))
    """

    folder: Path
    info: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def model_name(self) -> str:
        return self.info["config"]["model"]

    @property
    def model_description(self) -> str:
        """The model as a reader should know it: variant, quantisation and dtype of a built-in model
        (e.g. "SmolLM2-135M-Instruct, Q4_1 GGUF, run in float32"), else its source's file or folder name.

        >>> from icgt.study.run_folder import load_run
        >>> load_run(grid_run).model_description
        'toy-8-layers'
        """
        model = self.info.get("model", {})
        return describe_model(self.model_name, model.get("source") or None, model.get("dtype"))

    @property
    def model_short_name(self) -> str:
        """The model's name for sentences, e.g. "SmolLM2-135M" (see icgt.models.catalog.short_model_name).

        >>> from icgt.study.run_folder import load_run
        >>> load_run(grid_run).model_short_name
        'toy-8-layers'
        """
        return short_model_name(self.model_name, self.info.get("model", {}).get("source") or None)

    @property
    def graph_kind(self) -> str:
        return self.info["graph"]["kind"]

    @property
    def labels(self) -> list[str]:
        return self.info["graph"]["labels"]

    @property
    def edges(self) -> np.ndarray:
        """The graph's undirected edges as an [E, 2] int array of node indices."""
        return np.asarray(self.info["graph"]["edges"], dtype=np.int64).reshape(-1, 2)

    @property
    def num_layers(self) -> int:
        """Decoder blocks in the model (not only the captured ones)."""
        return self.info["model"]["num_layers"]

    @property
    def layers(self) -> np.ndarray:
        """The captured 0-based decoder blocks; array axis L follows this order."""
        return self.arrays["layers"]

    @property
    def is_days(self) -> bool:
        return self.graph_kind == "days"

    @property
    def has_held_out_edges(self) -> bool:
        """Whether the walks left out edges of the graph (icgt.study.heldout)."""
        return bool(self.info["config"].get("held_out_edges"))

    @property
    def has_second_graph(self) -> bool:
        """Whether the walks switched between the graph and a second one (icgt.study.two_graphs)."""
        return bool(self.info["config"].get("second_graph"))

    @property
    def title(self) -> str:
        """Model, graph and sampling mode, for figure titles."""
        return (f"{self.model_description} · {self.graph_kind} graph ({len(self.labels)} nodes) · "
                f"{self.info['config']['mode']}")

    @property
    def drawn_pcs(self) -> str:
        """The two principal components the PCA figure draws and spectral_alignment measures, 1-based.

        >>> from icgt.study.run_folder import load_run
        >>> load_run(grid_run).drawn_pcs
        'PCs 1-2'
        """
        first, second = self.info["config"]["pca_components"]
        return f"PCs {first + 1}-{second + 1}"

    def block_name(self, block: int) -> str:
        """A decoder block in icgt's one numbering, 0-based, with the model's depth: "block 24 of 30".

        >>> from icgt.study.run_folder import load_run
        >>> load_run(grid_run).block_name(6)
        'block 6 of 8'
        """
        return f"block {int(block)} of {self.num_layers}"

    def default_layer(self) -> int:
        """The captured block closest to 80% of the model's depth (the paper's block 26 of 32).

        >>> from icgt.study.run_folder import load_run
        >>> load_run(grid_run).default_layer()   # 8 blocks: 0.8 * 8 = 6.4
        6
        """
        target = DEFAULT_LAYER_DEPTH * self.num_layers
        return int(self.layers[np.argmin(np.abs(self.layers - target))])

    def layer_index(self, layer: int | None = None) -> int:
        """Position of a captured block on the arrays' layer axis; None means the default layer.

        >>> from icgt.study.run_folder import load_run
        >>> load_run(grid_run).layer_index(3)
        3
        """
        layer = self.default_layer() if layer is None else layer
        matches = np.flatnonzero(self.layers == layer)
        if matches.size == 0:
            raise ValueError(f"layer {layer} was not captured in run {self.name!r}; "
                             f"captured layers: {self.layers.tolist()}")
        return int(matches[0])

    def layer_groups(self) -> dict[str, np.ndarray]:
        """Indices into the layer axis of the shallow, middle and deep thirds of the model.

        Thirds of the model's depth, so that runs capturing different blocks stay comparable;
        a third with no captured block is left out.

        >>> from icgt.study.run_folder import load_run
        >>> {group: indices.tolist() for group, indices in load_run(grid_run).layer_groups().items()}
        {'shallow': [0, 1, 2], 'middle': [3, 4, 5], 'deep': [6, 7]}
        """
        third = np.minimum(self.layers * 3 // self.num_layers, 2)
        groups = {}
        for number, group in enumerate(("shallow", "middle", "deep")):
            indices = np.flatnonzero(third == number)
            if indices.size:
                groups[group] = indices
        return groups

    def layer_group_means(self, array_name: str) -> dict[str, np.ndarray]:
        """The mean over the layers of each layer group of an array whose first axis is the layer axis.

        NaN where every layer of the group is NaN (for example a node absent from the window).

        >>> from icgt.study.run_folder import load_run
        >>> means = load_run(grid_run).layer_group_means("energy")
        >>> list(means), means["deep"].shape
        (['shallow', 'middle', 'deep'], (40,))
        """
        values = self.arrays[array_name]
        return {group: nanmean(values[indices]) for group, indices in self.layer_groups().items()}

    def energy_z(self) -> np.ndarray:
        """The paper's normalised energy [L, S], (energy - null mean) / null sd: negative is more graph-like
        than relabelled nodes; NaN where the null has no spread.

        >>> from icgt.study.run_folder import load_run
        >>> round(float(load_run(grid_run).energy_z()[6, -1]), 1)
        -17.8
        """
        sd = self.arrays["energy_null_sd"]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sd > 0, (self.arrays["energy"] - self.arrays["energy_null_mean"]) / sd, np.nan)

    def energy_sd_over_sequences(self) -> dict[str, np.ndarray]:
        """For each layer group, the standard deviation over sequences of the per-sequence energy.

        Each sequence's energy is first averaged over the group's layers, as the pooled curve is.

        >>> from icgt.study.run_folder import load_run
        >>> sd = load_run(grid_run).energy_sd_over_sequences()["deep"]
        >>> bool(np.isnan(sd[0])), bool(0 < sd[-1] < 0.1)   # no energy at the first snapshot
        (True, True)
        """
        per_sequence = self.layer_group_means("energy_per_sequence")
        return {group: nanstd(energies) for group, energies in per_sequence.items()}

    def accuracy_curve(self, renormalized: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions, mean, sd) of accuracy over sequences, at the positions that some sequence scores.

        ``renormalized`` picks the accuracy renormalised over the node tokens instead of the
        full-vocabulary one.

        >>> from icgt.study.run_folder import load_run
        >>> positions, mean, sd = load_run(grid_run).accuracy_curve()
        >>> int(positions[0]), bool(mean[-1] > 0.8)
        (1, True)
        """
        accuracy = self.arrays["accuracy_renormalized" if renormalized else "accuracy"]
        scored = self.arrays["scored"]
        values = np.where(scored, accuracy, np.nan)
        positions = np.flatnonzero(scored.any(axis=0))
        values = values[:, positions]
        return positions, nanmean(values), nanstd(values)

    def binned_accuracy(self, renormalized: bool = False, bins_per_doubling: int = ACCURACY_BINS_PER_DOUBLING
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions, mean, sd) of accuracy in log-spaced bins of context: readable where
        :meth:`accuracy_curve` is one noisy value per position.

        Each sequence's scored positions are averaged within bins of equal width in log2(position)
        (``bins_per_doubling`` per doubling of context); mean and sd are then taken over sequences.
        A bin's position is the geometric mean of the positions it holds.

        >>> from icgt.study.run_folder import load_run
        >>> positions, mean, sd = load_run(grid_run).binned_accuracy()
        >>> positions[:4].tolist(), bool(np.all(np.diff(mean) > -0.05)), bool(sd.max() < 0.05)
        ([1, 2, 3, 4], True, True)
        """
        accuracy = self.arrays["accuracy_renormalized" if renormalized else "accuracy"]
        scored = self.arrays["scored"] & np.isfinite(accuracy)
        positions = np.flatnonzero(scored.any(axis=0))
        positions = positions[positions > 0]
        if positions.size == 0:
            empty = np.zeros(0)
            return empty.astype(np.int64), empty, empty
        bin_of, num_bins = log_bins(positions, bins_per_doubling)
        occupied = np.flatnonzero(np.bincount(bin_of, minlength=num_bins))
        values = np.where(scored[:, positions], accuracy[:, positions], 0.0)
        counts = scored[:, positions].astype(float)
        per_sequence = np.full((accuracy.shape[0], occupied.size), np.nan)
        centres = np.zeros(occupied.size, dtype=np.int64)
        for column, bin_index in enumerate(occupied):
            in_bin = bin_of == bin_index
            total, count = values[:, in_bin].sum(axis=1), counts[:, in_bin].sum(axis=1)
            per_sequence[:, column] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
            centres[column] = int(round(2 ** np.log2(positions[in_bin]).mean()))
        return centres, nanmean(per_sequence), nanstd(per_sequence)

    def chance_accuracy_renormalized(self) -> float:
        """Renormalised accuracy of uniform guessing: the mean of degree/n over the scored positions.

        >>> from icgt.study.run_folder import load_run
        >>> round(load_run(grid_run).chance_accuracy_renormalized(), 2)
        0.2
        """
        degree = np.bincount(self.edges.ravel(), minlength=len(self.labels))
        nodes = self.arrays["nodes"][self.arrays["scored"]]
        return float(degree[nodes].mean() / len(self.labels))

    def explore(self) -> report.interactive_page.InteractiveView:
        """The report's interactive figure of this run: for a graph run the class means on their PCs with
        sliders over block and context length, beside the energy and accuracy curves; for a heads run accuracy
        with a slider over the number of heads ablated. In Jupyter it shows inline, ``.save(path)`` writes it
        as a page. Raises ValueError for the other mechanism runs (icgt.report.interactive.interactive_view).

        >>> from icgt.study.run_folder import load_run
        >>> view = load_run(grid_run).explore()
        >>> 'id="icgt-context"' in view.page
        True
        """
        # The report reads runs, so a run reaches it only here, through the package's public names.
        from .. import report

        return report.interactive_view(self)

    def __repr__(self) -> str:
        return (f"Run({self.name!r}, model={self.model_name!r}, graph={self.graph_kind!r}, "
                f"experiment={self.info['config'].get('experiment', 'graph')!r}, {len(self.arrays)} arrays)")

    def _repr_html_(self) -> str:
        """A short table for Jupyter: model, graph, the verdict in words and a few key numbers
        (icgt.report.html.run_card), instead of every array."""
        from .. import report

        return report.run_card(self)

    def to_xarray(self) -> xarray.Dataset:
        """The run as an xarray Dataset: each array of results.npz under its own name, its dimensions
        named by DIMENSIONS (layer, position, node, pc, ...); the arrays that label a dimension are its
        coordinate instead (``layers`` is ``layer``, ``energy_positions`` is ``energy_position``, ...,
        each with the array's name in its attrs), the graph's words are the coordinate ``word`` along
        ``node``, and the attrs are the run's config. An array that docs/run-format.md does not declare
        keeps its values, along dimensions ``<array>_dim_0``, ``<array>_dim_1``, ...

        >>> from icgt.study.run_folder import load_run
        >>> dataset = load_run(grid_run).to_xarray()
        >>> dataset["energy"].dims, dataset.attrs["preset"], dataset["layer"].attrs["array"]
        (('layer', 'energy_position'), 'grid', 'layers')
        >>> round(float(dataset["spectral_alignment"].sel(layer=6, alignment_position=400)), 3)
        0.7
        >>> dataset["pca_projections"].sel(layer=6, pca_position=400).dims, str(dataset["word"].sel(node=0).values)
        (('node', 'pc'), 'apple')
        """
        import xarray

        declared = {**declared_arrays(self.info), **LATER_ARRAYS, **OPTIONAL_ARRAYS}
        dimensions = {name: declared[name] for name in self.arrays if name in declared}
        sizes = {letter: size for name, letters in dimensions.items()
                 for letter, size in zip(letters, self.arrays[name].shape)}
        coordinates, labelling = {}, set()
        for letter, size in sizes.items():
            named = dimension(letter)
            source = next((name for name in named.labelled_by if dimensions.get(name) == (letter,)), None)
            if source is not None:
                coordinates[named.name] = xarray.Variable(named.name, self.arrays[source], {"array": source})
                labelling.add(source)
            else:
                coordinates[named.name] = (named.name, list(named.labels) or np.arange(size))
        if "n" in sizes:
            coordinates["word"] = (dimension("n").name, list(self.labels))
        variables = {}
        for name, values in self.arrays.items():
            if name in labelling:
                continue
            names = ([dimension(letter).name for letter in dimensions[name]] if name in dimensions
                     else [f"{name}_dim_{axis}" for axis in range(values.ndim)])
            variables[name] = (names, values)
        return xarray.Dataset(variables, coordinates, attrs=copy.deepcopy(self.info["config"]))


def load_run(run_folder: str | os.PathLike) -> Run:
    """Read and check a run folder (run.json and results.npz, as in docs/run-format.md).

    Raises FileNotFoundError for a folder without run.json or results.npz, and ValueError for a wrong
    format version, missing entries or arrays, or arrays whose shapes disagree; the message says what
    was expected.

    >>> from icgt.study.run_folder import load_run
    >>> run = load_run(grid_run)
    >>> run.name, run.model_name
    ('synthetic-grid', 'toy-8-layers')
    """
    folder = Path(run_folder)
    run_json = folder / "run.json"
    results_npz = folder / "results.npz"
    if not run_json.is_file():
        raise FileNotFoundError(
            f"{folder} is not an icgt run: it has no run.json "
            f"(expected run.json and results.npz as written by `icgt run`, see docs/run-format.md)")
    try:
        info = json.loads(run_json.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{run_json} is not valid JSON ({error})") from None
    _check_run_json(info, run_json)
    if not results_npz.is_file():
        raise FileNotFoundError(f"run {folder} has run.json but no results.npz "
                                f"(expected the arrays listed in docs/run-format.md)")
    try:
        with np.load(results_npz, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{results_npz} is not a readable numpy .npz archive (truncated or damaged: {error}); "
                         "run the experiment again") from None
    run = Run(folder=folder, info=info, arrays=arrays)
    check_results(run)
    return run


def check_results(run: Run) -> None:
    """Check a run's arrays against this format (the arrays of its experiment, their dimensions and
    dtypes, their agreement with run.json): what load_run does after reading, and what the experiment
    driver does before it writes, so that the format has one definition. Raises ValueError naming the
    file, the array and what was expected."""
    info, arrays = run.info, run.arrays
    results_npz, run_json = run.folder / "results.npz", run.folder / "run.json"
    experiment = info["config"].get("experiment", "graph")
    if experiment != "graph" and experiment not in MECHANISM_ARRAYS:
        raise ValueError(f"{run_json}: config.experiment {experiment!r} is unknown; expected 'graph' or one of "
                         f"{sorted(MECHANISM_ARRAYS)}")
    _check_arrays(arrays, declared_arrays(info), results_npz, num_nodes=info["graph"]["num_nodes"],
                  integers=INTEGER_ARRAYS if experiment == "graph" else ("nodes",))
    if experiment == "graph":
        _check_consistency(run, run_json)


def declared_arrays(info: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """The arrays that results.npz holds for a run.json of a known experiment, with their dimensions
    (the letters of DIMENSIONS): RESULT_ARRAYS (and DAYS_ARRAYS for days, HELDOUT_ARRAYS for runs with
    held-out edges), or nodes, scored and the experiment's MECHANISM_ARRAYS.

    >>> from icgt.study.run_folder import load_run
    >>> declared_arrays(load_run(intervention_run).info)["intervention_mass"]
    ('C5', 'B', 'K3')
    """
    experiment = info["config"].get("experiment", "graph")
    if experiment == "graph":
        return {**RESULT_ARRAYS, **(DAYS_ARRAYS if info["graph"]["kind"] == "days" else {}),
                **(HELDOUT_ARRAYS if info["config"].get("held_out_edges") else {}),
                **(TWO_GRAPH_ARRAYS if info["config"].get("second_graph") else {})}
    return {**{name: RESULT_ARRAYS[name] for name in ("nodes", "scored")}, **MECHANISM_ARRAYS[experiment]}


def _check_run_json(info: Any, run_json: Path) -> None:
    if not isinstance(info, dict) or "icgt_run_format" not in info:
        raise ValueError(f"{run_json} is not an icgt run description: no 'icgt_run_format' entry")
    if info["icgt_run_format"] != RUN_FORMAT_VERSION:
        raise ValueError(f"{run_json} has icgt_run_format {info['icgt_run_format']!r}; this icgt reads "
                         f"format {RUN_FORMAT_VERSION} (re-run the experiment, or use the icgt that wrote it)")
    missing = []
    for section, key in RUN_JSON_KEYS:
        container = info if section is None else info.get(section)
        if not isinstance(container, dict) or key not in container:
            missing.append(key if section is None else f"{section}.{key}")
    if isinstance(info.get("graph"), dict) and info["graph"].get("kind") == "days" and "weekly_order" not in info:
        missing.append("weekly_order")
    if missing:
        raise ValueError(f"{run_json} lacks {', '.join(missing)} (see docs/run-format.md)")


def _check_arrays(arrays: dict[str, np.ndarray], expected: dict[str, tuple[str, ...]], results_npz: Path,
                  num_nodes: int, integers: tuple[str, ...] = INTEGER_ARRAYS) -> None:
    expected = {**expected, **{name: dims for name, dims in LATER_ARRAYS.items() if name in arrays}}
    missing = [name for name in expected if name not in arrays]
    if missing:
        raise ValueError(f"{results_npz} lacks the arrays {', '.join(missing)}; expected "
                         + ", ".join(f"{name} [{', '.join(dims)}]" for name, dims in expected.items()))
    for name in integers:
        if arrays[name].dtype.kind not in "iu":
            raise ValueError(f"{results_npz}: {name} has dtype {arrays[name].dtype}, expected integers")
    for name in BOOLEAN_ARRAYS:
        if arrays[name].dtype != bool:
            raise ValueError(f"{results_npz}: {name} has dtype {arrays[name].dtype}, expected bool")
    sizes: dict[str, tuple[int, str]] = {"n": (num_nodes, "graph.num_nodes in run.json")}
    for name, dims in expected.items():
        shape = arrays[name].shape
        if len(shape) != len(dims):
            raise ValueError(f"{results_npz}: {name} has shape {shape}, expected [{', '.join(dims)}]")
        for dim, size in zip(dims, shape):
            known, source = sizes.setdefault(dim, (size, name))
            if size != known:
                raise ValueError(f"{results_npz}: {name} has shape {shape}, expected [{', '.join(dims)}] "
                                 f"with {dim} = {known} as in {source}")
    needed = 4 if "K2" in sizes else 2  # the days figure draws PCs 1-4
    if "k" in sizes and sizes["k"][0] < needed:
        raise ValueError(f"{results_npz}: pca_projections keeps k = {sizes['k'][0]} components, "
                         f"expected k >= {needed}")
    if "K2" in sizes and sizes["K2"][0] != sizes["k"][0] // 2:
        raise ValueError(f"{results_npz}: weekly_alignment has {sizes['K2'][0]} PC pairs, "
                         f"expected k // 2 = {sizes['k'][0] // 2}")


def _check_consistency(run: Run, run_json: Path) -> None:
    num_nodes = len(run.labels)
    if num_nodes != run.info["graph"]["num_nodes"]:
        raise ValueError(f"{run_json}: graph.labels has {num_nodes} words, graph.num_nodes is "
                         f"{run.info['graph']['num_nodes']}")
    edges = run.edges
    if edges.size and (edges.min() < 0 or edges.max() >= num_nodes):
        raise ValueError(f"{run_json}: graph.edges refers to nodes outside 0..{num_nodes - 1}")
    if run.layers.size == 0 or run.layers.min() < 0 or run.layers.max() >= run.num_layers:
        raise ValueError(f"{run.folder / 'results.npz'}: layers {run.layers.tolist()} must be non-empty and within "
                         f"0..{run.num_layers - 1} (model.num_layers = {run.num_layers})")
    components = run.info["config"]["pca_components"]
    if len(components) != 2 or not all(0 <= c < run.arrays["pca_projections"].shape[-1] for c in components):
        raise ValueError(f"{run_json}: config.pca_components {components} must be two 0-based indices "
                         f"below k = {run.arrays['pca_projections'].shape[-1]}")
    if run.is_days and sorted(run.info["weekly_order"]) != sorted(run.labels):
        raise ValueError(f"{run_json}: weekly_order {run.info['weekly_order']} must hold the same words "
                         f"as graph.labels {run.labels}")


