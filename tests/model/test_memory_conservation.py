"""memory_conservation's quick pass accepts exactly the hosts whose free pool, host use and
backed MPNs are every MPN once: sizes that add up are not enough."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.model.state import State, initial_state

CFG = Config(vms=1, guest_pages=2, machine_pages=3)


def _host(free: set[int], in_use: set[int], p2m: tuple[int, ...]) -> State:
    s = initial_state(CFG)
    vm = s.vms[0].replace(p2m=p2m)
    return State(replace(s.host, free=frozenset(free), in_use=frozenset(in_use)), (vm,))


@pytest.mark.parametrize(("free", "in_use", "p2m", "message"), [
    ({0, 1, 2}, set(), (-1, -1), None),
    ({0}, {1}, (2, -1), None),
    ({0, 1}, {1}, (-1, -1), "MPN 1 is free and in host use"),  # sizes add up, 2 nowhere
    ({0, 1}, set(), (1, -1), "MPN 1 is free and backing a guest page"),
    ({0, 1, 5}, set(), (-1, -1), "MPN 2 is nowhere"),  # sizes add up, 5 does not exist
    ({0, 1}, set(), (-1, -1), "MPN 2 is nowhere"),
])
def test_the_quick_pass_accepts_only_every_mpn_once(free: set[int], in_use: set[int],
                                                    p2m: tuple[int, ...], message: str | None
                                                    ) -> None:
    assert INVARIANTS["memory_conservation"].check_state(CFG, _host(free, in_use, p2m)) == message
