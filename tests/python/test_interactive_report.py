"""The report's interactive view (icgt.report.interactive): its data against the run's arrays, its size on a run
as large as the paper's, and the page itself in a real browser (Debian's chromium, headless, driven by
selenium): each slider moves the drawn points to the run's arrays at that block and context length, hovering
a point shows its word, the 3-D view draws PCs 1-3, and the console stays free of errors.

The browser comes from browser.py: scripts/setup installs chromium, chromium-driver and selenium; where they are
missing these tests fail and say so, and ICGT_SKIP_BROWSER_TESTS=1 skips them instead. Nothing here downloads a
browser.
"""

import copy
import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from icgt import report
from icgt.report import interactive
from icgt.report.interactive import InteractiveView, chosen_snapshots, interactive_view, view_data, view_html
from icgt.report.plots import pc_signs
from icgt.study.run_folder import Run, load_run
from browser import (CHROMEDRIVER, CHROMIUM, SKIP_BROWSER, assert_console_clean, browser,  # noqa: F401 (a fixture)
                     missing_browser, press, wait_for)
from synthetic_run import write_intervention_run, write_synthetic_run

#: Set to 1 to save the screenshot that docs/report.md and docs/usage.md show.
UPDATE_SCREENSHOT = "ICGT_UPDATE_SCREENSHOTS"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "interactive-report.png"
#: Relative tolerance of the drawn coordinates: the page embeds 6 significant digits (EMBEDDED_DIGITS).
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    return write_synthetic_run(tmp_path_factory.mktemp("grid"), "grid")


@pytest.fixture(scope="module")
def report_page(grid_run, tmp_path_factory):
    return report.write_report(grid_run, output_folder=tmp_path_factory.mktemp("report"))


def test_a_machine_without_chromium_is_told_to_run_scripts_setup(tmp_path):
    if os.environ.get(SKIP_BROWSER) != "1":
        assert missing_browser(CHROMIUM, CHROMEDRIVER) is None   # scripts/setup ran here
    problem = missing_browser(tmp_path / "chromium", CHROMEDRIVER)
    assert str(tmp_path / "chromium") in problem and "run scripts/setup" in problem and SKIP_BROWSER in problem


def open_page(driver, path):
    driver.get(path.resolve().as_uri())
    wait_for(driver, "return !!(document.getElementById('icgt-pca').data && "
                     "document.getElementById('icgt-curves').data)")
    driver.get_log("browser")  # start each test with an empty console


def drawn(driver):
    """What the PCA plot draws now: its node trace (type, x, y, z, text) and the curves' cursor position."""
    return driver.execute_script("""
        const nodes = document.getElementById('icgt-pca').data[1];
        const curves = document.getElementById('icgt-curves');
        return {type: nodes.type, x: nodes.x, y: nodes.y, z: nodes.z || null, text: nodes.text,
                energy: curves.data[3].y, cursor: curves.layout.shapes[0].x0,
                points: Array.from(document.querySelectorAll('#icgt-pca .scatterlayer .trace:last-child path.point'))
                             .map(point => point.getAttribute('transform'))};""")


def expected(run, layer, position, pcs):
    """The run's class means at (block, context length) on ``pcs``, with the signs the view gives them."""
    layer_index, all_pcs = run.layer_index(layer), view_data(run)["pcs"]
    snapshot = int(np.flatnonzero(run.arrays["pca_positions"] == position)[0])
    block = run.arrays["pca_projections"][layer_index][:, :, all_pcs]
    signs = pc_signs(block)[snapshot]
    return [block[snapshot, :, all_pcs.index(pc)] * signs[all_pcs.index(pc)] for pc in pcs]


def assert_coordinates(values, expected_values):
    values = np.array([np.nan if value is None else value for value in values], dtype=float)
    np.testing.assert_allclose(values, expected_values, rtol=TOLERANCE, atol=1e-7)
    assert not np.allclose(np.abs(values), 0)


def test_each_slider_moves_the_points_to_the_runs_arrays_at_that_block_and_context(browser, grid_run, report_page):
    run = load_run(grid_run)
    positions, layers = run.arrays["pca_positions"].tolist(), run.layers.tolist()
    open_page(browser, report_page)
    # It opens at the report's block and the last snapshot.
    start = drawn(browser)
    assert start["type"] == "scatter" and start["text"] == run.labels
    x, y = expected(run, run.default_layer(), positions[-1], [0, 1])
    assert_coordinates(start["x"], x)
    assert_coordinates(start["y"], y)
    assert start["cursor"] == positions[-1]
    assert browser.find_element("id", "icgt-layer-value").text == run.block_name(run.default_layer())

    press(browser, "icgt-layer", "ARROW_LEFT", 2)   # two blocks shallower
    layer = layers[layers.index(run.default_layer()) - 2]
    moved = drawn(browser)
    x, y = expected(run, layer, positions[-1], [0, 1])
    assert_coordinates(moved["x"], x)
    assert_coordinates(moved["y"], y)
    assert moved["points"] != start["points"]   # the plot itself changed, not only its data
    np.testing.assert_allclose(np.array(moved["energy"][1:], float),
                               run.arrays["energy"][run.layer_index(layer), 1:], rtol=TOLERANCE)
    assert browser.find_element("id", "icgt-layer-value").text == run.block_name(layer)

    press(browser, "icgt-context", "HOME")           # the first snapshot
    earliest = drawn(browser)
    x, y = expected(run, layer, positions[0], [0, 1])
    assert_coordinates(earliest["x"], x)
    assert_coordinates(earliest["y"], y)
    assert earliest["cursor"] == positions[0] and earliest["points"] != moved["points"]
    assert browser.find_element("id", "icgt-context-value").text == f"{positions[0]} tokens"

    press(browser, "icgt-context", "ARROW_RIGHT")    # the next one
    x, y = expected(run, layer, positions[1], [0, 1])
    assert_coordinates(drawn(browser)["x"], x)
    assert_console_clean(browser)


def test_hovering_a_point_names_its_word(browser, grid_run, report_page):
    from selenium.webdriver.common.action_chains import ActionChains

    run = load_run(grid_run)
    open_page(browser, report_page)
    x, _ = expected(run, run.default_layer(), run.arrays["pca_positions"][-1], [0, 1])
    present = np.flatnonzero(np.isfinite(x))   # plotly draws a path per present node, in node order
    points = browser.find_elements("css selector", "#icgt-pca .scatterlayer .trace:last-child path.point")
    assert len(points) == present.size
    for index in (0, 5):
        ActionChains(browser).move_to_element(points[index]).perform()
        # The label's first line (a tspan of its own) is the word, in bold.
        first_line = "const line = document.querySelector('#icgt-pca .hoverlayer .hovertext text tspan'); " \
                     "return line ? line.textContent : null;"
        word = run.labels[present[index]]
        try:
            wait_for(browser, f"{first_line.replace('return ', 'return (').rstrip(';')}) === {word!r}", timeout=5)
        finally:
            label = browser.find_elements("css selector", "#icgt-pca .hoverlayer .hovertext")
            shown = label[0].text if label else "no label"
        assert shown.startswith(word) and "PC1" in shown, shown
    assert_console_clean(browser)


def test_the_3d_view_draws_pcs_1_to_3_and_follows_the_sliders(browser, grid_run, report_page, tmp_path):
    run = load_run(grid_run)
    positions = run.arrays["pca_positions"].tolist()
    open_page(browser, report_page)
    browser.find_element("id", "icgt-3d").click()
    wait_for(browser, "return document.getElementById('icgt-pca').data[1].type === 'scatter3d'")
    wait_for(browser, "return document.querySelectorAll('#icgt-pca canvas').length > 0")
    shown = drawn(browser)
    for values, expected_values in zip((shown["x"], shown["y"], shown["z"]),
                                       expected(run, run.default_layer(), positions[-1], [0, 1, 2])):
        assert_coordinates(values, expected_values)
    press(browser, "icgt-context", "HOME")
    assert_coordinates(drawn(browser)["z"], expected(run, run.default_layer(), positions[0], [2])[0])
    assert_console_clean(browser)


class References(HTMLParser):
    """The src and href attributes of a page's elements (a script's own text is not parsed as tags)."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attributes):
        self.found += [f"{tag} {name}={value}" for name, value in attributes if name in ("src", "href")]


def outside_references(page):
    """What a page loads from elsewhere: every src and href but the report's own PNGs."""
    parser = References()
    parser.feed(page)
    return [found for found in parser.found if not found.startswith("img src=") or "/" in found]


def test_the_page_needs_no_network_and_the_screenshot_for_the_docs(browser, report_page, tmp_path):
    page = report_page.read_text()
    assert outside_references(page) == []
    open_page(browser, report_page)
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)")
    assert all(not name.startswith(("http:", "https:")) for name in resources), resources
    # The static figures stay beside the view.
    assert 'src="pca.png"' in page and page.index("<h2>Explore</h2>") < page.index("<h2>Figures</h2>")
    # The docs' picture: words shown, the cursor inside the curves (100 tokens).
    browser.find_element("id", "icgt-words").click()
    press(browser, "icgt-context", "ARROW_LEFT")
    wait_for(browser, "return document.getElementById('icgt-pca').data[1].mode === 'markers+text'")
    view = browser.find_element("css selector", ".icgt-view")
    browser.execute_script("arguments[0].scrollIntoView()", view)
    screenshot = tmp_path / "view.png"
    view.screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get(UPDATE_SCREENSHOT) == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        DOCS_SCREENSHOT.write_bytes(screenshot.read_bytes())
    assert_console_clean(browser)


def test_the_view_data_are_the_runs_arrays(grid_run):
    run = load_run(grid_run)
    data = view_data(run)
    assert data["layers"] == run.layers.tolist() and data["positions"] == run.arrays["pca_positions"].tolist()
    projections = np.array(data["projections"], dtype=float)
    signs = np.array(data["signs"])
    raw = run.arrays["pca_projections"][..., data["pcs"]]
    np.testing.assert_allclose(projections, raw, rtol=TOLERANCE, atol=1e-7)
    assert set(np.unique(signs)) <= {-1, 1}
    # The signs keep consecutive snapshots from mirroring: drawn PCs agree with the previous snapshot.
    drawn_points = np.nan_to_num(projections * signs[:, :, None, :])
    agreement = (drawn_points[:, 1:] * drawn_points[:, :-1]).sum(axis=2)
    assert (agreement >= 0).all()
    assert data["words"] == run.labels and len(data["colours"]) == len(run.labels)
    assert data["chance_renormalized"] == pytest.approx(run.chance_accuracy_renormalized(), rel=TOLERANCE)


def paper_sized_run(grid_run, every: int) -> Run:
    """A run shaped like the paper's (18 blocks, 16 sequences of 1400 words) with a snapshot of the PCA, the
    energy and the alignment every ``every`` tokens."""
    small = load_run(grid_run)
    info = copy.deepcopy(small.info)
    info["model"]["num_layers"] = 18
    rng = np.random.default_rng(0)
    positions = np.arange(every, 1400 + every, every)
    layers, nodes, sequences = 18, len(small.labels), 16
    arrays = {
        "layers": np.arange(layers), "pca_positions": positions, "energy_positions": positions,
        "alignment_positions": positions,
        "pca_projections": rng.normal(size=(layers, positions.size, nodes, 4)).astype(np.float32),
        "pca_explained": rng.uniform(size=(layers, positions.size, 4)).astype(np.float32),
        **{name: rng.uniform(size=(layers, positions.size)).astype(np.float32)
           for name in ("energy", "energy_null_mean", "energy_null_sd", "spectral_alignment")},
        "accuracy": rng.uniform(size=(sequences, 1401)).astype(np.float32),
        "accuracy_renormalized": rng.uniform(size=(sequences, 1401)).astype(np.float32),
        "nodes": rng.integers(0, nodes, size=(sequences, 1401)), "scored": np.ones((sequences, 1401), bool),
        "spectral_embedding": small.arrays["spectral_embedding"],
    }
    return Run(folder=small.folder, info=info, arrays=arrays)


def test_a_paper_sized_run_keeps_every_snapshot_that_fits(grid_run):
    run = paper_sized_run(grid_run, every=10)   # 140 snapshots
    data = view_data(run)
    assert data["positions"] == run.arrays["pca_positions"].tolist() and len(data["projections"]) == 18
    assert data["energy_positions"] == run.arrays["energy_positions"].tolist()
    fragment = view_html(run)
    assert len(fragment.encode()) < 10_000_000 and "snapshots, log-spaced" not in fragment


def test_a_run_with_a_snapshot_every_token_keeps_every_block_and_chooses_snapshots(grid_run):
    run = paper_sized_run(grid_run, every=1)    # 1400 snapshots
    data = view_data(run)
    fragment = view_html(run)
    assert len(fragment.encode()) < 9_000_000
    assert data["layers"] == list(range(18)) and len(data["projections"]) == 18
    assert data["num_snapshots"] == 1400 and 100 < len(data["positions"]) < 1400
    assert data["positions"][0] == 1 and data["positions"][-1] == 1400
    assert len(data["positions"]) * 18 * 16 * len(data["pcs"]) <= interactive.MAX_PCA_VALUES + 2 * 18 * 16 * 3
    assert len(data["energy_positions"]) * 4 * 18 <= interactive.MAX_CURVE_VALUES + 2 * 4 * 18
    assert f"{len(data['positions'])} of the 1400 snapshots of the run, log-spaced" in fragment


def test_chosen_snapshots_are_log_spaced_and_keep_both_ends():
    chosen = chosen_snapshots(np.arange(1, 1001), 10)
    assert chosen[0] == 0 and chosen[-1] == 999 and len(chosen) <= 12
    assert np.all(np.diff(np.log(chosen[1:] + 1)) < 1.0)
    assert chosen_snapshots(np.arange(5), 1).tolist() == [0, 4]   # at least both ends


def test_explore_and_a_short_html_repr_for_jupyter(grid_run):
    run = load_run(grid_run)
    view = run.explore()
    assert isinstance(view, InteractiveView) and 'id="icgt-pca"' in view.page
    shown = view._repr_html_()
    assert shown.startswith("<iframe srcdoc=") and "&lt;script" in shown and "<script" not in shown
    summary = run._repr_html_()
    assert len(summary) < 5000
    for part in ("synthetic-grid", "toy-8-layers", "grid", "follows the graph", "8 captured blocks"):
        assert part in summary, summary
    assert "<table" in summary and "pca_projections" not in summary
    assert repr(run).startswith("Run(") and len(repr(run)) < 300


def test_an_intervention_run_has_no_view_and_says_so(tmp_path):
    run = load_run(write_intervention_run(tmp_path / "intervention"))
    with pytest.raises(ValueError, match=r"mechanism run \(intervention\) without an interactive view: graph runs "
                                         r"\(.*\) and heads runs \(.*\) have one; its figures are the report's PNGs"):
        interactive_view(run)
    with pytest.raises(ValueError, match="interactive view"):
        run.explore()
    assert "intervention" in run._repr_html_()
    page = report.write_report(run.folder, output_folder=tmp_path / "report").read_text()
    assert "<h2>Explore</h2>" not in page
