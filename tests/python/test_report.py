"""icgt.run_folder, icgt.plots and icgt.report on synthetic run folders with planted answers."""

import json
import struct
from pathlib import Path

import matplotlib.image
import networkx as nx
import numpy as np
import pytest
from matplotlib.figure import Figure

from icgt import plots, report
from icgt.run_folder import Run, energy_minimum, load_run, steepest_rise
from synthetic_run import (ACCURACY_RISE_AT, ENERGY_MINIMUM_AT, FINAL_ACCURACY, run_info, results,
                           write_run, write_synthetic_run)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    return write_synthetic_run(tmp_path_factory.mktemp("grid"), "grid")


@pytest.fixture(scope="module")
def days_run(tmp_path_factory):
    return write_synthetic_run(tmp_path_factory.mktemp("days"), "days")


def png_size(path):
    """(width, height) from the PNG header, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_writes_valid_images_and_an_index_that_shows_them(tmp_path):
    run_folder = write_synthetic_run(tmp_path / "run", "grid")
    index = report.write_report(run_folder)
    assert index == run_folder / "report" / "index.html"
    assert sorted(path.name for path in index.parent.iterdir()) == [
        "alignment.png", "energy_accuracy.png", "index.html", "pca.png", "summary.json"]
    page = index.read_text()
    for name in ["pca", "energy_accuracy", "alignment"]:
        width, height = png_size(index.parent / f"{name}.png")
        assert width > 500 and height > 300
        assert matplotlib.image.imread(index.parent / f"{name}.png").shape[:2] == (height, width)
        assert f'src="{name}.png"' in page
    summary = json.loads((index.parent / "summary.json").read_text())
    assert summary == report.summarize(run_folder)
    for shown in [f"{summary['final_accuracy']:.3g}", f"{summary['energy_minimum']:.3g}",
                  f"<td>{ENERGY_MINIMUM_AT}</td>", f"<td>{summary['accuracy_rise_position']}</td>",
                  "synthetic-grid", "toy-8-layers"]:
        assert shown in page


def test_the_days_figure_is_made_for_days_runs_only(grid_run, days_run, tmp_path):
    days_index = report.write_report(days_run, output_folder=tmp_path / "days")
    grid_index = report.write_report(grid_run, output_folder=tmp_path / "grid")
    assert png_size(days_index.parent / "days.png")[0] > 500
    assert 'src="days.png"' in days_index.read_text()
    assert not (grid_index.parent / "days.png").exists()
    assert "days.png" not in grid_index.read_text()
    with pytest.raises(ValueError, match="days-of-week run"):
        plots.days_figure(load_run(grid_run))


def test_summary_finds_the_planted_numbers(grid_run):
    summary = report.summarize(grid_run)
    assert summary["layer"] == 6
    assert summary["energy_minimum_position"] == ENERGY_MINIMUM_AT
    assert summary["energy_minimum"] == pytest.approx(0.5 - 0.03 * 6)
    assert summary["null_energy_at_minimum"] == pytest.approx(0.9)
    assert summary["energy_minimum_position_by_group"] == {"shallow": 40, "middle": 40, "deep": 40}
    assert ACCURACY_RISE_AT / 1.3 < summary["accuracy_rise_position"] < ACCURACY_RISE_AT * 1.3
    assert summary["energy_minimum_before_accuracy_rise"] is True
    assert summary["final_accuracy"] == pytest.approx(FINAL_ACCURACY, abs=0.02)
    assert summary["final_spectral_alignment"] == pytest.approx(0.9 * 7 / 8 * 400 / 450)
    assert summary["final_distance_correlation"] == pytest.approx(0.8 * 7 / 8 * 400 / 450)

    run = load_run(grid_run)
    graph = nx.Graph(run.info["graph"]["edges"])
    scored_nodes = run.arrays["nodes"][run.arrays["scored"]]
    chance = np.mean([graph.degree[node] for node in scored_nodes]) / 16
    assert summary["chance_accuracy_renormalized"] == pytest.approx(chance)
    assert report.summarize(grid_run, layer=0)["energy_minimum"] == pytest.approx(0.5)


def test_days_summary_names_the_pcs_of_each_circle(days_run):
    summary = report.summarize(days_run)
    assert summary["weekly_circle_pcs"] == "PC1-2"
    assert summary["in_context_ring_pcs"] == "PC3-4"
    assert summary["final_weekly_alignment_by_pc_pair"] == pytest.approx([0.9, 0.1])


def test_format_summary_prints_every_number_with_its_label(days_run):
    summary = report.summarize(days_run)
    text = report.format_summary(summary).splitlines()
    assert text[0] == "synthetic-days: toy-8-layers · days graph · walk"
    assert "  context length of the minimum energy: 40" in text
    assert "  PC pair that best carries the in-context ring: PC3-4" in text
    assert len(text) == 1 + len(report.SUMMARY_LABELS)


def test_steepest_rise_finds_planted_rises():
    positions = np.arange(1, 1401)
    for centre in [20, 100, 500]:
        position, slope = steepest_rise(positions, 0.1 + 0.8 / (1 + (centre / positions) ** 2))
        assert centre / 1.3 < position < centre * 1.3
        assert slope > 0
    flat = steepest_rise(positions, np.full(positions.shape, 0.3))
    assert flat[1] == pytest.approx(0)
    assert steepest_rise(positions[:2], np.array([0.1, 0.2])) is None


def test_energy_minimum_skips_missing_snapshots():
    assert energy_minimum(np.array([10, 20, 30]), np.array([np.nan, 0.5, 0.4])) == (30, 0.4)
    assert energy_minimum(np.array([10, 20]), np.array([np.nan, np.nan])) is None


def test_default_layer_is_the_captured_block_nearest_80_percent_depth():
    def run_with(num_layers, layers):
        return Run(folder=None, info={"model": {"num_layers": num_layers}}, arrays={"layers": np.array(layers)})

    assert run_with(32, range(32)).default_layer() == 26  # the paper's block 26 of 32
    assert run_with(30, [0, 10, 20, 29]).default_layer() == 20
    groups = run_with(30, [0, 10, 20, 29]).layer_groups()
    assert {group: indices.tolist() for group, indices in groups.items()} == {
        "shallow": [0], "middle": [1], "deep": [2, 3]}
    assert list(run_with(30, [25, 29]).layer_groups()) == ["deep"]


def test_figures_are_made_without_pyplot(grid_run):
    import matplotlib.pyplot as pyplot

    open_before = pyplot.get_fignums()
    figures = report.report_figures(grid_run, layer=7)
    assert sorted(figures) == ["alignment", "energy_accuracy", "pca"]
    assert all(isinstance(figure, Figure) for figure in figures.values())
    assert pyplot.get_fignums() == open_before
    assert "layer 7" in figures["pca"].get_suptitle()


def test_pca_panels_keep_their_orientation(grid_run):
    run = load_run(grid_run)
    raw = run.arrays["pca_projections"][run.layer_index(), 1:, :, :2]
    assert (np.einsum("pnc,pnc->pc", raw[1:], raw[:-1]) < 0).any(), "the synthetic run should flip some signs"
    figure = plots.pca_figure(run, positions=[50, 100, 400])
    panels = np.array([ax.collections[1].get_offsets() for ax in figure.axes[:4]])  # 3 snapshots + layout
    assert (np.einsum("pnc,pnc->pc", panels[1:], panels[:-1]) > 0).all()
    assert figure.axes[0].get_xlabel() == "PC1 (40% of variance)"
    with pytest.raises(ValueError, match="no PCA snapshot at positions \\[60\\]"):
        plots.pca_figure(run, positions=[60])


def test_absent_nodes_are_reported_not_drawn(grid_run):
    figure = plots.pca_figure(load_run(grid_run), positions=[25])
    assert "(2 nodes absent)" in figure.axes[0].get_title()
    assert len(figure.axes[0].collections[1].get_offsets()) == 14


def test_folder_without_run_json_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not an icgt run: it has no run.json"):
        load_run(tmp_path)


def test_run_without_results_npz(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps(run_info("grid")))
    with pytest.raises(FileNotFoundError, match="no results.npz"):
        report.write_report(tmp_path)
    assert not (tmp_path / "report").exists()


def test_wrong_format_version(tmp_path):
    info = run_info("grid")
    info["icgt_run_format"] = 1
    with pytest.raises(ValueError, match="icgt_run_format 1; this icgt reads format 2"):
        load_run(write_run(tmp_path, info, results(run_info("grid"))))


def test_missing_arrays_are_named_with_what_was_expected(tmp_path):
    info = run_info("grid")
    arrays = results(info)
    del arrays["energy"], arrays["spectral_alignment"]
    with pytest.raises(ValueError, match=r"lacks the arrays energy, spectral_alignment; expected .*energy \[L, S\]"):
        load_run(write_run(tmp_path, info, arrays))


def test_days_arrays_are_required_for_days_runs(tmp_path):
    info = run_info("days")
    arrays = results(info)
    del arrays["ring_alignment"]
    with pytest.raises(ValueError, match="lacks the arrays ring_alignment"):
        load_run(write_run(tmp_path / "arrays", info, arrays))
    del info["weekly_order"]
    with pytest.raises(ValueError, match="lacks weekly_order"):
        load_run(write_run(tmp_path / "order", info, results(run_info("days"))))


def test_shapes_that_disagree(tmp_path):
    info = run_info("grid")
    arrays = results(info)
    arrays["energy"] = arrays["energy"][:, :-1]
    expected = r"energy has shape \(8, 39\), expected \[L, S\] with S = 40 as in energy_positions"
    with pytest.raises(ValueError, match=expected):
        load_run(write_run(tmp_path / "energy", info, arrays))
    arrays = results(info)
    arrays["pca_projections"] = arrays["pca_projections"][:, :, :15]
    with pytest.raises(ValueError, match="n = 16 as in graph.num_nodes"):
        load_run(write_run(tmp_path / "nodes", info, arrays))


def test_index_arrays_must_be_integers_and_masks_boolean(tmp_path):
    info = run_info("grid")
    arrays = results(info)
    arrays["scored"] = arrays["scored"].astype(np.uint8)
    with pytest.raises(ValueError, match="scored has dtype uint8, expected bool"):
        load_run(write_run(tmp_path / "scored", info, arrays))
    arrays = results(info)
    arrays["pca_positions"] = arrays["pca_positions"].astype(float)
    with pytest.raises(ValueError, match="pca_positions has dtype float64, expected integers"):
        load_run(write_run(tmp_path / "positions", info, arrays))


def test_missing_run_json_entries_and_invalid_json(tmp_path):
    info = run_info("grid")
    del info["config"]["pca_components"], info["graph"]["edges"]
    with pytest.raises(ValueError, match="lacks config.pca_components, graph.edges"):
        load_run(write_run(tmp_path / "entries", info, results(run_info("grid"))))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_run(tmp_path / "broken")


def test_a_layer_that_was_not_captured(grid_run):
    with pytest.raises(ValueError, match=r"layer 12 was not captured .* captured layers: \[0, 1, 2"):
        report.summarize(grid_run, layer=12)


def test_a_failed_write_leaves_the_previous_report_and_no_temporary_files(tmp_path, monkeypatch):
    run_folder = write_synthetic_run(tmp_path / "run", "grid")
    index = report.write_report(run_folder)
    before = {path.name: path.read_bytes() for path in index.parent.iterdir()}

    class FailingFigure:
        def savefig(self, path, format):
            Path(path).write_bytes(b"half a png")
            raise OSError("disk full")

    figures = report.report_figures(run_folder)
    monkeypatch.setattr(report, "report_figures", lambda run, layer=None: {**figures, "alignment": FailingFigure()})
    with pytest.raises(OSError, match="disk full"):
        report.write_report(run_folder)
    after = {path.name: path.read_bytes() for path in index.parent.iterdir()}
    assert after.keys() == before.keys()
    assert after["alignment.png"] == before["alignment.png"]
    assert after["index.html"] == before["index.html"]


def test_html_escapes_what_the_run_says(tmp_path):
    info = run_info("grid")
    info["name"] = "<script>alert(1)</script>"
    page = report.write_report(write_run(tmp_path, info, results(info))).read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
