"""The examples in the explorer's docstrings run and say what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ballast.statespace


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.iter_modules(
    ballast.statespace.__path__)))
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(f"ballast.statespace.{name}")
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
    assert hasattr(module, "__all__")
