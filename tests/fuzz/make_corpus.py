"""Writes the seed corpora of the harnesses into tests/fuzz/corpus/<target>/ (committed; rerun to refresh).

    python tests/fuzz/make_corpus.py

gguf/: tiny valid GGUF files (Llama tied and untied with rope_freqs and F16 tensors, Llama with a
Q8_0 tensor and linear rope scaling, Gemma 3), written the way llama.cpp's converter lays them out;
bundle/: config.json and vocabulary.hex of the toy bundle (tests/python/toy_bundle.py) and variants;
bundle_zip/: the toy bundle itself and a TorchScript file that is not a bundle;
edges/: edge lists; config/: TOML experiment configs. No file is larger than a few kilobytes.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from fuzz_common import CORPUS_DIR
from fuzz_bundle import SEPARATOR


def write_gguf(path: Path, architecture: str = "llama", *, hidden: int = 8, heads: int = 2, kv_heads: int = 1,
               layers: int = 1, vocab: int = 8, ffn: int = 8, tied: bool = True, rope_freqs: bool = False,
               f16: bool = False, q8: bool = False, metadata: dict | None = None) -> None:
    import gguf

    rng = np.random.default_rng(len(path.name))
    head_dim = hidden // heads
    shapes = {"token_embd.weight": (vocab, hidden), "output_norm.weight": (hidden,)}
    if not tied:
        shapes["output.weight"] = (vocab, hidden)
    for layer in range(layers):
        block = {"attn_norm": (hidden,), "attn_q": (heads * head_dim, hidden), "attn_k": (kv_heads * head_dim, hidden),
                 "attn_v": (kv_heads * head_dim, hidden), "attn_output": (hidden, heads * head_dim),
                 "ffn_norm": (hidden,), "ffn_gate": (ffn, hidden), "ffn_up": (ffn, hidden), "ffn_down": (hidden, ffn)}
        if architecture == "gemma3":
            block.update({"attn_q_norm": (head_dim,), "attn_k_norm": (head_dim,), "post_attention_norm": (hidden,),
                          "post_ffw_norm": (hidden,)})
        shapes.update({f"blk.{layer}.{name}.weight": shape for name, shape in block.items()})
    fields = {"block_count": layers, "context_length": 32, "embedding_length": hidden, "feed_forward_length": ffn,
              "attention.head_count": heads, "attention.head_count_kv": kv_heads, "rope.freq_base": 10000.0,
              "attention.layer_norm_rms_epsilon": 1e-6, "rope.dimension_count": head_dim}
    if architecture == "gemma3":
        fields.update({"attention.sliding_window": 4, "attention.key_length": head_dim, "rope.freq_base_swa": 10000.0})
    fields.update(metadata or {})
    writer = gguf.GGUFWriter(str(path), architecture)
    for key, value in fields.items():
        full_key = f"{architecture}.{key}"
        if isinstance(value, str):
            writer.add_string(full_key, value)
        elif isinstance(value, float):
            writer.add_float32(full_key, value)
        elif isinstance(value, list):
            writer.add_array(full_key, value)
        else:
            writer.add_uint32(full_key, value)
    writer.add_bos_token_id(1)
    for name, shape in shapes.items():
        values = rng.standard_normal(shape).astype(np.float32)
        if q8 and name == "blk.0.ffn_up.weight":
            writer.add_tensor(name, gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0),
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        elif f16 and len(shape) == 2:
            writer.add_tensor(name, values.astype(np.float16))
        else:
            writer.add_tensor(name, values)
    if rope_freqs:
        writer.add_tensor("rope_freqs.weight", np.linspace(1, 4, head_dim // 2, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def gguf_corpus(folder: Path) -> None:
    write_gguf(folder / "llama-tied")
    write_gguf(folder / "llama-untied-f16-rope-freqs", heads=2, kv_heads=2, tied=False, rope_freqs=True, f16=True)
    write_gguf(folder / "llama-q8-linear-rope", hidden=32, heads=4, kv_heads=2, ffn=32, vocab=4, q8=True, f16=True,
               metadata={"rope.scaling.type": "linear", "rope.scaling.factor": 2.0})
    write_gguf(folder / "gemma3", "gemma3", layers=2, metadata={"attention.sliding_window_pattern": 2,
                                                               "final_logit_softcapping": 30.0})


def bundle_corpus(folder: Path) -> None:
    from toy_bundle import extra_files

    extras = extra_files()
    config, vocabulary = extras["config.json"].encode(), extras["vocabulary.hex"].encode()
    (folder / "toy").write_bytes(config + SEPARATOR + vocabulary)
    record = {"format_version": 4, "architecture": "llama", "num_layers": 3, "hidden_size": 16, "dtype": "float32",
              "add_bos": True, "source": "/models/toy.gguf", "source_sha256": "0" * 64, "model_name": None}
    (folder / "toy-float32").write_bytes(json.dumps(record, indent=2).encode() + SEPARATOR + vocabulary)
    (folder / "uppercase-hex").write_bytes(config + SEPARATOR + vocabulary.upper())
    (folder / "no-final-newline").write_bytes(config + SEPARATOR + vocabulary.rstrip(b"\n"))
    (folder / "config-without-version").write_bytes(b'{"architecture": "toy"}' + SEPARATOR + vocabulary)
    (folder / "config-not-an-object").write_bytes(b"[1, 2]" + SEPARATOR + vocabulary)
    (folder / "short-vocabulary").write_bytes(config + SEPARATOR + b"2061\n0a\n")


def bundle_zip_corpus(folder: Path) -> None:
    import tempfile

    from toy_bundle import write_toy_bundles

    with tempfile.TemporaryDirectory() as scratch:
        write_toy_bundles(Path(scratch))
        for name in ("toy", "not-icgt"):
            shutil.copyfile(Path(scratch) / f"{name}.pt", folder / name)


EDGE_LISTS = {
    "ring-4": "4\n0 1\n1 2\n2 3\n3 0\n",
    "path-3": "3\n0 1\n1 2\n",
    "grid-2x3": "6\n0 1\n1 2\n3 4\n4 5\n0 3\n1 4\n2 5\n",
    "self-loop": "3\n0 0\n0 1\n1 2\n",
    "repeated-edge": "3\n0 1\n1 0\n1 2\n",
    "outside": "3\n0 1\n1 7\n",
    "negative": "3\n0 -1\n1 2\n",
    "large-node": "2\n0 2147483648\n",
    "disconnected": "4\n0 1\n2 3\n",
    "float-and-word": "3\n0 1.5\nx 2\n",
    "triple": "3\n0 1 2\n",
    "no-edges": "1\n",
}

CONFIGS = {
    "grid.toml": 'preset = "grid"\nsequence_length = 300\n',
    "ring.toml": 'preset = "ring"\nsequence_length = 200\nenergy_window = 10\nlayers = [0, 5, 10]\n',
    "custom.toml": ('graph = "custom"\nedges = [[0, 1], [1, 2], [2, 3], [3, 0]]\nwords = ["apple", "bird", "car", "egg"]\n'
                    'num_sequences = 4\nsequence_length = 100\nenergy_window = 5\npca_window = 20\n'
                    'pca_components = [0, 1]\n'),
    "pairs.toml": 'preset = "pairs"\nseparator = "/"\nnum_sequences = 2\nsequence_length = 60\npca_window = 30\n',
    "days.toml": ('preset = "days"\nwords = ["Monday", "Thursday", "Sunday", "Wednesday", "Saturday", "Tuesday", '
                  '"Friday"]\nnatural_order = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", '
                  '"Sunday"]\nseed = 18446744073709551615\n'),
    "everything.toml": ('model = "smollm2-135m"\ngraph = "hexagon"\ngraph_size = [2, 2]\nmode = "walk"\n'
                        'start = "uniform"\nnum_sequences = 3\nsequence_length = 400\nlayers = "all"\n'
                        'energy_window = 20\nenergy_every = 5\npca_window = 100\npca_positions = [10, 100, 400]\n'
                        'pca_components = [1, 2]\nnull_permutations = 10\nseed = 7\ndtype = "bfloat16"\n'
                        'device = "cpu"\nmax_batch = 2\nsave_activations = true\n'),
    "typo.toml": 'preset = "grid"\nseqence_length = 300\nseed = 1.5\n',
    "inline-table.toml": '[graph_size]\nrows = 4\n',
}


def main() -> None:
    targets = {"gguf": gguf_corpus, "bundle": bundle_corpus, "bundle_zip": bundle_zip_corpus}
    for target, write in targets.items():
        folder = CORPUS_DIR / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        write(folder)
    for target, files in {"edges": EDGE_LISTS, "config": CONFIGS}.items():
        folder = CORPUS_DIR / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    total = sum(path.stat().st_size for path in CORPUS_DIR.rglob("*") if path.is_file())
    print(f"seed corpora written to {CORPUS_DIR}: {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
