"""Sweeps on a Ray cluster: a local cluster of 2 CPUs on this machine (listening on 127.0.0.1 only,
stopped when these tests end) runs short sweeps of the toy model (tests/python/toy_bundle.py), whose
results must equal, array for array and byte for byte, those of the same sweep run locally; also with
a worker killed mid-run, a run that fails, a sweep resumed, and through the command line against the
cluster's address; and the errors of a bad address, of Ray missing and of bad settings."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

# Before ray is first imported: Ray then takes 127.0.0.1 as this node's address, so that the cluster
# listens on the loopback interface only (icgt.study.executors.ray_cluster.import_ray does the same).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason="the ray extra is not installed (scripts/setup installs it)")

import icgt  # noqa: E402
from icgt.study import config as configs  # noqa: E402
from icgt.study.executors import LocalExecutor, RayExecutor, SweepError, as_executor, executor_from_settings  # noqa: E402
from icgt.study.run_store import OtherConfigRunError  # noqa: E402
from icgt.study.sweep import run_sweep  # noqa: E402
from toy_bundle import save_bundle, toy_model  # noqa: E402

#: The toy model's single-token words " w0" ... " w15": the grid's 16 nodes, the ring's 10.
WORDS = [f"w{i}" for i in range(16)]
#: Short runs: the toy model reads at most 64 positions; each run takes a few seconds, most of it its report.
SHORT = {"num_sequences": 2, "sequence_length": 60, "layers": "all", "energy_window": 10, "pca_window": 30,
         "null_permutations": 20, "bootstrap": 10}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy bundle's path, and a cache folder of this module's own (the driver's and, through the
    environment the cluster starts with, the workers')."""
    folder = tmp_path_factory.mktemp("ray")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ICGT_CACHE_DIR", str(folder / "cache"))
        yield save_bundle(toy_model(), folder / "toy.pt")


def sweep_configs(toy, presets=("grid", "ring"), seeds=(0, 1), **changes):
    """grid and ring (toy-grid, toy-grid-seed1, toy-ring, toy-ring-seed1), short."""
    return [configs.preset(preset, model=str(toy), words=WORDS[:16 if preset == "grid" else 10], seed=seed,
                           **{**SHORT, **changes}) for preset in presets for seed in seeds]


def short_flags(toy) -> list[str]:
    """The command line's flags for the grid runs of sweep_configs."""
    values = {**SHORT, "model": str(toy), "words": WORDS}
    return [flag for key, value in values.items() for flag in ("--set", f"{key}={json.dumps(value).replace(' ', '')}")]


@pytest.fixture(scope="module")
def local(toy, tmp_path_factory):
    """The sweep run locally, as icgt run does without --executor: name -> folder."""
    folders = run_sweep(sweep_configs(toy), tmp_path_factory.mktemp("local"), progress=False)
    return {folder.name: folder for folder in folders}


@pytest.fixture(scope="module")
def cluster(toy):
    """A local Ray cluster of 2 CPUs on 127.0.0.1, shut down after the module's tests (also when one
    fails); its address, for other processes to join."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def assert_same_run(folder: Path, reference: Path) -> None:
    """Every array of results.npz equal, the file's bytes equal, and run.json equal but for its timings and
    hardware."""
    with np.load(folder / "results.npz") as ours, np.load(reference / "results.npz") as theirs:
        assert sorted(ours.files) == sorted(theirs.files)
        for name in theirs.files:
            np.testing.assert_array_equal(ours[name], theirs[name], err_msg=f"{folder.name}: {name}")
    assert (folder / "results.npz").read_bytes() == (reference / "results.npz").read_bytes()
    ours, theirs = (json.loads((f / "run.json").read_text()) for f in (folder, reference))
    for record in (ours, theirs):  # how long it took, and on what: a Ray task holds fewer threads
        record.pop("timings"), record.pop("hardware")
    assert ours == theirs
    assert (folder / "report" / "index.html").is_file()


def visible(output: Path) -> list[str]:
    """Every name in an output folder, hidden ones too: a run leaves no lock file behind, failed or not."""
    return sorted(path.name for path in output.iterdir())


def test_a_sweep_on_ray_equals_the_same_sweep_run_locally(cluster, local, toy, tmp_path):
    executor = RayExecutor()
    completed = []
    folders = run_sweep(sweep_configs(toy), tmp_path, progress=False, executor=executor, on_run=completed.append)
    assert [folder.name for folder in folders] == list(local)  # in the order of the configs
    assert sorted(completed) == sorted(folders)  # each announced as it completed
    assert visible(tmp_path) == sorted(local)  # no partial folder left
    for folder in folders:
        assert_same_run(folder, local[folder.name])
    assert executor.attempts == dict.fromkeys(local, 1) and executor.running == set()


def test_a_worker_killed_mid_run_is_retried_and_the_sweep_completes(cluster, local, toy, tmp_path):
    executor = RayExecutor(max_retries=2)
    outcome = {}
    sweep = threading.Thread(target=lambda: outcome.update(
        folders=run_sweep(sweep_configs(toy, presets=("grid",), seeds=(0,)), tmp_path, progress=False,
                          executor=executor)))
    sweep.start()
    # Once the grid run has started (its task told the driver), the worker process running it (Ray
    # names it after the task) is killed a moment later: in the forward pass or the analysis.
    deadline = time.monotonic() + 120
    while "toy-grid" not in executor.running and time.monotonic() < deadline:
        time.sleep(0.02)
    victims = [pid for pid in os.listdir("/proc") if _command_line(pid) == "ray::icgt-run:toy-grid"]
    assert len(victims) == 1, "the grid run's task is not running"
    time.sleep(0.2)
    os.kill(int(victims[0]), signal.SIGKILL)
    sweep.join(timeout=300)
    assert not sweep.is_alive() and "folders" in outcome
    assert executor.attempts["toy-grid"] == 2  # killed once, then run again by Ray
    assert not (tmp_path / "toy-grid.partial").exists()
    for folder in outcome["folders"]:
        assert_same_run(folder, local[folder.name])


def _command_line(pid: str) -> str:
    if not pid.isdigit():
        return ""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def test_a_failing_run_is_reported_while_the_others_complete(cluster, local, toy, tmp_path, capsys):
    # Block 7 does not exist in the toy model's 3: the ring run fails in its worker, the grid run completes.
    grid, ring = sweep_configs(toy, seeds=(0,))
    ring.layers = [0, 7]  # past validation, as a config that a worker finds wrong would be
    shipped = Path(os.environ["ICGT_CACHE_DIR"]) / "shipped"
    shutil.rmtree(shipped, ignore_errors=True)
    with pytest.raises(SweepError) as raised:
        run_sweep([grid, ring], tmp_path, progress=True, executor=RayExecutor(ship_bundles=True))
    error = raised.value
    assert list(error.failures) == ["toy-ring"]
    assert f"layers [7] do not exist in {toy}, which has blocks 0..2" in error.failures["toy-ring"]
    assert "1 of 2 runs failed (toy-ring: ConfigError: " in str(error)
    printed = capsys.readouterr().err
    assert "icgt: run toy-ring failed: ConfigError: " in printed  # as it failed
    assert "runs on Ray: 100%" in printed and "2/2" in printed and "failed 1" in printed  # the sweep's bar
    assert error.folders[1] is None and error.folders[0] == tmp_path / "toy-grid"
    assert visible(tmp_path) == ["toy-grid"]
    assert_same_run(error.folders[0], local["toy-grid"])
    # The bundle went through Ray's object store into the node's cache, once, and that copy ran.
    copies = list(shipped.iterdir())
    assert [copy.name.split("-", 1)[1] for copy in copies] == ["toy.pt"]
    assert copies[0].read_bytes() == toy.read_bytes()


def test_a_rerun_keeps_complete_runs_and_resumes_an_interrupted_sweep(cluster, local, toy, tmp_path):
    for name, folder in local.items():
        shutil.copytree(folder, tmp_path / name)
    # As an interrupted sweep leaves it: one run missing, its partial folder half-written.
    shutil.rmtree(tmp_path / "toy-ring-seed1")
    (tmp_path / "toy-ring-seed1.partial").mkdir()
    (tmp_path / "toy-ring-seed1.partial" / "results.npz").write_bytes(b"half")
    kept = {name: (tmp_path / name / "results.npz").stat().st_mtime_ns for name in local if name != "toy-ring-seed1"}
    executor = RayExecutor()
    run_sweep(sweep_configs(toy), tmp_path, progress=False, executor=executor)
    assert executor.attempts == {"toy-ring-seed1": 1}  # only the missing run ran
    assert {name: (tmp_path / name / "results.npz").stat().st_mtime_ns for name in kept} == kept
    assert visible(tmp_path) == sorted(local)
    assert_same_run(tmp_path / "toy-ring-seed1", local["toy-ring-seed1"])
    # A run whose config changed is never taken for the old one: refused before any task starts.
    executor = RayExecutor()
    with pytest.raises(OtherConfigRunError, match="null_permutations 20 there, 30 here"):
        run_sweep(sweep_configs(toy, null_permutations=30), tmp_path, progress=False, executor=executor)
    assert executor.attempts == {}


def test_the_command_line_runs_seeds_on_the_cluster_and_sums_them_up(cluster, local, toy, tmp_path):
    # The first seed is already there (kept), the second runs on the cluster, driven by another process.
    shutil.copytree(local["toy-grid"], tmp_path / "toy-grid")
    result = subprocess.run(
        [sys.executable, "-m", "icgt", "run", "--preset", "grid", "--seeds", "2", *short_flags(toy), "--quiet",
         "--executor", "ray", "--address", cluster, "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": _import_path()})
    assert result.returncode == 0, result.stderr
    for name in ("toy-grid", "toy-grid-seed1"):
        assert_same_run(tmp_path / name, local[name])
        assert f"  figures: {tmp_path / name / 'report' / 'index.html'}" in result.stdout
    assert json.loads((tmp_path / "toy-grid-seeds" / "aggregate.json").read_text())["seeds"] == [0, 1]
    assert "toy-grid-seeds: the 2 seeds summed up in" in result.stdout
    assert (tmp_path / "toy-grid-seeds" / "seeds.png").is_file()


def _import_path() -> str:
    """The PYTHONPATH under which a fresh interpreter imports the icgt under test, and toy_bundle."""
    return os.pathsep.join([str(Path(icgt.__file__).parents[1]), str(Path(__file__).parent),
                            os.environ.get("PYTHONPATH", "")])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def icgt_run_line(*argv: str, environment: dict | None = None, code: str = "") -> subprocess.CompletedProcess:
    """``icgt run`` with ``argv`` in a fresh interpreter (after ``code``)."""
    script = f"{code}\nimport sys\nfrom icgt.cli import main\nsys.exit(main({['run', *argv]!r}))"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": _import_path(), **(environment or {})})


def test_an_address_where_no_cluster_answers_is_one_line_at_once(toy, tmp_path):
    port = _free_port()
    started = time.monotonic()
    result = icgt_run_line("--preset", "grid", *short_flags(toy), "--executor", "ray", "--address", f"127.0.0.1:{port}",
                           "--output", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith(f"icgt: error: no Ray cluster answers at 127.0.0.1:{port} (Connection refused)")
    assert result.stderr.count("\n") == 1 and time.monotonic() - started < 60
    assert visible(tmp_path) == []


def test_a_malformed_address_or_executor_is_refused_before_anything_runs(toy, tmp_path):
    with pytest.raises(configs.ConfigError, match=r"address '10.0.0.1:port' is not 'auto', 'host:port' or 'ray://"):
        executor_from_settings({"executor": "ray", "address": "10.0.0.1:port"})
    with pytest.raises(ValueError, match=r"executor 'dask' is unknown; expected one of \['local', 'ray'\] or an executor"):
        run_sweep(sweep_configs(toy, presets=("grid",), seeds=(0,)), tmp_path, progress=False, executor="dask")
    assert visible(tmp_path) == []
    assert as_executor("ray") == RayExecutor() and as_executor(RayExecutor(cpus_per_run=2)).cpus_per_run == 2
    assert as_executor("local") == LocalExecutor()


def test_without_ray_the_error_names_the_extra(toy, tmp_path):
    result = icgt_run_line("--preset", "grid", *short_flags(toy), "--output", str(tmp_path),
                           environment={"ICGT_EXECUTOR": "ray"},
                           code="import sys; sys.modules['ray'] = None  # as if it were not installed")
    assert result.returncode == 1
    assert result.stderr.startswith("icgt: error: running a sweep on Ray (--executor ray) needs ray, which is not "
                                    "installed: pip install 'icgt[ray]' (from a checkout of icgt: pip install "
                                    "--no-build-isolation '.[ray]'")
    assert result.stderr.count("\n") == 1


def test_the_executor_comes_from_flags_then_the_environment_then_the_config_file(tmp_path, monkeypatch):
    import argparse

    from icgt.cli import _executor, add_run_command

    parser = argparse.ArgumentParser(prog="icgt")
    add_run_command(parser.add_subparsers())
    toml = tmp_path / "sweep.toml"
    toml.write_text('preset = "ring"\n[sweep]\nexecutor = "ray"\naddress = "10.0.0.1:6379"\ncpus_per_run = 2\n')
    monkeypatch.delenv("ICGT_EXECUTOR", raising=False)
    monkeypatch.delenv("ICGT_RAY_ADDRESS", raising=False)
    from_file = _executor(parser.parse_args(["run", "--config", str(toml)]))
    assert (type(from_file), from_file.address, from_file.cpus_per_run) == (RayExecutor, "10.0.0.1:6379", 2)
    assert configs.load_toml(toml).preset == "ring"  # the [sweep] table is no part of the experiment
    monkeypatch.setenv("ICGT_RAY_ADDRESS", "auto")
    assert _executor(parser.parse_args(["run", "--config", str(toml)])).address == "auto"
    flagged = _executor(parser.parse_args(["run", "--config", str(toml), "--address", "ray://head:10001",
                                                 "--cpus-per-run", "0.5"]))
    assert (type(flagged), flagged.address, flagged.cpus_per_run) == (RayExecutor, "ray://head:10001", 0.5)
    assert _executor(parser.parse_args(["run", "--config", str(toml), "--executor", "local"])) == LocalExecutor()
    assert _executor(parser.parse_args(["run"])) == LocalExecutor()


def test_sweep_setting_errors_say_what_is_wrong(capsys, tmp_path):
    from icgt.cli import main

    assert main(["run", "--preset", "grid", "--max-retries", "2", "--output", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "icgt: error: --max-retries: only for sweeps on Ray; add --executor ray\n"
    toml = tmp_path / "sweep.toml"
    toml.write_text('preset = "ring"\n[sweep]\nexecutor = "dask"\nretries = 1\n')
    assert main(["run", "--config", str(toml), "--output", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        "icgt: error: invalid experiment config: [sweep]: unknown key 'retries' (did you mean 'max_retries'?); "
        "[sweep]: executor 'dask' is unknown; expected one of ['local', 'ray']\n")


def test_the_errors_of_a_run_reach_the_driver_whole():
    """A worker's exception is pickled to the driver: icgt's own keep what they carry."""
    import pickle

    from icgt.models.tokens import SplitWordsError

    error = pickle.loads(pickle.dumps(configs.ConfigError(["layers [50] do not exist", "seed is bad"])))
    assert error.problems == ["layers [50] do not exist", "seed is bad"]
    assert str(error) == "invalid experiment config: layers [50] do not exist; seed is bad"
    assert pickle.loads(pickle.dumps(SplitWordsError({"pear": [" pe", "ar"]}))).splits == {"pear": [" pe", "ar"]}
