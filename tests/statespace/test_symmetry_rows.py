"""The whole-batch canonical form against the reference's, state by state: the same rows
where no VMs are sorted, the same classes of states where they are."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from ballast.model.config import Config, preset
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.statespace.configs import EXPLORE_CONFIGS
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
           if c.machine_pages > 1 and not RowSymmetry(RowLayout(c)).groups
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


def _sorted_configs() -> dict[str, Config]:
    """Slices and small configurations with VMs configured alike: two honest VMs (with and
    without MPNs to renumber: host pages of two units), three honest VMs, two hostile VMs
    beside an honest one, and two VMs that share pages and use host swap (the signature's
    contents, copy-on-write marks and swap entries)."""
    three = Config(vms=3, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
                   machine_pages=3, host_swap_slots=0, tokens=1, batch=1)
    out = {f"{p}/{name}": c for p in ("default", "hostile", "large-units")
           for name, c in feature_slices(preset(p)).items()
           if RowSymmetry(RowLayout(c)).groups}
    out.update({
        "two-vms-host-pages": EXPLORE_CONFIGS["two-vms-host-pages"],  # no MPNs renumbered
        "three-vms": three,
        "two-hostile-vms": three.replace(hostile_vms=frozenset({1, 2})),
        "sharing-and-host-swap": Config(vms=2, guest_pages=2, guest_data_pages=1,
                                        guest_disk_slots=0, machine_pages=3, host_swap=True,
                                        host_swap_slots=1, sharing=True, tokens=2, batch=1,
                                        host_use=False)})
    return out


SORTED = _sorted_configs()


def _classes(cfg: Config, sym: RowSymmetry) -> tuple[int, int, int]:
    """(reference classes split by the rows' canonical form + rows' classes that merge
    reference classes, states whose VMs the rows sort, reference classes)."""
    lay = sym.layout
    states = _reachable(cfg)
    rows = np.stack([lay.encode(s) for s in states])
    got = sym.canonical(rows)
    by_ref: dict[State, set[bytes]] = {}
    by_rows: dict[bytes, set[State]] = {}
    for s, row in zip(states, got):
        by_ref.setdefault(canonical(cfg, s), set()).add(row.tobytes())
        by_rows.setdefault(row.tobytes(), set()).add(canonical(cfg, s))
    wrong = sum(len(x) > 1 for x in by_ref.values()) + sum(len(x) > 1 for x in by_rows.values())
    moved = int((sym.sort_vms(rows) != rows).any(axis=1).sum())
    return wrong, moved, len(by_ref)


def test_the_configurations_with_vms_to_sort_cover_both_kinds_of_class() -> None:
    assert {"default/two-vms", "hostile/over-target", "two-vms-host-pages",
            "three-vms", "two-hostile-vms"} <= set(SORTED)
    assert not RowSymmetry(RowLayout(SORTED["two-vms-host-pages"])).renumbers


@pytest.mark.parametrize("name", sorted(SORTED))
def test_sorted_vms_give_the_references_classes(name: str) -> None:
    """Where VMs are sorted the rows' canonical form is another representative of each
    class: two states share a canonical row exactly where they share the reference's
    canonical state."""
    cfg = SORTED[name]
    wrong, moved, classes = _classes(cfg, RowSymmetry(RowLayout(cfg)))
    assert wrong == 0
    assert moved > 0 and classes < LIMIT  # VMs were sorted; the classes merge states


def test_vms_sorted_by_number_alone_are_caught() -> None:
    """Sorting nothing (each VM kept where it is) splits the reference's classes."""
    cfg = SORTED["default/two-vms"]
    sym = RowSymmetry(RowLayout(cfg))
    sym.groups = []
    assert _classes(cfg, sym)[0] > 0


def test_host_swap_entries_left_behind_by_their_vm_are_caught() -> None:
    """The host's swap entries of a VM move with it (the reference renames their VM): left
    where they are, they split the reference's classes."""
    cfg = SORTED["sharing-and-host-swap"]
    sym = RowSymmetry(RowLayout(cfg))
    swap = set(sym.layout.cols("swap"))
    sym._vm_cols = [np.array([c for c in cols if c not in swap], dtype=np.intp)
                    for cols in sym._vm_cols]
    assert _classes(cfg, sym)[0] > 0
