"""icgt: in-context graph tracing in the representations of language models.

Example:
    >>> import icgt
    >>> grid = icgt.Graph.square_grid(4, 4)
    >>> walks = icgt.WalkSampler(grid, seed=0).random_walks(16, 1400, start="per_node")
    >>> walks.shape
    (16, 1400)

``import icgt`` is light: the names below are loaded on first use (PEP 562), so that the report
(``icgt.report``, ``icgt.report.plots``, ``icgt.study.run_folder``) and ``icgt --help`` run without torch or the
compiled core. However the compiled core ``icgt._icgt`` is reached (``icgt.Graph``, ``from
icgt._icgt import Graph``, a module that imports it), torch is imported first, since libicgt needs
LibTorch's Python side, and ``Graph`` gains ``from_networkx`` and ``to_networkx``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ._lazy import lazy_attributes
from ._version import __version__

#: Public names, each loaded from its module on first use.
_LAZY = {
    **dict.fromkeys(["BUNDLE_FORMAT_VERSION", "EMBEDDING_LAYER", "NOT_A_NODE", "AttentionScore", "EnergyMetrics",
                     "Graph", "HeadAblation", "ProbeResult", "RepresentationStats", "WalkSampler"], "_icgt"),
    "BUILTIN_MODELS": "models.catalog",
    **dict.fromkeys(["bundle_for", "cache_dir", "load_tokenizer", "read_bundle_config"], "models.bundles"),
    **dict.fromkeys(["run_experiment", "run_sweep"], "study.sweep"),
    "load_run": "study.run_folder",
    "load_sweep": "study.tables",
    **dict.fromkeys(["from_networkx", "to_networkx"], "graphs"),
    "ActivationProbe": "probe",
    **dict.fromkeys(["DEFAULT_WORDS", "PROTOCOL_WORDS"], "models.words"),
    **dict.fromkeys(["SplitWordsError", "concept_token_ids"], "models.tokens"),
}

#: Where the modules of icgt 0.2 live now, so that code written against it (``icgt.config.preset``,
#: ``from icgt.run_folder import load_run``) keeps working: each old name is the new module itself.
MOVED_MODULES = {
    "aggregate": "study.aggregate", "analysis": "study.analysis", "bundles": "models.bundles",
    "catalog": "models.catalog", "change_points": "study.curves", "config": "study.config",
    "experiment": "study.sweep", "export": "models.export", "gguf_checkpoint": "models.gguf_checkpoint",
    "hf_checkpoint": "models.hf_checkpoint", "mechanism": "study.mechanism", "mechanism_report": "report.mechanism",
    "plots": "report.plots", "ray_executor": "study.executors.ray_executor", "run_folder": "study.run_folder",
    "tokens": "models.tokens", "verdict": "report.verdict", "words": "models.words",
    # icgt.models was the scriptable definitions alone
    "models.config": "models.scriptable.config", "models.layers": "models.scriptable.layers",
    "models.model": "models.scriptable.model",
}

__all__ = sorted([*_LAZY, "__version__", "cmake_prefix_path"])


_lazy_getattr = lazy_attributes(__name__, _LAZY)


def __getattr__(name: str) -> Any:
    if name != "cmake_prefix_path":
        return _lazy_getattr(name)  # a public name, a subpackage (icgt.study) or a moved module (icgt.config)
    # Install prefix of libicgt for C++ users: cmake -DCMAKE_PREFIX_PATH=<this> finds icgt. It is the
    # compiled core's folder (in an editable install not this file's), found without loading it.
    value = str(Path(importlib.util.find_spec(f"{__name__}._icgt").origin).resolve().parent)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    submodules = {name for name, value in globals().items()
                  if isinstance(value, ModuleType) and value.__name__ == f"{__name__}.{name}"}
    return sorted({*__all__, *submodules, *(name for name in globals() if name.startswith("__"))})


class _CoreFinder(importlib.abc.MetaPathFinder):
    """Imports torch before the compiled core, and gives Graph its networkx conversions after it."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != f"{__name__}._icgt":
            return None
        for finder in sys.meta_path:  # whichever finder knows the file (an editable install has its own)
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(fullname, path, target)
                if spec is not None and spec.loader is not None:
                    spec.loader = _CoreLoader(spec.loader)
                    return spec
        return None


class _CoreLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        import torch  # noqa: F401  (libicgt links LibTorch; its Python types must exist before ours)

        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        from .graphs import from_networkx, to_networkx  # the module is in sys.modules already

        module.Graph.from_networkx = staticmethod(from_networkx)
        module.Graph.to_networkx = to_networkx


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module name (MOVED_MODULES) as the module that holds its code now."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package != __name__ or name not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(f"{__name__}.{MOVED_MODULES[spec.name.partition('.')[2]]}")

    def exec_module(self, module: ModuleType) -> None:
        pass  # the module ran when it was imported under its own name


for _finder in (_CoreFinder, _MovedModuleFinder):
    if not any(isinstance(finder, _finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _finder())
