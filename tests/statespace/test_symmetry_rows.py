"""The whole-batch canonical form against the reference's, state by state."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from ballast.model.config import Config, preset
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.statespace.explore import Budget, explore
from ballast.statespace.rowcodec import RowLayout
from ballast.statespace.suite import feature_slices
from ballast.statespace.symmetry import canonical
from ballast.statespace.symmetry_rows import RowSymmetry

LIMIT = 4000
"""Reachable states compared per configuration (the first, in breadth-first order)."""


def _configs() -> dict[str, Config]:
    """Every feature slice of the presets with MPNs to renumber and no VMs to sort, and a
    slice with three MPNs (free and used MPNs with equal contents: ties to break)."""
    out = {f"{p}/{name}": c for p in ("default", "hostile", "large-units")
           for name, c in feature_slices(preset(p)).items()
           if c.machine_pages > 1 and RowSymmetry(RowLayout(c)).whole
           and RowSymmetry(RowLayout(c)).renumbers}
    out["three-mpns"] = feature_slices(preset("default"))["protocol"].replace(machine_pages=3)
    return out


CONFIGS = _configs()


def _reachable(cfg: Config) -> list[State]:
    ex = explore(BalloonModel(cfg), budget=Budget(max_states=LIMIT))
    return [ex.state(i) for i in range(ex.states)]


def _compare(cfg: Config, sym: RowSymmetry) -> tuple[int, int]:
    """(states whose canonical rows differ from the reference's, states renumbered)."""
    lay = sym.layout
    states = _reachable(cfg)
    rows = np.stack([lay.encode(s) for s in states])
    want: npt.NDArray[np.int16] = np.stack([lay.encode(canonical(cfg, s)) for s in states])
    got = sym.canonical(rows)
    return int((got != want).any(axis=1).sum()), int((rows != want).any(axis=1).sum())


def test_the_slices_compared_renumber_mpns() -> None:
    assert {"default/protocol", "default/reset", "hostile/driver", "three-mpns"} <= set(CONFIGS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_canonical_rows_are_the_references_canonical_states(name: str) -> None:
    cfg = CONFIGS[name]
    wrong, renumbered = _compare(cfg, RowSymmetry(RowLayout(cfg)))
    assert wrong == 0
    assert renumbered > 0  # the comparison covers states the renumbering changes


def test_a_wrong_order_of_the_host_groups_is_caught() -> None:
    cfg = CONFIGS["three-mpns"]
    sym = RowSymmetry(RowLayout(cfg))
    sym._in_use, sym._free = sym._free, sym._in_use  # free MPNs before those in use
    wrong, _ = _compare(cfg, sym)
    assert wrong > 0


def test_a_column_left_unpermuted_is_caught() -> None:
    cfg = CONFIGS["default/protocol"]
    sym = RowSymmetry(RowLayout(cfg))
    sym._indexed = sym._indexed[1:]  # the host's first MPN field is not renumbered
    wrong, _ = _compare(cfg, sym)
    assert wrong > 0


def test_vms_configured_alike_are_left_to_the_reference() -> None:
    cfg = feature_slices(preset("default"))["two-vms"]
    assert not RowSymmetry(RowLayout(cfg)).whole
    assert RowSymmetry(RowLayout(CONFIGS["default/protocol"])).whole


def test_without_mpn_symmetry_rows_are_their_own_canonical_form() -> None:
    cfg = feature_slices(preset("hugepages"))["host-pages"]
    sym = RowSymmetry(RowLayout(cfg))
    rows = np.stack([sym.layout.encode(s) for s in _reachable(cfg)[:50]])
    assert not sym.renumbers and (sym.canonical(rows) == rows).all()
