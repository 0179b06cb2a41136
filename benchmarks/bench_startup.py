"""Benchmark: how fast ``ballast`` starts, against starting Python itself.

Prints the wall time of ``ballast --help``, ``ballast --version``, ``ballast list`` and
``ballast list faults`` next to ``python -c pass`` (the baseline, the same interpreter,
measured in the same run), and the extra time Ballast adds; the goal is ``--help`` and
``list`` under 0.5 s in all. Each figure is the best of several interleaved rounds (the
machine may be shared). Also names any heavy library (Z3, NumPy, NetworkX, Hypothesis,
jsonschema, matplotlib) that ``--help`` or ``list`` loads: none should be.

    python benchmarks/bench_startup.py [--rounds N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "ballast --help": [sys.executable, "-m", "ballast", "--help"],
    "ballast --version": [sys.executable, "-m", "ballast", "--version"],
    "ballast list": [sys.executable, "-m", "ballast", "list"],
    "ballast list faults": [sys.executable, "-m", "ballast", "list", "faults"],
}

HEAVY = ("z3", "numpy", "networkx", "hypothesis", "jsonschema", "matplotlib")
GOAL_S = 0.5


def _once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _loaded(args: list[str]) -> list[str]:
    code = ("import sys; from ballast.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    return [m.strip(" '") for m in r.stderr.strip().splitlines()[-1].strip("[]").split(",")
            if m.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    best = {name: float("inf") for name in COMMANDS}
    for _ in range(args.rounds):
        for name, argv in COMMANDS.items():
            best[name] = min(best[name], _once(argv))
    base = best["python -c pass"]
    print(f"best of {args.rounds} rounds; baseline python -c pass: {base * 1000:.0f} ms")
    worst = 0.0
    for name, seconds in best.items():
        if name == "python -c pass":
            continue
        worst = max(worst, seconds) if "help" in name or "list" in name else worst
        print(f"  {name:22} {seconds * 1000:6.0f} ms  = {seconds / base:5.1f}x the baseline, "
              f"+{(seconds - base) * 1000:.0f} ms")
    for argv in (["--help"], ["list"]):
        heavy = _loaded(argv)
        print(f"  heavy libraries loaded by ballast {' '.join(argv)}: "
              f"{', '.join(heavy) if heavy else 'none'}")
    print(f"goal: --help and list under {GOAL_S} s: {'met' if worst < GOAL_S else 'NOT met'} "
          f"(slowest {worst:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
