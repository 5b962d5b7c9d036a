"""The in-context graph tracing experiment end to end: one run, or a sweep of them.

A sweep is a list of configs and one output folder. run_sweep resolves and validates every config and
checks every existing run folder against its config first (a run whose config changed is refused
before anything runs), then hands the runs to an executor (icgt.study.executors: local or Ray), which
computes each (icgt.study.compute) and writes it through icgt.study.run_store. One run is one
ExperimentConfig; its folder holds run.json and results.npz (docs/run-format.md) and the report's
figures. An interrupted sweep resumes by skipping whole runs.

Example (SmolLM2-135M, a short ring run, one layer captured):
    >>> folder = icgt.run_experiment({"preset": "ring", "num_sequences": 2, "sequence_length": 100,
    ...                               "energy_window": 10, "pca_window": 50, "null_permutations": 10,
    ...                               "layers": [20]}, output="runs", progress=False)
    >>> folder.name, sorted(path.name for path in folder.iterdir())
    ('smollm2-135m-ring', ['report', 'results.npz', 'run.json'])
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import config as configs
from .executors import Executor, LocalExecutor, as_executor
from .run_store import check_reusable, run_name, writable_folder


def run_experiment(config: configs.ExperimentConfig | dict[str, Any] | str, output: str | Path = "runs", *,
                   force: bool = False, progress: bool = True, report: bool = True) -> Path:
    """Runs one experiment into output/<run name> in this process and returns that folder.

    config: an ExperimentConfig, a dict of its fields, a preset name or a TOML file path.
    A complete run of the same config already there is kept (not redone) unless force; a complete run
    of another config is an OtherConfigRunError naming the differences (force replaces it); a folder
    there that is not an icgt run is a NotAnIcgtRunError. Nothing is written in either case.
    Processes that run into the same folder take turns (a lock file beside it), so each ends with a
    whole run of its own config or an error.
    """
    return LocalExecutor().run_one(as_config(config), writable_folder(output), force=force, progress=progress,
                                   report=report)


def run_sweep(configs_to_run: list[configs.ExperimentConfig | dict[str, Any] | str], output: str | Path = "runs", *,
              force: bool = False, progress: bool = True, executor: str | Executor = "local",
              on_run: Callable[[Path], None] | None = None) -> list[Path]:
    """Runs several experiments, skipping those already complete, so an interrupted sweep resumes.

    executor: "local" runs them one after another in this process; "ray" (or an
    icgt.study.executors.RayExecutor, for its settings) makes each run a task on a Ray cluster, with the
    same results and the same guarantees on the output folder (docs/usage.md, "Running a sweep on a Ray
    cluster"); there a failing run does not stop the others: a SweepError at the end names it.
    on_run(folder) is called as each run completes (or is found complete).
    Returns the run folders, in the order of the configs.
    """
    resolved = [as_config(c) for c in configs_to_run]
    output = writable_folder(output)
    for config in resolved:  # refuse up front, before any run writes anything
        folder = output / run_name(config)
        if folder.exists():
            check_reusable(folder, config, force)
    return as_executor(executor).run(resolved, output, force=force, progress=progress, on_run=on_run)


def seed_groups(configs_run: list[configs.ExperimentConfig], folders: list[Path]) -> list[list[Path]]:
    """The run folders of configs that differ only in their seed, grouped (groups of two runs or more).

    >>> configs_run = [icgt.study.config.preset("grid", seed=s) for s in (0, 1)] + [icgt.study.config.preset("ring")]
    >>> [[p.name for p in group] for group in seed_groups(configs_run, [Path("a"), Path("b"), Path("c")])]
    [['a', 'b']]
    """
    groups: dict[str, list[Path]] = {}
    for config, folder in zip(configs_run, folders, strict=True):
        key = json.dumps({k: v for k, v in config.to_dict().items() if k != "seed"}, sort_keys=True)
        groups.setdefault(key, []).append(folder)
    return [group for group in groups.values() if len(group) > 1]


def as_config(config: configs.ExperimentConfig | dict[str, Any] | str) -> configs.ExperimentConfig:
    """A validated ExperimentConfig from a config, a dict of its fields, a TOML file path or a preset name.

    >>> as_config("ring").graph, as_config({"preset": "grid", "seed": 2}).seed
    ('ring', 2)
    """
    if isinstance(config, configs.ExperimentConfig):
        configs.validate(config)
        return config
    if isinstance(config, dict):
        return configs.from_dict(config)
    if str(config).endswith(".toml"):
        return configs.load_toml(config)
    return configs.preset(str(config))
