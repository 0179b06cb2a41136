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
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from ballast.errors import InputError, OutputError, UsageError
from ballast.model.config import MAX_MODEL_SIZE
from ballast.model.trace import bounded_lines, iter_trace
from ballast.model.virtio import VIRTIO_RULES
from ballast.validate.qemu.steps import (
    ACTION_OF,
    GuestSize,
    StepConverter,
    profile_events,
    trace_header,
)
from ballast.validate.qemu.command import register_capture
from ballast.validate.qemu.events import BALLOON_FEATURES, NegotiatedFeatures
from ballast.validate.qemu.qmp_reader import read_qmp
from ballast.validate.qemu.source import QemuLogError
from ballast.validate.qemu.trace_reader import read_trace
from ballast.validate.qemu.model_judge import ModelJudge, ModelVerdict
from ballast.validate.qemu.qmp_check import QMP_CHECKS, QmpCrossCheck, QmpFinding
from ballast.validate.trace_check import TraceReport, validate_steps
from ballast.validate.virtio_check import VirtioReport, check_virtio

__all__ = ["QemuOutcome", "register", "validate_qemu"]

EXIT_OK, EXIT_VIOLATION, EXIT_INCONCLUSIVE = 0, 1, 3


def register(subparsers: Any) -> None:
    """Add ``validate`` and ``capture`` to the ``ballast`` command line."""
    p = subparsers.add_parser(
        "validate", help="check an implementation's trace against the model",
        description="Check a trace of an implementation (project trace format, or QEMU's "
                    "virtio-balloon trace log) against the model and the VirtIO 5.5 rules.")
    p.add_argument("trace", help="trace file (.jsonl; for --format qemu a trace log, plain or .xz)")
    p.add_argument("--format", choices=("ballast", "qemu"), default="ballast")
    p.add_argument("--qmp", help="QEMU's QMP log (negotiated features) for --format qemu")
    p.add_argument("--features", help="negotiated virtio-balloon features, comma separated "
                   f"({', '.join(BALLOON_FEATURES.values())}); 'none' for none; overrides --qmp")
    p.add_argument("--max-gap", type=int, default=2,
                   help="unlogged model steps allowed between two logged ones (default 2)")
    p.add_argument("--max-states", type=int, default=50_000,
                   help="most model states kept as explanations before giving up (exit 3)")
    p.add_argument("--strict", action="store_true", help="a broken SHOULD is a violation too")
    p.add_argument("--emit-trace", metavar="FILE",
                   help="--format qemu: also write the trace converted to the project format")
    p.add_argument("--no-model", action="store_true",
                   help="--format qemu: judge by the VirtIO rules alone, not also by the model")
    p.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_validate_cmd)

    c = subparsers.add_parser("capture", help="record a real implementation's balloon trace")
    csub = c.add_subparsers(dest="capture_target", required=True)
    register_capture(csub)


# --------------------------------------------------------------------------- progress


@contextmanager
def _progress(enabled: bool, what: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``update(completed)``."""
    if not enabled or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                               TextColumn, TimeElapsedColumn)

    cols: list[Any] = [SpinnerColumn(), TextColumn(what)]
    cols += [BarColumn(), MofNCompleteColumn()] if total else [TextColumn("{task.completed:,}")]
    cols.append(TimeElapsedColumn())
    with Progress(*cols, transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.update(task, completed=n)


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


# --------------------------------------------------------------------------- validate


def _validate_cmd(args: argparse.Namespace) -> int:
    if args.max_gap < 0 or args.max_states < 1:
        raise UsageError("--max-gap must be >= 0 and --max-states >= 1")
    if args.format == "qemu":
        if args.emit_trace and args.qmp and Path(args.qmp).exists() and \
                Path(args.emit_trace).resolve() == Path(args.qmp).resolve():
            raise UsageError(f"--emit-trace {args.emit_trace} is the QMP log being read")
        features = _features(args.features, args.qmp)
        out = validate_qemu(args.trace, features, emit_trace=args.emit_trace,
                            progress=not args.no_progress, qmp=args.qmp,
                            model=not args.no_model)
        return _report_qemu(out, args.strict, args.json, sys.stdout)
    if args.qmp or args.features or args.emit_trace or args.no_model:
        raise UsageError("--qmp, --features, --emit-trace and --no-model go with --format qemu")
    return _validate_ballast(args)


def _validate_ballast(args: argparse.Namespace) -> int:
    path = Path(args.trace)
    try:
        size = path.stat().st_size
        f = open(path, encoding="utf-8")
    except OSError as exc:
        raise InputError(str(path), None, f"cannot read trace: {exc.strerror}") from None
    start = time.perf_counter()
    try:
        with f, _progress(not args.no_progress, f"validating {path.name}", size) as update:
            header, steps = iter_trace(_CountingLines(f, update, str(path)), str(path))
            rep = validate_steps(header, steps, max_gap=args.max_gap, max_states=args.max_states)
    except UnicodeDecodeError:
        raise InputError(str(path), None, "not a UTF-8 text file") from None
    seconds = time.perf_counter() - start
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


def _features(flag: str | None, qmp: str | None) -> frozenset[str]:
    """Negotiated features: the flag, else the QMP log's x-query-virtio-status, else none."""
    if flag is not None:
        names = [n.strip().upper().removeprefix("VIRTIO_BALLOON_F_")
                 for n in flag.split(",") if n.strip()]
        if names == ["NONE"]:
            return frozenset()
        known = set(BALLOON_FEATURES.values())
        bad = [n for n in names if n not in known]
        if bad:
            raise UsageError(f"--features: unknown feature {bad[0]!r}; expected some of "
                             f"{', '.join(BALLOON_FEATURES.values())} or none")
        return frozenset(names)
    if qmp is None:
        return frozenset()
    found: frozenset[str] = frozenset()
    try:
        for ev in read_qmp(qmp):
            if isinstance(ev, NegotiatedFeatures):
                found = frozenset(ev.guest_names)
    except QemuLogError as exc:
        raise InputError(exc.file, exc.line, exc.message) from None
    except OSError as exc:
        raise InputError(str(qmp), None, f"cannot read QMP log: {exc.strerror}") from None
    return found


@dataclass
class QemuOutcome:
    """What validating one QEMU trace found."""

    trace: str
    features: frozenset[str]
    report: VirtioReport
    guest_pages: int | None
    seconds: float
    emitted: str | None
    model: ModelVerdict | None = None
    """The reference model's verdict (None when not asked for)."""
    qmp: list[QmpFinding] | None = None
    """Broken QMP cross-checks (None without a QMP log)."""

    @property
    def clean(self) -> bool:
        """No rule broken, every step explained by the model, every QMP check holds."""
        return (self.report.violation is None and (self.model is None or self.model.ok)
                and not self.qmp)


def validate_qemu(trace: str | os.PathLike[str], features: frozenset[str], *,
                  emit_trace: str | None = None, progress: bool = False,
                  qmp: str | os.PathLike[str] | None = None, model: bool = True,
                  guest_pages: int | None = None) -> QemuOutcome:
    """Validate a QEMU virtio-balloon trace log (plain or xz) against the virtio rules and,
    with ``model`` (the default), the reference model; with ``qmp`` cross-check the QMP log.

    With ``emit_trace`` the converted project-format trace is written there too (only
    when the whole log was read without error: no partial file).  ``guest_pages`` is the
    guest's size when known beforehand (else the first target in the log tells it).
    """
    name = str(trace)
    if not os.path.isfile(name):
        raise InputError(name, None, "no such trace file")
    if emit_trace is not None:
        _check_emit_destination(Path(emit_trace), Path(name))
    size = GuestSize()
    size.pages = guest_pages
    start = time.perf_counter()
    tmp: IO[str] | None = None
    try:
        cross = None
        if qmp is not None:
            try:
                cross = QmpCrossCheck(read_qmp(qmp))
            except OSError as exc:
                raise InputError(str(qmp), None, f"cannot read QMP log: {exc.strerror}") from None
        raw: Iterator[Any] = read_trace(name)
        if cross is not None:
            raw = _tapping(raw, cross)
        events: Iterator[Any] = profile_events(raw, features, size)
        judge = ModelJudge(features, size, name) if model else None
        if emit_trace is not None:
            try:
                tmp = tempfile.NamedTemporaryFile("w", encoding="utf-8", delete=False,
                                                  dir=Path(emit_trace).resolve().parent,
                                                  prefix=".emit.", suffix=".tmp")
            except OSError as exc:
                raise OutputError(str(emit_trace), f"cannot write: {exc.strerror}") from None
        if tmp is not None or judge is not None:
            events = _teeing(events, tmp, features, judge, str(emit_trace))
        with _progress(progress, f"validating {Path(name).name}", None) as update:
            rep = check_virtio(events, features, on_event=update)
            # The model, the QMP cross-checks and the converted trace see the whole log,
            # also past a broken rule.
            for _ in events:
                if tmp is None and cross is None and (judge is None or judge.failed):
                    break
        verdict = judge.finish() if judge is not None else None
        findings = cross.finish() if cross is not None else None
        if tmp is not None:
            try:
                tmp.close()
            except OSError as exc:
                raise OutputError(str(emit_trace), f"cannot write: {exc.strerror}") from None
            _finish_emit(tmp.name, str(emit_trace), size.pages or 0, features, name)
            tmp = None
    except QemuLogError as exc:
        raise InputError(exc.file, exc.line, exc.message) from None
    except OSError as exc:
        raise InputError(name, None, f"cannot read trace: {exc.strerror}") from None
    finally:
        if tmp is not None:
            tmp.close()
            os.unlink(tmp.name)
    return QemuOutcome(name, features, rep, size.pages, time.perf_counter() - start, emit_trace,
                       verdict, findings)


def _check_emit_destination(dest: Path, source: Path) -> None:
    """Refuse, before reading anything, a destination that is the input or cannot be a file."""
    if dest.exists() and dest.resolve() == source.resolve():
        raise UsageError(f"--emit-trace {dest} is the trace being read; give another file")
    if dest.is_dir():
        raise OutputError(str(dest), "is a folder; expected the path of a file to write")
    try:
        dest.resolve().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(str(dest), f"cannot create its folder: {exc.strerror}") from None


def _tapping(events: Iterator[Any], cross: QmpCrossCheck) -> Iterator[Any]:
    """Pass trace events on, showing each to the QMP cross-check."""
    for ev in events:
        cross.trace_event(ev)
        yield ev


def _teeing(events: Iterator[Any], out: IO[str] | None, features: frozenset[str],
            judge: ModelJudge | None, dest: str) -> Iterator[Any]:
    """Pass events on, judging each one's model step and writing it as a JSON line."""
    steps = StepConverter(features=features)
    for item in events:
        yield item
        for st in steps.feed(*item):
            if judge is not None:
                judge.feed(st)
            if out is not None:
                try:
                    out.write(json.dumps(st.to_dict(), separators=(",", ":")) + "\n")
                except OSError as exc:
                    raise OutputError(dest, f"cannot write: {exc.strerror}") from None


def _finish_emit(tmp: str, dest: str, guest_pages: int, features: frozenset[str],
                 source: str) -> None:
    if guest_pages > MAX_MODEL_SIZE:
        raise InputError(source, None, f"the trace shows a guest of {guest_pages:,} pages, more "
                         f"than the model can hold ({MAX_MODEL_SIZE:,}); no trace emitted")
    header = trace_header(max(guest_pages, 1), features, source)
    final = Path(dest)
    out_name: str | None = None
    try:
        with open(tmp, encoding="utf-8") as body, tempfile.NamedTemporaryFile(
                "w", encoding="utf-8", delete=False, dir=final.resolve().parent,
                prefix=".emit.", suffix=".tmp") as out:
            out_name = out.name
            out.write(json.dumps(header.to_dict(), separators=(",", ":")) + "\n")
            for n, line in enumerate(body, 1):
                rec = json.loads(line)
                rec["step"] = n
                out.write(json.dumps(rec, separators=(",", ":")) + "\n")
            out.flush()
            os.fsync(out.fileno())
        # A temporary file is private (0600); the trace is an ordinary file (0666 less umask).
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(out_name, 0o666 & ~mask)
        os.replace(out_name, final)
        out_name = None
    except OSError as exc:
        raise OutputError(dest, f"cannot write: {exc.strerror}") from None
    finally:
        if out_name is not None and os.path.exists(out_name):
            os.unlink(out_name)
    os.unlink(tmp)


def _report_qemu(o: QemuOutcome, strict: bool, as_json: bool, out: IO[str]) -> int:
    rep = o.report
    code = EXIT_VIOLATION if not o.clean or (strict and rep.warnings) else EXIT_OK
    v = rep.violation
    mv = o.model
    if as_json:
        data: dict[str, Any] = {
            "trace": o.trace, "format": "qemu", "exit": code, "features": sorted(o.features),
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
    if v is None:
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
        out.write(f"  model: {mv.steps:,} steps explained by the reference model "
                  f"({mv.guest_pages:,} guest pages), every property holds\n")
    elif mv is not None:
        what = f"breaks {mv.property}: " if mv.property else "is not explained by the model: "
        out.write(f"{o.trace}:{mv.line}: model: step {mv.step} {mv.action} {what}{mv.reason}\n")
    if o.qmp is not None and not o.qmp:
        out.write(f"  QMP: {len(QMP_CHECKS)} cross-checks hold ({', '.join(sorted(QMP_CHECKS))})\n")
    for f in o.qmp or []:
        out.write(f"{f.file}:{f.line}: QMP cross-check {f.check} broken: {f.message}\n")
    for w in rep.warnings:
        out.write(f"  warning: SHOULD {w.rule}: {w.message}\n")
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
