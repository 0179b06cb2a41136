"""Validating a QEMU virtio-balloon trace log: the VirtIO rules, the reference model, QMP.

:func:`validate_qemu` reads QEMU's trace log (plain or xz), checks each event
against the VirtIO 5.5 rules (:mod:`ballast.validate.virtio.check`), feeds the
converted steps to the reference model (:class:`~ballast.validate.qemu.model_judge.ModelJudge`),
cross-checks the QMP log when given and can write the converted project-format
trace. :func:`features_from` finds the negotiated features. ``ballast validate
--format qemu`` and ``ballast capture qemu`` report its :class:`QemuOutcome`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from ballast.errors import InputError, OutputError, UsageError
from ballast.model.config import MAX_MODEL_SIZE
from ballast.model.trace import (atomic_write_with, check_destinations, is_special_file,
                                 nearest_folder)
from ballast.progress import meter, shown
from ballast.verdict import EXIT_INCONCLUSIVE, EXIT_OK, EXIT_VIOLATION
from ballast.validate.qemu.events import BALLOON_FEATURES, NegotiatedFeatures
from ballast.validate.qemu.model_judge import ModelJudge, ModelVerdict
from ballast.validate.qemu.qmp_check import QmpCrossCheck, QmpFinding
from ballast.validate.qemu.qmp_reader import read_qmp
from ballast.validate.qemu.source import QemuLogError
from ballast.validate.qemu.steps import (
    GuestRam,
    GuestSize,
    MovedWrites,
    StepConverter,
    profile_events,
    trace_header,
)
from ballast.validate.qemu.trace_reader import IgnoredLines, read_trace
from ballast.validate.virtio.check import VirtioReport, check_virtio

__all__ = ["QemuOutcome", "features_from", "progress_bar", "validate_qemu"]


@contextmanager
def progress_bar(enabled: bool, what: str, total: int | None, unit: str = "events"
                 ) -> Iterator[Callable[[int], None]]:
    """A meter of ``what`` through :mod:`ballast.progress` (a live line on a terminal,
    plain periodic lines in a log, nothing when not ``enabled``); yields
    ``update(completed)``."""
    with shown(enabled), meter(what, total=total, unit=unit) as m:
        yield m.update


def features_from(flag: str | None, qmp: str | None) -> frozenset[str]:
    """Negotiated features: the flag, else the QMP log's x-query-virtio-status, else none."""
    if flag is not None:
        names = [n.strip().upper().removeprefix("VIRTIO_BALLOON_F_")
                 for n in flag.split(",") if n.strip()]
        if not names:  # an unset shell variable, most likely: not a claim of no feature
            raise UsageError("--features is empty; name the negotiated features, comma "
                             "separated, or 'none'")
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
    _refuse_special_qmp(qmp)
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


def _refuse_special_qmp(qmp: str | os.PathLike[str]) -> None:
    """Refuse a QMP log that is neither a plain file nor a folder (a folder is refused when
    it is read): opening a named pipe waits for a writer, for ever if none comes, and the
    log is read twice (its features, then its events), which a pipe cannot be."""
    if is_special_file(os.fspath(qmp)):
        raise InputError(str(qmp), None, "is not a regular file; expected a QMP log file")


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
    moved: MovedWrites | None = None
    """The ``actual`` writes judged after the report they already counted (the driver's
    order: :func:`~ballast.validate.qemu.steps.in_driver_order`)."""
    ram: GuestRam | None = None
    """What QEMU gave back to the host and where it lies (the located discards and free
    page reports, and those that could not be located)."""
    ignored: IgnoredLines | None = None
    """The log's lines of no event the reader knows (other events, other text, damage)."""

    @property
    def ignored_note(self) -> str | None:
        """A line saying which lines were ignored, or None where none were. A balloon event
        damaged beyond recognition is one of them, and the verdict then judged a log that
        lost it: the note is how a reader tells."""
        ign = self.ignored
        if ign is None or not ign.count:
            return None
        return (f"{ign.count:,} line{'s' if ign.count > 1 else ''} of no balloon event "
                f"ignored, first at line {ign.first}: {ign.first_text!r} (other trace events "
                "are; a damaged balloon event would be too, and the verdict would then be "
                "of a log that lost it)")

    @property
    def clean(self) -> bool:
        """No rule broken, every step explained by the model, every QMP check holds."""
        return (self.report.violation is None and (self.model is None or self.model.ok)
                and not self.qmp)

    @property
    def nothing_judged(self) -> str | None:
        """Why neither judge had anything to judge: the log holds no virtio-balloon event (an
        empty log, another file, QEMU run without tracing); None where it holds some. Such a
        log breaks no rule, and passing it would pass a capture that recorded nothing."""
        if self.report.events:
            return None
        return ("no virtio-balloon trace event in the log, so nothing was judged (QEMU writes "
                "them with -trace enable=virtio_balloon_* -trace enable=virtio_queue_notify, "
                "as ballast capture qemu starts it)")

    def exit_code(self, strict: bool = False) -> int:
        """1 a rule (with ``strict`` a SHOULD too), the model or a QMP cross-check broken; 3
        nothing judged (:attr:`nothing_judged`); else 0.

        >>> from ballast.validate.virtio.check import VirtioReport
        >>> QemuOutcome("empty.log", frozenset(), VirtioReport(), None, 0.0, None).exit_code()
        3
        """
        if not self.clean or (strict and self.report.warnings):
            return EXIT_VIOLATION
        return EXIT_INCONCLUSIVE if self.nothing_judged is not None else EXIT_OK


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
        raise InputError(name, None, "is a folder; expected a QEMU trace log file"
                         if os.path.isdir(name) else
                         "is not a regular file; expected a QEMU trace log file"
                         if os.path.exists(name) else "no such trace file")
    if emit_trace is not None:
        _check_emit_destination(Path(emit_trace), Path(name))
    size = GuestSize()
    size.pages = guest_pages
    ignored = IgnoredLines()
    start = time.perf_counter()
    tmp: IO[str] | None = None
    try:
        cross = None
        if qmp is not None:
            _refuse_special_qmp(qmp)
            try:
                cross = QmpCrossCheck(read_qmp(qmp))
            except OSError as exc:
                raise InputError(str(qmp), None, f"cannot read QMP log: {exc.strerror}") from None
        raw: Iterator[Any] = read_trace(name, ignored=ignored)
        if cross is not None:
            raw = _tapping(raw, cross)
        moved = MovedWrites()
        ram = GuestRam()
        events: Iterator[Any] = profile_events(raw, features, size, moved, ram)
        judge = ModelJudge(features, size, name) if model else None
        if emit_trace is not None:
            try:
                # Beside the destination (renamed there at the end); for a device or a
                # pipe, which is written into, in the temporary folder.
                tmp = tempfile.NamedTemporaryFile(
                    "w", encoding="utf-8", delete=False, prefix=".emit.", suffix=".tmp",
                    dir=None if is_special_file(emit_trace) else
                    nearest_folder(emit_trace))
            except OSError as exc:
                raise OutputError(str(emit_trace), f"cannot write: {exc.strerror}") from None
        if tmp is not None or judge is not None:
            events = _teeing(events, tmp, features, judge, str(emit_trace))
        with progress_bar(progress, f"validating {Path(name).name}", None) as update:
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
                       verdict, findings, moved, ram, ignored)


def _check_emit_destination(dest: Path, source: Path) -> None:
    """Refuse, before reading anything, a destination that is the input or cannot be a file."""
    if dest.exists() and dest.resolve() == source.resolve():
        raise UsageError(f"--emit-trace {dest} is the trace being read; give another file")
    # Nothing is made yet: a log refused as bad input must leave no empty folder behind.
    check_destinations([dest])


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

    def write(out: IO[str]) -> None:
        out.write(json.dumps(header.to_dict(), separators=(",", ":")) + "\n")
        with open(tmp, encoding="utf-8") as body:
            for n, line in enumerate(body, 1):
                rec = json.loads(line)
                rec["step"] = n
                out.write(json.dumps(rec, separators=(",", ":")) + "\n")

    atomic_write_with(dest, write)
    os.unlink(tmp)
