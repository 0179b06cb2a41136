#!/usr/bin/env python3
"""A memory-ballooning system (host, VMM, guest, balloon driver) behind the Ballast
adapter protocol, standalone: it imports nothing from Ballast.

The same system as ``balloon_adapter.js``, for machines without Node.js, and
with seeded bugs to show what ``ballast diff`` reports::

    ballast diff --adapter "python3 examples/balloon_adapter.py" --preset virtio
    ballast diff --adapter "python3 examples/balloon_adapter.py --bug release-keeps-ballooned"

Runs configurations with a kernel balloon driver, an LRU guest, and no page
sharing, host swapping, processors or hostile guests. Logs go to stderr.
"""

from __future__ import annotations

import copy
import json
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
        """Back a guest page on access (the lowest free machine page); a ballooned
        page the guest touches leaves the balloon."""
        if vm.p2m[ppn] != UNBACKED:
            return vm.p2m[ppn]
        need(bool(self.free), "no free machine page")
        mpn = min(self.free)
        self.free.discard(mpn)
        self.content[mpn] = 0
        vm.p2m[ppn] = mpn
        vm.ballooned.discard(ppn)
        return mpn

    def vmm_reclaim(self, a: dict[str, Any]) -> None:
        vm = self.vm(a)
        refuse = a["refuse"]
        need(bool(vm.inflate_queue), "nothing reported for inflation")
        need(isinstance(refuse, list) and all(p in vm.inflate_queue for p in refuse),
             "can only refuse reported pages")
        need(self.cfg["refusal"] or not refuse, "refusal switched off")
        room = vm.target - len(vm.ballooned)
        accepted: set[int] = set()
        refused: set[int] = set()
        for p in vm.inflate_queue:
            ok = (0 <= p < self.cfg["guest_pages"] and p not in vm.ballooned
                  and p not in accepted and len(accepted) < room and p not in refuse)
            (accepted if ok else refused).add(p)
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
        free = [p for p, u in enumerate(vm.use) if u == FREE]
        need(len(ppns) <= max(0, len(free) - self.cfg["kernel_reserve"]),
             "the guest cannot spare that many pages")
        need(ppns == free[:len(ppns)], "not the pages the allocator hands out")
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
            super().vmm_reclaim(a)
        finally:
            vm.target = target


BUGS = {"release-keeps-ballooned": ReleaseKeepsBallooned,
        "reclaim-ignores-target": ReclaimIgnoresTarget}


def main(argv: list[str]) -> int:
    kind: type[BalloonSystem] = BalloonSystem
    name = "balloon_adapter.py 1.0"
    if "--bug" in argv:
        bug = argv[argv.index("--bug") + 1]
        if bug not in BUGS:
            print(f"unknown bug {bug}; expected one of {', '.join(BUGS)}", file=sys.stderr)
            return 2
        kind, name = BUGS[bug], f"balloon_adapter.py ({bug})"
    cfg: dict[str, Any] = {}
    system: BalloonSystem | None = None

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
            cfg = {**msg["hello"]["config"], **runs}
            reply({"id": i, "hello": {"protocol": 1, "implementation": name, "config": runs,
                                      "actions": list(ACTIONS), "observe": OBSERVE}})
        elif "reset" in msg:
            system = kind(cfg)
            reply({"id": i, "ok": True, "observe": system.observe()})
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
                reply({"id": i, "ok": False, "reason": str(exc), "observe": system.observe()})
                continue
            system = trial
            reply({"id": i, "ok": True, "observe": system.observe()})
        else:
            reply({"id": i, "error": f"unknown request {line[:100]!r}"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
