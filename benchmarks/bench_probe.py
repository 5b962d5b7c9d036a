"""ActivationProbe against Hugging Face transformers on the same GGUF-derived weights.

    python benchmarks/bench_probe.py [--model smollm2-135m] [--batch 16] [--length 1400]

Each variant runs in its own process so that its peak memory (VmHWM) is its own, after a short
warm-up call; the variants take turns, --repeats times, and the fastest run of each counts:
- icgt, capturing every layer's residual and the node tokens' next-token probabilities;
- icgt, capturing 2 layers and the probabilities;
- transformers, output_hidden_states=True, and the same probabilities from its logits.
Also the achieved GFLOP/s of the forward pass against torch.matmul's on this machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch

GGUF_MODELS = {"smollm2-135m", "gemma3-270m"}


def token_batch(probe_or_tokenizer_ids: list[int], bos: int, batch: int, length: int) -> torch.Tensor:
    """Random walks on the 4x4 grid as token ids, BOS first, as the experiment feeds them."""
    import icgt

    walks = icgt.WalkSampler(icgt.Graph.square_grid(4, 4), seed=0).random_walks(batch, length - 1, start="per_node")
    ids = np.asarray(probe_or_tokenizer_ids)[walks]
    return torch.from_numpy(np.concatenate([np.full((batch, 1), bos), ids], axis=1))


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_variant(variant: str, model: str, batch: int, length: int) -> dict:
    import icgt
    from icgt.bundles import resolve
    from tokenizers import Tokenizer

    bundle = icgt.bundle_for(model)
    tokenizer = Tokenizer.from_str(icgt.bundles.read_bundle_file(bundle, "tokenizer.json").decode())
    word_ids = icgt.concept_token_ids(tokenizer, list(icgt.PROTOCOL_WORDS[:16]))
    config = icgt.read_bundle_config(bundle)
    ids = token_batch(word_ids, config["bos_token_id"], batch, length)
    targets = torch.tensor(word_ids)
    warm_up = ids[:1, :64]  # first calls pay one-off costs (TorchScript profiling, allocator) on both sides
    if variant.startswith("icgt"):
        probe = icgt.ActivationProbe(bundle, device="cpu")
        layers = list(range(probe.num_layers)) if variant == "icgt-all" else [probe.num_layers // 3, 2 * probe.num_layers // 3]
        probe.run(warm_up, layers=layers, target_ids=targets)
        start = time.perf_counter()
        result = probe.run(ids, layers=layers, target_ids=targets)
        seconds = time.perf_counter() - start
        probs = result.target_probs
    else:
        from transformers import AutoModelForCausalLM

        source = resolve(model).path
        hf = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32).eval()
        with torch.inference_mode():
            hf(warm_up, output_hidden_states=True)
        start = time.perf_counter()
        with torch.inference_mode():
            out = hf(ids, output_hidden_states=True)
            probs = out.logits.float().softmax(-1)[..., targets]
        seconds = time.perf_counter() - start
    return {"variant": variant, "seconds": seconds, "tokens_per_second": batch * length / seconds,
            "peak_rss_mib": peak_rss_mib(), "probs_checksum": float(probs.double().sum())}


def forward_flops(config: dict, batch: int, length: int) -> float:
    """Multiply-adds x 2 of one forward pass: projections, MLP, causal attention and the head."""
    d, layers, vocab = config["hidden_size"], config["num_layers"], config["vocab_size"]
    heads, kv_heads, head_dim = config["num_heads"], config["num_kv_heads"], config["head_dim"]
    ffn = config["intermediate_size"]
    per_token_layer = 2 * (d * heads * head_dim * 2 + 2 * d * kv_heads * head_dim) + 2 * 3 * d * ffn
    attention = 2 * 2 * heads * head_dim * (length + 1) / 2  # QK^T and AV over the causal half
    return batch * length * (layers * (per_token_layer + attention) + 2 * d * vocab)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    best = min(_timed(lambda: torch.matmul(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=1400)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant; the fastest counts")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.model, args.batch, args.length)))
        return

    import icgt

    results: dict[str, dict] = {}
    for _ in range(args.repeats):  # interleaved, so that both sides see the same spells of load
        for variant in ("icgt-all", "icgt-2", "transformers"):
            output = subprocess.run([sys.executable, __file__, "--variant", variant, "--model", args.model,
                                     "--batch", str(args.batch), "--length", str(args.length)],
                                    check=True, capture_output=True, text=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            if variant not in results or result["seconds"] < results[variant]["seconds"]:
                results[variant] = result
    reference = results["transformers"]
    print(f"{args.model}, batch {args.batch} x {args.length} tokens, CPU ({torch.get_num_threads()} threads)")
    print(f"{'variant':>14} {'seconds':>8} {'tokens/s':>9} {'speed vs HF':>11} {'peak MiB':>9} {'memory vs HF':>12}")
    for name, r in results.items():
        print(f"{name:>14} {r['seconds']:>8.1f} {r['tokens_per_second']:>9.0f} "
              f"{r['tokens_per_second'] / reference['tokens_per_second']:>10.2f}x {r['peak_rss_mib']:>9.0f} "
              f"{r['peak_rss_mib'] / reference['peak_rss_mib']:>11.2f}x")
    checksums = {r["probs_checksum"] for r in results.values()}
    print(f"probability checksums agree to {max(checksums) - min(checksums):.2e} (sum over all of them)")
    flops = forward_flops(icgt.read_bundle_config(icgt.bundle_for(args.model)), args.batch, args.length)
    ceiling = matmul_gflops()
    achieved = flops / results["icgt-2"]["seconds"] / 1e9
    print(f"forward pass: {flops / 1e12:.2f} TFLOP; icgt achieves {achieved:.1f} GFLOP/s, "
          f"torch.matmul 2048^2 reaches {ceiling:.1f} GFLOP/s ({achieved / ceiling:.0%} of it)")


if __name__ == "__main__":
    main()
