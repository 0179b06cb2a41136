"""The examples in the numeric core's docstrings run and say what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ballast.numeric


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.iter_modules(
    ballast.numeric.__path__)))
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(f"ballast.numeric.{name}")
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
    assert hasattr(module, "__all__")
