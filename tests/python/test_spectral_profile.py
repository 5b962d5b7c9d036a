"""EnergyMetrics.spectral_profile and the profile energy_over_context takes in its pass, against a
reference written here with numpy.linalg.eigh of networkx's Laplacian.

The reference never uses icgt's eigenvectors for the shares per eigenvalue: it projects on each
eigenspace with the projector V V^T of its own basis, which is the same for any basis, so the grid's
repeated eigenvalues are compared for what they are. Tolerances: float64 1e-9, float32 1e-5 absolute
on shares (numbers in [0, 1]).
"""

import networkx as nx
import numpy as np
import pytest
import torch

import icgt

TOLERANCE = 1e-9  # eigenvalues within TOLERANCE * max(1, the largest) are one, as in icgt


def reference_spectrum(graph):
    """Distinct eigenvalues, multiplicities and the eigenspaces' bases of networkx's D - A."""
    laplacian = nx.laplacian_matrix(graph, nodelist=list(graph.nodes())).toarray().astype(float)
    values, vectors = np.linalg.eigh(laplacian)
    groups = [[0]]
    for k in range(1, len(values)):
        if values[k] - values[k - 1] > TOLERANCE * max(1.0, values.max()):
            groups.append([])
        groups[-1].append(k)
    return (np.array([values[g].mean() for g in groups]), np.array([len(g) for g in groups]),
            [vectors[:, g] for g in groups], laplacian)


def reference_shares(means, bases):
    """The share of the centred means' squared norm in each eigenspace: ||V V^T X_c||^2 / ||X_c||^2."""
    centred = means - means.mean(axis=0)
    total = np.sum(centred**2)
    return np.array([np.sum((basis @ (basis.T @ centred)) ** 2) / total for basis in bases])


GRAPHS = {
    "grid": lambda: nx.grid_2d_graph(4, 4),
    "ring": lambda: nx.cycle_graph(10),
    "hexagon": lambda: nx.hexagonal_lattice_graph(2, 2),
    "two components": lambda: nx.disjoint_union(nx.path_graph(4), nx.cycle_graph(5)),
}


@pytest.mark.parametrize("name", GRAPHS)
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-9), (torch.float32, 1e-5)])
def test_shares_per_eigenvalue_match_the_projectors_on_numpys_eigenspaces(name, dtype, tolerance):
    graph = GRAPHS[name]()
    eigenvalues, multiplicities, bases, laplacian = reference_spectrum(graph)
    means = np.random.default_rng(0).normal(size=(3, graph.number_of_nodes(), 7)) + 25.0
    profile = icgt.EnergyMetrics(icgt.Graph.from_networkx(graph)).spectral_profile(torch.tensor(means, dtype=dtype))
    np.testing.assert_allclose(profile.eigenvalues.numpy(), eigenvalues, atol=1e-12)
    assert profile.multiplicities.tolist() == multiplicities.tolist()
    assert profile.shares.dtype == dtype and profile.shares.shape == (3, len(eigenvalues))
    expected = np.stack([reference_shares(m, bases) for m in means])
    np.testing.assert_allclose(profile.shares.numpy(), expected, atol=tolerance)
    np.testing.assert_allclose(profile.shares.sum(-1).numpy(), 1.0, atol=tolerance)
    # icgt's eigenvectors are eigenvectors of networkx's Laplacian, in the order of the eigenvalues, and
    # its per-eigenvector shares are the squared projections on them.
    vectors = profile.eigenvectors.numpy()
    by_vector = np.repeat(eigenvalues, multiplicities)
    np.testing.assert_allclose(laplacian @ vectors, vectors * by_vector, atol=1e-10)
    centred = means - means.mean(axis=1, keepdims=True)
    projections = np.sum(np.einsum("nk,bnd->bkd", vectors, centred) ** 2, axis=-1)
    np.testing.assert_allclose(profile.eigenvector_shares.numpy(), projections / projections.sum(-1, keepdims=True),
                               atol=tolerance)


def test_the_grids_repeated_eigenvalues_take_any_mix_of_their_eigenspace_whole():
    """Means inside one repeated eigenspace (a random mix of numpy's basis of it, not icgt's) give
    share 1 at that eigenvalue, however the two bases differ."""
    graph = nx.grid_2d_graph(4, 4)
    eigenvalues, multiplicities, bases, _ = reference_spectrum(graph)
    metrics = icgt.EnergyMetrics(icgt.Graph.from_networkx(graph))
    rng = np.random.default_rng(1)
    repeated = np.flatnonzero(multiplicities > 1)
    assert multiplicities.tolist() == [1, 2, 1, 2, 2, 2, 3, 2, 1]
    for group in repeated:
        means = bases[group] @ rng.normal(size=(multiplicities[group], 5)) + 3.0
        shares = metrics.spectral_profile(torch.from_numpy(means)).shares.numpy()
        np.testing.assert_allclose(shares, np.eye(len(eigenvalues))[group], atol=1e-12)
    # z2, z3 of the spectral embedding lie in the lowest non-zero eigenspace (2 - sqrt(2)).
    drawing = torch.tensor(icgt.Graph.square_grid(4, 4).spectral_embedding(2).eigenvectors)
    assert metrics.spectral_profile(drawing).shares[1].item() == pytest.approx(1.0, abs=1e-12)


def test_a_mix_of_two_eigenspaces_splits_the_variance_by_their_squared_weights():
    graph = nx.cycle_graph(8)
    eigenvalues, _, bases, _ = reference_spectrum(graph)
    low, high = bases[1][:, :1], bases[3][:, :1]  # eigenvalues 2 - sqrt(2) and 2 + sqrt(2)
    means = 3.0 * low @ np.array([[1.0, 1.0]]) + high @ np.array([[0.0, 2.0]])  # squared weights 18 and 4
    shares = icgt.EnergyMetrics(icgt.Graph.ring(8)).spectral_profile(torch.from_numpy(means)).shares.numpy()
    expected = np.zeros(len(eigenvalues))
    expected[[1, 3]] = [18 / 22, 4 / 22]
    np.testing.assert_allclose(shares, expected, atol=1e-12)


def brute_force_class_means(x, nodes, num_nodes, window, t):
    """Class means of x [batch, length, hidden] over positions max(0, t - window)..t, pooled over sequences."""
    start = max(0, t - window)
    labels, rows = nodes[:, start:t + 1], x[:, start:t + 1]
    return np.stack([rows[labels == k].mean(axis=0) if (labels == k).any() else np.full(x.shape[-1], np.nan)
                     for k in range(num_nodes)])


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-9), (torch.float32, 1e-5)])
def test_energy_over_context_takes_the_profile_of_every_snapshot_in_its_pass(dtype, tolerance):
    graph = nx.grid_2d_graph(4, 4)
    _, _, bases, _ = reference_spectrum(graph)
    grid = icgt.Graph.square_grid(4, 4)
    nodes = icgt.WalkSampler(grid, seed=4).random_walks(4, 200)
    nodes[:, 0] = icgt.NOT_A_NODE
    rng = np.random.default_rng(2)
    # A large common offset, a node-dependent part and noise, for two layers.
    x = 30.0 + rng.normal(size=(16, 24))[np.maximum(nodes, 0)] + rng.normal(size=(2, 4, 200, 24))
    positions = list(range(2, 200, 7))
    metrics = icgt.EnergyMetrics(grid)
    result = metrics.energy_over_context(torch.tensor(x, dtype=dtype), nodes, 15, positions, spectral_profile=True)
    shares = result.spectral_profile.shares
    assert shares.dtype == dtype and shares.shape == (2, len(positions), 9)
    assert result.spectral_profile.eigenvector_shares.shape == (2, len(positions), 16)
    for layer in range(2):
        expected = []
        for t in positions:
            means = brute_force_class_means(x[layer], nodes, 16, 15, t)
            expected.append(np.full(9, np.nan) if np.isnan(means).any() else reference_shares(means, bases))
        expected = np.array(expected)
        assert np.isnan(expected).any() and not np.isnan(expected).all()  # early windows miss nodes
        np.testing.assert_allclose(shares[layer].numpy(), expected, atol=tolerance)
    assert metrics.energy_over_context(torch.tensor(x), nodes, 15, positions).spectral_profile is None


def test_absent_nodes_and_coinciding_means_have_no_profile():
    metrics = icgt.EnergyMetrics(icgt.Graph.ring(5))
    means = torch.randn(3, 5, 4, dtype=torch.float64)
    means[1, 2] = float("nan")
    means[2] = 1.5
    shares = metrics.spectral_profile(means).shares
    assert not shares[0].isnan().any() and shares[1:].isnan().all()
    assert repr(metrics.spectral_profile(means)) == "EnergyMetrics.SpectralProfile(shape=(3, 3))"


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m: m.spectral_profile(torch.zeros(5, 3)), ValueError,
         "EnergyMetrics.spectral_profile: class_means has shape [5, 3], whose dimension -2 (nodes) should be 4"),
        (lambda m: m.spectral_profile(torch.zeros(4)), TypeError, "class_means has 1 dimension(s)"),
        (lambda m: m.spectral_profile(torch.zeros(4, 3, dtype=torch.int64)), TypeError,
         "class_means has dtype Long; expected a floating-point tensor"),
        (lambda m: m.spectral_profile(torch.zeros(4, 0)), ValueError, "0 dimensions per node"),
        (lambda m: m.spectral_profile(torch.tensor([[1.0, float("nan")]] * 4)), ValueError,
         "row (0) holds a NaN or infinite value among finite ones"),
        (lambda m: m.spectral_profile("means"), TypeError, "class_means"),
        (lambda m: m.energy_over_context(torch.zeros(2, 10, 3), torch.zeros(2, 10, dtype=torch.long), 2, [5],
                                         "normalized", (), True), TypeError, "incompatible function arguments"),
        (lambda m: m.energy_over_context(torch.zeros(2, 10, 3), torch.zeros(2, 10, dtype=torch.long), 2, [5],
                                         spectral_profile="yes"), TypeError, "incompatible function arguments"),
    ],
)
def test_bad_input_raises_with_a_message_that_names_the_argument(call, error, message):
    with pytest.raises(error) as raised:
        call(icgt.EnergyMetrics(icgt.Graph.ring(4)))
    assert message in str(raised.value)
