"""Held-out edges (icgt.study.heldout): the kinds of word against networkx, the probabilities against a
plain loop, and the known answers through the whole pipeline: a hand-set induction head (bigram recall)
gives a held-out neighbour what it gives a non-neighbour, and a model that knows the full graph gives it
what it gives a shown neighbour (tests/python/heldout_model.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import icgt
from icgt.study.aggregate import aggregate_runs
from icgt.study.heldout import (DISTANCE_TWO, HELD_OUT, HELDOUT_CLASSES, SAME_DISTANCE, SHOWN, class_probabilities,
                                decide, inference_index, pair_classes, pair_distances, pair_kinds,
                                shown_graph)
from icgt.study.run_folder import load_run
from heldout_model import WORDS, write_heldout_bundle

HELD_OUT_EDGES = icgt.study.config.preset("grid-heldout").held_out_edges
CONFIG = {"preset": "grid-heldout", "words": WORDS, "sequence_length": 400, "null_permutations": 10,
          "bootstrap": 50}


def full_grid() -> icgt.Graph:
    return icgt.Graph.square_grid(4, 4)


def test_the_preset_holds_out_four_edges_that_keep_every_node_on_two_shown_edges():
    config = icgt.study.config.preset("grid-heldout")
    shown = config.build_graph()
    assert shown.num_edges == 20 and shown.is_connected()
    assert min(shown.degree(node) for node in range(16)) >= 2
    ends = [node for edge in HELD_OUT_EDGES for node in edge]
    assert len(set(ends)) == len(ends)  # no two held-out edges share a node


def test_the_kinds_of_word_follow_networkx_distances():
    full = nx.grid_2d_graph(4, 4)
    full = nx.relabel_nodes(full, {(r, c): 4 * r + c for r, c in full.nodes})
    shown = full.copy()
    shown.remove_edges_from([tuple(edge) for edge in HELD_OUT_EDGES])
    full_distance, shown_distance = dict(nx.all_pairs_shortest_path_length(full)), \
        dict(nx.all_pairs_shortest_path_length(shown))
    held_out = [tuple(edge) for edge in HELD_OUT_EDGES]
    classes = pair_classes(16, shown_graph(full_grid(), held_out).edges, held_out)
    partners = {}
    for a, b in HELD_OUT_EDGES:
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    for u in range(16):
        for w in range(16):
            expected = [w in partners.get(u, ()), u in partners and shown_distance[u][w] == 1,
                        u in partners and full_distance[u][w] == 2,
                        u in partners and w not in partners[u] and full_distance[u][w] > 1
                        and shown_distance[u][w] in {shown_distance[u][v] for v in partners[u]}]
            assert classes[:, u, w].tolist() == expected, (u, w)
    # On the grid each held-out pair is 3 steps apart in what is shown.
    assert all(shown_distance[a][b] == 3 for a, b in HELD_OUT_EDGES)


def test_class_probabilities_follow_a_plain_loop():
    generator = np.random.default_rng(0)
    held_out = [tuple(edge) for edge in HELD_OUT_EDGES]
    classes = pair_classes(16, shown_graph(full_grid(), held_out).edges, held_out)
    nodes = generator.integers(-1, 16, size=(3, 40))
    scored = generator.random((3, 40)) < 0.8
    probs = generator.random((3, 40, 16))
    values = class_probabilities(probs, nodes, scored, classes)
    for c in range(len(HELDOUT_CLASSES)):
        for b in range(3):
            for t in range(40):
                u = nodes[b, t]
                words = np.flatnonzero(classes[c, u]) if u >= 0 else []
                if u >= 0 and scored[b, t] and classes[HELD_OUT, u].any() and len(words):
                    assert values[c, b, t] == pytest.approx(probs[b, t, words].mean())
                else:
                    assert np.isnan(values[c, b, t])


def test_pair_distances_follow_a_direct_computation():
    generator = np.random.default_rng(1)
    means = generator.normal(size=(2, 16, 5))
    means[1, 3] = np.nan  # a node not seen in that window
    held_out = [tuple(edge) for edge in HELD_OUT_EDGES]
    distances = pair_distances(pair_kinds(16, shown_graph(full_grid(), held_out).edges, held_out), means)
    full = full_grid().shortest_path_lengths()
    shown = shown_graph(full_grid(), held_out).shortest_path_lengths()
    for p in range(2):
        pairs = {kind: [] for kind in range(4)}
        every = []
        for i in range(16):
            for j in range(i + 1, 16):
                d = np.linalg.norm(means[p, i] - means[p, j])
                if np.isnan(d):
                    continue
                every.append(d)
                held = (i, j) in held_out or (j, i) in held_out
                kinds = [held, shown[i, j] == 1, full[i, j] == 2, shown[i, j] == 3 and full[i, j] > 1 and not held]
                for kind, member in enumerate(kinds):
                    if member:
                        pairs[kind].append(d)
        expected = [np.mean(pairs[kind]) / np.mean(every) for kind in range(4)]
        assert distances[p] == pytest.approx(expected)


def test_the_inference_index_and_its_readings():
    assert inference_index(np.array([0.2, 0.3, 0.1, 0.05]), DISTANCE_TWO) == pytest.approx(0.5)
    assert inference_index(np.array([0.2, 0.3, 0.1, 0.05]), SAME_DISTANCE) == pytest.approx(0.6)
    assert np.isnan(inference_index(np.array([0.2, 0.1, 0.1, 0.1]), DISTANCE_TWO))  # no gap to measure on
    generator = np.random.default_rng(2)
    noisy = lambda centre: np.clip(centre + 0.005 * generator.normal(size=(101, 4)), 0, 1)  # noqa: E731
    assert decide(noisy(np.array([0.25, 0.3, 0.01, 0.01])))["reading"] == "inference"
    assert decide(noisy(np.array([0.01, 0.3, 0.01, 0.01])))["reading"] == "recall"
    # More than a non-neighbour two steps away but not more than one as far in the shown graph.
    assert decide(noisy(np.array([0.1, 0.3, 0.01, 0.1])))["reading"] == "undecided"
    assert decide(noisy(np.array([0.04, 0.3, 0.01, 0.01])))["reading"] == "undecided"  # at the margin


def test_bad_held_out_edges_are_refused_with_the_reason():
    with pytest.raises(icgt.study.config.ConfigError, match=r"held-out edges \[\(0, 5\)\] are not edges of the graph"):
        icgt.study.config.preset("grid", held_out_edges=[[0, 5]])
    with pytest.raises(icgt.study.config.ConfigError, match="without the held-out edges is not connected"):
        icgt.study.config.preset("grid", held_out_edges=[[0, 1], [0, 4]])
    with pytest.raises(icgt.study.config.ConfigError, match=r"must be \[node, node\] pairs"):
        icgt.study.config.preset("grid", held_out_edges=[[1]])
    with pytest.raises(icgt.study.config.ConfigError, match="needs mode 'walk' and experiment 'graph'"):
        icgt.study.config.preset("pairs", held_out_edges=[[1, 5]])


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("heldout")
    runs = {}
    for kind in ("induction", "full_graph", "uniform"):
        bundle = write_heldout_bundle(folder / f"{kind}.pt", kind)
        runs[kind] = load_run(icgt.run_experiment({**CONFIG, "model": str(bundle)}, output=folder / kind,
                                                  progress=False, report=kind == "induction"))
    return runs


def test_the_walks_never_traverse_a_held_out_edge(toy_runs):
    nodes = toy_runs["induction"].arrays["nodes"][:, 1:]
    steps = {tuple(sorted(pair)) for walk in nodes for pair in zip(walk[:-1], walk[1:])}
    assert not steps & {tuple(edge) for edge in HELD_OUT_EDGES}
    assert len(steps) == 20  # every shown edge is walked
    assert toy_runs["induction"].info["graph"]["held_out_edges"] == HELD_OUT_EDGES
    assert len(toy_runs["induction"].edges) == 20


def test_bigram_recall_gives_the_held_out_neighbour_what_a_non_neighbour_gets(toy_runs):
    summary = icgt.report.summarize(toy_runs["induction"])["heldout"]
    assert summary["reading"] == "recall"
    assert abs(summary["index_vs_distance_two"]["index"]) < 0.01
    assert abs(summary["spread"]["index"]) < 0.01  # recall gives a two-step word what it gives any unseen one
    assert summary["probability"]["shown_neighbour"] > 0.2
    assert summary["probability"]["held_out"] < 1e-3
    sentence = icgt.report.summarize(toy_runs["induction"])["verdict"][-1]
    assert sentence.startswith("Held-out edges (4 never walked)") and "bigram recall predicts" in sentence
    report = toy_runs["induction"].folder / "report"
    assert (report / "heldout.png").is_file() and "Held-out edges" in (report / "index.html").read_text()


def test_a_model_that_knows_the_full_graph_reads_as_inference(toy_runs):
    summary = icgt.report.summarize(toy_runs["full_graph"])["heldout"]
    assert summary["reading"] == "inference"
    assert summary["index_vs_distance_two"]["index"] == pytest.approx(1.0, abs=1e-6)
    assert summary["index_vs_same_shown_distance"]["index"] == pytest.approx(1.0, abs=1e-6)
    assert summary["probability"]["held_out"] == pytest.approx(summary["probability"]["shown_neighbour"])


def test_a_model_that_follows_no_graph_gets_no_reading(toy_runs):
    summary = icgt.report.summarize(toy_runs["uniform"])["heldout"]
    assert summary["reading"] == "undecided" and summary["follows_shown_graph"] is False
    assert summary["spread"]["index"] is None
    assert "the question cannot be asked of it" in icgt.report.summarize(toy_runs["uniform"])["verdict"][-1]
    # Near-equal probabilities with noise: the index divides by noise, and once read as inference.
    generator = np.random.default_rng(3)
    noisy = 0.01 * (1 + 0.2 * generator.normal(size=(101, 4)))
    assert decide(noisy)["reading"] == "undecided" and not decide(noisy)["follows"]


def test_the_seeds_aggregate_and_the_results_table_keep_the_reading(toy_runs, tmp_path):
    bundle = toy_runs["induction"].info["model"]["bundle"]
    folders = [icgt.run_experiment({**CONFIG, "model": bundle, "seed": seed, "bootstrap": 20},
                                   output=tmp_path / "sweep", progress=False, report=False) for seed in (0, 1)]
    aggregate = json.loads((aggregate_runs(folders) / "aggregate.json").read_text())["heldout"]
    assert aggregate["reading"] == "recall" and aggregate["per_seed"] == ["recall", "recall"]
    assert abs(aggregate["index_vs_distance_two"]["index"]) < 0.01
    assert list(aggregate["probability"]) == list(HELDOUT_CLASSES) and HELDOUT_CLASSES[SHOWN] == "shown_neighbour"
    tables = subprocess.run([sys.executable, str(Path(__file__).parents[2] / "examples" / "results_tables.py"),
                             str(tmp_path / "sweep")], capture_output=True, text=True)
    assert tables.returncode == 0, tables.stderr
    section = tables.stdout.split("### Held-out edges")[1].split("###")[0]
    assert "(2) |" in section and "**recall** (recall, recall)" in section
    assert sum(line.count("| recall |") for line in section.splitlines()) == 2  # each run's own row


def test_the_plane_references_are_the_graphs_spectral_layouts(toy_runs):
    from icgt.study.heldout import plane_distances

    run = toy_runs["induction"]
    planes = plane_distances(run)
    held_out = [tuple(edge) for edge in HELD_OUT_EDGES]
    kinds = pair_kinds(16, run.edges.tolist(), held_out)
    # The run's spectral_embedding is the shown graph's, from the compiled core.
    assert planes["shown_layout"] == pytest.approx(
        pair_distances(kinds, run.arrays["spectral_embedding"][None, :, :2].astype(float))[0])
    full_layout = full_grid().spectral_embedding(2).eigenvectors
    assert planes["full_layout"] == pytest.approx(pair_distances(kinds, np.asarray(full_layout)[None].astype(float))[0])
    # In the full grid's layout a held-out pair is a neighbour pair; in the shown graph's it is not.
    assert planes["full_layout"][HELD_OUT] < 0.5 < planes["shown_layout"][HELD_OUT]
    assert planes["model"].shape == (len(run.layers), len(HELDOUT_CLASSES))
    summary = icgt.report.summarize(run)["heldout"]
    assert summary["shown_layout_distance"]["held_out"] == pytest.approx(planes["shown_layout"][HELD_OUT], abs=1e-6)
