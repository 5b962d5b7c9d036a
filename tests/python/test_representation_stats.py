"""RepresentationStats against independent references: a brute-force loop over windows in numpy
and scikit-learn's PCA.

Tolerances: float64 input is compared to 1e-10; float32 input to 1e-5 relative (the activations'
own precision, summed over up to a few hundred rows).
"""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

import icgt


def brute_force_class_means(x, nodes, num_nodes, window, positions, per_sequence=False):
    """means [..., (batch,) snapshots, nodes, hidden] and counts, one window at a time."""
    x = np.asarray(x, dtype=np.float64)
    batch, hidden = nodes.shape[0], x.shape[-1]
    groups = batch if per_sequence else 1
    means = np.full(x.shape[:-3] + (groups, len(positions), num_nodes, hidden), np.nan)
    counts = np.zeros((groups, len(positions), num_nodes), dtype=np.int64)
    for s, t in enumerate(positions):
        start = max(0, t - window)
        for g in range(groups):
            sequences = [g] if per_sequence else list(range(batch))
            for k in range(num_nodes):
                mask = nodes[sequences, start : t + 1] == k
                counts[g, s, k] = mask.sum()
                if mask.any():
                    means[..., g, s, k, :] = x[..., sequences, start : t + 1, :][..., mask, :].mean(axis=-2)
    if not per_sequence:
        means, counts = means[..., 0, :, :, :], counts[0]
    return means, counts


@pytest.fixture
def sweep_inputs():
    rng = np.random.default_rng(0)
    num_nodes, batch, length, hidden = 6, 4, 90, 5
    nodes = rng.integers(-1, num_nodes, size=(batch, length))
    residuals = rng.normal(size=(2, 3, batch, length, hidden)) + 2.0
    return num_nodes, nodes, residuals


@pytest.mark.parametrize("window", [0, 1, 9, 40, 89])
@pytest.mark.parametrize("per_sequence", [False, True])
def test_class_means_equal_a_loop_over_windows(sweep_inputs, window, per_sequence):
    num_nodes, nodes, residuals = sweep_inputs
    positions = [0, 1, 5, 17, 18, 50, 89]
    stats = icgt.RepresentationStats(num_nodes)
    sweep = stats.class_means_per_sequence if per_sequence else stats.class_means
    result = sweep(torch.from_numpy(residuals), torch.from_numpy(nodes), window, positions)
    expected_means, expected_counts = brute_force_class_means(
        residuals, nodes, num_nodes, window, positions, per_sequence
    )
    np.testing.assert_allclose(result.means.numpy(), expected_means, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(result.counts.numpy(), expected_counts)
    np.testing.assert_array_equal(result.positions.numpy(), positions)


def test_class_means_of_float32_activations_from_walks(sweep_inputs):
    grid = icgt.Graph.square_grid(4, 4)
    walks = icgt.WalkSampler(grid, seed=3).random_walks(16, 400, start="per_node")
    residuals = np.random.default_rng(1).normal(size=(16, 400, 32)).astype(np.float32) + 50.0
    positions = icgt.RepresentationStats.strided_positions(400, 10, first=5)
    result = icgt.RepresentationStats(16).class_means(torch.from_numpy(residuals), walks, 20, positions)
    assert result.means.dtype == torch.float32
    expected, counts = brute_force_class_means(residuals, walks, 16, 20, positions)
    np.testing.assert_allclose(result.means.numpy(), expected, rtol=1e-5)
    np.testing.assert_array_equal(result.counts.numpy(), counts)


def test_an_absent_node_has_count_zero_and_a_nan_mean():
    stats = icgt.RepresentationStats(3)
    nodes = np.array([[icgt.NOT_A_NODE, 0, 0, 1, 1, 1]])
    result = stats.class_means(torch.ones(1, 6, 2), nodes, window=2, positions=[2, 5])
    np.testing.assert_array_equal(result.counts.numpy(), [[2, 0, 0], [0, 3, 0]])
    assert torch.isnan(result.means[0, 1]).all() and torch.isnan(result.means[1, 2]).all()
    assert not torch.isnan(result.means[1, 1]).any()


def test_inputs_are_never_modified(sweep_inputs):
    num_nodes, nodes, residuals = sweep_inputs
    x = torch.from_numpy(residuals.copy())
    stats = icgt.RepresentationStats(num_nodes)
    means = stats.class_means(x, nodes, 10, [30, 60]).means
    kept = means.clone()
    stats.align_snapshots(stats.principal_components(means, 2))
    assert torch.equal(x, torch.from_numpy(residuals))
    assert torch.equal(means.isnan(), kept.isnan()) and torch.equal(means.nan_to_num(), kept.nan_to_num())


def sklearn_pca(means, k):
    present = np.isfinite(means).all(axis=-1)
    pca = PCA(k, svd_solver="full").fit(means[present])
    return pca, present


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_pca_matches_scikit_learn_up_to_sign(dtype, tolerance):
    rng = np.random.default_rng(2)
    means = rng.normal(size=(3, 12, 40)) * np.linspace(3, 0.5, 40)
    means[1, 5] = np.nan  # an absent node
    stats = icgt.RepresentationStats(12)
    pcs = stats.principal_components(torch.tensor(means, dtype=dtype), 3)
    for i in range(3):
        pca, present = sklearn_pca(means[i], 3)
        signs = np.sign(np.sum(pcs.components[i].double().numpy() * pca.components_, axis=1))
        np.testing.assert_allclose(pcs.components[i].numpy() * signs[:, None], pca.components_, atol=tolerance)
        np.testing.assert_allclose(pcs.explained_variance_ratio[i].numpy(), pca.explained_variance_ratio_, atol=tolerance)
        np.testing.assert_allclose(
            pcs.projections[i].numpy()[present] * signs, pca.transform(means[i][present]), atol=10 * tolerance
        )
        np.testing.assert_allclose(pcs.mean[i].numpy(), pca.mean_, atol=tolerance)
        assert np.isnan(pcs.projections[i].numpy()[~present]).all()


def test_pca_of_a_window_with_too_few_nodes_is_nan():
    means = torch.randn(2, 5, 8)
    means[0, :3] = float("nan")
    pcs = icgt.RepresentationStats(5).principal_components(means, 2)
    assert pcs.components[0].isnan().all() and not pcs.components[1].isnan().any()


def test_alignment_keeps_consecutive_snapshots_from_flipping():
    rng = np.random.default_rng(4)
    base = rng.normal(size=(10, 20)) * np.linspace(2, 0.2, 20)
    rotation = np.linalg.qr(rng.normal(size=(20, 20)))[0]
    snapshots = np.stack([base, -base, base @ rotation, -(base @ rotation)])
    stats = icgt.RepresentationStats(10)
    pcs = stats.principal_components(torch.from_numpy(snapshots), 2)
    for alignment in ("sign_flip", "procrustes"):
        steady = stats.align_snapshots(pcs, alignment)
        for s in range(1, 4):
            np.testing.assert_allclose(steady.projections[s].numpy(), steady.projections[0].numpy(), atol=1e-9)
        centred = snapshots - steady.mean.numpy()[:, None, :]
        np.testing.assert_allclose(
            np.einsum("snh,skh->snk", centred, steady.components.numpy()), steady.projections.numpy(), atol=1e-9
        )


def test_a_principal_components_object_can_be_built_from_tensors():
    pcs = icgt.RepresentationStats(4).principal_components(torch.randn(2, 3, 4, 6), 2)
    layer = icgt.RepresentationStats.PrincipalComponents(
        pcs.components[1], pcs.explained_variance_ratio[1], pcs.projections[1], pcs.mean[1]
    )
    aligned = icgt.RepresentationStats.align_snapshots(layer)
    assert aligned.projections.shape == (3, 4, 2)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda s: s.class_means(np.zeros((2, 5, 3)), np.zeros((2, 5), dtype=np.int64), 1, [6]), ValueError,
         "positions[0] is 6, outside the sequence; expected 0..4"),
        (lambda s: s.class_means(torch.zeros(2, 5, 3), torch.zeros(2, 5, dtype=torch.long), 5, [2]), ValueError,
         "window is 5, outside the sequence of 5 positions"),
        (lambda s: s.class_means(torch.zeros(2, 5, 3), torch.zeros(2, 4, dtype=torch.long), 1, [2]), ValueError,
         "nodes has shape [2, 4] but residuals [2, 5, 3] needs nodes [batch, length] = [2, 5]"),
        (lambda s: s.class_means(torch.zeros(2, 5, 3), torch.full((2, 5), 3), 1, [2]), ValueError,
         "nodes holds 3 at index (0, 0); expected node ids 0..2 or -1 (not a node)"),
        (lambda s: s.class_means(torch.zeros(2, 5, 3, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long), 1, [2]),
         TypeError, "residuals has dtype Long; expected a floating-point tensor [..., batch, length, hidden]"),
        (lambda s: s.class_means(torch.zeros(2, 5, 3), torch.zeros(2, 5), 1, [2]), TypeError,
         "nodes has dtype Float; expected an integer tensor [batch, length]"),
        (lambda s: s.class_means(torch.zeros(2, 5, 3), torch.zeros(2, 5, dtype=torch.long), 1, [[2]]), TypeError,
         "positions must be a 1-D sequence of integers"),
        (lambda s: s.class_means(torch.zeros(2, 5, 3), torch.zeros(2, 5, dtype=torch.long), 1, []), ValueError,
         "positions is empty"),
        (lambda s: s.class_means(torch.zeros(2, 5, 3), torch.zeros(2, 5, dtype=torch.long), 1, [3, 1]), ValueError,
         "positions must be strictly increasing"),
        (lambda s: s.class_means(torch.zeros(2, 5, 3), "nodes", 1, [3]), TypeError,
         "nodes must be a torch.Tensor or an array that torch.as_tensor accepts"),
        (lambda s: s.class_means(torch.full((2, 5, 3), float("inf")), torch.zeros(2, 5, dtype=torch.long), 1, [3]),
         ValueError, "residuals holds a NaN or infinite value at index (0, 2)"),
        (lambda s: s.principal_components(torch.zeros(4, 3), 2), ValueError,
         "class_means has shape [4, 3], whose dimension -2 (nodes) should be 3"),
        (lambda s: s.principal_components(torch.zeros(3, 3), 3), ValueError, "num_components is 3; expected 1..2"),
        (lambda s: s.align_snapshots(s.principal_components(torch.randn(3, 4), 1), "twist"), ValueError,
         "alignment must be 'sign_flip' or 'procrustes', got 'twist'"),
    ],
)
def test_bad_input_raises_with_a_message_that_names_the_argument(call, error, message):
    with pytest.raises(error) as raised:
        call(icgt.RepresentationStats(3))
    assert message in str(raised.value)


def test_stats_repr_and_strided_positions():
    assert repr(icgt.RepresentationStats(16)) == "RepresentationStats(num_nodes=16)"
    assert icgt.RepresentationStats.strided_positions(10, 4) == [0, 4, 8]
    with pytest.raises(ValueError, match="stride must be positive"):
        icgt.RepresentationStats.strided_positions(10, 0)
    with pytest.raises(ValueError, match="num_nodes must be positive"):
        icgt.RepresentationStats(0)
