"""Tiny bundles that follow docs/bundle-format.md, for testing the probe without a real model.

    python tests/python/toy_bundle.py OUTPUT_FOLDER

writes toy.pt (a valid bundle) and broken variants: version99.pt (unknown format version),
not-icgt.pt (TorchScript without icgt's attributes), truncated.pt, garbage.pt, damaged.pt
(16 bytes of one weight flipped, so that only its checksum tells) and empty-record.pt (the zip
directory gives one weight's record size 0: LibTorch then loads that tensor with no data).
The toy model is icgt's own Llama (icgt.models.CausalLM) at a tiny size with random weights, so
that every step of the probe runs the real block code; its vocabulary has awkward tokens (two
tokens with one text, bytes that are not UTF-8 on their own, an empty token).
"""

import io
import json
import struct
import sys
import zipfile
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import nn

from icgt.models.scriptable import FORMAT_VERSION, CausalLM, ModelConfig

VOCAB = [f" w{i}".encode() for i in range(44)] + ["é".encode(), b"\n", b" twin", b" twin", b"\\", b""]
HIDDEN, HEADS, KV_HEADS, LAYERS = 16, 4, 2, 3
MAX_POSITIONS = 64
CONFIG = ModelConfig.tiny("llama", vocab_size=len(VOCAB), hidden_size=HIDDEN, intermediate_size=32, num_layers=LAYERS,
                          num_heads=HEADS, num_kv_heads=KV_HEADS, head_dim=HIDDEN // HEADS, bos_token_id=0,
                          max_position_embeddings=MAX_POSITIONS)


def toy_model(seed: int = 0) -> CausalLM:
    """The toy Llama with random weights: N(0, 0.3) matrices, norm weights 1 + N(0, 0.1)."""
    model = CausalLM(CONFIG)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.copy_(1 + 0.1 * noise if name.endswith("norm.weight") else 0.3 * noise)
    return model.eval()


def toy_tokenizer(tokens: list[bytes] = VOCAB) -> Tokenizer:
    """A word-level tokenizer over the toy vocabulary: " w5 w6" is [5, 6]."""
    from tokenizers import Regex, decoders, models, pre_tokenizers

    vocabulary = {}
    for token_id, token in enumerate(tokens):
        if token and token.decode() not in vocabulary:
            vocabulary[token.decode()] = token_id
    vocabulary["<unk>"] = len(tokens) - 1
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r" ?[^ ]+"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    return tokenizer


def extra_files(format_version: int = FORMAT_VERSION, config: ModelConfig = CONFIG):
    """config.json, vocabulary.hex and tokenizer.json of a toy bundle; a model of another size gets
    tokens " w0", " w1", ... for its whole vocabulary."""
    vocabulary = VOCAB if config.vocab_size == len(VOCAB) else [f" w{i}".encode() for i in range(config.vocab_size)]
    record = {"format_version": format_version, **config.to_dict(), "dtype": "float32"}
    return {"config.json": json.dumps(record, indent=2),
            "vocabulary.hex": "".join(token.hex() + "\n" for token in vocabulary),
            "tokenizer.json": toy_tokenizer(vocabulary).to_str()}


def save_bundle(model: CausalLM, path: Path, format_version: int = FORMAT_VERSION) -> Path:
    """Script and save a model as a bundle, as icgt export does (checksums, extra files)."""
    model.icgt_format_version = format_version
    model.record_checksums()
    torch.jit.save(torch.jit.script(model), str(path), _extra_files=extra_files(format_version, model.config))
    return path


def write_toy_bundles(folder: Path) -> Path:
    """Writes the toy bundle and its broken variants into folder; returns the path of the good one."""
    folder.mkdir(parents=True, exist_ok=True)
    good = save_bundle(toy_model(), folder / "toy.pt")
    save_bundle(toy_model(), folder / "version99.pt", format_version=99)
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(folder / "not-icgt.pt"))
    data = good.read_bytes()
    (folder / "truncated.pt").write_bytes(data[: len(data) // 2])
    (folder / "garbage.pt").write_text("this is not a model\n")
    (folder / "damaged.pt").write_bytes(flip_weight_bytes(data))
    (folder / "empty-record.pt").write_bytes(empty_record(data))
    return good


def flip_weight_bytes(bundle: bytes, count: int = 16) -> bytes:
    """The bundle with ``count`` bytes in the middle of its largest tensor record inverted."""
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        records = [info for info in archive.infolist() if "/data/" in info.filename]
        largest = max(records, key=lambda info: info.file_size)
    # A stored (uncompressed) member's data follows its local header: 30 bytes, name, extra field.
    name_length, extra_length = struct.unpack("<HH", bundle[largest.header_offset + 26:largest.header_offset + 30])
    start = largest.header_offset + 30 + name_length + extra_length + largest.file_size // 2
    damaged = bytearray(bundle)
    damaged[start:start + count] = bytes(255 - byte for byte in damaged[start:start + count])
    return bytes(damaged)


def empty_record(bundle: bytes) -> bytes:
    """The bundle with the CRC-32 and sizes of its largest tensor record zeroed in the zip's central
    directory (found by tests/fuzz/fuzz_bundle_zip.py: LibTorch loads such a tensor without data)."""
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        records = [info for info in archive.infolist() if "/data/" in info.filename]
        largest = max(records, key=lambda info: info.file_size).filename.encode()
    position = 0
    while True:  # central directory entries: signature PK\1\2, the name at byte 46, its length at 28
        position = bundle.index(b"PK\x01\x02", position)
        (name_length,) = struct.unpack("<H", bundle[position + 28:position + 30])
        if bundle[position + 46:position + 46 + name_length] == largest:
            break
        position += 4
    damaged = bytearray(bundle)
    damaged[position + 16:position + 28] = bytes(12)  # CRC-32, compressed size, uncompressed size
    return bytes(damaged)


if __name__ == "__main__":
    write_toy_bundles(Path(sys.argv[1]))
