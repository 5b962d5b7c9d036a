"""Optional dependencies, imported only where used, with an error that says which extra installs them.

transformers is needed only to export from Hugging Face checkpoint folders (their configs) and to
convert tokenizers (GGUF metadata or checkpoint folder to a fast tokenizer); running bundles, the
analysis and the report never import it. ``pip install 'icgt[export]'`` brings it. ray is needed only
to run a sweep on a Ray cluster (``icgt run --executor ray``); ``pip install 'icgt[ray]'`` brings it.
pyarrow is needed only to write a sweep's table as parquet (``icgt table --format parquet``);
``pip install 'icgt[parquet]'`` brings it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Optional module -> (the extra of pyproject.toml that installs it, its requirement).
EXTRAS = {"transformers": ("export", "transformers>=5.0"), "ray": ("ray", "ray[client]>=2.40"),
          "pyarrow": ("parquet", "pyarrow>=14")}


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra that installs it.

    >>> from icgt.extras import MissingExtraError
    >>> issubclass(MissingExtraError, ImportError)   # except ImportError catches it too
    True
    """


def require(module: str, purpose: str) -> ModuleType:
    """Import the optional ``module``, or raise MissingExtraError saying what needs it and how to install it.

    >>> from icgt.extras import require
    >>> require("transformers", "converting tokenizers").__name__
    'transformers'
    >>> require("no_such_module", "nothing")
    Traceback (most recent call last):
    ...
    ValueError: no_such_module is not an optional dependency of icgt
    """
    if module not in EXTRAS:
        raise ValueError(f"{module} is not an optional dependency of icgt")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise  # the module is there but something it needs is not: not ours to explain
        extra, requirement = EXTRAS[module]
        raise MissingExtraError(f"{purpose} needs {module}, which is not installed: "
                                f"pip install 'icgt[{extra}]' (from a checkout of icgt: pip install "
                                f"--no-build-isolation '.[{extra}]'; or pip install '{requirement}')",
                                name=module) from None
