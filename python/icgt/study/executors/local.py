"""The local executor: a sweep's runs one after another in this process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..compute import compute_run
from ..config import ExperimentConfig
from ..run_store import check_reusable, partial_folder, run_lock, run_name, write_run


@dataclass
class LocalExecutor:
    """Runs each run in this process, one after another (icgt.study.executors.base.Executor); it has no
    settings."""

    def run(self, runs: list[ExperimentConfig], output: Path, *, force: bool, progress: bool,
            on_run: Callable[[Path], None] | None) -> list[Path]:
        folders = []
        for config in tqdm(runs, desc="runs", disable=not progress or len(runs) == 1):
            folders.append(self.run_one(config, output, force=force, progress=progress))
            if on_run is not None:
                on_run(folders[-1])
        return folders

    def run_one(self, config: ExperimentConfig, output: Path, *, force: bool = False, progress: bool = True,
                report: bool = True) -> Path:
        """One run into output/<run name>, under its lock: kept when complete (check_reusable), else
        computed and written whole. Returns the folder."""
        folder = output / run_name(config)
        with run_lock(folder, progress):
            if folder.exists() and check_reusable(folder, config, force):
                return folder
            with partial_folder(folder) as partial:
                write_run(partial, folder.name, compute_run(config, progress), report=report)
        return folder
