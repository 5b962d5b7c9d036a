"""The experiment end to end on SmolLM2-135M (short setting), checked against a fresh numpy
recomputation from the activations it saved; resuming, interruption and bad configs."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest
import scipy.linalg
from sklearn.decomposition import PCA

import icgt
from icgt.study import compute, run_store
from icgt.study.executors import local

SHORT = {"preset": "grid", "model": "smollm2-135m", "num_sequences": 4, "sequence_length": 200,
         "layers": [2, 15, 29], "energy_window": 20, "pca_window": 100, "null_permutations": 200,
         "save_activations": True}


@pytest.fixture(scope="module")
def run(smollm2_bundle, real_cache, tmp_path_factory):
    """One short grid run, with its activations; the session's exported SmolLM2 is reused."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ICGT_CACHE_DIR", str(real_cache))
        folder = icgt.run_experiment(SHORT, output=tmp_path_factory.mktemp("runs"), progress=False)
    record = json.loads((folder / "run.json").read_text())
    with np.load(folder / "results.npz") as results, np.load(folder / "activations.npz") as activations:
        return folder, record, dict(results), dict(activations)


def visible(folder):
    """Every name in a folder, hidden ones too: a run leaves no lock file behind, failed or not."""
    return sorted(path.name for path in folder.iterdir())


def class_means_brute_force(residuals, nodes, window, position, num_nodes):
    """Mean activation of each node over positions [t - window, t] of every sequence (NaN if absent)."""
    start = max(0, position - window)
    means = np.full((num_nodes, residuals.shape[-1]), np.nan)
    for node in range(num_nodes):
        where = nodes[:, start:position + 1] == node
        if where.any():
            means[node] = residuals[:, start:position + 1][where].mean(0)
    return means


def normalised_energy(means, adjacency):
    x = means / np.linalg.norm(means)
    differences = ((x[:, None, :] - x[None, :, :]) ** 2).mean(-1)
    return 0.5 * (adjacency * differences).sum()


def test_the_run_is_self_describing(run):
    folder, record, results, activations = run
    assert folder.name == "smollm2-135m-grid"
    assert record["icgt_run_format"] == 3 and record["config"]["num_sequences"] == 4
    assert len(record["model"]["bundle_sha256"]) == 64 and record["model"]["architecture"] == "llama"
    assert {"icgt", "torch", "python"} <= set(record["versions"]) and record["seed"] == 0
    assert set(record["timings"]) >= {"sample_s", "probe_s", "analysis_s", "total_s"}
    assert record["graph"]["labels"][:4] == ["apple", "bird", "car", "egg"]
    np.testing.assert_array_equal(results["layers"], [2, 15, 29])
    assert activations["residuals"].shape == (3, 4, 201, 576)


def test_tokens_are_bos_then_the_walk_words(run):
    _, record, results, _ = run
    tokenizer = icgt.load_tokenizer("smollm2-135m")
    nodes, token_ids = results["nodes"], results["token_ids"]
    assert np.all(nodes[:, 0] == icgt.NOT_A_NODE) and np.all(token_ids[:, 0] == record["token_ids"]["bos"])
    text = "".join(" " + record["graph"]["labels"][node] for node in nodes[0, 1:])
    assert tokenizer.encode(text, add_special_tokens=False).ids == token_ids[0, 1:].tolist()


def test_energy_matches_a_brute_force_recomputation(run):
    _, record, results, activations = run
    adjacency = icgt.Graph.square_grid(4, 4).adjacency()
    residuals, nodes = activations["residuals"].astype(np.float64), results["nodes"]
    for layer_index in range(3):
        for snapshot in [0, 5, len(results["energy_positions"]) - 1]:
            position = int(results["energy_positions"][snapshot])
            means = class_means_brute_force(residuals[layer_index], nodes, 20, position, 16)
            expected = normalised_energy(means, adjacency) if not np.isnan(means).any() else np.nan
            np.testing.assert_allclose(results["energy"][layer_index, snapshot], expected, rtol=2e-4)


def test_spectral_profile_matches_numpys_eigenspaces_of_the_brute_force_means(run):
    """Each eigenspace's share from the projector on numpy's basis of it (any basis gives the same), of
    the alignment snapshots' class means (pca_window), less each class's unbiased variance over its count
    on that eigenspace (the sampling noise: icgt.study.analysis.debiased_spectral_profile)."""
    _, _, results, activations = run
    laplacian = np.diag(icgt.Graph.square_grid(4, 4).adjacency().sum(1)) - icgt.Graph.square_grid(4, 4).adjacency()
    values, vectors = np.linalg.eigh(laplacian)
    np.testing.assert_allclose(results["spectral_eigenvalues"], np.unique(values.round(9)), atol=1e-9)
    groups = [np.flatnonzero(np.abs(values - value) < 1e-6) for value in results["spectral_eigenvalues"]]
    residuals, nodes = activations["residuals"].astype(np.float64), results["nodes"]
    profile = results["debiased_spectral_profile"]
    assert profile.shape == results["spectral_alignment"].shape + (9,)
    centring = np.eye(16) - 1 / 16
    for layer_index in range(3):
        for snapshot in [3, 5, len(results["alignment_positions"]) - 1]:
            t = int(results["alignment_positions"][snapshot])
            start = max(0, t - SHORT["pca_window"])
            tokens, labels = residuals[layer_index][:, start:t + 1], nodes[:, start:t + 1]
            classes = [tokens[labels == node] for node in range(16)]
            if min(len(c) for c in classes) < 2:  # a class seen once has no spread: no noise estimate
                assert np.isnan(profile[layer_index, snapshot]).all()
                continue
            means = np.stack([c.mean(0) for c in classes])
            noise = np.array([((c - c.mean(0)) ** 2).sum() / (len(c) - 1) / len(c) for c in classes])
            projectors = [vectors[:, g] @ vectors[:, g].T for g in groups]
            on = np.array([np.sum((P @ centring @ means) ** 2) - np.sum(noise * np.sum((P @ centring) ** 2, 0))
                           for P in projectors])
            np.testing.assert_allclose(profile[layer_index, snapshot], on / on.sum(), atol=1e-5)


def test_null_baseline_mean_matches_the_exact_expectation(run):
    """Under a uniform relabelling every node pair is an edge with probability |E| / C(n, 2)."""
    _, _, results, activations = run
    residuals, nodes = activations["residuals"].astype(np.float64), results["nodes"]
    snapshot = np.flatnonzero(np.isfinite(results["energy"][1]))[-1]  # every node present in the window
    means = class_means_brute_force(residuals[1], nodes, 20, int(results["energy_positions"][snapshot]), 16)
    everything_linked = 1.0 - np.eye(16)
    expected = normalised_energy(means, everything_linked) * 24 / (16 * 15 / 2)
    mean, sd = results["energy_null_mean"][1, snapshot], results["energy_null_sd"][1, snapshot]
    assert abs(mean - expected) < 4 * sd / np.sqrt(200)


def test_accuracy_matches_a_direct_sum_over_neighbours(run):
    _, _, results, activations = run
    graph = icgt.Graph.square_grid(4, 4)
    probs, nodes = activations["target_probs"], results["nodes"]
    for b in range(4):
        for t in [1, 50, 200]:
            expected = probs[b, t, graph.neighbours(int(nodes[b, t]))].sum()
            np.testing.assert_allclose(results["accuracy"][b, t], expected, rtol=1e-5)
            renormalised = expected / probs[b, t].sum()
            np.testing.assert_allclose(results["accuracy_renormalized"][b, t], renormalised, rtol=1e-5)
    assert np.isnan(results["accuracy"][:, 0]).all()  # the BOS is not a node


def test_pca_and_alignment_match_sklearn_and_scipy(run):
    _, _, results, activations = run
    residuals, nodes = activations["residuals"].astype(np.float64), results["nodes"]
    grid = icgt.Graph.square_grid(4, 4)
    position = int(results["pca_positions"][-1])
    means = class_means_brute_force(residuals[2], nodes, 100, position, 16)
    reference = PCA(n_components=4).fit(means)
    np.testing.assert_allclose(results["pca_explained"][2, -1], reference.explained_variance_ratio_, rtol=1e-3)
    # Projections span the same subspace as sklearn's scores (the run aligns signs across snapshots).
    angles = scipy.linalg.subspace_angles(results["pca_projections"][2, -1], reference.transform(means))
    assert np.max(angles) < 1e-3
    snapshot = int(np.searchsorted(results["alignment_positions"], position))
    scores = reference.transform(means)[:, :2]
    cosines = np.cos(scipy.linalg.subspace_angles(scores, grid.spectral_embedding(2).eigenvectors))
    np.testing.assert_allclose(results["spectral_alignment"][2, snapshot], (cosines**2).mean(), atol=1e-4)


def test_the_report_is_written_with_valid_images(run):
    folder = run[0]
    page = (folder / "report" / "index.html").read_text()
    for name in ["pca", "energy_accuracy", "alignment"]:
        image = folder / "report" / f"{name}.png"
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"{name}.png" in page
        assert matplotlib.image.imread(image).shape[0] > 100
    assert not (folder / "report" / "days.png").exists()


@pytest.mark.parametrize("preset", ["ring", "hexagon", "pairs", "days"])
def test_every_other_preset_runs_and_reports(preset, smollm2_bundle, real_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ICGT_CACHE_DIR", str(real_cache))
    short = {"preset": preset, "model": "smollm2-135m", "num_sequences": 3, "sequence_length": 120,
             "layers": [5, 25], "energy_window": 20, "pca_window": 60, "null_permutations": 20}
    folder = icgt.run_experiment(short, output=tmp_path, progress=False)
    summary = json.loads((folder / "report" / "summary.json").read_text())
    figures = {"pca", "energy_accuracy", "alignment", "spectrum"} | ({"days"} if preset == "days" else set())
    assert {image.stem for image in (folder / "report").glob("*.png")} == figures
    assert summary["graph"] == ("days" if preset == "days" else icgt.study.config.preset(preset).graph)
    if preset == "days":
        assert summary["weekly_circle_pcs"] in ("PC1-2", "PC3-4")
        assert len(summary["final_ring_alignment_by_pc_pair"]) == 2


def test_complete_runs_are_kept_and_interrupted_ones_leave_nothing(run, monkeypatch, tmp_path):
    folder = run[0]
    before = (folder / "results.npz").stat().st_mtime_ns
    assert icgt.run_experiment(SHORT, output=folder.parent, progress=False) == folder
    assert (folder / "results.npz").stat().st_mtime_ns == before

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(compute, "analyse", interrupted)
    with pytest.raises(KeyboardInterrupt):
        icgt.run_experiment({**SHORT, "seed": 5}, output=tmp_path, progress=False)
    assert visible(tmp_path) == []


@pytest.mark.parametrize("change,error,message", [
    ({"model": "no-such-model"}, ValueError, "no-such-model"),
    ({"graph": "cube"}, ValueError, "graph 'cube' is unknown"),
    ({"preset": "spiral"}, ValueError, "unknown preset 'spiral'"),
    ({"words": ["xylophonist"] + list(icgt.PROTOCOL_WORDS[1:16])}, icgt.SplitWordsError, "xylophonist"),
    ({"energy_window": 500}, ValueError, "energy_window 500 is not shorter than sequence_length 200"),
])
def test_bad_configs_end_with_one_message_and_no_output(change, error, message, smollm2_bundle, real_cache,
                                                        monkeypatch, tmp_path):
    monkeypatch.setenv("ICGT_CACHE_DIR", str(real_cache))
    with pytest.raises(error, match=message):
        icgt.run_experiment({**SHORT, **change}, output=tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists() or visible(tmp_path / "runs") == []


def test_an_output_folder_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "smollm2-135m-grid").mkdir()
    (tmp_path / "smollm2-135m-grid" / "notes.txt").write_text("mine")
    with pytest.raises(run_store.NotAnIcgtRunError, match="exists and is not an icgt run"):
        icgt.run_experiment(SHORT, output=tmp_path, progress=False)
    assert visible(tmp_path) == ["smollm2-135m-grid"]


def test_command_line_errors_and_interrupts(monkeypatch, capsys):
    from icgt import cli

    assert cli.main(["run", "--preset", "grid", "--set", "energy_window=5000"]) == 1
    assert "energy_window 5000 is not shorter" in capsys.readouterr().err
    assert cli.main(["run", "--set", "seed"]) == 1
    assert "--set expects KEY=VALUE" in capsys.readouterr().err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(local, "compute_run", interrupted)
    assert cli.main(["run", "--preset", "ring", "--output", "unused"]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
