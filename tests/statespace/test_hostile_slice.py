"""The hostile preset's hostile-processors slice: pinned, and small enough for the budget."""

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
