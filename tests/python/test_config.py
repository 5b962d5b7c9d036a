"""Experiment configs: presets follow the protocol, TOML files load, bad values are named."""

import pytest

import icgt
from icgt.models.words import DAY_NAMES
from icgt.study import config


def test_presets_follow_the_protocol():
    grid = config.preset("grid")
    assert (grid.graph, grid.graph_size, grid.num_sequences, grid.sequence_length, grid.start) == (
        "grid", [4, 4], 16, 1400, "per_node")
    assert (grid.energy_window, grid.energy_every, grid.pca_window, grid.pca_components) == (20, 10, 200, [0, 1])
    assert grid.build_graph().num_edges == 24
    ring = config.preset("ring")
    assert ring.build_graph().num_nodes == 10 and ring.pca_components == [1, 2]
    hexagon = config.preset("hexagon")
    assert hexagon.build_graph().num_nodes == 30 and hexagon.energy_window == 200
    pairs = config.preset("pairs")
    assert (pairs.mode, pairs.separator) == ("pairs", "/")


def test_days_ring_contradicts_the_week():
    days = config.preset("days")
    ring = days.build_graph()
    assert sorted(days.words) == sorted(DAY_NAMES) and days.natural_order == list(DAY_NAMES)
    week_position = {day: i for i, day in enumerate(DAY_NAMES)}
    for a, b in ring.edges:
        gap = abs(week_position[ring.labels[a]] - week_position[ring.labels[b]])
        assert min(gap, 7 - gap) != 1, (ring.labels[a], ring.labels[b])


def test_pca_positions_default_to_a_spread_up_to_the_length():
    assert config.preset("grid").pca_positions == [10, 20, 41, 83, 168, 341, 691, 1400]
    short = config.preset("grid", sequence_length=300, pca_window=100)
    assert short.pca_positions[-1] == 300 and len(short.pca_positions) == 8


def test_toml_with_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "hexagon"\nseed = 7\nlayers = [3, 5]\nwords = []\n')
    loaded = config.load_toml(path, seed=9)
    assert (loaded.graph, loaded.seed, loaded.layers) == ("hexagon", 9, [3, 5])
    assert loaded.to_dict()["graph_size"] == [3, 3]


def test_custom_graph_from_edges():
    custom = config.from_dict({"graph": "custom", "edges": [[0, 1], [1, 2], [2, 3], [3, 0]], "words": list("abcd")})
    graph = custom.build_graph()
    assert graph.num_edges == 4 and graph.labels == ["a", "b", "c", "d"]


@pytest.mark.parametrize("values,message", [
    ({"preset": "spiral"}, "unknown preset 'spiral'"),
    ({"colour": "red"}, r"unknown key 'colour'"),
    ({"graph": "cube"}, "graph 'cube' is unknown"),
    ({"graph": "grid", "graph_size": [4]}, r"graph_size \[4\] does not fit graph 'grid'"),
    ({"graph": "custom"}, "needs a non-empty edge list"),
    ({"mode": "triples"}, "mode 'triples' is unknown"),
    ({"start": "middle"}, "start 'middle' is unknown"),
    ({"separator": "/"}, "separator is only used in mode 'pairs'"),
    ({"words": ["a", "b"]}, "got 2 labels for 16 nodes"),
    ({"preset": "ring", "words": list("abcdefghia")}, "'a' is used twice"),
    ({"preset": "days", "natural_order": ["Monday"]}, "natural_order must list the same words"),
    ({"num_sequences": 0}, "num_sequences must be a positive integer"),
    ({"energy_window": 1400}, "energy_window 1400 is not shorter than sequence_length 1400"),
    ({"pca_positions": [0, 5000]}, "pca_positions"),
    ({"layers": "some"}, 'layers must be "all"'),
    ({"pca_components": [1]}, "pca_components must name the two consecutive"),
    ({"pca_components": [0, 1, 2]}, "pca_components must name the two consecutive"),
    ({"pca_components": [1, 1]}, "pca_components must name the two consecutive"),
    ({"pca_components": [0, 4]}, r"each below 4 \(the components kept\), got \[0, 4\]"),
    ({"graph": "ring", "graph_size": [4], "pca_components": [1, 3]}, "each below 3"),
    ({"dtype": "float16"}, "dtype 'float16' is unknown"),
    ({"max_batch": -1}, "max_batch must be 0"),
])
def test_bad_configs_name_the_problem(values, message):
    with pytest.raises(ValueError, match=message):
        config.from_dict(values)


def test_missing_and_malformed_toml(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        config.load_toml(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("preset = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        config.load_toml(bad)
