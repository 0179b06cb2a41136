#!/usr/bin/env node
// A memory-ballooning system (host, VMM, guest, balloon driver) written from
// the protocol's description, not from Ballast's model code, and driven over
// the Ballast adapter protocol: JSON Lines on stdin/stdout
// (see docs/adapter-protocol.md).
//
//   ballast diff --adapter "node examples/balloon_adapter.js" --preset virtio
//
// With --protocol 2 the system makes its own choices and reports them (see
// docs/adapter-protocol.md): --alloc lowest|highest|random is the order its
// guest's allocator hands pages to the balloon (and takes them back), --accept
// sorted|arrival the order its device accepts reported pages in when there is
// not room for all, --eager backs a deflated page again at once (reported as
// vmm_back_page steps after the release; --no-declare leaves eager_backing out of
// its hello, so Ballast's configuration forbids those steps).
//
//   ballast diff --adapter "node examples/balloon_adapter.js --protocol 2 --alloc random"
//
// Runs configurations with a kernel balloon driver, an LRU guest, and no page
// sharing, host swapping, processors or hostile guests (presets core, virtio,
// hugepages). Logs go to stderr; stdout carries protocol replies only.
"use strict";

const readline = require("readline");

const FREE = "free";
const BALLOON = "balloon";
const UNBACKED = -1;

class Refused extends Error {}

function refuse(reason) {
  throw new Refused(reason);
}

function need(condition, reason) {
  if (!condition) refuse(reason);
}

function isInt(x) {
  return Number.isInteger(x);
}

function sortedInts(iterable) {
  return Array.from(iterable).sort((a, b) => a - b);
}

// The configuration keys this implementation understands, and the fixed
// values of the features it does not implement.
const SIZES = ["vms", "guest_pages", "guest_data_pages", "guest_disk_slots", "machine_pages",
  "host_page_units", "tokens", "batch", "kernel_reserve"];
const SWITCHES = ["must_tell_host", "deflate_on_oom", "refusal", "reset", "host_use"];
const FIXED = {module: "driver", guest_policy: "lru", sharing: false, host_swap: false,
  processors: false, hostile_vms: []};

class BalloonSystem {
  constructor(cfg) {
    this.cfg = cfg;
    const machine = cfg.machine_pages;
    this.host = {free: new Set(Array.from({length: machine}, (_, i) => i)), inUse: new Set(),
      content: new Array(machine).fill(0)};
    this.vms = [];
    for (let v = 0; v < cfg.vms; v++) {
      this.vms.push({
        target: 0,                      // VMM: what the host asked for
        ballooned: new Set(),           // VMM: PPNs accepted into the balloon
        p2m: new Array(cfg.guest_pages).fill(UNBACKED),
        inflateQueue: [],               // guest -> VMM reports
        deflateQueue: [],
        ackedInflate: new Set(),        // VMM -> guest acknowledgements
        ackedRefused: new Set(),
        ackedDeflate: new Set(),
        guest: this.freshGuest(),
        driver: {target: 0, balloon: new Set(), refused: new Set(), actual: 0},
      });
    }
  }

  freshGuest() {
    return {use: new Array(this.cfg.guest_pages).fill(FREE), lru: [], disk: new Map()};
  }

  clone() {
    const copy = Object.create(BalloonSystem.prototype);
    copy.cfg = this.cfg;
    copy.host = structuredClone(this.host);
    copy.vms = structuredClone(this.vms);
    return copy;
  }

  // Protocol 1: Ballast names the pages, and they must be the lowest free ones.
  // Protocol 1: Ballast names the pages (the model's allocator chose them, any free
  // pages): this guest hands out exactly those, each once.
  allocatorAllows(free, ppns) {
    return new Set(ppns).size === ppns.length && ppns.every((p) => free.includes(p));
  }

  // Reported pages this device could accept: in range, not ballooned, each once.
  validReports(vm) {
    return sortedInts(new Set(vm.inflateQueue.filter((p) => isInt(p) && p >= 0
      && p < this.cfg.guest_pages && !vm.ballooned.has(p))));
  }

  room(vm) {
    return Math.max(0, vm.target - vm.ballooned.size);
  }

  // The valid pages this device refuses because the host asks for fewer: it keeps the
  // lowest ones (a vmm_reclaim step names every valid page it refuses).
  roomRefusals(vm) {
    return this.validReports(vm).slice(this.room(vm));
  }

  vm(args) {
    need(isInt(args.vm) && args.vm >= 0 && args.vm < this.cfg.vms, `no VM ${args.vm}`);
    return this.vms[args.vm];
  }

  // -- host -----------------------------------------------------------------
  host_set_target(args) {
    const vm = this.vm(args);
    need(isInt(args.pages) && args.pages >= 0 && args.pages <= this.cfg.guest_pages,
      "target out of range");
    need(args.pages !== vm.target, "target unchanged");
    vm.target = args.pages;
  }

  hostPageUnits(hp) {
    const u = this.cfg.host_page_units;
    return Array.from({length: u}, (_, i) => hp * u + i);
  }

  checkHostPage(hp) {
    need(isInt(hp) && hp >= 0 && hp < this.cfg.machine_pages / this.cfg.host_page_units,
      `no host page ${hp}`);
  }

  host_take_page(args) {
    this.checkHostPage(args.host_page);
    const units = this.hostPageUnits(args.host_page);
    need(units.every((m) => this.host.free.has(m)), "host page not entirely free");
    for (const m of units) {
      this.host.free.delete(m);
      this.host.inUse.add(m);
    }
  }

  host_return_page(args) {
    this.checkHostPage(args.host_page);
    const units = this.hostPageUnits(args.host_page);
    need(units.every((m) => this.host.inUse.has(m)), "host page not in host use");
    for (const m of units) {
      this.host.inUse.delete(m);
      this.host.free.add(m);
    }
  }

  // -- VMM ------------------------------------------------------------------
  // Back a guest page on access: the lowest free machine page, zero-filled; with
  // host pages of several units and several VMs, the lowest one in a host page that
  // backs no other VM's page (a host page backs the pages of one VM at most).
  // A ballooned page touched by the guest leaves the balloon.
  backPage(vm, ppn) {
    if (vm.p2m[ppn] !== UNBACKED) return vm.p2m[ppn];
    const u = this.cfg.host_page_units;
    const foreign = new Set();
    if (u > 1) {
      for (const other of this.vms) {
        if (other === vm) continue;
        for (const m of other.p2m) if (m !== UNBACKED) foreign.add(Math.floor(m / u));
      }
    }
    const own = [...this.host.free].filter((m) => !foreign.has(Math.floor(m / u)));
    need(own.length > 0, "no free machine page");
    const mpn = Math.min(...own);
    this.host.free.delete(mpn);
    this.host.content[mpn] = 0;
    vm.p2m[ppn] = mpn;
    vm.ballooned.delete(ppn);
    return mpn;
  }

  unbackPage(vm, ppn) {
    const mpn = vm.p2m[ppn];
    if (mpn === UNBACKED) return;
    vm.p2m[ppn] = UNBACKED;
    this.host.content[mpn] = 0;
    this.host.free.add(mpn);
  }

  vmm_reclaim(args) {
    const vm = this.vm(args);
    need(vm.inflateQueue.length > 0, "nothing reported for inflation");
    need(Array.isArray(args.refuse) && args.refuse.every((p) => vm.inflateQueue.includes(p)),
      "can only refuse reported pages");
    const valid = this.validReports(vm);
    need(this.cfg.refusal || args.refuse.every((p) => valid.includes(p)),
      "refusal switched off: only pages beyond the host's request can be refused");
    const accepted = new Set(valid.filter((p) => !args.refuse.includes(p)));
    need(accepted.size <= this.room(vm), "more pages than the host asked for");
    need(this.cfg.refusal || accepted.size === Math.min(valid.length, this.room(vm)),
      "refusal switched off: every valid page the host asked for is accepted");
    const refused = new Set(vm.inflateQueue.filter((p) => !accepted.has(p)));
    for (const ppn of sortedInts(accepted)) this.unbackPage(vm, ppn);
    for (const ppn of accepted) {
      vm.ballooned.add(ppn);
      vm.ackedInflate.add(ppn);
    }
    for (const ppn of refused) if (!accepted.has(ppn)) vm.ackedRefused.add(ppn);
    vm.inflateQueue = [];
  }

  vmm_back_page(args) {
    const vm = this.vm(args);
    const ppn = args.ppn;
    need(isInt(ppn) && ppn >= 0 && ppn < this.cfg.guest_pages, `no PPN ${ppn}`);
    need(vm.p2m[ppn] === UNBACKED, "the page is already backed");
    need(!vm.ballooned.has(ppn), "the page is in the balloon");
    this.backPage(vm, ppn);
  }

  vmm_release(args) {
    const vm = this.vm(args);
    need(vm.deflateQueue.length > 0, "nothing reported for deflation");
    for (const ppn of vm.deflateQueue) {
      if (ppn < 0 || ppn >= this.cfg.guest_pages) continue;
      vm.ballooned.delete(ppn);
      vm.ackedDeflate.add(ppn);
    }
    vm.deflateQueue = [];
  }

  // -- guest OS ---------------------------------------------------------------
  // Make a process page resident: already there (touch it in the LRU order),
  // or in the lowest free guest page, read back from the guest's disk.
  access(vm, vpn) {
    need(isInt(vpn) && vpn >= 0 && vpn < this.cfg.guest_data_pages, `no VPN ${vpn}`);
    const g = vm.guest;
    const resident = g.use.indexOf(vpn);
    if (resident >= 0) {
      g.lru = g.lru.filter((x) => x !== vpn).concat([vpn]);
      return resident;
    }
    const ppn = g.use.indexOf(FREE);
    need(ppn >= 0, "guest has no free page");
    const token = g.disk.has(vpn) ? g.disk.get(vpn) : 0;
    g.disk.delete(vpn);
    g.use[ppn] = vpn;
    g.lru.push(vpn);
    const mpn = this.backPage(vm, ppn);
    this.host.content[mpn] = token;
    return ppn;
  }

  guest_read(args) {
    const vm = this.vm(args);
    this.access(vm, args.vpn);
  }

  guest_write(args) {
    const vm = this.vm(args);
    need(isInt(args.token) && args.token >= 1 && args.token <= this.cfg.tokens, "bad token");
    const ppn = this.access(vm, args.vpn);
    const mpn = this.backPage(vm, ppn);
    this.host.content[mpn] = args.token;
  }

  guest_evict(args) {
    const vm = this.vm(args);
    const g = vm.guest;
    need(g.lru.includes(args.vpn), "page not resident");
    need(g.lru[0] === args.vpn, "LRU evicts its oldest page");
    need(g.disk.size < this.cfg.guest_disk_slots, "guest disk full");
    const ppn = g.use.indexOf(args.vpn);
    const mpn = this.backPage(vm, ppn);
    g.disk.set(args.vpn, this.host.content[mpn]);
    g.use[ppn] = FREE;
    g.lru = g.lru.filter((x) => x !== args.vpn);
  }

  guest_reset(args) {
    const vm = this.vm(args);
    vm.guest = this.freshGuest();
    vm.driver = {target: 0, balloon: new Set(), refused: new Set(), actual: 0};
    vm.ballooned = new Set();
    vm.inflateQueue = [];
    vm.deflateQueue = [];
    vm.ackedInflate = new Set();
    vm.ackedRefused = new Set();
    vm.ackedDeflate = new Set();
  }

  // -- balloon driver -----------------------------------------------------------
  balloon_poll(args) {
    const vm = this.vm(args);
    need(vm.driver.target !== vm.target, "target already known");
    vm.driver.target = vm.target;
  }

  // Free pages the balloon may take: a page the guest got back before the VMM
  // processed its deflate report waits for that report first.
  freePages(vm) {
    const out = [];
    vm.guest.use.forEach((u, p) => { if (u === FREE && !vm.deflateQueue.includes(p)) out.push(p); });
    return out;
  }

  balloon_inflate(args) {
    const vm = this.vm(args);
    const ppns = args.ppns;
    need(Array.isArray(ppns) && ppns.length >= 1, "nothing to inflate");
    const held = vm.driver.balloon.size + vm.inflateQueue.length + vm.ackedInflate.size;
    const owed = Math.max(0, Math.min(this.cfg.batch, vm.driver.target - held));
    need(ppns.length <= owed, "more pages than the target or one report allow");
    const free = this.freePages(vm);
    need(ppns.length <= Math.max(0, free.length - this.cfg.kernel_reserve),
      "the guest cannot spare that many pages");
    need(this.allocatorAllows(free, ppns), "not the pages the allocator hands out");
    for (const p of ppns) vm.guest.use[p] = BALLOON;
    vm.inflateQueue = sortedInts(vm.inflateQueue.concat(ppns));
  }

  underPressure(vm) {
    const g = vm.guest;
    return !g.use.includes(FREE) && (g.disk.size >= this.cfg.guest_disk_slots || g.lru.length === 0);
  }

  balloon_deflate(args) {
    const vm = this.vm(args);
    const ppns = args.ppns;
    const balloon = vm.driver.balloon;
    need(Array.isArray(ppns) && ppns.length >= 1, "nothing to deflate");
    need(new Set(ppns).size === ppns.length && ppns.every((p) => balloon.has(p)),
      "only acknowledged balloon pages deflate");
    let excess = balloon.size - vm.driver.target;
    if (this.cfg.deflate_on_oom && this.underPressure(vm)) excess = Math.max(excess, this.cfg.batch);
    need(ppns.length <= Math.max(0, Math.min(this.cfg.batch, excess, balloon.size)),
      "balloon not above target and guest not out of memory");
    if (!this.cfg.must_tell_host) for (const p of ppns) vm.guest.use[p] = FREE;
    for (const p of ppns) balloon.delete(p);
    vm.deflateQueue = sortedInts(vm.deflateQueue.concat(ppns));
  }

  balloon_complete(args) {
    const vm = this.vm(args);
    need(vm.ackedInflate.size + vm.ackedRefused.size + vm.ackedDeflate.size > 0,
      "no acknowledgement waiting");
    const d = vm.driver;
    const held = (p) => vm.guest.use[p] === BALLOON;
    for (const p of vm.ackedInflate) if (held(p)) d.balloon.add(p);
    for (const p of vm.ackedRefused) if (held(p) && !d.balloon.has(p)) d.refused.add(p);
    if (this.cfg.must_tell_host) {
      for (const p of vm.ackedDeflate) if (held(p) && !d.balloon.has(p)) vm.guest.use[p] = FREE;
    }
    d.actual = d.balloon.size;
    vm.ackedInflate = new Set();
    vm.ackedRefused = new Set();
    vm.ackedDeflate = new Set();
  }

  balloon_free_refused(args) {
    const vm = this.vm(args);
    need(vm.driver.refused.size > 0, "no refused page held");
    for (const p of vm.driver.refused) vm.guest.use[p] = FREE;
    vm.driver.refused = new Set();
  }

  // -- what it reports ------------------------------------------------------------
  observe() {
    const out = {};
    this.vms.forEach((vm, v) => {
      const k = `vms/${v}/`;
      out[k + "target"] = vm.target;
      out[k + "ballooned"] = sortedInts(vm.ballooned);
      out[k + "inflate_queue"] = vm.inflateQueue.slice();
      out[k + "deflate_queue"] = vm.deflateQueue.slice();
      out[k + "module/target"] = vm.driver.target;
      out[k + "module/actual"] = vm.driver.actual;
      out[k + "module/balloon"] = sortedInts(vm.driver.balloon);
      out[k + "module/refused"] = sortedInts(vm.driver.refused);
      out[k + "guest/free_count"] = vm.guest.use.filter((u) => u === FREE).length;
      out[k + "guest/balloon_count"] = vm.guest.use.filter((u) => u === BALLOON).length;
      out[k + "backed_count"] = vm.p2m.filter((m) => m !== UNBACKED).length;
    });
    out["host/free_count"] = this.host.free.size;
    out["host/in_use_count"] = this.host.inUse.size;
    return out;
  }
}

const ACTIONS = {
  host_set_target: ["vm", "pages"],
  host_take_page: ["host_page"],
  host_return_page: ["host_page"],
  vmm_reclaim: ["vm", "refuse"],
  vmm_release: ["vm"],
  guest_read: ["vm", "vpn"],
  guest_write: ["vm", "vpn", "token"],
  guest_evict: ["vm", "vpn"],
  guest_reset: ["vm"],
  balloon_poll: ["vm"],
  balloon_inflate: ["vm", "ppns"],
  balloon_deflate: ["vm", "ppns"],
  balloon_complete: ["vm"],
  balloon_free_refused: ["vm"],
  vmm_back_page: ["vm", "ppn"],
};

const OBSERVE = ["vms/*/target", "vms/*/ballooned", "vms/*/inflate_queue", "vms/*/deflate_queue",
  "vms/*/module/target", "vms/*/module/actual", "vms/*/module/balloon", "vms/*/module/refused",
  "vms/*/guest/free_count", "vms/*/guest/balloon_count", "vms/*/backed_count",
  "host/free_count", "host/in_use_count"];

// Serve the protocol with systems made by `make(cfg)`.
function serve(make, name, v2 = null) {
  let cfg = null;
  let system = null;
  const reply = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
  const rl = readline.createInterface({input: process.stdin, terminal: false});
  rl.on("line", (line) => {
    if (!line.trim()) return;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch (e) {
      process.stderr.write(`not JSON: ${line}\n`);
      return;
    }
    const id = msg.id;
    if (msg.hello) {
      cfg = msg.hello.config;
      const runs = {};
      for (const k of SIZES.concat(SWITCHES)) runs[k] = cfg[k];
      Object.assign(runs, FIXED);
      // Protocol 2: its allocator's order is its own.
      if (v2 && v2.alloc !== "lowest") runs.guest_policy = "any";
      // Protocol 2: its VMM backs deflated pages at once.
      if (v2 && v2.eager && !process.argv.includes("--no-declare")) runs.eager_backing = true;
      cfg = Object.assign({}, cfg, runs);
      system = make(cfg);
      const observe = v2 ? OBSERVE.concat(["vms/*/guest/tokens", "vms/*/guest/digest",
        "host/unscrubbed_count"]) : OBSERVE;
      reply({id, hello: {protocol: v2 ? 2 : 1, implementation: name, config: runs,
        actions: Object.keys(ACTIONS), observe}});
    } else if (msg.reset) {
      system = make(cfg);
      reply({id, ok: true, observe: system.observe()});
    } else if (msg.bye) {
      rl.close();
    } else if (msg.run && v2) {
      const step = system.nextStep(msg.run.actor, msg.run.vm);
      const steps = [];
      if (step) {
        const [action, args] = step;
        const next = system.clone();
        try {
          next[action](args);
        } catch (e) {
          if (!(e instanceof Refused)) throw e;
          reply({id, error: `own step ${action} refused: ${e.message}`});
          return;
        }
        system = next;
        steps.push({actor: ACTOR_OF[action], action, args});
        for (const [name, taken] of system.alsoDone) {
          steps.push({actor: ACTOR_OF[name], action: name, args: taken});
        }
        system.alsoDone = [];
      }
      system.tick();
      reply({id, steps, observe: system.observe()});
    } else if (typeof msg.action === "string" && ACTIONS[msg.action]) {
      const want = ACTIONS[msg.action];
      const got = Object.keys(msg.args || {});
      if (got.length !== want.length || !want.every((k) => got.includes(k))) {
        reply({id, error: `${msg.action} takes ${want.join(", ")}`});
        return;
      }
      const next = system.clone();
      try {
        next[msg.action](msg.args);
        system = next;
        if (v2) system.tick();
        reply({id, ok: true, observe: system.observe()});
      } catch (e) {
        if (!(e instanceof Refused)) throw e;
        if (v2) system.tick();
        reply({id, ok: false, reason: e.message, observe: system.observe()});
      }
    } else {
      reply({id, error: `unknown request: ${line.slice(0, 100)}`});
    }
  });
}

// Protocol 2: the same system, whose actors choose their own next steps.
class ChoosingSystem extends BalloonSystem {
  constructor(cfg, opts) {
    super(cfg);
    this.opts = opts;
    this.rng = 12345;  // a deterministic generator: the same commands, the same choices
    this.arrival = this.vms.map(() => []);
    this.requests = 0;
    this.reclaimed = new Set();  // MPNs a balloon gave back, not reused since
    this.alsoDone = [];  // steps taken inside a step (eager backing after a release)
  }

  clone() {
    const copy = BalloonSystem.prototype.clone.call(this);
    Object.setPrototypeOf(copy, Object.getPrototypeOf(this));
    copy.opts = this.opts;
    copy.rng = this.rng;
    copy.arrival = structuredClone(this.arrival);
    copy.requests = this.requests;
    copy.reclaimed = new Set(this.reclaimed);
    copy.alsoDone = this.alsoDone.slice();
    return copy;
  }

  // One more request handled (a VM exit, for the VMM's periodic work).
  tick() {
    this.requests++;
  }

  random() {
    this.rng = (this.rng * 1103515245 + 12345) % 2147483648;
    return this.rng / 2147483648;
  }

  // A step Ballast asks for (a probe) may name any free pages.
  allocatorAllows(free, ppns) {
    return new Set(ppns).size === ppns.length && ppns.every((p) => free.includes(p));
  }

  order(pages) {
    const out = sortedInts(pages);
    if (this.opts.alloc === "highest") return out.reverse();
    if (this.opts.alloc === "random") {
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(this.random() * (i + 1));
        [out[i], out[j]] = [out[j], out[i]];
      }
    }
    return out;
  }

  roomRefusals(vm) {
    if (this.opts.accept !== "arrival") return super.roomRefusals(vm);
    const valid = new Set(this.validReports(vm));
    const arrived = [...new Set(this.arrival[this.vms.indexOf(vm)].filter((p) => valid.has(p)))];
    return sortedInts(arrived.slice(this.room(vm)));
  }

  deflateLimit(vm) {
    const balloon = vm.driver.balloon;
    let excess = balloon.size - vm.driver.target;
    if (this.cfg.deflate_on_oom && this.underPressure(vm)) excess = Math.max(excess, this.cfg.batch);
    return Math.max(0, Math.min(this.cfg.batch, excess, balloon.size));
  }

  // The step an actor of VM v takes next, or null: [action, args].
  nextStep(actor, v) {
    const vm = this.vms[v];
    if (actor === "module") {
      if (vm.driver.target !== vm.target) return ["balloon_poll", {vm: v}];
      if (vm.ackedInflate.size + vm.ackedRefused.size + vm.ackedDeflate.size > 0) {
        return ["balloon_complete", {vm: v}];
      }
      if (vm.driver.refused.size > 0) return ["balloon_free_refused", {vm: v}];
      let k = this.deflateLimit(vm);
      if (k > 0) return ["balloon_deflate", {vm: v, ppns: this.order(vm.driver.balloon).slice(0, k)}];
      const held = vm.driver.balloon.size + vm.inflateQueue.length + vm.ackedInflate.size;
      const free = this.freePages(vm);
      k = Math.min(this.cfg.batch, vm.driver.target - held, free.length - this.cfg.kernel_reserve);
      if (k > 0) return ["balloon_inflate", {vm: v, ppns: this.order(free).slice(0, k)}];
      return null;
    }
    if (actor === "vmm") {
      if (vm.inflateQueue.length > 0) return ["vmm_reclaim", {vm: v, refuse: this.roomRefusals(vm)}];
      if (vm.deflateQueue.length > 0) return ["vmm_release", {vm: v}];
      return null;
    }
    const g = vm.guest;
    if (actor === "guest" && !g.use.includes(FREE) && g.lru.length > 0
        && g.disk.size < this.cfg.guest_disk_slots) {
      return ["guest_evict", {vm: v, vpn: g.lru[0]}];
    }
    return null;
  }

  balloon_inflate(args) {
    super.balloon_inflate(args);
    this.arrival[args.vm].push(...args.ppns);
  }

  vmm_reclaim(args) {
    const before = new Set(this.host.free);
    super.vmm_reclaim(args);
    this.arrival[args.vm] = [];
    for (const m of this.host.free) if (!before.has(m)) this.reclaimed.add(m);
  }

  backPage(vm, ppn) {
    const mpn = super.backPage(vm, ppn);
    this.reclaimed.delete(mpn);
    return mpn;
  }

  vmm_release(args) {
    const vm = this.vm(args);
    const released = vm.deflateQueue.filter((p) => vm.ballooned.has(p));
    super.vmm_release(args);
    if (this.opts.eager) {  // Xen-style populate: back the pages at once, while MPNs last
      for (const p of released) {
        if (this.host.free.size > 0) {
          this.vmm_back_page({vm: args.vm, ppn: p});
          this.alsoDone.push(["vmm_back_page", {vm: args.vm, ppn: p}]);
        }
      }
    }
  }

  guest_reset(args) {
    super.guest_reset(args);
    this.arrival[args.vm] = [];
  }

  // Protocol 2 adds what the guest reads back, and whether freed pages were scrubbed.
  observe() {
    const out = super.observe();
    this.vms.forEach((vm, v) => {
      const tokens = [];
      for (let vpn = 0; vpn < this.cfg.guest_data_pages; vpn++) {
        tokens.push(vm.guest.disk.has(vpn) ? vm.guest.disk.get(vpn) : 0);
      }
      const resident = [];
      vm.guest.use.forEach((u, ppn) => {
        if (u === FREE || u === BALLOON) return;
        const mpn = vm.p2m[ppn];
        tokens[u] = mpn === UNBACKED ? 0 : this.host.content[mpn];
        resident.push([u, tokens[u]]);
      });
      out[`vms/${v}/guest/tokens`] = tokens;
      out[`vms/${v}/guest/digest`] = digest(resident);
    });
    let unscrubbed = 0;
    for (const m of [...this.host.free, ...this.host.inUse]) if (this.host.content[m] !== 0) unscrubbed++;
    out["host/unscrubbed_count"] = unscrubbed;
    return out;
  }
}

// FNV-1a (32 bits) over "vpn:token;" for each resident page, in VPN order.
function digest(pairs) {
  let h = 0x811c9dc5;
  for (const [vpn, token] of pairs.slice().sort((a, b) => a[0] - b[0])) {
    for (const ch of `${vpn}:${token};`) {
      h ^= ch.charCodeAt(0);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  return h >>> 0;
}

const ACTOR_OF = {balloon_poll: "module", balloon_inflate: "module", balloon_deflate: "module",
  balloon_complete: "module", balloon_free_refused: "module", vmm_reclaim: "vmm",
  vmm_release: "vmm", vmm_back_page: "vmm", guest_evict: "guest"};

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

module.exports = {BALLOON, BalloonSystem, ChoosingSystem, FREE, Refused, UNBACKED, option, serve,
  sortedInts};

if (require.main === module) {
  if (option("--protocol", "1") === "2") {
    const opts = {alloc: option("--alloc", "lowest"), accept: option("--accept", "sorted"),
      eager: process.argv.includes("--eager")};
    const name = `balloon_adapter.js 2.0 (alloc ${opts.alloc}, accept ${opts.accept}`
      + (opts.eager ? ", eager)" : ")");
    serve((cfg) => new ChoosingSystem(cfg, opts), name, opts);
  } else {
    serve((cfg) => new BalloonSystem(cfg), "balloon_adapter.js 1.0");
  }
}
