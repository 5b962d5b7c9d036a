"""Executors: what runs a sweep's runs (icgt.study.executors.base.Executor). "local" runs them one after
another in this process; "ray" makes each run a task on a Ray cluster. Each has its own settings,
given as a config file's ``[sweep]`` table or ``icgt run``'s flags of the same names.

Adding an executor: a class with ``run(runs, output, *, force, progress, on_run)`` that writes each run
through icgt.study.run_store and computes it with icgt.study.compute.compute_run, and its name here.

Example:
    >>> executor_from_settings({"executor": "ray", "cpus_per_run": 2}).cpus_per_run
    2
    >>> executor_from_settings({"executor": "dask", "retries": 1})
    Traceback (most recent call last):
    ...
    icgt.study.config.ConfigError: invalid experiment config: [sweep]: unknown key 'retries' (did you mean 'max_retries'?); [sweep]: executor 'dask' is unknown; expected one of ['local', 'ray']
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from ..config import SWEEP_TABLE, ConfigError, tomllib, type_problem
from .base import Executor, SweepError
from .local import LocalExecutor
from .ray_executor import RayExecutor

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "SweepError", "as_executor",
           "executor_from_settings", "load_executor"]

EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}


def executor_from_settings(values: dict[str, Any]) -> Executor:
    """The executor a ``[sweep]`` table describes: ``executor`` names it ("local" by default), the other
    keys are its settings (only Ray has any: RayExecutor's fields). A ConfigError lists every problem.
    The example is the module's."""
    if not isinstance(values, dict):
        raise ConfigError([f"[{SWEEP_TABLE}] must be a table of settings, got {type(values).__name__}"])
    name = values.get("executor", "local")
    settings = {key: value for key, value in values.items() if key != "executor"}
    problems = []
    for key in settings:
        if key not in RayExecutor.SETTINGS:
            close = difflib.get_close_matches(str(key), ["executor", *RayExecutor.SETTINGS], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; expected some of {sorted(RayExecutor.SETTINGS)}"
            problems.append(f"unknown key {key!r}{hint}")
    if (problem := type_problem("executor", name, str)) is not None:
        problems.append(problem)
    elif name not in EXECUTORS:
        problems.append(f"executor {name!r} is unknown; expected one of {list(EXECUTORS)}")
    known = {key: value for key, value in settings.items() if key in RayExecutor.SETTINGS}
    problems += RayExecutor.settings_problems(known)
    if problems:
        raise ConfigError([f"[{SWEEP_TABLE}]: {problem}" for problem in problems])
    return RayExecutor(**known) if name == "ray" else LocalExecutor()


def load_executor(path: str | Path) -> Executor:
    """The executor of a config file's ``[sweep]`` table (the local one where it has none).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "sweep.toml"
    >>> _ = path.write_text('preset = "ring"\\n[sweep]\\nexecutor = "ray"\\naddress = "auto"\\n')
    >>> load_executor(path).address, icgt.study.config.load_toml(path).preset
    ('auto', 'ring')
    """
    return executor_from_settings(sweep_table(path))


def sweep_table(path: str | Path) -> dict[str, Any]:
    """A config file's ``[sweep]`` table as written (empty where it has none)."""
    return dict(tomllib.loads(Path(path).read_text(encoding="utf-8")).get(SWEEP_TABLE, {}))


def as_executor(executor: str | Executor) -> Executor:
    """``executor`` as an executor: a name of EXECUTORS (default settings) or an executor itself.

    >>> as_executor("ray").max_retries
    3
    >>> as_executor("dask")
    Traceback (most recent call last):
    ...
    ValueError: executor 'dask' is unknown; expected one of ['local', 'ray'] or an executor (icgt.study.executors)
    """
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise ValueError(f"executor {executor!r} is unknown; expected one of {list(EXECUTORS)} or an executor "
                             "(icgt.study.executors)")
        return EXECUTORS[executor]()
    if not callable(getattr(executor, "run", None)):
        raise TypeError(f"executor must be a name or have a run(runs, output, ...) method, got {type(executor).__name__}")
    return executor
