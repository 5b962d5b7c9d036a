"""Attributes of a package loaded on first use (PEP 562), so that ``import icgt`` stays light and
``icgt.study.config.preset(...)`` or ``icgt.models.CausalLM`` work without importing the module first."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, names: dict[str, str] | None = None) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: each of ``names`` (name -> the submodule that defines it)
    and every submodule, imported when first asked for and kept in the package's namespace.

    >>> getattr_ = lazy_attributes("icgt.models", {"CausalLM": "scriptable"})
    >>> getattr_("CausalLM").__name__, getattr_("catalog").__name__
    ('CausalLM', 'icgt.models.catalog')
    >>> getattr_("no_such_name")
    Traceback (most recent call last):
    ...
    AttributeError: module 'icgt.models' has no attribute 'no_such_name'
    """
    names = names or {}

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        elif not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
