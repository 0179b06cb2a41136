"""``ballast prove``: the Z3 proofs from the command line.

Prints one line per query (verdict, seconds, name, the conjuncts its proof
needed), then what each failure means, the coverage of the encoding and the
scope of the proofs. ``--json`` prints the same as one JSON document. Exit
code: 0 every query proved, 1 a reachable violation (counterexample written),
3 inconclusive (a solver unknown, a timeout, an invariant needing strengthening).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ballast.errors import UsageError
from ballast.model.config import Config, load_config, preset
from ballast.model.faults import FAULTS
from ballast.proofs.induction import QueryResult
from ballast.proofs.run import ProofReport, coverage, prove

__all__ = ["register", "handle", "format_report"]


def register(subparsers: Any) -> None:
    """Add the ``prove`` subcommand."""
    p = subparsers.add_parser("prove", help="prove the model's invariants with Z3",
                              description=__doc__)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default=None, help="shipped configuration (default: default)")
    src.add_argument("--config", type=Path, default=None, help="configuration TOML file")
    p.add_argument("--fault", action="append", default=[], metavar="NAME",
                   help="seed a broken action (repeatable): " + ", ".join(sorted(FAULTS)))
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="per-query solver timeout in seconds (default 10)")
    p.add_argument("--bmc-depth", type=int, default=6, metavar="K",
                   help="bounded model checking depth for deciding reachability (default 6)")
    p.add_argument("--bmc-timeout", type=float, default=60.0, metavar="S",
                   help="time for each bounded search (default 60)")
    p.add_argument("--bmc", action="store_true",
                   help="also run bounded model checking of every property to --bmc-depth")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPUs)")
    p.add_argument("--seed", type=int, default=0, help="accepted for symmetry; proofs are exhaustive")
    p.add_argument("--report-dir", type=Path, default=Path("reports/out"))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=handle)


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config) if args.config is not None else preset(args.preset or "default")
    for name in args.fault:
        if name not in FAULTS:
            raise UsageError(f"unknown fault {name!r}; expected one of {', '.join(sorted(FAULTS))}")
        cfg = cfg.replace(**FAULTS[name].config)
    return cfg


def query_line(q: QueryResult) -> str:
    """One line for one query."""
    core = f"  [needs: {', '.join(q.core)}]" if q.core else ""
    extra = f"  {q.detail}" if q.detail and q.verdict.value != "proved" else ""
    return f"{q.verdict.value:8s} {q.seconds:7.3f}s  {q.name}{core}{extra}"


def format_report(report: ProofReport) -> str:
    """The whole human-readable report."""
    lines = [query_line(q) for q in report.queries]
    for f in report.findings:
        lines += ["", f.headline]
        lines.append(f"  model's own check after the step: {f.cti.python_post_message}")
        if f.cti.python_pre_violations:
            lines.append(f"  (pre-state already breaks {', '.join(f.cti.python_pre_violations)})")
        lines.append(f"  action: {f.cti.action}")
        for path, a, b in f.diff:
            lines.append(f"  {path}: {a} -> {b}")
        if f.counterexample is not None:
            lines.append(f"  counterexample: {f.counterexample}")
    cov = coverage(report.cfg)
    lines += ["", f"actions encoded: {len(cov['actions_encoded'])}; not encoded: "
                  f"{', '.join(cov['actions_not_encoded']) or 'none'}",
              f"invariants encoded: {', '.join(cov['invariants_encoded'])}; step forms: "
              f"{', '.join(cov['step_forms_encoded'])}; not encoded: "
              f"{', '.join(cov['invariants_not_encoded']) or 'none'}",
              f"scope: {report.scope}"]
    n = len(report.queries)
    proved = sum(q.verdict.value == "proved" for q in report.queries)
    lines.append(f"{proved}/{n} queries proved in {report.seconds:.1f} s")
    return "\n".join(lines)


def handle(args: argparse.Namespace) -> int:
    """Run the proofs and report; returns the exit code."""
    if args.timeout <= 0 or args.bmc_depth < 0:
        raise UsageError("--timeout must be positive and --bmc-depth not negative")
    cfg = _config(args)
    report = prove(cfg, faults=tuple(args.fault), timeout_s=args.timeout,
                   bmc_depth=args.bmc_depth, bmc_timeout_s=args.bmc_timeout,
                   report_dir=args.report_dir, jobs=args.jobs, bmc_all=args.bmc)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=1) + "\n")
    else:
        sys.stdout.write(format_report(report) + "\n")
    return int(report.exit_code)
