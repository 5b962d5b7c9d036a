"""The examples in the docstrings of the model/export modules run and print what they show.

Examples that need a real model or a file of the reader's are marked ``doctest: +SKIP``; the
behaviour they show is tested elsewhere (test_real_models.py, test_tokens.py, test_bundles.py).
"""

from __future__ import annotations

import doctest
import hashlib
import importlib
from pathlib import Path

import pytest
import torch

import icgt

MODULES = ["icgt.models.config", "icgt.models.model", "icgt.files", "icgt.hf_checkpoint", "icgt.gguf_checkpoint",
           "icgt.export", "icgt.bundles", "icgt.tokens", "icgt.cli"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    extra = {"torch": torch, "icgt": icgt, "hashlib": hashlib, "Path": Path}
    result = doctest.testmod(module, extraglobs=extra, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0
