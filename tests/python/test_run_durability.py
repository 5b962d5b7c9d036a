"""Run folders under stress: SIGKILL at any point, two processes on one run, Ctrl-C inside a forward
pass. Each run is a real `icgt run` process on SmolLM2-135M with a short setting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from icgt.study.run_folder import load_run

SETTINGS = ["--preset", "grid", "--set", "num_sequences=2", "--set", "sequence_length=100", "--set", "layers=[2,20]",
            "--set", "pca_window=40", "--set", "bootstrap=20", "--quiet"]


def icgt_run(output: Path, *extra: str, cache: Path) -> subprocess.Popen:
    environment = {**os.environ, "ICGT_CACHE_DIR": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "icgt", "run", *SETTINGS, *extra, "--output", str(output)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def finished(process: subprocess.Popen) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=600)
    return process.returncode, stderr


def assert_no_incomplete_run_looks_complete(output: Path) -> None:
    """Every folder without the .partial suffix is a whole run that loads."""
    for folder in output.iterdir():
        if folder.is_dir() and not folder.name.endswith(".partial"):
            load_run(folder)


def assert_same_results(rerun: Path, reference: Path) -> None:
    """The two results.npz hold the same arrays: integers equal, floats within 1% of each array's
    largest value. Two processes running the same config on one machine do not always agree to the
    last bit: MKL's float32 kernels promise that only in their conditional-reproducibility mode, and
    30 blocks amplify a last-bit difference (seen in CI and here: PCA projections 1e-3 apart, the
    accuracy 4e-4, while the energy was bit for bit the same). A rerun mixed with a killed run's
    leftovers, or one of another config, draws other walks and differs in whole arrays."""
    with np.load(rerun) as got, np.load(reference) as expected:
        assert sorted(got.files) == sorted(expected.files)
        for name in expected.files:
            assert got[name].dtype == expected[name].dtype and got[name].shape == expected[name].shape, name
            if expected[name].dtype.kind == "f":
                scale = float(np.nanmax(np.abs(expected[name]), initial=0.0))
                np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-2 * scale + 1e-12,
                                           err_msg=name)
            else:
                np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.fixture(scope="module")
def reference(smollm2_bundle, real_cache, tmp_path_factory):
    """An uninterrupted run, and how long it took."""
    output = tmp_path_factory.mktemp("reference")
    started = time.monotonic()
    status, stderr = finished(icgt_run(output, cache=real_cache))
    assert status == 0, stderr
    return output / "smollm2-135m-grid", time.monotonic() - started


def test_sigkill_at_any_point_leaves_no_run_that_looks_complete(reference, real_cache, tmp_path):
    folder, duration = reference
    # Into the start-up, the forward pass, the analysis, the report and the final rename (the report and
    # the writing take the last third of a run this short).
    for fraction in (0.15, 0.4, 0.7, 0.85, 0.97):
        process = icgt_run(tmp_path, cache=real_cache)
        time.sleep(fraction * duration)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert_no_incomplete_run_looks_complete(tmp_path)
    status, stderr = finished(icgt_run(tmp_path, cache=real_cache))
    assert status == 0, stderr
    assert not (tmp_path / "smollm2-135m-grid.partial").exists()
    # The rerun's results are those of the run that was never interrupted.
    assert_same_results(tmp_path / "smollm2-135m-grid" / "results.npz", folder / "results.npz")


def test_two_processes_on_one_run_of_one_config_share_it(reference, real_cache, tmp_path):
    folder, _ = reference
    first, second = icgt_run(tmp_path, cache=real_cache), icgt_run(tmp_path, cache=real_cache)
    assert finished(first)[0] == 0 and finished(second)[0] == 0
    assert_same_results(tmp_path / "smollm2-135m-grid" / "results.npz", folder / "results.npz")


def test_two_processes_on_one_run_of_two_configs_never_mix(real_cache, tmp_path, smollm2_bundle):
    # Two settings that share a run folder (the folder's name carries the seed and the control, not these).
    counts = {20: icgt_run(tmp_path, "--set", "null_permutations=20", cache=real_cache),
              30: icgt_run(tmp_path, "--set", "null_permutations=30", cache=real_cache)}
    outcomes = {count: finished(process) for count, process in counts.items()}
    winners = [count for count, (status, _) in outcomes.items() if status == 0]
    assert len(winners) == 1, outcomes
    loser_status, loser_error = outcomes[50 - winners[0]]
    assert loser_status == 1 and "holds a complete run of another config (null_permutations" in loser_error
    run = json.loads((tmp_path / "smollm2-135m-grid" / "run.json").read_text())
    assert run["config"]["null_permutations"] == winners[0]
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["smollm2-135m-grid"]


def test_ctrl_c_stops_a_forward_pass_between_blocks(smollm2_bundle):
    """A run of one 1400-token walk (one pass of the batch: the interruption must come between blocks)
    is interrupted a quarter of the way through; it must stop long before a full run's time."""
    script = textwrap.dedent(f"""
        import os, signal, threading, time, torch, icgt
        probe = icgt.ActivationProbe({str(smollm2_bundle)!r}, device="cpu")
        ids = torch.randint(0, 1000, (1, 1400))
        started = time.monotonic(); probe.run(ids, layers=[29]); full = time.monotonic() - started
        threading.Timer(full / 4, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        try:
            probe.run(ids, layers=[29])
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted", (time.monotonic() - started) / full)
    """)
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    words = output.stdout.split()
    assert words[0] == "interrupted", output.stdout + output.stderr
    assert float(words[1]) < 0.6  # a quarter of the run and one block, not the whole pass
