"""The explorer: budgets, deadlocks, coverage, graph export, pinned state counts."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from ballast.model.actions import ACTIONS
from ballast.model.config import Config
from ballast.model.system import BalloonModel
from ballast.model.trace import read_trace
from ballast.statespace.configs import EXPLORE_CONFIGS, fault_config
from ballast.statespace.deadlock import stalled_vms
from ballast.statespace.explore import Budget, explore
from ballast.statespace.graph import state_graph, write_dot, write_graphml
from ballast.statespace.manifest import count_states, load_manifest
from ballast.statespace.traces import check_end, write_finding

FAST = ["one-vm", "one-vm-no-host-use", "one-vm-refusal", "one-vm-application",
        "one-vm-two-mpns"]


@pytest.mark.parametrize("name", FAST)
def test_state_counts_match_the_manifest(name: str) -> None:
    pinned = load_manifest()[name]
    assert Config.from_dict(pinned["config"]) == EXPLORE_CONFIGS[name]
    assert count_states(name) == pinned


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(EXPLORE_CONFIGS) - set(FAST)))
def test_state_counts_match_the_manifest_larger(name: str) -> None:
    assert count_states(name) == load_manifest()[name]


def test_manifest_covers_every_configuration() -> None:
    assert set(load_manifest()) == set(EXPLORE_CONFIGS)


def test_the_budget_makes_the_run_incomplete() -> None:
    ex = explore(BalloonModel(EXPLORE_CONFIGS["one-vm"]), budget=Budget(max_states=100))
    assert not ex.complete and ex.stop_reason == "max_states" and ex.states >= 100
    ex = explore(BalloonModel(EXPLORE_CONFIGS["one-vm"]), budget=Budget(max_bytes=2000))
    assert ex.stop_reason == "max_bytes"


def test_bfs_depths_are_shortest_path_lengths() -> None:
    ex = explore(BalloonModel(EXPLORE_CONFIGS["one-vm-application"]), keep_edges=True)
    g = state_graph(ex)
    dist = nx.single_source_shortest_path_length(g, 0)
    assert all(ex.depth[i] == dist[i] for i in range(ex.states))
    assert len(ex.path(ex.states - 1)) == ex.depth[ex.states - 1]


def test_the_correct_model_has_no_violation_and_no_deadlock() -> None:
    ex = explore(BalloonModel(EXPLORE_CONFIGS["one-vm"]))
    assert ex.complete and not ex.violations and ex.deadlock is None
    assert "balloon_reaches_target" in ex.witnessed
    assert ex.fired["balloon_inflate"] > 0


def test_actions_that_never_fire_are_reported() -> None:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm"])
    ex = explore(model)
    never = {s.name for s in model.action_specs()} - set(ex.fired)
    # no guest disk slot: the guest can never page out
    assert never == {"guest_evict"}
    model.table = {k: v for k, v in ACTIONS.items() if k != "vmm_reclaim"}
    ex = explore(model)
    never = {s.name for s in model.action_specs()} - set(ex.fired)
    assert never == {"balloon_complete", "balloon_deflate", "balloon_free_refused",
                     "guest_evict", "vmm_release"}
    assert "balloon_reaches_target" not in ex.witnessed


def test_a_vmm_that_never_processes_inflates_deadlocks(tmp_path: Path) -> None:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-no-host-use"])
    model.table = {k: v for k, v in ACTIONS.items() if k != "vmm_reclaim"}
    ex = explore(model)
    assert ex.deadlock is not None and ex.deadlocks > 0
    path = write_finding(ex, ex.deadlock, tmp_path, "deadlock")
    trace = read_trace(path)
    assert trace.steps[-1].action.name == "balloon_inflate"
    assert len(trace.steps) == 3  # set target, poll, inflate: the report is never processed


def test_stalled_vms_needs_protocol_work() -> None:
    cfg = EXPLORE_CONFIGS["one-vm"]
    s = BalloonModel(cfg).init_states()[0]
    assert stalled_vms(cfg, s, []) == []  # nothing to do: an intended final state
    s = s.with_vm(0, s.vms[0].replace(target=1))
    assert stalled_vms(cfg, s, []) == [0]


def test_graph_export_highlights_violating_states(tmp_path: Path) -> None:
    name = "host_takes_partial_page"
    cfg = fault_config(name).replace(guest_pages=1, guest_disk_slots=0)
    ex = explore(BalloonModel(cfg, [name]), keep_edges=True)
    assert ex.violating
    g = state_graph(ex)
    write_dot(g, tmp_path / "g.dot")
    write_graphml(g, tmp_path / "g.graphml")
    dot = (tmp_path / "g.dot").read_text()
    assert dot.startswith("digraph") and "color=red" in dot
    back = nx.read_graphml(tmp_path / "g.graphml")
    assert back.number_of_nodes() == ex.states
    assert sum(1 for _, d in back.nodes(data=True) if d["violating"]) == len(ex.violating)
    assert "host_take_page" in json.dumps(list(back.edges(data=True)))


def test_replay_decides_a_deadlock_again_on_the_model_it_names(tmp_path: Path) -> None:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-no-host-use"])
    model.table = {k: v for k, v in ACTIONS.items() if k != "vmm_reclaim"}
    ex = explore(model)
    assert ex.deadlock is not None
    trace = read_trace(write_finding(ex, ex.deadlock, tmp_path, "deadlock"))
    stuck = check_end(trace, model=model)
    assert stuck is not None and stuck.confirmed is True and "VM(s) 0 stalled" in stuck.detail
    # The trace names the whole model, whose VMM does process the report: no deadlock.
    moved = check_end(trace)
    assert moved is not None and moved.confirmed is False
    assert "move the protocol on" in moved.describe()


def test_replay_decides_a_deadlock_on_a_large_guest_from_its_first_moves() -> None:
    """The claim about a large guest's last state is decided from one enabled step per VM's
    protocol, not from every enabled step: on preset ``large`` a module asked for 10 pages
    may give any 1 to 10 of 64 (billions of steps, which replay used to list first)."""
    from ballast.model.actions import Action
    from ballast.model.config import preset
    from ballast.statespace.traces import make_trace

    model = BalloonModel(preset("large"))
    steps = [Action.of("host_set_target", vm=0, pages=10), Action.of("balloon_poll", vm=0)]
    trace = make_trace(model, steps, {"property": "deadlock_free", "step": 2}, "a test")
    moved = check_end(trace, model=model)
    assert moved is not None and moved.confirmed is False
    assert "move the protocol on" in moved.describe()
