"""The sequence diagram: every action of the model drawn, lanes by actor, who chose the pages."""

from __future__ import annotations

import random
from typing import Any
import xml.etree.ElementTree as ET

import pytest

from ballast.model.actions import ACTIONS, Action, Actor
from ballast.model.config import PRESETS, Config
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.reports.explain import explain
from ballast.reports.sequence import (GUEST_ALLOCATOR_CHOSE, HOST_CHOSE, VMM_CHOSE, actor_lane,
                                      lanes_for, mermaid, messages, svg)
from report_fixtures import make_trace, reclaim_trace

SCRIPTS: list[list[tuple[str, dict[str, Any]]]] = [
    [("host_set_target", {"vm": 0, "pages": 1}), ("balloon_poll", {"vm": 0}),
     ("balloon_inflate", {"vm": 0, "ppns": (0,)}), ("vmm_reclaim", {"vm": 0, "refuse": ()}),
     ("balloon_complete", {"vm": 0}), ("host_set_target", {"vm": 0, "pages": 0}),
     ("balloon_poll", {"vm": 0}), ("balloon_deflate", {"vm": 0, "ppns": (0,)})],
    [("host_set_cpu_target", {"vm": 0, "vcpus": 1}), ("balloon_poll", {"vm": 0}),
     ("balloon_cpu_offline", {"vm": 0, "vcpu": 1}), ("vmm_cpu_reclaim", {"vm": 0}),
     ("host_set_cpu_target", {"vm": 0, "vcpus": 2}), ("balloon_poll", {"vm": 0}),
     ("balloon_cpu_online", {"vm": 0, "vcpu": 1})],
    [("host_set_target", {"vm": 0, "pages": 1}), ("balloon_poll", {"vm": 0}),
     ("balloon_inflate", {"vm": 0, "ppns": (0,)}), ("vmm_reclaim", {"vm": 0, "refuse": (0,)}),
     ("balloon_complete", {"vm": 0}), ("balloon_free_refused", {"vm": 0})],
]


Seen = dict[str, tuple[Config, State, Action, State]]
Script = list[tuple[str, dict[str, Any]]]

# Scripted walks of the features a seeking walk rarely reaches, by the preset that has them.
FEATURE_SCRIPTS: list[tuple[str, Script]] = [
    ("qemu", [("host_set_target", {"vm": 0, "pages": 1}), ("balloon_poll", {"vm": 0}),
              ("balloon_inflate", {"vm": 0, "ppns": (0,)}),
              ("vmm_reclaim", {"vm": 0, "refuse": ()}), ("balloon_complete", {"vm": 0}),
              ("balloon_migrate", {"vm": 0, "new": 1}),
              ("vmm_reclaim", {"vm": 0, "refuse": ()}),
              ("balloon_migrate_release", {"vm": 0, "old": 0})]),
    ("reporting", [("guest_write", {"vm": 0, "vpn": 0, "token": 1}),
                   ("guest_evict", {"vm": 0, "vpn": 0}),
                   ("balloon_report_free_pages", {"vm": 0, "ppns": (0,)}),
                   ("vmm_discard_reported", {"vm": 0}), ("balloon_report_done", {"vm": 0}),
                   ("balloon_report_stats", {"vm": 0})]),
    ("hinting", [("guest_write", {"vm": 0, "vpn": 0, "token": 1}),
                 ("guest_evict", {"vm": 0, "vpn": 0}), ("vmm_request_hints", {"vm": 0}),
                 ("balloon_hint_start", {"vm": 0}),
                 ("balloon_hint_free_pages", {"vm": 0, "ppns": (0,)}),
                 ("vmm_skip_hinted", {"vm": 0}),
                 ("vmm_stop_hints", {"vm": 0, "command": "done"})]),
    ("hibernation", [("host_set_target", {"vm": 0, "pages": 1}), ("balloon_poll", {"vm": 0}),
                     ("balloon_inflate", {"vm": 0, "ppns": (0,)}),
                     ("vmm_reclaim", {"vm": 0, "refuse": ()}), ("balloon_complete", {"vm": 0}),
                     ("balloon_freeze", {"vm": 0}), ("balloon_restore", {"vm": 0})]),
    ("xen", [("vmm_back_page", {"vm": 0, "ppn": 0})]),  # the VMM backing ahead of the guest
]


def _scripted(cfg: Config, script: Script, seen: Seen) -> None:
    """Run ``script`` from the initial state, keeping the first step of each action."""
    model = BalloonModel(cfg)
    s = model.init_states()[0]
    for name, args in script:
        act = Action.of(name, **args)
        t = model.next_state(s, act)
        seen.setdefault(name, (cfg, s, act, t))
        s = t


def _seeking(cfg: Config, rng: random.Random, seen: Seen, walks: int, length: int) -> None:
    """Random walks that take an action not seen yet whenever one is enabled."""
    model = BalloonModel(cfg)
    for _ in range(walks):
        s = model.init_states()[0]
        for _ in range(length):
            succ = list(model.successors(s))
            fresh = [x for x in succ if x[0].name not in seen]
            act, t = rng.choice(fresh or succ)
            seen.setdefault(act.name, (cfg, s, act, t))
            s = t
        if len(seen) == len(ACTIONS):
            return


def every_action_step() -> Seen:
    """One real step of every action of the model (scripts, then walks that seek new actions:
    the default preset, what real virtio drivers do (``qemu``), and what the host does against
    guests that will not cooperate (``hostile``: rogue processors, stale reports))."""
    seen: Seen = {}
    for script in SCRIPTS:
        _scripted(PRESETS["default"], script, seen)
    rng = random.Random(1)
    _seeking(PRESETS["default"], rng, seen, 30, 30)
    _seeking(PRESETS["qemu"], rng, seen, 30, 30)
    for preset_name, script in FEATURE_SCRIPTS:
        _scripted(PRESETS[preset_name], script, seen)
    _seeking(PRESETS["hostile"], rng, seen, 30, 40)
    return seen


@pytest.fixture(scope="module")
def steps() -> Seen:
    return every_action_step()


def test_every_action_is_drawn_from_its_actors_lane(
        steps: dict[str, tuple[Config, State, Action, State]]) -> None:
    assert set(steps) == set(ACTIONS)
    for name, (cfg, pre, act, post) in steps.items():
        msgs = messages(cfg, pre, act, post)
        assert msgs, name
        vm = act.kwargs.get("vm")
        lane = actor_lane(ACTIONS[name].actor, vm if isinstance(vm, int) else None)
        assert lane in (msgs[0].src, msgs[0].dst), f"{name}: {msgs[0]} is not on lane {lane}"
        keys = {lane.key for lane in lanes_for(cfg)}
        assert all(m.src in keys and m.dst in keys for m in msgs), name
        assert all(str(act) != m.label for m in msgs), f"{name} fell back to the generic arrow"


def test_host_choice_marked_exactly_where_the_model_says(
        steps: dict[str, tuple[Config, State, Action, State]]) -> None:
    for name, (cfg, pre, act, post) in steps.items():
        marked = any(m.chooser == HOST_CHOSE for m in messages(cfg, pre, act, post))
        assert marked == ACTIONS[name].names_guest_page, name


def test_inflate_pages_are_the_guest_allocators_choice(
        steps: dict[str, tuple[Config, State, Action, State]]) -> None:
    cfg, pre, act, post = steps["balloon_inflate"]
    msgs = messages(cfg, pre, act, post)
    assert msgs[0].chooser == GUEST_ALLOCATOR_CHOSE
    assert (msgs[1].src, msgs[1].dst) == ("module0", "vmm")  # the report goes down to the VMM
    cfg, pre, act, post = steps["host_set_target"]
    m = messages(cfg, pre, act, post)[0]
    assert (m.src, m.dst) == ("host", "vmm") and "PPN" not in m.label  # a quantity only


def test_vmm_picking_pages_itself_is_shown() -> None:
    cfg = Config()
    steps: list[tuple[str, dict[str, Any]]] = [("guest_write", {"vm": 0, "vpn": 0, "token": 1}),
             ("guest_write", {"vm": 0, "vpn": 1, "token": 1}),
             ("host_set_target", {"vm": 0, "pages": 2}), ("balloon_poll", {"vm": 0}),
             ("balloon_inflate", {"vm": 0, "ppns": [2]}), ("vmm_reclaim", {"vm": 0, "refuse": []})]
    e = explain(make_trace(steps, cfg, faults=("vmm_reclaims_host_choice",)))
    assert e.property_name == "guest_chooses_pages"
    assert any(m.chooser == VMM_CHOSE for m in e.sequence[-1].messages)


def test_svg_is_well_formed_and_marks_the_failing_step() -> None:
    e = explain(reclaim_trace())
    text = svg(e.lanes, e.sequence)
    root = ET.fromstring(text)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    assert len(root.findall(f"{ns}rect[@class='failing']")) == 1
    titles = [t.text for t in root.iter(f"{ns}text")]
    for lane in e.lanes:
        assert lane.title in titles
    assert "href" not in text.replace("url(#arrowhead)", "")


def test_mermaid_has_every_participant_and_step() -> None:
    e = explain(reclaim_trace())
    text = mermaid(e.lanes, e.sequence)
    assert text.startswith("sequenceDiagram")
    for lane in e.lanes:
        assert f"participant {lane.key} as {lane.title}" in text
    for s in e.steps:
        assert f": {s.step}. " in text
    assert "FAILS HERE" in text and ";" not in text


def test_actor_lanes_cover_every_actor() -> None:
    assert {actor_lane(a, 0) for a in Actor} == {"host", "vmm", "guest0", "module0"}
