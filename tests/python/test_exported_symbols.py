"""libicgt exports the C++ API that include/icgt declares (what ICGT_API marks), and none of its
internals: nothing of icgt::detail, the model backend or the loader."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import icgt

LIBRARY = Path(icgt.cmake_prefix_path) / "lib" / "libicgt.so"
# The classes of include/icgt, each marked ICGT_API.
PUBLIC = {"ActivationProbe", "EnergyMetrics", "FileNotFoundError", "Graph", "HookSite", "RepresentationStats",
          "RuntimeError", "TypeError", "ValueError", "WalkSampler"}


def exported_symbols() -> list[str]:
    """The demangled names of the symbols libicgt defines in its dynamic symbol table."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    listing = subprocess.run([nm, "-D", "--defined-only", "-C", str(LIBRARY)], check=True, capture_output=True,
                             text=True).stdout
    return [line.split(" ", 2)[2] for line in listing.splitlines() if line.count(" ") >= 2]


def test_no_internal_symbol_leaves_the_library():
    symbols = exported_symbols()
    leaked = [s for s in symbols if re.search(r"icgt::(detail|ModelBackend|TorchScriptBackend|load_torchscript)", s)]
    assert not leaked, leaked[:10]


def test_every_icgt_symbol_belongs_to_a_public_class():
    owners = set()
    for symbol in exported_symbols():
        match = re.match(r"(?:(?:typeinfo|typeinfo name|vtable|VTT) for )?icgt::(\w+)", symbol)
        if match:
            owners.add(match.group(1))
    assert owners == PUBLIC


def test_the_public_api_is_exported():
    symbols = "\n".join(exported_symbols())
    for name in ("icgt::Graph::ring(int)", "icgt::WalkSampler::random_walks(", "icgt::ActivationProbe::run(",
                 "icgt::HookSite::parse(", "icgt::RepresentationStats::class_means(",
                 "icgt::EnergyMetrics::energy_over_context(", "typeinfo for icgt::ValueError"):
        assert name in symbols, name
