"""icgt.study.run_folder, icgt.report.plots and icgt.report on synthetic run folders with planted answers."""

import json
import re
import struct
from pathlib import Path

import matplotlib.image
import networkx as nx
import numpy as np
import pytest
from matplotlib.figure import Figure

from icgt import report
from icgt.report import html, plots
from icgt.study.curves import energy_minimum, steepest_rise
from icgt.study.run_folder import Run, load_run
from icgt.report.verdict import judge
from synthetic_run import (ACCURACY_RISE_AT, ENERGY_MINIMUM_AT, FINAL_ACCURACY, NUM_LAYERS, run_info, results,
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
        "alignment.png", "energy_accuracy.png", "index.html", "pca.png", "spectrum.png", "summary.json"]
    page = index.read_text()
    for name in ["pca", "energy_accuracy", "alignment", "spectrum"]:
        width, height = png_size(index.parent / f"{name}.png")
        assert width > 500 and height > 300
        assert matplotlib.image.imread(index.parent / f"{name}.png").shape[:2] == (height, width)
        assert f'src="{name}.png"' in page
    summary = json.loads((index.parent / "summary.json").read_text())
    assert summary == report.summarize(run_folder)
    for shown in [f"{summary['final_accuracy']:.3g}", f"{summary['energy_minimum']:.3g}",
                  f"<td>{ENERGY_MINIMUM_AT}</td>", f"<td>{summary['accuracy_rise_position']}</td>",
                  "synthetic-grid", "toy-8-layers", '<meta name="viewport" content="width=device-width']:
        assert shown in page
    # The page opens with the verdict, in words, before the numbers.
    assert page.index("<h2>Verdict</h2>") < page.index("<h2>Key numbers</h2>") < page.index("<h2>Figures</h2>")
    assert f"<p>{summary['verdict'][0]}</p>" in page and summary["verdict"][0].startswith("toy-8-layers follows")


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
    assert summary["lag_doublings"] > 0 and summary["lag_ci95"][0] > 0  # planted: energy two doublings first
    assert summary["blocks_below_null"] == [5, 6, 7]
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


def test_format_summary_prints_the_verdict_then_every_number_with_its_label(days_run):
    summary = report.summarize(days_run)
    text = report.format_summary(summary).splitlines()
    assert text[0] == "synthetic-days: toy-8-layers · days graph · walk"
    assert text[1].startswith("  toy-8-layers follows the graph: ")
    numbers = text[text.index("  key numbers:") + 1:]
    words = " ".join(" ".join(text[1:text.index("  key numbers:")]).split())
    assert words == " ".join([*summary["verdict"], summary["spectrum"]])  # the spectrum's sentence last
    assert "  context length of the minimum energy: 40" in numbers
    assert "  PC pair that best carries the in-context ring: PC3-4" in numbers
    assert len(numbers) == len(html.SUMMARY_LABELS)
    assert all(len(line) <= 100 for line in text[1:text.index("  key numbers:")])


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


def test_a_curve_lowest_at_its_first_snapshot_has_no_minimum():
    positions = np.arange(10, 110, 10)
    rising = np.linspace(0.2, 0.6, 10)
    assert energy_minimum(positions, rising) is None
    assert energy_minimum(positions, np.r_[np.nan, np.nan, rising[2:]]) is None  # first finite snapshot
    assert energy_minimum(positions[:1], rising[:1]) is None
    dip = np.r_[0.5, 0.3, 0.2, 0.25, 0.1 + rising[4:]]
    assert energy_minimum(positions, dip) == (30, 0.2)


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
    assert sorted(figures) == ["alignment", "energy_accuracy", "pca", "spectrum"]
    assert all(isinstance(figure, Figure) for figure in figures.values())
    assert pyplot.get_fignums() == open_before
    assert "class means at block 7 of 8" in figures["pca"].get_suptitle()


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
    with pytest.raises(ValueError, match="icgt_run_format 1; this icgt reads format 3"):
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
    monkeypatch.setattr(html, "report_figures", lambda run, layer=None: {**figures, "alignment": FailingFigure()})
    with pytest.raises(OSError, match="disk full"):
        report.write_report(run_folder)
    after = {path.name: path.read_bytes() for path in index.parent.iterdir()}
    assert after.keys() == before.keys()
    assert after["alignment.png"] == before["alignment.png"]
    assert after["index.html"] == before["index.html"]


def test_the_page_names_the_machine_and_the_dtype_with_its_reason(tmp_path):
    page = report.write_report(write_synthetic_run(tmp_path / "run", "grid")).read_text()
    assert "<td>Synthetic CPU (AVX2), 2 threads, 2 cores</td>" in page
    assert "<td>float32 (auto: CPU without native bfloat16 (AVX2); asked: auto)</td>" in page


def test_html_escapes_what_the_run_says(tmp_path):
    info = run_info("grid")
    info["name"] = "<script>alert(1)</script>"
    page = report.write_report(write_run(tmp_path, info, results(info))).read_text()
    assert "<script>alert" not in page   # the page's own scripts (the interactive view) are there
    assert "&lt;script&gt;" in page


# The verdict, on synthetic runs with planted answers (tests/python/synthetic_run.py).

@pytest.fixture(scope="module")
def null_grid_run(tmp_path_factory):
    return write_synthetic_run(tmp_path_factory.mktemp("null-grid"), "grid", effect=False)


def edited_run(folder, graph="grid", effect=True, info_changes=None, **array_changes):
    """A synthetic run with some arrays replaced (functions of the planted arrays) and run.json edited."""
    info = run_info(graph, effect)
    for section, values in (info_changes or {}).items():
        info[section].update(values)
    arrays = results(info, effect=effect)
    for name, change in array_changes.items():
        arrays[name] = change(arrays)
    return load_run(write_run(folder, info, arrays))


def test_the_verdict_finds_the_planted_effect(grid_run):
    verdict = judge(load_run(grid_run))
    assert (verdict.follows, verdict.shape) == ("yes", "yes")
    # Planted: renormalised skill reaches 0.5 at t = ACCURACY_RISE_AT; only block 7 ends above 0.7
    # alignment (0.9 * t / (t + 50)), which it passes at t = 175; onsets are read in half-doubling bins.
    assert ACCURACY_RISE_AT / 2 ** 0.5 <= verdict.accuracy_onset <= ACCURACY_RISE_AT * 2 ** 0.5
    assert verdict.shaped_blocks == [7]
    assert 175 / 2 ** 0.5 <= verdict.shape_onset <= 175 * 2 ** 0.5
    following, shape, timing = verdict.sentences
    assert following.startswith("toy-8-layers follows the graph: at the end of the context it puts 93% of its "
                                "probability over the node words on valid next nodes (uniform guessing: 20%)")
    assert shape.startswith("Its class means take the graph's shape in block 7 of 8, in the deep third: "
                            "PCs 1-2 align with z2, z3 at 0.80 late in the context")
    assert "below the relabelling null" in shape
    # Planted: the trailing-window energy falls at 15 tokens, accuracy rises at 60: two doublings later.
    assert timing.startswith("The energy of the class means in block 6 of 8 falls at about 15 tokens")
    assert "the energy falls first, as the paper finds." in timing
    assert "The paper's statistic, from the energy's minimum (40 tokens) to accuracy's steepest rise (60)" in timing


def test_the_verdict_says_plainly_when_there_is_no_effect(null_grid_run):
    verdict = judge(load_run(null_grid_run))
    assert (verdict.follows, verdict.shape) == ("no", "no")
    assert verdict.shaped_blocks == verdict.trace_blocks == [] and verdict.shape_onset is None
    assert abs(verdict.skill) < 0.05
    assert verdict.sentences[0].startswith("toy-8-layers does not follow the graph: ")
    assert verdict.sentences[1].startswith("Its class means do not take the graph's shape: ")
    assert "random planes: about 0.13" in verdict.sentences[1]
    assert len(verdict.sentences) == 2  # no timing sentence without an effect to time
    summary = report.summarize(null_grid_run)
    assert (summary["follows_graph"], summary["graph_shape"]) == ("no", "no")


def test_the_verdict_names_the_model_by_its_variant(tmp_path):
    run = edited_run(tmp_path, effect=False, info_changes={
        "config": {"model": "smollm2-135m"},
        "model": {"name": "smollm2-135m", "dtype": "torch.float32", "source": "/x/SmolLM2-135M-Instruct.Q4_1.gguf"}})
    assert judge(run).sentences[0].startswith("SmolLM2-135M does not follow the graph: ")
    assert run.title.startswith("SmolLM2-135M-Instruct, Q4_1 GGUF, run in float32 · grid graph")
    assert plots.pca_figure(run).get_suptitle().startswith("SmolLM2-135M-Instruct, Q4_1 GGUF, run in float32")
    other = edited_run(tmp_path / "other", info_changes={"config": {"model": "/models/Llama-3.2-1B"},
                                                         "model": {"dtype": "torch.bfloat16"}})
    assert other.model_description == "Llama-3.2-1B, run in bfloat16"
    assert judge(other).sentences[0].startswith("Llama-3.2-1B follows the graph")


def test_following_only_partly(tmp_path):
    chance = load_run(write_synthetic_run(tmp_path / "plain", "grid")).chance_accuracy_renormalized()
    middling = edited_run(tmp_path / "middling", accuracy_renormalized=lambda a: np.where(
        a["scored"], chance + 0.3 * (1 - chance), np.nan))
    verdict = judge(middling)
    assert verdict.follows == "partly" and verdict.skill == pytest.approx(0.3)
    assert verdict.sentences[0].startswith("toy-8-layers follows the graph only partly: ")
    # Neighbours ranked first among the node words, but hardly any probability on node words at all.
    ranked = edited_run(tmp_path / "ranked", accuracy=lambda a: np.where(a["scored"], 0.05, np.nan))
    assert judge(ranked).follows == "partly"
    assert "hardly predicts node words" in judge(ranked).sentences[0]


def test_a_weak_trace_of_the_graph(tmp_path):
    def alignment(a):
        values = np.full(a["spectral_alignment"].shape, 0.1)
        values[5] = 0.5
        return values

    run = edited_run(tmp_path, effect=False, spectral_alignment=alignment)
    verdict = judge(run)
    assert (verdict.shape, verdict.trace_blocks) == ("weak", [5])
    assert verdict.sentences[1].startswith("Its class means carry only a weak trace of the graph: late in the "
                                           "context PCs 1-2 align with z2, z3 at most at 0.50 (block 5 of 8")
    low_energy = edited_run(tmp_path / "energy", effect=False, energy=lambda a: np.where(
        np.arange(NUM_LAYERS)[:, None] == 2, a["energy_null_mean"] - 4 * a["energy_null_sd"], a["energy"]))
    assert (judge(low_energy).shape, judge(low_energy).trace_blocks) == ("weak", [2])
    assert "their energy is below the relabelling null in block 2 of 8, in the shallow third" in \
        judge(low_energy).sentences[1]


def test_a_shape_that_comes_and_goes(tmp_path):
    def alignment(a):
        values = np.full(a["spectral_alignment"].shape, 0.1)
        positions = a["alignment_positions"]
        values[6, (positions >= 60) & (positions <= 150)] = 0.85
        return values

    verdict = judge(edited_run(tmp_path, effect=False, spectral_alignment=alignment))
    assert verdict.shape == "transient" and verdict.shaped_blocks == []
    assert verdict.sentences[1].startswith("Its class means take the graph's shape only for a while: in block 6 "
                                           "of 8 PCs 1-2 align with z2, z3 at 0.85 around ")


def test_shape_in_several_thirds_is_named_by_block_ranges(tmp_path):
    def alignment(a):
        values = np.full(a["spectral_alignment"].shape, 0.1)
        values[[1, 2, 3, 6, 7]] = 0.9
        return values

    verdict = judge(edited_run(tmp_path, spectral_alignment=alignment))
    assert verdict.shaped_blocks == [1, 2, 3, 6, 7]
    assert "take the graph's shape in blocks 1–3, 6–7 of 8, in the shallow and middle and deep thirds" not in \
        verdict.sentences[1]
    assert "take the graph's shape in blocks 1–3, 6–7 of 8, in every third of the depth" in verdict.sentences[1]


def test_days_verdict_places_both_circles(days_run, tmp_path):
    verdict = judge(load_run(days_run))
    assert verdict.sentences[-1] == ("Days of the week (block 6 of 8, 400 tokens): the weekly circle is in PCs 1-2 "
                                     "(alignment 0.90) and the in-context ring is in PCs 3-4 (alignment 0.89).")
    null_days = judge(load_run(write_synthetic_run(tmp_path, "days", effect=False)))
    assert (null_days.follows, null_days.shape) == ("no", "no")
    assert "no pair of PCs carries the in-context ring" in null_days.sentences[-1]


# Figures: colours, words, accuracy bins, one block numbering.

def test_nodes_are_coloured_by_their_place_in_the_grid(grid_run):
    run = load_run(grid_run)
    colours = plots.node_colours(run)
    assert len({tuple(colour) for colour in colours.round(3)}) == 16
    graph = nx.Graph(run.edges.tolist())
    distance = dict(nx.all_pairs_shortest_path_length(graph))
    near = [np.linalg.norm(colours[a] - colours[b]) for a, b in run.edges]
    far = [np.linalg.norm(colours[a] - colours[b]) for a in range(16) for b in range(16) if distance[a][b] >= 4]
    assert max(near) < min(far)


def test_ring_nodes_follow_a_colour_wheel_in_ring_order(tmp_path):
    run = edited_run(tmp_path, "days", info_changes={"graph": {"kind": "ring"}})
    order = plots.cycle_order(run.edges, 7)
    hues = np.array([__import__("colorsys").rgb_to_hsv(*plots.node_colours(run)[node])[0] for node in order])
    assert np.all(np.diff(hues) > 0) and hues[-1] - hues[0] == pytest.approx(6 / 7, abs=0.01)


def test_other_graphs_are_coloured_by_their_spectral_coordinates(tmp_path):
    run = edited_run(tmp_path, info_changes={"graph": {"kind": "custom"}})
    colours, layout = plots.node_colours(run), run.arrays["spectral_embedding"][:, :2]
    assert len({tuple(colour) for colour in colours.round(3)}) == 16
    pairs = np.triu_indices(16, 1)
    colour_distance = np.linalg.norm(colours[:, None] - colours[None], axis=-1)[pairs]
    layout_distance = np.linalg.norm(layout[:, None] - layout[None], axis=-1)[pairs]
    assert np.corrcoef(colour_distance, layout_distance)[0, 1] > 0.8  # close in (z2, z3): close in colour


def test_words_in_pca_panels_do_not_overlap_and_stay_inside(grid_run, null_grid_run):
    for folder in (grid_run, null_grid_run):
        figure = plots.pca_figure(load_run(folder))
        renderer = figure.canvas.get_renderer()
        figure.canvas.draw()
        for ax in [ax for ax in figure.axes if ax.get_visible()]:
            boxes = [text.get_window_extent(renderer) for text in ax.texts if text.get_visible()]
            frame = ax.get_window_extent(renderer)
            assert len(boxes) >= 8, "most words should find a place"
            for i, box in enumerate(boxes):
                assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
                assert not any(box.overlaps(other) for other in boxes[i + 1:])
            assert all(text.get_fontsize() >= 9 for text in ax.texts)
        assert figure.get_size_inches()[0] <= plots.PCA_COLUMNS * plots.PCA_PANEL_INCHES


def test_accuracy_is_drawn_in_bins_of_context(grid_run):
    run = load_run(grid_run)
    accuracy_ax = plots.energy_accuracy_figure(run).axes[2]
    positions, mean, sd = run.binned_accuracy()
    binned = [line for line in accuracy_ax.get_lines() if line.get_label() == "full vocabulary"][0]
    assert binned.get_xdata().tolist() == positions.tolist() and len(positions) < 25
    assert np.allclose(binned.get_ydata(), mean)
    # Each bin averages each sequence first: the band is the sd of those averages, far below the
    # per-position scatter (planted noise ±0.02 around the curve).
    assert sd[5:].max() < 0.01


def test_no_minimum_is_marked_where_a_curve_is_lowest_at_its_start(tmp_path):
    def rising(a):
        energy = a["energy"].copy()
        energy[:, 1:] = 0.2 + 0.001 * np.arange(energy.shape[1] - 1)
        return energy

    run = edited_run(tmp_path, energy=rising)
    figure = plots.energy_accuracy_figure(run)
    markers = [line for line in figure.axes[0].get_lines() if line.get_marker() == "v"]
    assert markers == []
    summary = report.summarize(run)
    assert summary["energy_minimum_position"] is None


def test_one_block_numbering_everywhere(grid_run, days_run, tmp_path):
    """icgt's 0-based blocks, "block 6 of 8", in figures, page and terminal; never "layer N" nor 1-based."""
    texts = []
    for folder in (grid_run, days_run):
        for figure in report.report_figures(folder).values():
            texts.append(figure.get_suptitle())
            for ax in figure.axes:
                texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
                legend = ax.get_legend()
                texts += [text.get_text() for text in legend.get_texts()] if legend else []
        texts.append(report.write_report(folder, output_folder=tmp_path / Path(folder).name).read_text())
        texts.append(report.format_summary(report.summarize(folder)))
    joined = "\n".join(texts)
    assert "block 6 of 8" in joined and "shallow (blocks 0–2)" in joined
    assert not re.search(r"\blayers? \d", joined), re.search(r".{40}\blayers? \d.{40}", joined)
    assert "block 7 of 8" not in report.report_figures(grid_run)["pca"].get_suptitle()  # default block 6, 0-based


def test_a_shape_that_dips_and_returns_gives_both_spans(tmp_path):
    def alignment(a):
        values = np.full(a["spectral_alignment"].shape, 0.1)
        positions = a["alignment_positions"]
        values[7] = np.where((positions <= 80) | (positions >= 300), 0.9, 0.3)
        return values

    verdict = judge(edited_run(tmp_path, spectral_alignment=alignment))
    assert verdict.shaped_blocks == [7]
    assert 300 / 2 ** 0.5 <= verdict.shape_onset <= 300 * 2 ** 0.5
    assert re.search(rf"from about {verdict.shape_onset} tokens on \(and earlier, at \d+–\d+ tokens\)\.",
                     verdict.sentences[1])
    assert "(and earlier" not in judge(load_run(write_synthetic_run(tmp_path / "plain", "grid"))).sentences[1]


def test_the_pcs_named_are_those_the_figure_draws(tmp_path):
    run = edited_run(tmp_path, info_changes={"config": {"pca_components": [1, 2]}})  # as for rings
    assert "PCs 2-3 align with z2, z3 at 0.80" in judge(run).sentences[1]
    assert plots.alignment_figure(run).axes[0].get_ylabel() == "alignment of PCs 2-3 with z2, z3"
    assert plots.pca_figure(run).axes[0].get_xlabel().startswith("PC2 ")


@pytest.mark.parametrize("used", [True, False])
def test_an_intervention_run_states_whether_the_geometry_is_used(used, tmp_path):
    from synthetic_run import write_intervention_run

    folder = write_intervention_run(tmp_path / "intervention", used=used)
    summary = report.summarize(folder)
    first, verdict = summary["sentences"]
    assert first.startswith("Moving the last token of each walk to a random target node's place")
    assert verdict.startswith("The geometry is used" if used else "The move does not shift predictions")
    page = report.write_report(folder)
    assert (page.parent / "intervention.png").read_bytes()[:8] == PNG_SIGNATURE
