"""What each kernel may write, noted on its first run: it covers every change a batch makes,
and the step forms the engine leaves out for it are those that read none of it."""

from __future__ import annotations

import numpy as np
import pytest

from ballast.model import PRESETS
from ballast.model.property_kernels import STEP_KERNELS
from ballast.numeric.arrays import ARRAYS, SystemArrays
from ballast.numeric.engine import Engine, _learned
from ballast.numeric.workload import draw_batch, enabled_names, WEIGHTS

_DICTS = ("swap", "refs", "inflate_queue_extra", "deflate_queue_extra", "acked_refused_extra",
          "stale_inflate_extra", "stale_deflate_extra")


def _changed(before: SystemArrays, after: SystemArrays) -> set[str]:
    out = {name for name in ARRAYS
           if not np.array_equal(getattr(before, name), getattr(after, name))}
    out |= {name for name in _DICTS if getattr(before, name) != getattr(after, name)}
    return out | ({"clock"} if before.clock != after.clock else set())


@pytest.mark.parametrize("preset_name", ["default", "hostile", "qemu", "reporting", "hinting",
                                         "processors"])
def test_noted_writes_cover_every_change(preset_name: str) -> None:
    cfg = PRESETS[preset_name]
    eng = Engine(cfg)
    rng = np.random.default_rng(4)
    names = enabled_names(eng)
    w = np.array([WEIGHTS[n] for n in names]) / sum(WEIGHTS[n] for n in names)
    seen = set()
    for _ in range(300):
        name = names[int(rng.choice(len(names), p=w))]
        vms, args = draw_batch(eng, rng, name, 0.5)
        if not len(vms):
            continue
        before = eng.arr.copy()
        eng.apply_batch(name, vms, **args)
        writes = eng._writes.get(name)
        if writes is None:
            continue
        seen.add(name)
        assert _changed(before, eng.arr) <= writes, name
    assert len(seen) > 5


def test_a_step_form_that_reads_nothing_written_is_left_out() -> None:
    """host_set_target writes the target alone: the step form of guest_chooses_pages (it
    reads the balloon's pages and the inflate queue) is left out after its first run;
    vmm_reclaim writes the balloon's pages: it keeps it."""
    cfg = PRESETS["default"]
    eng = Engine(cfg)
    every = np.arange(cfg.vms)
    eng.apply_batch("host_set_target", every, pages=np.ones(cfg.vms, dtype=np.int64))
    eng.apply_batch("vmm_reclaim", every)
    assert eng._writes["host_set_target"] == {"target"}
    chooses = STEP_KERNELS["guest_chooses_pages"]
    assert chooses not in eng._own["host_set_target"]
    assert chooses in eng._own["vmm_reclaim"]


def test_what_one_engine_learned_of_its_kernels_the_next_engine_of_its_configuration_keeps(
        ) -> None:
    """The write sets and the step forms left out are constants of the configuration and
    the faults: a second engine starts from them, an engine with a fault does not."""
    # From nothing learned: another test in this worker may have run this configuration's
    # engines already, and what they learned is what this test is about.
    _learned.cache_clear()
    cfg = PRESETS["default"]
    every = np.arange(cfg.vms)
    first = Engine(cfg)
    first.apply_batch("host_set_target", every, pages=np.ones(cfg.vms, dtype=np.int64))
    assert Engine(cfg)._writes["host_set_target"] == {"target"}
    # The step forms a kernel's writes leave out are known once its writes are: from its
    # second run on (this test passed only where an earlier test had run it once).
    assert "host_set_target" not in Engine(cfg)._own
    second = Engine(cfg)
    second.apply_batch("host_set_target", every, pages=np.ones(cfg.vms, dtype=np.int64))
    assert "host_set_target" in Engine(cfg)._own
    assert "host_set_target" not in Engine(cfg, ["cow_write_in_place"])._writes
