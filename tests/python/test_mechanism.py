"""The mechanism experiments on a model whose heads are set by hand, where the answers are known: a
previous-token head (block 0, head 0) and an induction head reading it (block 1, head 1), every other
head and MLP zero; the intervention and subspace steps checked against numpy; and each experiment
end to end on SmolLM2 at a short setting, with its report.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from toy_bundle import save_bundle

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


SHORT = {"model": "smollm2-135m", "num_sequences": 4, "sequence_length": 200, "pca_window": 80,
         "intervention_window": 150, "null_permutations": 30, "bootstrap": 5, "random_draws": 2}


@pytest.mark.parametrize("experiment", ["intervention", "heads", "subspace", "toy-mixing"])
def test_each_experiment_runs_and_states_its_result(experiment, smollm2_bundle, real_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ICGT_CACHE_DIR", str(real_cache))
    folder = icgt.run_experiment({"preset": f"grid-{experiment}", **SHORT}, output=tmp_path, progress=False)
    summary = json.loads((folder / "report" / "summary.json").read_text())
    assert summary["experiment"] == experiment.replace("-", "_") and summary["sentences"]
    pictures = list((folder / "report").glob("*.png"))
    assert pictures and (folder / "report" / "index.html").read_text().count("<figure>") == len(pictures)
    arrays = np.load(folder / "results.npz")
    if experiment == "intervention":
        mass = arrays["intervention_mass"]
        assert mass.shape == (4, 4, mechanism.TARGETS_PER_SEQUENCE) and np.all((mass >= 0) & (mass <= 1))
        # The hooks move each case by its own target, in passes of any size (here 5 of the 36 cases).
        split = icgt.run_experiment({"preset": "grid-intervention", **SHORT, "max_batch": 5}, output=tmp_path / "split",
                                    progress=False, report=False)
        np.testing.assert_allclose(np.load(split / "results.npz")["intervention_mass"], mass, atol=1e-5)
    elif experiment == "heads":
        assert arrays["head_previous_token"].shape == (30, 9) and arrays["head_accuracy"].shape[:2] == (4, 5)
    elif experiment == "subspace":
        assert arrays["subspace_accuracy"].shape == (3, 201)
    else:
        assert 0 <= arrays["toy_spectral_alignment"][0, -1] <= 1
