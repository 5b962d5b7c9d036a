"""The in-context graph tracing experiment end to end: sample, probe, analyse, save, report.

One run is one ExperimentConfig; its folder holds run.json and results.npz (docs/run-format.md) and
the report's figures. A run is written into "<name>.partial" and renamed when complete, so a folder
without that suffix is always a whole run; an interrupted sweep resumes by skipping whole runs.

Example (SmolLM2-135M, a short ring run, one layer captured):
    >>> folder = icgt.run_experiment({"preset": "ring", "num_sequences": 2, "sequence_length": 100,
    ...                               "energy_window": 10, "pca_window": 50, "null_permutations": 10,
    ...                               "layers": [20]}, output="runs", progress=False)
    >>> folder.name, sorted(path.name for path in folder.iterdir())
    ('smollm2-135m-ring', ['report', 'results.npz', 'run.json'])
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from . import config as configs
from ._icgt import NOT_A_NODE, WalkSampler
from .analysis import analyse
from .bundles import BUILTIN_MODELS, bundle_for, random_weights_bundle
from .files import sha256_of, write_npz
from .probe import ActivationProbe
from .run_folder import RUN_FORMAT_VERSION, Run, check_results
from .tokens import DEFAULT_WORDS, PROTOCOL_WORDS, concept_token_ids



class NotAnIcgtRunError(ValueError):
    """An output folder exists and is not an icgt run, so icgt will not write into it."""


class OtherConfigRunError(ValueError):
    """The run folder holds a complete run of another config; icgt neither reuses nor replaces it unasked."""


def run_name(config: configs.ExperimentConfig) -> str:
    """The run folder's name: model, preset (or graph), the control if any, the seed if not 0.

    >>> run_name(icgt.config.preset("grid")), run_name(icgt.config.preset("ring", control="shuffled", seed=2))
    ('smollm2-135m-grid', 'smollm2-135m-ring-shuffled-seed2')
    """
    model = config.model if config.model in BUILTIN_MODELS else Path(config.model).stem
    name = f"{model}-{config.preset if config.preset != 'custom' else config.graph}"
    if config.control != "none":
        name += f"-{config.control.replace('_', '-')}"
    return name + (f"-seed{config.seed}" if config.seed else "")


def is_run(folder: Path) -> bool:
    """Whether folder holds a complete icgt run."""
    return (folder / "run.json").is_file() and (folder / "results.npz").is_file()


def run_experiment(config: configs.ExperimentConfig | dict[str, Any] | str, output: str | Path = "runs", *,
                   force: bool = False, progress: bool = True, report: bool = True) -> Path:
    """Runs one experiment into output/<run name> and returns that folder.

    config: an ExperimentConfig, a dict of its fields, a preset name or a TOML file path.
    A complete run of the same config already there is kept (not redone) unless force; a complete run
    of another config is an OtherConfigRunError naming the differences (force replaces it); a folder
    there that is not an icgt run is a NotAnIcgtRunError. Nothing is written in either case.
    Processes that run into the same folder take turns (a lock file beside it), so each ends with a
    whole run of its own config or an error.
    """
    config = _as_config(config)
    output = _writable_folder(output)
    folder = output / run_name(config)
    with _run_lock(folder, progress):
        if folder.exists() and _reusable(folder, config, force):
            return folder
        with _partial_folder(folder) as partial:
            _write_run(partial, folder.name, *_compute(config, progress), report=report)
    return folder


def _write_run(target: Path, name: str, record: dict[str, Any], arrays: dict[str, np.ndarray],
               activations: dict[str, np.ndarray], *, report: bool = True) -> None:
    """Write a computed run (results.npz, activations.npz if any, run.json, the report) into ``target``,
    an empty folder: the partial folder of the run ``name``, or a Ray worker's scratch copy of it; the
    arrays are checked against the run format first (run_folder.check_results, what load_run checks)."""
    check_results(Run(folder=target, info={**record, "name": name}, arrays=arrays))
    write_npz(target / "results.npz", arrays)
    if activations:
        write_npz(target / "activations.npz", activations, compress=False)
    (target / "run.json").write_text(json.dumps({**record, "name": name}, indent=2))
    if report:
        from .report import write_report

        write_report(target)


def run_sweep(configs_to_run: list[configs.ExperimentConfig | dict[str, Any] | str], output: str | Path = "runs", *,
              force: bool = False, progress: bool = True, executor: Any = "local",
              on_run: Callable[[Path], None] | None = None) -> list[Path]:
    """Runs several experiments, skipping those already complete, so an interrupted sweep resumes.

    executor: "local" runs them one after another in this process; "ray" (or an
    icgt.ray_executor.RayExecutor, for its settings) makes each run a task on a Ray cluster, with the
    same results and the same guarantees on the output folder (docs/usage.md, "Running a sweep on a Ray
    cluster"); there a failing run does not stop the others: a SweepError at the end names it.
    on_run(folder) is called as each run completes (or is found complete).
    Returns the run folders, in the order of the configs.
    """
    resolved = [_as_config(c) for c in configs_to_run]
    output = _writable_folder(output)
    for config in resolved:  # refuse up front, before any run writes anything
        folder = output / run_name(config)
        if folder.exists():
            _reusable(folder, config, force)
    if executor != "local":
        from .ray_executor import as_ray_executor

        return as_ray_executor(executor).run(resolved, output, force=force, progress=progress, on_run=on_run)
    folders = []
    for config in tqdm(resolved, desc="runs", disable=not progress or len(resolved) == 1):
        folders.append(run_experiment(config, output, force=force, progress=progress))
        if on_run is not None:
            on_run(folders[-1])
    return folders


class SweepError(RuntimeError):
    """Some runs of a sweep failed and the others completed.

    ``failures`` maps each failed run's name to its error; ``folders`` holds every run's folder in
    the order of the configs, None for those that failed.
    """

    def __init__(self, failures: dict[str, str], folders: list[Path | None]) -> None:
        self.failures, self.folders = dict(failures), list(folders)
        listed = "; ".join(f"{name}: {error}" for name, error in self.failures.items())
        super().__init__(f"{len(self.failures)} of {len(self.folders)} runs failed ({listed}); the others are "
                         "complete: run the same command again to retry the failed ones")


def seed_groups(configs_run: list[configs.ExperimentConfig], folders: list[Path]) -> list[list[Path]]:
    """The run folders of configs that differ only in their seed, grouped (groups of two runs or more).

    >>> configs_run = [icgt.config.preset("grid", seed=s) for s in (0, 1)] + [icgt.config.preset("ring")]
    >>> [[p.name for p in group] for group in seed_groups(configs_run, [Path("a"), Path("b"), Path("c")])]
    [['a', 'b']]
    """
    groups: dict[str, list[Path]] = {}
    for config, folder in zip(configs_run, folders, strict=True):
        key = json.dumps({k: v for k, v in config.to_dict().items() if k != "seed"}, sort_keys=True)
        groups.setdefault(key, []).append(folder)
    return [group for group in groups.values() if len(group) > 1]


def _as_config(config: configs.ExperimentConfig | dict[str, Any] | str) -> configs.ExperimentConfig:
    if isinstance(config, configs.ExperimentConfig):
        configs.validate(config)
        return config
    if isinstance(config, dict):
        return configs.from_dict(config)
    if str(config).endswith(".toml"):
        return configs.load_toml(config)
    return configs.preset(str(config))


def _writable_folder(output: str | Path) -> Path:
    """``output`` as a folder icgt can write into (created if missing), or a clear error."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise NotADirectoryError(f"output '{output}' is a file; expected a folder to hold the runs")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PermissionError(f"cannot create the output folder '{output}': {error.strerror}") from None
    if not os.access(output, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write into the output folder '{output}' (permission denied); "
                              "choose another --output")
    return output


def _reusable(folder: Path, config: configs.ExperimentConfig, force: bool) -> bool:
    """Whether the complete run in ``folder`` is this config's (then it is kept unless force)."""
    if not is_run(folder):
        raise NotAnIcgtRunError(f"'{folder}' exists and is not an icgt run (no run.json and results.npz); "
                                "choose another output folder or move it away")
    if force:
        return False
    try:
        stored = json.loads((folder / "run.json").read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        stored = None
    wanted = config.to_dict()
    if stored == wanted:
        return True
    if not isinstance(stored, dict):
        differences = "its run.json is unreadable"
    else:
        differing = sorted(key for key in set(stored) | set(wanted) if stored.get(key) != wanted.get(key))
        differences = ", ".join(f"{key} {stored.get(key)!r} there, {wanted.get(key)!r} here" for key in differing[:6])
        if len(differing) > 6:
            differences += f" and {len(differing) - 6} more"
    raise OtherConfigRunError(f"'{folder}' holds a complete run of another config ({differences}); "
                              "pass --force (force=True) to replace it, or choose another output folder")


@contextmanager
def _run_lock(folder: Path, progress: bool, *, wait: bool = True) -> Iterator[bool]:
    """Holds an exclusive lock on ``folder``'s run for the block (released by the OS if the process dies).

    Yields True once held. With wait=False it yields False at once, holding nothing, when another
    process holds the lock (the Ray executor then tries again later instead of blocking).
    """
    lock_path = folder.with_name(f".{folder.name}.lock")
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            if progress:
                print(f"icgt: another process is running '{folder}'; waiting for it to finish", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def _partial_folder(folder: Path) -> Iterator[Path]:
    """A fresh "<folder>.partial" to write into, renamed to folder only if the block completes.

    Called under the run's lock, so the partial folder is this process's alone; one left by a killed
    process is removed first.
    """
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(partial, folder)


def concept_words(config: configs.ExperimentConfig, num_nodes: int) -> list[str]:
    """The config's words, else the model's default single-token words for the graph size."""
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
    (the same words, as often), "uniform" draws every word uniformly and independently.
    """
    sampler = WalkSampler(graph, seed=config.seed)
    if config.mode == "walk":
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


def run_bundle(config: configs.ExperimentConfig, progress: bool = True) -> Path:
    """The bundle that ``config`` runs (exported on first use): the model's, or for the random_init
    control a bundle of the same architecture with random weights.

    >>> run_bundle(icgt.config.preset("grid", model=toy_bundle, words=[f"w{i}" for i in range(16)])).name
    'toy.pt'
    """
    if config.control == "random_init":
        return random_weights_bundle(config.model, config.dtype, config.seed, progress=progress)
    return bundle_for(config.model, config.dtype, progress=progress)


def _compute(config: configs.ExperimentConfig, progress: bool, *, bundle: Path | None = None,
             device: str | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The run's record (run.json), its results, and its activations if the config keeps them.

    bundle and device, when given, replace run_bundle(config) and config.device (a Ray worker runs
    the bundle the driver exported, on the device Ray gave it).
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()

    bundle = bundle if bundle is not None else run_bundle(config, progress)
    probe = ActivationProbe(bundle, device=device or config.device)
    tokenizer = probe.tokenizer
    graph = config.build_graph()
    words = concept_words(config, graph.num_nodes)
    graph.labels = words
    word_ids = np.array(concept_token_ids(tokenizer, words), dtype=np.int64)
    separator_id = concept_token_ids(tokenizer, [config.separator])[0] if config.separator else -1

    clock = time.perf_counter()
    nodes, scored = sample_sequences(config, graph)
    token_ids = np.where(nodes >= 0, word_ids[np.maximum(nodes, 0)], separator_id)
    token_ids[:, 0] = probe.bos_token_id
    timings["sample_s"] = time.perf_counter() - clock

    layers = list(range(probe.num_layers)) if config.layers == "all" else list(config.layers)
    _check_fits(config, probe, layers if config.experiment == "graph" else [-1, *range(probe.num_layers)],
                token_ids.shape)
    result = None
    if config.experiment == "graph":
        clock = time.perf_counter()
        with tqdm(total=probe.num_layers + 1, desc=f"{run_name(config)}: forward", unit="block",
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
                  "edges": [list(e) for e in graph.edges], "labels": list(graph.labels)},
        "token_ids": {"words": word_ids.tolist(), "separator": separator_id, "bos": probe.bos_token_id},
        "versions": {"icgt": _icgt_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
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
    return record, arrays, activations


def _check_fits(config: configs.ExperimentConfig, probe: ActivationProbe, layers: list[int],
                shape: tuple[int, int]) -> None:
    """Refuses, before the forward pass, layers the model lacks, sequences longer than it was trained
    for, and captures larger than this machine's memory."""
    bad = [layer for layer in layers if not -1 <= layer < probe.num_layers]
    if bad:
        raise configs.ConfigError([f"layers {bad} do not exist in {config.model}, which has blocks 0.."
                                   f"{probe.num_layers - 1} (and -1, the embedding output)"])
    if shape[1] > probe.max_positions:
        raise configs.ConfigError([f"sequence_length {config.sequence_length} (+ BOS) exceeds the {probe.max_positions} "
                                   f"positions {config.model} was trained for"])
    needed = len(layers) * shape[0] * shape[1] * probe.hidden_size * probe.dtype.itemsize
    available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if needed > available:
        raise configs.ConfigError([f"capturing {len(layers)} layers of {shape[0]} x {shape[1]} tokens needs "
                                   f"{needed / 2**30:.1f} GiB, more than this machine's {available / 2**30:.1f} GiB; "
                                   "capture fewer layers or sequences"])


def _icgt_version() -> str:
    from . import __version__

    return __version__
