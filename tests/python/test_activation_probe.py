"""icgt.ActivationProbe on a toy bundle, against the same TorchScript model run directly in Python."""

from pathlib import Path

import numpy as np
import pytest
import torch

import icgt
from toy_bundle import write_toy_bundles

IDS = torch.tensor([[0, 5, 6, 7, 5, 6, 8, 9], [0, 1, 2, 3, 4, 45, 44, 46]])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundles")
    write_toy_bundles(folder)
    return folder


@pytest.fixture(scope="module")
def reference(bundles):
    return torch.jit.load(str(bundles / "toy.pt"))


def manual_run(module, ids, change_at=None, change=None, gates=None):
    """The model block by block in Python: hidden states after every block."""
    with torch.no_grad():
        hidden = module.embed(ids)
        states = [hidden]
        for layer in range(module.num_layers):
            block = getattr(module.blocks, str(layer))
            hidden = block(hidden, None if gates is None else gates.get(layer))
            if layer == change_at:
                hidden = change(hidden)
            states.append(hidden)
        probs = module.head(module.final_norm(hidden)).softmax(-1)
    return states, probs


def test_description_vocabulary_and_config(bundles):
    probe = icgt.ActivationProbe(bundles / "toy.pt", device="cpu")
    assert (probe.architecture, probe.num_layers, probe.hidden_size, probe.vocab_size, probe.num_heads) == (
        "llama", 3, 16, 50, 4)
    assert probe.dtype == torch.float32 and probe.device == torch.device("cpu") and probe.bos_token_id == 0
    assert probe.config["architecture"] == "llama" and probe.max_positions == 64
    assert probe.token_id(" w7") == 7 and probe.token_text(44) == "é".encode()
    with pytest.raises(ValueError, match="several tokens have the text ' twin'"):
        probe.token_id(" twin")


def test_the_unembedding_is_the_heads_weight_and_gives_the_logits(bundles, reference):
    probe = icgt.ActivationProbe(bundles / "toy.pt", device="cpu")
    rows = probe.unembedding(torch.tensor([7, 0, 3]))
    assert rows.dtype == torch.float32 and rows.shape == (3, 16)
    assert torch.equal(rows, reference.head.weight[[7, 0, 3]])
    result = probe.run(IDS, logits="last")
    with torch.no_grad():
        normed = reference.final_norm(manual_run(reference, torch.as_tensor(IDS))[0][-1][:, -1])
    torch.testing.assert_close(normed @ probe.unembedding(torch.arange(50)).T, result.logits[:, -1], atol=1e-4,
                               rtol=1e-4)


def test_run_matches_the_model_run_directly(bundles, reference):
    probe = icgt.ActivationProbe(str(bundles / "toy.pt"), device="cpu")
    result = probe.run(IDS, layers=[icgt.EMBEDDING_LAYER, 1, 2], target_ids=[5, 6, 7])
    states, probs = manual_run(reference, IDS)
    assert torch.equal(result.residuals[0], states[0])
    assert torch.equal(result.residuals[1], states[2])
    assert torch.equal(result.residuals[2], states[3])
    torch.testing.assert_close(result.target_probs, probs[..., [5, 6, 7]], rtol=1e-5, atol=1e-7)
    # numpy and nested lists are accepted as token ids too
    again = probe.run(IDS.numpy(), layers=[1], target_ids=np.array([5, 6, 7]))
    assert torch.equal(again.residuals[0], states[2])
    assert probe.run(IDS.tolist()).target_probs is None


def test_renormalised_probabilities_sum_to_one_over_targets(bundles, reference):
    probe = icgt.ActivationProbe(bundles / "toy.pt")
    _, probs = manual_run(reference, IDS)
    chosen = probs[..., [1, 2, 3]]
    result = probe.run(IDS, target_ids=[1, 2, 3], normalization="over_targets", max_batch=1)
    torch.testing.assert_close(result.target_probs, chosen / chosen.sum(-1, keepdim=True), rtol=1e-5, atol=1e-7)


def test_the_automatic_batch_is_the_passes_a_run_makes(bundles):
    probe = icgt.ActivationProbe(bundles / "toy.pt", device="cpu")
    for batch, length in [(40, 64), (40, 48), (70, 32)]:
        layers = []
        probe.run(torch.randint(0, 16, (batch, length)), progress=layers.append)
        passes = layers.count(icgt.EMBEDDING_LAYER)
        assert passes == -(-batch // probe.automatic_batch(batch, length))
    assert probe.automatic_batch(40, 64) == 2048 // 64


def test_python_hook_intervention_equals_the_same_change_by_hand(bundles, reference):
    probe = icgt.ActivationProbe(bundles / "toy.pt")
    direction = torch.linspace(-1, 1, 16)
    calls = []
    probe.add_hook(0, lambda layer, residual: residual + direction)
    probe.add_hook(0, lambda layer, residual: calls.append((layer, tuple(residual.shape))))
    result = probe.run(IDS, layers=[0, 2], target_ids=[5])
    states, probs = manual_run(reference, IDS, change_at=0, change=lambda h: h + direction)
    assert calls == [(0, (2, 8, 16))]
    assert torch.equal(result.residuals[0], states[1])
    assert torch.equal(result.residuals[1], states[3])
    torch.testing.assert_close(result.target_probs, probs[..., [5]], rtol=1e-5, atol=1e-7)


def test_hook_errors_reach_the_caller(bundles):
    probe = icgt.ActivationProbe(bundles / "toy.pt")

    def broken(layer, residual):
        raise KeyError("from the hook")

    handle = probe.add_hook(1, broken)
    with pytest.raises(KeyError, match="from the hook"):
        probe.run(IDS)
    probe.remove_hook(handle)
    probe.add_hook(1, lambda layer, residual: residual[:, :2])
    with pytest.raises(ValueError, match="left a tensor that is not a Float tensor of shape"):
        probe.run(IDS)
    probe.clear_hooks()
    probe.add_hook(2, lambda layer, residual: True)
    with pytest.raises(TypeError, match="the hook at blocks.2.hook_resid_post returned a bool; expected None"):
        probe.run(IDS)
    probe.clear_hooks()
    probe.run(IDS)


def test_head_gates(bundles, reference):
    probe = icgt.ActivationProbe(bundles / "toy.pt")
    gates = torch.tensor([0.0, 1.0, 0.0, 1.0])
    probe.set_head_gates(2, gates.tolist())
    states, _ = manual_run(reference, IDS, gates={2: gates})
    assert torch.equal(probe.run(IDS, layers=[2]).residuals[0], states[3])
    probe.clear_head_gates()
    assert not torch.equal(probe.run(IDS, layers=[2]).residuals[0], states[3])


def test_head_gates_set_inside_a_hook_act_from_the_next_run(bundles, reference):
    probe = icgt.ActivationProbe(bundles / "toy.pt", device="cpu")
    gates = torch.tensor([1.0, 0.0, 0.5, 1.0])
    plain, _ = manual_run(reference, IDS)
    gated, _ = manual_run(reference, IDS, gates={1: gates})
    with probe.hooks({0: lambda layer, residual: probe.set_head_gates(1, gates)}):
        assert torch.equal(probe.run(IDS, layers=[2]).residuals[0], plain[3])
    assert torch.equal(probe.run(IDS, layers=[2]).residuals[0], gated[3])
    # Cleared inside a run hook (and with block 1 driven step by step, one sequence per pass): the same.
    hook = {0: lambda layer, residual: probe.clear_head_gates()}
    result = probe.run(IDS, layers=[2], hooks=hook, capture=[("z", 1)], max_batch=1)
    assert torch.equal(result.residuals[0], gated[3])
    assert torch.equal(probe.run(IDS, layers=[2]).residuals[0], plain[3])
    # The probe copies the gates: the caller's tensor changed in place afterwards changes nothing.
    probe.set_head_gates(1, gates)
    gates.fill_(1.0)
    assert torch.equal(probe.run(IDS, layers=[2]).residuals[0], gated[3])


@pytest.mark.parametrize("name,error,message", [
    ("missing.pt", FileNotFoundError, "does not exist"),
    ("garbage.pt", RuntimeError, "could not be read as a TorchScript bundle"),
    ("truncated.pt", RuntimeError, "could not be read"),
    ("not-icgt.pt", RuntimeError, "not an icgt bundle"),
    ("version99.pt", RuntimeError, "format version 99, but this build reads version 4"),
])
def test_bad_bundles(bundles, name, error, message):
    with pytest.raises(error, match=message):
        icgt.ActivationProbe(bundles / name)


def test_devices(bundles):
    with pytest.raises(ValueError, match="device 'tpu' is not understood"):
        icgt.ActivationProbe(bundles / "toy.pt", device="tpu")
    if torch.cuda.is_available():
        assert icgt.ActivationProbe(bundles / "toy.pt", device="auto").device.type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            icgt.ActivationProbe(bundles / "toy.pt", device="cuda")
        assert icgt.ActivationProbe(bundles / "toy.pt", device="auto").device.type == "cpu"


@pytest.mark.parametrize("call,error,message", [
    (lambda p: p.run(torch.zeros(1, 2, 4, dtype=torch.long)), TypeError, "must be a 2-D integer tensor"),
    (lambda p: p.run(torch.zeros(1, 4)), TypeError, "must hold integer token ids"),
    (lambda p: p.run(torch.zeros(0, 4, dtype=torch.long)), ValueError, "empty"),
    (lambda p: p.run([[1, 50]]), ValueError, "token id 50; the vocabulary is 0..49"),
    (lambda p: p.run(IDS, layers=[3]), ValueError, r"layer 3 is out of range; expected -1 \(embeddings\) to 2"),
    (lambda p: p.run(IDS, layers=[0, 0]), ValueError, "requested twice"),
    (lambda p: p.run(IDS, target_ids=[]), ValueError, "target_ids is empty"),
    (lambda p: p.run(IDS, target_ids=[99]), ValueError, "target_ids holds token id 99"),
    (lambda p: p.run(IDS, max_batch=-2), ValueError, "max_batch must be 0"),
    (lambda p: p.automatic_batch(4, 0), ValueError, "batch and length must be at least 1; got 4 and 0"),
    (lambda p: p.add_hook(7, print), ValueError, "layer 7 is out of range"),
    (lambda p: p.remove_hook(12), ValueError, "no hook has handle 12"),
    (lambda p: p.set_head_gates(0, [1.0, 1.0]), ValueError, "expected 4 gates"),
    (lambda p: p.set_head_gates(0, [1, 1, 1, 1]), TypeError, "must be floating point"),
    (lambda p: p.token_text(-1), ValueError, "outside the vocabulary"),
    (lambda p: p.unembedding(torch.tensor([3, 50])), ValueError, r"token ids 3\.\.50 reach outside the vocabulary 0\.\.49"),
    (lambda p: p.unembedding(torch.tensor([[3]])), TypeError, "token_ids"),
    (lambda p: p.unembedding(torch.tensor([3.0])), TypeError, "token_ids"),
    (lambda p: p.token_id(" apple"), ValueError, "no single token"),
])
def test_bad_requests(bundles, call, error, message):
    with pytest.raises(error, match=message):
        call(icgt.ActivationProbe(bundles / "toy.pt"))
