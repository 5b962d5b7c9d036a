"""The mechanism experiments on a model whose heads are set by hand, where the answers are known: a
previous-token head (block 0, head 0) and an induction head reading it (block 1, head 1), every other
head and MLP zero; the intervention, subspace and head-ablation steps checked against numpy and the
probe's own ablations; each experiment end to end on the toy bundle (every option, its arrays and
report numbers recomputed independently) and on SmolLM2 at a short setting, with its report.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from toy_bundle import save_bundle, write_toy_bundles

import icgt
from icgt.study import mechanism
from icgt.models.scriptable import CausalLM, ModelConfig

VOCAB = 12
HIDDEN = 2 * VOCAB + 2  # current token, previous token (written by block 0), a constant, an output slot
HEAD_DIM = 64  # 32 rotary pairs: the first 4 turn fast (position), the last 12 hardly at all (identity)
POSITION_PAIRS = range(4)
IDENTITY_PAIRS = range(20, 20 + VOCAB)


def circuit_model() -> CausalLM:
    config = ModelConfig.tiny("llama", vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=8, num_layers=2,
                              num_heads=2, num_kv_heads=2, head_dim=HEAD_DIM, rope_theta=10000.0, bos_token_id=0,
                              max_position_embeddings=256, tie_word_embeddings=False)
    model = CausalLM(config)
    half = HEAD_DIM // 2
    frequencies = model.blocks[0].attn.rotary.inv_freq
    constant, output = 2 * VOCAB, 2 * VOCAB + 1
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.fill_(1.0)
        embedding = model.embed.weight
        embedding[torch.arange(VOCAB), torch.arange(VOCAB)] = 1.0
        embedding[:, constant] = 1.0
        model.head.weight[torch.arange(VOCAB), torch.arange(VOCAB)] = 1.0
        keys, values = 2 * HEAD_DIM, 4 * HEAD_DIM  # where k and v begin among qkv_proj's rows
        qkv = [block.attn.qkv_proj.weight for block in model.blocks]
        # Block 0, head 0: q and k from the constant, turned so that the score peaks at offset 1 in
        # every position pair; v is the token, written by o_proj into the previous-token slot.
        for pair in POSITION_PAIRS:
            angle = float(frequencies[pair])
            qkv[0][pair, constant] = 3.0
            qkv[0][keys + pair, constant] = 3.0 * math.cos(angle)
            qkv[0][keys + pair + half, constant] = 3.0 * math.sin(angle)
        for token in range(VOCAB):
            qkv[0][values + token, token] = 1.0
            model.blocks[0].attn.o_proj.weight[VOCAB + token, token] = 1.0
        # Block 1, head 1: q is the current token, k the previous token: a key matches where the token
        # before it is the current one (induction); v is the token there, written to the output slot.
        for token, pair in zip(range(VOCAB), IDENTITY_PAIRS):
            qkv[1][HEAD_DIM + pair, token] = 4.0
            qkv[1][keys + HEAD_DIM + pair, VOCAB + token] = 4.0
            qkv[1][values + HEAD_DIM + token, token] = 1.0
        model.blocks[1].attn.o_proj.weight[output, HEAD_DIM:2 * HEAD_DIM] = 1.0
    return model.eval()


@pytest.fixture(scope="module")
def circuit(tmp_path_factory):
    return icgt.ActivationProbe(save_bundle(circuit_model(), tmp_path_factory.mktemp("circuit") / "circuit.pt"),
                                device="cpu")


def test_the_hand_set_heads_are_ranked_first(circuit):
    config = icgt.study.config.from_dict({"graph": "ring", "graph_size": [4], "words": list("abcd"), "score_length": 8,
                                    "score_sequences": 6})
    previous, induction = mechanism.head_scores(circuit, config)
    assert np.unravel_index(previous.argmax(), previous.shape) == (0, 0) and previous[0, 0] > 0.9
    assert np.unravel_index(induction.argmax(), induction.shape) == (1, 1) and induction[1, 1] > 0.5
    assert previous[0, 0] > 2 * np.sort(previous, axis=None)[-2]
    assert induction[1, 1] > 2 * np.sort(induction, axis=None)[-2]


@pytest.mark.parametrize("layer, head", [(0, 0), (1, 1)])
def test_ablating_a_head_takes_away_exactly_its_share_of_the_output(circuit, layer, head):
    ids = torch.tensor([[0, 3, 5, 7, 2, 3, 5, 7, 2, 9]])
    clean = circuit.run(ids, layers=[layer], capture=[("z", layer)])
    ablated = circuit.run(ids, layers=[layer], ablations=[icgt.HeadAblation(layer, [head])])
    weights = getattr(torch.jit.load(str(circuit.bundle)).blocks, str(layer)).attn.o_proj.weight.detach().numpy()
    z = clean.activations[f"blocks.{layer}.attn.hook_z"][0, :, head].numpy()  # [T, head_dim]
    share = z @ weights[:, head * HEAD_DIM:(head + 1) * HEAD_DIM].T  # numpy: the head's output projection
    difference = (clean.residuals[0, 0] - ablated.residuals[0, 0]).numpy()
    np.testing.assert_allclose(difference, share, atol=1e-5)
    assert np.abs(share).max() > 0.5  # the head does contribute


def test_the_induction_head_predicts_the_token_after_the_earlier_occurrence(circuit):
    ids = torch.tensor([[0, 3, 5, 7, 2, 3, 5, 7, 2]])
    pattern = circuit.run(ids, capture=[("pattern", 1)]).activations["blocks.1.attn.hook_pattern"][0, 1]
    # From position 5 (token 3, seen at 1, followed by 5 at 2) the head looks at position 2.
    for query, key in [(5, 2), (6, 3), (7, 4)]:
        assert pattern[query, key] > 0.9


def test_a_move_to_a_point_own_coordinates_changes_nothing(circuit):
    ids = torch.tensor([[0, 3, 5, 7, 2, 3]])
    basis = torch.linalg.qr(torch.randn(HIDDEN, 2, generator=torch.Generator().manual_seed(0))).Q.T.unsqueeze(0)

    def stay(layer, residual):
        last = residual[:, -1].float()
        residual[:, -1] += mechanism.move_in_plane(last, last.clone(), basis).to(residual.dtype)

    moved = circuit.run(ids, hooks={("resid_post", 0): stay}, logits="last").logits
    assert torch.equal(moved, circuit.run(ids, logits="last").logits)
    goal = torch.randn(1, HIDDEN)
    step = mechanism.move_in_plane(torch.zeros(1, HIDDEN), goal, basis)
    np.testing.assert_allclose(step.numpy(), (goal @ basis[0].T @ basis[0]).numpy(), atol=1e-6)


def test_a_subspace_ablation_removes_exactly_the_projection():
    generator = torch.Generator().manual_seed(1)
    basis = torch.linalg.qr(torch.randn(16, 2, generator=generator)).Q.T
    centre, residual = torch.randn(16, generator=generator), torch.randn(3, 5, 16, generator=generator)
    removed = mechanism.remove_plane(residual, basis, centre)
    np.testing.assert_allclose(((removed - centre) @ basis.T).numpy(), 0, atol=1e-6)
    expected = residual.numpy() - ((residual - centre).numpy() @ basis.numpy().T) @ basis.numpy()
    np.testing.assert_allclose(removed.numpy(), expected, atol=1e-6)


def numpy_matched_dimension(offsets: np.ndarray, target_share: float) -> tuple[int, np.ndarray]:
    """The largest k >= 2 at which a random plane of the top k principal directions of offsets holds on
    average at least target_share of their squared norm (2 / k of the top k's share), and those directions."""
    values, vectors = np.linalg.eigh(offsets.T @ offsets)
    values, vectors = values[::-1], vectors[:, ::-1]
    mean_share = [2 * values[:k].sum() / k / values.sum() for k in range(1, len(values) + 1)]
    k = max([k for k in range(2, len(values) + 1) if mean_share[k - 1] >= target_share], default=2)
    return k, vectors[:, :k]


@pytest.mark.parametrize("target_share", [0.05, 0.3, 0.6, 0.99])
def test_variance_matched_planes_lie_in_the_top_directions_and_hold_the_share_on_average(target_share):
    rng = np.random.default_rng(3)
    scales = 0.7 ** np.arange(12)  # a spectrum falling off like a residual stream's
    offsets = rng.normal(size=(3000, 12)) * scales @ np.linalg.qr(rng.normal(size=(12, 12)))[0]
    expected_k, top = numpy_matched_dimension(offsets, target_share)
    planes, k = mechanism.variance_matched_planes(torch.from_numpy(offsets).float(), target_share, 400,
                                                  torch.Generator().manual_seed(4))
    assert k == expected_k
    shares = []
    for plane in planes:
        basis = plane.double().numpy()
        np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-5)  # orthonormal rows
        np.testing.assert_allclose(basis - (basis @ top) @ top.T, 0, atol=1e-5)  # within the top k directions
        shares.append(np.linalg.norm(offsets @ basis.T) ** 2 / np.linalg.norm(offsets) ** 2)
    values = np.linalg.eigvalsh(offsets.T @ offsets)[::-1]
    mean_share = 2 * values[:k].sum() / k / values.sum()  # a uniform plane of k dimensions holds 2 / k of them
    assert np.mean(shares) == pytest.approx(mean_share, rel=0.05)
    if target_share <= 2 * values[:2].sum() / 2 / values.sum():  # reachable: matched, and the next k would not be
        assert mean_share >= target_share and (k == 12 or 2 * values[:k + 1].sum() / (k + 1) / values.sum()
                                               < target_share)
    else:
        assert k == 2  # more than any plane holds: the top plane itself


def test_a_turn_in_the_plane_keeps_the_norm_and_the_plane_and_turns_by_the_angle():
    generator = torch.Generator().manual_seed(2)
    basis = torch.linalg.qr(torch.randn(8, 2, generator=generator)).Q.T.unsqueeze(0).repeat(3, 1, 1)  # [3, 2, 8]
    step = mechanism.move_in_plane(torch.zeros(3, 8), torch.randn(3, 8, generator=generator), basis)
    angles = torch.tensor([0.3, math.pi, -1.0])
    turned = mechanism.turn_in_plane(step, basis, angles).numpy()
    b, v = basis[0].numpy(), step.numpy()
    np.testing.assert_allclose(np.linalg.norm(turned, axis=1), np.linalg.norm(v, axis=1), rtol=1e-5)
    np.testing.assert_allclose(turned, (turned @ b.T) @ b, atol=1e-5)  # nothing outside the plane
    cosines = (turned * v).sum(1) / (np.linalg.norm(turned, axis=1) * np.linalg.norm(v, axis=1))
    np.testing.assert_allclose(cosines, np.cos(angles.numpy()), atol=1e-5)
    # Counter-clockwise in the basis' coordinates: (1, 0) goes to (cos a, sin a).
    rotation = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    np.testing.assert_allclose(turned[0] @ b.T, rotation @ (v[0] @ b.T), atol=1e-5)


def test_a_plane_removed_from_position_1_spares_the_bos_and_its_share_is_numpys():
    generator = torch.Generator().manual_seed(3)
    basis = torch.linalg.qr(torch.randn(16, 2, generator=generator)).Q.T
    centre, residual = torch.randn(16, generator=generator), torch.randn(3, 5, 16, generator=generator)
    residual[:, 0] *= 50  # a BOS far larger than any other position, as an attention sink's
    spared = mechanism.remove_plane(residual, basis, centre, first_position=1)
    assert torch.equal(spared[:, 0], residual[:, 0])
    np.testing.assert_allclose(spared[:, 1:].numpy(), mechanism.remove_plane(residual, basis, centre)[:, 1:].numpy())
    x, b, c = residual.numpy().astype(float), basis.numpy().astype(float), centre.numpy().astype(float)
    for first in (0, 1):
        offset = (x[:, first:] - c).reshape(-1, 16)
        expected = np.linalg.norm(offset @ b.T) ** 2 / np.linalg.norm(offset) ** 2
        assert mechanism.removed_share(residual, basis, centre, first) == pytest.approx(expected, rel=1e-9)


def test_head_counts_and_the_overlap_of_the_top_sets():
    assert mechanism.head_counts(72, []) == [1, 2, 4, 7, 14]  # 1%, 2.5% round to 1 and 2; 5% of 72 = 3.6
    assert mechanism.head_counts(12, [50]) == [1, 2]
    rng = np.random.default_rng(0)
    previous, induction = rng.random((6, 4)), rng.random((6, 4))
    counts = [1, 3, 5, 12]
    expected = [len(set(np.argsort(-previous.ravel())[:k]) & set(np.argsort(-induction.ravel())[:k])) for k in counts]
    assert mechanism.top_overlap(previous, induction, counts).tolist() == expected
    assert mechanism.top_overlap(previous, previous, counts).tolist() == counts
    assert mechanism.heads_by_block(np.array([23, 4, 7]), 4) == {1: [0, 3], 5: [3]}


def test_the_controls_have_twenty_draws_and_bad_variants_are_refused():
    config = icgt.study.config.from_dict({"experiment": "heads"})
    assert config.random_draws == 20 and config.head_ablation_kinds == ["mean", "zero"]
    assert config.bos_variants == ["excluded"]
    with pytest.raises(icgt.study.config.ConfigError) as error:
        icgt.study.config.from_dict({"head_ablation_kinds": ["mean", "mean"], "bos_variants": ["bos"]})
    assert error.value.problems == [
        "head_ablation_kinds must list some of ['mean', 'zero'], each once, got ['mean', 'mean']",
        "bos_variants must list some of ['excluded', 'included'], each once, got ['bos']"]
    with pytest.raises(icgt.study.config.ConfigError, match="bos_variants must list"):
        icgt.study.config.from_dict({"bos_variants": []})


@pytest.fixture(scope="module")
def toy_probe(tmp_path_factory):
    return icgt.ActivationProbe(write_toy_bundles(tmp_path_factory.mktemp("toy")), device="cpu")


TOY_IDS = torch.tensor([[0, 3, 5, 7, 2, 3, 5, 7, 2, 9], [0, 8, 1, 4, 4, 6, 1, 8, 3, 2], [0, 2, 2, 5, 9, 1, 7, 3, 6, 4]])


def test_z_means_leave_the_run_unchanged_and_equal_numpys_over_every_pass(toy_probe):
    hooks, means = mechanism.z_mean_hooks(toy_probe.num_layers)
    captures = [("z", layer) for layer in range(toy_probe.num_layers)]
    result = toy_probe.run(TOY_IDS, hooks=hooks, capture=captures, logits="last", max_batch=2)  # passes of 2 and 1
    torch.testing.assert_close(result.logits, toy_probe.run(TOY_IDS, logits="last").logits, atol=1e-5, rtol=1e-5)
    for layer in range(toy_probe.num_layers):
        z = result.activations[f"blocks.{layer}.attn.hook_z"].double().numpy()  # [B, T, H, hd]
        np.testing.assert_allclose(means[layer].numpy(), z[:, 1:].reshape(-1, *z.shape[2:]).mean(0), rtol=1e-10)


@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_head_ablation_hooks_equal_the_probes_ablations_and_can_spare_the_bos(toy_probe, kind):
    hooks, means = mechanism.z_mean_hooks(toy_probe.num_layers)
    clean = toy_probe.run(TOY_IDS, layers=list(range(toy_probe.num_layers)), hooks=hooks)
    chosen = {0: [1, 3], 2: [2]}
    values = means if kind == "mean" else None
    ablations = [icgt.HeadAblation(layer, heads, kind, None if kind == "zero" else means[layer][heads].float())
                 for layer, heads in chosen.items()]
    layers = list(range(toy_probe.num_layers))
    probe_ablated = toy_probe.run(TOY_IDS, layers=layers, ablations=ablations).residuals
    everywhere = toy_probe.run(TOY_IDS, layers=layers, hooks=mechanism.head_ablation_hooks(chosen, 0, values)).residuals
    torch.testing.assert_close(everywhere, probe_ablated, atol=1e-5, rtol=1e-5)
    spared = toy_probe.run(TOY_IDS, layers=layers, hooks=mechanism.head_ablation_hooks(chosen, 1, values)).residuals
    # The BOS attends to itself alone: sparing its z keeps its residual clean in every block ...
    torch.testing.assert_close(spared[:, :, 0], clean.residuals[:, :, 0], atol=1e-6, rtol=1e-6)
    # ... and the first ablated block's other positions are ablated as the probe ablates them.
    torch.testing.assert_close(spared[0, :, 1:], probe_ablated[0, :, 1:], atol=1e-5, rtol=1e-5)
    assert (spared[:, :, 1:] - clean.residuals[:, :, 1:]).abs().max() > 1e-2


TOY = {"graph": "grid", "graph_size": [4, 4], "words": [f"w{i}" for i in range(1, 17)], "num_sequences": 6,
       "sequence_length": 60, "pca_window": 40, "intervention_window": 50, "null_permutations": 20, "bootstrap": 0,
       "score_length": 16, "random_draws": 4, "bos_variants": ["excluded", "included"]}


def late_accuracy(curve):
    """A curve's mean over its last tenth of positions (NaN where none is finite), by numpy."""
    positions = np.arange(curve.shape[-1])
    values = curve[..., positions >= 0.9 * positions.max()]
    return np.nanmean(values) if np.isfinite(values).any() else np.nan


@pytest.fixture(scope="module")
def toy_runs(toy_probe, tmp_path_factory):
    output = tmp_path_factory.mktemp("toy-runs")
    return {experiment: icgt.run_experiment({"preset": f"grid-{experiment}", **TOY, "model": str(toy_probe.bundle)},
                                            output=output, progress=False)
            for experiment in ("intervention", "heads", "subspace")}


def probe_head_ablations(flat_heads, num_heads, kind, spare_bos, z):
    """The probe's own HeadAblations that ablate flat heads (block * num_heads + head) as the heads
    experiment does: by zero or by each head's mean z over the plain run's non-BOS positions (numpy).
    Sparing the BOS, HeadAblation has no first position, so a patch does it: those values everywhere
    but at position 0, where the plain run's own z stays (the BOS attends to itself alone, so that
    is its z in the ablated run too)."""
    by_block = {}
    for flat in flat_heads:
        by_block.setdefault(int(flat) // num_heads, []).append(int(flat) % num_heads)
    ablations = []
    for layer, heads in sorted(by_block.items()):
        plain = z[f"blocks.{layer}.attn.hook_z"][:, :, heads].double().numpy()  # [B, T, h, hd]
        mean = plain[:, 1:].mean((0, 1))
        if spare_bos:
            values = np.zeros_like(plain) if kind == "zero" else np.broadcast_to(mean, plain.shape).copy()
            values[:, 0] = plain[:, 0]
            ablations.append(icgt.HeadAblation(layer, heads, "patch", torch.from_numpy(values).float()))
        else:
            ablations.append(icgt.HeadAblation(layer, heads, kind, None if kind == "zero" else
                                               torch.from_numpy(mean).float()))
    return ablations


def test_the_head_ablations_of_every_kind_and_bos_variant_are_the_probes(toy_runs, toy_probe):
    folder = toy_runs["heads"]
    arrays = dict(np.load(folder / "results.npz"))
    assert arrays["head_ablation_kinds"].tolist() == ["mean", "zero"]
    assert arrays["head_bos_included"].tolist() == [False, True]
    counts = arrays["head_counts"].tolist()
    total = toy_probe.num_layers * toy_probe.num_heads
    draws = TOY["random_draws"]
    # The top sets for every kind, variant and k; random heads for the first kind alone, at the k
    # nearest 5% of the heads (0.6 of 12: k = 1).
    assert counts == [1, 2] and arrays["head_accuracy"].shape == (2, 2, 2, 2, 61)
    assert arrays["head_random_counts"].tolist() == [1] and arrays["head_random_accuracy"].shape == (2, draws, 1, 61)
    order = arrays["head_random_order"]
    assert order.shape == (draws, total) and all(sorted(row) == list(range(total)) for row in order)
    assert len({tuple(row) for row in order}) == draws
    previous, induction = arrays["head_previous_token"], arrays["head_induction"]
    assert arrays["head_top_overlap"].tolist() == [
        len(set(np.argsort(-previous.ravel())[:k]) & set(np.argsort(-induction.ravel())[:k])) for k in counts]
    # Every cell recomputed with the probe's own HeadAblation (zero, mean with numpy's means of the
    # plain run's z; a patch where the BOS is spared) and accuracy from its probabilities.
    ids, nodes, scored = (torch.from_numpy(arrays[name]) for name in ("token_ids", "nodes", "scored"))
    metrics = icgt.EnergyMetrics(icgt.Graph.square_grid(4, 4))
    word_ids = torch.tensor(json.loads((folder / "run.json").read_text())["token_ids"]["words"])
    z = toy_probe.run(ids, capture=[("z", layer) for layer in range(toy_probe.num_layers)]).activations

    def check(full, renormalized, flat_heads, kind, spare_bos):
        ablations = probe_head_ablations(flat_heads, toy_probe.num_heads, kind, spare_bos, z)
        probabilities = toy_probe.run(ids, target_ids=word_ids, ablations=ablations).target_probs
        accuracy = metrics.rule_following_accuracy(probabilities, nodes, scored)
        np.testing.assert_allclose(full, accuracy.mean_full_vocabulary.numpy(), atol=1e-5, equal_nan=True)
        np.testing.assert_allclose(renormalized, accuracy.mean_renormalized.numpy(), atol=1e-5, equal_nan=True)

    tops = [np.argsort(-previous, axis=None), np.argsort(-induction, axis=None)]
    for a, kind in enumerate(("mean", "zero")):
        for v, spare_bos in enumerate((True, False)):
            for c, top in enumerate(tops):
                for i, k in enumerate(counts):
                    check(arrays["head_accuracy"][a, v, c, i], arrays["head_accuracy_renormalized"][a, v, c, i],
                          top[:k], kind, spare_bos)
    for v, spare_bos in enumerate((True, False)):
        for d in range(draws):
            check(arrays["head_random_accuracy"][v, d, 0], arrays["head_random_accuracy_renormalized"][v, d, 0],
                  order[d, :1], "mean", spare_bos)
    assert not np.allclose(arrays["head_random_accuracy"][0, :, 0], arrays["head_random_accuracy"][0, :1, 0])
    # The report: random heads as the mean and the 2.5-97.5 percentiles of their draws, for the first
    # kind and both variants, and only where drawn; no NaN stated.
    summary = json.loads((folder / "report" / "summary.json").read_text())
    assert summary["random_counts"] == [1] and summary["random_kind"] == "mean" and summary["draws"] == draws
    for v, variant in enumerate(("the BOS spared", "the BOS included")):
        late = np.array([late_accuracy(curve) for curve in arrays["head_random_accuracy"][v, :, 0]])  # [D]
        random_ = summary["ablations"]["mean"][variant]["accuracy"]["random"]
        assert len(random_) == 1 and random_[0]["draws"] == draws
        assert random_[0]["mean"] == pytest.approx(late.mean(), abs=1e-6)
        assert [random_[0]["low"], random_[0]["high"]] == pytest.approx(np.percentile(late, [2.5, 97.5]), abs=1e-6)
        assert "random" not in summary["ablations"]["zero"][variant]["accuracy"]
    assert summary["ablations"]["zero"]["the BOS included"]["alignment"]["induction"] == pytest.approx(
        arrays["head_alignment"][1, 1, 1].tolist())
    sentences = summary["sentences"]
    text = " ".join(sentences)
    assert "nan" not in text.lower()
    assert "Mean-ablating the top 1 induction head (1 of 12 heads, 8.3%; the BOS spared)" in text
    assert "(the BOS included)" in text and "renormalised over the node words" in text
    assert "Zero-ablating them instead" in text and "overlap in" in text
    by_size = [sentence for sentence in sentences if sentence.startswith("Late accuracy by ablation size")]
    assert len(by_size) == 2  # one per BOS variant
    late = np.vectorize(late_accuracy, signature="(t)->()")(arrays["head_accuracy"])  # [A, VB, 2, K]
    for v, sentence in enumerate(by_size):
        sizes = sentence.split(": ", 1)[1].rstrip(".").split("; ")
        assert sizes[1] == f"k = 2 (16.7%): {late[0, v, 0, 1]:.3f} / {late[0, v, 1, 1]:.3f}"  # no random heads
        assert sizes[0].startswith(f"k = 1 (8.3%): {late[0, v, 0, 0]:.3f} / {late[0, v, 1, 0]:.3f} / random ")


def test_random_heads_are_drawn_where_they_are_compared_and_the_passes_are_counted(toy_probe, monkeypatch):
    for total in range(2, 400):
        counts = mechanism.head_counts(total, [])
        (k,) = mechanism.random_head_counts(total, counts)
        assert k in counts and abs(k - 0.05 * total) == min(abs(c - 0.05 * total) for c in counts)
    assert mechanism.random_head_counts(72, mechanism.head_counts(72, [])) == [4]  # 5% of 72 = 3.6
    with pytest.raises(ValueError, match="no ablation sizes"):
        mechanism.random_head_counts(1, [])
    # Every forward pass of the walks goes through _ablated_measures: count them on the toy (12 heads).
    passes = []
    original = mechanism._ablated_measures
    monkeypatch.setattr(mechanism, "_ablated_measures", lambda *args: passes.append(args[-1]) or original(*args))
    config = icgt.study.config.preset("grid-heads", model=str(toy_probe.bundle), words=TOY["words"], num_sequences=2,
                                      sequence_length=40, pca_window=30, score_length=8, random_draws=3,
                                      bos_variants=["excluded", "included"], head_counts=[3, 6])
    arrays = icgt.study.compute.compute_run(config, progress=False).arrays
    assert arrays["head_counts"].tolist() == [1, 2, 3, 6] and arrays["head_random_counts"].tolist() == [1]
    expected = 2 * 2 * 2 * 4 + 2 * 3 * 1  # kinds x variants x top sets x ks, then variants x draws x 1 k
    assert mechanism.ablation_passes(config, 12) == expected and len(passes) == expected + 1  # and the plain pass
    # For the default config: Gemma 3 270M (72 heads) and Qwen2.5-Coder-1.5B (336 heads), before and now.
    default = icgt.study.config.from_dict({"experiment": "heads"})
    for heads_, ks in ((72, 5), (336, 7)):
        assert len(mechanism.head_counts(heads_, [])) == ks
        assert mechanism.ablation_passes(default, heads_) == 2 * 1 * 2 * ks + 1 * 20 * 1  # 40 and 48, from 220 and 308


def test_the_subspace_ablation_measures_every_plane_and_what_it_holds(toy_runs, toy_probe):
    folder = toy_runs["subspace"]
    arrays = dict(np.load(folder / "results.npz"))
    planes = 1 + TOY["random_draws"]
    assert arrays["subspace_accuracy"].shape == (2, planes, 61)
    assert arrays["subspace_bos_included"].tolist() == [False, True]
    ids, nodes = arrays["token_ids"], arrays["nodes"]
    block = int(arrays["subspace_blocks"][0])
    fit, measure = np.arange(3), arrays["subspace_measured_sequences"]
    residual = toy_probe.run(torch.from_numpy(ids), layers=[block]).residuals[0].double().numpy()  # [B, T, d]
    # The PC plane by numpy: class means of the fitted walks over the trailing window, their top two PCs.
    start = 60 - TOY["pca_window"]
    window_nodes, window = nodes[fit, start:], residual[fit, start:]
    means = np.stack([window[window_nodes == node].mean(0) for node in range(16)])
    centre = means.mean(0)
    basis = np.linalg.svd(means - centre, full_matrices=False)[2][:2]
    for v, first in enumerate((1, 0)):
        offset = (residual[measure, first:] - centre).reshape(-1, residual.shape[-1])
        expected = np.linalg.norm(offset @ basis.T) ** 2 / np.linalg.norm(offset) ** 2
        assert arrays["subspace_removed_variance"][v, 0, 0] == pytest.approx(expected, rel=1e-4)
        # Random planes, uniform over directions, hold about 2 / d of it (d = 16 here).
        assert 0 < np.median(arrays["subspace_removed_variance"][v, 1:, 0]) < 0.5
        # The matched planes: drawn within the top k principal directions of the fitted walks, k by numpy.
        fitted = (residual[fit, first:] - centre).reshape(-1, residual.shape[-1])
        pc_share = np.linalg.norm(fitted @ basis.T) ** 2 / np.linalg.norm(fitted) ** 2
        k, _ = numpy_matched_dimension(fitted, pc_share)
        assert arrays["subspace_matched_dimension"][v].tolist() == [k]
        matched_share = arrays["subspace_matched_removed_variance"][v, :, 0]
        assert matched_share.shape == (TOY["random_draws"],)
        # On the measured walks they hold about the PC plane's share (4 draws), more than random planes.
        assert expected / 1.5 < matched_share.mean() < expected * 1.5
        assert matched_share.mean() > arrays["subspace_removed_variance"][v, 1:, 0].mean()
    plain = toy_probe.run(torch.from_numpy(ids[measure]), target_ids=torch.tensor(
        json.loads((folder / "run.json").read_text())["token_ids"]["words"])).target_probs
    accuracy = icgt.EnergyMetrics(icgt.Graph.square_grid(4, 4)).rule_following_accuracy(
        plain, torch.from_numpy(nodes[measure]), torch.from_numpy(arrays["scored"][measure]))
    np.testing.assert_allclose(arrays["subspace_plain_accuracy"], accuracy.mean_full_vocabulary.numpy(), atol=1e-5,
                               equal_nan=True)
    summary = json.loads((folder / "report" / "summary.json").read_text())
    random_ = summary["variants"]["the BOS included"]["random_planes"]
    late = np.array([late_accuracy(curve) for curve in arrays["subspace_accuracy"][1, 1:]])
    assert random_["accuracy"]["mean"] == pytest.approx(late.mean(), abs=1e-6)
    assert [random_["accuracy"]["low"], random_["accuracy"]["high"]] == pytest.approx(
        np.percentile(late, [2.5, 97.5]), abs=1e-6)
    assert random_["removed_variance"]["mean"] == pytest.approx(arrays["subspace_removed_variance"][1, 1:].mean(),
                                                                abs=1e-6)
    matched = summary["variants"]["the BOS included"]["matched_planes"]
    late = np.array([late_accuracy(curve) for curve in arrays["subspace_matched_accuracy"][1]])
    assert matched["accuracy"]["mean"] == pytest.approx(late.mean(), abs=1e-6)
    assert summary["variants"]["the BOS included"]["matched_planes_at_or_above"] == int(
        (late >= late_accuracy(arrays["subspace_accuracy"][1, 0])).sum())
    assert matched["dimension"] == arrays["subspace_matched_dimension"][1].tolist()
    less = arrays["subspace_matched_removed_variance"][1].mean(1) < arrays["subspace_removed_variance"][1, 0].mean()
    assert (matched["holding_less"], matched["holding_less_at_or_above"]) == (
        int(less.sum()), int((late[less] >= late_accuracy(arrays["subspace_accuracy"][1, 0])).sum()))
    assert f"top {matched['dimension'][0]} principal directions" in summary["sentences"][1]
    assert "the BOS spared" in summary["sentences"][0] and "the BOS included" in summary["sentences"][1]


def test_the_intervention_is_reported_by_walk_with_its_in_plane_control(toy_runs, toy_probe, tmp_path):
    folder = toy_runs["intervention"]
    arrays = dict(np.load(folder / "results.npz"))
    mass = arrays["intervention_mass"]
    assert mass.shape == (len(mechanism.INTERVENTION_CONDITIONS), 6, mechanism.TARGETS_PER_SEQUENCE)
    assert np.all((mass >= 0) & (mass <= 1)) and not np.allclose(mass[4], mass[1])
    summary = json.loads((folder / "report" / "summary.json").read_text())
    per_walk = mass[1].mean(1)  # each walk's three targets first, then a t interval over the six walks
    half = stats.t.ppf(0.975, 5) * stats.sem(per_walk)
    assert summary["numbers"]["mass"]["moved to the target"] == pytest.approx([per_walk.mean(), half], abs=1e-6)
    difference = (mass[1] - mass[4]).mean(1)
    assert summary["numbers"]["moved_minus"]["random place in the plane"] == pytest.approx(
        [difference.mean(), stats.t.ppf(0.975, 5) * stats.sem(difference)], abs=1e-6)
    assert "6 walks x 3 targets" in summary["sentences"][0] and "random place in the plane" in summary["sentences"][0]
    # The hooks move each case by its own target, in passes of any size (here 5 of the 18 cases).
    split = icgt.run_experiment({"preset": "grid-intervention", **TOY, "model": str(toy_probe.bundle), "max_batch": 5},
                                output=tmp_path, progress=False, report=False)
    np.testing.assert_allclose(np.load(split / "results.npz")["intervention_mass"], mass, atol=1e-5)


def test_the_authors_unembedding_option_adds_a_condition_and_changes_nothing_else(toy_runs, toy_probe, tmp_path):
    plain = dict(np.load(toy_runs["intervention"] / "results.npz"))
    assert not any(name.startswith("intervention_unembedding") for name in plain)  # off by default
    runs = {times: icgt.run_experiment({"preset": "grid-intervention", **TOY, "model": str(toy_probe.bundle),
                                        "intervention_unembedding": times}, output=tmp_path / str(times),
                                       progress=False)
            for times in (1e-6, 1, 50)}
    arrays = {times: dict(np.load(folder / "results.npz")) for times, folder in runs.items()}
    for times, run in arrays.items():
        for name in ("mass", "mass_renormalized", "top1", "top3"):
            np.testing.assert_allclose(run[f"intervention_{name}"], plain[f"intervention_{name}"], atol=1e-6)
            assert run[f"intervention_unembedding_{name}"].shape == (6, mechanism.TARGETS_PER_SEQUENCE)
    moved = plain["intervention_mass"][1]
    # A vanishing subtraction is the plain move; a large one moves the residual far from it.
    np.testing.assert_allclose(arrays[1e-6]["intervention_unembedding_mass"], moved, atol=1e-4)
    assert np.abs(arrays[50]["intervention_unembedding_mass"] - moved).max() > 0.05
    summary = json.loads((runs[1] / "report" / "summary.json").read_text())
    difference = (arrays[1]["intervention_unembedding_mass"] - moved).mean(1)  # per walk, then over walks
    assert summary["numbers"]["unembedding"]["minus_moved"] == pytest.approx(
        [difference.mean(), stats.t.ppf(0.975, 5) * stats.sem(difference)], abs=1e-6)
    assert "subtracting the target word's unembedding (unit length) 1 time per PC" in summary["sentences"][2]
    with pytest.raises(icgt.study.config.ConfigError, match="intervention_unembedding must be a finite number >= 0"):
        icgt.study.config.preset("grid-intervention", intervention_unembedding=-1.0)


SHORT = {"model": "smollm2-135m", "num_sequences": 4, "sequence_length": 200, "pca_window": 80,
         "intervention_window": 150, "null_permutations": 30, "bootstrap": 5, "random_draws": 2,
         "head_ablation_kinds": ["mean"]}
#: The heads experiment makes 17 passes over the walks on SmolLM2 (270 heads: the top sets at 7 ks, 2
#: random draws, the plain pass), so its walks are shorter still.
SHORTER = {"heads": {"num_sequences": 2, "sequence_length": 100, "pca_window": 40}}


@pytest.mark.parametrize("experiment", ["intervention", "heads", "subspace", "toy-mixing"])
def test_each_experiment_runs_and_states_its_result(experiment, smollm2_bundle, real_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ICGT_CACHE_DIR", str(real_cache))
    settings = {"preset": f"grid-{experiment}", **SHORT, **SHORTER.get(experiment, {})}
    folder = icgt.run_experiment(settings, output=tmp_path, progress=False)
    summary = json.loads((folder / "report" / "summary.json").read_text())
    assert summary["experiment"] == experiment.replace("-", "_") and summary["sentences"]
    pictures = list((folder / "report").glob("*.png"))
    assert pictures and (folder / "report" / "index.html").read_text().count("<figure>") == len(pictures)
    arrays = np.load(folder / "results.npz")
    if experiment == "intervention":
        mass = arrays["intervention_mass"]
        assert mass.shape == (5, 4, mechanism.TARGETS_PER_SEQUENCE) and np.all((mass >= 0) & (mass <= 1))
    elif experiment == "heads":
        assert arrays["head_previous_token"].shape == (30, 9)
        assert arrays["head_accuracy"].shape[:4] == (1, 1, 2, 7)  # mean ablation, the BOS spared; k = 1 .. 54
        assert arrays["head_random_counts"].tolist() == [14] and arrays["head_random_accuracy"].shape == (1, 2, 1, 101)
    elif experiment == "subspace":
        assert arrays["subspace_accuracy"].shape == (1, 3, 201)
    else:
        assert 0 <= arrays["toy_spectral_alignment"][0, -1] <= 1
