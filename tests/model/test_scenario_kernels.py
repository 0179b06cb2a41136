"""The scenarios written over the kernels' operations (SCENARIO_KERNELS), read alike by the
NumPy interpreter, the frontier's rows and Z3, and equal to the model's predicates on every
step of small configurations' reachable states."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import z3

from ballast.model import BalloonModel
from ballast.model.config import Config
from ballast.model.ops import StateOps, Value
from ballast.model.scenario_kernels import SCENARIO_KERNELS, ScenarioKernel, WitnessCheck
from ballast.model.sometimes import SOMETIMES
from ballast.model.state import State
from ballast.numeric.arrays import SystemArrays
from ballast.numeric.state_ops import NumpyStateOps
from ballast.proofs.encoding import encode
from ballast.proofs.interpret import Z3StateOps
from ballast.statespace.frontier_rows import step_holds_on_rows
from ballast.statespace.rowcodec import RowLayout

# Per scenario, small configurations that reach it. Where the host takes machine pages into
# its own use: one balloon unit per host page, and host pages of two units (a host page can
# be partly reclaimed; there the host never takes a page back, so the kernel is shown to say
# no wherever the model does). Where the guest pages out to its own disk: one PPN for one or
# two VPNs.
CONFIGS: dict[str, dict[str, Config]] = {
    "host_reuses_reclaimed_page": {
        "one unit": Config(vms=1, guest_pages=1, guest_data_pages=0, guest_disk_slots=0,
                           machine_pages=2, host_swap_slots=0, tokens=1, batch=1, host_use=True,
                           eager_backing=True),
        "two VMs": Config(vms=2, guest_pages=1, guest_data_pages=0, guest_disk_slots=0,
                          machine_pages=2, host_swap_slots=0, tokens=1, batch=1, host_use=True,
                          eager_backing=True),
        "host pages of two units": Config(vms=1, guest_pages=2, guest_data_pages=1,
                                          guest_disk_slots=0, machine_pages=4,
                                          host_swap_slots=0, tokens=1, batch=2, host_use=True,
                                          host_page_units=2),
    },
    "guest_pages_out_for_balloon": {
        "one VPN": Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=1,
                          machine_pages=1, host_swap_slots=0, tokens=1, batch=1),
        "two VPNs": Config(vms=1, guest_pages=1, guest_data_pages=2, guest_disk_slots=1,
                           machine_pages=1, host_swap_slots=0, tokens=1, batch=1),
    },
}
NEVER_REACHED = {("host_reuses_reclaimed_page", "host pages of two units")}
"""The configurations above where no step witnesses the scenario."""
SLOW = {("host_reuses_reclaimed_page", "two VMs")}
WITH_Z3 = {("host_reuses_reclaimed_page", "one unit"), ("guest_pages_out_for_balloon", "one VPN")}
"""Where Z3 is compared too (the smallest configurations: a Z3 state per step is slow)."""


def _reachable(model: BalloonModel, limit: int = 20_000) -> list[State]:
    """Every state reachable from the initial ones (breadth-first; at most ``limit``)."""
    seen = set(model.init_states())
    todo = deque(seen)
    out = []
    while todo:
        s = todo.popleft()
        out.append(s)
        for _, t in model.successors(s):
            if t not in seen:
                assert len(seen) < limit, "the configuration is larger than the test expects"
                seen.add(t)
                todo.append(t)
    return out


def _numpy(check: WitnessCheck, cfg: Config, pre: State, post: State, vm: int) -> bool:
    at = np.array([vm], dtype=np.int64)
    out = check(NumpyStateOps(SystemArrays.from_state(cfg, pre), at),
                NumpyStateOps(SystemArrays.from_state(cfg, post), at))
    return bool(np.asarray(out, dtype=bool).all())


def _rows(check: WitnessCheck, cfg: Config, pre: State, post: State, vm: int) -> bool:
    lay = RowLayout(cfg)
    got = step_holds_on_rows(check, lay, lay.encode(pre)[None, :], lay.encode(post)[None, :], vm)
    return bool(got[0])


def _z3(check: WitnessCheck, cfg: Config, pre: State, post: State, vm: int) -> bool:
    out = check(Z3StateOps(encode(cfg, pre), vm), Z3StateOps(encode(cfg, post), vm))
    return bool(out) if isinstance(out, bool) else z3.is_true(z3.simplify(out))


def _answers(kernel: ScenarioKernel, cfg: Config, model: BalloonModel, with_z3: bool
             ) -> set[bool]:
    """On every step from every reachable state: the model's predicate is false on the steps
    of actions the kernel does not name, and the kernel (through NumPy, the frontier's rows
    and, where asked, Z3) equals it on the others. The answers seen on those."""
    scenario = SOMETIMES[kernel.name]
    seen = set()
    for s in _reachable(model):
        for act, t in model.successors(s):
            want = scenario.witness(cfg, s, act, t)
            if act.name not in kernel.actions:
                assert not want, (kernel.name, act)
                continue
            vm = act.kwargs.get("vm", 0)
            assert isinstance(vm, int)
            assert _numpy(kernel.witness, cfg, s, t, vm) == want, (kernel.name, act, s)
            assert _rows(kernel.witness, cfg, s, t, vm) == want, (kernel.name, act, s)
            if with_z3:
                assert _z3(kernel.witness, cfg, s, t, vm) == want, (kernel.name, act, s)
            seen.add(want)
    return seen


def test_every_scenario_kernel_is_a_scenario_of_the_model() -> None:
    for name, kernel in SCENARIO_KERNELS.items():
        assert name == kernel.name and name in SOMETIMES
        assert kernel.actions, name


@pytest.mark.parametrize(("name", "config"), [
    pytest.param(n, c, marks=[pytest.mark.slow] if (n, c) in SLOW else [])
    for n in sorted(CONFIGS) for c in sorted(CONFIGS[n])])
def test_each_scenario_kernel_equals_the_models_predicate_on_every_reachable_step(
        name: str, config: str) -> None:
    cfg = CONFIGS[name][config]
    assert SOMETIMES[name].feature(cfg)
    seen = _answers(SCENARIO_KERNELS[name], cfg, BalloonModel(cfg),
                    with_z3=(name, config) in WITH_Z3)
    # Where the scenario is reached, both answers are met: the kernel is compared where it
    # must say yes and where no.
    assert seen == ({False} if (name, config) in NEVER_REACHED else {True, False})


def test_every_scenario_kernel_is_compared() -> None:
    assert set(CONFIGS) == set(SCENARIO_KERNELS)


def test_a_kernel_that_says_otherwise_is_caught() -> None:
    """The comparison fails for a witness that forgets the page was reclaimed."""
    cfg = CONFIGS["host_reuses_reclaimed_page"]["one unit"]

    def any_take(pre: StateOps, post: StateOps) -> Value:
        return pre.any(pre.and_(post.mpns("in_use"), pre.not_(pre.mpns("in_use"))))

    wrong = ScenarioKernel("host_reuses_reclaimed_page", any_take, frozenset({"host_take_page"}))
    with pytest.raises(AssertionError):
        _answers(wrong, cfg, BalloonModel(cfg), with_z3=False)
