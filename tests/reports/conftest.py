"""Fixtures of the report tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ballast.model.trace import write_trace

# Under --import-mode=importlib test folders are not on sys.path: the report tests
# share their fixed traces through report_fixtures.py beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from report_fixtures import reclaim_trace  # noqa: E402


@pytest.fixture
def reclaim_file(tmp_path: Path) -> Path:
    """The fixed counterexample written as ``reclaim_keeps_mapping.jsonl`` in a fresh folder."""
    path = tmp_path / "reclaim_keeps_mapping.jsonl"
    write_trace(path, reclaim_trace())
    return path
