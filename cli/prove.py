"""``ballast prove``: the Z3 proofs from the command line.

Prints one line per query (verdict, seconds, Z3 resource units, name, the
conjuncts its proof needed), then what each failure means, the coverage of the
encoding and the scope of the proofs. ``--json`` prints the same as one JSON
document. Every query works within ``--rlimit`` Z3 resource units (not seconds),
so the same command proves the same queries on an idle and on a loaded machine.
Exit code: 0 every query proved, 1 a reachable violation (counterexample
written), 3 inconclusive (a resource limit ran out, the ``--max-seconds`` limit
was reached, an invariant needs strengthening).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ballast.budget import BMC_RLIMIT, QUERY_RLIMIT, Deadline
from ballast.argtypes import natural_int, path, positive_int, rlimit, seconds, seed
from ballast.errors import UsageError
from ballast.progress import add_quiet_option, meter, shown
from ballast.model.config import Config
from ballast.cli.options import (
    add_model_options,
    add_size_options,
    config_from_args,
    config_line,
    origin,
)
from ballast.proofs.induction import QueryResult
from ballast.proofs.limits import SolverLimit
from ballast.proofs.queries import query_names, select
from ballast.proofs.reachability import EXACT_MAX_STATES
from ballast.proofs.run import ProofReport, coverage, prove
from ballast.reports.commands import replay_command

__all__ = ["format_report", "handle", "register", "sizes_up_to"]


def register(subparsers: Any) -> None:
    """Add the ``prove`` subcommand."""
    p = subparsers.add_parser("prove", help="prove the model's invariants with Z3",
                              description=__doc__)
    add_model_options(p, command="prove")
    add_size_options(p)
    p.add_argument("--rlimit", type=rlimit, default=QUERY_RLIMIT, metavar="N",
                   help=f"Z3 resource units per query (default {QUERY_RLIMIT:,}); running "
                        "out is inconclusive")
    p.add_argument("--bmc-depth", type=natural_int, default=6, metavar="K",
                   help="bounded model checking depth for deciding reachability (default 6)")
    p.add_argument("--bmc-rlimit", type=rlimit, default=BMC_RLIMIT, metavar="N",
                   help=f"Z3 resource units per bounded search (default {BMC_RLIMIT:,})")
    p.add_argument("--max-seconds", type=seconds, default=None, metavar="S",
                   help="wall-clock limit for the whole run (default: none); queries it "
                        "stops are unknown (inconclusive)")
    p.add_argument("--timeout", type=seconds, dest="max_seconds", help=argparse.SUPPRESS)
    p.add_argument("--bmc", action="store_true",
                   help="also run bounded model checking of every property to --bmc-depth")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="worker processes (default: CPUs)")
    p.add_argument("--seed", type=seed, default=0,
                   help="accepted for symmetry; proofs are exhaustive")
    p.add_argument("--report-dir", type=path, default=Path("reports/out"))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--query", metavar="NAME", default=None,
                   help="re-run one query alone, named as the report prints it "
                        "(for example 'isolation preserved by vmm_share')")
    p.add_argument("--list-queries", action="store_true",
                   help="print the name of every query of this configuration and exit; "
                        "with --query, only the query it names (an unknown name is exit 2)")
    p.add_argument("--reach-states", type=natural_int, default=EXACT_MAX_STATES, metavar="N",
                   help="decide a counterexample to induction's reachability exactly when the "
                        "configuration has at most N reachable states "
                        f"(default {EXACT_MAX_STATES:,}; 0: bounded model checking alone)")
    p.add_argument("--up-to", action="store_true",
                   help="prove every size up to the configuration's: 1..vms VMs, 1..guest_pages "
                        "PPNs, 1..host_pages host pages (a summary line per size)")
    add_quiet_option(p)
    p.set_defaults(func=handle)


def sizes_up_to(cfg: Config) -> list[Config]:
    """Every configuration with the features of ``cfg`` and sizes up to its own.

    >>> from ballast.model.config import preset
    >>> [(c.vms, c.guest_pages, c.machine_pages) for c in sizes_up_to(preset("core"))][:4]
    [(1, 1, 1), (1, 1, 2), (1, 1, 3), (1, 2, 1)]
    >>> len(sizes_up_to(preset("core")))
    9
    """
    out = []
    for vms in range(1, cfg.vms + 1):
        for pages in range(1, cfg.guest_pages + 1):
            for host_pages in range(1, cfg.host_pages + 1):
                out.append(cfg.replace(
                    vms=vms, guest_pages=pages, machine_pages=host_pages * cfg.host_page_units,
                    hostile_vms=frozenset(v for v in cfg.hostile_vms if v < vms)))
    return out


_SEVERITY = {0: 0, 3: 1, 1: 2}


def _handle_up_to(args: argparse.Namespace, cfg: Config) -> int:
    worst = 0
    rows: list[dict[str, Any]] = []
    limit, bmc_limit = _limits(args)
    sizes = meter("sizes", total=len(sizes_up_to(cfg)), unit="configurations",
                  rate=False)
    for size in sizes_up_to(cfg):
        sizes.update(len(rows), note=f"{size.vms} VMs x {size.guest_pages} PPNs, "
                                     f"{size.machine_pages} MPNs")
        report = prove(size, faults=tuple(args.fault), bmc_depth=args.bmc_depth,
                       report_dir=args.report_dir, jobs=args.jobs, bmc_all=args.bmc,
                       limit=limit, bmc_limit=bmc_limit, reach_states=args.reach_states)
        code = int(report.exit_code)
        proved = sum(q.verdict.value == "proved" for q in report.queries)
        rows.append({"vms": size.vms, "guest_pages": size.guest_pages,
                     "machine_pages": size.machine_pages, "exit": code,
                     "proved": proved, "queries": len(report.queries),
                     "seconds": round(report.seconds, 2),
                     "findings": [f.headline for f in report.findings]})
        if _SEVERITY.get(code, 1) > _SEVERITY.get(worst, 1):
            worst = code
    sizes.update(len(rows), note="")  # the last size counted too: the final line says all
    sizes.close()
    if args.json:
        sys.stdout.write(json.dumps({"sizes": rows, "exit": worst}, indent=1) + "\n")
        return worst
    sys.stdout.write(config_line(cfg, args.fault, origin(args)) + "\n")
    for r in rows:
        verdict = {0: "proved", 1: "violated", 3: "inconclusive"}.get(r["exit"], "error")
        sys.stdout.write(f"{verdict:12s} {r['vms']} VMs x {r['guest_pages']} PPNs, "
                         f"{r['machine_pages']} MPNs: {r['proved']}/{r['queries']} queries in "
                         f"{r['seconds']} s\n")
        for h in r["findings"]:
            sys.stdout.write(f"  {h}\n")
    sys.stdout.write(f"scope: every size up to {cfg.vms} VMs x {cfg.guest_pages} PPNs x "
                     f"{cfg.machine_pages} MPNs ({len(rows)} configurations)\n")
    return worst


def _limits(args: argparse.Namespace) -> tuple[SolverLimit, SolverLimit]:
    """The per-query and per-search budgets an invocation asks for (one wall-clock
    deadline for the whole run, only with --max-seconds)."""
    deadline = Deadline(args.max_seconds).epoch
    return (SolverLimit(args.rlimit, deadline),
            SolverLimit(args.bmc_rlimit, deadline, "--bmc-rlimit"))


def query_line(q: QueryResult) -> str:
    """One line for one query."""
    core = f"  [needs: {', '.join(q.core)}]" if q.core else ""
    if q.kind == "safety" and q.verdict.value == "proved":
        # Step 3 says whether the property was derived from other conjuncts or not.
        return f"{q.verdict.value:8s} {q.seconds:7.3f}s  {q.name}  [{q.detail}]"
    extra = f"  {q.detail}" if q.detail and q.verdict.value != "proved" else ""
    units = q.evidence.get("rlimit")
    work = f"{units:>12,}" if isinstance(units, int) else " " * 12
    return f"{q.verdict.value:8s} {q.seconds:7.3f}s {work}  {q.name}{core}{extra}"


def _gap_lines(report: ProofReport) -> list[str]:
    """The encoding's gaps as INCONCLUSIVE lines: one per gap, naming every property it
    keeps from being proved (not one identical line per property)."""
    from ballast.model.invariants import INVARIANTS

    gaps = report.gaps
    if not gaps:
        return []
    kept: dict[str, list[str]] = {}
    for name, prop in INVARIANTS.items():
        if prop.feature(report.cfg) and gaps.affects(name):
            kept.setdefault(gaps.what(name), []).append(name)
    fault = "; cannot check that fault" if gaps.faults else ""
    lines = []
    for what, names in kept.items():
        props = names[0] if len(names) == 1 else f"{len(names)} properties ({', '.join(names)})"
        lines.append(f"INCONCLUSIVE {gaps.encodes.backend}: {what}{fault}; {props} not proved")
    return lines


def format_report(report: ProofReport) -> str:
    """The whole human-readable report."""
    lines = [query_line(q) for q in report.queries]
    for f in report.findings:
        lines += ["", f.headline]
        if f.counterexample is not None:
            lines.append(f"  counterexample: {f.counterexample}  (replay: "
                         f"{replay_command(f.counterexample)})")
        at = "  "
        if f.trace is not None:
            # The headline is the trace's; what follows is the CTI's, another state.
            lines.append("  the counterexample to induction it was found from (a state that "
                         "satisfies the inductive invariant, not a state of the trace):")
            at = "    "
        lines.append(f"{at}model's own check after the step: {f.cti.python_post_message}")
        if f.cti.python_pre_violations:
            lines.append(f"{at}(pre-state already breaks "
                         f"{', '.join(f.cti.python_pre_violations)})")
        lines.append(f"{at}action: {f.cti.action}")
        for where, a, b in f.diff:
            lines.append(f"{at}{where}: {a} -> {b}")
    cov = coverage(report.cfg)
    lines += ["", f"actions encoded: {len(cov['actions_encoded'])}; not encoded: "
                  f"{', '.join(cov['actions_not_encoded']) or 'none'}",
              f"invariants encoded: {', '.join(cov['invariants_encoded'])}; step forms: "
              f"{', '.join(cov['step_forms_encoded'])}; not encoded: "
              f"{', '.join(cov['invariants_not_encoded']) or 'none'}",
              f"scope: {report.scope}"]
    lines += _gap_lines(report)
    step3 = [q for q in report.queries if q.kind == "safety" and q.verdict.value == "proved"]
    if step3:
        derived = [q.conjunct for q in step3 if q.evidence.get("derived")]
        own = [q.conjunct for q in step3 if not q.evidence.get("derived")]
        lines.append(f"step 3: {len(derived)} of {len(step3)} properties derived from other "
                     f"conjuncts; their own strengthening: {', '.join(own) or 'none'}")
    n = len(report.queries)
    proved = sum(q.verdict.value == "proved" for q in report.queries)
    units = sum(int(q.evidence.get("rlimit", 0)) for q in report.queries)
    lines.append(f"{proved}/{n} queries proved in {report.seconds:.1f} s "
                 f"({units:,} Z3 resource units)")
    return "\n".join(lines)


def handle(args: argparse.Namespace) -> int:
    """Run the proofs and report; returns the exit code."""
    if args.rlimit < 1 or args.bmc_rlimit < 1 or args.bmc_depth < 0:
        raise UsageError("--rlimit and --bmc-rlimit must be positive and --bmc-depth "
                         "not negative")
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise UsageError("--max-seconds must be positive")
    if args.reach_states < 0:
        raise UsageError("--reach-states must not be negative")
    most = 4 * (os.cpu_count() or 1)
    if args.jobs is not None and args.jobs > most:  # as fuzz's --workers: Z3 processes
        raise UsageError(f"--jobs {args.jobs}: at most {most} (4 per processor) on this "
                         "machine")
    cfg = config_from_args(args)
    if args.list_queries:
        if args.up_to:
            raise UsageError("--list-queries lists the queries of one configuration, not with "
                             "--up-to")
        # With --query, the query it selects, by the name the list gives it (a bad name is
        # a usage error, as when it runs).
        names = query_names(cfg) if args.query is None else [select(cfg, args.query).name]
        sys.stdout.write("".join(f"{n}\n" for n in names))
        return 0
    if args.up_to:
        if args.query is not None:
            raise UsageError("--query runs one query of one configuration, not with --up-to")
        with shown(not args.quiet):
            return _handle_up_to(args, cfg)
    if args.query is not None:
        select(cfg, args.query)  # a bad name is a usage error before any work
    limit, bmc_limit = _limits(args)
    with shown(not args.quiet):  # on stderr, a terminal only: stdout carries the results
        report = prove(cfg, faults=tuple(args.fault), bmc_depth=args.bmc_depth,
                       report_dir=args.report_dir, jobs=args.jobs, bmc_all=args.bmc,
                       limit=limit, bmc_limit=bmc_limit, query=args.query,
                       reach_states=args.reach_states)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=1) + "\n")
    else:
        sys.stdout.write(config_line(cfg, args.fault, origin(args)) + "\n")
        sys.stdout.write(format_report(report) + "\n")
    return int(report.exit_code)
