"""The interactive figures of heads runs (icgt.report.interactive_heads) and of seed groups
(icgt.report.interactive_seeds): their data against the runs' arrays, computed here independently; their size on
runs as large as the paper's; and the pages in a real browser (browser.py): each slider and choice moves what is
drawn to the runs' arrays at that setting, and the console stays free of errors.
"""

import copy
import json

import numpy as np
import pytest
from scipy import stats

import icgt
from icgt import cli, report
from icgt.report.interactive_heads import HEADS_VIEW_HEIGHT, heads_view_data, heads_view_html, top_heads
from icgt.report.interactive_page import plotly_javascript
from icgt.report.interactive_seeds import seed_signs, seeds_view, seeds_view_data, seeds_view_html
from icgt.report.plots import pc_signs
from icgt.study.run_folder import Run, load_run
from browser import assert_console_clean, browser, press, wait_for  # noqa: F401 (browser: a fixture)
from synthetic_run import write_heads_run, write_intervention_run, write_synthetic_run

#: Relative tolerance of what is drawn: the pages embed 6 significant digits (EMBEDDED_DIGITS); and the absolute
#: one: the random draws' spread comes at 6 decimals (icgt.study.intervals.spread).
TOLERANCE = 1e-5
DECIMALS = 1e-6


@pytest.fixture(scope="module")
def heads_run(tmp_path_factory):
    return write_heads_run(tmp_path_factory.mktemp("heads"))


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds")
    return [write_synthetic_run(folder / f"synthetic-grid-seed{seed}", "grid", seed=seed) for seed in range(3)]


def as_floats(values):
    return np.array([np.nan if value is None else value for value in values], dtype=float)


def assert_drawn(values, expected):
    np.testing.assert_allclose(as_floats(values), expected, rtol=TOLERANCE, atol=DECIMALS)


def context_means(curve):
    """The heads view's bins, recomputed: about 30 bins of equal width in log context length over positions
    1 .. T-1, each the mean of its finite values, drawn at the geometric mean of its edges."""
    edges = np.unique(np.round(np.geomspace(1, curve.size - 1, 30)).astype(int))
    means = [np.nanmean(curve[low:high]) if np.isfinite(curve[low:high]).any() else np.nan
             for low, high in zip(edges[:-1], edges[1:])]
    return np.sqrt(edges[:-1] * edges[1:]), np.array(means)


def late(curve):
    """Mean over the last tenth of the context."""
    positions = np.arange(curve.size)
    return np.nanmean(curve[positions >= 0.9 * positions.max()])


# The heads view


def test_the_heads_view_data_are_the_runs_arrays(heads_run):
    run = load_run(heads_run)
    arrays = run.arrays
    data = heads_view_data(run)
    assert data["counts"] == arrays["head_counts"].tolist() and data["kinds"] == ["mean", "zero"]
    assert data["bos_variants"] == ["the BOS spared", "the BOS included"] and data["draws"] == 5
    centres, clean = context_means(arrays["head_clean_accuracy"])
    assert_drawn(data["context"], centres)
    assert_drawn(data["accuracy"]["full"]["clean"], clean)
    for a, v, c, k in np.ndindex(arrays["head_accuracy"].shape[:4]):
        for form, suffix in (("full", ""), ("renormalized", "_renormalized")):
            curve = arrays[f"head_accuracy{suffix}"][a, v, c, k]
            assert_drawn(data["accuracy"][form]["top"][a][v][c][k], context_means(curve)[1])
            assert data["late"][form]["top"][a][v][c][k] == pytest.approx(late(curve), rel=TOLERANCE)
        assert data["alignment"]["top"][a][v][c][k] == pytest.approx(arrays["head_alignment"][a, v, c, k],
                                                                     rel=TOLERANCE)
    # Random heads: the mean and the 2.5-97.5 percentiles of the draws, per bin and late.
    draws = np.array([context_means(curve)[1] for curve in arrays["head_random_accuracy"][1, :, 0]])
    random_ = data["accuracy"]["full"]["random"]
    assert_drawn(random_["mean"][1][0], draws.mean(axis=0))
    assert_drawn(random_["low"][1][0], np.percentile(draws, 2.5, axis=0))
    assert_drawn(random_["high"][1][0], np.percentile(draws, 97.5, axis=0))
    late_draws = [late(curve) for curve in arrays["head_random_accuracy"][0, :, 0]]
    assert data["late"]["full"]["random"]["high"][0][0] == pytest.approx(np.percentile(late_draws, 97.5), abs=DECIMALS)
    # The ablated heads are the top sets of icgt.study.mechanism.heads: the highest scores first.
    for name in ("previous_token", "induction"):
        scores = arrays[f"head_{name}"]
        expected = sorted(range(scores.size), key=lambda flat: -scores.flat[flat])[:6]
        assert data["top_heads"][name] == expected == top_heads(scores, 6)


def test_a_heads_run_explores_its_figure(heads_run):
    view = load_run(heads_run).explore()
    assert 'id="icgt-heads-k"' in view.page and view.height == HEADS_VIEW_HEIGHT
    assert view._repr_html_().startswith("<iframe srcdoc=")


def test_only_heads_runs_have_the_heads_view(tmp_path, seed_runs):
    with pytest.raises(ValueError, match=r"\(intervention\) is not a heads run; the heads view shows the heads"):
        heads_view_data(load_run(write_intervention_run(tmp_path / "intervention")))
    with pytest.raises(ValueError, match=r"\(graph\) is not a heads run"):
        heads_view_html(load_run(seed_runs[0]))


def heads_drawn(driver):
    """What the heads view draws now: the curves' traces, the sizes plot's cursor and the heads marked."""
    return driver.execute_script("""
        const curves = document.getElementById('icgt-heads-curves');
        const map = document.getElementById('icgt-heads-map').data;
        return {curves: curves.data.map(trace => ({y: trace.y, visible: trace.visible, name: trace.name})),
                title: curves.layout.title.text,
                line: curves.querySelector('.scatterlayer .trace:nth-child(3) path.js-line').getAttribute('d'),
                cursor: document.getElementById('icgt-heads-sizes').layout.shapes[0].x0,
                late: document.getElementById('icgt-heads-sizes').data.map(trace => trace.y),
                marked: [map[2], map[3]].map(trace => ({x: trace.x, y: trace.y}))};""")


def assert_heads_setting(shown, run, kind, variant, count_index, form="full"):
    """The curves, late numbers and marked heads of the view are the run's at that setting."""
    arrays, suffix = run.arrays, "" if form == "full" else "_renormalized"
    k = int(arrays["head_counts"][count_index])
    assert_drawn(shown["curves"][0]["y"], context_means(arrays[f"head_clean_accuracy{suffix}"])[1])
    for c, name in enumerate(("previous-token", "induction")):
        curve = arrays[f"head_accuracy{suffix}"][kind, variant, c, count_index]
        assert_drawn(shown["curves"][1 + c]["y"], context_means(curve)[1])
        assert shown["curves"][1 + c]["name"] == f"top {k} {name} heads"
        assert_drawn(shown["late"][c], [late(curve) for curve in arrays[f"head_accuracy{suffix}"][kind, variant, c]])
        assert_drawn(shown["late"][2 + c], arrays["head_alignment"][kind, variant, c])
        blocks, heads = np.unravel_index(np.argsort(-arrays[f"head_{('previous_token', 'induction')[c]}"],
                                                    axis=None)[:k], arrays["head_previous_token"].shape)
        assert shown["marked"][c] == {"x": blocks.tolist(), "y": heads.tolist()}
    assert shown["cursor"] == k
    drawn_random = kind == 0 and k in arrays["head_random_counts"].tolist()
    assert [trace["visible"] for trace in shown["curves"][3:]] == [drawn_random] * 3
    if drawn_random:
        at_k = arrays["head_random_counts"].tolist().index(k)
        curves = arrays[f"head_random_accuracy{suffix}"][variant, :, at_k]
        draws = np.array([context_means(curve)[1] for curve in curves])
        assert_drawn(shown["curves"][5]["y"], draws.mean(axis=0))
    assert ("no random draws here" in shown["title"]) != drawn_random


def test_the_heads_view_follows_k_the_kind_the_bos_and_the_form(browser, heads_run, tmp_path):
    run = load_run(heads_run)
    page = report.write_report(heads_run, output_folder=tmp_path / "report")   # the report page holds it
    assert "<h2>Explore</h2>" in page.read_text() and 'src="head_ablations.png"' in page.read_text()
    browser.get(page.resolve().as_uri())
    wait_for(browser, "return !!(document.getElementById('icgt-heads-map').data)")
    browser.get_log("browser")
    # It opens where the report reads the top sets against random heads: k = 2 of 32 (5%), mean, the BOS spared.
    start = heads_drawn(browser)
    assert_heads_setting(start, run, kind=0, variant=0, count_index=1)
    assert browser.find_element("id", "icgt-heads-k-value").text == "2 of 32 heads (6.3%)"

    press(browser, "icgt-heads-k", "ARROW_RIGHT")   # k = 4: no random heads drawn there
    more = heads_drawn(browser)
    assert_heads_setting(more, run, kind=0, variant=0, count_index=2)
    assert more["line"] != start["line"]           # the drawn line itself moved, not only its data
    press(browser, "icgt-heads-k", "END")           # k = 6
    assert_heads_setting(heads_drawn(browser), run, kind=0, variant=0, count_index=3)

    browser.find_element("id", "icgt-heads-kind-1").click()   # zero-ablation
    browser.find_element("id", "icgt-heads-bos-1").click()    # the BOS ablated too
    assert_heads_setting(heads_drawn(browser), run, kind=1, variant=1, count_index=3)
    browser.find_element("id", "icgt-heads-renormalized").click()
    press(browser, "icgt-heads-k", "HOME")                    # k = 1
    assert_heads_setting(heads_drawn(browser), run, kind=1, variant=1, count_index=0, form="renormalized")
    browser.find_element("id", "icgt-heads-kind-0").click()
    press(browser, "icgt-heads-k", "ARROW_RIGHT")             # back to k = 2: the random heads again
    assert_heads_setting(heads_drawn(browser), run, kind=0, variant=1, count_index=1, form="renormalized")
    assert_console_clean(browser)


def paper_sized_heads_run(heads_run):
    """A heads run shaped like Qwen2.5-Coder-1.5B's (28 blocks of 12 heads, k = 1, 2, 3, 8, 17, 34, 67, two
    ablation kinds, both BOS variants, 20 draws at k = 17, 1001 positions)."""
    small = load_run(heads_run)
    rng = np.random.default_rng(0)
    counts, kinds, variants, draws, length = [1, 2, 3, 8, 17, 34, 67], 2, 2, 20, 1001
    arrays = {**small.arrays, "head_previous_token": rng.uniform(size=(28, 12)),
              "head_induction": rng.uniform(size=(28, 12)), "head_counts": np.array(counts),
              "head_random_counts": np.array([17]), "head_bos_included": np.array([False, True]),
              "head_clean_accuracy": rng.uniform(size=length),
              "head_clean_accuracy_renormalized": rng.uniform(size=length)}
    for suffix in ("", "_renormalized"):
        arrays[f"head_accuracy{suffix}"] = rng.uniform(size=(kinds, variants, 2, len(counts), length))
        arrays[f"head_random_accuracy{suffix}"] = rng.uniform(size=(variants, draws, 1, length))
    arrays["head_alignment"] = rng.uniform(size=(kinds, variants, 2, len(counts)))
    arrays["head_random_alignment"] = rng.uniform(size=(variants, draws, 1))
    return Run(folder=small.folder, info=small.info, arrays=arrays)


def test_a_paper_sized_heads_run_embeds_a_few_tens_of_kilobytes(heads_run):
    run = paper_sized_heads_run(heads_run)
    embedded = len(json.dumps(heads_view_data(run), separators=(",", ":")))
    fragment = len(heads_view_html(run).encode())
    plotly = len(plotly_javascript().encode())
    assert embedded < 100_000 and fragment - plotly < 130_000
    print(f"heads view, Qwen2.5-Coder-1.5B's shape: {embedded / 1e3:.0f} KB of numbers, page fragment "
          f"{fragment / 1e6:.2f} MB with plotly.js")


# The seeds view


def test_seed_signs_turn_a_mirrored_seed_back():
    rng = np.random.default_rng(1)
    first = rng.normal(size=(4, 16, 2))                      # snapshots, nodes, PCs
    mirrored = first * [1.0, -1.0]                           # the same layout, PC2 mirrored
    mirrored[2] *= -1                                        # and one snapshot mirrored again on both PCs
    signs = seed_signs(np.stack([first, mirrored]))
    drawn = np.stack([first, mirrored]) * signs[:, :, None, :]
    np.testing.assert_allclose(drawn[1], drawn[0])
    assert (signs[0] == pc_signs(first)).all()


def test_the_seeds_view_data_are_the_runs_arrays(seed_runs):
    runs = [load_run(folder) for folder in seed_runs]
    data = seeds_view_data(runs)
    assert data["seeds"] == [0, 1, 2] and data["runs"] == [run.name for run in runs]
    assert data["positions"] == runs[0].arrays["pca_positions"].tolist()
    projections = np.array(data["projections"], dtype=float)          # [seed, layer, snapshot, node, pc]
    raw = np.stack([run.arrays["pca_projections"][..., [0, 1]] for run in runs])
    np.testing.assert_allclose(projections, raw, rtol=TOLERANCE, atol=1e-7)
    for name in ("spectral_alignment", "energy_scale_invariant"):
        values = np.stack([run.arrays[name] for run in runs])
        np.testing.assert_allclose(np.array(data[name], dtype=float), values, rtol=TOLERANCE)
        finite = np.isfinite(values).all(axis=0)
        mean = values.mean(axis=0)
        half = stats.t.ppf(0.975, 2) * values.std(axis=0, ddof=1) / np.sqrt(3)
        np.testing.assert_allclose(np.array(data[f"{name}_mean"], dtype=float)[finite], mean[finite], rtol=TOLERANCE)
        np.testing.assert_allclose(np.array(data[f"{name}_half"], dtype=float)[finite], half[finite], rtol=1e-4)
    accuracy = np.array([run.binned_accuracy()[1] for run in runs])
    np.testing.assert_allclose(np.array(data["accuracy"], dtype=float), accuracy, rtol=TOLERANCE)


def test_the_seeds_view_refuses_runs_that_are_not_one_setting_over_seeds(seed_runs, tmp_path, heads_run):
    runs = [load_run(folder) for folder in seed_runs]
    with pytest.raises(ValueError, match=r"the seeds \[0, 0\] repeat"):
        seeds_view_data([runs[0], runs[0]])
    days = load_run(write_synthetic_run(tmp_path / "days", "days", seed=1))
    with pytest.raises(ValueError, match=r"differs from synthetic-grid in \['graph', 'preset'\], not only in the seed"):
        seeds_view_data([runs[0], days])
    with pytest.raises(ValueError, match="no runs given"):
        seeds_view([])
    heads = load_run(heads_run)
    with pytest.raises(ValueError, match="the seeds view shows graph runs, and these are mechanism runs: synthetic"):
        seeds_view_data([heads])


def seeds_drawn(driver):
    """What the seeds view draws now: the class means, and per row of curves the chosen seed's line, the mean
    and the band's edges."""
    return driver.execute_script("""
        const nodes = document.getElementById('icgt-seeds-pca').data[1];
        const curves = document.getElementById('icgt-seeds-curves');
        const by = group => curves.data.filter(trace => trace.legendgroup === group).map(trace => trace.y);
        return {x: nodes.x, y: nodes.y, chosen: by('chosen'), mean: by('mean'), band: by('band'),
                cursor: curves.layout.shapes[0].x0,
                points: Array.from(document.querySelectorAll(
                    '#icgt-seeds-pca .scatterlayer .trace:last-child path.point'))
                    .map(point => point.getAttribute('transform'))};""")


def assert_seeds_setting(shown, runs, seed, layer_index, snapshot):
    """The class means are that seed's at that block and snapshot (times the view's signs) and its curves are
    bold; the mean over seeds and its band are those of every seed at that block."""
    block = np.stack([run.arrays["pca_projections"][layer_index][..., [0, 1]] for run in runs])
    signs = seed_signs(block)[seed, snapshot]
    expected = block[seed, snapshot] * signs
    assert_drawn(shown["x"], expected[:, 0])
    assert_drawn(shown["y"], expected[:, 1])
    assert shown["cursor"] == runs[0].arrays["pca_positions"][snapshot]
    for row, values in enumerate([np.stack([run.binned_accuracy()[1] for run in runs]),
                                  np.stack([run.arrays["spectral_alignment"][layer_index] for run in runs]),
                                  np.stack([run.arrays["energy_scale_invariant"][layer_index] for run in runs])]):
        assert_drawn(shown["chosen"][row], values[seed])
        finite = np.isfinite(values).all(axis=0)
        assert_drawn(as_floats(shown["mean"][row])[finite], values.mean(axis=0)[finite])
        half = stats.t.ppf(0.975, len(runs) - 1) * values.std(axis=0, ddof=1) / np.sqrt(len(runs))
        np.testing.assert_allclose(as_floats(shown["band"][2 * row + 1])[finite], (values.mean(axis=0) + half)[finite],
                                   rtol=1e-4)


def test_icgt_run_writes_the_seeds_view_and_it_follows_seed_block_and_context(browser, seed_runs, capsys):
    runs = [load_run(folder) for folder in seed_runs]
    configs = [icgt.study.config.preset("grid", seed=seed) for seed in range(3)]
    cli._aggregate(configs, seed_runs)   # what icgt run --seeds 3 does after the runs
    page = seed_runs[0].parent / "synthetic-grid-seeds" / "seeds.html"
    assert f"{page} (interactive)" in capsys.readouterr().out and (page.parent / "seeds.png").is_file()
    browser.get(page.resolve().as_uri())
    wait_for(browser, "return !!(document.getElementById('icgt-seeds-curves').data)")
    browser.get_log("browser")
    layer, last = runs[0].layer_index(), len(runs[0].arrays["pca_positions"]) - 1
    start = seeds_drawn(browser)
    assert_seeds_setting(start, runs, seed=0, layer_index=layer, snapshot=last)

    press(browser, "icgt-seeds-seed", "ARROW_RIGHT")          # seed 1
    second = seeds_drawn(browser)
    assert_seeds_setting(second, runs, seed=1, layer_index=layer, snapshot=last)
    assert second["points"] != start["points"]
    assert browser.find_element("id", "icgt-seeds-seed-value").text == "seed 1"
    press(browser, "icgt-seeds-layer", "ARROW_LEFT", 3)       # three blocks shallower
    assert_seeds_setting(seeds_drawn(browser), runs, seed=1, layer_index=layer - 3, snapshot=last)
    press(browser, "icgt-seeds-context", "HOME")              # the first snapshot
    press(browser, "icgt-seeds-seed", "END")                  # seed 2
    assert_seeds_setting(seeds_drawn(browser), runs, seed=2, layer_index=layer - 3, snapshot=0)
    assert browser.find_element("id", "icgt-seeds-context-value").text == "25 tokens"
    browser.find_element("id", "icgt-seeds-words").click()
    wait_for(browser, "return document.getElementById('icgt-seeds-pca').data[1].mode === 'markers+text'")
    assert_console_clean(browser)


def paper_sized_seeds(seed_runs, every):
    """Three seeds of a run shaped like the paper's (18 blocks, 16 walks of 1400 words) with a snapshot of the
    PCA, the energy and the alignment every ``every`` tokens."""
    small = load_run(seed_runs[0])
    positions = np.arange(every, 1400 + every, every)
    runs = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        info = copy.deepcopy(small.info)
        info["model"]["num_layers"] = 18
        info["config"]["seed"] = seed
        curves = {name: rng.uniform(size=(18, positions.size)) for name in ("spectral_alignment",
                                                                            "energy_scale_invariant")}
        runs.append(Run(folder=small.folder, info=info, arrays={
            "layers": np.arange(18), "pca_positions": positions, "energy_positions": positions,
            "alignment_positions": positions, **curves,
            "pca_projections": rng.normal(size=(18, positions.size, 16, 4)),
            "pca_explained": rng.uniform(size=(18, positions.size, 4)),
            "accuracy": rng.uniform(size=(16, 1401)), "nodes": rng.integers(0, 16, size=(16, 1401)),
            "scored": np.ones((16, 1401), bool), "spectral_embedding": small.arrays["spectral_embedding"]}))
    return runs


@pytest.mark.parametrize("every", [10, 1])
def test_three_paper_sized_seeds_stay_under_10_mb(seed_runs, every):
    runs = paper_sized_seeds(seed_runs, every)
    data = seeds_view_data(runs)
    fragment = seeds_view_html(runs)
    size = len(fragment.encode())
    assert size < 10_000_000 and len(data["projections"][0]) == 18
    if every == 10:   # 140 snapshots: all kept
        assert len(data["positions"]) == 140 and "log-spaced" not in fragment
    else:             # 1400: chosen, said on the page
        assert 50 < len(data["positions"]) < 1400 and data["positions"][-1] == 1400
        assert f"{len(data['positions'])} of the 1400 snapshots of the runs, log-spaced" in fragment
    print(f"seeds view, 3 seeds x 18 blocks, a snapshot every {every} tokens: {len(data['positions'])} snapshots, "
          f"{size / 1e6:.1f} MB")
