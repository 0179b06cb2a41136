"""Derived observations (counts and contents) are read off a state once, by key, for a
trace's ``observe`` and an implementation's replies alike."""

from __future__ import annotations

import pytest

from ballast.model.actions import Action
from ballast.model.config import preset
from ballast.model.derived import DERIVED, derived_observation
from ballast.model.replay import ReplayOutcome, replay
from ballast.model.state import initial_state
from ballast.model.system import BalloonModel
from ballast.model.trace import Trace, TraceHeader, TraceStep, observe_matches


def test_every_key_is_a_vm_key_or_a_host_key_and_reads_the_state() -> None:
    cfg = preset("default")
    s = initial_state(cfg)
    for template, d in DERIVED.items():
        assert template.startswith(("vms/*/", "host/")), template
        key = template.replace("*", "1")
        assert derived_observation(s, key) == d.value(s, 1 if "*" in template else 0)
    with pytest.raises(IndexError):
        derived_observation(s, "vms/7/guest/free_count")
    assert derived_observation(s, "vms/0/module/actual") is None  # a path, not derived
    assert derived_observation(s, "vms/x/guest/free_count") is None


def test_a_count_in_a_trace_is_checked_by_replay() -> None:
    """A step may observe a count: replay compares it with the model's, so a trace of an
    implementation whose free pool differs shows the difference (exit 1)."""
    cfg = preset("core")
    model = BalloonModel(cfg)
    act = Action.of("host_set_target", vm=0, pages=1)
    post = model.next_state(model.init_states()[0], act)
    free = derived_observation(post, "host/free_count")
    assert isinstance(free, int)
    assert observe_matches(post, {"host/free_count": free}) is None
    assert observe_matches(post, {"host/free_count": free - 1}) == \
        f"host/free_count is {free}, observed {free - 1}"
    for seen, outcome in ((free, ReplayOutcome.OK), (free - 1, ReplayOutcome.ILLEGAL)):
        trace = Trace(TraceHeader(cfg), (TraceStep(1, act, observe={"host/free_count": seen}),))
        assert replay(trace).outcome is outcome
