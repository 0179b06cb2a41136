"""Live, property-based testing of QEMU + Linux: Hypothesis chooses, the model judges.

One guest is booted for the whole run.  Hypothesis chooses each example: a short
sequence of :class:`LiveOp` -- balloon targets (MiB of guest RAM), guest memory
pressure (MiB written to a tmpfs, with DEFLATE_ON_OOM negotiated), memory compaction
(which migrates balloon pages) and at most one reboot (``system_reset`` with the balloon
as it is: the device resets, and the new driver inflates to the target again).  Ballast performs them on the guest over QMP and its
console, then asks for all the guest's RAM back, so that every example starts and ends
with an empty balloon -- the state the model's initial state stands for.  The lines QEMU
traced during the example (the trace is read as it is written, from where the previous
example ended) are then judged by both judges, the VirtIO rules and the reference model;
at the end the whole capture is validated again, with the QMP cross-checks.

A failing example is shrunk by Hypothesis on the same guest, and the smallest one is
written as a scenario file (``failure.json``: the seed, the operations, the reason) with
its trace segment, the segment converted to a model trace (``failure.trace.model.jsonl``,
for ``ballast replay`` and ``ballast report``) and a compact report
(``failure.trace.report.md``).  ``ballast capture qemu-live --replay
failure.json`` runs it again.  The budget counts examples, not seconds; shrinking runs at
most :data:`SHRINK_RUNS` more examples on the guest.

A *fault* seeds a deviation into what the judges see, to show the runner fails and
shrinks: ``hide-target`` drops QEMU's ``virtio_balloon_to_target`` lines from each
segment (a target the guest reads but the host never set).
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ballast.errors import InputError
from ballast.seeded_draws import seed_only_draws
from ballast.validate.qemu.capture import reset_guest
from ballast.validate.qemu.guest import MIB, CaptureError, DeviceOptions, QemuGuest

__all__ = ["FAULTS", "OP_KINDS", "REBOOT_ODDS", "SHRINK_RUNS", "LiveFailure", "LiveOp", "LiveOutcome", "LiveRunner", "SegmentJudge",
           "live_test", "ops_strategy", "read_scenario"]

SHRINK_RUNS: Final = 24
"""Most examples run on the guest while shrinking a failure."""

FAULTS: Final[dict[str, str]] = {
    "hide-target": "drop virtio_balloon_to_target lines from what the judges see",
}
"""Seeded deviations of the live runner, by name."""

_QUIET_S: Final = 0.3


OP_KINDS: Final = ("target", "pressure", "compact", "reboot")
"""What an example can do, by :attr:`LiveOp.kind`."""


@dataclass(frozen=True)
class LiveOp:
    """One thing the live test does: ``target`` (guest RAM, MiB), ``pressure`` (MiB the
    guest fills, then frees), ``compact`` or ``reboot``."""

    kind: str
    mib: int = 0

    def __str__(self) -> str:
        return f"{self.kind} {self.mib}" if self.kind in ("target", "pressure") else self.kind


REBOOT_ODDS: Final = 4
"""One example in this many (about) reboots the guest once: a reboot costs a boot."""


def ops_strategy(guest_mib: int, pressure: bool) -> Any:
    """Hypothesis strategy of an example: one to four operations, and in about one example
    of :data:`REBOOT_ODDS` a reboot among them (never more than one).

    Targets are multiples of 16 MiB between 5/8 of the guest and all of it; pressure is
    at most 96 MiB (a guest of 256 MiB survives it with its balloon at 5/8).  Shrinking
    drops the reboot first (its draw shrinks towards none).

    >>> _with_reboot([LiveOp("target", 160), LiveOp("compact")], 1)
    [LiveOp(kind='target', mib=160), LiveOp(kind='reboot', mib=0), LiveOp(kind='compact', mib=0)]
    >>> len(_with_reboot([LiveOp("compact")], None))
    1
    """
    from hypothesis import strategies as st

    low = max(16, (guest_mib * 5 // 8) // 16 * 16)
    target = st.builds(LiveOp, st.just("target"), st.integers(low // 16, guest_mib // 16).map(lambda n: n * 16))
    kinds = [target, st.just(LiveOp("compact"))]
    if pressure:
        kinds.append(st.builds(LiveOp, st.just("pressure"), st.sampled_from([32, 64, 96])))
    base = st.lists(st.one_of(*kinds), min_size=1, max_size=3)
    cut = 4 * (REBOOT_ODDS - 1)
    reboot_at = st.integers(0, 4 * REBOOT_ODDS - 1).map(lambda k: None if k < cut else k - cut)
    return st.builds(_with_reboot, base, reboot_at)


def _with_reboot(ops: list[LiveOp], at: int | None) -> list[LiveOp]:
    """``ops`` with a reboot before the ``at``-th (after the last when ``at`` is past it);
    ``ops`` as they are when ``at`` is None."""
    if at is None:
        return ops
    k = min(at, len(ops))
    return [*ops[:k], LiveOp("reboot"), *ops[k:]]


@dataclass(frozen=True)
class LiveFailure:
    """The smallest failing example found: its operations, why it failed, where it is written."""

    ops: tuple[LiveOp, ...]
    reason: str
    scenario_file: Path
    segment: Path
    model_trace: Path | None


@dataclass
class LiveOutcome:
    """What a live run found."""

    examples: int
    """Examples run on the guest (shrinking included)."""
    seed: int
    failure: LiveFailure | None = None
    inconclusive: str | None = None
    """Why the run could not finish (QEMU failed, the guest panicked, time ran out)."""
    final: Any = None
    """The whole capture's validation (a :class:`~ballast.cli.validate.QemuOutcome`)."""
    reboots: int = 0
    """Reboots the examples made (shrinking included)."""
    boot_s: float = 0.0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 every example and the whole capture clean, 1 a failure, 3 inconclusive."""
        if self.failure is not None or (self.final is not None and not self.final.clean):
            return 1
        return 3 if self.inconclusive is not None else 0


class SegmentJudge:
    """Reads a trace log as it grows and judges each new stretch of it by both judges.

    Each segment starts where the previous one ended (at a whole line) and is judged from
    the model's initial state: the live runner makes every example start with an empty
    balloon.  ``fault`` seeds a deviation into what the judges see (:data:`FAULTS`).
    """

    def __init__(self, trace_log: Path, features: frozenset[str], guest_pages: int,
                 fault: str | None = None) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)}")
        self.trace_log = trace_log
        self.features = features
        self.guest_pages = guest_pages
        self.fault = fault
        self.offset = 0

    def next_segment(self) -> list[str]:
        """The whole lines written since the previous segment."""
        with open(self.trace_log, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        lines = data[:cut].decode("utf-8", "surrogateescape").splitlines(keepends=True)
        if self.fault == "hide-target":
            lines = [line for line in lines if "virtio_balloon_to_target" not in line]
        return lines

    def judge(self, lines: list[str], where: Path, emit: bool = False) -> str | None:
        """Both judges on one segment (written to ``where``); why it fails, or None.

        With ``emit`` the segment converted to a model trace (``.model.jsonl``) and a
        compact report (``.report.md``) are written beside it.
        """
        from ballast.validate.qemu.validation import validate_qemu

        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text("".join(lines), encoding="utf-8", errors="surrogateescape")
        emit_to = str(where.with_suffix(".model.jsonl")) if emit else None
        try:
            out = validate_qemu(where, self.features, emit_trace=emit_to, model=True,
                                guest_pages=self.guest_pages)
        except InputError as exc:
            return f"the segment cannot be read: {exc}"
        if emit:
            from ballast.validate.qemu.report import compact_report

            where.with_suffix(".report.md").write_text(
                compact_report(where, out, title="live QEMU example"), encoding="utf-8")
        v = out.report.violation
        if v is not None:
            return f"line {v.line}: VirtIO rule {v.rule} broken: {v.message}"
        if out.model is not None and not out.model.ok:
            what = f"breaks {out.model.property}" if out.model.property else "is not explained by the model"
            return f"line {out.model.line}: step {out.model.step} {out.model.action} {what}: {out.model.reason}"
        return None


class LiveRunner:
    """One booted guest, what each example makes it do, and the judging of it."""

    def __init__(self, out_dir: Path, options: DeviceOptions, *, settle_s: float, deadline: float,
                 fault: str | None = None) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)}")
        self.out_dir = out_dir
        self.options = options
        self.settle_s = settle_s
        self.fault = fault
        self.guest = QemuGuest(out_dir / "capture", options, deadline)
        self.features: frozenset[str] = frozenset()
        self.judge = SegmentJudge(self.guest.trace_log, frozenset(), options.guest_mib * MIB // 4096, fault)
        self.runs = 0
        self.reboots = 0
        """Reboots made, shrinking included."""

    def boot(self) -> None:
        """Boot the guest; the trace so far (the boot) is the first segment's start."""
        from ballast.validate.qemu.events import decode_features

        self.guest.boot()
        self.features = frozenset(decode_features(self.guest.guest_features or 0))
        if self.guest.guest_features is None and self.options.deflate_on_oom:
            self.features = frozenset({"DEFLATE_ON_OOM"})
        self.judge.features = self.features

    def perform(self, ops: tuple[LiveOp, ...]) -> None:
        """Do ``ops`` on the guest, then give it all its RAM back and let it settle."""
        g = self.guest
        for op in ops:
            g.alive(f"before {op}")
            if op.kind == "target":
                g.move_balloon(op.mib, self.settle_s)
            elif op.kind == "pressure":
                g.ask(f"pressure {op.mib}", ("PRESSURE filled", "PRESSURE none"), self.settle_s)
                g.actual_bytes()
                g.ask("release", ("PRESSURE released",), self.settle_s)
            elif op.kind == "compact":
                g.ask("compact", ("COMPACTED", "UNKNOWN compact"), self.settle_s)
            elif op.kind == "reboot":
                reset_guest(g, self.settle_s)
                self.reboots += 1
            else:
                raise ValueError(f"unknown operation {op.kind!r}")
        reached, _, _ = g.move_balloon(self.options.guest_mib, self.settle_s)
        if not reached:
            raise CaptureError(f"the guest did not give its RAM back within {self.settle_s} s")
        time.sleep(_QUIET_S)

    def run(self, ops: tuple[LiveOp, ...], where: Path, emit: bool = False) -> str | None:
        """Perform one example and judge what QEMU traced meanwhile."""
        self.runs += 1
        self.perform(ops)
        reason = self.judge.judge(self.judge.next_segment(), where, emit)
        where.with_suffix(".json").write_text(json.dumps(
            {"ops": [str(op) for op in ops], "reason": reason}) + "\n", encoding="utf-8")
        return reason


def live_test(out_dir: str | os.PathLike[str], *, examples: int = 5, seed: int = 0, guest_mib: int = 256,
              settle_s: float = 15.0, timeout_s: float = 900.0, fault: str | None = None,
              replay: tuple[LiveOp, ...] | None = None) -> LiveOutcome:
    """Boot one guest, let Hypothesis choose ``examples`` examples (or run ``replay`` once),
    judge each, shrink a failure; see the module's documentation."""
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample

    from ballast.validate.qemu.validation import validate_qemu

    if examples < 1:
        raise ValueError("examples must be at least 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    options = DeviceOptions(guest_mib=guest_mib, deflate_on_oom=True)
    runner = LiveRunner(out, options, settle_s=settle_s, deadline=started + timeout_s, fault=fault)
    outcome = LiveOutcome(examples=0, seed=seed)
    seen: dict[tuple[LiveOp, ...], str | None] = {}
    broken: list[str] = []

    def fails(ops: list[LiveOp]) -> bool:
        key = tuple(ops)
        if key in seen:
            return seen[key] is not None
        if broken or (seen and any(seen.values()) and runner.runs >= examples + SHRINK_RUNS):
            return False  # the guest is gone, or the shrink budget is spent: run nothing more
        try:
            reason = runner.run(key, out / "examples" / f"{runner.runs + 1:04d}.trace.log")
        except CaptureError as exc:
            broken.append(str(exc))
            return False
        seen[key] = reason
        return reason is not None

    try:
        try:
            runner.boot()
        except CaptureError as exc:
            broken.append(str(exc))
        outcome.boot_s = runner.guest.boot_s
        found: tuple[LiveOp, ...] | None = None
        if not broken:
            if replay is not None:
                found = replay if fails(list(replay)) else None
            else:
                strategy = ops_strategy(guest_mib, options.deflate_on_oom)
                try:
                    with seed_only_draws():
                        found = tuple(find(strategy, fails, random=random.Random(seed),
                                           settings=settings(
                            max_examples=examples, deadline=None, database=None,
                            phases=[Phase.generate, Phase.shrink],
                            suppress_health_check=list(HealthCheck))))
                except NoSuchExample:
                    found = None
        if found is not None:
            outcome.failure = _write_failure(runner, found, seen[found] or "", seed, out)
        elif not broken:
            runner.guest.quit()
    except CaptureError as exc:
        broken.append(str(exc))
    finally:
        runner.guest.stop()
    outcome.examples = runner.runs
    outcome.reboots = runner.reboots
    if broken:
        outcome.inconclusive = broken[0]
    elif outcome.failure is None:
        # The whole capture, every example and the steps between them, with the QMP log.
        outcome.final = validate_qemu(runner.guest.trace_log, runner.features, qmp=runner.guest.qmp_log)
    outcome.seconds = time.monotonic() - started
    return outcome


def _write_failure(runner: LiveRunner, ops: tuple[LiveOp, ...], reason: str, seed: int, out: Path) -> LiveFailure:
    """Run the smallest failing example once more with the model trace emitted, and write it."""
    segment = out / "failure.trace.log"
    try:
        again = runner.run(ops, segment, emit=True)
    except CaptureError:
        again = None  # the guest gave out: the failure stands as found, not reproduced
    model_trace = segment.with_suffix(".model.jsonl")
    scenario = out / "failure.json"
    scenario.write_text(json.dumps({
        "seed": seed, "fault": runner.fault, "guest_mib": runner.options.guest_mib,
        "ops": [{"kind": op.kind, "mib": op.mib} for op in ops],
        "reason": reason, "reproduced": again is not None,
        "segment": segment.name, "model_trace": model_trace.name if model_trace.is_file() else None,
    }, indent=2) + "\n", encoding="utf-8")
    return LiveFailure(ops, reason, scenario, segment, model_trace if model_trace.is_file() else None)


def read_scenario(path: str | os.PathLike[str]) -> tuple[tuple[LiveOp, ...], str | None, int]:
    """The operations, fault and guest size of a scenario file written by a failed run."""
    name = os.fspath(path)
    try:
        data = json.loads(Path(name).read_text(encoding="utf-8"))
        ops = tuple(LiveOp(str(o["kind"]), int(o.get("mib", 0))) for o in data["ops"])
        fault = data.get("fault")
        guest_mib = int(data.get("guest_mib", 256))
    except OSError as exc:
        raise InputError(name, None, f"cannot read scenario: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(name, None, f"not a live scenario file: {exc}") from None
    if any(op.kind not in OP_KINDS for op in ops):
        raise InputError(name, None, f"ops must be {', '.join(OP_KINDS[:-1])} or {OP_KINDS[-1]}")
    if fault is not None and fault not in FAULTS:
        raise InputError(name, None, f"unknown fault {fault!r}")
    return ops, fault, guest_mib
