"""icgt.WalkSampler: walks follow edges, are uniform, seeded, and match the documented generator."""

import numpy as np
import pytest
from scipy import stats

import icgt
from reference_random import reference_walks


def test_same_walks_as_the_documented_generator():
    hexagon = icgt.Graph.hexagonal_lattice(3, 3)
    neighbours = [hexagon.neighbours(node) for node in range(hexagon.num_nodes)]
    for seed, per_node in [(0, True), (12345, False), (2**63 + 17, False)]:
        walks = icgt.WalkSampler(hexagon, seed=seed).random_walks(5, 300, start="per_node" if per_node else "uniform")
        np.testing.assert_array_equal(walks, reference_walks(neighbours, seed, 5, 300, per_node))


def test_walks_are_int64_numpy_views_on_edges():
    grid = icgt.Graph.square_grid(4, 4)
    walks = icgt.WalkSampler(grid, seed=3).random_walks(16, 1400, start="per_node")
    assert isinstance(walks, np.ndarray) and walks.dtype == np.int64 and walks.shape == (16, 1400)
    assert not walks.flags["OWNDATA"]  # shares the C++ tensor's memory, no copy
    adjacency = grid.adjacency()
    assert np.all(adjacency[walks[:, :-1], walks[:, 1:]] == 1)
    np.testing.assert_array_equal(walks[:, 0], np.arange(16))


def test_steps_from_each_node_are_uniform():
    grid = icgt.Graph.square_grid(4, 4)
    walks = icgt.WalkSampler(grid, seed=11).random_walks(8, 20000)
    sources, targets = walks[:, :-1].ravel(), walks[:, 1:].ravel()
    for node in range(grid.num_nodes):
        counts = [np.sum((sources == node) & (targets == next_node)) for next_node in grid.neighbours(node)]
        assert stats.chisquare(counts).pvalue > 1e-4, (node, counts)


def test_uniform_starts_cover_every_node_uniformly():
    ring = icgt.Graph.ring(10)
    starts = icgt.WalkSampler(ring, seed=5).random_walks(20000, 1)[:, 0]
    assert stats.chisquare(np.bincount(starts, minlength=10)).pvalue > 1e-4


def test_seed_determines_the_stream():
    ring = icgt.Graph.ring(7)
    first, second = icgt.WalkSampler(ring, seed=4), icgt.WalkSampler(ring, seed=4)
    np.testing.assert_array_equal(first.random_walks(3, 50), second.random_walks(3, 50))
    # The stream continues: a second call differs from the first.
    assert not np.array_equal(first.random_walks(3, 50), icgt.WalkSampler(ring, seed=4).random_walks(3, 50))
    assert first.seed == 4 and first.graph.num_nodes == 7


def test_neighbour_pairs():
    grid = icgt.Graph.square_grid(4, 4)
    nodes, scored = icgt.WalkSampler(grid, seed=8).neighbour_pairs(4, 500, with_separator=True)
    assert nodes.shape == scored.shape == (4, 1500) and scored.dtype == bool
    firsts, seconds, separators = nodes[:, 0::3], nodes[:, 1::3], nodes[:, 2::3]
    assert np.all(grid.adjacency()[firsts, seconds] == 1)
    assert np.all(separators == icgt.NOT_A_NODE)
    np.testing.assert_array_equal(scored, np.tile([True, False, False], (4, 500)))
    assert stats.chisquare(np.bincount(firsts.ravel(), minlength=16)).pvalue > 1e-4
    plain, plain_scored = icgt.WalkSampler(grid, seed=8).neighbour_pairs(1, 3)
    assert plain.shape == (1, 6) and plain_scored[0].tolist() == [True, False] * 3


@pytest.mark.parametrize("call,message", [
    (lambda s: s.random_walks(0, 10), "batch must be an integer from 1 to 9223372036854775807, got 0"),
    (lambda s: s.random_walks(4, 0), "length must be an integer from 1"),
    (lambda s: s.random_walks(4, 10, start="middle"), "start must be 'uniform' or 'per_node'"),
    (lambda s: s.neighbour_pairs(4, -2), "num_pairs must be an integer from 1 to 9223372036854775807, got -2"),
])
def test_bad_requests_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(icgt.WalkSampler(icgt.Graph.ring(5), seed=0))


def test_isolated_node_is_refused_up_front():
    with pytest.raises(ValueError, match=r"node 2 \('2'\) has no neighbour"):
        icgt.WalkSampler(icgt.Graph.from_edges(3, [(0, 1)]), seed=0)
