#!/usr/bin/env node
// The balloon system of balloon_adapter.js with one seeded bug, to show that
// `ballast diff` catches it with a short counterexample.
//
//   ballast diff --adapter "node examples/buggy_balloon_adapter.js" --preset virtio
//
// --bug release-keeps-ballooned (default): the VMM acknowledges a deflate
//     report but forgets to take the pages out of its ballooned set.
// --bug reclaim-ignores-target: the VMM accepts every reported page, even
//     beyond the balloon size the host currently asks for.
//
// With --protocol 2 (and balloon_adapter.js's --alloc, --accept, --eager), one
// bug per capability of protocol 2, as balloon_adapter.py has them:
// --bug no-scrub: a reclaimed machine page goes back to the host with the
//     guest's data (seen only through page contents).
// --bug alloc-in-use: the balloon's allocator takes any page not in the balloon,
//     highest first, even one a process uses (use with --alloc highest; seen only
//     through the implementation's own page choice).
// --bug periodic-leak: every 120th request the VMM's periodic rebalancing loses
//     a machine page a balloon gave back (needs more than 120 commands).
// --bug deflate-ignores-target: a deflate asked for is carried out even when the
//     balloon is not above its target (seen only by a near-miss probe).
"use strict";

const {BALLOON, BalloonSystem, ChoosingSystem, UNBACKED, option, serve, sortedInts} =
  require("./balloon_adapter.js");

class ReleaseKeepsBallooned extends BalloonSystem {
  vmm_release(args) {
    const vm = this.vm(args);
    const keep = new Set(vm.ballooned);
    super.vmm_release(args);
    vm.ballooned = keep;  // the bug: the released pages stay "ballooned"
  }
}

class ReclaimIgnoresTarget extends BalloonSystem {
  vmm_reclaim(args) {
    const vm = this.vm(args);
    const target = vm.target;
    vm.target = this.cfg.guest_pages;  // the bug: room is computed as if no limit applied
    try {
      super.vmm_reclaim({...args, refuse: []});  // and it takes every valid page
    } finally {
      vm.target = target;
    }
  }
}

class NoScrub extends ChoosingSystem {
  vmm_reclaim(args) {
    const vm = this.vm(args);
    const kept = new Map();
    for (const p of vm.inflateQueue) {
      if (Number.isInteger(p) && p >= 0 && p < vm.p2m.length && vm.p2m[p] !== UNBACKED) {
        kept.set(vm.p2m[p], this.host.content[vm.p2m[p]]);
      }
    }
    super.vmm_reclaim(args);
    for (const [mpn, token] of kept) {
      if (this.host.free.has(mpn)) this.host.content[mpn] = token;  // the bug: never scrubbed
    }
  }
}

class AllocInUse extends ChoosingSystem {
  clone() {
    const copy = super.clone();
    copy.ownChoice = this.ownChoice;
    return copy;
  }

  nextStep(actor, v) {
    const step = super.nextStep(actor, v);
    if (!step || step[0] !== "balloon_inflate") return step;
    const vm = this.vms[v];
    const k = step[1].ppns.length;
    // The bug: "any page not in the balloon" instead of "any free page".
    const candidates = [];
    vm.guest.use.forEach((u, p) => {
      if (u !== BALLOON && !vm.deflateQueue.includes(p)) candidates.push(p);
    });
    this.ownChoice = true;  // its own allocator does not check itself
    return ["balloon_inflate", {vm: v, ppns: candidates.sort((a, b) => b - a).slice(0, k)}];
  }

  balloon_inflate(args) {
    if (!this.ownChoice) {
      super.balloon_inflate(args);
      return;
    }
    this.ownChoice = false;
    const vm = this.vm(args);
    for (const p of args.ppns) vm.guest.use[p] = BALLOON;
    vm.inflateQueue = sortedInts(vm.inflateQueue.concat(args.ppns));
    this.arrival[args.vm].push(...args.ppns);
  }
}

class PeriodicLeak extends ChoosingSystem {
  tick() {
    this.requests++;
    const givenBack = sortedInts([...this.host.free].filter((m) => this.reclaimed.has(m)));
    if (this.requests % 120 === 0 && givenBack.length > 0) {
      this.host.free.delete(givenBack[0]);  // the bug: lost, never seen again
    }
  }
}

class DeflateIgnoresTarget extends ChoosingSystem {
  balloon_deflate(args) {
    const vm = this.vm(args);
    const target = vm.driver.target;
    vm.driver.target = 0;  // the bug: the excess over the target is not checked
    try {
      super.balloon_deflate(args);
    } finally {
      vm.driver.target = target;
    }
  }
}

const BUGS = {
  "release-keeps-ballooned": ReleaseKeepsBallooned,
  "reclaim-ignores-target": ReclaimIgnoresTarget,
};
const BUGS_V2 = {
  "no-scrub": NoScrub,
  "alloc-in-use": AllocInUse,
  "periodic-leak": PeriodicLeak,
  "deflate-ignores-target": DeflateIgnoresTarget,
};

const v2 = option("--protocol", "1") === "2";
const bugs = v2 ? BUGS_V2 : BUGS;
const bug = option("--bug", v2 ? "no-scrub" : "release-keeps-ballooned");
const Kind = bugs[bug];
if (!Kind) {
  process.stderr.write(`unknown bug ${bug}; expected one of ${Object.keys(bugs).join(", ")}\n`);
  process.exit(2);
}
if (v2) {
  const opts = {alloc: option("--alloc", "lowest"), accept: option("--accept", "sorted"),
    eager: process.argv.includes("--eager")};
  // ChoosingSystem.clone() keeps the subclass, so the bug survives every step.
  serve((cfg) => new Kind(cfg, opts), `buggy_balloon_adapter.js 2.0 (${bug})`, opts);
} else {
  // clone() must keep the subclass, so that the bug survives every step.
  Kind.prototype.clone = function clone() {
    const copy = BalloonSystem.prototype.clone.call(this);
    Object.setPrototypeOf(copy, Kind.prototype);
    return copy;
  };
  serve((cfg) => new Kind(cfg), `buggy_balloon_adapter.js (${bug})`);
}
