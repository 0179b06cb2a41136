"""Benchmark: the whole proof suite on a configuration, with the time and work of every query.

    python benchmarks/bench_proofs.py [--preset default] [--jobs 2] [--rlimit N]

Prints each query's verdict, seconds and Z3 resource units ("rlimit count"), the
slowest actions, the costliest query against the default per-query ``--rlimit``
(the headroom that makes the proofs independent of the machine's load), the wall
time of the whole suite against the 60 s target, and, as a baseline measured in
the same run, the same suite on the ``core`` preset (the ratio shows how the cost
grows with the configuration).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from ballast.budget import QUERY_RLIMIT
from ballast.model.config import preset
from ballast.proofs.limits import SolverLimit
from ballast.proofs.run import prove


def _run(name: str, jobs: int, rlimit: int, quiet: bool) -> float:
    cfg = preset(name)
    t0 = time.perf_counter()
    report = prove(cfg, limit=SolverLimit(rlimit), jobs=jobs, report_dir=None, bmc_depth=4)
    wall = time.perf_counter() - t0
    per_action: dict[str, float] = defaultdict(float)
    for q in report.queries:
        if not quiet:
            print(f"{q.verdict.value:8s} {q.seconds:8.3f}s {q.evidence.get('rlimit', 0):>12,}  "
                  f"{q.name}")
        per_action[q.action or "-"] += q.seconds
    costliest = max(report.queries, key=lambda q: int(q.evidence.get("rlimit", 0)))
    most = int(costliest.evidence.get("rlimit", 0))
    print(f"\n[{name}] costliest query: {costliest.name}: {most:,} resource units; "
          f"--rlimit {rlimit:,} leaves {rlimit / max(1, most):.1f}x headroom; all queries "
          f"{sum(int(q.evidence.get('rlimit', 0)) for q in report.queries):,} units")
    proved = sum(q.verdict.value == "proved" for q in report.queries)
    print(f"\n[{name}] {proved}/{len(report.queries)} queries proved; "
          f"wall {wall:.1f} s with {jobs} worker(s); solver time "
          f"{sum(per_action.values()):.1f} s")
    for action, secs in sorted(per_action.items(), key=lambda x: -x[1])[:8]:
        print(f"  {action:24s} {secs:7.2f} s")
    for f in report.findings:
        print(f"  finding: {f.headline}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--rlimit", type=int, default=QUERY_RLIMIT,
                    help="Z3 resource units per query")
    ap.add_argument("--quiet", action="store_true", help="omit the per-query lines")
    args = ap.parse_args()
    base = _run("core", args.jobs, args.rlimit, True)
    wall = _run(args.preset, args.jobs, args.rlimit, args.quiet)
    print(f"\n{args.preset}: {wall:.1f} s (target < 60 s: {'met' if wall < 60 else 'NOT met'}); "
          f"core baseline {base:.1f} s; ratio {wall / base:.1f}x")


if __name__ == "__main__":
    main()
