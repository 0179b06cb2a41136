# mypy: disable-error-code="no-any-return"
"""``ballast fuzz``: randomized checking at scale with the numeric core, over many seeds.

Exit codes: 0 every seed ran all its batches without a violation, 1 a violation
was found (its shrunk trace, confirmed by the reference model, is under
``--report-dir``), 2 bad usage or input, 3 inconclusive: the wall-clock limit
the user asked for (``--max-seconds``) stopped some seed early, an action the
workload draws never took effect in any seed, a seeded fault's step never did
otherwise than the model's own in any seed (its branch was never exercised), the
numeric core lacks an encoding the configuration needs, or the reference model
did not reproduce a violation.

Without ``--vms``/``--pages`` the preset's own sizes are used; with them, the
preset's features are kept and sizes scaled (host memory = 3/4 of guest memory).
"""

from __future__ import annotations

import argparse
import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ballast.argtypes import fraction, path, positive_int, seconds
from ballast.cluster import (Scheduler, add_scheduler_option, connected, parse_scheduler,
                             require_dask)
from ballast.errors import UsageError
from ballast.model.config import Config
from ballast.model.encodings import Gaps
from ballast.model.faults import FAULTS
from ballast.model.trace import check_destinations
from ballast.numeric.campaign import (
    MAX_SEEDS,
    CampaignSummary,
    parse_seeds,
    run_campaign,
    summarise,
)
from ballast.numeric.encodes import gaps_in
from ballast.numeric.runner import SeedResult, finding_line
from ballast.numeric.scale import scaled, with_faults
from ballast.numeric.workload import drawn_actions
from ballast.cli.options import (
    add_model_options,
    base_config,
    check_faults,
    config_line,
    origin,
    with_sets,
)
from ballast.progress import add_quiet_option, meter, shown
from ballast.verdict import EXIT_INCONCLUSIVE

__all__ = ["register", "config_for"]


MAX_GUEST_PAGES = 1 << 26
"""Most guest pages (all VMs) a campaign may ask for: its arrays must fit in memory."""

def register(subparsers: Any) -> None:
    """Add ``fuzz`` to the ``ballast`` command line."""
    p = subparsers.add_parser(
        "fuzz", help="random runs at scale on the numeric core, many seeds in parallel",
        description="Vectorised random runs of the model (thousands of VMs, millions of guest "
                    "pages) with every invariant checked; failures are shrunk and replayed "
                    "through the reference model before they are reported.")
    p.add_argument("--seeds", default="0..3",
                   help=f"seed range A..B (inclusive, at most {MAX_SEEDS:,} seeds) or one seed; "
                        "each from 0 to 2**63-1, as --seed")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes")
    add_model_options(p, command="fuzz")
    p.add_argument("--steps", type=positive_int, default=200,
                   help="batches per seed (each applies one action to many VMs)")
    p.add_argument("--vms", type=positive_int, default=None, help="scale to this many VMs")
    p.add_argument("--pages", type=positive_int, default=None,
                   help="scale to this many PPNs per VM")
    p.add_argument("--frac", type=fraction, default=0.5, help="share of VMs in each batch")
    p.add_argument("--check-every", type=positive_int, default=1,
                   help="check every state invariant after this many batches (default 1: after "
                        "every batch; a larger K can miss a violation a later batch undoes)")
    p.add_argument("--max-seconds", type=seconds, default=None, metavar="S",
                   help="wall-clock limit (default: none); seeds it cuts short make the "
                        "result inconclusive (exit 3)")
    p.add_argument("--report-dir", type=path, default=Path("reports/out"))
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--no-progress", action="store_true", help=argparse.SUPPRESS)
    add_scheduler_option(p)
    add_quiet_option(p)
    p.set_defaults(func=_cmd_fuzz)


def config_for(args: argparse.Namespace) -> Config:
    """The configuration an invocation asks for (with --set, scaled, with the faults'
    changes)."""
    check_faults(args.fault)
    cfg = with_sets(args, base_config(args))
    if (args.vms is None) != (args.pages is None):
        raise UsageError("give both --vms and --pages, or neither")
    if args.vms is not None:
        if args.vms * args.pages > MAX_GUEST_PAGES:
            raise UsageError(f"--vms x --pages is {args.vms * args.pages:,} guest pages; the "
                             f"numeric core holds at most {MAX_GUEST_PAGES:,}")
        cfg = scaled(cfg, vms=args.vms, pages=args.pages)
    return with_faults(cfg, args.fault, keep_sizes=args.vms is not None)


def _line(r: SeedResult, cfg: Config) -> dict[str, Any]:
    """A seed in JSON: ``violation`` and ``message`` are what its trace shows when the
    reference model replays it (``trace``: step, action, VM), ``found`` what the seed found
    on the whole run (another VM, step or page), ``finding`` the line printed."""
    shown = r.reported
    return {"seed": r.seed, "ops": r.ops, "batches": r.batches, "checks": r.checks,
            "seconds": round(r.seconds, 3),
            "violation": shown.property if shown else r.violation[0] if r.violation else None,
            "message": shown.message if shown else r.violation[1] if r.violation else None,
            "trace": shown.to_dict() if shown else None,
            "finding": finding_line(r, cfg) if r.violation else None,
            "found": ({"property": r.violation[0], "message": r.violation[1]}
                      if r.violation else None),
            "shrunk_steps": r.shrunk_steps, "counterexample": r.counterexample,
            "error": r.error, "fault_deviated": r.fault_deviated}


def _cmd_fuzz(args: argparse.Namespace) -> int:
    seeds, cluster = _campaign_options(args)
    check_destinations(folders=[args.report_dir])
    cfg = config_for(args)
    gaps = gaps_in(cfg, args.fault)
    if gaps.blocking:
        print(f"INCONCLUSIVE numeric: {gaps.what()}; cannot check that fault")
        return EXIT_INCONCLUSIVE
    if not args.json:
        scale = f", scaled to --vms {args.vms} --pages {args.pages}" if args.vms else ""
        print(config_line(cfg, args.fault, origin(args) + scale))
        if cluster is not None:
            print(f"workers: {cluster.describe()}")
    results = _run_seeds(args, cfg, seeds, cluster)
    summary = summarise(results, args.steps, drawn_actions(cfg), args.fault)
    if args.json:
        print(json.dumps({"config": cfg.to_dict(), "faults": list(args.fault),
                          "seeds": [_line(r, cfg) for r in results],
                          "summary": summary.__dict__,
                          "gap": gaps.what() if gaps else None}, indent=2, default=list))
    else:
        _print_results(args, cfg, results, summary, gaps)
    if summary.failing:
        return 1
    return EXIT_INCONCLUSIVE if (gaps or summary.cut_short or summary.never_fired
                                 or summary.never_deviated or summary.unconfirmed) else 0


def _campaign_options(args: argparse.Namespace) -> tuple[range, Scheduler | None]:
    """The seeds and the cluster (None: local processes) the options ask for, every
    option checked before any work."""
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:  # its message names the rule the range breaks
        raise UsageError(f"--seeds {args.seeds}: {exc}") from None
    most = 4 * (os.cpu_count() or 1)
    if args.workers > most:  # below 1 is refused by its type, as the other counts
        raise UsageError(f"--workers {args.workers}: at most {most} (4 per processor) on "
                         "this machine")
    cluster = parse_scheduler(args.scheduler) if args.scheduler is not None else None
    if cluster is not None:
        require_dask()
        if args.max_seconds is not None:
            raise UsageError("--max-seconds is a limit of local runs; with --scheduler the "
                             "budget is --steps batches per seed")
    if cluster is not None and args.workers != 1:
        raise UsageError("--workers is for local processes; with --scheduler the cluster's "
                         "workers run the seeds")
    return seeds, cluster


def _run_seeds(args: argparse.Namespace, cfg: Config, seeds: range,
               cluster: Scheduler | None) -> list[SeedResult]:
    """Every seed's result, in seed order: run by local processes, or by the cluster's
    workers; progress shown as seeds come back."""
    results: list[SeedResult] = []
    with ExitStack() as stack:
        if cluster is None:
            stream = run_campaign(cfg, seeds, workers=args.workers, faults=tuple(args.fault),
                                  batches=args.steps, frac=args.frac,
                                  check_every=args.check_every, report_dir=args.report_dir,
                                  max_seconds=args.max_seconds)
        else:
            from ballast.numeric.cluster_campaign import run_campaign_on
            client = stack.enter_context(connected(cluster))
            stream = run_campaign_on(client, cfg, seeds, faults=tuple(args.fault),
                                     batches=args.steps, frac=args.frac,
                                     check_every=args.check_every, report_dir=args.report_dir)
            # Its futures go before the client does (a Ctrl-C, an error).
            stack.callback(getattr(stream, "close"))
        with shown(not (args.quiet or args.no_progress)), \
                meter(f"fuzz {cfg.vms} VMs x {cfg.guest_pages} PPNs", total=len(seeds),
                      unit="seeds") as done:
            for r in stream:
                results.append(r)
                done.advance(note=f"{sum(x.batches for x in results):,} batches, "
                                  f"{sum(x.ops for x in results):,} operations")
    results.sort(key=lambda r: r.seed)
    return results


def _print_results(args: argparse.Namespace, cfg: Config, results: list[SeedResult],
                   summary: CampaignSummary, gaps: Gaps) -> None:
    """The campaign in words: each failing seed, the totals, and why it is inconclusive."""
    from rich.markup import escape

    from ballast.console import console
    from ballast.reports.commands import replay_command
    out = console()  # never wrapped at the terminal's (or a pipe's 80) columns
    out.print(f"numeric fuzz: {cfg.vms} VMs x {cfg.guest_pages} PPNs "
              f"({cfg.vms * cfg.guest_pages} guest pages), {cfg.machine_pages} MPNs"
              + (f", faults {', '.join(args.fault)}" if args.fault else ""))
    for r in results:
        if r.violation:
            # What its trace shows when replayed, then how the seed found it on the whole run.
            prop = r.reported.property if r.reported is not None else r.violation[0]
            where = (f"counterexample: {r.counterexample} (replay: "
                     f"{replay_command(r.counterexample)})" if r.counterexample else
                     f"no counterexample: {r.error or 'not written'}")
            out.print(f"  seed {r.seed}: [bold red]{prop}[/] -- {escape(finding_line(r, cfg))}")
            out.print(f"    {where}; reproduce with --seeds {r.seed}..{r.seed}", markup=False)
    rate = summary.ops / summary.seconds if summary.seconds else 0.0
    out.print(f"{summary.seeds} seeds, {summary.ops} operations, {summary.checks} invariant "
              f"sweeps, {rate:,.0f} ops/s per worker; failing seeds: "
              f"{list(summary.failing) or 'none'}")
    if gaps:
        lost = "no property" if gaps.actions else ", ".join(gaps.invariants)
        out.print(f"[yellow]INCONCLUSIVE[/] numeric: {gaps.what()}; {lost} checked")
    if summary.cut_short and not summary.failing:
        out.print(f"INCONCLUSIVE: {len(summary.cut_short)} seed(s) did not run all "
                  f"{args.steps} batches: wall-clock limit of {args.max_seconds:g} s "
                  f"reached (--max-seconds)")
    if summary.unconfirmed and not summary.failing:
        out.print(f"INCONCLUSIVE: the reference model does not reproduce the violation of "
                  f"seed(s) {list(summary.unconfirmed)}, so none is reported: the NumPy core "
                  f"and the model disagree: a bug in Ballast; please report it to the Ballast "
                  f"issue tracker with this command line", markup=False)
    out.print(_coverage(summary), markup=False)
    if summary.never_fired and not summary.failing:
        out.print(f"INCONCLUSIVE: {len(summary.never_fired)} action(s) never took effect "
                  f"in any seed ({', '.join(summary.never_fired)}): raise --steps or "
                  "--seeds", markup=False)
    for fault in summary.never_deviated if not summary.failing else ():
        action = FAULTS[fault].action
        out.print(f"INCONCLUSIVE: the seeded fault {fault} was never exercised: in "
                  f"{summary.seeds} seed(s) of {args.steps} batches its {action} took effect "
                  f"{summary.actions.get(action, 0):,} time(s), never doing otherwise than "
                  f"the model's {action}, so no seed could catch it; raise --seeds or --steps",
                  markup=False)


def _coverage(summary: CampaignSummary) -> str:
    """One line: how many of the actions drawn took effect, the rarest, and in how many
    seeds each seeded fault did otherwise than the model."""
    taken = sorted((n, name) for name, n in summary.actions.items() if n)
    rare = ", ".join(f"{name} {n:,}" for n, name in taken[:3])
    line = (f"actions: {len(taken)} of {len(summary.actions)} took effect"
            + (f" (fewest operations: {rare})" if rare else ""))
    for fault, seeds in summary.fault_seeds.items():
        line += f"; fault {fault} exercised in {seeds} of {summary.seeds} seed(s)"
    return line
