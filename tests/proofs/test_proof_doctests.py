"""The runnable examples in the proof modules' docstrings hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["encoding", "interpret", "transitions", "properties", "faults", "bmc", "policy",
           "limits", "agreement", "queries", "reachability"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"ballast.proofs.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
