"""Benchmark: the exhaustive agreement checks, per configuration, against the explorer.

    python benchmarks/bench_agreement.py [--max-states N] [--numeric] [--only NAME]

For every configuration of ``agreement_configs()`` (one per feature slice):
the explorer's own time to enumerate the reachable states (the baseline,
measured in the same run), then the time of the Z3-vs-model agreement check on
all of them (compiling the encoding included) and its ratio to the baseline,
and with ``--numeric`` the same for the numeric core. The default test suite
runs these checks (``tests/proofs/test_proof_agreement_exhaustive.py``,
``tests/numeric/test_agreement.py``), so their sum is what they add to it.
"""

from __future__ import annotations

import argparse
import time

from ballast.numeric.agreement import check_numeric_agreement
from ballast.proofs.agreement import agreement_configs, check_agreement
from ballast.proofs.reachability import reachable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-states", type=int, default=7_000,
                    help="states per configuration (breadth-first; default 7,000)")
    ap.add_argument("--numeric", action="store_true", help="also the numeric core's check")
    ap.add_argument("--only", default=None, help="one configuration by name")
    args = ap.parse_args()
    total = {"explore": 0.0, "z3": 0.0, "numeric": 0.0}
    print(f"{'configuration':34s} {'states':>7s} {'steps':>8s} {'explore':>8s} "
          f"{'z3 check':>9s} {'ratio':>6s}" + (f" {'numeric':>9s} {'ratio':>6s}"
                                                if args.numeric else ""))
    for name, cfg in agreement_configs().items():
        if args.only is not None and name != args.only:
            continue
        t0 = time.perf_counter()
        rs = reachable(cfg, max_states=args.max_states)
        explore_s = time.perf_counter() - t0
        rep = check_agreement(cfg, rs.states, steps=rs.steps)
        line = (f"{name + ('' if rs.complete else ' (first states)'):34s} "
                f"{len(rs.states):7d} {rep.enabled_steps:8d} {explore_s:7.2f}s "
                f"{rep.seconds:8.2f}s {rep.seconds / explore_s:5.1f}x")
        total["explore"] += explore_s
        total["z3"] += rep.seconds
        if not rep.ok:
            line += f"  DISAGREES: {rep.disagreements[0].what if rep.disagreements else rep.gaps}"
        if args.numeric:
            num = check_numeric_agreement(cfg, rs.states, steps=rs.steps)
            total["numeric"] += num.seconds
            line += f" {num.seconds:8.2f}s {num.seconds / explore_s:5.1f}x"
            if not num.ok:
                line += "  NUMERIC DISAGREES"
        print(line, flush=True)
    print(f"total: explore {total['explore']:.1f} s, Z3 agreement {total['z3']:.1f} s "
          f"({total['z3'] / max(total['explore'], 1e-9):.1f}x)"
          + (f", numeric agreement {total['numeric']:.1f} s "
             f"({total['numeric'] / max(total['explore'], 1e-9):.1f}x)" if args.numeric else ""))


if __name__ == "__main__":
    main()
