"""Fuzz the GGUF side of export: a whole file, read by GGUFFile, its config, its weights and the model.

Input: the bytes of a GGUF file (seeds: tiny valid Llama and Gemma 3 files, tests/fuzz/make_corpus.py).
Documented refusals: ValueError (not GGUF, unsupported, inconsistent), FileNotFoundError, OSError; not
TypeError: the caller passed a path, so whatever the file holds is a ValueError naming what is wrong.
The model is built from the config only when it is small (the fuzzer would otherwise spend its time
allocating absurd models, which ModelConfig does not bound), and its weights are loaded into it.

    python tests/fuzz/fuzz_gguf.py -max_total_time=60 WORK_CORPUS tests/fuzz/corpus/gguf
"""

from __future__ import annotations

from fuzz_common import expect, main, remember, scratch_file

ALLOWED = (ValueError, FileNotFoundError, OSError)
#: Models of at most this many parameters are built and loaded (tiny seeds hold a few thousand).
MAX_PARAMETERS = 1 << 20


def _parameters(config) -> int:
    attention = config.hidden_size * config.head_dim * (2 * config.num_heads + 2 * config.num_kv_heads)
    mlp = 3 * config.hidden_size * config.intermediate_size
    return config.vocab_size * config.hidden_size * 2 + config.num_layers * (attention + mlp)


def _read(path) -> None:
    from icgt.models.export import load_model
    from icgt.models.gguf_checkpoint import GGUFFile

    gguf_file = GGUFFile(path)
    config = gguf_file.config
    if _parameters(config) > MAX_PARAMETERS or config.num_layers > 64:
        for name in gguf_file.tensors:
            gguf_file.icgt_name(name)
        return
    for _, tensor in gguf_file.weights():
        assert tensor.dtype.is_floating_point
    load_model(path)


def test_one_input(data: bytes) -> None:
    remember(data)
    path = scratch_file("input.gguf", data)
    expect(lambda: _read(path), ALLOWED)


def _load() -> None:
    import gguf  # noqa: F401

    import icgt.models.export  # noqa: F401
    import icgt.models.gguf_checkpoint  # noqa: F401


if __name__ == "__main__":
    main(test_one_input, instrument=["icgt", "gguf"], load=_load)
