"""The example notebook runs top to bottom (on a short setting) and shows its figures inline."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[2] / "examples" / "notebooks" / "grid.ipynb"
SHORT = ('settings = {"preset": "grid", "model": "smollm2-135m", "num_sequences": 2, "sequence_length": 120, '
         '"energy_window": 10, "pca_window": 50, "null_permutations": 10, "layers": [5, 20, 25]}\n'
         'output = "runs"')


def test_grid_notebook_runs_and_shows_figures(smollm2_bundle, real_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ICGT_CACHE_DIR", str(real_cache))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1
    parameters[0].source = SHORT
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    images = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
              if "image/png" in output.get("data", {})]
    assert len(images) >= 4  # three report figures and the custom energy plot
    assert (tmp_path / "runs" / "smollm2-135m-grid" / "results.npz").is_file()
    text = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "final accuracy" in text
