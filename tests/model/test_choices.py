"""Candidates are exactly the choices the guards admit, on small finite domains.

For every state reachable in a few small configurations and every action, the
argument tuples of the action's whole domain that the guard admits are the
candidates that the guard admits: no admitted step is left out of the
candidates, and no candidate lies outside the domain. (Candidates the guard
then rejects, such as a target equal to the current one, are harmless: every
checker applies the guard.)

The one reduction is the order of the pages inside one report: the domain
lists each set of pages once, in ascending order, and a separate test shows
that every order of an admitted set is admitted and reaches the same state.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from typing import Any, Iterator

import pytest

from ballast.errors import GuardError
from ballast.model.actions import ACTIONS, ROGUE_ACTUAL_BOUND, Action, apply, enabled
from ballast.model.config import Config, GuestPolicyName, ModuleKind
from ballast.model.state import State, initial_state

CONFIGS = {
    "one-vm-large-units": Config(vms=1, guest_pages=4, guest_data_pages=1, guest_disk_slots=1,
                                 machine_pages=2, host_swap_slots=0, tokens=1, batch=2,
                                 balloon_unit_pages=2, deflate_on_oom=True),
    "one-vm-batch-2-refusal": Config(vms=1, guest_pages=3, guest_data_pages=1,
                                     guest_disk_slots=1, machine_pages=3, host_swap_slots=0,
                                     tokens=1, batch=2, refusal=True),
    "one-vm-batch-2-lowest": Config(vms=1, guest_pages=3, guest_data_pages=1,
                                    guest_disk_slots=1, machine_pages=2, host_swap_slots=0,
                                    tokens=1, batch=2, guest_policy=GuestPolicyName.LOWEST,
                                    deflate_on_oom=True),
    "two-vms-hostile-sharing": Config(vms=2, guest_pages=2, guest_data_pages=1,
                                      guest_disk_slots=0, machine_pages=2, host_swap_slots=0,
                                      tokens=1, batch=1, sharing=True,
                                      hostile_vms=frozenset({1})),
    "application-processors": Config(vms=1, guest_pages=2, guest_data_pages=1,
                                     guest_disk_slots=0, machine_pages=2, host_swap_slots=1,
                                     tokens=1, batch=1, module=ModuleKind.APPLICATION,
                                     pin_limit=2, must_tell_host=False, host_swap=True,
                                     processors=True, vcpus=3, pcpus=4, host_use=False),
    "eager-backing-swap": Config(vms=1, guest_pages=3, guest_data_pages=2, guest_disk_slots=0,
                                 machine_pages=3, host_swap_slots=1, tokens=1, batch=2,
                                 host_swap=True, eager_backing=True),
    "one-vm-reporting-poison-stats": Config(vms=1, guest_pages=3, guest_data_pages=1,
                                            guest_disk_slots=1, machine_pages=3,
                                            host_swap_slots=1, tokens=1, batch=2,
                                            host_swap=True, free_page_reporting=True,
                                            page_poison=True, poison_val=1, stats_queue=True),
}

MAX_STATES = 300
"""States visited breadth first per configuration, to keep the test fast; random walks
add deeper ones (see :func:`sample`). The slow test visits every reachable state."""


def _sets(items: range, most: int) -> list[tuple[int, ...]]:
    return [c for k in range(most + 1) for c in itertools.combinations(items, k)]


def domain(cfg: Config, name: str) -> Iterator[dict[str, Any]]:
    """Every argument tuple of an action, a little beyond what is valid."""
    G, D, V = cfg.guest_pages, cfg.guest_data_pages, cfg.vms
    vms = range(V)
    if name == "host_set_target":
        yield from ({"vm": v, "pages": n} for v in vms for n in range(-1, G + 2))
    elif name == "host_set_cpu_target":
        yield from ({"vm": v, "vcpus": n} for v in vms for n in range(cfg.vcpus + 2))
    elif name in ("host_take_page", "host_return_page"):
        yield from ({"host_page": h} for h in range(cfg.host_pages + 1))
    elif name in ("host_swap_out", "vmm_back_page"):
        yield from ({"vm": v, "ppn": p} for v in vms for p in range(G + 1))
    elif name == "vmm_reclaim":
        yield from ({"vm": v, "refuse": r} for v in vms for r in _sets(range(G + 1), G + 1))
    elif name == "vmm_share":
        pages = [(v, p) for v in vms for p in range(G)]
        yield from ({"vm": a, "ppn": p, "other_vm": b, "other_ppn": q}
                    for (a, p), (b, q) in itertools.product(pages, pages))
    elif name in ("guest_read", "guest_evict"):
        yield from ({"vm": v, "vpn": d} for v in vms for d in range(D + 1))
    elif name == "guest_write":
        yield from ({"vm": v, "vpn": d, "token": t} for v in vms for d in range(D + 1)
                    for t in range(cfg.tokens + 2))
    elif name in ("balloon_inflate", "balloon_deflate", "balloon_report_free_pages"):
        yield from ({"vm": v, "ppns": ps} for v in vms for ps in _sets(range(G), cfg.batch + 1))
    elif name in ("balloon_cpu_offline", "balloon_cpu_online"):
        yield from ({"vm": v, "vcpu": c} for v in vms for c in range(cfg.vcpus + 1))
    elif name == "rogue_report":
        yield from ({"vm": v, "queue": q, "ppn": p} for v in vms
                    for q in ("inflate", "deflate") for p in range(G + 1))
    elif name == "rogue_touch":
        yield from ({"vm": v, "ppn": p, "token": t} for v in vms for p in range(G + 1)
                    for t in range(cfg.tokens + 2))
    elif name == "rogue_set_actual":
        # The guard admits any count; the domain here is the candidates' slice of it.
        yield from ({"vm": v, "actual": n} for v in vms
                    for n in range(-1, G + ROGUE_ACTUAL_BOUND + 1))
    else:
        assert ACTIONS[name].params == ("vm",), f"no domain for {name}"
        yield from ({"vm": v} for v in vms)


def _admits(cfg: Config, s: State, name: str, args: dict[str, Any]) -> bool:
    try:
        apply(cfg, s, Action.of(name, **args))
    except GuardError:
        return False
    return True


def _key(args: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(args.items()))


def reachable(cfg: Config, most: int = MAX_STATES) -> list[State]:
    """The first ``most`` reachable states, breadth first."""
    start = initial_state(cfg)
    seen = {start}
    todo = deque([start])
    out = []
    while todo and len(out) < most:
        s = todo.popleft()
        out.append(s)
        for _, t in enabled(cfg, s):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return out


def sample(cfg: Config, walks: int = 20, length: int = 60) -> list[State]:
    """Reachable states: the first few breadth first, then along seeded random walks."""
    rng = random.Random(11)
    out = reachable(cfg)
    seen = set(out)
    for _ in range(walks):
        s = initial_state(cfg)
        for _ in range(length):
            steps: dict[str, list[State]] = {}
            for act, t in enabled(cfg, s):
                steps.setdefault(act.name, []).append(t)
            if not steps:
                break
            # An action first, then its arguments: the many guest and rogue steps do not
            # crowd out the balloon's.
            s = rng.choice(steps[rng.choice(sorted(steps))])
            if s not in seen:
                seen.add(s)
                out.append(s)
    return out


def check_candidates(cfg: Config, states: list[State]) -> None:
    """The comparison, on every state of ``states``."""
    specs = [spec for spec in ACTIONS.values() if spec.feature(cfg)]
    domains = {spec.name: [dict(a) for a in domain(cfg, spec.name)] for spec in specs}
    offered: dict[str, int] = {}
    for s in states:
        for spec in specs:
            cands = [dict(a) for a in spec.candidates(cfg, s)]
            admitted_cands = {_key(a) for a in cands if _admits(cfg, s, spec.name, a)}
            admitted = {_key(a) for a in domains[spec.name] if _admits(cfg, s, spec.name, a)}
            assert admitted_cands == admitted, (
                f"{spec.name} in {s}: admitted but not offered "
                f"{sorted(admitted - admitted_cands)[:3]}, offered outside the domain "
                f"{sorted(admitted_cands - admitted)[:3]}")
            offered[spec.name] = offered.get(spec.name, 0) + len(admitted)
    # The comparison is not vacuous: the actors' choices were exercised.
    for chooser in ("balloon_inflate", "balloon_deflate", "vmm_reclaim"):
        assert offered.get(chooser, 0) > 0, chooser


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_candidates_are_exactly_the_guard_admitted_choices(name: str) -> None:
    check_candidates(CONFIGS[name], sample(CONFIGS[name]))


TINY = {
    "one-vm-batch-2": Config(vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=0,
                             machine_pages=1, host_swap_slots=0, tokens=1, batch=2,
                             refusal=True, host_use=False),
    "two-vms-hostile": Config(vms=2, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
                              machine_pages=1, host_swap_slots=0, tokens=1, batch=1,
                              host_use=False, hostile_vms=frozenset({1})),
}


TINY_STATES = {"one-vm-batch-2": 10**6, "two-vms-hostile": 4000}
"""States visited breadth first: all of them, or (a hostile guest's reports make the
space large) the first few thousand and those along random walks."""


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_candidates_equal_guard_choices_in_every_reachable_state(name: str) -> None:
    states = reachable(TINY[name], most=TINY_STATES[name])
    if len(states) == TINY_STATES[name]:  # not all of them: add deeper ones
        states += sample(TINY[name], walks=40)
    check_candidates(TINY[name], states)


@pytest.mark.parametrize("name", ["one-vm-batch-2-refusal", "two-vms-hostile-sharing"])
def test_every_order_of_a_report_is_admitted_and_reaches_the_same_state(name: str) -> None:
    cfg = CONFIGS[name]
    checked = 0
    for s in sample(cfg, walks=2, length=40)[:400]:
        for act, post in enabled(cfg, s):
            for key in ("ppns", "refuse"):
                value = act.kwargs.get(key)
                if not isinstance(value, tuple) or len(value) < 2:
                    continue
                for order in itertools.permutations(value):
                    other = Action.of(act.name, **{**act.kwargs, key: order})
                    assert apply(cfg, s, other) == post, (act, order)
                    checked += 1
    assert checked > 0


def test_the_vmm_may_accept_in_any_order_when_room_runs_out() -> None:
    cfg = CONFIGS["one-vm-batch-2-refusal"].replace(refusal=False)
    s = initial_state(cfg)
    for act in (Action.of("host_set_target", vm=0, pages=2), Action.of("balloon_poll", vm=0),
                Action.of("balloon_inflate", vm=0, ppns=(2, 0)),
                Action.of("host_set_target", vm=0, pages=1)):
        s = apply(cfg, s, act)
    kept = {tuple(sorted(post.vms[0].ballooned)) for act, post in enabled(cfg, s)
            if act.name == "vmm_reclaim"}
    assert kept == {(0,), (2,)}  # lowest first (sorted order) and arrival order both


def _large_guest_asked_for_pages() -> tuple[Any, Any]:
    """Preset ``large`` (8 VMs x 64 PPNs, batches of 16) once VM 0's module has read a
    target of 10 pages: the guest may give the balloon any 1 to 10 of its 64 free pages."""
    from ballast.model.config import preset
    from ballast.model.system import BalloonModel

    model = BalloonModel(preset("large"))
    s = model.init_states()[0]
    for act in (Action.of("host_set_target", vm=0, pages=10), Action.of("balloon_poll", vm=0)):
        s = model.next_state(s, act)
    return model, s


def test_a_random_sample_of_choices_is_a_few_of_the_candidates() -> None:
    """Under ``sampled`` the candidates of a choice too large to list are a bounded sample
    of them, each one the guard admits; a choice small enough is listed whole, in order."""
    from ballast.model.choices import SAMPLE_LIMIT, sampled

    model, s = _large_guest_asked_for_pages()
    spec = ACTIONS["balloon_inflate"]
    assert spec.vm_candidates is not None
    with sampled(random.Random(7)):
        drawn = [dict(a) for a in spec.vm_candidates(model.cfg, s, 0)]
    sizes = [len(a["ppns"]) for a in drawn]
    # Sizes 1 (64 choices) to 10: each a sample of at most the limit; billions otherwise.
    assert sorted(set(sizes)) == list(range(1, 11))
    assert len(drawn) <= 10 * SAMPLE_LIMIT
    assert len({a["ppns"] for a in drawn}) == len(drawn)
    for a in drawn:
        assert list(a["ppns"]) == sorted(a["ppns"])
        assert model.try_next_state(s, Action.of("balloon_inflate", **a)) is not None
    small = Config(vms=1, guest_pages=4, machine_pages=8, batch=2)
    s0 = initial_state(small)
    for act in (Action.of("host_set_target", vm=0, pages=2), Action.of("balloon_poll", vm=0)):
        s0 = apply(small, s0, act)
    whole = list(spec.candidates(small, s0))
    assert len(whole) == 4 + 6  # one page of four, or two
    with sampled(random.Random(7)):
        assert list(spec.candidates(small, s0)) == whole


def test_a_random_run_of_a_large_guest_takes_its_steps() -> None:
    """A random run on preset ``large`` takes every step it is asked for: it used to list
    every set of pages the guest could give (151,473,214,816 for 10 of 64) and run out of
    memory at step 84 of seed 3."""
    from ballast.model.config import preset
    from ballast.model.system import BalloonModel
    from ballast.simulation.randomwalk import random_run

    run = random_run(BalloonModel(preset("large")), seed=3, steps=100, record_states=False)
    assert len(run.trace.steps) == 100
    assert run.violation is None
