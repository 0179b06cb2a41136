"""The reporter for people at a terminal: checkers return data, this renders it.

Nothing below the command line prints. Rendering uses ``rich`` through
:func:`ballast.console.console` (plain text when the output is not a terminal,
so CI logs stay readable).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ballast.model.replay import ReplayOutcome, ReplayResult
from ballast.reports.commands import replay_command
from ballast.verdict import PropertyResult, Verdict

if TYPE_CHECKING:  # the checkers (Hypothesis, ...) load only when a check runs
    from ballast.suites.backends import Cell
    from ballast.suites.check import CheckReport

__all__ = ["render_backends", "render_check", "render_replay"]

_STYLE = {Verdict.PASS: "green", Verdict.VIOLATION: "bold red", Verdict.INCONCLUSIVE: "yellow",
          Verdict.VACUOUS: "yellow", Verdict.SKIPPED: "dim"}


def _cell(r: PropertyResult) -> str:
    return f"[{_STYLE[r.verdict]}]{r.verdict.value}[/] {r.detail}"


def render_check(out: Console, report: "CheckReport") -> None:
    """The summary of a ``ballast check``: one row per property, one column per checker."""
    checkers = [res.checker for res in report.results]
    table = Table(title="Safety properties", show_lines=False, expand=False)
    table.add_column("property")
    for checker in checkers:
        table.add_column(checker)
    names: list[str] = []
    cells: dict[tuple[str, str], PropertyResult] = {}
    for c in report.results:
        for r in c.results:
            if r.kind != "invariant":
                continue
            if r.property not in names:
                names.append(r.property)
            cells[(r.property, c.checker)] = r
    for name in names:
        row = [name]
        for checker in checkers:
            cell = cells.get((name, checker))
            row.append(f"[{_STYLE[cell.verdict]}]{cell.verdict.value}[/]" if cell else "-")
        table.add_row(*row)
    out.print(table)
    for c in report.results:
        held = next((r for r in c.results if r.kind == "invariant"
                     and r.verdict is not Verdict.VIOLATION), None)
        note = held.detail if held else ""
        out.print(f"  {c.checker}: {c.verdict.value} in {c.seconds:.1f} s  {note}")
    scen = [r for r in report.pooled if r.kind == "scenario"]
    acts = [r for r in report.pooled if r.kind == "action"]
    out.print(f"Sometimes: {sum(r.verdict is Verdict.PASS for r in scen)}/{len(scen)} scenarios "
              f"witnessed, {sum(r.verdict is Verdict.PASS for r in acts)}/{len(acts)} "
              "actions fired")
    for r in scen + acts:
        if r.verdict is Verdict.VACUOUS:
            out.print(f"  [yellow]vacuous[/]: {r.property}: {r.detail}")
        elif r.verdict is not Verdict.PASS:
            out.print(f"  [dim]not exercised[/]: {r.property}: {r.detail}")
    for r in report.counterexamples():
        out.print(f"[bold red]VIOLATION[/] {r.property} ({r.checker}): {r.detail}")
        out.print(f"  counterexample: {r.counterexample}  (explained in "
                  f"{r.counterexample.with_suffix('.md') if r.counterexample else ''})")
        if r.counterexample is not None:
            out.print(f"  replay: {replay_command(r.counterexample)}", markup=False)
    # One line per checker and reason: a budget that ran out names its flag once.
    open_: dict[tuple[str, str], list[str]] = {}
    for c in report.results:
        for r in c.results:
            if r.verdict is Verdict.INCONCLUSIVE and r.kind == "invariant":
                open_.setdefault((r.checker, r.detail), []).append(r.property)
    for (checker, detail), props in open_.items():
        what = props[0] if len(props) == 1 else f"{len(props)} properties ({', '.join(props)})"
        out.print(f"[yellow]INCONCLUSIVE[/] {checker}: {escape(detail)} -- {what}")
    out.print(f"Verdict: [{_STYLE[report.verdict]}]{report.verdict.value}[/] "
              f"(exit {report.verdict.exit_code}) in {report.seconds:.1f} s")


def render_replay(out: Console, source: str, result: ReplayResult) -> None:
    """One line per replay outcome, plus the violated properties."""
    if result.outcome is ReplayOutcome.OK:
        out.print(f"{source}: ok: {result.describe()}")
        return
    where = f"{source}:{result.line}" if result.line else source
    out.print(f"{where}: {result.outcome.value}: {result.describe()}")
    for v in result.violations[1:]:
        out.print(f"  also breaks {v.property}: {v.message}")


_MARK = {"encoded": ("yes", "green"), "known gap": ("known gap", "yellow"),
         "missing": ("MISSING", "bold red"), "not covered": ("n/a", "dim")}


def render_backends(out: Console, kind: str, rows: "dict[str, dict[str, Cell]]", *,
                    plain: bool) -> None:
    """The backend matrix of ``ballast list KIND --backends``: one row per item, one column
    per backend, then every known gap and missing encoding with its reason.

    ``plain`` writes aligned text without markup (for logs and pipes)."""
    backends = list(next(iter(rows.values()))) if rows else []
    notes = [(name, b, c) for name, row in rows.items() for b, c in row.items()
             if c.status in ("missing", "known gap")]
    if plain:
        width = max([len(kind)] + [len(n) for n in rows]) + 2
        out.print((kind[:-1].ljust(width) + "".join(b.ljust(10) for b in backends)).rstrip(),
                  markup=False)
        for name, row in rows.items():
            out.print(name.ljust(width) + "".join(_MARK[row[b].status][0].ljust(10)
                                                  for b in backends).rstrip(), markup=False)
        for name, b, c in notes:
            out.print(f"{c.status}: {b}: {name}: {c.where}", markup=False)
    else:
        table = Table(title=f"Backends of the model's {kind}")
        table.add_column(kind[:-1])
        for b in backends:
            table.add_column(b)
        for name, row in rows.items():
            table.add_row(name, *(f"[{_MARK[row[b].status][1]}]{_MARK[row[b].status][0]}[/]"
                                  for b in backends))
        out.print(table)
        for name, b, c in notes:
            out.print(f"[{_MARK[c.status][1]}]{c.status}[/]: {b}: {name}: {c.where}")
    missing = sum(c.status == "missing" for _, _, c in notes)
    out.print(f"{len(rows)} {kind}, {len(backends)} backends, {missing} missing encodings",
              markup=False)
