"""Every example in the public docstrings runs and prints what it claims."""

import doctest
import hashlib
import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import torch

import icgt
from synthetic_run import write_synthetic_run
from toy_bundle import write_toy_bundles


def public_docstrings():
    """(name, docstring) of the icgt modules and of every public class, function, method, property."""
    found = {}

    def visit(name, obj, depth=0):
        doc = inspect.getdoc(obj) if not isinstance(obj, property) else obj.__doc__
        if doc and ">>>" in doc:
            found[name] = doc
        if depth == 0 and inspect.isclass(obj):
            for member_name in vars(obj):
                if not member_name.startswith("_"):
                    visit(f"{name}.{member_name}", getattr(obj, member_name), 1)

    for module_info in pkgutil.walk_packages(icgt.__path__, prefix="icgt."):
        if module_info.name.endswith("__main__"):  # importing it runs the command line
            continue
        module = importlib.import_module(module_info.name)
        visit(module.__name__, module)
        for member_name, member in vars(module).items():
            if member_name.startswith("_") or getattr(member, "__module__", "").split(".")[0] not in ("icgt",):
                continue
            visit(f"{module.__name__}.{member_name}", member)
    visit("icgt", icgt)
    return found


DOCSTRINGS = public_docstrings()


def test_the_public_api_has_examples():
    for name in ["icgt._icgt.Graph", "icgt._icgt.Graph.square_grid", "icgt._icgt.WalkSampler.random_walks"]:
        assert name in DOCSTRINGS, sorted(DOCSTRINGS)


@pytest.fixture(scope="module")
def example_globals(tmp_path_factory):
    """What the examples may use without importing: icgt, numpy, torch, a toy model bundle, run folders."""
    return {"icgt": icgt, "np": np, "torch": torch, "hashlib": hashlib, "Path": Path,
            "toy_bundle": str(write_toy_bundles(tmp_path_factory.mktemp("bundles"))),
            "grid_run": str(write_synthetic_run(tmp_path_factory.mktemp("grid_run"), "grid")),
            "days_run": str(write_synthetic_run(tmp_path_factory.mktemp("days_run"), "days"))}


@pytest.mark.parametrize("name", sorted(DOCSTRINGS))
def test_docstring_example_runs(name, example_globals, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    test = doctest.DocTestParser().get_doctest(DOCSTRINGS[name], dict(example_globals), name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0, f"{name}: {runner.failures} failing example(s); run with -s to see them"
