"""The kernel registrars: a kernel goes into its table under the model's name, and a name
the model does not have fails when the kernel is defined."""

from __future__ import annotations

import doctest

import pytest

from ballast.model import kernel_registry
from ballast.model.action_kernels import FAULT_KERNELS, KERNELS
from ballast.model.faults import FAULTS
from ballast.model.kernel_registry import action_kernel, fault_kernel
from ballast.model.ops import Kernel, Ops


def test_the_module_examples_run() -> None:
    assert doctest.testmod(kernel_registry).failed == 0


def test_a_name_the_model_does_not_have_fails_at_definition() -> None:
    table: dict[str, Kernel] = {}
    with pytest.raises(AssertionError, match="vmm_reclaims"):
        action_kernel(table)("vmm_reclaims")
    with pytest.raises(KeyError, match="no_such_fault"):
        fault_kernel({})("no_such_fault")
    assert table == {}


def test_a_fault_kernel_stands_beside_the_action_it_replaces() -> None:
    faults: dict[str, tuple[str, Kernel]] = {}

    def kernel(o: Ops) -> None:
        return None

    assert fault_kernel(faults)("cow_write_in_place")(kernel) is kernel
    assert faults == {"cow_write_in_place": (FAULTS["cow_write_in_place"].action, kernel)}


def test_the_shipped_tables_are_filled_through_the_registrars() -> None:
    # Every seeded fault with a kernel replaces the action its fault names.
    assert FAULT_KERNELS and all(action == FAULTS[name].action
                                 for name, (action, _) in FAULT_KERNELS.items())
    assert "vmm_reclaim" in KERNELS
