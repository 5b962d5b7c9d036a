"""Computing one run: its sequences (walks, or a control's), the forward pass with every layer captured,
the analysis (or a mechanism experiment), and the record that run.json keeps. Nothing here touches an
output folder (icgt.study.run_store does), so any executor can compute a run wherever it likes.

Example (SmolLM2-135M, a short ring run, one layer captured):
    >>> config = icgt.study.config.from_dict({"preset": "ring", "num_sequences": 2, "sequence_length": 100,
    ...     "energy_window": 10, "pca_window": 50, "null_permutations": 10, "layers": [20]})
    >>> computed = compute_run(config, progress=False)
    >>> computed.arrays["energy"].shape[0], computed.record["model"]["architecture"]
    (1, 'llama')
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import hardware
from .._icgt import NOT_A_NODE, WalkSampler
from ..files import sha256_of
from ..models.bundles import bundle_for, random_weights_bundle
from ..models.tokens import DEFAULT_WORDS, PROTOCOL_WORDS, concept_token_ids
from ..probe import ActivationProbe, SlowBfloat16Warning, model_dtype  # noqa: F401 (the warning: also named here)
from . import config as configs
from .analysis import analyse
from .run_folder import RUN_FORMAT_VERSION
from .run_store import ComputedRun, run_name


def concept_words(config: configs.ExperimentConfig, num_nodes: int) -> list[str]:
    """The config's words, else the model's default single-token words for the graph size.

    >>> concept_words(icgt.study.config.preset("ring"), 3)
    ['apple', 'bird', 'car']
    """
    if config.words:
        return list(config.words)
    defaults = DEFAULT_WORDS.get(config.model, PROTOCOL_WORDS)
    if num_nodes > len(defaults):
        raise ValueError(f"the graph has {num_nodes} nodes but there are only {len(defaults)} default words; "
                         "give one word per node in 'words'")
    return list(defaults[:num_nodes])


def sample_sequences(config: configs.ExperimentConfig, graph) -> tuple[np.ndarray, np.ndarray]:
    """Node sequences [batch, 1 + length] with NOT_A_NODE at the BOS (position 0) and at separators,
    and the scored mask: positions whose next-token prediction counts for accuracy.

    Controls without a graph in the context: "shuffled" puts each walk's words in a random order
    (the same words, as often), "uniform" draws every word uniformly and independently. With a second
    graph the walks switch between the two (icgt.study.two_graphs.mixture_walks).

    >>> config = icgt.study.config.preset("ring", num_sequences=2, sequence_length=5, energy_window=2, pca_window=4)
    >>> nodes, scored = sample_sequences(config, config.build_graph())
    >>> nodes.shape, bool(nodes[0, 0] == icgt.NOT_A_NODE), bool(scored[0, 1:].all())
    ((2, 6), True, True)
    """
    sampler = WalkSampler(graph, seed=config.seed)
    if config.mode == "walk":
        if config.second_graph:  # walks that switch between two graphs (icgt.study.two_graphs)
            from .two_graphs import mixture_walks, second_graph

            nodes = mixture_walks(config, graph, second_graph(config, graph))
        else:
            nodes = sampler.random_walks(config.num_sequences, config.sequence_length, start=config.start)
        scored = np.ones_like(nodes, dtype=bool)
        shuffler = np.random.default_rng(config.seed)
        if config.control == "shuffled":
            nodes = np.stack([shuffler.permutation(walk) for walk in nodes])
        elif config.control == "uniform":
            nodes = shuffler.integers(0, graph.num_nodes, size=nodes.shape, dtype=np.int64)
    else:
        stride = 3 if config.separator else 2
        nodes, scored = sampler.neighbour_pairs(config.num_sequences, config.sequence_length // stride,
                                                with_separator=bool(config.separator))
    bos = np.full((nodes.shape[0], 1), NOT_A_NODE, dtype=np.int64)
    return np.concatenate([bos, nodes], axis=1), np.concatenate([np.zeros_like(bos, dtype=bool), scored], axis=1)


def sequence_token_ids(nodes: np.ndarray, word_ids: np.ndarray, bos_token_id: int,
                       separator_id: int = -1) -> np.ndarray:
    """Token ids [batch, 1 + length] of node sequences as sample_sequences gives them: the BOS at
    column 0, node k's word (word_ids[k]) at each node, separator_id at the other NOT_A_NODE positions.

    >>> sequence_token_ids(np.array([[icgt.NOT_A_NODE, 1, 0, icgt.NOT_A_NODE]]), np.array([7, 9]), 2, 5).tolist()
    [[2, 9, 7, 5]]
    """
    token_ids = np.where(nodes >= 0, word_ids[np.maximum(nodes, 0)], separator_id)
    token_ids[:, 0] = bos_token_id
    return token_ids


def chosen_dtype(config: configs.ExperimentConfig, device: str | None = None) -> tuple[str, str]:
    """(dtype, why) that ``config`` runs in on ``device`` (default: config.device): model_dtype's rule
    for config.model and config.dtype.

    >>> chosen_dtype(icgt.study.config.preset("grid", model=toy_bundle, words=[f"w{i}" for i in range(16)]))
    ('float32', 'auto: the bundle holds float32 weights')
    """
    return model_dtype(config.model, config.dtype, device or config.device, stacklevel=3)


def run_bundle(config: configs.ExperimentConfig, progress: bool = True, dtype: str | None = None) -> Path:
    """The bundle that ``config`` runs (exported on first use) in ``dtype`` (default: chosen_dtype's):
    the model's, or for the random_init control a bundle of the same architecture with random weights.

    >>> run_bundle(icgt.study.config.preset("grid", model=toy_bundle, words=[f"w{i}" for i in range(16)])).name
    'toy.pt'
    """
    dtype = dtype or chosen_dtype(config)[0]
    if config.control == "random_init":
        return random_weights_bundle(config.model, dtype, config.seed, progress=progress)
    return bundle_for(config.model, dtype, progress=progress)


def compute_run(config: configs.ExperimentConfig, progress: bool = True, *, bundle: Path | None = None,
                device: str | None = None, dtype_choice: tuple[str, str] | None = None) -> ComputedRun:
    """The run's record (run.json), its results, and its activations if the config keeps them.

    bundle, device and dtype_choice, when given, replace run_bundle(config), config.device and
    chosen_dtype(config): a Ray worker runs the bundle that the driver exported in the dtype the driver
    chose, on the device Ray gave it. The example is the module's.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()

    dtype, why = dtype_choice or chosen_dtype(config, device)
    bundle = bundle if bundle is not None else run_bundle(config, progress, dtype)
    probe = ActivationProbe(bundle, device=device or config.device)
    tokenizer = probe.tokenizer
    graph = config.build_graph()
    words = concept_words(config, graph.num_nodes)
    graph.labels = words
    word_ids = np.array(concept_token_ids(tokenizer, words), dtype=np.int64)
    separator_id = concept_token_ids(tokenizer, [config.separator])[0] if config.separator else -1

    clock = time.perf_counter()
    nodes, scored = sample_sequences(config, graph)
    token_ids = sequence_token_ids(nodes, word_ids, probe.bos_token_id, separator_id)
    timings["sample_s"] = time.perf_counter() - clock

    layers = list(range(probe.num_layers)) if config.layers == "all" else list(config.layers)
    # A mechanism experiment captures the embedding output and every block.
    _check_fits(config, probe, layers, token_ids.shape,
                captured=len(layers) if config.experiment == "graph" else probe.num_layers + 1)
    result = None
    if config.experiment == "graph":
        clock = time.perf_counter()
        # progress is called after the embedding and every block of every pass (the probe splits the
        # batch into passes of max_batch sequences, or of automatic_batch's on its own).
        batch, length = token_ids.shape
        passes = -(-batch // (config.max_batch or probe.automatic_batch(batch, length)))
        with tqdm(total=passes * (probe.num_layers + 1), desc=f"{run_name(config)}: forward", unit="block",
                  disable=not progress) as bar:
            result = probe.run(torch.from_numpy(token_ids), layers=layers, target_ids=torch.from_numpy(word_ids),
                               max_batch=config.max_batch, progress=lambda _layer: bar.update(1))
        timings["probe_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        arrays = analyse(config, graph, result.residuals, result.target_probs, nodes, scored, layers,
                         probe.num_layers, progress)
        arrays["layers"] = np.array(layers)
        timings["analysis_s"] = time.perf_counter() - clock
    else:
        from .mechanism import run_mechanism

        clock = time.perf_counter()
        arrays = run_mechanism(config, probe, graph, nodes, scored, token_ids, word_ids)
        timings["experiment_s"] = time.perf_counter() - clock
    arrays.update(nodes=nodes, scored=scored, token_ids=token_ids)
    timings["total_s"] = time.perf_counter() - started

    record = {
        "icgt_run_format": RUN_FORMAT_VERSION,
        "config": config.to_dict(),
        "model": {"name": config.model, "bundle": str(bundle), "architecture": probe.architecture,
                  "num_layers": probe.num_layers, "hidden_size": probe.hidden_size,
                  "bundle_sha256": sha256_of(bundle), "source": probe.config.get("source", ""),
                  "source_sha256": probe.config.get("source_sha256", ""),
                  "device": str(probe.device), "dtype": str(probe.dtype)},
        # A ring with a natural order that it contradicts is the days-of-week experiment, which the
        # report recognises by this kind.
        "graph": {"kind": "days" if config.natural_order else config.graph, "num_nodes": graph.num_nodes,
                  "edges": [list(e) for e in graph.edges], "labels": list(graph.labels),
                  **({"held_out_edges": config.held_out_edges} if config.held_out_edges else {})},
        "token_ids": {"words": word_ids.tolist(), "separator": separator_id, "bos": probe.bos_token_id},
        "versions": {"icgt": _icgt_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "dtype_choice": {"asked": config.dtype, "chosen": str(probe.dtype).removeprefix("torch."), "reason": why},
        "hardware": hardware.describe(),
        "seed": config.seed,
        "control": config.control,
        "experiment": config.experiment,
        "timings": timings,
    }
    if config.natural_order:
        record["weekly_order"] = list(config.natural_order)
    activations = {}
    if config.save_activations and result is not None:
        activations = {"residuals": result.residuals.float().cpu().numpy(),
                       "target_probs": result.target_probs.cpu().numpy()}
    return ComputedRun(record, arrays, activations)


def _check_fits(config: configs.ExperimentConfig, probe: ActivationProbe, layers: list[int],
                shape: tuple[int, int], captured: int) -> None:
    """Refuses, before the forward pass, layers the model lacks, sequences longer than it was trained
    for, and captures larger than this machine's memory."""
    bad = [layer for layer in layers if not 0 <= layer < probe.num_layers]
    if bad:
        raise configs.ConfigError([f"layers {bad} do not exist in {config.model}, which has blocks 0.."
                                   f"{probe.num_layers - 1}"])
    if shape[1] > probe.max_positions:
        raise configs.ConfigError([f"sequence_length {config.sequence_length} (+ BOS) exceeds the {probe.max_positions} "
                                   f"positions {config.model} was trained for"])
    needed = captured * shape[0] * shape[1] * probe.hidden_size * probe.dtype.itemsize
    available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if needed > available:
        raise configs.ConfigError([f"capturing {captured} layers of {shape[0]} x {shape[1]} tokens needs "
                                   f"{needed / 2**30:.1f} GiB, more than this machine's {available / 2**30:.1f} GiB; "
                                   "capture fewer layers or sequences"])


def _icgt_version() -> str:
    from .. import __version__

    return __version__
