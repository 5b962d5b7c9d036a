"""The package's structure, read from its imports: no import circle between icgt's modules, and no module
importing another module's private (underscore) names. Imports inside functions count: a lazy import
is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "icgt"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def imports_of(name: str) -> list[tuple[str, list[str]]]:
    """(imported icgt module, names taken from it) for every import statement of a module."""
    path = MODULES[name]
    here = name if is_package(name) else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.split(".")[0] == "icgt"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "icgt":
                continue
            names = [alias.name for alias in node.names]
            submodules = [f"{target}.{item}" for item in names if f"{target}.{item}" in MODULES]
            found += [(module, []) for module in submodules]
            names = [item for item in names if f"{target}.{item}" not in MODULES]
            if names or not submodules:
                found.append((target, names))
    return [(target, names) for target, names in found if target in MODULES]


def test_the_import_reader_sees_the_package():
    assert {"icgt.study.sweep", "icgt.study.run_store", "icgt.models.bundles", "icgt.report.html"} <= set(MODULES)
    assert ("icgt.study.run_store", ["check_reusable", "run_name", "writable_folder"]) in imports_of("icgt.study.sweep")


def test_no_module_imports_another_modules_private_names():
    private = [f"{name} imports {names} from {target}" for name in MODULES for target, names in imports_of(name)
               if target != name for item in names if item.startswith("_") and not item.startswith("__")
               and item != "_icgt"]
    assert private == []


def test_there_is_no_import_circle():
    """Edges run from a module to the modules it imports; a package's __init__ that re-exports its own
    submodules is not an edge back from them (importing a submodule runs its package first anyway)."""
    graph = {name: {target for target, _ in imports_of(name) if target != name} for name in MODULES}
    for name in MODULES:
        if is_package(name):
            graph[name] = {target for target in graph[name] if not target.startswith(name + ".")}
    state: dict[str, str] = {}
    circles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[name] = "done"

    for name in sorted(MODULES):
        if name not in state:
            visit(name, [name])
    assert circles == []


@pytest.mark.parametrize("name", ["icgt.study.executors.ray_executor", "icgt.study.executors.local"])
def test_executors_reach_run_folders_only_through_the_run_store(name):
    targets = {target for target, _ in imports_of(name)}
    assert "icgt.study.run_store" in targets and "icgt.study.sweep" not in targets
