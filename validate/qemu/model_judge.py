"""Judge a QEMU virtio-balloon trace with the reference model itself, step by step.

The converted steps (:class:`~ballast.validate.qemu.steps.StepConverter`) are applied
to the model as they come: each must be allowed by its action's guard, its observation
(the ``actual`` the driver wrote) must match the model's, and every property must hold
after it (read from what the step changed: :class:`~ballast.model.incremental.StepChecker`).
Values come from the log (the target, the pages of each report); nothing is
searched for.  Memory is one model state and a few steps: the steps before the guest's
size is known (the first ``virtio_balloon_to_target`` reveals it) wait in a bounded
buffer.

>>> from ballast.model.actions import Action
>>> from ballast.model.trace import TraceStep
>>> from ballast.validate.qemu.steps import GuestSize
>>> size = GuestSize(); size.pages = 8
>>> judge = ModelJudge(frozenset(), size)
>>> judge.feed(TraceStep(1, Action.of("host_set_target", vm=0, pages=2), line=3))
>>> judge.feed(TraceStep(2, Action.of("vmm_release", vm=0), line=4))
>>> v = judge.finish()
>>> v.ok, v.line, v.reason
(False, 4, 'the guest has reported no page for deflation')
"""

from __future__ import annotations

from dataclasses import dataclass

from ballast.errors import GuardError, InputError
from ballast.model.config import MAX_MODEL_SIZE
from ballast.model.incremental import StepChecker
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.model.tables import StateTables
from ballast.model.trace import TraceStep, observe_matches
from ballast.validate.qemu.steps import GuestSize, trace_config

__all__ = ["MAX_WAITING_STEPS", "ModelJudge", "ModelVerdict"]

MAX_WAITING_STEPS = 65_536
"""Most steps kept while the guest's size is not yet known; past it the model starts with
a guest as large as the largest page seen so far."""


@dataclass(frozen=True)
class ModelVerdict:
    """What the reference model said of a converted QEMU trace."""

    ok: bool
    steps: int
    """Steps the model explained."""
    step: int | None = None
    """The first step it did not explain."""
    line: int | None = None
    """That step's QEMU trace line."""
    action: str | None = None
    reason: str | None = None
    """The guard's reason, how the observation differs, or the property broken."""
    property: str | None = None
    """The model property the step breaks, when that is the reason."""
    guest_pages: int | None = None


class ModelJudge:
    """The reference model applied to converted steps as they stream by."""

    def __init__(self, features: frozenset[str], size: GuestSize, source: str = "<trace>"
                 ) -> None:
        self.features = features
        self.size = size
        self.source = source
        """The log being judged, named in an error."""
        self.model: BalloonModel | None = None
        self.checker: StepChecker | None = None
        self.state: State | None = None
        self.tables: StateTables | None = None
        self.waiting: list[TraceStep] = []
        self.largest_page = 0
        self.steps = 0
        self.failure: ModelVerdict | None = None

    @property
    def failed(self) -> bool:
        """True once a step was not explained (later steps are ignored)."""
        return self.failure is not None

    def feed(self, st: TraceStep) -> None:
        """Judge one step (or keep it until the guest's size is known)."""
        if self.failure is not None:
            return
        if self.model is None:
            for value in st.action.kwargs.values():
                if isinstance(value, int) and value > self.largest_page:
                    self.largest_page = value
                elif isinstance(value, tuple) and value:
                    self.largest_page = max(self.largest_page, max(value))
            if self.size.pages is None and len(self.waiting) < MAX_WAITING_STEPS:
                self.waiting.append(st)
                return
            self._start(st.line)
            for earlier in self.waiting:
                self._judge(earlier)
            self.waiting = []
        self._judge(st)

    def _start(self, line: int | None) -> None:
        pages = self.size.pages if self.size.pages else self.largest_page + 1
        if pages > MAX_MODEL_SIZE:
            raise InputError(self.source, line, f"the trace shows a guest of {pages:,} pages, "
                             f"more than the model can hold ({MAX_MODEL_SIZE:,})")
        self.model = BalloonModel(trace_config(max(pages, 1), self.features))
        self.checker = StepChecker(self.model)
        # The guest's page table and the balloon sets in mutable tables: a step costs the
        # pages it changes, not a copy of a guest of 131,072 pages.
        self.tables = StateTables(self.model.init_states()[0])
        self.state = self.tables.state

    def _judge(self, st: TraceStep) -> None:
        if self.failure is not None:
            return
        model, s, checker = self.model, self.state, self.checker
        assert model is not None and s is not None and checker is not None
        try:
            post = model.next_state(s, st.action)
        except GuardError as exc:
            self._fail(st, exc.reason)
            return
        if st.observe is not None:
            diff = observe_matches(post, st.observe)
            if diff is not None:
                self._fail(st, f"observation differs: {diff}")
                return
        # The step is written into the tables before its properties are read (at the
        # speed of a list), and taken back if one breaks.
        tables = self.tables
        assert tables is not None
        before, after = tables.commit(post)
        checker.same_state(s, before)
        bad = checker.check(before, st.action, after)
        if bad:
            tables.roll_back(s)
            self._fail(st, bad[0].message, bad[0].property)
            return
        self.state = after
        self.steps += 1

    def _fail(self, st: TraceStep, reason: str, prop: str | None = None) -> None:
        assert self.model is not None
        self.failure = ModelVerdict(False, self.steps, step=st.step, line=st.line,
                                    action=str(st.action), reason=reason, property=prop,
                                    guest_pages=self.model.cfg.guest_pages)

    def finish(self) -> ModelVerdict:
        """The verdict once every step was fed."""
        if self.failure is None and self.model is None:
            self._start(self.waiting[0].line if self.waiting else None)
            for earlier in self.waiting:
                self._judge(earlier)
            self.waiting = []
        if self.failure is not None:
            return self.failure
        assert self.model is not None
        return ModelVerdict(True, self.steps, guest_pages=self.model.cfg.guest_pages)
