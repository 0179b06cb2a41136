"""The VirtIO 5.5 stream checker: counts, the first broken MUST, SHOULDs at the end."""

from __future__ import annotations

from ballast.model.virtio import DEFLATE_ON_OOM, Level, VirtioEvent as E
from ballast.validate.virtio.check import check_virtio, possible_events

TO_TWO = [(1, E("set_target", value=2)), (2, E("read_target", value=2)),
          (3, E("inflate", (5, 6))), (4, E("inflate_ack", (5, 6))), (5, E("write_actual", value=2))]


def test_a_stream_that_keeps_every_rule_is_counted_and_ends_in_its_profile() -> None:
    rep = check_virtio(TO_TWO + [(6, E("set_target", value=1)), (7, E("read_target", value=1)),
                                 (8, E("deflate", (6,))), (9, E("deflate_ack", (6,)))],
                       frozenset())
    assert rep.clean and rep.violation is None and rep.warnings == []
    assert (rep.events, rep.inflated, rep.deflated, rep.pages, rep.max_balloon) == (9, 2, 1, 3, 2)
    assert rep.final is not None and rep.final.balloon == frozenset({5})


def test_the_first_broken_must_ends_the_check_with_the_profile_before_it() -> None:
    late = [(6, E("deflate", (9,))), (7, E("inflate", (5,)))]  # 7 would break a rule too
    rep = check_virtio(TO_TWO + late, frozenset())
    assert rep.violation is not None and rep.violation.level is Level.MUST
    assert (rep.violation.rule, rep.violation.line) == (
        "virtio_5_5_6_1_rule5_deflate_only_balloon_pages", 6)
    assert rep.events == 6 and rep.final is None
    assert rep.last_ok is not None and rep.last_ok.balloon == frozenset({5, 6})
    assert "the driver writes actual = 2" in rep.possible


def test_a_target_never_reached_is_a_should_warning_unless_the_guest_had_nothing_to_give(
        ) -> None:
    short = TO_TWO[:2] + [(3, E("inflate", (5,))), (4, E("inflate_ack", (5,)))]
    rep = check_virtio(short, frozenset())
    assert rep.clean and [w.level for w in rep.warnings] == [Level.SHOULD]
    assert "never reached" in rep.warnings[0].message
    assert check_virtio(short, frozenset(), guest_can_give=False).warnings == []


def test_what_may_come_next_depends_on_the_negotiated_features() -> None:
    from ballast.model.virtio import VirtioTracker

    t = VirtioTracker(frozenset(), None)
    for _, e in TO_TWO:
        t.apply(e)
    plain = possible_events(t)
    t_oom = VirtioTracker(frozenset({DEFLATE_ON_OOM}), None)
    for _, e in TO_TWO:
        t_oom.apply(e)
    # At its target the balloon may shrink only under DEFLATE_ON_OOM (memory pressure).
    assert not any(p.startswith("a deflate") for p in plain)
    assert "a deflate of at most 2 of the 2 balloon PFNs" in possible_events(t_oom)
