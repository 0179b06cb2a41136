"""Reports of a differential run: a trace in the project format plus a Markdown page.

A divergence is no broken property of the model, so it is not written through
:func:`ballast.reports.counterexample.write_counterexample`; it gets the same
guarantee from :func:`confirm`, which replays the trace through the reference
model and checks that the model really does what the report says it does:

* ``accepted`` -- the replay stops at the last step: the model's guard refuses it;
* ``refused`` -- the replay runs every step: the model allows the last one;
* ``observation`` -- after the last step the model's observation differs from the
  implementation's (the trace records the implementation's observation of the
  last step, so ``ballast replay`` shows the difference too). A command that changed
  nothing in the model (a command both refused, a protocol-2 run of no step) leaves
  its observation to the step before it; before any step (right after the reset)
  the header records it, as an observation of the initial state, and the replay
  stops at step 0 (``expect.step`` 0).

Every step both sides carried out is in the trace; commands both refused are
not (they changed nothing), but the Markdown lists them. Files are written
atomically, and only after the confirmation.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ballast.errors import InternalError
from ballast.model.replay import ReplayOutcome, ReplayResult, replay
from ballast.model.trace import (Trace, TraceHeader, TraceStep, atomic_write_files,
                                  trace_text)
from ballast.reports.commands import replay_command
from ballast.validate.adapters.diff import DiffOutcome, Divergence, Exchange
from ballast.validate.adapters.observe import in_trace

__all__ = ["DivergenceNotReproduced", "Report", "confirm", "divergence_trace", "write_report"]

PROPERTY = "implementation_agrees_with_model"
"""The name a divergence is filed under in ``header.expect.property``."""


class DivergenceNotReproduced(InternalError):
    """The reference model does not confirm a reported divergence: a bug in Ballast."""


@dataclass(frozen=True)
class Report:
    """Where a run's report was written."""

    markdown_path: Path
    trace_path: Path | None


def _steps(exchanges: tuple[Exchange, ...], last_observe: dict[str, Any] | None,
           include_last: bool) -> tuple[tuple[TraceStep, ...], dict[str, Any] | None]:
    """The trace's steps, and the observation of the initial state when no step can carry
    the diverging one (it was made before any step both sides carried out)."""
    steps: list[TraceStep] = []
    body, last = exchanges[:-1], exchanges[-1]
    for ex in body:
        if ex.applied and ex.action is not None:
            steps.append(TraceStep(len(steps) + 1, ex.action))
    if include_last and last.action is not None:
        steps.append(TraceStep(len(steps) + 1, last.action, observe=last_observe))
    elif last_observe:
        # An exchange that changed nothing in the model (the reset, a protocol-2 run in
        # which the implementation took no step, a command both sides refused) observes
        # the state the steps before it left: the last step carries it, or, before any
        # step, the header (the initial state).
        if not steps:
            return (), last_observe
        steps[-1] = replace(steps[-1], observe=last_observe)
    return tuple(steps), None


def _path_observation(ex: Exchange) -> dict[str, Any] | None:
    """The implementation's observation, keys the trace format knows only."""
    if ex.impl_observe is None:
        return None
    # Sets arrive in any order; the trace states them sorted, as the model does
    # (tokens are a list per VPN: their order is their meaning).
    tokens = {k for k in ex.impl_observe if k.endswith("/guest/tokens")}
    out = {k: v if k in tokens else sorted(v) if isinstance(v, list) else v
           for k, v in ex.impl_observe.items() if in_trace(k)}
    return out or None


def divergence_trace(outcome: DiffOutcome, d: Divergence) -> Trace:
    """The trace of a divergence: the steps both carried out, then the diverging one."""
    last = d.last
    include_last = last.action is not None and (d.kind in ("accepted", "refused")
                                                or (last.model_ok and last.impl_ok))
    observe_last = _path_observation(last) if d.kind == "observation" else None
    steps, initial_observe = _steps(d.exchanges, observe_last, include_last)
    # expect.step 0 is the initial state, as for a property the initial state breaks.
    shown = include_last or bool(steps and steps[-1].observe) or initial_observe is not None
    name = outcome.hello.implementation if outcome.hello else "implementation"
    header = TraceHeader(
        outcome.cfg, outcome.faults,
        source={"checker": "adapter", "seed": outcome.seed, "implementation": name,
                "command": shlex.join(outcome.command)},
        expect={"property": PROPERTY, "step": len(steps) if shown else None,
                "message": d.describe()},
        comment=f"{name} diverges from the reference model ({d.kind})",
        observe=initial_observe)
    return Trace(header, steps)


def confirm(trace: Trace, d: Divergence) -> ReplayResult:
    """Replay ``trace`` through the reference model; raise unless it confirms ``d``."""
    result = replay(trace)
    n = len(trace.steps)
    reason = result.reason or ""

    def fail(why: str) -> DivergenceNotReproduced:
        return DivergenceNotReproduced(f"the reference model does not confirm the divergence "
                                       f"({d.describe()}): {why}; replay: {result.describe()}")

    if d.kind == "accepted":
        if not (result.outcome is ReplayOutcome.ILLEGAL and result.step == n
                and "observation differs" not in reason):
            raise fail("the model allows the last step")
        return result
    if d.kind == "observation":
        # The trace carries the implementation's observation (on the last step, or in the
        # header for the initial state): the replay must stop there, on it.
        if not (result.outcome is ReplayOutcome.ILLEGAL and result.step == n
                and "observation differs" in reason):
            raise fail("the replay does not stop on the implementation's observation"
                       + (" of the initial state" if trace.header.observe is not None else ""))
        return result
    if result.outcome is not ReplayOutcome.OK:
        raise fail("the model does not run the steps both sides carried out")
    return result


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-")[:60] or "implementation"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"`{value}`"


def _exchange_rows(exchanges: tuple[Exchange, ...], mark_last: bool) -> list[str]:
    rows = ["| # | command | model | implementation |", "|---|---|---|---|"]
    for i, ex in enumerate(exchanges):
        what = "reset" if ex.action is None else f"`{ex.action}`"
        if ex.request is not None:
            what = f"{ex.request}: " + ("no step" if ex.action is None else f"`{ex.action}`")
        model = "carried out" if ex.model_ok else f"refused: {ex.model_reason}"
        impl = "carried out" if ex.impl_ok else f"refused: {ex.impl_reason or '(no reason)'}"
        mark = " **<- diverges**" if mark_last and i == len(exchanges) - 1 else ""
        rows.append(f"| {ex.index} | {what}{mark} | {model} | {impl} |")
    return rows


def _header_lines(outcome: DiffOutcome) -> list[str]:
    cfg = outcome.cfg
    name = outcome.hello.implementation if outcome.hello else "(no hello)"
    return [f"**Implementation:** {name}, run as `{shlex.join(outcome.command)}`", "",
            f"**Configuration:** {cfg.vms} VMs x {cfg.guest_pages} PPNs, "
            f"{cfg.machine_pages} MPNs, batch {cfg.batch}", "",
            f"**Found by:** `ballast diff`, seed {outcome.seed}, after {outcome.examples} runs "
            f"and {outcome.commands} commands", ""]


def _divergence_markdown(outcome: DiffOutcome, d: Divergence, trace_name: str) -> str:
    if outcome.flaky:
        # One run diverged; the same commands given again did not: no verdict.
        lines = ["# The implementation is not deterministic (inconclusive)", "",
                 f"**What differed once:** {d.describe()}", "",
                 "The same commands, given again, did not show it: the run below is the one "
                 "that diverged (the trace records what the implementation observed then), "
                 "not shrunk and not a verdict.", ""] + _header_lines(outcome)
        lines += ["## Commands", ""] + _exchange_rows(d.exchanges, True)
    else:
        lines = ["# The implementation diverges from the model", "",
                 f"**What differs:** {d.describe()}", ""] + _header_lines(outcome)
        lines += ["## Commands (shrunk)", ""] + _exchange_rows(d.exchanges, True)
    last = d.last
    lines += ["", f"## Observation after command {last.index}", "",
              "| key | model | implementation |", "|---|---|---|"]
    differ = {k for k, _, _ in d.diffs}
    impl = last.impl_observe or {}
    for key, value in last.model_observe.items():
        mark = " **differs**" if key in differ else ""
        lines.append(f"| `{key}`{mark} | {_fmt(value)} | {_fmt(impl.get(key))} |")
    lines += ["", "## Reproduce", "", "```", replay_command(trace_name),
              f"ballast diff --adapter {shlex.quote(shlex.join(outcome.command))} "
              f"--seed {outcome.seed}", "```", ""]
    return "\n".join(lines)


def _error_markdown(outcome: DiffOutcome) -> str:
    err = outcome.adapter_error
    assert err is not None
    lines = [f"# The implementation failed: {err.kind}", "", f"**What happened:** {err.message}",
             ""] + _header_lines(outcome)
    if err.request is not None:
        lines += ["**Request:**", "", "```json", json.dumps(err.request), "```", ""]
    if outcome.error_exchanges or outcome.error_action is not None:
        lines += ["## Commands before it", ""] + _exchange_rows(outcome.error_exchanges, False)
        if outcome.error_action is not None:
            lines.append(f"| - | `{outcome.error_action}` **<- {err.kind}** | | |")
        lines.append("")
    if err.stderr.strip():
        lines += ["## The implementation's stderr (last lines)", "", "```",
                  err.stderr.rstrip(), "```", ""]
    return "\n".join(lines)


def write_report(outcome: DiffOutcome, out_dir: str | Path) -> Report | None:
    """Write the report of a divergence or an implementation failure (None: nothing to report).

    A divergence is confirmed by the reference model first (:func:`confirm`);
    nothing is written if it is not.
    """
    out = Path(out_dir)
    name = _slug(f"diff-{outcome.hello.implementation if outcome.hello else 'implementation'}")
    d = outcome.divergence
    if d is not None and outcome.adapter_error is None:
        trace = divergence_trace(outcome, d)
        confirm(trace, d)
        kind = "flaky" if outcome.flaky else "divergence"
        trace_path, md_path = out / f"{name}-{kind}.jsonl", out / f"{name}-{kind}.md"
        atomic_write_files([(trace_path, trace_text(trace)),
                            (md_path, _divergence_markdown(outcome, d, str(trace_path)))])
        return Report(md_path, trace_path)
    err = outcome.adapter_error
    if err is None:
        return None
    error_trace: Path | None = None
    files: list[tuple[Path, str]] = []
    actions = [e.action for e in outcome.error_exchanges if e.applied and e.action is not None]
    steps = tuple(TraceStep(i + 1, act) for i, act in enumerate(actions))
    if steps:
        # The steps before the failure, for reproducing it; the model must allow them all.
        trace = Trace(TraceHeader(outcome.cfg, outcome.faults, source={
            "checker": "adapter", "seed": outcome.seed,
            "command": shlex.join(outcome.command)},
            comment=f"commands before the implementation's {err.kind}"), steps)
        if replay(trace).outcome is not ReplayOutcome.OK:
            raise DivergenceNotReproduced("the steps before the failure do not replay")
        error_trace = out / f"{name}-{err.kind}.jsonl"
        files.append((error_trace, trace_text(trace)))
    md_path = out / f"{name}-{err.kind}.md"
    atomic_write_files([*files, (md_path, _error_markdown(outcome))])
    return Report(md_path, error_trace)
