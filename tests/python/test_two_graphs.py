"""Two graphs over the same words (icgt.study.two_graphs): the second graph and the mixed walks against their
definitions (networkx), the subspace fit on planted class means, and the known answers through the whole
pipeline (tests/python/two_graphs_model.py): layouts planted in orthogonal subspaces come out orthogonal, with
their variance shares and PC pairs, both above the relabelling null and read "apart"; layouts planted on one plane
come out on one plane; a model that holds only the first graph, or neither, holds the missing ones within the
null and its subspaces are not read. The null itself against its chance level 2/(n - 1) and a direct loop over
relabellings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from scipy.linalg import subspace_angles

import icgt
from icgt.study.aggregate import aggregate_runs
from icgt.study.run_folder import load_run
from icgt.study.two_graphs import (layout_null, layout_subspaces, mixture_walks, relabellings, second_graph,
                                   second_graph_edges)
from two_graphs_model import KINDS, WORDS, write_two_graphs_bundle

#: 200 relabellings: enough to reach the two-graph null's level (p < 0.01 needs 100 or more).
CONFIG = {"preset": "grid-two-graphs-p50", "words": WORDS, "sequence_length": 200, "pca_window": 100,
          "null_permutations": 200, "bootstrap": 0}


def edge_set(edges) -> set[tuple[int, int]]:
    return {tuple(sorted(map(int, edge))) for edge in edges}


@pytest.mark.parametrize("kind", ["permuted", "ring"])
def test_the_second_graph_shares_no_edge_and_has_its_shape(kind):
    grid = icgt.Graph.square_grid(4, 4)
    edges = second_graph_edges(kind, grid.edges, 16, seed=3)
    assert not edge_set(edges) & edge_set(grid.edges)
    expected = nx.grid_2d_graph(4, 4) if kind == "permuted" else nx.cycle_graph(16)
    assert nx.is_isomorphic(nx.Graph(edges), expected) and len(nx.Graph(edges)) == 16
    assert edges == second_graph_edges(kind, grid.edges, 16, seed=3) != second_graph_edges(kind, grid.edges, 16, seed=4)


def test_the_walks_follow_the_second_graph_with_probability_p():
    for mixture, share in ((0.0, 0.0), (1.0, 1.0), (0.25, 0.25)):
        config = icgt.study.config.preset("grid-two-graphs-p50", mixture=mixture, num_sequences=16,
                                          sequence_length=500)
        first = config.build_graph()
        second = second_graph(config, first)
        walks = mixture_walks(config, first, second)
        assert walks[:, 0].tolist() == list(range(16))  # per_node starts
        steps = [tuple(sorted(step)) for walk in walks.tolist() for step in zip(walk[:-1], walk[1:])]
        on_first, on_second = edge_set(first.edges), edge_set(second.edges)
        assert all((step in on_first) != (step in on_second) for step in steps)  # every step an edge of one graph
        observed = np.mean([step in on_second for step in steps])
        assert abs(observed - share) < 4 * np.sqrt(share * (1 - share) / len(steps)) + 1e-12


def test_bad_two_graph_settings_are_refused_with_the_reason():
    cases = [({"mixture": 0.5}, "mixture 0.5 needs a second_graph to switch to"),
             ({"second_graph": "cube"}, "second_graph 'cube' is unknown"),
             ({"second_graph": "ring", "mixture": 1.5}, "mixture must be a probability from 0 to 1, got 1.5"),
             ({"second_graph": "ring", "held_out_edges": [[1, 5]]}, "second_graph needs mode 'walk', experiment 'graph'"),
             ({"second_graph": "ring", "second_graph_seed": -1}, "second_graph_seed must be an integer from 0"),
             ({"second_graph": "ring", "mixture": True}, "mixture must be a number, got True")]
    for overrides, message in cases:
        with pytest.raises(icgt.study.config.ConfigError, match=message):
            icgt.study.config.preset("grid", **overrides)
    with pytest.raises(icgt.study.config.ConfigError, match="second_graph needs a graph of 5 or more nodes"):
        icgt.study.config.from_dict({"graph": "ring", "graph_size": [4], "num_sequences": 4, "second_graph": "ring",
                                     "pca_components": [0, 1]})
    with pytest.raises(ValueError, match="second graph 'cube' is unknown"):
        second_graph_edges("cube", [(0, 1)], 2, 0)


def planted(seed: int = 0):
    random = np.random.default_rng(seed).normal(size=(16, 4))
    columns = np.linalg.qr(random - random.mean(0))[0]
    return np.stack([columns[:, :2], columns[:, 2:]])


def test_layout_subspaces_on_planted_means():
    layouts = planted()
    rotation = np.linalg.qr(np.random.default_rng(1).normal(size=(8, 8)))[0]  # any orthonormal frame of R^8
    apart = (layouts[0] @ np.eye(2, 8) + 0.5 * layouts[1] @ np.eye(2, 8, k=2)) @ rotation
    one_plane = (layouts[0] @ np.eye(2, 8) + layouts[1] @ np.array([[0, 1], [1, 0]]) @ np.eye(2, 8)) @ rotation
    only_first = layouts[0] @ np.eye(2, 8) @ rotation
    shares, cosines = layout_subspaces(np.stack([apart, one_plane, only_first, np.full((16, 8), np.nan)]), layouts)
    assert shares[0] == pytest.approx([0.8, 0.2]) and cosines[0] == pytest.approx([0, 0], abs=1e-9)
    assert cosines[1] == pytest.approx([1, 1]) and shares[1].sum() == pytest.approx(1)
    assert shares[2] == pytest.approx([1, 0], abs=1e-12)
    assert np.isnan(shares[3]).all() and np.isnan(cosines[3]).all()
    # Against scipy on random means: the cosines of the angles between the row spaces of the joint fit.
    means = np.random.default_rng(2).normal(size=(16, 6))
    design = np.concatenate(list(layouts), axis=1)
    weights = np.linalg.lstsq(design, means - means.mean(0), rcond=None)[0]
    expected = np.sort(np.cos(subspace_angles(weights[:2].T, weights[2:].T)))[::-1]
    assert layout_subspaces(means[None], layouts)[1][0] == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"means \[P, n, d\] and two or more layouts \[G, n, 2\]"):
        layout_subspaces(means[None], layouts[:1])


def test_the_null_share_averages_two_over_n_minus_one_whatever_the_means():
    layouts = planted()  # uncorrelated over the nodes: the chance level is 2/(n - 1) for each graph
    generator = np.random.default_rng(3)
    spread = generator.normal(size=(16, 40))
    one_direction = generator.normal(size=(16, 1)) @ generator.normal(size=(1, 40))
    null = layout_null(np.stack([spread, one_direction, layouts[0] @ np.eye(2, 40)]), layouts,
                       relabellings(16, 20_000, seed=0))
    assert null.share_mean == pytest.approx(np.full((3, 2), 2 / 15), abs=0.004)


def test_the_null_against_a_direct_loop_over_relabellings():
    layouts = planted()
    generator = np.random.default_rng(4)
    means = np.stack([generator.normal(size=(16, 6)), layouts[1] @ np.eye(2, 6) + 0.3 * generator.normal(size=(16, 6))])
    permutations = relabellings(16, 300, seed=5)
    null = layout_null(means, layouts, permutations)
    design = np.concatenate(list(layouts - layouts.mean(1, keepdims=True)), axis=1)

    def fit(centred):
        weights = np.linalg.lstsq(design, centred, rcond=None)[0]
        shares = [((design[:, 2 * g:2 * g + 2] @ weights[2 * g:2 * g + 2]) ** 2).sum() / (centred ** 2).sum()
                  for g in (0, 1)]
        return np.array(shares), np.mean(np.cos(subspace_angles(weights[:2].T, weights[2:].T)) ** 2)

    for snapshot, snapshot_means in enumerate(means):
        centred = snapshot_means - snapshot_means.mean(0)
        observed = fit(centred)[0]
        shares, cosines = zip(*(fit(centred[permutation]) for permutation in permutations))
        exceeding = (np.array(shares) >= observed - 1e-12).sum(0)
        assert null.p_values[snapshot] == pytest.approx((1 + exceeding) / (1 + len(permutations)))
        assert null.share_mean[snapshot] == pytest.approx(np.mean(shares, axis=0))
        assert null.cosine_squared_mean[snapshot] == pytest.approx(np.mean(cosines))
    assert null.p_values[1, 1] == 1 / 301 and null.p_values[1, 0] > 0.5  # the second graph planted, the first not
    missing = layout_null(np.stack([means[0], np.full((16, 6), np.nan)]), layouts, permutations)
    assert np.isnan(missing.p_values[1]).all() and np.isnan(missing.cosine_squared_mean[1])


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_graphs")
    runs = {}
    for kind in KINDS:
        bundle = write_two_graphs_bundle(folder / f"{kind}.pt", kind, 0.5)
        runs[kind] = load_run(icgt.run_experiment({**CONFIG, "model": str(bundle)}, output=folder / kind,
                                                  progress=False, report=kind == "orthogonal"))
    return runs


def test_orthogonal_layouts_come_out_orthogonal(toy_runs):
    run = toy_runs["orthogonal"]
    summary = icgt.report.summarize(run)["two_graphs"]
    assert summary["accuracy_first"] == pytest.approx(0.5, abs=1e-4)
    assert summary["accuracy_second"] == pytest.approx(0.5, abs=1e-4)
    # The two layouts correlate a little over the nodes (cosines 0.16, 0.12), and the grid's is only FIRST_SCALE
    # times the larger: the PCs mix them a little.
    assert summary["alignment_pc12_first"] > 0.9 and summary["alignment_pc34_second"] > 0.85
    assert summary["variance_share_first"] == pytest.approx(0.61, abs=1e-3)
    assert summary["variance_share_second"] == pytest.approx(0.39, abs=1e-3)
    assert summary["subspace_cosine_squared"] < 1e-6
    # Both far above the null, whose mean share is the grid and its relabelling's chance level (0.136).
    assert summary["blocks_above_null_first"] == summary["blocks_above_null_second"] == 1.0
    assert summary["null_share_first"] == pytest.approx(0.136, abs=0.015)
    assert summary["null_share_second"] == pytest.approx(0.136, abs=0.015)
    assert summary["null_cosine_squared"] > 0.3  # means of rank 4 put unrelated planes close: 0 is far below it
    assert summary["subspace_reading"] == "apart"
    assert edge_set(summary["second_edges"]) == edge_set(second_graph_edges("permuted", run.edges, 16, 0))
    sentence = icgt.report.summarize(run)["verdict"][-1]
    assert sentence.startswith("Two graphs over the same words") and "p = 0.5" in sentence
    report = run.folder / "report"
    assert (report / "two_graphs.png").is_file() and "Two graphs over the same words" in (report / "index.html").read_text()


def test_layouts_on_one_plane_come_out_on_one_plane(toy_runs):
    summary = icgt.report.summarize(toy_runs["shared"])["two_graphs"]
    assert summary["subspace_cosine_squared"] > 0.99


def test_a_graph_the_model_does_not_hold_is_within_the_null_and_not_compared(toy_runs):
    first_only = icgt.report.summarize(toy_runs["first_only"])
    summary = first_only["two_graphs"]
    assert summary["blocks_above_null_first"] == 1.0 and summary["blocks_above_null_second"] == 0.0
    assert summary["subspace_reading"] == "not comparable: the second graph is not in the class means above chance"
    assert summary["subspace_reading"] in first_only["verdict"][-1]
    neither = icgt.report.summarize(toy_runs["neither"])["two_graphs"]
    assert neither["blocks_above_null_first"] == neither["blocks_above_null_second"] == 0.0
    assert neither["subspace_reading"] == "not comparable: neither graph is in the class means above chance"


def test_the_shuffled_control_keeps_the_words_and_breaks_both_graphs(toy_runs, tmp_path):
    bundle = toy_runs["orthogonal"].info["model"]["bundle"]
    shuffled = load_run(icgt.run_experiment({**CONFIG, "model": bundle, "control": "shuffled"}, output=tmp_path,
                                            progress=False, report=False))
    plain = toy_runs["orthogonal"].arrays["nodes"][:, 1:]
    nodes = shuffled.arrays["nodes"][:, 1:]
    assert all(sorted(a) == sorted(b) for a, b in zip(nodes.tolist(), plain.tolist()))
    steps = [tuple(sorted(step)) for walk in nodes.tolist() for step in zip(walk[:-1], walk[1:])]
    either = edge_set(shuffled.edges) | edge_set(shuffled.arrays["second_graph_edges"])
    assert np.mean([step in either for step in steps]) < 0.6


def test_the_seeds_aggregate_and_the_results_table(toy_runs, tmp_path):
    bundle = toy_runs["orthogonal"].info["model"]["bundle"]
    folders = [icgt.run_experiment({**CONFIG, "model": bundle, "seed": seed}, output=tmp_path / "sweep",
                                   progress=False, report=False) for seed in (0, 1)]
    aggregate = json.loads((aggregate_runs(folders) / "aggregate.json").read_text())["two_graphs"]
    assert aggregate["second_graph"] == "permuted" and aggregate["mixture"] == 0.5
    assert aggregate["accuracy_first"]["mean"] == pytest.approx(0.5, abs=1e-4)
    assert aggregate["subspace_cosine_squared"]["ci95"][1] < 1e-4
    assert aggregate["subspace_reading"] == {"per_seed": ["apart", "apart"], "reading": "apart"}
    tables = subprocess.run([sys.executable, str(Path(__file__).parents[2] / "examples" / "results_tables.py"),
                             str(tmp_path / "sweep")], capture_output=True, text=True)
    assert tables.returncode == 0, tables.stderr
    section = tables.stdout.split("### Two graphs over the same words")[1].split("###")[0]
    assert "(2) | permuted | 0.5 | none | 0.500 [0.500, 0.500]" in section
    assert "| 100% [100%, 100%] |" in section and section.count("| apart |") == 3
    assert sum(line.count("| permuted | 0.5 | none |") for line in section.splitlines()) == 3  # the group, each run
