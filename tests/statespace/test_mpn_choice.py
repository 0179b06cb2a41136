"""The VMM's choice of machine page, shown not to matter up to MPN renumbering.

Which free MPN backs a page is the VMM's choice; the model fixes it (the lowest free
one) and the explorer renumbers MPNs (:mod:`ballast.statespace.symmetry`). That is a
reduction, so it has to be shown sound: here a VMM that may take *any* free MPN (every
successor of the model with the MPNs it took exchanged for other free ones) reaches
exactly the same states, up to renumbering, as the model's own, on every configuration
below. Where host pages group MPNs the explorer does not renumber them, and the test
does not claim anything.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import replace
from typing import Callable, Iterator

import pytest

from ballast.model.actions import enabled
from ballast.model.config import Config
from ballast.model.state import UNBACKED, State, initial_state
from ballast.statespace.configs import EXPLORE_CONFIGS, FAULT_BASE
from ballast.statespace.symmetry import canonical, mpn_symmetry


def exchange(s: State, perm: dict[int, int]) -> State:
    """``s`` with MPNs exchanged as ``perm`` says (an involution)."""
    h = s.host

    def ren(ms: frozenset[int]) -> frozenset[int]:
        return frozenset(perm.get(m, m) for m in ms)

    content = list(h.content)
    for a, b in perm.items():
        content[b] = h.content[a]
    host = replace(h, free=ren(h.free), in_use=ren(h.in_use), content=tuple(content),
                   cow=ren(h.cow), reclaimed=ren(h.reclaimed))
    return State(host, tuple(vm.replace(p2m=tuple(m if m == UNBACKED else perm.get(m, m)
                                                  for m in vm.p2m)) for vm in s.vms))


def model_steps(cfg: Config, s: State) -> Iterator[State]:
    for _, t in enabled(cfg, s):
        yield t


def any_free_mpn_steps(cfg: Config, s: State) -> Iterator[State]:
    """The model's successors, and the same steps had the VMM taken other free MPNs."""
    for act, t in enabled(cfg, s):
        yield t
        if act.name in ("host_take_page", "host_return_page"):
            continue  # the host's own choice of host page is an argument already
        taken = sorted(s.host.free - t.host.free)
        others = sorted(s.host.free & t.host.free)
        for k in range(1, len(taken) + 1):
            for src in itertools.combinations(taken, k):
                for dst in itertools.permutations(others, k):
                    perm = {**dict(zip(src, dst)), **dict(zip(dst, src))}
                    yield exchange(t, perm)


def reachable(cfg: Config, steps: Callable[[Config, State], Iterator[State]],
              canon: Callable[[Config, State], State] = canonical) -> set[State]:
    """Every reachable state, as its representative under ``canon``."""
    start = canon(cfg, initial_state(cfg))
    seen = {start}
    todo = deque([start])
    while todo:
        s = todo.popleft()
        for t in steps(cfg, s):
            c = canon(cfg, t)
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return seen


def test_exchange_is_what_the_vmm_would_have_done() -> None:
    cfg = EXPLORE_CONFIGS["one-vm-two-mpns"]
    s = initial_state(cfg)
    alternatives = list(any_free_mpn_steps(cfg, s))
    # A first touch takes MPN 0 in the model; the other choice backs the page with MPN 1.
    firsts = [t for t in alternatives if t.vms[0].p2m.count(UNBACKED) < cfg.guest_pages]
    assert {t.vms[0].p2m for t in firsts} >= {(0, UNBACKED), (1, UNBACKED)}
    assert all(canonical(cfg, t) in {canonical(cfg, u) for u in model_steps(cfg, s)}
               for t in alternatives)


FAST = ["one-vm", "two-vms"]
SLOW = ["one-vm-two-mpns", "two-vms-three-mpns"]
EXTRA = {"sharing-and-host-swap": FAULT_BASE.replace(sharing=True, host_swap=True),
         "eager-backing": FAULT_BASE.replace(host_swap=True, machine_pages=3,
                                             eager_backing=True)}


def _cfg(name: str) -> Config:
    return EXPLORE_CONFIGS[name] if name in EXPLORE_CONFIGS else EXTRA[name]


@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow)
                                         for n in SLOW + sorted(EXTRA)])
def test_any_free_mpn_reaches_the_same_states_up_to_renumbering(name: str) -> None:
    cfg = _cfg(name)
    assert mpn_symmetry(cfg)
    fixed = reachable(cfg, model_steps)
    free = reachable(cfg, any_free_mpn_steps)
    assert free == fixed, (f"{len(free - fixed)} states only a VMM choosing another MPN "
                           f"reaches, {len(fixed - free)} only the model's")


def test_without_renumbering_the_choice_shows() -> None:
    # The comparison can fail: without renumbering MPNs, the other choices are new states
    # (with host use on, the host's own takes happen to reach them all the same).
    cfg = EXPLORE_CONFIGS["one-vm"].replace(machine_pages=2, host_use=False)

    def same(c: Config, s: State) -> State:
        return s

    assert reachable(cfg, any_free_mpn_steps, same) > reachable(cfg, model_steps, same)
