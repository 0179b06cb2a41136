"""The Z3 encoding of free page reporting, page poison and the statistics queue agrees with
the model on the ``reporting`` and ``poison`` presets themselves, and where poisoning writes
shared and host-swapped pages (``-m slow``: each takes tens of seconds).

The default run checks these features on the presets' small slices, every reachable state
of each, in the configurations every agreement test reads
(:func:`ballast.proofs.agreement.agreement_configs`: ``reporting/protocol-paging``,
``reporting/host-swap``, ``poison/protocol-paging``, ``poison/host-swap``, ``default/flood``)."""

from __future__ import annotations

import pytest

from ballast.model.config import Config, preset
from ballast.proofs.agreement import check_agreement
from ballast.proofs.reachability import reachable

PREFIX = 300
"""States of each preset checked first (those a breadth-first search finds first)."""


def _check(cfg: Config, max_states: int | None) -> None:
    rs = reachable(cfg, max_states=max_states)
    report = check_agreement(cfg, rs.states, steps=rs.steps)
    assert report.ok, (report.summary(), [(str(rs.path(d.index)), d.what)
                                          for d in report.disagreements])
    assert report.enabled_steps > 0 and report.property_checks > 0
    fired = {a.name for steps in rs.steps for a, _ in steps}
    assert {"balloon_report_free_pages", "vmm_discard_reported"} <= fired


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reporting", "poison"])
def test_the_encoding_agrees_on_a_prefix_of_the_preset(name: str) -> None:
    _check(preset(name), PREFIX)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reporting", "poison"])
def test_the_encoding_agrees_on_a_longer_prefix_of_the_preset(name: str) -> None:
    _check(preset(name), 20_000)


POISON_SHARED = preset("poison").replace(
    vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=0, machine_pages=2,
    host_swap=True, host_swap_slots=1, sharing=True, host_use=False, batch=1)
"""Two pages that may share a machine page and be paged out by the host: reporting one
poisons it through a copy (copy-on-write) or faults it in from host swap first."""


@pytest.mark.slow
def test_the_encoding_agrees_where_poison_writes_shared_and_swapped_pages() -> None:
    _check(POISON_SHARED, None)
