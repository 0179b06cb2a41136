"""The Markdown twin of a counterexample report (GitHub-flavoured; the diagram is Mermaid).

Same content as the HTML page, as text: the property and its meaning, who found
it, the replay command, the lasso or the unexplained line, a sequence diagram,
every step's state change with the failing step marked, and the memory figures
as a table. Deterministic: equal traces give equal text.
"""

from __future__ import annotations

import html

from ballast.model.config import features_on
from ballast.reports.diff import format_value
from ballast.reports.explain import Explanation
from ballast.reports.memory import figures
from ballast.reports.sequence import mermaid

__all__ = ["render_markdown"]


def _cell(value: object) -> str:
    text: str = format_value(value)
    return text.replace("|", "\\|")


def _inline(text: object) -> str:
    """``text`` from a trace's header (anyone may have written it) as one line of Markdown
    text: no line of its own (a heading, a table), no HTML."""
    return html.escape(" ".join(str(text).split()), quote=False)


def _code(text: object) -> str:
    """``text`` inside a code span: one line, and no backtick that would end the span."""
    return " ".join(str(text).split()).replace("`", "'")


def header_lines(e: Explanation) -> list[str]:
    """Title, property, meaning, finder and configuration.

    >>> from ballast.model.config import Config
    >>> from ballast.model.trace import Trace, TraceHeader
    >>> from ballast.reports.explain import explain
    >>> head = TraceHeader(Config(), source={"checker": "x\\n# title <script>"})
    >>> [ln for ln in header_lines(explain(Trace(head, ()))) if "Found" in ln]
    ['**Found by:** checker x # title &lt;script&gt;  ']
    """
    h = e.trace.header
    out = [f"# {_inline(e.title)}", ""]
    if e.property_name:
        out += [f"**Property:** `{_code(e.property_name)}`", ""]
    if e.doc:
        out += ["> " + line if line else ">" for line in e.doc.splitlines()]
        out.append("")
    if e.message:
        where = (f" (step {e.failing_step}, trace line {e.result.line})" if e.failing_step
                 else " (in the initial state)" if e.failing_step == 0 else "")
        label = "What broke" if e.kind in ("violation", "liveness") else "Why"
        out += [f"**{label}**{where}: {_inline(e.message)}", ""]
    found = ", ".join(f"{_inline(k)} {_inline(v)}" for k, v in h.source.items() if v is not None)
    out.append(f"**Found by:** {found or 'unknown'}  ")
    if h.faults:
        out.append(f"**Seeded faults:** {', '.join(f'`{f}`' for f in h.faults)}  ")
    cfg = h.config
    on = features_on(cfg)
    out += [f"**Configuration:** {cfg.vms} VMs x {cfg.guest_pages} PPNs, {cfg.machine_pages} MPNs, "
            f"host page = {cfg.host_page_units} unit(s), {cfg.module.value} module; "
            f"features: {', '.join(on) or 'none'}", ""]
    for note in e.notes:
        out += [f"**Note:** {_inline(note)}", ""]
    out += ["**Replay:**", "", "```sh", e.replay_command, "```", "",
            f"or step through it in Python: `{e.replay_command} --python > repro.py`", ""]
    return out


def render_markdown(e: Explanation) -> str:
    """The whole Markdown report."""
    out = header_lines(e)
    failing = [s for s in e.steps if s.failing and s.applied and s.diff]
    if failing:
        f = failing[0]
        out += [f"## State change at step {f.step}: `{f.action}`", "",
                "| state | before | after |", "|---|---|---|"]
        out += [f"| `{p}` | {_cell(a)} | {_cell(b)} |" for p, a, b in f.diff]
        out.append("")
    if e.lasso is not None:
        lo = e.lasso
        out += ["## Lasso", "",
                f"- prefix: steps 1..{lo.start - 1}" if lo.start > 1 else "- prefix: (empty)",
                f"- cycle: steps {lo.start}..{lo.end}, repeated forever "
                "(" + ("returns to the state before step " + str(lo.start) if lo.closes
                       else "does NOT close") + ")",
                ""]
    u = e.unexplained
    if u is not None:
        out += ["## Where the trace leaves the model", "",
                f"- matched prefix: steps 1..{u.matched}" if u.matched
                else "- matched prefix: (none)",
                f"- first unexplained step: {u.step}, trace line {u.line}" if u.step != 0
                else f"- first unexplained: the initial state, before step 1 (trace line "
                     f"{u.line}, the header's observe)",
                f"- why: {u.reason}", "", "```json", u.text or "", "```", ""]
        if u.model_diff:
            out += ["Recorded state vs the model's:", "", "| state | recorded | model |",
                    "|---|---|---|"]
            out += [f"| `{p}` | {_cell(a)} | {_cell(b)} |" for p, a, b in u.model_diff]
            out.append("")
        more = (f" (first {len(u.allowed)} of {u.allowed_total})"
                if u.allowed_total > len(u.allowed) else "")
        out += [f"What the model allowed there{more}:", ""]
        out += [f"- `{a}`" for a in u.allowed] or ["- nothing: the model is stuck here"]
        out.append("")
    out += ["## Sequence", "", "```mermaid", mermaid(e.lanes, e.sequence), "```", ""]
    out += ["## Steps", "", "| # | line | actor | action | |", "|---|---|---|---|---|"]
    for s in e.steps:
        mark = ("**<- fails here**" if s.failing else
                "cycle" if s.in_cycle else "" if s.applied else "not replayed")
        out.append(f"| {s.step} | {s.line} | {s.actor} | `{s.action}` | {mark} |")
    out.append("")
    for s in e.steps:
        if not s.applied:
            continue
        flag = " -- fails here" if s.failing else ""
        out += [f"### Step {s.step}: `{s.action}`{flag}", ""]
        for m in e.sequence[s.step - 1].messages:
            chose = f" *(chosen by {m.chooser})*" if m.chooser else ""
            out.append(f"- {m.src} -> {m.dst}: {m.label}{chose}")
        out.append("")
        if s.diff:
            out += ["| state | before | after |", "|---|---|---|"]
            out += [f"| `{p}` | {_cell(a)} | {_cell(b)} |" for p, a, b in s.diff]
        else:
            out.append("(no state change)")
        out.append("")
    out += ["## Memory over the steps", ""]
    panels = list(e.memory.data)
    cols = [(p, k) for p in panels for k in e.memory.data[p]]
    out.append("| after step | " + " | ".join(
        f"{'host' if p == 'host' else 'VM ' + p[2:]}: {k}" for p, k in cols) + " |")
    out.append("|---" * (len(cols) + 1) + "|")
    for i, step in enumerate(e.memory.steps):
        mark = " (fails)" if step == e.failing_step else ""
        out.append(f"| {step}{mark} | " + " | ".join(
            str(e.memory.data[p][k][i]) for p, k in cols) + " |")
    out.append("")
    if e.states:
        final = figures(e.states[-1])["host"]
        out += [f"Host at the end: {final['free']} free, {final['host use']} in host use, "
                f"{final['backing guests']} backing guests.", ""]
    return "\n".join(out)
