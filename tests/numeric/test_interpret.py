"""The NumPy interpreter of the kernels: batch semantics of its engine store."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ballast.model.action_kernels import KERNELS
from ballast.model.config import Config
from ballast.numeric.arrays import COW_BIT, FREE_BIT, SystemArrays
from ballast.numeric.fields import flags_as
from ballast.numeric.interpret import NumpyOps, run_kernel
from ballast.numeric.page_sets import page_sets
from ballast.numeric.rows import mpn_index, uniform
from ballast.numeric.state_ops import NumpyStateOps
from ballast.numeric.vm_rows import VmRows
from ballast.numeric.onehot import OneHot, dense


def _two_vms_one_idle_processor() -> SystemArrays:
    cfg = Config(vms=2, guest_pages=2, machine_pages=4, processors=True, vcpus=2, pcpus=5)
    arr = SystemArrays.initial(cfg)
    assert arr.idle_pcpus == 1
    arr.vcpus[:] = 1          # vCPU 0 online in both VMs
    arr.module_cpu_target[:] = 2    # both modules want vCPU 1 back
    return arr


def test_a_shared_host_counter_is_handed_out_in_row_order() -> None:
    arr = _two_vms_one_idle_processor()
    ok = run_kernel(KERNELS["balloon_cpu_online"], VmRows(arr, np.array([0, 1])),
                    {"vcpu": np.array([1, 1])})
    assert ok.tolist() == [True, False]
    assert arr.idle_pcpus == 0 and arr.vcpus.tolist() == [3, 1]


def test_rows_whose_guard_fails_are_left_unchanged() -> None:
    arr = _two_vms_one_idle_processor()
    arr.target[:] = [1, 0]
    arr.module_target[:] = [0, 2]  # VM 1's module holds a stale target it must not lose
    arr.cpu_target[:] = arr.module_cpu_target
    ok = run_kernel(KERNELS["balloon_poll"], VmRows(arr, np.array([0, 1])), {})
    assert ok.tolist() == [True, True] and arr.module_target.tolist() == [1, 0]
    ok = run_kernel(KERNELS["host_set_target"], VmRows(arr, np.array([0, 1])),
                    {"pages": np.array([1, 2])})
    assert ok.tolist() == [False, True] and arr.target.tolist() == [1, 2]
    ok = run_kernel(KERNELS["balloon_poll"], VmRows(arr, np.array([0, 1])), {})
    assert ok.tolist() == [False, True] and arr.module_target.tolist() == [1, 2]


@pytest.mark.parametrize("machine_pages", [6, 64])
def test_mpn_reads_in_the_arrays_own_types_match_the_widened_reads(machine_pages: int) -> None:
    # MPNs as the arrays hold them (a 32-bit view where UNBACKED reads as -1, 16 bits, 64
    # bits), with MPNs beyond the host's: each read equals the plain 64-bit definition,
    # whether read through a table of the host's MPNs (many asked) or in place (a few).
    M = machine_pages
    rng = np.random.default_rng(7)
    cfg = Config(vms=3, guest_pages=5, guest_data_pages=4, machine_pages=M)
    arr = SystemArrays.initial(cfg)
    arr.content[:] = rng.integers(0, 9, size=M)
    arr.mpn_flags[:] |= np.where(rng.random(M) < 0.5, COW_BIT, 0).astype(arr.mpn_flags.dtype)
    rows = VmRows(arr, np.arange(3))
    for dtype, shape in itertools.product((np.int16, np.int32, np.int64, np.uint32),
                                          ((3, 5), (1,), ())):
        mpn = np.asarray(rng.integers(-3, M + 3, size=shape)).astype(dtype)
        wide = mpn.astype(np.int64)
        if dtype == np.uint32:
            wide = np.where(wide > 2**31, -1, wide)
        valid = (wide >= 0) & (wide < M)
        at = np.where(valid, wide, 0)
        content = rows.at_mpn("host.content", mpn)  # tokens in the contents' own type
        assert content.shape == mpn.shape and content.dtype == arr.content.dtype
        assert (content.astype(np.int64) ==
                np.where(valid, arr.content[at].astype(np.int64), 0)).all()
        cow = rows.at_mpn("host.cow", mpn)
        assert cow.shape == mpn.shape and cow.dtype == np.bool_
        assert (cow == (((arr.mpn_flags[at] & COW_BIT) != 0) & valid)).all()
        assert mpn_index(mpn, M).max() <= M


@pytest.mark.parametrize("tokens", [3, 253, 254, 1000])
def test_token_reads_keep_the_tokens_type_and_never_wrap(tokens: int) -> None:
    # The expected tokens, the guest's disk (a slot holds its token plus one) and the
    # host's swap are read in the type the contents use (one byte while tokens fit):
    # equal to their 64-bit definitions, the largest token and the empty slot included.
    cfg = Config(vms=2, guest_pages=3, guest_data_pages=3, machine_pages=6, tokens=tokens)
    arr = SystemArrays.initial(cfg)
    arr.expected[0] = [0, 1, tokens]
    arr.disk[1] = [0, tokens + 1, 1]
    arr.swap[(1, 2)] = tokens
    rows = VmRows(arr, np.arange(2))
    expected = rows.read_memory("guest.expected")
    disk = rows.read_tokens("guest.disk")
    swap = rows.read_tokens("host.swap")
    for got in (expected, disk, swap):
        assert got.dtype == arr.content.dtype
    assert expected.tolist() == [[0, 1, tokens], [0, 0, 0]]
    assert disk.tolist() == [[0, 0, 0], [0, tokens, 0]]
    assert swap.tolist() == [[0, 0, 0], [0, 0, tokens]]


def test_matches_vpn_equals_its_definition_on_every_shape() -> None:
    rng = np.random.default_rng(3)
    cfg = Config(vms=3, guest_pages=5, guest_data_pages=4, machine_pages=6)
    ops = NumpyStateOps(SystemArrays.initial(cfg), np.arange(3))
    for rows in (3, 1):
        values = rng.integers(0, 5, size=(rows, 4))
        vpn = rng.integers(-2, 6, size=(3, 5)).astype(np.int16)
        x = rng.integers(0, 5, size=(3, 5))
        inside = (vpn >= 0) & (vpn < 4)
        want = np.take_along_axis(np.broadcast_to(values, (3, 4)),
                                  np.where(inside, vpn, 0).astype(np.int64), axis=1)
        assert (ops.matches_vpn(x, values, vpn) == (~inside | (x == want))).all()


def _counted(arr: SystemArrays, vms: np.ndarray, once: bool) -> np.ndarray:
    """``held`` by its definition: how many PPNs of each VM hold each VPN."""
    D = arr.cfg.guest_data_pages
    use = arr.ppn_use[vms].astype(np.int64)
    counts = np.array([[int(((row == x)).sum()) for x in range(D)] for row in use])
    return counts <= 1 if once else counts > 0


def test_held_through_the_vpn_index_is_the_page_uses_answer_whatever_the_index_says() -> None:
    cfg = Config(vms=3, guest_pages=8, machine_pages=24)
    rng = np.random.default_rng(5)
    every = np.arange(cfg.vms)
    for trial in range(200):
        arr = SystemArrays.initial(cfg)
        D = cfg.guest_data_pages
        for v in range(cfg.vms):  # each VM holds some VPNs, each at most once
            vpns = rng.permutation(D)[:rng.integers(0, min(D, cfg.guest_pages) + 1)]
            ppns = rng.permutation(cfg.guest_pages)[:len(vpns)]
            arr.ppn_use[v, ppns] = vpns
            arr.vppn[v, vpns] = ppns
        if trial % 3 == 1:  # a VPN held twice: only counting can tell
            v = int(rng.integers(cfg.vms))
            held = np.flatnonzero(arr.ppn_use[v] >= 0)
            free = np.flatnonzero(arr.ppn_use[v] < 0)
            if len(held) and len(free):
                arr.ppn_use[v, free[0]] = arr.ppn_use[v, held[0]]
        if trial % 3 == 2:  # a stale index: an entry moved from a VPN held to one not held
            v = int(rng.integers(cfg.vms))
            named, unnamed = np.flatnonzero(arr.vppn[v] >= 0), np.flatnonzero(arr.vppn[v] < 0)
            if len(named) and len(unnamed):
                arr.vppn[v, unnamed[0]] = arr.vppn[v, named[0]]
                arr.vppn[v, named[0]] = -1
        for vms in (every, np.array([2, 0])):
            for once in (False, True):
                got = NumpyStateOps(arr, vms).held(once)
                assert (np.asarray(got) == _counted(arr, vms, once)).all(), (trial, once)


def _naive_page_sets(values: list[tuple[Any, ...]], pages: int) -> tuple[Any, ...]:
    """The PPN-set argument's parts, one set and one PPN at a time (the definition)."""
    masks, sizes, distinct, outside = [], [], [], []
    for t in values:
        ints = all(isinstance(p, (int, np.integer)) for p in t)
        masks.append([ints and any(p == i for p in t) for i in range(pages)])
        sizes.append(len(t))
        distinct.append(ints and len(set(t)) == len(t))
        outside.append([int(p) for p in t if ints and not 0 <= p < pages])
    return masks, sizes, distinct, outside


@given(st.lists(st.lists(st.one_of(st.integers(-3, 8), st.integers(-2**70, 2**70), st.booleans(),
                                   st.floats(allow_nan=False), st.text(max_size=1)),
                         max_size=6).map(tuple), min_size=1, max_size=5),
       st.integers(1, 3))
@example([(), ()], 2)  # every set empty (a reclaim that refuses nothing)
@example([(1, 2), (3,)], 1)  # every PPN in range
def test_ppn_set_arguments_are_read_as_their_definition_says(
        values: list[tuple[Any, ...]], repeat: int) -> None:
    sets = page_sets(values, np.full(len(values), repeat), pages=6)
    masks, sizes, distinct, outside = _naive_page_sets(values, 6)
    spread = [x for x in range(len(values)) for _ in range(repeat)]
    assert sets.mask.tolist() == [masks[x] for x in spread]
    assert sets.size.tolist() == [sizes[x] for x in spread]
    assert sets.distinct.tolist() == [distinct[x] for x in spread]
    assert sets.beyond.tolist() == [bool(outside[x]) for x in spread]
    assert sets.outside == (None if not any(outside) else [outside[x] for x in spread])


def test_a_flag_read_twice_is_read_once_and_again_after_a_write() -> None:
    arr = SystemArrays.initial(Config(vms=2, guest_pages=4))
    rows = VmRows(arr, np.array([0, 1]))
    first = rows.read("ballooned")
    assert rows.read("ballooned") is first and not first.flags.writeable
    ok = np.array([True, False])
    rows.write("ballooned", np.array([[False, True, False, True]] * 2), ok)
    after = rows.read("ballooned")
    assert after.tolist() == [[False, True, False, True], [False] * 4]
    rows.queue_add("inflate_queue", np.array([[True, False, False, False]] * 2), ok)
    rows.write_at("ballooned", OneHot(np.array([2, 0]), 4), np.array([True, True]), ok)
    assert rows.read("ballooned").tolist() == [[False, True, True, True], [False] * 4]
    assert rows.read("inflate_queue").tolist() == [[True, False, False, False], [False] * 4]
    rows.commit()
    assert (arr.page_flags[0] != 0).tolist() == [True, True, True, True]
    assert not arr.page_flags[1].any()


@pytest.mark.parametrize("value", [True, False])
def test_a_constant_written_to_some_rows_sets_or_clears_only_their_bit(value: bool) -> None:
    arr = SystemArrays.initial(Config(vms=3, guest_pages=4))
    arr.page_flags[:] = flags_as(arr.page_flags.dtype)["acked_inflate"]
    rows = VmRows(arr, np.array([0, 1, 2]))
    o = NumpyOps(rows, {})
    o.ok = np.array([True, False, True])
    o.set_pages("ballooned", o.filled("pages", value))
    rows.commit()
    assert uniform(o.filled("pages", value)) is value
    want = [value, False, value]
    assert [bool(x) for x in arr.page_flags[:, 0] & flags_as(arr.page_flags.dtype)["ballooned"]] \
        == want
    assert (arr.page_flags & flags_as(arr.page_flags.dtype)["acked_inflate"]).all()


def test_flags_given_to_every_row_apply_in_order_with_the_other_writes() -> None:
    """A flag every row and page is given one value of (a reset, an emptied queue) is noted
    and applied later: reads, later writes and the write-back all see the flags as if each
    write had been made when it was asked, over what the VMM changed in place before."""
    arr = SystemArrays.initial(Config(vms=2, guest_pages=4))
    bits = flags_as(arr.page_flags.dtype)
    arr.page_flags[:] = bits["ballooned"] | bits["inflate_queue"]
    rows = VmRows(arr, np.array([0, 1]))
    every = np.array([True, True])
    assert rows.read("ballooned").all()
    arr.page_flags[1, 3] |= bits["acked_deflate"]  # the VMM changes flags in place first
    rows._forget_flags()
    rows.write("ballooned", np.broadcast_to(False, (2, 4)), every)
    rows.write("acked_inflate", np.broadcast_to(True, (2, 4)), every)
    assert not rows.read("ballooned").any() and rows.read("acked_inflate").all()
    # Set again, then emptied, then one page set: the last word counts, in order.
    rows.write("ballooned", np.broadcast_to(True, (2, 4)), every)
    rows.queue_clear("inflate_queue", every)
    rows.write_at("inflate_queue", OneHot(np.array([1, -1]), 4), np.array([True, True]), every)
    rows.write("acked_inflate", np.broadcast_to(False, (2, 4)), every)
    rows.commit()
    assert (arr.page_flags & bits["ballooned"]).all()
    assert not (arr.page_flags & bits["acked_inflate"]).any()
    assert [[bool(x & bits["inflate_queue"]) for x in row] for row in arr.page_flags] == \
        [[False, True, False, False], [False] * 4]
    assert [bool(x & bits["acked_deflate"]) for x in arr.page_flags[1]] == [False] * 3 + [True]


@pytest.mark.parametrize("value", [True, False])
def test_logic_with_a_constant_vector_answers_what_the_full_vector_answers(value: bool) -> None:
    """``and_``, ``or_`` and ``not_`` with a vector that is one constant everywhere (a
    ``filled`` one, kept as a constant) give, entry by entry, what they give with the same
    vector written out in full; the answer keeps every operand's shape."""
    arr = SystemArrays.initial(Config(vms=3, guest_pages=4))
    o = NumpyOps(VmRows(arr, np.array([0, 1, 2])), {})
    rng = np.random.default_rng(1)
    page = rng.random((3, 4)) < 0.5
    per_vm = np.array([True, False, True])
    hot = OneHot(np.array([1, -1, 3]), 4)
    const, full = o.filled("pages", value), np.full((3, 4), value)
    for others in [(page,), (per_vm,), (hot,), (page, per_vm), (hot, page), (per_vm, hot)]:
        for op in (o.and_, o.or_):
            got = np.asarray(dense(op(*others, const)))
            want = np.asarray(dense(op(*others, full)))
            assert got.shape == want.shape and (got == want).all(), (op.__name__, others)
    assert (np.asarray(o.not_(const)) == ~full).all() and uniform(o.not_(const)) is (not value)


def test_a_switched_off_features_flag_reads_empty_and_is_never_set() -> None:
    arr = SystemArrays.initial(Config(vms=1, guest_pages=4))
    assert arr.page_flags.dtype == np.uint8
    rows = VmRows(arr, np.array([0]), name="some_action")
    ok = np.array([True])
    assert not rows.read("hinted").any()
    rows.write("hinted", np.zeros((1, 4), dtype=bool), ok)  # clearing an empty set: nothing
    with pytest.raises(AssertionError, match="some_action: writes hinted"):
        rows.write("hinted", np.ones((1, 4), dtype=bool), ok)
    with pytest.raises(AssertionError, match="writes report_queue"):
        rows.queue_add("report_queue", np.ones((1, 4), dtype=bool), ok)


def test_single_row_reads_answer_what_the_batch_reads_answer_for_that_row() -> None:
    """The single-row paths (one op per call) against the batch paths, VM by VM, on a
    reachable state: the LRU victim, the PPN holding each VPN, disk tokens, MPN reads."""
    from ballast.model.config import preset
    from ballast.numeric.engine import Engine
    from ballast.numeric.scale import scaled
    from ballast.numeric.workload import run_batches

    cfg = scaled(preset("default"), vms=6, pages=16)
    eng = Engine(cfg)
    run_batches(eng, np.random.default_rng(3), 150)
    assert eng.apply_batch("guest_reset", [0]).all()  # VM 0: no resident VPN
    arr, V, D = eng.arr, cfg.vms, cfg.guest_data_pages
    every = VmRows(arr, np.arange(V))
    victims = every.lru_victim()
    mpn = np.where(arr.p2m == np.uint32(0xFFFFFFFF), -1, arr.p2m.astype(np.int64))
    for v in range(V):
        one = VmRows(arr, np.array([v]))
        assert one.lru_victim().index.tolist() == [victims.index[v]]
        for d in range(-1, D + 1):
            want = every.holding(np.full(V, d))
            assert want is not None
            got = one.holding(np.array([d]))
            assert got is not None and got.index.tolist() == [want.index[v]]
            at = OneHot(np.full(V, d if 0 <= d < D else -1), D)
            assert one.token_at("guest.disk", OneHot(at.index[v:v + 1], D)).tolist() == \
                [every.token_at("guest.disk", at)[v]]
        for p in range(cfg.guest_pages):
            x = mpn[v, p:p + 1]
            for field in ("host.cow", "host.content"):
                want_at = every.at_mpn(field, mpn[:, p])[v:v + 1]
                assert one.at_mpn(field, x).tolist() == want_at.tolist()
                # An MPN read as a Python number (one row's pick): its value as one.
                assert one.at_mpn(field, int(x[0])) == want_at.tolist()[0]
    # Both kinds of row were met: a VM with a resident VPN and one without.
    assert (victims.index >= 0).any() and (victims.index < 0).any()


def _vppn_of(arr: SystemArrays) -> Any:
    """The VPN -> PPN index as the page use says it is."""
    want = np.full(arr.vppn.shape, -1, dtype=np.int64)
    for v, p in zip(*np.nonzero(arr.ppn_use >= 0)):
        want[v, arr.ppn_use[v, p]] = p
    return want


def test_a_mask_of_page_table_entries_is_written_as_the_whole_vector_would_be() -> None:
    """``set_at`` with a mask of several entries per row (an inflate's pages) writes them one
    by one: the same page use as ``where`` over the whole vector, rows whose guard failed
    untouched, and the VPN -> PPN index in step (entries that held a VPN lose it)."""
    from ballast.model.actions import BALLOON, FREE

    cfg = Config(vms=3, guest_pages=6, guest_data_pages=4, machine_pages=24)
    rng = np.random.default_rng(5)
    for _ in range(40):
        arr = SystemArrays.initial(cfg)
        for v in range(cfg.vms):  # some VPNs resident, on distinct PPNs
            held = rng.permutation(cfg.guest_pages)[:rng.integers(0, 5)]
            for d, p in enumerate(held):
                arr.ppn_use[v, p] = d
        arr.vppn[:] = _vppn_of(arr)
        mask = rng.random((cfg.vms, cfg.guest_pages)) < 0.4
        ok = rng.random(cfg.vms) < 0.7
        value = [BALLOON, FREE, np.array([0, 3, 1])][rng.integers(0, 3)]
        want = np.where(ok[:, None] & mask,
                        np.asarray(value)[:, None] if np.ndim(value) else value, arr.ppn_use)
        rows = VmRows(arr, np.arange(cfg.vms))
        rows.write_at("guest.ppn_use", mask, value, ok)
        rows.commit()
        assert (arr.ppn_use == want).all()
        # The index says where each VPN is (a VPN written twice in a row is left to the
        # kernels, which never do so: only rows holding each VPN once are compared).
        single = [v for v in range(cfg.vms) if len(set(arr.ppn_use[v][arr.ppn_use[v] >= 0]))
                  == int((arr.ppn_use[v] >= 0).sum())]
        assert (arr.vppn[single] == _vppn_of(arr)[single]).all()


def test_unit_flags_a_kernel_sets_are_read_back_at_once_and_written_at_commit() -> None:
    """``set_units`` changes a copy of the rows' host-page flags: a read after it sees the
    change, the arrays see it at commit (or before the VMM acts), rows whose guard failed
    keep theirs."""
    cfg = Config(vms=2, guest_pages=2, machine_pages=8, host_page_units=2)
    arr = SystemArrays.initial(cfg)
    before = arr.mpn_flags.copy()
    rows = VmRows(arr, np.array([0, 2]))
    ok = np.array([True, False])
    rows.set_units("host.in_use", np.ones((2, 2), dtype=bool), ok)
    rows.set_units("host.free", np.zeros((2, 2), dtype=bool), ok)
    assert rows.units("host.in_use").tolist() == [[True, True], [False, False]]
    assert rows.units("host.free").tolist() == [[False, False], [True, True]]
    assert (arr.mpn_flags == before).all()  # not yet written back
    rows.commit()
    fresh = VmRows(arr, np.array([0, 2]))
    assert fresh.units("host.in_use").tolist() == [[True, True], [False, False]]
    assert fresh.units("host.free").tolist() == [[False, False], [True, True]]
    # A mixed value, every row: each unit gets its own.
    fresh.set_units("host.free", np.array([[True, False], [False, True]]),
                    np.array([True, True]))
    assert fresh.at_mpn("host.content", np.array([0])).tolist() == [0]  # a read writes back
    assert ((arr.mpn_flags[[0, 1, 4, 5]] & FREE_BIT) != 0).tolist() == [True, False, False,
                                                                         True]


def test_one_page_unmapped_alone_leaves_what_a_batch_of_one_leaves() -> None:
    """The engine's unmapping of one page (Python numbers) against its batch path: an
    unshared page freed (scrubbed or not, reclaimed or not), a shared page's count dropped,
    an unbacked page left alone."""
    from ballast.model.config import preset
    from ballast.numeric.engine import Engine
    from ballast.numeric.scale import scaled
    from ballast.numeric.workload import run_batches

    cfg = scaled(preset("default"), vms=6, pages=16)
    eng = Engine(cfg)
    run_batches(eng, np.random.default_rng(8), 120)
    assert eng.arr.refs, "the walk shares a page"
    shared = next(iter(eng.arr.refs))
    unbacked = eng.arr.p2m == np.uint32(0xFFFFFFFF)
    pages = [(int(v), int(p)) for v, p in zip(*np.nonzero(eng.arr.p2m == shared))][:1]
    pages += [(int(v), int(p)) for v, p in zip(*np.nonzero(~unbacked))][:3]
    spare = [(int(v), int(p)) for v, p in zip(*np.nonzero(unbacked))][:2]
    pages.append(spare[0])
    for (v, p), by_balloon, scrub in itertools.product(pages, (False, True), (False, True)):
        one, batch = Engine(cfg, (), eng.arr.copy()), Engine(cfg, (), eng.arr.copy())
        one.hint = batch.hint = cfg.machine_pages  # where a freed MPN shows in the hint
        one._unback(np.array([v]), np.array([p]), by_balloon, scrub)
        # The batch path: the page and an unbacked one (which it leaves alone).
        w, q = next(x for x in spare if x != (v, p))
        batch._unback(np.array([v, w]), np.array([p, q]), by_balloon, scrub)
        for name in ("p2m", "content", "mpn_flags"):
            assert (getattr(one.arr, name) == getattr(batch.arr, name)).all(), name
        assert one.arr.refs == batch.arr.refs and one.hint == batch.hint


@pytest.mark.parametrize("add", [True, False])
def test_a_set_gains_or_loses_pages_as_its_definition_says(add: bool) -> None:
    """``set_add``/``set_remove`` of a page set held as a flag bit, written bit by bit in the
    rows that passed their guard: the same sets as ``set_pages`` of ``or_``/``and_ not_``,
    the other flags untouched; a switched-off feature's set stays empty (a removal is
    nothing, an addition of a page an internal error)."""
    cfg = Config(vms=4, guest_pages=6, machine_pages=24)
    rng = np.random.default_rng(11)
    for _ in range(30):
        arr = SystemArrays.initial(cfg)
        arr.page_flags[:] = rng.integers(0, 256, size=arr.page_flags.shape).astype(
            arr.page_flags.dtype) & sum(int(b) for b in flags_as(arr.page_flags.dtype).values())
        mask = rng.random((cfg.vms, cfg.guest_pages)) < 0.4
        ok = rng.random(cfg.vms) < 0.7
        want = arr.copy()
        o = NumpyOps(VmRows(want, np.arange(cfg.vms)), {})
        o.ok = ok.copy()
        now = o.pages("acked_inflate")
        o.set_pages("acked_inflate", o.or_(now, mask) if add else o.and_(now, o.not_(mask)))
        o.rows.commit()
        o = NumpyOps(VmRows(arr, np.arange(cfg.vms)), {})
        o.ok = ok.copy()
        (o.set_add if add else o.set_remove)("acked_inflate", mask)
        o.rows.commit()
        assert (arr.page_flags == want.page_flags).all()
    # A set whose feature is off: nothing to take out; a page put in is refused.
    rows = VmRows(SystemArrays.initial(cfg), np.arange(cfg.vms))
    o = NumpyOps(rows, {})
    o.set_remove("report_queue", np.ones((cfg.vms, cfg.guest_pages), dtype=bool))
    with pytest.raises(AssertionError, match="report_queue"):
        o.set_add("report_queue", np.ones((cfg.vms, cfg.guest_pages), dtype=bool))


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.sampled_from([3, 40, 300]))
@example(seed=0, vms=5, pages=300)
def test_the_lowest_page_holding_a_value_is_found_as_the_whole_table_would_find_it(
        seed: int, vms: int, pages: int) -> None:
    """A scan from the lowest PPNs up (windows widened for the rows not yet answered) finds
    each row's ``lowest(eq(pages("guest.ppn_use"), value), 1)`` and its ``any``: rows whose
    first match lies in the first window, beyond it, or nowhere."""
    cfg = Config(vms=vms, guest_pages=pages, guest_data_pages=min(pages, 8), machine_pages=4)
    arr = SystemArrays.initial(cfg)
    rng = np.random.default_rng(seed)
    for v in range(vms):  # the lowest free PPN of each VM anywhere in its table, or none
        first = int(rng.integers(0, pages + 1))
        arr.ppn_use[v, :first] = rng.integers(0, cfg.guest_data_pages, first)
        arr.ppn_use[v, first:] = np.where(rng.random(pages - first) < 0.5, -1, 1)
    for rows in (np.arange(vms), np.array([vms - 1]), np.arange(0, vms, 2)):
        ops = NumpyOps(VmRows(arr, rows), {})
        at, found = ops.lowest_holding(-1)
        table = arr.ppn_use[rows] == -1
        expect = np.where(table.any(axis=1), table.argmax(axis=1), -1)
        assert isinstance(at, OneHot) and at.index.tolist() == expect.tolist()
        assert np.asarray(found).tolist() == table.any(axis=1).tolist()
        # Once the rows' page table has been read, the answer comes from it, the same.
        ops = NumpyOps(VmRows(arr, rows), {})
        ops.pages("guest.ppn_use")
        again, _ = ops.lowest_holding(-1)
        assert dense(again).tolist() == dense(at).tolist()
