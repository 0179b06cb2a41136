"""Numeric core against the reference model on the same workload, in the same run.

Prints model operations per second and invariant checks per second for both
(``BalloonModel.next_state`` + ``violations`` for the reference model), their
ratios, and the numeric core's bytes of memory per guest page at scale. Times are CPU
seconds of this process (a loaded machine slows every row alike); the numeric core's
replays are short, so each is run ``--repeat`` times on a fresh engine and the fastest
counts (the reference model's one replay is long enough to time once). The reference's
invariant sweep is timed on a fresh copy of the final state each time: its checks remember
their answers by the identity of what they read, and a run never checks one state twice.

    python benchmarks/bench_numeric.py [--vms 256 --pages 1024 --batches 100 --repeat 5]

Last, the numeric checker of ``ballast check`` at its own scale (preset ``default``, 1,024
VMs x 1,024 PPNs): CPU seconds (user and system) of one seed's batches and sweeps with the
allocator as the engine tunes it (:mod:`ballast.numeric.allocator`) against the same run
with glibc's defaults, each in a process of its own.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ballast.model.config import preset
from ballast.model.system import BalloonModel
from ballast.numeric.engine import Engine
from ballast.numeric.invariants import violations
from ballast.numeric.scale import scaled
from ballast.numeric.workload import log_actions, run_batches


def check_seed(batches: int) -> None:
    """One seed of ``ballast check``'s numeric checker; prints its CPU seconds and faults."""
    from ballast.numeric.runner import fuzz_seed
    from ballast.numeric.suite import SUITE_SIZE

    big = scaled(preset("default"), vms=SUITE_SIZE.vms, pages=SUITE_SIZE.pages)
    before = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory() as where:
        fuzz_seed(big, seed=0, faults=(), batches=batches, check_every=SUITE_SIZE.check_every,
                  report_dir=Path(where))
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime,
          after.ru_minflt - before.ru_minflt)


def _check_seed_in_process(batches: int, tuned: bool) -> tuple[float, float, int]:
    env = dict(os.environ)
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        env.pop(name, None)
    if not tuned:
        env["GLIBC_TUNABLES"] = ""  # a setting of the user's: the engine leaves glibc alone
    out = subprocess.run([sys.executable, __file__, "--check-seed", str(batches)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


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
    ap.add_argument("--check-batches", type=int, default=100,
                    help="batches of the check-scale seed (0: skip that part)")
    ap.add_argument("--check-seed", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.check_seed is not None:
        check_seed(args.check_seed)
        return
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
    # The reference's checks remember their last answer by the identity of the parts they
    # read, so a sweep repeated on one state is mostly answered from memory (about half
    # the time of a first sweep): each sweep is timed on a state of its own, as every new
    # state of a run is. The numeric sweep keeps nothing between sweeps.
    ref_reps = 3
    fresh = [eng.arr.to_state() for _ in range(ref_reps)]
    t = time.process_time()
    for state in fresh:
        ref_bad = model.violations(state)
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
          "(arrays; peak RSS grew "
          f"{(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / pages:.1f} "
          f"bytes per guest page including temporaries)")

    if args.check_batches > 0:
        print(f"ballast check's numeric checker, one seed of {args.check_batches} batches "
              "(1,024 VMs x 1,024 PPNs): CPU seconds, user + system")
        runs = {"glibc defaults [baseline]": _check_seed_in_process(args.check_batches, False),
                "allocator tuned": _check_seed_in_process(args.check_batches, True)}
        base = sum(runs["glibc defaults [baseline]"][:2])
        for label, (user, system, faults) in runs.items():
            print(f"  {label:28}{user:7.2f} + {system:5.2f} s  {faults:>10,} minor faults"
                  f"  {base / (user + system):5.2f}x")


if __name__ == "__main__":
    main()
