"""``ballast explore``: exhaustive exploration of a small configuration.

Exit codes: 0 every property holds over every reachable state, 1 a property
(or deadlock freedom, or liveness) is violated, with its shortest trace written
under ``--report-dir``; 2 bad usage or input; 3 inconclusive (a budget ran out
before every state was visited). Actions that never fire and scenarios never
witnessed are listed as ``vacuous`` (coverage, as in ``ballast check``); with
``--strict-coverage`` they make the exit code 3 as well.
"""

from __future__ import annotations

import argparse
import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ballast.argtypes import path, positive_float, positive_int, seconds, seed
from ballast.cluster import add_scheduler_option, connected, parse_scheduler, require_dask
from ballast.errors import UsageError
from ballast.cli.options import (
    add_model_options,
    add_size_options,
    config_from_args,
    config_line,
    origin,
)
from ballast.model.trace import check_destinations
from ballast.progress import add_quiet_option, meter, shown
from ballast.verdict import CheckResult, Verdict, overall
from ballast.statespace.configs import small_config
from ballast.statespace.explore import Budget, Exploration
from ballast.statespace.liveness import FAIRNESS_CHOICES, WEAK
from ballast.statespace.runner import ENGINES, run_explore

__all__ = ["register"]


DEFAULT_MAX_STATES = 20_000_000
"""The state budget of ``ballast explore`` when none is given (about 2 GiB of visited states
on the reference engine; about 1 GiB on the frontier engine, at 40-60 bytes a state)."""


def register(subparsers: Any) -> None:
    """Add ``explore`` to the ``ballast`` command line."""
    p = subparsers.add_parser(
        "explore", help="visit every reachable state of a small configuration",
        description="Breadth-first exploration of every reachable state: every invariant on "
                    "every state and step (shortest counterexamples), deadlocks, actions and "
                    "scenarios never exercised, and with --liveness whether the balloon can "
                    "and does reach its target under weak fairness of the module and VMM "
                    "(--fairness strong-accept: and a VMM that does not refuse pages forever).")
    add_model_options(p, command="explore")
    add_size_options(p)
    p.add_argument("--small", action="store_true",
                   help="shrink the configuration to the smallest sizes with the same features "
                        "(sizes given with --set or a size flag are kept)")
    sym = p.add_mutually_exclusive_group()
    sym.add_argument("--symmetry", dest="symmetry", action="store_true", default=None,
                     help="identify states equal up to renumbering VMs and MPNs "
                          "(default: on, except with --liveness)")
    sym.add_argument("--no-symmetry", dest="symmetry", action="store_false")
    p.add_argument("--max-states", type=positive_int, default=DEFAULT_MAX_STATES,
                   help=f"stop after N distinct states (default {DEFAULT_MAX_STATES:,}: a "
                        "configuration too large to finish is inconclusive, exit 3, instead "
                        "of filling memory)")
    p.add_argument("--max-seconds", type=seconds, default=None, help="stop after S seconds")
    p.add_argument("--max-mib", type=positive_float, default=None,
                   help="stop when the visited states take about this many MiB")
    p.add_argument("--liveness", action="store_true",
                   help="also check that the balloon can (AG EF) and does (under --fairness) "
                        "reach a feasible target")
    p.add_argument("--fairness", choices=FAIRNESS_CHOICES, default=None,
                   help="what --liveness assumes of runs: 'weak' (default) is weak fairness of "
                        "every module and VMM action per VM; 'strong-accept' adds strong "
                        "fairness of the VMM accepting an inflate report as far as it may "
                        "(all valid pages it has room for; with refusal on, "
                        "a VMM that refuses forever then counts as unfair)")
    p.add_argument("--stop-at-first", action="store_true",
                   help="stop at the first violation found (its trace is still a shortest one)")
    p.add_argument("--strict-coverage", action="store_true",
                   help="exit 3 when an action never fires or a scenario is never witnessed")
    p.add_argument("--engine", choices=ENGINES, default=None,
                   help="'frontier' (the default): states as packed rows, explored level "
                        "by level in whole-array steps; 'reference': the object-based "
                        "explorer it is judged by (same results, liveness and the state "
                        "graph included; --no-cache runs on the reference engine)")
    # The same finite, positive size as --max-mib: inf or NaN would reach int() as bytes.
    p.add_argument("--memory-budget", type=positive_float, default=None, metavar="MIB",
                   help="memory (MiB) beyond which the visited states and the frontier "
                        "spill to sorted runs on disk (frontier engine); the verdict says "
                        "how much was spilled")
    p.add_argument("--no-cache", dest="cache", action="store_false",
                   help="take every step straight from the model, without the transition "
                        "cache (slower, same results)")
    p.add_argument("--dot", type=path, default=None, help="write the state graph as DOT")
    p.add_argument("--graphml", type=path, default=None, help="write the state graph as GraphML")
    p.add_argument("--seed", type=seed, default=0, help="unused: exploration is exhaustive")
    p.add_argument("--report-dir", type=path, default=Path("reports/out"))
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    add_scheduler_option(p)
    add_quiet_option(p)
    p.set_defaults(func=_cmd_explore)


def _budget(args: argparse.Namespace) -> Budget:
    for name in ("max_states", "max_seconds", "max_mib", "memory_budget"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    mib = args.max_mib
    return Budget(args.max_states, args.max_seconds,
                  int(mib * 1024 * 1024) if mib is not None else None)


def _as_json(check: CheckResult, warnings: list[str]) -> dict[str, Any]:
    return {
        "checker": check.checker, "verdict": check.verdict.value,
        "exit_code": check.verdict.exit_code, "seconds": round(check.seconds, 3),
        "stats": check.stats, "warnings": warnings,
        "results": [{"property": r.property, "kind": r.kind, "verdict": r.verdict.value,
                     "detail": r.detail,
                     "counterexample": str(r.counterexample) if r.counterexample else None,
                     "evidence": r.evidence} for r in check.results],
    }


def _print_text(check: CheckResult, warnings: list[str], configuration: str) -> None:
    from rich.markup import escape

    from ballast.console import console

    out = console()
    out.print(configuration, markup=False)
    for w in warnings:
        out.print(f"[yellow]warning:[/] {w}")
    st = check.stats
    out.print(f"engine: {st['engine']} ({st['engine_reason']})", markup=False)
    out.print(f"explored {st['states']:,} states, {st['transitions']:,} transitions, depth "
              f"{st['depth']}, {st['seconds']} s ({st['stop']}; symmetry "
              f"{'on' if st['symmetry'] else 'off'}; ~{st['bytes_per_state']} bytes/state)")
    colour = {Verdict.PASS: "green", Verdict.VIOLATION: "red", Verdict.INCONCLUSIVE: "yellow",
              Verdict.VACUOUS: "yellow", Verdict.SKIPPED: "dim"}
    # Results that say the same thing (a budget that ran out, an action never fired) are
    # one line naming each of them; a counterexample keeps a line of its own.
    groups: dict[tuple[Verdict, str, str, str], list[str]] = {}
    for r in check.results:
        if r.kind == "action" and r.verdict is Verdict.PASS:
            continue
        tail = f" -> {r.counterexample}" if r.counterexample is not None else ""
        key = (r.verdict, r.kind, r.detail + tail, r.property if tail else "")
        groups.setdefault(key, []).append(r.property)
    complete = st["stop"] == "complete"
    for (verdict, kind, detail, _), names in groups.items():
        what = names[0] if len(names) == 1 else f"{len(names)} {kind}s ({', '.join(names)})"
        # What a complete search never met cannot happen in this configuration: no finding
        # (the verdict is the properties'), so not labelled as a vacuous (exit 3) check.
        label = "unreachable" if complete and verdict is Verdict.VACUOUS else verdict.value
        out.print(f"[{colour[verdict]}]{label:12}[/] {kind:9} {escape(what)}: "
                  f"{escape(detail)}", highlight=False)
    out.print(f"verdict (properties): {check.verdict.value}")


def _check_partitioned(args: argparse.Namespace) -> None:
    """What a partitioned exploration (``--scheduler``) does not offer is bad usage, said
    before any cluster starts."""
    alone = [flag for flag, on in (
        ("--liveness", args.liveness), ("--dot", args.dot is not None),
        ("--graphml", args.graphml is not None), ("--stop-at-first", args.stop_at_first),
        ("--engine", args.engine is not None), ("--max-seconds", args.max_seconds is not None),
        ("--max-mib", args.max_mib is not None)) if on]
    if alone:
        raise UsageError(f"--scheduler: {', '.join(alone)} run on one machine only (a "
                         "partitioned exploration checks safety, deadlocks and coverage; its "
                         "budget is --max-states)")


def _cmd_explore(args: argparse.Namespace) -> int:
    cfg = config_from_args(args, shrink=small_config if args.small else None)
    if args.fairness is not None and not args.liveness:
        raise UsageError("--fairness only applies with --liveness")
    symmetry = args.symmetry if args.symmetry is not None else not args.liveness
    budget = _budget(args)
    cluster = parse_scheduler(args.scheduler) if args.scheduler is not None else None
    if cluster is not None:
        require_dask()
        _check_partitioned(args)
    check_destinations([args.dot, args.graphml], folders=[args.report_dir],
                       inputs=[args.config])
    with ExitStack() as stack:
        client = stack.enter_context(connected(cluster)) if cluster is not None else None
        with shown(not args.quiet), meter("explore", unit="states") as states:
            def progress(ex: Exploration) -> None:
                states.update(ex.states, note=f"depth {ex.max_depth}")
            run = run_explore(cfg, faults=tuple(args.fault), symmetry=symmetry, budget=budget,
                              liveness=args.liveness, report_dir=args.report_dir,
                              dot=args.dot, graphml=args.graphml,
                              stop_on=args.stop_at_first, progress=progress,
                              fairness=args.fairness or WEAK, cache=args.cache,
                              engine=args.engine, client=client,
                              memory_budget=(None if args.memory_budget is None
                                             else int(args.memory_budget * 2**20)))
            states.update(run.exploration.states, note=f"depth {run.exploration.max_depth}")
    warnings = list(run.warnings)
    if args.small and args.fault and run.result.verdict is Verdict.PASS:
        # --small keeps a configuration's features, not the sizes a seeded fault may need to
        # show (a second VM to share a page with, a page that holds no data): say so.
        warnings.append(f"--small shrank the configuration, and the seeded fault(s) "
                        f"{', '.join(args.fault)} broke nothing in it; a fault may need more "
                        f"pages or VMs than --small keeps: `ballast check --fault "
                        f"{args.fault[0]} --checkers explore` explores slices sized for it")
    if args.json:
        print(json.dumps(_as_json(run.result, warnings), indent=2, default=str))
    else:
        _print_text(run.result, warnings, config_line(cfg, args.fault, origin(args)))
    kinds = ("invariant", "scenario", "action") if args.strict_coverage else ("invariant",)
    return int(overall(r.verdict for r in run.result.results if r.kind in kinds).exit_code)
