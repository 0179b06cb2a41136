"""The ``ballast`` command.

Exit codes, for every subcommand: 0 every property holds, 1 a property is
violated (or a trace shows an illegal step), 2 bad usage or bad input,
3 inconclusive (a budget ran out, a solver said unknown, a scenario was never
exercised), 4 an internal error of Ballast (a bug: never read as a verdict),
130 interrupted, 141 the reader of the output went away (``| head``).

Subcommands that live in other packages are imported only when they run, so
that ``ballast --help`` and ``ballast list`` start without loading Z3, NumPy,
NetworkX or Hypothesis.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Sequence

if TYPE_CHECKING:
    from ballast.budget import WorkBudget
    from ballast.suites.check import CheckReport
    from ballast.verdict import CheckResult

from ballast import __version__, tally
from ballast.argtypes import path, positive_int, rlimit, seconds, seed
from ballast.errors import BallastError, GuardError, InternalError, UsageError, WorkerLost
from ballast.cli.options import (
    HeaderConfig,
    add_model_options,
    add_size_options,
    config_from_args,
    config_line,
    config_summary,
    given,
    origin,
)
from ballast.progress import add_quiet_option
from ballast.termination import Terminated, sigterm_as_interrupt
from ballast.verdict import (
    EXIT_INCONCLUSIVE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT_CLOSED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    EXIT_VIOLATION,
)

__all__ = ["add_model_options", "build_parser", "config_from_args", "main"]

PLUGINS = (
    "ballast.cli.explore",
    "ballast.cli.prove",
    "ballast.cli.fuzz",
    "ballast.cli.validate",
    "ballast.cli.diff",
    "ballast.cli.report",
)
"""Modules that add subcommands through ``register(subparsers)``."""

PLUGIN_COMMANDS: dict[str, tuple[str, str]] = {
    "explore": ("ballast.cli.explore", "visit every reachable state of a small configuration"),
    "prove": ("ballast.cli.prove", "prove the model's invariants with Z3"),
    "fuzz": ("ballast.cli.fuzz",
             "random runs at scale on the numeric core, many seeds in parallel"),
    "validate": ("ballast.cli.validate", "check an implementation's trace against the model"),
    "capture": ("ballast.cli.validate", "record a real implementation's balloon trace"),
    "diff": ("ballast.cli.diff",
             "test an implementation against the model through an adapter"),
    "report": ("ballast.cli.report", "explain a counterexample trace as an HTML page and Markdown"),
}
"""Which plugin registers each of its subcommands, with the one-line help it gives.

``ballast --help`` lists these without importing the plugins; a test checks that
this index says what the plugins themselves register.
"""

REPORT_BUGS = ("this is a bug in Ballast, not a verdict; please report it to the Ballast "
               "issue tracker with the command line (BALLAST_TRACEBACK=1 shows the traceback)")
"""What an internal error tells the user to do."""


# -- check ------------------------------------------------------------------

def _cmd_check(args: argparse.Namespace) -> int:
    from ballast.suites.check import BUILTIN, SUITES, CheckOptions, run_check
    from ballast.console import console
    from ballast.cli.render import render_check

    cfg = config_from_args(args)
    known = BUILTIN + tuple(SUITES)
    checkers = tuple(c.strip() for c in args.checkers.split(",") if c.strip()) \
        if args.checkers is not None else known
    if not checkers:  # checking nothing must not pass
        raise UsageError(f"--checkers names no checker; expected some of {', '.join(known)}")
    bad = [c for c in checkers if c not in known]
    if bad:
        raise UsageError(f"unknown checker(s) {', '.join(bad)}; expected {', '.join(known)}")
    twice = sorted({c for c in checkers if checkers.count(c) > 1})
    if twice:  # it would run twice and be counted twice in the verdict
        raise UsageError(f"--checkers names {', '.join(twice)} more than once")
    unseeded = ("explore", "prove")  # exhaustive searches: a seed changes nothing
    if args.seed is not None and all(c in unseeded for c in checkers):
        raise UsageError(f"--seed means nothing to {', '.join(checkers)}: they search "
                         "exhaustively; drop --seed or add a seeded checker (random, "
                         "hypothesis, numeric, validate)")
    if args.hypothesis_profile is not None:
        from ballast.simulation.stateful import profile_settings

        profile_settings(args.hypothesis_profile)  # an unknown name is a usage error
    if args.examples is not None and args.examples < 1:
        raise UsageError("--examples must be at least 1")
    from ballast.model.trace import check_destinations

    check_destinations([args.junit, args.sarif, args.summary_md, args.json],
                       folders=[args.report_dir, args.hypothesis_db], inputs=[args.config])
    opts = CheckOptions(seed=args.seed or 0, budget=_work_budget(args), report_dir=args.report_dir,
                        checkers=checkers, random_runs=args.random_runs,
                        random_steps=args.random_steps,
                        hypothesis_examples=args.examples,
                        hypothesis_profile=args.hypothesis_profile,
                        hypothesis_db=args.hypothesis_db)
    from ballast.progress import shown

    out = console()
    out.print(config_line(cfg, args.fault, origin(args)), markup=False)
    with shown(not args.quiet):  # on stderr, a terminal only: stdout carries the results
        report = run_check(cfg, tuple(args.fault), opts)
    if args.junit or args.sarif or args.summary_md or args.json:
        from ballast.reports.summary import write_summary

        # Written before the verdict is printed: a write that fails (a full disk) is exit
        # 2 with its one line, never after a printed "Verdict: ... (exit 1)".
        write_summary(report.results + [_pooled(report)], markdown=args.summary_md,
                      json_path=args.json, junit=args.junit, sarif=args.sarif)
    render_check(out, report)
    return report.verdict.exit_code


def _work_budget(args: argparse.Namespace) -> "WorkBudget":
    from ballast.budget import WorkBudget

    # The flags' types (positive_int, seconds) have refused zero, negative and NaN values.
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
    from ballast.model.trace import StepSpool, TraceStep, check_destinations
    from ballast.progress import meter, shown
    from ballast.simulation.randomwalk import random_run

    cfg = config_from_args(args)
    check_destinations([args.out], inputs=[args.config])
    out = console()
    out.print(config_line(cfg, args.fault, origin(args)), markup=False)
    # The steps wait in a temporary file, not in memory: --steps has no upper bound.
    with shown(not args.no_progress), meter("run", total=args.steps) as steps, \
            StepSpool(args.out) as spool:
        def keep(st: TraceStep) -> None:
            spool.add(st)
            steps.update(st.step)

        run = random_run(BalloonModel(cfg, args.fault), args.seed, args.steps,
                         record_states=not args.no_states, sink=keep)
        spool.write(run.trace.header)
    out.print(f"seed {args.seed}: {run.taken} steps written to {args.out}")
    if run.violation is not None:
        out.print(f"[bold red]VIOLATION[/] {run.violation.property} at step "
                  f"{run.taken}: {run.violation.message}")
        return EXIT_VIOLATION
    return EXIT_OK


# -- replay -----------------------------------------------------------------

REPLAY_SEARCH_LIMIT = 200_000
"""States ``ballast replay`` searches from a trace's stuck last state before it leaves the
claim undecided (exit 3): the explorer wrote the trace from a configuration whose whole
graph it had searched, so a real one needs far fewer."""

def _cmd_replay(args: argparse.Namespace) -> int:
    from ballast.console import console
    from ballast.model.replay import ReplayOutcome, replay
    from ballast.model.trace import read_trace
    from ballast.cli.render import render_replay

    configure = HeaderConfig(args, str(args.trace))
    trace = read_trace(args.trace, configure)
    where = configure.where
    if args.python:
        from ballast.console import write_whole
        from ballast.reports.program import python_program

        write_whole(python_program(trace))  # a long trace's program is megabytes
        return EXIT_OK
    out = console()
    if given(args):  # else the trace names its configuration, and a refusal stays one line
        out.print(config_line(trace.header.config, trace.header.faults, where), markup=False)
    result = replay(trace, keep_states=False)
    if result.outcome is ReplayOutcome.OK and \
            (trace.header.expect or {}).get("lasso_start") is not None:
        from ballast.statespace.traces import check_lasso

        # A liveness counterexample breaks no safety property: its lasso is the claim.
        lasso = check_lasso(trace, str(args.trace))
        if lasso is not None:
            out.print(f"{args.trace}: {lasso.describe()}")
            out.print(f"  {result.describe().replace('every property', 'every safety property')}")
            return EXIT_VIOLATION if lasso.confirmed else EXIT_OK
    if result.outcome is ReplayOutcome.OK:
        from ballast.statespace.traces import check_end

        # A deadlock or a state no run leads out of breaks no property step by step: the
        # claim is about the last state, decided again on the model's own steps.
        end = check_end(trace, str(args.trace), limit=REPLAY_SEARCH_LIMIT)
        if end is not None:
            out.print(f"{args.trace}: {end.describe()}", markup=False)
            out.print(f"  {result.describe().replace('every property', 'every safety property')}")
            return {True: EXIT_VIOLATION, False: EXIT_OK, None: EXIT_INCONCLUSIVE}[end.confirmed]
    render_replay(out, str(args.trace), result)
    return EXIT_OK if result.outcome is ReplayOutcome.OK else EXIT_VIOLATION


# -- list -------------------------------------------------------------------

def _cmd_list(args: argparse.Namespace) -> int:
    from ballast.console import console
    from ballast.model import ACTIONS, FAULTS, INVARIANTS, PRESETS, SOMETIMES

    out = console()
    what = args.what
    if args.backends or args.json:
        return _list_backends(what, args.json, "--backends" if args.backends else "--json")
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
        from ballast.suites.catchers import catchers

        for f in FAULTS.values():  # caught as the checkers report it, by those expected to
            out.print(f"{f.name:28} caught as {' or '.join(f.caught_as)} by "
                      f"{', '.join(catchers(f.name))}: {' '.join(f.doc.split())}", markup=False)
    else:
        from ballast.cli.options import DEFAULT_PRESETS

        for name, cfg in PRESETS.items():
            default_of = [c for c, (p, _) in DEFAULT_PRESETS.items() if p == name]
            of = f" (default of {', '.join(default_of)})" if default_of else ""
            out.print(f"{name:12} {config_summary(cfg)}{of}", markup=False)
    return EXIT_OK


def _list_backends(what: str, as_json: bool, flag: str) -> int:
    import json

    from ballast.suites.backends import matrix, matrix_json
    from ballast.console import console
    from ballast.cli.render import render_backends

    if what not in ("actions", "invariants", "faults"):
        raise UsageError(f"{flag} lists the backends of actions, invariants or faults, "
                         f"not {what}")
    if as_json:
        sys.stdout.write(json.dumps(matrix_json(what), indent=1) + "\n")
    else:
        render_backends(console(), what, matrix(what), plain=not sys.stdout.isatty())
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (subcommands inherit it).

    A word that starts with ``-`` and a digit is a value, never an option: argparse takes
    only plain negative numbers (``-1``, ``-.5``) for values, so ``--seeds -1..2`` or
    ``--max-seconds -1e3`` said "expected one argument" instead of what the flag takes. No
    flag starts with a digit; such a word goes to its flag's type, which names what it
    expects (as ``--seeds=-1..2`` does).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?[0-9]")

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())} "
                              f"(see '{self.prog} --help')\n")


def build_parser(plugins: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered.

    ``plugins`` names the plugin modules to import and register (default: all);
    the subcommands of the others are listed from :data:`PLUGIN_COMMANDS` only.
    """
    parser = _Parser(
        prog="ballast",
        description="Reference model and verification suite for memory ballooning.",
        epilog="exit codes: 0 holds, 1 violated, 2 bad usage or input, 3 inconclusive, "
               "4 internal error, 130 interrupted, 141 output closed early, 143 terminated")
    parser.add_argument("--version", action="version", version=f"ballast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_check(sub.add_parser("check", help="run every checker on a configuration"))
    _add_run(sub.add_parser("run", help="one deterministic random run, written as a trace"))
    _add_replay(sub.add_parser("replay", help="re-run a trace through the reference model"))
    _add_list(sub.add_parser(
        "list", help="list presets, actions, invariants, scenarios or faults"))

    load = PLUGINS if plugins is None else tuple(plugins)
    for name in PLUGINS:
        if name in load:
            importlib.import_module(name).register(sub)
        else:
            for command, (module, text) in PLUGIN_COMMANDS.items():
                if module == name:
                    sub.add_parser(command, help=text, add_help=False)
    return parser


def _add_check(p: argparse.ArgumentParser) -> None:
    """``ballast check``: every checker on a configuration."""
    add_model_options(p, command="check")
    add_size_options(p)
    p.add_argument("--seed", type=seed, default=None,
                   help="first seed of the random runs, seed of the Hypothesis machine "
                        "(same seed, same run) and of the numeric and validation runs "
                        "(default 0; refused when only exhaustive checkers run)")
    p.add_argument("--checkers", default=None,
                   help="comma-separated subset: random,hypothesis,explore,prove,numeric,validate")
    _add_budget_options(p)
    p.add_argument("--hypothesis-profile", default=None, metavar="ci|dev|thorough",
                   help="Hypothesis settings profile (default: ci when CI=true, else dev)")
    p.add_argument("--hypothesis-db", type=path, default=None, metavar="PATH",
                   help="keep the failures Hypothesis finds in this example database and "
                        "replay them first next time (default: none, so the same command and "
                        "seed run the same examples every time)")
    p.add_argument("--report-dir", type=path, default=Path("reports/out"))
    p.add_argument("--junit", type=path, default=None, help="write JUnit XML here")
    p.add_argument("--sarif", type=path, default=None, help="write SARIF 2.1.0 here")
    p.add_argument("--summary-md", type=path, default=None, help="write a Markdown summary here")
    p.add_argument("--json", type=path, default=None, help="write the results as JSON here")
    add_quiet_option(p)
    p.set_defaults(func=_cmd_check)


def _add_budget_options(p: argparse.ArgumentParser) -> None:
    """``check``'s work budgets (and its wall-clock limit, off by default)."""
    from ballast.budget import (BMC_RLIMIT, EXPLORE_STATES, NUMERIC_BATCHES, NUMERIC_SEEDS,
                                QUERY_RLIMIT)

    budget = p.add_argument_group(
        "work budgets", "counted in work, so a verdict does not depend on the machine's "
                        "speed or load; a budget that runs out is inconclusive (exit 3)")
    budget.add_argument("--random-runs", type=positive_int, default=300,
                        help="random runs, seeds --seed.. (default 300)")
    budget.add_argument("--random-steps", type=positive_int, default=200,
                        help="steps per random run (default 200)")
    budget.add_argument("--examples", type=positive_int, default=None,
                        help="Hypothesis runs (default: the profile's: 100 for ci and dev)")
    budget.add_argument("--max-states", type=positive_int, default=EXPLORE_STATES,
                        help=f"explore: states per feature slice (default {EXPLORE_STATES:,})")
    budget.add_argument("--rlimit", type=rlimit, default=QUERY_RLIMIT,
                        help=f"prove: Z3 resource units per query (default {QUERY_RLIMIT:,})")
    budget.add_argument("--bmc-rlimit", type=rlimit, default=BMC_RLIMIT,
                        help=f"prove: Z3 resource units per bounded search "
                             f"(default {BMC_RLIMIT:,})")
    budget.add_argument("--numeric-seeds", type=positive_int, default=NUMERIC_SEEDS,
                        help=f"numeric: seeds (default {NUMERIC_SEEDS})")
    budget.add_argument("--numeric-batches", type=positive_int, default=NUMERIC_BATCHES,
                        help=f"numeric: batches per seed (default {NUMERIC_BATCHES})")
    budget.add_argument("--max-seconds", type=seconds, default=None, metavar="S",
                        help="wall-clock limit per checker (default: none); a checker it "
                             "stops is inconclusive")
    budget.add_argument("--budget", type=seconds, dest="max_seconds", help=argparse.SUPPRESS)


def _add_run(p: argparse.ArgumentParser) -> None:
    """``ballast run``: one deterministic random run, written as a trace."""
    add_model_options(p, command="run")
    add_size_options(p)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--steps", type=positive_int, default=100)
    p.add_argument("--out", type=path, required=True, help="trace file to write")
    p.add_argument("--no-states", action="store_true", help="omit the state after each step")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress line on standard error while the run goes")
    p.set_defaults(func=_cmd_run)


def _add_replay(p: argparse.ArgumentParser) -> None:
    """``ballast replay``: a trace re-run through the reference model."""
    p.add_argument("trace", type=Path)
    add_model_options(p, default_text="the trace's own")
    p.add_argument("--python", action="store_true",
                   help="print the trace as a runnable Python program instead of replaying it")
    p.set_defaults(func=_cmd_replay)


def _add_list(p: argparse.ArgumentParser) -> None:
    """``ballast list``: presets, actions, invariants, scenarios or faults."""
    p.add_argument("what", nargs="?", default="presets",
                   choices=["presets", "actions", "invariants", "scenarios", "faults"])
    p.add_argument("--backends", action="store_true",
                   help="which backend (Z3, NumPy, explorer, virtio) encodes each one")
    p.add_argument("--json", action="store_true", help="the --backends matrix as JSON")
    p.set_defaults(func=_cmd_list)


def _plugins_for(argv: Sequence[str]) -> Sequence[str] | None:
    """The plugin modules an invocation needs: none for the built-in commands and --help."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is None or command in ("check", "run", "replay", "list"):
        return ()
    if command in PLUGIN_COMMANDS:
        return (PLUGIN_COMMANDS[command][0],)
    return None  # unknown to the index: load everything, argparse names the choices


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"


def _internal_error(exc: BaseException) -> str:
    """One line naming the exception and the innermost Ballast frame it came from."""
    import traceback

    ours = {os.path.dirname(str(m.__file__)) for n, m in list(sys.modules.items())
            if (n == "ballast" or n.startswith("ballast.")) and getattr(m, "__file__", None)}
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if os.path.dirname(frame.filename) in ours:
            name = os.path.basename(frame.filename)
            if name == "__init__.py":  # a package's own module: its folder says which
                name = f"{os.path.basename(os.path.dirname(frame.filename))}/{name}"
            where = f" at {name}:{frame.lineno} in {frame.name}"
            break
    if os.environ.get("BALLAST_TRACEBACK"):
        traceback.print_exception(exc, file=sys.stderr)
    detail = _one_line(str(exc))[:300]
    return (f"ballast: internal error: {type(exc).__name__}: {detail}{where}; "
            f"{REPORT_BUGS}")


def _output_closed() -> int:
    """The reader of stdout went away (``| head``): nothing more can be said there, and the
    interpreter's own flush at exit must not fail again, so stdout goes to /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no stdout to replace: nothing will be flushed
        pass
    return EXIT_OUTPUT_CLOSED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ballast`` console script.

    Whatever happens inside a subcommand, the exit code is one of the documented
    ones: a deliberate error is 2 with one line on stderr, running out of memory
    or a worker process lost (killed, crashed) is 3, an unexpected exception is 4
    (never 0 or 1), Ctrl-C is 130, SIGTERM 143.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    start = time.monotonic()
    tally.reset()
    # SIGTERM (``timeout``, a cancelled CI job) cleans up as Ctrl-C does: no guest left
    # running, no spill folder left behind; and Ctrl-C itself is never dropped nor turned
    # into an internal error where it lands (a ``__del__``, a Z3 call's arguments).
    with sigterm_as_interrupt():
        return _run(args_list, start)


def _run(args_list: list[str], start: float) -> int:
    """:func:`main` within its SIGTERM and Ctrl-C handlers: the command's exit code."""
    try:
        parser = build_parser(_plugins_for(args_list))
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        code: int = args.func(args)
        return code
    except WorkerLost as exc:  # the run could not finish: no verdict, not bad input either
        print(f"ballast: error: {_one_line(str(exc))} (inconclusive)", file=sys.stderr)
        return EXIT_INCONCLUSIVE
    except (InternalError, GuardError) as exc:
        # Ballast contradicted itself (a step its own search made that the model refuses, a
        # finding the model does not confirm): a bug, never bad input.
        print(_internal_error(exc), file=sys.stderr)
        return EXIT_INTERNAL
    except BallastError as exc:
        print(f"ballast: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        done = tally.so_far() or "nothing counted yet"
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"ballast: {how} after {time.monotonic() - start:.1f} s; done so far: {done}",
              file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    except BrokenPipeError:
        return _output_closed()
    except MemoryError:
        print("ballast: error: ran out of memory; give a smaller configuration or budget "
              "(inconclusive)", file=sys.stderr)
        return EXIT_INCONCLUSIVE
    except OSError as exc:
        name = exc.filename if exc.filename is not None else "ballast"
        print(f"ballast: error: {name}: {exc.strerror or _one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the one place that turns a crash into exit 4
        print(_internal_error(exc), file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
