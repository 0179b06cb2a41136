"""The Z3 encoding agrees with the model on every reachable state of one small
configuration per feature slice: every property, every conjunct, every enabled step
(admitted with exactly the model's successor) and every refused one."""

from __future__ import annotations

import functools

import pytest
import z3

from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.state import initial_state
from ballast.proofs.agreement import (
    BOUNDED_ONLY,
    TermProgram,
    UnsupportedTerm,
    agreement_configs,
    check_agreement,
)
from ballast.proofs.encoding import WIDTH, encode, fresh, keys, queue_cap
from ballast.proofs.faults import FAULT_EFFECTS
from ballast.proofs.reachability import ReachableSet, reachable
from ballast.proofs.transitions import concrete_instances, encoded_actions, step

CONFIGS = agreement_configs()


def _ok(report: object) -> bool:
    """No disagreement, and no gap but the backend's declared known gaps (those are
    reported inconclusive by its checker, never compared here)."""
    from ballast.proofs.encodes import KNOWN_GAPS

    known = {name for _, name in KNOWN_GAPS}
    return not report.disagreements and set(report.gaps) <= known  # type: ignore[attr-defined]

MAX_STATES = 7_000
"""Above this many reachable states a configuration is checked on the states a
breadth-first search finds first in the default run (every state up to some depth),
and completely by the slow test."""


@functools.lru_cache(maxsize=None)
def _reachable(name: str, max_states: int | None = MAX_STATES) -> ReachableSet:
    return reachable(CONFIGS[name], max_states=max_states)


def _explain(name: str, rs: ReachableSet, report: object) -> str:
    lines = [f"{name}: {report.summary()}"]  # type: ignore[attr-defined]
    for d in report.disagreements:  # type: ignore[attr-defined]
        lines.append(f"  after {[str(a) for a in rs.path(d.index)]}: {d.what}")
    return "\n".join(lines)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_encoding_agrees_on_every_reachable_state(name: str) -> None:
    rs = _reachable(name)
    cfg = CONFIGS[name]
    report = check_agreement(cfg, rs.states, steps=rs.steps)
    assert _ok(report), _explain(name, rs, report)
    assert report.states == len(rs.states) and report.enabled_steps > 0
    assert report.refused_steps > 0 and report.property_checks > 0


def test_the_configurations_cover_every_slice_and_most_are_complete() -> None:
    slices = {n.split("/")[1] for n in CONFIGS}
    assert {"protocol", "refusal", "sharing-and-host-swap", "reset", "processors", "hostile",
            "two-vms", "host-pages"} <= slices
    complete = [n for n in CONFIGS if _reachable(n).complete]
    # Four stop at the bounded prefix of the default run: default/hostile, default/flood
    # (a hostile guest against the VMM's own flood bound), hostile/hostile-processors (a
    # hostile guest against the VMM's own CPU target) and xen/two-vms (eager backing); the
    # slow run visits every state of each.
    assert len(complete) >= len(CONFIGS) - 4, sorted(set(CONFIGS) - set(complete))


def test_every_encoded_action_is_enabled_somewhere() -> None:
    """The agreement is not vacuous: each action the encoding has fires in some configuration."""
    fired: set[str] = set()
    wanted: set[str] = set()
    for name, cfg in CONFIGS.items():
        wanted.update(encoded_actions(cfg))
        fired.update(a.name for steps in _reachable(name).steps for a, _ in steps)
    assert wanted - fired <= {"host_return_page"}, wanted - fired


def _config_for(fault: str) -> list[str]:
    f = FAULTS[fault]
    return sorted((n for n, c in CONFIGS.items() if f.action in encoded_actions(c)
                   and all(getattr(c, k) == v for k, v in f.config.items()
                           if isinstance(v, bool))),
                  key=lambda n: len(_reachable(n).states))


@pytest.mark.parametrize("fault", sorted(set(FAULTS) & set(FAULT_EFFECTS)))  # the rest: known gaps
def test_a_wrong_encoding_is_caught(fault: str) -> None:
    """Each seeded fault put into the encoding alone (the model stays correct) is found."""
    caught = []
    for name in _config_for(fault):
        rs = _reachable(name)
        report = check_agreement(CONFIGS[name], rs.states, steps=rs.steps,
                                 encoding_faults=(fault,), max_disagreements=1)
        if report.disagreements:
            caught.append(report.disagreements[0].what)
            break
    assert caught, f"{fault}: no configuration shows the wrong encoding"


def test_a_missing_action_is_a_named_gap_never_a_pass() -> None:
    from unittest import mock
    from ballast.proofs import transitions
    name = "default/protocol"
    rs = _reachable(name)
    table = {k: v for k, v in transitions.ENCODED.items() if k != "guest_read"}
    with mock.patch.dict(transitions.ENCODED, table, clear=True):
        report = check_agreement(CONFIGS[name], rs.states, steps=rs.steps)
    assert not report.ok and "guest_read" in report.gaps


def test_compiled_terms_evaluate_like_z3() -> None:
    """The Python translation of the terms gives what ``z3.simplify`` gives."""
    cfg = CONFIGS["default/sharing-and-host-swap"]
    rs = _reachable("default/sharing-and-host-swap")
    pre = fresh(cfg, "pre")
    names = [str(pre[k]) for k, _ in keys(cfg)]
    roots = []
    for action in encoded_actions(cfg):
        for args in concrete_instances(cfg, action)[:3]:
            st = step(cfg, pre, action, args)
            roots += [st.guard] + [st.post[k] for k, _ in keys(cfg)]
    prog = TermProgram(roots, names)
    for s in rs.states[:: max(1, len(rs.states) // 6)]:
        sym = encode(cfg, s)
        subst = [(pre[k], sym[k]) for k, _ in keys(cfg)]
        vals = prog.run(tuple(z3.simplify(sym[k]).as_signed_long() if z3.is_bv(sym[k])
                              else z3.is_true(sym[k]) for k, _ in keys(cfg)))
        for r, t in enumerate(roots):
            want = z3.simplify(z3.substitute(t, *subst))
            got = vals[prog.index(r)]
            assert (want.as_signed_long() if z3.is_bv(want) else z3.is_true(want)) == got


def test_term_translation_edge_cases() -> None:
    x = z3.BitVec("x", WIDTH)
    prog = TermProgram([x + 1, z3.And([]), z3.Or([]), x - 1], ["x"])
    vals = prog.run((2**15 - 1,))
    assert [vals[prog.index(i)] for i in range(4)] == [-(2**15), True, False, 2**15 - 2]
    with pytest.raises(UnsupportedTerm):
        TermProgram([z3.UDiv(x, 3) == 1], ["x"])
    with pytest.raises(UnsupportedTerm):
        TermProgram([x == z3.BitVec("y", WIDTH)], ["x"])


def test_the_initial_state_alone() -> None:
    cfg = Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
                 machine_pages=1, host_swap_slots=0, tokens=1, batch=1)
    report = check_agreement(cfg, [initial_state(cfg)])
    assert report.ok and report.states == 1 and report.enabled_steps > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(CONFIGS) - set(BOUNDED_ONLY)))
def test_encoding_agrees_on_every_reachable_state_without_a_bound(name: str) -> None:
    rs = _reachable(name, None)
    assert rs.complete
    report = check_agreement(CONFIGS[name], rs.states, steps=rs.steps)
    assert _ok(report), _explain(name, rs, report)


def _encoded_faults() -> list[str]:
    """The seeded faults the encoding has a form of; the others are its declared known gaps
    (``prove`` with one of them is inconclusive and names it)."""
    from ballast.proofs.encodes import KNOWN_GAPS

    return sorted(f for f in FAULTS if ("faults", f) not in KNOWN_GAPS)


@pytest.mark.slow
@pytest.mark.parametrize("fault", _encoded_faults())
def test_fault_encodings_agree_on_every_reachable_state(fault: str) -> None:
    """Model and encoding both with the fault: they agree, broken states included."""
    f = FAULTS[fault]
    for name in _config_for(fault)[:1]:
        cfg = CONFIGS[name].replace(**f.config)
        rs = reachable(cfg, (fault,), max_states=MAX_STATES)
        if fault in UNBOUNDED_QUEUE_FAULTS:
            report = check_agreement(cfg, rs.states, (fault,), steps=rs.steps,
                                     max_disagreements=len(rs.states) * 64)
            exact = [d for d in report.disagreements if not _queue_at_cap(cfg, d.state)]
            assert not exact, _explain(name, rs, report)
            assert any(not _queue_at_cap(cfg, st) for st in rs.states)
            continue
        report = check_agreement(cfg, rs.states, (fault,), steps=rs.steps)
        assert _ok(report), _explain(name, rs, report)


UNBOUNDED_QUEUE_FAULTS = {"vmm_accepts_flood"}
"""Faults that let a hostile guest's queues grow without bound. The encoding counts a PPN's
entries in a queue up to :func:`~ballast.proofs.encoding.queue_cap` and no further, so it
agrees with the model exactly on the states below that count, and from a state at it a
further report is not seen to grow the queue (``prove`` still catches the fault within the
cap: the flood spreads over several PPNs)."""


def _queue_at_cap(cfg: Config, s: object) -> bool:
    """Whether some PPN is on a queue of ``s`` as often as the encoding counts."""
    cap = queue_cap(cfg)
    return any(q.count(p) >= cap for v in s.vms  # type: ignore[attr-defined]
               for q in (v.inflate_queue, v.deflate_queue) for p in set(q))
