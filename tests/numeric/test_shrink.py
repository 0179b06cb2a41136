"""Delta debugging keeps the failure and removes the rest."""

from __future__ import annotations

from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.numeric.shrink import ddmin, project_vms, reproduces, shrink_run


def test_ddmin_finds_the_needed_items():
    items = [Action.of("host_set_target", vm=0, pages=i) for i in range(20)]
    need = {3, 11, 19}
    out = ddmin(items, lambda c: need <= {a.kwargs["pages"] for a in c})
    assert {a.kwargs["pages"] for a in out} == need


def test_project_vms_renumbers():
    cfg = Config(vms=3, guest_pages=2, machine_pages=6, hostile_vms=frozenset({2}))
    acts = [Action.of("guest_write", vm=v, vpn=0, token=1) for v in range(3)]
    small, out = project_vms(cfg, acts, [2])
    assert small.vms == 1 and small.hostile_vms == frozenset({0})
    assert [a.kwargs["vm"] for a in out] == [0]


def test_shrink_run_keeps_the_failure():
    cfg = Config(vms=4, guest_pages=8, guest_data_pages=4, machine_pages=32, host_swap=True,
                 host_swap_slots=4)
    acts = [Action.of("guest_write", vm=v, vpn=k, token=1) for v in range(4) for k in range(3)]
    acts.append(Action.of("host_swap_out", vm=2, ppn=1))
    faults = ("host_swap_loses_data",)
    assert reproduces(cfg, faults, acts, "guest_data_intact")
    small, out, prop = shrink_run(cfg, faults, acts, "guest_data_intact", "VM 2: ...")
    assert prop == "guest_data_intact" and small.vms == 1 and len(out) == 2
    assert reproduces(small, faults, out, prop)
