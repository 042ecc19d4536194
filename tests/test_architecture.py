"""Layers import one way, and the public API is what __all__ says (trio's test_exports).

Each package of src/strom may import only packages beneath it: a storage
module that imported the client layer, or a codec that touched the disk
layer, fails here.
"""

from __future__ import annotations

import ast
import inspect
import pathlib

import pytest

import strom

SRC = pathlib.Path(strom.__file__).parent

# Lower number = lower layer. A module may import modules of its own layer or below.
LAYERS = {
    "errors": 0, "clock": 0, "records": 0, "progress": 0, "config": 1,
    "codec": 2,
    "storage": 3,
    "group": 4,
    "client": 5,
    "streams": 6, "connect": 6, "compat": 6,
    "wire": 7, "remote": 7,
    "cli": 8,
    "testing": 8,
}


def _layer_of(module: str) -> str:
    return module.split(".")[0]


def _imports(path: pathlib.Path) -> list[tuple[str, int]]:
    """strom-internal modules imported by ``path``, as top-level names under strom."""
    rel = path.relative_to(SRC).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
                if not target:  # "from . import x" at the top package
                    target = [alias.name for alias in node.names][:1]
            elif node.module and node.module.startswith("strom"):
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                out.append((target[0], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("strom."):
                    out.append((alias.name.split(".")[1], node.lineno))
    return out


MODULES = sorted(p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] != "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_go_down_only(path: pathlib.Path) -> None:
    own = _layer_of(str(path.relative_to(SRC).with_suffix("")).replace("/", "."))
    assert own in LAYERS, f"{path.name}: add its package to LAYERS"
    for target, line in _imports(path):
        assert target in LAYERS, f"{path}:{line} imports unknown strom module {target!r}"
        assert LAYERS[target] <= LAYERS[own], (
            f"{path.relative_to(SRC)}:{line} ({own}, layer {LAYERS[own]}) imports "
            f"{target} (layer {LAYERS[target]}), a layer above it")


def test_all_names_exist_and_are_documented() -> None:
    for name in strom.__all__:
        obj = getattr(strom, name)
        if name.startswith("__"):
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"strom.{name} has no docstring"


def _public_modules() -> list:
    import strom.compat
    from strom.compat import admin, bootstrap, consumer, errors, producer, structs
    return [strom, strom.compat, admin, bootstrap, consumer, errors, producer, structs]


@pytest.mark.parametrize("module", _public_modules(), ids=lambda m: m.__name__)
def test_public_methods_have_docstrings(module) -> None:
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if not inspect.isclass(obj) or issubclass(obj, BaseException):
            continue
        for attr, member in vars(obj).items():
            if attr.startswith("_"):
                continue
            if inspect.isfunction(member) or isinstance(member, property):
                doc = member.__doc__ if isinstance(member, property) else inspect.getdoc(member)
                if not doc:
                    missing.append(f"{module.__name__}.{name}.{attr}")
    assert not missing, f"public names without a docstring: {missing}"


def test_every_error_derives_from_stromerror() -> None:
    for name in strom.__all__:
        obj = getattr(strom, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            assert issubclass(obj, strom.StromError), name
