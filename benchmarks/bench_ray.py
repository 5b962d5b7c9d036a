"""Sweeps on Ray: the same short sweep run locally, on a local Ray cluster of 1 worker and of 2 workers.

    python benchmarks/bench_ray.py [--model smollm2-135m] [--runs 4] [--rounds 2]

The sweep: ``--runs`` grid runs of the model (seeds 0, 1, ...) in a short setting (4 walks of 300
words, blocks 2, 15 and 29), every run with one torch thread: locally (``run_sweep`` in this process,
one run after another, ``torch.set_num_threads(1)``), and with ``--executor ray`` on a private Ray
cluster on 127.0.0.1 of 1 CPU (one run at a time) and of 2 CPUs (two at a time), each run asking
for 1 CPU. The variants take turns for ``--rounds`` rounds; the fastest of each counts. Each Ray
sweep's results.npz is checked to equal the local one's, array for array.

It prints the wall time and the CPU time (of this process and of every process below it: the Ray
daemons and workers) of each variant; the ratio 1 worker / 2 workers; the overhead per task, (1
worker - local) / runs, in wall and in CPU time, with the cluster's start-up apart (on a loaded
machine the CPU time is the steadier of the two); and, for the decision on splitting one
run's batch over workers (docs/architecture.md), where a local run's time goes (loading the model,
the forward pass, the analysis, the report) and the most that splitting its forward pass over k
workers could save (Amdahl's law, before any cost of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the private cluster on 127.0.0.1 only

import numpy as np  # noqa: E402
import torch  # noqa: E402

import icgt  # noqa: E402
from icgt.study import config as configs  # noqa: E402
from icgt.study.sweep import run_sweep  # noqa: E402
from icgt.study.ray_executor import RayExecutor  # noqa: E402

SHORT = {"num_sequences": 4, "sequence_length": 300, "layers": [2, 15, 29], "energy_window": 30,
         "pca_window": 100, "null_permutations": 100, "bootstrap": 50}


def sweep(model: str, runs: int) -> list[configs.ExperimentConfig]:
    return [configs.preset("grid", model=model, seed=seed, device="cpu", **SHORT) for seed in range(runs)]


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and every process below it: the Ray
    daemons and workers it started. A living process counts its own time and that of its children
    that ended (cutime, cstime), so every process counts once."""
    parents, used = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    tree, grown = {os.getpid()}, True
    while grown:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grown = bool(below)
    return sum(used[pid] for pid in tree) / os.sysconf("SC_CLK_TCK")


def run_local(runs, output: Path) -> tuple[float, float, list[Path]]:
    """(wall seconds, CPU seconds, folders) of the sweep run in this process, one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu, started = tree_cpu_seconds(), time.perf_counter()
        folders = run_sweep(runs, output, progress=False)
        return time.perf_counter() - started, tree_cpu_seconds() - cpu, folders
    finally:
        torch.set_num_threads(threads)


def run_ray(runs, output: Path, workers: int) -> tuple[float, float, float, list[Path]]:
    """(seconds to start the cluster, wall and CPU seconds of the sweep on it, folders); the CPU
    seconds are the driver's, the Ray daemons' and the workers', from the cluster's start-up on."""
    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="WARNING")
    try:
        up = time.perf_counter() - started
        cpu, started = tree_cpu_seconds(), time.perf_counter()
        folders = run_sweep(runs, output, progress=False, executor=RayExecutor(cpus_per_run=1))
        return up, time.perf_counter() - started, tree_cpu_seconds() - cpu, folders
    finally:
        ray.shutdown()


def same_results(folders: list[Path], reference: list[Path]) -> None:
    for folder, other in zip(folders, reference, strict=True):
        with np.load(folder / "results.npz") as ours, np.load(other / "results.npz") as theirs:
            assert sorted(ours.files) == sorted(theirs.files)
            for name in theirs.files:
                np.testing.assert_array_equal(ours[name], theirs[name], err_msg=f"{folder.name}: {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    runs = sweep(args.model, args.runs)
    icgt.bundle_for(args.model, progress=False)  # exported before any timing
    best = {"local": float("inf"), "ray 1 worker": float("inf"), "ray 2 workers": float("inf")}
    cpu_best = dict(best)
    start_up = float("inf")
    timings, reports = [], []
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as scratch:
        for round_ in range(args.rounds):
            base = Path(scratch) / f"round{round_}"
            seconds, cpu, local = run_local(runs, base / "local")
            best["local"], cpu_best["local"] = min(best["local"], seconds), min(cpu_best["local"], cpu)
            for folder in local:
                record = json.loads((folder / "run.json").read_text())
                timings.append(record["timings"])
                reports.append((folder / "report" / "index.html").stat().st_mtime
                               - (folder / "results.npz").stat().st_mtime)
            for workers in (1, 2):
                up, seconds, cpu, folders = run_ray(runs, base / f"ray{workers}", workers)
                same_results(folders, local)
                start_up = min(start_up, up)
                name = f"ray {workers} worker" + ("s" if workers > 1 else "")
                best[name], cpu_best[name] = min(best[name], seconds), min(cpu_best[name], cpu)
            print(f"round {round_ + 1}: done", flush=True)
            shutil.rmtree(base)

    n = args.runs
    print(f"\nsweep: {n} grid runs of {args.model}, {SHORT['num_sequences']} x {SHORT['sequence_length']} words, "
          f"1 torch thread each; best of {args.rounds} rounds")
    print(f"  {'':<14} {'wall':>8} {'a run':>8} {'CPU':>8} {'a run':>8}")
    for name, seconds in best.items():
        print(f"  {name:<14} {seconds:7.1f}s {seconds / n:7.2f}s {cpu_best[name]:7.1f}s {cpu_best[name] / n:7.2f}s")
    print(f"  Ray cluster start-up (ray.init, not counted above): {start_up:.1f} s")
    print(f"ratio 1 worker / 2 workers: {best['ray 1 worker'] / best['ray 2 workers']:.2f}x")
    overhead = (best["ray 1 worker"] - best["local"]) / n
    print(f"overhead per task against a local run, wall: {overhead:+.2f} s "
          f"({overhead / (best['local'] / n):+.1%} of a local run); 1 worker / local: "
          f"{best['ray 1 worker'] / best['local']:.2f}x")
    cpu_overhead = (cpu_best["ray 1 worker"] - cpu_best["local"]) / n
    print(f"overhead per task against a local run, CPU: {cpu_overhead:+.2f} s "
          f"({cpu_overhead / (cpu_best['local'] / n):+.1%} of a local run's CPU time)")

    # Where a local run's time goes: what splitting one run's forward pass over workers could save.
    mean = {key: float(np.mean([t[key] for t in timings])) for key in ("sample_s", "probe_s", "analysis_s", "total_s")}
    report = float(np.mean(reports))
    load = mean["total_s"] - mean["sample_s"] - mean["probe_s"] - mean["analysis_s"]
    whole = mean["total_s"] + report
    share = mean["probe_s"] / whole
    print(f"a local run, mean over {len(timings)}: {whole:.2f} s = model load and set-up {load:.2f} + forward pass "
          f"{mean['probe_s']:.2f} + analysis {mean['analysis_s']:.2f} + report {report:.2f} "
          f"(forward pass {share:.0%})")
    for k in (2, 4):
        bound = 1 / ((1 - share) + share / k)
        print(f"  its forward pass split over {k} workers: at most {bound:.2f}x faster, before each share's "
              f"model load ({load:.2f} s) and task overhead ({cpu_overhead:+.2f} s of CPU)")


if __name__ == "__main__":
    main()
