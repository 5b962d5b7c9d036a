"""Every example in the public docstrings runs and prints what it claims."""

import doctest
import hashlib
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import icgt
from helpers import save_checkpoint, tiny_llama, tiny_tokenizer
from synthetic_run import write_heads_run, write_intervention_run, write_synthetic_run
from heldout_model import WORDS as HELDOUT_WORDS, write_heldout_bundle
from toy_bundle import write_toy_bundles
from two_graphs_model import WORDS as TWO_GRAPHS_WORDS, write_two_graphs_bundle


def public_docstrings():
    """(module, docstring) by name, of the icgt modules and of every public class, function, method, property.

    Each object is visited once, in the module that defines it, and its examples run in that module's
    globals (as doctest.testmod runs them).
    """
    found, visited = {}, set()

    def visit(name, obj, depth=0):
        doc = inspect.getdoc(obj) if not isinstance(obj, property) else obj.__doc__
        defined_in = obj.__name__ if inspect.ismodule(obj) else getattr(
            obj.fget if isinstance(obj, property) else obj, "__module__", None) or ""
        # Not a field's value (an int's docstring is int's), and each object once.
        if doc and ">>>" in doc and defined_in.split(".")[0] == "icgt" and id(obj) not in visited:
            visited.add(id(obj))
            found[name] = (sys.modules[defined_in], doc)
        if depth == 0 and inspect.isclass(obj):
            for member_name in vars(obj):
                if not member_name.startswith("_"):
                    visit(f"{name}.{member_name}", getattr(obj, member_name), 1)

    for module_info in pkgutil.walk_packages(icgt.__path__, prefix="icgt."):
        if module_info.name.endswith(".__main__"):
            continue  # importing it runs the command line
        module = importlib.import_module(module_info.name)
        visit(module.__name__, module)
        for member_name, member in vars(module).items():
            if member_name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
                continue  # private, or imported from elsewhere (visited where it is defined)
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
            "grid_run_seed1": str(write_synthetic_run(tmp_path_factory.mktemp("grid_run_seed1"), "grid", seed=1)),
            "grid_run_seed2": str(write_synthetic_run(tmp_path_factory.mktemp("grid_run_seed2"), "grid", seed=2)),
            "intervention_run": str(write_intervention_run(tmp_path_factory.mktemp("intervention_run"))),
            "heads_run": str(write_heads_run(tmp_path_factory.mktemp("heads_run"))),
            "days_run": str(write_synthetic_run(tmp_path_factory.mktemp("days_run"), "days")),
            "heldout_run": str(heldout_run(tmp_path_factory.mktemp("heldout_run"))),
            "two_graphs_run": str(two_graphs_run(tmp_path_factory.mktemp("two_graphs_run")))}


def heldout_run(folder: Path) -> Path:
    """A short held-out run of the toy model that knows the full grid (tests/python/heldout_model.py)."""
    bundle = write_heldout_bundle(folder / "full_graph.pt", "full_graph")
    return icgt.run_experiment({"preset": "grid-heldout", "words": HELDOUT_WORDS, "model": str(bundle),
                                "sequence_length": 100, "pca_window": 50, "null_permutations": 10, "bootstrap": 10},
                               output=folder, progress=False, report=False)


def two_graphs_run(folder: Path) -> Path:
    """A short two-graph run of the toy model that keeps both graphs apart (tests/python/two_graphs_model.py)."""
    bundle = write_two_graphs_bundle(folder / "orthogonal.pt", "orthogonal", 0.5)
    return icgt.run_experiment({"preset": "grid-two-graphs-p50", "words": TWO_GRAPHS_WORDS, "model": str(bundle),
                                "sequence_length": 100, "pca_window": 50, "null_permutations": 10, "bootstrap": 0},
                               output=folder, progress=False, report=False)


@pytest.fixture(scope="module")
def smollm2_gguf(smollm2_bundle):
    """The path of SmolLM2's GGUF file."""
    return str(icgt.models.bundles.builtin_source("smollm2-135m").path)


@pytest.fixture(scope="module")
def gguf_file(smollm2_gguf):
    """SmolLM2's GGUF file, open (as in GGUFFile's example), for the examples of its methods."""
    from icgt.models.gguf_checkpoint import GGUFFile

    return GGUFFile(smollm2_gguf)


@pytest.fixture(scope="module")
def tiny_llama_checkpoint(tmp_path_factory):
    """A Hugging Face checkpoint folder of a tiny Llama with random weights (2 layers, hidden size 32)."""
    return str(save_checkpoint(tiny_llama(), tmp_path_factory.mktemp("checkpoint") / "tiny-llama", tiny_tokenizer()))


#: Example globals that take seconds to build: each is built once, by its fixture, if an example uses it.
COSTLY_GLOBALS = ("smollm2_gguf", "gguf_file", "tiny_llama_checkpoint")


@pytest.mark.parametrize("name", sorted(DOCSTRINGS))
def test_docstring_example_runs(name, example_globals, real_cache, request, tmp_path, monkeypatch):
    module, docstring = DOCSTRINGS[name]
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    # bundle_for("smollm2-135m") and load_tokenizer("smollm2-135m") find the session's export there.
    monkeypatch.setenv("ICGT_CACHE_DIR", str(real_cache))
    if "smollm2" in docstring:
        request.getfixturevalue("smollm2_bundle")  # exported once a session; skips when the model is missing
    costly = {global_name: request.getfixturevalue(global_name)
              for global_name in COSTLY_GLOBALS if global_name in docstring}
    globs = {**vars(module), **example_globals, **costly}
    test = doctest.DocTestParser().get_doctest(docstring, globs, name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0, f"{name}: {runner.failures} failing example(s); run with -s to see them"
