"""Command line of the real QEMU guest: ``ballast capture qemu`` and ``ballast capture qemu-live``.

``capture qemu`` boots a Linux guest under QEMU, moves its balloon (the ``--targets``, or
a named ``--scenario``), records the logs and validates them with both judges and the QMP
cross-checks.  ``capture qemu-live`` lets Hypothesis choose what the guest goes through
and judges every example (:mod:`ballast.validate.qemu.live`).  Bad usage is exit 2; a
capture that cannot be made (QEMU missing or failing) is exit 2 for ``capture qemu`` and
inconclusive (exit 3) for a live run that had started.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

from ballast.argtypes import natural_int, positive_int, seed, timeout_seconds, whole_number
from ballast.errors import UsageError
from ballast.model.virtio import DEFLATE_ON_OOM

__all__ = ["register_capture"]


def register_capture(csub: Any) -> None:
    """Add ``qemu`` and ``qemu-live`` to ``ballast capture``."""
    from ballast.validate.qemu.guest import MIN_GUEST_MIB, max_guest_mib
    from ballast.validate.qemu.live import DEVICES, FAULTS, SHRINK_RUNS
    from ballast.validate.qemu.scenarios import SCENARIOS

    sizes = (f"from {MIN_GUEST_MIB} to this host's physical memory ({max_guest_mib()} MiB "
             "here)")

    q = csub.add_parser("qemu", help="boot Linux under QEMU (TCG), move its balloon, validate",
                        description="Boot a Linux guest under QEMU, drive its virtio balloon "
                                    "over QMP, record trace/QMP/console logs in --out, then "
                                    "validate the trace with the VirtIO rules, the reference "
                                    "model and the QMP cross-checks.")
    q.add_argument("--out", required=True, type=_out_folder,
                   help="directory for trace.log, qmp.log, console.log (made if missing)")
    q.add_argument("--scenario", choices=sorted(SCENARIOS),
                   help="a named capture (overrides the options below): "
                        + "; ".join(f"{n}: {s.summary}" for n, s in sorted(SCENARIOS.items())))
    q.add_argument("--targets", default="384,256,512",
                   help="target guest RAM sizes in MiB, comma separated (default 384,256,512)")
    q.add_argument("--guest-mib", type=_guest_mib, default=512,
                   help=f"guest RAM in MiB, {sizes} (default 512)")
    q.add_argument("--deflate-on-oom", action="store_true", help="offer DEFLATE_ON_OOM")
    q.add_argument("--pressure-mib", type=natural_int, default=0,
                   help="after the targets, fill this many MiB of guest memory, then free it")
    q.add_argument("--compaction", action="store_true",
                   help="ask the guest to compact memory (migrates balloon pages)")
    q.add_argument("--settle-s", type=timeout_seconds, default=10.0,
                   help="seconds to wait for each target (default 10)")
    q.add_argument("--timeout-s", type=timeout_seconds, default=180.0,
                   help="bound on the whole run")
    q.add_argument("--strict", action="store_true", help="a broken SHOULD is a violation too")
    q.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    q.set_defaults(func=_capture_cmd)

    live = csub.add_parser(
        "qemu-live", help="property-based testing of a live QEMU guest, judged by the model",
        description="Hypothesis chooses, for each example, the balloon device's features and "
                    "balloon targets, memory pressure, compaction, driver rebinds, live "
                    "migrations and reboots; "
                    "a Linux guest is "
                    "booted under QEMU per device drawn; every example is judged by the "
                    "VirtIO rules and the reference model, the whole capture also by the QMP "
                    "cross-checks.  A failure is shrunk (at most "
                    f"{SHRINK_RUNS} more runs) and written as a scenario file to replay.")
    live.add_argument("--out", required=True, type=_out_folder,
                      help="directory for the capture, examples and any failure (made if "
                           "missing)")
    live.add_argument("--examples", type=positive_int, default=5,
                      help="examples Hypothesis chooses (default 5; each takes seconds under TCG)")
    live.add_argument("--seed", type=seed, default=0, help="Hypothesis seed (default 0)")
    live.add_argument("--guest-mib", type=_guest_mib, default=256,
                      help=f"guest RAM in MiB, {sizes} (default 256; a --replay scenario "
                           "gives its own)")
    live.add_argument("--settle-s", type=timeout_seconds, default=15.0,
                      help="seconds to wait for each target")
    live.add_argument("--timeout-s", type=timeout_seconds, default=900.0,
                      help="bound on the whole run")
    live.add_argument("--fault", choices=sorted(FAULTS),
                      help="seed a deviation: " + "; ".join(f"{k}: {v}" for k, v in FAULTS.items()))
    live.add_argument("--devices", metavar="NAMES",
                      help="the balloon devices examples are drawn over, comma separated (default "
                           "all: " + "; ".join(f"{d.name}: {d.summary}" for d in DEVICES.values())
                           + "); one guest is booted per device drawn")
    live.add_argument("--replay", metavar="SCENARIO",
                      help="run the operations of a scenario file (failure.json) once instead")
    live.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    live.set_defaults(func=_live_cmd)


def _guest_mib(text: str) -> int:
    """``--guest-mib``: refused at parsing, before anything starts, by the same check as
    :func:`~ballast.validate.qemu.capture.capture` makes
    (:func:`~ballast.validate.qemu.guest.check_guest_mib`)."""
    from ballast.validate.qemu.guest import CaptureError, check_guest_mib

    value = whole_number(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a whole number of MiB, written with the "
                                         f"digits 0-9, got {text!r}")
    try:
        check_guest_mib(value)
    except CaptureError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _out_folder(text: str) -> str:
    """``--out``: a folder, made if missing; refused at parsing if it, or the nearest of its
    parents that exists, is a file (``mkdir`` would only say "File exists"), or if it is empty
    (the current folder: the logs would land among whatever is there)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a folder, got an empty string")
    path = Path(text)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        what = "is" if existing == path else f"is inside {existing}, which is"
        raise argparse.ArgumentTypeError(f"must be a folder (made if missing), and {text} "
                                         f"{what} not a folder")
    return text


def _capture_cmd(args: argparse.Namespace) -> int:
    from ballast.cli.validate import _report_qemu
    from ballast.validate.qemu.validation import validate_qemu
    from ballast.validate.qemu.capture import CaptureError, capture
    from ballast.validate.qemu.events import decode_features
    from ballast.validate.qemu.report import compact_report
    from ballast.validate.qemu.scenarios import ScenarioRun, run_scenario

    run: ScenarioRun | None = None
    try:
        if args.scenario is not None:
            run = run_scenario(args.scenario, args.out, timeout_s=args.timeout_s)
            result, features = run.result, run.features
        else:
            targets = _targets(args.targets)
            result = capture(args.out, targets, guest_mib=args.guest_mib,
                             deflate_on_oom=args.deflate_on_oom, pressure_mib=args.pressure_mib,
                             settle_s=args.settle_s, timeout_s=args.timeout_s,
                             compaction=args.compaction)
            features = frozenset(decode_features(result.guest_features or 0))
            if result.guest_features is None:
                features = frozenset({DEFLATE_ON_OOM}) if args.deflate_on_oom else frozenset()
    except (CaptureError, ValueError) as exc:
        raise UsageError(f"capture failed: {exc}") from None
    outcome = validate_qemu(result.trace_log, features, qmp=result.qmp_log)
    coverage = run.coverage_lines() if run is not None else []
    report = compact_report(result.trace_log, outcome,
                            title=f"QEMU capture{' ' + args.scenario if args.scenario else ''}")
    report += "".join(f"\n- {line}" for line in coverage) + ("\n" if coverage else "")
    (result.out_dir / "report.md").write_text(report, encoding="utf-8")
    if not args.json:
        steps = ", ".join(f"{s.target_mib} MiB {'reached' if s.reached else 'NOT reached'}"
                          for s in result.steps)
        migrated = ("" if result.balloon_migrate is None
                    else f"; {result.balloon_migrate} balloon pages migrated by compaction")
        resets = f"; {result.resets} reset(s)" if result.resets else ""
        named = f"scenario {args.scenario}: " if args.scenario else ""
        sys.stdout.write(f"{named}captured QEMU {result.qemu_version} in {result.capture_s:.1f} s "
                         f"(boot {result.boot_s:.1f} s): {steps}{migrated}{resets}; logs in "
                         f"{result.out_dir} (summary: report.md)\n")
        for line in coverage:
            sys.stdout.write(f"  {line}\n")
        return _report_qemu(outcome, args.strict, False, sys.stdout)
    buffer = io.StringIO()
    code = _report_qemu(outcome, args.strict, True, buffer)
    data = json.loads(buffer.getvalue())
    data["scenario"] = args.scenario
    data["not_judged"] = coverage
    sys.stdout.write(json.dumps(data) + "\n")
    return code


def _targets(text: str) -> list[int]:
    numbers = [whole_number(x.strip()) for x in text.split(",") if x.strip()]
    targets = [n for n in numbers if n is not None]
    if len(targets) < len(numbers):
        raise UsageError("--targets: expected MiB numbers (the digits 0-9) separated by commas, "
                         f"got {text!r}")
    if not targets:
        raise UsageError("--targets: give at least one target")
    return targets


def _live_cmd(args: argparse.Namespace) -> int:
    from ballast.validate.qemu.guest import CaptureError
    from ballast.validate.qemu.live import DEFAULT_DEVICE, live_test, read_scenario

    replay = None
    fault, guest_mib, device = args.fault, args.guest_mib, DEFAULT_DEVICE
    if args.replay is not None:
        scenario = read_scenario(args.replay)
        replay, fault, guest_mib, device = (scenario.ops, scenario.fault, scenario.guest_mib,
                                            scenario.device)
    devices = None if args.devices is None else _devices(args.devices)
    try:
        out = live_test(args.out, examples=args.examples, seed=args.seed, guest_mib=guest_mib,
                        settle_s=args.settle_s, timeout_s=args.timeout_s, fault=fault,
                        replay=replay, devices=devices, replay_device=device)
    except (CaptureError, ValueError) as exc:
        raise UsageError(f"live run failed to start: {exc}") from None
    f = out.failure
    if args.json:
        sys.stdout.write(json.dumps({
            "exit": out.exit_code, "examples": out.examples, "reboots": out.reboots,
            "migrations": out.migrations,
            "seed": out.seed, "fault": fault,
            "boot_s": round(out.boot_s, 2), "seconds": round(out.seconds, 2),
            "inconclusive": out.inconclusive,
            "failure": None if f is None else {
                "device": f.device, "ops": [str(op) for op in f.ops], "reason": f.reason,
                "scenario": str(f.scenario_file), "segment": str(f.segment),
                "model_trace": None if f.model_trace is None else str(f.model_trace)},
            "devices": {name: fin.clean for name, fin in out.finals.items()},
            "final_clean": (all(fin.clean for fin in out.finals.values())
                            if out.finals else None)}) + "\n")
        return out.exit_code
    w = sys.stdout.write
    w(f"live QEMU run: {out.examples} example(s) (boot {out.boot_s:.1f} s in all, "
      f"{out.reboots} reboot(s), {out.migrations} migration(s) in the examples), "
      f"seed {out.seed}{', fault ' + fault if fault else ''}, {out.seconds:.1f} s\n")
    if f is not None:
        w(f"FAILED after shrinking, on the {f.device} device: "
          f"{'; '.join(str(op) for op in f.ops)}\n  {f.reason}\n")
        w(f"  scenario {f.scenario_file} (replay: ballast capture qemu-live --out DIR --replay "
          f"{f.scenario_file}); trace segment {f.segment}\n")
        if f.model_trace is not None:
            w(f"  model trace {f.model_trace} (ballast replay / ballast report)\n")
    elif out.inconclusive is not None:
        w(f"INCONCLUSIVE: {out.inconclusive}\n")
    elif out.finals:
        w("every example passed both judges\n")
        for name, fin in out.finals.items():
            verdict = "clean" if fin.clean else "NOT clean"
            model = f"{fin.model.steps:,} model steps" if fin.model is not None else "no model"
            w(f"  {name} device: the whole capture is {verdict} "
              f"({model}, QMP cross-checks {'hold' if not fin.qmp else 'broken'})\n")
            if not fin.clean:
                from ballast.cli.validate import _report_qemu
                _report_qemu(fin, False, False, sys.stdout)
    return out.exit_code


def _devices(text: str) -> tuple[str, ...]:
    """The device names of ``--devices`` (:func:`~ballast.validate.qemu.live.live_test`
    refuses a name it does not know, before it starts anything)."""
    return tuple(n.strip() for n in text.split(",") if n.strip())
