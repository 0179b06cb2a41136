"""Exhaustive exploration: distinct states per CPU-second and bytes per state of the
frontier engine, the reference explorer and a plain breadth-first search over ``State``
objects in a Python set, in the same run, on the configurations of the speed goal (2 VMs x 1
PPN x 7..9 MPNs with host use; a 1-VM protocol slice of 2 PPNs x 4 MPNs), with the
ratios; then both engines on the feature slices ``ballast check`` explores (symmetry on, as
check explores them), and on its liveness slices (the full graph kept, every liveness
property checked on it); then bytes per state (over the first states, and over each whole
search of the 2-VM family); then the largest configuration of the 2-VM
family the frontier engine explores completely within 60 CPU-seconds; then a frontier run
with a memory budget smaller than its states need (``--spill-mib``), which spills to disk
and finds the same states.

All three do the same work per state and per transition: the model's own successors,
every state invariant on every new state, every step property on every transition, and
the "sometimes" scenarios until each is witnessed.

    python benchmarks/bench_explore.py            # long: every search capped at 120 s
    python benchmarks/bench_explore.py --quick    # smaller configurations

The full run ends with the speed goal's verdicts, each met or NOT met with this run's figure.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections import deque
from typing import Any

from ballast.model.config import Config, preset
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.statespace.explore import Budget, explore
from ballast.statespace.frontier import explore_frontier
from ballast.statespace.liveness import check_liveness, check_reach_properties
from ballast.statespace.suite import feature_slices, liveness_fairness


def plain_bfs(model: BalloonModel, max_states: int | None = None,
              max_seconds: float | None = None) -> tuple[set[State], int, bool]:
    """The baseline: State objects in a set, a deque frontier, the same checks."""
    cfg = model.cfg
    props = model.properties()
    state_props = [p for p in props if p.state is not None]
    step_props = [p for p in props if p.step is not None]
    open_sc = list(model.scenarios())
    s0 = model.init_states()[0]
    seen = {s0}
    todo = deque([s0])
    edges = 0
    start = time.perf_counter()
    while todo:
        if max_states is not None and len(seen) >= max_states:
            return seen, edges, False
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            return seen, edges, False
        s = todo.popleft()
        for act, t in model.successors(s):
            edges += 1
            if open_sc:
                open_sc = [sc for sc in open_sc if not sc.witness(cfg, s, act, t)]
            bad = any(p.check_step(cfg, s, act, t) is not None for p in step_props)
            if t not in seen:
                seen.add(t)
                bad = any(p.check_state(cfg, t) is not None for p in state_props) or bad
                if not bad:
                    todo.append(t)
    return seen, edges, True


def _memory(fn: Any) -> tuple[int, int, Any]:
    """(bytes still held after ``fn`` returns, peak bytes while it ran, its result)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = fn()
    gc.collect()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return after - before, peak - before, kept


def _family(mpns: int) -> Config:
    """The issue's 2-VM family: 2 VMs x 1 PPN x ``mpns`` MPNs, host use on."""
    return Config(vms=2, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
                  machine_pages=mpns, host_swap_slots=0, tokens=1, batch=1)


def _slice(ppns: int, mpns: int) -> Config:
    """The issue's 1-VM protocol slice: the protocol slice ``ballast check`` explores (a
    guest disk slot, host use on) with ``ppns`` PPNs and ``mpns`` MPNs (2 x 4: the issue's
    table, 482,850 states then, 487,656 with the model's later actions)."""
    return Config(vms=1, guest_pages=ppns, guest_data_pages=1, guest_disk_slots=1,
                  machine_pages=mpns, host_swap_slots=0, tokens=1, batch=1, host_use=True)


def _timed(fn: Any) -> tuple[float, Any]:
    """(CPU seconds, result) of ``fn()``."""
    gc.collect()
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


def _engines(model: BalloonModel, cap: float) -> dict[str, tuple[int, float, bool]]:
    """Per engine: (distinct states, CPU seconds, complete) with a cap of ``cap`` seconds."""
    out: dict[str, tuple[int, float, bool]] = {}
    cpu, (seen, _, done) = _timed(lambda: plain_bfs(model, max_seconds=cap))
    out["plain BFS"] = (len(seen), cpu, done)
    del seen
    cpu, ex = _timed(lambda: explore(model, budget=Budget(max_seconds=cap)))
    out["reference"] = (ex.states, cpu, ex.complete)
    del ex
    cpu, fx = _timed(lambda: explore_frontier(model, budget=Budget(max_seconds=cap)))
    out["frontier"] = (fx.states, cpu, fx.complete)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true",
                    help="smaller configurations (2-VM family with 4..5 MPNs, slice 2 x 2)")
    ap.add_argument("--max-seconds", type=float, default=120.0,
                    help="cap on each search (a capped search still gives states per second)")
    ap.add_argument("--memory-states", type=int, default=20000,
                    help="states kept when measuring bytes per state (under tracemalloc)")
    ap.add_argument("--spill-mib", type=float, default=1.0,
                    help="memory budget (MiB) of the spill-to-disk run")
    ap.add_argument("--largest-seconds", type=float, default=60.0,
                    help="CPU seconds within which the largest 2-VM configuration must finish")
    ap.add_argument("--check-preset", default="default",
                    help="the preset whose `ballast check` slices are timed")
    args = ap.parse_args()
    family = (4, 5) if args.quick else (7, 8, 9)
    configs = [(f"2 VMs x 1 PPN x {n} MPNs, host use", _family(n)) for n in family]
    configs.append(("1-VM protocol slice, 2 PPNs x 2 MPNs" if args.quick else
                    "1-VM protocol slice, 2 PPNs x 4 MPNs", _slice(2, 2 if args.quick else 4)))
    names = ("frontier", "reference", "plain BFS")
    # The issue's goals, judged at the end from this run's figures: (what, met, measured).
    goals: list[tuple[str, bool, str]] = []
    print("distinct states per CPU-second (capped runs marked *)")
    print(f"{'configuration':38}{'states':>11}" + "".join(f"{n:>12}" for n in names)
          + f"{'vs ref':>8}{'vs plain':>9}")
    for label, cfg in configs:
        got = _engines(BalloonModel(cfg), args.max_seconds)
        rate = {n: got[n][0] / max(got[n][1], 1e-9) for n in names}
        cells = "".join(f"{rate[n]:11,.0f}{'' if got[n][2] else '*'}" for n in names)
        print(f"{label:38}{got['frontier'][0]:11,}{cells}"
              f"{rate['frontier'] / rate['reference']:7.1f}x"
              f"{rate['frontier'] / rate['plain BFS']:8.1f}x", flush=True)
        if not args.quick:
            want = 250_000 if "2 VMs" in label else 400_000
            goals.append((f"{label}: >= {want:,} states per CPU-second",
                          rate["frontier"] >= want, f"{rate['frontier']:,.0f}"))
            speedup = rate["frontier"] / rate["reference"]
            goals.append((f"{label}: >= 10x the reference", speedup >= 10, f"{speedup:.1f}x"))

    print()
    print(f"the slices of `ballast check --preset {args.check_preset}` (symmetry on): "
          "CPU seconds")
    print(f"{'slice':26}{'states':>9}{'frontier':>10}{'reference':>11}{'vs ref':>8}")
    totals = [0.0, 0.0]
    for name, small in feature_slices(preset(args.check_preset)).items():
        model = BalloonModel(small)
        cpu_f, fx = _timed(lambda: explore_frontier(model, symmetry=True))
        cpu_r, rx = _timed(lambda: explore(model, symmetry=True))
        assert fx.states == rx.states, f"{name}: the engines disagree"
        totals[0] += cpu_f
        totals[1] += cpu_r
        print(f"{name:26}{fx.states:9,}{cpu_f:10.2f}{cpu_r:11.2f}{cpu_r / cpu_f:7.1f}x",
              flush=True)
    print(f"{'all slices':26}{'':9}{totals[0]:10.2f}{totals[1]:11.2f}"
          f"{totals[1] / totals[0]:7.1f}x")

    print()
    print(f"liveness on the liveness slices of `ballast check --preset {args.check_preset}` "
          "(the full graph, no symmetry, then every liveness and reach property): CPU seconds")
    print(f"{'slice':26}{'states':>9}{'frontier':>10}{'reference':>11}{'vs ref':>8}")
    for name, small in feature_slices(preset(args.check_preset)).items():
        fairness = liveness_fairness(name, small)
        if fairness is None:
            continue
        cpu = {}
        found = {}
        for engine, run in (("frontier", explore_frontier), ("reference", explore)):
            def live(run: Any = run, fairness: str = fairness) -> tuple[int, list[object]]:
                ex = run(BalloonModel(small), keep_edges=True)
                got = [(r.property, r.holds) for r in check_liveness(ex, fairness)]
                return ex.states, got + [(r.property, r.holds) for r in check_reach_properties(ex)]
            cpu[engine], found[engine] = _timed(live)
        assert found["frontier"] == found["reference"], f"{name}: the engines disagree"
        print(f"{name:26}{found['frontier'][0]:9,}{cpu['frontier']:10.2f}{cpu['reference']:11.2f}"
              f"{cpu['reference'] / cpu['frontier']:7.1f}x", flush=True)

    n = args.memory_states
    model = BalloonModel(configs[0][1])
    kept = {
        "plain BFS": _memory(lambda: plain_bfs(model, max_states=n)[0]),
        "reference": _memory(lambda: explore(model, budget=Budget(max_states=n))),
        "frontier": _memory(lambda: explore_frontier(model, budget=Budget(max_states=n))),
    }
    counts = {k: (len(v[2]) if isinstance(v[2], set) else v[2].states) for k, v in kept.items()}
    print()
    print(f"bytes per state ({configs[0][0]}, first {n:,} states, tracemalloc)")
    print(f"{'':30}" + "".join(f"{k:>12}" for k in names))
    print(f"{'kept after the search':30}"
          + "".join(f"{kept[k][0] / counts[k]:12,.0f}" for k in names))
    print(f"{'peak during the search':30}"
          + "".join(f"{kept[k][1] / counts[k]:12,.0f}" for k in names))
    del kept
    # The first states are dominated by a level's batch in flight; a whole search is what a
    # user's memory holds.
    print(f"{'frontier, whole search:':30}", end="")
    for label, cfg in configs:
        if "2 VMs" not in label:
            continue
        held, peak, fx = _memory(lambda: explore_frontier(BalloonModel(cfg)))
        print(f"  {cfg.machine_pages} MPNs: {held / fx.states:,.0f} kept, "
              f"{peak / fx.states:,.0f} at the peak ({peak / 2**20:,.0f} MiB)", end="", flush=True)
        if not args.quick:
            goals.append((f"{label}: <= 200 bytes per state at the peak of a whole search",
                          peak / fx.states <= 200, f"{peak / fx.states:,.0f}"))
    print()

    print()
    largest = None
    for mpns in range(family[0], 40):
        # The budget is wall-clock; CPU seconds decide (a busy machine stretches the wall).
        cpu, fx = _timed(lambda: explore_frontier(
            BalloonModel(_family(mpns)), budget=Budget(max_seconds=10 * args.largest_seconds)))
        done = fx.complete and cpu <= args.largest_seconds
        print(f"frontier, 2 VMs x 1 PPN x {mpns} MPNs: {fx.states:,} states, {cpu:.1f} CPU s"
              f"{'' if done else ' (not finished within the limit)'}", flush=True)
        if not done:
            break
        largest = (mpns, fx.states)
    if largest is not None:
        print(f"largest 2-VM configuration explored completely within "
              f"{args.largest_seconds:.0f} CPU s: {largest[0]} MPNs, {largest[1]:,} states")
    else:
        print(f"no 2-VM configuration finished within {args.largest_seconds:.0f} CPU s")
    if not args.quick:
        goals.append((f"the largest 2-VM configuration within {args.largest_seconds:.0f} CPU s: "
                      "9 MPNs or more", largest is not None and largest[0] >= 9,
                      f"{largest[0]} MPNs" if largest is not None else "none"))

    print()
    spill_label, spill_cfg = configs[0]
    spill_budget = int(args.spill_mib * 2**20)
    cpu, sx = _timed(lambda: explore_frontier(BalloonModel(spill_cfg), memory_budget=spill_budget))
    cpu0, px = _timed(lambda: explore_frontier(BalloonModel(spill_cfg)))
    print(f"spill to disk ({spill_label}, memory budget {args.spill_mib:g} MiB): "
          f"{sx.states:,} states ({'the same as' if sx.states == px.states else 'NOT'} "
          f"{px.states:,} without a budget), {sx.spilled_bytes / 2**20:.1f} MiB spilled, "
          f"{px.bytes_estimate() / 2**20:.1f} MiB held without a budget, "
          f"{sx.bytes_estimate() / 2**20:.1f} MiB with it; {cpu:.1f} CPU s against {cpu0:.1f}")
    if goals:
        print()
        for what, met, measured in goals:
            print(f"goal: {what}: {'met' if met else 'NOT met'} ({measured})")


if __name__ == "__main__":
    main()
