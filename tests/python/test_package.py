"""The package's shape: what importing icgt loads, its version, and transformers as an optional extra.

Each check runs in a fresh interpreter, since this one has imported everything long ago.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import icgt
from icgt import extras

ROOT = Path(__file__).parents[2]
HEAVY = ("torch", "icgt._icgt", "transformers")


def fresh(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter with this one's import path; fail on a non-zero exit."""
    env = {**os.environ, "PYTHONPATH": str(Path(icgt.__file__).parents[1])}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result


def loaded_after(code: str) -> dict[str, bool]:
    """Which of HEAVY (and matplotlib) are in sys.modules after ``code`` runs in a fresh interpreter."""
    names = [*HEAVY, "matplotlib"]
    result = fresh(f"{textwrap.dedent(code)}\nimport json, sys\nprint(json.dumps({{n: sys.modules.get(n) is not None for n in {names!r}}}))")
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_report_imports_without_torch_or_the_compiled_core():
    loaded = loaded_after("import icgt.report, icgt.report.plots, icgt.study.run_folder")
    assert loaded == {"torch": False, "icgt._icgt": False, "transformers": False, "matplotlib": True}


def test_import_icgt_is_light_and_its_names_load_on_first_use():
    assert loaded_after("import icgt; assert icgt.__version__") == dict.fromkeys([*HEAVY, "matplotlib"], False)
    # The C++ prefix is found without loading the core: the folder of its file, with the CMake config.
    prefix = fresh("import icgt; print(icgt.cmake_prefix_path)").stdout.strip()
    assert prefix == str(Path(icgt._icgt.__file__).resolve().parent)
    assert (Path(prefix) / "lib" / "cmake" / "icgt" / "icgtConfig.cmake").is_file()
    assert loaded_after("import icgt; icgt.cmake_prefix_path") == dict.fromkeys([*HEAVY, "matplotlib"], False)
    loaded = loaded_after("""
        import icgt
        grid = icgt.Graph.square_grid(4, 4)
        assert icgt.Graph.from_networkx(grid.to_networkx()).num_edges == 24
        from icgt import ActivationProbe, WalkSampler, bundle_for, load_tokenizer, PROTOCOL_WORDS
        assert icgt.models.bundles.BUILTIN_MODELS == icgt.BUILTIN_MODELS
        assert {"Graph", "models", "run_experiment"} <= set(dir(icgt))
    """)
    assert loaded["torch"] and loaded["icgt._icgt"] and not loaded["transformers"]


@pytest.mark.parametrize("first_import", [
    "from icgt._icgt import Graph",        # the core itself, not through the package root
    "import icgt._icgt as core; Graph = core.Graph",
    "from icgt.study.analysis import Graph",     # a module that imports the core
])
def test_the_core_gets_torch_first_and_graph_its_networkx_conversions_however_it_is_imported(first_import):
    # Without torch imported first the core would crash (LibTorch's Python types missing).
    fresh(f"""
        {first_import}
        import numpy as np
        grid = Graph.square_grid(3, 3)
        walks = __import__("icgt").WalkSampler(grid, seed=0).random_walks(2, 30)
        energy = __import__("icgt").EnergyMetrics(grid).energy_over_context(
            np.ones((1, 2, 30, 4), dtype=np.float32), walks, 5, [10, 20]).energy
        assert tuple(energy.shape) == (1, 2), energy.shape
        assert Graph.from_networkx(grid.to_networkx()).num_edges == 12
    """)


def test_unknown_attributes_are_attribute_errors():
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        icgt.no_such_name  # noqa: B018


def test_help_and_version_load_nothing_heavy():
    loaded = loaded_after("""
        from icgt.cli import main
        for argv in (["--help"], ["run", "--help"], ["export", "--help"], ["report", "--help"], ["--version"]):
            try:
                main(argv)
            except SystemExit as exit:
                assert exit.code == 0
    """)
    assert loaded == dict.fromkeys([*HEAVY, "matplotlib"], False)
    result = subprocess.run([sys.executable, "-m", "icgt", "--version"], capture_output=True, text=True)
    assert result.stdout.strip() == f"icgt {icgt.__version__}"


def test_the_version_is_the_same_in_the_package_pyproject_and_cmake():
    pyproject = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    cmake = re.search(r"project\(icgt VERSION ([0-9.]+)", (ROOT / "CMakeLists.txt").read_text())
    assert icgt.__version__ == pyproject.group(1) == cmake.group(1)


def test_transformers_is_an_optional_extra():
    text = (ROOT / "pyproject.toml").read_text()
    dependencies = text[text.index("dependencies = ["):text.index("]", text.index("dependencies = ["))]
    assert "transformers" not in dependencies
    assert 'export = ["transformers>=5.0"]' in text
    assert extras.EXTRAS["transformers"] == ("export", "transformers>=5.0")


BLOCK_TRANSFORMERS = "import sys; sys.modules['transformers'] = None  # as if it were not installed\n"


def test_without_transformers_bundles_run(tmp_path):
    from toy_bundle import write_toy_bundles

    bundle = write_toy_bundles(tmp_path)
    loaded = loaded_after(BLOCK_TRANSFORMERS + f"""
import icgt, icgt.study.sweep, icgt.models.export, icgt.models.bundles
probe = icgt.ActivationProbe({str(bundle)!r}, device="cpu")
assert probe.run(probe.to_tokens(" w1 w2"), layers=[0]).residuals.shape[:3] == (1, 1, 3)
""")
    assert loaded["torch"] and not loaded["transformers"]


def test_without_transformers_export_says_which_extra_to_install(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    (checkpoint / "model.safetensors").write_bytes(b"")
    result = fresh(BLOCK_TRANSFORMERS + f"""
from icgt.cli import main
from icgt.extras import MissingExtraError
from icgt.models.tokens import tokenizer_json_of_source
try:
    tokenizer_json_of_source({str(tmp_path / 'model.gguf')!r})
    raise AssertionError("no error")
except MissingExtraError as error:
    print("tokenizer:", error)
print("status:", main(["export", {str(checkpoint)!r}, "--output", {str(tmp_path / 'out.pt')!r}]))
""")
    assert ("tokenizer: converting the tokenizer of " in result.stdout
            and "needs transformers, which is not installed: pip install 'icgt[export]'" in result.stdout)
    assert "status: 1" in result.stdout
    assert result.stderr.startswith(f"icgt: error: reading the checkpoint folder {checkpoint} needs transformers")
    assert result.stderr.count("\n") == 1


def test_a_missing_dependency_of_an_extra_is_not_blamed_on_the_extra(monkeypatch):
    def broken_import(name):
        raise ModuleNotFoundError("No module named 'something_it_needs'", name="something_it_needs")

    monkeypatch.setattr(extras.importlib, "import_module", broken_import)
    with pytest.raises(ModuleNotFoundError, match="something_it_needs") as raised:
        extras.require("transformers", "testing")
    assert not isinstance(raised.value, extras.MissingExtraError)
