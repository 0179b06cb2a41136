"""Exhaustive exploration: distinct states per second and bytes per state, against a
plain breadth-first search over ``State`` objects in a Python set, in the same run;
and how many fewer states symmetry reduction stores on a configuration with 2 VMs.

The explorer keeps states as one integer of part ids and takes each VM's steps
from its transition cache (see ``ballast.statespace.transitions``); it also runs
once with the cache off, which shows what the cache itself brings.

Both searches do the same work per state and per transition: the model's own
successors, every state invariant on every new state, every step property on
every transition, and the "sometimes" scenarios until each is witnessed.

    python benchmarks/bench_explore.py            # about a minute for the plain search
    python benchmarks/bench_explore.py --quick    # a smaller configuration
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections import deque
from typing import Any

from ballast.model.config import Config
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.statespace.explore import Budget, explore


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--machine-pages", type=int, default=6,
                    help="MPNs of the configuration (6: the plain search takes about a minute)")
    ap.add_argument("--quick", action="store_true", help="4 MPNs (a few seconds)")
    ap.add_argument("--max-seconds", type=float, default=300.0,
                    help="cap on each search (a capped search still gives states/s)")
    ap.add_argument("--memory-states", type=int, default=20000,
                    help="states kept when measuring bytes per state (under tracemalloc)")
    ap.add_argument("--no-uncached", action="store_true",
                    help="skip the explorer run without its transition cache")
    args = ap.parse_args()
    cfg = Config(vms=2, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
                 machine_pages=4 if args.quick else args.machine_pages, host_swap_slots=0,
                 tokens=1, batch=1)
    model = BalloonModel(cfg)
    print(f"configuration: {cfg.vms} VMs x {cfg.guest_pages} PPN, {cfg.machine_pages} MPNs, "
          f"host use on")

    t = time.perf_counter()
    seen, plain_edges, plain_done = plain_bfs(model, max_seconds=args.max_seconds)
    plain_s = time.perf_counter() - t
    plain_n = len(seen)
    del seen
    print(f"plain BFS (State objects in a set): {plain_n:,} states, {plain_edges:,} transitions,"
          f" {plain_s:.1f} s, {plain_n / plain_s:,.0f} states/s"
          f"{'' if plain_done else ' (capped)'}")

    ex = explore(model, budget=Budget(max_seconds=args.max_seconds))
    print(f"explorer (part-id keys, transition cache): {ex.states:,} states, "
          f"{ex.transitions:,} transitions, {ex.seconds:.1f} s, "
          f"{ex.states / ex.seconds:,.0f} states/s ({ex.stop_reason}); cache: "
          f"{ex.cache_hits:,} part hits, {ex.cache_misses:,} misses, "
          f"{ex.recomputed:,} steps recomputed on the real state")
    if not args.no_uncached:
        ref = explore(model, budget=Budget(max_seconds=args.max_seconds), cache=False)
        print(f"explorer without the transition cache: {ref.states:,} states, "
              f"{ref.seconds:.1f} s, {ref.states / ref.seconds:,.0f} states/s "
              f"({ref.stop_reason})")

    red = explore(model, symmetry=True, budget=Budget(max_seconds=args.max_seconds))
    print(f"explorer with symmetry (VMs, MPNs): {red.states:,} states, {red.seconds:.1f} s, "
          f"{red.states / red.seconds:,.0f} states/s ({red.stop_reason})")

    n = args.memory_states
    plain_kept, plain_peak, kept = _memory(lambda: plain_bfs(model, max_states=n)[0])
    plain_count = len(kept)
    del kept
    ex_kept, ex_peak, kept_ex = _memory(lambda: explore(model, budget=Budget(max_states=n)))
    ex_count = kept_ex.states
    del kept_ex

    print()
    print(f"{'':40}{'plain':>12}{'explorer':>12}{'ratio':>8}")
    speed = (ex.states / ex.seconds) / (plain_n / plain_s)
    print(f"{'distinct states / s':40}{plain_n / plain_s:12,.0f}{ex.states / ex.seconds:12,.0f}"
          f"{speed:8.2f}x")
    pb, kb = plain_kept / plain_count, ex_kept / ex_count
    print(f"{'bytes / state kept (tracemalloc)':40}{pb:12,.0f}{kb:12,.0f}{pb / kb:8.2f}x")
    pp, kp = plain_peak / plain_count, ex_peak / ex_count
    print(f"{'bytes / state at peak (caches included)':40}{pp:12,.0f}{kp:12,.0f}"
          f"{pp / kp:8.2f}x")
    if ex.complete and red.complete:
        print(f"{'states stored, symmetry off / on':40}{ex.states:12,}{red.states:12,}"
              f"{ex.states / red.states:8.2f}x")
    print()
    print(f"goal states/s >= 10x plain: {'met' if speed >= 10 else 'NOT met'} ({speed:.2f}x)")
    if ex.complete and red.complete:
        r = ex.states / red.states
        print(f"goal >= 10x fewer states with symmetry: {'met' if r >= 10 else 'NOT met'} "
              f"({r:.2f}x)")


if __name__ == "__main__":
    main()
