"""The model is frozen data and pure step functions: no I/O, clock or global randomness."""

import ast
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import ballast.model

FORBIDDEN = {"random", "time", "datetime", "socket", "subprocess", "threading", "secrets"}
# Loading a configuration or the trace schema reads a file; stepping the model never does.
IO_MODULES = {"config", "trace", "replay"}


def model_modules() -> list[str]:
    return [m.name for m in pkgutil.iter_modules(ballast.model.__path__)]


@pytest.mark.parametrize("name", model_modules())
def test_no_clock_randomness_or_io_in_the_model(name: str) -> None:
    module = importlib.import_module(f"ballast.model.{name}")
    tree = ast.parse(Path(module.__file__ or "").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if name not in IO_MODULES:
                assert node.func.id not in ("open", "print", "input"), \
                    f"{name} calls {node.func.id}"
    assert not imported & FORBIDDEN, f"{name} imports {imported & FORBIDDEN}"
    if name not in IO_MODULES:
        assert not imported & {"os", "pathlib", "io", "tempfile"}, name


@pytest.mark.parametrize("name", model_modules())
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(f"ballast.model.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("name", ["simulation.randomwalk", "simulation.stateful",
                                  "simulation.shrink", "verdict", "errors", "reports.program"])
def test_core_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(f"ballast.{name}")
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


def test_every_public_module_declares_all() -> None:
    for name in model_modules():
        module = importlib.import_module(f"ballast.model.{name}")
        assert hasattr(module, "__all__"), name
