"""Command line: ``ballast validate TRACE`` and ``ballast capture qemu --out DIR``.

``validate`` reads a trace of an implementation, in the project's trace format (the
default) or QEMU's own trace log (``--format qemu``), and says whether the model explains
it (exit 0), where it diverges (exit 1), or that it cannot tell (exit 3).  ``capture
qemu`` boots a Linux guest under QEMU, moves its balloon, records the logs and validates
them.  Bad input is exit 2, with no report left behind.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from ballast.argtypes import natural_int, positive_int
from ballast.errors import InputError, UsageError
from ballast.model.trace import bounded_lines, iter_trace
from ballast.opening import open_to_read
from ballast.model.virtio import VIRTIO_RULES
from ballast.cli.options import HeaderConfig, add_model_options, config_line, given
from ballast.cli.capture import register_capture
from ballast.progress import add_quiet_option
from ballast.validate.qemu.events import BALLOON_FEATURES
from ballast.validate.qemu.qmp_check import QMP_CHECKS
from ballast.validate.qemu.steps import ACTION_OF
from ballast.validate.qemu.validation import (
    QemuOutcome,
    features_from,
    progress_bar,
    validate_qemu,
)
from ballast.validate.trace.check import TraceReport, validate_steps
from ballast.validate.virtio.check import VirtioReport
from ballast.verdict import EXIT_INCONCLUSIVE, EXIT_OK, EXIT_VIOLATION

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``validate`` and ``capture`` to the ``ballast`` command line."""
    p = subparsers.add_parser(
        "validate", help="check an implementation's trace against the model",
        description="Check a trace of an implementation (project trace format, or QEMU's "
                    "virtio-balloon trace log) against the model and the VirtIO 5.5 rules.")
    p.add_argument("trace", help="trace file (.jsonl; for --format qemu a trace log, plain or .xz)")
    p.add_argument("--format", choices=("ballast", "qemu"), default="ballast")
    add_model_options(p, default_text="the trace's own; --format qemu: the log's")
    p.add_argument("--qmp", help="QEMU's QMP log (negotiated features) for --format qemu")
    p.add_argument("--features", help="negotiated virtio-balloon features, comma separated "
                   f"({', '.join(BALLOON_FEATURES.values())}); 'none' for none; overrides --qmp")
    p.add_argument("--max-gap", type=natural_int, default=2,
                   help="unlogged model steps allowed between two logged ones (default 2)")
    p.add_argument("--max-states", type=positive_int, default=50_000,
                   help="most model states kept as explanations before giving up (exit 3)")
    p.add_argument("--strict", action="store_true", help="a broken SHOULD is a violation too")
    p.add_argument("--emit-trace", metavar="FILE",
                   help="--format qemu: also write the trace converted to the project format")
    p.add_argument("--no-model", action="store_true",
                   help="--format qemu: judge by the VirtIO rules alone, not also by the model")
    p.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    p.add_argument("--no-progress", action="store_true", help=argparse.SUPPRESS)
    add_quiet_option(p)
    p.set_defaults(func=_validate_cmd)

    c = subparsers.add_parser("capture", help="record a real implementation's balloon trace")
    csub = c.add_subparsers(dest="capture_target", required=True)
    register_capture(csub)


# --------------------------------------------------------------------------- progress


class _CountingLines:
    """Lines of a text file, reporting bytes read to a progress callback."""

    def __init__(self, f: IO[str], update: Callable[[int], None], source: str) -> None:
        self.f, self.update, self.done, self.source = f, update, 0, source

    def __iter__(self) -> Iterator[str]:
        n = 0
        for line in bounded_lines(self.f, self.source):
            self.done += len(line)
            n += 1
            if not n & 1023:
                self.update(self.done)
            yield line
        self.update(self.done)


# --------------------------------------------------------------------------- validate


def _validate_cmd(args: argparse.Namespace) -> int:
    for flag in ("qmp", "emit_trace"):
        if getattr(args, flag) == "":  # an empty path would mean the current folder
            raise UsageError(f"--{flag.replace('_', '-')}: expected a path, got an empty "
                             "string")
    if args.format == "qemu":
        if args.emit_trace and args.qmp and Path(args.qmp).exists() and \
                Path(args.emit_trace).resolve() == Path(args.qmp).resolve():
            raise UsageError(f"--emit-trace {args.emit_trace} is the QMP log being read")
        if given(args):
            raise UsageError("--format qemu takes the model's configuration from the log; "
                             "--preset, --config, --set and --fault go with --format ballast")
        features = features_from(args.features, args.qmp)
        out = validate_qemu(args.trace, features, emit_trace=args.emit_trace,
                            progress=not (args.quiet or args.no_progress), qmp=args.qmp,
                            model=not args.no_model)
        return _report_qemu(out, args.strict, args.json, sys.stdout, args.qmp)
    if (args.qmp is not None or args.features is not None or args.emit_trace is not None
            or args.no_model):
        raise UsageError("--qmp, --features, --emit-trace and --no-model go with --format qemu")
    return _validate_ballast(args)


def _validate_ballast(args: argparse.Namespace) -> int:
    path = Path(args.trace)
    try:
        size = path.stat().st_size
        f = open_to_read(path)
    except OSError as exc:
        raise InputError(str(path), None, f"cannot read trace: {exc.strerror}") from None
    start = time.perf_counter()
    try:
        with f, progress_bar(not (args.quiet or args.no_progress), f"validating {path.name}",
                             size, unit="bytes") as update:
            configure = HeaderConfig(args, str(path))
            header, steps = iter_trace(_CountingLines(f, update, str(path)), str(path),
                                       configure)
            where = configure.where
            rep = validate_steps(header, steps, max_gap=args.max_gap, max_states=args.max_states)
    except UnicodeDecodeError:
        raise InputError(str(path), None, "not a UTF-8 text file") from None
    seconds = time.perf_counter() - start
    if not args.json:  # once the trace is read: bad input leaves one line, on stderr
        sys.stdout.write(config_line(header.config, header.faults, where) + "\n")
    return _report_ballast(rep, str(path), seconds, args.json, sys.stdout)


def _report_ballast(rep: TraceReport, name: str, seconds: float, as_json: bool,
                    out: IO[str]) -> int:
    code = {"ok": EXIT_OK, "mismatch": EXIT_VIOLATION, "inconclusive": EXIT_INCONCLUSIVE}[
        rep.outcome]
    m = rep.mismatch
    if as_json:
        data: dict[str, Any] = {"trace": name, "outcome": rep.outcome, "exit": code,
                                "steps": rep.steps, "unlogged_steps": rep.unlogged,
                                "max_states": rep.max_states, "seconds": round(seconds, 3),
                                "detail": rep.detail}
        if m is not None:
            data["mismatch"] = {"line": m.line, "step": m.step, "action": str(m.action),
                                "reason": m.reason, "property": m.property,
                                "property_message": m.property_message,
                                "possible": list(m.possible),
                                "last_state": m.last_state.to_dict()}
        out.write(json.dumps(data) + "\n")
        return code
    if rep.outcome == "ok":
        out.write(f"{name}: {rep.steps} logged steps explained by the model "
                  f"({rep.unlogged} unlogged steps inferred, at most {rep.max_states} "
                  f"candidate states) in {seconds:.2f} s\n")
    elif rep.outcome == "inconclusive":
        out.write(f"{name}: inconclusive: {rep.detail}\n")
    elif m is None:
        out.write(f"{name}: {rep.detail}\n")
    else:
        out.write(f"{name}:{m.line}: step {m.step} {m.action} is not explained by the model: "
                  f"{m.reason}\n")
        if m.property:
            out.write(f"  property that would break: {m.property}: {m.property_message}\n")
        out.write(f"  last matching state (after step {m.step - 1}): "
                  f"{_state_summary(m.last_state)}\n")
        out.write("  actions the model allowed there: "
                  f"{', '.join(m.possible) if m.possible else '(none)'}\n")
    return code


def _state_summary(s: Any) -> str:
    parts = []
    for v, vm in enumerate(s.vms):
        parts.append(f"VM {v}: target={vm.target} polled={vm.module.target} "
                     f"balloon={sorted(vm.module.balloon)} actual={vm.module.actual} "
                     f"inflate_queue={list(vm.inflate_queue)} "
                     f"deflate_queue={list(vm.deflate_queue)}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- QEMU


def _report_qemu(o: QemuOutcome, strict: bool, as_json: bool, out: IO[str],
                 qmp_log: str | None = None) -> int:
    rep = o.report
    code = o.exit_code(strict)
    v = rep.violation
    mv = o.model
    if as_json:
        data: dict[str, Any] = {
            "trace": o.trace, "format": "qemu", "exit": code, "features": sorted(o.features),
            "nothing_judged": o.nothing_judged,
            "events": rep.events, "pages_inflated": rep.inflated, "pages_deflated": rep.deflated,
            "guest_pages": o.guest_pages, "seconds": round(o.seconds, 3),
            "warnings": [{"rule": w.rule, "level": w.level.value, "message": w.message}
                         for w in rep.warnings],
            "violation": None if v is None else {
                "rule": v.rule, "level": v.level.value, "line": v.line, "message": v.message,
                "also": list(v.also), "event": v.event.kind if v.event else None,
                "action": ACTION_OF.get(v.event.kind) if v.event else None,
                "last_state": _view_dict(rep), "possible": list(rep.possible)},
            "emitted": o.emitted,
            "writes_in_driver_order": None if o.moved is None else {
                "count": o.moved.count, "lines": o.moved.lines},
            "given_back": None if o.ram is None else o.ram.as_dict(),
            "ignored_lines": None if o.ignored is None else {
                "count": o.ignored.count, "first_line": o.ignored.first,
                "first_text": o.ignored.first_text},
            "model": None if mv is None else {
                "ok": mv.ok, "steps": mv.steps, "step": mv.step, "line": mv.line,
                "action": mv.action, "reason": mv.reason, "property": mv.property,
                "guest_pages": mv.guest_pages},
            "qmp": None if o.qmp is None else {
                "checks": sorted(QMP_CHECKS),
                "broken": [{"check": f.check, "file": f.file, "line": f.line,
                            "message": f.message} for f in o.qmp]}}
        out.write(json.dumps(data) + "\n")
        return code
    feats = ", ".join(sorted(o.features)) or "none"
    if code == EXIT_INCONCLUSIVE:
        out.write(f"{o.trace}: inconclusive: {o.nothing_judged}\n")
    elif v is None:
        out.write(f"{o.trace}: no violation of the VirtIO 5.5 rules: {rep.events:,} events, "
                  f"{rep.inflated:,} pages inflated, {rep.deflated:,} deflated, largest balloon "
                  f"{rep.max_balloon:,} pages (features: {feats}) in {o.seconds:.2f} s\n")
    else:
        rule = VIRTIO_RULES[v.rule]
        out.write(f"{o.trace}:{v.line}: {rule.level.value} {v.rule} ({rule.cites}) broken: "
                  f"{v.message}\n")
        out.write(f"  rule: {rule.summary}\n")
        if v.also:
            out.write(f"  also broken: {', '.join(v.also)}\n")
        if v.event is not None:
            out.write(f"  the line is a {v.event.kind} event (model action "
                      f"{ACTION_OF.get(v.event.kind, 'none')})\n")
        if rep.last_ok is not None:
            out.write(f"  last matching state: {_view_text(rep)}\n")
        out.write(f"  possible there: {'; '.join(rep.possible)}\n")
    if mv is not None and mv.ok:
        if code != EXIT_INCONCLUSIVE:  # no step to explain: no word of the model's
            out.write(f"  model: {mv.steps:,} steps explained by the reference model "
                      f"({mv.guest_pages:,} guest pages), every property holds\n")
    elif mv is not None:
        what = f"breaks {mv.property}: " if mv.property else "is not explained by the model: "
        out.write(f"{o.trace}:{mv.line}: model: step {mv.step} {mv.action} {what}{mv.reason}\n")
    if o.moved is not None and o.moved.count:
        n = o.moved.count
        out.write(f"  {n:,} actual write{'s' if n > 1 else ''} judged after the report "
                  f"{'they' if n > 1 else 'it'} already counted (the driver's order), first at "
                  f"line {o.moved.lines[0]}\n")
    given_back = o.ram.summary() if o.ram is not None else None
    if given_back:
        out.write(f"  {given_back}\n")
    if o.qmp is not None and not o.qmp:
        out.write(f"  QMP: {len(QMP_CHECKS)} cross-checks hold ({', '.join(sorted(QMP_CHECKS))})\n")
    logs = {"qmp": qmp_log or "qmp", "trace": o.trace}  # the files the findings' lines are in
    for f in o.qmp or []:
        out.write(f"{logs.get(f.file, f.file)}:{f.line}: QMP cross-check {f.check} broken: "
                  f"{f.message}\n")
    for w in rep.warnings:
        out.write(f"  warning: SHOULD {w.rule}: {w.message}\n")
    if o.ignored_note is not None:
        out.write(f"  note: {o.ignored_note}\n")
    if o.emitted:
        out.write(f"  converted trace written to {o.emitted}\n")
    return code


def _view_dict(rep: VirtioReport) -> dict[str, Any] | None:
    s = rep.last_ok
    if s is None:
        return None
    return {"num_pages": s.num_pages, "polled": s.polled, "actual": s.actual,
            "balloon_pages": len(s.balloon), "inflating": sorted(s.inflating)[:256],
            "deflating": sorted(s.deflating)[:256]}


def _view_text(rep: VirtioReport) -> str:
    s = rep.last_ok
    assert s is not None
    return (f"num_pages={s.num_pages} read by the driver={s.polled} actual={s.actual} "
            f"balloon={len(s.balloon)} pages, {len(s.inflating)} inflating, "
            f"{len(s.deflating)} deflating")
