"""The virtio profile's free page hinting rules (virtio 1.x section 5.5.6.5): each breaks on a
trace that breaks it alone, and holds on the model's hint cycles."""

import pytest

from ballast.model.virtio import VIRTIO_RULES, VirtioEvent, VirtioTracker

CYCLE = [VirtioEvent("hint_request", value=2), VirtioEvent("hint_start", value=2),
         VirtioEvent("hint", (1, 2), value=2)]
"""A hint cycle under way: the device asked with id 2, the driver started it and hinted PFNs
1 and 2."""


def _broken(events: list[VirtioEvent]) -> list[str]:
    """The rules the last event breaks, after a prefix that must break none."""
    t = VirtioTracker(frozenset())
    for e in events[:-1]:
        assert t.violations(e) == [], e
        t.apply(e)
    return [r.name for r, _ in t.violations(events[-1])]


def test_a_whole_cycle_breaks_no_rule() -> None:
    events = CYCLE + [VirtioEvent("use", (2,)), VirtioEvent("hint_skip", (1,)),
                      VirtioEvent("hint_stop", value=0), VirtioEvent("hint", (1,), value=2),
                      VirtioEvent("hint_request", value=3), VirtioEvent("hint_start", value=3),
                      VirtioEvent("hint_stop", value=1)]
    t = VirtioTracker(frozenset())
    for e in events:
        assert t.violations(e) == [], e
        t.apply(e)
    assert t.hint_cmd == 1 and t.hint_started == 3 and not t.hinted


@pytest.mark.parametrize("events, rule", [
    ([VirtioEvent("hint_request", value=0)], "virtio_5_5_6_5_new_command_id"),
    (CYCLE[:2] + [VirtioEvent("hint_stop", value=0), VirtioEvent("hint_request", value=2)],
     "virtio_5_5_6_5_new_command_id"),
    (CYCLE[:1] + [VirtioEvent("hint_request", value=3)], "virtio_5_5_6_5_new_command_id"),
    (CYCLE[:1] + [VirtioEvent("hint_stop", value=5)], "virtio_5_5_6_5_end_with_stop_or_done"),
    ([VirtioEvent("hint_stop", value=1)], "virtio_5_5_6_5_end_with_stop_or_done"),
    (CYCLE[:1] + [VirtioEvent("hint_start", value=3)], "virtio_5_5_6_5_start_the_requested_id"),
    (CYCLE[:2] + [VirtioEvent("hint_start", value=2)], "virtio_5_5_6_5_start_the_requested_id"),
    (CYCLE[:1] + [VirtioEvent("hint", (1,), value=2)], "virtio_5_5_6_5_hint_after_command_id"),
    (CYCLE[:2] + [VirtioEvent("hint_stop", value=0), VirtioEvent("hint_request", value=3),
                  VirtioEvent("hint_start", value=3), VirtioEvent("hint", (1,), value=2)],
     "virtio_5_5_6_5_no_hint_for_old_id"),
    (CYCLE + [VirtioEvent("use", (2,)), VirtioEvent("hint_skip", (1, 2))],
     "virtio_5_5_6_5_skip_only_unwritten_hints"),
    (CYCLE + [VirtioEvent("hint_stop", value=0), VirtioEvent("hint_skip", (1,))],
     "virtio_5_5_6_5_skip_only_unwritten_hints"),
])
def test_a_trace_breaking_one_hint_rule_is_caught_with_its_name(events: list[VirtioEvent],
                                                                 rule: str) -> None:
    assert _broken(events) == [rule]


def test_every_hint_rule_is_a_must_citing_5_5_6_5() -> None:
    hint_rules = [r for r in VIRTIO_RULES.values() if r.name.startswith("virtio_5_5_6_5_")]
    assert len(hint_rules) == 6
    assert all(r.level.value == "MUST" and r.cites.startswith("5.5.6.5") for r in hint_rules)
