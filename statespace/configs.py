"""Small configurations that exhaustive exploration can finish.

Even the ``core`` preset has more reachable states than a quick check should
visit (every page content, LRU order and queue is part of the state), so the
explorer works on shrunken copies: the same feature switches, fewer pages.

>>> from ballast.model.config import preset
>>> small = small_config(preset("default"))
>>> small.vms, small.guest_pages, small.tokens, small.sharing
(2, 1, 1, True)
>>> fault_config("host_takes_single_unit").host_page_units
2
"""

from __future__ import annotations

from ballast.model.config import Config, ModuleKind
from ballast.model.faults import FAULTS

__all__ = ["EXPLORE_CONFIGS", "FAULT_BASE", "fault_config", "fewest_tokens", "small_config"]

_ONE = Config(vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=0, machine_pages=1,
              host_swap_slots=0, tokens=1, batch=1)

#: Named small configurations whose reachable state counts are pinned in ``state_counts.json``.
EXPLORE_CONFIGS: dict[str, Config] = {
    "one-vm": _ONE,
    "one-vm-no-host-use": _ONE.replace(host_use=False),
    "one-vm-two-mpns": _ONE.replace(machine_pages=2),
    "one-vm-refusal": _ONE.replace(refusal=True, host_use=False),
    "one-vm-application": _ONE.replace(module=ModuleKind.APPLICATION, pin_limit=1),
    "one-vm-eager-backing": _ONE.replace(machine_pages=2, host_use=False, eager_backing=True),
    "two-vms": _ONE.replace(vms=2, guest_pages=1, machine_pages=2),
    "two-vms-three-mpns": _ONE.replace(vms=2, guest_pages=1, machine_pages=3),
    # The virtio 1.x features of the reporting, poison and hostile presets.
    "one-vm-reporting": _ONE.replace(host_use=False, free_page_reporting=True, stats_queue=True),
    "one-vm-poison": _ONE.replace(host_use=False, free_page_reporting=True, page_poison=True,
                                  poison_val=1),
    "one-vm-hostile-flood": _ONE.replace(host_use=False, guest_pages=1, guest_data_pages=0,
                                         hostile_vms=frozenset({0}), vmm_bounds_queues=True),
    # Free page hinting and hibernation (the hinting and hibernation presets).
    "one-vm-hinting": _ONE.replace(host_use=False, free_page_hint=True),
    "one-vm-hibernation": _ONE.replace(host_use=False, hibernation=True),
    # What the hostile preset adds against guests that will not cooperate: the VMM enforcing
    # the host's CPU target (here for an honest guest; with a hostile one the rogue memory
    # steps multiply the space, see the suite's hostile-processors slice), and reports in
    # flight across a guest reset.
    "one-vm-cpu-target": _ONE.replace(host_use=False, guest_pages=1, guest_data_pages=0,
                                      processors=True, vmm_enforces_cpu_target=True,
                                      vcpus=2, pcpus=3),
    "one-vm-stale-reports": _ONE.replace(host_use=False, reset=True, reset_races_reports=True),
    # The hostile preset's hostile-processors slice of the explorer (statespace/suite.py):
    # a hostile guest's rogue memory and processor steps on one page and one vCPU.
    "one-vm-hostile-processors": _ONE.replace(host_use=False, guest_pages=1, guest_data_pages=0,
                                              pin_limit=1, processors=True, vcpus=1, pcpus=1,
                                              hostile_vms=frozenset({0}),
                                              vmm_enforces_cpu_target=True),
    # Host pages of two units under two VMs (the VMM keeps each host page to one VM), and a
    # generic guest system whose pages are the machine's (the guest-system preset).
    "two-vms-host-pages": _ONE.replace(vms=2, guest_pages=1, machine_pages=4, host_page_units=2),
    "one-vm-guest-system": _ONE.replace(host_use=False, machine_pages=2, guest_system=True),
    # Balloon units of two pages (the large-units preset).
    "one-vm-large-units": _ONE.replace(host_use=False, batch=2, balloon_unit_pages=2),
    # The VMM paging out a VM over its target beside another VM, with a host swap slot to
    # page to (the hostile preset's over-target slice, where host_recovers_to_target is
    # checked).
    "two-vms-over-target": _ONE.replace(vms=2, guest_pages=1, machine_pages=2,
                                        host_swap_slots=1, host_use=False,
                                        vmm_reclaims_over_target=True),
}

#: The base every seeded fault is hunted on (before the fault's own config changes).
FAULT_BASE = Config(vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=1,
                    machine_pages=2, host_swap_slots=1, tokens=1, batch=1)


def fault_config(name: str, base: Config = FAULT_BASE) -> Config:
    """``base`` with the configuration changes seeded fault ``name`` needs; two VMs when
    the fault is about pages shared between VMs or about what one VM leaves to another."""
    fault = FAULTS[name]
    cfg = base.replace(**fault.config)
    if cfg.sharing or fault.config.get("vms", 1) > 1:
        cfg = cfg.replace(vms=max(cfg.vms, 2))
    return cfg


def fewest_tokens(cfg: Config) -> int:
    """The fewest page contents that still show ``cfg``'s features: one, or with page
    poisoning one more than ``poison_val``, so that old data can differ from the poison.

    >>> fewest_tokens(Config()), fewest_tokens(Config(page_poison=True, poison_val=1))
    (1, 2)
    """
    return cfg.poison_val + 1 if cfg.page_poison and cfg.poison_val else 1


def small_config(cfg: Config) -> Config:
    """A copy of ``cfg`` with the same features and the smallest sizes that still show them.

    One VM gets two pages (one in the balloon, one for its data); two VMs get one page
    each, as the explorer's two-VM slices do, unless pages migrate (a ballooned page
    moves to another PPN of the same VM): with two pages each, a preset of two VMs has
    millions of states.

    >>> two = small_config(Config(vms=4, guest_pages=8, machine_pages=32, host_page_units=4))
    >>> two.vms, two.guest_pages, two.machine_pages, two.host_page_units
    (2, 1, 4, 2)
    >>> small_config(Config(vms=2, guest_pages=4, migration=True)).guest_pages
    2
    >>> system = small_config(Config(vms=2, guest_pages=3, machine_pages=6, guest_system=True,
    ...                              host_use=False, sharing=False))
    >>> system.vms * system.guest_pages <= system.machine_pages
    True
    """
    vms = min(cfg.vms, 2)
    units = cfg.host_page_units if cfg.host_page_units <= 2 else 2
    vcpus = min(cfg.vcpus, 2)
    unit = cfg.balloon_unit_pages  # a report holds one balloon unit (one page by default)
    pages = max(2, unit) if vms == 1 or cfg.migration else unit
    machine = 2 * units if vms > 1 else units
    if cfg.guest_system:  # the guests' pages are the machine's own
        machine = max(machine, vms * pages)
    return cfg.replace(
        # A disk slot lets the guest page out (and so exercise guest_evict); with two
        # VMs it multiplies the space too much for a quick check.
        vms=vms, guest_pages=pages, guest_data_pages=1, guest_disk_slots=1 if vms == 1 else 0,
        machine_pages=machine,
        host_page_units=units, host_swap_slots=1 if cfg.host_swap else 0,
        tokens=fewest_tokens(cfg), batch=unit,
        kernel_reserve=min(cfg.kernel_reserve, 1), pin_limit=min(cfg.pin_limit, 1),
        vcpus=vcpus, pcpus=vms * vcpus + 1 if cfg.processors else cfg.pcpus,
        hostile_vms=frozenset(v for v in cfg.hostile_vms if v < vms))
