"""The hostile preset's slices: hostile-processors pinned and small enough for the budget,
over-target with the VMM paging out a VM over its target."""

from ballast.model.actions import ACTIONS
from ballast.model.config import preset
from ballast.statespace.configs import EXPLORE_CONFIGS
from ballast.statespace.manifest import load_manifest
from ballast.statespace.suite import feature_slices

ROGUE = ("rogue_report", "rogue_touch", "rogue_set_actual", "rogue_cpu_park", "rogue_cpu_online",
         "vmm_enforce_cpu_target")


def test_the_slice_is_the_pinned_configuration_with_every_rogue_action() -> None:
    small = feature_slices(preset("hostile"))["hostile-processors"]
    assert small == EXPLORE_CONFIGS["one-vm-hostile-processors"]
    assert all(ACTIONS[name].feature(small) for name in ROGUE)


def test_its_pinned_count_fits_the_default_budget() -> None:
    pinned = load_manifest()["one-vm-hostile-processors"]
    assert pinned["states_symmetry"] <= 1_000_000


def test_the_over_target_slice_lets_the_vmm_page_out_a_vm_over_its_target() -> None:
    """The slice switches the feature it is for back on after switching memory features off."""
    small = feature_slices(preset("hostile"))["over-target"]
    assert ACTIONS["vmm_swap_over_target"].feature(small)
    assert small.vms == 2 and not small.hostile_vms
