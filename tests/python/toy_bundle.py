"""Tiny bundles that follow docs/bundle-format.md, for testing the probe without a real model.

    python tests/python/toy_bundle.py OUTPUT_FOLDER

writes toy.pt (a valid bundle) and broken variants: version99.pt (unknown format version),
not-icgt.pt (TorchScript without icgt's attributes), truncated.pt, garbage.pt, damaged.pt
(16 bytes of one weight flipped, so that only its checksum tells) and empty-record.pt (the zip
directory gives one weight's record size 0: LibTorch then loads that tensor with no data).
The toy model is a small residual network whose blocks mix positions causally per head, so that
head gates, hooks and captures have real effects.
"""

import io
import json
import struct
import sys
import zipfile
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from icgt.models.model import tensor_checksums

VOCAB = [f" w{i}".encode() for i in range(44)] + ["é".encode(), b"\n", b" twin", b" twin", b"\\", b""]
HIDDEN, HEADS, LAYERS = 16, 4, 3
MAX_POSITIONS = 64
FORMAT_VERSION = 2


class ToyBlock(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.mix = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.mlp = nn.Linear(hidden, hidden)

    def forward(self, hidden: torch.Tensor, head_gate: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, t, d = hidden.shape
        values = self.mix(hidden).view(b, t, self.heads, d // self.heads)
        counts = torch.arange(1, t + 1, dtype=hidden.dtype, device=hidden.device).view(1, t, 1, 1)
        attended = values.cumsum(1) / counts
        if head_gate is not None:
            attended = attended * head_gate.view(1, 1, self.heads, 1)
        hidden = hidden + self.out(attended.reshape(b, t, d))
        return hidden + torch.tanh(self.mlp(hidden))


class ToyModel(nn.Module):
    def __init__(self, format_version: int = FORMAT_VERSION):
        super().__init__()
        self.icgt_format_version = format_version
        self.max_position_embeddings = MAX_POSITIONS
        self.architecture = "toy"
        self.num_layers = LAYERS
        self.hidden_size = HIDDEN
        self.vocab_size = len(VOCAB)
        self.num_heads = HEADS
        self.bos_token_id = 0
        self.embed = nn.Embedding(len(VOCAB), HIDDEN)
        self.blocks = nn.ModuleList([ToyBlock(HIDDEN, HEADS) for _ in range(LAYERS)])
        self.final_norm = nn.LayerNorm(HIDDEN)
        self.head = nn.Linear(HIDDEN, len(VOCAB))
        self.tensor_checksums = tensor_checksums(self)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(input_ids)
        for block in self.blocks:
            hidden = block(hidden, None)
        return self.head(self.final_norm(hidden))


def extra_files(format_version: int = FORMAT_VERSION):
    config = {"format_version": format_version, "architecture": "toy", "num_layers": LAYERS, "hidden_size": HIDDEN}
    return {"config.json": json.dumps(config), "vocabulary.hex": "".join(token.hex() + "\n" for token in VOCAB)}


def write_toy_bundles(folder: Path) -> Path:
    """Writes the toy bundle and its broken variants into folder; returns the path of the good one."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    good = folder / "toy.pt"
    torch.jit.save(torch.jit.script(ToyModel()), str(good), _extra_files=extra_files())
    torch.jit.save(torch.jit.script(ToyModel(99)), str(folder / "version99.pt"), _extra_files=extra_files(99))
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
