"""The examples in the report modules' docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["atomic", "commands", "counterexample", "diff", "explain", "junit", "memory", "page",
           "render_md", "sarif", "sequence", "summary"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(f"ballast.reports.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
