"""examples/compare_sweeps.py: two sweeps' headline numbers side by side, and their spread over seeds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from synthetic_run import write_synthetic_run

from icgt.study.aggregate import aggregate_runs, run_numbers
from icgt.study.run_folder import load_run

SCRIPT = Path(__file__).parents[2] / "examples" / "compare_sweeps.py"


def test_differences_and_the_spread_over_seeds(tmp_path):
    first = write_synthetic_run(tmp_path / "a" / "grid", "grid", seed=0)
    seeded = [write_synthetic_run(tmp_path / "b" / name, "grid", seed=seed)
              for seed, name in enumerate(("grid", "grid-seed1", "grid-seed2"))]
    aggregate_runs(seeded, tmp_path / "b" / "grid-seeds")
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "a"), str(tmp_path / "b")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    a, b = run_numbers(load_run(first)), run_numbers(load_run(seeded[0]))
    row = next(line for line in lines if line.startswith("| grid |"))
    assert f"{a['deep_alignment']:.3f} / {b['deep_alignment']:.3f} ({b['deep_alignment'] - a['deep_alignment']:+.4f})" in row
    spread = next(line for line in lines if "sd over 3 seeds" in line)
    per_seed = [run_numbers(load_run(folder))["accuracy_at_400"] for folder in seeded]
    assert spread.split(" | ")[2] == f"{np.std(per_seed, ddof=1):.4f}"
    assert sum(line.startswith("| grid") for line in lines) == 1  # seed1 and seed2 are in one folder only
