"""The step forms written once (STEP_KERNELS), read alike by Z3, NumPy and the model."""

from __future__ import annotations

import random

import numpy as np
import pytest
import z3

from ballast.model import PRESETS, BalloonModel
from ballast.model.actions import ACTIONS
from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS, picks_no_guest_page, taken_by_a_guest
from ballast.model.property_kernels import STEP_KERNELS, StepKernel
from ballast.model.state import State
from ballast.numeric.arrays import SystemArrays
from ballast.numeric.engine import STEP_CHECKS
from ballast.numeric.state_ops import NumpyStateOps
from ballast.proofs.encoding import encode
from ballast.proofs.interpret import step_formula
from ballast.proofs.properties import STEPS
from ballast.statespace.explore import Budget, explore
from ballast.statespace.suite import feature_slices


def test_every_step_form_a_backend_checks_comes_from_its_kernel() -> None:
    assert set(STEPS) == set(STEP_KERNELS) == set(STEP_CHECKS)
    for name, kernel in STEP_KERNELS.items():
        assert INVARIANTS[name].step is not None
        assert STEPS[name].__qualname__ == kernel.check.__qualname__
        assert kernel.check.__qualname__ in STEP_CHECKS[name]


def test_the_steps_a_kernel_constrains_are_the_models() -> None:
    assert STEP_KERNELS["guest_chooses_pages"].constrains is picks_no_guest_page
    assert STEP_KERNELS["isolation"].constrains is taken_by_a_guest
    constrained = {n for n, spec in ACTIONS.items() if taken_by_a_guest(spec)}
    assert {"guest_write", "balloon_inflate", "rogue_touch"} <= constrained
    assert not {"vmm_reclaim", "host_set_target"} & constrained
    assert {"vmm_reclaim", "host_set_target"} <= {n for n, spec in ACTIONS.items()
                                                  if picks_no_guest_page(spec)}


def test_the_vms_a_kernel_covers() -> None:
    cfg = Config(vms=3, hostile_vms=frozenset({2}))
    assert STEP_KERNELS["isolation"].vms(cfg, 1) == [0, 2]
    assert STEP_KERNELS["guest_chooses_pages"].vms(cfg, 1) == [0, 1, 2]
    assert STEP_KERNELS["stats_match_guest"].vms(cfg, 2) == []
    assert STEP_KERNELS["vmm_refuses_report_floods"].vms(cfg, 2) == [2]
    assert STEP_KERNELS["vmm_refuses_report_floods"].vms(cfg, None) == []


def _numpy_holds(kernel: StepKernel, cfg: Config, pre: State, post: State, vms: list[int]
                 ) -> list[bool]:
    at = np.array(vms, dtype=np.int64)
    out = kernel.check(NumpyStateOps(SystemArrays.from_state(cfg, pre), at),
                       NumpyStateOps(SystemArrays.from_state(cfg, post), at))
    return [bool(x) for x in np.broadcast_to(np.asarray(out, dtype=bool), (len(vms),))]


def _agree_at(cfg: Config, model: BalloonModel, s: State) -> set[str]:
    """On every successor of ``s``: the kernel holds for every VM it covers, through NumPy
    and through Z3, exactly when the model's step form holds. The properties some step
    broke."""
    broken: set[str] = set()
    pre = encode(cfg, s)
    for act, post in model.successors(s):
        kernels = [k for k in STEP_KERNELS.values()
                   if INVARIANTS[k.name].feature(cfg) and k.constrains(ACTIONS[act.name])]
        sym = encode(cfg, post) if kernels else None
        for kernel in kernels:
            want = INVARIANTS[kernel.name].check_step(cfg, s, act, post) is None
            broken.update([] if want else [kernel.name])
            args = dict(act.kwargs)
            z3_ok = z3.is_true(z3.simplify(step_formula(kernel, pre, act.name, args, sym)))
            assert z3_ok == want, (kernel.name, act)
            vms = kernel.vms(cfg, args.get("vm"))
            assert all(_numpy_holds(kernel, cfg, s, post, vms)) == want, (kernel.name, act)
    return broken


def _model(preset: str, fault: str | None) -> tuple[Config, BalloonModel]:
    faults = (fault,) if fault else ()
    cfg = PRESETS[preset].replace(**(FAULTS[fault].config if fault else {}))
    return cfg, BalloonModel(cfg, faults)


def _agree_on_successors(preset: str, fault: str | None, steps: int) -> set[str]:
    """:func:`_agree_at` on every state of a random walk."""
    cfg, model = _model(preset, fault)
    rng = random.Random(3)
    s = model.init_states()[0]
    broken: set[str] = set()
    for _ in range(steps):
        succ = list(model.successors(s))
        if not succ:
            break
        broken |= _agree_at(cfg, model, s)
        s = rng.choice(succ)[1]
    return broken


def _agree_to_the_fault(preset: str, fault: str) -> None:
    """:func:`_agree_at` on every state of the shortest run to where the fault breaks its
    property, that state included: found breadth-first by the explorer in the first of
    the preset's small feature slices (``ballast check``'s) where it breaks. Where the
    explorer finds the broken step (not a broken state first), the kernels must see that
    step break too."""
    cfg, _ = _model(preset, fault)
    breaks = FAULTS[fault].breaks
    for small in feature_slices(cfg).values():
        model = BalloonModel(small, (fault,))
        ex = explore(model, stop_on={breaks}, budget=Budget(max_states=200_000))
        finding = ex.violations.get(breaks)
        if finding is None:
            continue
        s = model.init_states()[0]
        broken = _agree_at(small, model, s)
        for act in ex.path(finding.state):
            s = model.next_state(s, act)
            broken |= _agree_at(small, model, s)
        assert finding.action is None or breaks in broken, (fault, finding)
        return
    raise AssertionError(f"no slice of {preset} reaches where {fault} breaks {breaks}")


def test_each_step_kernel_agrees_with_the_model_on_every_successor() -> None:
    _agree_on_successors("hostile", None, 4)


@pytest.mark.slow
def test_each_step_kernel_agrees_with_the_model_on_a_longer_run() -> None:
    _agree_on_successors("default", None, 40)


@pytest.mark.slow
@pytest.mark.parametrize(("preset", "fault"), [
    ("default", "cow_write_in_place"), ("default", "vmm_reclaims_host_choice"),
    ("default", "free_without_scrub"), ("qemu", "oom_deflate_without_report")])
def test_each_step_kernel_agrees_with_the_model_up_to_where_a_fault_breaks(
        preset: str, fault: str) -> None:
    # Each fault listed breaks a property that has a step form (a kernel to compare).
    assert FAULTS[fault].breaks in STEP_KERNELS, (fault, FAULTS[fault].breaks)
    _agree_to_the_fault(preset, fault)


@pytest.mark.parametrize("preset", ["default", "hostile", "qemu"])
def test_a_kernel_that_covers_other_vms_holds_of_a_vm_left_alone(preset: str) -> None:
    """What lets a backend look only at the VMs a step changed."""
    cfg = PRESETS[preset]
    model = BalloonModel(cfg)
    rng = random.Random(1)
    s = model.init_states()[0]
    for _ in range(15):
        vms = list(range(cfg.vms))
        for kernel in STEP_KERNELS.values():
            if kernel.covers != "actor":
                assert all(_numpy_holds(kernel, cfg, s, s, vms)), kernel.name
        succ = list(model.successors(s))
        if not succ:
            break
        s = rng.choice(succ)[1]
