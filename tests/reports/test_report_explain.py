"""What a report explains: violations, lassos, traces the model rejects, clean traces."""

from __future__ import annotations

import dataclasses

from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.replay import ReplayOutcome, replay
from ballast.model.system import BalloonModel
from ballast.model.trace import Trace, TraceStep
from ballast.reports.diff import state_diff
from ballast.reports.explain import explain, property_doc
from report_fixtures import RECLAIM_STEPS, make_trace, reclaim_trace

SMALL = Config(vms=1, guest_pages=2, machine_pages=2)


def test_violation_names_the_property_the_fault_breaks() -> None:
    e = explain(reclaim_trace(), "t.jsonl")
    assert e.kind == "violation"
    assert e.property_name == FAULTS["reclaim_keeps_mapping"].breaks
    assert e.failing_step == len(RECLAIM_STEPS)
    assert [s.step for s in e.steps if s.failing] == [len(RECLAIM_STEPS)]
    assert e.doc.startswith("A PPN the VMM holds as ballooned")
    assert "still backed by MPN 0" in (e.message or "")
    assert e.replay_command == "ballast replay t.jsonl"
    assert e.notes == ()


def test_a_counterexample_built_in_memory_names_its_trace_line() -> None:
    """A checker's counterexample has no line numbers until read from its file: its report
    said "trace line None"."""
    from ballast.reports.render_html import render_html
    from ballast.reports.render_md import render_markdown

    e = explain(reclaim_trace(), "t.jsonl")
    assert all(st.line is None for st in reclaim_trace().steps)
    line = len(RECLAIM_STEPS) + 1  # the header is line 1
    assert e.result.line == line
    assert f"(step {len(RECLAIM_STEPS)}, trace line {line})" in render_markdown(e)
    assert f"(trace line {line})" in render_html(e)


def test_step_diffs_are_the_models_state_changes() -> None:
    trace = reclaim_trace()
    e = explain(trace)
    states = replay(trace).states
    for view in e.steps:
        assert list(view.diff) == state_diff(states[view.step - 1], states[view.step])
    last = dict((p, (a, b)) for p, a, b in e.steps[-1].diff)
    assert last["vms/0/ballooned"] == ([], [0, 2])


def test_header_expecting_another_property_is_noted() -> None:
    t = reclaim_trace()
    t = Trace(dataclasses.replace(t.header, expect={"property": "isolation", "step": 3}), t.steps)
    e = explain(t)
    assert any("'isolation'" in n for n in e.notes)
    assert any("step 3" in n for n in e.notes)


def test_a_trace_filed_under_one_of_several_properties_its_step_breaks_explains_that_one(
        ) -> None:
    """Several properties may break at one step: the report explains the one the trace is
    filed under (its file name, SARIF and JUnit say it), not the first the replay lists."""
    from ballast.model.config import preset
    from ballast.simulation.randomwalk import random_run

    run = random_run(BalloonModel(preset("core"), ("release_keeps_balloon_set",)), 0, 60)
    assert run.violation is not None
    broken = [v.property for v in replay(run.trace).violations]
    assert broken[:2] == ["guest_chooses_pages", "balloon_accounting_exact"], broken
    filed = Trace(dataclasses.replace(run.trace.header, expect={
        **(run.trace.header.expect or {}), "property": "balloon_accounting_exact"}),
        run.trace.steps)
    e = explain(filed)
    assert (e.kind, e.property_name) == ("violation", "balloon_accounting_exact")
    assert not any("first" in n for n in e.notes), e.notes


def _loop_trace(closing: bool) -> Trace:
    steps = [("host_set_target", {"vm": 0, "pages": 1}),
             ("host_take_page", {"host_page": 1}),
             ("host_return_page", {"host_page": 1})]
    if not closing:
        steps.append(("host_take_page", {"host_page": 0}))
    return make_trace(steps, SMALL, source={"checker": "explore"},
                      expect={"property": "balloon_reaches_target", "lasso_start": 2})


def test_liveness_lasso_prefix_and_cycle() -> None:
    e = explain(_loop_trace(True))
    assert e.kind == "liveness" and e.lasso is not None
    assert (e.lasso.prefix, e.lasso.start, e.lasso.end, e.lasso.closes) == ((1, 1), 2, 3, True)
    assert [s.step for s in e.steps if s.in_cycle] == [2, 3]
    assert "non-zero target" in e.doc  # the scenario's own meaning, from the model


def test_lasso_that_does_not_close_is_flagged() -> None:
    e = explain(_loop_trace(False))
    assert e.lasso is not None and not e.lasso.closes
    assert any("does not return" in n for n in e.notes)


def test_rejected_trace_shows_prefix_line_and_allowed_actions() -> None:
    steps = [("host_set_target", {"vm": 0, "pages": 1}), ("vmm_release", {"vm": 0})]
    t = make_trace(steps, SMALL, source={"checker": "validate", "implementation": "qemu"})
    lines = ['{"ballast_trace":1}', '{"step":1,...}', '{"step":2,"action":"vmm_release"}']
    e = explain(t, "impl.jsonl", lines)
    u = e.unexplained
    assert e.kind == "rejected" and u is not None
    assert (u.matched, u.step, u.line) == (1, 2, 3)
    assert u.text == lines[2]
    assert u.reason == "the guest has reported no page for deflation"
    model = BalloonModel(SMALL)
    expected = [str(a) for a, _ in model.successors(replay(t).states[-1])]
    assert list(u.allowed) == expected and u.allowed_total == len(expected)
    assert "balloon_poll(vm=0)" in u.allowed


def test_recorded_state_mismatch_shows_model_diff() -> None:
    cfg = SMALL
    model = BalloonModel(cfg)
    s0 = model.init_states()[0]
    act = Action.of("host_set_target", vm=0, pages=1)
    wrong = model.next_state(s0, act).to_dict()
    wrong["vms"][0]["target"] = 2
    t = make_trace([], cfg, source={"checker": "validate"})
    t = Trace(t.header, (TraceStep(1, act, state=wrong),))
    e = explain(t)
    assert e.unexplained is not None
    assert e.unexplained.model_diff == (("vms/0/target", 2, 1),)


def test_validate_violation_also_shows_where_it_left_the_model() -> None:
    t = reclaim_trace()
    t = Trace(dataclasses.replace(t.header, source={"checker": "validate"}), t.steps)
    e = explain(t)
    assert e.kind == "violation" and e.unexplained is not None
    assert e.unexplained.step == len(RECLAIM_STEPS)
    assert e.unexplained.matched == len(RECLAIM_STEPS) - 1
    assert "vmm_reclaim(vm=0, refuse=[])" in e.unexplained.allowed


def test_clean_trace_says_nothing_broke() -> None:
    t = make_trace([("host_set_target", {"vm": 0, "pages": 1})], SMALL,
                   expect={"property": "isolation"})
    e = explain(t)
    assert e.kind == "clean" and e.result.outcome is ReplayOutcome.OK
    assert any("breaks nothing" in n for n in e.notes)


def test_property_doc_comes_from_the_model() -> None:
    from ballast.model.invariants import INVARIANTS
    for name, prop in INVARIANTS.items():
        assert property_doc(name).split("\n")[0] == prop.summary.strip()
    assert property_doc("no_such_property") == ""
    assert property_doc("x", {"doc": "given"}) == "given"


def test_an_observation_of_the_initial_state_that_differs_fails_in_the_initial_state() -> None:
    """The header's observation is of the initial state: the report says the trace leaves
    the model there, before step 1, on the header's line (it explained a clean trace)."""
    from ballast.reports.render_html import render_html
    from ballast.reports.render_md import render_markdown

    clean = make_trace([("host_set_target", {"vm": 0, "pages": 1})], SMALL)
    trace = dataclasses.replace(clean, header=dataclasses.replace(
        clean.header, observe={"host/free_count": 1},
        expect={"property": "implementation_agrees_with_model", "step": 0}))
    e = explain(trace, "t.jsonl")
    assert e.kind == "rejected" and e.failing_step == 0 and e.result.line == 1
    assert e.message == ("the initial state (before step 1): observation differs: "
                         "host/free_count is 2, observed 1")
    assert [s.applied for s in e.steps] == [False]
    u = e.unexplained
    assert u is not None and (u.step, u.line, u.matched) == (0, 1, 0)
    assert u.text is not None and '"observe":{"host/free_count":1}' in u.text
    md = render_markdown(e)
    assert "**Why** (in the initial state): the initial state (before step 1)" in md
    assert "- first unexplained: the initial state, before step 1 (trace line 1" in md
    page = render_html(e)
    assert "in the initial state" in page and "First unexplained: the initial state" in page
    matching = dataclasses.replace(trace, header=dataclasses.replace(
        trace.header, observe={"host/free_count": 2}))
    assert explain(matching, "t.jsonl").kind == "clean"
