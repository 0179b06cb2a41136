"""The frontier explorer against the reference explorer, and the pieces it is built of."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ballast.errors import GuardError
from ballast.model.actions import ACTIONS, Action, apply
from ballast.model.config import Config, preset
from ballast.model.faults import FAULTS
from ballast.model.property_kernels import STEP_KERNELS
from ballast.model.state import UNBACKED, State
from ballast.model.system import BalloonModel
from ballast.model.trace import read_trace
from ballast.numeric.interpret import guard_mask, run_kernel
from ballast.statespace import keyset
from ballast.statespace.configs import EXPLORE_CONFIGS, fault_config
from ballast.statespace.explore import Budget, Exploration, explore
from ballast.statespace.frontier import (explore_frontier, kernel_of, property_kernel_of,
                                         step_kernel_of)
from ballast.statespace.frontier_candidates import CandidateGroups, _vm_attribute_columns, row_of
from ballast.statespace.frontier_parts import PartIds
from ballast.statespace.frontier_rows import (FrontierRows, RowsLack, own_columns_read,
                                              property_holds_on_rows, step_holds_on_rows)
from ballast.statespace.keyset import KeySet, distinct, unique_rows
from ballast.statespace.manifest import load_manifest
from ballast.statespace.rowcodec import RowLayout, RowOverflow
from ballast.statespace.runner import run_explore
from ballast.statespace.suite import feature_slices
from ballast.statespace.traces import write_finding
from ballast.statespace.transitions import WatchedVm

FAST = ["one-vm-application", "one-vm-refusal"]
SMALL_BASE = EXPLORE_CONFIGS["one-vm"]


def summary(ex: Exploration) -> dict[str, Any]:
    """What both engines must agree on."""
    return {
        "states": ex.states, "transitions": ex.transitions, "depth": ex.max_depth,
        "complete": ex.complete,
        "findings": sorted((name, f.form, f.steps(ex)) for name, f in ex.violations.items()),
        "violating": len(ex.violating), "witnessed": sorted(ex.witnessed),
        "deadlocks": ex.deadlocks,
        "deadlock": None if ex.deadlock is None else ex.deadlock.steps(ex),
        "fired": dict(sorted(ex.fired.items())),
    }


def both(model: BalloonModel, symmetry: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    return (summary(explore(model, symmetry=symmetry)),
            summary(explore_frontier(model, symmetry=symmetry)))


def reachable(cfg: Config, limit: int) -> list[Any]:
    ex = explore(BalloonModel(cfg), budget=Budget(max_states=limit))
    return [ex.state(i) for i in range(ex.states)]


# -- the row layout ---------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [EXPLORE_CONFIGS["two-vms"], fault_config("share_without_cow"),
                                 fault_config("cpu_reclaim_keeps_parked")])
def test_rows_decode_to_the_states_they_encode(cfg: Config) -> None:
    lay = RowLayout(cfg)
    states = reachable(cfg, 400)
    rows = np.array([lay.encode(s) for s in states])
    assert [lay.decode(r) for r in rows] == states
    assert (lay.unpack(lay.pack(rows)) == rows).all()
    keys = lay.pack(rows)
    assert len(distinct(keys)[0]) == len(set(states))  # distinct states, distinct keys


def test_a_value_outside_the_layout_is_an_error_not_a_wrong_key() -> None:
    lay = RowLayout(SMALL_BASE)
    row = lay.encode(BalloonModel(SMALL_BASE).init_states()[0])
    row[lay.cols("inflate_queue", 0)[0]] = 100
    with pytest.raises(RowOverflow, match="inflate_queue"):
        lay.pack(row[None, :])


@pytest.mark.parametrize("cfg", [EXPLORE_CONFIGS["two-vms"], fault_config("share_without_cow")])
def test_keys_packed_again_from_the_parents_are_the_packed_keys(cfg: Config) -> None:
    # Successor rows that change a few columns (read incrementally) and many (packed anew),
    # every value inside its column's range; a value outside is still an error.
    lay = RowLayout(cfg)
    rng = np.random.default_rng(5)
    before = np.array([lay.encode(s) for s in reachable(cfg, 300)], dtype=np.int16)
    keys = lay.pack(before)
    for changed in (1, 3, lay.width // 3, lay.width):
        cols = rng.choice(lay.width, size=changed, replace=False)
        after = before.copy()
        span = (lay.high - lay.low + 1)[cols]
        after[:, cols] = (lay.low[cols] + rng.integers(0, 2**15, size=after[:, cols].shape)
                          % span).astype(np.int16)
        assert (lay.repack(keys, before, after) == lay.pack(after)).all()
    after = before.copy()
    after[0, lay.cols("inflate_queue", 0)[0]] = 100
    with pytest.raises(RowOverflow, match="inflate_queue"):
        lay.repack(keys, before, after)


@pytest.mark.parametrize("cfg", [EXPLORE_CONFIGS["two-vms"], fault_config("share_without_cow"),
                                 Config(vms=3, guest_pages=4, machine_pages=12)])
def test_a_parts_number_read_off_the_key_tells_parts_apart_as_its_cells_do(cfg: Config) -> None:
    lay = RowLayout(cfg)
    rows = np.array([lay.encode(s) for s in reachable(cfg, 400)], dtype=np.int16)
    keys = lay.pack(rows)
    h, w = lay.host_end, lay.vm_width
    spans = [(0, h)] + [(h + v * w, h + (v + 1) * w) for v in range(cfg.vms)]
    cells = [rows[:, a:b] for a, b in spans]
    codes = [lay.span_code(keys, a, b) for a, b in spans]
    for (a, b), c, code in zip(spans, cells, codes):
        if code is None:  # wider than 63 bits: the caller numbers the cells instead
            assert sum(col.bits for col in lay.columns[a:b]) > 63
            continue
        by_code = {}
        for row, x in zip(c.tolist(), code.tolist()):
            assert by_code.setdefault(x, row) == row  # one number, one part
        assert len(by_code) == len({tuple(r) for r in c.tolist()})  # one part, one number
    vm_codes = [c for c in codes[1:] if c is not None]
    if len(vm_codes) == cfg.vms:  # VMs alike, numbers alike
        for v in range(1, cfg.vms):
            alike = (cells[1] == cells[1 + v]).all(axis=1)
            assert ((vm_codes[0] == vm_codes[v]) == alike).all()
    # The ids the explorer gives parts, wide ones included (read off the key in runs of
    # columns of at most 63 bits): one id, one part; VMs alike, ids alike.
    ids = PartIds(lay)
    host, vms = ids.of_keys(keys, lambda: rows)
    for c, got in zip(cells, [host] + [vms[:, v] for v in range(cfg.vms)]):
        by_id = {}
        for row, x in zip(c.tolist(), got.tolist()):
            assert by_id.setdefault(x, row) == row
        assert len(by_id) == len({tuple(r) for r in c.tolist()})
    for v in range(1, cfg.vms):
        assert ((vms[:, 0] == vms[:, v]) == (cells[1] == cells[1 + v]).all(axis=1)).all()


# -- the visited set --------------------------------------------------------------------
@pytest.mark.parametrize("words", [1, 3])
def test_distinct_keys_are_found_in_order_of_first_occurrence(words: int) -> None:
    rng = np.random.default_rng(words)
    keys = rng.integers(0, 6, size=(5000, words)).astype(np.uint64)
    first, inverse = distinct(keys)
    seen: dict[tuple[int, ...], int] = {}
    for i, k in enumerate(map(tuple, keys.tolist())):
        seen.setdefault(k, i)
    assert first.tolist() == sorted(seen.values())
    assert (keys[first][inverse] == keys).all()
    assert keyset.first_occurrences(keys)[0].tolist() == first.tolist()


def test_keys_that_share_a_hash_stay_distinct(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 4, size=(200, 2)).astype(np.uint64)
    exact = {tuple(k) for k in keys.tolist()}
    monkeypatch.setattr(keyset, "key_hash",
                        lambda k: (k[:, 0] % np.uint64(2)).astype(np.uint64))
    first, inverse = distinct(keys)
    assert len(first) == len(exact)
    assert (keys[first][inverse] == keys).all()
    ks = KeySet(2)
    ks.add(keys[first[:5]], np.arange(5))
    ks.add(keys[first[5:]], np.arange(5, len(first)))
    found = ks.lookup(keys)
    assert (keys[first][found] == keys).all()
    assert (ks.lookup(np.array([[9, 9]], dtype=np.uint64)) == -1).all()


@pytest.mark.parametrize("words", [1, 3])
def test_a_key_set_grown_batch_by_batch_finds_every_key_and_no_other(
        words: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Many batches of uneven sizes: runs are merged many times over; with keys of several
    # words, also where keys share a hash (one word's, modulo 7: equal hashes meet from
    # both runs). A key of one word is its own hash.
    if words > 1:
        monkeypatch.setattr(keyset, "key_hash",
                            lambda k: (k[:, 0] % np.uint64(7)).astype(np.uint64))
    rng = np.random.default_rng(words)
    keys = np.unique(rng.integers(0, 50, size=(1500, words), dtype=np.uint64), axis=0)
    keys = keys[rng.permutation(len(keys))]
    ks = KeySet(words)
    at = 0
    while at < len(keys):
        n = int(rng.integers(1, 60))
        ks.add(keys[at:at + n], np.arange(at, min(at + n, len(keys))))
        at += n
        assert all((np.diff(r.h.astype(np.int64)) >= 0).all() for r in ks.runs)
    assert len(ks.runs) < 12  # merged as it grew, not one run per batch
    assert (ks.lookup(keys) == np.arange(len(keys))).all()
    others = rng.integers(50, 60, size=(100, words), dtype=np.uint64)
    assert (ks.lookup(others) == -1).all()


# -- kernels over frontier rows ---------------------------------------------------------
MEMORY_CASES = ["host_swap_loses_data", "share_without_cow", "cow_write_in_place",
                "eager_backing_drops_swap", "host_takes_partial_page", "host_takes_single_unit"]
"""Seeded faults whose configurations use every memory operation (host pages, host swap,
sharing, the guest's disk and LRU order), each run with its fault and without."""


FEATURE_FAULTS = ["report_skips_poison", "vmm_accepts_flood", "vmm_applies_stale_reports"]
"""Faults of those features that break a property with a kernel within the states read."""


FEATURE_SLICES = ["hinting", "reset", "hostile", "virtio-1x", "driver", "host-pages"]
"""Slices of the hostile preset whose features some operations of the frontier's rows lack
(:class:`~ballast.statespace.frontier_rows.RowsLack`): the kernels that run there are the
model's steps, and the others say so."""


@pytest.mark.parametrize("cfg,faults", [
    (EXPLORE_CONFIGS["one-vm-refusal"], []), (EXPLORE_CONFIGS["two-vms"], []),
    (fault_config("cpu_reclaim_keeps_parked").replace(vms=2, pcpus=4), [])]
    + [(fault_config(f), []) for f in MEMORY_CASES] + [(fault_config(f), [f]) for f in MEMORY_CASES]
    + [(feature_slices(preset("hostile"))[name], []) for name in FEATURE_SLICES]
    + [(fault_config(f), [f]) for f in (*FEATURE_FAULTS, "hint_skips_rewritten_page",
                                        "vmm_maps_foreign_host_page")])
def test_every_kernel_on_frontier_rows_is_the_models_step(cfg: Config, faults: list[str]) -> None:
    model = BalloonModel(cfg, faults)
    lay = RowLayout(cfg)
    states = reachable(cfg, 150)
    checked = 0
    for spec in model.action_specs():
        kernel = kernel_of(model, spec)
        if kernel is None:
            continue
        try:
            checked += _kernel_steps_are_the_models(model, lay, states, spec, kernel)
        except RowsLack:
            continue  # the explorer takes the model's step for this action
    assert checked > 100


def _kernel_steps_are_the_models(model: BalloonModel, lay: RowLayout, states: list[Any],
                                 spec: Any, kernel: Any) -> int:
    cfg, checked = model.cfg, 0
    for s in states:
        for args in spec.candidates(cfg, s):
            act = Action.of(spec.name, **args)
            try:
                want: Any = lay.encode(apply(cfg, s, act, model.table))
            except GuardError:
                want = None
            rows = lay.encode(s)[None, :].copy()
            kargs = {k: (np.array([v]) if isinstance(v, int) else [v])
                     for k, v in args.items() if k != "vm"}
            # The guard read alone (what the explorer asks first) writes nothing and refuses
            # no step the model allows.
            frozen = rows.copy()
            frozen.flags.writeable = False
            allowed = guard_mask(kernel, FrontierRows(lay, frozen, np.array([row_of(args)])),
                                 kargs)
            assert bool(allowed[0]) or want is None, act
            ok = run_kernel(kernel, FrontierRows(lay, rows, np.array([row_of(args)])), kargs)
            assert bool(ok[0]) == (want is not None), act
            if want is not None:
                assert (rows[0] == want).all(), act
            checked += 1
    return checked


# -- the explorer against the reference -------------------------------------------------
@pytest.mark.parametrize("name", FAST)
def test_same_exploration_as_the_reference(name: str) -> None:
    ref, new = both(BalloonModel(EXPLORE_CONFIGS[name]))
    assert new == ref
    assert new["states"] == load_manifest()[name]["states"]


def test_same_symmetry_classes_as_the_reference() -> None:
    ref, new = both(BalloonModel(EXPLORE_CONFIGS["one-vm-two-mpns"].replace(host_use=False)),
                    symmetry=True)
    assert new == ref


@pytest.mark.parametrize("name", ["two-vms", "two-vms-host-pages"])
def test_same_symmetry_classes_with_vms_to_sort(name: str) -> None:
    """Two VMs configured alike, sorted in whole batches of rows (with MPNs renumbered, and
    with host pages of two units, where they are not): the reference's states, transitions,
    depth and findings, and the pinned count."""
    ref, new = both(BalloonModel(EXPLORE_CONFIGS[name]), symmetry=True)
    assert new == ref
    assert new["states"] == load_manifest()[name]["states_symmetry"]


@pytest.mark.parametrize("fault", ["eager_backing_drops_swap", "host_takes_single_unit"])
def test_same_exploration_with_the_memory_kernels(fault: str) -> None:
    model = BalloonModel(fault_config(fault, SMALL_BASE), [fault])
    ex = explore_frontier(model)
    assert not ex.model_actions and {"guest_write", "guest_read"} <= set(ex.kernel_actions)
    assert ex.states > 2000
    ref, new = both(model)
    assert new == ref


@pytest.mark.parametrize("fault", ["release_keeps_balloon_set", "free_refused_keeps_held"])
def test_a_seeded_fault_gives_the_same_shortest_finding(fault: str, tmp_path: Path) -> None:
    model = BalloonModel(fault_config(fault, SMALL_BASE), [fault])
    ref, new = both(model)
    assert new == ref
    assert FAULTS[fault].breaks in {name for name, _, _ in new["findings"]}
    ex = explore_frontier(model)
    found = ex.violations[FAULTS[fault].breaks]
    path = write_finding(ex, found, tmp_path, "finding")  # replayed on the model first
    assert len(read_trace(path).steps) == found.steps(ex)


def test_an_action_whose_kernel_needs_what_the_rows_lack_takes_the_models_step(
        tmp_path: Path) -> None:
    cfg = feature_slices(preset("hostile"))["virtio-1x"]  # page poisoning: writes the rows lack
    ex = explore_frontier(BalloonModel(cfg), budget=Budget(max_states=3000))
    assert "balloon_report_free_pages" in ex.model_actions
    assert "balloon_report_free_pages" not in ex.kernel_actions
    assert {"guest_write", "vmm_discard_reported"} <= set(ex.kernel_actions)
    assert ex.fired.get("balloon_report_free_pages", 0) > 0  # its steps were still taken
    run = run_explore(cfg, symmetry=False, budget=Budget(max_states=3000), report_dir=tmp_path)
    assert "the model's own step for balloon_report_free_pages" in run.engine_reason


def test_a_budget_in_states_leaves_the_run_incomplete() -> None:
    ex = explore_frontier(BalloonModel(EXPLORE_CONFIGS["one-vm-refusal"]),
                          budget=Budget(max_states=100), batch=16)
    assert not ex.complete and ex.stop_reason == "max_states" and 100 <= ex.states < 1188
    assert 0 <= ex.complete_depth < 20



@pytest.mark.parametrize("words", [1, 2])
def test_a_key_set_past_its_budget_finds_the_same_keys_on_disk(
        words: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(keyset, "_MERGE_BLOCK", 7)  # many blocks per merge on disk
    rng = np.random.default_rng(words)
    keys = np.unique(rng.integers(0, 2**40, size=(3000, words), dtype=np.uint64), axis=0)
    spill = keyset.Spill(200, str(tmp_path))
    on_disk, in_memory = KeySet(words, spill), KeySet(words)
    for at in range(0, len(keys), 97):
        ids = np.arange(at, min(at + 97, len(keys)))
        on_disk.add(keys[ids], ids)
        in_memory.add(keys[ids], ids)
    assert len(on_disk.disk) > 1 and on_disk.nbytes() <= 200 and spill.written > keys.nbytes
    asked = np.concatenate([keys, rng.integers(0, 2**40, size=(500, words), dtype=np.uint64)])
    assert (on_disk.lookup(asked) == in_memory.lookup(asked)).all()
    assert (on_disk.lookup(keys) == np.arange(len(keys))).all()


def test_an_exploration_beyond_its_memory_budget_spills_and_finds_the_same_states(
        tmp_path: Path) -> None:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-refusal"])
    budget = 4096  # bytes; the run holds more than 10 times that
    spilled = explore_frontier(model, batch=256, memory_budget=budget, spill_dir=str(tmp_path))
    plain = explore_frontier(model, batch=256)
    assert plain.bytes_estimate() > 10 * budget
    assert spilled.bytes_estimate() < plain.bytes_estimate() / 3  # parents and depths stay
    assert spilled.spilled_bytes > budget and plain.spilled_bytes == 0
    assert summary(spilled) == summary(plain)
    assert spilled.states == load_manifest()["one-vm-refusal"]["states"]
    assert all(spilled.state(i) == plain.state(i) for i in range(spilled.states))

TOO_LARGE_AT_ONE_PAGE = {"one-vm-hostile-flood", "one-vm-hostile-processors"}
"""Pinned configurations that stay large at one PPN and one MPN (the slow comparison below
covers them)."""
NEED_MORE_PAGES = {"one-vm-large-units", "two-vms-host-pages"}
"""Pinned configurations whose balloon or host pages are larger than one page."""


@pytest.mark.parametrize("name", sorted(set(EXPLORE_CONFIGS) - TOO_LARGE_AT_ONE_PAGE
                                        - NEED_MORE_PAGES))
def test_same_exploration_on_every_pinned_configuration_cut_to_one_page(name: str) -> None:
    """The quick twin of the comparison below: each pinned configuration's features on one
    VM of one PPN and one MPN, so that every kind of argument a kernel takes (numbers, sets
    of PPNs, a hint command) reaches the frontier's kernels on every run of the suite."""
    cfg = EXPLORE_CONFIGS[name].replace(vms=1, guest_pages=1, machine_pages=1)
    ref, new = both(BalloonModel(cfg))
    assert new == ref


@pytest.mark.slow
@pytest.mark.parametrize("symmetry", [False, True])
@pytest.mark.parametrize("name", sorted(EXPLORE_CONFIGS))
def test_same_exploration_on_every_pinned_configuration(name: str, symmetry: bool) -> None:
    ref, new = both(BalloonModel(EXPLORE_CONFIGS[name]), symmetry=symmetry)
    assert new == ref
    pinned = load_manifest()[name]
    assert new["states"] == pinned["states_symmetry" if symmetry else "states"]


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_same_findings_on_every_seeded_fault(fault: str) -> None:
    ref, new = both(BalloonModel(fault_config(fault), [fault]))
    assert new == ref


# -- whole-batch pieces: grouping rows, properties on rows ----------------------------
def test_unique_rows_is_numpys_unique_of_rows() -> None:
    rng = np.random.default_rng(7)
    narrow = rng.integers(-3, 4, size=(500, 3))
    wide = rng.integers(0, 2**40, size=(300, 3))  # beyond 62 bits: numpy's own sort of rows
    for table in (narrow, wide, narrow[:, :1]):
        got = unique_rows(table)
        want = np.unique(table, axis=0, return_index=True, return_inverse=True)
        assert [x.tolist() for x in got] == [want[0].tolist(), want[1].tolist(),
                                              want[2].reshape(-1).tolist()]


def _broken_by_kernel_and_model(model: BalloonModel, prop: Any, kernel: Any, lay: RowLayout,
                                rows: npt.NDArray[np.int16], states: list[Any]) -> int:
    """How many of ``states`` break ``prop``, asserting its kernel on the rows and the
    model's check agree on each."""
    cfg = model.cfg
    holds = np.ones(len(rows), dtype=bool)
    if kernel.host is not None:
        holds &= property_holds_on_rows(kernel.host, lay, rows)
    if kernel.each_vm is not None:
        for v in prop.checked_vms(cfg):
            holds &= property_holds_on_rows(kernel.each_vm, lay, rows, v)
    model_holds = [prop.check_state(cfg, s) is None for s in states]
    assert holds.tolist() == model_holds, prop.name
    return model_holds.count(False)


@pytest.mark.parametrize("fault", [None, "release_keeps_balloon_set", "host_takes_single_unit",
                                   "migrate_forgets_old_page", "share_without_cow",
                                   "free_without_scrub", "host_swap_loses_data"])
def test_property_kernels_on_rows_are_the_models_checks(fault: str | None) -> None:
    """The state properties the frontier checks by their kernels on whole batches of rows
    hold on exactly the states where the model's checks pass, violating states included
    (the first three faults break their property within the first 1,500 states)."""
    faults = [fault] if fault else []
    cfg = fault_config(fault, SMALL_BASE) if fault else EXPLORE_CONFIGS["two-vms"]
    model = BalloonModel(cfg, faults)
    ex = explore(model, budget=Budget(max_states=1500))
    states = [ex.state(i) for i in range(ex.states)]
    lay = RowLayout(cfg)
    rows = np.array([lay.encode(s) for s in states], dtype=np.int16)
    by_kernel, broken = [], 0
    for prop in model.properties():
        kernel = property_kernel_of(model, prop) if prop.state is not None else None
        if kernel is None:
            continue
        by_kernel.append(prop.name)
        broken += _broken_by_kernel_and_model(model, prop, kernel, lay, rows, states)
    assert len(by_kernel) >= 6
    if fault:
        assert FAULTS[fault].breaks in by_kernel
    if fault in ("release_keeps_balloon_set", "host_takes_single_unit",
                 "migrate_forgets_old_page"):
        assert broken > 0




@pytest.mark.parametrize("name,fault", [(n, None) for n in FEATURE_SLICES]
                         + [(None, f) for f in FEATURE_FAULTS])
def test_property_kernels_on_rows_are_the_models_checks_with_every_feature(
        name: str | None, fault: str | None) -> None:
    """The same on the hostile preset's slices (page poisoning, the VMM's flood bound,
    reports racing a reset, free page hinting, ...) and faults of those features: state and
    step forms alike, broken ones included."""
    cfg = feature_slices(preset("hostile"))[name] if name else fault_config(str(fault))
    model = BalloonModel(cfg, [fault] if fault else [])
    ex = explore(model, budget=Budget(max_states=500))
    states = [ex.state(i) for i in range(ex.states)]
    lay = RowLayout(cfg)
    rows = np.array([lay.encode(s) for s in states], dtype=np.int16)
    state_forms = step_forms = broken = 0
    for prop in model.properties():
        kernel = property_kernel_of(model, prop) if prop.state is not None else None
        if kernel is not None:
            state_forms += 1
            broken += _broken_by_kernel_and_model(model, prop, kernel, lay, rows, states)
        step = step_kernel_of(model, prop)
        if step is None:
            continue
        step_forms += 1
        for s in states[:150]:
            for act, t in model.successors(s):
                if act.name not in ACTIONS or not step.constrains(ACTIONS[act.name]):
                    continue
                pre, post = lay.encode(s)[None, :], lay.encode(t)[None, :]
                holds_step = all(step_holds_on_rows(step.check, lay, pre, post, v)[0]
                                 for v in step.vms(cfg, act.kwargs.get("vm")))
                model_holds_step = prop.check_step(cfg, s, act, t) is None
                assert holds_step == model_holds_step, prop.name
                broken += not model_holds_step
    assert state_forms >= 8 and step_forms >= 2
    assert (broken > 0) == (fault is not None)  # each fault breaks what it is for


STEP_FAULTS = {"vmm_reclaims_host_choice": (None, 100), "cow_write_in_place": (None, 800),
               "stats_count_balloon_as_free": (None, 100),
               "restore_forgets_balloon": ("one-vm", 400),
               "vmm_applies_stale_reports": (None, 150)}
"""Faults that break a step property with a kernel: the pinned configuration the fault's
own changes apply to (None: its default) and states enough to reach the break."""


@pytest.mark.parametrize("fault", [None, *STEP_FAULTS])
def test_step_kernels_on_rows_are_the_models_step_checks(fault: str | None) -> None:
    """The step properties the frontier checks by their kernels over whole batches of steps
    hold on exactly the steps where the model's checks pass, broken steps included (every
    fault here breaks its step property within the states explored)."""
    faults = [fault] if fault else []
    base, limit = STEP_FAULTS[fault] if fault else (None, 300)
    cfg = (EXPLORE_CONFIGS["two-vms"] if not fault else fault_config(fault) if base is None
           else fault_config(fault, EXPLORE_CONFIGS[base]))
    model = BalloonModel(cfg, faults)
    ex = explore(model, budget=Budget(max_states=limit))
    lay = RowLayout(cfg)
    steps = [(act, s, t) for s in map(ex.state, range(ex.states))
             for act, t in model.successors(s)]
    by_kernel, broken = [], set()
    for prop in model.properties():
        kernel = step_kernel_of(model, prop)
        if kernel is None:
            continue
        by_kernel.append(prop.name)
        taken = [(act, s, t) for act, s, t in steps
                 if act.name in ACTIONS and kernel.constrains(ACTIONS[act.name])]
        holds = []
        for act, s, t in taken:
            pre, post = lay.encode(s)[None, :], lay.encode(t)[None, :]
            holds.append(all(step_holds_on_rows(kernel.check, lay, pre, post, v)[0]
                             for v in kernel.vms(cfg, act.kwargs.get("vm"))))
        model_holds = [prop.check_step(cfg, s, act, t) is None for act, s, t in taken]
        assert holds == model_holds, prop.name
        if False in model_holds:
            broken.add(prop.name)
    assert "isolation" in by_kernel
    if fault:
        assert FAULTS[fault].breaks in broken


STUTTER_CONFIGS = ["two-vms", "one-vm-refusal"]


@pytest.mark.parametrize("name", STUTTER_CONFIGS)
def test_a_step_form_covering_other_vms_holds_where_its_columns_stay(name: str) -> None:
    """What lets the frontier skip a step form for a VM (:func:`own_columns_read`): every
    form that covers VMs besides the actor holds on a stutter, and one whose reads are its
    VM's own columns gives the same answer whatever the other columns hold."""
    cfg = EXPLORE_CONFIGS[name]
    lay = RowLayout(cfg)
    rows = np.array([lay.encode(s) for s in reachable(cfg, 300)], dtype=np.int16)
    rng = np.random.default_rng(3)
    others = rows[rng.permutation(len(rows))]
    read_somewhere = []
    for sk in STEP_KERNELS.values():
        if sk.covers == "actor":
            continue
        for v in range(cfg.vms):
            assert step_holds_on_rows(sk.check, lay, rows, rows, v).all(), sk.name
            cols = own_columns_read(sk.check, lay, v)
            if cols is None:
                continue
            read_somewhere.append(sk.name)
            mixed_pre, mixed_post = others.copy(), np.roll(others, 1, axis=0)
            mixed_pre[:, cols], mixed_post[:, cols] = (rows[:, cols],
                                                       np.roll(rows, 7, axis=0)[:, cols])
            plain_pre, plain_post = rows.copy(), rows.copy()
            plain_post[:, cols] = np.roll(rows, 7, axis=0)[:, cols]
            assert (step_holds_on_rows(sk.check, lay, mixed_pre, mixed_post, v)
                    == step_holds_on_rows(sk.check, lay, plain_pre, plain_post, v)).all()
    assert "guest_chooses_pages" in read_somewhere


def test_reads_of_another_field_than_the_vms_own_are_not_own_columns() -> None:
    lay = RowLayout(EXPLORE_CONFIGS["two-vms"])
    assert own_columns_read(lambda pre, post: pre.all(pre.mpns("free")), lay, 0) is None
    assert own_columns_read(lambda pre, post: pre.all(post.mapped()), lay, 0) is None
    cols = own_columns_read(lambda pre, post: pre.eq(pre.vm("target"), post.vm("target")),
                            lay, 1)
    assert cols is not None and list(cols) == list(lay.cols("target", 1))


HOST_PAGES_TWO_VMS = Config(vms=2, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
                            machine_pages=4, host_page_units=2, sharing=False, tokens=1,
                            batch=1)
"""Two VMs whose pages the VMM backs in host pages of two units, one VM's each."""


@pytest.mark.parametrize("faults", [[], ["vmm_maps_foreign_host_page"]])
def test_host_pages_of_one_vm_explore_as_the_reference(faults: list[str]) -> None:
    """Where the VMM keeps host pages to one VM the frontier takes the model's accesses and
    checks ``host_page_backs_one_vm`` by its kernel: the same graph and findings."""
    model = BalloonModel(HOST_PAGES_TWO_VMS, faults)
    ref, new = both(model)
    assert new == ref
    found = {name for name, _, _ in new["findings"]}
    assert ("host_page_backs_one_vm" in found) == bool(faults), found


# -- candidates remembered by what they read -----------------------------------------------
@pytest.mark.parametrize("cfg", [EXPLORE_CONFIGS["two-vms"], EXPLORE_CONFIGS["one-vm-hinting"],
                                 EXPLORE_CONFIGS["one-vm-reporting"],
                                 EXPLORE_CONFIGS["one-vm-stale-reports"],
                                 Config(vms=1, guest_pages=3, machine_pages=4)])
def test_candidates_are_the_same_wherever_the_cells_they_read_are(cfg: Config) -> None:
    """The frontier engine remembers an action's candidates for VM ``v`` under the cells of
    the columns behind the VM attributes they read (:func:`_vm_attribute_columns`): a state
    that agrees there with one seen before must have the same candidates, read alike."""
    model = BalloonModel(cfg)
    lay = RowLayout(cfg)
    states = reachable(cfg, 600)
    rows = np.array([lay.encode(s) for s in states], dtype=np.int16)
    compared = 0
    for spec in model.action_specs():
        if spec.vm_candidates is None:
            continue
        for v in range(cfg.vms):
            columns = _vm_attribute_columns(lay, v)

            def cols(read: frozenset[str]) -> list[int]:
                return sorted({c for name in read
                               for c in columns.get(name, columns[""]).tolist()})
            seen: dict[frozenset[str], dict[tuple[int, ...], Any]] = {}
            for s, row in zip(states, rows):
                watched = WatchedVm.of(s.vms[v])
                got = list(spec.vm_candidates(
                    cfg, State(s.host, s.vms[:v] + (watched,) + s.vms[v + 1:]), v))
                read = frozenset(watched.fields_read)
                for earlier, answers in seen.items():
                    before = answers.get(tuple(row[cols(earlier)].tolist()))
                    if before is not None:
                        assert before == (got, read), (spec.name, v)
                        compared += 1
                seen.setdefault(read, {})[tuple(row[cols(read)].tolist())] = (got, read)
    assert compared > 100


NARROWINGS = {
    "ballooned": lambda vm: bool(vm.ballooned),
    "actual-and-ballooned": lambda vm: vm.module.actual >= 1 and bool(vm.ballooned),
    "acked-deflate": lambda vm: bool(vm.acked_deflate),
}
"""Conditions on a VM, each on attributes balloon_inflate's candidates never read."""


@pytest.mark.parametrize("narrowing", sorted(NARROWINGS))
def test_candidates_that_read_more_deep_in_the_search_are_grouped_again(narrowing: str) -> None:
    """An action whose candidates read a VM attribute only in states found deep in the
    search (here: balloon_inflate turned off where a condition on attributes it never read
    holds) makes the frontier engine group the states again by the larger read set, within
    the batch where it is first read: both engines then explore alike."""
    cfg = EXPLORE_CONFIGS["one-vm"]
    model = BalloonModel(cfg)
    spec = model.table["balloon_inflate"]
    assert spec.vm_candidates is not None
    plain, off = spec.vm_candidates, NARROWINGS[narrowing]

    def narrowed(c: Config, s: State, v: int) -> list[dict[str, Any]]:
        got = list(plain(c, s, v))
        return [] if off(s.vms[v]) else got

    unchanged = summary(explore(model))
    model.table = {**model.table, "balloon_inflate": dataclasses.replace(  # a copy: ACTIONS stays
        spec, vm_candidates=narrowed,
        candidates=lambda c, s: [a for v in range(c.vms) for a in narrowed(c, s, v)])}
    ref, new = both(model)
    assert new == ref
    assert ref["transitions"] != unchanged["transitions"]  # the narrowing does narrow


def test_a_group_whose_answer_reads_more_than_it_tells_apart_is_split() -> None:
    """Two states that agree on what an action's candidates have read so far (nothing yet)
    start in one group; the first answer reads attributes on which they differ, so they are
    grouped again and each gets its own candidates, not the other's."""
    cfg = EXPLORE_CONFIGS["one-vm"]
    lay = RowLayout(cfg)
    states = reachable(cfg, 2000)
    a = next(s for s in states if s.vms[0].target >= 1 and s.vms[0].p2m[0] == UNBACKED)
    b = next(s for s in states if s.vms[0].target == a.vms[0].target
             and s.vms[0].p2m[0] != UNBACKED)

    def candidates(c: Config, s: State, v: int) -> list[dict[str, Any]]:
        vm = s.vms[v]
        if vm.target == 0:
            return [{"vm": v, "ppns": ()}]
        return [{"vm": v, "ppns": (0,) if vm.p2m[0] == UNBACKED else (1,)}]

    spec = dataclasses.replace(ACTIONS["balloon_inflate"], vm_candidates=candidates)
    groups = CandidateGroups(lay, {}, lambda s, v: s)
    rows = np.array([lay.encode(a), lay.encode(b)], dtype=np.int16)
    none = np.zeros((2, 1), dtype=np.int64)
    got: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    for members, _, args in groups.blocks(0, spec, 0, rows, [a, b], none[:, 0], none):
        for i in members.tolist():
            got[i].append(args)
    assert got == {0: candidates(cfg, a, 0), 1: candidates(cfg, b, 0)}
    assert groups.read_so_far(0, 0)[0] == {"target", "p2m"}


def test_liveness_left_unchecked_keeps_the_engines_reason(tmp_path: Path) -> None:
    cfg = feature_slices(preset("default"))["protocol"]
    run = run_explore(cfg, symmetry=False, budget=Budget(max_states=40), liveness=True,
                      report_dir=tmp_path)
    unchecked = [r for r in run.result.results if r.detail.startswith("not checked: ")]
    assert unchecked and "the full exploration stopped" in unchecked[0].detail
    # Why the engine was chosen, not why liveness went unchecked.
    assert run.engine_reason == run.result.stats["engine_reason"]
    assert "exploration stopped" not in run.engine_reason


@pytest.mark.parametrize("missing", ["vmm_reclaim", "vmm_release"])
def test_the_same_deadlocks_as_the_reference_where_the_protocol_stalls(missing: str) -> None:
    """A VMM that never processes one kind of report stalls the protocol: the frontier
    engine, which asks whether a VM is unsettled of whole batches at once, counts the same
    stalled states and gives the same first one as the reference."""
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-no-host-use"])
    model.table = {k: v for k, v in ACTIONS.items() if k != missing}
    ref, new = both(model)
    assert ref["deadlocks"] > 0
    assert new == ref
