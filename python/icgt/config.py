"""Experiment configurations: presets for the paper's settings, TOML files and validation.

An experiment is fully described by an ExperimentConfig; `icgt run` builds one from a preset, a TOML
file and command-line overrides, in that order.

Example:
    >>> config = icgt.config.preset("grid", model="smollm2-135m")
    >>> config.graph, config.num_sequences, config.sequence_length, config.energy_window
    ('grid', 16, 1400, 20)
    >>> icgt.config.from_dict({"preset": "ring", "sequence_length": 300}).graph_size
    [10]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._icgt import Graph
from .tokens import DAY_NAMES

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

#: The in-context ring for the semantic-conflict experiment: each day is linked to the days three
#: apart in the week, so no ring edge joins two consecutive weekdays (the paper does not publish its
#: permutation; this one is icgt's, recorded in every run).
DAYS_RING_ORDER = tuple(DAY_NAMES[(3 * i) % 7] for i in range(7))

GRAPHS = ("grid", "ring", "hexagon", "triangular", "custom")
MODES = ("walk", "pairs")
STARTS = ("per_node", "uniform")


def kept_components(num_nodes: int) -> int:
    """Principal components kept per PCA snapshot: 4 (the days-of-week figure draws PCs 1-4), fewer
    on graphs of fewer than five nodes, whose centred class means span at most num_nodes - 1.

    >>> icgt.config.kept_components(16), icgt.config.kept_components(3)
    (4, 2)
    """
    return min(4, num_nodes - 1)


@dataclass
class ExperimentConfig:
    """Everything that defines one run. Positions count tokens after the BOS (position 1 is the first word)."""

    model: str = "smollm2-135m"
    preset: str = "custom"
    graph: str = "grid"
    graph_size: list[int] = field(default_factory=lambda: [4, 4])
    #: For graph "custom": the edge list on nodes 0..n-1 (graph_size is then ignored).
    edges: list[list[int]] = field(default_factory=list)
    #: Node labels; empty means the model's default concept words (single tokens) for the graph size.
    words: list[str] = field(default_factory=list)
    #: For the days-of-week run: the natural order of the words, whose circle the ring conflicts with.
    natural_order: list[str] = field(default_factory=list)
    mode: str = "walk"
    start: str = "per_node"
    separator: str = ""
    num_sequences: int = 16
    sequence_length: int = 1400
    layers: list[int] | str = "all"
    energy_window: int = 20
    energy_every: int = 10
    pca_window: int = 200
    #: Empty means eight positions spread geometrically from 10 to sequence_length.
    pca_positions: list[int] = field(default_factory=list)
    pca_components: list[int] = field(default_factory=lambda: [0, 1])
    null_permutations: int = 100
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"
    max_batch: int = 0
    #: Also write activations.npz: the captured residuals and the node tokens' probabilities (large).
    save_activations: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return dataclasses.asdict(self)

    def build_graph(self) -> Graph:
        """The graph of this config, labelled with `words` when given.

        >>> icgt.config.preset("hexagon").build_graph().num_nodes
        30
        """
        size = [int(v) for v in self.graph_size]
        builders = {
            "grid": lambda: Graph.square_grid(*size),
            "ring": lambda: Graph.ring(*size),
            "hexagon": lambda: Graph.hexagonal_lattice(*size),
            "triangular": lambda: Graph.triangular_lattice(*size),
            "custom": lambda: Graph.from_edges(1 + max(node for edge in self.edges for node in edge),
                                               [tuple(edge) for edge in self.edges]),
        }
        graph = builders[self.graph]()
        if self.words:
            graph.labels = list(self.words)
        return graph


PRESETS: dict[str, dict[str, Any]] = {
    # The headline experiment: 4x4 grid, one walk per node, 1400 words each.
    "grid": dict(graph="grid", graph_size=[4, 4], num_sequences=16, start="per_node"),
    # Ring of 10; the ring figures show PCs 2-3.
    "ring": dict(graph="ring", graph_size=[10], num_sequences=10, start="per_node", pca_components=[1, 2]),
    # Hexagonal lattice of 30 nodes; the authors use a 200-token window for its energy too.
    "hexagon": dict(graph="hexagon", graph_size=[3, 3], num_sequences=16, start="uniform", energy_window=200),
    # Neighbour pairs on the grid, each pair followed by "/": only the second word of a pair is scored.
    "pairs": dict(graph="grid", graph_size=[4, 4], mode="pairs", separator="/", num_sequences=16),
    # Semantic conflict: days of the week on a ring whose order contradicts the week.
    "days": dict(graph="ring", graph_size=[7], words=list(DAYS_RING_ORDER), natural_order=list(DAY_NAMES),
                 num_sequences=14, start="per_node"),
}


def preset(name: str, **overrides: Any) -> ExperimentConfig:
    """The config of a named preset (see PRESETS), with fields overridden by keyword.

    >>> icgt.config.preset("days").words[:3]
    ['Monday', 'Thursday', 'Sunday']
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; expected one of {sorted(PRESETS)}")
    return from_dict({"preset": name, **overrides})


def from_dict(values: dict[str, Any]) -> ExperimentConfig:
    """A validated config from plain data: a preset named by "preset" (if any), then the other keys.

    >>> icgt.config.from_dict({"graph": "ring", "graph_size": [6], "num_sequences": 6}).build_graph().num_nodes
    6
    """
    values = dict(values)
    known = {f.name for f in dataclasses.fields(ExperimentConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; expected some of {sorted(known)}")
    name = values.get("preset", "custom")
    if name != "custom" and name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; expected one of {sorted(PRESETS)}")
    config = ExperimentConfig(**{**PRESETS.get(name, {}), **values})
    if not config.pca_positions:
        spread = np.geomspace(min(10, config.sequence_length), max(config.sequence_length, 1), 8)
        config.pca_positions = sorted({int(round(p)) for p in spread})
    validate(config)
    return config


def load_toml(path: str | Path, **overrides: Any) -> ExperimentConfig:
    """A config from a TOML file of ExperimentConfig keys, then keyword overrides.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ring.toml"
    >>> _ = path.write_text('preset = "ring"\\nsequence_length = 300\\n')
    >>> icgt.config.load_toml(path).sequence_length
    300
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experiment config '{path}' does not exist")
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"experiment config '{path}' is not valid TOML: {error}") from None
    return from_dict({**values, **overrides})


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def validate(config: ExperimentConfig) -> None:
    """Raises ValueError naming the first field that cannot work, and what it expected."""
    _require(config.graph in GRAPHS, f"graph '{config.graph}' is unknown; expected one of {list(GRAPHS)}")
    if config.graph != "custom":
        expected_size = {"grid": 2, "ring": 1, "hexagon": 2, "triangular": 2}[config.graph]
        _require(len(config.graph_size) == expected_size and all(int(v) > 0 for v in config.graph_size),
                 f"graph_size {config.graph_size} does not fit graph '{config.graph}': expected {expected_size} "
                 "positive integer(s)")
    _require(config.graph != "custom" or bool(config.edges), "graph 'custom' needs a non-empty edge list 'edges'")
    _require(config.mode in MODES, f"mode '{config.mode}' is unknown; expected one of {list(MODES)}")
    _require(config.start in STARTS, f"start '{config.start}' is unknown; expected one of {list(STARTS)}")
    _require(config.mode == "pairs" or not config.separator, "a separator is only used in mode 'pairs'")
    try:
        graph = config.build_graph()
    except ValueError as error:
        raise ValueError(f"graph '{config.graph}' of size {config.graph_size} with words {config.words}: {error}") from None
    _require(not config.natural_order or sorted(config.natural_order) == sorted(config.words),
             "natural_order must list the same words as words")
    for name in ("num_sequences", "sequence_length", "energy_window", "energy_every", "pca_window",
                 "null_permutations"):
        value = getattr(config, name)
        _require(isinstance(value, int) and value > 0, f"{name} must be a positive integer, got {value!r}")
    _require(isinstance(config.max_batch, int) and config.max_batch >= 0,
             f"max_batch must be 0 (automatic) or positive, got {config.max_batch!r}")
    for name in ("energy_window", "pca_window"):
        _require(getattr(config, name) < config.sequence_length,
                 f"{name} {getattr(config, name)} is not shorter than sequence_length {config.sequence_length}")
    bad = [p for p in config.pca_positions if not 1 <= p <= config.sequence_length]
    _require(config.pca_positions and not bad,
             f"pca_positions {bad or '[]'} outside 1..sequence_length ({config.sequence_length})")
    _require(config.layers == "all" or (isinstance(config.layers, list) and config.layers
                                        and all(isinstance(layer, int) for layer in config.layers)),
             f"layers must be \"all\" or a non-empty list of block indices, got {config.layers!r}")
    kept = kept_components(graph.num_nodes)
    _require(len(config.pca_components) == 2 and len(set(config.pca_components)) == 2
             and all(isinstance(c, int) and 0 <= c < kept for c in config.pca_components),
             f"pca_components must name the two distinct 0-based components that the PCA figure draws, "
             f"each below {kept} (the components kept), got {config.pca_components}")
    _require(config.dtype in ("float32", "bfloat16"), f"dtype '{config.dtype}' is unknown; expected float32 or bfloat16")
