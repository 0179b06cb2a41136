"""The Z3 encoding of rogue processors, reports racing a reset, free page hinting and
hibernation agrees with the model on prefixes of the ``hostile``, ``hinting`` and
``hibernation`` presets, and where a hostile guest's reports race its reset (``-m slow``).

The default run checks these features on small configurations, every reachable state of
each (``hostile/hostile-processors``, ``hostile/reset-races``, ``hinting/hinting``,
``hibernation/hibernation`` of :func:`ballast.proofs.agreement.agreement_configs`), and
``tests/proofs/test_proof_faults.py`` refutes each of their seeded faults."""

from __future__ import annotations

import pytest

from ballast.model.config import Config, preset
from ballast.proofs.agreement import agreement_configs, check_agreement
from ballast.proofs.reachability import reachable

RACING_HOSTILE = agreement_configs()["hostile/reset-races"].replace(hostile_vms=frozenset({0}))
"""A hostile guest's reports (duplicates, a PPN out of range) in flight across its reset."""


def _check(cfg: Config, max_states: int | None) -> None:
    rs = reachable(cfg, max_states=max_states)
    report = check_agreement(cfg, rs.states, steps=rs.steps)
    assert report.ok, (report.summary(), [(str(rs.path(d.index)), d.what)
                                          for d in report.disagreements])
    assert report.enabled_steps > 0 and report.property_checks > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hostile", "hinting", "hibernation"])
def test_the_encoding_agrees_on_a_prefix_of_the_preset(name: str) -> None:
    _check(preset(name), 300)


@pytest.mark.slow
def test_the_encoding_agrees_where_a_hostile_guests_reports_race_its_reset() -> None:
    _check(RACING_HOSTILE, None)
