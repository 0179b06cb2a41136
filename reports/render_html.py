"""The HTML page of a counterexample report: one self-contained file.

Inline CSS, the sequence diagram as inline SVG, the memory plot as a PNG
``data:`` URI; no scripts, no fonts, nothing fetched. A Content-Security-Policy
in the page itself forbids every external load, so a browser reports any
reference that slips in as an error.
"""

from __future__ import annotations

import base64
from html import escape

from ballast.reports.diff import format_value
from ballast.reports.explain import Explanation
from ballast.reports.memory import plot_png
from ballast.reports.sequence import svg

__all__ = ["CSP", "render_html"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""The page's Content-Security-Policy: only inline styles and data: images."""

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1f2328; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 18px 24px 48px; }
h1 { font-size: 22px; margin: 6px 0 10px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 0; }
code, pre { font: 12.5px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
pre { background: #f6f8fa; padding: 8px 10px; border-radius: 6px; overflow-x: auto; }
.banner { border-left: 6px solid #b00020; background: #fdecee; padding: 10px 14px;
          border-radius: 6px; }
.banner.rejected { border-color: #b45309; background: #fff4e5; }
.banner.liveness { border-color: #4a78c2; background: #eaf1fc; }
.banner.clean { border-color: #2e7d32; background: #e9f5ea; }
.doc { color: #444; margin: 6px 0 0; white-space: pre-line; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: 12px 0; }
dl.facts dt { font-weight: 600; color: #57606a; }
dl.facts dd { margin: 0; }
.note { background: #fff8c5; padding: 6px 10px; border-radius: 6px; margin: 6px 0; }
.scroll { overflow-x: auto; border: 1px solid #d0d7de; border-radius: 6px; padding: 4px; }
.legend span { display: inline-block; margin-right: 16px; font-size: 12px; }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px;
            vertical-align: -1px; margin-right: 4px; }
img.plot { max-width: 100%; border: 1px solid #d0d7de; border-radius: 6px; }
table { border-collapse: collapse; margin: 6px 0; }
td, th { border: 1px solid #d0d7de; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
.step { border: 1px solid #d0d7de; border-radius: 6px; margin: 8px 0; padding: 8px 12px; }
.step.failing { border: 2px solid #b00020; background: #fdf3f4; }
.step.cycle { border-left: 6px solid #4a78c2; }
.step.skipped { color: #8c959f; }
.step ul { margin: 4px 0 6px; padding-left: 20px; }
.chooser { color: #b45309; font-weight: 600; }
.tag { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 10px;
       background: #eaeef2; margin-left: 6px; }
.tag.fail { background: #b00020; color: #fff; }
.tag.cycle { background: #4a78c2; color: #fff; }
"""


def _diff_table(rows: list[tuple[str, object, object]], left: str = "before",
                right: str = "after") -> str:
    body = "".join(f"<tr><td><code>{escape(p)}</code></td><td>{escape(format_value(a))}</td>"
                   f"<td>{escape(format_value(b))}</td></tr>" for p, a, b in rows)
    return (f'<table class="diff"><tr><th>state</th><th>{left}</th><th>{right}</th></tr>'
            f"{body}</table>")


def render_html(e: Explanation, *, plot: bytes | None = None) -> str:
    """The whole page. ``plot`` is the memory plot's PNG (drawn here when not given)."""
    if plot is None:
        plot = plot_png(e.memory, failing_step=e.failing_step,
                        cycle=(e.lasso.start, e.lasso.end) if e.lasso else None,
                        vms=[int(lane.key[5:]) for lane in e.lanes if lane.key.startswith("guest")])
    title = e.title.replace("`", "")
    parts: list[str] = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>"]
    parts += _banner(e, title)
    parts += _facts(e)
    parts += _failing_change(e)
    parts += _lasso(e)
    parts += _unexplained(e)
    parts += _sequence(e, plot)
    parts += _step_sections(e)
    parts.append("</main></body></html>")
    parts.append("")  # the closing newline, without copying the page once more to add it
    return "\n".join(parts)


def _banner(e: Explanation, title: str) -> list[str]:
    """The verdict at the top: the title, the property, its description, what broke."""
    parts = [f'<div class="banner {e.kind}"><h1 id="title">{escape(title)}</h1>']
    if e.property_name:
        parts.append(f"<div>Property <code>{escape(e.property_name)}</code></div>")
    if e.doc:
        parts.append(f'<p class="doc">{escape(e.doc)}</p>')
    if e.message:
        where = (f' at <a href="#step-{e.failing_step}">step {e.failing_step}</a> '
                 f"(trace line {e.result.line})" if e.failing_step
                 else " in the initial state" if e.failing_step == 0 else "")
        parts.append(f"<p><strong>{'What broke' if e.kind != 'rejected' else 'Why'}</strong>"
                     f"{where}: {escape(e.message)}</p>")
    parts.append("</div>")
    return parts


def _facts(e: Explanation) -> list[str]:
    """Who found the trace, with which faults and configuration; how to replay it; notes."""
    h = e.trace.header
    cfg = h.config
    facts = [("Found by", ", ".join(f"{k} {v}" for k, v in h.source.items() if v is not None)
              or "unknown"),
             ("Seeded faults", ", ".join(h.faults) or "none"),
             ("Configuration", f"{cfg.vms} VMs x {cfg.guest_pages} PPNs, {cfg.machine_pages} "
                               f"MPNs, host page = {cfg.host_page_units} unit(s), "
                               f"{cfg.module.value} module"),
             ("Trace", e.name)]
    parts = ['<dl class="facts">' + "".join(
        f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts) + "</dl>",
        f'<div>Replay it:</div><pre id="replay">{escape(e.replay_command)}</pre>']
    parts += [f'<div class="note">{escape(n)}</div>' for n in e.notes]
    return parts


def _failing_change(e: Explanation) -> list[str]:
    """The state change of the failing step (none: nothing)."""
    failing = [s for s in e.steps if s.failing and s.applied and s.diff]
    if not failing:
        return []
    f = failing[0]
    return [f'<h2 id="failing">State change at step {f.step}: <code>'
            f"{escape(f.action)}</code></h2>" + _diff_table(list(f.diff))]


def _lasso(e: Explanation) -> list[str]:
    """A liveness counterexample's prefix and cycle (none: nothing)."""
    lo = e.lasso
    if lo is None:
        return []
    prefix = f"steps 1..{lo.start - 1}" if lo.start > 1 else "(empty)"
    return [f'<h2 id="lasso">Lasso</h2><p>Prefix: {prefix}. Cycle: steps {lo.start}..'
            f"{lo.end}, repeated forever: "
            + ("it returns to the state before step " + str(lo.start) if lo.closes
               else "<strong>it does not close</strong>") + ".</p>"]


def _unexplained(e: Explanation) -> list[str]:
    """Where a trace the model rejects leaves it: the step, the recorded state against the
    model's, and what the model allowed there (none: nothing)."""
    u = e.unexplained
    if u is None:
        return []
    matched = f"steps 1..{u.matched}" if u.matched else "none"
    parts = [f'<h2 id="unexplained">Where the trace leaves the model</h2>'
             f"<p>Matched prefix: {matched}. "
             + (f"First unexplained step: {u.step} (trace line {u.line})" if u.step != 0 else
                f"First unexplained: the initial state, before step 1 (trace line {u.line}, "
                f"the header's observe)")
             + f": {escape(u.reason)}</p>"
             f"<pre>{escape(u.text or '')}</pre>"]
    if u.model_diff:
        parts.append("<p>Recorded state vs the model's:</p>"
                     + _diff_table(list(u.model_diff), "recorded", "model"))
    more = (f" (first {len(u.allowed)} of {u.allowed_total})"
            if u.allowed_total > len(u.allowed) else "")
    items = "".join(f"<li><code>{escape(a)}</code></li>" for a in u.allowed)
    parts.append(f"<p>What the model allowed there{more}:</p>"
                 + (f"<ul>{items}</ul>" if items else "<p>nothing: the model is stuck</p>"))
    return parts


def _sequence(e: Explanation, plot: bytes) -> list[str]:
    """The sequence diagram with its legend, and the memory plot (``plot``, a PNG)."""
    uri = "data:image/png;base64," + base64.b64encode(plot).decode("ascii")
    return [
        '<h2 id="sequence">Sequence</h2><div class="legend">'
        '<span><i style="background:#1f5fbf"></i>host: quantities only</span>'
        '<span><i style="background:#2e7d32"></i>guest/module: page reports</span>'
        '<span><i style="background:#6a1b9a"></i>VMM: acknowledgements, freed MPNs</span>'
        '<span class="chooser">\u25c6 who chose the pages</span>'
        '<span><i style="background:#fde2e2"></i>failing step</span>'
        + ('<span><i style="background:#e3ecfb"></i>cycle</span>' if e.lasso else "")
        + "</div>",
        f'<div class="scroll" id="diagram">{svg(e.lanes, e.sequence)}</div>',
        f'<h2 id="memory">Memory over the steps</h2><img class="plot" id="plot" '
        f'alt="memory per VM and for the host over the steps" src="{uri}">']


def _step_sections(e: Explanation) -> list[str]:
    """One section per step: its action, actor and line, its messages, its state change."""
    parts = ['<h2 id="steps">Steps</h2>']
    for s in e.steps:
        cls = "step" + (" failing" if s.failing else "") + (" cycle" if s.in_cycle else "") + (
            "" if s.applied else " skipped")
        tags = ('<span class="tag fail">fails here</span>' if s.failing else "") + (
            '<span class="tag cycle">cycle</span>' if s.in_cycle else "") + (
            "" if s.applied else '<span class="tag">not replayed</span>')
        msgs = "".join(
            f"<li>{escape(m.src)} \u2192 {escape(m.dst)}: {escape(m.label)}"
            + (f' <span class="chooser">\u25c6 chosen by {escape(m.chooser)}</span>'
               if m.chooser else "") + "</li>"
            for m in e.sequence[s.step - 1].messages)
        body = (_diff_table(list(s.diff)) if s.diff else
                "<p>(no state change)</p>" if s.applied else "")
        parts.append(f'<section class="{cls}" id="step-{s.step}"><h3>Step {s.step} '
                     f"<code>{escape(s.action)}</code> <span class=\"tag\">{escape(s.actor)}"
                     f"</span><span class=\"tag\">line {s.line}</span>{tags}</h3>"
                     f"<ul>{msgs}</ul>{body}</section>")
    return parts
