"""The probe gives the same results on CUDA as on the CPU: every captured point, attention scores,
probabilities, logits and head ablations, on the toy bundle and on SmolLM2-135M.

The GPU runs cuBLAS and its own attention kernel, so the comparison is to 1e-4 relative (float32)."""

import pytest
import torch
from helpers import max_relative_error
from toy_bundle import write_toy_bundles

import icgt

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="CUDA is not available on this machine (torch.cuda.is_available() is False); "
    "the comparison runs wherever a GPU is",
)


def compare(bundle, ids, layers, word_ids):
    request = dict(layers=layers, capture=[("pattern", layers[0]), ("z", layers[-1]), ("mlp_out", layers[0])],
                   target_ids=word_ids, logits="last", top_k=3,
                   attention_scores=[icgt.AttentionScore(offset=1, first_query=1)],
                   ablations=[icgt.HeadAblation(layers[0], [1]), icgt.HeadAblation(layers[-1], [0], "mean")])
    results = {device: icgt.ActivationProbe(bundle, device=device).run(ids, **request) for device in ("cpu", "cuda")}
    cpu, cuda = results["cpu"], results["cuda"]
    assert cuda.residuals.device.type == "cuda"
    assert max_relative_error(cuda.residuals.cpu(), cpu.residuals) < 1e-4
    for name, tensor in cpu.activations.items():
        assert max_relative_error(cuda.activations[name].cpu(), tensor) < 1e-4, name
    torch.testing.assert_close(cuda.target_probs.cpu(), cpu.target_probs, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(cuda.logits.cpu(), cpu.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cuda.attention_scores[0].cpu(), cpu.attention_scores[0], rtol=1e-4, atol=1e-6)


def test_toy_bundle_on_cuda_and_cpu(tmp_path):
    bundle = write_toy_bundles(tmp_path)
    ids = torch.randint(0, 44, (3, 40), generator=torch.Generator().manual_seed(0))
    compare(bundle, ids, [0, 2], [5, 6, 7])


def test_smollm2_on_cuda_and_cpu(smollm2_bundle):
    probe = icgt.ActivationProbe(smollm2_bundle, device="cpu")
    word_ids = icgt.concept_token_ids(probe.tokenizer, list(icgt.PROTOCOL_WORDS[:16]))
    walks = icgt.WalkSampler(icgt.Graph.square_grid(4, 4), seed=0).random_walks(4, 400, start="per_node")
    ids = torch.cat([torch.full((4, 1), probe.bos_token_id), torch.tensor(word_ids)[torch.from_numpy(walks)]], 1)
    compare(smollm2_bundle, ids, [3, 15, 29], word_ids)
