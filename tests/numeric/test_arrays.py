"""The NumPy layout is derived from the state schema and converts states exactly."""

import dataclasses

import numpy as np

from ballast.model.config import preset
from ballast.model.schema import SCHEMA, Record
from ballast.model.state import state_from_dict
from ballast.model.system import BalloonModel
from ballast.numeric import arrays
from ballast.numeric.arrays import (
    ARRAYS, LAYOUT, MPN_FLAGS, PAGE_FLAG_DTYPE, PAGE_FLAGS, Layout, SystemArrays, attribute,
    has_extra, name_extra,
)
from ballast.simulation.randomwalk import random_run


def test_every_schema_field_has_its_attribute() -> None:
    names = {f.name for f in dataclasses.fields(SystemArrays)}
    assert set(LAYOUT) == {f.key for f in SCHEMA}
    for f in SCHEMA:
        assert attribute(f) in names, f.path
        if LAYOUT[f.key] is Layout.PAGE_FLAG and has_extra(f):
            assert name_extra(f) in names, f.path
    assert set(ARRAYS) <= names


def test_flag_bits_are_distinct_named_after_the_fields_and_fit_their_type() -> None:
    for table in (PAGE_FLAGS, MPN_FLAGS):
        bits = [int(b) for b in table.values()]
        assert len(set(bits)) == len(bits) and all(b & (b - 1) == 0 for b in bits)
        for key, bit in table.items():
            assert getattr(arrays, key.upper() + "_BIT") == bit
    assert len(PAGE_FLAGS) <= PAGE_FLAG_DTYPE.itemsize * 8
    assert arrays._flag_dtype(8) == np.dtype(np.uint8)
    assert arrays._flag_dtype(9) == np.dtype(np.uint16)


def test_page_flags_take_one_byte_unless_a_feature_needs_more_and_keep_every_bit_then() -> None:
    from ballast.model.config import Config

    assert arrays.page_flag_dtype(Config()) == np.dtype(np.uint8)
    for feature in ("free_page_reporting", "free_page_hint", "reset_races_reports"):
        cfg = Config(**{feature: True})
        dtype = arrays.page_flag_dtype(cfg)
        # Every flag of the configuration's features fits its type.
        used = [k for k, f in ((f.key, f) for f in SCHEMA if f.key in PAGE_FLAGS)
                if f.feature is None or getattr(cfg, f.feature)]
        assert max(int(PAGE_FLAGS[k]) for k in used) < 1 << (8 * dtype.itemsize), feature
        assert dtype == np.dtype(np.uint16), feature
        assert SystemArrays.initial(cfg).page_flags.dtype == dtype


def test_page_flag_fields_are_the_per_vm_sets_and_queues_of_ppns() -> None:
    # The fields of every configuration first (they fit one byte), then each feature's.
    assert list(PAGE_FLAGS) == ["ballooned", "inflate_queue", "deflate_queue", "acked_inflate",
                                "acked_refused", "acked_deflate", "balloon", "refused",
                                "report_queue", "acked_report", "discarded", "hinted",
                                "hint_rewritten", "stale_inflate", "stale_deflate", "reporting"]
    assert list(MPN_FLAGS) == ["free", "in_use", "cow", "reclaimed"]
    assert all(f.record is Record.HOST for f in SCHEMA if f.key in MPN_FLAGS)


def test_from_state_and_to_state_are_inverse_on_reachable_states() -> None:
    for name, seed in (("default", 1), ("hostile", 2), ("processors", 3)):
        cfg = preset(name)
        run = random_run(BalloonModel(cfg), seed=seed, steps=150)
        for st in run.trace.steps[::3]:
            assert st.state is not None
            s = state_from_dict(st.state)
            assert SystemArrays.from_state(cfg, s).to_state() == s


def test_initial_arrays_are_the_models_initial_state() -> None:
    for name in ("default", "processors", "hostile", "core"):
        assert arrays._check_initial(preset(name))
