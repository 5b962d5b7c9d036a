"""Sweeps on a Ray cluster: each run of a sweep is one Ray task; the driver alone writes the output folder.

``icgt run --executor ray`` (or ``run_sweep(..., executor="ray")``) hands the runs that are not already
complete to Ray, which schedules them over the cluster's nodes as their resources allow. The work is
split so that a run's results and the output folder's guarantees are those of a local sweep:

- the driver (the process that runs the sweep) resolves and checks the configs, exports each bundle
  once, takes each run's lock and checks what its folder holds (icgt.study.run_store's ``run_lock`` and
  ``check_reusable``), submits one task per run still to do, and writes each returned run into
  ``<name>.partial``, renamed when whole (``partial_folder``); it prints one progress bar over the
  sweep and each run's summary as the run completes;
- a task (on any worker of the cluster) finds the bundle (the driver's path when its node sees it,
  else a copy sent once through Ray's object store into the node's cache), computes the run with as
  many torch threads as CPUs it holds, writes the whole run folder (results.npz, run.json, the
  report) into a scratch folder and returns its files as bytes.

So the workers need no shared filesystem and never touch the output folder; a worker lost mid-run
(its process or node gone) is retried by Ray (``max_retries``), and a run that raises is reported
with its error while the others go on (SweepError at the end). Example, on a private Ray instance
on this machine:

    >>> from icgt.study.executors import RayExecutor
    >>> folders = icgt.run_sweep(["grid", "ring"], "runs", executor=RayExecutor(cpus_per_run=1))  # doctest: +SKIP
"""

from __future__ import annotations

import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..._version import __version__
from .. import config as configs
from ..compute import chosen_dtype, compute_run, run_bundle
from ..run_store import check_reusable, partial_folder, run_lock, run_name, write_run
from .base import SweepError
from .ray_cluster import connect, import_ray, ray_address_parts

#: A run's memory beyond its bundle and activations: the interpreter, torch and the compiled core.
BASE_MEMORY = 512 * 2**20
#: The probe keeps at most this many logits at once (docs/architecture.md, ActivationProbe), float32.
LOGIT_CHUNK = 2**26
#: How long the driver waits for a result before it looks at locks and progress again.
POLL_S = 0.5


@dataclass
class RayExecutor:
    """Runs a sweep's runs as Ray tasks (see the module's docstring). Its settings are its first five
    fields, also the keys of a config file's ``[sweep]`` table and ``icgt run``'s flags.

    While and after run: ``attempts``, how many times each run's task started (above 1 where Ray
    retried it after a lost worker); ``running``, the runs whose task is running now.
    """

    #: The Ray cluster: "auto", "host:port" or "ray://host:port"; None or empty means $ICGT_RAY_ADDRESS,
    #: else $RAY_ADDRESS if set, else a private Ray instance on this machine.
    address: str | None = None
    #: CPUs each run asks Ray for; its torch threads are as many (at least one).
    cpus_per_run: int | float = 1
    #: GPUs each run on a GPU asks Ray for (a fraction shares one GPU between runs).
    gpus_per_run: int | float = 1
    #: Times Ray runs a task again after its worker or node was lost (not after an error in the run).
    max_retries: int = 3
    #: Send each bundle to the workers through Ray's object store even when they could read the
    #: driver's path (without it, it is sent only to nodes that cannot).
    ship_bundles: bool = False
    attempts: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    running: set[str] = field(default_factory=set, init=False, repr=False)

    #: The settings and their types, as a ``[sweep]`` table gives them.
    SETTINGS: ClassVar[dict[str, Any]] = {"address": str, "cpus_per_run": int | float, "gpus_per_run": int | float,
                                          "max_retries": int, "ship_bundles": bool}

    @classmethod
    def settings_problems(cls, values: dict[str, Any]) -> list[str]:
        """What is wrong with settings given as plain data (their types, then their values); empty when
        nothing is.

        >>> RayExecutor.settings_problems({"cpus_per_run": 0, "address": "10.0.0.1:port"})
        ['cpus_per_run must be positive, got 0', "address '10.0.0.1:port' is not 'auto', 'host:port' or 'ray://host:port'"]
        """
        problems = [problem for key, value in values.items()
                    if (problem := configs.type_problem(key, value, cls.SETTINGS[key]))]
        if problems:
            return problems
        for key in ("cpus_per_run", "gpus_per_run"):
            if key in values and not values[key] > 0:
                problems.append(f"{key} must be positive, got {values[key]}")
        if values.get("max_retries", 0) < 0:
            problems.append(f"max_retries must be 0 or more, got {values['max_retries']}")
        address = values.get("address", "")
        if address not in ("", "auto", "local") and None in ray_address_parts(address):
            problems.append(f"address {address!r} is not 'auto', 'host:port' or 'ray://host:port'")
        return problems

    def run(self, runs: list[configs.ExperimentConfig], output: Path, *, force: bool, progress: bool,
            on_run: Callable[[Path], None] | None) -> list[Path]:
        """Runs every config (already validated and checked against output by run_sweep) on the cluster."""
        ray = import_ray(self.address)
        started_here = connect(ray, self.address)
        try:
            return _Sweep(ray, self, runs, output, force, progress, on_run).run()
        finally:
            if started_here:
                ray.shutdown()


@dataclass
class _Bundle:
    """A bundle as the driver sees it, with the dtype the driver chose and why; ``data`` (an ObjectRef)
    once it is sent through the object store."""

    path: str
    size: int
    dtype_choice: tuple[str, str]
    sha256: str = ""
    data: Any = None


class _Progress:
    """A Ray actor that tasks tell when they start, so that the driver can count runs running and retried."""

    def __init__(self) -> None:
        self.starts: dict[int, int] = {}

    def started(self, index: int) -> None:
        self.starts[index] = self.starts.get(index, 0) + 1

    def counts(self) -> dict[int, int]:
        return self.starts


class _Sweep:
    """One sweep on the cluster: the driver's loop (see the module's docstring)."""

    def __init__(self, ray, executor: RayExecutor, runs: list[configs.ExperimentConfig], output: Path,
                 force: bool, progress: bool, on_run: Callable[[Path], None] | None) -> None:
        self.ray, self.executor, self.runs, self.output = ray, executor, runs, output
        self.force, self.progress, self.on_run = force, progress, on_run
        self.folders: list[Path | None] = [None] * len(runs)
        self.names = [run_name(config) for config in runs]
        self.failures: dict[str, str] = {}
        self.locks: dict[int, ExitStack] = {}
        self.in_flight: dict[Any, int] = {}
        self.bundles: dict[tuple, _Bundle] = {}
        self.submitted: dict[int, _Bundle] = {}
        self.warned: set[tuple] = set()
        self.shown = ""
        self.cluster = ray.cluster_resources()

    def run(self) -> list[Path]:
        from tqdm.auto import tqdm

        _allow_open_files(len(self.runs) + 64)  # one lock file per run in flight
        self.tracker = self.ray.remote(_Progress).options(num_cpus=0).remote()
        self.task = self.ray.remote(_run_task)
        waiting = list(range(len(self.runs)))  # runs whose lock this process does not hold yet
        self.bar = tqdm(total=len(self.runs), desc="runs on Ray", unit="run", disable=not self.progress)
        try:
            while waiting or self.in_flight:
                waiting = [index for index in waiting if not self._start(index)]
                if self.in_flight:
                    refs = list(self.in_flight)
                    done, rest = self.ray.wait(refs, num_returns=1, timeout=POLL_S)
                    if done and rest:
                        done += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0]
                    for ref in done:
                        self._finish(self.in_flight.pop(ref), ref)
                elif waiting:
                    time.sleep(POLL_S)  # every remaining run is locked by another process
                self._show()
        except BaseException:
            for ref in self.in_flight:
                self.ray.cancel(ref, force=True)
            raise
        finally:
            for stack in self.locks.values():
                stack.close()
            self.bar.close()
            self._count_attempts()
        if self.failures:
            raise SweepError(self.failures, self.folders)
        return self.folders

    # The driver's steps -------------------------------------------------------------------------

    def _bundle(self, index: int) -> _Bundle:
        """The run's bundle, exported here on first use, once per model (and seed, for random_init)."""
        config = self.runs[index]
        key = (config.model, config.dtype, config.device, config.seed if config.control == "random_init" else None)
        if key not in self.bundles:
            dtype_choice = chosen_dtype(config)
            path = run_bundle(config, self.progress, dtype_choice[0])
            self.bundles[key] = _Bundle(str(path), path.stat().st_size, dtype_choice)
            if self.executor.ship_bundles:
                self._ship(self.bundles[key])
        return self.bundles[key]

    def _start(self, index: int) -> bool:
        """Takes the run's lock and submits it, or finds it complete; False while another process holds it."""
        if self.folders[index] is not None or self.names[index] in self.failures:
            return True
        folder = self.output / self.names[index]
        stack = ExitStack()
        if not stack.enter_context(run_lock(folder, False, wait=False)):
            stack.close()
            return False
        self.locks[index] = stack
        try:
            reusable = folder.exists() and check_reusable(folder, self.runs[index], self.force)
        except ValueError as error:  # another process wrote another config's run there meanwhile
            self._fail(index, str(error))
            return True
        if reusable:
            self._complete(index, folder)
            return True
        try:
            self.submitted[index] = self._bundle(index)
        except (ValueError, OSError, ImportError) as error:  # its model cannot be exported
            self._fail(index, f"exporting its bundle: {' '.join(str(error).split())}")
            return True
        self._submit(index)
        return True

    def _submit(self, index: int) -> None:
        config, bundle = self.runs[index], self.submitted[index]
        options = self._resources(index, bundle)
        ref = self.task.options(name=f"icgt-run:{self.names[index]}", max_retries=self.executor.max_retries,
                                retry_exceptions=False, **options).remote(
            config, bundle, self._threads(), self.tracker, index, __version__)
        self.in_flight[ref] = index

    def _finish(self, index: int, ref) -> None:
        """Writes a returned run into its folder (atomically, under its lock), or records its failure."""
        try:
            result = self.ray.get(ref)
        except Exception as error:  # noqa: BLE001 - any failure of one run is reported, the others go on
            self._fail(index, _error_text(error))
            return
        if result["status"] == "bundle-missing":  # that node cannot read the driver's path: send the bundle
            self._ship(self.submitted[index])
            self._submit(index)
            return
        folder = self.output / self.names[index]
        try:
            with partial_folder(folder) as partial:
                for relative, data in result["files"].items():
                    target = partial / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
        except OSError as error:
            self._fail(index, f"writing {folder}: {error}")
            return
        self._complete(index, folder)

    def _complete(self, index: int, folder: Path) -> None:
        self.folders[index] = folder
        self._release(index)
        self.bar.update(1)
        if self.on_run is not None:
            self.on_run(folder)

    def _fail(self, index: int, error: str) -> None:
        self.failures[self.names[index]] = error
        self._release(index)
        self.bar.update(1)
        self.bar.write(f"icgt: run {self.names[index]} failed: {error}", file=sys.stderr)

    def _release(self, index: int) -> None:
        stack = self.locks.pop(index, None)
        if stack is not None:
            stack.close()

    def _ship(self, bundle: _Bundle) -> None:
        """Puts the bundle's bytes into Ray's object store once; tasks then copy it into their node's cache."""
        import numpy as np

        from ...files import sha256_of

        if bundle.data is None:
            bundle.sha256 = sha256_of(bundle.path)
            bundle.data = self.ray.put(np.memmap(bundle.path, dtype=np.uint8, mode="r").view(np.ndarray))

    def _show(self) -> None:
        counts = self.ray.get(self.tracker.counts.remote())
        self.executor.attempts = {self.names[index]: count for index, count in counts.items()}
        self.executor.running = {self.names[index] for index in self.in_flight.values() if counts.get(index)}
        shown = f"running {len(self.executor.running)}, failed {len(self.failures)}"
        if shown != self.shown:
            self.shown = shown
            self.bar.set_postfix_str(shown)

    def _count_attempts(self) -> None:
        try:
            counts = self.ray.get(self.tracker.counts.remote(), timeout=10)
        except Exception:  # noqa: BLE001 - only the counts of the last moments are lost
            return
        self.executor.attempts = {self.names[index]: count for index, count in counts.items()}
        self.executor.running = set()

    # What a run asks of the cluster ---------------------------------------------------------------

    def _threads(self) -> int:
        return max(1, int(self.executor.cpus_per_run))

    def _resources(self, index: int, bundle: _Bundle) -> dict[str, Any]:
        """CPUs, a GPU when the run's device is one, and memory (run_memory); warns when no node has them."""
        config = self.runs[index]
        gpu = config.device.startswith("cuda") or (config.device == "auto" and self.cluster.get("GPU", 0) > 0)
        options = {"num_cpus": self.executor.cpus_per_run, "num_gpus": self.executor.gpus_per_run if gpu else 0,
                   "memory": run_memory(config, bundle.path, on_gpu=gpu)}
        asked = tuple(options.values())
        if asked in self.warned:
            return options
        self.warned.add(asked)
        nodes = [node["Resources"] for node in self.ray.nodes() if node.get("Alive")]
        if not any(node.get("CPU", 0) >= options["num_cpus"] and node.get("GPU", 0) >= options["num_gpus"]
                   and node.get("memory", 0) >= options["memory"] for node in nodes):
            self.bar.write(f"icgt: warning: run {self.names[index]} asks for {options['num_cpus']} CPUs, "
                           f"{options['num_gpus']} GPUs and {options['memory'] / 2**30:.1f} GiB of memory, which no "
                           "node of the cluster has now; it waits until one does (an autoscaler may add it)",
                           file=sys.stderr)
        return options


def run_memory(config: configs.ExperimentConfig, bundle: str | Path, *, on_gpu: bool) -> int:
    """The memory (bytes, of the host) that a run of ``config`` needs, for Ray's scheduling.

    The interpreter (BASE_MEMORY), the bundle's weights (its file's size), then on the CPU the
    captured residuals (layers x sequences x positions x hidden size) three times over (the capture
    and the analysis's working copies) and the probe's chunk of logits; on a GPU those live in the
    GPU's memory. Activations kept (save_activations) add their float32 copy. Measured on SmolLM2-135M
    (docs/performance.md): peaks of 0.96 GiB where it estimates 1.09, 1.57 where 1.72.

    >>> config = icgt.study.config.preset("grid", num_sequences=4, sequence_length=600)
    >>> round(run_memory(config, icgt.bundle_for("smollm2-135m"), on_gpu=False) / 2**30, 2)
    1.72
    """
    from ...models.bundles import read_bundle_config

    model = read_bundle_config(bundle)
    layers = model["num_layers"] if config.layers == "all" else len(config.layers)
    positions = config.num_sequences * (config.sequence_length + 1)
    itemsize = 2 if model["dtype"] == "bfloat16" else 4
    capture = layers * positions * model["hidden_size"] * itemsize
    needed = BASE_MEMORY + Path(bundle).stat().st_size
    if not on_gpu:
        needed += 3 * capture + 4 * min(positions * model["vocab_size"], LOGIT_CHUNK)
    if config.save_activations:
        needed += capture * 4 // itemsize
    return int(needed)


def _allow_open_files(count: int) -> None:
    """Raises the soft limit on open files to ``count`` where the hard limit allows (locks of a large sweep)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        resource.setrlimit(resource.RLIMIT_NOFILE, (count if hard == resource.RLIM_INFINITY else min(count, hard), hard))


def _error_text(error: BaseException) -> str:
    """One line for a failed task: the run's own exception where Ray carries it, else Ray's reason."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {' '.join(str(cause).split())}"
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


# The task, run by a Ray worker ----------------------------------------------------------------------

def _run_task(config: configs.ExperimentConfig, bundle: _Bundle, threads: int, tracker, index: int,
              driver_version: str) -> dict[str, Any]:
    """Computes one run and returns its folder's files: {"status": "done", "files": {relative path: bytes}};
    or {"status": "bundle-missing"} when this node cannot read the bundle and none was sent."""
    import torch

    if bundle.data is None and not _readable(bundle):
        return {"status": "bundle-missing"}
    tracker.started.remote(index)
    if driver_version != __version__:
        raise RuntimeError(f"this worker ({platform.node()}) has icgt {__version__}, the driver {driver_version}; "
                           "install the same icgt on every node")
    path = _local_bundle(bundle)
    torch.set_num_threads(threads)
    import ray

    gpu = bool(ray.get_gpu_ids())
    device = "cuda" if gpu else "cpu"  # Ray shows a task only its own GPUs, so cuda:N is the one it gave
    computed = compute_run(config, False, bundle=path, device=device, dtype_choice=bundle.dtype_choice)
    computed.record["model"]["bundle"] = bundle.path  # as the driver knows it, whichever copy ran
    name = run_name(config)
    with tempfile.TemporaryDirectory(prefix="icgt-run-") as scratch:
        folder = Path(scratch) / name
        folder.mkdir()
        write_run(folder, name, computed)
        files = {str(file.relative_to(folder)): file.read_bytes() for file in sorted(folder.rglob("*"))
                 if file.is_file()}
    return {"status": "done", "files": files}


def _readable(bundle: _Bundle) -> bool:
    """Whether this node reads the driver's bundle at the driver's path (the same machine, a shared filesystem)."""
    path = Path(bundle.path)
    return path.is_file() and path.stat().st_size == bundle.size


def _local_bundle(bundle: _Bundle) -> Path:
    """This node's copy of the bundle: the driver's path when nothing was sent, else the copy sent
    through the object store, kept in this node's cache (written once per node, atomically)."""
    if bundle.data is None:
        return Path(bundle.path)
    from ...files import write_atomically
    from ...models.bundles import cache_dir

    copy = cache_dir() / "shipped" / f"{bundle.sha256[:16]}-{Path(bundle.path).name}"
    if not (copy.is_file() and copy.stat().st_size == bundle.size):
        import ray

        data = ray.get(bundle.data)
        write_atomically(copy, lambda temporary: temporary.write_bytes(memoryview(data)))
    return copy
