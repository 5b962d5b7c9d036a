"""What an executor is: the one small interface between a sweep (icgt.study.sweep) and whatever runs its
runs, and the error it raises when some of them failed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..config import ExperimentConfig


class Executor(Protocol):
    """Runs a sweep's runs into ``output``: each config's run folder ends whole (icgt.study.run_store),
    complete runs of the same config are kept unless force, and ``on_run(folder)`` is called as each
    run completes or is found complete. Returns the folders in the order of the configs; raises
    SweepError when some runs failed and the others completed.

    The configs are validated, and existing folders checked against them, before ``run`` is called.
    """

    def run(self, runs: list[ExperimentConfig], output: Path, *, force: bool, progress: bool,
            on_run: Callable[[Path], None] | None) -> list[Path]: ...


class SweepError(RuntimeError):
    """Some runs of a sweep failed and the others completed.

    ``failures`` maps each failed run's name to its error; ``folders`` holds every run's folder in
    the order of the configs, None for those that failed.

    >>> str(SweepError({"a": "ValueError: no"}, [None, Path("b")]))
    '1 of 2 runs failed (a: ValueError: no); the others are complete: run the same command again to retry the failed ones'
    """

    def __init__(self, failures: dict[str, str], folders: list[Path | None]) -> None:
        self.failures, self.folders = dict(failures), list(folders)
        listed = "; ".join(f"{name}: {error}" for name, error in self.failures.items())
        super().__init__(f"{len(self.failures)} of {len(self.folders)} runs failed ({listed}); the others are "
                         "complete: run the same command again to retry the failed ones")
