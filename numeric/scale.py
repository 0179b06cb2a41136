# mypy: disable-error-code="no-any-return"
"""Configurations at scale: a preset's features with many VMs and many pages.

>>> from ballast.model.config import preset
>>> cfg = scaled(preset("large"), vms=1024, pages=16384)
>>> cfg.vms * cfg.guest_pages == 2**24, cfg.machine_pages % cfg.host_page_units
(True, 0)
"""

from __future__ import annotations

from typing import Sequence

from ballast.model.config import Config
from ballast.model.faults import FAULTS, with_fault_needs

__all__ = ["scaled", "with_faults"]

_SIZES = ("vms", "guest_pages", "guest_data_pages", "guest_disk_slots", "machine_pages",
          "host_swap_slots", "pcpus")


def scaled(base: Config, *, vms: int, pages: int, overcommit: float = 0.75) -> Config:
    """``base`` with ``vms`` VMs of ``pages`` PPNs each, host memory ``overcommit`` of the total.

    The guest's processes may use three quarters of its pages, its disk a quarter;
    hostile VMs keep their numbers where they still exist.
    """
    u = base.host_page_units
    machine = max(u, int(vms * pages * overcommit) // u * u)
    if base.guest_system:  # the guests' pages are the machine's: no overcommit
        machine = -(-vms * pages // u) * u
    hostile = frozenset(v for v in base.hostile_vms if v < vms)
    pcpus = vms * base.vcpus + max(2, vms // 4) if base.processors else base.pcpus
    return base.replace(vms=vms, guest_pages=pages, guest_data_pages=max(1, pages * 3 // 4),
                        guest_disk_slots=max(1, pages // 4), machine_pages=machine,
                        host_swap_slots=max(base.host_swap_slots, vms), hostile_vms=hostile,
                        pcpus=pcpus)


def with_faults(cfg: Config, faults: Sequence[str], *, keep_sizes: bool) -> Config:
    """``cfg`` with the configuration changes the seeded faults need.

    Without ``keep_sizes``: :func:`~ballast.model.faults.with_fault_needs` (sizes at least
    the faults'). With ``keep_sizes`` the faults' size changes are left out (a run at scale
    keeps its sizes), except a host page size that still divides host memory.
    """
    if not keep_sizes:
        return with_fault_needs(cfg, faults)
    for name in faults:
        changes = {k: v for k, v in FAULTS[name].config.items() if k not in _SIZES}
        u = changes.get("host_page_units")
        if u is not None and cfg.machine_pages % u:
            changes["machine_pages"] = cfg.machine_pages // u * u
        if changes.get("guest_system"):
            # A generic guest system's pages are the machine's: host memory holds them all.
            unit = u or cfg.host_page_units
            whole = -(-cfg.vms * cfg.guest_pages // unit) * unit
            changes["machine_pages"] = max(changes.get("machine_pages", cfg.machine_pages), whole)
        cfg = cfg.replace(**changes)
    return cfg
