"""The supported decoder architectures: one module each, every module of this package that defines
``ARCHITECTURE`` (an ``Architecture``, see ``base``) is registered under its name.

Adding an architecture is adding its module (docs/architecture.md, "Adding a model architecture").

>>> sorted(ARCHITECTURES)
['gemma2', 'gemma3', 'llama', 'qwen2']
>>> checkpoint_architecture("gemma3_text").name, gguf_architecture("qwen2").title
('gemma3', 'Qwen2')
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Architecture


def _registered() -> dict[str, Architecture]:
    """The ARCHITECTURE of every module in this package's folders, by its name; ValueError if two share one."""
    found: dict[str, Architecture] = {}
    defined_in: dict[str, str] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        architecture = getattr(module, "ARCHITECTURE", None)
        if architecture is None:
            continue
        if architecture.name in found:
            # Keeping either would let the file system's order decide which one the readers use.
            raise ValueError(f"architecture {architecture.name!r} is defined twice: in "
                             f"{defined_in[architecture.name]} and {module.__name__}")
        found[architecture.name] = architecture
        defined_in[architecture.name] = module.__name__
    return dict(sorted(found.items()))


#: Every supported architecture by icgt's name.
ARCHITECTURES: dict[str, Architecture] = _registered()


def _look_up(what: str, value: object, table: dict[str, Architecture], supported: list[str]) -> Architecture:
    """``table[value]``, else ValueError naming ``what`` and the supported values (a file's value may be
    anything: it is shown cut short, and need not be hashable)."""
    if isinstance(value, str) and value in table:
        return table[value]
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise ValueError(f"{what} {shown} is not supported; expected one of {', '.join(supported)}")


def find_architecture(name: str) -> Architecture:
    """The architecture icgt calls ``name`` (a ModelConfig's or a bundle's); ValueError naming the supported ones.

    >>> find_architecture("mistral")
    Traceback (most recent call last):
    ValueError: architecture 'mistral' is not supported; expected one of gemma2, gemma3, llama, qwen2
    """
    return _look_up("architecture", name, ARCHITECTURES, list(ARCHITECTURES))


def gguf_architecture(general_architecture: str) -> Architecture:
    """The architecture of a GGUF file whose ``general.architecture`` is given, if its GGUF files are read.

    >>> gguf_architecture("gemma2")
    Traceback (most recent call last):
    ValueError: GGUF architecture 'gemma2' is not supported; expected one of gemma3, llama, qwen2
    """
    readable = {name: architecture for name, architecture in ARCHITECTURES.items()
                if architecture.gguf_tensors is not None}
    return _look_up("GGUF architecture", general_architecture, readable, list(readable))


def checkpoint_architecture(model_type: str) -> Architecture:
    """The architecture of a transformers checkpoint whose config has ``model_type``.

    >>> checkpoint_architecture("gpt2")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: model_type 'gpt2' is not supported; expected one of gemma2 (Gemma 2), gemma3 (Gemma 3), ...
    """
    by_model_type = {model_type: architecture for architecture in ARCHITECTURES.values()
                     for model_type in architecture.model_types}
    supported = sorted(f"{model_type} ({architecture.title})" for model_type, architecture in by_model_type.items())
    return _look_up("model_type", model_type, by_model_type, supported)
