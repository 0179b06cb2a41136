"""The actions written once: kernels over the operations layer, below both backends."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from ballast.model import action_kernels, ops
from ballast.model.action_kernels import FAULT_KERNELS, KERNELS
from ballast.model.actions import ACTIONS
from ballast.model.faults import FAULTS


@pytest.mark.parametrize("module", [ops, action_kernels])
def test_the_operations_layer_imports_neither_backend(module: object) -> None:
    tree = ast.parse(Path(inspect.getfile(module)).read_text())  # type: ignore[arg-type]
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"numpy", "z3"}, imported


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_each_kernel_mirrors_the_model_function_of_its_name(name: str) -> None:
    assert name in ACTIONS
    assert f"actions.{name}`" in (KERNELS[name].__doc__ or ""), name


@pytest.mark.parametrize("fault", sorted(FAULT_KERNELS))
def test_a_fault_kernel_replaces_the_action_the_model_fault_replaces(fault: str) -> None:
    action, kernel = FAULT_KERNELS[fault]
    assert FAULTS[fault].action == action and action in KERNELS
    assert kernel is not KERNELS[action]
