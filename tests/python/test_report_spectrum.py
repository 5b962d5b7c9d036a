"""The spectral profile in the report (icgt.report.spectrum) on synthetic runs with a planted profile:
the low-frequency share grows with depth and context where the effect is planted, stays at what means
unrelated to the graph give where it is not, and runs written before the profile existed still load
and report without it."""

import html
import json

import numpy as np
import pytest

from icgt import report
from icgt.report.spectrum import (LOW_FREQUENCY_GROUPS, low_frequency_groups, random_low_frequency_share,
                                  spectrum_figure, spectrum_summary)
from icgt.study.run_folder import Run, load_run
from synthetic_run import laplacian_spectrum, run_info, results, write_run, write_synthetic_run


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    return load_run(write_synthetic_run(tmp_path_factory.mktemp("grid"), "grid"))


def test_the_low_frequency_share_is_read_where_the_profile_planted_it(grid_run):
    profile = grid_run.arrays["debiased_spectral_profile"]
    low = profile[..., [1, 2]].sum(-1)
    summary = spectrum_summary(grid_run)
    shares, at = summary["low_frequency_share"], summary["low_frequency_positions"]
    deep = grid_run.layer_index()
    assert at == {"first": 20, "last": 400, "blocks": 400}  # the first snapshot (t = 10) misses nodes
    assert shares["first"] == pytest.approx(low[deep, 1]) and shares["last"] == pytest.approx(low[deep, -1])
    assert shares["shallow"] == pytest.approx(low[0, -1]) and shares["deep"] == shares["last"]
    assert shares["first"] < shares["last"] and shares["shallow"] < shares["deep"]  # planted: grows both ways
    assert summary["low_frequency_eigenvalues"] == pytest.approx([2 - np.sqrt(2), 4 - 2 * np.sqrt(2)])
    assert summary["spectrum"] == (
        "Spectrum: in block 6 of 8 the class means' variance on the two lowest non-zero Laplacian eigenvalues "
        f"(0.59, 1.17), the class means' sampling noise taken out, is {shares['first']:.0%} of the total at the "
        f"first snapshot with every node (t = 20) and "
        f"{shares['last']:.0%} at the last (t = 400); at t = 400, {shares['shallow']:.0%} in block 0 against "
        f"{shares['deep']:.0%} in block 6 (means unrelated to the graph: 20%).")


def test_means_unrelated_to_the_graph_give_the_share_of_the_low_eigenvectors(tmp_path):
    run = load_run(write_synthetic_run(tmp_path / "none", "grid", effect=False))
    shares = spectrum_summary(run)["low_frequency_share"]
    # 2 + 1 of the grid's 15 non-constant eigenvectors; the planted noise is +-0.02 on the lowest alone.
    assert random_low_frequency_share(run) == pytest.approx(3 / 15)
    for key in ("first", "last", "shallow", "deep"):
        assert abs(shares[key] - 3 / 15) < 0.03


@pytest.mark.parametrize("edges, num_nodes, expected", [
    ([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0)], 6, 4 / 5),  # ring of 6: 1, 1 (twice each) of 5
    # Paths of 3 and 4 nodes: the zero eigenvalue twice, then 2 - sqrt(2), 1, 2, 3, 2 + sqrt(2).
    ([(0, 1), (1, 2), (3, 4), (4, 5), (5, 6)], 7, 2 / 5),
])
def test_the_random_share_counts_eigenvectors_beyond_the_zero_eigenvalue(tmp_path, edges, num_nodes, expected):
    info = run_info("grid")
    info["graph"].update(num_nodes=num_nodes, edges=[list(edge) for edge in edges],
                         labels=info["graph"]["labels"][:num_nodes])
    eigenvalues, _ = laplacian_spectrum(num_nodes, edges)
    run = Run(tmp_path, info, {"spectral_eigenvalues": eigenvalues})
    assert low_frequency_groups(run).tolist() == list(np.flatnonzero(eigenvalues > 1e-9)[:LOW_FREQUENCY_GROUPS])
    assert random_low_frequency_share(run) == pytest.approx(expected)


@pytest.mark.parametrize("old_arrays", ["none", "the energy window's profile"])
def test_runs_written_before_the_profile_load_and_report_without_it(tmp_path, old_arrays):
    arrays = results(run_info("grid"))
    profile = arrays.pop("debiased_spectral_profile")
    if old_arrays == "none":
        del arrays["spectral_eigenvalues"]
    else:  # icgt before the debiased profile stored the 20-token window's, too noisy to be read
        arrays["spectral_profile"] = profile
    folder = write_run(tmp_path / "old", run_info("grid"), arrays)
    index = report.write_report(folder)
    assert not (index.parent / "spectrum.png").exists() and "spectrum.png" not in index.read_text()
    summary = json.loads((index.parent / "summary.json").read_text())
    assert "spectrum" not in summary and "low_frequency_share" not in summary
    assert spectrum_summary(load_run(folder)) == {}


def test_a_profile_whose_shape_disagrees_with_the_run_is_refused(tmp_path):
    arrays = results(run_info("grid"))
    arrays["debiased_spectral_profile"] = arrays["debiased_spectral_profile"][:, :-1]
    with pytest.raises(ValueError, match=r"debiased_spectral_profile has shape \(8, 39, 9\), expected \[L, S2, EV\] "
                                         r"with S2 = 40"):
        load_run(write_run(tmp_path / "bad", run_info("grid"), arrays))


def test_the_page_and_the_terminal_state_the_spectrum_after_the_verdict(tmp_path):
    folder = write_synthetic_run(tmp_path / "run", "grid")
    summary = report.summarize(folder)
    page = report.write_report(folder).read_text()
    assert f"<p>{html.escape(summary['spectrum'])}</p>" in page
    assert page.index(html.escape(summary["verdict"][-1])) < page.index("Spectrum: in block 6")
    text = report.format_summary(summary, width=1000)
    assert summary["spectrum"] in text and "share of the class means' variance on the two lowest" in text


def test_the_figure_has_a_row_per_block_and_per_snapshot(grid_run):
    figure = spectrum_figure(grid_run, layer=3)
    by_block, by_context = figure.axes[:2]
    assert len(by_block.get_yticks()) == 8
    assert by_context.get_title().startswith("block 3 of 8 over context")
    assert [label.get_text() for label in by_block.get_xticklabels()][:3] == ["0.00", "0.59", "1.17"]
