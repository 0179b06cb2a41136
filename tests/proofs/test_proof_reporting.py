"""The Z3 encoding of free page reporting, page poison and the statistics queue agrees with
the model on the ``reporting`` and ``poison`` presets themselves, and where poisoning writes
shared and host-swapped pages; that of rogue processors, reports racing a reset, free page
hinting and hibernation on prefixes of the ``hostile``, ``hinting`` and ``hibernation``
presets, and where a hostile guest's reports race its reset (``-m slow``: each takes tens of
seconds).

The default run checks these features on the presets' small slices, every reachable state
of each, in the configurations every agreement test reads
(:func:`ballast.proofs.agreement.agreement_configs`: ``reporting/protocol-paging``,
``reporting/host-swap``, ``poison/protocol-paging``, ``poison/host-swap``, ``default/flood``,
``hostile/hostile-processors``, ``hostile/reset-races``, ``hinting/hinting``,
``hibernation/hibernation``), and ``tests/proofs/test_proof_faults.py`` refutes each of the
features' seeded faults."""

from __future__ import annotations

import pytest

from ballast.model.config import Config, preset
from ballast.proofs.agreement import agreement_configs, check_agreement
from ballast.proofs.reachability import reachable

PREFIX = 300
"""States of each preset checked first (those a breadth-first search finds first)."""


REPORTING_ACTIONS = frozenset({"balloon_report_free_pages", "vmm_discard_reported"})


def _check(cfg: Config, max_states: int | None,
           expect: frozenset[str] = REPORTING_ACTIONS) -> None:
    rs = reachable(cfg, max_states=max_states)
    report = check_agreement(cfg, rs.states, steps=rs.steps)
    assert report.ok, (report.summary(), [(str(rs.path(d.index)), d.what)
                                          for d in report.disagreements])
    assert report.enabled_steps > 0 and report.property_checks > 0
    fired = {a.name for steps in rs.steps for a, _ in steps}
    assert expect <= fired, sorted(expect - fired)


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


def _small(name: str) -> Config:
    from ballast.proofs.agreement import agreement_configs
    return agreement_configs()[name]


@pytest.mark.parametrize("name", ["reporting/host-swap", "poison/host-swap", "default/flood"])
def test_the_features_are_proved_on_a_small_guest(name: str) -> None:
    from ballast.proofs.run import prove
    report = prove(_small(name), policy=False, reach_states=0)
    assert report.exit_code == 0, [f.headline for f in report.findings]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reporting", "poison"])
def test_the_presets_are_proved(name: str) -> None:
    from ballast.proofs.run import prove
    report = prove(preset(name), reach_states=0)
    assert report.exit_code == 0, [f.headline for f in report.findings]


def test_a_fault_that_first_breaks_the_strengthening_is_caught_by_its_property() -> None:
    """The module that forgets the report it sent breaks a fact the proof rests on (what is
    queued is held) a step before the guest reuses the page: prove reports the property the
    fault is named with, reached by the bounded search, not a wrong strengthening."""
    from ballast.proofs.run import prove
    from ballast.proofs.induction import ProofVerdict
    fault = "report_without_isolation"
    report = prove(_small("reporting/protocol-paging"), faults=(fault,), policy=False,
                   reach_states=0)
    assert report.exit_code == 1, [f.headline for f in report.findings]
    assert report.property_verdict("reported_pages_not_reused") is ProofVerdict.VIOLATED
    finding = next(f for f in report.findings if f.conjunct == "reported_pages_not_reused")
    assert finding.reachability == "reachable" and finding.bmc is not None
    assert finding.bmc.trace is not None
    assert finding.bmc.trace.header.expect == {"property": "reported_pages_not_reused",
                                               "step": finding.bmc.depth}


# Rogue processors, reports racing a reset, free page hinting and hibernation.

RACING_HOSTILE = agreement_configs()["hostile/reset-races"].replace(hostile_vms=frozenset({0}))
"""A hostile guest's reports (duplicates, a PPN out of range) in flight across its reset."""


FEATURE_ACTIONS = {
    "hostile": REPORTING_ACTIONS,
    "hinting": frozenset({"vmm_request_hints", "balloon_hint_start", "balloon_hint_free_pages"}),
    "hibernation": frozenset({"balloon_restore"}),
}
"""Actions of each preset's own feature that its prefix must reach."""


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FEATURE_ACTIONS))
def test_the_encoding_agrees_on_a_prefix_of_the_features_preset(name: str) -> None:
    # The VMM paging out a VM over its target is compared on its own slice
    # (agreement_configs: hostile/over-target), kept off in this prefix.
    _check(preset(name).replace(vmm_reclaims_over_target=False), PREFIX, FEATURE_ACTIONS[name])


@pytest.mark.slow
def test_the_encoding_agrees_where_a_hostile_guests_reports_race_its_reset() -> None:
    _check(RACING_HOSTILE, None)
