"""Configuration of one modelled system: sizes and feature switches.

A :class:`Config` is frozen data. Every feature can be switched off so that
checkers (the Z3 encoding, the exhaustive explorer) can work on a small core.
Sizes are in *balloon units* (4 KiB in virtio) unless said otherwise.

>>> cfg = Config(vms=1, guest_pages=4, machine_pages=4)
>>> cfg.host_pages
4
>>> Config(machine_pages=6, host_page_units=4)
Traceback (most recent call last):
...
ballast.errors.ConfigError: machine_pages (6) must be a multiple of host_page_units (4)
"""

from __future__ import annotations

import dataclasses
import os
import stat
import tomllib
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

from ballast.errors import ConfigError, InputError
from ballast.opening import open_to_read

__all__ = ["Config", "FEATURES", "ModuleKind", "GuestPolicyName", "MAX_CONFIG_BYTES",
           "MAX_MODEL_SIZE", "PRESETS", "features_on", "load_config", "model_size", "preset"]

MAX_MODEL_SIZE = 1 << 22
"""Most pages, slots and processors, all VMs together, a configuration read from a file or
the command line may declare (about 4 million): the reference model keeps every one of
them in every state, so more cannot fit in memory or time. Any single count (tokens,
batch, ...) is bounded by the same figure."""

MAX_CONFIG_BYTES = 1 << 20
"""Largest configuration file read (1 MiB); a longer one (or ``/dev/zero``) is refused."""


class ModuleKind(str, Enum):
    """Where the balloon module lives inside the guest."""

    DRIVER = "driver"
    """A kernel driver: allocates pinned pages from the kernel free list in batches,
    but leaves ``kernel_reserve`` free pages for the guest kernel itself."""
    APPLICATION = "application"
    """A user-level application: allocates one page per fault and pins it (mlock),
    so it inflates one page at a time and can pin at most ``pin_limit`` pages."""


class GuestPolicyName(str, Enum):
    """The guest OS's allocator and replacement policy (see :mod:`ballast.model.policy`)."""

    LRU = "lru"
    """Any free pages for the balloon (the allocator's choice), evict the least recently used
    page."""
    LOWEST = "lowest"
    """The lowest free PPNs first, evict the least recently used page (narrows ``lru``)."""
    ANY = "any"
    """Any free page, any victim: for validating real guests whose choices are unknown."""


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes and feature switches of a modelled host with its VMs."""

    vms: int = 2
    """Number of virtual machines on the host."""
    guest_pages: int = 4
    """Guest-physical pages (PPNs) per VM, in balloon units."""
    guest_data_pages: int = 3
    """Virtual pages (VPNs) the guest's processes may use; more than fit means paging."""
    guest_disk_slots: int = 2
    """Capacity of each guest's own virtual swap disk, in pages."""
    machine_pages: int = 6
    """Machine pages (MPNs) on the host, in balloon units."""
    host_page_units: int = 1
    """Balloon units per host page: 1 same size, 16 for 64 KiB host pages, 512 for 2 MiB."""
    host_swap_slots: int = 2
    """Capacity of the host's own swap (the fallback path), in pages."""
    tokens: int = 2
    """Distinct non-zero page contents a guest write may produce (0 is the zero page)."""
    batch: int = 2
    """Most PPNs in one inflate or deflate report (virtio's Linux driver uses 256)."""
    module: ModuleKind = ModuleKind.DRIVER
    """Balloon module variant: kernel driver or user-level application."""
    kernel_reserve: int = 0
    """Driver only: free pages the guest kernel keeps that the driver never takes."""
    pin_limit: int = 2
    """Application only: most pages the application may pin (RLIMIT_MEMLOCK)."""
    guest_policy: GuestPolicyName = GuestPolicyName.LRU
    """The guest's allocator and replacement policy."""
    must_tell_host: bool = True
    """virtio MUST_TELL_HOST: the guest reuses a deflated page only after the VMM's ack."""
    deflate_on_oom: bool = False
    """virtio DEFLATE_ON_OOM: the module deflates by itself when the guest is out of memory."""
    refusal: bool = False
    """vmw_balloon style: the VMM may refuse individual pages of an inflate report."""
    sharing: bool = False
    """Content-based page sharing: identical pages mapped copy-on-write to one MPN."""
    host_swap: bool = False
    """Host-level swapping, the fallback that picks guest pages without guest knowledge."""
    reset: bool = False
    """The guest may reboot with pages in its balloon."""
    host_use: bool = True
    """The host may take free host pages into arbitrary use and give them back."""
    processors: bool = False
    """Model the second resource: virtual processors taken out of use by the guest."""
    vcpus: int = 2
    """Virtual processors per VM at boot (processors feature)."""
    pcpus: int = 4
    """Physical processors of the host (processors feature)."""
    hostile_vms: frozenset[int] = field(default_factory=frozenset)
    """VMs whose guest is hostile or buggy: it may send any report it likes."""
    reread_target: bool = False
    """The module may read the targets again when they have not changed (a real driver
    re-reads the config space each time round its fill and leak loops)."""
    migration: bool = False
    """The guest's memory compaction may move a page of the balloon to another PPN
    (Linux ``virtballoon_migratepage``): the new page is inflated, then the old one deflated,
    ``actual`` unchanged; the VMM takes the one page beyond the target this needs."""
    accept_beyond_target: bool = False
    """The VMM acknowledges every valid page an inflate report names, beyond the host's
    target too: virtio's device checks no target (QEMU acknowledges a buffer the driver
    filled before the host lowered ``num_pages``, and the driver then deflates the excess).
    Off, the VMM accepts up to the target and refuses the rest."""
    eager_backing: bool = False
    """The VMM may back a guest page that is not in the balloon before the guest touches it:
    Xen populates deflated pages at once, a VMM may prefault or swap a page in ahead of
    use; QEMU backs lazily, on the guest's next access (virtio 1.x 5.5.6 leaves it open)."""
    oom_notifier: bool = False
    """With ``deflate_on_oom``: the guest's out-of-memory notifier may deflate up to one
    report of pages at any time. The guest's memory pressure is not modelled (a device-level
    trace does not show it), so the notifier's firing is a free choice."""

    free_page_reporting: bool = False
    """virtio FREE_PAGE_REPORTING (F_REPORTING): the module reports pages on the guest's free
    list and the VMM discards the machine pages behind them; the guest reuses a reported
    page only after the device has acknowledged the report."""

    report_pages: int = 0
    """Most pages one free page report carries; 0: ``batch``, as for inflate and deflate
    reports. Linux reports up to 32 free blocks of up to 4 MiB at once (32,768 pages;
    mm/page_reporting.c, PAGE_REPORTING_CAPACITY), far more than its 256-page inflate
    buffers."""
    page_poison: bool = False
    """virtio PAGE_POISON: the guest fills the free pages it reports with ``poison_val``, so a
    discarded page may read back as ``poison_val`` instead of zero."""
    poison_val: int = 0
    """The token the guest's page poisoning writes (``page_poison``; 0 is the zero page)."""
    stats_queue: bool = False
    """virtio STATS_VQ: the guest reports its free memory to the VMM on the statistics queue."""
    vmm_bounds_queues: bool = False
    """The VMM itself bounds each VM's report queues: a report arriving on full queues is
    refused by the VMM, whatever the guest sends (a hostile guest may flood)."""

    free_page_hint: bool = False
    """virtio FREE_PAGE_HINT (section 5.5.6.5): during a live migration the VMM starts a hint
    cycle with a command id, the module hints free pages tagged with it, and the VMM may skip
    (not send, here: discard) a hinted page the guest has not written since; a page the guest
    writes after hinting it is dirty again and must not be lost."""
    hibernation: bool = False
    """The guest may hibernate: the driver freezes with pages in its balloon (Linux
    ``virtballoon_freeze``), the guest runs nothing while frozen, and on restore the driver
    tells the device its balloon again (``virtballoon_restore``); the VMM keeps the device's
    state meanwhile (QEMU keeps ``num_pages`` and its ballooned pages)."""
    vmm_enforces_cpu_target: bool = False
    """With ``processors``: the VMM enforces the host's CPU target itself instead of trusting
    the guest's module. It grants a physical processor to a vCPU coming online only while the
    VM runs fewer vCPUs than the host's target (not the target the module read or claims), it
    acts on a parked-vCPU report by stopping that vCPU (so a report of a vCPU that keeps
    running is no processor given back), and it may stop the vCPUs a VM keeps beyond the
    host's target. A hostile guest's processor actions (``rogue_cpu_park``,
    ``rogue_cpu_online``) exist with it."""
    reset_races_reports: bool = False
    """With ``reset``: a device reset is not atomic with respect to the report queues. Reports
    the guest queued before it rebooted may reach the VMM after the reset (a real driver's
    buffers in flight while the device resets); the VMM recognises them as the old
    incarnation's and drops them (``vmm_drop_stale_reports``)."""
    vmm_reclaims_over_target: bool = False
    """The VMM itself pages out to host swap a page of a VM that holds more machine pages
    than the host allows it (``guest_pages - target``), whatever its guest does: what the
    host can always do against a guest that touches pages beyond its target or pins them
    (``vmm_swap_over_target``). It takes that VM's own pages only, never another VM's."""

    balloon_unit_pages: int = 1
    """Guest pages per balloon unit (vmw_balloon's 2M commands, Hyper-V's 2 MiB units): the
    module inflates and deflates whole units, aligned runs of this many PPNs that the guest's
    allocator hands out whole, and the VMM accepts whole units. 1: every page is a unit."""

    guest_system: bool = False
    """The guests are generic guest systems, not virtual machines (a container or a process
    group whose resource manager holds the balloon module's reports): no PPN -> MPN
    translation, page ``p`` of guest ``v`` is machine page ``v * guest_pages + p`` (the
    machine pages beyond the guests' are the host's own), and the host's resource manager
    takes the VMM's part in the same protocol (a quantity asked for, the guest's allocator
    choosing the pages, the module pinning and reporting them, the manager freeing them).
    Content sharing and the host's own use of pages are not modelled for it."""

    def __post_init__(self) -> None:
        # A named choice given as its text ("application") becomes its member: the model
        # tells them apart by identity (``cfg.module is ModuleKind.APPLICATION``).
        for name, kind in (("module", ModuleKind), ("guest_policy", GuestPolicyName)):
            value = getattr(self, name)
            if not isinstance(value, kind):
                try:
                    object.__setattr__(self, name, kind(value))
                except ValueError:
                    raise ConfigError(f"{name} must be one of "
                                      f"{', '.join(repr(k.value) for k in kind)}, "
                                      f"got {value!r}") from None
        if self.vms < 1:
            raise ConfigError("vms must be at least 1")
        for name in ("guest_pages", "machine_pages", "host_page_units", "batch", "tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in ("guest_data_pages", "guest_disk_slots", "host_swap_slots",
                     "kernel_reserve", "pin_limit", "vcpus", "pcpus", "report_pages"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        if self.machine_pages % self.host_page_units:
            raise ConfigError(
                f"machine_pages ({self.machine_pages}) must be a multiple of "
                f"host_page_units ({self.host_page_units})")
        if self.processors and self.vms * self.vcpus > self.pcpus:
            raise ConfigError("processors: vms * vcpus must not exceed pcpus")
        if self.processors and self.vcpus < 1:
            raise ConfigError("processors: each VM needs at least its boot vCPU")
        if not 0 <= self.poison_val <= self.tokens:
            raise ConfigError(f"poison_val must be a token between 0 and tokens ({self.tokens})")
        if self.oom_notifier and not self.deflate_on_oom:
            raise ConfigError("oom_notifier needs deflate_on_oom")
        if self.balloon_unit_pages < 1:
            raise ConfigError("balloon_unit_pages must be at least 1")
        if self.balloon_unit_pages > 1:
            u = self.balloon_unit_pages
            if self.guest_pages % u or self.batch % u:
                raise ConfigError(f"guest_pages ({self.guest_pages}) and batch ({self.batch}) "
                                  f"must be multiples of balloon_unit_pages ({u})")
            # Not combined, as in the drivers that have such units: a balloon unit of
            # several pages is never migrated (vmw_balloon keeps its 2 MiB pages on a list
            # of their own, outside balloon compaction); a user-level application pins and
            # reports single pages; the lowest policy orders single pages, not units.
            if (self.migration or self.module is not ModuleKind.DRIVER
                    or self.guest_policy is GuestPolicyName.LOWEST):
                raise ConfigError("balloon_unit_pages: units of several pages are modelled for "
                                  "the driver, without migration (a unit is never migrated) "
                                  "and with the lru or any policy")
        if self.guest_system:
            if self.machine_pages < self.vms * self.guest_pages:
                raise ConfigError("guest_system: machine_pages must hold every guest's pages "
                                  "(vms * guest_pages)")
            if self.sharing or self.host_use:
                raise ConfigError("guest_system: sharing and host_use are not modelled for a "
                                  "generic guest system")
        bad = [v for v in self.hostile_vms if not 0 <= v < self.vms]
        if bad:
            raise ConfigError(f"hostile_vms names VMs that do not exist: {sorted(bad)}")

    @property
    def report_limit(self) -> int:
        """Most pages in one free page report (``report_pages``, else ``batch``).

        >>> Config().report_limit, Config(report_pages=5).report_limit
        (2, 5)
        """
        return self.report_pages or self.batch

    @property
    def balloon_report_pages(self) -> int:
        """Most pages in one inflate or deflate report: ``batch`` for a driver; one for a
        user-level application, which asks the guest OS for one page at a time.

        >>> Config().balloon_report_pages, Config(module="application").balloon_report_pages
        (2, 1)
        """
        return 1 if self.module is ModuleKind.APPLICATION else self.batch

    @property
    def host_pages(self) -> int:
        """Number of host pages (each ``host_page_units`` MPNs)."""
        return self.machine_pages // self.host_page_units

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, the inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, frozenset):
                value = sorted(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<config>") -> "Config":
        """Build a config from plain data, naming the offending key on error."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise InputError(source, None, f"unknown configuration key {key!r}; "
                                 f"expected one of {', '.join(sorted(known))}")
            default = getattr(_DEFAULT, key)
            try:
                if isinstance(default, bool):
                    if not isinstance(value, bool):
                        raise TypeError
                elif isinstance(default, Enum):
                    if not isinstance(value, str):
                        raise TypeError
                    value = type(default)(value)
                elif isinstance(default, frozenset):
                    if not isinstance(value, (list, tuple, set, frozenset)) or not all(
                            isinstance(v, int) and not isinstance(v, bool) for v in value):
                        raise TypeError
                    twice = sorted({v for v in value if list(value).count(v) > 1})
                    if twice:  # a list that says a VM twice may mean another VM
                        raise InputError(source, None, f"configuration key {key!r}: names "
                                         f"{', '.join(map(str, twice))} more than once")
                    value = frozenset(value)
                elif isinstance(default, int):
                    if isinstance(value, bool) or not isinstance(value, int):
                        raise TypeError
            except (TypeError, ValueError):
                shown = repr(value)
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                raise InputError(source, None, f"configuration key {key!r}: expected "
                                 f"{_expected(default)}, got {shown}") from None
            if isinstance(value, int) and not isinstance(value, bool) and value > MAX_MODEL_SIZE:
                raise InputError(source, None, f"configuration key {key!r}: {value:,} is more "
                                 f"than the model can hold (at most {MAX_MODEL_SIZE:,})")
            kwargs[key] = value
        try:
            cfg = cls(**kwargs)
        except ConfigError as exc:
            raise InputError(source, None, str(exc)) from None
        size = model_size(cfg)
        if size > MAX_MODEL_SIZE:
            raise InputError(source, None, f"configuration too large for the reference model: "
                             f"{size:,} pages, slots and processors in all, at most "
                             f"{MAX_MODEL_SIZE:,}")
        return cfg

    def replace(self, **changes: Any) -> "Config":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _expected(default: Any) -> str:
    """What a configuration key takes, in the words of a configuration file.

    >>> _expected(GuestPolicyName.LRU)
    'one of "lru", "lowest", "any" (a string)'
    >>> _expected(frozenset()), _expected(True), _expected(3)
    ('an array of VM numbers', 'true or false', 'a whole number')
    """
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, Enum):
        return "one of " + ", ".join(f'"{m.value}"' for m in type(default)) + " (a string)"
    if isinstance(default, frozenset):
        return "an array of VM numbers"
    if isinstance(default, int):
        return "a whole number"
    return type(default).__name__


FEATURES: tuple[str, ...] = tuple(f.name for f in fields(Config) if f.type in ("bool", bool))
"""The feature switches of a configuration: every boolean field, in definition order.

Read from :class:`Config` itself, so a switch added there is listed by every command and
report without a copy of this list.

>>> FEATURES[:3]
('must_tell_host', 'deflate_on_oom', 'refusal')
"""


def features_on(cfg: Config) -> list[str]:
    """The feature switches ``cfg`` turns on, in definition order.

    >>> features_on(Config(must_tell_host=False, sharing=True, host_use=False))
    ['sharing']
    """
    return [name for name in FEATURES if getattr(cfg, name)]


def model_size(cfg: Config) -> int:
    """Pages, slots and processors of all VMs and the host: what every state holds.

    >>> model_size(Config(vms=1, guest_pages=4, guest_data_pages=3, guest_disk_slots=2,
    ...                   machine_pages=6, host_swap_slots=2, vcpus=2, pcpus=4))
    23
    """
    per_vm = cfg.guest_pages + cfg.guest_data_pages + cfg.guest_disk_slots + cfg.vcpus
    return cfg.vms * per_vm + cfg.machine_pages + cfg.host_swap_slots + cfg.pcpus


_DEFAULT = Config()

#: Named configurations shipped with Ballast.
PRESETS: dict[str, Config] = {
    "default": Config(vms=2, guest_pages=4, guest_data_pages=3, guest_disk_slots=2,
                      machine_pages=6, host_swap=True, sharing=True, refusal=True,
                      reset=True, deflate_on_oom=True, processors=True,
                      hostile_vms=frozenset({1})),
    "core": Config(vms=1, guest_pages=3, guest_data_pages=2, guest_disk_slots=1,
                   machine_pages=3, host_swap_slots=0, tokens=1, batch=1),
    "virtio": Config(vms=1, guest_pages=4, guest_data_pages=3, guest_disk_slots=2,
                     machine_pages=4, must_tell_host=False, deflate_on_oom=True),
    "vmware": Config(vms=2, guest_pages=4, machine_pages=6, refusal=True, sharing=True,
                     host_swap=True, reset=True),
    "hugepages": Config(vms=2, guest_pages=4, machine_pages=8, host_page_units=4),
    "application": Config(vms=1, guest_pages=4, machine_pages=4,
                          module=ModuleKind.APPLICATION, pin_limit=2),
    # Every feature switch that combines with the others on, so that the hostile VM meets
    # every path of the host, on host pages of two MPNs. Off: balloon units of several pages
    # (a unit is never migrated, and this preset migrates pages; the large-units preset has
    # every other feature that combines with units) and the generic guest system (not a VM;
    # guest-system).
    "hostile": Config(vms=2, guest_pages=3, machine_pages=6, host_page_units=2,
                      hostile_vms=frozenset({1}), sharing=True, host_swap=True, reset=True,
                      refusal=True, deflate_on_oom=True, processors=True, reread_target=True,
                      migration=True, oom_notifier=True, free_page_reporting=True,
                      page_poison=True, stats_queue=True, vmm_bounds_queues=True,
                      vmm_enforces_cpu_target=True, reset_races_reports=True,
                      vmm_reclaims_over_target=True, free_page_hint=True, hibernation=True,
                      eager_backing=True, poison_val=1),
    "processors": Config(vms=2, guest_pages=2, guest_data_pages=1, machine_pages=4,
                         processors=True, vcpus=2, pcpus=5),
    "qemu": Config(vms=1, guest_pages=4, guest_data_pages=2, guest_disk_slots=1,
                   machine_pages=4, host_swap_slots=0, tokens=1, host_use=False,
                   must_tell_host=False, deflate_on_oom=True, reset=True,
                   guest_policy=GuestPolicyName.ANY, reread_target=True, migration=True,
                   oom_notifier=True, accept_beyond_target=True),
    # Xen: the balloon driver hands pages back with decrease_reservation and the
    # hypervisor populates deflated pages at once; xenpaging is the host-level swap.
    "xen": Config(vms=2, guest_pages=3, guest_data_pages=2, guest_disk_slots=1,
                  machine_pages=5, host_swap=True, host_swap_slots=1, eager_backing=True),
    "reporting": Config(vms=1, guest_pages=3, guest_data_pages=2, guest_disk_slots=1,
                        machine_pages=3, host_swap_slots=1, host_swap=True,
                        free_page_reporting=True, stats_queue=True),
    "poison": Config(vms=1, guest_pages=3, guest_data_pages=2, guest_disk_slots=1,
                     machine_pages=3, host_swap_slots=1, free_page_reporting=True,
                     page_poison=True, poison_val=1),
    # Free page hinting during live migration (virtio 1.x section 5.5.6.5).
    "hinting": Config(vms=1, guest_pages=3, guest_data_pages=2, guest_disk_slots=1,
                      machine_pages=3, host_swap_slots=0, free_page_hint=True),
    # A guest that hibernates with pages in its balloon.
    "hibernation": Config(vms=1, guest_pages=3, guest_data_pages=2, guest_disk_slots=1,
                          machine_pages=3, host_swap_slots=0, hibernation=True),
    # A generic guest system (containers or process groups, no VMs): the host's resource
    # manager takes the VMM's part and the guests' pages are the machine's.
    "guest-system": Config(vms=2, guest_pages=3, guest_data_pages=2, guest_disk_slots=1,
                           machine_pages=6, host_swap_slots=1, host_swap=True, host_use=False,
                           reset=True, guest_system=True),
    # Balloon units of two pages (vmw_balloon's 2M commands, Hyper-V's 2 MiB units), with
    # the features that combine with them: a VMM that refuses units (vmw_balloon's per-page
    # errors), the OOM notifier, free page reporting and hinting.
    "large-units": Config(vms=1, guest_pages=4, guest_data_pages=2, guest_disk_slots=1,
                          machine_pages=4, host_swap_slots=1, host_swap=True, batch=4,
                          balloon_unit_pages=2, deflate_on_oom=True, reset=True, refusal=True,
                          oom_notifier=True, free_page_reporting=True, free_page_hint=True),
    "large": Config(vms=8, guest_pages=64, guest_data_pages=48, guest_disk_slots=16,
                    machine_pages=384, host_page_units=16, batch=16, tokens=4,
                    host_swap=True, sharing=True, refusal=True, reset=True,
                    deflate_on_oom=True, host_swap_slots=32, processors=True,
                    vcpus=2, pcpus=20, hostile_vms=frozenset({7})),
}


def preset(name: str) -> Config:
    """A shipped configuration by name.

    >>> preset("core").vms
    1
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError("--preset", None, f"unknown preset {name!r}; expected one of "
                         f"{', '.join(sorted(PRESETS))}") from None


def load_config(path: str | Path) -> Config:
    """Read a configuration from a TOML file.

    The file holds top-level keys named as the fields of :class:`Config`, and may
    start from a preset with ``preset = "NAME"``.
    """
    p = Path(path)
    try:
        with open_to_read(p, binary=True) as f:  # a named pipe: no wait for a writer
            raw = f.read(MAX_CONFIG_BYTES + 1)
            silent_pipe = not raw and stat.S_ISFIFO(os.fstat(f.fileno()).st_mode)
    except OSError as exc:
        raise InputError(str(p), None, f"cannot read configuration: {exc.strerror}") from None
    if silent_pipe:  # not an empty file (the defaults): nothing was ever written to it
        raise InputError(str(p), None, "is a pipe no program writes to; expected a TOML "
                         "configuration file")
    if len(raw) > MAX_CONFIG_BYTES:
        raise InputError(str(p), None, f"configuration file larger than {MAX_CONFIG_BYTES:,} "
                         "bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InputError(str(p), line, "not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = " ".join(str(exc).split())
        raise InputError(str(p), getattr(exc, "lineno", None), f"not valid TOML: {msg}") from None
    except RecursionError:
        raise InputError(str(p), None, "not valid TOML: nested too deeply") from None
    base = _DEFAULT
    if "preset" in data:
        name = data.pop("preset")
        if not isinstance(name, str):
            raise InputError(str(p), None, f"preset must be a name; expected one of "
                             f"{', '.join(sorted(PRESETS))}")
        try:
            base = preset(name)
        except InputError as exc:
            raise InputError(str(p), None, exc.message) from None
    merged = {**base.to_dict(), **data}
    return Config.from_dict(merged, source=str(p))
