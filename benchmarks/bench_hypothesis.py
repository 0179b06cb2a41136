"""How much the Hypothesis machine exercises, against the deterministic random runs (the baseline).

On one preset, runs the Hypothesis machine (profile ``ci``) and random runs of the same
total number of steps, each over a few seeds, and prints per checker: steps per second,
scenarios witnessed, actions fired, and for Hypothesis the share of steps whose arguments
came from the parameter domains and of draws the guards turned down. Then the time the
machine takes to find and shrink a seeded fault, with the shrunk length, against the random
runs finding the same fault (unshrunk length).

    python benchmarks/bench_hypothesis.py [PRESET]
"""

from __future__ import annotations

import sys
import time

from ballast.model.config import preset
from ballast.model.system import BalloonModel
from ballast.simulation.randomwalk import random_run
from ballast.simulation.stateful import run_machine

SEEDS = (0, 1, 2)


def coverage(model: BalloonModel, preset_name: str) -> None:
    scen = {sc.name for sc in model.scenarios()}
    acts = {a.name for a in model.action_specs()}
    print(f"preset {preset_name}: {len(scen)} scenarios, {len(acts)} actions")
    for seed in SEEDS:
        t0 = time.perf_counter()
        hyp = run_machine(model, seed=seed, profile="ci")
        th = time.perf_counter() - t0
        t0 = time.perf_counter()
        steps, seen, fired, runs = 0, set(), set(), 0
        while steps < hyp.steps_run:
            run = random_run(model, seed * 10_000 + runs, min(200, hyp.steps_run - steps),
                             record_states=False)
            runs += 1
            steps += len(run.trace.steps)
            seen |= run.witnessed
            fired |= run.fired
        tr = time.perf_counter() - t0
        taken = hyp.steps_run + hyp.discarded
        print(f"  seed {seed}: hypothesis {hyp.steps_run:,} steps in {th:.1f} s "
              f"({hyp.steps_run / th:,.0f}/s), {len(hyp.witnessed & scen)}/{len(scen)} scenarios, "
              f"{len(hyp.fired & acts)}/{len(acts)} actions, domain draws "
              f"{hyp.blind / max(1, hyp.steps_run):.0%} of steps, turned down "
              f"{hyp.discarded / max(1, taken):.0%} of draws")
        print(f"          random     {steps:,} steps in {tr:.1f} s ({steps / tr:,.0f}/s), "
              f"{len(seen & scen)}/{len(scen)} scenarios, {len(fired & acts)}/{len(acts)} "
              f"actions; steps/s ratio hypothesis/random {hyp.steps_run / th / (steps / tr):.2f}")


def fault(preset_name: str, name: str) -> None:
    model = BalloonModel(preset(preset_name), [name])
    t0 = time.perf_counter()
    hyp = run_machine(model, seed=0, profile="ci")
    th = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = None
    for seed in range(300):
        run = random_run(model, seed, 200, record_states=False)
        if run.violation is not None:
            found = (seed, len(run.trace.steps))
            break
    tr = time.perf_counter() - t0
    shrunk = len(hyp.trace.steps) if hyp.trace else None
    print(f"fault {name} on {preset_name}: hypothesis found "
          f"{hyp.violation.property if hyp.violation else 'nothing'} in {th:.1f} s "
          f"(shrunk to {shrunk} steps, {hyp.runs} runs); random found it "
          f"{f'at seed {found[0]} after {found[1]} steps' if found else 'not'} in {tr:.1f} s "
          f"(time ratio {th / tr:.1f})")


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "default"
    coverage(BalloonModel(preset(name)), name)
    fault("core", "reclaim_keeps_mapping")
    fault("processors", "cpu_reclaim_keeps_parked")


if __name__ == "__main__":
    main()
