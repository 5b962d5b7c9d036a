"""Fuzz what icgt itself reads from a bundle: its extra files config.json and vocabulary.hex.

Input: config.json's bytes, SEPARATOR, vocabulary.hex's bytes (without SEPARATOR: all config.json).
Each input becomes a bundle of the toy model (tests/python/toy_bundle.py) saved with those two extra
files, which is then read the ways icgt reads bundles: read_bundle_config, read_bundle_file,
bundle_for (a bundle names itself), and the C++ loader (ActivationProbe: vocabulary.hex parsed, every
tensor's CRC-32 checked), whose vocabulary and record are then used.
The archive and the TorchScript model stay valid: mutating them fuzzes LibTorch's zip reader and
deserialiser (torch::jit::load), not icgt's code.
Documented refusals: ValueError, FileNotFoundError, OSError; RuntimeError from the C++ loader.

    python tests/fuzz/fuzz_bundle.py -max_total_time=60 WORK_CORPUS tests/fuzz/corpus/bundle
"""

from __future__ import annotations

from fuzz_common import expect, main, remember, scratch_file

SEPARATOR = b"\n--vocabulary.hex--\n"
PYTHON_ALLOWED = (ValueError, FileNotFoundError, OSError)
LOADER_ALLOWED = PYTHON_ALLOWED + (RuntimeError,)

_SCRIPTED = None


def _scripted_toy():
    global _SCRIPTED
    if _SCRIPTED is None:
        import torch
        from toy_bundle import toy_model

        model = toy_model()
        model.record_checksums()
        _SCRIPTED = torch.jit.script(model)
    return _SCRIPTED


def _use_probe(path) -> None:
    import icgt

    probe = icgt.ActivationProbe(path, device="cpu")
    probe.config  # noqa: B018 - the record, parsed as JSON
    texts = [probe.token_text(token) for token in range(probe.vocab_size)]
    for text in texts[:8]:
        try:
            probe.token_id(text.decode("utf-8"))
        except UnicodeDecodeError:
            continue  # a token that is not UTF-8 on its own cannot be asked for by text
    probe.run([[0, 1, 2]], layers=[0], target_ids=[0, 1])


def test_one_input(data: bytes) -> None:
    remember(data)
    import torch

    from icgt.models.bundles import bundle_for, read_bundle_config, read_bundle_file

    config, _, vocabulary = data.partition(SEPARATOR)
    path = scratch_file("input.pt", b"")
    torch.jit.save(_scripted_toy(), str(path), _extra_files={"config.json": config, "vocabulary.hex": vocabulary})
    expect(lambda: read_bundle_config(path), PYTHON_ALLOWED)
    expect(lambda: read_bundle_file(path, "vocabulary.hex"), PYTHON_ALLOWED)
    expect(lambda: bundle_for(path, "float32", cache=path.parent / "cache", progress=False), PYTHON_ALLOWED)
    expect(lambda: _use_probe(path), LOADER_ALLOWED)


def _load() -> None:
    import icgt.models.bundles  # noqa: F401

    _scripted_toy()


if __name__ == "__main__":
    main(test_one_input, instrument=["icgt"], load=_load)
