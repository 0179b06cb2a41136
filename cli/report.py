"""``ballast report TRACE``: the HTML page and Markdown twin of a counterexample trace.

::

    ballast report reports/out/random-isolation-model.jsonl --out reports/html
    ballast report trace.jsonl --format html,md,json

Exit 0 when the reports are written; a malformed trace is an input error
(exit 2) and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ballast.argtypes import path
from ballast.reports.page import FORMATS, parse_formats, read_trace_lines, write_report
from ballast.statespace.traces import lasso_claim

__all__ = ["register", "run_report"]


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``ballast report``."""
    formats = parse_formats(args.format)
    # A trace replay refuses is refused here too, before anything is written: the claim
    # of a liveness trace's header must be of its form (the report draws its cycle).
    # The trace is read once (a pipe, ``<(xz -dc t.jsonl.xz)``, can be read only once).
    trace, lines = read_trace_lines(args.trace)
    lasso_claim(trace, str(args.trace))
    written = write_report(args.trace, args.out, formats, read=(trace, lines))
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps({"written": [p.as_posix() for p in written]}) + "\n")
    else:
        for p in written:
            sys.stdout.write(f"wrote {p.as_posix()}\n")
    return 0


def register(subparsers: Any) -> None:
    """Add ``report`` to the ``ballast`` command line."""
    p = subparsers.add_parser(
        "report", help="explain a counterexample trace as an HTML page and Markdown",
        description="Replay TRACE through the reference model and write a self-contained "
                    "HTML page and a Markdown twin: the broken property, a sequence diagram, "
                    "every step's state change, memory over the steps, the replay command.")
    p.add_argument("trace", metavar="TRACE", help="trace file (JSON Lines, format v1)")
    p.add_argument("--out", metavar="DIR", type=path, default=None,
                   help="folder for the reports (default: the trace's own folder)")
    p.add_argument("--format", default="html,md",
                   help=f"comma-separated formats: {', '.join(FORMATS)} (default: html,md)")
    p.add_argument("--json", action="store_true", help="print the written paths as JSON")
    p.set_defaults(func=run_report)
