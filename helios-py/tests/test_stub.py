"""The hand-kept stub `helios/_helios.pyi` must describe the built module exactly, both ways."""

import ast
import inspect
from pathlib import Path

import helios
from helios import _helios

STUB = Path(helios.__file__).with_name("_helios.pyi")


def stub_names():
    """Top-level public names the stub declares, mapped to their AST nodes."""
    tree = ast.parse(STUB.read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return {n: v for n, v in names.items() if not n.startswith("_") or n == "__version__"}


def runtime_names():
    return {
        n
        for n in dir(_helios)
        if (not n.startswith("_") or n == "__version__")
    }


def test_stub_and_module_declare_the_same_names():
    assert set(stub_names()) == runtime_names()


def test_package_reexports_everything():
    exported = set(helios.__all__)
    assert runtime_names() <= exported
    for name in exported:
        assert hasattr(helios, name), name


def params_of(fn: ast.FunctionDef):
    a = fn.args
    out = [(p.arg, "POSITIONAL_OR_KEYWORD") for p in a.posonlyargs + a.args]
    out += [(p.arg, "KEYWORD_ONLY") for p in a.kwonlyargs]
    return [p for p in out if p[0] != "self"]


def runtime_params(obj):
    params = inspect.signature(obj).parameters.values()
    return [(p.name, p.kind.name) for p in params if p.name != "self"]


def test_function_signatures_match():
    stub = stub_names()
    for name, node in stub.items():
        if isinstance(node, ast.FunctionDef):
            assert runtime_params(getattr(_helios, name)) == params_of(node), name


def test_class_members_match():
    for name, node in stub_names().items():
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(_helios, name)
        members = {
            n.name: n for n in node.body if isinstance(n, ast.FunctionDef)
        }
        for member, fn in members.items():
            assert hasattr(cls, member), f"{name}.{member} is in the stub but not the module"
            if member == "__init__":
                assert runtime_params(cls) == params_of(fn), name
            elif not any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list):
                assert runtime_params(getattr(cls, member)) == params_of(fn), f"{name}.{member}"
        if name == "Evaluator":
            public = {m for m in vars(cls) if not m.startswith("_")}
            assert public == set(members) - {"__init__"}
