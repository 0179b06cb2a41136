"""The Hypothesis machine's runs depend on the seed, not on which modules are loaded
(:mod:`ballast.seeded_draws`)."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import pytest

import ballast.simulation.stateful as stateful
from ballast.model.config import preset
from ballast.model.system import BalloonModel


def _runs() -> list[tuple[int, int, int, int]]:
    # The default preset has a hostile guest, whose reports may name any 32-bit PPN. Two
    # seeds: a mined constant changes the counts of some runs only (a report of one
    # out-of-range PPN is turned down like one of another), and which ones depends on the
    # Hypothesis version.
    out = [stateful.run_machine(BalloonModel(preset("default")), seed=seed, examples=20,
                                steps=30) for seed in (3, 4)]
    return [(o.steps_run, o.runs, o.discarded, o.blind) for o in out]


def _load_module_full_of_literals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local module (outside site-packages and the standard library) with integer
    literals (Hypothesis mines those of 100 and over), as a user's own code or an edited
    Ballast source has."""
    folder = tmp_path / "usercode"
    folder.mkdir()
    path = folder / "literals.py"
    literals = [100 + 37 * i for i in range(64)] + [2 ** k - 1 for k in range(8, 33)]
    path.write_text(f"TABLE = {literals}\n")
    spec = importlib.util.spec_from_file_location("usercode_literals", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "usercode_literals", module)


def test_loading_a_module_does_not_change_the_runs(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    before = _runs()
    _load_module_full_of_literals(tmp_path, monkeypatch)
    assert _runs() == before


def test_without_it_the_same_seed_gives_other_runs(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # What the guard above prevents: Hypothesis draws constants mined from loaded modules.
    monkeypatch.setattr(stateful, "seed_only_draws", contextlib.nullcontext)
    before = _runs()
    _load_module_full_of_literals(tmp_path, monkeypatch)
    assert _runs() != before
