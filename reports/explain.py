"""What a trace shows, worked out from the trace file alone by replaying it.

:func:`explain` replays a trace through the reference model (the configuration
and seeded faults its header names) and gathers everything a report shows: the
property that broke and its meaning, who found it, every step with its state
change, the step that fails, a liveness lasso (prefix and cycle), and for a
trace the model does not accept, the matched prefix, the first unexplained line
and what the model allowed there. Renderers (HTML, Markdown, JSON) only format
an :class:`Explanation`; none of them replays anything.

>>> from ballast.model.config import Config
>>> from ballast.model.actions import Action
>>> from ballast.model.trace import Trace, TraceHeader, TraceStep
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> e = explain(Trace(TraceHeader(cfg), (TraceStep(1, Action.of("vmm_release", vm=0)),)))
>>> e.kind, e.unexplained.reason
('rejected', 'the guest has reported no page for deflation')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from ballast.model.actions import ACTIONS
from ballast.model.invariants import INVARIANTS
from ballast.model.config import Config
from ballast.model.replay import ReplayOutcome, ReplayResult, replay_steps
from ballast.model.sometimes import SOMETIMES
from ballast.model.state import State, state_from_dict
from ballast.model.system import BalloonModel
from ballast.model.trace import Trace, TraceStep

from ballast.reports.commands import replay_command
from ballast.reports.diff import state_diff
from ballast.reports.memory import FigureReader, MemorySeries, series_of
from ballast.reports.sequence import (Lane, Message, StepMessages, actor_lane, lanes_for,
                                      messages)

__all__ = ["ALLOWED_SHOWN", "Explanation", "Lasso", "StepView", "Unexplained", "explain",
           "property_doc", "step_line_text"]

ALLOWED_SHOWN = 40
"""At most this many enabled actions are listed where a trace leaves the model."""

Diff = tuple[tuple[str, Any, Any], ...]


@dataclass(frozen=True)
class StepView:
    """One step of the trace as the report shows it."""

    step: int
    line: int
    """The trace file line of the step (header = line 1)."""
    action: str
    actor: str
    applied: bool
    """False for the step the model refused and every step after it."""
    diff: Diff
    failing: bool = False
    in_cycle: bool = False


@dataclass(frozen=True)
class Lasso:
    """A liveness counterexample: a prefix, then a cycle that can repeat forever."""

    start: int
    """First step of the cycle."""
    end: int
    """Last step of the cycle."""
    closes: bool
    """The state after ``end`` equals the state before ``start``: the cycle really loops."""

    @property
    def prefix(self) -> tuple[int, int]:
        return (1, self.start - 1)


@dataclass(frozen=True)
class Unexplained:
    """Where a trace leaves the model (trace validation)."""

    matched: int
    """Steps the model reproduced before it."""
    step: int | None
    line: int | None
    text: str | None
    """The trace line as written."""
    reason: str
    allowed: tuple[str, ...]
    """Actions the model allowed from the last matched state (at most ALLOWED_SHOWN)."""
    allowed_total: int
    model_diff: Diff = ()
    """For a recorded state the model does not produce: recorded vs the model's."""


@dataclass(frozen=True)
class Explanation:
    """Everything a counterexample report shows."""

    trace: Trace
    name: str
    """How the trace file is named in the report (and in the replay command)."""
    result: ReplayResult
    kind: str
    """``violation`` (a property broke), ``liveness`` (a lasso), ``rejected`` (the model
    does not accept the trace) or ``clean`` (the trace replays and breaks nothing)."""
    property_name: str | None
    """The property that broke (or the liveness property, or the one the header names)."""
    doc: str
    message: str | None
    failing_step: int | None
    steps: tuple[StepView, ...]
    states: tuple[State, ...]
    """The initial state and the last state the replay reached (a long trace's other
    states are not kept; each step's change is in ``steps``)."""
    sequence: tuple[StepMessages, ...]
    lanes: tuple[Lane, ...]
    memory: MemorySeries
    lasso: Lasso | None = None
    unexplained: Unexplained | None = None
    notes: tuple[str, ...] = ()
    """Disagreements worth a reader's attention (the header expected something else)."""

    @property
    def source(self) -> dict[str, Any]:
        return dict(self.trace.header.source)

    @property
    def checker(self) -> str:
        return str(self.source.get("checker", "unknown"))

    @property
    def replay_command(self) -> str:
        return replay_command(self.name)

    @property
    def title(self) -> str:
        if self.kind == "violation":
            return f"Counterexample: `{self.property_name}` is violated"
        if self.kind == "liveness" and self.lasso is not None and not self.lasso.closes:
            return f"Liveness claim not confirmed: the cycle does not show that " \
                   f"`{self.property_name}` never happens"
        if self.kind == "liveness":
            return f"Liveness counterexample: `{self.property_name}` never happens"
        if self.kind == "rejected":
            return "Trace rejected: the model does not explain it"
        return "Trace replays cleanly: nothing breaks"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the report (no timestamps: equal input, equal output)."""
        h = self.trace.header
        out: dict[str, Any] = {
            "format": "ballast-counterexample-report", "version": 1,
            "trace": self.name, "kind": self.kind, "outcome": self.result.outcome.value,
            "property": self.property_name, "doc": self.doc, "message": self.message,
            "failing_step": self.failing_step, "failing_line": self.result.line,
            "source": h.source, "faults": list(h.faults), "expect": h.expect,
            "config": h.config.to_dict(), "replay": self.replay_command,
            "lanes": [{"key": lane.key, "title": lane.title} for lane in self.lanes],
            "steps": [{"step": s.step, "line": s.line, "actor": s.actor, "action": s.action,
                       "applied": s.applied, "failing": s.failing, "in_cycle": s.in_cycle,
                       "messages": [m.to_dict() for m in self.sequence[s.step - 1].messages],
                       "diff": [{"path": p, "before": a, "after": b} for p, a, b in s.diff]}
                      for s in self.steps],
            "memory": self.memory.to_dict(),
            "lasso": None, "unexplained": None, "notes": list(self.notes),
        }
        if self.lasso is not None:
            out["lasso"] = {"prefix": list(self.lasso.prefix),
                            "cycle": [self.lasso.start, self.lasso.end],
                            "closes": self.lasso.closes}
        u = self.unexplained
        if u is not None:
            out["unexplained"] = {
                "matched_steps": u.matched, "step": u.step, "line": u.line, "text": u.text,
                "reason": u.reason, "allowed": list(u.allowed), "allowed_total": u.allowed_total,
                "model_diff": [{"path": p, "recorded": a, "model": b} for p, a, b in u.model_diff]}
        return out


def property_doc(name: str | None, expect: dict[str, Any] | None = None) -> str:
    """The meaning of a property or scenario by name, from the model itself.

    >>> property_doc("memory_conservation").split(".")[0]
    'Every machine page is in exactly one place: free, in host use, or backing guest pages'
    """
    if name in INVARIANTS:
        paragraphs = re.split(r"\n\s*\n", INVARIANTS[name].doc.strip())
        return "\n\n".join(" ".join(x.strip() for x in par.splitlines()) for par in paragraphs)
    if name in SOMETIMES:
        return str(SOMETIMES[name].doc)
    if expect and isinstance(expect.get("doc"), str):
        return str(expect["doc"])
    return ""


def step_line_text(st: TraceStep) -> str:
    """A step as it is written in a trace file (for a trace built in memory)."""
    return json.dumps(st.to_dict(), separators=(",", ":"))


def _line(st: TraceStep) -> int:
    # Line 1 is the header; without blank lines step N is on line N + 1.
    return st.line if st.line is not None else int(st.step) + 1


def _lasso(trace: Trace, walk: _Walk, result: ReplayResult,
           notes: list[str]) -> Lasso | None:
    expect = trace.header.expect or {}
    start = expect.get("lasso_start")
    if start is None:
        return None
    n = len(trace.steps)
    if not isinstance(start, int) or not 1 <= start <= n:
        notes.append(f"the header's lasso_start ({start!r}) is not a step of this trace "
                     f"(1..{n}); no cycle is shown")
        return None
    closes = result.outcome is ReplayOutcome.OK and walk.lasso_state == walk.last[-1]
    if not closes:
        notes.append(f"the cycle (steps {start}..{n}) does not return to the state before "
                     f"step {start}" if result.outcome is ReplayOutcome.OK else
                     "the replay stopped before the cycle's end: the lasso is not confirmed")
    return Lasso(start, n, closes)


class _Walk:
    """What a report keeps of a replay as it runs: each step's state change, messages and
    memory figures, and the few states it shows (the initial one, the one a lasso returns
    to, the last two), so a long trace of a large guest is read in bounded memory."""

    def __init__(self, cfg: Config, first: State, lasso_start: object) -> None:
        self.cfg = cfg
        self.reader = FigureReader()
        self.diffs: list[Diff] = []
        self.messages: list[tuple[Message, ...]] = []
        self.figures = [self.reader.figures(first)]
        self.first = first
        self.lasso_start = lasso_start
        self.lasso_state = first if lasso_start == 1 else None
        self.last: tuple[State, ...] = (first,)

    def step(self, pre: State, st: TraceStep, post: State) -> None:
        self.diffs.append(tuple(state_diff(pre, post)))
        self.messages.append(tuple(messages(self.cfg, pre, st.action, post)))
        self.figures.append(self.reader.figures(post))
        if isinstance(self.lasso_start, int) and len(self.diffs) == self.lasso_start - 1:
            self.lasso_state = post
        self.last = (self.last[-1], post)


def explain(trace: Trace, name: str = "trace.jsonl", lines: Sequence[str] | None = None,
            result: ReplayResult | None = None) -> Explanation:
    """Replay ``trace`` and gather what its report shows.

    ``name`` is how the trace file is referred to; ``lines`` are the file's lines as
    read (to quote the first unexplained line exactly); without them the line is
    rebuilt from the parsed step. The trace is replayed here, step by step, keeping no
    more states than the report shows (``result``, a replay already made, is accepted
    for compatibility; the replay is deterministic, so it is made again).
    """
    h = trace.header
    model = BalloonModel(h.config, h.faults)
    expect = h.expect or {}
    first = state_from_dict(h.initial) if h.initial else model.init_states()[0]
    walk = _Walk(h.config, first, expect.get("lasso_start"))
    result = replay_steps(model, trace.steps, first, keep_states=False, on_step=walk.step,
                          observe=h.observe)
    if result.line is None and result.step is not None:
        # A checker's counterexample, built in memory, has no line numbers: its file has
        # one step a line after the header.
        result = replace(result, line=int(result.step) + 1)
    notes: list[str] = []
    lasso = _lasso(trace, walk, result, notes)

    failing = result.step if result.outcome is not ReplayOutcome.OK else None
    kind, prop, message = _verdict(result, lasso, expect, failing, notes)
    views, seq = _step_views(trace, walk, model, result, lasso,
                             failing, _failing_note(kind, prop, message, result))

    unexplained = None
    if result.outcome is ReplayOutcome.ILLEGAL or (
            kind == "violation" and h.source.get("checker") == "validate"):
        unexplained = _unexplained(trace, result, walk.last, model, lines)

    vms = sorted({int(x) for st in trace.steps for k, x in st.action.args
                  if k in ("vm", "other_vm") and isinstance(x, int) and 0 <= x < h.config.vms})
    lanes = tuple(lanes_for(h.config, vms or None))
    return Explanation(
        trace=trace, name=name, result=result, kind=kind, property_name=prop,
        doc=property_doc(prop, expect), message=message, failing_step=failing,
        steps=tuple(views), states=(walk.first, walk.last[-1]), sequence=tuple(seq),
        lanes=lanes, memory=series_of(walk.figures), lasso=lasso, unexplained=unexplained,
        notes=tuple(notes))


def _verdict(result: ReplayResult, lasso: Lasso | None, expect: Mapping[str, Any],
             failing: int | None, notes: list[str]) -> tuple[str, str | None, str | None]:
    """What the replay found: (kind, property, message), kind one of violation, rejected,
    liveness, clean; where the trace header expected otherwise, a note in ``notes``."""
    if result.outcome is ReplayOutcome.VIOLATION:
        # The property the trace was filed under, where the failing step breaks it too
        # (several may break at one step); else the first the replay finds.
        v = next((x for x in result.violations if x.property == expect.get("property")),
                 result.violations[0])
        if expect.get("property") not in (None, v.property):
            notes.append(f"the trace header expects {expect['property']!r} to break; the "
                         f"replay breaks {v.property!r} first")
        if expect.get("step") not in (None, failing):
            notes.append(f"the trace header expects the failure at step {expect['step']}; "
                         f"the replay fails at step {failing}")
        return "violation", v.property, v.message
    if result.outcome is ReplayOutcome.ILLEGAL:
        return "rejected", expect.get("property"), result.describe()
    if lasso is not None:
        return "liveness", expect.get("property"), expect.get("message") or (
            f"steps {lasso.start}..{lasso.end} can repeat forever"
            + ("" if lasso.closes else " (but the cycle does not close)"))
    if expect.get("property"):
        notes.append(f"the trace header expects {expect['property']!r} to break, but the "
                     f"replay breaks nothing")
    return "clean", expect.get("property"), None


def _failing_note(kind: str, prop: str | None, message: str | None,
                  result: ReplayResult) -> str:
    """What the sequence diagram says beside the failing step."""
    return (f"breaks {prop}: {message}" if kind == "violation" else
            f"the model does not allow this: {result.reason}")


def _step_views(trace: Trace, walk: "_Walk", model: BalloonModel, result: ReplayResult,
                lasso: Lasso | None, failing: int | None, failing_note: str
                ) -> tuple[list[StepView], list[StepMessages]]:
    """Per step of ``trace``: its view (line, action, actor, state change) and its
    messages in the sequence diagram (a step not replayed: what the model would say of
    it, or why it was not allowed)."""
    h = trace.header
    views: list[StepView] = []
    seq: list[StepMessages] = []
    for st in trace.steps:
        i = st.step
        applied = i <= result.steps_run
        spec = ACTIONS.get(st.action.name)
        actor = spec.actor.value if spec else "?"
        in_cycle = lasso is not None and lasso.start <= i <= lasso.end
        diff: Diff = walk.diffs[i - 1] if applied else ()
        views.append(StepView(i, _line(st), str(st.action), actor, applied, diff,
                              i == failing, in_cycle))
        if applied:
            msgs = walk.messages[i - 1]
        else:
            pre = walk.last[-1]
            post = model.try_next_state(pre, st.action) if i == failing else None
            if post is not None:  # allowed, but its recorded state or observation differs
                msgs = tuple(messages(h.config, pre, st.action, post))
            else:
                vm = st.action.kwargs.get("vm")
                lane = actor_lane(spec.actor, vm if isinstance(vm, int) else None) if spec \
                    else "vmm"
                why = "not allowed by the model" if i == failing else "not replayed"
                msgs = (Message(lane, lane, f"{st.action} ({why})"),)
        note = failing_note if i == failing else None
        seq.append(StepMessages(i, msgs, i == failing, in_cycle, note))
    return views, seq


def _unexplained(trace: Trace, result: ReplayResult, last_two: Sequence[State],
                 model: BalloonModel, lines: Sequence[str] | None) -> Unexplained:
    step_no = result.step
    st = trace.steps[step_no - 1] if step_no else None
    # The state the model had reached when the trace went where it cannot follow.
    if result.outcome is ReplayOutcome.ILLEGAL:
        last = last_two[-1]
    else:
        last = last_two[-2] if len(last_two) >= 2 else last_two[-1]
    allowed = [str(a) for a, _ in model.successors(last)]
    text = None
    if st is not None:
        line = _line(st)
        text = (lines[line - 1].rstrip("\n") if lines is not None and 0 < line <= len(lines)
                else step_line_text(st))
    elif step_no == 0 and result.outcome is ReplayOutcome.ILLEGAL:
        # The header's observation of the initial state differs: line 1 is the one to show.
        text = (_header_text(lines) if lines is not None else
                json.dumps(trace.header.to_dict(), separators=(",", ":")))
    model_diff: Diff = ()
    if st is not None and st.state is not None and result.outcome is ReplayOutcome.ILLEGAL:
        post = model.try_next_state(last, st.action)
        try:
            recorded = state_from_dict(st.state)
        except (KeyError, TypeError, ValueError):
            recorded = None  # a partial recorded state: the reason line says enough
        if post is not None and recorded is not None:
            model_diff = tuple(state_diff(recorded, post))
    reason = result.reason or (result.violations[0].message if result.violations else "")
    return Unexplained(matched=result.steps_run if result.outcome is ReplayOutcome.ILLEGAL
                       else max(0, result.steps_run - 1), step=step_no,
                       line=st.line if st is not None and st.line is not None else
                       (_line(st) if st is not None else result.line),
                       text=text, reason=reason, allowed=tuple(allowed[:ALLOWED_SHOWN]),
                       allowed_total=len(allowed), model_diff=model_diff)


def _header_text(lines: Sequence[str]) -> str:
    """The header as the file has it: its first line that is not blank."""
    return next((ln.rstrip("\n") for ln in lines if ln.strip()), "")
