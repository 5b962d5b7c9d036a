"""The paper's full grid experiment on a model of Llama-3.1-8B's exact shape, on a GPU, timed.

    python benchmarks/gpu_check.py                       # Llama-3.1-8B's configuration, bfloat16, CUDA
    python benchmarks/gpu_check.py --dry-run             # a 2-block model of the same kind, CPU, seconds

The weights are random (speed does not depend on their values): the model is built and initialised
on the device, written once as an icgt bundle (tensor checksums, a vocabulary and a tokenizer in
which the protocol's 30 concept words are single tokens), and the experiment of `icgt run --preset
grid` runs on it: 16 walks x 1400 words, every block captured, every metric. Printed: load time, the
time after load (forward and analysis), tokens/s, peak device memory, and the forward pass's
TFLOP/s against the same device's bfloat16 (or float32) matmul rate, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_probe import block_flops  # noqa: E402

#: Llama-3.1-8B's configuration (config.json of meta-llama/Llama-3.1-8B), as icgt reads it.
LLAMA_31_8B = dict(architecture="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_layers=32,
                   num_heads=32, num_kv_heads=8, head_dim=128, rms_norm_eps=1e-5, rope_theta=500000.0,
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                   hidden_activation="silu", tie_word_embeddings=False, bos_token_id=128000,
                   max_position_embeddings=131072)
#: A 2-block model of the same kind, for a dry run anywhere.
TINY = dict(LLAMA_31_8B, vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4,
            num_kv_heads=2, head_dim=16, bos_token_id=0)


def random_bundle(values: dict, dtype: torch.dtype, device: str, path: Path) -> Path:
    """An icgt bundle of a randomly initialised model with these hyper-parameters."""
    import icgt
    from icgt.models.scriptable import FORMAT_VERSION, CausalLM, ModelConfig
    from icgt.models.tokens import PROTOCOL_WORDS
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    config = ModelConfig(**values)
    with torch.device(device):
        model = CausalLM(config, dtype)
    model.initialise_randomly(seed=0).record_checksums()
    words = [" " + word for word in PROTOCOL_WORDS]
    tokens = [f"<{i}>" for i in range(config.vocab_size)]
    tokens[1:1 + len(words)] = words
    tokenizer = Tokenizer(models.WordLevel({token: i for i, token in enumerate(tokens)}, unk_token="<0>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_next")
    tokenizer.decoder = decoders.Fuse()
    extra = {"config.json": json.dumps({"format_version": FORMAT_VERSION, **config.to_dict(),
                                        "dtype": str(dtype).removeprefix("torch."), "add_bos": False,
                                        "source": "random", "source_sha256": "", "model_name": None,
                                        "icgt_version": icgt.__version__}),
             "vocabulary.hex": "".join(token.encode().hex() + "\n" for token in tokens),
             "tokenizer.json": tokenizer.to_str()}
    torch.jit.save(torch.jit.script(model), str(path), _extra_files=extra)
    return path


def matmul_tflops(dtype: torch.dtype, device: str, size: int) -> float:
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for _ in range(6):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.matmul(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="a 2-block model on the CPU, 2 walks of 60 words")
    parser.add_argument("--folder", type=Path, help="where the bundle and the run go (default: a temporary folder)")
    args = parser.parse_args()
    import icgt

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device; use --dry-run on a CPU")
    dtype = torch.float32 if args.dry_run else torch.bfloat16
    values = TINY if args.dry_run else LLAMA_31_8B
    settings = dict(num_sequences=2, sequence_length=60, energy_window=10, pca_window=30,
                    null_permutations=20) if args.dry_run else {}
    folder = args.folder or Path(tempfile.mkdtemp(prefix="icgt-gpu-check-"))
    folder.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    bundle = random_bundle(values, dtype, device, folder / "llama-3.1-8b-shape-random.pt")
    built = time.perf_counter() - start
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    config = {"preset": "grid", "model": str(bundle), "device": device,
              "dtype": str(dtype).removeprefix("torch."), **settings}
    run = icgt.run_experiment(config, output=folder / "runs", progress=False, report=False)
    record = json.loads((run / "run.json").read_text())
    timings = record["timings"]
    load = timings["total_s"] - timings["probe_s"] - timings["analysis_s"] - timings["sample_s"]
    tokens = record["config"]["num_sequences"] * (record["config"]["sequence_length"] + 1)
    flops = sum(block_flops(icgt.read_bundle_config(bundle), record["config"]["num_sequences"],
                            record["config"]["sequence_length"] + 1))
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    rate = flops / timings["probe_s"] / 1e12
    ceiling = matmul_tflops(dtype, device, 256 if args.dry_run else 8192)
    print(f"model: {values['num_layers']} blocks, width {values['hidden_size']}, {values['num_heads']} heads "
          f"({values['num_kv_heads']} key-value), vocabulary {values['vocab_size']}, {dtype}, random weights, on {device}")
    print(f"bundle built and written in {built:.1f} s; loaded in {load:.1f} s")
    print(f"after load: forward {timings['probe_s']:.1f} s ({tokens / timings['probe_s']:.0f} tokens/s, "
          f"{tokens} tokens, every block kept, node-token probabilities), analysis {timings['analysis_s']:.1f} s")
    print(f"peak device memory {peak:.1f} GiB; forward pass {rate:.3f} TFLOP/s (blocks only), "
          f"{dtype} matmul {ceiling:.3f} TFLOP/s ({rate / ceiling:.0%} of it)")
    print(f"run folder: {run}")


if __name__ == "__main__":
    main()
