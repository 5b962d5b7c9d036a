"""Run folders: their names, the lock that makes processes take turns on one, the check that a folder
holds this config's complete run, and the write of a run (into ``<name>.partial``, renamed when whole).

Everything that makes an output folder trustworthy is here, and every executor uses it, so a run
written by a Ray worker has the same guarantees as a local one: a folder without the ``.partial``
suffix is always a whole run; a complete run of another config is never replaced unasked; a killed
process leaves nothing that a rerun would mistake for a result.

Example:
    >>> import tempfile
    >>> config = icgt.study.config.preset("ring", seed=2)
    >>> folder = Path(tempfile.mkdtemp()) / run_name(config)
    >>> with run_lock(folder) as held, partial_folder(folder) as partial:
    ...     _ = (partial / "note.txt").write_text("written whole or not at all")
    >>> folder.name, sorted(path.name for path in folder.parent.iterdir())
    ('smollm2-135m-ring-seed2', ['smollm2-135m-ring-seed2'])
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np

from ..files import write_npz
from ..models.catalog import BUILTIN_MODELS
from . import config as configs
from .run_folder import Run, check_results


class ComputedRun(NamedTuple):
    """A run before it is written: run.json's record, results.npz's arrays, activations.npz's (often none)."""

    record: dict[str, Any]
    arrays: dict[str, np.ndarray]
    activations: dict[str, np.ndarray]


class NotAnIcgtRunError(ValueError):
    """An output folder exists and is not an icgt run, so icgt will not write into it."""


class OtherConfigRunError(ValueError):
    """The run folder holds a complete run of another config; icgt neither reuses nor replaces it unasked."""


def run_name(config: configs.ExperimentConfig) -> str:
    """The run folder's name: model, preset (or graph), the control if any, the seed if not 0.

    >>> run_name(icgt.study.config.preset("grid")), run_name(icgt.study.config.preset("ring", control="shuffled", seed=2))
    ('smollm2-135m-grid', 'smollm2-135m-ring-shuffled-seed2')
    """
    model = config.model if config.model in BUILTIN_MODELS else Path(config.model).stem
    name = f"{model}-{config.preset if config.preset != 'custom' else config.graph}"
    if config.control != "none":
        name += f"-{config.control.replace('_', '-')}"
    return name + (f"-seed{config.seed}" if config.seed else "")


def is_run(folder: Path) -> bool:
    """Whether folder holds a complete icgt run.

    >>> import tempfile
    >>> is_run(Path(grid_run)), is_run(Path(tempfile.mkdtemp()))
    (True, False)
    """
    return (folder / "run.json").is_file() and (folder / "results.npz").is_file()


def writable_folder(output: str | Path) -> Path:
    """``output`` as a folder icgt can write into (created if missing), or a clear error.

    >>> import tempfile
    >>> writable_folder(Path(tempfile.mkdtemp()) / "runs").is_dir()
    True
    """
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


def check_reusable(folder: Path, config: configs.ExperimentConfig, force: bool) -> bool:
    """Whether the complete run in ``folder`` (which exists) is this config's, to be kept: True when it
    is and not force; False when force (it is to be replaced); OtherConfigRunError naming the differences
    when it is another config's; NotAnIcgtRunError when the folder is no icgt run.

    >>> check_reusable(Path(grid_run), icgt.study.config.preset("ring"), force=False)
    Traceback (most recent call last):
    ...
    icgt.study.run_store.OtherConfigRunError: '...' holds a complete run of another config (...); pass --force (force=True) to replace it, or choose another output folder
    """
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
def run_lock(folder: Path, progress: bool = True, *, wait: bool = True) -> Iterator[bool]:
    """Holds an exclusive lock on ``folder``'s run for the block (released by the OS if the process dies).

    Yields True once held. With wait=False it yields False at once, holding nothing, when another
    process holds the lock (the Ray executor then tries again later instead of blocking). The lock
    file, ``.<run name>.lock`` beside the folder, is removed when the lock is released; a process that
    was waiting on the removed file takes the lock on the new one instead.
    """
    lock_path = folder.with_name(f".{folder.name}.lock")
    told = False
    while True:
        lock = open(lock_path, "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                lock.close()
                yield False
                return
            if progress and not told:
                print(f"icgt: another process is running '{folder}'; waiting for it to finish", file=sys.stderr)
                told = True
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_same_file(lock, lock_path):
            break
        lock.close()  # its holder removed that file as it let go: lock the current one
    try:
        yield True
    finally:
        lock_path.unlink(missing_ok=True)  # while held, so no other process holds the removed file
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _is_same_file(opened: Any, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(opened.fileno()), path.stat())
    except FileNotFoundError:
        return False


@contextmanager
def partial_folder(folder: Path) -> Iterator[Path]:
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


def write_run(target: Path, name: str, computed: ComputedRun, *, report: bool = True) -> None:
    """Write a computed run (results.npz, activations.npz if any, run.json, the report) into ``target``,
    an empty folder: the partial folder of the run ``name``, or a Ray worker's scratch copy of it; the
    arrays are checked against the run format first (run_folder.check_results, what load_run checks)."""
    record = {**computed.record, "name": name}
    check_results(Run(folder=target, info=record, arrays=computed.arrays))
    write_npz(target / "results.npz", computed.arrays)
    if computed.activations:
        write_npz(target / "activations.npz", computed.activations, compress=False)
    (target / "run.json").write_text(json.dumps(record, indent=2))
    if report:
        from ..report.html import write_report

        write_report(target)
