"""Every string-keyed table that ties the model's names to code is complete and spelt right.

One completeness test over all of them (:func:`ballast.suites.tables.problems`), and tests that
show it names the file, the table and the key of a misspelt or missing entry.
"""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from ballast.suites import tables
from ballast.model.actions import ACTIONS, ActionSpec, Actor, Partition
from ballast.model.config import Config
from ballast.model.state import State
from ballast.suites.tables import KeyedTable, problems


def _found() -> list[str]:
    return [str(p) for p in problems()]


def test_every_keyed_table_is_complete_and_names_only_the_models_names() -> None:
    assert _found() == []


def test_the_check_covers_every_registry_that_ties_names_to_code() -> None:
    declared = {(t.file or tables.source_file(t.module), t.name) for t in tables.all_tables()}
    for where in [("proofs/transitions.py", "ENCODED (@_encodes)"),
                  ("proofs/properties.py", "SAFETY"), ("proofs/properties.py", "STEPS"),
                  ("proofs/faults.py", "FAULT_EFFECTS"), ("numeric/workload.py", "WEIGHTS"),
                  ("numeric/engine.py", "ENGINE_FAULTS"), ("numeric/engine.py", "STEP_CHECKS"),
                  ("numeric/engine.py", "Engine (a method per action)"),
                  ("numeric/invariants.py", "NUMERIC_INVARIANTS"),
                  ("statespace/suite.py", "feature_slices"),
                  ("model/virtio.py", "PROJECTIONS or PAGE_USE_ONLY"),
                  ("model/domains.py", "DOMAINS"), ("model/faults.py", "Fault.breaks"),
                  ("reports/sequence.py", "MESSAGES"),
                  ("validate/qemu/steps.py", "ACTION_OF (values)"),
                  ("validate/adapters/diff.py", "_SCENARIO_ACTIONS"),
                  ("validate/adapters/observe.py", "OBSERVATIONS (state paths)"),
                  ("README.md", "the actors and actions")]:
        assert where in declared, where


def test_docstring_examples() -> None:
    result = doctest.testmod(tables)
    assert result.attempted > 0 and result.failed == 0


def test_a_misspelt_key_is_named_with_the_file_the_table_and_the_closest_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ballast.numeric import workload

    monkeypatch.setitem(workload.WEIGHTS, "guest_wirte", workload.WEIGHTS["guest_write"])
    monkeypatch.delitem(workload.WEIGHTS, "guest_write")
    assert _found() == [
        "numeric/workload.py: WEIGHTS: 'guest_wirte' is not an action of the model "
        "(did you mean guest_write?)",
        "numeric/workload.py: WEIGHTS has no entry for action guest_write"]


@pytest.mark.parametrize("module, table, key, line", [
    ("ballast.proofs.transitions", "ENCODED", "vmm_share",
     "proofs/transitions.py: ENCODED (@_encodes) has no entry for action vmm_share"),
    ("ballast.proofs.faults", "FAULT_EFFECTS", "share_without_cow",
     "proofs/faults.py: FAULT_EFFECTS has no entry for seeded fault share_without_cow"),
    ("ballast.proofs.properties", "STEPS", "isolation",
     "proofs/properties.py: STEPS has no entry for property isolation"),
    ("ballast.numeric.invariants", "NUMERIC_INVARIANTS", "host_pages_whole",
     "numeric/invariants.py: NUMERIC_INVARIANTS has no entry for property host_pages_whole"),
    ("ballast.model.virtio", "PROJECTIONS", "balloon_poll",
     "model/virtio.py: PROJECTIONS or PAGE_USE_ONLY has no entry for action balloon_poll"),
    ("ballast.reports.sequence", "MESSAGES", "guest_evict",
     "reports/sequence.py: MESSAGES has no entry for action guest_evict"),
    ("ballast.model.domains", "DOMAINS", "vcpu",
     "model/domains.py: DOMAINS has no entry for action parameter vcpu"),
    ("ballast.validate.adapters.diff", "_SCENARIO_ACTIONS", "page_shared",
     "validate/adapters/diff.py: _SCENARIO_ACTIONS has no entry for scenario page_shared"),
])
def test_a_missing_entry_is_named_with_the_file_and_the_table(
        monkeypatch: pytest.MonkeyPatch, module: str, table: str, key: str, line: str) -> None:
    import importlib

    monkeypatch.delitem(getattr(importlib.import_module(module), table), key)
    assert _found() == [line]


def test_a_fault_set_without_an_entry_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from ballast.numeric import encodes

    monkeypatch.setattr(encodes, "ENGINE_FAULTS", encodes.ENGINE_FAULTS - {"free_without_scrub"})
    assert _found() == [
        "numeric/engine.py: ENGINE_FAULTS has no entry for seeded fault free_without_scrub"]


def test_a_property_no_seeded_fault_breaks_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from ballast.model.faults import FAULTS

    monkeypatch.delitem(FAULTS, "host_takes_single_unit")
    found = _found()
    assert "model/faults.py: Fault.breaks has no entry for property host_pages_whole" in found


def test_a_feature_no_slice_explores_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from ballast.statespace import suite

    real = suite.feature_slices

    def without_refusal(cfg: Config) -> dict[str, Config]:
        return {n: c for n, c in real(cfg).items() if n != "refusal"}

    monkeypatch.setattr(suite, "feature_slices", without_refusal)
    assert _found() == ["statespace/suite.py: feature_slices has no entry for feature switch "
                        "refusal"]


def test_an_observation_key_that_is_no_state_path_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ballast.validate.adapters.observe import OBSERVATIONS, ObservationKey

    monkeypatch.setitem(OBSERVATIONS, "vms/*/module/ballon", ObservationKey("vms/*/module/ballon",
                                                                           "misspelt"))
    assert _found() == [
        "validate/adapters/observe.py: OBSERVATIONS (state paths): 'vms/*/module/ballon' is not "
        "a state path of the model (did you mean vms/*/module/balloon?)"]


def test_an_action_added_to_the_model_is_named_in_every_table_that_lacks_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The tables read the model's names when checked: a new action shows in each table
    that must cover actions, less the backends that declared it a known gap."""
    def _noop(cfg: Config, s: State, vm: int) -> State:
        return s

    def _one(cfg: Config, s: State) -> list[dict[str, Any]]:
        return [{"vm": 0}]

    monkeypatch.setitem(ACTIONS, "vmm_nap", ActionSpec(
        "vmm_nap", Actor.VMM, _noop, _one, ("vm",), lambda cfg: True, False,
        partition=Partition.SYSTEM))
    found = [p for p in problems() if p.key == "vmm_nap"]
    assert sorted((p.file, p.table) for p in found) == [
        ("README.md", "the actors and actions"),
        ("model/virtio.py", "PROJECTIONS or PAGE_USE_ONLY"),
        ("numeric/engine.py", "Engine (a method per action)"),
        ("numeric/workload.py", "WEIGHTS"),
        ("proofs/transitions.py", "ENCODED (@_encodes)"),
        ("reports/sequence.py", "MESSAGES")]
    assert len(problems()) == len(found)


def test_a_table_that_cannot_be_read_is_a_problem_not_a_crash() -> None:
    gone = KeyedTable("GONE", "ballast.no_such_module", "actions", lambda: [])
    (p,) = problems([gone])
    assert str(p).startswith("ballast.no_such_module: GONE: cannot be read (")
