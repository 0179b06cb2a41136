"""A report of a long trace of a large guest: read step by step in bounded memory, a big
balloon shown by its size and what changed, the same figures as state by state."""

from __future__ import annotations

import random
import tracemalloc
from dataclasses import replace
from typing import Callable

from ballast.model.actions import Action
from ballast.model.config import PRESETS, Config, GuestPolicyName
from ballast.model.replay import replay
from ballast.model.state import initial_state
from ballast.model.system import BalloonModel
from ballast.model.trace import Trace, TraceHeader, TraceStep
from ballast.reports.diff import LARGE_SET, flatten, format_value, state_diff
from ballast.reports.explain import Explanation, explain
from ballast.reports.memory import FigureReader, figures
from ballast.reports.page import render_report

PAGES = 16_384


def _big_trace(rounds: int) -> Trace:
    """Inflate and deflate 256 pages at a time on a 16,384-page guest, as Linux does."""
    cfg = Config(vms=1, guest_pages=PAGES, machine_pages=PAGES, guest_data_pages=0,
                 guest_disk_slots=0, host_swap_slots=0, batch=256, tokens=1,
                 guest_policy=GuestPolicyName.ANY, host_use=False, reset=True, reread_target=True)
    acts: list[Action] = []
    for r in range(rounds):
        acts += [Action.of("host_set_target", vm=0, pages=256 * (r + 1)),
                 Action.of("balloon_poll", vm=0),
                 Action.of("balloon_inflate", vm=0, ppns=list(range(256 * r, 256 * (r + 1)))),
                 Action.of("vmm_reclaim", vm=0, refuse=[]), Action.of("balloon_complete", vm=0)]
    acts += [Action.of("host_set_target", vm=0, pages=0), Action.of("balloon_poll", vm=0),
             Action.of("balloon_deflate", vm=0, ppns=list(range(256))),
             Action.of("vmm_release", vm=0), Action.of("balloon_complete", vm=0)]
    return Trace(TraceHeader(cfg), tuple(TraceStep(i + 1, a) for i, a in enumerate(acts)))


def test_a_long_trace_of_a_large_guest_is_reported_in_bounded_memory() -> None:
    rounds = 60
    trace = _big_trace(rounds)

    def peak_of(work: Callable[[], object]) -> int:
        tracemalloc.start()
        try:
            work()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    got: list[Explanation] = []
    streamed = peak_of(lambda: got.append(explain(trace, "big.jsonl"))
                       or render_report(got[0], ("md", "json")))
    # The baseline: only keeping every state of the replay (what the report did before),
    # which grows with the steps times the balloon's size.
    every_state = peak_of(lambda: replay(trace).states)
    assert streamed < 0.75 * every_state, (streamed, every_state)
    e = got[0]
    texts = render_report(e, ("md", "json"))
    assert e.kind == "clean" and len(e.steps) == len(trace.steps) and len(e.states) == 2
    assert e.memory.data["vm0"]["ballooned"][-1] == rounds * 256 - 256
    deflate = e.steps[-3]
    assert deflate.action.startswith("balloon_deflate")
    change = dict((p, (a, b)) for p, a, b in deflate.diff)["vms/0/module/balloon"]
    assert change[0] == {"size": rounds * 256} and change[1]["size"] == (rounds - 1) * 256
    assert change[1]["removed"] == list(range(256)) and change[1]["added"] == []
    assert ("15,360 pages" in texts["md"]
            and format_value(change[1]).startswith("15,104 pages -[0, 1"))


def test_small_sets_are_still_listed_whole() -> None:
    e = explain(_big_trace(1), "one.jsonl")
    queues = [(a, b) for s in e.steps for p, a, b in s.diff if p == "vms/0/inflate_queue"]
    assert queues[0] == ([], list(range(256)))  # a queue is listed whole
    sets = [(a, b) for s in e.steps for p, a, b in s.diff if p == "vms/0/ballooned"]
    assert LARGE_SET < 256 and sets[0] == ({"size": 0}, {"size": 256, "added": list(range(256)),
                                                          "removed": []})
    small = explain(Trace(TraceHeader(PRESETS["virtio"]), (
        TraceStep(1, Action.of("host_set_target", vm=0, pages=1)),
        TraceStep(2, Action.of("balloon_poll", vm=0)),
        TraceStep(3, Action.of("balloon_inflate", vm=0, ppns=[0])),
        TraceStep(4, Action.of("vmm_reclaim", vm=0, refuse=[])))))
    assert ("vms/0/ballooned", [], [0]) in small.steps[-1].diff


def test_the_figure_reader_counts_what_figures_counts() -> None:
    for name in ("default", "hugepages", "vmware"):
        model = BalloonModel(PRESETS[name])
        rng = random.Random(3)
        s = model.init_states()[0]
        reader = FigureReader()
        for _ in range(80):
            assert reader.figures(s) == figures(s)
            succ = list(model.successors(s))
            if not succ:
                break
            s = rng.choice(succ)[1]


def test_a_streamed_report_agrees_with_a_replay_that_keeps_every_state() -> None:
    trace = _big_trace(3)
    e = explain(trace, "three.jsonl")
    states = replay(trace).states
    assert e.states == (states[0], states[-1])
    assert [figures(s)["vm0"]["ballooned"] for s in states] == list(
        e.memory.data["vm0"]["ballooned"])


def test_an_equal_large_set_rebuilt_by_a_step_is_no_change() -> None:
    s0 = initial_state(Config(vms=1, guest_pages=200, machine_pages=200))
    v = s0.vms[0]
    big = s0.with_vm(0, v.replace(module=replace(v.module, balloon=frozenset(range(100)))))
    m = big.vms[0].module
    rebuilt = big.with_vm(0, big.vms[0].replace(module=replace(m, balloon=frozenset(range(100)))))
    assert rebuilt.vms[0].module.balloon is not m.balloon
    assert state_diff(big, rebuilt) == []
    grown = big.with_vm(0, big.vms[0].replace(module=replace(m, balloon=frozenset(range(101)))))
    assert state_diff(big, grown) == [("vms/0/module/balloon", {"size": 100},
                                       {"size": 101, "added": [100], "removed": []})]


def test_per_page_changes_come_in_the_order_of_their_paths() -> None:
    cfg = Config(vms=2, guest_pages=5000, machine_pages=10_000, guest_data_pages=0,
                 guest_disk_slots=0, host_swap_slots=0)
    model = BalloonModel(cfg)
    s0 = model.init_states()[0]
    use = list(s0.vms[1].guest.ppn_use)
    for p in (4999, 3, 2048, 2047, 10):
        use[p] = -2
    p2m = list(s0.vms[1].p2m)
    p2m[4095] = 7
    g = s0.vms[1].guest
    s1 = s0.with_vm(1, s0.vms[1].replace(guest=replace(g, ppn_use=tuple(use)), p2m=tuple(p2m),
                                         target=3))
    got = state_diff(s0, s1)
    before, after = flatten(s0.to_dict()), flatten(s1.to_dict())
    want = [(k, before[k], after[k]) for k in before if before[k] != after[k]]
    assert sorted(got) == sorted(want)
    paths = [p for p, _, _ in got]
    assert paths[:2] == ["vms/1/guest/ppn_use/3", "vms/1/guest/ppn_use/10"]
    assert paths.index("vms/1/p2m/4095") < paths.index("vms/1/target")
    assert paths.index("vms/1/guest/ppn_use/4999") < paths.index("vms/1/p2m/4095")
