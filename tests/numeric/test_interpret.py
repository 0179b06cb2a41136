"""The NumPy interpreter of the kernels: batch semantics of its engine store."""

from __future__ import annotations

import numpy as np

from ballast.model.action_kernels import KERNELS
from ballast.model.config import Config
from ballast.numeric.arrays import SystemArrays
from ballast.numeric.interpret import VmRows, run_kernel


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
