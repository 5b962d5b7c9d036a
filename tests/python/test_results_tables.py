"""examples/results_tables.py: the tables of docs/results.md from a sweep's run folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from synthetic_run import write_synthetic_run

SCRIPT = Path(__file__).parents[2] / "examples" / "results_tables.py"


def tables(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(folder)], capture_output=True, text=True)


def test_tables_of_a_grid_and_a_days_run(tmp_path):
    grid = write_synthetic_run(tmp_path / "sweep" / "grid-run", "grid")
    write_synthetic_run(tmp_path / "sweep" / "days-run", "days")
    (tmp_path / "sweep" / "unfinished.partial").mkdir()
    result = tables(tmp_path / "sweep")
    assert result.returncode == 0, result.stderr
    for heading in ("Overview", "By depth (late context)", "Over context", "Days of the week (last snapshot)"):
        assert f"### {heading}" in result.stdout
    with np.load(grid / "results.npz") as arrays:
        deep = arrays["layers"] * 3 // 8 == 2  # the synthetic run: 8 blocks, all captured
        z = (arrays["energy"] - arrays["energy_null_mean"]) / arrays["energy_null_sd"]
        late = arrays["energy_positions"] >= 0.9 * arrays["energy_positions"].max()
        deep_late_z = np.nanmean(np.nanmean(z[deep][:, late], axis=0))  # early snapshots are all NaN
    grid_row = next(line for line in result.stdout.splitlines() if line.startswith("| synthetic-grid |"))
    assert f"| {deep_late_z:+.2f} |" in grid_row
    days_rows = [line for line in result.stdout.splitlines() if "PC1-2" in line or "PC3-4" in line]
    assert days_rows and all(line.startswith("| synthetic-days (") for line in days_rows)


def test_a_folder_without_runs_is_an_error(tmp_path):
    result = tables(tmp_path)
    assert result.returncode != 0 and "holds no complete icgt run folder" in result.stderr
