#!/usr/bin/env python3
"""A memory-ballooning system (host, VMM, guest, balloon driver) behind the Ballast
adapter protocol, standalone: it imports nothing from Ballast.

The same system as ``balloon_adapter.js``, for machines without Node.js, and
with seeded bugs to show what ``ballast diff`` reports::

    ballast diff --adapter "python3 examples/balloon_adapter.py" --preset virtio
    ballast diff --adapter "python3 examples/balloon_adapter.py --bug release-keeps-ballooned"

With ``--protocol 2`` the system makes its own choices and reports them: its
guest's allocator gives the balloon pages in its own order (``--alloc lowest``,
``highest`` or ``random``, deflating in the same order), its device accepts
reported pages in sorted or arrival order when there is not room for all
(``--accept sorted|arrival``; refusing the rest needs a configuration with
``refusal``), and its VMM backs a deflated page lazily or at once
(``--eager``, reported as ``vmm_back_page`` steps after the release; ``--no-declare``
leaves ``eager_backing`` out of its hello, so the configuration forbids those steps)::

    ballast diff --adapter "python3 examples/balloon_adapter.py --protocol 2 --alloc highest"
    ballast diff --adapter "python3 examples/balloon_adapter.py --protocol 2 --bug no-scrub"

Runs configurations with a kernel balloon driver, an LRU guest, and no page
sharing, host swapping, processors or hostile guests. Logs go to stderr.
"""

from __future__ import annotations

import copy
import json
import random
import sys
from typing import Any

FREE, BALLOON, UNBACKED = "free", "balloon", -1

SIZES = ["vms", "guest_pages", "guest_data_pages", "guest_disk_slots", "machine_pages",
         "host_page_units", "tokens", "batch", "kernel_reserve"]
SWITCHES = ["must_tell_host", "deflate_on_oom", "refusal", "reset", "host_use"]
FIXED = {"module": "driver", "guest_policy": "lru", "sharing": False, "host_swap": False,
         "processors": False, "hostile_vms": []}

ACTIONS = {
    "host_set_target": ["vm", "pages"], "host_take_page": ["host_page"],
    "host_return_page": ["host_page"], "vmm_reclaim": ["vm", "refuse"],
    "vmm_release": ["vm"], "guest_read": ["vm", "vpn"], "guest_write": ["vm", "vpn", "token"],
    "guest_evict": ["vm", "vpn"], "guest_reset": ["vm"], "balloon_poll": ["vm"],
    "balloon_inflate": ["vm", "ppns"], "balloon_deflate": ["vm", "ppns"],
    "balloon_complete": ["vm"], "balloon_free_refused": ["vm"],
    "vmm_back_page": ["vm", "ppn"],
}
OBSERVE = ["vms/*/target", "vms/*/ballooned", "vms/*/inflate_queue", "vms/*/deflate_queue",
           "vms/*/module/target", "vms/*/module/actual", "vms/*/module/balloon",
           "vms/*/module/refused", "vms/*/guest/free_count", "vms/*/guest/balloon_count",
           "vms/*/backed_count", "host/free_count", "host/in_use_count"]


class Refused(Exception):
    """The step is not allowed here."""


def need(condition: bool, reason: str) -> None:
    if not condition:
        raise Refused(reason)


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class Vm:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.target = 0
        self.ballooned: set[int] = set()
        self.p2m = [UNBACKED] * cfg["guest_pages"]
        self.inflate_queue: list[int] = []
        self.deflate_queue: list[int] = []
        self.acked_inflate: set[int] = set()
        self.acked_refused: set[int] = set()
        self.acked_deflate: set[int] = set()
        self.fresh_guest(cfg)

    def fresh_guest(self, cfg: dict[str, Any]) -> None:
        self.use: list[Any] = [FREE] * cfg["guest_pages"]
        self.lru: list[int] = []
        self.disk: dict[int, int] = {}
        self.driver_target = 0
        self.balloon: set[int] = set()
        self.refused: set[int] = set()
        self.actual = 0


class BalloonSystem:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.free = set(range(cfg["machine_pages"]))
        self.in_use: set[int] = set()
        self.content = [0] * cfg["machine_pages"]
        self.vms = [Vm(cfg) for _ in range(cfg["vms"])]

    def valid_reports(self, vm: Vm) -> list[int]:
        """Reported pages this device could accept: in range, not ballooned, each once."""
        return sorted({p for p in vm.inflate_queue
                       if is_int(p) and 0 <= p < self.cfg["guest_pages"] and p not in vm.ballooned})

    def room(self, vm: Vm) -> int:
        return max(0, vm.target - len(vm.ballooned))

    def room_refusals(self, vm: Vm) -> list[int]:
        """The valid pages this device refuses because the host asks for fewer: it keeps
        the lowest ones (a `vmm_reclaim` step names every valid page it refuses)."""
        return self.valid_reports(vm)[self.room(vm):]

    def allocator_allows(self, free: list[int], ppns: list[int]) -> bool:
        """Protocol 1: Ballast names the pages (the model's allocator chose them, any free
        pages): this guest hands out exactly those, each once."""
        return len(set(ppns)) == len(ppns) and set(ppns) <= set(free)

    def vm(self, args: dict[str, Any]) -> Vm:
        v = args["vm"]
        need(is_int(v) and 0 <= v < self.cfg["vms"], f"no VM {v}")
        return self.vms[v]

    # -- host -----------------------------------------------------------------
    def host_set_target(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        need(is_int(a["pages"]) and 0 <= a["pages"] <= self.cfg["guest_pages"], "bad target")
        need(a["pages"] != vm.target, "target unchanged")
        vm.target = a["pages"]

    def units(self, hp: Any) -> set[int]:
        u = self.cfg["host_page_units"]
        need(is_int(hp) and 0 <= hp < self.cfg["machine_pages"] // u, f"no host page {hp}")
        return set(range(hp * u, (hp + 1) * u))

    def host_take_page(self, a: dict[str, Any]) -> None:
        units = self.units(a["host_page"])
        need(units <= self.free, "host page not entirely free")
        self.free -= units
        self.in_use |= units

    def host_return_page(self, a: dict[str, Any]) -> None:
        units = self.units(a["host_page"])
        need(units <= self.in_use, "host page not in host use")
        self.in_use -= units
        self.free |= units

    # -- VMM ------------------------------------------------------------------
    def back(self, vm: Vm, ppn: int) -> int:
        """Back a guest page on access (the lowest free machine page; with host pages
        of several units, the lowest in a host page that backs no other VM's page); a
        ballooned page the guest touches leaves the balloon."""
        if vm.p2m[ppn] != UNBACKED:
            return vm.p2m[ppn]
        u = self.cfg["host_page_units"]
        foreign = {m // u for other in self.vms if other is not vm for m in other.p2m
                   if m != UNBACKED} if u > 1 else set()
        own = [m for m in self.free if m // u not in foreign]
        need(bool(own), "no free machine page")
        mpn = min(own)
        self.free.discard(mpn)
        self.content[mpn] = 0
        vm.p2m[ppn] = mpn
        vm.ballooned.discard(ppn)
        return mpn

    def vmm_back_page(self, a: dict[str, Any]) -> None:
        vm, ppn = self.vm(a), a["ppn"]
        need(is_int(ppn) and 0 <= ppn < self.cfg["guest_pages"], f"no PPN {ppn}")
        need(vm.p2m[ppn] == UNBACKED, "the page is already backed")
        need(ppn not in vm.ballooned, "the page is in the balloon")
        self.back(vm, ppn)

    def vmm_reclaim(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        refuse = a["refuse"]
        need(bool(vm.inflate_queue), "nothing reported for inflation")
        need(isinstance(refuse, list) and all(p in vm.inflate_queue for p in refuse),
             "can only refuse reported pages")
        valid = self.valid_reports(vm)
        need(self.cfg["refusal"] or all(p in valid for p in refuse),
             "refusal switched off: only pages beyond the host's request can be refused")
        accepted = set(valid) - set(refuse)
        need(len(accepted) <= self.room(vm), "more pages than the host asked for")
        need(self.cfg["refusal"] or len(accepted) == min(len(valid), self.room(vm)),
             "refusal switched off: every valid page the host asked for is accepted")
        refused = set(vm.inflate_queue) - accepted
        for p in sorted(accepted):
            mpn = vm.p2m[p]
            if mpn != UNBACKED:
                vm.p2m[p] = UNBACKED
                self.content[mpn] = 0
                self.free.add(mpn)
        vm.ballooned |= accepted
        vm.acked_inflate |= accepted
        vm.acked_refused |= refused - accepted
        vm.inflate_queue = []

    def vmm_release(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        need(bool(vm.deflate_queue), "nothing reported for deflation")
        reported = {p for p in vm.deflate_queue if 0 <= p < self.cfg["guest_pages"]}
        vm.ballooned -= reported
        vm.acked_deflate |= reported
        vm.deflate_queue = []

    # -- guest OS -------------------------------------------------------------
    def access(self, vm: Vm, vpn: Any) -> int:
        need(is_int(vpn) and 0 <= vpn < self.cfg["guest_data_pages"], f"no VPN {vpn}")
        if vpn in vm.use:
            vm.lru = [x for x in vm.lru if x != vpn] + [vpn]
            return vm.use.index(vpn)
        need(FREE in vm.use, "guest has no free page")
        ppn = vm.use.index(FREE)
        token = vm.disk.pop(vpn, 0)
        vm.use[ppn] = vpn
        vm.lru.append(vpn)
        self.content[self.back(vm, ppn)] = token
        return ppn

    def guest_read(self, a: dict[str, Any]) -> None:
        self.access(self.vm(a), a["vpn"])

    def guest_write(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        need(is_int(a["token"]) and 1 <= a["token"] <= self.cfg["tokens"], "bad token")
        ppn = self.access(vm, a["vpn"])
        self.content[self.back(vm, ppn)] = a["token"]

    def guest_evict(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        vpn = a["vpn"]
        need(vpn in vm.lru, "page not resident")
        need(vm.lru[0] == vpn, "LRU evicts its oldest page")
        need(len(vm.disk) < self.cfg["guest_disk_slots"], "guest disk full")
        ppn = vm.use.index(vpn)
        vm.disk[vpn] = self.content[self.back(vm, ppn)]
        vm.use[ppn] = FREE
        vm.lru.remove(vpn)

    def guest_reset(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        vm.fresh_guest(self.cfg)
        vm.ballooned = set()
        vm.inflate_queue, vm.deflate_queue = [], []
        vm.acked_inflate, vm.acked_refused, vm.acked_deflate = set(), set(), set()

    # -- balloon driver -------------------------------------------------------
    def balloon_poll(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        need(vm.driver_target != vm.target, "target already known")
        vm.driver_target = vm.target

    def balloon_inflate(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        ppns = a["ppns"]
        need(isinstance(ppns, list) and len(ppns) >= 1, "nothing to inflate")
        held = len(vm.balloon) + len(vm.inflate_queue) + len(vm.acked_inflate)
        need(len(ppns) <= max(0, min(self.cfg["batch"], vm.driver_target - held)),
             "more pages than the target or one report allow")
        # A page the guest got back before the VMM processed its deflate report
        # waits for that report before the balloon may take it again.
        free = [p for p, u in enumerate(vm.use) if u == FREE and p not in vm.deflate_queue]
        need(len(ppns) <= max(0, len(free) - self.cfg["kernel_reserve"]),
             "the guest cannot spare that many pages")
        need(self.allocator_allows(free, ppns), "not the pages the allocator hands out")
        for p in ppns:
            vm.use[p] = BALLOON
        vm.inflate_queue = sorted(vm.inflate_queue + ppns)

    def balloon_deflate(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        ppns = a["ppns"]
        need(isinstance(ppns, list) and len(ppns) >= 1, "nothing to deflate")
        need(len(set(ppns)) == len(ppns) and set(ppns) <= vm.balloon,
             "only acknowledged balloon pages deflate")
        excess = len(vm.balloon) - vm.driver_target
        pressure = FREE not in vm.use and (len(vm.disk) >= self.cfg["guest_disk_slots"]
                                           or not vm.lru)
        if self.cfg["deflate_on_oom"] and pressure:
            excess = max(excess, self.cfg["batch"])
        need(len(ppns) <= max(0, min(self.cfg["batch"], excess, len(vm.balloon))),
             "balloon not above target and guest not out of memory")
        if not self.cfg["must_tell_host"]:
            for p in ppns:
                vm.use[p] = FREE
        vm.balloon -= set(ppns)
        vm.deflate_queue = sorted(vm.deflate_queue + ppns)

    def balloon_complete(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        need(bool(vm.acked_inflate or vm.acked_refused or vm.acked_deflate),
             "no acknowledgement waiting")
        mine = {p for p, u in enumerate(vm.use) if u == BALLOON}
        vm.balloon |= vm.acked_inflate & mine
        vm.refused |= (vm.acked_refused & mine) - vm.balloon
        if self.cfg["must_tell_host"]:
            for p in (vm.acked_deflate & mine) - vm.balloon:
                vm.use[p] = FREE
        vm.actual = len(vm.balloon)
        vm.acked_inflate, vm.acked_refused, vm.acked_deflate = set(), set(), set()

    def balloon_free_refused(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        need(bool(vm.refused), "no refused page held")
        for p in vm.refused:
            vm.use[p] = FREE
        vm.refused = set()

    # -- what it reports --------------------------------------------------------
    def observe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for v, vm in enumerate(self.vms):
            k = f"vms/{v}/"
            out.update({
                k + "target": vm.target, k + "ballooned": sorted(vm.ballooned),
                k + "inflate_queue": list(vm.inflate_queue),
                k + "deflate_queue": list(vm.deflate_queue),
                k + "module/target": vm.driver_target, k + "module/actual": vm.actual,
                k + "module/balloon": sorted(vm.balloon),
                k + "module/refused": sorted(vm.refused),
                k + "guest/free_count": vm.use.count(FREE),
                k + "guest/balloon_count": vm.use.count(BALLOON),
                k + "backed_count": sum(1 for m in vm.p2m if m != UNBACKED)})
        out["host/free_count"] = len(self.free)
        out["host/in_use_count"] = len(self.in_use)
        return out


class ChoosingSystem(BalloonSystem):
    """Protocol 2: the same system, whose actors choose their own steps and report them."""

    def __init__(self, cfg: dict[str, Any], alloc: str = "lowest", accept: str = "sorted",
                 eager: bool = False, seed: int = 0) -> None:
        super().__init__(cfg)
        self.alloc, self.accept, self.eager = alloc, accept, eager
        self.rng = random.Random(seed)
        self.arrival: dict[int, list[int]] = {v: [] for v in range(cfg["vms"])}
        self.requests = 0
        self.reclaimed: set[int] = set()  # MPNs a balloon gave back, not reused since
        self.also_done: list[tuple[str, dict[str, Any]]] = []  # steps taken inside a step

    def tick(self) -> None:
        """One more request handled (a VM exit, for the VMM's periodic work)."""
        self.requests += 1

    def allocator_allows(self, free: list[int], ppns: list[int]) -> bool:
        # A step Ballast asks for (a probe) may name any free pages.
        return len(set(ppns)) == len(ppns) and set(ppns) <= set(free)

    def order(self, pages: list[int]) -> list[int]:
        """The order this guest's allocator hands pages out in (and takes them back)."""
        if self.alloc == "highest":
            return sorted(pages, reverse=True)
        if self.alloc == "random":
            out = sorted(pages)
            self.rng.shuffle(out)
            return out
        return sorted(pages)

    # -- the actors' own next steps ------------------------------------------
    def next_step(self, actor: str, v: int) -> tuple[str, dict[str, Any]] | None:
        vm = self.vms[v]
        if actor == "module":
            if vm.driver_target != vm.target:
                return "balloon_poll", {"vm": v}
            if vm.acked_inflate or vm.acked_refused or vm.acked_deflate:
                return "balloon_complete", {"vm": v}
            if vm.refused:
                return "balloon_free_refused", {"vm": v}
            k = self.deflate_limit(vm)
            if k > 0:
                return "balloon_deflate", {"vm": v, "ppns": self.order(list(vm.balloon))[:k]}
            held = len(vm.balloon) + len(vm.inflate_queue) + len(vm.acked_inflate)
            free = [p for p, u in enumerate(vm.use) if u == FREE and p not in vm.deflate_queue]
            k = min(self.cfg["batch"], vm.driver_target - held,
                    len(free) - self.cfg["kernel_reserve"])
            if k > 0:
                return "balloon_inflate", {"vm": v, "ppns": self.order(free)[:k]}
            return None
        if actor == "vmm":
            if vm.inflate_queue:
                return "vmm_reclaim", {"vm": v, "refuse": self.room_refusals(vm)}
            if vm.deflate_queue:
                return "vmm_release", {"vm": v}
            return None
        if actor == "guest" and FREE not in vm.use and vm.lru \
                and len(vm.disk) < self.cfg["guest_disk_slots"]:
            return "guest_evict", {"vm": v, "vpn": vm.lru[0]}
        return None

    def deflate_limit(self, vm: Vm) -> int:
        excess = len(vm.balloon) - vm.driver_target
        pressure = FREE not in vm.use and (len(vm.disk) >= self.cfg["guest_disk_slots"]
                                           or not vm.lru)
        if self.cfg["deflate_on_oom"] and pressure:
            excess = max(excess, self.cfg["batch"])
        return max(0, min(self.cfg["batch"], excess, len(vm.balloon)))

    def room_refusals(self, vm: Vm) -> list[int]:
        """Arrival order: the valid pages beyond the room left, refused by this device's
        choice; sorted order keeps the lowest."""
        if self.accept != "arrival":
            return super().room_refusals(vm)
        valid = set(self.valid_reports(vm))
        arrived: list[int] = []
        for p in self.arrival[self.vms.index(vm)]:
            if p in valid and p not in arrived:
                arrived.append(p)
        return sorted(arrived[self.room(vm):])

    def balloon_inflate(self, a: dict[str, Any]) -> None:
        super().balloon_inflate(a)
        self.arrival[a["vm"]] += list(a["ppns"])

    def vmm_reclaim(self, a: dict[str, Any]) -> None:
        before = set(self.free)
        super().vmm_reclaim(a)
        self.arrival[a["vm"]] = []
        self.reclaimed |= self.free - before

    def back(self, vm: Vm, ppn: int) -> int:
        mpn = super().back(vm, ppn)
        self.reclaimed.discard(mpn)
        return mpn

    def vmm_release(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        released = [p for p in vm.deflate_queue if p in vm.ballooned]
        super().vmm_release(a)
        if self.eager:  # Xen-style populate: back the pages again at once, while MPNs last
            for p in released:
                if self.free:
                    self.vmm_back_page({"vm": a["vm"], "ppn": p})
                    self.also_done.append(("vmm_back_page", {"vm": a["vm"], "ppn": p}))

    def guest_reset(self, a: dict[str, Any]) -> None:
        super().guest_reset(a)
        self.arrival[a["vm"]] = []


class NoScrub(ChoosingSystem):
    """Seeded bug: a reclaimed machine page goes back to the host with the guest's data."""

    def vmm_reclaim(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        kept = {vm.p2m[p]: self.content[vm.p2m[p]] for p in vm.inflate_queue
                if 0 <= p < len(vm.p2m) and vm.p2m[p] != UNBACKED}
        super().vmm_reclaim(a)
        for mpn, token in kept.items():
            if mpn in self.free:
                self.content[mpn] = token  # the bug: never scrubbed


class AllocInUse(ChoosingSystem):
    """Seeded bug: the balloon's allocator takes "any page not in the balloon" instead of
    "any free page", highest first, so it can hand over a page a process is using."""

    own_choice = False

    def next_step(self, actor: str, v: int) -> tuple[str, dict[str, Any]] | None:
        step = super().next_step(actor, v)
        vm = self.vms[v]
        if step is None or step[0] != "balloon_inflate":
            return step
        k = len(step[1]["ppns"])
        candidates = [p for p, u in enumerate(vm.use) if u != BALLOON
                      and p not in vm.deflate_queue]
        self.own_choice = True  # its own allocator does not check itself
        return "balloon_inflate", {"vm": v, "ppns": sorted(candidates, reverse=True)[:k]}

    def balloon_inflate(self, a: dict[str, Any]) -> None:
        if not self.own_choice:
            super().balloon_inflate(a)
            return
        self.own_choice = False
        vm = self.vm(a)
        for p in a["ppns"]:
            vm.use[p] = BALLOON
        vm.inflate_queue = sorted(vm.inflate_queue + a["ppns"])
        self.arrival[a["vm"]] += list(a["ppns"])


class PeriodicLeak(ChoosingSystem):
    """Seeded bug: every 120th request since boot the VMM's periodic rebalancing runs,
    and it loses a machine page that a balloon gave back (it leaves the free pool
    and is never seen again). No run of fewer than 120 commands can show it."""

    PERIOD = 120

    def tick(self) -> None:
        self.requests += 1
        given_back = sorted(self.free & self.reclaimed)
        if self.requests % self.PERIOD == 0 and given_back:
            self.free.discard(given_back[0])


class DeflateIgnoresTarget(ChoosingSystem):
    """Seeded bug: a deflate the driver asks for is carried out even when the balloon is
    not above its target (the driver itself never asks for one)."""

    def deflate_limit_for_requests(self) -> None:
        pass

    def balloon_deflate(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        target, vm.driver_target = vm.driver_target, 0
        try:
            super().balloon_deflate(a)
        finally:
            vm.driver_target = target


class ReleaseKeepsBallooned(BalloonSystem):
    """Seeded bug: the VMM acknowledges a deflate but keeps the pages ballooned."""

    def vmm_release(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        keep = set(vm.ballooned)
        super().vmm_release(a)
        vm.ballooned = keep


class ReclaimIgnoresTarget(BalloonSystem):
    """Seeded bug: the VMM accepts inflated pages beyond the host's current target."""

    def vmm_reclaim(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        target, vm.target = vm.target, self.cfg["guest_pages"]
        try:
            super().vmm_reclaim({**a, "refuse": []})  # the bug: takes every valid page
        finally:
            vm.target = target


BUGS = {"release-keeps-ballooned": ReleaseKeepsBallooned,
        "reclaim-ignores-target": ReclaimIgnoresTarget}
BUGS_V2 = {"no-scrub": NoScrub, "alloc-in-use": AllocInUse,
           "periodic-leak": PeriodicLeak, "deflate-ignores-target": DeflateIgnoresTarget}
OBSERVE_V2 = OBSERVE + ["vms/*/guest/tokens", "vms/*/guest/digest", "host/unscrubbed_count"]
ACTORS = {"module": ["balloon_poll", "balloon_inflate", "balloon_deflate", "balloon_complete",
                     "balloon_free_refused"],
          "vmm": ["vmm_reclaim", "vmm_release", "vmm_back_page"], "guest": ["guest_evict"]}
ACTOR_OF = {name: actor for actor, names in ACTORS.items() for name in names}


def option(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def digest(pairs: list[tuple[int, int]]) -> int:
    """FNV-1a (32 bits) over "vpn:token;" for each resident page, in VPN order."""
    h = 0x811C9DC5
    for vpn, token in sorted(pairs):
        for byte in f"{vpn}:{token};".encode("ascii"):
            h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def observe_v2(system: BalloonSystem) -> dict[str, Any]:
    """Protocol 2 adds what the guest reads back, and whether freed pages were scrubbed."""
    out = system.observe()
    for v, vm in enumerate(system.vms):
        tokens = [vm.disk.get(vpn, 0) for vpn in range(system.cfg["guest_data_pages"])]
        resident = []
        for ppn, use in enumerate(vm.use):
            if use not in (FREE, BALLOON):
                mpn = vm.p2m[ppn]
                tokens[use] = system.content[mpn] if mpn != UNBACKED else 0
                resident.append((use, tokens[use]))
        out[f"vms/{v}/guest/tokens"] = tokens
        out[f"vms/{v}/guest/digest"] = digest(resident)
    out["host/unscrubbed_count"] = sum(1 for m in system.free | system.in_use
                                       if system.content[m] != 0)
    return out


def main(argv: list[str]) -> int:
    protocol = int(option(argv, "--protocol", "1"))
    alloc, accept = option(argv, "--alloc", "lowest"), option(argv, "--accept", "sorted")
    eager = "--eager" in argv
    bugs = BUGS_V2 if protocol == 2 else BUGS
    kind: type[BalloonSystem] = ChoosingSystem if protocol == 2 else BalloonSystem
    name = "balloon_adapter.py 1.0"
    if protocol == 2:
        name = f"balloon_adapter.py 2.0 (alloc {alloc}, accept {accept}" + \
            (", eager)" if eager else ")")
    if "--bug" in argv:
        bug = argv[argv.index("--bug") + 1]
        if bug not in bugs:
            print(f"unknown bug {bug}; expected one of {', '.join(bugs)}", file=sys.stderr)
            return 2
        kind, name = bugs[bug], f"balloon_adapter.py ({bug})"
    cfg: dict[str, Any] = {}
    system: BalloonSystem | None = None

    def make() -> BalloonSystem:
        if protocol == 2:
            return kind(cfg, alloc=alloc, accept=accept, eager=eager)  # type: ignore[call-arg]
        return kind(cfg)

    def seen(s: BalloonSystem) -> dict[str, Any]:
        return observe_v2(s) if protocol == 2 else s.observe()

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        i = msg.get("id")
        if "hello" in msg:
            runs = {k: msg["hello"]["config"].get(k) for k in SIZES + SWITCHES}
            runs.update(FIXED)
            if protocol == 2 and alloc != "lowest":
                runs["guest_policy"] = "any"  # its allocator's order is its own
            if protocol == 2 and eager and "--no-declare" not in argv:
                runs["eager_backing"] = True  # its VMM backs deflated pages at once
            cfg = {**msg["hello"]["config"], **runs}
            reply({"id": i, "hello": {"protocol": protocol, "implementation": name,
                                      "config": runs, "actions": list(ACTIONS),
                                      "observe": OBSERVE_V2 if protocol == 2 else OBSERVE}})
        elif "reset" in msg:
            system = make()
            reply({"id": i, "ok": True, "observe": seen(system)})
        elif "run" in msg and protocol == 2 and system is not None:
            actor, v = msg["run"]["actor"], msg["run"]["vm"]
            assert isinstance(system, ChoosingSystem)
            step = system.next_step(actor, v)
            steps = []
            if step is not None:
                action, args = step
                trial = copy.deepcopy(system)
                try:
                    getattr(trial, action)(args)
                except Refused as exc:
                    reply({"id": i, "error": f"own step {action} refused: {exc}"})
                    continue
                system = trial
                for name, taken in [(action, args)] + system.also_done:
                    steps.append({"actor": ACTOR_OF[name], "action": name, "args": taken})
                system.also_done = []
            system.tick()
            reply({"id": i, "steps": steps, "observe": seen(system)})
        elif "bye" in msg:
            break
        elif msg.get("action") in ACTIONS and system is not None:
            args = msg.get("args", {})
            if sorted(args) != sorted(ACTIONS[msg["action"]]):
                reply({"id": i, "error": f"{msg['action']} takes {ACTIONS[msg['action']]}"})
                continue
            trial = copy.deepcopy(system)  # a refused step must change nothing
            try:
                getattr(trial, msg["action"])(args)
            except Refused as exc:
                if isinstance(system, ChoosingSystem):
                    system.tick()
                reply({"id": i, "ok": False, "reason": str(exc), "observe": seen(system)})
                continue
            system = trial
            if isinstance(system, ChoosingSystem):
                system.tick()
            reply({"id": i, "ok": True, "observe": seen(system)})
        else:
            reply({"id": i, "error": f"unknown request {line[:100]!r}"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
