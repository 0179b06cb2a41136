"""The ``ballast`` command.

Exit codes, for every subcommand: 0 every property holds, 1 a property is
violated (or a trace shows an illegal step), 2 bad usage or bad input,
3 inconclusive (a budget ran out, a solver said unknown, a scenario was never
exercised).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ballast.budget import WorkBudget
    from ballast.check import CheckReport
    from ballast.model.config import Config
    from ballast.verdict import CheckResult

from ballast.errors import BallastError, InputError, UsageError
from ballast.verdict import EXIT_OK, EXIT_USAGE, EXIT_VIOLATION

__all__ = ["add_model_options", "build_parser", "config_from_args", "main"]

PLUGINS = (
    "ballast.statespace.cli",
    "ballast.proofs.cli",
    "ballast.numeric.cli",
    "ballast.validate.cli",
    "ballast.validate.cli_adapter",
    "ballast.reports.cli",
)
"""Modules that add subcommands through ``register(subparsers)``."""


def add_model_options(p: argparse.ArgumentParser, *, default_preset: str = "default") -> None:
    """--preset, --config and --fault, shared by every subcommand that builds a model."""
    p.add_argument("--preset", default=None,
                   help=f"named configuration (default: {default_preset}); see 'ballast list presets'")
    p.add_argument("--config", type=Path, default=None,
                   help="TOML file with Config fields (may start from 'preset = NAME')")
    p.add_argument("--fault", action="append", default=[], metavar="NAME",
                   help="seed a broken variant of the model (repeatable); see 'ballast list faults'")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="change one Config field, TOML syntax for the value "
                        "(e.g. --set vms=3 --set sharing=false --set module='\"application\"')")
    p.add_argument("--vms", type=int, default=None, help="number of VMs")
    p.add_argument("--guest-pages", type=int, default=None, help="PPNs per VM")
    p.add_argument("--machine-pages", type=int, default=None, help="MPNs on the host")
    p.add_argument("--host-page-units", type=int, default=None,
                   help="balloon units per host page (1, 16, 512, ...)")
    p.set_defaults(default_preset=default_preset)


def config_from_args(args: argparse.Namespace) -> "Config":
    """The Config an invocation asks for, with the seeded faults' configuration changes."""
    from ballast.model.config import Config, load_config, preset
    from ballast.model.faults import FAULTS

    if args.preset and args.config:
        raise UsageError("give --preset or --config, not both")
    cfg = load_config(args.config) if args.config else preset(args.preset or args.default_preset)
    changes: dict[str, object] = {}
    for item in getattr(args, "overrides", []):
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise InputError("--set", None, f"expected KEY=VALUE, got {item!r}")
        try:
            changes[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            changes[key.strip()] = raw.strip()
    for flag in ("vms", "guest_pages", "machine_pages", "host_page_units"):
        value = getattr(args, flag, None)
        if value is not None:
            changes[flag] = value
    if changes:
        cfg = Config.from_dict({**cfg.to_dict(), **changes}, source="command line")
    for name in args.fault:
        if name not in FAULTS:
            raise UsageError(f"unknown fault {name!r}; expected one of {', '.join(sorted(FAULTS))}")
        cfg = cfg.replace(**FAULTS[name].config)
    return cfg


# -- check ------------------------------------------------------------------

def _cmd_check(args: argparse.Namespace) -> int:
    from ballast.check import BUILTIN, SUITES, CheckOptions, run_check
    from ballast.console import console, render_check

    cfg = config_from_args(args)
    known = BUILTIN + tuple(SUITES)
    checkers = tuple(c.strip() for c in args.checkers.split(",") if c.strip()) \
        if args.checkers else known
    bad = [c for c in checkers if c not in known]
    if bad:
        raise UsageError(f"unknown checker(s) {', '.join(bad)}; expected {', '.join(known)}")
    unseeded = ("explore", "prove")  # exhaustive searches: a seed changes nothing
    if args.seed is not None and all(c in unseeded for c in checkers):
        raise UsageError(f"--seed means nothing to {', '.join(checkers)}: they search "
                         "exhaustively; drop --seed or add a seeded checker (random, "
                         "hypothesis, numeric, validate)")
    if args.hypothesis_profile is not None:
        from ballast.stateful import profile_settings

        profile_settings(args.hypothesis_profile)  # an unknown name is a usage error
    if args.examples is not None and args.examples < 1:
        raise UsageError("--examples must be at least 1")
    opts = CheckOptions(seed=args.seed or 0, budget=_work_budget(args), report_dir=args.report_dir,
                        checkers=checkers, random_runs=args.random_runs,
                        random_steps=args.random_steps,
                        hypothesis_examples=args.examples,
                        hypothesis_profile=args.hypothesis_profile,
                        hypothesis_db=args.hypothesis_db)
    out = console()
    report = run_check(cfg, tuple(args.fault), opts,
                       progress=lambda name: out.print(f"[dim]running {name} ...[/]"))
    render_check(out, report)
    if args.junit or args.sarif or args.summary_md or args.json:
        from ballast.reports.summary import write_summary

        write_summary(report.results + [_pooled(report)], markdown=args.summary_md,
                      json_path=args.json, junit=args.junit, sarif=args.sarif)
    return report.verdict.exit_code


def _work_budget(args: argparse.Namespace) -> "WorkBudget":
    from ballast.budget import WorkBudget

    counts = {"random_runs": args.random_runs, "random_steps": args.random_steps,
              "examples": args.examples, "max_states": args.max_states, "rlimit": args.rlimit,
              "bmc_rlimit": args.bmc_rlimit, "numeric_seeds": args.numeric_seeds,
              "numeric_batches": args.numeric_batches}
    for name, value in counts.items():
        if value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.max_seconds is not None and args.max_seconds < 0:
        raise UsageError(f"--max-seconds must not be negative, got {args.max_seconds:g}")
    return WorkBudget(max_states=args.max_states, rlimit=args.rlimit,
                      bmc_rlimit=args.bmc_rlimit, numeric_seeds=args.numeric_seeds,
                      numeric_batches=args.numeric_batches, max_seconds=args.max_seconds)


def _pooled(report: "CheckReport") -> "CheckResult":
    from ballast.verdict import CheckResult

    return CheckResult("coverage", list(report.pooled), 0.0)


# -- run --------------------------------------------------------------------

def _cmd_run(args: argparse.Namespace) -> int:
    from ballast.console import console
    from ballast.model.system import BalloonModel
    from ballast.model.trace import write_trace
    from ballast.randomwalk import random_run

    cfg = config_from_args(args)
    if args.steps < 0:
        raise UsageError("--steps must not be negative")
    run = random_run(BalloonModel(cfg, args.fault), args.seed, args.steps,
                     record_states=not args.no_states)
    write_trace(args.out, run.trace)
    out = console()
    out.print(f"seed {args.seed}: {len(run.trace.steps)} steps written to {args.out}")
    if run.violation is not None:
        out.print(f"[bold red]VIOLATION[/] {run.violation.property} at step "
                  f"{len(run.trace.steps)}: {run.violation.message}")
        return EXIT_VIOLATION
    return EXIT_OK


# -- replay -----------------------------------------------------------------

def _cmd_replay(args: argparse.Namespace) -> int:
    from ballast.console import console, render_replay
    from ballast.model.replay import ReplayOutcome, replay
    from ballast.model.trace import read_trace

    trace = read_trace(args.trace)
    if args.python:
        from ballast.program import python_program

        sys.stdout.write(python_program(trace))
        return EXIT_OK
    result = replay(trace, keep_states=False)
    out = console()
    if result.outcome is ReplayOutcome.OK and \
            (trace.header.expect or {}).get("lasso_start") is not None:
        from ballast.statespace.traces import check_lasso

        # A liveness counterexample breaks no safety property: its lasso is the claim.
        lasso = check_lasso(trace, str(args.trace))
        if lasso is not None:
            out.print(f"{args.trace}: {lasso.describe()}")
            out.print(f"  {result.describe().replace('every property', 'every safety property')}")
            return EXIT_VIOLATION if lasso.confirmed else EXIT_OK
    render_replay(out, str(args.trace), result)
    return EXIT_OK if result.outcome is ReplayOutcome.OK else EXIT_VIOLATION


# -- list -------------------------------------------------------------------

def _cmd_list(args: argparse.Namespace) -> int:
    from ballast.console import console
    from ballast.model import ACTIONS, FAULTS, INVARIANTS, PRESETS, SOMETIMES

    out = console()
    what = args.what
    if args.backends or args.json:
        return _list_backends(what, args.json)
    if what == "invariants":
        for p in INVARIANTS.values():
            out.print(f"{p.name:28} [{p.scope}] {p.summary}")
    elif what == "actions":
        for a in ACTIONS.values():
            out.print(f"{a.name:22} {a.actor.value:7} ({', '.join(a.params)}) "
                      f"{' '.join(a.doc.split(chr(10) * 2)[0].split())}")
    elif what == "scenarios":
        for sc in SOMETIMES.values():
            out.print(f"{sc.name:30} {sc.doc}")
    elif what == "faults":
        for f in FAULTS.values():
            out.print(f"{f.name:28} breaks {f.breaks:26} {f.doc}")
    else:
        for name, cfg in PRESETS.items():
            feats = [k for k in ("sharing", "host_swap", "refusal", "reset", "deflate_on_oom",
                                 "processors") if getattr(cfg, k)]
            out.print(f"{name:12} {cfg.vms} VMs x {cfg.guest_pages} PPNs, {cfg.machine_pages} "
                      f"MPNs, host page {cfg.host_page_units} unit(s), module {cfg.module.value}"
                      f"{', hostile ' + str(sorted(cfg.hostile_vms)) if cfg.hostile_vms else ''}"
                      f"{'; ' + ', '.join(feats) if feats else ''}")
    return EXIT_OK


def _list_backends(what: str, as_json: bool) -> int:
    import json

    from ballast.backends import matrix, matrix_json
    from ballast.console import console, render_backends

    if what not in ("actions", "invariants", "faults"):
        raise UsageError(f"--backends lists actions, invariants or faults, not {what}")
    if as_json:
        sys.stdout.write(json.dumps(matrix_json(what), indent=1) + "\n")
    else:
        render_backends(console(), what, matrix(what), plain=not sys.stdout.isatty())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="ballast",
        description="Reference model and verification suite for memory ballooning.",
        epilog="exit codes: 0 holds, 1 violated, 2 bad usage or input, 3 inconclusive")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from ballast.budget import (BMC_RLIMIT, EXPLORE_STATES, NUMERIC_BATCHES, NUMERIC_SEEDS,
                                QUERY_RLIMIT)

    p = sub.add_parser("check", help="run every checker on a configuration")
    add_model_options(p)
    p.add_argument("--seed", type=int, default=None,
                   help="first seed of the random runs, seed of the Hypothesis machine "
                        "(same seed, same run) and of the numeric and validation runs "
                        "(default 0; refused when only exhaustive checkers run)")
    p.add_argument("--checkers", default=None,
                   help="comma-separated subset: random,hypothesis,explore,prove,numeric,validate")
    budget = p.add_argument_group(
        "work budgets", "counted in work, so a verdict does not depend on the machine's "
                        "speed or load; a budget that runs out is inconclusive (exit 3)")
    budget.add_argument("--random-runs", type=int, default=300,
                        help="random runs, seeds --seed.. (default 300)")
    budget.add_argument("--random-steps", type=int, default=200,
                        help="steps per random run (default 200)")
    budget.add_argument("--examples", type=int, default=None,
                        help="Hypothesis runs (default: the profile's: 100 for ci and dev)")
    budget.add_argument("--max-states", type=int, default=EXPLORE_STATES,
                        help=f"explore: states per feature slice (default {EXPLORE_STATES:,})")
    budget.add_argument("--rlimit", type=int, default=QUERY_RLIMIT,
                        help=f"prove: Z3 resource units per query (default {QUERY_RLIMIT:,})")
    budget.add_argument("--bmc-rlimit", type=int, default=BMC_RLIMIT,
                        help=f"prove: Z3 resource units per bounded search "
                             f"(default {BMC_RLIMIT:,})")
    budget.add_argument("--numeric-seeds", type=int, default=NUMERIC_SEEDS,
                        help=f"numeric: seeds (default {NUMERIC_SEEDS})")
    budget.add_argument("--numeric-batches", type=int, default=NUMERIC_BATCHES,
                        help=f"numeric: batches per seed (default {NUMERIC_BATCHES})")
    budget.add_argument("--max-seconds", type=float, default=None, metavar="S",
                        help="wall-clock limit per checker (default: none); a checker it "
                             "stops is inconclusive")
    budget.add_argument("--budget", type=float, dest="max_seconds", help=argparse.SUPPRESS)
    p.add_argument("--hypothesis-profile", default=None, metavar="ci|dev|thorough",
                   help="Hypothesis settings profile (default: ci when CI=true, else dev)")
    p.add_argument("--hypothesis-db", type=Path, default=None, metavar="PATH",
                   help="Hypothesis example database (default: REPORT_DIR/hypothesis-db; "
                        "off under CI and the ci profile unless given)")
    p.add_argument("--report-dir", type=Path, default=Path("reports/out"))
    p.add_argument("--junit", type=Path, default=None, help="write JUnit XML here")
    p.add_argument("--sarif", type=Path, default=None, help="write SARIF 2.1.0 here")
    p.add_argument("--summary-md", type=Path, default=None, help="write a Markdown summary here")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("run", help="one deterministic random run, written as a trace")
    add_model_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--out", type=Path, required=True, help="trace file to write")
    p.add_argument("--no-states", action="store_true", help="omit the state after each step")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("replay", help="re-run a trace through the reference model")
    p.add_argument("trace", type=Path)
    p.add_argument("--python", action="store_true",
                   help="print the trace as a runnable Python program instead of replaying it")
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("list", help="list presets, actions, invariants, scenarios or faults")
    p.add_argument("what", nargs="?", default="presets",
                   choices=["presets", "actions", "invariants", "scenarios", "faults"])
    p.add_argument("--backends", action="store_true",
                   help="which backend (Z3, NumPy, explorer, virtio) encodes each one")
    p.add_argument("--json", action="store_true", help="the --backends matrix as JSON")
    p.set_defaults(func=_cmd_list)

    for name in PLUGINS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ballast`` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        code: int = args.func(args)
        return code
    except BallastError as exc:
        print(f"ballast: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ballast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
