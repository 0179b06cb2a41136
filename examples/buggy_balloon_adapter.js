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
"use strict";

const {BalloonSystem, serve} = require("./balloon_adapter.js");

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

const BUGS = {
  "release-keeps-ballooned": ReleaseKeepsBallooned,
  "reclaim-ignores-target": ReclaimIgnoresTarget,
};

const at = process.argv.indexOf("--bug");
const bug = at >= 0 ? process.argv[at + 1] : "release-keeps-ballooned";
const Kind = BUGS[bug];
if (!Kind) {
  process.stderr.write(`unknown bug ${bug}; expected one of ${Object.keys(BUGS).join(", ")}\n`);
  process.exit(2);
}
// clone() must keep the subclass, so that the bug survives every step.
Kind.prototype.clone = function clone() {
  const copy = BalloonSystem.prototype.clone.call(this);
  Object.setPrototypeOf(copy, Kind.prototype);
  return copy;
};
serve((cfg) => new Kind(cfg), `buggy_balloon_adapter.js (${bug})`);
