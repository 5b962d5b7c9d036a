"""The example notebook runs top to bottom (on a short setting), shows its figures inline, the verdict, the
interactive view (run.explore()), the run as an xarray Dataset and the sweep as a pandas table, a hook and a head
ablation, and no progress bars."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[2] / "examples" / "notebooks" / "grid.ipynb"
SHORT = ('settings = {"preset": "grid", "model": "smollm2-135m", "num_sequences": 2, "sequence_length": 120, '
         '"energy_window": 10, "pca_window": 50, "null_permutations": 10, "layers": [5, 20, 25]}\n'
         'output = "runs"\n'
         'inside_walks, inside_length = 2, 100')


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
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    text = "".join(output.get("text", "") for output in outputs)
    assert "final accuracy" in text
    assert "SmolLM2-135M does not follow the graph" in text or "SmolLM2-135M follows the graph" in text
    # The interactive view inline: an iframe holding the page, with its plot's div and plotly inside.
    html = [output["data"]["text/html"] for output in outputs if "text/html" in output.get("data", {})]
    views = [shown for shown in html if shown.startswith("<iframe srcdoc=")]
    assert len(views) == 1 and 'id=&quot;icgt-pca&quot;' in views[0] and "Plotly" in views[0]
    # The run as an xarray Dataset with named dimensions, one block and context length selected by value.
    plain = [output["data"]["text/plain"] for output in outputs if "text/plain" in output.get("data", {})]
    dataset = next(shown for shown in plain if shown.startswith("<xarray.Dataset>"))
    for name in ("layer", "energy_position", "pca_position", "node", "pc"):
        assert f"{name}:" in dataset.split("Coordinates:")[0], name   # among the dimensions
    assert any(shown.startswith("<xarray.DataArray 'pca_projections' (node: 16, pc: ") for shown in plain)
    # The sweep as a tidy table, and a pivot of it by context length and block.
    assert "columns: run, model, preset, graph, control, seed, layer, context_length, metric, value" in text
    pivot = next(shown for shown in plain if shown.startswith("layer") and "context_length" in shown)
    assert all(str(block) in pivot.splitlines()[0] for block in (5, 20, 25))
    # The probe: a hook that only reads changes nothing; a head ablation runs.
    accuracy = re.search(r"accuracy: (\d\.\d+) with the reading hook \(the same as without: (\d\.\d+)\)", text)
    assert accuracy and accuracy.group(1) == accuracy.group(2)
    assert "accuracy over words 50-100: " in text  # the short walks of the parameters cell
    assert re.search(r"strongest previous-token heads \(block, head: score\): \d+\.\d+: 0\.\d\d", text)
    assert "accuracy with 4 previous-token heads zeroed: " in text and "accuracy with 4 random heads zeroed: " in text
    # No progress bars: nothing on stderr, no carriage returns or tqdm rates in any output.
    assert not [output for output in outputs if output.get("name") == "stderr"], "a cell wrote to stderr"
    assert not any(mark in text for mark in ("\r", "it/s", "%|")), "progress bars in the cell outputs"
