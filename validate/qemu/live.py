"""Live, property-based testing of QEMU + Linux: Hypothesis chooses, the model judges.

Hypothesis chooses each example: the balloon device's features (one of :data:`DEVICES`:
which features QEMU offers, fixed when QEMU starts) and a short sequence of
:class:`LiveOp` -- balloon targets (MiB of guest RAM), guest memory pressure (MiB written
to a tmpfs, where DEFLATE_ON_OOM is negotiated), memory compaction (which migrates balloon
pages), driver rebinds (where DEFLATE_ON_OOM is negotiated: the driver leaves the device,
taking every page out of the balloon and resetting it, and binds again), live migrations
(to a sink that discards the stream; on the ``free-page-hint`` device each starts a free
page hint cycle) and at most one reboot (``system_reset`` with the balloon as it is: the
device resets, and the new driver inflates to the target again).  One guest is booted per device
the run draws, when first drawn, and kept for every later example on that device.  Ballast
performs the operations on the guest over QMP and its console, then asks for all the
guest's RAM back, so that every example starts and ends with an empty balloon -- the state
the model's initial state stands for.  The lines QEMU traced during the example (the
trace is read as it is written, from where the previous example ended) are then judged by
both judges, the VirtIO rules and the reference model; at the end each guest's whole
capture is validated again, with the QMP cross-checks.

A failing example is shrunk by Hypothesis on the same guests, and the smallest one is
written as a scenario file (``failure.json``: the seed, the device, the operations, the
reason) with its trace segment, the segment converted to a model trace
(``failure.trace.model.jsonl``, for ``ballast replay`` and ``ballast report``) and a
compact report (``failure.trace.report.md``).  ``ballast capture qemu-live --replay
failure.json`` runs it again.  The budget counts examples, not seconds; shrinking runs at
most :data:`SHRINK_RUNS` more examples on the guests.

A *fault* seeds a deviation into what the judges see, to show the runner fails and
shrinks: ``hide-target`` drops QEMU's ``virtio_balloon_to_target`` lines from each
segment (a target the guest reads but the host never set).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ballast.errors import InputError
from ballast.model.trace import loads_record
from ballast.opening import open_to_read
from ballast.validate.qemu.capture import migrate_away, reset_guest, wait_settled
from ballast.validate.qemu.guest import (
    MIB,
    CaptureError,
    DeviceOptions,
    QemuGuest,
    check_guest_mib,
)

__all__ = ["DEFAULT_DEVICE", "DEVICES", "FAULTS", "MAX_SCENARIO_BYTES", "OP_KINDS",
           "REBOOT_ODDS", "SHRINK_RUNS",
           "LiveDevice", "LiveFailure", "LiveOp", "LiveOutcome", "LiveRunner", "LiveScenario",
           "SegmentJudge", "example_strategy", "live_test", "ops_strategy", "read_scenario"]

SHRINK_RUNS: Final = 24
"""Most examples run on the guest while shrinking a failure."""

MAX_SCENARIO_BYTES: Final = 1 << 20
"""Largest scenario file read: one a failed run writes is a few hundred bytes."""

FAULTS: Final[dict[str, str]] = {
    "hide-target": "drop virtio_balloon_to_target lines from what the judges see",
}
"""Seeded deviations of the live runner, by name."""

_QUIET_S: Final = 0.3


@dataclass(frozen=True)
class LiveDevice:
    """A balloon device a live run can draw: the features QEMU offers for it."""

    name: str
    summary: str
    deflate_on_oom: bool = True
    """Offer DEFLATE_ON_OOM; memory pressure and driver rebinds are drawn only with it
    (without it the guest's OOM killer, not the balloon, would answer pressure, and Linux's
    driver breaks 5.5.6.1 rule 3 when it leaves the device: see :data:`DEVICES`)."""
    free_page_reporting: bool = False
    stats_interval_s: int = 0
    free_page_hint: bool = False

    def options(self, guest_mib: int) -> DeviceOptions:
        """QEMU's options for a guest of ``guest_mib`` MiB with this device."""
        return DeviceOptions(guest_mib=guest_mib, deflate_on_oom=self.deflate_on_oom,
                             free_page_reporting=self.free_page_reporting,
                             stats_interval_s=self.stats_interval_s,
                             free_page_hint=self.free_page_hint)


DEVICES: Final[dict[str, LiveDevice]] = {d.name: d for d in (
    LiveDevice("deflate-on-oom", "DEFLATE_ON_OOM offered"),
    LiveDevice("plain", "no feature offered", deflate_on_oom=False),
    LiveDevice("free-page-reporting", "DEFLATE_ON_OOM and free page reporting offered",
               free_page_reporting=True),
    LiveDevice("stats", "DEFLATE_ON_OOM offered, the statistics queue polled every second",
               stats_interval_s=1),
    LiveDevice("free-page-hint", "DEFLATE_ON_OOM and free page hinting offered (a migration "
               "starts a hint cycle)", free_page_hint=True),
)}
"""The devices a live run draws from, by name; the first is where shrinking goes.

A driver rebind is drawn only where DEFLATE_ON_OOM is negotiated, because without it Linux
deviates from the specification there: its driver, when it leaves the device
(``virtballoon_remove``), takes every page out of the balloon, whatever the target, before
it resets the device, which 5.5.6.1 rule 3 forbids without DEFLATE_ON_OOM (the driver
MUST NOT take pages back while the balloon is not above the target).  Both judges report
it (``virtio_5_5_6_1_rule3_deflate_only_when_asked``; the model: no action explains it):
``ballast capture qemu-live --replay`` of a scenario of a target and a rebind on the
``plain`` device shows it."""

DEFAULT_DEVICE: Final = next(iter(DEVICES))

OP_KINDS: Final = ("target", "pressure", "compact", "rebind", "migrate", "reboot")
"""What an example can do, by :attr:`LiveOp.kind`."""


@dataclass(frozen=True)
class LiveOp:
    """One thing the live test does: ``target`` (guest RAM, MiB), ``pressure`` (MiB the
    guest fills, then frees), ``compact``, ``rebind``, ``migrate`` or ``reboot``."""

    kind: str
    mib: int = 0

    def __str__(self) -> str:
        return f"{self.kind} {self.mib}" if self.kind in ("target", "pressure") else self.kind


REBOOT_ODDS: Final = 4
"""The draw asks for a reboot in one example of this many (Hypothesis's own choices of the
draw make it more often: about one in three in runs of 30-40 examples); a reboot costs a
boot."""


def ops_strategy(guest_mib: int, deflate_on_oom: bool) -> Any:
    """Hypothesis strategy of an example: one to four operations, and in about one example
    of :data:`REBOOT_ODDS` a reboot among them (never more than one).

    Targets are multiples of 16 MiB between 5/8 of the guest and all of it; pressure is
    at most 96 MiB (a guest of 256 MiB survives it with its balloon at 5/8).  Pressure and
    driver rebinds only with ``deflate_on_oom`` (see :data:`DEVICES`).  Shrinking drops the
    reboot first (its draw shrinks towards none).

    >>> _with_reboot([LiveOp("target", 160), LiveOp("compact")], 1)
    [LiveOp(kind='target', mib=160), LiveOp(kind='reboot', mib=0), LiveOp(kind='compact', mib=0)]
    >>> len(_with_reboot([LiveOp("compact")], None))
    1
    """
    from hypothesis import strategies as st

    low = max(16, (guest_mib * 5 // 8) // 16 * 16)
    target = st.builds(LiveOp, st.just("target"),
                       st.integers(low // 16, guest_mib // 16).map(lambda n: n * 16))
    kinds = [target, st.just(LiveOp("compact")), st.just(LiveOp("migrate"))]
    if deflate_on_oom:
        kinds.append(st.builds(LiveOp, st.just("pressure"), st.sampled_from([32, 64, 96])))
        kinds.append(st.just(LiveOp("rebind")))
    base = st.lists(st.one_of(*kinds), min_size=1, max_size=3)
    cut = 4 * (REBOOT_ODDS - 1)
    reboot_at = st.integers(0, 4 * REBOOT_ODDS - 1).map(lambda k: None if k < cut else k - cut)
    return st.builds(_with_reboot, base, reboot_at)


def example_strategy(guest_mib: int, devices: tuple[str, ...]) -> Any:
    """Hypothesis strategy of an example: one of ``devices`` (names of :data:`DEVICES`),
    and operations for it (:func:`ops_strategy`; memory pressure and rebinds only where
    the device offers DEFLATE_ON_OOM)."""
    from hypothesis import strategies as st

    return st.sampled_from(devices).flatmap(
        lambda d: st.tuples(st.just(d), ops_strategy(guest_mib, DEVICES[d].deflate_on_oom)))


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

    device: str
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
    finals: dict[str, Any] = field(default_factory=dict)
    """Per device the run used, the validation of its guest's whole capture (a
    :class:`~ballast.validate.qemu.validation.QemuOutcome`)."""
    reboots: int = 0
    """Reboots the examples made (shrinking included)."""
    migrations: int = 0
    """Live migrations the examples made (shrinking included)."""
    boot_s: float = 0.0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 every example and every whole capture clean, 1 a failure, 3 inconclusive."""
        if self.failure is not None or any(not f.clean for f in self.finals.values()):
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
            what = (f"breaks {out.model.property}" if out.model.property
                    else "is not explained by the model")
            return (f"line {out.model.line}: step {out.model.step} {out.model.action} {what}: "
                    f"{out.model.reason}")
        return None


class LiveRunner:
    """One booted guest (of one device), what each example makes it do, and the judging of
    it; its capture is written to ``out_dir/capture-DEVICE``."""

    def __init__(self, out_dir: Path, options: DeviceOptions, *, settle_s: float, deadline: float,
                 fault: str | None = None, device: str = DEFAULT_DEVICE) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)}")
        self.out_dir = out_dir
        self.options = options
        self.settle_s = settle_s
        self.fault = fault
        self.device = device
        self.guest = QemuGuest(out_dir / f"capture-{device}", options, deadline)
        self.features: frozenset[str] = frozenset()
        self.judge = SegmentJudge(self.guest.trace_log, frozenset(),
                                  options.guest_mib * MIB // 4096, fault)
        self.runs = 0
        self.reboots = 0
        self.migrations = 0
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
        ram_mib = self.options.guest_mib  # every example starts with an empty balloon
        for op in ops:
            g.alive(f"before {op}")
            if op.kind == "target":
                g.move_balloon(op.mib, self.settle_s)
                ram_mib = op.mib
            elif op.kind == "pressure":
                g.ask(f"pressure {op.mib}", ("PRESSURE filled", "PRESSURE none"), self.settle_s)
                g.actual_bytes()
                g.ask("release", ("PRESSURE released",), self.settle_s)
            elif op.kind == "compact":
                g.ask("compact", ("COMPACTED", "UNKNOWN compact"), self.settle_s)
            elif op.kind == "rebind":
                answer = g.ask("rebind", ("REBOUND",), self.settle_s)
                if answer is None or answer[1].startswith("REBOUND none"):
                    raise CaptureError(f"the guest did not rebind its balloon driver within "
                                       f"{self.settle_s} s: {answer and answer[1]!r}")
                # The new driver inflates to the target again; the next target waits for it
                # (as after every target: the runner never moves one under a buffer in flight).
                wait_settled(g, self.settle_s, ram_mib * MIB)
            elif op.kind == "migrate":
                migrate_away(g, self.settle_s)
                self.migrations += 1
            elif op.kind == "reboot":
                reset_guest(g, self.settle_s, ram_mib * MIB)
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
            {"device": self.device, "ops": [str(op) for op in ops], "reason": reason}) + "\n",
            encoding="utf-8")
        return reason


def live_test(out_dir: str | os.PathLike[str], *, examples: int = 5, seed: int = 0,
              guest_mib: int = 256, settle_s: float = 15.0, timeout_s: float = 900.0,
              fault: str | None = None, replay: tuple[LiveOp, ...] | None = None,
              devices: tuple[str, ...] | None = None,
              replay_device: str = DEFAULT_DEVICE) -> LiveOutcome:
    """Let Hypothesis choose ``examples`` examples over ``devices`` (names of
    :data:`DEVICES`; all of them when None), booting a guest for each device the first time
    it is drawn; judge each example, shrink a failure.  With ``replay``, run those
    operations once on ``replay_device`` instead.  ``timeout_s`` bounds the whole run: when
    it is up no further example starts, and the run is inconclusive unless a failure was
    found.  See the module's documentation.  Bad arguments raise ``ValueError`` or
    :class:`CaptureError` before anything starts or is written."""
    if examples < 1:
        raise ValueError("examples must be at least 1")
    check_guest_mib(guest_mib)  # before the strategy's bounds are derived from it
    drawn = _drawn_devices(devices, replay_device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _LiveRun(out, examples=examples, seed=seed, guest_mib=guest_mib, settle_s=settle_s,
                   timeout_s=timeout_s, fault=fault)
    run.search(drawn, replay, replay_device)
    return run.finish()


def _drawn_devices(devices: tuple[str, ...] | None, replay_device: str) -> tuple[str, ...]:
    """The devices a run draws from (all when None); ``ValueError`` for an unknown one."""
    drawn = tuple(DEVICES) if devices is None else tuple(devices)
    unknown = [d for d in (*drawn, replay_device) if d not in DEVICES]
    if unknown or not drawn:
        raise ValueError(f"unknown device {unknown[0] if unknown else '(none given)'!r}; "
                         f"expected some of {', '.join(DEVICES)}")
    return drawn


_Example = tuple[str, tuple[LiveOp, ...]]
"""An example: the name of its device and its operations."""


_now: Callable[[], float] = time.monotonic
"""The clock of a run's ``--timeout-s`` (a test replaces it to say when time is up)."""


class _SearchOver(BaseException):
    """Raised through Hypothesis's search to end it before ``max_examples``: a guest gave
    out or the run's time is up, and no failure was found to shrink.

    A ``BaseException`` on purpose: Hypothesis takes an ``Exception`` from the test for a
    failure and shrinks it, while one that is not an ``Exception`` (like
    ``KeyboardInterrupt``) passes straight through.  Returning False instead would let it
    draw up to ``max_examples`` examples, each refused at once: with ``--examples`` large,
    a run that never ends."""


class _LiveRun:
    """One call of :func:`live_test`: its guests, the examples run on them, the outcome so far."""

    def __init__(self, out: Path, *, examples: int, seed: int, guest_mib: int, settle_s: float,
                 timeout_s: float, fault: str | None) -> None:
        """A run with no guest booted yet; its clock starts now."""
        self.out = out
        self.examples = examples
        self.seed = seed
        self.guest_mib = guest_mib
        self.settle_s = settle_s
        self.fault = fault
        self.started = _now()
        self.deadline = self.started + timeout_s
        self.runners: dict[str, LiveRunner] = {}
        self.outcome = LiveOutcome(examples=0, seed=seed)
        self.seen: dict[_Example, str | None] = {}
        """Every example run: why it failed, or None."""
        self.broken: list[str] = []
        """Why the run stopped short: a guest gave out, or the time ran out (the run is then
        inconclusive)."""

    def runs(self) -> int:
        """Examples run so far, on every guest."""
        return sum(r.runs for r in self.runners.values())

    def runner_for(self, device: str) -> LiveRunner:
        """The device's guest, booted the first time it is asked for (the trace of its boot
        starts its first segment)."""
        got = self.runners.get(device)
        if got is None:
            options = DEVICES[device].options(self.guest_mib)
            got = self.runners[device] = LiveRunner(self.out, options, settle_s=self.settle_s,
                                                    deadline=self.deadline, fault=self.fault,
                                                    device=device)
            got.boot()
            self.outcome.boot_s += got.guest.boot_s
        return got

    def fails(self, example: tuple[str, list[LiveOp]]) -> bool:
        """Hypothesis's test: whether an example fails, run on its device's guest once.

        Once the run may not go on (:meth:`may_run`) it runs nothing more: while shrinking it
        answers False (the smallest failure so far stands); while searching it ends the
        search (:class:`_SearchOver`)."""
        device, ops = example
        key = (device, tuple(ops))
        if key in self.seen:
            return self.seen[key] is not None
        if not self.may_run():
            if self.failed():
                return False
            raise _SearchOver
        try:
            runner = self.runner_for(device)
            reason = runner.run(key[1], self.out / "examples" / f"{self.runs() + 1:04d}.trace.log")
        except CaptureError as exc:
            self.broken.append(str(exc))
            return False
        self.seen[key] = reason
        return reason is not None

    def failed(self) -> bool:
        """Whether an example run so far failed (Hypothesis is then shrinking it)."""
        return any(reason is not None for reason in self.seen.values())

    def may_run(self) -> bool:
        """Whether another example may start: no guest gave out, the run's time is not up
        (noted in :attr:`broken` when it is), and the shrink budget is not spent."""
        if self.broken:
            return False
        if _now() >= self.deadline:
            self.broken.append(f"the run's time ({self.deadline - self.started:g} s) ran out "
                               f"after {self.runs()} example(s) of {self.examples}")
            return False
        return not (self.failed() and self.runs() >= self.examples + SHRINK_RUNS)

    def search(self, drawn: tuple[str, ...], replay: tuple[LiveOp, ...] | None,
               replay_device: str) -> None:
        """Run the replay or search ``drawn``; write a failure, else quit the guests; stop them."""
        try:
            if replay is not None:
                found = self._replayed(replay, replay_device)
            else:
                found = self._shrunk_failure(drawn)
            if found is not None:
                self.outcome.failure = _write_failure(self.runners[found[0]], found[1],
                                                      self.seen[found] or "", self.seed, self.out)
            elif not self.broken:
                for runner in self.runners.values():
                    runner.guest.quit()
        except CaptureError as exc:
            self.broken.append(str(exc))
        finally:
            for runner in self.runners.values():
                runner.guest.stop()

    def _replayed(self, replay: tuple[LiveOp, ...], device: str) -> _Example | None:
        """The replayed example if it fails (run once on ``device``), else None."""
        try:
            return (device, replay) if self.fails((device, list(replay))) else None
        except _SearchOver:
            return None  # the time was up before it could run (noted in ``broken``)

    def _shrunk_failure(self, drawn: tuple[str, ...]) -> _Example | None:
        """Hypothesis's smallest failing example over the devices ``drawn``; None if none."""
        from hypothesis import HealthCheck, Phase, find, settings
        from hypothesis.errors import NoSuchExample

        from ballast.seeded_draws import seed_only_draws

        strategy = example_strategy(self.guest_mib, drawn)
        try:
            with seed_only_draws():
                device, ops = find(strategy, self.fails, random=random.Random(self.seed),
                                   settings=settings(
                    max_examples=self.examples, deadline=None, database=None,
                    phases=[Phase.generate, Phase.shrink],
                    suppress_health_check=list(HealthCheck)))
            return (device, tuple(ops))
        except (NoSuchExample, _SearchOver):
            return None

    def finish(self) -> LiveOutcome:
        """The outcome: its counts, why it is inconclusive, the captures judged if none failed."""
        outcome = self.outcome
        outcome.examples = self.runs()
        outcome.reboots = sum(r.reboots for r in self.runners.values())
        outcome.migrations = sum(r.migrations for r in self.runners.values())
        if self.broken:
            outcome.inconclusive = self.broken[0]
        elif outcome.failure is None:
            self._validate_captures()
        outcome.seconds = _now() - self.started
        return outcome

    def _validate_captures(self) -> None:
        """Validate each guest's whole capture into the outcome's ``finals``."""
        from ballast.validate.qemu.validation import validate_qemu

        outcome = self.outcome
        # Each guest's whole capture, every example and the steps between them, with QMP.
        for device, runner in self.runners.items():
            final = outcome.finals[device] = validate_qemu(runner.guest.trace_log,
                                                           runner.features,
                                                           qmp=runner.guest.qmp_log)
            if final.nothing_judged is not None and outcome.inconclusive is None:
                outcome.inconclusive = f"the {device} device's capture: {final.nothing_judged}"


def _write_failure(runner: LiveRunner, ops: tuple[LiveOp, ...], reason: str, seed: int,
                   out: Path) -> LiveFailure:
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
        "device": runner.device,
        "ops": [{"kind": op.kind, "mib": op.mib} for op in ops],
        "reason": reason, "reproduced": again is not None,
        "segment": segment.name, "model_trace": model_trace.name if model_trace.is_file() else None,
    }, indent=2) + "\n", encoding="utf-8")
    return LiveFailure(runner.device, ops, reason, scenario, segment,
                       model_trace if model_trace.is_file() else None)


@dataclass(frozen=True)
class LiveScenario:
    """What a scenario file (``failure.json``) holds: the operations to run again, on which
    device, with which seeded fault, on a guest of how many MiB."""

    ops: tuple[LiveOp, ...]
    fault: str | None
    guest_mib: int
    device: str = DEFAULT_DEVICE


_SCENARIO_SHAPE: Final = ('a JSON object with "ops" (a list of objects such as '
                          '{"kind": "target", "mib": 192}) and optionally "device", "fault", '
                          '"guest_mib" and "seed"')
"""What a scenario file holds, as a refusal of one says it."""


def read_scenario(path: str | os.PathLike[str]) -> LiveScenario:
    """The operations, device, fault and guest size of a scenario file written by a failed
    run (a file without ``device``, from before devices were drawn, is on the first);
    :class:`~ballast.errors.InputError` naming the file and what was expected otherwise."""
    name = os.fspath(path)
    try:
        # Not waiting for a pipe's writer, and never more than a scenario can be.
        with open_to_read(name, binary=True) as f:
            raw = f.read(MAX_SCENARIO_BYTES + 1)
        if len(raw) > MAX_SCENARIO_BYTES:
            raise InputError(name, None, f"more than {MAX_SCENARIO_BYTES:,} bytes: not a live "
                             f"scenario file; expected {_SCENARIO_SHAPE}")
        data = loads_record(raw.decode("utf-8"), name, 1)
    except OSError as exc:
        raise InputError(name, None, f"cannot read scenario: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(name, None, f"not a live scenario file (not UTF-8 text: {exc.reason} "
                         f"at byte {exc.start}); expected {_SCENARIO_SHAPE}") from None
    except InputError as exc:  # not JSON, or JSON Ballast does not read (depth, NaN, ...)
        if exc.file != name or exc.line is None:
            raise
        raise InputError(name, None, f"not a live scenario file ({exc.message}); expected "
                         f"{_SCENARIO_SHAPE}") from None
    try:
        scenario = _scenario_of(data)
    except ValueError as exc:
        raise InputError(name, None, f"not a live scenario file: {exc}; expected "
                         f"{_SCENARIO_SHAPE}") from None
    _check_scenario(name, scenario)
    return scenario


def _scenario_of(data: object) -> LiveScenario:
    """The scenario a file's JSON holds; ``ValueError`` saying what is not as expected."""
    if not isinstance(data, dict):
        raise ValueError(f"it holds a JSON {_json_kind(data)}, not an object")
    ops = data.get("ops")
    if not isinstance(ops, list) or not all(isinstance(o, dict) for o in ops):
        raise ValueError('"ops" is missing or is not a list of objects')
    fault = data.get("fault")
    if fault is not None and not isinstance(fault, str):
        raise ValueError(f'"fault" must be a name or null, not {fault!r:.40}')
    return LiveScenario(
        tuple(LiveOp(str(o.get("kind")), _whole(o.get("mib", 0), '"mib"')) for o in ops),
        fault, _whole(data.get("guest_mib", 256), '"guest_mib"'),
        str(data.get("device", DEFAULT_DEVICE)))


def _check_scenario(name: str, scenario: LiveScenario) -> None:
    """Refuse (:class:`~ballast.errors.InputError`) a scenario whose values the runner does
    not know, before anything starts."""
    if any(op.kind not in OP_KINDS for op in scenario.ops):
        raise InputError(name, None, f"ops must be {', '.join(OP_KINDS[:-1])} or {OP_KINDS[-1]}")
    if scenario.fault is not None and scenario.fault not in FAULTS:
        raise InputError(name, None, f"unknown fault {scenario.fault!r}")
    if scenario.device not in DEVICES:
        raise InputError(name, None, f"unknown device {scenario.device!r}; expected one of "
                         f"{', '.join(DEVICES)}")
    try:
        check_guest_mib(scenario.guest_mib)
    except CaptureError as exc:
        raise InputError(name, None, str(exc)) from None
    for op in scenario.ops:
        # A balloon target is the guest's RAM left to it; pressure fills at most all of it.
        low = 1 if op.kind == "target" else 0
        if op.kind in ("target", "pressure") and not low <= op.mib <= scenario.guest_mib:
            raise InputError(name, None, f'a {op.kind} op\'s "mib" must be from {low} to the '
                             f"guest's {scenario.guest_mib} MiB, not {op.mib}")


def _whole(value: object, what: str) -> int:
    """``value`` if it is a whole number (JSON's ``true`` is not); ``ValueError`` naming
    ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number, not {value!r:.40}")
    return value


def _json_kind(value: object) -> str:
    """JSON's name for the type of a decoded value: ``list`` is an array, and so on."""
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
