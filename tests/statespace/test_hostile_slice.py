"""The hostile preset's slices: hostile-processors pinned and small enough for the budget,
over-target with the VMM paging out a VM over its target, the driver's paths and the virtio
1.x features each in a slice of their own that catches their faults."""

from pathlib import Path

import pytest

from ballast.model.actions import ACTIONS
from ballast.model.config import preset
from ballast.model.faults import FAULTS
from ballast.model.replay import ReplayOutcome, replay
from ballast.model.system import BalloonModel
from ballast.statespace.configs import EXPLORE_CONFIGS
from ballast.statespace.explore import explore
from ballast.statespace.manifest import load_manifest
from ballast.statespace.suite import DRIVER_FEATURES, VIRTIO_1X_FEATURES, feature_slices
from ballast.statespace.traces import make_trace

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


def test_each_memory_feature_of_the_preset_is_on_in_some_slice() -> None:
    """Splitting the driver's paths from the virtio 1.x features loses none of them."""
    cfg = preset("hostile")
    slices = feature_slices(cfg)
    on = {f for f in (*DRIVER_FEATURES, *VIRTIO_1X_FEATURES, "vmm_bounds_queues",
                      "reset_races_reports", "vmm_reclaims_over_target") if getattr(cfg, f)}
    assert on, "the hostile preset switches no memory feature on"
    assert {f for f in on if any(getattr(c, f) for c in slices.values())} == on
    # ... and no slice has both groups (that is what keeps each within the budget).
    for name, c in slices.items():
        assert not (any(getattr(c, f) for f in DRIVER_FEATURES)
                    and any(getattr(c, f) for f in VIRTIO_1X_FEATURES)), name


def test_a_preset_with_one_group_keeps_it_in_every_memory_slice() -> None:
    """The split happens only where both groups are on: the qemu preset's driver paths stay in
    its protocol slice (its pinned counts and agreement configurations unchanged)."""
    slices = feature_slices(preset("qemu"))
    assert "driver" not in slices and "virtio-1x" not in slices
    assert all(getattr(slices["protocol"], f) for f in DRIVER_FEATURES
               if getattr(preset("qemu"), f))


@pytest.mark.parametrize(("fault", "slice_name"), [
    ("migrate_forgets_old_page", "driver"),
    ("oom_deflate_without_report", "driver"),
    ("report_without_isolation", "virtio-1x"),
    ("report_skips_poison", "virtio-1x"),
    ("vmm_accepts_flood", "hostile"),
])
def test_the_slice_that_holds_a_features_action_catches_its_fault(fault: str,
                                                                  slice_name: str) -> None:
    """Each split-off slice still shows the faults of its features, and the trace found
    replays through the model to the same violation."""
    f = FAULTS[fault]
    small = feature_slices(preset("hostile"))[slice_name].replace(**f.config)
    model = BalloonModel(small, (fault,))
    ex = explore(model, symmetry=True, stop_on=True)
    assert set(ex.violations) & set(f.caught_as or (f.breaks,)), (fault, sorted(ex.violations))
    finding = next(v for k, v in ex.violations.items() if k in (f.caught_as or (f.breaks,)))
    actions = ex.path(finding.state) + ([finding.action] if finding.action else [])
    run = replay(make_trace(model, actions, {}, "test"))
    assert run.outcome is ReplayOutcome.VIOLATION and run.step == len(actions), run.describe()
    assert finding.property in {v.property for v in run.violations}, run.describe()


@pytest.mark.slow
def test_the_explorer_checks_the_whole_preset_within_the_default_budget(tmp_path: Path) -> None:
    """``ballast check --preset hostile --checkers explore``: every slice explored completely
    (about 526,000 states in 14 slices, six CPU-minutes), every safety property holds."""
    from ballast.statespace.suite import suite_check
    from ballast.verdict import Verdict

    res = suite_check(preset("hostile"), report_dir=tmp_path)
    bad = [(p.property, p.verdict, p.detail) for p in res.results
           if p.kind == "invariant" and p.verdict is not Verdict.PASS]
    assert not bad, bad
