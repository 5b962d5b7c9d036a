"""The forward pass: ActivationProbe against Hugging Face transformers on the same GGUF weights.

    python benchmarks/bench_probe.py [--model smollm2-135m] [--batch 16] [--length 1400]
                                     [--dtype float32|bfloat16] [--repeats 2] [--variants icgt ...]
    python benchmarks/bench_probe.py --profile [icgt+probabilities] [--model ...] [--batch 2] [--dtype ...]

Every variant keeps the residual stream after every block, in the same dtype, on random walks over
the 4x4 grid's concept words. The bundle is exported first if need be; then each variant runs in its
own process, so that its peak memory (VmHWM, reset after loading) is its own, after a short warm-up
call; the variants take turns, --repeats times, and the fastest run of each counts:
- icgt: probe.run(ids, layers=all), its batch split automatically (on a CPU one 1400-token walk per pass);
- icgt, whole batch: the same in one pass (max_batch = the batch), what the split gains;
- icgt + probabilities: the same, plus the 16 node tokens' next-token probabilities (softmax over
  the whole vocabulary: the head runs too), as the experiment asks;
- transformers: the causal LM with output_hidden_states=True (it also computes the logits);
- transformers, decoder: the decoder alone (no head), output_hidden_states=True;
- transformers, per walk: the causal LM called one walk at a time, as icgt's automatic batching
  runs 1400-token walks on a CPU: whether the gain of small passes is icgt's own.
Also the forward pass's GFLOP/s (blocks only) against torch.matmul's rate in the same dtype, measured
in the same run, and the time the blocks' matrix products alone would take at that rate: no
implementation of the same blocks runs faster, so transformers' time over it bounds any speed-up.
--profile: where icgt's forward pass spends its time instead (LibTorch's operators, by their own time);
--profile icgt+probabilities profiles the pass the experiment makes, the head included.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch

from icgt.hardware import describe_line

VARIANTS = ("icgt", "icgt-whole-batch", "icgt+probabilities", "transformers", "transformers-decoder",
            "transformers-per-walk")


def token_batch(word_ids: list[int], bos: int, batch: int, length: int) -> torch.Tensor:
    """Random walks on the 4x4 grid as token ids, BOS first, as the experiment feeds them."""
    import icgt

    walks = icgt.WalkSampler(icgt.Graph.square_grid(4, 4), seed=0).random_walks(batch, length - 1, start="per_node")
    ids = np.asarray(word_ids)[walks]
    return torch.from_numpy(np.concatenate([np.full((batch, 1), bos), ids], axis=1))


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def probe_and_walks(model: str, dtype: str, batch: int, length: int):
    """The model's probe on the CPU, the grid's 16 node token ids and a batch of walks over them."""
    import icgt

    probe = icgt.ActivationProbe(icgt.bundle_for(model, dtype, progress=False), device="cpu")
    word_ids = icgt.concept_token_ids(probe.tokenizer, list(icgt.PROTOCOL_WORDS[:16]))
    return probe, word_ids, token_batch(word_ids, probe.bos_token_id, batch, length)


def run_variant(variant: str, model: str, batch: int, length: int, dtype: str) -> dict:
    from icgt.models.bundles import resolve

    probe, word_ids, ids = probe_and_walks(model, dtype, batch, length)
    warm_up = ids[:1, :64]  # first calls pay one-off costs (TorchScript profiling, allocator) on both sides
    if variant.startswith("icgt"):
        layers = list(range(probe.num_layers))
        targets = torch.tensor(word_ids) if variant == "icgt+probabilities" else None
        probe.run(warm_up, layers=layers, target_ids=targets)
        reset_peak_rss()
        start = time.perf_counter()
        result = probe.run(ids, layers=layers, target_ids=targets,
                           max_batch=batch if variant == "icgt-whole-batch" else 0)
        seconds = time.perf_counter() - start
        last = result.residuals[-2]  # the last block's input: transformers normalises its last state
    else:
        del probe
        from transformers import AutoModelForCausalLM

        source = resolve(model).path
        hf = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name,
                                                  dtype=getattr(torch, dtype)).eval()
        run = hf.get_decoder() if variant == "transformers-decoder" else hf
        calls = ids.split(1) if variant == "transformers-per-walk" else [ids]
        with torch.inference_mode():
            run(warm_up, output_hidden_states=True)
            reset_peak_rss()
            start = time.perf_counter()
            lasts = [run(call, output_hidden_states=True).hidden_states[-2] for call in calls]
            seconds = time.perf_counter() - start
        last = torch.cat(lasts)
    return {"variant": variant, "seconds": seconds, "tokens_per_second": batch * length / seconds,
            "peak_rss_mib": peak_rss_mib(), "checksum": float(last.double().abs().sum())}


def profile(model: str, batch: int, length: int, dtype: str, probabilities: bool) -> None:
    """Prints the operators of one icgt forward pass (every block kept, and the node tokens'
    probabilities if asked) by their own CPU time."""
    probe, word_ids, ids = probe_and_walks(model, dtype, batch, length)
    layers = list(range(probe.num_layers))
    targets = torch.tensor(word_ids) if probabilities else None
    probe.run(ids[:1, :64], layers=layers, target_ids=targets)
    with torch.autograd.profiler.profile() as recorded:
        probe.run(ids, layers=layers, target_ids=targets)
    events = sorted(recorded.key_averages(), key=lambda event: -event.self_cpu_time_total)
    total = sum(event.self_cpu_time_total for event in events)
    what = " with the probabilities" if probabilities else ""
    print(f"{model}, {dtype}, {batch} x {length} tokens{what} on {describe_line()}: {total / 1e6:.2f} s of operators")
    for event in events[:10]:
        print(f"{event.key:>52} {event.self_cpu_time_total / 1e6:7.2f} s {event.self_cpu_time_total / total:6.1%}")


def block_flops(config: dict, batch: int, length: int) -> tuple[float, float]:
    """Multiply-adds x 2 of the decoder blocks (no head): projections and MLP, and causal attention."""
    d, layers = config["hidden_size"], config["num_layers"]
    heads, kv_heads, head_dim = config["num_heads"], config["num_kv_heads"], config["head_dim"]
    ffn = config["intermediate_size"]
    per_token_layer = 2 * (d * heads * head_dim * 2 + 2 * d * kv_heads * head_dim) + 2 * 3 * d * ffn
    window = min(length, config["sliding_window"] or length)
    attention = 2 * 2 * heads * head_dim * (window + 1) / 2  # QK^T and AV over the causal half
    tokens = batch * length * layers
    return tokens * per_token_layer, tokens * attention


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=1400)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant; the fastest counts")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=VARIANTS,
                        help="the variants to run (default: all); the bounds below need icgt and both transformers")
    parser.add_argument("--profile", nargs="?", const="icgt", choices=["icgt", "icgt+probabilities"],
                        help="profile icgt's forward pass instead (with the probabilities: the head too)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile:
        profile(args.model, args.batch, args.length, args.dtype, args.profile == "icgt+probabilities")
        return
    if "icgt" not in args.variants:
        parser.error("--variants: the table is relative to icgt, so it must be among them")
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.model, args.batch, args.length, args.dtype)))
        return

    import icgt

    bundle = icgt.bundle_for(args.model, args.dtype)  # exported here, so that no variant's process exports it
    results: dict[str, dict] = {}
    for _ in range(args.repeats):  # interleaved, so that every side sees the same spells of load
        for variant in args.variants:
            output = subprocess.run([sys.executable, __file__, "--variant", variant, "--model", args.model,
                                     "--batch", str(args.batch), "--length", str(args.length), "--dtype", args.dtype],
                                    check=True, capture_output=True, text=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            if variant not in results or result["seconds"] < results[variant]["seconds"]:
                results[variant] = result
    print(f"{args.model}, {args.dtype}, batch {args.batch} x {args.length} tokens, every block's residual kept, "
          f"on {describe_line()}")
    print(f"{'variant':>21} {'seconds':>8} {'tokens/s':>9} {'peak MiB':>9} "
          f"{'icgt speed':>10} {'icgt memory':>11}")
    for name, r in results.items():
        print(f"{name:>21} {r['seconds']:>8.1f} {r['tokens_per_second']:>9.0f} {r['peak_rss_mib']:>9.0f} "
              f"{r['seconds'] / results['icgt']['seconds']:>9.2f}x "
              f"{results['icgt']['peak_rss_mib'] / r['peak_rss_mib']:>10.2f}x")
    sums = [r["checksum"] for r in results.values()]
    print(f"the last block's input agrees to {(max(sums) - min(sums)) / max(sums):.1e} (relative, sum of |x|)")
    products, attention = block_flops(icgt.read_bundle_config(bundle), args.batch, args.length)
    ceiling = matmul_gflops(getattr(torch, args.dtype))
    achieved = (products + attention) / results["icgt"]["seconds"] / 1e9
    print(f"blocks: {(products + attention) / 1e12:.2f} TFLOP; icgt achieves {achieved:.1f} GFLOP/s, {args.dtype} "
          f"torch.matmul 2048^2 reaches {ceiling:.1f} GFLOP/s ({achieved / ceiling:.0%} of it)")
    if {"transformers", "transformers-decoder"} <= results.keys():
        floor = products / ceiling / 1e9
        print(f"the blocks' matrix products alone at that rate: {floor:.1f} s; transformers over it: "
              f"{results['transformers']['seconds'] / floor:.2f}x, the decoder over it: "
              f"{results['transformers-decoder']['seconds'] / floor:.2f}x (no faster blocks can gain more)")


if __name__ == "__main__":
    main()
