"""EnergyMetrics against independent references written here with numpy, scipy, scikit-learn and
networkx, on random inputs and on constructed cases with known answers.

Tolerances: float64 input is compared to 1e-9 relative; float32 input to 1e-4 relative.
"""

import networkx as nx
import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from scipy.stats import pearsonr
from sklearn.linear_model import LinearRegression

import icgt
from reference_random import reference_relabellings


def reference_energy(x, adjacency, kind):
    """The three energies, straight from their definitions (sums over ordered node pairs)."""
    n, d = x.shape
    squared = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    raw = np.sum(adjacency * squared)
    if kind == "raw":
        return raw
    if kind == "normalized":
        unit = x / np.linalg.norm(x)
        return 0.5 * np.sum(adjacency * np.mean((unit[:, None, :] - unit[None, :, :]) ** 2, axis=-1))
    mean_edge = raw / adjacency.sum()
    mean_pair = squared.sum() / (n * (n - 1))
    return mean_edge / mean_pair


KINDS = ["raw", "normalized", "scale_invariant"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_energies_match_their_definitions(kind, dtype, rtol):
    graph = icgt.Graph.from_networkx(nx.hexagonal_lattice_graph(3, 3))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 30, 12)) + 20.0  # a large common mean, as residual streams have
    energy = icgt.EnergyMetrics(graph).dirichlet_energy(torch.tensor(x, dtype=dtype), kind)
    assert energy.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    expected = [reference_energy(xi, graph.adjacency(), kind) for xi in x]
    np.testing.assert_allclose(energy.numpy(), expected, rtol=rtol)


def test_energy_over_context_for_every_layer_in_one_call():
    grid = icgt.Graph.square_grid(4, 4)
    walks = icgt.WalkSampler(grid, seed=1).random_walks(16, 300, start="per_node")
    residuals = torch.randn(3, 16, 300, 24, dtype=torch.float64)
    residuals[:, 0, :25] = float("nan")  # never read: the first window starts at 30
    walks[:, :10] = icgt.NOT_A_NODE
    positions = list(range(50, 300, 10))
    means = icgt.RepresentationStats(16).class_means(residuals, walks, 20, positions).means
    curve = icgt.EnergyMetrics(grid).dirichlet_energy(means)
    assert curve.shape == (3, len(positions))
    for layer in range(3):
        for s in range(len(positions)):
            m = means[layer, s].numpy()
            expected = np.nan if np.isnan(m).any() else reference_energy(m, grid.adjacency(), "normalized")
            np.testing.assert_allclose(curve[layer, s].item(), expected, rtol=1e-9)
    early = icgt.RepresentationStats(16).class_means(residuals[:, 1:], walks[1:], 2, [12]).means
    assert torch.isnan(icgt.EnergyMetrics(grid).dirichlet_energy(early)).all()  # some node absent


def numpy_class_means(x, nodes, num_nodes, window, t):
    """Class means of x [batch, length, hidden] over positions [max(0, t - window), t], pooled."""
    start = max(0, t - window)
    labels, rows = nodes[:, start : t + 1], x[:, start : t + 1]
    return np.stack([rows[labels == k].mean(axis=0) if (labels == k).any() else np.full(x.shape[-1], np.nan)
                     for k in range(num_nodes)])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_energy_over_context_equals_numpy_energies_of_brute_force_class_means(kind, dtype, rtol):
    graph = icgt.Graph.from_networkx(nx.hexagonal_lattice_graph(2, 2))
    n = graph.num_nodes
    nodes = icgt.WalkSampler(graph, seed=3).random_walks(5, 260)
    nodes[:, 0] = icgt.NOT_A_NODE
    rng = np.random.default_rng(1)
    # A large common offset, a node-dependent part and noise, for two layers.
    x = 30.0 + rng.normal(size=(n, 16))[np.maximum(nodes, 0)] + rng.normal(size=(2, 5, 260, 16))
    positions, pca_positions = list(range(3, 260, 8)), [90, 91, 259]
    result = icgt.EnergyMetrics(graph).energy_over_context(
        torch.tensor(x, dtype=dtype), nodes, 15, positions, kind, class_means_at=[(120, pca_positions)])
    assert result.energy.dtype == dtype and result.energy.shape == (2, len(positions))
    for layer in range(2):
        expected = []
        for t in positions:
            means = numpy_class_means(x[layer], nodes, n, 15, t)
            expected.append(np.nan if np.isnan(means).any() else reference_energy(means, graph.adjacency(), kind))
        assert np.isnan(expected).any() and not np.isnan(expected).all()  # early windows miss nodes
        np.testing.assert_allclose(result.energy[layer].numpy(), expected, rtol=rtol)
        wide = np.stack([numpy_class_means(x[layer], nodes, n, 120, t) for t in pca_positions])
        np.testing.assert_allclose(result.class_means[0].means[layer].numpy(), wide, rtol=rtol)
    assert result.positions.tolist() == positions
    assert result.class_means[0].positions.tolist() == pca_positions
    first_window = nodes[:, 0:4]
    assert result.counts[0].tolist() == [int((first_window == k).sum()) for k in range(n)]


def test_energy_over_context_on_a_graph_without_edges_matches_dirichlet_energy():
    graph = icgt.Graph.from_edges(3, [])
    nodes = torch.arange(60).remainder(3).reshape(2, 30)
    residuals = torch.randn(2, 30, 5, dtype=torch.float64)
    means = icgt.RepresentationStats(3).class_means(residuals, nodes, 6, [10, 29]).means
    for kind in KINDS:
        result = icgt.EnergyMetrics(graph).energy_over_context(residuals, nodes, 6, [10, 29], kind)
        expected = icgt.EnergyMetrics(graph).dirichlet_energy(means, kind)
        torch.testing.assert_close(result.energy, expected, equal_nan=True)
    assert result.energy.isnan().all() and not expected[~expected.isnan()].numel()  # scale_invariant: 0 / 0


@pytest.mark.parametrize(
    "class_means_at, message",
    [
        (5, "class_means_at must be a sequence of (window, positions) pairs, got <class 'int'>"),
        ([(5,)], "class_means_at must be a sequence of (window, positions) pairs, but class_means_at[0] is (5,)"),
        ([(5, [3]), ("wide", [4])], "but class_means_at[1] is ('wide', [4])"),
        ([(5, [[3]])], "class_means_at[0].positions must be a 1-D sequence of integers"),
    ],
)
def test_energy_over_context_rejects_malformed_class_means_at(class_means_at, message):
    with pytest.raises(TypeError) as raised:
        icgt.EnergyMetrics(icgt.Graph.ring(4)).energy_over_context(
            torch.zeros(2, 10, 3), torch.zeros(2, 10, dtype=torch.long), 2, [5], class_means_at=class_means_at)
    assert message in str(raised.value)


def test_the_grid_spectral_embedding_has_the_least_normalised_energy_among_orthonormal_embeddings():
    """Among embeddings whose 2 columns are orthonormal and centred (orthogonal to the constant
    vector, which alone would give zero energy), z2, z3 minimise the normalised energy: its value
    is (lambda_2 + lambda_3) / (2 * 2)."""
    grid = icgt.Graph.square_grid(4, 4)
    metrics = icgt.EnergyMetrics(grid)
    embedding = grid.spectral_embedding(2)
    lowest = metrics.dirichlet_energy(torch.tensor(embedding.eigenvectors)).item()
    assert lowest == pytest.approx(embedding.eigenvalues.sum() / 4)
    rng = np.random.default_rng(3)
    for _ in range(200):
        x = rng.normal(size=(16, 2))
        x = np.linalg.qr(x - x.mean(axis=0))[0]
        assert metrics.dirichlet_energy(torch.tensor(x)).item() > lowest
    # No embedding scores lower, by a local optimisation from random starts.
    laplacian = grid.laplacian()
    for _ in range(5):
        x = np.linalg.qr(rng.normal(size=(16, 2)))[0]
        for _ in range(500):  # projected gradient descent on the Stiefel manifold of centred frames
            x = x - 0.05 * laplacian @ x
            x = np.linalg.qr(x - x.mean(axis=0))[0]
        assert metrics.dirichlet_energy(torch.tensor(x)).item() >= lowest - 1e-9


def test_the_scale_invariant_energy_cannot_be_lowered_by_shrinking_or_collapsing():
    metrics = icgt.EnergyMetrics(icgt.Graph.square_grid(4, 4))
    x = torch.randn(16, 8, dtype=torch.float64)
    base = metrics.dirichlet_energy(x, "scale_invariant").item()
    for transformed in (0.001 * x, x + 100.0, x @ torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))[0]):
        assert metrics.dirichlet_energy(transformed, "scale_invariant").item() == pytest.approx(base)
    assert metrics.dirichlet_energy(0.001 * x, "normalized").item() == pytest.approx(
        metrics.dirichlet_energy(x, "normalized").item()
    )
    assert metrics.dirichlet_energy(0.001 * x, "raw").item() < 1e-4 * metrics.dirichlet_energy(x, "raw").item()
    assert np.isnan(metrics.dirichlet_energy(torch.ones(16, 8), "scale_invariant").item())


@pytest.mark.parametrize("kind", KINDS)
def test_null_baseline_equals_numpy_with_the_same_relabellings(kind):
    graph = icgt.Graph.ring(7)
    x = np.random.default_rng(5).normal(size=(2, 7, 6))
    count, seed = 300, 11
    null = icgt.EnergyMetrics(graph).energy_null_baseline(torch.tensor(x), kind, count, seed)
    adjacency = graph.adjacency()
    for i in range(2):
        energies = [reference_energy(x[i], adjacency[np.ix_(p, p)], kind) for p in reference_relabellings(7, count, seed)]
        observed = reference_energy(x[i], adjacency, kind)
        np.testing.assert_allclose(null.observed[i].item(), observed, rtol=1e-9)
        np.testing.assert_allclose(null.mean[i].item(), np.mean(energies), rtol=1e-9)
        np.testing.assert_allclose(null.sd[i].item(), np.std(energies, ddof=1), rtol=1e-9)
        np.testing.assert_allclose(null.z_score[i].item(), (observed - np.mean(energies)) / np.std(energies, ddof=1),
                                   rtol=1e-8)
        at_most = sum(energy <= observed * (1 + 1e-12) for energy in energies)
        np.testing.assert_allclose(null.p_value[i].item(), (1 + at_most) / (1 + count), rtol=1e-12)


def test_null_p_value_is_small_for_the_graph_and_uniform_for_noise():
    grid = icgt.Graph.square_grid(4, 4)
    metrics = icgt.EnergyMetrics(grid)
    spectral = torch.tensor(grid.spectral_embedding(2).eigenvectors)
    assert metrics.energy_null_baseline(spectral, "scale_invariant", 999, seed=1).p_value.item() == pytest.approx(0.001)
    noise = torch.randn(400, 16, 8, generator=torch.Generator().manual_seed(3))
    p_values = metrics.energy_null_baseline(noise, "scale_invariant", 199, seed=2).p_value
    assert abs(float((p_values < 0.1).double().mean()) - 0.1) < 0.05  # calibrated: ~10% below 0.1


def test_a_random_embedding_lands_near_the_null_and_the_spectral_one_far_below():
    grid = icgt.Graph.square_grid(4, 4)
    metrics = icgt.EnergyMetrics(grid)
    random = torch.randn(200, 16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    z_random = metrics.energy_null_baseline(random, "normalized", 500, seed=1).z_score
    assert abs(z_random.mean().item()) < 0.3  # centred on the null
    assert (z_random.abs() < 3.5).float().mean().item() > 0.97
    spectral = torch.tensor(grid.spectral_embedding(2).eigenvectors)
    for kind in KINDS:
        assert metrics.energy_null_baseline(spectral, kind, 2000, seed=1).z_score.item() < -4.0
    mean = metrics.energy_null_baseline(random[:20], "scale_invariant", 4000, seed=2).mean
    np.testing.assert_allclose(mean.numpy(), 1.0, atol=0.03)  # exactly 1 in expectation


def direct_accuracy(probabilities, nodes, graph, scored=None):
    batch, length, _ = probabilities.shape
    full = np.full((batch, length), np.nan)
    renormalized = np.full((batch, length), np.nan)
    for b in range(batch):
        for t in range(length):
            if nodes[b, t] < 0 or (scored is not None and not scored[b, t]):
                continue
            mass = sum(probabilities[b, t, w] for w in graph.neighbours(int(nodes[b, t])))
            full[b, t] = mass
            renormalized[b, t] = mass / probabilities[b, t].sum()
    return full, renormalized


def test_accuracy_equals_a_direct_loop_over_positions():
    grid = icgt.Graph.square_grid(4, 4)
    walks = icgt.WalkSampler(grid, seed=2).random_walks(5, 60)
    walks[:, 0] = icgt.NOT_A_NODE
    probabilities = np.random.default_rng(7).dirichlet(np.ones(20), size=(5, 60))[..., :16]
    accuracy = icgt.EnergyMetrics(grid).rule_following_accuracy(torch.from_numpy(probabilities), walks)
    full, renormalized = direct_accuracy(probabilities, walks, grid)
    np.testing.assert_allclose(accuracy.full_vocabulary.numpy(), full, rtol=1e-12)
    np.testing.assert_allclose(accuracy.renormalized.numpy(), renormalized, rtol=1e-12)
    np.testing.assert_allclose(accuracy.mean_full_vocabulary.numpy()[1:], full[:, 1:].mean(axis=0), rtol=1e-12)
    assert np.isnan(accuracy.mean_full_vocabulary[0].item())
    np.testing.assert_allclose(accuracy.mean_renormalized.numpy()[1:], renormalized[:, 1:].mean(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(accuracy.scored.numpy(), walks >= 0)


def test_accuracy_in_neighbour_pair_mode_scores_only_the_marked_positions():
    grid = icgt.Graph.square_grid(4, 4)
    nodes, scored = icgt.WalkSampler(grid, seed=3).neighbour_pairs(4, 30, with_separator=True)
    probabilities = np.random.default_rng(8).dirichlet(np.ones(16), size=nodes.shape).astype(np.float32)
    accuracy = icgt.EnergyMetrics(grid).rule_following_accuracy(probabilities, nodes, scored)
    full, renormalized = direct_accuracy(probabilities, nodes, grid, scored)
    np.testing.assert_allclose(accuracy.full_vocabulary.numpy(), full, rtol=1e-5)
    np.testing.assert_allclose(accuracy.renormalized.numpy(), renormalized, rtol=1e-5)
    assert np.isnan(accuracy.mean_full_vocabulary.numpy()[~scored.any(axis=0)]).all()
    # A uniform guess over the node tokens scores degree / n after renormalisation.
    uniform = icgt.EnergyMetrics(grid).rule_following_accuracy(np.full(nodes.shape + (16,), 0.05), nodes, scored)
    degrees = np.array([grid.degree(int(v)) for v in nodes[scored]])
    np.testing.assert_allclose(uniform.renormalized.numpy()[scored], degrees / 16, rtol=1e-12)


def test_spectral_alignment_matches_scipy_principal_angles_and_least_squares_r_squared():
    grid = icgt.Graph.square_grid(4, 4)
    z = grid.spectral_embedding(2).eigenvectors
    rng = np.random.default_rng(9)
    means = np.stack([
        z @ rng.normal(size=(2, 30)) + rng.normal(size=30),  # a drawing of the grid
        z @ rng.normal(size=(2, 30)) + 0.3 * rng.normal(size=(16, 30)),  # a noisy one
        rng.normal(size=(16, 30)),  # no grid at all
    ])
    alignment = icgt.EnergyMetrics(grid).spectral_alignment(torch.from_numpy(means), 2)
    for i in range(3):
        centred = means[i] - means[i].mean(axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        scores = u[:, :2] * s[:2]
        cosines = np.sort(np.cos(subspace_angles(scores, z)))[::-1]
        np.testing.assert_allclose(alignment.principal_angle_cosines[i].numpy(), cosines, atol=1e-9)
        r_squared = [LinearRegression().fit(z, scores[:, j]).score(z, scores[:, j]) for j in range(2)]
        np.testing.assert_allclose(alignment.r_squared[i].numpy(), r_squared, atol=1e-9)
    assert alignment.principal_angle_cosines[0].numpy() == pytest.approx([1.0, 1.0])
    assert alignment.r_squared[2].max().item() < 0.9


def test_spectral_alignment_of_later_components_matches_scipy():
    """PCs 2-3 against z2, z3, as the ring figures draw them: the grid drawn on the second and third
    directions of the means, behind a stronger first direction unrelated to the graph."""
    grid = icgt.Graph.square_grid(4, 4)
    z = grid.spectral_embedding(2).eigenvectors
    rng = np.random.default_rng(4)
    basis = np.linalg.qr(np.concatenate([np.ones((16, 1)), z], axis=1))[0]
    first = rng.normal(size=(16, 1))
    first = (first - basis @ (basis.T @ first)) / np.linalg.norm(first - basis @ (basis.T @ first)) * 10
    means = np.concatenate([first, z * 3, rng.normal(size=(16, 5)) * 0.01], axis=1) @ np.linalg.qr(
        rng.normal(size=(8, 8)))[0]
    metrics = icgt.EnergyMetrics(grid)
    later = metrics.spectral_alignment(torch.from_numpy(means), 2, first_component=1).principal_angle_cosines
    u, s, _ = np.linalg.svd(means - means.mean(0), full_matrices=False)
    expected = np.sort(np.cos(subspace_angles(u[:, 1:3], z)))[::-1]
    np.testing.assert_allclose(later.numpy(), expected, atol=1e-9)
    assert later.numpy() == pytest.approx([1.0, 1.0])
    assert metrics.spectral_alignment(torch.from_numpy(means), 2).principal_angle_cosines.min().item() < 0.9
    with pytest.raises(ValueError, match="first_component 7 and num_components 2 ask for PCs up to 9"):
        metrics.spectral_alignment(torch.from_numpy(means), 2, first_component=7)


def test_graph_distance_correlation_matches_scipy_and_networkx_shortest_paths():
    graph = icgt.Graph.from_networkx(nx.hexagonal_lattice_graph(3, 3))
    lengths = dict(nx.all_pairs_shortest_path_length(graph.to_networkx()))
    x = np.random.default_rng(10).normal(size=(3, 30, 7))
    correlation = icgt.EnergyMetrics(graph).graph_distance_correlation(torch.from_numpy(x))
    i, j = np.triu_indices(30, 1)
    for b in range(3):
        distances = np.linalg.norm(x[b, i] - x[b, j], axis=-1)
        path = [lengths[a][c] for a, c in zip(i, j)]
        np.testing.assert_allclose(correlation[b].item(), pearsonr(distances, path).statistic, rtol=1e-9)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m: m.dirichlet_energy(torch.zeros(5, 3)), ValueError,
         "representations has shape [5, 3], whose dimension -2 (nodes) should be 4"),
        (lambda m: m.dirichlet_energy(torch.zeros(4, 3), "quadratic"), ValueError,
         "kind must be 'raw', 'normalized' or 'scale_invariant', got 'quadratic'"),
        (lambda m: m.dirichlet_energy(torch.zeros(4, 3, dtype=torch.int32)), TypeError,
         "representations has dtype Int; expected a floating-point tensor [..., nodes, d]"),
        (lambda m: m.dirichlet_energy(torch.tensor([[1.0, float("nan")]] * 4)), ValueError,
         "row (0) holds a NaN or infinite value among finite ones"),
        (lambda m: m.energy_null_baseline(torch.zeros(4, 3), num_relabellings=1), ValueError,
         "num_relabellings must be an integer from 2"),
        (lambda m: m.rule_following_accuracy(torch.full((1, 2, 4), 0.5), torch.zeros(1, 2, dtype=torch.long)),
         ValueError, "sums to more than 1 over the nodes"),
        (lambda m: m.rule_following_accuracy(torch.full((1, 2, 4), -0.1), torch.zeros(1, 2, dtype=torch.long)),
         ValueError, "holds a negative, NaN or infinite value at index (0, 0, 0); expected probabilities"),
        (lambda m: m.rule_following_accuracy(torch.zeros(1, 2, 4), torch.zeros(1, 2, dtype=torch.long),
                                             torch.ones(1, 2)), TypeError,
         "scored must be a bool tensor [batch, length], got Float [1, 2]"),
        (lambda m: m.rule_following_accuracy(torch.zeros(1, 2, 4), torch.zeros(1, 3, dtype=torch.long)), ValueError,
         "nodes has shape [1, 3] but node_probabilities [1, 2, 4] needs [batch, length] = [1, 2]"),
        (lambda m: m.spectral_alignment(torch.zeros(4, 8), 4), ValueError,
         "num_components is 4, but the graph has 3 Laplacian eigenvector(s)"),
        (lambda m: m.spectral_alignment(torch.zeros(4, 8), 1), ValueError,
         "num_components = 1 splits the Laplacian eigenvalue 2 that z2 and z3 share"),
        (lambda m: m.energy_over_context(torch.zeros(2, 10, 3), torch.zeros(2, 10, dtype=torch.long), 2, [5],
                                         class_means_at=[(12, [5])]), ValueError,
         "EnergyMetrics.energy_over_context: class_means_at[0].window is 12, outside the sequence of 10 positions"),
        (lambda m: m.energy_over_context(torch.zeros(2, 10, 3), torch.zeros(2, 10, dtype=torch.long), 2, [5], "flat"),
         ValueError, "kind must be 'raw', 'normalized' or 'scale_invariant', got 'flat'"),
    ],
)
def test_bad_input_raises_with_a_message_that_names_the_argument(call, error, message):
    with pytest.raises(error) as raised:
        call(icgt.EnergyMetrics(icgt.Graph.ring(4)))
    assert message in str(raised.value)


def test_tensors_that_require_grad_are_accepted_and_results_carry_no_history():
    grid = icgt.Graph.square_grid(4, 4)
    metrics = icgt.EnergyMetrics(grid)
    x = torch.randn(3, 16, 5, requires_grad=True)
    probabilities = torch.full((2, 3, 16), 0.01, requires_grad=True)
    for result in (
        metrics.dirichlet_energy(x),
        metrics.energy_null_baseline(x, num_relabellings=10).z_score,
        metrics.spectral_alignment(x, 2).r_squared,
        metrics.graph_distance_correlation(x),
        metrics.rule_following_accuracy(probabilities, torch.zeros(2, 3, dtype=torch.long)).renormalized,
    ):
        assert not result.requires_grad
    walks = icgt.WalkSampler(grid, seed=0).random_walks(2, 30)
    means = icgt.RepresentationStats(16).class_means(torch.randn(2, 30, 4, requires_grad=True), walks, 5, [29]).means
    assert not means.requires_grad


def test_metrics_repr_and_graph():
    metrics = icgt.EnergyMetrics(icgt.Graph.ring(5))
    assert repr(metrics) == "EnergyMetrics(graph=Graph(num_nodes=5, num_edges=5))"
    assert metrics.graph.num_edges == 5
