"""``ballast diff --adapter CMD``: differential testing of an implementation against the model.

Exit status: 0 the implementation agrees with the model, 1 it diverges (a
shrunk counterexample is written under ``--report-dir``), 2 bad usage (for
example a configuration the implementation does not run), 3 inconclusive (the
implementation timed out, crashed or answered garbage, and the report names the
request; or a declared action never happened or a scenario was never reached).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ballast.argtypes import path, positive_int, seed, timeout_seconds
from ballast.errors import UsageError
from ballast.model.trace import check_destinations
from ballast.cli.options import add_model_options, config_from_args, config_line, origin
from ballast.progress import add_quiet_option, meter, shown
from ballast.validate.adapters.diff import DEFAULT_STEPS, DiffOutcome, run_diff
from ballast.validate.adapters.report import Report, write_report

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``diff`` subcommand."""
    p = subparsers.add_parser(
        "diff", help="test an implementation against the model through an adapter",
        description="Drive the model and an implementation (a subprocess speaking the "
                    "adapter protocol on stdin/stdout) with the same commands and compare "
                    "them after every step. Exit 0 agree, 1 divergence, 2 bad usage, "
                    "3 inconclusive.")
    p.add_argument("--adapter", required=True, metavar="CMD",
                   help="command that starts the implementation (split like a shell would, "
                        "but run without one)")
    add_model_options(p, command="diff")
    p.add_argument("--examples", type=positive_int, default=100, metavar="N",
                   help="runs to try (default 100)")
    p.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS, metavar="N",
                   help=f"most commands per run (default {DEFAULT_STEPS}; deep bugs need "
                        "long runs)")
    p.add_argument("--seed", type=seed, default=0, metavar="N", help="random seed (default 0)")
    p.add_argument("--timeout", type=timeout_seconds, default=5.0, metavar="SECONDS",
                   help="longest wait for one request to be written and answered "
                   "(default 5)")
    p.add_argument("--report-dir", type=path, default=Path("reports/out"), metavar="DIR",
                   help="where counterexamples and failure reports go (default reports/out)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_quiet_option(p)
    p.set_defaults(func=run)


def run_origin(outcome: DiffOutcome, where: str) -> str:
    """Where the configuration the run checked against comes from: ``where`` (the options),
    and the changes a protocol-2 implementation declared in its hello, which the run took.

    >>> from ballast.model.config import Config
    >>> from ballast.validate.adapters.handshake import Hello
    >>> from ballast.verdict import Verdict
    >>> hello = Hello("impl", (), (), (), (), protocol=2, widened=(("eager_backing", True),))
    >>> run_origin(DiffOutcome(Verdict.PASS, hello, Config(), 0, ()), "preset core")
    "preset core, with the implementation's eager_backing=true"
    """
    widened = outcome.hello.widened if outcome.hello is not None else ()
    if not widened:
        return where
    return f"{where}, with the implementation's " + ", ".join(
        f"{key}={json.dumps(value)}" for key, value in widened)


def summary(outcome: DiffOutcome, report: Report | None) -> dict[str, Any]:
    """The machine-readable result of a run."""
    out: dict[str, Any] = {
        "verdict": outcome.verdict.value, "exit": outcome.exit_code,
        "implementation": outcome.hello.implementation if outcome.hello else None,
        "faults": list(outcome.faults), "seed": outcome.seed, "runs": outcome.examples,
        "commands": outcome.commands,
        "requests": outcome.requests, "seconds": round(outcome.seconds, 3),
        "carried_out": outcome.carried_out, "refused": outcome.refused,
        "message": outcome.describe(), "flaky": outcome.flaky,
        "protocol": outcome.protocol, "near_misses": outcome.near_misses,
        "never_happened": list(outcome.never_happened), "unreached": list(outcome.unreached),
        "declared_config": dict(outcome.hello.widened) if outcome.hello else {},
    }
    if outcome.divergence is not None:
        d = outcome.divergence
        out["divergence"] = {
            "kind": d.kind, "commands": [str(e.action) for e in d.exchanges[1:]],
            "diffs": [{"key": k, "model": m, "implementation": i} for k, m, i in d.diffs]}
    if outcome.adapter_error is not None:
        err = outcome.adapter_error
        out["failure"] = {"kind": err.kind, "message": err.message, "request": err.request}
    if report is not None:
        out["report"] = str(report.markdown_path)
        out["trace"] = str(report.trace_path) if report.trace_path else None
    return out


def run(args: argparse.Namespace) -> int:
    """Handle ``ballast diff``."""
    for name in ("examples", "steps"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    cfg = config_from_args(args)
    check_destinations(folders=[args.report_dir])
    # Progress goes to stderr on a terminal only: stdout carries the result (or its JSON).
    with shown(not args.quiet), meter("diff", total=args.examples, unit="runs") as runs:
        outcome = run_diff(args.adapter, cfg, examples=args.examples, steps=args.steps,
                           seed=args.seed, timeout_s=args.timeout, faults=args.fault,
                           progress=lambda n: runs.update(min(n, args.examples)))
    report = write_report(outcome, Path(args.report_dir))
    if args.json:
        print(json.dumps(summary(outcome, report), indent=2))
    else:
        print(f"{outcome.verdict.value}: {outcome.describe()}")
        print(config_line(outcome.cfg, args.fault, run_origin(outcome, origin(args))))
        if report is not None:
            print(f"report: {report.markdown_path}")
            if report.trace_path is not None:
                print(f"trace:  {report.trace_path}")
    return outcome.exit_code
