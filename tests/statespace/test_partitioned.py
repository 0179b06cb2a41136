"""The partitioned explorer against the reference explorer: in this process, and on a local
Dask cluster of two worker processes (slow)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from ballast.errors import UsageError
from ballast.model.actions import ACTIONS
from ballast.model.state import initial_state
from ballast.model.system import BalloonModel
from ballast.model.trace import read_trace
from ballast.statespace.configs import EXPLORE_CONFIGS, fault_config
from ballast.statespace.explore import Budget, Exploration, explore
from ballast.statespace.partitioned import (
    Partition, PartitionedExploration, explore_here, explore_partitioned, owner_of,
)
from ballast.statespace.traces import write_finding


def summary(ex: Exploration) -> dict[str, Any]:
    """Everything both explorers must agree on, shortest traces included."""
    return {
        "states": ex.states, "transitions": ex.transitions, "depth": ex.max_depth,
        "complete": ex.complete, "stop": ex.stop_reason, "complete_depth": ex.complete_depth,
        "findings": {name: (f.form, f.message, f.steps(ex), ex.path(f.state), f.action)
                     for name, f in ex.violations.items()},
        "witnessed": sorted(ex.witnessed), "deadlocks": ex.deadlocks,
        "deadlock": None if ex.deadlock is None else (
            ex.deadlock.message, ex.path(ex.deadlock.state)),
        "fired": dict(sorted(ex.fired.items())),
    }


FAULTS = ["release_keeps_balloon_set", "host_takes_single_unit", "free_refused_keeps_held"]
"""Seeded faults broken in step and state form, on a host page of several units, by the
module: each found within a few hundred states."""


@pytest.mark.parametrize(("name", "symmetry", "parts"), [
    ("one-vm-application", False, 1), ("one-vm-application", True, 3),
    ("one-vm-refusal", False, 2),
    pytest.param("two-vms", True, 3, marks=pytest.mark.slow)])
def test_the_same_exploration_as_the_reference(name: str, symmetry: bool, parts: int) -> None:
    model = BalloonModel(EXPLORE_CONFIGS[name])
    ref = explore(model, symmetry=symmetry)
    assert summary(explore_here(model, parts, symmetry=symmetry)) == summary(ref)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("symmetry", [False, True])
def test_a_seeded_fault_gives_the_same_findings_and_shortest_traces(fault: str,
                                                                     symmetry: bool) -> None:
    cfg = fault_config(fault).replace(guest_pages=1, guest_disk_slots=0)
    model = BalloonModel(cfg, (fault,))
    ref = explore(model, symmetry=symmetry)
    ex = explore_here(model, 2, symmetry=symmetry)
    assert ref.violations and summary(ex) == summary(ref)


def test_a_deadlock_is_found_with_its_shortest_trace(tmp_path: Path) -> None:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-no-host-use"])
    model.table = {k: v for k, v in ACTIONS.items() if k != "vmm_reclaim"}
    ex = explore_here(model, 2)
    assert ex.deadlock is not None and summary(ex) == summary(explore(model))
    trace = read_trace(write_finding(ex, ex.deadlock, tmp_path, "deadlock"))
    assert [s.action.name for s in trace.steps][-1] == "balloon_inflate"


def test_the_state_budget_stops_between_levels() -> None:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-application"])
    ex = explore_here(model, 2, budget=Budget(max_states=100))
    full = explore(model)
    assert not ex.complete and ex.stop_reason == "max_states"
    assert 100 <= ex.states < full.states
    # Every state up to the depth reached was visited: the reference's count there.
    assert ex.states == sum(1 for d in full.depth if d <= ex.complete_depth)
    with pytest.raises(UsageError, match="states alone"):
        explore_here(model, 2, budget=Budget(max_seconds=5.0))


def test_every_partition_holds_states_and_each_state_one_owner() -> None:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-application"])
    ex = explore_here(model, 3)
    counts = [ex.owner.count(p) for p in range(3)]
    assert sum(counts) == ex.states and min(counts) > ex.states // 10


def test_the_owner_of_a_state_is_the_same_in_every_process() -> None:
    # Python salts its hash of strings per process; the owner must not depend on it.
    cfg = EXPLORE_CONFIGS["two-vms"]
    states = [s for _, s in BalloonModel(cfg).successors(initial_state(cfg))]
    here = [owner_of(s, 7) for s in states]
    code = ("from ballast.model.system import BalloonModel\n"
            "from ballast.model.state import initial_state\n"
            "from ballast.statespace.configs import EXPLORE_CONFIGS\n"
            "from ballast.statespace.partitioned import owner_of\n"
            "cfg = EXPLORE_CONFIGS['two-vms']\n"
            "print([owner_of(s, 7) for _, s in BalloonModel(cfg).successors(initial_state(cfg))])")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}, check=True).stdout
        assert out.strip() == str(here)
    assert len(set(here)) > 1


def test_a_partition_sends_each_successor_once() -> None:
    cfg = EXPLORE_CONFIGS["one-vm"]
    part = Partition(cfg, (), False, True, 0, 1)
    part.receive([pickle.dumps([(initial_state(cfg), None, -1, 0, None, False)])])
    part.admit([0])
    part.expand()
    first = len(part.kept)
    assert first > 0
    part.frontier = [(0, next(iter(part.index)))]  # the same state again: nothing new to send
    part.expand()
    assert part.kept == [] and part.expanded == 2


# -- on a local cluster of two worker processes -----------------------------------------
@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    pytest.importorskip("distributed")
    from ballast.cluster import connected, parse_scheduler

    with connected(parse_scheduler("local:2")) as c:
        yield c


@pytest.mark.slow
def test_on_a_cluster_the_same_exploration_as_the_reference(client: Any) -> None:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-refusal"])
    ex = explore_partitioned(model, client, symmetry=True)
    assert isinstance(ex, PartitionedExploration) and ex.partitions == 2
    assert summary(ex) == summary(explore(model, symmetry=True))


@pytest.mark.slow
def test_on_a_cluster_a_seeded_fault_gives_the_same_trace(client: Any, tmp_path: Path) -> None:
    fault = "release_keeps_balloon_set"
    cfg = fault_config(fault).replace(guest_pages=1, guest_disk_slots=0)
    model = BalloonModel(cfg, (fault,))
    ex, ref = explore_partitioned(model, client), explore(model)
    assert ex.violations and summary(ex) == summary(ref)
    for name, f in ex.violations.items():
        ours = read_trace(write_finding(ex, f, tmp_path / "cluster", name))
        theirs = read_trace(write_finding(ref, ref.violations[name], tmp_path / "ref", name))
        assert ours.steps == theirs.steps
