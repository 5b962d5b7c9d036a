"""icgt.Graph against networkx and numpy."""

import networkx as nx
import numpy as np
import pytest

import icgt


def same_graph_as(graph, nx_graph):
    """Node i of graph is list(nx_graph.nodes())[i]; the edge sets must be equal."""
    nodes = list(nx_graph.nodes())
    expected = {tuple(sorted((nodes.index(a), nodes.index(b)))) for a, b in nx_graph.edges()}
    return graph.num_nodes == len(nodes) and set(graph.edges) == expected


def test_square_grid_matches_networkx():
    grid = icgt.Graph.square_grid(4, 4)
    assert (grid.num_nodes, grid.num_edges) == (16, 24)
    assert same_graph_as(grid, nx.grid_2d_graph(4, 4))
    assert same_graph_as(icgt.Graph.square_grid(3, 5), nx.grid_2d_graph(3, 5))


def test_hexagonal_lattice_matches_networkx():
    hexagon = icgt.Graph.hexagonal_lattice(3, 3)
    reference = nx.hexagonal_lattice_graph(3, 3)
    assert hexagon.num_nodes == 30
    assert hexagon.num_edges == reference.number_of_edges()
    assert same_graph_as(hexagon, reference)
    for rows, cols in [(1, 1), (2, 4), (4, 3)]:
        assert same_graph_as(icgt.Graph.hexagonal_lattice(rows, cols), nx.hexagonal_lattice_graph(rows, cols))


@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (3, 4), (4, 5)])
def test_triangular_lattice_matches_networkx(rows, cols):
    assert same_graph_as(icgt.Graph.triangular_lattice(rows, cols), nx.triangular_lattice_graph(rows, cols))


def test_ring_matches_networkx_and_its_spectrum():
    n = 10
    ring = icgt.Graph.ring(n)
    assert same_graph_as(ring, nx.cycle_graph(n))
    embedding = ring.spectral_embedding(n - 1)
    expected = np.sort([2 - 2 * np.cos(2 * np.pi * k / n) for k in range(1, n)])
    np.testing.assert_allclose(embedding.eigenvalues, expected, atol=1e-12)
    laplacian = ring.laplacian()
    np.testing.assert_allclose(laplacian @ embedding.eigenvectors, embedding.eigenvectors * embedding.eigenvalues,
                               atol=1e-12)


@pytest.mark.parametrize("builder", [
    lambda: icgt.Graph.square_grid(4, 4),
    lambda: icgt.Graph.hexagonal_lattice(3, 3),
    lambda: icgt.Graph.triangular_lattice(3, 4),
    lambda: icgt.Graph.from_edges(5, [(0, 1), (1, 2), (3, 4)]),
])
def test_matrices_and_distances_match_networkx(builder):
    graph = builder()
    reference = graph.to_networkx()
    np.testing.assert_array_equal(graph.adjacency(), nx.to_numpy_array(reference, nodelist=range(graph.num_nodes)))
    np.testing.assert_array_equal(graph.sparse_adjacency().toarray(), graph.adjacency())
    np.testing.assert_allclose(graph.laplacian(), nx.laplacian_matrix(reference, nodelist=range(graph.num_nodes)).toarray())
    np.testing.assert_allclose(graph.normalized_laplacian(),
                               nx.normalized_laplacian_matrix(reference, nodelist=range(graph.num_nodes)).toarray(),
                               atol=1e-12)
    lengths = dict(nx.all_pairs_shortest_path_length(reference))
    expected = np.array([[lengths[a].get(b, -1) for b in range(graph.num_nodes)] for a in range(graph.num_nodes)])
    np.testing.assert_array_equal(graph.shortest_path_lengths(), expected)
    assert graph.is_connected() == nx.is_connected(reference)
    for node in range(graph.num_nodes):
        assert graph.neighbours(node) == sorted(reference.neighbors(node))
        assert graph.degree(node) == reference.degree(node)


@pytest.mark.parametrize("normalized", [False, True])
def test_spectral_embedding_matches_numpy(normalized):
    grid = icgt.Graph.square_grid(4, 4)
    matrix = grid.normalized_laplacian() if normalized else grid.laplacian()
    values, vectors = np.linalg.eigh(matrix)
    embedding = grid.spectral_embedding(3, normalized=normalized)
    np.testing.assert_allclose(embedding.eigenvalues, values[1:4], atol=1e-12)
    # z2 and z3 share an eigenvalue on the square grid, so compare the subspaces they span.
    projector = lambda basis: basis @ np.linalg.pinv(basis)
    np.testing.assert_allclose(projector(embedding.eigenvectors), projector(vectors[:, 1:4]), atol=1e-9)


def test_networkx_round_trip_keeps_order_and_labels():
    petersen = nx.petersen_graph()
    graph = icgt.Graph.from_networkx(petersen)
    assert same_graph_as(graph, petersen)
    labelled = nx.path_graph(["x", "y", "z"])
    nx.set_node_attributes(labelled, {"x": "apple", "y": "bird", "z": "car"}, "label")
    graph = icgt.Graph.from_networkx(labelled)
    assert graph.labels == ["apple", "bird", "car"]
    back = graph.to_networkx()
    assert sorted(back.edges()) == [(0, 1), (1, 2)]
    assert [back.nodes[i]["label"] for i in range(3)] == ["apple", "bird", "car"]
    assert icgt.Graph.from_networkx(nx.path_graph(["a", "b"])).labels == ["a", "b"]


def test_labels_and_lookup():
    grid = icgt.Graph.square_grid(2, 2)
    assert grid.labels == ["0", "1", "2", "3"]
    grid.labels = ["apple", "bird", "car", "egg"]
    assert grid.node_of("car") == 2
    with pytest.raises(ValueError, match="no node is labelled 'dog'"):
        grid.node_of("dog")


@pytest.mark.parametrize("call,message", [
    (lambda: icgt.Graph.square_grid(0, 4), "rows must be an integer from 1 to 2147483647, got 0"),
    (lambda: icgt.Graph.ring(2), "n must be an integer from 3"),
    (lambda: icgt.Graph.hexagonal_lattice(3, 0), "cols must be an integer from 1"),
    (lambda: icgt.Graph.triangular_lattice(-1, 2), "rows must be an integer from 1"),
    (lambda: icgt.Graph.from_edges(3, [(0, 5)]), r"edge \(0, 5\) names a node outside 0..2"),
    (lambda: icgt.Graph.from_edges(3, [(2, 2)]), "self-loop at node 2"),
    (lambda: icgt.Graph.from_edges(3, [(0, 1), (1, 0)]), "given twice"),
    (lambda: icgt.Graph.from_adjacency(np.zeros((2, 3))), "square"),
    (lambda: icgt.Graph.from_adjacency(np.array([[0, 1], [0, 0]])), "not symmetric"),
    (lambda: icgt.Graph.from_adjacency(np.eye(2)), "self-loop"),
    (lambda: icgt.Graph.ring(4).neighbours(7), "Graph.neighbours: node 7 does not exist"),
    (lambda: icgt.Graph.ring(4).degree(-1), "Graph.degree: node -1 does not exist"),
    (lambda: icgt.Graph.ring(4).spectral_embedding(4), "k must be in 1..3"),
    (lambda: setattr(icgt.Graph.ring(3), "labels", ["a", "b"]), "got 2 labels for 3 nodes"),
    (lambda: setattr(icgt.Graph.ring(3), "labels", ["a", "a", "b"]), "'a' is used twice"),
    (lambda: icgt.Graph.from_networkx(nx.DiGraph([(0, 1)])), "expected an undirected simple graph"),
])
def test_bad_input_raises_value_error_with_the_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_wrong_argument_types_raise_type_error():
    with pytest.raises(TypeError):
        icgt.Graph.square_grid("four", 4)
