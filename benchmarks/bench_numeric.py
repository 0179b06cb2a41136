"""Numeric core against the reference model on the same workload, in the same run.

Prints model operations per second and invariant checks per second for both
(``BalloonModel.next_state`` + ``violations`` for the reference model), their
ratios, and the numeric core's bytes of memory per guest page at scale. Times are CPU
seconds of this process (a loaded machine slows every row alike); the numeric core's
replays are short, so each is run ``--repeat`` times on a fresh engine and the fastest
counts (the reference model's one replay is long enough to time once).

    python benchmarks/bench_numeric.py [--vms 256 --pages 1024 --batches 100 --repeat 5]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from ballast.model.config import preset
from ballast.model.system import BalloonModel
from ballast.numeric.engine import Engine
from ballast.numeric.invariants import violations
from ballast.numeric.scale import scaled
from ballast.numeric.workload import log_actions, run_batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vms", type=int, default=256)
    ap.add_argument("--pages", type=int, default=1024)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5,
                    help="replays of the numeric core (the fastest counts)")
    ap.add_argument("--scale-vms", type=int, default=1024)
    ap.add_argument("--scale-pages", type=int, default=16384)
    args = ap.parse_args()
    cfg = scaled(preset("large"), vms=args.vms, pages=args.pages)
    print(f"workload: preset 'large' scaled to {cfg.vms} VMs x {cfg.guest_pages} PPNs, "
          f"{cfg.machine_pages} MPNs, {args.batches} random batches, seed {args.seed}")

    # The workload: drawn once, then replayed by both engines.
    log = run_batches(Engine(cfg), np.random.default_rng(args.seed), args.batches)
    actions = log_actions(log)
    print(f"  {len(actions)} model operations in {len(log)} batches")

    # Numeric core, batched (one kernel run per action per batch).
    num_batched = num_single = float("inf")
    for _ in range(max(1, args.repeat)):
        eng = Engine(cfg)
        t = time.process_time()
        for b in log:
            ok = eng.apply_batch(b.name, b.vms, **b.args)
            assert ok.all(), f"replay of {b.name} diverged"
        num_batched = min(num_batched, time.process_time() - t)
    # Numeric core, one operation per call (what shrinking and replay use).
    for _ in range(max(1, (args.repeat + 1) // 2)):
        eng1 = Engine(cfg)
        t = time.process_time()
        for act in actions:
            eng1.apply(act)
        num_single = min(num_single, time.process_time() - t)

    # Reference model on the same operations.
    model = BalloonModel(cfg)
    s = model.init_states()[0]
    t = time.process_time()
    for act in actions:
        s = model.next_state(s, act)
    ref_ops = time.process_time() - t
    assert eng.arr.to_state() == s, "numeric core and reference model disagree"

    # Invariant checks: every state invariant on the final state.
    reps = 20
    t = time.process_time()
    for _ in range(reps):
        num_bad = violations(eng.arr)
    num_inv = (time.process_time() - t) / reps
    t = time.process_time()
    ref_reps = 3
    for _ in range(ref_reps):
        ref_bad = model.violations(s)
    ref_inv = (time.process_time() - t) / ref_reps
    assert [n for n, _ in num_bad] == [v.property for v in ref_bad]
    nprops = len(model.properties())

    n = len(actions)
    rows = [
        ("reference model", n / ref_ops, nprops / ref_inv),
        ("numeric, one op per call", n / num_single, nprops / num_inv),
        ("numeric, batched", n / num_batched, nprops / num_inv),
    ]
    print(f"{'':28}{'ops/s':>14}{'invariant checks/s':>22}")
    for name, ops, inv in rows:
        print(f"{name:28}{ops:14,.0f}{inv:22,.1f}")
    print(f"ratio batched/reference: ops {rows[2][1] / rows[0][1]:,.0f}x, "
          f"invariant checks {rows[2][2] / rows[0][2]:,.0f}x "
          f"(one op per call: {rows[1][1] / rows[0][1]:,.1f}x)")

    # Memory at scale.
    big = scaled(preset("large"), vms=args.scale_vms, pages=args.scale_pages)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    eng = Engine(big)
    log = run_batches(eng, np.random.default_rng(args.seed), 20)
    pages = big.vms * big.guest_pages
    t = time.process_time()
    violations(eng.arr)
    sweep = time.process_time() - t
    ops = sum(len(b.vms) for b in log)
    print(f"scale: {big.vms} VMs x {big.guest_pages} PPNs = {pages:,} guest pages, "
          f"{big.machine_pages:,} MPNs; {ops:,} ops in 20 batches; one invariant sweep "
          f"{sweep:.2f} s")
    print(f"  numeric state: {eng.arr.nbytes() / pages:.2f} bytes per guest page "
          f"(arrays; peak RSS grew {(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / pages:.1f} "
          f"bytes per guest page including temporaries)")


if __name__ == "__main__":
    main()
