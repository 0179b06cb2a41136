"""The NumPy interpreter of the kernels: batch semantics of its engine store."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ballast.model.action_kernels import KERNELS
from ballast.model.config import Config
from ballast.numeric.arrays import COW_BIT, SystemArrays
from ballast.numeric.interpret import NumpyStateOps, VmRows, mpn_index, run_kernel


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
