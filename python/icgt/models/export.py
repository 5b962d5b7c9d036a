"""Exporting a GGUF file or a Hugging Face checkpoint folder to an icgt bundle (docs/bundle-format.md)."""

from __future__ import annotations

import ctypes
import gc
import json
import sys
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from .._version import __version__
from .catalog import DTYPE_NAMES
from ..files import sha256_of, write_atomically
from .gguf_checkpoint import GGUFFile
from .hf_checkpoint import HFCheckpoint
from .scriptable import FORMAT_VERSION, CausalLM
from .tokens import tokenizer_json_of_source, vocabulary_hex

#: The dtypes a bundle can hold, by name (the names are icgt.models.catalog.DTYPE_NAMES).
DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def export_bundle(source: str | Path, output: str | Path, dtype: str = "float32", *, progress: bool = True,
                  model_name: str | None = None, source_sha256: str | None = None) -> Path:
    """Write the bundle of ``source`` (a .gguf file or a checkpoint folder) to ``output`` and return its path.

    The write is atomic: a temporary file in the output folder is renamed into place only once it is
    complete, so a crash leaves no partial bundle. ``model_name`` (a built-in name) and a precomputed
    ``source_sha256`` are recorded in the bundle's config.json.

    >>> export_bundle(tiny_llama_checkpoint, "tiny-llama.pt")
    PosixPath('tiny-llama.pt')
    """
    source, output = Path(source), Path(output)
    model = load_model(source, dtype, progress=progress)
    config = model.config
    with tqdm(total=3, desc=f"writing {output.name}", unit="step", disable=not progress) as bar:
        bar.set_postfix_str("tokenizer")
        tokenizer_json = tokenizer_json_of_source(source)
        tokenizer = Tokenizer.from_str(tokenizer_json)
        bar.update()
        bar.set_postfix_str("TorchScript")
        model.record_checksums()
        scripted = torch.jit.script(model)
        bar.update()
        bar.set_postfix_str("saving")
        bundle_config = {
            "format_version": FORMAT_VERSION,
            **config.to_dict(),
            "dtype": dtype,
            "add_bos": _adds_bos(tokenizer, config.bos_token_id),
            "source": str(source.resolve()),
            "source_sha256": source_sha256 or sha256_of(source),
            "model_name": model_name,
            "icgt_version": __version__,
        }
        extra_files = {
            "config.json": json.dumps(bundle_config, indent=2),
            "vocabulary.hex": vocabulary_hex(tokenizer, config.vocab_size),
            "tokenizer.json": tokenizer_json,
        }
        write_atomically(output, lambda path: torch.jit.save(scripted, str(path), _extra_files=extra_files))
        bar.update()
    del model, scripted
    release_freed_memory()
    return output


def release_freed_memory() -> None:
    """Collects unreachable reference cycles and hands the heap's freed pages back to the operating system.

    Called once an exported model is dropped: TorchScript's module wrappers form reference cycles, so a
    scripted model's weights outlive it until the cycle collector runs; and glibc keeps freed pages of
    its heap. Without both, a process that exports a model and then runs its bundle holds the model
    twice (Qwen2.5-Coder-1.5B in float32: 7.5 GiB still held after the export without this release,
    0.14 GiB with it).

    >>> release_freed_memory()
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc's; other C libraries lack it
        if trim is not None:
            trim(0)


def load_model(source: str | Path, dtype: str = "float32", *, progress: bool = False) -> CausalLM:
    """icgt's (unscripted) model of a .gguf file or checkpoint folder, weights loaded, in eval mode.

    ``progress`` shows a bar over the weights as they are read (and dequantised).

    >>> model = load_model(smollm2_gguf)
    >>> model.config.num_layers
    30
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; expected one of {sorted(DTYPES)}")
    source = Path(source)
    checkpoint = HFCheckpoint(source) if source.is_dir() else GGUFFile(source)
    model = CausalLM(checkpoint.config, DTYPES[dtype])
    with tqdm(total=model.num_checkpoint_tensors(), desc=f"loading {source.name}", unit="tensor",
              disable=not progress) as bar:
        _load_weights(model, checkpoint.weights(), str(source), bar)
    return model.eval()


def _load_weights(model: CausalLM, weights: Iterable[tuple[str, torch.Tensor]], where: str, bar: tqdm) -> None:
    """Copy checkpoint tensors (checkpoint names) into the model, separate projections into their rows of
    the fused ones; every expected tensor must arrive once, with its shape."""
    parameters = dict(model.named_parameters())
    slices = {name: where_to for name, where_to in model.parameter_slices().items() if where_to[0] in parameters}
    fused = {target for target, _, _ in slices.values()}
    expected = {name for name in parameters if name not in fused} | set(slices)
    tied = model.head.weight is model.embed.weight
    loaded = set()
    with torch.no_grad():
        for name, tensor in weights:
            if name == "head.weight" and tied:
                continue  # a tied model's head is its embedding, as in transformers
            if name not in expected:
                raise ValueError(f"{where}: unexpected weight {name!r} for this {model.architecture} model")
            target, first_row, rows = slices.get(name, (name, 0, None))
            destination = parameters[target] if rows is None else parameters[target].narrow(0, first_row, rows)
            if tuple(tensor.shape) != tuple(destination.shape):
                raise ValueError(f"{where}: weight {name!r} has shape {tuple(tensor.shape)}, "
                                 f"expected {tuple(destination.shape)} from the config")
            destination.copy_(tensor)
            loaded.add(name)
            bar.update()
    missing = sorted(expected - loaded)
    if missing:
        raise ValueError(f"{where}: {len(missing)} weight(s) missing, e.g. {missing[:5]}")


def _adds_bos(tokenizer: Tokenizer, bos_token_id: int) -> bool:
    """Whether the tokenizer itself puts BOS first when asked for special tokens."""
    ids = tokenizer.encode("a", add_special_tokens=True).ids
    return bool(ids) and ids[0] == bos_token_id
