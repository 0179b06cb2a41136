"""The summary of a whole ``ballast check``: every property, every checker, coverage, times.

Input is the list of :class:`~ballast.verdict.CheckResult` the checkers returned.
Outputs: Markdown (for a CI job summary such as ``$GITHUB_STEP_SUMMARY``), JSON,
JUnit XML (:mod:`ballast.reports.junit`) and SARIF 2.1.0
(:mod:`ballast.reports.sarif`); :func:`write_summary` renders all requested
outputs first and only then writes each one atomically.

Figures are read from each result's ``evidence`` (and the checker's ``stats``):
``proved`` (true for a proof), ``states`` (states explored), ``steps`` (random
steps run), ``seconds``, ``seed``, ``query``; ``stats["actions"]`` maps action
names to how often they fired.

>>> from ballast.verdict import CheckResult, PropertyResult, Verdict
>>> r = PropertyResult("isolation", "explore", Verdict.PASS, evidence={"states": 1200})
>>> verdict_phrase(r)
'held over 1,200 states'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ballast.model.actions import ACTIONS
from ballast.model.invariants import INVARIANTS
from ballast.model.sometimes import SOMETIMES
from ballast.reports.atomic import atomic_write_files
from ballast.reports.commands import replay_command
from ballast.verdict import CheckResult, PropertyResult, Verdict, overall

__all__ = ["POOLED", "actions_fired", "coverage", "decisive", "summary_dict", "summary_json",
           "summary_markdown", "summary_verdict",
           "verdict_phrase", "write_summary"]

POOLED = "all"
"""The checker name of coverage pooled over every checker (as ``ballast check`` reports it)."""

_ICON = {Verdict.PASS: "\u2705", Verdict.VIOLATION: "\u274c", Verdict.INCONCLUSIVE: "\u26a0\ufe0f",
         Verdict.VACUOUS: "\u26a0\ufe0f", Verdict.SKIPPED: "\u2796"}


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def decisive(results: Sequence[CheckResult]) -> list[PropertyResult]:
    """The results the overall verdict rests on.

    Every invariant result counts. A scenario or action coverage item counts once
    pooled over all checkers (checker ``all``): one checker not reaching what
    another reached is not a finding. Without a pooled item, each checker's own counts.
    """
    pooled = {r.property for cr in results for r in cr.results if r.checker == POOLED}
    return [r for cr in results for r in cr.results
            if r.kind == "invariant" or r.checker == POOLED or r.property not in pooled]


def summary_verdict(results: Sequence[CheckResult]) -> Verdict:
    """Violation beats inconclusive beats pass, over the :func:`decisive` results."""
    return overall(r.verdict for r in decisive(results))


def verdict_phrase(r: PropertyResult) -> str:
    """How a verdict reads in a table: proved, held over N states/steps, violated, ...

    >>> from ballast.verdict import PropertyResult, Verdict
    >>> verdict_phrase(PropertyResult("isolation", "prove", Verdict.PASS,
    ...                               evidence={"proved": True}))
    'proved'
    >>> verdict_phrase(PropertyResult("isolation", "random", Verdict.PASS,
    ...                               evidence={"steps": 5000}))
    'held over 5,000 random steps'
    >>> verdict_phrase(PropertyResult("isolation", "random", Verdict.VIOLATION))
    'violated'
    """
    ev = r.evidence
    if r.verdict is Verdict.VIOLATION:
        return "violated"
    if r.verdict is Verdict.INCONCLUSIVE:
        return "inconclusive" + (f" ({r.detail})" if r.detail else "")
    if r.verdict is Verdict.VACUOUS:
        return "never reached" if r.kind != "invariant" else "vacuous"
    if r.verdict is Verdict.SKIPPED:
        return "skipped" + (f" ({r.detail})" if r.detail else "")
    if r.kind in ("scenario", "action"):
        return "reached" + (f" ({_count(ev['count'])}x)" if "count" in ev else "")
    if ev.get("proved"):
        return "proved"
    if r.detail:
        return str(r.detail)  # the checker's own words: "held over 12,000 random steps (3 runs)"
    if "states" in ev:
        return f"held over {_count(ev['states'])} states"
    if "steps" in ev:
        return f"held over {_count(ev['steps'])} random steps"
    return "held" + (f" ({r.detail})" if r.detail else "")


def _doc(name: str) -> str:
    if name in INVARIANTS:
        return str(INVARIANTS[name].summary)
    if name in SOMETIMES:
        return str(SOMETIMES[name].doc)
    if name.startswith("action:") and name[7:] in ACTIONS:
        return ACTIONS[name[7:]].doc.splitlines()[0] if ACTIONS[name[7:]].doc else ""
    return ""


def actions_fired(results: Sequence[CheckResult]) -> dict[str, int | None]:
    """Action name -> times fired over every checker (None: fired, count not reported).

    Counts come from ``stats["actions"]``; ``action:NAME`` results that passed
    (``evidence["count"]`` if given) name actions that fired.
    """
    fired: dict[str, int | None] = {}
    for cr in results:
        counts = cr.stats.get("actions")
        if isinstance(counts, dict):
            for name, n in counts.items():
                fired[str(name)] = (fired.get(str(name)) or 0) + int(n)
    for cr in results:
        for r in cr.results:
            if r.kind == "action" and r.verdict is Verdict.PASS:
                name = r.property.removeprefix("action:")
                n = r.evidence.get("count")
                if isinstance(n, int) and cr.checker != POOLED:
                    fired[name] = max(fired.get(name) or 0, n)
                else:
                    fired.setdefault(name, None)
    return dict(sorted(fired.items()))


def coverage(results: Sequence[CheckResult]) -> dict[str, Any]:
    """Actions fired and never fired, states explored and random steps run.

    Never fired: the ``action:`` items that did not pass (they exist only for
    actions switched on in the configuration); without such items, the actions
    missing from ``stats["actions"]``.
    """
    fired = actions_fired(results)
    items = [r for r in decisive(results) if r.kind == "action"]
    if items:
        never = sorted({r.property.removeprefix("action:") for r in items
                        if r.verdict is not Verdict.PASS} - set(fired))
    elif any(isinstance(cr.stats.get("actions"), dict) for cr in results):
        never = sorted(set(ACTIONS) - set(fired))
    else:
        never = []
    states = [int(cr.stats["states"]) for cr in results if isinstance(cr.stats.get("states"), int)]
    steps = [int(cr.stats["steps"]) for cr in results if isinstance(cr.stats.get("steps"), int)]
    return {"actions_fired": fired, "actions_never_fired": never,
            "states_explored": sum(states) if states else None,
            "steps_run": sum(steps) if steps else None}


def _result_dict(r: PropertyResult) -> dict[str, Any]:
    return {"property": r.property, "checker": r.checker, "kind": r.kind,
            "verdict": r.verdict.value, "summary": verdict_phrase(r), "detail": r.detail,
            "evidence": r.evidence,
            "counterexample": r.counterexample.as_posix() if r.counterexample else None}


def summary_dict(results: Sequence[CheckResult]) -> dict[str, Any]:
    """The JSON form of the summary (only what the results hold: no clock, no host name)."""
    verdict = summary_verdict(results)
    counted = {id(r) for r in decisive(results)}
    scenarios: dict[str, dict[str, str]] = {}
    props: dict[str, dict[str, str]] = {}
    for cr in results:
        for r in cr.results:
            table = scenarios if r.kind == "scenario" else props if r.kind == "invariant" else None
            if table is not None:
                table.setdefault(r.property, {})[cr.checker] = r.verdict.value
    return {
        "format": "ballast-check-summary", "version": 1,
        "verdict": verdict.value, "exit_code": verdict.exit_code,
        "seconds": round(sum(cr.seconds for cr in results), 3),
        "checkers": [{"checker": cr.checker,
                      "verdict": overall(r.verdict for r in cr.results if id(r) in counted).value,
                      "seconds": round(cr.seconds, 3), "stats": cr.stats,
                      "results": [_result_dict(r) for r in cr.results]} for cr in results],
        "properties": props, "scenarios": scenarios,
        "coverage": coverage(results),
    }


def summary_json(results: Sequence[CheckResult]) -> str:
    """The summary as indented, key-sorted JSON."""
    return json.dumps(summary_dict(results), indent=2, sort_keys=True, default=str) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_markdown(results: Sequence[CheckResult]) -> str:
    """The summary as GitHub-flavoured Markdown (a CI job summary)."""
    verdict = summary_verdict(results)
    counted = {id(r) for r in decisive(results)}
    checkers = [cr.checker for cr in results]
    out = [f"# Ballast check: {_ICON[verdict]} {verdict.value}", ""]
    total = sum(cr.seconds for cr in results)
    out.append(f"{len(checkers)} checker(s), {total:.1f} s in all; exit code {verdict.exit_code}.")
    out.append("")
    cells: dict[str, dict[str, PropertyResult]] = {}
    scen: dict[str, dict[str, PropertyResult]] = {}
    for cr in results:
        for r in cr.results:
            if r.kind == "invariant":
                cells.setdefault(r.property, {})[cr.checker] = r
            elif r.kind == "scenario":
                scen.setdefault(r.property, {})[cr.checker] = r
    order = [p for p in INVARIANTS if p in cells] + sorted(p for p in cells if p not in INVARIANTS)
    if order:
        cols = [c for c in checkers if any(c in cells[p] for p in cells)]
        out += ["## Properties", "", "| property | " + " | ".join(cols) + " |",
                "|---" * (len(cols) + 1) + "|"]
        for p in order:
            row = [f"{_ICON[cells[p][c].verdict]} {_md(verdict_phrase(cells[p][c]))}"
                   if c in cells[p] else "" for c in cols]
            out.append(f"| `{p}` | " + " | ".join(row) + " |")
        out.append("")
    bad = [r for r in decisive(results)
           if r.verdict in (Verdict.VIOLATION, Verdict.INCONCLUSIVE, Verdict.VACUOUS)]
    if bad:
        out += ["## Needs attention", ""]
        for r in bad:
            who = "no checker" if r.checker == POOLED else r.checker
            line = f"- {_ICON[r.verdict]} **`{r.property}`** ({who}): {verdict_phrase(r)}"
            if r.detail and r.verdict is Verdict.VIOLATION:
                line += f" -- {_md(r.detail)}"
            out.append(line)
            if r.counterexample is not None:
                path = r.counterexample.as_posix()
                out.append(f"  - counterexample `{path}`; replay with `{replay_command(path)}`")
            if _doc(r.property):
                out.append(f"  - {_md(_doc(r.property))}")
        out.append("")
    if scen:
        cols = [c for c in checkers if any(c in scen[p] for p in scen)]
        out += ["## Scenarios (sometimes)", "", "| scenario | " + " | ".join(cols) + " |",
                "|---" * (len(cols) + 1) + "|"]
        for p in ([s for s in SOMETIMES if s in scen]
                  + sorted(s for s in scen if s not in SOMETIMES)):
            row = [f"{_ICON[scen[p][c].verdict]} {_md(verdict_phrase(scen[p][c]))}"
                   if c in scen[p] else "" for c in cols]
            out.append(f"| `{p}` | " + " | ".join(row) + " |")
        out.append("")
    cov = coverage(results)
    out += ["## Coverage", ""]
    if cov["actions_fired"]:
        fired = ", ".join(f"`{k}`" + (f" {v:,}" if v is not None else "")
                          for k, v in cov["actions_fired"].items())
        out.append(f"- actions fired: {fired}")
    if cov["actions_never_fired"]:
        out.append("- actions never fired: "
                   + ", ".join(f"`{a}`" for a in cov["actions_never_fired"]))
    if cov["states_explored"] is not None:
        out.append(f"- states explored: {cov['states_explored']:,}")
    if cov["steps_run"] is not None:
        out.append(f"- steps run: {cov['steps_run']:,}")
    out.append("")
    out += ["## Checkers", "", "| checker | verdict | time | figures |", "|---|---|---|---|"]
    for cr in results:
        figs = ", ".join(f"{k} {_count(v)}" for k, v in sorted(cr.stats.items())
                         if not isinstance(v, (dict, list)))
        own = overall(r.verdict for r in cr.results if id(r) in counted)
        out.append(f"| {cr.checker} | {_ICON[own]} {own.value} | "
                   f"{cr.seconds:.2f} s | {_md(figs)} |")
    out.append("")
    return "\n".join(out)


def write_summary(results: Sequence[CheckResult], *, markdown: str | Path | None = None,
                  json_path: str | Path | None = None, junit: str | Path | None = None,
                  sarif: str | Path | None = None) -> list[Path]:
    """Write the requested summary files; returns the paths written.

    Everything is rendered before anything is written, and each file is written
    atomically, so an error or an interrupt never leaves a half-written report.
    A counterexample trace that cannot be read raises InputError (nothing written).
    """
    from ballast.reports.junit import junit_xml
    from ballast.reports.sarif import sarif_json

    texts: list[tuple[Path, str]] = []
    if markdown is not None:
        texts.append((Path(markdown), summary_markdown(results)))
    if json_path is not None:
        texts.append((Path(json_path), summary_json(results)))
    if junit is not None:
        texts.append((Path(junit), junit_xml(results)))
    if sarif is not None:
        texts.append((Path(sarif), sarif_json(results)))
    atomic_write_files(texts)
    return [p for p, _ in texts]
