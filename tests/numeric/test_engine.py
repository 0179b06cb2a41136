"""Differential tests: the numeric core against the reference model, step by step."""

from __future__ import annotations

import random

import numpy as np
import pytest

from ballast.errors import GuardError
from ballast.model import BalloonModel, PRESETS
from ballast.model.actions import Action, vmm_keeps_host_pages
from ballast.model.faults import FAULTS
from ballast.numeric.arrays import SystemArrays
from ballast.numeric.engine import ENGINE_FAULTS, Engine
from ballast.numeric.workload import (WEIGHTS, batch_actions, enabled_names, log_actions,
                                      run_batches, step_batch)

SMALL = [p for p in PRESETS if p != "large"]


def _encoded(name):
    """The preset with the features whose actions the engine declares as known gaps
    switched off (the VMM paging out a VM over its target); where the VMM keeps host pages
    to one VM, with one VM."""
    cfg = PRESETS[name].replace(vmm_reclaims_over_target=False)
    return cfg.replace(vms=1, hostile_vms=frozenset()) if vmm_keeps_host_pages(cfg) else cfg


def _walk(cfg, faults, seed, steps, stop_at_violation):
    """Random walk of the model (its own successors); the engine follows every step."""
    model = BalloonModel(cfg, faults)
    eng = Engine(cfg, faults)
    rng = random.Random(seed)
    s = model.init_states()[0]
    for _ in range(steps):
        succ = list(model.successors(s))
        if not succ:
            break
        act, post = rng.choice(succ)
        eng.apply(act)
        bad = model.step_violations(s, act, post)
        s = post
        assert eng.arr.to_state() == s, f"after {act}"
        if bad and stop_at_violation:
            break
    return eng, s


@pytest.mark.parametrize("name", SMALL)
def test_same_state_step_by_step_on_model_walks(name):
    for seed in range(4):
        _walk(_encoded(name), (), seed, 120, False)


@pytest.mark.parametrize("fault", sorted(ENGINE_FAULTS))
def test_faulty_variants_agree_until_the_first_violation(fault):
    cfg = PRESETS["default"].replace(**FAULTS[fault].config)
    for seed in range(3):
        _walk(cfg, (fault,), seed, 150, True)


@pytest.mark.parametrize("name", ["default", "vmware", "hostile", "virtio", "application"])
def test_batches_equal_the_same_actions_applied_one_by_one(name):
    base = _encoded(name)
    cfg = base.replace(vms=5, hostile_vms=base.hostile_vms,
                       pcpus=max(base.pcpus, 5 * base.vcpus), machine_pages=12)
    model = BalloonModel(cfg)
    for seed in range(6):
        eng = Engine(cfg)
        rng = np.random.default_rng(seed)
        names = enabled_names(eng)
        w = np.array([WEIGHTS[n] for n in names], dtype=float)
        w /= w.sum()
        s = model.init_states()[0]
        for _ in range(120):
            b = step_batch(eng, rng, names[int(rng.choice(len(names), p=w))], 0.7)
            if b is None:
                continue
            for act in batch_actions(b):
                s = model.next_state(s, act)
            assert eng.arr.to_state() == s


def _index_of(arr: SystemArrays) -> np.ndarray:
    """The VPN -> PPN index rebuilt from the page use (what the engine keeps in step)."""
    out = np.full(arr.vppn.shape, -1, dtype=np.int64)
    v, p = np.nonzero(arr.ppn_use >= 0)
    out[v, arr.ppn_use[v, p]] = p
    return out


@pytest.mark.parametrize("name", ["default", "vmware", "hostile", "virtio"])
def test_one_operation_per_call_leaves_what_its_batch_leaves(name):
    """One operation per call (shrinking, replay) runs its own single-row paths: the same
    records, LRU order and VPN index as the batches the operations came from."""
    base = _encoded(name)
    cfg = base.replace(vms=5, hostile_vms=base.hostile_vms,
                       pcpus=max(base.pcpus, 5 * base.vcpus), machine_pages=12)
    for seed in range(4):
        batched = Engine(cfg)
        log = run_batches(batched, np.random.default_rng(seed), 120)
        single = Engine(cfg)
        for act in log_actions(log):
            single.apply(act)
        assert single.arr.to_state() == batched.arr.to_state()
        assert np.array_equal(single.arr.vppn, batched.arr.vppn)
        assert np.array_equal(single.arr.vppn, _index_of(single.arr))


@pytest.mark.parametrize("name", ["default", "hostile", "application"])
def test_guards_agree_on_arbitrary_actions(name):
    """Random, mostly illegal actions: both refuse, or both accept with the same result."""
    cfg = _encoded(name)
    model = BalloonModel(cfg)
    rng = random.Random(7)
    s = model.init_states()[0]
    eng = Engine(cfg)
    refused = 0
    for _ in range(600):
        spec = rng.choice([sp for sp in model.action_specs()])
        kw = {}
        for p in spec.params:
            if p in ("ppns", "refuse"):
                kw[p] = tuple(sorted(rng.sample(range(cfg.guest_pages + 1), rng.randint(0, 2))))
            elif p == "queue":
                kw[p] = rng.choice(["inflate", "deflate", "other"])
            else:
                kw[p] = rng.randint(-1, cfg.guest_pages + 1)
        act = Action.of(spec.name, **kw)
        try:
            post = model.next_state(s, act)
        except GuardError:
            with pytest.raises(GuardError):
                eng.apply(act)
            refused += 1
            continue
        eng.apply(act)
        s = post
        assert eng.arr.to_state() == s, f"after {act}"
    assert 0 < refused < 600


def test_ppns_at_and_above_2_to_the_31_in_hostile_reports():
    """A hostile guest reports PFNs >= 2**31 (and 2**32 - 1): refused, kept exactly."""
    cfg = PRESETS["hostile"].replace(refusal=True)
    model = BalloonModel(cfg)
    eng = Engine(cfg)
    s = model.init_states()[0]
    acts = [Action.of("host_set_target", vm=1, pages=2),
            Action.of("rogue_report", vm=1, queue="inflate", ppn=2**31 + 5),
            Action.of("rogue_report", vm=1, queue="inflate", ppn=2**32 - 1),
            Action.of("rogue_report", vm=1, queue="deflate", ppn=2**31),
            Action.of("rogue_report", vm=1, queue="inflate", ppn=0),
            Action.of("vmm_reclaim", vm=1, refuse=(2**31 + 5,)),
            Action.of("vmm_release", vm=1),
            Action.of("balloon_complete", vm=1)]
    seen = []
    for act in acts:
        s = model.next_state(s, act)
        eng.apply(act)
        assert eng.arr.to_state() == s
        seen.append(s)
    assert {2**31 + 5, 2**32 - 1} <= seen[5].vms[1].acked_refused
    assert seen[3].vms[1].deflate_queue == (2**31,)
    assert eng.arr.p2m.dtype == np.uint32


def test_round_trip_of_reachable_states():
    cfg = PRESETS["default"]
    eng, s = _walk(cfg, (), 3, 80, False)
    assert SystemArrays.from_state(cfg, s).to_state() == s
