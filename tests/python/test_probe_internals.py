"""The inside of the model through the probe: hook points, attention patterns and scores, logits,
head ablations and scoped hooks, against transformers on the same tiny random checkpoints (Llama,
Qwen2, Gemma 2 with soft-capping, Gemma 3 with a sliding window shorter than the sequence), and
text in through the bundle's tokenizer."""

from __future__ import annotations

import pytest
import torch
from helpers import hf_internals, max_relative_error, randomise, save_checkpoint, tiny_tokenizer
from test_hf_checkpoints import CONFIGURATIONS
from toy_bundle import write_toy_bundles

import icgt
from icgt.models.export import export_bundle

TOLERANCE = 1e-5
LENGTH = 40
ARCHITECTURES = ["llama-llama3-rope", "qwen2-tied", "gemma2", "gemma3"]
POINTS = ["resid_pre", "pattern", "z", "attn_out", "resid_mid", "mlp_out", "resid_post"]
LENS_NAMES = {"resid_pre": "hook_resid_pre", "pattern": "attn.hook_pattern", "z": "attn.hook_z",
              "attn_out": "hook_attn_out", "resid_mid": "hook_resid_mid", "mlp_out": "hook_mlp_out",
              "resid_post": "hook_resid_post"}


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module", params=ARCHITECTURES)
def model(request, tokenizer, tmp_path_factory):
    """(transformers model, icgt probe on its export, token ids) for one architecture."""
    folder = tmp_path_factory.mktemp(request.param)
    hf_model = randomise(CONFIGURATIONS[request.param](tokenizer), seed=len(request.param))
    save_checkpoint(hf_model, folder, tokenizer)
    probe = icgt.ActivationProbe(export_bundle(folder, folder / "bundle.pt", progress=False), device="cpu")
    ids = torch.randint(3, tokenizer.get_vocab_size() - 3, (2, LENGTH), generator=torch.Generator().manual_seed(3))
    return hf_model, probe, ids


def test_every_point_of_every_block_and_the_logits_equal_transformers(model):
    hf_model, probe, ids = model
    reference = hf_internals(hf_model, ids)
    sites = [(point, layer) for layer in range(probe.num_layers) for point in POINTS]
    result = probe.run(ids, capture=sites, logits=list(range(LENGTH)))
    names = {f"blocks.{layer}.{LENS_NAMES[point]}": (point, layer) for point, layer in sites}
    assert set(result.activations) == set(names)
    for name, key in names.items():
        ours, theirs = result.activations[name], reference[key]
        assert ours.shape == theirs.shape, name
        assert max_relative_error(ours, theirs) < TOLERANCE, name
    assert max_relative_error(result.logits, reference["logits"]) < TOLERANCE


def test_reading_a_block_from_inside_changes_nothing_downstream(model):
    _, probe, ids = model
    plain = probe.run(ids, layers=list(range(probe.num_layers)), top_k=5)
    inside = probe.run(ids, layers=list(range(probe.num_layers)), top_k=5,
                       capture=[("z", 0), ("pattern", 1), ("mlp_out", probe.num_layers - 1)])
    assert torch.equal(plain.residuals, inside.residuals)
    assert torch.equal(plain.top_k_ids, inside.top_k_ids)


def test_zero_ablating_heads_equals_the_same_ablation_by_a_hook_in_transformers(model):
    hf_model, probe, ids = model
    ablate = {0: [1], probe.num_layers - 1: [0, 3]}
    reference = hf_internals(hf_model, ids, ablate=ablate)
    ablations = [icgt.HeadAblation(layer, heads) for layer, heads in ablate.items()]
    result = probe.run(ids, ablations=ablations, logits=list(range(LENGTH)), layers=[0])
    assert max_relative_error(result.logits, reference["logits"]) < TOLERANCE
    assert max_relative_error(result.residuals[0], reference[("resid_post", 0)]) < TOLERANCE
    # A gate of 0 is the same zero-ablation.
    for layer, heads in ablate.items():
        probe.set_head_gates(layer, [0.0 if head in heads else 1.0 for head in range(probe.num_heads)])
    try:
        assert torch.equal(probe.run(ids, logits=list(range(LENGTH))).logits, result.logits)
    finally:
        probe.clear_head_gates()


def test_attention_scores_are_the_pattern_reduced(model):
    _, probe, ids = model
    scores = [icgt.AttentionScore(offset=1, first_query=1), icgt.AttentionScore(offset=5, first_query=20, layers=[1])]
    result = probe.run(ids, capture=[("pattern", layer) for layer in range(probe.num_layers)], attention_scores=scores)
    pattern = torch.stack([result.activations[f"blocks.{layer}.attn.hook_pattern"] for layer in range(probe.num_layers)])
    queries = torch.arange(1, LENGTH)
    previous = pattern[:, :, :, queries, queries - 1].mean(-1)  # [layers, batch, heads]
    torch.testing.assert_close(result.attention_scores[0], previous, rtol=1e-5, atol=1e-7)
    queries = torch.arange(20, LENGTH)
    torch.testing.assert_close(result.attention_scores[1][0], pattern[1][:, :, queries, queries - 5].mean(-1),
                               rtol=1e-5, atol=1e-7)
    # Without the pattern captured, the scores come from blocks of queries: the same numbers.
    alone = probe.run(ids, attention_scores=scores)
    for ours, theirs in zip(alone.attention_scores, result.attention_scores):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-8)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return icgt.ActivationProbe(write_toy_bundles(tmp_path_factory.mktemp("toy")), device="cpu")


IDS = torch.tensor([[0, 5, 6, 7, 5, 6, 8, 9, 3, 4], [0, 1, 2, 3, 4, 45, 44, 46, 1, 2]])


def test_a_hook_that_changes_the_pattern_changes_what_attention_mixes(toy):
    uniform = torch.tril(torch.ones(10, 10)) / torch.arange(1, 11).unsqueeze(1)
    result = toy.run(IDS, hooks={("pattern", 1): lambda layer, pattern: uniform.expand_as(pattern).clone()},
                     capture=[("z", 1), ("resid_pre", 1)])
    plain = toy.run(IDS, capture=[("z", 1)])
    assert not torch.allclose(result.activations["blocks.1.attn.hook_z"], plain.activations["blocks.1.attn.hook_z"])
    # With uniform causal weights, each head's z is the running mean of its values.
    block = getattr(torch.jit.load(str(toy.bundle)).blocks, "1")
    _, _, v = block.attn.project(block.attention_input(result.activations["blocks.1.hook_resid_pre"]))
    values = v.repeat_interleave(toy.num_heads // toy.num_kv_heads, dim=1).transpose(1, 2)  # [B, T, H, D]
    running_mean = values.cumsum(1) / torch.arange(1, 11).view(1, 10, 1, 1)
    torch.testing.assert_close(result.activations["blocks.1.attn.hook_z"], running_mean, rtol=1e-5, atol=1e-6)


def test_mean_and_patch_ablations(toy):
    other = IDS.flip(0)
    z_other = toy.run(other, capture=[("z", 2)]).activations["blocks.2.attn.hook_z"]
    patched = toy.run(IDS, ablations=[icgt.HeadAblation(2, [1, 3], "patch")], patch_source=other, capture=[("z", 2)])
    z = patched.activations["blocks.2.attn.hook_z"]
    assert torch.equal(z[:, :, [1, 3]], z_other[:, :, [1, 3]])
    clean = toy.run(IDS, capture=[("z", 2)]).activations["blocks.2.attn.hook_z"]
    assert torch.equal(z[:, :, [0, 2]], clean[:, :, [0, 2]])
    # The same patch with explicit values, and mean ablation from the run's own mean.
    explicit = toy.run(IDS, ablations=[icgt.HeadAblation(2, [1, 3], "patch", z_other[:, :, [1, 3]])], layers=[2])
    assert torch.equal(explicit.residuals[0], toy.run(IDS, ablations=[icgt.HeadAblation(2, [1, 3], "patch")],
                                                      patch_source=other, layers=[2]).residuals[0])
    mean = toy.run(IDS, ablations=[icgt.HeadAblation(2, [0], "mean")], capture=[("z", 2)])
    expected = clean[:, :, 0].double().mean((0, 1)).float()
    torch.testing.assert_close(mean.activations["blocks.2.attn.hook_z"][:, :, 0], expected.expand(2, 10, -1))


def test_scoped_hooks_leave_when_the_run_or_block_ends_even_on_an_error(toy):
    calls = []
    toy.run(IDS, hooks={"blocks.0.hook_mlp_out": lambda layer, x: calls.append(layer)})
    toy.run(IDS, layers=[2])
    assert calls == [0]

    def failing(layer, x):
        raise RuntimeError("inside a scoped hook")

    with pytest.raises(RuntimeError, match="inside a scoped hook"):
        toy.run(IDS, hooks={("z", 1): failing})
    toy.run(IDS, layers=[2])  # the failing hook is gone
    with pytest.raises(KeyError):
        with toy.hooks({"blocks.1.hook_resid_post": lambda layer, x: calls.append("scoped")}):
            toy.run(IDS, layers=[1])
            raise KeyError("leave the block")
    toy.run(IDS, layers=[1])
    assert calls == [0, "scoped"]


def test_an_in_place_edit_of_z_is_a_zero_ablation(toy):
    def zero_head_two(layer, z):
        z[:, :, 2] = 0

    edited = toy.run(IDS, hooks={("z", 1): zero_head_two}, layers=[2])
    ablated = toy.run(IDS, ablations=[icgt.HeadAblation(1, [2])], layers=[2])
    assert torch.equal(edited.residuals, ablated.residuals)


def test_logits_top_k_and_log_probabilities_agree(toy):
    full = toy.run(IDS, logits=list(range(10)))
    last = toy.run(IDS, logits="last", log_probs=True, top_k=4)
    torch.testing.assert_close(last.logits[:, 0], full.logits[:, -1].log_softmax(-1))
    values, ids = full.logits.log_softmax(-1).topk(4, -1)
    torch.testing.assert_close(last.top_k_values, values)
    assert torch.equal(last.top_k_ids, ids)
    assert torch.equal(toy.run(IDS, logits=[-1, 0]).logits, full.logits[:, [9, 0]])
    targets = toy.run(IDS, target_ids=[5, 6]).target_probs
    torch.testing.assert_close(targets, full.logits.softmax(-1)[..., [5, 6]], rtol=1e-5, atol=1e-7)


def test_text_in_and_tokens_out(toy):
    assert toy.to_tokens(" w5 w6 w7").tolist() == [[0, 5, 6, 7]]
    assert toy.to_tokens([" w1 w2", " w3 w4"], prepend_bos=False).tolist() == [[1, 2], [3, 4]]
    assert toy.to_str_tokens(" w5 w6") == [" w0", " w5", " w6"]
    assert toy.to_str_tokens(torch.tensor([[44, 45]])) == [["é", "\n"]]
    assert toy.token_str(44) == "é" and toy.token_text(44) == "é".encode()
    text = toy.run(" w5 w6 w7", layers=[1]).residuals
    assert torch.equal(text, toy.run(torch.tensor([0, 5, 6, 7]), layers=[1]).residuals)
    with pytest.raises(ValueError, match=r"different token counts \(2 tokens: texts 0, 2; 3 tokens: text 1\); icgt "
                                         r"does not pad .* e\.g\. probe\.run\(\[texts\[i\] for i in \[0, 2\]\]\)"):
        toy.to_tokens([" w1 w2", " w1 w2 w3", " w4 w5"])
    with pytest.raises(ValueError, match=r"different token counts \(1 token: text 0; 2 tokens: text 1\)"):
        toy.run([" w1", " w1 w2"])
    with pytest.raises(TypeError, match="expected a string or a non-empty list of strings"):
        toy.to_tokens([])


def test_the_probe_and_its_results_say_what_they_are(toy):
    assert repr(toy) == ("ActivationProbe('toy.pt', llama, 3 blocks, 4 heads (2 key-value) of 4, hidden 16, "
                         "vocabulary 50, Float on cpu)")
    result = toy.run(IDS, layers=[1], capture=["blocks.0.attn.hook_z"], top_k=2)
    assert repr(result) == ("ProbeResult(residuals=[1, 2, 10, 16] of layers [1], 'blocks.0.attn.hook_z'=[2, 10, 4, 4], "
                            "top_k_ids=[2, 10, 2])")


@pytest.mark.parametrize("call,error,message", [
    (lambda p: p.run(IDS, capture=["blocks.0.hook_q"]), ValueError, r"'hook_q' is not a hook point icgt has"),
    (lambda p: p.run(IDS, capture=["blocks.7.attn.hook_z"]), ValueError, "layer 7 is out of range"),
    (lambda p: p.run(IDS, capture=[("z", -1)]), ValueError, "layer -1 \\(the embedding output\\) has only"),
    (lambda p: p.run(IDS, capture=[("z", 0), "blocks.0.attn.hook_z"]), ValueError, "captured twice"),
    (lambda p: p.run(IDS, capture=[3.5]), TypeError, "a hook point is a name"),
    (lambda p: p.run(IDS, hooks={("z", 0): 3}), TypeError, "expected a callable"),
    (lambda p: p.run(IDS, logits=[10]), ValueError, "logit position 10 is outside the sequence of 10"),
    (lambda p: p.run(IDS, top_k=51), ValueError, "top_k is 51; expected 0"),
    (lambda p: p.run(IDS, normalization="softmax"), ValueError, "normalization must be 'full_vocabulary'"),
    (lambda p: p.run(IDS, attention_scores=[icgt.AttentionScore(offset=12)]), ValueError,
     r"attention_scores\[0\] has offset 12"),
    (lambda p: icgt.AttentionScore(offset=-1), ValueError, "offset must be an integer from 0"),
    (lambda p: p.run(IDS, ablations=[icgt.HeadAblation(0, [4])]), ValueError, "head 4 of layer 0 does not exist"),
    (lambda p: p.run(IDS, ablations=[icgt.HeadAblation(3, [0])]), ValueError, "names layer 3; expected a block 0..2"),
    (lambda p: p.run(IDS, ablations=[icgt.HeadAblation(0, [])]), ValueError, "names no head"),
    (lambda p: p.run(IDS, ablations=[icgt.HeadAblation(0, [1]), icgt.HeadAblation(0, [1], "mean")]), ValueError,
     "head 1 of layer 0 is ablated twice"),
    (lambda p: p.run(IDS, ablations=[icgt.HeadAblation(0, [1], "patch")]), ValueError, "no patch_source"),
    (lambda p: p.run(IDS, patch_source=IDS), ValueError, "no patch ablation without values uses it"),
    (lambda p: p.run(IDS, ablations=[icgt.HeadAblation(0, [1], "patch")], patch_source=IDS[:, :5]), ValueError,
     "patch_source has shape"),
    (lambda p: p.run(IDS, ablations=[icgt.HeadAblation(0, [1], "mean", torch.zeros(2, 4))]), ValueError,
     r"values of shape \[2, 4\] and dtype Float; expected a floating-point tensor \[1, 4\]"),
    (lambda p: p.run(IDS, ablations=[icgt.HeadAblation(0, [1], "mean", torch.full((1, 4), float("nan")))]),
     ValueError, "NaN or infinite values"),
    (lambda p: p.run(IDS, ablations=[icgt.HeadAblation(0, [1], "zero", torch.zeros(1, 4))]), ValueError,
     "takes no values"),
    (lambda p: icgt.HeadAblation(0, [1], "half"), ValueError, "kind must be 'zero', 'mean' or 'patch'"),
])
def test_bad_requests_for_the_inside_are_clear_errors(toy, call, error, message):
    with pytest.raises(error, match=message):
        call(toy)
