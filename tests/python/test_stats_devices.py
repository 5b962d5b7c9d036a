"""RepresentationStats and EnergyMetrics give the same results on CUDA as on the CPU.

On the CPU, class means and the energies of energy_over_context come from a fused C++ loop; on
CUDA from LibTorch operations (index_add_, a running sum, differences), so this compares two
implementations as well as two devices.
Tolerance: 1e-4 relative on float32 activations (float32 segment sums on the CPU, float64 running
sums on the GPU, and cuBLAS / cuSOLVER against MKL / LAPACK in the small dense steps).
"""

import numpy as np
import pytest
import torch

import icgt

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="CUDA is not available on this machine (torch.cuda.is_available() is False); "
    "the comparison runs wherever a GPU is",
)


def assert_same(cuda_result, cpu_result, rtol=1e-4, atol=1e-5):
    assert cuda_result.device.type == "cuda"  # results stay on the device
    np.testing.assert_allclose(cuda_result.cpu().numpy(), cpu_result.numpy(), rtol=rtol, atol=atol)


def test_cuda_and_cpu_agree_on_every_metric():
    grid = icgt.Graph.square_grid(4, 4)
    walks = icgt.WalkSampler(grid, seed=0).random_walks(16, 600, start="per_node")
    walks[:, 0] = icgt.NOT_A_NODE
    generator = torch.Generator().manual_seed(0)
    residuals = torch.randn(3, 16, 600, 64, generator=generator) + 5.0
    probabilities = torch.distributions.Dirichlet(torch.ones(17)).sample((16, 600))[..., :16]
    stats, metrics = icgt.RepresentationStats(16), icgt.EnergyMetrics(grid)
    results = {}
    for device in ("cpu", "cuda"):
        x = residuals.to(device)
        curve = stats.class_means(x, walks, 20, stats.strided_positions(600, 10))
        per_sequence = stats.class_means_per_sequence(x, walks, 50, [100, 300, 599])
        snapshots = stats.class_means(x, walks, 200, [250, 420, 599])
        pcs = stats.align_snapshots(stats.principal_components(snapshots.means, 2), "procrustes")
        null = metrics.energy_null_baseline(snapshots.means, "scale_invariant", 500, seed=3)
        accuracy = metrics.rule_following_accuracy(probabilities.to(device), walks)
        sweep = metrics.energy_over_context(x, walks, 20, stats.strided_positions(600, 10), "scale_invariant",
                                            class_means_at=[(200, [250, 420, 599])], spectral_profile=True)
        results[device] = {
            "means": curve.means,
            "counts": curve.counts,
            "per_sequence": per_sequence.means,
            "energy": metrics.dirichlet_energy(curve.means),
            "scale_invariant": metrics.dirichlet_energy(curve.means, "scale_invariant"),
            "projections": pcs.projections,
            "explained_variance_ratio": pcs.explained_variance_ratio,
            "null_mean": null.mean,
            "null_z": null.z_score,
            "cosines": metrics.spectral_alignment(snapshots.means, 2).principal_angle_cosines,
            "correlation": metrics.graph_distance_correlation(snapshots.means),
            "accuracy": accuracy.mean_full_vocabulary,
            "energy_over_context": sweep.energy,
            "class_means_at": sweep.class_means[0].means,
            "spectral_profile_over_context": sweep.spectral_profile.shares,
            "spectral_profile": metrics.spectral_profile(snapshots.means).shares,
        }
    for name, cpu_result in results["cpu"].items():
        assert_same(results["cuda"][name], cpu_result)
