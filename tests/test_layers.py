"""No module imports a layer above its own (ARCHITECTURE.md names the layers).

Every module of the ``ballast`` namespace is found from pyproject.toml's
``package-dir`` and ``packages``; every import in it is read with ``ast``,
including those inside functions and under ``TYPE_CHECKING``, and so is every
string that names a module of the namespace (the registries that import their
backends, suites and subcommands by name). A module belongs to the layer of the
longest name prefix listed in :data:`LAYERS`.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, tuple[str, ...]] = {
    "common ground": ("ballast",),
    "model": ("ballast.model",),
    "reports": ("ballast.reports",),
    "checkers": ("ballast.simulation", "ballast.statespace", "ballast.proofs", "ballast.numeric",
                 "ballast.validate"),
    "suites": ("ballast.suites",),
    "command line": ("ballast.cli", "ballast.__main__"),
}
"""Layer -> the packages and modules in it, bottom to top (a layer may import its own and
those below it)."""

RANK = {layer: n for n, layer in enumerate(LAYERS)}


def layer_of(module: str) -> str:
    """The layer of the longest prefix of ``module`` that :data:`LAYERS` lists."""
    best, found = -1, ""
    for layer, prefixes in LAYERS.items():
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, found = len(p), layer
    assert found, f"{module} is in no layer"
    return found


def modules() -> dict[str, Path]:
    """Module name -> source file, for every module the package installs."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs: dict[str, str] = tool["package-dir"]
    out = {}
    for package in tool["packages"]:
        parts = package.split(".")
        head = next(".".join(parts[:n]) for n in range(len(parts), 0, -1)
                    if ".".join(parts[:n]) in dirs)
        folder = ROOT / dirs[head] / Path(*parts[len(head.split(".")):])
        for f in sorted(folder.glob("*.py")):
            out[package if f.stem == "__init__" else f"{package}.{f.stem}"] = f
    return out


def imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The namespace's modules that ``module`` imports or names, anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            names.add(node.value)
    return {n for n in names if n in known}


ALL = modules()


def test_every_module_is_found_and_placed() -> None:
    assert {"ballast", "ballast.errors", "ballast.model.system", "ballast.cli"} <= set(ALL)
    for module in ALL:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(ALL))
def test_no_import_from_a_higher_layer(module: str) -> None:
    own = RANK[layer_of(module)]
    upward = sorted(f"{n} ({layer_of(n)})" for n in imported(module, ALL[module], set(ALL))
                    if RANK[layer_of(n)] > own)
    assert upward == [], f"{module} ({layer_of(module)}) imports a layer above it"


def test_the_walk_sees_function_level_and_named_imports(tmp_path: Path) -> None:
    # The check must not be blind to imports it is meant to catch.
    src = tmp_path / "probe.py"
    src.write_text("def f():\n    from ballast.cli import main\n\n"
                   "PLUGINS = ('ballast.suites.check',)\n")
    found = imported("ballast.model.probe", src, set(ALL))
    assert {"ballast.cli", "ballast.suites.check"} <= found
    assert RANK[layer_of("ballast.cli")] > RANK[layer_of("ballast.model.probe")]


def test_the_tests_mirror_the_packages() -> None:
    # A reader finds a module's tests in the folder of the same path under tests/.
    folders = {f.parent.relative_to(ROOT) for f in ALL.values()}
    with_code = {d for d in folders if any((ROOT / d).glob("[!_]*.py"))}
    tests = ROOT / "tests"
    missing = sorted(str(d) for d in with_code if not any((tests / d).glob("test_*.py")))
    assert missing == [], f"packages without a tests/ folder of their own: {missing}"
    strays = sorted(str(d.relative_to(tests)) for d in tests.rglob("*")
                    if d.is_dir() and any(d.glob("test_*.py"))
                    and d.relative_to(tests) not in folders and d != tests)
    assert strays == [], f"tests/ folders that mirror no package: {strays}"
