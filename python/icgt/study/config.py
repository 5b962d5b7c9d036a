"""Experiment configurations: presets for the paper's settings, TOML files and validation.

An experiment is fully described by an ExperimentConfig; `icgt run` builds one from a preset, a TOML
file and command-line overrides, in that order.

Example:
    >>> config = icgt.study.config.preset("grid", model="smollm2-135m")
    >>> config.graph, config.num_sequences, config.sequence_length, config.energy_window
    ('grid', 16, 1400, 20)
    >>> icgt.study.config.from_dict({"preset": "ring", "sequence_length": 300}).graph_size
    [10]
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..models.catalog import DTYPE_NAMES
from .presets import PRESETS
from .two_graphs import SECOND_GRAPHS, second_graph_edges

if TYPE_CHECKING:
    from .._icgt import Graph

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

GRAPHS = ("grid", "ring", "hexagon", "triangular", "custom")
#: Settings without the effect under test, run beside the model: "shuffled" (each walk's words in a
#: random order: no graph in the context), "uniform" (every word drawn independently: no graph, and no
#: walk statistics), "random_init" (a randomly initialised model of the same architecture).
CONTROLS = ("none", "shuffled", "uniform", "random_init")
EXPERIMENTS = ("graph", "intervention", "heads", "subspace", "toy_mixing")
#: The head ablations of the heads experiment, and whether a mechanism ablation spares the BOS.
HEAD_ABLATION_KINDS = ("mean", "zero")
BOS_VARIANTS = ("excluded", "included")
#: The layer whose early-context energy is timed against accuracy, as a fraction of the model's depth
#: (the paper's headline block is 26 of 32).
LAG_LAYER_DEPTH = 0.8
MODES = ("walk", "pairs")
#: "auto", then the dtypes a bundle can hold.
DTYPE_CHOICES = ("auto", *DTYPE_NAMES)
STARTS = ("per_node", "uniform")
#: Bounds that catch a typo before it becomes an allocation the machine cannot make.
MAX_GRAPH_SIDE = 1000
MAX_TOKENS = 2**24
MAX_NULL_PERMUTATIONS = 10**6
#: Nodes of a custom graph: each needs a concept word that is one token, and far fewer exist.
MAX_CUSTOM_NODES = 10000


def kept_components(num_nodes: int) -> int:
    """Principal components kept per PCA snapshot: 4 (the days-of-week figure draws PCs 1-4), fewer
    on graphs of fewer than five nodes, whose centred class means span at most num_nodes - 1.

    >>> icgt.study.config.kept_components(16), icgt.study.config.kept_components(3)
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
    #: Edges of the graph that the walks never traverse (icgt.study.heldout): the walks are random walks on
    #: the graph without them, which is the graph the run analyses; their ends' predictions are compared.
    held_out_edges: list[list[int]] = field(default_factory=list)
    #: A second graph over the same words (icgt.study.two_graphs): "" (none), "permuted" (the graph relabelled)
    #: or "ring" (a ring in a random order), drawn from second_graph_seed (the same graph for every seed of
    #: the walks), sharing no edge with the graph; each step of a walk follows it with probability
    #: ``mixture`` (0 to 1), else the graph.
    second_graph: str = ""
    second_graph_seed: int = 0
    mixture: int | float = 0.0
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
    null_permutations: int = 1000
    #: Resamples of the sequences behind the intervals of the change points (0: none).
    bootstrap: int = 200
    seed: int = 0
    control: str = "none"
    #: What the run measures: "graph" (the paper's experiment) or a mechanism experiment
    #: (icgt.study.mechanism): "intervention", "heads", "subspace", "toy_mixing".
    experiment: str = "graph"
    #: intervention: the trailing window of the class means whose PC1-2 plane the token moves in.
    intervention_window: int = 1000
    #: intervention: the authors' option, off by default (0): the move also subtracts the target word's
    #: unembedding, normalised to unit length, this many times per PC (the protocol's reading: 1, that is
    #: twice in all), as a further condition beside the plain move.
    intervention_unembedding: int | float = 0.0
    #: heads: length L of the random token sequence repeated twice, and how many such sequences.
    score_length: int = 32
    score_sequences: int = 4
    #: heads: absolute numbers of heads to ablate, besides 1, 2.5, 5, 10 and 20% of all of them.
    head_counts: list[int] = field(default_factory=list)
    #: heads and subspace: draws of the random control (k random heads, for the first ablation kind at the
    #: k nearest 5% of the heads; random planes), whose spread (the 2.5-97.5 percentiles of the draws) the
    #: top heads and the PC plane are read against.
    random_draws: int = 20
    #: heads: how the chosen heads' outputs z are replaced, each a variant: "mean" (each head's mean over
    #: the non-BOS positions of the plain run's walks) and "zero" (which a post-attention norm, as in
    #: Gemma, turns into a rescaling of the surviving heads); the first leads the report.
    head_ablation_kinds: list[str] = field(default_factory=lambda: ["mean", "zero"])
    #: heads and subspace: whether an ablation spares the BOS (position 0, an attention sink): "excluded"
    #: (it is left alone) and/or "included" (every position), each a variant.
    bos_variants: list[str] = field(default_factory=lambda: ["excluded"])
    #: The weights' dtype: "auto" (bfloat16 where the device computes it natively, else float32:
    #: icgt.study.compute.chosen_dtype), or one of the bundle dtypes, always obeyed.
    dtype: str = "auto"
    device: str = "auto"
    max_batch: int = 0
    #: Also write activations.npz: the captured residuals and the node tokens' probabilities (large).
    save_activations: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return dataclasses.asdict(self)

    def build_graph(self) -> Graph:
        """The graph the walks traverse, labelled with `words` when given: without the held-out edges.

        >>> icgt.study.config.preset("hexagon").build_graph().num_nodes
        30
        >>> heldout = icgt.study.config.preset("grid-heldout")
        >>> heldout.build_graph().num_edges  # the grid's 24 less 4 held out
        20
        """
        from .._icgt import Graph  # the compiled core, only when a graph is built

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
        if self.held_out_edges:
            from .heldout import shown_graph

            graph = shown_graph(graph, [tuple(edge) for edge in self.held_out_edges])
        return graph


def preset(name: str, **overrides: Any) -> ExperimentConfig:
    """The config of a named preset (see PRESETS), with fields overridden by keyword.

    >>> icgt.study.config.preset("days").words[:3]
    ['Monday', 'Friday', 'Tuesday']
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return from_dict({"preset": name, **overrides})


def from_dict(values: dict[str, Any]) -> ExperimentConfig:
    """A validated config from plain data: a preset named by "preset" (if any), then the other keys.

    Every problem is found before anything runs and reported at once in one ConfigError: unknown
    keys (with the closest known key), values of the wrong type (never coerced: ``true`` is not a
    number, ``4.7`` not an integer), then values that cannot work together.

    >>> icgt.study.config.from_dict({"graph": "ring", "graph_size": [6], "num_sequences": 6}).build_graph().num_nodes
    6
    >>> icgt.study.config.from_dict({"seqence_length": 300, "seed": 1.5})
    Traceback (most recent call last):
    ...
    icgt.study.config.ConfigError: invalid experiment config: unknown key 'seqence_length' (did you mean 'sequence_length'?); seed must be an integer, got 1.5 (float)
    """
    if not isinstance(values, dict):
        raise ConfigError([f"expected a table of settings, got {type(values).__name__}"])
    known = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    problems = []
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; expected some of {sorted(known)}"
            problems.append(f"unknown key {key!r}{hint}")
    name = values.get("preset", "custom")
    if isinstance(name, str) and name != "custom" and name not in PRESETS:
        problems.append(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    merged = {**(PRESETS.get(name, {}) if isinstance(name, str) else {}), **values}
    types = typing.get_type_hints(ExperimentConfig)
    for key, value in merged.items():
        if key in known:
            problem = type_problem(key, value, types[key])
            if problem:
                problems.append(problem)
    if problems:
        raise ConfigError(problems)
    config = ExperimentConfig(**merged)
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
    >>> icgt.study.config.load_toml(path).sequence_length
    300
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experiment config '{path}' does not exist")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"experiment config '{path}' is not UTF-8 text (byte {error.start}); TOML files are "
                         "UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"experiment config '{path}' is not valid TOML: {' '.join(str(error).split())}") from None
    values.pop(SWEEP_TABLE, None)  # how to run the sweep, not what a run is: read by icgt.study.executors.load_executor
    return from_dict({**values, **overrides})


#: The TOML table of a config file that says how ``icgt run`` runs its sweep (icgt.study.executors); it
#: is no part of any run's ExperimentConfig, so it never changes a run's identity.
SWEEP_TABLE = "sweep"


class ConfigError(ValueError):
    """An experiment config that cannot run; ``problems`` lists every reason, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid experiment config: " + "; ".join(self.problems))

    def __reduce__(self):  # pickled from its problems (a Ray worker's error reaches the driver so)
        return type(self), (self.problems,)


#: Seeds are unsigned 64-bit integers (icgt's generator, docs/architecture.md).
MAX_SEED = 2**64 - 1


def _type_name(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def type_problem(key: str, value: Any, annotation: Any) -> str | None:
    """Why ``value`` does not have the declared type of ``key`` (None when it does); nothing is coerced.

    >>> icgt.study.config.type_problem("seed", 1.5, int)
    'seed must be an integer, got 1.5 (float)'
    """

    def matches(value: Any, annotation: Any) -> bool:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            return any(matches(value, option) for option in typing.get_args(annotation))
        if origin is list:
            (item,) = typing.get_args(annotation)
            return isinstance(value, list) and all(matches(entry, item) for entry in value)
        if annotation is int:
            return isinstance(value, int) and not isinstance(value, bool)
        if annotation is type(None):
            return value is None
        return isinstance(value, annotation)

    if matches(value, annotation):
        return None
    described = {int: "an integer", str: "a string", bool: "true or false", list[int]: "a list of integers",
                 list[str]: "a list of strings", list[list[int]]: "a list of [node, node] pairs",
                 list[int] | str: '"all" or a list of integers', int | float: "a number"}.get(annotation, str(annotation))
    return f"{key} must be {described}, got {_type_name(value)}"


def _is_existing_path(name: str) -> bool:
    try:
        return Path(name).expanduser().exists()
    except (RuntimeError, OSError, ValueError):  # "~unknownuser", a name too long, a NUL byte
        return False


def validate(config: ExperimentConfig) -> None:
    """Raises ConfigError listing every field that cannot work, and what it expected.

    Checks types too (for configs built directly rather than through from_dict), then the values:
    sizes, windows and positions against the sequence length, the graph (built, connected, one word
    per node), the model (a built-in name or an existing path), the seed's range.

    >>> config = icgt.study.config.preset("grid")
    >>> config.energy_window = 5000
    >>> icgt.study.config.validate(config)
    Traceback (most recent call last):
    ...
    icgt.study.config.ConfigError: invalid experiment config: energy_window 5000 is not shorter than sequence_length 1400
    """
    types_of = typing.get_type_hints(ExperimentConfig)
    problems = [problem for f in dataclasses.fields(ExperimentConfig)
                if (problem := type_problem(f.name, getattr(config, f.name), types_of[f.name]))]
    if problems:
        raise ConfigError(problems)

    def require(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    from ..models.bundles import BUILTIN_MODELS

    require(config.model in BUILTIN_MODELS or _is_existing_path(config.model),
            f"model {config.model!r} is neither a built-in model {list(BUILTIN_MODELS)} nor an existing path "
            "(.gguf file, checkpoint folder or bundle)")
    require(config.graph in GRAPHS, f"graph {config.graph!r} is unknown; expected one of {list(GRAPHS)}")
    if config.graph in GRAPHS and config.graph != "custom":
        expected_size = {"grid": 2, "ring": 1, "hexagon": 2, "triangular": 2}[config.graph]
        require(len(config.graph_size) == expected_size and all(0 < v <= MAX_GRAPH_SIDE for v in config.graph_size),
                f"graph_size {config.graph_size} does not fit graph {config.graph!r}: expected {expected_size} "
                f"integer(s) from 1 to {MAX_GRAPH_SIDE}")
    if config.graph == "custom":
        require(bool(config.edges) and all(len(edge) == 2 and 0 <= min(edge) and max(edge) < MAX_CUSTOM_NODES
                                           for edge in config.edges),
                f"graph 'custom' needs a non-empty edge list 'edges' of [node, node] pairs with nodes 0 to "
                f"{MAX_CUSTOM_NODES - 1}")
    require(all(len(edge) == 2 for edge in config.held_out_edges),
            f"held_out_edges must be [node, node] pairs, got {config.held_out_edges}")
    require(not config.held_out_edges or (config.mode == "walk" and config.experiment == "graph"),
            "held_out_edges needs mode 'walk' and experiment 'graph'")
    require(config.second_graph in ("", *SECOND_GRAPHS),
            f"second_graph {config.second_graph!r} is unknown; expected \"\" (none) or one of {list(SECOND_GRAPHS)}")
    require(0 <= config.mixture <= 1, f"mixture must be a probability from 0 to 1, got {config.mixture}")
    require(0 <= config.second_graph_seed <= MAX_SEED,
            f"second_graph_seed must be an integer from 0 to 2**64 - 1, got {config.second_graph_seed}")
    require(config.second_graph or config.mixture == 0,
            f"mixture {config.mixture} needs a second_graph to switch to; expected one of {list(SECOND_GRAPHS)}")
    require(not config.second_graph or (config.mode == "walk" and config.experiment == "graph"
                                        and not config.held_out_edges),
            "second_graph needs mode 'walk', experiment 'graph' and no held_out_edges")
    require(config.mode in MODES, f"mode {config.mode!r} is unknown; expected one of {list(MODES)}")
    require(config.start in STARTS, f"start {config.start!r} is unknown; expected one of {list(STARTS)}")
    require(config.mode == "pairs" or not config.separator, "separator is only used in mode 'pairs'")
    for name in ("num_sequences", "sequence_length", "energy_window", "energy_every", "pca_window",
                 "null_permutations"):
        value = getattr(config, name)
        require(value > 0, f"{name} must be a positive integer, got {value}")
    require(config.num_sequences * config.sequence_length <= MAX_TOKENS,
            f"num_sequences x sequence_length = {config.num_sequences * config.sequence_length} tokens; "
            f"expected at most {MAX_TOKENS}")
    require(config.control in CONTROLS, f"control {config.control!r} is unknown; expected one of {list(CONTROLS)}")
    require(config.control not in ("shuffled", "uniform") or config.mode == "walk",
            f"control {config.control!r} replaces walks; it needs mode 'walk'")
    require(0 <= config.bootstrap <= 10000, f"bootstrap must be from 0 to 10000 resamples, got {config.bootstrap}")
    require(config.experiment in EXPERIMENTS,
            f"experiment {config.experiment!r} is unknown; expected one of {list(EXPERIMENTS)}")
    require(config.experiment == "graph" or config.mode == "walk",
            f"experiment {config.experiment!r} needs mode 'walk'")
    require(config.experiment != "subspace" or config.num_sequences >= 2,
            "experiment 'subspace' fits on half the sequences and measures the other half: num_sequences >= 2")
    for name in ("intervention_window", "score_length", "score_sequences", "random_draws"):
        require(getattr(config, name) > 0, f"{name} must be a positive integer, got {getattr(config, name)}")
    require(math.isfinite(config.intervention_unembedding) and config.intervention_unembedding >= 0,
            f"intervention_unembedding must be a finite number >= 0 (0: off), got {config.intervention_unembedding}")
    require(all(k > 0 for k in config.head_counts), f"head_counts must be positive, got {config.head_counts}")
    for name, choices in (("head_ablation_kinds", HEAD_ABLATION_KINDS), ("bos_variants", BOS_VARIANTS)):
        chosen = getattr(config, name)
        require(bool(chosen) and len(set(chosen)) == len(chosen) and set(chosen) <= set(choices),
                f"{name} must list some of {list(choices)}, each once, got {chosen}")
    require(config.null_permutations <= MAX_NULL_PERMUTATIONS,
            f"null_permutations must be at most {MAX_NULL_PERMUTATIONS}, got {config.null_permutations}")
    require(config.max_batch >= 0, f"max_batch must be 0 (automatic) or positive, got {config.max_batch}")
    require(0 <= config.seed <= MAX_SEED, f"seed must be an integer from 0 to 2**64 - 1, got {config.seed}")
    for name in ("energy_window", "pca_window"):
        require(getattr(config, name) < config.sequence_length,
                f"{name} {getattr(config, name)} is not shorter than sequence_length {config.sequence_length}")
    bad = [p for p in config.pca_positions if not 1 <= p <= config.sequence_length]
    require(bool(config.pca_positions) and not bad,
            f"pca_positions {bad or '[]'} outside 1..sequence_length ({config.sequence_length})")
    require(config.layers == "all" or (isinstance(config.layers, list) and bool(config.layers)
                                       and min(config.layers) >= 0),
            f"layers must be \"all\" or a non-empty list of block indices from 0 (the first block's output; the "
            f"embedding output is not analysed), got {config.layers!r}")
    require(config.dtype in DTYPE_CHOICES, f"dtype {config.dtype!r} is unknown; expected one of {list(DTYPE_CHOICES)}")
    graph = None
    if not problems:
        try:
            graph = config.build_graph()
        except (ValueError, IndexError) as error:
            problems.append(f"graph {config.graph!r} of size {config.graph_size} with words {config.words}: {error}")
    if graph is not None:
        require(graph.is_connected(), f"the {config.graph} graph{' without the held-out edges' if config.held_out_edges else ''} "
                                      "is not connected; the analysis (spectral alignment, distances) needs a connected "
                                      "graph")
        require(not config.second_graph or kept_components(graph.num_nodes) >= 4,
                f"second_graph needs a graph of 5 or more nodes (PCs 3-4 are compared), got {graph.num_nodes}")
        if config.second_graph in SECOND_GRAPHS and not problems:
            try:
                second_graph_edges(config.second_graph, graph.edges, graph.num_nodes, config.second_graph_seed)
            except ValueError as error:
                problems.append(f"second_graph {config.second_graph!r}: {error}")
        require(not config.natural_order or sorted(config.natural_order) == sorted(config.words),
                "natural_order must list the same words as words")
        kept = kept_components(graph.num_nodes)
        require(len(config.pca_components) == 2 and config.pca_components[1] == config.pca_components[0] + 1
                and all(0 <= c < kept for c in config.pca_components),
                f"pca_components must name the two consecutive 0-based components that the PCA figure draws "
                f"and the alignment measures, each below {kept} (the components kept), got {config.pca_components}")
    if problems:
        raise ConfigError(problems)
