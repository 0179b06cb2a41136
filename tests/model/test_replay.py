"""The replayer names the first illegal step, the first broken property, or a state mismatch."""

import dataclasses

from ballast.model.actions import Action
from ballast.model.config import preset
from ballast.model.replay import ReplayOutcome, replay
from ballast.model.system import BalloonModel
from ballast.model.trace import Trace, TraceHeader, TraceStep
from ballast.simulation.randomwalk import random_run


def test_a_clean_run_replays_ok() -> None:
    run = random_run(BalloonModel(preset("default")), seed=2, steps=80)
    result = replay(run.trace)
    assert result.outcome is ReplayOutcome.OK and result.steps_run == 80
    assert len(result.states) == 81


def test_illegal_step_is_named() -> None:
    cfg = preset("core")
    steps = (TraceStep(1, Action.of("host_set_target", vm=0, pages=1), line=2),
             TraceStep(2, Action.of("balloon_inflate", vm=0, ppns=[0]), line=3))
    result = replay(Trace(TraceHeader(cfg), steps))
    assert result.outcome is ReplayOutcome.ILLEGAL
    assert (result.step, result.line) == (2, 3)
    assert "more pages than the target" in (result.reason or "")


def test_recorded_state_mismatch_is_illegal() -> None:
    run = random_run(BalloonModel(preset("core")), seed=1, steps=5)
    st = run.trace.steps[2]
    assert st.state is not None
    forged = dict(st.state, host=dict(st.state["host"], idle_pcpus=99))
    steps = list(run.trace.steps)
    steps[2] = dataclasses.replace(st, state=forged)
    result = replay(Trace(run.trace.header, tuple(steps)))
    assert result.outcome is ReplayOutcome.ILLEGAL and result.step == 3


def test_observation_mismatch_is_illegal() -> None:
    cfg = preset("core")
    steps = (TraceStep(1, Action.of("host_set_target", vm=0, pages=1),
                       observe={"vms/0/target": 2}),)
    result = replay(Trace(TraceHeader(cfg), steps))
    assert (result.outcome is ReplayOutcome.ILLEGAL
            and "observation differs" in (result.reason or ""))


def test_violation_is_named_with_the_seeded_fault() -> None:
    model = BalloonModel(preset("default"), ["reclaim_keeps_mapping"])
    run = next(r for r in (random_run(model, s, 200) for s in range(100)) if r.violation)
    result = replay(run.trace)
    assert result.outcome is ReplayOutcome.VIOLATION
    assert result.violations[0].property == "ballooned_pages_unbacked"
    assert result.step == len(run.trace.steps)


def test_a_header_observation_that_differs_stops_the_replay_before_step_1() -> None:
    """An implementation whose initial state differs from the model's: the header carries
    its observation, and the replay stops at step 0 (the trace used to replay clean)."""
    cfg = preset("core")
    steps = (TraceStep(1, Action.of("host_set_target", vm=0, pages=1), line=2),)
    free = cfg.machine_pages
    result = replay(Trace(TraceHeader(cfg, observe={"host/free_count": free - 1}), steps))
    assert result.outcome is ReplayOutcome.ILLEGAL
    assert (result.step, result.line, result.steps_run, result.action) == (0, 1, 0, None)
    assert result.reason == f"observation differs: host/free_count is {free}, observed {free - 1}"
    assert result.describe() == (f"the initial state (before step 1): observation differs: "
                                 f"host/free_count is {free}, observed {free - 1}")


def test_a_header_observation_that_matches_replays_clean() -> None:
    cfg = preset("core")
    steps = (TraceStep(1, Action.of("host_set_target", vm=0, pages=1), line=2),)
    seen = {"host/free_count": cfg.machine_pages, "vms/0/ballooned": [], "vms/0/target": 0}
    result = replay(Trace(TraceHeader(cfg, observe=seen), steps))
    assert result.outcome is ReplayOutcome.OK and result.steps_run == 1


def test_a_header_observation_is_of_the_headers_initial_state() -> None:
    run = random_run(BalloonModel(preset("core")), seed=1, steps=6)
    mid = run.trace.steps[2].state
    assert mid is not None
    later = tuple(dataclasses.replace(st, step=st.step - 3) for st in run.trace.steps[3:])
    target = mid["vms"][0]["target"]
    header = dataclasses.replace(run.trace.header, initial=mid,
                                 observe={"vms/0/target": target})
    assert replay(Trace(header, later)).outcome is ReplayOutcome.OK
    wrong = dataclasses.replace(header, observe={"vms/0/target": target + 1})
    result = replay(Trace(wrong, later))
    assert result.outcome is ReplayOutcome.ILLEGAL and result.step == 0
