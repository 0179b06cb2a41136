"""Counterexample files: the trace plus its Markdown explanation, written atomically.

Every checker hands its counterexample here *after* replaying it through the
reference model; the replay's result is what gets explained. Nothing is
written unless the replay confirms the violation.
"""

from __future__ import annotations

import builtins
import io
import re
from dataclasses import dataclass
from pathlib import Path

from ballast.errors import InternalError
from ballast.model.replay import ReplayOutcome, ReplayResult, replay
from ballast.model.trace import Trace, write_trace_to
from ballast.reports.atomic import atomic_write_files
from ballast.reports.diff import state_diff
from ballast.reports.explain import explain
from ballast.reports.render_html import render_html
from ballast.reports.render_md import render_markdown

__all__ = ["Counterexample", "CounterexampleNotReproduced", "TraceFinding", "markdown_explanation",
           "state_diff", "trace_finding", "write_counterexample"]


class CounterexampleNotReproduced(InternalError):
    """A checker's counterexample does not break anything when replayed: a checker bug."""


@dataclass(frozen=True)
class TraceFinding:
    """What a counterexample trace shows when the reference model replays it: the step that
    fails, its action and VM, the property it breaks and the model's own message there.

    A checker's one-line message of a violation it reports is :attr:`line`, the words
    ``ballast replay TRACE`` prints for the same trace, never what the checker saw before it
    shrank or rebuilt the run (another VM, step or property)."""

    property: str
    step: int
    action: str
    vm: int | None
    """The VM of the failing step's action (None for an action of the host's)."""
    message: str
    steps: int
    """Steps in the trace."""

    @builtins.property  # the field above is named ``property``, as a Violation's
    def line(self) -> str:
        """``step 5 (vmm_reclaim(vm=0, refuse=[])) breaks isolation: free MPN 0 ...``"""
        return f"step {self.step} ({self.action}) breaks {self.property}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {"property": self.property, "step": self.step, "action": self.action,
                "vm": self.vm, "message": self.message, "steps": self.steps,
                "line": self.line}


def trace_finding(trace: Trace, result: ReplayResult) -> TraceFinding | None:
    """The violation ``result`` (the replay of ``trace``) shows, as its report explains it:
    the property the trace is filed under where the failing step breaks it too (several may
    break at one step), else the first the replay finds; None if the replay breaks nothing.

    >>> from ballast.model.actions import Action
    >>> from ballast.model.config import Config
    >>> from ballast.model.replay import replay
    >>> from ballast.model.trace import TraceHeader, TraceStep
    >>> cfg = Config(vms=1, guest_pages=2, machine_pages=2, host_page_units=2)
    >>> t = Trace(TraceHeader(cfg, ("host_takes_partial_page",)), (
    ...     TraceStep(1, Action.of("guest_write", vm=0, vpn=0, token=1)),
    ...     TraceStep(2, Action.of("host_take_page", host_page=0))))
    >>> print(trace_finding(t, replay(t)).line)  # doctest: +NORMALIZE_WHITESPACE
    step 2 (host_take_page(host_page=0)) breaks memory_conservation: MPN 0 is in host use and
    backing a guest page
    """
    if result.outcome is not ReplayOutcome.VIOLATION or not result.violations:
        return None
    filed = (trace.header.expect or {}).get("property")
    v = next((x for x in result.violations if x.property == filed), result.violations[0])
    step = result.step if result.step is not None else 0
    action = result.action
    vm = action.kwargs.get("vm") if action is not None else None
    return TraceFinding(v.property, step, str(action) if action is not None else "the initial "
                        "state", vm if isinstance(vm, int) else None, v.message,
                        len(trace.steps))


@dataclass(frozen=True)
class Counterexample:
    """Where a confirmed counterexample was written."""

    trace_path: Path
    markdown_path: Path
    replay: ReplayResult
    finding: TraceFinding | None = None
    """What the written trace shows when replayed (None for a liveness lasso)."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-")[:80]


def markdown_explanation(trace: Trace, result: ReplayResult, trace_name: str) -> str:
    """The Markdown explanation of a confirmed counterexample (the report's Markdown twin).

    ``result`` is the replay of ``trace`` already made; ``trace_name`` is how the
    trace file is named in the replay command.
    """
    text: str = render_markdown(explain(trace, trace_name, result=result))
    return text


def write_counterexample(trace: Trace, out_dir: str | Path, name: str | None = None, *,
                         html: bool = False) -> Counterexample:
    """Replay ``trace``; if it fails, write ``NAME.jsonl`` and ``NAME.md`` under ``out_dir``.

    With ``html`` the self-contained HTML page ``NAME.html`` is written too.
    A liveness counterexample (``header.expect["lasso_start"]``) is confirmed when
    its cycle returns to the state it started from. Raises
    CounterexampleNotReproduced if the replay passes: a checker must never report
    what the reference model does not confirm.
    """
    result = replay(trace)
    expect = trace.header.expect or {}
    lasso_start = expect.get("lasso_start")
    n = len(trace.steps)
    loops = (result.outcome is ReplayOutcome.OK and isinstance(lasso_start, int)
             and 1 <= lasso_start <= n and result.states[lasso_start - 1] == result.states[n])
    if result.outcome is ReplayOutcome.OK and not loops:
        raise CounterexampleNotReproduced(
            f"counterexample from {trace.header.source} does not reproduce on the reference model")
    if name is None:
        prop = (result.violations[0].property if result.violations else
                str(expect.get("property", "lasso")) if loops else "illegal-step")
        checker = str(trace.header.source.get("checker", "check"))
        name = _slug(f"{checker}-{prop}-{'-'.join(trace.header.faults) or 'model'}")
    out = Path(out_dir)
    trace_path, md_path = out / f"{name}.jsonl", out / f"{name}.md"
    buf = io.StringIO()
    write_trace_to(buf, trace)
    # Render everything before writing anything: no half set of files on an error.
    story = explain(trace, str(trace_path), result=result)
    md = render_markdown(story)
    page = render_html(story) if html else None
    files = [(trace_path, buf.getvalue()), (md_path, md)]
    if page is not None:
        files.append((out / f"{name}.html", page))
    atomic_write_files(files)
    return Counterexample(trace_path, md_path, result, trace_finding(trace, result))
