"""The type stubs (_icgt.pyi) name exactly what the compiled module offers."""

import ast
import inspect
from pathlib import Path

import icgt
from icgt import _icgt

STUB = Path(icgt.__file__).with_name("_icgt.pyi")


def stub_members(node):
    """{qualified name: set of public member names} for every class in the stub, nested ones too."""
    classes = {}

    def visit(body, prefix):
        for item in body:
            if isinstance(item, ast.ClassDef):
                name = f"{prefix}{item.name}"
                classes[name] = {
                    member.name for member in item.body
                    if isinstance(member, (ast.FunctionDef, ast.ClassDef)) and not member.name.startswith("_")
                }
                visit(item.body, f"{name}.")

    visit(node.body, "")
    return classes


def test_stub_classes_and_members_match_the_module():
    tree = ast.parse(STUB.read_text())
    stubbed = stub_members(tree)
    runtime_classes = {name for name, obj in vars(_icgt).items() if inspect.isclass(obj)}
    assert {name for name in stubbed if "." not in name} == runtime_classes
    for qualified, members in stubbed.items():
        obj = _icgt
        for part in qualified.split("."):
            obj = getattr(obj, part)
        runtime = {name for name in vars(obj) if not name.startswith("_")}
        assert members == runtime, qualified


def test_stub_constants_match_the_module():
    tree = ast.parse(STUB.read_text())
    constants = {item.target.id for item in tree.body if isinstance(item, ast.AnnAssign)}
    runtime = {name for name, obj in vars(_icgt).items() if isinstance(obj, (int, float, str)) and not name.startswith("_")}
    assert constants == runtime
